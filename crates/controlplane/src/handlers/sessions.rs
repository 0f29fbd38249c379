//! Browser sessions: minting (with the one-time launch code), listing,
//! revocation, OIDC back-channel logout, and the assertion JWKS.
//!
//! The platform session is the outer authority (seed 001 "Session Model"):
//! a proxy session is minted only from a valid platform credential, lasts
//! at most `session_max`, and dies with the platform session (back-channel
//! logout) or when revoked here. Revocations are stored, then reach every
//! replica's in-memory set through the change feed; open WebSockets of the
//! revoked sessions are closed when it arrives.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use pp_identity::LaunchCode;
use pp_model::access::{may_manage_route, may_use_route, Denial};
use pp_model::records::{AuditOutcome, Revocation, RevocationTarget, SessionFilter, SessionRecord};
use pp_model::{ErrorEnvelope, PrincipalKind};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::routes::scope_of;
use crate::audit;
use crate::auth::Caller;
use crate::correlation::Cid;
use crate::error::ApiError;
use crate::extract::{
    parse_bool, parse_json, parse_limit, parse_uuid, unknown_param, JsonBody, QueryPairs, RouteId,
};
use crate::AppState;

/// Body of `POST /api/v1/routes/{id}/browser-session` (may be `{}`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MintRequest {
    /// A path inside the route to land on instead of the adapter's entry
    /// point (`/lab/tree/notebook.ipynb`).
    pub(crate) next: Option<String>,
}

/// A minted session: open `open_url` in the browser within
/// `launch_expires_at`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MintedSession {
    pub(crate) session_id: Uuid,
    pub(crate) route_id: Uuid,
    /// The route's own origin with a one-time launch code; single use.
    pub(crate) open_url: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub(crate) launch_expires_at: OffsetDateTime,
    /// The session's hard end.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub(crate) expires_at: OffsetDateTime,
}

fn deny(d: Denial) -> ApiError {
    if d.is_outsider() {
        ApiError::RouteNotFound
    } else {
        ApiError::Forbidden("your roles do not allow opening this app")
    }
}

fn at_offset(now: OffsetDateTime, d: std::time::Duration) -> OffsetDateTime {
    now + time::Duration::try_from(d).unwrap_or(time::Duration::HOUR)
}

/// Mint a browser session for the caller on a route.
#[utoipa::path(
    post,
    path = "/api/v1/routes/{id}/browser-session",
    tag = "sessions",
    operation_id = "mint_browser_session",
    params(("id" = Uuid, Path, description = "Route id")),
    request_body(content = MintRequest, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Minted; open `open_url`", body = MintedSession),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: the caller's role does not allow it", body = ErrorEnvelope),
        (status = 404, description = "`route_not_found`: no such route the caller may see", body = ErrorEnvelope),
        (status = 422, description = "`validation_failed`: `next` is not a path", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn mint(
    State(state): State<AppState>,
    caller: Caller,
    cid: Cid,
    RouteId(id): RouteId,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // The body is optional: no body (or `{}`) lands on the entry point.
    let req: MintRequest = if body.is_empty() {
        MintRequest::default()
    } else {
        parse_json(&body)?
    };
    let route = state
        .store
        .get_route(id)
        .await?
        .filter(|r| r.deleted_at.is_none() && r.status.is_served())
        .ok_or(ApiError::RouteNotFound)?;
    let principal = caller.principal();
    if principal.kind == PrincipalKind::Operator {
        return Err(ApiError::Forbidden(
            "the bootstrap token is no user; mint sessions with a user's token",
        ));
    }
    // Whoever may use the route may mint their own session for it; a
    // session grants nothing the credential does not.
    if let Err(d) = may_use_route(principal, scope_of(&route)) {
        let mut e = audit::entry(&caller, "session.denied", AuditOutcome::Denied, &cid);
        e.route_id = Some(route.id);
        e.org_id.clone_from(&route.org_id);
        e.project_id.clone_from(&route.project_id);
        e.user_id = Some(caller.id().to_owned());
        e.reason = Some(d.code().to_owned());
        audit::write(&state, e).await;
        return Err(deny(d));
    }
    if let Some(n) = &req.next {
        if !n.starts_with('/') || n.starts_with("//") || n.len() > 2048 {
            return Err(pp_model::ValidationError::new("next", "must be an absolute path").into());
        }
    }
    let now = OffsetDateTime::now_utc();
    let code = LaunchCode::generate().map_err(|e| ApiError::Internal(Box::new(e)))?;
    // The cookie carries only the credential's own roles on the route's
    // org: pushed grants are merged in on every request instead, so a
    // removed grant takes effect at once.
    let token_roles = caller
        .0
        .token_principal
        .restricted_to_org(route.org_id.as_deref());
    let record = SessionRecord {
        id: Uuid::new_v4(),
        route_id: route.id,
        user_id: principal.id.clone(),
        platform_session: principal.platform_session.clone(),
        principal: token_roles,
        launch_code_hash: code.hash.clone(),
        launch_expires_at: at_offset(now, state.config.launch_ttl),
        redeemed_at: None,
        created_at: now,
        expires_at: at_offset(now, state.config.session_max),
        revoked_at: None,
        correlation_id: cid.0.as_str().to_owned(),
    };
    state.store.create_session(&record).await?;
    let mut open_url = format!(
        "{}.platform-proxy/launch?code={}",
        state.public.public_url(&route),
        code.code
    );
    if let Some(n) = &req.next {
        open_url.push_str("&next=");
        open_url.push_str(
            &percent_encoding::utf8_percent_encode(n, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        );
    }
    let mut e = audit::entry(&caller, "session.issued", AuditOutcome::Allowed, &cid);
    e.route_id = Some(route.id);
    e.org_id.clone_from(&route.org_id);
    e.project_id.clone_from(&route.project_id);
    e.user_id = Some(principal.id.clone());
    audit::detail(&mut e, "session_id", serde_json::json!(record.id));
    audit::write(&state, e).await;
    tracing::info!(correlation_id = %cid.0, session_id = %record.id, route_id = %route.id, user = %principal.id, "browser session minted");
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(MintedSession {
            session_id: record.id,
            route_id: route.id,
            open_url,
            launch_expires_at: record.launch_expires_at,
            expires_at: record.expires_at,
        }),
    ))
}

/// A session as listings show it (no launch-code hash).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionView {
    pub(crate) id: Uuid,
    pub(crate) route_id: Uuid,
    pub(crate) user_id: String,
    pub(crate) platform_session: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub(crate) created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub(crate) expires_at: OffsetDateTime,
    pub(crate) launched: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) revoked_at: Option<OffsetDateTime>,
}

impl From<SessionRecord> for SessionView {
    fn from(s: SessionRecord) -> Self {
        Self {
            id: s.id,
            route_id: s.route_id,
            user_id: s.user_id,
            platform_session: s.platform_session,
            created_at: s.created_at,
            expires_at: s.expires_at,
            launched: s.redeemed_at.is_some(),
            revoked_at: s.revoked_at,
        }
    }
}

/// One page of `GET /api/v1/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionList {
    pub(crate) items: Vec<SessionView>,
    pub(crate) next_cursor: Option<Uuid>,
}

/// May the caller see and end sessions of this route? Its managers may;
/// anyone may for their own sessions (filtered by user below).
async fn manages_route(
    state: &AppState,
    caller: &Caller,
    route_id: Uuid,
) -> Result<bool, ApiError> {
    let Some(route) = state.store.get_route(route_id).await? else {
        return Ok(false);
    };
    Ok(may_manage_route(
        caller.principal(),
        route.org_id.as_deref(),
        route.project_id.as_deref(),
    ))
}

/// List sessions by route or user. Route admins see their routes'
/// sessions; everyone sees their own.
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "sessions",
    operation_id = "list_sessions",
    params(
        ("route_id" = Option<Uuid>, Query, description = "Sessions of this route"),
        ("user_id" = Option<String>, Query, description = "Sessions of this user"),
        ("live" = Option<bool>, Query, description = "Only unexpired, unrevoked sessions"),
        ("after" = Option<Uuid>, Query, description = "The previous page's `next_cursor`"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 500 (default 50)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of sessions", body = SessionList),
        (status = 400, description = "`bad_request`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: neither your sessions nor a route you manage", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<SessionList>, ApiError> {
    let mut f = SessionFilter {
        limit: 50,
        ..SessionFilter::default()
    };
    for (name, value) in pairs {
        match name.as_str() {
            "route_id" => f.route_id = Some(parse_uuid(&name, &value)?),
            "user_id" => f.user_id = Some(value),
            "after" => f.after = Some(parse_uuid(&name, &value)?),
            "live" => {
                if parse_bool(&name, &value)? {
                    f.live_at = Some(OffsetDateTime::now_utc());
                }
            }
            "limit" => f.limit = parse_limit(&value)?,
            _ => return Err(unknown_param(&name)),
        }
    }
    let own = f.user_id.as_deref() == Some(caller.id());
    let allowed = caller.principal().platform_admin
        || own
        || match f.route_id {
            Some(r) => manages_route(&state, &caller, r).await?,
            None => false,
        };
    if !allowed {
        return Err(ApiError::Forbidden(
            "list your own sessions (user_id) or those of a route you manage (route_id)",
        ));
    }
    let page = state.store.list_sessions(&f).await?;
    Ok(Json(SessionList {
        items: page.items.into_iter().map(SessionView::from).collect(),
        next_cursor: page.next,
    }))
}

/// Body of `POST /api/v1/sessions/revoke`: exactly one target.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeRequest {
    pub(crate) session_id: Option<Uuid>,
    pub(crate) user_id: Option<String>,
    pub(crate) route_id: Option<Uuid>,
    /// Why, for the audit log (default "revoked by API").
    pub(crate) reason: Option<String>,
}

/// What a revocation did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RevokeResult {
    /// Stored sessions the revocation marked (WebSockets of any of them
    /// close as the revocation reaches each replica).
    pub(crate) sessions_revoked: u64,
}

/// Revoke one session, all of a user's sessions (logout) or all of a
/// route's.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/revoke",
    tag = "sessions",
    operation_id = "revoke_sessions",
    request_body(content = RevokeRequest, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked", body = RevokeResult),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such session or route you may see", body = ErrorEnvelope),
        (status = 422, description = "`validation_failed`: name exactly one target", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    cid: Cid,
    JsonBody(req): JsonBody<RevokeRequest>,
) -> Result<Json<RevokeResult>, ApiError> {
    let p = caller.principal();
    // The route a revocation concerns, if any, so its org and project
    // admins find the record in the audit log.
    let mut about: Option<pp_model::Route> = None;
    let target = match (req.session_id, req.user_id, req.route_id) {
        (Some(sid), None, None) => {
            let s = state
                .store
                .get_session(sid)
                .await?
                .ok_or(ApiError::Missing("session"))?;
            if !(p.platform_admin
                || s.user_id == p.id
                || manages_route(&state, &caller, s.route_id).await?)
            {
                return Err(ApiError::Missing("session"));
            }
            about = state.store.get_route(s.route_id).await?;
            RevocationTarget::Session(sid)
        }
        (None, Some(user), None) => {
            if !(p.platform_admin || user == p.id) {
                return Err(ApiError::Forbidden(
                    "only platform admins end another user's sessions everywhere",
                ));
            }
            RevocationTarget::User(user)
        }
        (None, None, Some(route)) => {
            let r = state
                .store
                .get_route(route)
                .await?
                .filter(|r| super::routes::may_see(p, r))
                .ok_or(ApiError::RouteNotFound)?;
            if !may_manage_route(p, r.org_id.as_deref(), r.project_id.as_deref()) {
                return Err(ApiError::Forbidden(
                    "revoking a route's sessions needs an admin role on it",
                ));
            }
            about = Some(r);
            RevocationTarget::Route(route)
        }
        _ => {
            return Err(pp_model::ValidationError::new(
                "session_id",
                "name exactly one of session_id, user_id, route_id",
            )
            .into())
        }
    };
    let reason = req.reason.unwrap_or_else(|| "revoked by API".to_owned());
    if reason.len() > 512 {
        return Err(pp_model::ValidationError::new("reason", "at most 512 bytes").into());
    }
    let n = store_revocation(&state, target.clone(), reason.clone()).await?;
    let mut e = audit::entry(&caller, "session.revoked", AuditOutcome::Allowed, &cid);
    if let Some(r) = &about {
        e.route_id = Some(r.id);
        e.org_id.clone_from(&r.org_id);
        e.project_id.clone_from(&r.project_id);
    }
    match &target {
        RevocationTarget::Session(id) => audit::detail(&mut e, "session_id", serde_json::json!(id)),
        RevocationTarget::User(u) => e.user_id = Some(u.clone()),
        RevocationTarget::Route(r) => e.route_id = Some(*r),
        RevocationTarget::PlatformSession(s) => {
            audit::detail(&mut e, "platform_session", serde_json::json!(s));
        }
    }
    audit::detail(&mut e, "reason", serde_json::json!(reason));
    audit::detail(&mut e, "sessions_revoked", serde_json::json!(n));
    audit::write(&state, e).await;
    Ok(Json(RevokeResult {
        sessions_revoked: n,
    }))
}

/// Stores a revocation that outlives every session it can name.
async fn store_revocation(
    state: &AppState,
    target: RevocationTarget,
    reason: String,
) -> Result<u64, ApiError> {
    revoke_at(state, target, reason, OffsetDateTime::now_utc()).await
}

/// Stores a revocation of what was minted at or before `at`. It is kept
/// for `session_max` plus a day: past any session it can name, and past
/// the bearer tokens identity providers usually issue (hours), which a user
/// revocation refuses too.
async fn revoke_at(
    state: &AppState,
    target: RevocationTarget,
    reason: String,
    at: OffsetDateTime,
) -> Result<u64, ApiError> {
    let now = OffsetDateTime::now_utc();
    let r = Revocation {
        target,
        revoked_at: at,
        expires_at: at_offset(now, state.config.session_max) + time::Duration::DAY,
        reason,
    };
    Ok(state.store.revoke(&r).await?)
}

/// How old a logout token may be when it arrives (providers send it at
/// logout; retries take seconds, not minutes).
const LOGOUT_TOKEN_MAX_AGE: time::Duration = time::Duration::minutes(10);

/// OpenID Connect Back-Channel Logout 1.0: the identity provider posts a
/// signed logout token naming a platform session (`sid`) or a user
/// (`sub`); every proxy session minted from it ends.
#[utoipa::path(
    post,
    path = "/api/v1/backchannel-logout",
    tag = "sessions",
    operation_id = "backchannel_logout",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`logout_token=<JWT>`"),
    responses(
        (status = 200, description = "Sessions ended"),
        (status = 400, description = "`bad_request`: no valid logout token", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn backchannel_logout(
    State(state): State<AppState>,
    cid: Cid,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let form_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_ok {
        return Err(ApiError::UnsupportedMediaType);
    }
    let token = std::str::from_utf8(&body)
        .ok()
        .and_then(|b| {
            b.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == "logout_token").then(|| {
                    percent_encoding::percent_decode_str(&v.replace('+', " "))
                        .decode_utf8_lossy()
                        .into_owned()
                })
            })
        })
        .ok_or_else(|| ApiError::bad_request("logout_token", "logout_token is required"))?;
    let jwt = state.authn.jwt().ok_or_else(|| {
        ApiError::bad_request("logout_token", "no identity provider is configured")
    })?;
    let logout = jwt.verify_logout_token(&token).await.map_err(|e| {
        tracing::info!(correlation_id = %cid.0, reason = e.code(), "back-channel logout token refused");
        ApiError::bad_request("logout_token", "the logout token is not valid")
    })?;
    // Stamped with the token's own `iat`, and refused when stale: a
    // captured logout token replayed later neither ends sessions minted
    // since nor stays usable for long.
    let now = OffsetDateTime::now_utc();
    let issued = logout.issued_at.unwrap_or(now).min(now);
    if now - issued > LOGOUT_TOKEN_MAX_AGE {
        return Err(ApiError::bad_request(
            "logout_token",
            "the logout token is too old; the identity provider sends it at logout",
        ));
    }
    let mut total = 0;
    let mut e = pp_identity::audit::entry(
        "session.backchannel_logout",
        AuditOutcome::Allowed,
        cid.0.as_str(),
    );
    e.actor = Some(jwt.issuer().to_owned());
    if let Some(sid) = &logout.session_id {
        total += revoke_at(
            &state,
            RevocationTarget::PlatformSession(sid.clone()),
            "back-channel logout".into(),
            issued,
        )
        .await?;
        audit::detail(&mut e, "platform_session", serde_json::json!(sid));
    }
    if logout.session_id.is_none() {
        if let Some(sub) = &logout.subject {
            total += revoke_at(
                &state,
                RevocationTarget::User(sub.clone()),
                "back-channel logout".into(),
                issued,
            )
            .await?;
        }
    }
    e.user_id.clone_from(&logout.subject);
    audit::detail(&mut e, "sessions_revoked", serde_json::json!(total));
    audit::write(&state, e).await;
    Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]))
}

/// The JWKS that verifies the proxy's identity assertions
/// (`X-Platform-Proxy-Assertion`). Empty when assertions are off.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "sessions",
    operation_id = "assertion_jwks",
    responses((status = 200, description = "JSON Web Key Set (RFC 7517)", content_type = "application/json")),
)]
pub(crate) async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let body = state
        .assertion
        .as_ref()
        .map_or_else(|| serde_json::json!({ "keys": [] }), |s| s.jwks());
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(body))
}

/// Who the API thinks the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WhoAmI {
    pub(crate) id: String,
    pub(crate) kind: PrincipalKind,
    pub(crate) email: Option<String>,
    pub(crate) platform_admin: bool,
    /// `org:role` and `org/project:role`.
    pub(crate) roles: Vec<String>,
    /// How the caller authenticated.
    pub(crate) via: String,
}

/// The caller's identity and roles, as every authorization decision sees
/// them.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "sessions",
    operation_id = "whoami",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = WhoAmI),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn me(caller: Caller) -> Json<WhoAmI> {
    let p = caller.principal();
    Json(WhoAmI {
        id: p.id.clone(),
        kind: p.kind,
        email: p.email.clone(),
        platform_admin: p.platform_admin,
        roles: p.role_strings(),
        via: caller.0.via.as_str().to_owned(),
    })
}
