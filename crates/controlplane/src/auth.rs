//! Authentication of API calls with the operator's bootstrap bearer token
//! (RFC 6750 §2.1).
//!
//! Deny by default: every path needs the token except the few in
//! [`PUBLIC_PATHS`], matched exactly. A new endpoint is therefore protected
//! without anyone remembering to protect it, and an unknown path answers
//! 401 before 404, so an outsider cannot probe which endpoints exist.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pp_model::CorrelationId;

use crate::error::ApiError;
use crate::AppState;

/// Paths served without a token: probes the orchestrator calls without
/// credentials, and the API description (it holds no data).
pub(crate) const PUBLIC_PATHS: &[&str] = &["/healthz", "/readyz", "/api/v1/openapi.json"];

/// Middleware: passes the request on only if it is public or carries
/// `Authorization: Bearer <bootstrap token>`.
pub(crate) async fn require_bearer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if PUBLIC_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let accepted = match (state.bootstrap_token.as_deref(), presented) {
        (Some(expected), Some(presented)) => {
            constant_time_eq(expected.as_bytes(), presented.as_bytes())
        }
        // No configured token locks the API rather than opening it.
        _ => false,
    };
    if accepted {
        return next.run(request).await;
    }
    let cid = request
        .extensions()
        .get::<CorrelationId>()
        .cloned()
        .unwrap_or_default();
    tracing::info!(
        correlation_id = %cid,
        method = %request.method(),
        path = request.uri().path(),
        token_presented = presented.is_some(),
        "control-plane call refused: no valid bearer token"
    );
    ApiError::Unauthorized.into_response()
}

/// The token of an `Authorization: Bearer <token>` value. The scheme name
/// is case-insensitive (RFC 9110 §11.1); the token is taken verbatim.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim_start_matches(' ');
    (!token.is_empty()).then_some(token)
}

/// Compares two secrets in time that depends only on their lengths, not on
/// where they first differ, so response timing cannot be used to guess the
/// token byte by byte. Only the length of the expected token can leak,
/// which a long random token makes worthless.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the optimizer from turning the fold into an early-exit compare.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_matches_plain_equality() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"", b"", true),
            (b"secret", b"secret", true),
            (b"secret", b"secreT", false),
            (b"secret", b"Secret", false),
            (b"secret", b"secret2", false),
            (b"secret", b"", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(constant_time_eq(a, b), *want, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn bearer_token_parses_scheme_case_insensitively() {
        let cases = [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER  abc", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
            ("Bearerabc", None),
        ];
        for (value, want) in cases {
            assert_eq!(bearer_token(value), want, "{value:?}");
        }
    }
}
