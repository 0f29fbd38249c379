//! `GET /api/v1/audit`: the audit log, newest first, filtered and paged.
//! Platform admins read everything; org admins their org's records
//! (`org_id` required); project admins their project's (`org_id` and
//! `project_id` required).

use axum::extract::State;
use axum::Json;
use pp_model::access::may_manage;
use pp_model::records::{AuditEntry, AuditFilter};
use pp_model::{ErrorEnvelope, Scope};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{parse_limit, parse_uuid, unknown_param, QueryPairs};
use crate::AppState;

/// One page of audit records.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditList {
    pub(crate) items: Vec<AuditEntry>,
    /// Pass as `before` for older records.
    pub(crate) next_cursor: Option<Uuid>,
}

fn time_param(name: &str, v: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(v, &Rfc3339).map_err(|_| {
        ApiError::bad_request(
            name,
            format!("{name}: expected an RFC 3339 time, got {v:?}"),
        )
    })
}

/// Read the audit log.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    operation_id = "list_audit",
    params(
        ("org_id" = Option<String>, Query, description = "Records of this org"),
        ("project_id" = Option<String>, Query, description = "Records of this project"),
        ("route_id" = Option<Uuid>, Query, description = "Records of this route"),
        ("user_id" = Option<String>, Query, description = "Records concerning this user"),
        ("action" = Option<String>, Query, description = "e.g. `session.issued`, `access.denied`"),
        ("since" = Option<String>, Query, description = "RFC 3339; records at or after"),
        ("until" = Option<String>, Query, description = "RFC 3339; records before"),
        ("before" = Option<Uuid>, Query, description = "The previous page's `next_cursor`"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 500 (default 50)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of records, newest first", body = AuditList),
        (status = 400, description = "`bad_request`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: name an org or project you administer", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<AuditList>, ApiError> {
    let mut f = AuditFilter {
        limit: 50,
        ..AuditFilter::default()
    };
    for (name, value) in pairs {
        match name.as_str() {
            "org_id" => f.org_id = Some(value),
            "project_id" => f.project_id = Some(value),
            "route_id" => f.route_id = Some(parse_uuid(&name, &value)?),
            "user_id" => f.user_id = Some(value),
            "action" => f.action = Some(value),
            "since" => f.since = Some(time_param(&name, &value)?),
            "until" => f.until = Some(time_param(&name, &value)?),
            "before" => f.before = Some(parse_uuid(&name, &value)?),
            "limit" => f.limit = parse_limit(&value)?,
            _ => return Err(unknown_param(&name)),
        }
    }
    let p = caller.principal();
    if !p.platform_admin {
        let allowed = f.org_id.as_ref().is_some_and(|org| {
            may_manage(
                p,
                &Scope {
                    org_id: org.clone(),
                    project_id: f.project_id.clone(),
                },
            )
        });
        if !allowed {
            return Err(ApiError::Forbidden(
                "reading the audit log needs org_id (and project_id) of a scope you administer",
            ));
        }
    }
    let page = state.store.list_audit(&f).await?;
    Ok(Json(AuditList {
        items: page.items,
        next_cursor: page.next,
    }))
}
