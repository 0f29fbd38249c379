//! The answers the pipeline makes itself, with no upstream asked: no
//! route for the address, a caller without credentials (the login page or
//! 401), and the redirect to a path route's root with its slash.

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use pp_model::CorrelationId;

use super::Proxy;
use crate::body::{empty, ProxyBody};
use crate::error::ProxyError;
use crate::reserved;
use crate::server::ClientBody;

impl Proxy {
    /// No route matches. An outsider must not learn which routes exist
    /// (DESIGN.md "Deny by default, answer alike"): without a valid bearer
    /// token the answer is the one an existing route gives an anonymous
    /// caller (the login page or 401, and the proxy's own pages under
    /// `/.platform-proxy/`); an authenticated caller gets 404, as for a
    /// route it may not see.
    pub(super) async fn no_route(
        &self,
        req: &Request<ClientBody>,
        path: &str,
        proto: &str,
        auth: &str,
        cid: &CorrelationId,
        html: bool,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        if let Some(tail) = path.strip_prefix(reserved::RESERVED) {
            if tail.is_empty() || tail.starts_with('/') {
                return reserved::without_route(&self.access, req.method(), tail, cid);
            }
        }
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(pp_identity::authn::bearer_token);
        match bearer {
            Some(token) => match self.access.authn.bearer(token).await {
                Ok(_) => Err(ProxyError::RouteNotFound),
                Err(e) => self.unauthenticated(
                    req,
                    proto,
                    auth,
                    html,
                    ProxyError::Unauthenticated(e.code()),
                ),
            },
            None => self.unauthenticated(
                req,
                proto,
                auth,
                html,
                ProxyError::Unauthenticated(pp_identity::AuthError::Missing.code()),
            ),
        }
    }

    /// The answer to a caller without valid credentials: a browser
    /// navigating (a `GET` or `HEAD` whose fields ask for HTML, `html` as
    /// the scan found) goes to the platform's login page, anything else
    /// gets the 401.
    pub(super) fn unauthenticated<B>(
        &self,
        req: &Request<B>,
        proto: &str,
        auth: &str,
        html: bool,
        e: ProxyError,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        if html && matches!(*req.method(), Method::GET | Method::HEAD) {
            let origin = format!("{proto}://{auth}");
            let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
            if let Some(r) = reserved::login_redirect(&self.access, &origin, pq) {
                return Ok(r);
            }
        }
        Err(e)
    }
}

/// `root_requires_trailing_slash`: `/p/grafana` → `/p/grafana/` (308 keeps
/// the method and body).
pub(super) fn trailing_slash_redirect(prefix: &str, query: Option<&str>) -> Response<ProxyBody> {
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
