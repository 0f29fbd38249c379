//! `GET /api/v1/forward-auth` on the API host: the proxy as the auth
//! endpoint of a gateway the platform already runs (Traefik ForwardAuth,
//! nginx `auth_request`; seed 004).
//!
//! The gateway forwards the original request's facts in
//! `X-Forwarded-Method/Proto/Host/Uri` plus its `Cookie` and
//! `Authorization`. When that host and URI are one of the proxy's own
//! routes, the answer is exactly the data plane's: the route's session
//! cookie or a bearer token, authorized against the route. For anything
//! else a bearer token is required, and the query may name what it needs
//! (`?org_id=acme&project_id=ml-dev&role=member`); without requirements any
//! valid credential passes.
//!
//! 200 carries the identity in `X-User-Id`, `X-User-Email`, `X-User-Role`,
//! `X-User-Org` and `X-User-Project` for the gateway to copy upstream;
//! refusals are 401 / 403 envelopes. Decisions are cached for a few
//! seconds per credential and target, but never across a change of the
//! identity directory, so a revocation or a removed grant is never
//! outlived.
//!
//! Public routes are allowed without credentials, as the data plane serves
//! them; a forwarded URI that does not normalize is refused with 403.
//!
//! It lives in the data plane because it is one: every request through the
//! other gateway passes here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use pp_identity::authn::bearer_token;
use pp_identity::session::hash_secret;
use pp_identity::AuthError;
use pp_model::access::may_use_route;
use pp_model::path::normalize;
use pp_model::records::AuditOutcome;
use pp_model::{CorrelationId, Principal, Role, RouteTable};

use crate::access::Access;
use crate::authenticate::authenticate;
use crate::authorize::{audit_denial, route_scope};
use crate::body::{empty, ProxyBody};
use crate::error::ProxyError;
use crate::headers::identity::cookies_named;
use crate::host::split_authority;

/// The endpoint's path on the API host.
pub const PATH: &str = "/api/v1/forward-auth";

/// How long a decision is reused for the same credential and target.
const CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries kept at most; the cache is emptied when it would grow past.
const CACHE_MAX: usize = 10_000;

/// An allowed decision, remembered.
#[derive(Clone)]
struct Allowed {
    at: Instant,
    generation: u64,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The decision cache.
#[derive(Default)]
pub struct ForwardAuthCache {
    entries: Mutex<HashMap<String, Allowed>>,
}

impl std::fmt::Debug for ForwardAuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardAuthCache").finish_non_exhaustive()
    }
}

impl ForwardAuthCache {
    fn get(&self, key: &str, generation: u64) -> Option<Vec<(HeaderName, HeaderValue)>> {
        let entries = self.entries.lock().ok()?;
        let hit = entries.get(key)?;
        (hit.generation == generation && hit.at.elapsed() < CACHE_TTL).then(|| hit.headers.clone())
    }

    fn put(&self, key: String, generation: u64, headers: Vec<(HeaderName, HeaderValue)>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
            entries.insert(
                key,
                Allowed {
                    at: Instant::now(),
                    generation,
                    headers,
                },
            );
        }
    }
}

/// What the query may require of a caller whose target is not a route.
#[derive(Debug, Default, PartialEq, Eq)]
struct Requirement {
    org: Option<String>,
    project: Option<String>,
    role: Option<Role>,
}

fn parse_requirement(query: Option<&str>) -> Result<Requirement, ProxyError> {
    let mut r = Requirement::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .map_err(|_| ProxyError::BadRequest(format!("{k}: not UTF-8")))?
            .into_owned();
        match k {
            "org_id" => r.org = Some(v),
            "project_id" => r.project = Some(v),
            "role" => {
                r.role = Some(Role::parse(&v).ok_or_else(|| {
                    ProxyError::BadRequest(format!(
                        "role: expected viewer, member or admin, got {v:?}"
                    ))
                })?);
            }
            other => {
                return Err(ProxyError::BadRequest(format!(
                    "unknown parameter {other:?}"
                )))
            }
        }
    }
    // Without an org a project or role names nothing, and would let every
    // valid credential through a check that looks strict.
    if (r.project.is_some() || r.role.is_some()) && r.org.is_none() {
        return Err(ProxyError::BadRequest(
            "project_id and role need org_id".into(),
        ));
    }
    Ok(r)
}

fn meets(p: &Principal, r: &Requirement) -> bool {
    if p.platform_admin {
        return true;
    }
    let Some(org) = &r.org else {
        return true;
    };
    let held = match &r.project {
        Some(project) => p.project_role(org, project),
        None => p.org_role(org),
    };
    match (held, r.role) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(h), Some(want)) => h >= want,
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Answers one forward-auth check.
///
/// # Errors
/// The refusal as a [`ProxyError`] (401, 403, 400 for malformed facts).
pub async fn check(
    access: &Access,
    cache: &ForwardAuthCache,
    table: &RouteTable,
    headers: &HeaderMap,
    query: Option<&str>,
    cid: &CorrelationId,
) -> Result<Response<ProxyBody>, ProxyError> {
    let fwd_host = header_str(headers, "x-forwarded-host").unwrap_or_default();
    let fwd_uri = header_str(headers, "x-forwarded-uri").unwrap_or("/");
    let host = split_authority(fwd_host)
        .map(|(h, _)| h)
        .unwrap_or_default();
    let path_only = fwd_uri.split('?').next().unwrap_or("/");
    // A forwarded URI that does not normalize is refused, not answered 400:
    // gateways turn anything but 2xx / 401 / 403 into an error of their own.
    let Ok(path) = normalize(path_only) else {
        return Err(ProxyError::Forbidden);
    };
    let route = table.resolve(&host, &path).map(|r| r.route);
    if route.is_none() && table.is_apps_host(&host) {
        // No such app under the apps domain: refused alike for everyone,
        // so a valid token cannot probe which routes exist.
        return Err(ProxyError::Forbidden);
    }
    if route.as_ref().is_some_and(|r| r.public) {
        // The data plane serves public routes to anyone; so does this.
        return Ok(allowed(Vec::new()));
    }
    let requirement = parse_requirement(query)?;

    let generation = *access.authn.directory().subscribe().borrow();
    // The cache key is the credential that will decide: the route's own
    // session cookie when one is sent (the data plane tries it first), else
    // the bearer token. Keying on anything else would let one credential's
    // decision answer for another.
    let bearer = header_str(headers, "authorization").and_then(bearer_token);
    let credential = match &route {
        Some(r) => {
            let cookies: Vec<&str> = cookies_named(headers, &r.session_cookie)
                .filter_map(|v| std::str::from_utf8(v).ok())
                .collect();
            if cookies.is_empty() {
                bearer.map(|b| format!("b:{b}"))
            } else {
                Some(format!("c:{}", cookies.join(";")))
            }
        }
        None => bearer.map(|b| format!("b:{b}")),
    };
    let key = credential.as_deref().map(|c| {
        let target = match &route {
            Some(r) => r.route.id.to_string(),
            None => format!("{requirement:?}"),
        };
        hash_secret(&format!("{target}\n{c}"))
    });
    if let Some(k) = &key {
        if let Some(h) = cache.get(k, generation) {
            return Ok(allowed(h));
        }
    }

    let (principal, org, project) = match &route {
        Some(route) => {
            let caller = authenticate(access, headers, route).await?;
            if let Err(d) = may_use_route(&caller.principal, route_scope(route)) {
                audit_denial(access, &caller, route, cid, d.code());
                // Always 403 here, even for outsiders: gateways treat any
                // answer but 2xx, 401 and 403 as an error of their own
                // (nginx `auth_request` turns a 404 into a 500).
                return Err(ProxyError::Forbidden);
            }
            (
                Principal::clone(&caller.principal),
                route.route.org_id.clone(),
                route.route.project_id.clone(),
            )
        }
        None => {
            let token = bearer.ok_or(ProxyError::Unauthenticated(AuthError::Missing.code()))?;
            let a = access
                .authn
                .bearer(token)
                .await
                .map_err(|e| ProxyError::Unauthenticated(e.code()))?;
            if !meets(&a.principal, &requirement) {
                let mut e =
                    pp_identity::audit::entry("access.denied", AuditOutcome::Denied, cid.as_str());
                e.actor = Some(a.principal.id.clone());
                e.user_id = Some(a.principal.id.clone());
                e.org_id.clone_from(&requirement.org);
                e.project_id.clone_from(&requirement.project);
                e.reason = Some("requirement_not_met".into());
                e.details = serde_json::json!({
                    "via": a.via.as_str(),
                    "forward_auth_host": fwd_host,
                    "role": requirement.role.map(Role::as_str),
                });
                access.audit.record(e);
                return Err(ProxyError::Forbidden);
            }
            (
                a.principal,
                requirement.org.clone(),
                requirement.project.clone(),
            )
        }
    };
    let h = identity_headers(&principal, org.as_deref(), project.as_deref());
    if let Some(k) = key {
        cache.put(k, generation, h.clone());
    }
    Ok(allowed(h))
}

fn allowed(h: Vec<(HeaderName, HeaderValue)>) -> Response<ProxyBody> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::OK;
    let m = resp.headers_mut();
    for (k, v) in h {
        m.insert(k, v);
    }
    m.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn identity_headers(
    p: &Principal,
    org: Option<&str>,
    project: Option<&str>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    let mut push = |name: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            out.push((HeaderName::from_static(name), v));
        }
    };
    push("x-user-id", &p.id);
    if let Some(e) = &p.email {
        push("x-user-email", e);
    }
    // Without an org to judge, the gateway is told every role.
    push("x-user-role", &p.role_header(org, true));
    if let Some(o) = org {
        push("x-user-org", o);
    }
    if let Some(pr) = project {
        push("x-user-project", pr);
    }
    out
}

#[cfg(test)]
mod tests {
    use pp_model::{PrincipalKind, Scope};

    use super::*;

    #[test]
    fn requirements_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_requirement(None).expect("none"),
            Requirement::default()
        );
        let r = parse_requirement(Some("org_id=acme&project_id=dev&role=member")).expect("ok");
        assert_eq!(r.org.as_deref(), Some("acme"));
        assert_eq!(r.project.as_deref(), Some("dev"));
        assert_eq!(r.role, Some(Role::Member));
        for bad in ["role=owner", "project_id=dev", "role=admin", "x=1"] {
            assert!(parse_requirement(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_cache_forgets_on_a_new_generation_and_never_grows_past_its_bound() {
        let cache = ForwardAuthCache::default();
        let h = vec![(
            HeaderName::from_static("x-user-id"),
            HeaderValue::from_static("alice"),
        )];
        cache.put("k".into(), 1, h.clone());
        assert!(cache.get("k", 1).is_some());
        assert!(cache.get("k", 2).is_none(), "a new directory generation");
        for i in 0..CACHE_MAX {
            cache.put(format!("fill-{i}"), 1, h.clone());
        }
        let len = cache.entries.lock().map(|e| e.len()).unwrap_or(usize::MAX);
        assert!(len <= CACHE_MAX, "{len} entries");
        assert!(cache.get("k", 1).is_none(), "emptied when it filled up");
    }

    #[test]
    fn requirements_follow_the_role_order() {
        let mut p = Principal::new(PrincipalKind::User, "u");
        p.grant(Scope::project("acme", "dev"), Role::Member);
        let req = |org: Option<&str>, project: Option<&str>, role| Requirement {
            org: org.map(str::to_owned),
            project: project.map(str::to_owned),
            role,
        };
        assert!(meets(&p, &req(None, None, None)));
        assert!(meets(
            &p,
            &req(Some("acme"), Some("dev"), Some(Role::Viewer))
        ));
        assert!(meets(
            &p,
            &req(Some("acme"), Some("dev"), Some(Role::Member))
        ));
        assert!(!meets(
            &p,
            &req(Some("acme"), Some("dev"), Some(Role::Admin))
        ));
        assert!(!meets(&p, &req(Some("acme"), Some("prod"), None)));
        assert!(!meets(&p, &req(Some("acme"), None, None)));
        assert!(!meets(&p, &req(Some("globex"), None, None)));
    }
}
