//! The only code that reads counter files, and the only interface resolution (`auto`, §5.1):
//! the sampler's and packet capture's ([`capture_interface`]). The procfs root is a constructor
//! argument, so tests and containers point it at another tree (`/host/proc`, a temp dir).

use std::path::{Path, PathBuf};

use super::kernel::{self, KernelRead};
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
    /// The §5.7 tables (TcpExt, softnet, UDP errors), read after [`CounterSource::proto`]; a
    /// source without them gives an empty reading.
    fn kernel(&mut self) -> KernelRead {
        KernelRead::default()
    }
}

/// Reads `<root>/net/dev`, `<root>/net/snmp`, `<root>/net/snmp6`, `<root>/net/route`.
#[derive(Debug, Clone)]
pub struct ProcSource {
    root: PathBuf,
    open: OpenTables,
    buf: String,
    /// `net/snmp` of this tick, kept for the UDP errors: both buffers live as long as the
    /// source, so a tick allocates nothing once they have grown to the tables' size.
    snmp: String,
    udp: Result<kernel::UdpErrors, String>,
}

impl ProcSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcSource {
            root: root.into(),
            open: OpenTables::default(),
            buf: String::with_capacity(4096),
            snmp: String::with_capacity(2048),
            udp: Err("not read yet".into()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn read(&mut self, rel: &'static str) -> std::io::Result<&str> {
        self.buf.clear();
        self.open.read(&self.root, rel, &mut self.buf)?;
        Ok(&self.buf)
    }
}

impl CounterSource for ProcSource {
    fn net_dev(&mut self) -> std::io::Result<NetDev> {
        Ok(netdev::parse(self.read("net/dev")?))
    }

    fn proto(&mut self) -> Option<HostProto> {
        self.udp = Err("unreadable".into());
        let mut snmp = std::mem::take(&mut self.snmp);
        snmp.clear();
        let read = self.open.read(&self.root, "net/snmp", &mut snmp);
        let parsed = read.ok().and_then(|()| snmp::parse_snmp(&snmp));
        let out = parsed.map(|mut c| {
            let six = self.read("net/snmp6").is_ok();
            if six {
                c.add(&snmp::parse_snmp6(&self.buf));
            }
            self.udp = kernel::parse_udp_errors(&snmp, six.then_some(self.buf.as_str())).map_err(|e| e.0);
            c
        });
        self.snmp = snmp;
        out
    }

    fn kernel(&mut self) -> KernelRead {
        let mut out = KernelRead::default();
        match self
            .read("net/netstat")
            .map_err(|e| e.to_string())
            .and_then(|t| kernel::parse_netstat(t).map_err(|e| e.0))
        {
            Ok(t) => out.reading.tcp_ext = Some(t),
            Err(why) => out.problems.push(("net/netstat", why)),
        }
        match self
            .read("net/softnet_stat")
            .map_err(|e| e.to_string())
            .and_then(|t| kernel::parse_softnet(t).map_err(|e| e.0))
        {
            Ok(s) => out.reading.softnet = Some(s),
            Err(why) => out.problems.push(("net/softnet_stat", why)),
        }
        match &self.udp {
            Ok(u) => out.reading.udp = Some(*u),
            Err(why) => out.problems.push(("net/snmp (Udp errors)", why.clone())),
        }
        out
    }

    fn default_route_iface(&mut self) -> Option<String> {
        snmp::default_route_iface(self.read("net/route").ok()?)
    }

    fn describe(&self) -> String {
        self.root.join("net/dev").display().to_string()
    }
}

/// Tables larger than this are not counter tables (a fake tree gone wrong): read no further.
const MAX_TABLE: u64 = 1 << 20;

/// The tables kept open between ticks. A file on procfs is never replaced, so it is opened once
/// and read again from offset 0 each tick (the kernel regenerates it): a tick costs a seek and
/// two reads per table instead of open, stat, seek, reads and close. Files of any other tree (a
/// test's fake `/proc`, rewritten by rename) are opened afresh on every read.
#[derive(Debug, Default)]
struct OpenTables(Vec<(&'static str, std::fs::File)>);

impl Clone for OpenTables {
    /// A copy opens its own files.
    fn clone(&self) -> Self {
        OpenTables::default()
    }
}

impl OpenTables {
    fn read(&mut self, root: &Path, rel: &'static str, buf: &mut String) -> std::io::Result<()> {
        use std::io::{Read, Seek};
        if let Some(i) = self.0.iter().position(|(r, _)| *r == rel) {
            let f = &mut self.0[i].1;
            let again = f.seek(std::io::SeekFrom::Start(0)).and_then(|_| f.take(MAX_TABLE).read_to_string(buf));
            match again {
                Ok(_) => return Ok(()),
                Err(_) => {
                    // Reopen below; the error of the fresh open is the one that counts.
                    self.0.swap_remove(i);
                    buf.clear();
                }
            }
        }
        let mut f = std::fs::File::open(root.join(rel))?;
        (&mut f).take(MAX_TABLE).read_to_string(buf)?;
        if on_procfs(&f) {
            self.0.push((rel, f));
        }
        Ok(())
    }
}

fn on_procfs(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: fstatfs on an open descriptor into a zeroed struct of the right type.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        libc::fstatfs(f.as_raw_fd(), &mut s) == 0 && s.f_type == libc::PROC_SUPER_MAGIC
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
    fn real_proc_tables_stay_open_and_read_fresh_each_time() {
        let mut src = ProcSource::new("/proc");
        let a = src.net_dev().unwrap();
        assert!(a.get("lo").is_some());
        assert!(src.proto().is_some());
        let b = src.net_dev().unwrap();
        assert!(b.get("lo").is_some());
        assert_eq!(src.open.0.len(), 3, "dev, snmp, snmp6 kept open");
        // Generate loopback traffic: the held file shows new counters.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..10 {
            sock.send_to(b"x", sock.local_addr().unwrap()).unwrap();
        }
        let c = src.net_dev().unwrap();
        assert!(c.get("lo").unwrap().rx_packets >= b.get("lo").unwrap().rx_packets + 10);
    }

    #[test]
    fn a_fake_tree_replaced_by_rename_is_read_afresh() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        let dev = dir.path().join("net/dev");
        std::fs::write(&dev, "eth0: 5 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n").unwrap();
        let mut src = ProcSource::new(dir.path());
        assert_eq!(src.net_dev().unwrap().get("eth0").unwrap().rx_bytes, 5);
        let tmp = dir.path().join("net/dev.tmp");
        std::fs::write(&tmp, "eth0: 9 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n").unwrap();
        std::fs::rename(&tmp, &dev).unwrap();
        assert_eq!(src.net_dev().unwrap().get("eth0").unwrap().rx_bytes, 9);
        assert!(src.open.0.is_empty(), "nothing of a fake tree is kept open");
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
