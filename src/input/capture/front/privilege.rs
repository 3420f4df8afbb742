//! May this process capture packets (§1)? Root (the euid in [`Env`]), or CAP_NET_RAW in the
//! effective set (checked with `caps` only when not root). When not, the reason and the fix, as
//! one sentence for the log. The one privilege check of both capture modes; only the capture
//! front door calls it. Reads only the process's own credentials.

use caps::{CapSet, Capability};

use crate::config::paths::Env;

/// The fix we print whenever capture is off for lack of privilege.
pub const FIX: &str = "to enable it, run `sudo setcap cap_net_raw+ep $(command -v ftagent)` \
or run the system service (`sudo ftagent --install-service`)";

/// Ok when capture may run; Err(why, with the fix) otherwise.
pub fn check(env: &Env) -> crate::error::Result<()> {
    let net_raw = !env.is_root() && caps::has_cap(None, CapSet::Effective, Capability::CAP_NET_RAW).unwrap_or(false);
    decide(env.euid, net_raw)
}

/// The decision as a pure function of the credentials.
pub fn decide(euid: u32, net_raw_effective: bool) -> crate::error::Result<()> {
    if euid == 0 || net_raw_effective {
        return Ok(());
    }
    Err(crate::error::Error::CaptureOff {
        mode: "capture",
        why: format!("not root and no CAP_NET_RAW (uid {euid}), counters only; {FIX}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_or_net_raw_may_capture_others_get_the_fix() {
        assert!(decide(0, false).is_ok());
        assert!(decide(1000, true).is_ok());
        let why = decide(65534, false).unwrap_err().to_string();
        assert!(why.contains("CAP_NET_RAW") && why.contains("setcap cap_net_raw+ep"), "{why}");
        assert!(why.contains("uid 65534"));
    }
}
