//! `/api/v1/routes`: create, read, list, patch and delete routes.
//!
//! Validation is the model's (`NewRoute::into_route`, `RoutePatch::apply`);
//! uniqueness of public addresses is the store's (`StoreError::Conflict`).
//! This module only maps requests onto those and their results onto HTTP.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use pp_identity::seal::Purpose;
use pp_model::access::{may_hold_route, may_see_route, RouteScope};
use pp_model::records::AuditOutcome;
use pp_model::{
    AuthBridge, AuthBridgeInput, ErrorEnvelope, NewRoute, OwnerType, Principal, Route, RoutePatch,
    RouteStatus,
};
use pp_store::RouteFilter;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::audit;
use crate::auth::Caller;
use crate::correlation::Cid;
use crate::error::ApiError;
use crate::extract::{parse_bool, unknown_param, JsonBody, QueryPairs, RouteId};
use crate::AppState;

/// Page size when the client names none.
const DEFAULT_PAGE: u32 = 50;
/// Largest page: bounds the work and the response of one list call. The
/// store clamps to the same bound; the API refuses instead of clamping so a
/// client learns its request was not honoured.
const MAX_PAGE: u32 = pp_store::MAX_PAGE_LIMIT;

/// A route as the API returns it: the stored route plus the URL a browser
/// opens.
// Write-only fields (secrets, DESIGN.md) must never be added to this type:
// it is what every read returns.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RouteView {
    #[serde(flatten)]
    pub route: Route,
    /// Where a browser reaches the route, e.g.
    /// `https://jupyter-a7f9.apps.example.com/`.
    pub public_url: String,
}

/// One page of `GET /api/v1/routes`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RouteList {
    pub items: Vec<RouteView>,
    /// Pass as `after` to get the next page; `null` on the last page.
    pub next_cursor: Option<Uuid>,
}

/// Query of `GET /api/v1/routes`. Decoded by hand from the raw pairs (see
/// [`QueryPairs`]) so each error names its parameter.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListRoutesQuery {
    /// Only routes owned by this kind of owner.
    owner_type: Option<OwnerType>,
    /// Only routes of this owner (app instance or platform service id).
    owner_id: Option<String>,
    /// Only routes of this organization.
    org_id: Option<String>,
    /// Only routes of this project.
    project_id: Option<String>,
    /// Only routes in this state.
    status: Option<RouteStatus>,
    /// Also list soft-deleted routes (default `false`).
    include_deleted: Option<bool>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    after: Option<Uuid>,
}

impl ListRoutesQuery {
    fn parse(QueryPairs(pairs): QueryPairs) -> Result<Self, ApiError> {
        let mut q = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "owner_type" => {
                    let found = [OwnerType::AppInstance, OwnerType::PlatformService]
                        .into_iter()
                        .find(|t| t.as_str() == value);
                    q.owner_type = Some(found.ok_or_else(|| {
                        ApiError::bad_request(
                            "owner_type",
                            format!(
                                "owner_type: expected app_instance or platform_service, got {value:?}"
                            ),
                        )
                    })?);
                }
                "owner_id" => q.owner_id = Some(value),
                "org_id" => q.org_id = Some(value),
                "project_id" => q.project_id = Some(value),
                "status" => {
                    q.status = Some(RouteStatus::parse(&value).ok_or_else(|| {
                        ApiError::bad_request(
                            "status",
                            format!(
                                "status: expected pending, active, failed or disabled, got {value:?}"
                            ),
                        )
                    })?);
                }
                "include_deleted" => q.include_deleted = Some(parse_bool(&name, &value)?),
                "limit" => {
                    let limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|l| (1..=MAX_PAGE).contains(l))
                        .ok_or_else(|| {
                            ApiError::bad_request(
                                "limit",
                                format!("limit: expected an integer from 1 to {MAX_PAGE}, got {value:?}"),
                            )
                        })?;
                    q.limit = Some(limit);
                }
                "after" => {
                    let after = Uuid::parse_str(&value).map_err(|_| {
                        ApiError::bad_request(
                            "after",
                            format!("after: expected a route id (UUID), got {value:?}"),
                        )
                    })?;
                    q.after = Some(after);
                }
                _ => return Err(unknown_param(&name)),
            }
        }
        Ok(q)
    }

    fn into_filter(self) -> RouteFilter {
        RouteFilter {
            owner_type: self.owner_type,
            owner_id: self.owner_id,
            org_id: self.org_id,
            project_id: self.project_id,
            status: self.status,
            include_deleted: self.include_deleted.unwrap_or(false),
            after: self.after,
            limit: self.limit.unwrap_or(DEFAULT_PAGE),
        }
    }
}

/// Query of `GET /api/v1/routes/{id}`.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GetRouteQuery {
    /// Also return the route if it was deleted (default `false`).
    include_deleted: Option<bool>,
}

impl GetRouteQuery {
    fn parse(QueryPairs(pairs): QueryPairs) -> Result<Self, ApiError> {
        let mut q = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "include_deleted" => q.include_deleted = Some(parse_bool(&name, &value)?),
                _ => return Err(unknown_param(&name)),
            }
        }
        Ok(q)
    }
}

fn view(state: &AppState, route: Route) -> RouteView {
    RouteView {
        public_url: state.public.public_url(&route),
        route,
    }
}

/// The route's scope for the access rules (its adapter decides between
/// project and org scope).
pub(crate) fn scope_of(route: &Route) -> RouteScope<'_> {
    RouteScope {
        org_id: route.org_id.as_deref(),
        project_id: route.project_id.as_deref(),
        strategy: route.effective_adapter().scope_strategy,
    }
}

pub(crate) fn may_see(p: &Principal, route: &Route) -> bool {
    may_see_route(p, scope_of(route))
}

/// Records a change to a route in the log and the audit trail.
async fn record(state: &AppState, caller: &Caller, cid: &Cid, route: &Route, action: &'static str) {
    tracing::info!(
        correlation_id = %cid.0,
        route_id = %route.id,
        actor = caller.id(),
        action,
        "route mutation"
    );
    let mut e = audit::entry(caller, action, AuditOutcome::Allowed, cid);
    e.route_id = Some(route.id);
    e.org_id.clone_from(&route.org_id);
    e.project_id.clone_from(&route.project_id);
    audit::write(state, e).await;
}

/// Seals an auth-bridge secret under the key ring, bound to the route id:
/// a sealed value copied onto another route does not open there.
fn seal_bridge(
    state: &AppState,
    route_id: Uuid,
    input: AuthBridgeInput,
) -> Result<AuthBridge, ApiError> {
    let (mut bridge, secret) = input.validate()?;
    bridge.sealed_secret = state
        .keys
        .seal(
            Purpose::StoredSecret,
            route_id.as_bytes(),
            secret.as_bytes(),
        )
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(bridge)
}

/// The live route `id` if the caller may manage it. A route the caller
/// cannot even see answers as missing; one it sees but may not change,
/// forbidden.
async fn managed_route(state: &AppState, caller: &Caller, id: Uuid) -> Result<Route, ApiError> {
    let route = state
        .store
        .get_route(id)
        .await?
        .filter(|r| r.deleted_at.is_none())
        .filter(|r| may_see(caller.principal(), r))
        .ok_or(ApiError::RouteNotFound)?;
    may_hold_route(caller.principal(), &route).map_err(ApiError::Forbidden)?;
    Ok(route)
}

/// Rules for a route as it will be stored, whoever writes it.
fn check_combination(route: &Route) -> Result<(), ApiError> {
    if route.is_public() && route.auth_bridge.is_some() {
        return Err(pp_model::ValidationError::new(
            "policy.public",
            "a public route cannot carry an auth bridge: anyone would use the app's credential",
        )
        .into());
    }
    Ok(())
}

/// A store conflict as this caller may see it: platform admins learn which
/// route holds the address, others only that it is taken.
fn conflict(caller: &Caller, e: pp_store::StoreError) -> ApiError {
    match e {
        pp_store::StoreError::Conflict { field, .. } if !caller.principal().platform_admin => {
            ApiError::Taken { field }
        }
        other => other.into(),
    }
}

/// Most store pages one listing call scans for a caller who sees only some
/// routes: bounds the work; the cursor lets the client go on.
const MAX_SCAN_PAGES: usize = 20;

/// List routes in creation order, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/routes",
    tag = "routes",
    operation_id = "list_routes",
    params(ListRoutesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of routes", body = RouteList),
        (status = 400, description = "`bad_request`: a query parameter is malformed", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Json<RouteList>, ApiError> {
    let mut filter = ListRoutesQuery::parse(query)?.into_filter();
    if caller.principal().platform_admin {
        let page = state.store.list_routes(&filter).await?;
        return Ok(Json(RouteList {
            items: page.items.into_iter().map(|r| view(&state, r)).collect(),
            next_cursor: page.next,
        }));
    }
    // Others see the routes they may use or manage, nothing else: scan
    // store pages and keep the visible ones until the page is full.
    let want = filter.limit.clamp(1, MAX_PAGE) as usize;
    filter.limit = MAX_PAGE;
    let mut items = Vec::new();
    let mut next_cursor = None;
    'scan: for _ in 0..MAX_SCAN_PAGES {
        let page = state.store.list_routes(&filter).await?;
        let last = page.items.last().map(|r| r.id);
        for r in page.items {
            if may_see(caller.principal(), &r) {
                let id = r.id;
                items.push(view(&state, r));
                if items.len() == want {
                    next_cursor = Some(id);
                    break 'scan;
                }
            }
        }
        match page.next {
            Some(n) => {
                filter.after = Some(n);
                next_cursor = last;
            }
            None => {
                next_cursor = None;
                break;
            }
        }
    }
    Ok(Json(RouteList { items, next_cursor }))
}

/// Create a route. Its `public_url` is in the answer, its address in
/// `Location`.
#[utoipa::path(
    post,
    path = "/api/v1/routes",
    tag = "routes",
    operation_id = "create_route",
    request_body(content = NewRoute, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = RouteView,
            headers(("Location" = String, description = "/api/v1/routes/{id}"))),
        (status = 400, description = "`bad_request`: malformed JSON, unknown field or wrong type", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: creating needs an admin role on the route's project or org", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: the public address is taken", body = ErrorEnvelope),
        (status = 413, description = "`payload_too_large`", body = ErrorEnvelope),
        (status = 415, description = "`unsupported_media_type`", body = ErrorEnvelope),
        (status = 422, description = "`validation_failed`: `field` names the bad field", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    cid: Cid,
    JsonBody(mut new): JsonBody<NewRoute>,
) -> Result<impl IntoResponse, ApiError> {
    let bridge = new.auth_bridge.take();
    let mut route = new.into_route(OffsetDateTime::now_utc())?;
    may_hold_route(caller.principal(), &route).map_err(ApiError::Forbidden)?;
    if let Some(b) = bridge {
        route.auth_bridge = Some(seal_bridge(&state, route.id, b)?);
    }
    check_combination(&route)?;
    state
        .store
        .create_route(&route)
        .await
        .map_err(|e| conflict(&caller, e))?;
    record(&state, &caller, &cid, &route, "route.created").await;
    let location = HeaderValue::try_from(format!("/api/v1/routes/{}", route.id))
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view(&state, route)),
    ))
}

/// Read one route.
#[utoipa::path(
    get,
    path = "/api/v1/routes/{id}",
    tag = "routes",
    operation_id = "get_route",
    params(("id" = Uuid, Path, description = "Route id"), GetRouteQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The route", body = RouteView),
        (status = 400, description = "`bad_request`: a query parameter is malformed", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 404, description = "`route_not_found`, also for a deleted route without `include_deleted=true` and for an id that is not a UUID", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    RouteId(id): RouteId,
    query: QueryPairs,
) -> Result<Json<RouteView>, ApiError> {
    let include_deleted = GetRouteQuery::parse(query)?
        .include_deleted
        .unwrap_or(false);
    let route = state
        .store
        .get_route(id)
        .await?
        .filter(|r| include_deleted || r.deleted_at.is_none())
        .filter(|r| may_see(caller.principal(), r))
        .ok_or(ApiError::RouteNotFound)?;
    Ok(Json(view(&state, route)))
}

/// Change a live route's mutable fields; absent fields are left as they are.
#[utoipa::path(
    patch,
    path = "/api/v1/routes/{id}",
    tag = "routes",
    operation_id = "update_route",
    params(("id" = Uuid, Path, description = "Route id")),
    request_body(content = RoutePatch, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated route", body = RouteView),
        (status = 400, description = "`bad_request`: malformed JSON, unknown field or wrong type", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: the caller sees the route but may not change it", body = ErrorEnvelope),
        (status = 404, description = "`route_not_found`: no live route has this id that the caller may see", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: the new public address is taken", body = ErrorEnvelope),
        (status = 413, description = "`payload_too_large`", body = ErrorEnvelope),
        (status = 415, description = "`unsupported_media_type`", body = ErrorEnvelope),
        (status = 422, description = "`validation_failed`: `field` names the bad field", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    cid: Cid,
    RouteId(id): RouteId,
    JsonBody(mut patch): JsonBody<RoutePatch>,
) -> Result<Json<RouteView>, ApiError> {
    let mut route = managed_route(&state, &caller, id).await?;
    let bridge = patch.auth_bridge.take();
    let new_targets = patch
        .upstream
        .as_ref()
        .is_some_and(|u| u.targets != route.upstream.targets);
    patch.apply(&mut route, OffsetDateTime::now_utc())?;
    match bridge {
        None if new_targets && route.auth_bridge.is_some() => {
            // Otherwise a route manager could point the write-only secret
            // at a host of their own and read it there.
            return Err(pp_model::ValidationError::new(
                "auth_bridge",
                "changing upstream.targets needs the auth bridge given again (or null)",
            )
            .into());
        }
        None => {}
        Some(None) => route.auth_bridge = None,
        Some(Some(b)) => route.auth_bridge = Some(seal_bridge(&state, route.id, b)?),
    }
    // The route as changed must be one the caller may hold.
    may_hold_route(caller.principal(), &route).map_err(ApiError::Forbidden)?;
    check_combination(&route)?;
    // The route can be deleted between the read and the write.
    if !state
        .store
        .update_route(&route)
        .await
        .map_err(|e| conflict(&caller, e))?
    {
        return Err(ApiError::RouteNotFound);
    }
    record(&state, &caller, &cid, &route, "route.updated").await;
    Ok(Json(view(&state, route)))
}

/// Delete a route. It stops being served at once; the row stays (soft
/// delete) for audit and `include_deleted` reads.
#[utoipa::path(
    delete,
    path = "/api/v1/routes/{id}",
    tag = "routes",
    operation_id = "delete_route",
    params(("id" = Uuid, Path, description = "Route id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 404, description = "`route_not_found`: no live route has this id", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    cid: Cid,
    RouteId(id): RouteId,
) -> Result<StatusCode, ApiError> {
    let route = managed_route(&state, &caller, id).await?;
    if !state.store.delete_route(id).await? {
        return Err(ApiError::RouteNotFound);
    }
    record(&state, &caller, &cid, &route, "route.deleted").await;
    Ok(StatusCode::NO_CONTENT)
}
