//! The request pipeline (DESIGN.md "The request pipeline"): host dispatch,
//! then for app traffic resolve → reserved paths → authenticate →
//! authorize → limit → pick → forward → rewrite → account. Each step
//! returns a typed result; a failing step answers with the error envelope
//! and never reaches the upstream.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use pp_identity::Via;
use pp_model::adapter::AuthStrategy;
use pp_model::path::normalize;
use pp_model::table::{CompiledRoute, ResolvedRoute};
use pp_model::{CorrelationId, RouteTable};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::access::Access;
use crate::account::{self, AccessRecord};
use crate::authenticate::{by_bearer, by_session, session_cookies, Caller, Presented};
use crate::authorize::{authorize, check_origin};
use crate::body::{boxed, empty, Limited, OnDone, ProxyBody};
use crate::error::ProxyError;
use crate::forward::{upstream_request, ClientFacts, Picker, UpstreamBody, Upstreams};
use crate::forward_auth::{self, ForwardAuthCache};
use crate::headers::identity;
use crate::headers::{correlation_value, forwarded, hop, Added, Present, Scan};
use crate::host::{authority, split_authority, Addressed};
use crate::limit::{Permit, RouteCounters};
use crate::reserved::{self, ReservedRequest};
use crate::respond::rewrite_headers;
use crate::routes::RouteTableHandle;
use crate::server::{ClientBody, ClientUpgrade};
use crate::settings::Settings;
use crate::splice::{SpliceFrom, MIN_SPLICE};

mod answers;
mod switch;

use self::answers::trailing_slash_redirect;
use self::switch::is_websocket_upgrade;

/// The control plane, as the data plane sees it: something that answers
/// requests for the API host. Keeps this crate free of the API framework.
pub trait ApiHandler: Send + Sync + 'static {
    fn call(
        &self,
        req: Request<ClientBody>,
    ) -> Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>;
}

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub tls: bool,
    /// The client's address as the `X-Forwarded-For` value: the same for
    /// every request of the connection, so written once.
    forwarded_for: HeaderValue,
}

impl ConnInfo {
    #[must_use]
    pub fn new(remote: SocketAddr, tls: bool) -> Self {
        Self {
            remote,
            tls,
            forwarded_for: forwarded::ip_value(remote.ip()),
        }
    }

    /// The scheme the client used: `https` or `http`.
    fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

/// A step's future, made in its box (see `Proxy::handle`).
type Step<'a> = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send + 'a>>;

/// Where host dispatch sends a request.
enum Dispatch<'a> {
    /// An app host: the pipeline.
    App {
        req: Request<ClientBody>,
        at: AppHost<'a>,
    },
    /// The API host's forward-auth check.
    ForwardAuth {
        req: Request<ClientBody>,
        table: Arc<RouteTable>,
    },
    /// The API host: its handler's answer, boxed by the handler.
    Api(Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>),
}

/// The app host a request is for, as dispatch found it.
struct AppHost<'a> {
    /// The route table it resolves in.
    table: Arc<RouteTable>,
    /// The host name, lower-case.
    host: Cow<'a, str>,
    /// The request's authority as it came (host and port).
    auth: &'a str,
}

/// The request's correlation id and its header value.
type Ids<'a> = (&'a CorrelationId, Option<&'a HeaderValue>);

/// A step whose answer is known at once, in the box a step runs in.
fn answered<'a>(result: Result<Response<ProxyBody>, ProxyError>) -> Step<'a> {
    Box::pin(std::future::ready(result))
}

/// A resolved app request on its way to the forwarding steps.
struct Resolved<'a> {
    resolved: ResolvedRoute,
    /// The request's authority as it came.
    auth: &'a str,
}

/// What the answer's steps need once the upstream has answered.
struct Answer<'a> {
    resolved: ResolvedRoute,
    caller: Option<Caller>,
    permit: Permit,
    client_upgrade: Option<ClientUpgrade>,
    cid: &'a CorrelationId,
    conn: &'a ConnInfo,
    auth: &'a str,
}

/// The upstream target picked for a request, held by the exchange (a retry
/// dials it again) without borrowing the route.
struct Target(Arc<CompiledRoute>, usize);

impl AsRef<str> for Target {
    fn as_ref(&self) -> &str {
        self.0.target(self.1).unwrap_or_default()
    }
}

/// The data plane's shared state, one per process.
pub struct Proxy {
    settings: Settings,
    routes: Arc<RouteTableHandle>,
    api: Arc<dyn ApiHandler>,
    upstreams: Upstreams,
    picker: Picker,
    counters: RouteCounters,
    access: Access,
    forward_auth: ForwardAuthCache,
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
        access: Access,
    ) -> Self {
        let upstreams = Upstreams::new(
            settings.upstream_connect_timeout,
            settings.upstream_response_timeout,
            settings.upstream_pool_idle_timeout,
            settings.splice.responses,
        );
        Self {
            settings,
            routes,
            api,
            upstreams,
            picker: Picker::default(),
            counters: RouteCounters::default(),
            access,
            forward_auth: ForwardAuthCache::default(),
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

    /// Answers one request; never fails: errors become envelopes here (the
    /// `Result` is the shape hyper's services answer in). `held` is kept
    /// until the answer is made: an HTTP/2 connection counts the answers
    /// being made that way.
    ///
    /// Not an `async fn`: the future it returns is the instrumented block
    /// itself, so the caller's task holds it without another layer around
    /// it (each layer is a copy of the whole future when it starts).
    pub fn handle<H: Send + 'static>(
        self: Arc<Self>,
        req: Request<ClientBody>,
        conn: ConnInfo,
        held: H,
    ) -> impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static {
        let cid = CorrelationId::new();
        let cid_value = correlation_value(&cid);
        let span = tracing::info_span!("request", correlation_id = %cid);
        async move {
            let _held = held;
            // The access log's clock reads and copies, only when it is on.
            // Boxed: most proxies run with it off, and this future is made
            // for every request.
            let logged = account::enabled()
                .then(|| Box::new((Instant::now(), req.method().clone(), req.uri().clone())));
            // One pass over the client's fields for what the steps ask of
            // them: the size limit, HTML errors, the names to act on. The
            // passed fields hold none of those names: their size and
            // whether they ask for HTML were noted as the head was read.
            let mut scan = Scan::of(req.headers());
            if let Some(passed) = req.body().passed() {
                scan.add_passed(passed);
            }
            let host = authority(&req);
            let mut note = Note::default();
            let addressed = host.as_ref().map(Addressed::as_str);
            let ids = (&cid, cid_value.as_ref());
            // Only the boxed step is held while it runs: a `match` awaiting
            // in its arms would keep the dispatch result's room (a whole
            // request) in this future too. The block ends the step's
            // borrows (the note, for the access log) with it.
            let answered = {
                let step = self
                    .dispatch(req, addressed, &cid, scan.bytes)
                    .map(|d| self.start(d, &conn, ids, scan, &mut note));
                match step {
                    Ok(step) => step.await,
                    Err(e) => Err(e),
                }
            };
            let mut resp = match answered {
                Ok(r) => r,
                Err(e) => {
                    match e.source() {
                        crate::error::Source::Upstream => {
                            tracing::warn!(error = %e, code = e.code(), "upstream failure")
                        }
                        _ => tracing::debug!(
                            error = %e,
                            code = e.code(),
                            reason = e.reason(),
                            "request refused"
                        ),
                    }
                    e.into_response(&cid, scan.html)
                }
            };
            // The proxy's id wins over one the upstream sent: it is the one
            // in the proxy's logs.
            if let Some(v) = cid_value {
                resp.headers_mut()
                    .insert(crate::headers::X_CORRELATION_ID, v);
            }
            if let Some(logged) = logged {
                let (started, method, uri) = *logged;
                account::log(&AccessRecord {
                    correlation_id: cid.as_str(),
                    method: &method,
                    host: addressed.unwrap_or_default(),
                    // The URI's bytes are shared, not copied.
                    path: uri.path(),
                    status: resp.status(),
                    route_id: note.route_id,
                    user: note.user.as_deref().map(|p| p.id.as_str()),
                    upstream: note.upstream(),
                    elapsed: started.elapsed(),
                    client: conn.remote,
                });
            }
            Ok(resp)
        }
        .instrument(span)
    }

    /// The step a dispatched request runs, its future made in the box it
    /// runs in (and the rare steps within it, no route, the proxy's own
    /// paths, protocol switches, are boxed where they run): a future is as
    /// large as its largest branch, and each move of one copies all of it
    /// (a future awaited inside another is made, then moved into it). The
    /// connection's task and HTTP/2's stream hold a pointer.
    fn start<'a>(
        &'a self,
        dispatched: Dispatch<'a>,
        conn: &'a ConnInfo,
        ids: Ids<'a>,
        scan: Scan,
        note: &'a mut Note,
    ) -> Step<'a> {
        match dispatched {
            Dispatch::App { req, at } => self.app_request(req, conn, ids, at, scan, note),
            Dispatch::ForwardAuth { req, table } => Box::pin(async move {
                forward_auth::check(
                    &self.access,
                    &self.forward_auth,
                    &table,
                    req.headers(),
                    req.uri().query(),
                    ids.0,
                )
                .await
            }),
            Dispatch::Api(call) => Box::pin(call.map(Ok)),
        }
    }

    /// Host dispatch, before any step's future is made: the API host, the
    /// forward-auth check, or an app host's pipeline.
    fn dispatch<'a>(
        &self,
        mut req: Request<ClientBody>,
        authority: Option<&'a str>,
        cid: &CorrelationId,
        header_bytes: usize,
    ) -> Result<Dispatch<'a>, ProxyError> {
        if header_bytes > self.settings.max_header_bytes {
            return Err(ProxyError::HeadersTooLarge {
                limit: self.settings.max_header_bytes,
            });
        }
        let auth =
            authority.ok_or_else(|| ProxyError::BadRequest("the request has no Host".into()))?;
        let (host, _) = split_authority(auth)
            .ok_or_else(|| ProxyError::BadRequest("the Host header is malformed".into()))?;
        if host == self.settings.api_host {
            // The API and the forward-auth check read any field: the
            // passed ones go back into the map.
            let passed = req.body_mut().take_passed();
            passed.merge_into(req.headers_mut());
            if req.uri().path() == forward_auth::PATH {
                let table = self.routes.load();
                return Ok(Dispatch::ForwardAuth { req, table });
            }
            req.extensions_mut().insert(cid.clone());
            return Ok(Dispatch::Api(self.api.call(req)));
        }
        let table = self.routes.load();
        if !table.is_apps_host(&host) {
            return Err(ProxyError::UnknownHost);
        }
        Ok(Dispatch::App {
            req,
            at: AppHost { table, host, auth },
        })
    }

    /// An app host's request: the steps that never wait (resolve, the
    /// reserved paths, a session cookie's authentication, authorization,
    /// limits, the pick and the upstream request written into a pooled
    /// connection) run here, at once; the box holds only what waits. The
    /// request itself is consumed before the box is made, so the future
    /// holds the exchange and what the answer's steps need, under the
    /// allocator's per-thread cache's bound (a future with the request in
    /// it was 3.2 KiB: the request twice, as an `async fn` argument and
    /// its moved copy, beside the upstream request and the exchange).
    fn app_request<'a>(
        &'a self,
        req: Request<ClientBody>,
        conn: &'a ConnInfo,
        ids: Ids<'a>,
        AppHost { table, host, auth }: AppHost<'a>,
        scan: Scan,
        note: &'a mut Note,
    ) -> Step<'a> {
        // 1. resolve
        if req.method() == Method::CONNECT {
            return answered(Err(ProxyError::BadRequest(
                "CONNECT is not supported".into(),
            )));
        }
        let path = match normalize(req.uri().path()) {
            Ok(path) => path,
            Err(e) => return answered(Err(ProxyError::BadRequest(e.to_string()))),
        };
        let proto = conn.scheme();
        let Some(resolved) = table.resolve(&host, &path) else {
            let path = path.into_owned();
            return Box::pin(async move {
                self.no_route(&req, &path, proto, auth, ids.0, scan.html)
                    .await
            });
        };
        note.route_id = Some(resolved.route.route.id);
        // 2. reserved paths: the proxy's own, never an app's.
        if let Some(tail) = reserved::reserved_rest(&resolved.route, &path) {
            let tail = tail.to_owned();
            return Box::pin(async move {
                let r = ReservedRequest {
                    method: req.method(),
                    query: req.uri().query(),
                    headers: req.headers(),
                    tls: conn.tls,
                    cid: ids.0,
                };
                reserved::handle(&self.access, &resolved.route, &tail, r).await
            });
        }
        // 3. authenticate: a session cookie at once, a bearer token boxed.
        let caller = if resolved.route.public {
            None
        } else {
            match by_session(&self.access, req.headers(), &resolved.route) {
                Presented::Session(caller) => Some(caller),
                Presented::Neither(e) => {
                    return answered(self.unauthenticated(&req, proto, auth, scan.html, e));
                }
                Presented::Bearer(token) => {
                    let token = token.to_owned();
                    return Box::pin(async move {
                        match by_bearer(&self.access, &token).await {
                            Ok(caller) => {
                                let at = Resolved { resolved, auth };
                                let step =
                                    self.forward_step(req, conn, ids, at, scan, note, Some(caller));
                                match step {
                                    Ok(step) => step.await,
                                    Err(e) => Err(e),
                                }
                            }
                            Err(e) => self.unauthenticated(&req, proto, auth, scan.html, e),
                        }
                    });
                }
            }
        };
        let at = Resolved { resolved, auth };
        match self.forward_step(req, conn, ids, at, scan, note, caller) {
            Ok(step) => step,
            Err(e) => answered(Err(e)),
        }
    }

    /// Steps 4 to 7 for an authenticated (or public) request: authorize,
    /// limit, pick, and the upstream request started; the step returned
    /// waits for the upstream's answer and rewrites it (step 8).
    #[allow(clippy::too_many_arguments)]
    fn forward_step<'a>(
        &'a self,
        mut req: Request<ClientBody>,
        conn: &'a ConnInfo,
        (cid, cid_value): Ids<'a>,
        Resolved { resolved, auth }: Resolved<'a>,
        scan: Scan,
        note: &'a mut Note,
        caller: Option<Caller>,
    ) -> Result<Step<'a>, ProxyError> {
        let present = scan.present;
        let proto = conn.scheme();
        let route = &resolved.route;
        // 4. authorize
        if let Some(caller) = &caller {
            note.user = Some(Arc::clone(&caller.principal));
            authorize(&self.access, caller, route, cid)?;
        }
        let upgrade = present.has(Present::HOP) && is_websocket_upgrade(&req);
        if upgrade {
            check_origin(
                req.headers(),
                proto,
                auth,
                &self.access.settings.allowed_origins,
            )?;
        }
        if resolved.bare_prefix && route.adapter.root_requires_trailing_slash {
            return Ok(answered(Ok(trailing_slash_redirect(
                &route.public_prefix,
                req.uri().query(),
            ))));
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
        let declared = present
            .has(Present::CONTENT_LENGTH)
            .then(|| req.headers().get(header::CONTENT_LENGTH))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max_body) {
            return Err(ProxyError::PayloadTooLarge { limit: max_body });
        }
        // 6. pick
        let picked = self.picker.pick(route);
        note.upstream = Some((Arc::clone(route), picked));
        // 7. forward
        let client_upgrade = upgrade.then(|| ClientUpgrade::on(&mut req));
        // HTTP/2's writer (hyper's) takes the answer's fields in a map.
        let verbatim = req.version() <= Version::HTTP_11;
        let facts = ClientFacts {
            correlation_id: cid_value,
            client_ip: &conn.forwarded_for,
            public_authority: auth,
            proto,
            upgrade,
            present,
        };
        // A large body passed on unread is spliced socket to socket (its
        // length is within the limit, checked above), unless the settings
        // say request bodies are copied. A small or bodiless request never
        // looks.
        let splice = match (req.body(), declared) {
            (ClientBody::H1(body), Some(len))
                if len >= MIN_SPLICE && self.settings.splice.requests =>
            {
                body.splice_source()
            }
            _ => None,
        };
        let mut added = Added::new();
        added.pass(req.body_mut().take_passed());
        // A body already at its end goes on as the empty body, which boxes
        // nothing.
        let req = if hyper::body::Body::is_end_stream(req.body()) {
            req.map(|_| empty())
        } else {
            req.map(|b| boxed(Limited::new(b, max_body)))
        };
        let target = Target(Arc::clone(route), picked);
        let mut up_req = upstream_request(
            req,
            &mut added,
            route,
            target.as_ref(),
            &resolved.upstream_path,
            &facts,
        )?;
        self.set_identity(
            up_req.headers_mut(),
            &mut added,
            caller.as_ref(),
            route,
            &facts,
        );
        if let Some(source) = splice {
            up_req.extensions_mut().insert(SpliceFrom(Arc::new(source)));
        }
        let sending = self
            .upstreams
            .send(up_req, added, target, upgrade, verbatim);
        let answer = Answer {
            resolved,
            caller,
            permit,
            client_upgrade,
            cid,
            conn,
            auth,
        };
        // A combinator, not an `async` block: awaiting `sending` there would
        // move it into a second place in the same future.
        Ok(Box::pin(
            sending.map(move |resp| self.rewrite(resp?, answer)),
        ))
    }

    /// Step 8: the upstream's answer on its way back, or the tunnel a
    /// protocol switch opens.
    fn rewrite(
        &self,
        mut resp: Response<UpstreamBody>,
        answer: Answer<'_>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let route = &answer.resolved.route;
        let caller = answer.caller.as_ref();
        if let (Some(client_upgrade), StatusCode::SWITCHING_PROTOCOLS) =
            (answer.client_upgrade, resp.status())
        {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            self.spawn_tunnel(
                &answer.resolved,
                client_upgrade,
                upstream_upgrade,
                answer.permit,
                caller,
                answer.cid.clone(),
            );
            let (mut parts, _) = resp.into_parts();
            hop::strip(&mut parts.headers, true);
            self.renew_cookie(&mut parts.headers, caller, route, answer.conn.tls);
            return Ok(Response::from_parts(parts, empty()));
        }
        // The parts keep the body's splice source (a large body the client
        // side may splice): only right while the body passes unchanged. A
        // step that replaces the body must remove `SpliceFrom` with it.
        let (mut parts, body) = resp.into_parts();
        rewrite_headers(&mut parts.headers, route, answer.conn.scheme(), answer.auth);
        self.renew_cookie(&mut parts.headers, caller, route, answer.conn.tls);
        Ok(Response::from_parts(
            parts,
            // The route slot is released once the body has streamed.
            boxed(OnDone::new(body, move || drop(answer.permit))),
        ))
    }

    /// Step 7's identity part: the upstream sees the proxy's identity
    /// headers and the route's auth bridge, never the browser's
    /// credentials or a client-sent identity header.
    fn set_identity(
        &self,
        headers: &mut http::HeaderMap,
        added: &mut Added,
        caller: Option<&Caller>,
        route: &CompiledRoute,
        facts: &ClientFacts<'_>,
    ) {
        let present = facts.present;
        debug_assert!(present.covers(headers), "a name put in after the scan");
        if present.has(Present::IDENTITY) {
            identity::strip_client_identity(headers);
        }
        if present.has(Present::COOKIE) {
            identity::strip_proxy_cookies(headers);
        }
        // The browser's Authorization never reaches the app, public routes
        // included, unless the adapter passes a bearer token through.
        let passthrough = route.adapter.auth_strategy == AuthStrategy::BearerPassthrough
            && caller.is_none_or(|c| matches!(c.via, Via::Jwt | Via::ServiceToken));
        if !passthrough && present.has(Present::AUTHORIZATION) {
            crate::headers::remove_where(headers, |k| k == header::AUTHORIZATION);
        }
        let Some(caller) = caller else {
            identity::set_bridge(headers, added, route);
            return;
        };
        let assertion = self.access.assertion.as_ref().and_then(|signer| {
            // The route's own address: its origin, plus the prefix on path
            // routes, which share one origin (an assertion for one path app
            // is no good at another).
            let audience = format!(
                "{}://{}{}",
                facts.proto, facts.public_authority, route.public_prefix
            );
            signer
                .sign(
                    &caller.principal,
                    &audience,
                    route.route.org_id.as_deref(),
                    route.route.project_id.as_deref(),
                    caller
                        .session
                        .as_ref()
                        .map(|s| s.sid.to_string())
                        .as_deref(),
                    self.access.settings.assertion_ttl,
                )
                .map_err(|e| tracing::warn!(error = %e, "signing the identity assertion failed"))
                .ok()
        });
        identity::set_identity(
            added,
            &caller.principal,
            route,
            caller.identity.as_deref(),
            assertion.as_deref(),
        );
        identity::set_bridge(headers, added, route);
    }

    /// Sets the renewed session cookie when the caller's slid forward.
    fn renew_cookie(
        &self,
        headers: &mut http::HeaderMap,
        caller: Option<&Caller>,
        route: &CompiledRoute,
        tls: bool,
    ) {
        if let Some(renewed) = caller.and_then(|c| c.renewed.as_ref()) {
            for c in session_cookies(&self.access, route, renewed, tls) {
                headers.append(header::SET_COOKIE, c);
            }
        }
    }
}

/// What the access log learns along the way. Shared, not copied: the
/// principal and the route are already behind `Arc`s.
#[derive(Debug, Default)]
struct Note {
    route_id: Option<uuid::Uuid>,
    user: Option<Arc<pp_model::Principal>>,
    /// The route and the index of the target picked for it.
    upstream: Option<(Arc<CompiledRoute>, usize)>,
}

impl Note {
    fn upstream(&self) -> Option<&str> {
        let (route, i) = self.upstream.as_ref()?;
        route.target(*i)
    }
}
