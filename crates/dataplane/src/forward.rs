//! Forwarding to the upstream: a keep-alive connection pool, the upstream
//! request built from the client's, and upstream failures classified into
//! the error codes the contract names.

mod h1;
mod pool;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{request, Method, Request, Response, Uri, Version};
use pp_model::adapter::UpstreamHostHeader;
use pp_model::table::CompiledRoute;

pub use self::h1::UpstreamError;
use self::h1::{Conn, Framing, Head};
pub use self::pool::UpstreamBody;
use self::pool::{DialError, Dialer, Pool};
use crate::body::{is_body_timeout, is_body_too_large, ProxyBody};
use crate::error::ProxyError;
use crate::headers::{forwarded, hop, remove_where, spare, Added, Present, Sink, X_CORRELATION_ID};

/// Idle connections kept per upstream authority.
const MAX_IDLE_PER_AUTHORITY: usize = 1024;

/// The shared upstream client. One pool for every route: connections are
/// keyed by upstream authority, so routes to one app share warm sockets.
#[derive(Clone, Debug)]
pub struct Upstreams {
    pool: Arc<Pool>,
    dialer: Dialer,
    response_timeout: Duration,
    /// Whether a large answer body may be spliced to the client
    /// (`Settings::splice`); without, every body is read as frames.
    splice_answers: bool,
}

impl Upstreams {
    #[must_use]
    pub fn new(
        connect_timeout: Duration,
        response_timeout: Duration,
        idle: Duration,
        splice_answers: bool,
    ) -> Self {
        Self {
            pool: Pool::new(idle, MAX_IDLE_PER_AUTHORITY),
            dialer: Dialer { connect_timeout },
            response_timeout,
            splice_answers,
        }
    }

    /// Sends `req` (origin-form, `Host` set) with the proxy's `added`
    /// headers to `authority` and waits for
    /// the response head within the response timeout, which starts once
    /// the request body has been sent. The body then streams with no
    /// deadline of its own. A WebSocket handshake (`upgrade`) goes on a
    /// connection of its own. With `verbatim`, an answer that needs none of
    /// the answer steps carries its fields as they came, for an HTTP/1.1
    /// client (`headers::verbatim`); without, every answer's fields are in
    /// its map.
    ///
    /// The request is written into a pooled connection's buffer here, at
    /// the call; the future returned only exchanges it, so it holds the
    /// connection and the method, not the request (a few hundred bytes in
    /// the caller's future rather than 1.4 KiB). A fresh connection's dial
    /// and a protocol switch run in boxes of their own.
    ///
    /// The future's output is the upstream failure as a [`ProxyError`].
    pub fn send<'a, A>(
        &'a self,
        mut req: Request<ProxyBody>,
        added: Added,
        authority: A,
        upgrade: bool,
        verbatim: bool,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, ProxyError>> + Send + 'a
    where
        A: AsRef<str> + Send + Sync + 'a,
    {
        let started = if upgrade {
            added.merge_into(req.headers_mut());
            // Boxed: hyper's handshake future is large, and rare.
            Started::Elsewhere(Box::pin(async move {
                self.send_upgrade(req, authority.as_ref()).await
            }))
        } else {
            let (parts, body) = req.into_parts();
            match self.pool.checkout(authority.as_ref()) {
                Some(conn) => match start(conn, parts, added, body) {
                    Ok((conn, method)) => Started::Pooled(conn, method, authority),
                    Err(e) => Started::Failed(e),
                },
                None => Started::Elsewhere(Box::pin(async move {
                    self.dial_and_send(parts, added, body, authority.as_ref(), verbatim)
                        .await
                })),
            }
        };
        async move {
            match started {
                Started::Pooled(conn, method, authority) => {
                    self.answer(conn, method, authority.as_ref(), verbatim)
                        .await
                }
                Started::Elsewhere(sending) => sending.await,
                Started::Failed(e) => Err(e),
            }
        }
    }

    /// [`Upstreams::send`] on a connection dialled for it.
    async fn dial_and_send(
        &self,
        parts: request::Parts,
        added: Added,
        body: ProxyBody,
        authority: &str,
        verbatim: bool,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let conn = self.dialer.dial(authority).await.map_err(dial_error)?;
        let (conn, method) = start(conn, parts, added, body)?;
        self.answer(conn, method, authority, verbatim).await
    }

    /// Sends the exchange started on `conn` and waits for its answer's
    /// head.
    async fn answer(
        &self,
        mut conn: Box<Conn>,
        method: Method,
        authority: &str,
        verbatim: bool,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        loop {
            match pool::exchange(&mut conn, &method, verbatim, self.response_timeout).await {
                Ok(head) => return Ok(self.response(conn, head)),
                // The upstream closed a pooled connection as the request
                // went out and answered nothing: an idempotent request
                // without a body goes again on a fresh connection (RFC
                // 9112 §9.3.1), once.
                Err(e) if conn.may_retry(&e) && method.is_idempotent() => {
                    tracing::debug!(error = %e, "a pooled upstream connection had closed; sending again");
                    let head = conn.take_head().unwrap_or_default();
                    conn = Box::pin(self.dialer.dial(authority))
                        .await
                        .map_err(dial_error)?;
                    conn.start_with(head);
                }
                Err(e) => return Err(classify(&e)),
            }
        }
    }

    /// The response of a completed head: a body without bytes gives its
    /// connection back at once; any other carries it while it streams.
    fn response(&self, conn: Box<Conn>, head: Head) -> Response<UpstreamBody> {
        let (body, splice) = if head.framing == Framing::Done {
            if head.keep_alive {
                self.pool.release(conn);
            }
            (UpstreamBody::empty(), None)
        } else {
            UpstreamBody::pooled(
                conn,
                head.framing,
                head.keep_alive,
                Arc::clone(&self.pool),
                self.splice_answers,
            )
        };
        let mut resp = Response::new(body);
        if splice.is_some() || head.verbatim.is_some() {
            *resp.extensions_mut() = spare::extensions();
        }
        if let Some(splice) = splice {
            resp.extensions_mut().insert(splice);
        }
        if let Some(verbatim) = head.verbatim {
            resp.extensions_mut().insert(verbatim);
        }
        *resp.status_mut() = head.status;
        *resp.version_mut() = head.version;
        *resp.headers_mut() = head.headers;
        resp
    }

    /// A protocol switch's handshake, on hyper's client with upgrades.
    async fn send_upgrade(
        &self,
        req: Request<ProxyBody>,
        authority: &str,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let handshake = async {
            let mut sender = self
                .dialer
                .dial_upgradable(authority)
                .await
                .map_err(dial_error)?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| classify(&UpstreamError::Upgrade(e)))?;
            Ok(resp.map(UpstreamBody::upgrade))
        };
        tokio::time::timeout(self.response_timeout, handshake)
            .await
            .unwrap_or(Err(ProxyError::UpstreamTimeout))
    }
}

/// Where [`Upstreams::send`] stands when it returns.
enum Started<'a, A> {
    /// The request is in a pooled connection's buffer; the authority, for
    /// a retry on a fresh connection.
    Pooled(Box<Conn>, Method, A),
    /// A dial or a protocol switch, boxed.
    Elsewhere(
        Pin<Box<dyn Future<Output = Result<Response<UpstreamBody>, ProxyError>> + Send + 'a>>,
    ),
    /// The request could not be written.
    Failed(ProxyError),
}

/// Writes the request head into `conn`'s buffer and takes the body to send
/// after it; the map and the list are kept for the next request.
fn start(
    mut conn: Box<Conn>,
    mut parts: request::Parts,
    added: Added,
    body: ProxyBody,
) -> Result<(Box<Conn>, Method), ProxyError> {
    conn.start(&parts, &added, body).map_err(|e| classify(&e))?;
    spare::recycle(std::mem::take(&mut parts.headers));
    added.recycle();
    Ok((conn, parts.method))
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

/// Maps an exchange's failure onto the contract's codes.
fn classify(err: &UpstreamError) -> ProxyError {
    match err {
        UpstreamError::Timeout => ProxyError::UpstreamTimeout,
        UpstreamError::Protocol(_) => ProxyError::UpstreamProtocol,
        UpstreamError::BadRequest(why) => ProxyError::BadRequest((*why).into()),
        UpstreamError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            ProxyError::UpstreamTimeout
        }
        UpstreamError::Upload(e) => match is_body_too_large(e.as_ref()) {
            Some(limit) => ProxyError::PayloadTooLarge { limit },
            None if is_body_timeout(e.as_ref()) => ProxyError::BodyTimeout,
            None => {
                tracing::debug!(error = %err, "the request body failed on its way upstream");
                ProxyError::UpstreamUnreachable
            }
        },
        UpstreamError::Upgrade(e) => classify_hyper(e),
        UpstreamError::Io(_) | UpstreamError::Closed(_) => {
            tracing::debug!(error = %err, "upstream exchange failed");
            ProxyError::UpstreamUnreachable
        }
    }
}

/// Maps hyper's connection error (protocol switches) by walking its causes.
fn classify_hyper(err: &hyper::Error) -> ProxyError {
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
    /// The request's correlation id as a header value
    /// ([`crate::headers::correlation_value`]).
    pub correlation_id: Option<&'a HeaderValue>,
    /// The client's address as the `X-Forwarded-For` value.
    pub client_ip: &'a HeaderValue,
    /// The authority the browser addressed, as sent (`host[:port]`).
    pub public_authority: &'a str,
    pub proto: &'a str,
    pub upgrade: bool,
    /// The names the client's head holds ([`crate::headers::Scan`]).
    pub present: Present,
}

/// Rewrites the client's request head into the upstream request.
///
/// # Errors
/// [`ProxyError::BadRequest`] when the mapped target is not a valid URI.
pub fn upstream_request(
    mut req: Request<ProxyBody>,
    added: &mut Added,
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
    debug_assert!(inc.present.covers(headers), "a name put in after the scan");
    if inc.present.has(Present::HOP) {
        hop::strip(headers, inc.upgrade);
    }
    // The client's Host value, when it is the public authority (HTTP/1.1),
    // is reused rather than copied. Without it (HTTP/2 carries the
    // authority in `:authority`) one value made from the authority serves
    // both the forwarding field and `Host`.
    let client_host = headers
        .get(header::HOST)
        .filter(|v| v.as_bytes() == inc.public_authority.as_bytes())
        .cloned();
    let has_client_host = client_host.is_some();
    let public_host = client_host.or_else(|| HeaderValue::from_str(inc.public_authority).ok());
    forwarded::set(
        headers,
        added,
        &forwarded::ForwardedFacts {
            client_ip: inc.client_ip,
            host: inc.public_authority,
            proto: inc.proto,
            prefix: &route.public_prefix,
            present: inc.present,
        },
        public_host.clone(),
    );
    let host = match route.adapter.upstream_host_header {
        // The client's own Host, already in place, needs no insert.
        UpstreamHostHeader::Preserve if has_client_host => None,
        UpstreamHostHeader::Preserve => public_host,
        UpstreamHostHeader::Target => HeaderValue::from_str(target).ok(),
    };
    if let Some(v) = host {
        headers.insert(header::HOST, v);
    }
    // The proxy's id replaces one the client sent. A pass over the names
    // present: hashing the name for a removal costs more.
    if inc.present.has(Present::CORRELATION) {
        remove_where(headers, |k| *k == X_CORRELATION_ID);
    }
    if let Some(v) = inc.correlation_id {
        added.put(X_CORRELATION_ID, v.clone());
    }
    Ok(req)
}
