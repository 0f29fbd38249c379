//! Every way an API call can fail, with its status and stable error code.
//!
//! A handler or extractor returns an [`ApiError`]; its `IntoResponse` only
//! parks the error in the response extensions. The `correlation` middleware
//! is the one place that turns it into the envelope (DESIGN.md, "Errors"),
//! because only it holds the correlation id for every request, including
//! those rejected before any handler ran (auth, unknown path).

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pp_model::{CorrelationId, ErrorEnvelope, ValidationError};
use pp_store::StoreError;
use uuid::Uuid;

/// A boxed source error, kept for the log line and never shown to clients.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// Malformed JSON, an unknown field, a wrong type, a bad query value.
    #[error("{message}")]
    BadRequest {
        field: Option<String>,
        message: String,
    },
    /// Well-formed input that breaks a model rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("no such route")]
    RouteNotFound,
    /// A grant, service token or session that does not exist or that the
    /// caller may not see (the two answer alike).
    #[error("no such {0}")]
    Missing(&'static str),
    /// Authenticated, but the caller's roles do not allow this.
    #[error("your roles do not allow this: {0}")]
    Forbidden(&'static str),
    #[error("{subject} already holds a grant on this scope ({existing})")]
    GrantExists { subject: String, existing: Uuid },
    #[error("{field} is already used by route {existing}")]
    Conflict { field: &'static str, existing: Uuid },
    /// A conflict on a route the caller may not learn about.
    #[error("{field} is already taken")]
    Taken { field: &'static str },
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    #[error("no such endpoint")]
    NotFound,
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("the store is unavailable")]
    StoreUnavailable(#[source] BoxError),
    /// A failure on our side; the source is logged, the client sees only
    /// the correlation id to quote.
    #[error("internal error; quote the correlation id to the operator")]
    Internal(#[source] BoxError),
}

impl ApiError {
    pub(crate) fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RouteNotFound | Self::NotFound | Self::Missing(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::GrantExists { .. } => StatusCode::CONFLICT,
            Self::Conflict { .. } | Self::Taken { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, documented `error.code`.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::BadRequest { .. } => "bad_request",
            Self::Validation(_) => "validation_failed",
            Self::RouteNotFound => "route_not_found",
            Self::Missing(_) => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::GrantExists { .. } => "conflict",
            Self::Conflict { .. } | Self::Taken { .. } => "conflict",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            Self::BadRequest { field, .. } => field.as_deref(),
            Self::Validation(e) => Some(&e.field),
            Self::Conflict { field, .. } | Self::Taken { field } => Some(field),
            _ => None,
        }
    }

    /// The error for a response some layer below produced without going
    /// through [`ApiError`] (axum's own 405, say), so that no bare status
    /// ever leaves the API.
    pub(crate) fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            s if s.is_client_error() => Self::BadRequest {
                field: None,
                message: s.canonical_reason().unwrap_or("bad request").to_owned(),
            },
            s => Self::Internal(format!("unexpected bare {s} response").into()),
        }
    }

    /// Builds the envelope response and logs what the client must not see.
    pub(crate) fn render(&self, cid: &CorrelationId) -> Response {
        match self {
            Self::Internal(source) => tracing::error!(
                correlation_id = %cid,
                error = %ErrorChain(source.as_ref()),
                "control-plane request failed"
            ),
            Self::StoreUnavailable(source) => tracing::warn!(
                correlation_id = %cid,
                error = %ErrorChain(source.as_ref()),
                "store unavailable"
            ),
            _ => {}
        }
        let mut envelope = ErrorEnvelope::new(self.code(), self.to_string(), cid);
        if let Some(field) = self.field() {
            envelope = envelope.with_field(field);
        }
        let mut response = (self.status(), axum::Json(envelope)).into_response();
        if matches!(self, Self::Unauthorized) {
            // RFC 6750 §3: a 401 for a bearer-protected resource names the scheme.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"platform-proxy\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { field, existing } => Self::Conflict { field, existing },
            StoreError::GrantExists { subject, existing } => {
                Self::GrantExists { subject, existing }
            }
            other => Self::Internal(Box::new(other)),
        }
    }
}

/// An [`ApiError`] waiting in the response extensions for the correlation
/// middleware to render it. `Arc` because extensions must be `Clone` and
/// store errors are not.
#[derive(Clone)]
pub(crate) struct PendingError(pub(crate) Arc<ApiError>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status().into_response();
        response
            .extensions_mut()
            .insert(PendingError(Arc::new(self)));
        response
    }
}

/// Displays an error with its sources, `outer: inner: root`, so one log
/// field holds the whole story.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_distinct_code_and_matching_status() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::Unauthorized, 401, "unauthorized"),
            (ApiError::bad_request("limit", "x"), 400, "bad_request"),
            (
                ValidationError::new("owner_id", "x").into(),
                422,
                "validation_failed",
            ),
            (ApiError::RouteNotFound, 404, "route_not_found"),
            (
                ApiError::Conflict {
                    field: "route_host",
                    existing: Uuid::nil(),
                },
                409,
                "conflict",
            ),
            (
                ApiError::PayloadTooLarge { limit: 1 },
                413,
                "payload_too_large",
            ),
            (
                ApiError::UnsupportedMediaType,
                415,
                "unsupported_media_type",
            ),
            (ApiError::NotFound, 404, "not_found"),
            (ApiError::Missing("grant"), 404, "not_found"),
            (ApiError::Forbidden("x"), 403, "forbidden"),
            (
                ApiError::GrantExists {
                    subject: "u".into(),
                    existing: Uuid::nil(),
                },
                409,
                "conflict",
            ),
            (ApiError::MethodNotAllowed, 405, "method_not_allowed"),
            (
                ApiError::StoreUnavailable("x".into()),
                503,
                "store_unavailable",
            ),
            (ApiError::Internal("x".into()), 500, "internal"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status().as_u16(), status, "{code}");
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn internal_error_message_hides_the_source() {
        let err = ApiError::Internal("password=hunter2 in connection string".into());
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn store_conflict_maps_to_conflict_with_field() {
        let err = ApiError::from(StoreError::Conflict {
            field: "route_host",
            existing: Uuid::nil(),
        });
        assert_eq!(err.code(), "conflict");
        assert_eq!(err.field(), Some("route_host"));
    }

    #[test]
    fn bare_statuses_become_envelope_codes() {
        assert_eq!(
            ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED).code(),
            "method_not_allowed"
        );
        assert_eq!(
            ApiError::from_status(StatusCode::BAD_GATEWAY).code(),
            "internal"
        );
        assert_eq!(
            ApiError::from_status(StatusCode::RANGE_NOT_SATISFIABLE).code(),
            "bad_request"
        );
    }
}
