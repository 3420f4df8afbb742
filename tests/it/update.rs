//! `--update` against a loopback release server (GitHub-style latest-release JSON, a binary
//! asset and a SHA256SUMS file), and the start-up check against a server that never answers.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::util::{self, Home};

const NEW_BINARY: &[u8] = b"#!/bin/sh\necho ftagent 99.0.0\n";

/// A throw-away ed25519 key pair made with the openssl CLI: signs files, and gives the public
/// key's hex for `FTAGENT_TEST_UPDATE_PUBKEY` (honoured by debug builds only).
struct Signer {
    dir: tempfile::TempDir,
}

impl Signer {
    fn new() -> Self {
        assert!(util::have("openssl"), "the openssl CLI is needed to sign test releases");
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(dir.path().join("k.pem"))
            .status()
            .unwrap();
        assert!(st.success());
        Signer { dir }
    }

    fn sign(&self, data: &[u8]) -> Vec<u8> {
        let (input, out) = (self.dir.path().join("in"), self.dir.path().join("in.sig"));
        std::fs::write(&input, data).unwrap();
        let st = Command::new("openssl")
            .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
            .arg(self.dir.path().join("k.pem"))
            .arg("-in")
            .arg(&input)
            .arg("-out")
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::read(out).unwrap()
    }

    fn public_hex(&self) -> String {
        let o = Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(self.dir.path().join("k.pem"))
            .output()
            .unwrap();
        o.stdout[o.stdout.len() - 32..].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The release key the test binaries trust, and a PKI for the HTTPS release host: one per test
/// process.
fn fixtures() -> &'static (Signer, Vec<u8>, Vec<u8>, PathBuf) {
    static F: std::sync::OnceLock<(Signer, Vec<u8>, Vec<u8>, PathBuf)> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let signer = Signer::new();
        let (cert, key, ca) = crate::selftest_sinks::make_pki(signer.dir.path(), "pki");
        (signer, cert, key, ca)
    })
}

/// What the release offers as the asset's signature.
enum Sig {
    /// Signed by the trusted key.
    Good,
    /// No `.sig` asset.
    None,
    /// Signed by another key.
    OtherKey,
    /// A good signature over other bytes than those served (the asset was changed afterwards).
    Over(&'static [u8]),
}

/// A loopback HTTPS release server; records the paths it was asked for.
struct ReleaseServer {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl ReleaseServer {
    fn start(tag: &str, asset: &'static [u8], listed_sha: String) -> Self {
        Self::start_signed(tag, asset, listed_sha, Sig::Good)
    }

    fn start_signed(tag: &str, asset: &'static [u8], listed_sha: String, sig: Sig) -> Self {
        let (signer, cert, key, _) = fixtures();
        let signature = match sig {
            Sig::Good => Some(signer.sign(asset)),
            Sig::None => None,
            Sig::OtherKey => Some(Signer::new().sign(asset)),
            Sig::Over(bytes) => Some(signer.sign(bytes)),
        };
        let cfg = tiny_http::SslConfig { certificate: cert.clone(), private_key: key.clone() };
        let server = tiny_http::Server::https("127.0.0.1:0", cfg).unwrap();
        let base = format!("https://localhost:{}", server.server_addr().to_ip().unwrap().port());
        let arch = std::env::consts::ARCH;
        let name = format!("ftagent-{}-{arch}-linux", tag.trim_start_matches('v'));
        let mut assets = vec![
            serde_json::json!({"name": format!("ftagent_{}-1_amd64.deb", tag.trim_start_matches('v')), "browser_download_url": format!("{base}/deb")}),
            serde_json::json!({"name": name, "browser_download_url": format!("{base}/asset")}),
            serde_json::json!({"name": "SHA256SUMS", "browser_download_url": format!("{base}/SHA256SUMS")}),
        ];
        if signature.is_some() {
            assets.push(
                serde_json::json!({"name": format!("{name}.sig"), "browser_download_url": format!("{base}/asset.sig")}),
            );
        }
        let release = serde_json::json!({
            "tag_name": tag,
            "html_url": format!("{base}/releases/{tag}"),
            "assets": assets,
        })
        .to_string();
        let sums = format!("{}  ftagent_x.deb\n{listed_sha}  {name}\n", "0".repeat(64));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for req in server.incoming_requests() {
                seen.lock().unwrap().push(req.url().to_string());
                let body: Vec<u8> = match (req.url(), &signature) {
                    ("/latest", _) => release.clone().into_bytes(),
                    ("/asset", _) => asset.to_vec(),
                    ("/asset.sig", Some(s)) => s.clone(),
                    ("/SHA256SUMS", _) => sums.clone().into_bytes(),
                    _ => {
                        let _ = req.respond(tiny_http::Response::empty(404));
                        continue;
                    }
                };
                let _ = req.respond(tiny_http::Response::from_data(body));
            }
        });
        ReleaseServer { url: format!("{base}/latest"), requests }
    }

    fn asked(&self, path: &str) -> bool {
        self.requests.lock().unwrap().iter().any(|p| p == path)
    }
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A standalone copy of the binary at `<dir>/<rel>` and a config pointing at `url`.
fn standalone(home: &Home, rel: &str, url: &str) -> (PathBuf, PathBuf, Vec<u8>) {
    let exe = home.path().join(rel);
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::copy(util::bin(), &exe).unwrap();
    let cfg = home.write_config(serde_json::json!({ "update_url": url }));
    let original = std::fs::read(&exe).unwrap();
    (exe, cfg, original)
}

fn update(exe: &Path, cfg: &Path, home: &Home, answer: &str, root: Option<&Path>) -> Output {
    let mut cmd = Command::new(exe);
    let (signer, _, _, ca) = fixtures();
    cmd.args(["--update", "--config"])
        .arg(cfg)
        .env("HOME", home.path())
        .env("SSL_CERT_FILE", ca)
        .env("FTAGENT_TEST_UPDATE_PUBKEY", signer.public_hex());
    if let Some(r) = root {
        cmd.env("FTAGENT_ROOT", r);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn good_release_replaces_the_binary_and_keeps_the_old_one() {
    let server = ReleaseServer::start("v99.0.0", NEW_BINARY, sha(NEW_BINARY));
    let home = Home::new();
    let (exe, cfg, original) = standalone(&home, "bin/ftagent", &server.url);
    let out = update(&exe, &cfg, &home, "y\n", None);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(&format!("ftagent {} → 99.0.0", env!("CARGO_PKG_VERSION"))), "{t}");
    assert_eq!(std::fs::read(&exe).unwrap(), NEW_BINARY);
    assert_eq!(std::fs::read(home.path().join("bin/ftagent.old")).unwrap(), original, "old binary kept");
    let v = Command::new(&exe).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "ftagent 99.0.0");
    let leftovers: Vec<_> =
        std::fs::read_dir(home.path().join("bin")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no temp files left: {leftovers:?}");
}

#[test]
fn checksum_mismatch_is_refused_and_the_binary_untouched() {
    let server = ReleaseServer::start("v99.0.0", NEW_BINARY, sha(b"what the release really built"));
    let home = Home::new();
    let (exe, cfg, original) = standalone(&home, "bin/ftagent", &server.url);
    let out = update(&exe, &cfg, &home, "y\n", None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("checksum mismatch"), "{}", text(&out));
    assert_eq!(std::fs::read(&exe).unwrap(), original);
    assert!(!home.path().join("bin/ftagent.old").exists());
}

/// Unsigned, signed by another key, changed after signing: each refused, naming why; the binary
/// is untouched and no `.old` appears.
#[test]
fn unsigned_wrongly_signed_and_tampered_releases_are_refused() {
    let cases: [(Sig, &str); 3] = [
        (Sig::None, "is not signed (no ftagent-99.0.0-"),
        (Sig::OtherKey, "not signed by the release key this binary trusts"),
        (Sig::Over(b"#!/bin/sh\necho the build that was signed\n"), "changed after it was signed"),
    ];
    for (sig, why) in cases {
        // The tampered case lists the signed build's checksum, as the real release would.
        let listed = match sig {
            Sig::Over(b) => sha(b),
            _ => sha(NEW_BINARY),
        };
        let server = ReleaseServer::start_signed("v99.0.0", NEW_BINARY, listed, sig);
        let home = Home::new();
        let (exe, cfg, original) = standalone(&home, "bin/ftagent", &server.url);
        let out = update(&exe, &cfg, &home, "y\n", None);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(t.contains(why), "expected {why:?} in:\n{t}");
        assert_eq!(std::fs::read(&exe).unwrap(), original, "the binary is unchanged");
        assert!(!home.path().join("bin/ftagent.old").exists());
    }
}

#[test]
fn an_asset_offered_over_http_or_from_another_host_is_refused() {
    // The release JSON points the asset at plain http on the same port: refused before download.
    let server = ReleaseServer::start("v99.0.0", NEW_BINARY, sha(NEW_BINARY));
    let home = Home::new();
    let (exe, _, original) = standalone(&home, "bin/ftagent", &server.url);
    let plain = server.url.replace("https://localhost", "http://127.0.0.1");
    let fake = Home::new();
    let release = serde_json::json!({
        "tag_name": "v99.0.0",
        "assets": [
            {"name": format!("ftagent-99.0.0-{}-linux", std::env::consts::ARCH), "browser_download_url": plain.replace("/latest", "/asset")},
            {"name": format!("ftagent-99.0.0-{}-linux.sig", std::env::consts::ARCH), "browser_download_url": server.url.replace("/latest", "/asset.sig")},
            {"name": "SHA256SUMS", "browser_download_url": server.url.replace("/latest", "/SHA256SUMS")},
        ]
    });
    let listing = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let listing_url = format!("http://{}/latest", listing.server_addr().to_ip().unwrap());
    let body = release.to_string();
    std::thread::spawn(move || {
        for req in listing.incoming_requests() {
            let _ = req.respond(tiny_http::Response::from_string(body.clone()));
        }
    });
    let cfg = fake.write_config(serde_json::json!({ "update_url": listing_url }));
    let out = update(&exe, &cfg, &home, "y\n", None);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("not over https from the release host"), "{t}");
    assert_eq!(std::fs::read(&exe).unwrap(), original);
    assert!(!server.asked("/asset"), "nothing was downloaded");
}

#[test]
fn declining_the_prompt_changes_nothing() {
    let server = ReleaseServer::start("v99.0.0", NEW_BINARY, sha(NEW_BINARY));
    let home = Home::new();
    let (exe, cfg, original) = standalone(&home, "bin/ftagent", &server.url);
    let out = update(&exe, &cfg, &home, "n\n", None);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&exe).unwrap(), original);
    assert!(!server.asked("/asset"));
}

#[test]
fn packaged_binary_gets_the_package_manager_command() {
    let server = ReleaseServer::start("v99.0.0", NEW_BINARY, sha(NEW_BINARY));
    let home = Home::new();
    let (exe, cfg, original) = standalone(&home, "root/usr/bin/ftagent", &server.url);
    let info = home.path().join("root/var/lib/dpkg/info");
    std::fs::create_dir_all(&info).unwrap();
    std::fs::write(info.join("ftagent.list"), "/.\n/usr/bin\n/usr/bin/ftagent\n").unwrap();
    let out = update(&exe, &cfg, &home, "y\n", Some(&home.path().join("root")));
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("apt-get install --only-upgrade ftagent"), "{t}");
    assert_eq!(std::fs::read(&exe).unwrap(), original);
    assert!(!server.asked("/asset"), "a packaged binary is never downloaded over");
}

#[test]
fn same_version_is_up_to_date() {
    let tag = format!("v{}", env!("CARGO_PKG_VERSION"));
    let server = ReleaseServer::start(&tag, NEW_BINARY, sha(NEW_BINARY));
    let home = Home::new();
    let (exe, cfg, original) = standalone(&home, "bin/ftagent", &server.url);
    let out = update(&exe, &cfg, &home, "", None);
    assert!(out.status.success() && text(&out).contains("is up to date"), "{}", text(&out));
    assert_eq!(std::fs::read(&exe).unwrap(), original);
}

/// A server that accepts connections, reads the request and never answers.
struct Silent {
    url: String,
    connections: Arc<AtomicUsize>,
}

impl Silent {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/latest", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for mut s in listener.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                count.fetch_add(1, Ordering::SeqCst);
                held.push(s);
            }
        });
        Silent { url, connections }
    }
}

/// A fake /proc whose eth0 counters a thread keeps raising fast (a flood in counters only).
fn flooding_proc(dir: &Path) -> (PathBuf, Arc<std::sync::atomic::AtomicBool>) {
    let root = dir.join("proc");
    std::fs::create_dir_all(root.join("net")).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let dev = root.join("net/dev");
    let write = move |n: u64| {
        let text = format!(
            "Inter-| Receive | Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets\n\
             eth0: {} {n} 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
            n * 100
        );
        let tmp = dev.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &dev).unwrap();
    };
    write(0);
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !flag.load(Ordering::SeqCst) {
            n += 100_000;
            write(n);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (root, stop)
}

#[test]
fn startup_check_against_a_silent_server_delays_nothing() {
    let silent = Silent::start();
    let home = Home::new();
    let (proc_root, stop) = flooding_proc(home.path());
    let cfg = home.write_config(serde_json::json!({
        "auto_update": true, "update_url": silent.url, "procfs_root": proc_root, "interface": "eth0",
        "dynamic_threshold": false, "min_pps_threshold": 1000, "grace_period_s": 0, "confirm_ticks": 1,
        "sample_interval_ms": 100,
    }));
    let mut agent = home.command().arg("--config").arg(&cfg).stderr(Stdio::null()).spawn().unwrap();
    // A blocking check would hold start-up for its whole 10 s timeout; detection must not wait.
    let open = util::wait_for_event(&home.events_file(), "incident_open", Duration::from_secs(8));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while silent.connections.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let held = silent.connections.load(Ordering::SeqCst);
    let status = util::terminate(&mut agent, Duration::from_secs(5));
    stop.store(true, Ordering::SeqCst);
    assert!(open.is_some(), "detection ran while the update check waited");
    assert_eq!(held, 1, "the update check had asked and was still unanswered");
    assert!(status.is_some_and(|s| s.success()), "exits promptly on SIGTERM despite the pending check");
    assert!(!home.state().join("update-check").exists(), "no stamp without an answer");
}

#[test]
fn startup_check_is_skipped_by_flag_and_by_config() {
    let silent = Silent::start();
    for (auto_update, flag) in [(true, Some("--no-update-check")), (false, None)] {
        let home = Home::new();
        let cfg = home.write_config(serde_json::json!({
            "auto_update": auto_update, "update_url": silent.url, "interface": "lo",
        }));
        let mut cmd = home.command();
        cmd.args(flag).arg("--config").arg(&cfg).stderr(Stdio::null());
        let mut agent = cmd.spawn().unwrap();
        assert!(util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10)).is_some());
        std::thread::sleep(Duration::from_millis(500));
        util::terminate(&mut agent, Duration::from_secs(5));
    }
    // A positive control: without either, the same server is asked.
    let home = Home::new();
    let cfg =
        home.write_config(serde_json::json!({ "auto_update": true, "update_url": silent.url, "interface": "lo" }));
    let mut agent = home.command().arg("--config").arg(&cfg).stderr(Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while silent.connections.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    util::terminate(&mut agent, Duration::from_secs(5));
    assert_eq!(silent.connections.load(Ordering::SeqCst), 1, "only the run without opt-out asked");
}
