//! The correlation id of a request, and the one place where errors become
//! the envelope (DESIGN.md, "Errors": the same id in the body, in
//! `X-Correlation-Id` and in the logs).
//!
//! The listener generates the id and inserts a [`CorrelationId`] into the
//! request extensions. A client-sent `X-Correlation-Id` is deliberately not
//! read: nothing the client claims is trusted, and a chosen id could be used
//! to muddle someone else's log trail.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use pp_model::{CorrelationId, CORRELATION_HEADER};

use crate::error::{ApiError, PendingError};

/// Extractor for the request's correlation id, for handlers' log lines.
///
/// Never fails: without an id in the extensions (the router used without
/// [`envelope_errors`], in a test say) it makes a fresh one.
#[derive(Debug, Clone)]
pub(crate) struct Cid(pub(crate) CorrelationId);

impl<S: Send + Sync> FromRequestParts<S> for Cid {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<CorrelationId>()
                .cloned()
                .unwrap_or_default(),
        ))
    }
}

/// Outermost middleware: pins the request's correlation id, then renders
/// any error the inner layers returned as the envelope and stamps the id on
/// every response, success or not.
pub(crate) async fn envelope_errors(mut request: Request, next: Next) -> Response {
    let cid = request
        .extensions()
        .get::<CorrelationId>()
        .filter(|c| HeaderValue::from_str(c.as_str()).is_ok())
        .cloned()
        .unwrap_or_default();
    request.extensions_mut().insert(cid.clone());

    let response = next.run(request).await;
    let mut response = finish(response, &cid);
    if let Ok(value) = HeaderValue::from_str(cid.as_str()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(CORRELATION_HEADER), value);
    }
    response
}

/// Renders a parked [`ApiError`], or wraps a bare error status produced by a
/// layer that does not know our errors (axum's 405), keeping its `Allow`.
fn finish(mut response: Response, cid: &CorrelationId) -> Response {
    if let Some(PendingError(err)) = response.extensions_mut().remove::<PendingError>() {
        return err.render(cid);
    }
    let status = response.status();
    let is_bare_error = (status.is_client_error() || status.is_server_error())
        && !response.headers().contains_key(header::CONTENT_TYPE);
    if !is_bare_error {
        return response;
    }
    let mut rendered = ApiError::from_status(status).render(cid);
    if let Some(allow) = response.headers().get(header::ALLOW) {
        rendered.headers_mut().insert(header::ALLOW, allow.clone());
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    #[test]
    fn parked_error_renders_with_the_given_id() {
        let cid = CorrelationId::from("cid-1");
        let response = finish(ApiError::RouteNotFound.into_response(), &cid);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("application/json"))
        );
    }

    #[test]
    fn bare_405_becomes_envelope_and_keeps_allow() {
        let cid = CorrelationId::from("cid-2");
        let bare = (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET,HEAD")],
        )
            .into_response();
        let response = finish(bare, &cid);
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            response.headers().get(header::ALLOW),
            Some(&HeaderValue::from_static("GET,HEAD"))
        );
        assert!(response.headers().contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn success_passes_through_untouched() {
        let cid = CorrelationId::from("cid-3");
        let response = finish(StatusCode::NO_CONTENT.into_response(), &cid);
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
}
