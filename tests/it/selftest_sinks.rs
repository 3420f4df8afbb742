//! `ftagent --test` (§6.5) against loopback sinks: one line per configured sink, exit 0 only
//! when all accepted; the API down names the API sink; HTTPS with a CA trusted only through
//! `SSL_CERT_FILE` works and an untrusted CA fails with a clear error.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::apiserver::{self, Recorded, Server};
use crate::util::{self, Home};

fn api(base: &str) -> Value {
    json!({ "api_key": "ftk_test_0123456789abcdef", "node_uuid": "node-it-1", "api_base": format!("{base}/api/v1") })
}

fn self_test(home: &Home, extra: Value, env: &[(&str, &Path)]) -> (Output, String) {
    let cfg = home.write_config(extra);
    let mut c = home.command();
    c.args(["--test", "--config"]).arg(cfg).env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = util::run(&mut c);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

#[test]
fn every_configured_sink_is_listed_and_all_ok_exits_0() {
    let home = Home::new();
    let server = Server::http(0, apiserver::flowtriq(json!({})));
    let mut extra = api(&server.base);
    extra["webhook_url"] = json!(format!("{}/hook/secret-token", server.base));
    let (out, stdout) = self_test(&home, extra, &[]);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("event log ") && lines[0].ends_with(": OK"), "{stdout}");
    assert_eq!(lines[1], format!("Flowtriq API {}/api/v1: OK", server.base));
    assert_eq!(lines[2], format!("webhook {}: OK", server.base));
    assert!(!stdout.contains("secret-token"));

    let reqs = server.requests();
    let open = reqs.iter().find(|r| r.path == "/api/v1/agent/incidents").expect("open sent");
    assert_eq!(open.json()["test"], true);
    assert!(reqs.iter().any(|r| r.path == "/api/v1/agent/incidents/srv-0001/resolve"), "resolve to the server's uuid");
    let hooks: Vec<Value> = reqs.iter().filter(|r| r.path.starts_with("/hook")).map(Recorded::json).collect();
    assert_eq!(hooks.len(), 2);
    assert!(hooks[0]["text"].as_str().unwrap().starts_with("[TEST] "), "{}", hooks[0]);
    let logged: Vec<Value> = home.events().into_iter().filter(|e| e["test"] == true).collect();
    assert_eq!(logged.len(), 2, "open and resolve in the event log");
}

#[test]
fn api_down_exits_1_naming_the_api_sink() {
    let home = Home::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (out, stdout) = self_test(&home, api(&format!("http://127.0.0.1:{port}")), &[]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("Flowtriq API")).expect("API line");
    assert!(line.contains(": FAILED: cannot reach http://127.0.0.1:"), "{line}");
    assert!(stdout.lines().any(|l| l.starts_with("event log ") && l.ends_with(": OK")), "{stdout}");
}

#[test]
fn rejected_key_is_reported_as_such() {
    let home = Home::new();
    let server = Server::http(0, Box::new(|_r: &Recorded| apiserver::status(401, "{\"error\":\"invalid key\"}")));
    let (out, stdout) = self_test(&home, api(&server.base), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("FAILED: API key rejected for node node-it-1 (HTTP 401)"), "{stdout}");
    assert!(!stdout.contains("0123456789abcdef"), "the key is never shown");
}

/// A CA and a server certificate for localhost/127.0.0.1, made with the openssl CLI.
pub fn make_pki(dir: &Path, name: &str) -> (Vec<u8>, Vec<u8>, std::path::PathBuf) {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let sh = |script: &str| {
        let st = Command::new("sh").arg("-c").arg(script).current_dir(&d).output().unwrap();
        assert!(st.status.success(), "{script}: {}", String::from_utf8_lossy(&st.stderr));
    };
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
        -days 2 -subj '/CN=ftagent test CA' -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign");
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key -out srv.csr \
        -subj '/CN=localhost'");
    std::fs::write(d.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        .unwrap();
    sh("openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext.cnf");
    (std::fs::read(d.join("srv.pem")).unwrap(), std::fs::read(d.join("srv.key")).unwrap(), d.join("ca.pem"))
}

#[test]
fn https_with_a_ca_trusted_through_ssl_cert_file_and_an_untrusted_one() {
    if !util::have("openssl") {
        panic!("the openssl CLI is needed to make test certificates (apt-get install openssl)");
    }
    let home = Home::new();
    let (cert, key, ca) = make_pki(home.path(), "good");
    let (_, _, other_ca) = make_pki(home.path(), "other");
    let server = Server::https(cert, key, apiserver::flowtriq(json!({})));

    let (out, stdout) = self_test(&home, api(&server.base), &[("SSL_CERT_FILE", &ca)]);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("Flowtriq API {}/api/v1: OK", server.base)), "{stdout}");

    let (out, stdout) = self_test(&home, api(&server.base), &[("SSL_CERT_FILE", &other_ca)]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("Flowtriq API")).unwrap();
    assert!(line.contains("FAILED: TLS error talking to https://localhost:"), "{line}");
    assert!(line.contains("SSL_CERT_FILE"), "the message says how to fix it: {line}");
    eprintln!("untrusted CA: {line}");
}
