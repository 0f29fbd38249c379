//! Liveness and readiness probes for the orchestrator (no auth: a probe
//! carries no credentials, and these reveal nothing but "up").

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::AppState;

/// A readiness probe must answer within the orchestrator's probe timeout
/// (often 1 to 5 s) even when the database hangs, so the ping gets less.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Body of the probe endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthStatus {
    /// `ok` for liveness, `ready` for readiness.
    pub(crate) status: String,
}

/// The process is up and serving requests; says nothing about the store,
/// so a store outage does not get healthy replicas restarted.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    responses((status = 200, description = "The process is alive", body = HealthStatus)),
)]
pub(crate) async fn healthz() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "ok".to_owned(),
    })
}

/// The store answers, so API calls can succeed: take traffic.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    responses(
        (status = 200, description = "The store answers", body = HealthStatus),
        (status = 503, description = "`store_unavailable`", body = pp_model::ErrorEnvelope),
    ),
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<HealthStatus>, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(HealthStatus {
            status: "ready".to_owned(),
        })),
        Ok(Err(e)) => Err(ApiError::StoreUnavailable(Box::new(e))),
        Err(_elapsed) => Err(ApiError::StoreUnavailable(
            format!("store ping took longer than {READY_TIMEOUT:?}").into(),
        )),
    }
}
