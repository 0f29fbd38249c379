//! One function per endpoint. Handlers stay thin: decode (extractors),
//! apply the model's rule, call the store, shape the answer.

use crate::error::ApiError;

pub(crate) mod audit;
pub(crate) mod grants;
pub(crate) mod health;
pub(crate) mod routes;
pub(crate) mod sessions;
pub(crate) mod tokens;

/// Fallback for paths the router does not know.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Forward-auth for a gateway the platform already runs (Traefik
/// ForwardAuth, nginx `auth_request`). Served by the data plane, which it
/// is part of (every request through that gateway passes here); described
/// here so the API document is whole. This function is never routed.
#[utoipa::path(
    get,
    path = "/api/v1/forward-auth",
    tag = "forward-auth",
    operation_id = "forward_auth",
    params(
        ("X-Forwarded-Host" = String, Header, description = "The original request's host"),
        ("X-Forwarded-Uri" = String, Header, description = "The original request's path and query"),
        ("X-Forwarded-Method" = Option<String>, Header, description = "The original method"),
        ("X-Forwarded-Proto" = Option<String>, Header, description = "The original scheme"),
        ("org_id" = Option<String>, Query, description = "For targets that are no route of the proxy: the org the caller must belong to"),
        ("project_id" = Option<String>, Query, description = "… and the project"),
        ("role" = Option<String>, Query, description = "… and the weakest role accepted (viewer, member, admin)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Allowed; identity in `X-User-Id`, `X-User-Email`, `X-User-Role`, `X-User-Org`, `X-User-Project`"),
        (status = 400, description = "`bad_request`: malformed forwarded facts or query", body = pp_model::ErrorEnvelope),
        (status = 401, description = "`unauthenticated`: no valid session cookie or bearer token", body = pp_model::ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = pp_model::ErrorEnvelope),
    ),
)]
#[allow(dead_code)]
pub(crate) async fn forward_auth_doc() {}
