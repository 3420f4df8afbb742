//! One direction of one address or prefix: the incident state machine of §5.3–§5.4 on
//! 1-second windows, with its compact [`Baseline`] and settle horizon, in ~400 bytes.
//!
//! The rules are the host detector's ([`crate::detect::detector::Detector`]), with its constants; only the
//! unit of time changes (one window = one second, so `confirm_ticks` × `sample_interval` and
//! `holddown_ticks` × `sample_interval` are rounded up to whole windows):
//! - open after `confirm` windows over 1× any threshold, at once at ≥ 10×;
//! - during the grace period (from the detector's start) only ≥ 10× the floors opens, and only
//!   samples under the floors are learned;
//! - in the cooldown after a resolve: one window over 2×, or a wave over 1× lasting
//!   [`COOLDOWN_SUSTAIN`], opens (the incident carries the previous one's id);
//! - bursts: the excess over 1× accumulates (CUSUM) and opens at [`BURST_EXCESS`];
//! - resolve after `holddown` windows with every rate under the thresholds in force at open;
//! - a normal window is learned [`SETTLE`] later, and only if nothing abnormal came between.
//!
//! The open incident's own data (id, peaks, evidence) lives outside, in the table: most
//! addresses never have one.

use super::baseline::{encode, Baseline};
use super::{Floors, Rates, METRICS};
use crate::detect::detector::{BURST_EXCESS, COOLDOWN_FACTOR, COOLDOWN_SUSTAIN, IMMEDIATE_FACTOR, WAVE_GAP};
use crate::detect::learn::SETTLE;

/// Windows a normal second is held before it is learned.
const HELD: usize = SETTLE.as_secs() as usize;

/// The detection tuning in whole 1-second windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    pub dynamic: bool,
    /// Windows over 1× that open an incident.
    pub confirm: u32,
    /// Windows under every threshold that resolve one.
    pub holddown: u32,
    pub cooldown_s: u32,
    /// Samples per baseline window.
    pub window: u16,
    /// End of the grace period (second since the epoch).
    pub grace_until: u32,
}

impl Rules {
    pub fn from_config(cfg: &crate::config::DetectConfig, start_sec: u32) -> Self {
        let windows = |d: std::time::Duration| d.as_millis().div_ceil(1000).max(1) as u32;
        Rules {
            dynamic: cfg.dynamic_threshold,
            confirm: windows(cfg.confirm_for.unwrap_or(cfg.sample_interval * cfg.confirm_ticks)),
            holddown: windows(cfg.sample_interval * cfg.holddown_ticks),
            cooldown_s: cfg.cooldown.as_secs() as u32,
            window: cfg.baseline_window.as_secs().clamp(4, u16::MAX as u64) as u16,
            grace_until: start_sec.saturating_add(cfg.grace_period.as_secs() as u32),
        }
    }
}

/// What one window did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Normal (possibly learned later).
    Normal,
    /// Over a threshold, not confirmed yet.
    Over,
    /// Open an incident: the rate (index into [`super::METRIC_NAMES`]) that opened it.
    Open(usize),
    /// An open incident goes on.
    Continue,
    /// An open incident resolves.
    Resolve,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Watch {
    pub baseline: Baseline,
    pending: [[u16; METRICS]; HELD],
    pending_len: u8,
    /// Second of the last resolve (0 = none): the cooldown.
    last_resolved: u32,
    over: u16,
    over_double: u16,
    /// Current wave over 1×: first and last second over (0 = no wave).
    wave_start: u32,
    wave_last: u32,
    excess: f32,
    below: u16,
    pub open: bool,
}

fn ratio(v: f32, t: f32) -> f32 {
    if t > 0.0 {
        v / t
    } else if v > 0.0 {
        f32::INFINITY
    } else {
        0.0
    }
}

/// The first rate over `factor` × its threshold (`at_least`: ≥ instead of >).
fn first_over(r: &Rates, thr: &Rates, factor: f32, at_least: bool) -> Option<usize> {
    (0..METRICS).find(|&i| if at_least { r[i] >= thr[i] * factor } else { r[i] > thr[i] * factor })
}

impl Watch {
    pub fn in_cooldown(&self, sec: u32, rules: &Rules) -> bool {
        self.last_resolved != 0 && sec < self.last_resolved.saturating_add(rules.cooldown_s)
    }

    /// Thresholds in force: max(multiplier × capped p99, floor); the floors alone when dynamic
    /// thresholds are off.
    pub fn thresholds(&self, floors: &Floors, multiplier: f32, rules: &Rules) -> Rates {
        if rules.dynamic {
            self.baseline.thresholds(floors, multiplier)
        } else {
            floors.0
        }
    }

    /// One closed window `sec` with rates `r`. `thr`: the thresholds in force; `open_thr`: the
    /// thresholds of the open incident, if one is open.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        sec: u32,
        r: &Rates,
        thr: &Rates,
        open_thr: Option<&Rates>,
        floors: &Floors,
        multiplier: f32,
        rules: &Rules,
    ) -> Verdict {
        let verdict = self.judge(sec, r, thr, open_thr, floors, rules);
        if verdict == Verdict::Normal {
            self.hold(r, floors, multiplier, rules);
        } else {
            self.pending_len = 0;
        }
        verdict
    }

    fn judge(
        &mut self,
        sec: u32,
        r: &Rates,
        thr: &Rates,
        open_thr: Option<&Rates>,
        floors: &Floors,
        rules: &Rules,
    ) -> Verdict {
        if self.open {
            let t = open_thr.unwrap_or(thr);
            let under = first_over(r, t, 1.0, true).is_none();
            self.below = if under { self.below.saturating_add(1) } else { 0 };
            if u32::from(self.below) >= rules.holddown {
                self.open = false;
                self.last_resolved = sec;
                return Verdict::Resolve;
            }
            return Verdict::Continue;
        }
        if sec < rules.grace_until {
            self.excess = 0.0;
            // A floor of 0 stands for "no limit" here.
            let f: Rates = floors.0.map(|f| if f > 0.0 { f } else { f32::INFINITY });
            if let Some(i) = first_over(r, &f, IMMEDIATE_FACTOR as f32, true) {
                return self.open_now(i);
            }
            let normal = first_over(r, &f, 1.0, false).is_none() && first_over(r, thr, 1.0, false).is_none();
            return if normal { Verdict::Normal } else { Verdict::Over };
        }
        let worst = (0..METRICS).map(|i| ratio(r[i], thr[i])).fold(0.0, f32::max).min(IMMEDIATE_FACTOR as f32);
        self.excess = (self.excess + (worst - 1.0)).max(0.0);
        let Some(i) = first_over(r, thr, 1.0, false) else {
            self.over = 0;
            self.over_double = 0;
            if self.wave_start != 0 && sec.saturating_sub(self.wave_last) >= WAVE_GAP.as_secs() as u32 {
                self.wave_start = 0;
            }
            return Verdict::Normal;
        };
        self.over = self.over.saturating_add(1);
        let double = first_over(r, thr, COOLDOWN_FACTOR as f32, false).is_some();
        self.over_double = if double { self.over_double.saturating_add(1) } else { 0 };
        if self.wave_start == 0 {
            self.wave_start = sec;
        }
        self.wave_last = sec;
        let immediate = first_over(r, thr, IMMEDIATE_FACTOR as f32, true).is_some();
        let confirmed = self.excess >= BURST_EXCESS as f32
            || if self.in_cooldown(sec, rules) {
                u32::from(self.over_double) >= rules.confirm
                    || sec.saturating_sub(self.wave_start) >= COOLDOWN_SUSTAIN.as_secs() as u32
            } else {
                u32::from(self.over) >= rules.confirm
            };
        if confirmed || immediate {
            self.open_now(i)
        } else {
            Verdict::Over
        }
    }

    fn open_now(&mut self, trigger: usize) -> Verdict {
        self.open = true;
        self.below = 0;
        self.over = 0;
        self.over_double = 0;
        self.wave_start = 0;
        self.excess = 0.0;
        Verdict::Open(trigger)
    }

    /// The settle horizon: hold a normal window; learn the one that has waited [`SETTLE`].
    fn hold(&mut self, r: &Rates, floors: &Floors, multiplier: f32, rules: &Rules) {
        if self.pending_len as usize == HELD {
            let oldest = self.pending[0];
            self.pending.copy_within(1.., 0);
            self.pending_len -= 1;
            self.baseline.learn(&oldest, rules.window, floors, multiplier);
        }
        self.pending[self.pending_len as usize] = r.map(encode);
        self.pending_len += 1;
    }

    /// The agent stops: close any open incident.
    pub fn stop(&mut self) -> bool {
        std::mem::take(&mut self.open)
    }
}
