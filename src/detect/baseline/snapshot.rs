//! The saved baseline (`baseline.json`, §5.2, §5.5): [`Snapshot`] with one [`DirSnapshot`] per
//! direction, the checks a file read back must pass, and why one is refused
//! ([`RestoreRefused`]). Pure; the caller reads and writes the file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Baseline, Checkpoint, HourBucket, MAX_RESTORE_AGE, SNAPSHOT_VERSION};
use crate::config::DetectConfig;
use crate::detect::baseline::protocol::{ClassSnapshot, ClassWindows};

/// What is saved to `baseline.json`: one [`DirSnapshot`] per direction (§5.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    /// Seconds since the Unix epoch.
    pub saved_at: u64,
    pub sample_interval_ms: u64,
    #[serde(default)]
    pub inbound: Option<DirSnapshot>,
    #[serde(default)]
    pub outbound: Option<DirSnapshot>,
}

/// One direction's baseline as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirSnapshot {
    pub total_samples: u64,
    pub window_pps: Vec<f64>,
    pub window_bits_per_s: Vec<f64>,
    pub(super) hours: Vec<HourBucket>,
    #[serde(default)]
    pub(super) checkpoints: Vec<Checkpoint>,
    #[serde(default)]
    pub(super) classes: ClassSnapshot,
}

/// Why a saved baseline was not used.
#[derive(Debug, Clone, PartialEq)]
pub enum RestoreRefused {
    TooOld { age_s: u64 },
    FromTheFuture,
    OldVersion(u32),
    Malformed(&'static str),
}

impl std::fmt::Display for RestoreRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreRefused::TooOld { age_s } => {
                write!(f, "it is {age_s} s old (limit {} s)", MAX_RESTORE_AGE.as_secs())
            }
            RestoreRefused::FromTheFuture => write!(f, "it was saved in the future (clock change?)"),
            RestoreRefused::OldVersion(v) => write!(
                f,
                "it is format version {v}, written before learning was limited to normal traffic, so it may hold \
                 flood samples"
            ),
            RestoreRefused::Malformed(why) => write!(f, "it is malformed ({why})"),
        }
    }
}

impl Baseline {
    /// This direction's part of the saved file.
    pub fn snapshot(&self) -> DirSnapshot {
        DirSnapshot {
            total_samples: self.total_samples,
            window_pps: self.pps.iter().copied().collect(),
            window_bits_per_s: self.bits_per_s.iter().copied().collect(),
            hours: self.hours.clone(),
            checkpoints: self.checkpoints.iter().copied().collect(),
            classes: self.classes.snapshot(),
        }
    }

    /// Rebuild one direction from a saved file that [`Snapshot::usable`] accepted.
    pub fn restore(cfg: &DetectConfig, snap: &DirSnapshot) -> Result<Self, RestoreRefused> {
        snap.check().map_err(RestoreRefused::Malformed)?;
        let mut b = Baseline::new(cfg);
        let skip = snap.window_pps.len().saturating_sub(b.window_len);
        b.pps.extend(snap.window_pps.iter().skip(skip).copied());
        b.bits_per_s.extend(snap.window_bits_per_s.iter().skip(skip).copied());
        b.hours = snap.hours.clone();
        b.total_samples = snap.total_samples;
        b.checkpoints = snap
            .checkpoints
            .iter()
            .copied()
            .filter(|c| c.at <= snap.total_samples && c.pps.is_finite() && c.bits_per_s.is_finite())
            .collect();
        b.classes = ClassWindows::restore(b.window_len, &snap.classes);
        Ok(b)
    }
}

impl DirSnapshot {
    /// The shape and ranges a saved direction must have to be restored.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.hours.len() != 24 {
            return Err("not 24 hour buckets");
        }
        if self.total_samples > u64::MAX / 2 || !self.hours.iter().all(|h| h.pps.sane() && h.bits_per_s.sane()) {
            return Err("a sample count is out of range");
        }
        if self.window_pps.len() != self.window_bits_per_s.len() {
            return Err("window lengths differ");
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite() && *x >= 0.0);
        if !finite(&self.window_pps) || !finite(&self.window_bits_per_s) {
            return Err("a window value is negative or not a number");
        }
        Ok(())
    }
}

impl Snapshot {
    /// Structural checks of a file read back: every saved direction well formed. (Age and
    /// version are [`Snapshot::usable`]'s: an old file is not corrupt.)
    pub fn check(&self) -> crate::error::Result<()> {
        for (name, dir) in [("inbound", &self.inbound), ("outbound", &self.outbound)] {
            if let Some(d) = dir {
                d.check().map_err(|why| crate::util::statefile::corrupt(format!("{name}: {why}")))?;
            }
        }
        Ok(())
    }

    pub fn new(wall: SystemTime, cfg: &DetectConfig, inbound: DirSnapshot, outbound: DirSnapshot) -> Self {
        Snapshot {
            version: SNAPSHOT_VERSION,
            saved_at: wall.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            sample_interval_ms: cfg.sample_interval.as_millis() as u64,
            inbound: Some(inbound),
            outbound: Some(outbound),
        }
    }

    /// Whether this file may be restored at `wall`: recent, and of this version.
    pub fn usable(&self, wall: SystemTime) -> Result<(), RestoreRefused> {
        if self.version != SNAPSHOT_VERSION {
            return Err(RestoreRefused::OldVersion(self.version));
        }
        let saved =
            UNIX_EPOCH.checked_add(Duration::from_secs(self.saved_at)).ok_or(RestoreRefused::Malformed("saved_at"))?;
        let age = wall.duration_since(saved).map_err(|_| RestoreRefused::FromTheFuture)?;
        if age > MAX_RESTORE_AGE {
            return Err(RestoreRefused::TooOld { age_s: age.as_secs() });
        }
        if self.inbound.is_none() {
            return Err(RestoreRefused::Malformed("no inbound baseline"));
        }
        Ok(())
    }
}
