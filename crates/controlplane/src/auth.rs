//! Authentication of API calls (RFC 6750 §2.1 bearer tokens): the
//! bootstrap token, service tokens and platform JWTs, all through the one
//! [`Authenticator`](pp_identity::Authenticator) the data plane uses too.
//!
//! Deny by default: every path needs a valid bearer token except the few
//! in [`PUBLIC_PATHS`], matched exactly, which authenticate themselves or
//! hold no data. A new endpoint is therefore protected without anyone
//! remembering to protect it, and an unknown path answers 401 before 404,
//! so an outsider cannot probe which endpoints exist. What each caller may
//! do once authenticated is each handler's business ([`Caller`] and the
//! model's `access` rules).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pp_identity::authn::bearer_token;
use pp_identity::Authenticated;
use pp_model::CorrelationId;

use crate::error::ApiError;
use crate::AppState;

/// Paths served without a bearer token: probes the orchestrator calls
/// without credentials, the API description and the assertion JWKS (they
/// hold no data), and the OIDC back-channel logout endpoint, which the
/// identity provider calls with a signed logout token instead.
pub(crate) const PUBLIC_PATHS: &[&str] = &[
    "/healthz",
    "/readyz",
    "/api/v1/openapi.json",
    "/.well-known/jwks.json",
    "/api/v1/backchannel-logout",
];

/// Middleware: passes the request on only if it is public or carries a
/// bearer token that authenticates; the caller rides in the extensions.
pub(crate) async fn require_bearer(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if PUBLIC_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_owned);
    let refusal = match presented {
        Some(token) => match state.authn.bearer(&token).await {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                return next.run(request).await;
            }
            Err(e) => e.code(),
        },
        None => pp_identity::AuthError::Missing.code(),
    };
    let cid = request
        .extensions()
        .get::<CorrelationId>()
        .cloned()
        .unwrap_or_default();
    tracing::info!(
        correlation_id = %cid,
        method = %request.method(),
        path = request.uri().path(),
        reason = refusal,
        "control-plane call refused: no valid bearer token"
    );
    ApiError::Unauthorized.into_response()
}

/// Extractor: the authenticated caller of a protected endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Authenticated);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .map(Self)
            // Only reachable for a public path that asks for a caller: a
            // wiring mistake, answered as unauthenticated, never as open.
            .ok_or(ApiError::Unauthorized)
    }
}

impl Caller {
    pub(crate) fn principal(&self) -> &pp_model::Principal {
        &self.0.principal
    }

    pub(crate) fn id(&self) -> &str {
        &self.0.principal.id
    }
}
