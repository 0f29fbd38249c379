use super::*;
use crate::headers::{Present, Scan};

/// A head with lines at known places, and the ranges of those lines.
fn head(lines: &[&str]) -> (Bytes, Vec<Range<usize>>) {
    let mut text = String::from("GET / HTTP/1.1\r\n");
    let mut ranges = Vec::new();
    for line in lines {
        let start = text.len();
        text.push_str(line);
        ranges.push(start..text.len());
    }
    text.push_str("\r\n");
    (Bytes::from(text), ranges)
}

#[test]
fn adjacent_lines_make_one_run_and_a_gap_starts_another() {
    let (bytes, at) = head(&[
        "User-Agent: t\r\n",
        "Accept-Language: en\r\n",
        "Cookie: a=1\r\n",
        "Referer: http://a/\r\n",
    ]);
    let mut p = Passed::default();
    assert!(p.is_empty());
    assert!(p.take(at[0].clone(), 10 + 1 + 4, false));
    assert!(p.take(at[1].clone(), 15 + 2 + 4, true));
    assert!(p.take(at[3].clone(), 7 + 9 + 4, false));
    p.seal(&bytes);
    let runs: Vec<&[u8]> = p.runs().collect();
    assert_eq!(
        runs,
        [
            &b"User-Agent: t\r\nAccept-Language: en\r\n"[..],
            &b"Referer: http://a/\r\n"[..],
        ]
    );
    assert_eq!(p.bytes(), 15 + 21 + 20);
    assert!(!p.is_empty());
    assert!(p.asks_html(), "one line said so");
}

#[test]
fn past_the_runs_bound_a_field_is_left_to_the_map() {
    let lines: Vec<String> = (0..2 * RUNS + 2)
        .map(|i| format!("X-{i}: {i}\r\n"))
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (bytes, at) = head(&refs);
    let mut p = Passed::default();
    // Every other line: each is a run of its own.
    let mut taken = 0;
    for range in at.iter().step_by(2) {
        if p.take(range.clone(), 1, false) {
            taken += 1;
        } else {
            // Refused, and nothing of it counted.
            assert_eq!(p.bytes(), RUNS);
        }
    }
    assert_eq!(taken, RUNS);
    // A line that continues the last run is still taken.
    let last_taken = at.iter().step_by(2).nth(RUNS - 1).expect("a line").end;
    let next = at.iter().find(|r| r.start == last_taken).expect("a line");
    assert!(p.take(next.clone(), 1, false));
    assert!(!p.asks_html());
    p.seal(&bytes);
    assert_eq!(p.runs().count(), RUNS);
    assert_eq!(p.bytes(), RUNS + 1);
}

#[test]
fn merged_into_a_map_the_fields_read_back_as_sent() {
    let (bytes, at) = head(&[
        "USER-AGENT:  Mozilla/5.0 (X11)  \r\n",
        "sec-ch-ua: \"Chromium\";v=\"156\"\r\n",
        "Host: a\r\n",
        "Accept-Language:en\r\n",
        "accept-language: de;q=0.5\r\n",
    ]);
    let mut p = Passed::default();
    for i in [0, 1, 3, 4] {
        assert!(p.take(at[i].clone(), 1, false));
    }
    p.seal(&bytes);
    let mut map = HeaderMap::new();
    map.insert(http::header::HOST, HeaderValue::from_static("a"));
    p.merge_into(&mut map);
    assert_eq!(map.len(), 5);
    assert_eq!(map["user-agent"], "Mozilla/5.0 (X11)");
    assert_eq!(map["sec-ch-ua"], "\"Chromium\";v=\"156\"");
    let langs: Vec<_> = map.get_all("accept-language").iter().collect();
    assert_eq!(langs, ["en", "de;q=0.5"], "repeats keep their order");
    assert_eq!(map["host"], "a");
}

#[test]
fn an_empty_passed_merges_nothing_and_holds_no_head() {
    let mut p = Passed::default();
    p.seal(&Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"));
    assert!(p.head.is_empty(), "no lines, no share of the head");
    let mut map = HeaderMap::new();
    p.merge_into(&mut map);
    assert!(map.is_empty());
}

/// The names the steps read or act on: none may be passed, or the step
/// would not find it in the map.
const READ: &[&str] = &[
    "host",
    "cookie",
    "authorization",
    "origin",
    "content-length",
    "transfer-encoding",
    "expect",
    "connection",
    "upgrade",
    "keep-alive",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "forwarded",
    "x-real-ip",
    "x-correlation-id",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-remote-user",
    "remote-user",
    "x-platform-proxy-assertion",
];

#[test]
fn no_name_a_step_reads_is_passed() {
    for name in READ {
        assert!(!is_passed(&HeaderName::from_static(name)), "{name}");
    }
}

#[test]
fn every_passed_name_is_one_no_step_acts_on() {
    for name in [
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "referer",
        "cache-control",
        "pragma",
        "content-type",
        "if-none-match",
        "if-modified-since",
        "if-match",
        "if-unmodified-since",
        "if-range",
        "range",
        "dnt",
        "upgrade-insecure-requests",
        "sec-fetch-site",
        "sec-fetch-mode",
        "sec-fetch-dest",
        "sec-fetch-user",
        "sec-ch-ua",
        "sec-ch-ua-mobile",
        "sec-ch-ua-platform",
        "priority",
        "x-requested-with",
    ] {
        let name = HeaderName::from_static(name);
        assert!(is_passed(&name), "{name}");
        assert_eq!(Present::of_name(&name), Present::default(), "{name}");
        // Only the two the server reads as they pass can ask for HTML.
        let mut h = HeaderMap::new();
        h.insert(
            name.clone(),
            HeaderValue::from_static("navigate, text/html"),
        );
        h.append(name.clone(), HeaderValue::from_static("navigate"));
        let html = matches!(name.as_str(), "accept" | "sec-fetch-mode");
        assert_eq!(Scan::of(&h).html, html, "{name}");
    }
}
