//! Counter sampling (§5.1): read the tables, pick the interface, turn two readings into rates.
//!
//! [`Sampler`] owns the only state: the previous reading and which problem was last logged, so
//! a vanished interface or a counter reset is one log line and a gap, not a spike or a flood of
//! log lines. Gaps are told apart by their typed [`rate::Gap`], never by the text logged.

pub mod kernel;
pub mod netdev;
pub mod rate;
pub mod snmp;
pub mod source;

use std::time::Instant;

use log::{info, warn};

pub use netdev::{IfaceCounters, NetDev};
pub use rate::{Rates, Reading, Sample};
pub use snmp::{HostProto, ProtoCounters};
pub use source::{choose_interface, CounterSource, ProcSource};

/// Turns a [`CounterSource`] into a stream of rates for the monitored interface.
pub struct Sampler {
    source: Box<dyn CounterSource>,
    configured: String,
    iface: Option<String>,
    prev: Option<Reading>,
    last_table: NetDev,
    problem: Option<String>,
    malformed_logged: bool,
    /// Kernel tables (§5.7) whose problem was logged: one line per table.
    kernel_logged: Vec<&'static str>,
    /// Ticks that gave no sample.
    pub gaps: u64,
}

impl Sampler {
    pub fn new(source: Box<dyn CounterSource>, configured_iface: &str) -> Self {
        Sampler {
            source,
            configured: configured_iface.to_string(),
            iface: None,
            prev: None,
            last_table: NetDev::default(),
            problem: None,
            malformed_logged: false,
            kernel_logged: Vec::new(),
            gaps: 0,
        }
    }

    /// The interface being monitored (after `auto` resolution), once known.
    pub fn interface(&self) -> Option<&str> {
        self.iface.as_deref()
    }

    /// The interface table from the last successful read (for the heartbeat).
    pub fn last_table(&self) -> &NetDev {
        &self.last_table
    }

    /// Resolve the interface now (at start-up), so `agent_start` can name it.
    pub fn resolve_interface(&mut self) -> Option<String> {
        if let Ok(table) = self.source.net_dev() {
            self.pick(&table);
            self.last_table = table;
        }
        self.iface.clone()
    }

    fn pick(&mut self, table: &NetDev) {
        let vanished = self.iface.as_ref().is_some_and(|i| table.get(i).is_none());
        if self.iface.is_none() || (vanished && self.configured == "auto") {
            let route = self.source.default_route_iface();
            let chosen = choose_interface(&self.configured, table, route.as_deref());
            if chosen != self.iface {
                if let Some(c) = &chosen {
                    info!("monitoring interface {c}");
                }
                self.iface = chosen;
                self.prev = None;
            }
        }
    }

    /// One tick: Some(rates) or None (first reading, gap, or error; logged once per problem).
    pub fn sample(&mut self, now: Instant) -> Option<Rates> {
        let table = match self.source.net_dev() {
            Ok(t) => t,
            Err(e) => return self.gap(format!("cannot read {}: {e}", self.source.describe())),
        };
        if !table.malformed.is_empty() && !self.malformed_logged {
            self.malformed_logged = true;
            warn!("{}: skipping malformed line {:?}", self.source.describe(), table.malformed[0]);
        }
        self.pick(&table);
        let Some(name) = self.iface.clone() else {
            self.last_table = table;
            return self.gap("no interface to monitor (set `interface` in the config)".into());
        };
        let Some(counters) = table.get(&name).cloned() else {
            self.last_table = table;
            return self.gap(format!("interface {name} is not in {}", self.source.describe()));
        };
        self.last_table = table;
        let proto = self.source.proto();
        let kernel = self.read_kernel();
        let reading = Reading { at: now, iface: counters, proto, kernel };
        let prev = self.prev.replace(reading);
        let cur = self.prev.as_ref().expect("just set");
        match prev.map(|p| rate::rates(&p, cur)) {
            None => None,
            Some(Ok(r)) => {
                if let Some(p) = self.problem.take() {
                    info!("counters readable again (was: {p})");
                }
                Some(r)
            }
            Some(Err(gap @ rate::Gap::CounterWentBack)) => self.gap_of(
                format!("counters of {name} went backwards (reset or re-created); skipping one sample"),
                Some(gap),
            ),
            Some(Err(rate::Gap::NoTimeElapsed)) => None,
        }
    }

    /// The §5.7 tables; a table that cannot be read is a gap in its own rates only, logged once.
    fn read_kernel(&mut self) -> kernel::KernelReading {
        let read = self.source.kernel();
        for (table, why) in read.problems {
            if !self.kernel_logged.contains(&table) {
                self.kernel_logged.push(table);
                warn!("{table}: {why}; its counters are left out until it reads again");
            }
        }
        read.reading
    }

    fn gap(&mut self, why: String) -> Option<Rates> {
        self.gap_of(why, None)
    }

    /// A gap logged once per distinct `why`. The reading that went backwards becomes the base of
    /// the next rate; any other gap (`rate`: None) forgets the previous reading.
    fn gap_of(&mut self, why: String, rate: Option<rate::Gap>) -> Option<Rates> {
        self.gaps += 1;
        if self.problem.as_deref() != Some(why.as_str()) {
            warn!("{why}");
            self.problem = Some(why);
        }
        if rate != Some(rate::Gap::CounterWentBack) {
            self.prev = None;
        }
        None
    }
}

#[cfg(test)]
mod tests;
