//! Forwarding: what the upstream sees (hop-by-hop headers gone, forwarding
//! headers the proxy's own), pooled keep-alive connections, and upstream
//! failures mapped to 502/504 envelopes.

use std::time::Duration;

use http::Response;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::support::upstream::{dead_addr, echo, full, raw_answers, raw_mirror, serve};
use crate::support::ws::header_values;
use crate::support::*;

async fn error_code(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let header_cid = resp
        .headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let v: Value = resp.json().await.expect("envelope");
    assert_eq!(
        v["error"]["correlation_id"], header_cid,
        "body and header agree"
    );
    (
        status,
        v["error"]["code"].as_str().unwrap_or_default().to_owned(),
        header_cid,
    )
}

#[tokio::test]
async fn upstream_sees_no_hop_by_hop_or_spoofed_forwarding_headers() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.path_route("a", up.addr, json!({})).await;
    let (status, _, body) = raw(
        p.addr,
        "GET /w/a/web/x HTTP/1.1\r\nHost: apps.test\r\nConnection: close, X-Secret\r\n\
         X-Secret: hop\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eDp5\r\n\
         Proxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: h2c\r\n\
         X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\n\
         X-Forwarded-Proto: https\r\nX-Forwarded-Prefix: /admin\r\nForwarded: for=6.6.6.6\r\n\
         X-Real-IP: 6.6.6.6\r\nX-Correlation-Id: forged\r\nX-Kept: yes\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    let h = &v["headers"];
    for gone in [
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "upgrade",
        "forwarded",
        "x-real-ip",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {h}");
    }
    assert_eq!(h["x-kept"], "yes");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-host"], "apps.test");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-prefix"], "/w/a/web");
    assert_eq!(
        h["host"], "apps.test",
        "the browser's host is preserved by default"
    );
    // The proxy's id, once: the client's is replaced, not kept beside it.
    assert_eq!(h["x-correlation-id"].as_str().map(str::len), Some(32));
    p.stop().await;
}

/// The steps that drop a client's field run only when one pass over the
/// head found a name of theirs: each such name, sent alone, must still be
/// dropped (a name another field brings its step in for would hide a miss).
/// What the echo upstream saw of one raw request, which must pass (200).
async fn echoed(p: &TestProxy, request: &str) -> Value {
    let (status, _, body) = raw(p.addr, request).await;
    assert_eq!(status, 200, "{request:?}: {body}");
    serde_json::from_str(&body).expect("json")
}

#[tokio::test]
async fn each_spoofed_or_hop_field_alone_is_dropped() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.path_route("a", up.addr, json!({})).await;
    // HTTP/1.0, so the answer ends the connection without a `Connection`
    // field that would bring the hop-by-hop step in.
    for (name, value) in [
        ("Forwarded", "for=6.6.6.6"),
        ("X-Real-IP", "6.6.6.6"),
        ("X-Forwarded-Port", "1"),
        ("X-Forwarded-User", "admin"),
        ("Remote-User", "admin"),
        ("X-Platform-Proxy-Assertion", "forged"),
        ("Authorization", "Bearer forged"),
        ("Proxy-Authorization", "Basic eDp5"),
        ("Proxy-Connection", "keep-alive"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Upgrade", "h2c"),
    ] {
        let v = echoed(
            &p,
            &format!("GET /w/a/web/x HTTP/1.0\r\nHost: apps.test\r\n{name}: {value}\r\n\r\n"),
        )
        .await;
        let seen = &v["headers"][name.to_ascii_lowercase()];
        assert_ne!(seen.as_str(), Some(value), "{name} reached the upstream");
    }
    let v = echoed(
        &p,
        "GET /w/a/web/x HTTP/1.0\r\nHost: apps.test\r\nX-Correlation-Id: forged\r\n\r\n",
    )
    .await;
    assert_eq!(
        v["headers"]["x-correlation-id"].as_str().map(str::len),
        Some(32),
        "the proxy's id, not the client's: {v}"
    );
    p.stop().await;
}

/// An absolute-form target names the authority and wins over `Host`
/// (RFC 9112 §3.2.2): the upstream sees that authority once, as `Host` and
/// as `X-Forwarded-Host`, and never the client's other `Host`.
#[tokio::test]
async fn an_absolute_form_target_wins_over_a_different_host_field() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.path_route("a", up.addr, json!({})).await;
    let v = echoed(
        &p,
        "GET http://apps.test/w/a/web/x HTTP/1.0\r\nHost: evil.example\r\n\r\n",
    )
    .await;
    assert_eq!(v["headers"]["host"], "apps.test");
    assert_eq!(v["headers"]["x-forwarded-host"], "apps.test");
    p.stop().await;
}

#[tokio::test]
async fn target_host_header_mode_sends_the_upstream_authority() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.host_route(
        "t",
        up.addr,
        json!({"adapter_overrides": {"upstream_host_header": "target"}}),
    )
    .await;
    let v: Value = p
        .get("t.apps.test", "/")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(v["headers"]["host"], up.addr.to_string());
    assert_eq!(v["headers"]["x-forwarded-host"], "t.apps.test");
    p.stop().await;
}

#[tokio::test]
async fn upstream_connections_are_pooled_and_kept_alive() {
    let p = TestProxy::start().await;
    let up = echo().await;
    p.host_route("demo", up.addr, json!({})).await;
    for _ in 0..20 {
        let r = p.get("demo.apps.test", "/").send().await.expect("send");
        assert_eq!(r.status(), 200);
        r.bytes().await.expect("body");
    }
    assert!(
        up.connections() <= 2,
        "20 sequential requests used {} upstream connections",
        up.connections()
    );
    p.stop().await;
}

#[tokio::test]
async fn requests_round_robin_over_targets() {
    let p = TestProxy::start().await;
    let a = echo().await;
    let b = echo().await;
    p.create_route(json!({
        "owner_type": "app_instance", "owner_id": "rr", "endpoint_name": "web",
        "route_mode": "subdomain", "route_host": "rr",
        "upstream": {"targets": [a.addr.to_string(), b.addr.to_string()]},
    }))
    .await;
    for _ in 0..4 {
        let r = p.get("rr.apps.test", "/").send().await.expect("send");
        assert_eq!(r.status(), 200);
        r.bytes().await.expect("body");
    }
    assert!(
        a.connections() >= 1 && b.connections() >= 1,
        "both targets used"
    );
    p.stop().await;
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let p = TestProxy::start().await;
    p.host_route("dead", dead_addr().await, json!({})).await;
    let (status, code, _) =
        error_code(p.get("dead.apps.test", "/").send().await.expect("send")).await;
    assert_eq!((status, code.as_str()), (502, "upstream_unreachable"));
    p.stop().await;
}

#[tokio::test]
async fn upstream_that_answers_too_late_is_504() {
    let p = TestProxy::start_with(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nresponse_timeout_secs = 1\n",
    )
    .await;
    let slow = serve(|_req| async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Response::new(full("late"))
    })
    .await;
    p.host_route("slow", slow.addr, json!({})).await;
    let started = std::time::Instant::now();
    let (status, code, _) =
        error_code(p.get("slow.apps.test", "/").send().await.expect("send")).await;
    assert_eq!((status, code.as_str()), (504, "upstream_timeout"));
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
    p.stop().await;
}

#[tokio::test]
async fn slow_upload_is_not_cut_by_the_response_timeout() {
    let p = TestProxy::start_with(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nresponse_timeout_secs = 1\n",
    )
    .await;
    let up = echo().await;
    p.host_route("up", up.addr, json!({})).await;
    // Five chunks 500 ms apart: the upload alone outlasts the timeout.
    let chunks = futures_util::stream::unfold(0u8, |i| async move {
        if i == 5 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        Some((Ok::<_, std::io::Error>(vec![b'u'; 1000]), i + 1))
    });
    let r = p
        .req(reqwest::Method::POST, "up.apps.test", "/upload")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["body_len"], 5000);
    p.stop().await;
}

#[tokio::test]
async fn upstream_dying_before_answering_is_502() {
    let p = TestProxy::start().await;
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Le").await;
            drop(s);
        }
    });
    p.host_route("dying", addr, json!({})).await;
    let (status, code, _) =
        error_code(p.get("dying.apps.test", "/").send().await.expect("send")).await;
    assert_eq!(status, 502);
    assert!(
        code == "upstream_unreachable" || code == "upstream_bad_response",
        "{code}"
    );
    p.stop().await;
}

#[tokio::test]
async fn upstream_speaking_garbage_is_502_bad_response() {
    let p = TestProxy::start().await;
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..2 {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.0\r\n\r\n").await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    p.host_route("garbage", addr, json!({})).await;
    let (status, code, _) =
        error_code(p.get("garbage.apps.test", "/").send().await.expect("send")).await;
    assert_eq!((status, code.as_str()), (502, "upstream_bad_response"));
    p.stop().await;
}

#[tokio::test]
async fn route_connection_limit_refuses_with_429_and_frees_on_completion() {
    let p = TestProxy::start().await;
    let slow = serve(|_req| async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        Response::new(full("done"))
    })
    .await;
    p.host_route("lim", slow.addr, json!({"limits": {"max_connections": 1}}))
        .await;
    let first = tokio::spawn(p.get("lim.apps.test", "/").send());
    // The permit is taken before the upstream is dialled.
    eventually(Duration::from_secs(2), || async { slow.connections() >= 1 }).await;
    let resp = p.get("lim.apps.test", "/").send().await.expect("send");
    assert_eq!(resp.status(), 429, "{:?}", resp.headers());
    assert_eq!(resp.headers()["retry-after"], "1");
    let (status, code, _) = error_code(resp).await;
    assert_eq!((status, code.as_str()), (429, "route_busy"));
    let first = first.await.expect("join").expect("first");
    assert_eq!(first.status(), 200);
    assert_eq!(first.text().await.expect("body"), "done");
    let again = p.get("lim.apps.test", "/").send().await.expect("send");
    assert_eq!(
        again.status(),
        200,
        "the slot is free once the body is done"
    );
    p.stop().await;
}

/// The access line of a proxied request names the caller, the route and
/// the upstream target it went to, carries the correlation id the client
/// got, and keeps the query string (which may hold tokens) out of the log.
#[tokio::test]
async fn the_access_line_names_caller_route_and_upstream_but_not_the_query() {
    let up = echo().await;
    let proxy = process::ChildProxy::serve("").await;
    let route = proxy
        .create_route(json!({
            "owner_type": "app_instance", "owner_id": "logged", "endpoint_name": "web",
            "route_mode": "subdomain", "route_host": "logged",
            "upstream": {"targets": [up.addr.to_string()]},
        }))
        .await;
    let route_id = route["id"].as_str().expect("id").to_owned();
    // The route is served a moment after the API answers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let cid = loop {
        let r = proxy
            .req(
                reqwest::Method::GET,
                "logged.apps.test",
                "/seen/here?token=s3cret",
            )
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("send");
        if r.status() == 200 {
            break r
                .headers()
                .get("x-correlation-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "route never served");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(!cid.is_empty(), "the answer carries a correlation id");
    proxy
        .wait_log(&format!("correlation_id={cid}"), Duration::from_secs(5))
        .await;
    let log = proxy.log();
    let line = log
        .lines()
        .find(|l| l.contains(&cid) && l.contains("status=200"))
        .unwrap_or_else(|| panic!("no access line for {cid}:\n{log}"));
    for want in [
        "path=\"/seen/here\"".to_owned(),
        "user=\"operator\"".to_owned(),
        format!("upstream=\"{}\"", up.addr),
        format!("route_id=\"{route_id}\""),
    ] {
        assert!(line.contains(&want), "{want} missing from: {line}");
    }
    assert!(!log.contains("s3cret"), "the query string reached the log");
}

/// An app server's answer as nginx orders it: its connection fields among
/// the others, names in its own case, a field repeated; `/cid` adds a
/// correlation id of the upstream's own.
pub fn app_answer(target: &str) -> String {
    let own_id = if target.ends_with("/cid") {
        "X-Correlation-Id: upstream-id\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 200 OK\r\nServer: app\r\nDate: Mon, 07 Dec 2026 07:00:00 GMT\r\n\
         X-Mixed-Case: One\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\
         Keep-Alive: timeout=5\r\n{own_id}X-Repeat: a\r\nx-repeat: b\r\n\r\nok"
    )
}

/// An answer no answer step acts on passes its fields on as the upstream
/// wrote them (`headers/verbatim.rs`): names in their case, order and
/// repeats kept, the upstream's connection fields gone, and the upstream's
/// `Date` and the proxy's correlation id once each. An answer with a name a
/// step acts on (here the upstream's own correlation id) still gets it.
#[tokio::test]
async fn an_answer_passes_its_fields_as_the_upstream_wrote_them_with_the_proxys_own_once() {
    let p = TestProxy::start().await;
    let up = raw_answers(app_answer).await;
    p.path_route("a", up, json!({})).await;
    for target in ["/w/a/web/x", "/w/a/web/cid"] {
        let (status, head, body) = raw(
            p.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: apps.test\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "ok"), "{head}");
        assert_eq!(
            header_values(&head, "date"),
            ["Mon, 07 Dec 2026 07:00:00 GMT"],
            "{head}"
        );
        assert_eq!(header_values(&head, "content-length"), ["2"], "{head}");
        assert_eq!(header_values(&head, "x-repeat"), ["a", "b"], "{head}");
        assert_eq!(header_values(&head, "x-mixed-case"), ["One"], "{head}");
        assert_eq!(header_values(&head, "server"), ["app"], "{head}");
        assert!(header_values(&head, "keep-alive").is_empty(), "{head}");
        assert_eq!(header_values(&head, "connection"), ["close"], "{head}");
        let ids = header_values(&head, "x-correlation-id");
        assert_eq!(ids.len(), 1, "{head}");
        assert_eq!(
            ids[0].len(),
            32,
            "the proxy's id, not the upstream's: {head}"
        );
    }
    // Passed on as written: the name's case and the repeat's order.
    let (_, head, _) = raw(
        p.addr,
        "GET /w/a/web/x HTTP/1.1\r\nHost: apps.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.contains("\r\nX-Mixed-Case: One\r\n"), "{head}");
    assert!(
        head.contains("\r\nX-Repeat: a\r\nx-repeat: b\r\n"),
        "{head}"
    );
    p.stop().await;
}

/// A browser's fields no step reads pass to the upstream as the client
/// wrote them (`headers/passed.rs`): names in their case, blanks, the order
/// of a repeated name, each field once, beside the fields the steps read
/// and the proxy's own. A `Connection` field naming one of them still
/// drops it at this hop.
#[tokio::test]
async fn a_browsers_fields_reach_the_upstream_as_written_and_once_each() {
    let p = TestProxy::start().await;
    let up = raw_mirror().await;
    p.path_route("a", up, json!({})).await;
    let browser = "GET /w/a/web/x HTTP/1.1\r\nHost: apps.test\r\n\
        sec-ch-ua-platform: \"Linux\"\r\nUSER-AGENT: Mozilla/5.0 (X11)  \r\n\
        Accept: */*\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: cors\r\n\
        Accept-Language: en\r\nX-App: 1\r\naccept-language: de;q=0.5\r\n\
        Referer: http://apps.test/w/a/web/\r\nPriority: u=1, i\r\n";
    let (status, _, upstream_head) =
        raw(p.addr, &format!("{browser}Connection: close\r\n\r\n")).await;
    assert_eq!(status, 200, "{upstream_head}");
    for line in [
        "\r\nsec-ch-ua-platform: \"Linux\"\r\nUSER-AGENT: Mozilla/5.0 (X11)  \r\n",
        "\r\nSec-Fetch-Site: same-origin\r\n",
        "\r\nAccept-Language: en\r\n",
        "\r\naccept-language: de;q=0.5\r\nReferer: http://apps.test/w/a/web/\r\nPriority: u=1, i\r\n",
    ] {
        assert!(upstream_head.contains(line), "{line:?} in {upstream_head}");
    }
    for (name, values) in [
        ("user-agent", &["Mozilla/5.0 (X11)"][..]),
        ("sec-ch-ua-platform", &["\"Linux\""]),
        ("accept", &["*/*"]),
        ("sec-fetch-site", &["same-origin"]),
        ("sec-fetch-mode", &["cors"]),
        ("accept-language", &["en", "de;q=0.5"]),
        ("x-app", &["1"]),
        ("referer", &["http://apps.test/w/a/web/"]),
        ("priority", &["u=1, i"]),
        ("host", &["apps.test"]),
        ("x-forwarded-host", &["apps.test"]),
    ] {
        assert_eq!(
            header_values(&upstream_head, name),
            values,
            "{name}: {upstream_head}"
        );
    }
    // Named by the client's `Connection`, a field goes no further.
    let (status, _, upstream_head) = raw(
        p.addr,
        &format!("{browser}Connection: close, Referer, User-Agent\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200, "{upstream_head}");
    assert!(
        header_values(&upstream_head, "referer").is_empty(),
        "{upstream_head}"
    );
    assert!(
        header_values(&upstream_head, "user-agent").is_empty(),
        "{upstream_head}"
    );
    assert_eq!(
        header_values(&upstream_head, "accept-language"),
        ["en", "de;q=0.5"]
    );
    p.stop().await;
}

/// The header limit counts the passed fields as it counts the others: a
/// head over it by a `User-Agent` alone is refused with the envelope.
#[tokio::test]
async fn passed_fields_count_toward_the_header_limit() {
    let p =
        TestProxy::start_with("[server]\nlisten = [\"127.0.0.1:0\"]\nmax_header_bytes = 2048\n")
            .await;
    let up = raw_mirror().await;
    p.path_route("a", up, json!({})).await;
    for (agent_len, want) in [(1800, 200), (2100, 431)] {
        let agent = "a".repeat(agent_len);
        let (status, head, body) = raw(
            p.addr,
            &format!(
                "GET /w/a/web/x HTTP/1.1\r\nHost: apps.test\r\nUser-Agent: {agent}\r\n\
                 Connection: close\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(status, want, "{head}\n{body}");
        if want == 431 {
            assert!(body.contains("headers_too_large"), "{body}");
        }
    }
    p.stop().await;
}
