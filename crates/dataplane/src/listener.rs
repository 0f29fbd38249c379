//! Listeners: accept loops for plain TCP (HTTP/1.1 and h2c prior knowledge)
//! and TLS (ALPN h2 / http/1.1), and the graceful shutdown that stops
//! accepting, lets in-flight requests and open tunnels finish up to the
//! grace deadline, then closes what is left.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::pipeline::{ConnInfo, Proxy};
use crate::server::coalesce::{Coalesce, Turns};
use crate::server::streams::{Running, Streams};
use crate::server::{h1, ClientBody, H2Body};
use crate::settings::Settings;

/// One bound socket and, for HTTPS, its TLS acceptor.
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.tcp.local_addr().ok())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Polls of an HTTP/2 connection at most to end one turn: each sends what
/// the one before left held; past this the connection's task is woken
/// instead, so one connection cannot keep its worker.
const END_TURNS_MAX: u32 = 4;

/// Time the tunnels get after the drain signal to exchange Close frames.
const TUNNEL_CLOSE_WAIT: Duration = Duration::from_secs(6);

/// Serves every listener until `shutdown` fires, then drains and returns.
pub async fn serve(proxy: Arc<Proxy>, listeners: Vec<Listener>, shutdown: CancellationToken) {
    let conns = TaskTracker::new();
    let mut accept_loops = Vec::new();
    for l in listeners {
        accept_loops.push(tokio::spawn(accept_loop(
            l,
            Arc::clone(&proxy),
            conns.clone(),
            shutdown.clone(),
        )));
    }
    shutdown.cancelled().await;
    for a in accept_loops {
        let _ = a.await;
    }
    let grace = proxy.settings().shutdown_grace;
    tracing::info!(
        connections = conns.len(),
        tunnels = proxy.open_tunnels(),
        grace_secs = grace.as_secs_f64(),
        "shutting down: no longer accepting, draining"
    );
    conns.close();
    proxy.tunnels().close();
    let drained = tokio::time::timeout(grace, async {
        conns.wait().await;
        proxy.tunnels().wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            connections = conns.len(),
            tunnels = proxy.open_tunnels(),
            "grace period over: closing what is left"
        );
        proxy.drain_tunnels();
        let _ = tokio::time::timeout(TUNNEL_CLOSE_WAIT, proxy.tunnels().wait()).await;
    }
    tracing::info!("drained");
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits until a plain connection has shown which protocol it speaks: the
/// first bytes either diverge from the HTTP/2 preface (`Some(false)`:
/// HTTP/1.1) or complete it (`Some(true)`). A client that sends nothing (or
/// stops mid-preface) within the header-read timeout is dropped (`None`);
/// protocol detection itself has no timer.
async fn protocol_shown(stream: &tokio::net::TcpStream, timeout: Duration) -> Option<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 24];
    loop {
        match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return None,
            Ok(Ok(n)) => {
                if buf[..n] != H2_PREFACE[..n] {
                    return Some(false);
                }
                if n >= H2_PREFACE.len() {
                    return Some(true);
                }
            }
        }
        // A partial preface: wait for more bytes without spinning.
        tokio::time::sleep(Duration::from_millis(5)).await;
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
    }
}

/// hyper's server, for HTTP/2 connections only (HTTP/1.1 is the proxy's
/// own, `server/h1.rs`): one a connection, its streams run by the
/// connection's task (`server/streams.rs`).
fn h2_builder(s: &Settings, streams: Streams) -> http2::Builder<Streams> {
    let mut b = http2::Builder::new(streams);
    b.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(s.max_header_bytes * 2).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(Some(256));
    b
}

/// The HTTP/1.1 server's limits: hyper's old bound on a head (twice the
/// pipeline's limit, so heads over the limit still get the envelope).
fn h1_limits(proxy: &Proxy) -> h1::Limits {
    let s = proxy.settings();
    h1::Limits {
        header_read_timeout: s.header_read_timeout,
        body_read_timeout: s.body_read_timeout,
        send_timeout: s.send_timeout,
        max_head: (s.max_header_bytes * 2).max(16 * 1024),
    }
}

async fn accept_loop(
    listener: Listener,
    proxy: Arc<Proxy>,
    conns: TaskTracker,
    shutdown: CancellationToken,
) {
    let tls = listener.tls.is_some();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            a = listener.tcp.accept() => a,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let info = ConnInfo::new(remote, tls);
        let proxy = Arc::clone(&proxy);
        let shutdown = shutdown.clone();
        let acceptor = listener.tls.clone();
        conns.spawn(async move {
            let timeout = proxy.settings().header_read_timeout;
            let limits = h1_limits(&proxy);
            // Only plain HTTP/1.1 is served inline. A task is as large as
            // its largest state for its whole life, and hyper's HTTP/2
            // connection and a TLS stream are several times the size of
            // the HTTP/1.1 loop: boxed, they cost their own connections
            // alone, once each.
            match acceptor {
                None => match protocol_shown(&stream, timeout).await {
                    Some(true) => {
                        Box::pin(serve_h2(stream, proxy, info, &shutdown)).await;
                    }
                    Some(false) => {
                        let (r, w) = stream.into_split();
                        h1::serve(
                            h1::Reader::Tcp(r),
                            h1::WriteHalf::Tcp(w),
                            proxy,
                            info,
                            limits,
                            shutdown,
                        )
                        .await;
                    }
                    None => tracing::debug!(%remote, "no request within the header-read timeout"),
                },
                Some(acc) => {
                    Box::pin(serve_tls(acc, stream, proxy, info, limits, shutdown)).await;
                }
            }
        });
    }
}

/// A TLS connection: the handshake, then HTTP/2 (by ALPN) or HTTP/1.1.
async fn serve_tls(
    acc: TlsAcceptor,
    stream: TcpStream,
    proxy: Arc<Proxy>,
    info: ConnInfo,
    limits: h1::Limits,
    shutdown: CancellationToken,
) {
    let remote = info.remote;
    match tokio::time::timeout(limits.header_read_timeout, acc.accept(stream)).await {
        Ok(Ok(tls_stream)) => {
            if tls_stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                // Boxed too: TLS connections serving HTTP/1.1 would carry
                // hyper's HTTP/2 connection's room otherwise.
                Box::pin(serve_h2(tls_stream, proxy, info, &shutdown)).await;
            } else {
                let (r, w) = tokio::io::split(tls_stream);
                h1::serve(
                    h1::Reader::Stream(Box::new(r)),
                    h1::WriteHalf::Stream(Box::new(w)),
                    proxy,
                    info,
                    limits,
                    shutdown,
                )
                .await;
            }
        }
        Ok(Err(e)) => tracing::debug!(error = %e, %remote, "tls handshake failed"),
        Err(_) => tracing::debug!(%remote, "tls handshake timed out"),
    }
}

/// An HTTP/2 connection, on hyper's server, its streams run in its task
/// (`server/streams.rs`) and its writes gathered across them
/// (`server/coalesce.rs`).
async fn serve_h2<S>(io: S, proxy: Arc<Proxy>, info: ConnInfo, shutdown: &CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let turns = Turns::default();
    let (running, streams) = Running::new();
    let builder = h2_builder(proxy.settings(), streams);
    let answers = turns.clone();
    // The pipeline's future is made here and only wrapped: an async block
    // around it would hold hyper's request beside it, and copy it in.
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let timeout = proxy.settings().body_read_timeout;
        let req = req.map(|b| ClientBody::H2(H2Body::new(b, timeout)));
        let answering = answers.answering();
        Arc::clone(&proxy).handle(req, info.clone(), answering)
    });
    let io = TokioIo::new(Coalesce::new(io, turns.clone()));
    serve_conn(&builder, running, io, svc, &turns, shutdown).await;
}

/// Drives one connection and its streams until it ends or `shutdown`
/// fires, then drains it gracefully. Each poll of the connection is a turn
/// of `turns`.
async fn serve_conn<I, S>(
    builder: &http2::Builder<Streams>,
    mut running: Running,
    io: I,
    svc: S,
    turns: &Turns,
    shutdown: &CancellationToken,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<crate::ProxyBody>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut conn = std::pin::pin!(Some(builder.serve_connection(io, svc)));
    let stop = shutdown.cancelled();
    tokio::pin!(stop);
    let mut draining = false;
    // One poll of the connection is one turn, the drain's polls too. The
    // streams woken since the last turn go first, so the answers they
    // queue are written by this turn's poll of the connection; the streams
    // it takes in start right after it, so their upstream requests go out
    // in this turn too. The turn's writes are held (`server/coalesce.rs`):
    // while a turn leaves bytes held, the connection is polled again at
    // once, a turn of its own, whose flush sends them all in one write.
    let res = std::future::poll_fn(|cx| {
        let Some(mut c) = conn.as_mut().as_pin_mut() else {
            return Poll::Ready(Ok(()));
        };
        if !draining && stop.as_mut().poll(cx).is_ready() {
            draining = true;
            c.as_mut().graceful_shutdown();
        }
        turns.next();
        let _ = running.poll(cx);
        // One step: the connection, then the streams it took in.
        let mut step = |cx: &mut std::task::Context<'_>| {
            let res = c.as_mut().poll(cx);
            let _ = running.poll(cx);
            res
        };
        let res = step(cx);
        end_turn(turns, cx, res, step)
    })
    .await;
    if let Err(e) = res {
        if draining {
            tracing::debug!(error = %e, "connection ended with an error while draining");
        } else {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
    // The connection has closed; dropping it fails what its streams still
    // wait on (a reset stream's service future, say), and they end at
    // their next poll, as spawned ones would.
    conn.set(None);
    if running.len() > 0 {
        std::future::poll_fn(|cx| running.poll(cx)).await;
    }
}

/// Ends a turn that left bytes held: polls the connection again, a turn
/// of its own each time, while bytes stay held, at most [`END_TURNS_MAX`]
/// times; past that the task is woken to come back later.
fn end_turn<T>(
    turns: &Turns,
    cx: &mut std::task::Context<'_>,
    mut res: Poll<T>,
    mut poll: impl FnMut(&mut std::task::Context<'_>) -> Poll<T>,
) -> Poll<T> {
    let mut ends = 0;
    while res.is_pending() && turns.holding() {
        if ends == END_TURNS_MAX {
            cx.waker().wake_by_ref();
            break;
        }
        ends += 1;
        turns.next();
        res = poll(cx);
    }
    res
}

#[cfg(test)]
mod tests;
