//! Forwarding to the upstream: a pooled keep-alive client, the upstream
//! request built from the client's, and upstream failures classified into
//! the error codes the contract names.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use pp_model::adapter::UpstreamHostHeader;
use pp_model::table::CompiledRoute;
use pp_model::CorrelationId;

use crate::body::{boxed, is_body_too_large, OnDone, ProxyBody};
use crate::error::ProxyError;
use crate::headers::{forwarded, hop};

/// The shared upstream client. One pool for every route: connections are
/// keyed by upstream authority, so routes to one app share warm sockets.
#[derive(Clone, Debug)]
pub struct Upstreams {
    client: Client<HttpConnector, ProxyBody>,
    response_timeout: Duration,
}

impl Upstreams {
    #[must_use]
    pub fn new(connect_timeout: Duration, response_timeout: Duration, idle: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(idle)
            .pool_max_idle_per_host(1024)
            .retry_canceled_requests(true)
            .set_host(false)
            .build(http);
        Self {
            client,
            response_timeout,
        }
    }

    /// Sends `req` and waits for the response head within the response
    /// timeout. The body then streams with no deadline of its own.
    ///
    /// # Errors
    /// The upstream failure as a [`ProxyError`].
    pub async fn send(&self, req: Request<ProxyBody>) -> Result<Response<Incoming>, ProxyError> {
        // The response timeout starts once the request body is sent: an
        // upload of gigabytes over a slow link may take far longer than
        // the upstream needs to answer it.
        let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
        let req = if http_body::Body::is_end_stream(req.body()) {
            // Nothing to send: the client may never poll an empty body.
            let _ = sent_tx.send(());
            req
        } else {
            req.map(|b| {
                boxed(OnDone::new(b, move || {
                    let _ = sent_tx.send(());
                }))
            })
        };
        let fut = self.client.request(req);
        tokio::pin!(fut);
        tokio::select! {
            r = &mut fut => return r.map_err(|e| classify(&e)),
            _ = sent_rx => {}
        }
        match tokio::time::timeout(self.response_timeout, fut).await {
            Err(_) => Err(ProxyError::UpstreamTimeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }
}

/// Maps a client error onto the contract's codes by walking its causes.
fn classify(err: &hyper_util::client::legacy::Error) -> ProxyError {
    if let Some(limit) = is_body_too_large(err) {
        return ProxyError::PayloadTooLarge { limit };
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return ProxyError::UpstreamTimeout;
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_parse() || h.is_parse_status() {
                return ProxyError::UpstreamProtocol;
            }
        }
        cur = e.source();
    }
    ProxyError::UpstreamUnreachable
}

/// Picks one of the route's targets, round-robin. Health-aware
/// least-connections replaces this when upstream health lands.
#[derive(Debug, Default)]
pub struct Picker {
    next: AtomicUsize,
}

impl Picker {
    #[must_use]
    pub fn pick<'a>(&self, route: &'a CompiledRoute) -> &'a str {
        let targets = &route.route.upstream.targets;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % targets.len().max(1);
        targets.get(i).map_or("", String::as_str)
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
    let scheme = route.route.upstream.scheme.as_str();
    let uri = match req.uri().query() {
        Some(q) => format!("{scheme}://{target}{upstream_path}?{q}"),
        None => format!("{scheme}://{target}{upstream_path}"),
    };
    *req.uri_mut() = uri
        .parse::<Uri>()
        .map_err(|_| ProxyError::BadRequest("the request target cannot be forwarded".into()))?;
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    hop::strip(headers, inc.upgrade);
    forwarded::set(
        headers,
        &forwarded::ForwardedFacts {
            client_ip: inc.client_ip,
            host: inc.public_authority,
            proto: inc.proto,
            prefix: &route.public_prefix,
        },
    );
    let host = match route.adapter.upstream_host_header {
        UpstreamHostHeader::Preserve => inc.public_authority,
        UpstreamHostHeader::Target => target,
    };
    if let Ok(v) = HeaderValue::from_str(host) {
        headers.insert(header::HOST, v);
    }
    if let Ok(v) = HeaderValue::from_str(&inc.correlation_id.0) {
        headers.insert(pp_model::CORRELATION_HEADER, v);
    }
    Ok(req)
}
