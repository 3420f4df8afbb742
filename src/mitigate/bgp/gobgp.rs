//! The GoBGP driver (§10.2): runs the `gobgp` client with an argv (never a shell), each run a
//! child in its own process group killed at its deadline; reads the speaker's RIB back as JSON
//! and finds our routes by our community. [`parse_rib`] is pure; [`Gobgp`] is the only code here
//! that starts a process. Every argv passes [`check_argv`] first: nothing shorter than one
//! address ever reaches the speaker.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::route::{check_argv, Found, Route, Speaker};
use crate::config::bgp::{BgpConfig, Community};
use crate::error::{Error, Result};

/// The families the agent announces in, and so the ones it searches at start.
pub const FAMILIES: &[&str] = &["ipv4-flowspec", "ipv6-flowspec", "ipv4", "ipv6"];

/// The `gobgp` client, pointed at one speaker.
#[derive(Debug, Clone)]
pub struct Gobgp {
    pub program: String,
    pub speaker: Speaker,
    pub timeout: Duration,
}

impl Gobgp {
    pub fn new(cfg: &BgpConfig) -> Self {
        Gobgp {
            program: cfg.client.clone(),
            speaker: Speaker::new(&cfg.api, cfg.community, cfg.rtbh_community),
            timeout: cfg.client_timeout,
        }
    }

    /// Run the client with `argv`; its stdout. A non-zero exit is an error with its stderr.
    pub fn run(&self, argv: &[String]) -> Result<String> {
        let out = crate::util::child::run(Command::new(&self.program).args(argv), None, self.timeout)
            .map_err(|e| Error::Program { program: self.program.clone(), why: format!("{}: {e}", self.program) })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err.lines().next().unwrap_or("").trim();
            let why = format!("{} {}: {first}", self.program, out.status);
            return Err(Error::Program { program: self.program.clone(), why });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Announce `route` (idempotent: the same NLRI again replaces it).
    pub fn announce(&self, route: &Route) -> Result<()> {
        self.checked(&route.add_argv(&self.speaker))
    }

    pub fn withdraw(&self, route: &Route) -> Result<()> {
        self.checked(&route.del_argv(&self.speaker))
    }

    pub fn withdraw_found(&self, found: &Found) -> Result<()> {
        self.checked(&found.del_argv(&self.speaker))
    }

    fn checked(&self, argv: &[String]) -> Result<()> {
        check_argv(argv)?;
        self.run(argv).map(|_| ())
    }

    /// Every route in the speaker's RIB carrying our community, in every family we use.
    pub fn ours(&self) -> Result<Vec<Found>> {
        let mut out = Vec::new();
        for family in FAMILIES {
            let mut argv = self.speaker.conn();
            argv.extend(["global", "rib", "-a", family, "-j"].map(String::from));
            let text = self.run(&argv)?;
            out.extend(parse_rib(&text, family, self.speaker.ours)?);
        }
        Ok(out)
    }
}

/// `gobgp global rib -a FAMILY -j`: an object from NLRI text to its paths, each with `attrs`;
/// the NLRIs with a path carrying `ours` (a COMMUNITIES attribute, type 8).
pub fn parse_rib(text: &str, family: &str, ours: Community) -> Result<Vec<Found>> {
    let text = text.trim();
    if text.is_empty() || text == "null" {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(text).map_err(|e| Error::Invalid {
        what: "gobgp RIB",
        why: format!("gobgp printed a RIB that is not JSON ({e})"),
    })?;
    let Some(map) = v.as_object() else {
        return Err(Error::Invalid { what: "gobgp RIB", why: "gobgp printed a RIB that is not a JSON object".into() });
    };
    let tagged = |path: &Value| {
        path["attrs"].as_array().is_some_and(|attrs| {
            attrs.iter().any(|a| {
                a["type"] == 8
                    && a["communities"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|n| n.as_u64() == Some(ours.as_u32().into())))
            })
        })
    };
    let mut out: Vec<Found> = map
        .iter()
        .filter(|(_, paths)| paths.as_array().is_some_and(|p| p.iter().any(tagged)))
        .map(|(nlri, _)| Found { family: family.to_string(), nlri: nlri.clone() })
        .collect();
    out.sort_by(|a, b| a.nlri.cmp(&b.nlri));
    Ok(out)
}
