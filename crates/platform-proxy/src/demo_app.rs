//! The built-in demo upstream that `platform-proxy demo` runs on loopback.
//!
//! It exercises what an identity-aware proxy most often breaks: HTTP Upgrade
//! to WebSocket (RFC 6455), unbuffered streaming (server-sent events),
//! root-relative redirects and `Path=/` cookies (RFC 6265 §5.2.4) that the
//! proxy must map under its public prefix, and the `X-Forwarded-*` headers it
//! must add. The app believes it lives at `/`, so every URL in its pages is
//! relative: the same page works at `http://demo.apps.localhost:PORT/` and at
//! `http://apps.localhost:PORT/w/demo/web/`.

use pp_model::envelope::escape_html;
use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// How long an HTTP connection may take to finish in-flight requests once
/// shutdown starts, before it is dropped.
const CONNECTION_GRACE: Duration = Duration::from_secs(2);
/// How long a WebSocket waits for the client's Close reply (RFC 6455 §7.1.1).
const WS_CLOSE_GRACE: Duration = Duration::from_secs(1);
const SSE_PERIOD: Duration = Duration::from_secs(1);
const VISITS_COOKIE: &str = "demo_visits";

/// Starts the demo app on `listener`; runs until `shutdown` is cancelled.
///
/// Returns once every connection, WebSocket and event stream it started has
/// ended; each of them watches `shutdown` too, so that takes at most
/// [`CONNECTION_GRACE`].
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    // EMFILE and friends: back off rather than spin.
                    tracing::warn!(%err, "demo app: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let app = App {
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
        };
        tracker.spawn(serve_connection(stream, app));
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// What every request handler needs: the shutdown signal, and the tracker to
/// register the tasks it spawns (WebSocket echo loops, SSE tickers).
#[derive(Clone)]
struct App {
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

async fn serve_connection(stream: TcpStream, app: App) {
    let shutdown = app.shutdown.clone();
    let service = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.route(req)) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(err) = res {
                tracing::debug!(%err, "demo app: connection ended with an error");
            }
            return;
        }
        () = shutdown.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    if tokio::time::timeout(CONNECTION_GRACE, conn).await.is_err() {
        tracing::debug!("demo app: connection dropped after the shutdown grace period");
    }
}

impl App {
    fn route(&self, req: Request<Incoming>) -> Response<Body> {
        let known = matches!(
            req.uri().path(),
            "/" | "/ws" | "/events" | "/redirect" | "/cookie" | "/healthz"
        );
        if !known {
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        match req.uri().path() {
            "/" => html(INDEX_HTML),
            "/ws" => self.websocket(req),
            "/events" => self.events(),
            "/redirect" => {
                let mut resp = text(StatusCode::FOUND, "redirecting to /\n");
                // Root-relative on purpose: the proxy must map it under its prefix.
                resp.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static("/"));
                resp
            }
            "/cookie" => cookie_page(req.headers()),
            _ => text(StatusCode::OK, "ok\n"),
        }
    }

    /// Accepts an HTTP/1.1 Upgrade (RFC 6455 §4.2) and echoes every text and
    /// binary message back unchanged until the client closes or we shut down.
    fn websocket(&self, mut req: Request<Incoming>) -> Response<Body> {
        let headers = req.headers();
        let upgrade_asked = header_has_token(headers, &header::CONNECTION, "upgrade")
            && header_has_token(headers, &header::UPGRADE, "websocket");
        let Some(key) = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .filter(|_| upgrade_asked)
        else {
            let mut resp = text(
                StatusCode::UPGRADE_REQUIRED,
                "this endpoint speaks WebSocket only\n",
            );
            resp.headers_mut()
                .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            return resp;
        };
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            // RFC 6455 §4.4: name the version we do speak.
            let mut resp = text(
                StatusCode::UPGRADE_REQUIRED,
                "unsupported WebSocket version\n",
            );
            resp.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return resp;
        }
        let accept = derive_accept_key(key.as_bytes());
        let protocol = first_offered_protocol(headers);

        let mut resp = empty(StatusCode::SWITCHING_PROTOCOLS);
        let out = resp.headers_mut();
        out.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(value) = HeaderValue::from_str(&accept) {
            out.insert(header::SEC_WEBSOCKET_ACCEPT, value);
        }
        if let Some(value) = protocol {
            out.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
        }

        let on_upgrade = hyper::upgrade::on(&mut req);
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        None,
                    )
                    .await;
                    echo(ws, shutdown).await;
                }
                Err(err) => tracing::debug!(%err, "demo app: WebSocket upgrade failed"),
            }
        });
        resp
    }

    /// A server-sent events clock (WHATWG HTML §9.2): one event a second,
    /// each written as its own body frame so it leaves at once.
    fn events(&self) -> Response<Body> {
        let (tx, mut rx) = mpsc::channel::<Frame<Bytes>>(4);
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            let mut ticks = tokio::time::interval(SSE_PERIOD);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for id in 1_u64.. {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tx.closed() => break, // the client went away
                    _ = ticks.tick() => {}
                }
                let event = format!("id: {id}\ndata: {}\n\n", rfc3339_utc(SystemTime::now()));
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    sent = tx.send(Frame::data(Bytes::from(event))) => if sent.is_err() { break },
                }
            }
        });
        let frames = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|f| f.map(Ok)));
        let mut resp = Response::new(StreamBody::new(frames).boxed_unsync());
        let out = resp.headers_mut();
        out.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Asks nginx-style buffering proxies in front of us not to hold events.
        out.insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
        resp
    }
}

async fn echo<S>(mut ws: WebSocketStream<S>, shutdown: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::select! {
            () = shutdown.cancelled() => {
                let frame = CloseFrame { code: CloseCode::Away, reason: "server shutting down".into() };
                if ws.close(Some(frame)).await.is_ok() {
                    // Give the client a moment to answer our Close.
                    let _ = tokio::time::timeout(WS_CLOSE_GRACE, async {
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                }
                return;
            }
            msg = ws.next() => msg,
        };
        match msg {
            Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                if ws.send(msg).await.is_err() {
                    return;
                }
            }
            // tungstenite answers Ping and Close itself; the next read
            // flushes the reply and then reports the end of the stream.
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    }
}

/// `/cookie`: counts visits in a `Path=/` cookie and shows the forwarded
/// headers the proxy added, so a person can see both rewrites at work.
fn cookie_page(headers: &HeaderMap) -> Response<Body> {
    let visits = visits_from_cookies(headers).saturating_add(1);
    let mut rows = String::new();
    for name in [
        "x-forwarded-host",
        "x-forwarded-prefix",
        "x-forwarded-proto",
        "x-forwarded-for",
    ] {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let shown = if values.is_empty() {
            "(absent)".to_owned()
        } else {
            escape_html(&values.join(", "))
        };
        rows.push_str(&format!("<tr><th>{name}</th><td>{shown}</td></tr>\n"));
    }
    let page = COOKIE_HTML
        .replace("{visits}", &visits.to_string())
        .replace("{rows}", &rows);
    let mut resp = html(page);
    let out = resp.headers_mut();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let cookie = format!("{VISITS_COOKIE}={visits}; Path=/; HttpOnly; SameSite=Lax");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        out.insert(header::SET_COOKIE, value);
    }
    resp
}

/// The `demo_visits` count from the request's `Cookie` headers (RFC 6265
/// §5.4), 0 when absent or not a number.
fn visits_from_cookies(headers: &HeaderMap) -> u64 {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == VISITS_COOKIE)
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

/// The first protocol of the first `Sec-WebSocket-Protocol` header, which
/// RFC 6455 §4.2.2 lets the server select.
fn first_offered_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let offered = headers.get(header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
    let first = offered.split(',').map(str::trim).find(|p| !p.is_empty())?;
    HeaderValue::from_str(first).ok()
}

/// Whether a comma-separated header (RFC 9110 §5.6.1) lists `token`.
fn header_has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// `2024-02-29T12:34:56.789Z` (RFC 3339, UTC), without a date crate.
fn rfc3339_utc(at: SystemTime) -> String {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date: Howard Hinnant's
/// `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>),
/// restricted to dates after the epoch.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed_unsync());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn html(page: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(page.into()).boxed_unsync());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()).boxed_unsync());
    *resp.status_mut() = status;
    resp
}

/// The pages' shared CSS, as a macro so `concat!` can splice it into them.
macro_rules! page_style {
    () => {
        "body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;\
color:#1d2330;background:#f6f7f9}h1{font-size:1.5rem}h2{font-size:1.1rem;margin:0 0 .5rem}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:1rem}\
section{background:#fff;border:1px solid #d9dde5;border-radius:8px;padding:1rem}\
ol{font:13px/1.4 ui-monospace,monospace;height:12rem;overflow-y:auto;margin:0;padding-left:2.5rem;\
background:#f0f2f5;border-radius:4px}th{text-align:left;padding-right:1rem}code{background:#eceff3;padding:0 .2rem}\
#status{font-weight:600}.ok{color:#1a7f37}.bad{color:#b42318}"
    };
}

/// `/`: one self-contained page (no external resources) with the WebSocket
/// and SSE panels; `tests/browser/demo.mjs` reads its `data-*` counters.
const INDEX_HTML: &str = concat!(
    r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>platform-proxy demo</title>
<style>"##,
    page_style!(),
    r##"</style>
</head>
<body data-ws-echoes="0" data-sse-events="0">
<h1>platform-proxy demo</h1>
<p>This app runs on loopback behind platform-proxy and believes it lives at <code>/</code>.
Every link and connection on this page is relative, so it works under whatever prefix the proxy mounts it.</p>
<p id="status">starting…</p>
<div class="grid">
<section>
<h2>WebSocket echo</h2>
<p>Opens a WebSocket to <code>ws</code> beside this page and sends <code>hello N</code> every second;
the app sends each message straight back. Echoes arriving prove the proxy passes the HTTP Upgrade through.</p>
<p>Echoes received: <span id="ws-count">0</span></p>
<ol id="ws-log"></ol>
</section>
<section>
<h2>Server-sent events clock</h2>
<p>An <code>EventSource</code> on <code>events</code> receives the server's UTC time once a second.
A steady tick proves the proxy streams responses instead of buffering them.</p>
<p>Events received: <span id="sse-count">0</span></p>
<ol id="sse-log"></ol>
</section>
<section>
<h2>Redirects and cookies</h2>
<p><a href="redirect">redirect</a> answers <code>302 Location: /</code>. The proxy must map that under
its public prefix, so you land back on this page rather than on the proxy's own root.</p>
<p><a href="cookie">cookie</a> sets <code>demo_visits</code> with <code>Path=/</code>, counts your visits
and shows the <code>X-Forwarded-*</code> headers the app received. The proxy must scope the cookie to this app.</p>
</section>
</div>
<script>
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const state = { ws: 'connecting', sse: 'connecting' };
  let echoes = 0, events = 0, sent = 0;

  function showStatus() {
    const el = $('status');
    el.textContent = 'WebSocket: ' + state.ws + ' | SSE: ' + state.sse;
    el.className = state.ws === 'open' && state.sse === 'open' ? 'ok' : 'bad';
  }
  function append(list, line) {
    const item = document.createElement('li');
    item.textContent = line;
    list.appendChild(item);
    while (list.children.length > 50) list.firstElementChild.remove();
    list.scrollTop = list.scrollHeight;
  }

  function connectWs() {
    // Relative to this page, so the proxy's prefix is kept.
    const url = new URL('ws', location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(url.href);
    let timer = null;
    const hello = () => { sent += 1; ws.send('hello ' + sent); };
    ws.onopen = () => { state.ws = 'open'; showStatus(); hello(); timer = setInterval(hello, 1000); };
    ws.onmessage = (ev) => {
      echoes += 1;
      document.body.dataset.wsEchoes = String(echoes);
      $('ws-count').textContent = String(echoes);
      append($('ws-log'), typeof ev.data === 'string' ? ev.data : '[binary message]');
    };
    ws.onerror = () => { state.ws = 'error'; showStatus(); };
    ws.onclose = (ev) => {
      clearInterval(timer);
      state.ws = 'closed (' + ev.code + '), retrying';
      showStatus();
      setTimeout(connectWs, 2000);
    };
  }

  function connectSse() {
    const source = new EventSource('events');
    source.onopen = () => { state.sse = 'open'; showStatus(); };
    source.onmessage = (ev) => {
      events += 1;
      document.body.dataset.sseEvents = String(events);
      $('sse-count').textContent = String(events);
      append($('sse-log'), '#' + ev.lastEventId + ' ' + ev.data);
    };
    source.onerror = () => {
      state.sse = source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting';
      showStatus();
    };
  }

  showStatus();
  connectWs();
  connectSse();
})();
</script>
</body>
</html>
"##
);

const COOKIE_HTML: &str = concat!(
    r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>platform-proxy demo: cookie</title>
<style>"##,
    page_style!(),
    r##"</style>
</head>
<body>
<h1>Visits: <span id="visits">{visits}</span></h1>
<p>This page read <code>demo_visits</code> from your request and set it to the count above with
<code>Path=/; HttpOnly; SameSite=Lax</code>. Reload to count up. The proxy rewrites the cookie's path to
its public prefix, so the cookie reaches this app only.</p>
<h2>Forwarded headers this app received</h2>
<table>
{rows}</table>
<p><a href="./">Back to the demo</a></p>
</body>
</html>
"##
);

#[cfg(test)]
mod tests;
