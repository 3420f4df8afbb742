//! The capture front door: [`start`] and [`status`]. With a capture feature, `enabled.rs` decides
//! the mode and why not; in a build with neither, `disabled.rs` says capture is off and why.

#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
mod enabled;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
mod privilege;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
pub use enabled::{start, status, BUILT};

#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
mod disabled;
#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
pub use disabled::{start, status, BUILT};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::paths::{Env, Paths};
    use crate::config::Settings;
    use crate::input::capture::handle::LIMITED_BY_CONFIG;

    #[test]
    fn built_says_whether_a_capture_mode_is_compiled_in() {
        assert_eq!(BUILT, cfg!(any(feature = "capture-scapy", feature = "capture-tcpdump")));
    }

    #[test]
    fn limited_keeps_capture_off_in_every_build() {
        let d = tempfile::tempdir().unwrap();
        let env = Env { euid: 1000, home: Some(d.path().into()), root: "/".into(), ..Default::default() };
        let settings = Settings::defaults(&Paths::resolve(&env, false));
        let mut settings = settings;
        settings.limited = true;
        let st = status(&settings, &env);
        assert_eq!((st.mode.as_str(), st.reason.as_deref()), ("limited", Some(LIMITED_BY_CONFIG)));
        let running = start(&settings, &env);
        assert!(running.insight.is_none());
        assert_eq!(running.status, st);
    }

    #[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
    #[test]
    fn a_build_without_capture_says_so() {
        let d = tempfile::tempdir().unwrap();
        let env = Env { euid: 1000, home: Some(d.path().into()), root: "/".into(), ..Default::default() };
        let settings = Settings::defaults(&Paths::resolve(&env, false));
        let st = status(&settings, &env);
        assert_eq!(st.mode, "limited");
        let why = st.reason.expect("a reason");
        assert!(why.contains("this build has no packet capture"), "{why}");
        assert!(start(&settings, &env).insight.is_none());
    }
}
