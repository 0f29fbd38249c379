//! The request pipeline (DESIGN.md "The request pipeline"): host dispatch,
//! then for app traffic resolve → reserved paths → limit → pick → forward →
//! rewrite → account. Each step returns a typed result; a failing step
//! answers with the error envelope and never reaches the upstream.
//! Authentication and authorization slot in between reserved paths and limit.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pp_model::path::normalize;
use pp_model::{CorrelationId, ResolvedRoute, RouteTable};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::account::{self, AccessRecord};
use crate::body::{boxed, empty, Limited, OnDone, ProxyBody};
use crate::error::{wants_html, ProxyError};
use crate::forward::{upstream_request, ClientFacts, Picker, Upstreams};
use crate::headers::hop;
use crate::host::{authority, split_authority};
use crate::limit::{Permit, RouteCounters};
use crate::respond::rewrite_headers;
use crate::routes::RouteTableHandle;
use crate::settings::Settings;
use crate::tunnel::{self, TunnelLimits};

/// Paths under this prefix on every apps host belong to the proxy itself
/// (launch-code redemption, launcher page, logout); they never reach an app.
pub const RESERVED_PREFIX: &str = "/.platform-proxy";

/// The control plane, as the data plane sees it: something that answers
/// requests for the API host. Keeps this crate free of the API framework.
pub trait ApiHandler: Send + Sync + 'static {
    fn call(
        &self,
        req: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>;
}

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub tls: bool,
}

/// The data plane's shared state, one per process.
pub struct Proxy {
    settings: Settings,
    routes: Arc<RouteTableHandle>,
    api: Arc<dyn ApiHandler>,
    upstreams: Upstreams,
    picker: Picker,
    counters: RouteCounters,
    /// Every open tunnel, so shutdown can wait for them.
    tunnels: TaskTracker,
    /// Fired when the shutdown grace ends: open tunnels close with 1001.
    drain: CancellationToken,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    #[must_use]
    pub fn new(
        settings: Settings,
        routes: Arc<RouteTableHandle>,
        api: Arc<dyn ApiHandler>,
    ) -> Self {
        let upstreams = Upstreams::new(
            settings.upstream_connect_timeout,
            settings.upstream_response_timeout,
            settings.upstream_pool_idle_timeout,
        );
        Self {
            settings,
            routes,
            api,
            upstreams,
            picker: Picker::default(),
            counters: RouteCounters::default(),
            tunnels: TaskTracker::new(),
            drain: CancellationToken::new(),
        }
    }

    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    #[must_use]
    pub fn routes(&self) -> &Arc<RouteTableHandle> {
        &self.routes
    }

    /// Open WebSocket tunnels right now.
    #[must_use]
    pub fn open_tunnels(&self) -> usize {
        self.tunnels.len()
    }

    pub(crate) fn tunnels(&self) -> &TaskTracker {
        &self.tunnels
    }

    pub(crate) fn drain_tunnels(&self) {
        self.drain.cancel();
    }

    /// Answers one request; never fails: errors become envelopes here.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> Response<ProxyBody> {
        let cid = CorrelationId::new();
        let span = tracing::info_span!("request", correlation_id = %cid);
        async move {
            let started = Instant::now();
            let html = wants_html(req.headers());
            let method = req.method().clone();
            let path = req.uri().path().to_owned();
            let host = authority(&req).unwrap_or_default();
            let mut note = Note::default();
            let mut resp = match self.dispatch(req, conn, &cid, &mut note).await {
                Ok(r) => r,
                Err(e) => {
                    match e.source() {
                        crate::error::Source::Upstream => {
                            tracing::warn!(error = %e, code = e.code(), "upstream failure")
                        }
                        _ => tracing::debug!(error = %e, code = e.code(), "request refused"),
                    }
                    e.into_response(&cid, html)
                }
            };
            // The proxy's id wins over one the upstream sent: it is the one
            // in the proxy's logs.
            if let Ok(v) = HeaderValue::from_str(&cid.0) {
                resp.headers_mut().insert(pp_model::CORRELATION_HEADER, v);
            }
            account::log(&AccessRecord {
                correlation_id: &cid.0,
                method: &method,
                host: &host,
                path: &path,
                status: resp.status(),
                route_id: note.route_id,
                upstream: note.upstream.as_deref(),
                elapsed: started.elapsed(),
                client: conn.remote,
            });
            resp
        }
        .instrument(span)
        .await
    }

    async fn dispatch(
        &self,
        mut req: Request<Incoming>,
        conn: ConnInfo,
        cid: &CorrelationId,
        note: &mut Note,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let header_bytes: usize = req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum();
        if header_bytes > self.settings.max_header_bytes {
            return Err(ProxyError::HeadersTooLarge {
                limit: self.settings.max_header_bytes,
            });
        }
        let auth = authority(&req)
            .ok_or_else(|| ProxyError::BadRequest("the request has no Host".into()))?;
        let (host, _) = split_authority(&auth)
            .ok_or_else(|| ProxyError::BadRequest("the Host header is malformed".into()))?;
        if host == self.settings.api_host {
            req.extensions_mut().insert(cid.clone());
            return Ok(self.api.call(req).await);
        }
        let table = self.routes.load();
        if !table.is_apps_host(&host) {
            return Err(ProxyError::UnknownHost);
        }
        self.app_request(req, conn, cid, &table, &host, &auth, note)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn app_request(
        &self,
        mut req: Request<Incoming>,
        conn: ConnInfo,
        cid: &CorrelationId,
        table: &RouteTable,
        host: &str,
        auth: &str,
        note: &mut Note,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        // 1. resolve
        if req.method() == Method::CONNECT {
            return Err(ProxyError::BadRequest("CONNECT is not supported".into()));
        }
        let path =
            normalize(req.uri().path()).map_err(|e| ProxyError::BadRequest(e.to_string()))?;
        // 2. reserved paths: nothing is served there yet, and nothing there
        //    may ever reach an app.
        if path == RESERVED_PREFIX || path.starts_with("/.platform-proxy/") {
            return Err(ProxyError::RouteNotFound);
        }
        let resolved = table
            .resolve(host, &path)
            .ok_or(ProxyError::RouteNotFound)?;
        let route = Arc::clone(&resolved.route);
        note.route_id = Some(route.route.id);
        if resolved.bare_prefix && route.adapter.root_requires_trailing_slash {
            return Ok(trailing_slash_redirect(
                &route.public_prefix,
                req.uri().query(),
            ));
        }
        // 5. limit
        let permit = self
            .counters
            .acquire(route.route.id, route.route.limits.max_connections)?;
        let max_body = route
            .route
            .limits
            .max_body_bytes
            .unwrap_or(self.settings.default_max_body_bytes);
        if let Some(len) = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if len > max_body {
                return Err(ProxyError::PayloadTooLarge { limit: max_body });
            }
        }
        // 6. pick
        let target = self.picker.pick(&route).to_owned();
        note.upstream = Some(target.clone());
        // 7. forward
        let upgrade = is_websocket_upgrade(&req);
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let proto = if conn.tls { "https" } else { "http" };
        let facts = ClientFacts {
            correlation_id: cid,
            client_ip: conn.remote.ip(),
            public_authority: auth,
            proto,
            upgrade,
        };
        let req = req.map(|b| boxed(Limited::new(b, max_body)));
        let up_req = upstream_request(req, &route, &target, &resolved.upstream_path, &facts)?;
        let mut resp = self.upstreams.send(up_req).await?;
        // 8. rewrite
        if let (Some(client_upgrade), StatusCode::SWITCHING_PROTOCOLS) =
            (client_upgrade, resp.status())
        {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            self.spawn_tunnel(
                &resolved,
                client_upgrade,
                upstream_upgrade,
                permit,
                cid.clone(),
            );
            let (mut parts, _) = resp.into_parts();
            hop::strip(&mut parts.headers, true);
            return Ok(Response::from_parts(parts, empty()));
        }
        let (mut parts, body) = resp.into_parts();
        rewrite_headers(&mut parts.headers, &route, proto, auth);
        Ok(Response::from_parts(
            parts,
            // The route slot is released once the body has streamed.
            boxed(OnDone::new(body, move || drop(permit))),
        ))
    }

    fn spawn_tunnel(
        &self,
        resolved: &ResolvedRoute,
        client: hyper::upgrade::OnUpgrade,
        upstream: hyper::upgrade::OnUpgrade,
        permit: Permit,
        cid: CorrelationId,
    ) {
        let limits = &resolved.route.route.limits;
        let limits = TunnelLimits {
            idle: limits.websocket_idle_timeout_secs.map_or(
                self.settings.websocket_idle_timeout,
                std::time::Duration::from_secs,
            ),
            max_lifetime: limits.websocket_max_lifetime_secs.map_or(
                self.settings.websocket_max_lifetime,
                std::time::Duration::from_secs,
            ),
        };
        let drain = self.drain.clone();
        let route_id = resolved.route.route.id;
        let span = tracing::info_span!("tunnel", correlation_id = %cid, %route_id);
        self.tunnels.spawn(
            async move {
                let _permit = permit;
                let (c, u) = match tokio::try_join!(client, upstream) {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "websocket upgrade failed");
                        return;
                    }
                };
                tracing::info!("websocket opened");
                let stats = tunnel::relay(TokioIo::new(c), TokioIo::new(u), limits, drain).await;
                tracing::info!(
                    frames_to_upstream = stats.frames_to_upstream,
                    frames_to_client = stats.frames_to_client,
                    bytes_to_upstream = stats.bytes_to_upstream,
                    bytes_to_client = stats.bytes_to_client,
                    closed_by_proxy = stats.closed_by_proxy.map(|r| r.text()),
                    "websocket closed"
                );
            }
            .instrument(span),
        );
    }
}

/// What the access log learns along the way.
#[derive(Debug, Default)]
struct Note {
    route_id: Option<uuid::Uuid>,
    upstream: Option<String>,
}

/// WebSocket opening handshake (RFC 6455 §4.1): GET with `Upgrade:
/// websocket` and `Connection: upgrade`. Other upgrade protocols are not
/// tunnelled; their `Upgrade` header is dropped as hop-by-hop.
fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    req.method() == Method::GET
        && hop::is_upgrade(req.headers())
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
            })
}

/// `root_requires_trailing_slash`: `/p/grafana` → `/p/grafana/` (308 keeps
/// the method and body).
fn trailing_slash_redirect(prefix: &str, query: Option<&str>) -> Response<ProxyBody> {
    let location = match query {
        Some(q) => format!("{prefix}/?{q}"),
        None => format!("{prefix}/"),
    };
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}
