//! HTTP/2 in a real browser: headless Chromium over the TLS listener
//! (ALPN h2) loads a page through the proxy that fetches 24 resources at
//! once, uploads 3 MiB, reads server-sent events and round-trips two
//! cookies (`tests/browser/h2.mjs` drives it). Chromium's HTTP/2 is the
//! one users bring: Huffman-coded and indexed heads, its own windows and
//! priorities, cookies split into one field each.

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::json;

use crate::support::browser;
use crate::support::streams::patterned;
use crate::support::tls::Pki;
use crate::support::{upstream, TestProxy};

/// The page: each check's outcome lands in `data-report`, then
/// `data-done`. Byte `i` of `/r/N` is `(i * 31 + N) % 251`.
const PAGE: &str = r#"<!doctype html>
<title>h2 checks</title>
<body>
<script>
(async () => {
  const report = {};
  const pattern = (n) => { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = (i * 31 + n) % 251; return b; };
  const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
  try {
    const sizes = Array.from({ length: 24 }, (_, i) => 1000 + i * 37171);
    const got = await Promise.all(sizes.map((n) => fetch('/r/' + n).then((r) => r.arrayBuffer())));
    report.downloads = got.every((b, i) => same(new Uint8Array(b), pattern(sizes[i])));
    const up = pattern(3 << 20);
    report.upload = (await (await fetch('/up', { method: 'POST', body: up })).text()) === String(up.length);
    report.sse = await new Promise((resolve) => {
      const es = new EventSource('/sse');
      let n = 0;
      es.onmessage = () => { if (++n === 3) { es.close(); resolve(true); } };
      setTimeout(() => { es.close(); resolve(false); }, 10000);
    });
    await fetch('/set');
    const cookie = await (await fetch('/cookies')).text();
    report.cookie = cookie;
    report.cookies = cookie.split('; ').sort().join('; ') === 'a=1; b=2';
  } catch (e) {
    report.error = String(e);
  }
  report.ok = Boolean(report.downloads && report.upload && report.sse && report.cookies);
  document.body.dataset.report = JSON.stringify(report);
  document.body.dataset.done = '1';
})();
</script>
</body>
"#;

async fn app() -> upstream::Upstream {
    upstream::serve(|req: Request<Incoming>| async move {
        let path = req.uri().path().to_owned();
        let resp = Response::builder();
        if let Some(n) = path.strip_prefix("/r/").and_then(|n| n.parse().ok()) {
            return resp
                .header("content-type", "application/octet-stream")
                .body(upstream::full(patterned(n)))
                .expect("response");
        }
        match path.as_str() {
            "/up" => {
                let body = req.into_body().collect().await.expect("upload").to_bytes();
                resp.body(upstream::full(body.len().to_string()))
                    .expect("response")
            }
            "/sse" => {
                let events = stream::iter((0..3).map(|i| {
                    Ok::<_, std::io::Error>(Frame::data(Bytes::from(format!("data: {i}\n\n"))))
                }));
                resp.header("content-type", "text/event-stream")
                    .body(BodyExt::boxed(StreamBody::new(events)))
                    .expect("response")
            }
            "/set" => resp
                .header("set-cookie", "a=1; Path=/")
                .header("set-cookie", "b=2; Path=/")
                .body(upstream::full("set"))
                .expect("response"),
            "/cookies" => {
                let cookie = req
                    .headers()
                    .get_all("cookie")
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect::<Vec<_>>()
                    .join(" | ");
                resp.body(upstream::full(cookie)).expect("response")
            }
            _ => resp
                .header("content-type", "text/html; charset=utf-8")
                .body(upstream::full(PAGE))
                .expect("response"),
        }
    })
    .await
}

/// Needs the packages `scripts/install-test-deps.sh` installs.
#[tokio::test]
async fn chromium_loads_a_page_over_http2_with_parallel_fetches_upload_sse_and_cookies() {
    let pki = Pki::generate();
    let up = app().await;
    let proxy = TestProxy::start_with(&format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\ntls_listen = [\"127.0.0.1:0\"]\n{}",
        pki.toml()
    ))
    .await;
    proxy.host_route("h2page", up.addr, json!({})).await;
    let tls = proxy.tls_addr.expect("TLS listener");
    let url = format!("https://h2page.apps.test:{}/", tls.port());
    let run = browser::run("h2.mjs", &[&url]).await;
    assert!(run.passed, "browser check failed: {}", run.stdout);
    let stdout = run.stdout;
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(v["allH2"], true);
    assert_eq!(
        v["cookie"], "a=1; b=2",
        "one Cookie field, joined, in the order sent"
    );
}
