//! `/api/v1/grants`: roles pushed by the platform for users and service
//! accounts, merged with token claims on every request.
//!
//! Platform admins manage every grant, org admins those of their org, and
//! project admins those of their project. Nobody hands out a role stronger
//! than their own on that scope, so no admin can mint a bigger admin.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use pp_model::access::may_manage;
use pp_model::records::{AuditOutcome, Grant};
use pp_model::route::check_id;
use pp_model::{ErrorEnvelope, Principal, Role, Scope};
use pp_store::GrantFilter;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit;
use crate::auth::Caller;
use crate::correlation::Cid;
use crate::error::ApiError;
use crate::extract::{parse_limit, parse_uuid, unknown_param, JsonBody, QueryPairs};
use crate::AppState;

/// Body of `POST /api/v1/grants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewGrant {
    /// A user id (the token's subject) or a service token id.
    pub(crate) subject: String,
    pub(crate) org_id: String,
    /// Absent: an org role.
    pub(crate) project_id: Option<String>,
    pub(crate) role: Role,
}

/// One page of grants.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GrantList {
    pub(crate) items: Vec<Grant>,
    pub(crate) next_cursor: Option<Uuid>,
}

/// The strongest role `p` may hand out on `scope`: platform admins any;
/// others at most the role they hold there (an org admin's role covers
/// the org's projects).
pub(crate) fn may_grant(p: &Principal, scope: &Scope, role: Role) -> bool {
    if p.platform_admin {
        return true;
    }
    if !may_manage(p, scope) {
        return false;
    }
    let own = match &scope.project_id {
        Some(project) => p.project_role(&scope.org_id, project),
        None => p.org_role(&scope.org_id),
    };
    own.is_some_and(|r| role <= r)
}

/// Push a grant.
#[utoipa::path(
    post,
    path = "/api/v1/grants",
    tag = "grants",
    operation_id = "create_grant",
    request_body(content = NewGrant, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Granted", body = Grant),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: not an admin of the scope, or the role is stronger than yours", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: the subject already holds a grant on this scope", body = ErrorEnvelope),
        (status = 422, description = "`validation_failed`", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    cid: Cid,
    JsonBody(new): JsonBody<NewGrant>,
) -> Result<impl IntoResponse, ApiError> {
    check_id("subject", &new.subject)?;
    check_id("org_id", &new.org_id)?;
    if let Some(p) = &new.project_id {
        check_id("project_id", p)?;
    }
    let scope = Scope {
        org_id: new.org_id.clone(),
        project_id: new.project_id.clone(),
    };
    if !may_grant(caller.principal(), &scope, new.role) {
        return Err(ApiError::Forbidden(
            "granting needs an admin role on the scope, and at least the role granted",
        ));
    }
    let grant = Grant {
        id: Uuid::new_v4(),
        subject: new.subject,
        org_id: new.org_id,
        project_id: new.project_id,
        role: new.role,
        created_by: caller.id().to_owned(),
        created_at: OffsetDateTime::now_utc(),
    };
    state.store.create_grant(&grant).await?;
    let mut e = audit::entry(&caller, "grant.created", AuditOutcome::Allowed, &cid);
    e.org_id = Some(grant.org_id.clone());
    e.project_id.clone_from(&grant.project_id);
    e.user_id = Some(grant.subject.clone());
    audit::detail(&mut e, "grant_id", serde_json::json!(grant.id));
    audit::detail(&mut e, "role", serde_json::json!(grant.role));
    audit::write(&state, e).await;
    Ok((StatusCode::CREATED, Json(grant)))
}

/// List grants by subject, org or project. Non-admins see the grants of
/// scopes they manage, and their own.
#[utoipa::path(
    get,
    path = "/api/v1/grants",
    tag = "grants",
    operation_id = "list_grants",
    params(
        ("subject" = Option<String>, Query, description = "Grants of this subject"),
        ("org_id" = Option<String>, Query, description = "Grants on this org and its projects"),
        ("project_id" = Option<String>, Query, description = "Grants on this project"),
        ("after" = Option<Uuid>, Query, description = "The previous page's `next_cursor`"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 500 (default 50)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of grants", body = GrantList),
        (status = 400, description = "`bad_request`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<GrantList>, ApiError> {
    let mut f = GrantFilter {
        limit: 50,
        ..GrantFilter::default()
    };
    for (name, value) in pairs {
        match name.as_str() {
            "subject" => f.subject = Some(value),
            "org_id" => f.org_id = Some(value),
            "project_id" => f.project_id = Some(value),
            "after" => f.after = Some(parse_uuid(&name, &value)?),
            "limit" => f.limit = parse_limit(&value)?,
            _ => return Err(unknown_param(&name)),
        }
    }
    let page = state.store.list_grants(&f).await?;
    let p = caller.principal();
    // Filtering after the page keeps the cursor honest for admins; others
    // normally filter by a scope they manage and lose nothing.
    let items = page
        .items
        .into_iter()
        .filter(|g| g.subject == p.id || may_manage(p, &g.scope()))
        .collect();
    Ok(Json(GrantList {
        items,
        next_cursor: page.next,
    }))
}

async fn visible_grant(state: &AppState, caller: &Caller, id: Uuid) -> Result<Grant, ApiError> {
    let p = caller.principal();
    state
        .store
        .get_grant(id)
        .await?
        .filter(|g| g.subject == p.id || may_manage(p, &g.scope()))
        .ok_or(ApiError::Missing("grant"))
}

/// Read one grant.
#[utoipa::path(
    get,
    path = "/api/v1/grants/{id}",
    tag = "grants",
    operation_id = "get_grant",
    params(("id" = Uuid, Path, description = "Grant id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The grant", body = Grant),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Grant>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::Missing("grant"))?;
    Ok(Json(visible_grant(&state, &caller, id).await?))
}

/// Remove a grant. Takes effect on the next request of every replica.
#[utoipa::path(
    delete,
    path = "/api/v1/grants/{id}",
    tag = "grants",
    operation_id = "delete_grant",
    params(("id" = Uuid, Path, description = "Grant id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: your own grant, on a scope you do not manage", body = ErrorEnvelope),
        (status = 404, description = "`not_found`", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    cid: Cid,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::Missing("grant"))?;
    let grant = visible_grant(&state, &caller, id).await?;
    if !may_manage(caller.principal(), &grant.scope()) {
        return Err(ApiError::Forbidden(
            "removing a grant needs an admin role on its scope",
        ));
    }
    if !state.store.delete_grant(id).await? {
        return Err(ApiError::Missing("grant"));
    }
    let mut e = audit::entry(&caller, "grant.deleted", AuditOutcome::Allowed, &cid);
    e.org_id = Some(grant.org_id.clone());
    e.project_id.clone_from(&grant.project_id);
    e.user_id = Some(grant.subject.clone());
    audit::detail(&mut e, "grant_id", serde_json::json!(grant.id));
    audit::write(&state, e).await;
    Ok(StatusCode::NO_CONTENT)
}
