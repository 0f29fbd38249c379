//! Accounting: one structured access-log line per request, carrying the
//! correlation id so it joins the error envelope and the upstream's logs.

use std::time::Duration;

use http::{Method, StatusCode};

/// What the access log records of one request.
#[derive(Debug)]
pub struct AccessRecord<'a> {
    pub correlation_id: &'a str,
    pub method: &'a Method,
    pub host: &'a str,
    /// Path only: query strings may carry tokens and never reach the log.
    pub path: &'a str,
    pub status: StatusCode,
    pub route_id: Option<uuid::Uuid>,
    /// The authenticated user or service account, if any.
    pub user: Option<&'a str>,
    pub upstream: Option<&'a str>,
    pub elapsed: Duration,
    pub client: std::net::SocketAddr,
}

/// Whether the access log is on (its target at `info`): a request's
/// record is gathered only then.
#[must_use]
pub fn enabled() -> bool {
    tracing::enabled!(target: "access", tracing::Level::INFO)
}

pub fn log(r: &AccessRecord<'_>) {
    let elapsed_ms = r.elapsed.as_secs_f64() * 1000.0;
    tracing::info!(
        target: "access",
        correlation_id = r.correlation_id,
        method = %r.method,
        host = r.host,
        path = r.path,
        status = r.status.as_u16(),
        route_id = r.route_id.map(|u| u.to_string()),
        user = r.user,
        upstream = r.upstream,
        elapsed_ms,
        client = %r.client,
    );
}
