//! Forwarding to the upstream: a keep-alive connection pool, the upstream
//! request built from the client's, and upstream failures classified into
//! the error codes the contract names.

mod pool;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use pp_model::adapter::UpstreamHostHeader;
use pp_model::table::CompiledRoute;
use pp_model::CorrelationId;

pub use self::pool::UpstreamBody;
use self::pool::{DialError, Dialer, Pool};
use crate::body::{boxed, is_body_too_large, OnDone, ProxyBody};
use crate::error::ProxyError;
use crate::headers::{forwarded, hop, X_CORRELATION_ID};

/// Idle connections kept per upstream authority.
const MAX_IDLE_PER_AUTHORITY: usize = 1024;

/// The shared upstream client. One pool for every route: connections are
/// keyed by upstream authority, so routes to one app share warm sockets.
#[derive(Clone, Debug)]
pub struct Upstreams {
    pool: Arc<Pool>,
    dialer: Dialer,
    response_timeout: Duration,
}

impl Upstreams {
    #[must_use]
    pub fn new(connect_timeout: Duration, response_timeout: Duration, idle: Duration) -> Self {
        Self {
            pool: Pool::new(idle, MAX_IDLE_PER_AUTHORITY),
            dialer: Dialer { connect_timeout },
            response_timeout,
        }
    }

    /// Sends `req` (origin-form, `Host` set) to `authority` and waits for
    /// the response head within the response timeout. The body then
    /// streams with no deadline of its own. A WebSocket handshake
    /// (`upgrade`) goes on a connection of its own.
    ///
    /// # Errors
    /// The upstream failure as a [`ProxyError`].
    pub async fn send(
        &self,
        req: Request<ProxyBody>,
        authority: &str,
        upgrade: bool,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        // The response timeout starts once the request body is sent: an
        // upload of gigabytes over a slow link may take far longer than
        // the upstream needs to answer it.
        let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
        let req = if http_body::Body::is_end_stream(req.body()) {
            // Nothing to send: the connection may never poll an empty body.
            let _ = sent_tx.send(());
            req
        } else {
            req.map(|b| {
                boxed(OnDone::new(b, move || {
                    let _ = sent_tx.send(());
                }))
            })
        };
        let fut = self.forward(req, authority, upgrade);
        tokio::pin!(fut);
        tokio::select! {
            r = &mut fut => return r,
            _ = sent_rx => {}
        }
        match tokio::time::timeout(self.response_timeout, fut).await {
            Err(_) => Err(ProxyError::UpstreamTimeout),
            Ok(r) => r,
        }
    }

    async fn forward(
        &self,
        mut req: Request<ProxyBody>,
        authority: &str,
        upgrade: bool,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        if upgrade {
            let mut sender = self
                .dialer
                .dial_upgradable(authority)
                .await
                .map_err(dial_error)?;
            let resp = sender.send_request(req).await.map_err(|e| classify(&e))?;
            return Ok(resp.map(UpstreamBody::detached));
        }
        loop {
            let conn = match self.pool.checkout(authority).await {
                Some(c) => c,
                None => self.dialer.dial(authority).await.map_err(dial_error)?,
            };
            let reused = conn.reused;
            let (conn, result) = pool::exchange(conn, req).await;
            match result {
                Ok(resp) => {
                    if http_body::Body::is_end_stream(resp.body()) {
                        // No body (204, 304, HEAD, Content-Length: 0): it
                        // may never be polled, and the exchange is over.
                        if let Some(conn) = conn {
                            self.pool.give_back(conn).await;
                        }
                        return Ok(resp.map(UpstreamBody::detached));
                    }
                    let pool = Arc::clone(&self.pool);
                    return Ok(resp.map(|b| UpstreamBody::pooled(b, conn, pool)));
                }
                Err(mut e) => match e.take_message() {
                    // The upstream closed a pooled connection as the request
                    // went out, before a byte of it was written: the request
                    // was never seen, so another connection may carry it.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(classify(e.error())),
                },
            }
        }
    }
}

fn dial_error(e: DialError) -> ProxyError {
    match e {
        DialError::Timeout => ProxyError::UpstreamTimeout,
        DialError::Io(ref io) if io.kind() == std::io::ErrorKind::TimedOut => {
            ProxyError::UpstreamTimeout
        }
        DialError::Io(_) | DialError::Handshake(_) => {
            tracing::debug!(error = %e, "upstream unreachable");
            ProxyError::UpstreamUnreachable
        }
    }
}

/// Maps a connection error onto the contract's codes by walking its causes.
fn classify(err: &hyper::Error) -> ProxyError {
    if let Some(limit) = is_body_too_large(err) {
        return ProxyError::PayloadTooLarge { limit };
    }
    if err.is_parse() || err.is_parse_status() {
        return ProxyError::UpstreamProtocol;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return ProxyError::UpstreamTimeout;
            }
        }
        cur = e.source();
    }
    tracing::debug!(error = %err, "upstream exchange failed");
    ProxyError::UpstreamUnreachable
}

/// Picks one of the route's targets, round-robin. Health-aware
/// least-connections replaces this when upstream health lands.
#[derive(Debug, Default)]
pub struct Picker {
    next: AtomicUsize,
}

impl Picker {
    /// The index into the route's `upstream.targets` of the next target.
    #[must_use]
    pub fn pick(&self, route: &CompiledRoute) -> usize {
        let targets = route.route.upstream.targets.len();
        self.next.fetch_add(1, Ordering::Relaxed) % targets.max(1)
    }
}

/// Facts about the client side of one request.
#[derive(Debug, Clone, Copy)]
pub struct ClientFacts<'a> {
    pub correlation_id: &'a CorrelationId,
    pub client_ip: std::net::IpAddr,
    /// The authority the browser addressed, as sent (`host[:port]`).
    pub public_authority: &'a str,
    pub proto: &'a str,
    pub upgrade: bool,
}

/// Rewrites the client's request head into the upstream request.
///
/// # Errors
/// [`ProxyError::BadRequest`] when the mapped target is not a valid URI.
pub fn upstream_request(
    mut req: Request<ProxyBody>,
    route: &CompiledRoute,
    target: &str,
    upstream_path: &str,
    inc: &ClientFacts<'_>,
) -> Result<Request<ProxyBody>, ProxyError> {
    // Origin-form (RFC 9112 §3.2.1): the connection is already to `target`.
    let same_path = req.uri().path() == upstream_path;
    let pq = match (same_path, req.uri().path_and_query()) {
        (true, Some(pq)) => pq.clone(),
        _ => {
            let s = match req.uri().query() {
                Some(q) => format!("{upstream_path}?{q}"),
                None => upstream_path.to_owned(),
            };
            PathAndQuery::from_maybe_shared(bytes::Bytes::from(s)).map_err(|_| {
                ProxyError::BadRequest("the request target cannot be forwarded".into())
            })?
        }
    };
    *req.uri_mut() = Uri::from(pq);
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    hop::strip(headers, inc.upgrade);
    // The client's Host value, when it is the public authority (HTTP/1.1;
    // HTTP/2 carries it in `:authority`), is reused rather than copied.
    let client_host = headers
        .get(header::HOST)
        .filter(|v| v.as_bytes() == inc.public_authority.as_bytes())
        .cloned();
    forwarded::set(
        headers,
        &forwarded::ForwardedFacts {
            client_ip: inc.client_ip,
            host: inc.public_authority,
            proto: inc.proto,
            prefix: &route.public_prefix,
        },
        client_host.clone(),
    );
    let host = match route.adapter.upstream_host_header {
        UpstreamHostHeader::Preserve => {
            client_host.or_else(|| HeaderValue::from_str(inc.public_authority).ok())
        }
        UpstreamHostHeader::Target => HeaderValue::from_str(target).ok(),
    };
    if let Some(v) = host {
        headers.insert(header::HOST, v);
    }
    if let Ok(v) = HeaderValue::from_str(&inc.correlation_id.0) {
        headers.insert(X_CORRELATION_ID, v);
    }
    Ok(req)
}
