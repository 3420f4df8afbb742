//! Bounds-checked big-endian reads over a datagram, and the decoders' error type. Every read
//! either returns the bytes asked for or [`DecodeError::Truncated`] naming what was being read.

/// Why a datagram (or the part of it after the records already emitted) could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The datagram ends inside the named structure.
    Truncated(&'static str),
    /// A field is impossible (a length shorter than its header, a zero-length template ...).
    Invalid(&'static str),
    /// Not a version this collector decodes (the first 16 or 32 bits, as read).
    UnknownVersion(u32),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated(what) => write!(f, "truncated {what}"),
            DecodeError::Invalid(what) => write!(f, "invalid {what}"),
            DecodeError::UnknownVersion(v) => write!(f, "unknown flow protocol version {v}"),
        }
    }
}

pub type R<T> = Result<T, DecodeError>;

/// A read position in a byte slice.
#[derive(Debug, Clone, Copy)]
pub struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Rd<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Rd { b, at: 0 }
    }

    pub fn left(&self) -> usize {
        self.b.len() - self.at
    }

    pub fn pos(&self) -> usize {
        self.at
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> R<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Truncated(what))?;
        let s = self.b.get(self.at..end).ok_or(DecodeError::Truncated(what))?;
        self.at = end;
        Ok(s)
    }

    pub fn skip(&mut self, n: usize, what: &'static str) -> R<()> {
        self.take(n, what).map(|_| ())
    }

    pub fn u8(&mut self, what: &'static str) -> R<u8> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> R<u16> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    pub fn u32(&mut self, what: &'static str) -> R<u32> {
        let s = self.take(4, what)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
}

/// An unsigned big-endian integer of 1..=8 bytes (IPFIX reduced-size encoding); longer values
/// keep their last 8 bytes, an empty one is 0.
pub fn uint(b: &[u8]) -> u64 {
    let b = if b.len() > 8 { &b[b.len() - 8..] } else { b };
    b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

/// Milliseconds of `now_uptime - t` on a 32-bit millisecond uptime clock that wraps; a `t` in the
/// future (by less than half the clock) counts as now.
pub fn uptime_age_ms(now_uptime: u32, t: u32) -> u64 {
    let d = now_uptime.wrapping_sub(t);
    if d > u32::MAX / 2 {
        0
    } else {
        u64::from(d)
    }
}

/// An exporter's absolute time (ms since the epoch) on the collector's clock: the exporter's
/// clock is trusted when its export time is within 2 s of the arrival, else shifted by the
/// difference. Never later than the arrival.
pub fn absolute_ms(arrived_ms: u64, export_ms: u64, t_ms: u64) -> u64 {
    let skew = arrived_ms as i128 - export_ms as i128;
    let t = if skew.abs() <= 2000 { t_ms as i128 } else { t_ms as i128 + skew };
    t.clamp(0, arrived_ms as i128) as u64
}
