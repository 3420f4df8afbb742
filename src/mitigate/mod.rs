//! Automatic mitigation (§10): typed nftables rules chosen from the classification, applied in
//! the agent's own table `inet ftagent`, each expiring by itself; BGP FlowSpec and blackhole
//! routes announced through a real speaker (§10.2); plus an optional local hook.
//!
//! [`crate::config::mitigation`] (every build) parses and validates the `mitigation` object. [`bgp`] (every build,
//! limited mode too: the speaker holds the privilege) plans and announces routes. The nftables
//! side needs packet classification and so a capture build: [`plan`] (pure: classification →
//! rules), [`nft`] (rules → one nftables JSON batch, table listing, counters), [`worker`] +
//! [`lifecycle`] (the thread that applies, renews, removes and reconciles; nothing runs on the
//! sampling thread); [`hook`] (the local program, on its own thread, killed at its timeout).
//! [`protect`] (every build) is the protected set of §10.1: the addresses no backend ever blocks,
//! each with the reason an operator reads. [`start`] is the one front door for both backends.
//! This module never runs a shell, never touches another nftables table, and takes from a server
//! only bounded detection values (never a rule, never a protected address).

pub mod bgp;
pub mod hook;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
pub mod lifecycle;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
pub mod nft;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
pub mod plan;
pub mod protect;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
pub mod worker;

#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
mod disabled;
#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
use disabled as local;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
use worker as local;

use std::sync::mpsc::SyncSender;

use log::info;

use crate::config::mitigation::Cidr;
use crate::config::Settings;
use crate::event::Event;
use crate::report::Outgoing;

/// The running mitigation backends: hand them each tick's messages; stop after the sampling
/// thread.
pub struct Mitigation {
    local: Option<local::Mitigation>,
    bgp: Option<bgp::Bgp>,
}

impl Mitigation {
    /// A sender for the sampling loop.
    pub fn observer(&self) -> Observer {
        Observer { local: self.local.as_ref().map(|m| m.observer()), bgp: self.bgp.as_ref().map(|b| b.sender()) }
    }

    /// Stop both workers; nftables rules stay until their kernel-side timeouts, BGP routes are
    /// withdrawn.
    pub fn stop(self) {
        if let Some(m) = self.local {
            m.stop();
        }
        if let Some(b) = self.bgp {
            b.stop();
        }
    }
}

/// Hands incident events to the workers from the sampling thread; never blocks.
#[derive(Clone)]
pub struct Observer {
    local: Option<local::Observer>,
    bgp: Option<SyncSender<Event>>,
}

impl Observer {
    /// The host's own incidents (counters, capture): nftables, the hook and BGP.
    pub fn observe(&self, msgs: &[Outgoing]) {
        if let Some(l) = &self.local {
            l.observe(msgs);
        }
        self.to_bgp(msgs);
    }

    /// Incidents about other addresses (the flow detector's, §12): BGP and the hook, never
    /// nftables, which protects only this host.
    pub fn observe_remote(&self, msgs: &[Outgoing]) {
        if let Some(l) = &self.local {
            l.observe_remote(msgs);
        }
        self.to_bgp(msgs);
    }

    fn to_bgp(&self, msgs: &[Outgoing]) {
        if let Some(tx) = &self.bgp {
            for m in msgs {
                if let Outgoing::Event(e) = m {
                    bgp::observe(tx, e);
                }
            }
        }
    }
}

/// Start what the config asks for and the build and process allow, each backend saying in one
/// log line why it does not run. `live` reads the capture's latest classification (nftables).
pub fn start(
    settings: &Settings,
    events: SyncSender<Outgoing>,
    live: Option<crate::input::capture::handle::LiveClassification>,
) -> Option<Mitigation> {
    let local = local::start(settings, events.clone(), live.clone());
    let bgp = bgp::start(settings, events, live);
    (local.is_some() || bgp.is_some()).then_some(Mitigation { local, bgp })
}

/// Never announced (§10.1): the configured allowlist, the host's default gateways (v4 and v6), the
/// resolvers it really uses (behind systemd-resolved's stub too) and the address literals of its
/// sinks, read from the same sources as [`protect`]'s set. The host's own addresses and private
/// ranges are not in it: for BGP they are legitimate targets (the routes protect them).
pub fn protected_set(settings: &Settings) -> Vec<Cidr> {
    let roots = protect::Roots::system(&settings.procfs_root);
    let text = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let mut found = protect::gateways_v4(&text(&roots.proc.join("net/route")));
    found.extend(protect::gateways_v6(&text(&roots.proc.join("net/ipv6_route"))));
    found.extend(protect::resolvers(&text(&roots.resolv), &text(&roots.resolved)));
    for url in [&settings.api_base, &settings.webhook_url] {
        if let Ok(ip) = protect::url_host(url).trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
            found.push(ip);
        }
    }
    let host: Vec<Cidr> = found.into_iter().filter_map(|ip| Cidr::parse(&ip.to_string())).collect();
    if !host.is_empty() {
        let shown: Vec<String> = host.iter().map(|c| c.to_string()).collect();
        info!("never announced: the gateways, resolvers and sinks {}", shown.join(", "));
    }
    let mut allow = settings.mitigation.allowlist.clone();
    allow.extend(host);
    allow
}
