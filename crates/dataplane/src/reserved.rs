//! Pipeline step 2: the proxy's own paths under `/.platform-proxy/` on
//! every route (at the root of a host route, under the prefix of a path
//! route, so the route's cookie Path covers them). Nothing there ever
//! reaches an app.
//!
//! - `launch?code=…[&next=/path]`: redeems a one-time launch code, sets the
//!   session cookie(s) and redirects (303) to the clean entry URL, so the
//!   code leaves the address bar and history at once.
//! - `logout`: `POST` revokes the session, clears its cookies, and sends
//!   the browser to the platform's login page (or shows a short page);
//!   `GET` shows a page with the button that posts.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use pp_identity::session::hash_secret;
use pp_identity::SessionClaims;
use pp_model::access::may_use_route;
use pp_model::adapter::EntrypointStrategy;
use pp_model::records::AuditOutcome;
use pp_model::table::CompiledRoute;
use pp_model::CorrelationId;

use crate::access::Access;
use crate::authenticate::{authenticate, clear_cookies, session_cookies};
use crate::authorize::route_scope;
use crate::body::{empty, full, ProxyBody};
use crate::error::ProxyError;

/// The reserved path segment.
pub const RESERVED: &str = "/.platform-proxy";

/// The route-relative path (`/…`) if `path` addresses the reserved
/// namespace of `route`.
#[must_use]
pub fn reserved_rest<'a>(route: &CompiledRoute, path: &'a str) -> Option<&'a str> {
    let rest = path.strip_prefix(route.public_prefix.as_str())?;
    let tail = rest.strip_prefix(RESERVED)?;
    (tail.is_empty() || tail.starts_with('/')).then_some(tail)
}

/// Facts of the request a reserved handler needs.
#[derive(Debug, Clone, Copy)]
pub struct ReservedRequest<'a> {
    pub method: &'a http::Method,
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    pub tls: bool,
    pub cid: &'a CorrelationId,
}

/// Answers a request for the reserved namespace (`tail` after
/// `/.platform-proxy`).
///
/// # Errors
/// The failure as a [`ProxyError`] (the pipeline renders it).
pub async fn handle(
    access: &Access,
    route: &CompiledRoute,
    tail: &str,
    req: ReservedRequest<'_>,
) -> Result<Response<ProxyBody>, ProxyError> {
    match tail {
        "/launch" if req.method == http::Method::GET => launch(access, route, req).await,
        // Ending a session is a POST: a cross-site page can make the
        // browser GET anything, but SameSite=Lax keeps the cookie off a
        // cross-site POST. GET shows the button that POSTs.
        "/logout" if req.method == http::Method::POST => logout(access, route, req).await,
        "/logout" if req.method == http::Method::GET => Ok(logout_form(req.cid)),
        _ => Err(ProxyError::RouteNotFound),
    }
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
    })
}

/// Where a fresh session lands: `next` if it is a path inside the route,
/// else the adapter's entry point (seed 000 `entrypoint_strategy`).
#[must_use]
pub fn entry_path(route: &CompiledRoute, next: Option<&str>) -> String {
    let prefix = route.public_prefix.as_str();
    if let Some(n) = next {
        let inside = n.starts_with('/')
            && !n.starts_with("//")
            && !n.contains('\\')
            && !n.bytes().any(|b| b.is_ascii_control())
            && (prefix.is_empty() || n == prefix || n.starts_with(&format!("{prefix}/")))
            && !n.contains("/.platform-proxy");
        if inside {
            return n.to_owned();
        }
    }
    let a = &route.adapter;
    let open = match a.entrypoint_strategy {
        EntrypointStrategy::DefaultOpenPath => a.default_open_path.as_str(),
        EntrypointStrategy::StableDeepLink => a
            .stable_deep_link_template
            .as_deref()
            .filter(|t| !t.contains('{'))
            .unwrap_or(a.default_open_path.as_str()),
        EntrypointStrategy::Root | EntrypointStrategy::PreserveRequestedPath => "/",
    };
    format!("{prefix}{open}")
}

fn page(status: StatusCode, title: &str, text: &str, cid: &CorrelationId) -> Response<ProxyBody> {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1><p>{x}</p><p><small>Correlation id: {c}</small></p></body></html>",
        t = pp_model::envelope::escape_html(title),
        x = pp_model::envelope::escape_html(text),
        c = pp_model::envelope::escape_html(cid.as_str()),
    );
    let mut resp = Response::new(full(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    no_store(h);
    resp
}

fn no_store(h: &mut http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The launch URL carries the code: never let it leak as a Referer.
    h.insert(
        header::HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
}

async fn launch(
    access: &Access,
    route: &CompiledRoute,
    req: ReservedRequest<'_>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let code = query_param(req.query, "code").filter(|c| !c.is_empty() && c.len() <= 128);
    let record = match code {
        Some(code) => access
            .sessions
            .redeem(hash_secret(&code), route.route.id)
            .await
            .map_err(ProxyError::SessionStoreUnavailable)?,
        None => None,
    };
    let mut e =
        pp_identity::audit::entry("launch.redeemed", AuditOutcome::Allowed, req.cid.as_str());
    e.route_id = Some(route.route.id);
    e.org_id.clone_from(&route.route.org_id);
    e.project_id.clone_from(&route.route.project_id);
    let Some(record) = record else {
        e.action = "launch.rejected".into();
        e.outcome = AuditOutcome::Denied;
        e.reason = Some("launch_code_invalid".into());
        access.audit.record(e);
        return Ok(launch_refused(req.cid));
    };
    e.actor = Some(record.user_id.clone());
    e.user_id = Some(record.user_id.clone());
    e.details = serde_json::json!({ "session_id": record.id });
    // Access is checked again at redemption: a grant removed in the minute
    // since the mint must not be outlived by its launch code.
    let principal = access
        .authn
        .directory()
        .load()
        .with_grants(record.principal.clone());
    if let Err(d) = may_use_route(&principal, route_scope(route)) {
        e.action = "launch.rejected".into();
        e.outcome = AuditOutcome::Denied;
        e.reason = Some(d.code().into());
        access.audit.record(e);
        return Err(crate::authorize::outward(d));
    }
    access.audit.record(e);
    let now = crate::unix_now();
    let hard = record.expires_at.unix_timestamp();
    let idle = i64::try_from(access.settings.session_idle.as_secs()).unwrap_or(i64::MAX);
    let claims = SessionClaims {
        sid: record.id,
        route: route.route.id,
        iat: record.created_at.unix_timestamp(),
        exp: now.saturating_add(idle).min(hard),
        hard,
        principal: record.principal,
    };
    let next = query_param(req.query, "next");
    let location = entry_path(route, next.as_deref());
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    for c in session_cookies(access, route, &claims, req.tls) {
        h.append(header::SET_COOKIE, c);
    }
    no_store(h);
    tracing::info!(session_id = %claims.sid, user = %claims.principal.id, route_id = %route.route.id, "launch code redeemed");
    Ok(resp)
}

/// The reserved namespace where no route matches: the same pages a route
/// gives a caller without a session, so they reveal nothing.
///
/// # Errors
/// [`ProxyError::RouteNotFound`] for paths no route serves either.
pub fn without_route(
    access: &Access,
    method: &http::Method,
    tail: &str,
    cid: &CorrelationId,
) -> Result<Response<ProxyBody>, ProxyError> {
    match tail {
        "/launch" if method == http::Method::GET => Ok(launch_refused(cid)),
        "/logout" if method == http::Method::GET => Ok(logout_form(cid)),
        "/logout" if method == http::Method::POST => {
            let mut r = signed_out(access, cid);
            no_store(r.headers_mut());
            Ok(r)
        }
        _ => Err(ProxyError::RouteNotFound),
    }
}

/// After a logout: to the platform's login page, or a short page.
fn signed_out(access: &Access, cid: &CorrelationId) -> Response<ProxyBody> {
    match &access.settings.login_url {
        Some(url) => {
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(url) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        None => page(
            StatusCode::OK,
            "Signed out",
            "Your session for this app has ended.",
            cid,
        ),
    }
}

fn launch_refused(cid: &CorrelationId) -> Response<ProxyBody> {
    page(
        StatusCode::FORBIDDEN,
        "This launch link cannot be used",
        "It has expired or was already used. Open the app again from the platform.",
        cid,
    )
}

fn logout_form(cid: &CorrelationId) -> Response<ProxyBody> {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign out</title></head>\
         <body><h1>Sign out of this app?</h1>\
         <form method=\"post\"><button type=\"submit\">Sign out</button></form>\
         <p><small>Correlation id: {}</small></p></body></html>",
        pp_model::envelope::escape_html(cid.as_str()),
    );
    let mut resp = Response::new(full(html));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    no_store(h);
    resp
}

async fn logout(
    access: &Access,
    route: &CompiledRoute,
    req: ReservedRequest<'_>,
) -> Result<Response<ProxyBody>, ProxyError> {
    if let Ok(caller) = authenticate(access, req.headers, route).await {
        if let Some(session) = &caller.session {
            access
                .sessions
                .revoke_session(session.sid, "logout")
                .await
                .map_err(ProxyError::SessionStoreUnavailable)?;
            let mut e = pp_identity::audit::entry(
                "session.logout",
                AuditOutcome::Allowed,
                req.cid.as_str(),
            );
            e.actor = Some(caller.principal.id.clone());
            e.user_id = Some(caller.principal.id.clone());
            e.route_id = Some(route.route.id);
            e.org_id.clone_from(&route.route.org_id);
            e.project_id.clone_from(&route.route.project_id);
            e.details = serde_json::json!({ "session_id": session.sid });
            access.audit.record(e);
        }
    }
    let mut resp = signed_out(access, req.cid);
    let h = resp.headers_mut();
    // Cleared only where the browser sent one: the cookie's name derives
    // from the route id, which a caller without it must not learn.
    if crate::headers::identity::cookies_named(req.headers, &route.session_cookie)
        .next()
        .is_some()
    {
        for c in clear_cookies(route, req.tls) {
            h.append(header::SET_COOKIE, c);
        }
    }
    no_store(h);
    Ok(resp)
}

/// The response for a browser navigation without a valid session: the
/// platform's login / launch page with a return URL built from the
/// request's own origin and path (the host is one the route table knows or
/// the apps domain's; nothing else the client sent). The platform maps the
/// URL to its app and mints a session; the URL names no route id, so the
/// answer is the same whether a route exists or not. `None` when no login
/// URL is configured (the caller answers 401).
#[must_use]
pub fn login_redirect(
    access: &Access,
    public_origin: &str,
    path_and_query: &str,
) -> Option<Response<ProxyBody>> {
    let login = access.settings.login_url.as_deref()?;
    let return_to = format!("{public_origin}{path_and_query}");
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let sep = if login.contains('?') { '&' } else { '?' };
    let location = format!("{login}{sep}return_to={}", enc(&return_to));
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::FOUND;
    let h = resp.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_str(&location).ok()?);
    no_store(h);
    Some(resp)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pp_model::{NewRoute, RouteTable};

    use super::*;
    use crate::authenticate::cookie_paths;

    /// The compiled route for a `NewRoute` given as JSON.
    fn compiled(v: serde_json::Value) -> Arc<CompiledRoute> {
        let new: NewRoute = serde_json::from_value(v).expect("new route");
        let route = new
            .into_route(time::OffsetDateTime::now_utc())
            .expect("valid route");
        let id = route.id;
        let (table, _) = RouteTable::build("apps.test", vec![route]);
        Arc::clone(table.get(id).expect("served"))
    }

    fn route(mode: &str, adapter: &str, extra: serde_json::Value) -> Arc<CompiledRoute> {
        let mut v = serde_json::json!({
            "owner_type": "app_instance", "owner_id": "a1", "endpoint_name": "web",
            "route_mode": mode, "upstream": {"targets": ["127.0.0.1:1"]}, "adapter": adapter,
        });
        if mode == "subdomain" {
            v["route_host"] = "a1".into();
        }
        if let (Some(m), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            m.extend(e);
        }
        compiled(v)
    }

    #[test]
    fn entry_follows_the_adapter_and_accepts_only_inside_next() {
        let jl_host = route("subdomain", "jupyterlab", serde_json::json!({}));
        let nd_path = route("path_prefix", "netdata", serde_json::json!({}));
        let gen_path = route("path_prefix", "generic", serde_json::json!({}));
        let cases = [
            (&jl_host, None, "/lab"),
            (&jl_host, Some("/lab/tree/x.ipynb"), "/lab/tree/x.ipynb"),
            (&jl_host, Some("//evil.example/"), "/lab"),
            (&jl_host, Some("/\\evil"), "/lab"),
            (&jl_host, Some("https://evil.example/"), "/lab"),
            (&jl_host, Some("/.platform-proxy/logout"), "/lab"),
            (&nd_path, None, "/w/a1/web/v3/"),
            (&gen_path, None, "/w/a1/web/"),
            (&gen_path, Some("/w/a1/web/page"), "/w/a1/web/page"),
            (&gen_path, Some("/w/other/web/"), "/w/a1/web/"),
            (&gen_path, Some("/w/a1/webx"), "/w/a1/web/"),
        ];
        for (r, next, want) in cases {
            assert_eq!(entry_path(r, next), want, "{next:?}");
        }
    }

    #[test]
    fn reserved_namespace_is_found_under_the_route_prefix_only() {
        let host = route("subdomain", "generic", serde_json::json!({}));
        let path = route("path_prefix", "generic", serde_json::json!({}));
        assert_eq!(
            reserved_rest(&host, "/.platform-proxy/launch"),
            Some("/launch")
        );
        assert_eq!(reserved_rest(&host, "/.platform-proxy"), Some(""));
        assert_eq!(reserved_rest(&host, "/.platform-proxyx"), None);
        assert_eq!(reserved_rest(&host, "/app/.platform-proxy/launch"), None);
        assert_eq!(
            reserved_rest(&path, "/w/a1/web/.platform-proxy/logout"),
            Some("/logout")
        );
        assert_eq!(reserved_rest(&path, "/w/a1/web/x"), None);
    }

    #[test]
    fn cookies_cover_the_public_prefix_and_never_a_duplicate_runtime_path() {
        let host = route("subdomain", "jupyterlab", serde_json::json!({}));
        assert_eq!(cookie_paths(&host), vec!["/".to_owned()]);
        let path = route("path_prefix", "jupyterlab", serde_json::json!({}));
        assert_eq!(cookie_paths(&path), vec!["/w/a1/web/".to_owned()]);
        // The proxy's path routes live at their runtime prefix, so the dual
        // strategy adds no second path for them: one cookie, one Path.
        let svc = compiled(serde_json::json!({
            "owner_type": "platform_service", "owner_id": "grafana", "endpoint_name": "ui",
            "route_mode": "path_prefix", "upstream": {"targets": ["127.0.0.1:1"]},
            "adapter": "grafana",
        }));
        assert_eq!(cookie_paths(&svc), vec!["/p/grafana/".to_owned()]);
    }
}
