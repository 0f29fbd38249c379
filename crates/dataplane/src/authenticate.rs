//! Pipeline step 3: who is asking. The proxy-session cookie for this route
//! first (browsers), then a bearer token (API clients: service tokens and
//! platform JWTs). Everything is checked in memory: the cookie is sealed and
//! self-contained, revocations and pushed grants come from the directory
//! snapshot, and only a JWT with an unknown key costs a JWKS fetch.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use pp_identity::authn::bearer_token;
use pp_identity::{AuthError, SessionClaims, Via};
use pp_model::adapter::CookieScopeStrategy;
use pp_model::table::CompiledRoute;
use pp_model::Principal;
use time::OffsetDateTime;

use crate::access::Access;
use crate::error::ProxyError;
use crate::headers::identity::{cookies_named, IdentityValues};

/// An authenticated caller of an app route.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Roles from the credential merged with the pushed grants in force.
    pub principal: Arc<Principal>,
    /// The credential's own roles, before pushed grants: re-merged with
    /// the grants of each new directory snapshot while a tunnel is open.
    pub credential: Arc<Principal>,
    /// The identity header values kept for `principal` on this route, when
    /// it is a session cookie's own (no pushed grants merged in).
    pub identity: Option<Arc<IdentityValues>>,
    pub via: Via,
    /// The session, for cookie callers: its id goes to logs, and open
    /// tunnels watch it for revocation.
    pub session: Option<Arc<SessionClaims>>,
    /// When the credential was issued (Unix seconds).
    pub issued_at: i64,
    /// When the credential ends (Unix seconds): the session's hard end or
    /// the token's expiry. A tunnel opened with it closes then.
    pub expires_at: Option<i64>,
    /// A renewed cookie to set on the response (sliding expiry).
    pub renewed: Option<SessionClaims>,
}

/// Authenticates a request to `route`.
///
/// # Errors
/// [`ProxyError::Unauthenticated`] naming why (the log's and audit's
/// business; the client sees one 401 for all of them).
pub async fn authenticate(
    access: &Access,
    headers: &HeaderMap,
    route: &CompiledRoute,
) -> Result<Caller, ProxyError> {
    match by_session(access, headers, route) {
        Presented::Session(caller) => Ok(caller),
        Presented::Bearer(token) => by_bearer(access, token).await,
        Presented::Neither(e) => Err(e),
    }
}

/// What a request presents, as far as can be told without waiting: a
/// browser's session is decided here, a bearer token is checked by
/// [`by_bearer`] (a JWT may need its issuer's keys fetched). Returned and
/// matched at once, so the caller is not boxed (an allocation a request).
#[allow(clippy::large_enum_variant)]
pub enum Presented<'h> {
    /// A valid session cookie for the route.
    Session(Caller),
    /// No valid session cookie, and this bearer token.
    Bearer(&'h str),
    /// Neither: [`ProxyError::Unauthenticated`] naming why.
    Neither(ProxyError),
}

/// [`authenticate`]'s session-cookie part, which never waits.
#[must_use]
pub fn by_session<'h>(
    access: &Access,
    headers: &'h HeaderMap,
    route: &CompiledRoute,
) -> Presented<'h> {
    let now = crate::unix_now();
    let directory = access.authn.directory().load();
    let mut cookie_problem = None;
    for value in cookies_named(headers, &route.session_cookie) {
        let Ok(opened) = access.opened.open(&access.keys, route.route.id, value, now) else {
            cookie_problem = Some("session_invalid");
            continue;
        };
        let claims = &opened.claims;
        if claims.expired(now) {
            cookie_problem = Some("session_expired");
            continue;
        }
        if directory.revocations().check(claims).is_some() {
            cookie_problem = Some("session_revoked");
            continue;
        }
        let idle = i64::try_from(access.settings.session_idle.as_secs()).unwrap_or(i64::MAX);
        let renewed = (claims.exp - now <= idle / 2 && claims.exp < claims.hard).then(|| {
            let mut r = SessionClaims::clone(claims);
            r.exp = now.saturating_add(idle).min(claims.hard);
            r
        });
        // Most users have no pushed grants: they share the opened
        // cookie's principal instead of merging into a copy of it.
        let (principal, identity) = if directory.has_grants(&opened.principal.id) {
            let merged = directory.with_grants(Principal::clone(&opened.principal));
            (Arc::new(merged), None)
        } else {
            (Arc::clone(&opened.principal), Some(opened.identity))
        };
        return Presented::Session(Caller {
            principal,
            credential: opened.principal,
            identity,
            via: Via::SessionCookie,
            issued_at: claims.iat,
            expires_at: Some(claims.hard),
            session: Some(opened.claims),
            renewed,
        });
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    if let Some(token) = bearer {
        return Presented::Bearer(token);
    }
    Presented::Neither(ProxyError::Unauthenticated(
        cookie_problem.unwrap_or(AuthError::Missing.code()),
    ))
}

/// [`authenticate`]'s bearer-token part: a service token or a platform JWT.
///
/// # Errors
/// As [`authenticate`].
pub async fn by_bearer(access: &Access, token: &str) -> Result<Caller, ProxyError> {
    match access.authn.bearer(token).await {
        Ok(a) => Ok(Caller {
            principal: Arc::new(a.principal),
            credential: Arc::new(a.token_principal),
            identity: None,
            via: a.via,
            session: None,
            issued_at: a.issued_at,
            expires_at: a.expires_at.map(OffsetDateTime::unix_timestamp),
            renewed: None,
        }),
        Err(e) => Err(ProxyError::Unauthenticated(e.code())),
    }
}

/// The cookie paths of a route: the public prefix, and the runtime prefix
/// too when the adapter says the app emits runtime paths
/// (`dual_public_and_runtime_prefix`, seed 000's JupyterLab case) and they
/// differ. A host route's public path `/` already covers everything.
#[must_use]
pub fn cookie_paths(route: &CompiledRoute) -> Vec<String> {
    let public = format!("{}/", route.public_prefix);
    let mut paths = vec![public.clone()];
    if route.adapter.cookie_scope_strategy == CookieScopeStrategy::DualPublicAndRuntimePrefix
        && public != "/"
    {
        let runtime = format!("{}/", route.route.runtime_prefix());
        if runtime != public {
            paths.push(runtime);
        }
    }
    paths
}

/// `Set-Cookie` values carrying `claims` on every path of the route.
/// HttpOnly, SameSite=Lax, Secure over TLS, host-only (no Domain), and kept
/// by the browser until the session's hard end (RFC 6265 §4.1).
#[must_use]
pub fn session_cookies(
    access: &Access,
    route: &CompiledRoute,
    claims: &SessionClaims,
    tls: bool,
) -> Vec<HeaderValue> {
    let Ok(value) = claims.seal(&access.keys) else {
        tracing::error!("sealing a session cookie failed");
        return Vec::new();
    };
    let now = crate::unix_now();
    set_cookies(route, &value, (claims.hard - now).max(0), tls)
}

/// `Set-Cookie` values that delete the route's session cookies.
#[must_use]
pub fn clear_cookies(route: &CompiledRoute, tls: bool) -> Vec<HeaderValue> {
    set_cookies(route, "", 0, tls)
}

fn set_cookies(route: &CompiledRoute, value: &str, max_age: i64, tls: bool) -> Vec<HeaderValue> {
    let name = &route.session_cookie;
    let secure = if tls { "; Secure" } else { "" };
    cookie_paths(route)
        .iter()
        .filter_map(|path| {
            HeaderValue::from_str(&format!(
                "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
            ))
            .ok()
        })
        .collect()
}
