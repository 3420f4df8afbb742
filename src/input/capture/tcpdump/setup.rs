//! What a running tcpdump capture is set up with: the tools, the ring's capture spec, the
//! directories and the retention policy. Plain data, read by the supervisor and the incident
//! capture.

use std::path::PathBuf;

use super::command::CaptureSpec;
use super::install::Tools;

/// Everything the supervisor and the incident capture need to run.
pub struct Setup {
    pub tools: Tools,
    pub spec: CaptureSpec,
    pub pcap_dir: PathBuf,
    pub max_packets: u64,
    /// `pcap_retention_days` / `pcap_max_disk_mb` (the shared policy of both modes).
    pub retention: crate::input::capture::evidence::Retention,
}

impl Setup {
    pub fn ring_dir(&self) -> PathBuf {
        self.pcap_dir.join("ring")
    }

    pub fn work_dir(&self) -> PathBuf {
        self.pcap_dir.join(".work")
    }
}
