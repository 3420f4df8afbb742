use super::*;

const NGINX_COMBINED: &[u8] =
    br#"10.77.0.2 - - [01/Dec/2026:07:50:01 +0000] "GET /index.html?x=1 HTTP/1.1" 200 615 "-" "wrk/4.2.0""#;

#[test]
fn combined_line_from_nginx() {
    let r = parse_line(Format::Combined, NGINX_COMBINED).unwrap();
    assert_eq!(r.client, "10.77.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(&*r.path, b"/index.html");
    assert_eq!(r.status, 200);
    assert_eq!(&*r.user_agent, b"wrk/4.2.0");
}

#[test]
fn common_line_has_no_user_agent() {
    let line = br#"2001:db8::7 - frank [10/Oct/2000:13:55:36 -0700] "POST /apache_pb.gif HTTP/1.0" 404 2326"#;
    let r = parse_line(Format::Common, line).unwrap();
    assert_eq!(r.client, "2001:db8::7".parse::<IpAddr>().unwrap());
    assert_eq!((&*r.path, r.status, &*r.user_agent), (&b"/apache_pb.gif"[..], 404, &b""[..]));
}

#[test]
fn escaped_quotes_in_user_agent_and_request() {
    let line = br#"1.2.3.4 - - [t] "GET /a\"b HTTP/1.1" 503 0 "-" "evil \"ua\" 1.0" extra"#;
    let r = parse_line(Format::Combined, line).unwrap();
    assert_eq!(&*r.path, br#"/a\"b"#);
    assert_eq!(&*r.user_agent, br#"evil \"ua\" 1.0"#);
    assert_eq!(r.status, 503);
}

#[test]
fn malformed_combined_lines_say_why() {
    let cases: &[(&[u8], Malformed)] = &[
        (b"", Malformed::Empty),
        (b"   \r", Malformed::Empty),
        (b"not-an-ip - - [t] \"GET / HTTP/1.1\" 200 1", Malformed::Client),
        (b"1.2.3.4 - - [t] GET / 200 1", Malformed::Request),
        (b"1.2.3.4 - - [t] \"GET / HTTP/1.1", Malformed::Request),
        (b"1.2.3.4 - - [t] \"\\x16\\x03\\x01\" 400 0", Malformed::Request),
        (b"1.2.3.4 - - [t] \"GET / HTTP/1.1\" 2000 1", Malformed::Status),
        (b"1.2.3.4 - - [t] \"GET / HTTP/1.1\" 099 1", Malformed::Status),
        (b"1.2.3.4 - - [t] \"GET / HTTP/1.1\" -", Malformed::Status),
        (b"1.2.3.4", Malformed::Client),
    ];
    for (line, why) in cases {
        assert_eq!(parse_line(Format::Combined, line), Err(*why), "{}", String::from_utf8_lossy(line));
    }
}

#[test]
fn invalid_utf8_in_fields_is_kept_as_bytes() {
    let line = b"1.2.3.4 - - [t] \"GET /\xff\xfe HTTP/1.1\" 200 1 \"-\" \"\xc3\x28\"";
    let r = parse_line(Format::Combined, line).unwrap();
    assert_eq!(&*r.path, b"/\xff\xfe");
    assert_eq!(&*r.user_agent, b"\xc3\x28");
}

#[test]
fn long_fields_are_capped() {
    let long = "a".repeat(5000);
    let line = format!("1.2.3.4 - - [t] \"GET /{long} HTTP/1.1\" 200 1 \"-\" \"{long}\"");
    let r = parse_line(Format::Combined, line.as_bytes()).unwrap();
    assert_eq!((r.path.len(), r.user_agent.len()), (MAX_FIELD, MAX_FIELD));
}

#[test]
fn nginx_escape_json_line() {
    let line = br#"{"time":"2026-12-01T07:50:01+00:00","remote_addr":"10.0.0.9","request_method":"GET","request_uri":"/login?u=1","status":"401","body_bytes_sent":"12","http_user_agent":"curl/8.5 \"x\""}"#;
    let r = parse_line(Format::Json, line).unwrap();
    assert_eq!(r.client, "10.0.0.9".parse::<IpAddr>().unwrap());
    assert_eq!((&*r.path, r.status, &*r.user_agent), (&b"/login"[..], 401, &br#"curl/8.5 "x""#[..]));
    // `request` instead of `request_uri`, numeric status, no user agent.
    let line = br#"{"remote_addr":"::1","request":"POST /api HTTP/2.0","status":204}"#;
    let r = parse_line(Format::Json, line).unwrap();
    assert_eq!((&*r.path, r.status, &*r.user_agent), (&b"/api"[..], 204, &b""[..]));
}

#[test]
fn malformed_json_lines_say_why() {
    let cases: &[(&[u8], Malformed)] = &[
        (b"{", Malformed::Json),
        (b"[1,2]", Malformed::Json),
        (br#"{"remote_addr":"x","request_uri":"/","status":"200"}"#, Malformed::Client),
        (br#"{"remote_addr":"1.1.1.1","status":"200"}"#, Malformed::Request),
        (br#"{"remote_addr":"1.1.1.1","request_uri":"/","status":"abc"}"#, Malformed::Status),
        (br#"{"remote_addr":"1.1.1.1","request_uri":"/","status":70000}"#, Malformed::Status),
    ];
    for (line, why) in cases {
        assert_eq!(parse_line(Format::Json, line), Err(*why), "{}", String::from_utf8_lossy(line));
    }
}

/// A line as Caddy 2.7 writes it (`log` directive, JSON encoder).
const CADDY: &[u8] = br#"{"level":"info","ts":1701417001.123,"logger":"http.log.access.log0","msg":"handled request","request":{"remote_ip":"10.1.1.1","remote_port":"40122","client_ip":"10.1.1.2","proto":"HTTP/1.1","method":"GET","host":"example.com","uri":"/wp-login.php?a=b","headers":{"User-Agent":["Mozilla/5.0"],"Accept":["*/*"]}},"bytes_read":0,"user_id":"","duration":0.0001,"size":12,"status":404,"resp_headers":{"Server":["Caddy"]}}"#;

#[test]
fn caddy_line_prefers_client_ip() {
    let r = parse_line(Format::Caddy, CADDY).unwrap();
    assert_eq!(r.client, "10.1.1.2".parse::<IpAddr>().unwrap());
    assert_eq!((&*r.path, r.status, &*r.user_agent), (&b"/wp-login.php"[..], 404, &b"Mozilla/5.0"[..]));
    let old = br#"{"request":{"remote_ip":"10.1.1.1","uri":"/"},"status":200}"#;
    assert_eq!(parse_line(Format::Caddy, old).unwrap().client, "10.1.1.1".parse::<IpAddr>().unwrap());
    let not_access = br#"{"level":"info","msg":"server running"}"#;
    assert_eq!(parse_line(Format::Caddy, not_access), Err(Malformed::Request));
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn arb_line() -> impl Strategy<Value = Vec<u8>> {
        // Bytes biased towards the characters the parsers split on, so deep paths are reached.
        let pieces = prop_oneof![
            Just(b" ".to_vec()),
            Just(b"\"".to_vec()),
            Just(b"\\".to_vec()),
            Just(b"[".to_vec()),
            Just(b"]".to_vec()),
            Just(b"1.2.3.4".to_vec()),
            Just(b"GET /x HTTP/1.1".to_vec()),
            Just(b"200".to_vec()),
            Just(b"{\"request\":{".to_vec()),
            Just(b"\"remote_addr\":\"::1\",".to_vec()),
            Just(b"\"status\":".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ];
        proptest::collection::vec(pieces, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any bytes: a request or a reason, never a panic, and fields stay capped.
        #[test]
        fn any_bytes_parse_or_are_malformed(line in arb_line()) {
            for f in [Format::Combined, Format::Json, Format::Caddy] {
                if let Ok(r) = parse_line(f, &line) {
                    prop_assert!(r.path.len() <= MAX_FIELD && r.user_agent.len() <= MAX_FIELD);
                    prop_assert!((100..=599).contains(&r.status));
                }
            }
        }

        /// A well-formed combined line with arbitrary path/agent text round-trips.
        #[test]
        fn generated_combined_lines_parse(
            a in any::<[u8; 4]>(), path in "/[a-zA-Z0-9/._-]{0,40}", ua in "[ -!#-\\[\\]-~]{0,60}", status in 100u16..600
        ) {
            let ip = std::net::Ipv4Addr::from(a);
            let line = format!("{ip} - - [01/Dec/2026:07:50:01 +0000] \"GET {path}?q HTTP/1.1\" {status} 5 \"-\" \"{ua}\"");
            let r = parse_line(Format::Combined, line.as_bytes()).unwrap();
            prop_assert_eq!(r.client, IpAddr::V4(ip));
            prop_assert_eq!(&*r.path, path.as_bytes());
            prop_assert_eq!(&*r.user_agent, ua.as_bytes());
            prop_assert_eq!(r.status, status);
        }
    }
}
