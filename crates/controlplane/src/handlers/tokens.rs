//! `/api/v1/service-tokens`: tokens for automation (seed 003's
//! project-scoped service accounts), created here, shown once, stored as a
//! SHA-256, scoped to an org or project with one role, and expiring.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use pp_model::access::may_manage;
use pp_model::records::{AuditOutcome, ServiceToken};
use pp_model::{ErrorEnvelope, Role, Scope, ValidationError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use pp_model::route::check_id;

use super::grants::may_grant;
use crate::audit;
use crate::auth::Caller;
use crate::correlation::Cid;
use crate::error::ApiError;
use crate::extract::{unknown_param, JsonBody, QueryPairs};
use crate::AppState;

/// Body of `POST /api/v1/service-tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewServiceToken {
    /// What the token is for (shown in listings and audit).
    pub(crate) name: String,
    pub(crate) org_id: String,
    pub(crate) project_id: Option<String>,
    pub(crate) role: Role,
    /// Lifetime in seconds (default 30 days, at most the configured
    /// maximum).
    pub(crate) expires_in_secs: Option<u64>,
}

/// A created token: `token` is shown this once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedServiceToken {
    #[serde(flatten)]
    pub(crate) record: ServiceToken,
    pub(crate) token: String,
}

/// Service tokens of a scope.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ServiceTokenList {
    pub(crate) items: Vec<ServiceToken>,
}

const DEFAULT_LIFETIME_SECS: u64 = 30 * 24 * 3600;

/// Create a service token.
#[utoipa::path(
    post,
    path = "/api/v1/service-tokens",
    tag = "service-tokens",
    operation_id = "create_service_token",
    request_body(content = NewServiceToken, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; `token` is shown only now", body = CreatedServiceToken),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: not an admin of the scope, or the role is stronger than yours", body = ErrorEnvelope),
        (status = 422, description = "`validation_failed`", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    cid: Cid,
    JsonBody(new): JsonBody<NewServiceToken>,
) -> Result<impl IntoResponse, ApiError> {
    if caller.0.via == pp_identity::Via::ServiceToken {
        // A token could otherwise mint a child that outlives it.
        return Err(ApiError::Forbidden(
            "service tokens cannot create service tokens; use a user's or the operator's credential",
        ));
    }
    if new.name.trim().is_empty() || new.name.len() > 128 || new.name.chars().any(char::is_control)
    {
        return Err(ValidationError::new("name", "must be 1 to 128 printable characters").into());
    }
    check_id("org_id", &new.org_id)?;
    if let Some(p) = &new.project_id {
        check_id("project_id", p)?;
    }
    let max = state.config.service_token_max.as_secs();
    let lifetime = new
        .expires_in_secs
        .unwrap_or(DEFAULT_LIFETIME_SECS.min(max));
    if lifetime == 0 || lifetime > max {
        return Err(
            ValidationError::new("expires_in_secs", format!("must be 1 to {max} seconds")).into(),
        );
    }
    let scope = Scope {
        org_id: new.org_id.clone(),
        project_id: new.project_id.clone(),
    };
    if !may_grant(caller.principal(), &scope, new.role) {
        return Err(ApiError::Forbidden(
            "creating a token needs an admin role on the scope, and at least the token's role",
        ));
    }
    let generated = pp_identity::token::generate().map_err(|e| ApiError::Internal(Box::new(e)))?;
    let now = OffsetDateTime::now_utc();
    let record = ServiceToken {
        id: Uuid::new_v4(),
        name: new.name,
        token_hash: generated.hash,
        org_id: new.org_id,
        project_id: new.project_id,
        role: new.role,
        created_by: caller.id().to_owned(),
        created_at: now,
        expires_at: now + time::Duration::seconds(i64::try_from(lifetime).unwrap_or(i64::MAX)),
        revoked_at: None,
    };
    state.store.create_service_token(&record).await?;
    let mut e = audit::entry(
        &caller,
        "service_token.created",
        AuditOutcome::Allowed,
        &cid,
    );
    e.org_id = Some(record.org_id.clone());
    e.project_id.clone_from(&record.project_id);
    audit::detail(&mut e, "token_id", serde_json::json!(record.id));
    audit::detail(&mut e, "role", serde_json::json!(record.role));
    audit::write(&state, e).await;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(CreatedServiceToken {
            record,
            token: generated.token,
        }),
    ))
}

/// List the service tokens of an org or project you manage.
#[utoipa::path(
    get,
    path = "/api/v1/service-tokens",
    tag = "service-tokens",
    operation_id = "list_service_tokens",
    params(
        ("org_id" = String, Query, description = "The org"),
        ("project_id" = Option<String>, Query, description = "Only this project's tokens"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tokens, newest first (no secrets)", body = ServiceTokenList),
        (status = 400, description = "`bad_request`: org_id is required", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<ServiceTokenList>, ApiError> {
    let (mut org, mut project) = (None, None);
    for (name, value) in pairs {
        match name.as_str() {
            "org_id" => org = Some(value),
            "project_id" => project = Some(value),
            _ => return Err(unknown_param(&name)),
        }
    }
    let org = org.ok_or_else(|| ApiError::bad_request("org_id", "org_id is required"))?;
    let scope = Scope {
        org_id: org.clone(),
        project_id: project.clone(),
    };
    if !may_manage(caller.principal(), &scope) {
        return Err(ApiError::Forbidden(
            "listing tokens needs an admin role on the scope",
        ));
    }
    let items = state
        .store
        .list_service_tokens(Some(&org), project.as_deref())
        .await?;
    Ok(Json(ServiceTokenList { items }))
}

/// Revoke a service token; it stops authenticating on every replica as
/// the change arrives.
#[utoipa::path(
    delete,
    path = "/api/v1/service-tokens/{id}",
    tag = "service-tokens",
    operation_id = "revoke_service_token",
    params(("id" = Uuid, Path, description = "Token id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    cid: Cid,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::Missing("service token"))?;
    let token = state
        .store
        .get_service_token(id)
        .await?
        .filter(|t| {
            may_manage(
                caller.principal(),
                &Scope {
                    org_id: t.org_id.clone(),
                    project_id: t.project_id.clone(),
                },
            )
        })
        .ok_or(ApiError::Missing("service token"))?;
    if !state
        .store
        .revoke_service_token(id, OffsetDateTime::now_utc())
        .await?
    {
        return Err(ApiError::Missing("service token"));
    }
    let mut e = audit::entry(
        &caller,
        "service_token.revoked",
        AuditOutcome::Allowed,
        &cid,
    );
    e.org_id = Some(token.org_id.clone());
    e.project_id.clone_from(&token.project_id);
    audit::detail(&mut e, "token_id", serde_json::json!(token.id));
    audit::write(&state, e).await;
    Ok(StatusCode::NO_CONTENT)
}
