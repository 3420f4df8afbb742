//! The `tcpdump` command lines the agent runs (ring and incident capture) and the lookup of
//! tools on `PATH`. Pure argument building plus `PATH` probing; spawning lives in `child.rs`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Seconds per ring file (`-G`).
pub const RING_ROTATE_S: u32 = 30;
/// Kernel capture buffer per tcpdump process in KiB (`-B`): room for a flood burst.
pub const BUFFER_KIB: u32 = 8192;
/// strftime pattern of ring files; tcpdump runs with `TZ=UTC`, so names are UTC and sort in time.
pub const RING_PATTERN: &str = "ring_%Y%m%dT%H%M%S.pcap";

/// What every tcpdump the agent starts shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSpec {
    pub interface: String,
    /// 0 = whole packets (tcpdump's own default of 262144 bytes).
    pub snaplen: u32,
    /// The user tcpdump keeps after opening the device (`-Z`): the agent's own, so it can write
    /// rotated files into the agent's 0700 directories.
    pub user: Option<String>,
    /// `pcap_promiscuous`; off adds `-p`.
    pub promiscuous: bool,
    /// Ring files also rotate at this size (`-C`, millions of bytes), so no single file can
    /// outgrow the disk cap within one 30 s slot.
    pub ring_file_mb: u64,
}

/// The `-C` size for a disk cap of `max_disk_mb`: a tenth of it, 1..=100 (MB).
pub fn ring_file_mb(max_disk_mb: u64) -> u64 {
    (max_disk_mb / 10).clamp(1, 100)
}

impl CaptureSpec {
    fn common(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["-i".into(), self.interface.clone().into()];
        if let Some(u) = &self.user {
            a.push("-Z".into());
            a.push(u.into());
        }
        // -Q in: the traffic the host receives (the victim's own replies, e.g. RSTs to a SYN
        // flood, would otherwise read as a second vector). --immediate-mode and -U: each packet
        // reaches the file as it arrives (not after libpcap's 1 s block timeout), so the ring
        // already holds the onset when an incident opens.
        if !self.promiscuous {
            a.push("-p".into());
        }
        a.extend(["-Q", "in", "--immediate-mode", "-U", "-n", "-s"].map(OsString::from));
        a.push(self.snaplen.to_string().into());
        a.push("-B".into());
        a.push(BUFFER_KIB.to_string().into());
        a
    }

    /// The ring: a new file every 30 s and whenever one reaches `ring_file_mb`, forever (no
    /// `-W`: tcpdump never exits on its own; the agent prunes old files itself, so there is no
    /// restart and no blind gap).
    pub fn ring_args(&self, ring_dir: &Path) -> Vec<OsString> {
        let mut a = self.common();
        a.push("-w".into());
        a.push(ring_dir.join(RING_PATTERN).into_os_string());
        a.push("-G".into());
        a.push(RING_ROTATE_S.to_string().into());
        a.push("-C".into());
        a.push(self.ring_file_mb.to_string().into());
        a
    }

    /// The incident capture: one file, at most `max_packets` packets (`-c`).
    pub fn incident_args(&self, file: &Path, max_packets: u64) -> Vec<OsString> {
        let mut a = self.common();
        a.push("-w".into());
        a.push(file.as_os_str().to_owned());
        a.push("-c".into());
        a.push(max_packets.to_string().into());
        a
    }
}

/// The first executable file named `name` in the `PATH` string `path_var`.
pub fn find_in_path(name: &str, path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path_var = path_var?;
    std::env::split_paths(path_var)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// [`find_in_path`] with the process's `PATH` (systemd gives services one that includes sbin).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH");
    find_in_path(name, path.as_deref())
}

/// The name of the effective user `uid` (`paths::Env::euid`), for `-Z`; root when the
/// database has no entry for uid 0.
pub fn effective_user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live, correctly sized storage owned by this frame; the
    // strings getpwuid_r returns point into `buf`, which outlives their use below.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc == 0 && !out.is_null() && !pwd.pw_name.is_null() {
        // SAFETY: pw_name is a NUL-terminated string inside `buf` (checked non-null above).
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
    (uid == 0).then(|| "root".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn spec() -> CaptureSpec {
        CaptureSpec {
            interface: "eth0".into(),
            snaplen: 0,
            user: Some("ftagent".into()),
            promiscuous: false,
            ring_file_mb: ring_file_mb(2000),
        }
    }

    fn strs(a: &[OsString]) -> Vec<String> {
        a.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn ring_rotates_every_30_s_without_a_file_limit() {
        let a = strs(&spec().ring_args(Path::new("/var/lib/ftagent/pcaps/ring")));
        let joined = a.join(" ");
        assert!(joined.contains("-i eth0"), "{joined}");
        assert!(joined.contains("-Z ftagent"), "{joined}");
        assert!(joined.contains("-G 30"), "{joined}");
        assert!(joined.contains("-C 100"), "rotates by size too: {joined}");
        assert!(a.contains(&"-p".to_string()), "not promiscuous unless configured: {joined}");
        assert!(joined.contains("-s 0"), "{joined}");
        assert!(joined.contains("-Q in"), "{joined}");
        assert!(joined.contains("-w /var/lib/ftagent/pcaps/ring/ring_%Y%m%dT%H%M%S.pcap"), "{joined}");
        assert!(a.contains(&"-U".to_string()));
        assert!(!a.contains(&"-W".to_string()), "-W makes tcpdump exit after N files: {joined}");
        assert!(!a.contains(&"-c".to_string()));
    }

    #[test]
    fn incident_capture_stops_after_max_packets() {
        let s = CaptureSpec { snaplen: 96, user: None, ..spec() };
        let a = strs(&s.incident_args(Path::new("/p/.work/id/incident.pcap"), 10_000));
        let joined = a.join(" ");
        assert!(joined.contains("-c 10000"), "{joined}");
        assert!(joined.contains("-s 96"), "{joined}");
        assert!(joined.contains("-w /p/.work/id/incident.pcap"), "{joined}");
        assert!(!a.contains(&"-G".to_string()) && !a.contains(&"-Z".to_string()), "{joined}");
        let promisc = CaptureSpec { promiscuous: true, ..spec() };
        assert!(!promisc.incident_args(Path::new("/f.pcap"), 1).contains(&"-p".into()));
        assert_eq!((ring_file_mb(1), ring_file_mb(2000), ring_file_mb(500_000)), (1, 100, 100));
    }

    #[test]
    fn path_lookup_needs_an_executable_file() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("tool"), "not executable").unwrap();
        std::fs::write(b.join("tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(find_in_path("tool", Some(&path)), Some(b.join("tool")));
        assert_eq!(find_in_path("other", Some(&path)), None);
        assert_eq!(find_in_path("tool", None), None);
    }

    #[test]
    fn effective_user_has_a_name() {
        assert!(effective_user_name(crate::config::paths::Env::from_process().euid).is_some_and(|n| !n.is_empty()));
    }
}
