//! The one place the agent talks HTTP out (§13): every request has a timeout, redirects are never
//! followed (a 3xx is an error naming where it pointed, so neither `Authorization`, a webhook
//! secret nor anything else is ever re-sent to another host or over plain HTTP), and a response
//! body is read up to a cap, never further.

use std::io::Read;

/// Caps for bodies we read.
pub const API_BODY_CAP: u64 = 1024 * 1024;

/// What came back.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub body: Vec<u8>,
    pub retry_after: Option<String>,
}

/// Why a request failed; `Display` names the URL's origin, never its path (it may hold a token).
#[derive(Debug)]
pub enum HttpError {
    /// DNS, connect, TLS, timeout, a malformed answer.
    Transport { origin: String, error: minreq::Error },
    /// A 3xx: not followed.
    Redirect { origin: String, status: u16, to: String },
    /// The body is longer than the cap.
    TooLarge { origin: String, cap: u64 },
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Transport { origin, error } => {
                let text = error.to_string();
                let lower = text.to_ascii_lowercase();
                if ["certificate", "ssl", "tls", "handshake"].iter().any(|w| lower.contains(w)) {
                    write!(f, "TLS error talking to {origin}: {text} (is the server's CA in the system trust store or in SSL_CERT_FILE?)")
                } else if lower.contains("timed out") || lower.contains("timeout") || lower.contains("would block") {
                    write!(f, "no answer from {origin} within the timeout: {text}")
                } else {
                    write!(f, "cannot reach {origin}: {text}")
                }
            }
            HttpError::Redirect { origin, status, to } => write!(
                f,
                "{origin} answered HTTP {status}, a redirect to {to}; redirects are not followed (credentials never \
                 leave for another address): configure the final URL"
            ),
            HttpError::TooLarge { origin, cap } => {
                write!(f, "{origin} sent a response body over {cap} bytes; refused whole")
            }
        }
    }
}

impl std::error::Error for HttpError {}

/// `scheme://host[:port]` of a URL: safe to log (paths may hold tokens).
pub fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}")
}

/// One request: GET when `body` is `None`, else POST. Never follows a redirect; reads at most
/// `cap` bytes of body; `timeout_s` bounds connect, send and every read.
pub fn request(
    url: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    timeout_s: u64,
    cap: u64,
) -> Result<Response, HttpError> {
    let origin = origin(url);
    let mut r = match body {
        None => minreq::get(url),
        Some(b) => minreq::post(url).with_body(b.to_vec()),
    };
    for (k, v) in headers {
        r = r.with_header(k.as_str(), v.as_str());
    }
    let transport = |error| HttpError::Transport { origin: origin.clone(), error };
    let resp = r.with_follow_redirects(false).with_timeout(timeout_s.max(1)).send_lazy().map_err(transport)?;
    let header = |name: &str| resp.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    if (300..400).contains(&resp.status_code) {
        let to = header("location").map(|l| self::origin(&l)).unwrap_or_else(|| "nowhere".into());
        return Err(HttpError::Redirect { origin, status: resp.status_code, to });
    }
    if header("content-length").and_then(|v| v.trim().parse::<u64>().ok()).is_some_and(|n| n > cap) {
        return Err(HttpError::TooLarge { origin, cap });
    }
    let (status, reason, retry_after) = (resp.status_code, resp.reason_phrase.clone(), header("retry-after"));
    let mut out = Vec::new();
    let mut limited = resp.take(cap + 1);
    limited
        .read_to_end(&mut out)
        .map_err(|e| HttpError::Transport { origin: origin.clone(), error: minreq::Error::IoError(e) })?;
    if out.len() as u64 > cap {
        return Err(HttpError::TooLarge { origin, cap });
    }
    Ok(Response { status, reason, body: out, retry_after })
}
