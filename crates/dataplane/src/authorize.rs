//! Pipeline step 4: may this caller use this route? The rules are the
//! model's ([`pp_model::access`]); this step applies them, audits every
//! denial with its real reason, and answers so that an outsider learns
//! nothing: a caller with no role in the route's org gets the same 404 as
//! for a route that does not exist; a member of the org who lacks the
//! project or role gets 403.
//!
//! WebSocket upgrades are authorized like any request, and a browser
//! upgrade must come from the route's own origin or an allow-listed
//! platform-shell origin: cookies ride along on cross-site WebSocket
//! handshakes, so without this check any page could drive the app as the
//! user (cross-site WebSocket hijacking).

use http::header::{self, HeaderMap};
use pp_model::access::{may_use_route, Denial, RouteScope};
use pp_model::records::AuditOutcome;
use pp_model::table::CompiledRoute;
use pp_model::CorrelationId;

use crate::access::Access;
use crate::authenticate::Caller;
use crate::error::ProxyError;

/// The route's scope as the access rules see it.
#[must_use]
pub fn route_scope(route: &CompiledRoute) -> RouteScope<'_> {
    RouteScope {
        org_id: route.route.org_id.as_deref(),
        project_id: route.route.project_id.as_deref(),
        strategy: route.adapter.scope_strategy,
    }
}

/// Authorizes `caller` on `route`.
///
/// # Errors
/// [`ProxyError::RouteNotFound`] or [`ProxyError::Forbidden`].
pub fn authorize(
    access: &Access,
    caller: &Caller,
    route: &CompiledRoute,
    cid: &CorrelationId,
) -> Result<(), ProxyError> {
    let Err(denial) = may_use_route(&caller.principal, route_scope(route)) else {
        return Ok(());
    };
    audit_denial(access, caller, route, cid, denial.code());
    tracing::info!(
        user = %caller.principal.id,
        route_id = %route.route.id,
        reason = denial.code(),
        "access denied"
    );
    Err(outward(denial))
}

/// The answer for a denial: not-found for outsiders, forbidden for members.
#[must_use]
pub fn outward(denial: Denial) -> ProxyError {
    if denial.is_outsider() {
        ProxyError::RouteNotFound
    } else {
        ProxyError::Forbidden
    }
}

/// Records a denial of `caller` on `route` with a machine-readable reason.
pub fn audit_denial(
    access: &Access,
    caller: &Caller,
    route: &CompiledRoute,
    cid: &CorrelationId,
    reason: &str,
) {
    let mut e = pp_identity::audit::entry("access.denied", AuditOutcome::Denied, cid.as_str());
    e.actor = Some(caller.principal.id.clone());
    e.user_id = Some(caller.principal.id.clone());
    e.org_id.clone_from(&route.route.org_id);
    e.project_id.clone_from(&route.route.project_id);
    e.route_id = Some(route.route.id);
    e.reason = Some(reason.to_owned());
    e.details = serde_json::json!({ "via": caller.via.as_str() });
    access.audit.record(e);
}

/// Checks the `Origin` of a WebSocket handshake: the route's own origin
/// (`{proto}://{authority}` as the browser addressed it) or one of the
/// allowed platform origins. A handshake without `Origin` is no browser's
/// (browsers always send it, RFC 6455 §4.1 item 8) and passes.
///
/// # Errors
/// [`ProxyError::OriginNotAllowed`].
pub fn check_origin(
    headers: &HeaderMap,
    proto: &str,
    authority: &str,
    allowed: &[String],
) -> Result<(), ProxyError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let Ok(origin) = origin.to_str() else {
        return Err(ProxyError::OriginNotAllowed);
    };
    let own = format!("{proto}://{authority}");
    if origin.eq_ignore_ascii_case(&own) || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return Ok(());
    }
    Err(ProxyError::OriginNotAllowed)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn origin_must_be_the_route_or_an_allowed_shell() {
        let allowed = vec!["https://console.example.com".to_owned()];
        let cases = [
            (None, true),
            (Some("http://a.apps.localhost:8080"), true),
            (Some("HTTP://A.apps.localhost:8080"), true),
            (Some("https://console.example.com"), true),
            (Some("http://a.apps.localhost"), false),
            (Some("http://b.apps.localhost:8080"), false),
            (Some("https://evil.example"), false),
            (Some("null"), false),
        ];
        for (origin, ok) in cases {
            let mut h = HeaderMap::new();
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_static(o));
            }
            assert_eq!(
                check_origin(&h, "http", "a.apps.localhost:8080", &allowed).is_ok(),
                ok,
                "{origin:?}"
            );
        }
    }

    #[test]
    fn outsiders_get_not_found_members_get_forbidden() {
        assert!(matches!(
            outward(Denial::CrossTenant),
            ProxyError::RouteNotFound
        ));
        assert!(matches!(
            outward(Denial::RouteHasNoOrg),
            ProxyError::RouteNotFound
        ));
        for d in [
            Denial::NotProjectMember,
            Denial::NeedsOrgAdmin,
            Denial::RouteHasNoProject,
        ] {
            assert!(matches!(outward(d), ProxyError::Forbidden), "{d:?}");
        }
    }
}
