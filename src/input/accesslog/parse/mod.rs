//! Access-log line parsers (§11): one line as bytes in, one [`Request`] (client, path, status,
//! user agent) out, or a [`Malformed`] reason. Pure: parsers never open files and never panic
//! on any input; the follower ([`super::follow`]) owns the reading, the caller counts failures.
//!
//! Formats:
//! - `combined` / `common`: nginx's and Apache's defaults,
//!   `ADDR - USER [TIME] "METHOD TARGET PROTO" STATUS BYTES ["REFERER" "USER-AGENT"]`.
//! - `json`: nginx `log_format ... escape=json` with the field names of [`JSON_FIELDS`].
//! - `caddy`: Caddy's structured access log (`request.client_ip` or `request.remote_ip`,
//!   `request.uri`, `request.headers.User-Agent[0]`, `status`).
//!
//! The query string is cut from paths (a flood of `/search?q=<random>` is one path) and paths and
//! user agents are cut to [`MAX_FIELD`] bytes, so one key never costs more than that.

use std::borrow::Cow;
use std::net::IpAddr;

use serde_json::Value;

pub use crate::config::accesslog::Format;

/// Longest path or user agent kept, in bytes.
pub const MAX_FIELD: usize = 200;

/// The field names the `json` format reads, in order of preference for each item.
pub const JSON_FIELDS: &[(&str, &[&str])] = &[
    ("client", &["remote_addr", "client_ip"]),
    ("path", &["request_uri", "uri", "request"]),
    ("status", &["status"]),
    ("user agent", &["http_user_agent", "user_agent"]),
];

/// One request as the aggregation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub client: IpAddr,
    /// Path without the query string, at most [`MAX_FIELD`] bytes.
    pub path: Cow<'a, [u8]>,
    pub status: u16,
    /// Empty when the format has none (`common`).
    pub user_agent: Cow<'a, [u8]>,
}

/// Why a line was not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    Empty,
    Client,
    Request,
    Status,
    Json,
}

pub type Parsed<'a> = Result<Request<'a>, Malformed>;

/// Parse one line (without its newline) in `format`.
pub fn parse_line(format: Format, line: &[u8]) -> Parsed<'_> {
    let line = trim(line);
    if line.is_empty() {
        return Err(Malformed::Empty);
    }
    match format {
        Format::Combined | Format::Common => parse_combined(line),
        Format::Json => parse_json(line),
        Format::Caddy => parse_caddy(line),
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b' ' | b'\t'] = s {
        s = rest;
    }
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

/// `combined` and `common`.
pub fn parse_combined(line: &[u8]) -> Parsed<'_> {
    let sp = memchr(b' ', line).ok_or(Malformed::Client)?;
    let client = parse_ip(&line[..sp]).ok_or(Malformed::Client)?;
    // The time is the first `[...]`; the request is the quoted string after it.
    let rest = &line[sp..];
    let close = memchr(b']', rest).ok_or(Malformed::Request)?;
    let rest = &rest[close + 1..];
    let (request, rest) = quoted(skip_spaces(rest)).ok_or(Malformed::Request)?;
    let path = request_path(request).ok_or(Malformed::Request)?;
    let rest = skip_spaces(rest);
    let (status, rest) = rest.split_at(memchr(b' ', rest).unwrap_or(rest.len()));
    let status = parse_status(status).ok_or(Malformed::Status)?;
    // Bytes sent, then (combined) the referer and the user agent.
    let rest = skip_spaces(rest);
    let rest = &rest[memchr(b' ', rest).unwrap_or(rest.len())..];
    let user_agent = quoted(skip_spaces(rest))
        .and_then(|(_referer, rest)| quoted(skip_spaces(rest)))
        .map(|(ua, _)| cap(ua))
        .unwrap_or_default();
    Ok(Request { client, path: Cow::Borrowed(path), status, user_agent: Cow::Borrowed(user_agent) })
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b' ').count();
    &s[n..]
}

/// `"..."` at the start of `s` (backslash escapes skipped over, not decoded): the inside and
/// what follows the closing quote.
fn quoted(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let body = s.strip_prefix(b"\"")?;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'"' => return Some((&body[..i], &body[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// The path of `METHOD TARGET PROTO` (or of a bare target), query cut off. nginx logs a
/// garbage request line as-is, so a line without a method and target is malformed.
fn request_path(request: &[u8]) -> Option<&[u8]> {
    let mut parts = request.split(|&c| c == b' ').filter(|p| !p.is_empty());
    let first = parts.next()?;
    let target = if first.first() == Some(&b'/') { first } else { parts.next()? };
    Some(cap(cut_query(target)))
}

fn cut_query(target: &[u8]) -> &[u8] {
    match memchr(b'?', target) {
        Some(q) => &target[..q],
        None => target,
    }
}

fn cap(s: &[u8]) -> &[u8] {
    &s[..s.len().min(MAX_FIELD)]
}

fn parse_status(s: &[u8]) -> Option<u16> {
    if s.len() != 3 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s.iter().fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    (100..=599).contains(&v).then_some(v)
}

fn parse_ip(s: &[u8]) -> Option<IpAddr> {
    // An IPv6 address in brackets (some proxies log `[::1]`).
    let s = s.strip_prefix(b"[").and_then(|s| s.strip_suffix(b"]")).unwrap_or(s);
    if s.len() > 45 {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// nginx `escape=json`: a flat object of strings (status may also be a number).
pub fn parse_json(line: &[u8]) -> Parsed<'_> {
    let obj: serde_json::Map<String, Value> = serde_json::from_slice(line).map_err(|_| Malformed::Json)?;
    let pick = |names: &[&str]| names.iter().find_map(|n| obj.get(*n).and_then(Value::as_str).map(str::to_string));
    let [client, path, status, ua] = [0, 1, 2, 3].map(|i| JSON_FIELDS[i].1);
    let client = pick(client).and_then(|c| parse_ip(c.as_bytes())).ok_or(Malformed::Client)?;
    let path = pick(path).ok_or(Malformed::Request)?;
    let path = request_path(path.as_bytes()).ok_or(Malformed::Request)?.to_vec();
    let status = status_value(obj.get(status[0])).ok_or(Malformed::Status)?;
    let user_agent = pick(ua).map(|u| cap(u.as_bytes()).to_vec()).unwrap_or_default();
    Ok(Request { client, path: Cow::Owned(path), status, user_agent: Cow::Owned(user_agent) })
}

fn status_value(v: Option<&Value>) -> Option<u16> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|s| (100..=599).contains(s)),
        Value::String(s) => parse_status(s.as_bytes()),
        _ => None,
    }
}

/// Caddy's access log: `{"request": {"client_ip", "remote_ip", "uri", "headers"}, "status"}`.
pub fn parse_caddy(line: &[u8]) -> Parsed<'_> {
    let v: Value = serde_json::from_slice(line).map_err(|_| Malformed::Json)?;
    let req = v.get("request").filter(|r| r.is_object()).ok_or(Malformed::Request)?;
    let client = ["client_ip", "remote_ip"]
        .iter()
        .find_map(|k| req.get(*k).and_then(Value::as_str))
        .and_then(|c| parse_ip(c.as_bytes()))
        .ok_or(Malformed::Client)?;
    let uri = req.get("uri").and_then(Value::as_str).ok_or(Malformed::Request)?;
    let path = request_path(uri.as_bytes()).ok_or(Malformed::Request)?.to_vec();
    let status = status_value(v.get("status")).ok_or(Malformed::Status)?;
    let ua = req
        .get("headers")
        .and_then(|h| h.get("User-Agent"))
        .and_then(|u| u.get(0))
        .and_then(Value::as_str)
        .unwrap_or("");
    Ok(Request { client, path: Cow::Owned(path), status, user_agent: Cow::Owned(cap(ua.as_bytes()).to_vec()) })
}

#[cfg(test)]
mod tests;
