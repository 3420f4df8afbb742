//! The setup questions (§8.1), in order: API key, node UUID (only with a key), API base (only
//! with a key), interface (numbered list with RX bytes, `auto` default), and packet capture on/off
//! and mode (only in capture builds outside limited mode). Also the same answers taken from flags
//! and environment for `--non-interactive`. Pure apart from the [`Prompter`].

use serde_json::{Map, Value};

use super::Options;
use super::Prompter;
use crate::config::{mask_key, DEFAULT_API_BASE};
use crate::error::{Error, Result};
use crate::input::counters::netdev::NetDev;

/// Values already in the config, offered as defaults on a re-run.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    pub api_key: String,
    pub node_uuid: String,
    pub api_base: String,
    pub interface: String,
    pub pcap_enabled: bool,
    pub pcap_mode: String,
}

impl Current {
    pub fn from_raw(raw: &Map<String, Value>) -> Self {
        let s = |k: &str, d: &str| raw.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
        Current {
            api_key: s("api_key", ""),
            node_uuid: s("node_uuid", ""),
            api_base: s("api_base", DEFAULT_API_BASE),
            interface: s("interface", "auto"),
            pcap_enabled: raw.get("pcap_enabled").and_then(Value::as_bool).unwrap_or(true),
            pcap_mode: s("pcap_mode", "scapy"),
        }
    }
}

/// What setup writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Answers {
    pub api_key: String,
    pub node_uuid: String,
    pub api_base: String,
    pub interface: String,
    /// None when not asked (limited mode or a build without capture): the file keeps its value.
    pub pcap: Option<(bool, String)>,
}

impl Answers {
    /// Set the asked keys; every other key in `raw` stays as it was.
    pub fn merge_into(&self, raw: &mut Map<String, Value>, limited: bool) {
        raw.insert("api_key".into(), self.api_key.clone().into());
        raw.insert("node_uuid".into(), self.node_uuid.clone().into());
        raw.insert("api_base".into(), self.api_base.clone().into());
        raw.insert("interface".into(), self.interface.clone().into());
        raw.insert("limited".into(), limited.into());
        if let Some((enabled, mode)) = &self.pcap {
            raw.insert("pcap_enabled".into(), (*enabled).into());
            raw.insert("pcap_mode".into(), mode.clone().into());
        }
    }
}

/// An interface name the config accepts (same rule as config validation).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', ' ']) && name.len() <= 15
}

fn valid_base(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// Ask everything interactively.
pub fn ask(cur: &Current, table: &NetDev, limited: bool, p: &mut Prompter) -> Result<Answers> {
    let api_key = ask_key(cur, p)?;
    let (node_uuid, api_base) = if api_key.is_empty() {
        p.say("No API key: local mode (events go to the local event log only).");
        (String::new(), cur.api_base.clone())
    } else {
        (ask_uuid(cur, p)?, ask_base(cur, p)?)
    };
    let interface = ask_interface(cur, table, p)?;
    let pcap = if crate::install::service::build_has_capture() && !limited { Some(ask_pcap(cur, p)?) } else { None };
    Ok(Answers { api_key, node_uuid, api_base, interface, pcap })
}

fn ask_key(cur: &Current, p: &mut Prompter) -> Result<String> {
    if cur.api_key.is_empty() {
        return p.secret("Flowtriq API key (empty = local mode, no API)");
    }
    let a = p.secret(&format!("Flowtriq API key [Enter keeps {}, '-' clears it]", mask_key(&cur.api_key)))?;
    Ok(match a.as_str() {
        "" => cur.api_key.clone(),
        "-" => String::new(),
        _ => a,
    })
}

fn ask_uuid(cur: &Current, p: &mut Prompter) -> Result<String> {
    loop {
        let q = if cur.node_uuid.is_empty() {
            "Node UUID (from the Flowtriq dashboard)".to_string()
        } else {
            format!("Node UUID [{}]", cur.node_uuid)
        };
        let a = p.ask(&q)?;
        let a = if a.is_empty() { cur.node_uuid.clone() } else { a };
        if a.is_empty() || a.contains(char::is_whitespace) {
            p.say("A node UUID is required with an API key.");
            continue;
        }
        return Ok(a);
    }
}

fn ask_base(cur: &Current, p: &mut Prompter) -> Result<String> {
    loop {
        let a = p.ask(&format!("API base [{}]", cur.api_base))?;
        let a = if a.is_empty() { cur.api_base.clone() } else { a };
        if valid_base(&a) {
            return Ok(a.trim_end_matches('/').to_string());
        }
        p.say("The API base must start with http:// or https://.");
    }
}

fn ask_interface(cur: &Current, table: &NetDev, p: &mut Prompter) -> Result<String> {
    p.say("Interfaces on this host:");
    p.say("  0) auto (the default route's interface)");
    for (i, iface) in table.ifaces.iter().enumerate() {
        p.say(&format!("  {}) {:<16} rx {}", i + 1, iface.name, human_bytes(iface.rx_bytes)));
    }
    let mut unknown: Option<String> = None;
    loop {
        let a = p.ask(&format!("Interface to monitor [{}]", cur.interface))?;
        let name = match a.parse::<usize>() {
            Ok(0) => "auto".to_string(),
            Ok(n) if n <= table.ifaces.len() => table.ifaces[n - 1].name.clone(),
            Ok(n) => {
                p.say(&format!("There is no interface number {n}."));
                continue;
            }
            Err(_) if a.is_empty() => cur.interface.clone(),
            Err(_) => a,
        };
        if name == "auto" || table.get(&name).is_some() {
            return Ok(name);
        }
        if !valid_name(&name) {
            p.say(&format!("`{name}` is not an interface name (at most 15 characters, no '/' or spaces)."));
            continue;
        }
        if unknown.as_deref() == Some(name.as_str()) {
            return Ok(name);
        }
        p.say(&format!(
            "warning: interface `{name}` is not on this host now; enter it again to keep it anyway, or choose another."
        ));
        unknown = Some(name);
    }
}

fn ask_pcap(cur: &Current, p: &mut Prompter) -> Result<(bool, String)> {
    let enabled =
        p.yes_no("Capture packets during incidents (PCAP evidence, attack classification)?", cur.pcap_enabled)?;
    if !enabled {
        return Ok((false, cur.pcap_mode.clone()));
    }
    loop {
        let a = p.ask(&format!("Capture mode: scapy (in-process libpcap) or tcpdump [{}]", cur.pcap_mode))?;
        let a = if a.is_empty() { cur.pcap_mode.clone() } else { a.to_ascii_lowercase() };
        if a == "scapy" || a == "tcpdump" {
            return Ok((true, a));
        }
        p.say("Please answer scapy or tcpdump.");
    }
}

/// `--non-interactive`: flags and environment over the current values; nothing is asked.
pub fn from_options(opts: &Options, cur: &Current, table: &NetDev, p: &mut Prompter) -> Result<Answers> {
    let api_key = opts.api_key_env.clone().map(|k| k.trim().to_string()).unwrap_or_else(|| cur.api_key.clone());
    let node_uuid = opts.node_uuid_env.clone().map(|u| u.trim().to_string()).unwrap_or_else(|| cur.node_uuid.clone());
    if !api_key.is_empty() && node_uuid.is_empty() {
        return Err(Error::Usage("FTAGENT_NODE_UUID is required when an API key is set (FTAGENT_API_KEY)".into()));
    }
    let api_base = opts.api_base.clone().unwrap_or_else(|| cur.api_base.clone());
    if !valid_base(&api_base) {
        return Err(Error::Usage(format!("--api-base `{api_base}` must start with http:// or https://")));
    }
    let interface = opts.interface.clone().unwrap_or_else(|| cur.interface.clone());
    if interface != "auto" && !valid_name(&interface) {
        return Err(Error::Usage(format!("--interface `{interface}` is not an interface name")));
    }
    if interface != "auto" && table.get(&interface).is_none() {
        p.say(&format!("warning: interface `{interface}` is not on this host now; the agent will wait for it"));
    }
    Ok(Answers { api_key, node_uuid, api_base: api_base.trim_end_matches('/').to_string(), interface, pcap: None })
}

/// 1536 -> "1.5 KiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
