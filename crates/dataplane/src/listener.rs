//! Listeners: accept loops for plain TCP (HTTP/1.1 and h2c prior knowledge)
//! and TLS (ALPN h2 / http/1.1), and the graceful shutdown that stops
//! accepting, lets in-flight requests and open tunnels finish up to the
//! grace deadline, then closes what is left.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::pipeline::{ConnInfo, Proxy};
use crate::server::{h1, h2};

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
            // its largest state for its whole life, and an HTTP/2
            // connection and a TLS stream are several times the size of
            // the HTTP/1.1 loop: boxed, they cost their own connections
            // alone, once each.
            match acceptor {
                None => match protocol_shown(&stream, timeout).await {
                    Some(true) => {
                        Box::pin(h2::serve(stream, proxy, info, &shutdown)).await;
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
                // the HTTP/2 connection's room otherwise.
                Box::pin(h2::serve(tls_stream, proxy, info, &shutdown)).await;
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
