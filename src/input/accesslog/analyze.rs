//! `ftagent --analyze FILE` on an access log: the format is told from the content, every line
//! goes through the same parser and aggregation as live detection, and the result is an
//! offline summary (human text, or one JSON object with `--json`). [`is_capture`] tells a
//! capture file from a text log by its magic number. Reading the file is the only I/O.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::{json, Value};

use super::aggregate::Window;
use super::parse::{parse_line, Format};
use crate::error::{Error, Result};

/// pcap (µs and ns, both byte orders) and pcapng magic numbers.
pub fn is_capture(head: &[u8]) -> bool {
    const MAGIC: [[u8; 4]; 5] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x0a, 0x0d, 0x0d, 0x0a],
    ];
    head.len() >= 4 && MAGIC.iter().any(|m| head[..4] == *m)
}

/// The format of a log from its first non-empty line.
pub fn detect_format(first_line: &[u8]) -> Format {
    let t = first_line.trim_ascii_start();
    if t.first() == Some(&b'{') {
        let has_request_object = t.windows(11).any(|w| w == b"\"request\":{");
        if has_request_object {
            Format::Caddy
        } else {
            Format::Json
        }
    } else {
        Format::Combined
    }
}

/// The second a line was logged at, as a key that is equal for lines of the same second.
fn second_key(format: Format, line: &[u8]) -> Option<Vec<u8>> {
    match format {
        Format::Combined | Format::Common => {
            let open = line.iter().position(|&b| b == b'[')?;
            let close = line[open..].iter().position(|&b| b == b']')?;
            Some(line[open + 1..open + close].to_vec())
        }
        Format::Json => {
            let v: Value = serde_json::from_slice(line).ok()?;
            ["time_iso8601", "time", "time_local"]
                .iter()
                .find_map(|k| v.get(*k).and_then(Value::as_str))
                .map(|s| s.as_bytes().to_vec())
        }
        Format::Caddy => {
            let v: Value = serde_json::from_slice(line).ok()?;
            v.get("ts").and_then(Value::as_f64).map(|t| (t.floor() as i64).to_string().into_bytes())
        }
    }
}

/// The offline summary of one log.
pub struct LogSummary {
    pub format: Format,
    pub lines: u64,
    pub window: Window,
    pub seconds: u64,
    pub peak_rps: u64,
}

/// Read every line of `r` (format told from the first line).
pub fn analyze_reader<R: Read>(r: R) -> std::io::Result<LogSummary> {
    let mut r = BufReader::with_capacity(1 << 20, r);
    let mut line = Vec::new();
    let mut s = LogSummary { format: Format::Combined, lines: 0, window: Window::default(), seconds: 0, peak_rps: 0 };
    let (mut run_key, mut run) = (None::<Vec<u8>>, 0u64);
    let mut known = false;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let l = line.strip_suffix(b"\n").unwrap_or(&line);
        if !known && !l.trim_ascii().is_empty() {
            s.format = detect_format(l);
            known = true;
        }
        s.lines += 1;
        match parse_line(s.format, l) {
            Ok(req) => s.window.add(&req),
            Err(_) => {
                s.window.add_malformed();
                continue;
            }
        }
        let key = second_key(s.format, l);
        if key.is_some() && key != run_key {
            s.seconds += 1;
            run_key = key;
            run = 0;
        }
        run += 1;
        s.peak_rps = s.peak_rps.max(run);
    }
    Ok(s)
}

impl LogSummary {
    /// The `--analyze --json` object for an access log.
    pub fn to_json(&self) -> Value {
        let sum = self.window.summary();
        let mut v = json!({
            "kind": "access_log",
            "format": self.format.as_str(),
            "lines": self.lines,
            "requests": sum.requests,
            "malformed_lines": sum.malformed,
            "seconds": self.seconds,
            "avg_requests_per_second": if self.seconds > 0 { sum.requests as f64 / self.seconds as f64 } else { 0.0 },
            "peak_requests_per_second": self.peak_rps,
            "attack_subtype": sum.subtype(),
        });
        if let Value::Object(m) = &mut v {
            m.extend(sum.evidence());
        }
        v
    }

    pub fn render_text(&self, path: &Path) -> String {
        let v = self.to_json();
        let list = |key: &str, field: &str| -> String {
            v[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .take(5)
                        .map(|x| {
                            format!(
                                "{} ({}, {:.0} %)",
                                x[field].as_str().unwrap_or("?"),
                                x["count"],
                                x["share"].as_f64().unwrap_or(0.0) * 100.0
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        let mut out = format!("{} (access log, {} format)\n", path.display(), self.format.as_str());
        out.push_str(&format!(
            "  {} lines: {} requests, {} malformed; {} seconds, peak {} requests/s\n",
            v["lines"], v["requests"], v["malformed_lines"], v["seconds"], v["peak_requests_per_second"]
        ));
        out.push_str(&format!("  distinct clients: ~{}\n", v["distinct_clients"]));
        out.push_str(&format!("  status mix: {}\n", v["status_mix"]));
        out.push_str(&format!(
            "  if this is a flood: {}\n",
            v["attack_subtype"].as_str().unwrap_or("no single pattern")
        ));
        out.push_str(&format!("  top clients: {}\n", list("top_client_ips", "ip")));
        out.push_str(&format!("  top paths: {}\n", list("top_paths", "path")));
        out.push_str(&format!("  top user agents: {}\n", list("top_user_agents", "user_agent")));
        out
    }
}

/// `--analyze` on an access log: print the summary; exit code 0.
pub fn print(path: &Path, json: bool) -> Result<u8> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let s = analyze_reader(file).map_err(|e| Error::io(path, e))?;
    if s.window.requests() == 0 {
        return Err(Error::Invalid {
            what: "access log",
            why: format!(
                "{}: not a capture file, nor an access log with a request in a known format ({} lines read)",
                path.display(),
                s.lines
            ),
        });
    }
    if json {
        println!("{}", s.to_json());
    } else {
        print!("{}", s.render_text(path));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_captures_from_logs() {
        assert!(is_capture(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]));
        assert!(is_capture(&[0x0a, 0x0d, 0x0d, 0x0a]));
        assert!(!is_capture(b"10.0.0.1 - - [x]"));
        assert!(!is_capture(b"{\""));
        assert_eq!(detect_format(br#"{"request":{"uri":"/"}}"#), Format::Caddy);
        assert_eq!(detect_format(br#"  {"remote_addr":"1.1.1.1"}"#), Format::Json);
        assert_eq!(detect_format(b"1.1.1.1 - - [x]"), Format::Combined);
    }

    #[test]
    fn summarises_a_combined_log_with_peak_and_subtype() {
        let mut log = String::new();
        for sec in 0..3 {
            let n = if sec == 1 { 50 } else { 5 };
            for i in 0..n {
                log.push_str(&format!(
                    "10.0.0.{} - - [01/Dec/2026:07:50:0{sec} +0000] \"GET /p?i={i} HTTP/1.1\" 200 5 \"-\" \"wrk\"\n",
                    if sec == 1 { 7 } else { i }
                ));
            }
        }
        log.push_str("garbage\n\n");
        let s = analyze_reader(log.as_bytes()).unwrap();
        let v = s.to_json();
        assert_eq!(v["format"], "combined");
        assert_eq!(
            (v["lines"].as_u64(), v["requests"].as_u64(), v["malformed_lines"].as_u64()),
            (Some(62), Some(60), Some(2))
        );
        assert_eq!((v["seconds"].as_u64(), v["peak_requests_per_second"].as_u64()), (Some(3), Some(50)));
        assert_eq!(v["attack_subtype"], "single_source");
        assert_eq!(v["top_client_ips"][0]["ip"], "10.0.0.7");
        assert_eq!(v["top_paths"][0]["path"], "/p");
        assert!(s.render_text(Path::new("x.log")).contains("peak 50 requests/s"));
    }
}
