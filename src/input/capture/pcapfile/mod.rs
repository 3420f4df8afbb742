//! Capture files: a reader for pcap (µs and ns timestamps, either byte order) and pcapng
//! (sections of either byte order, several interfaces, `if_tsresol`), chosen by the magic
//! number, never by the file name; and a writer of classic µs pcap.
//!
//! Works on any `Read`/`Write`; opening files is the caller's business. Corrupt or truncated
//! input is an [`FileError`] naming the byte offset, never a panic or an unbounded allocation.

use std::io::{self, Read, Write};

/// Largest record we accept: a jumbo frame is 9 KiB, pcapng blocks of 64 MiB are hostile.
const MAX_RECORD: usize = 64 << 20;

#[derive(Debug)]
pub enum FileError {
    /// The first bytes are not a pcap or pcapng magic number.
    NotCapture,
    /// The file ends inside a header or record at this byte offset.
    Truncated {
        offset: u64,
    },
    /// A header or block is impossible (length, interface index...) at this byte offset.
    Corrupt {
        offset: u64,
        what: &'static str,
    },
    Io(io::Error),
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::NotCapture => write!(f, "not a capture file (no pcap or pcapng magic number)"),
            FileError::Truncated { offset } => write!(f, "capture file is truncated at byte {offset}"),
            FileError::Corrupt { offset, what } => write!(f, "corrupt capture file at byte {offset}: {what}"),
            FileError::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

impl std::error::Error for FileError {}

/// One captured frame, borrowed from the reader until the next call.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// pcap LINKTYPE_* of the interface it came from.
    pub linktype: u32,
    /// Length on the wire (may exceed `data.len()` when the snap length cut it).
    pub orig_len: u32,
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Pcap { big_endian: bool, nanos: bool, linktype: u32 },
    PcapNg { big_endian: bool },
}

#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: u32,
    /// Timestamp units per second.
    units_per_s: u64,
}

/// Reads frames from a pcap or pcapng stream.
pub struct CaptureReader<R> {
    r: R,
    format: Format,
    ifaces: Vec<Iface>,
    buf: Vec<u8>,
    offset: u64,
}

impl<R: Read> CaptureReader<R> {
    /// Read the file header and pick the format by magic number.
    pub fn new(mut r: R) -> Result<Self, FileError> {
        let mut magic = [0u8; 4];
        let got = read_full(&mut r, &mut magic)?;
        if got < 4 {
            return Err(if got == 0 { FileError::NotCapture } else { FileError::Truncated { offset: got as u64 } });
        }
        let mut me = CaptureReader {
            r,
            format: Format::PcapNg { big_endian: false },
            ifaces: Vec::new(),
            buf: Vec::new(),
            offset: 4,
        };
        let m = u32::from_le_bytes(magic);
        match m {
            0xa1b2_c3d4 | 0xa1b2_3c4d | 0xd4c3_b2a1 | 0x4d3c_b2a1 => {
                let big_endian = matches!(m, 0xd4c3_b2a1 | 0x4d3c_b2a1);
                let nanos = matches!(m, 0xa1b2_3c4d | 0x4d3c_b2a1);
                let mut hdr = [0u8; 20];
                me.exact(&mut hdr)?;
                let linktype = u32_at(&hdr, 16, big_endian) & 0x0fff_ffff;
                me.format = Format::Pcap { big_endian, nanos, linktype };
            }
            0x0a0d_0d0a => {
                me.format = Format::PcapNg { big_endian: false };
                me.section_header_rest()?;
            }
            _ => return Err(FileError::NotCapture),
        }
        Ok(me)
    }

    /// The link type of a classic pcap file (pcapng: of its first interface, once read).
    pub fn linktype(&self) -> Option<u32> {
        match self.format {
            Format::Pcap { linktype, .. } => Some(linktype),
            Format::PcapNg { .. } => self.ifaces.first().map(|i| i.linktype),
        }
    }

    /// The next frame, or None at a clean end of file.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FileError> {
        match self.format {
            Format::Pcap { big_endian, nanos, linktype } => self.next_pcap(big_endian, nanos, linktype),
            Format::PcapNg { .. } => self.next_pcapng(),
        }
    }

    fn next_pcap(&mut self, be: bool, nanos: bool, linktype: u32) -> Result<Option<Frame<'_>>, FileError> {
        let mut hdr = [0u8; 16];
        let got = read_full(&mut self.r, &mut hdr)?;
        if got == 0 {
            return Ok(None);
        }
        if got < 16 {
            return Err(FileError::Truncated { offset: self.offset + got as u64 });
        }
        self.offset += 16;
        let (sec, frac) = (u64::from(u32_at(&hdr, 0, be)), u64::from(u32_at(&hdr, 4, be)));
        let incl = u32_at(&hdr, 8, be) as usize;
        let orig_len = u32_at(&hdr, 12, be);
        if incl > MAX_RECORD {
            return Err(FileError::Corrupt { offset: self.offset - 8, what: "record length too large" });
        }
        self.fill(incl)?;
        let ts_ns =
            sec.saturating_mul(1_000_000_000).saturating_add(if nanos { frac } else { frac.saturating_mul(1000) });
        Ok(Some(Frame { ts_ns, linktype, orig_len: orig_len.max(incl as u32), data: &self.buf[..incl] }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Frame<'_>>, FileError> {
        loop {
            let start = self.offset;
            let mut head = [0u8; 8];
            let got = read_full(&mut self.r, &mut head)?;
            if got == 0 {
                return Ok(None);
            }
            if got < 8 {
                return Err(FileError::Truncated { offset: start + got as u64 });
            }
            self.offset += 8;
            let be = matches!(self.format, Format::PcapNg { big_endian: true });
            let btype = u32_at(&head, 0, be);
            if btype == 0x0a0d_0d0a {
                self.section_header_rest()?;
                continue;
            }
            let total = u32_at(&head, 4, be) as usize;
            if total < 12 || !total.is_multiple_of(4) || total > MAX_RECORD {
                return Err(FileError::Corrupt { offset: start + 4, what: "block length" });
            }
            self.fill(total - 8)?;
            let body_len = total - 12;
            match btype {
                1 => self.interface_block(start, body_len, be)?,
                6 | 2 => {
                    // Enhanced packet block (6) and the obsolete packet block (2) share this layout
                    // apart from the interface id width.
                    let b = &self.buf[..body_len];
                    if body_len < 20 {
                        return Err(FileError::Corrupt { offset: start, what: "packet block too short" });
                    }
                    let iface = if btype == 6 { u32_at(b, 0, be) as usize } else { usize::from(u16_at(b, 0, be)) };
                    let ts = (u64::from(u32_at(b, 4, be)) << 32) | u64::from(u32_at(b, 8, be));
                    let incl = u32_at(b, 12, be) as usize;
                    let orig_len = u32_at(b, 16, be);
                    let Some(i) = self.ifaces.get(iface).copied() else {
                        return Err(FileError::Corrupt { offset: start, what: "packet for an undeclared interface" });
                    };
                    if 20 + incl > body_len {
                        return Err(FileError::Corrupt { offset: start, what: "packet longer than its block" });
                    }
                    let ts_ns = scale_ts(ts, i.units_per_s);
                    return Ok(Some(Frame {
                        ts_ns,
                        linktype: i.linktype,
                        orig_len: orig_len.max(incl as u32),
                        data: &self.buf[20..20 + incl],
                    }));
                }
                3 => {
                    let b = &self.buf[..body_len];
                    if body_len < 4 {
                        return Err(FileError::Corrupt { offset: start, what: "simple packet block too short" });
                    }
                    let Some(i) = self.ifaces.first().copied() else {
                        return Err(FileError::Corrupt { offset: start, what: "packet before any interface" });
                    };
                    let orig_len = u32_at(b, 0, be);
                    let incl = (orig_len as usize).min(body_len - 4);
                    return Ok(Some(Frame { ts_ns: 0, linktype: i.linktype, orig_len, data: &self.buf[4..4 + incl] }));
                }
                _ => {} // name resolution, statistics, custom blocks: skipped
            }
        }
    }

    fn interface_block(&mut self, start: u64, body_len: usize, be: bool) -> Result<(), FileError> {
        let b = &self.buf[..body_len];
        if body_len < 8 {
            return Err(FileError::Corrupt { offset: start, what: "interface block too short" });
        }
        let linktype = u32::from(u16_at(b, 0, be));
        let mut units_per_s = 1_000_000;
        let mut at = 8;
        while at + 4 <= body_len {
            let code = u16_at(b, at, be);
            let len = usize::from(u16_at(b, at + 2, be));
            if code == 0 {
                break;
            }
            if code == 9 && len >= 1 && at + 5 <= body_len {
                let v = b[at + 4];
                let exp = u32::from(v & 0x7f).min(19);
                units_per_s = if v & 0x80 != 0 { 2u64.saturating_pow(exp.min(63)) } else { 10u64.pow(exp) };
            }
            at += 4 + len.div_ceil(4) * 4;
        }
        if self.ifaces.len() >= 4096 {
            return Err(FileError::Corrupt { offset: start, what: "too many interfaces" });
        }
        self.ifaces.push(Iface { linktype, units_per_s: units_per_s.max(1) });
        Ok(())
    }

    /// After the 4-byte SHB type: length, byte-order magic, the rest of the block.
    fn section_header_rest(&mut self) -> Result<(), FileError> {
        let start = self.offset - 4;
        let mut head = [0u8; 8];
        self.exact(&mut head)?;
        let big_endian = match u32::from_le_bytes([head[4], head[5], head[6], head[7]]) {
            0x1a2b_3c4d => false,
            0x4d3c_2b1a => true,
            _ => return Err(FileError::Corrupt { offset: start + 8, what: "section byte-order magic" }),
        };
        let total = u32_at(&head, 0, big_endian) as usize;
        if total < 28 || !total.is_multiple_of(4) || total > MAX_RECORD {
            return Err(FileError::Corrupt { offset: start + 4, what: "section header length" });
        }
        self.fill(total - 12)?;
        self.format = Format::PcapNg { big_endian };
        self.ifaces.clear();
        Ok(())
    }

    fn exact(&mut self, out: &mut [u8]) -> Result<(), FileError> {
        let got = read_full(&mut self.r, out)?;
        self.offset += got as u64;
        if got < out.len() {
            return Err(FileError::Truncated { offset: self.offset });
        }
        Ok(())
    }

    /// Read `n` bytes into `self.buf[..n]`. The buffer grows with the data actually read, so a
    /// header claiming a huge record in a short file costs no huge allocation.
    fn fill(&mut self, n: usize) -> Result<(), FileError> {
        if n <= self.buf.len() {
            let got = read_full(&mut self.r, &mut self.buf[..n])?;
            self.offset += got as u64;
            if got < n {
                return Err(FileError::Truncated { offset: self.offset });
            }
            return Ok(());
        }
        self.buf.clear();
        let got = loop {
            match (&mut self.r).take(n as u64).read_to_end(&mut self.buf) {
                Ok(got) => break got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FileError::Io(e)),
            }
        };
        self.offset += got as u64;
        if got < n {
            return Err(FileError::Truncated { offset: self.offset });
        }
        Ok(())
    }
}

fn scale_ts(ts: u64, units_per_s: u64) -> u64 {
    if units_per_s == 1_000_000_000 {
        return ts;
    }
    let secs = ts / units_per_s;
    let rem = ts % units_per_s;
    secs.saturating_mul(1_000_000_000)
        .saturating_add((u128::from(rem) * 1_000_000_000 / u128::from(units_per_s)) as u64)
}

fn read_full<R: Read>(r: &mut R, out: &mut [u8]) -> Result<usize, FileError> {
    let mut got = 0;
    while got < out.len() {
        match r.read(&mut out[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FileError::Io(e)),
        }
    }
    Ok(got)
}

fn u32_at(b: &[u8], at: usize, be: bool) -> u32 {
    let s = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if be {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    }
}

fn u16_at(b: &[u8], at: usize, be: bool) -> u16 {
    let s = [b[at], b[at + 1]];
    if be {
        u16::from_be_bytes(s)
    } else {
        u16::from_le_bytes(s)
    }
}

/// Writes classic little-endian µs pcap.
pub struct PcapWriter<W: Write> {
    w: W,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Write the global header; `snaplen` 0 means 262144.
    pub fn new(mut w: W, linktype: u32, snaplen: u32) -> io::Result<Self> {
        let snaplen = if snaplen == 0 { 262_144 } else { snaplen };
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&snaplen.to_le_bytes());
        h.extend_from_slice(&linktype.to_le_bytes());
        w.write_all(&h)?;
        Ok(PcapWriter { w, snaplen })
    }

    /// Append one record; data beyond the snap length is cut.
    pub fn write(&mut self, ts_ns: u64, orig_len: u32, data: &[u8]) -> io::Result<()> {
        let incl = data.len().min(self.snaplen as usize);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts_ns % 1_000_000_000 / 1000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(incl as u32).to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.max(incl as u32).to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(&data[..incl])
    }

    pub fn into_inner(self) -> W {
        self.w
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.w
    }
}

#[cfg(test)]
mod tests;
