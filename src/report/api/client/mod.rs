//! The HTTP seam: the only `minreq` user. Builds the Flowtriq API requests of §6.2 (headers,
//! paths, JSON and multipart bodies — pure, so tests snapshot them) and performs one request with
//! a bounded timeout. HTTPS goes through the system's OpenSSL trust store (`SSL_CERT_FILE` and
//! `SSL_CERT_DIR` honoured). Knows nothing of spools or retries; never logs the API key.

use serde_json::Value;

use super::spool::{Item, Kind};
use crate::config::Settings;

/// No call waits longer than this (§6.3: ≤ 10 s per call).
pub const DEFAULT_TIMEOUT_S: u64 = 10;
/// PCAPs up to this size go in one multipart request; larger ones in chunks of this size.
pub const PCAP_CHUNK: usize = 2 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One request, fully built.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What came back.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        s.chars().take(2000).collect()
    }
}

/// Perform one request. `Err` is a transport failure (DNS, connect, TLS, timeout) with a message
/// that names the URL's origin and what went wrong.
pub fn send(req: &HttpRequest, timeout_s: u64) -> crate::error::Result<Reply> {
    let mut r = match req.method {
        Method::Get => minreq::get(req.url.as_str()),
        Method::Post => minreq::post(req.url.as_str()),
    };
    for (k, v) in &req.headers {
        r = r.with_header(k.as_str(), v.as_str());
    }
    if req.method == Method::Post {
        r = r.with_body(req.body.clone());
    }
    match r.with_timeout(timeout_s).send() {
        Ok(resp) => Ok(Reply {
            status: resp.status_code,
            retry_after: resp.header("retry-after").map(str::to_string),
            body: resp.into_bytes(),
        }),
        Err(e) => {
            Err(crate::error::Error::Http { url: origin(&req.url), status: None, why: describe_error(&req.url, &e) })
        }
    }
}

fn describe_error(url: &str, e: &minreq::Error) -> String {
    let origin = origin(url);
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("ssl") || lower.contains("tls") || lower.contains("handshake") {
        format!(
            "TLS error talking to {origin}: {text} (is the server's CA in the system trust store or in SSL_CERT_FILE?)"
        )
    } else if lower.contains("timed out") || lower.contains("timeout") || lower.contains("would block") {
        format!("no answer from {origin} within the timeout: {text}")
    } else {
        format!("cannot reach {origin}: {text}")
    }
}

/// `scheme://host[:port]` of a URL: safe to log (webhook paths may hold tokens).
pub fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}")
}

/// Who we are to the API: base URL and the headers every call carries.
#[derive(Clone)]
pub struct ApiClient {
    pub base: String,
    api_key: String,
    pub node_uuid: String,
    pub timeout_s: u64,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient").field("base", &self.base).field("node_uuid", &self.node_uuid).finish()
    }
}

impl ApiClient {
    pub fn new(base: &str, api_key: &str, node_uuid: &str) -> Self {
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
            node_uuid: node_uuid.to_string(),
            timeout_s: DEFAULT_TIMEOUT_S,
        }
    }

    pub fn from_settings(s: &Settings) -> Self {
        Self::new(&s.api_base, &s.api_key, &s.node_uuid)
    }

    /// Headers on every call (§6.2).
    pub fn headers(&self) -> Vec<(String, String)> {
        vec![
            ("Authorization".into(), format!("Bearer {}", self.api_key)),
            ("X-Node-UUID".into(), self.node_uuid.clone()),
            ("User-Agent".into(), format!("ftagent/{}", crate::event::AGENT_VERSION)),
            ("Accept".into(), "application/json".into()),
        ]
    }

    fn json(&self, path: &str, body: &Value, key: Option<&str>) -> HttpRequest {
        let mut headers = self.headers();
        headers.push(("Content-Type".into(), "application/json".into()));
        if let Some(k) = key {
            headers.push(("Idempotency-Key".into(), k.to_string()));
        }
        HttpRequest {
            method: Method::Post,
            url: format!("{}{path}", self.base),
            headers,
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    pub fn config_request(&self) -> HttpRequest {
        HttpRequest {
            method: Method::Get,
            url: format!("{}/agent/config", self.base),
            headers: self.headers(),
            body: vec![],
        }
    }

    /// The JSON request for a spooled item; `uuid` is the server's incident id (update, resolve).
    /// `queue` is the spool size, written into heartbeats as `retry_queue_size`.
    pub fn item_request(&self, item: &Item, uuid: Option<&str>, queue: u64) -> Option<HttpRequest> {
        let key = Some(item.key.as_str());
        Some(match item.kind {
            Kind::Heartbeat => {
                let mut body = item.body.clone();
                body["retry_queue_size"] = queue.into();
                self.json("/agent/heartbeat", &body, key)
            }
            Kind::Metrics => self.json("/agent/metrics", &item.body, key),
            Kind::Open => self.json("/agent/incidents", &item.body, key),
            Kind::Update => self.json(&format!("/agent/incidents/{}", uuid?), &item.body, key),
            Kind::Resolve => self.json(&format!("/agent/incidents/{}/resolve", uuid?), &item.body, key),
            Kind::Pcap | Kind::Webhook => return None,
        })
    }

    /// A PCAP upload request: the whole file as multipart field `pcap` when `total == 1`, else
    /// raw chunk `index` of `total` with the chunk headers.
    pub fn pcap_request(
        &self,
        uuid: &str,
        upload_id: &str,
        file_name: &str,
        data: &[u8],
        index: u32,
        total: u32,
    ) -> HttpRequest {
        let url = format!("{}/agent/incidents/{uuid}/pcap", self.base);
        let mut headers = self.headers();
        if total <= 1 {
            let boundary = format!("ftagent-{upload_id}");
            headers.push(("Content-Type".into(), format!("multipart/form-data; boundary={boundary}")));
            let mut body = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"pcap\"; filename=\"{file_name}\"\r\n\
                 Content-Type: application/vnd.tcpdump.pcap\r\n\r\n"
            )
            .into_bytes();
            body.extend_from_slice(data);
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            return HttpRequest { method: Method::Post, url, headers, body };
        }
        headers.push(("Content-Type".into(), "application/octet-stream".into()));
        headers.push(("X-Chunk-Index".into(), index.to_string()));
        headers.push(("X-Chunk-Total".into(), total.to_string()));
        headers.push(("X-Upload-Id".into(), upload_id.to_string()));
        HttpRequest { method: Method::Post, url, headers, body: data.to_vec() }
    }
}

/// Number of requests a PCAP of `len` bytes takes (1 = multipart).
pub fn pcap_chunks(len: u64) -> u32 {
    if len <= PCAP_CHUNK as u64 {
        1
    } else {
        len.div_ceil(PCAP_CHUNK as u64) as u32
    }
}

#[cfg(test)]
mod tests;
