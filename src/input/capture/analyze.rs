//! `ftagent --analyze FILE [--json]` (§7.6): read a capture file through the engine and render
//! the result. Reading is here; printing is the caller's (`cli::app`).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::config::IocPattern;
use crate::error::{Error, Result};
use crate::input::capture::engine::ioc::IocMatcher;
use crate::input::capture::engine::Engine;
use crate::input::capture::pcapfile::CaptureReader;

/// Run every frame of `path` through an engine with these IOC patterns.
pub fn analyze_file(path: &Path, ioc: &[IocPattern]) -> Result<Engine> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let matcher = IocMatcher::new(ioc)?.map(Arc::new);
    analyze_reader(BufReader::with_capacity(1 << 20, file), matcher)
        .map_err(|e| Error::Invalid { what: "capture file", why: format!("{}: {e}", path.display()) })
}

/// The same over any reader (tests, fuzzing).
pub fn analyze_reader<R: std::io::Read>(
    r: R,
    ioc: Option<Arc<IocMatcher>>,
) -> std::result::Result<Engine, crate::input::capture::pcapfile::FileError> {
    let mut reader = CaptureReader::new(r)?;
    let mut engine = Engine::new(ioc);
    while let Some(frame) = reader.next_frame()? {
        engine.push_frame(&frame);
    }
    Ok(engine)
}

/// The human summary.
pub fn render_text(path: &Path, e: &Engine) -> String {
    let s = e.summary_json();
    let mut out = String::new();
    let n = |v: &Value| v.as_f64().unwrap_or(0.0);
    out.push_str(&format!("{}\n", path.display()));
    out.push_str(&format!(
        "  {} packets, {} bytes in {:.3} s ({:.0} pps, {:.0} bit/s); {} malformed\n",
        s["packets"],
        s["bytes"],
        n(&s["duration_s"]),
        n(&s["pps"]),
        n(&s["bps"]),
        s["malformed_packets"]
    ));
    let sub = s["attack_subtype"].as_str().map(|x| format!(" / {x}")).unwrap_or_default();
    out.push_str(&format!(
        "  attack: {}{} (confidence {})\n",
        s["attack_family"].as_str().unwrap_or("?"),
        sub,
        s["confidence"]
    ));
    if let Some(tool) = s["attack_tool"].as_str() {
        out.push_str(&format!("  attack tool (IOC): {tool}\n"));
    }
    let p = &s["protocol_breakdown"];
    out.push_str(&format!(
        "  protocols: tcp {} udp {} icmp {} other {}; fragments {}\n",
        p["tcp"], p["udp"], p["icmp"], p["other"], p["fragments"]
    ));
    out.push_str(&format!("  distinct sources: ~{}\n", s["source_ip_count"]));
    let list = |key: &str, field: &str| -> String {
        s[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .take(5)
                    .map(|x| format!("{} ({})", plain(&x[field]), x["count"]))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    out.push_str(&format!("  top sources: {}\n", list("top_src_ips", "ip")));
    out.push_str(&format!("  top destination ports: {}\n", list("top_dst_ports", "port")));
    out.push_str(&format!("  top source ports: {}\n", list("top_src_ports", "port")));
    out
}

fn plain(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

/// The `--analyze` action: analyse and print (JSON or summary) on stdout; exit code 0.
pub fn print(path: &Path, json: bool, ioc: &[IocPattern]) -> Result<u8> {
    let engine = analyze_file(path, ioc)?;
    if json {
        println!("{}", engine.summary_json());
    } else {
        print!("{}", render_text(path, &engine));
    }
    Ok(0)
}
