//! A loopback HTTP(S) server for API and webhook tests: records every request and answers as a
//! handler says (respond, respond late, or never answer). `flowtriq` simulates the service's
//! incident endpoints with idempotent opens. Shared by the unit tests (`report::api::testserver`) and the
//! integration binary (through `#[path]`), so it depends only on std, serde_json and tiny_http.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let n = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// What to do with a request.
pub enum Action {
    Respond {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// Answer after a delay (a slow server).
    Late(Duration, u16, String),
    /// Keep the connection open and never answer.
    Hang,
}

pub fn ok(body: &str) -> Action {
    Action::Respond { status: 200, body: body.into(), headers: vec![] }
}

pub fn status(code: u16, body: &str) -> Action {
    Action::Respond { status: code, body: body.into(), headers: vec![] }
}

pub type Handler = Box<dyn FnMut(&Recorded) -> Action + Send>;

pub struct Server {
    pub base: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Plain HTTP on 127.0.0.1 (port 0 = any free port).
    pub fn http(port: u16, handler: Handler) -> Self {
        let s = tiny_http::Server::http(("127.0.0.1", port)).expect("bind loopback server");
        Self::run(s, "http", handler)
    }

    /// HTTPS with the given PEM certificate chain and key.
    pub fn https(cert_pem: Vec<u8>, key_pem: Vec<u8>, handler: Handler) -> Self {
        let cfg = tiny_http::SslConfig { certificate: cert_pem, private_key: key_pem };
        let s = tiny_http::Server::https(("127.0.0.1", 0), cfg).expect("bind loopback TLS server");
        Self::run(s, "https", handler)
    }

    fn run(s: tiny_http::Server, scheme: &str, mut handler: Handler) -> Self {
        let port = s.server_addr().to_ip().expect("ip").port();
        let host = if scheme == "https" { "localhost" } else { "127.0.0.1" };
        let server = Arc::new(s);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (srv, reqs) = (server.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            let mut hung = Vec::new();
            while let Ok(Some(mut rq)) = srv.recv_timeout(Duration::from_secs(3600)) {
                let mut body = Vec::new();
                let _ = rq.as_reader().read_to_end(&mut body);
                let rec = Recorded {
                    method: rq.method().to_string(),
                    path: rq.url().to_string(),
                    headers: rq
                        .headers()
                        .iter()
                        .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_string()))
                        .collect(),
                    body,
                };
                let action = handler(&rec);
                reqs.lock().unwrap().push(rec);
                match action {
                    Action::Hang => hung.push(rq),
                    Action::Late(d, code, body) => {
                        std::thread::sleep(d);
                        let _ = rq.respond(tiny_http::Response::from_string(body).with_status_code(code));
                    }
                    Action::Respond { status, body, headers } => {
                        let mut r = tiny_http::Response::from_string(body).with_status_code(status);
                        for (k, v) in headers {
                            r = r.with_header(tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap());
                        }
                        let _ = rq.respond(r);
                    }
                }
            }
            drop(hung);
        });
        Server { base: format!("{scheme}://{host}:{port}"), requests, server, thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn to(&self, prefix: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path.starts_with(prefix)).collect()
    }

    /// Poll until `pred` holds on the recorded requests, or `limit` passes.
    pub fn wait_until(&self, limit: Duration, pred: impl Fn(&[Recorded]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if pred(&self.requests()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A simulated Flowtriq API: opens are idempotent by `Idempotency-Key` (the same key gets the
/// same `uuid` and creates nothing new), `GET /agent/config` answers `config`, the rest 200.
pub fn flowtriq(config: Value) -> Handler {
    let mut incidents: HashMap<String, String> = HashMap::new();
    Box::new(move |r: &Recorded| {
        if r.method == "GET" && r.path.ends_with("/agent/config") {
            return ok(&config.to_string());
        }
        if r.method == "POST" && r.path.ends_with("/agent/incidents") {
            let key = r.header("idempotency-key").unwrap_or("").to_string();
            let n = incidents.len() + 1;
            let uuid = incidents.entry(key).or_insert_with(|| format!("srv-{n:04}")).clone();
            return ok(&serde_json::json!({ "uuid": uuid }).to_string());
        }
        ok("{\"ok\":true}")
    })
}
