//! The only code that reads counter files, and the only interface resolution (`auto`, §5.1):
//! the sampler's and packet capture's ([`capture_interface`]). The procfs root is a constructor
//! argument, so tests and containers point it at another tree (`/host/proc`, a temp dir).

use std::path::{Path, PathBuf};

use super::netdev::{self, NetDev};
use super::snmp::{self, HostProto};

/// A source of raw counters: the real `/proc` or anything shaped like it.
pub trait CounterSource: Send {
    /// Read the interface table. An error here means no sample this tick.
    fn net_dev(&mut self) -> std::io::Result<NetDev>;
    /// Host-wide protocol counters (`snmp` + `snmp6`), both directions; None when unreadable.
    fn proto(&mut self) -> Option<HostProto>;
    /// The interface of the default route, if any.
    fn default_route_iface(&mut self) -> Option<String>;
    /// Human description for log lines.
    fn describe(&self) -> String;
}

/// Reads `<root>/net/dev`, `<root>/net/snmp`, `<root>/net/snmp6`, `<root>/net/route`.
#[derive(Debug, Clone)]
pub struct ProcSource {
    root: PathBuf,
    buf: String,
}

impl ProcSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcSource { root: root.into(), buf: String::with_capacity(4096) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn read(&mut self, rel: &str) -> std::io::Result<&str> {
        use std::io::Read;
        self.buf.clear();
        std::fs::File::open(self.root.join(rel))?.read_to_string(&mut self.buf)?;
        Ok(&self.buf)
    }
}

impl CounterSource for ProcSource {
    fn net_dev(&mut self) -> std::io::Result<NetDev> {
        Ok(netdev::parse(self.read("net/dev")?))
    }

    fn proto(&mut self) -> Option<HostProto> {
        let mut c = snmp::parse_snmp(self.read("net/snmp").ok()?)?;
        if let Ok(text) = self.read("net/snmp6") {
            c.add(&snmp::parse_snmp6(text));
        }
        Some(c)
    }

    fn default_route_iface(&mut self) -> Option<String> {
        snmp::default_route_iface(self.read("net/route").ok()?)
    }

    fn describe(&self) -> String {
        self.root.join("net/dev").display().to_string()
    }
}

/// Interface name prefixes that are never picked by `auto`: loopback, bridges, containers, tunnels.
const VIRTUAL_PREFIXES: &[&str] =
    &["lo", "docker", "br-", "veth", "virbr", "dummy", "tun", "tap", "flannel", "cni", "cali"];

pub fn is_virtual(name: &str) -> bool {
    name == "lo" || VIRTUAL_PREFIXES.iter().any(|p| *p != "lo" && name.starts_with(p))
}

/// The interface packet capture is started on: a configured name as is, `auto` resolved from
/// `<root>/net/dev` and `<root>/net/route` by [`choose_interface`], as the counters resolve it.
/// None when `auto` finds none. The only interface resolution of the capture side.
pub fn capture_interface(configured: &str, root: &Path) -> Option<String> {
    if configured != "auto" {
        return Some(configured.to_string());
    }
    let mut src = ProcSource::new(root);
    let table = src.net_dev().ok()?;
    choose_interface(configured, &table, src.default_route_iface().as_deref())
}

/// `auto` (§5.1): the default route's interface when it is present, else the non-virtual
/// interface with the most RX bytes. A configured name is used as is.
pub fn choose_interface(configured: &str, table: &NetDev, default_route: Option<&str>) -> Option<String> {
    if configured != "auto" {
        return Some(configured.to_string());
    }
    if let Some(r) = default_route.filter(|r| table.get(r).is_some()) {
        return Some(r.to_string());
    }
    table.ifaces.iter().filter(|i| !is_virtual(&i.name)).max_by_key(|i| i.rx_bytes).map(|i| i.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[(&str, u64)]) -> NetDev {
        let text: String = rows.iter().map(|(n, rx)| format!("{n}: {rx} 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n")).collect();
        netdev::parse(&text)
    }

    #[test]
    fn auto_prefers_the_default_route() {
        let t = table(&[("lo", 900), ("eth0", 10), ("eth1", 500)]);
        assert_eq!(choose_interface("auto", &t, Some("eth0")).as_deref(), Some("eth0"));
    }

    #[test]
    fn auto_falls_back_to_busiest_physical_interface() {
        let t =
            table(&[("lo", 9000), ("docker0", 8000), ("veth12ab", 7000), ("cali3", 7000), ("ens3", 10), ("wg0", 50)]);
        assert_eq!(choose_interface("auto", &t, None).as_deref(), Some("wg0"));
        assert_eq!(choose_interface("auto", &t, Some("gone0")).as_deref(), Some("wg0"));
    }

    #[test]
    fn configured_name_is_kept() {
        assert_eq!(choose_interface("eth9", &NetDev::default(), None).as_deref(), Some("eth9"));
    }

    #[test]
    fn proc_source_reads_a_fake_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        std::fs::write(dir.path().join("net/dev"), "eth0: 5 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n").unwrap();
        let mut src = ProcSource::new(dir.path());
        assert_eq!(src.net_dev().unwrap().get("eth0").unwrap().rx_bytes, 5);
        assert_eq!(src.proto(), None);
        assert_eq!(src.default_route_iface(), None);
    }
}
