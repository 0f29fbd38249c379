//! The one data-plane error type. It knows its HTTP status, its public code,
//! where it came from and whether retrying is safe, and becomes a response in
//! exactly one place ([`ProxyError::into_response`]).

use std::sync::LazyLock;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use memchr::memmem;
use pp_model::{CorrelationId, ErrorEnvelope};

use crate::body::{full, ProxyBody};

/// Who caused an error: decides log level and whether operators are paged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Client,
    Proxy,
    Upstream,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no app is served at this host")]
    UnknownHost,
    #[error("no route matches this address")]
    RouteNotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("request headers exceed {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("request body exceeds the route's limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("the request body stalled: no bytes of it within the body-read timeout")]
    BodyTimeout,
    #[error("the route allows at most {limit} concurrent connections")]
    RouteBusy { limit: u32 },
    /// No valid session or token; the reason code is for the log only.
    #[error("sign-in is required to use this app")]
    Unauthenticated(&'static str),
    #[error("you do not have access to this app")]
    Forbidden,
    #[error("this WebSocket origin is not allowed for the app")]
    OriginNotAllowed,
    #[error("sessions cannot be checked right now; retry shortly")]
    SessionStoreUnavailable(String),
    #[error("the upstream app could not be reached")]
    UpstreamUnreachable,
    #[error("the upstream app did not answer in time")]
    UpstreamTimeout,
    #[error("the upstream app sent an invalid response")]
    UpstreamProtocol,
}

impl ProxyError {
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownHost | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::RouteBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::OriginNotAllowed => StatusCode::FORBIDDEN,
            Self::SessionStoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamUnreachable | Self::UpstreamProtocol => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownHost => "unknown_host",
            Self::RouteNotFound => "route_not_found",
            Self::BadRequest(_) => "bad_request",
            Self::HeadersTooLarge { .. } => "headers_too_large",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BodyTimeout => "body_timeout",
            Self::RouteBusy { .. } => "route_busy",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::SessionStoreUnavailable(_) => "session_store_unavailable",
            Self::UpstreamUnreachable => "upstream_unreachable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamProtocol => "upstream_bad_response",
        }
    }

    /// The reason behind the public code, for the log only (why a 401).
    #[must_use]
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Unauthenticated(r) => Some(r),
            _ => None,
        }
    }

    #[must_use]
    pub fn source(&self) -> Source {
        match self {
            Self::UnknownHost
            | Self::RouteNotFound
            | Self::BadRequest(_)
            | Self::HeadersTooLarge { .. }
            | Self::PayloadTooLarge { .. }
            | Self::BodyTimeout
            | Self::Unauthenticated(_)
            | Self::Forbidden
            | Self::OriginNotAllowed => Source::Client,
            Self::RouteBusy { .. } | Self::SessionStoreUnavailable(_) => Source::Proxy,
            Self::UpstreamUnreachable | Self::UpstreamTimeout | Self::UpstreamProtocol => {
                Source::Upstream
            }
        }
    }

    /// Whether the same request may be sent again without side effects
    /// having happened upstream.
    #[must_use]
    pub fn retry_safe(&self) -> bool {
        matches!(
            self,
            Self::UpstreamUnreachable | Self::RouteBusy { .. } | Self::SessionStoreUnavailable(_)
        )
    }

    /// The response the client sees: the JSON envelope, or a small HTML page
    /// with the same facts for a browser navigation.
    #[must_use]
    pub fn into_response(self, cid: &CorrelationId, html: bool) -> Response<ProxyBody> {
        let status = self.status();
        let envelope = ErrorEnvelope::new(self.code(), self.to_string(), cid);
        let (ctype, body) = if html {
            (
                "text/html; charset=utf-8",
                Bytes::from(envelope.to_html(status.as_u16())),
            )
        } else {
            (
                "application/json",
                Bytes::from(serde_json::to_vec(&envelope).unwrap_or_default()),
            )
        };
        let mut resp = Response::new(full(body));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        );
        if let Ok(v) = HeaderValue::from_str(cid.as_str()) {
            h.insert(crate::headers::X_CORRELATION_ID, v);
        }
        if matches!(
            self,
            Self::RouteBusy { .. } | Self::SessionStoreUnavailable(_)
        ) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, Self::Unauthenticated(_)) {
            // RFC 9110 §11.6.1: a 401 names the scheme that would work.
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"platform-proxy\""),
            );
        }
        resp
    }
}

/// Whether one field says the client is a browser navigating:
/// `Sec-Fetch-Mode: navigate`, or an `Accept` that lists `text/html`.
///
/// Asked of every field of every request: the searcher for `text/html` is
/// built once (`memmem::find` builds one on every call, which was most of
/// this), and a value is compared with `navigate` before its name is
/// compared with `sec-fetch-mode`, since few values are eight bytes long.
#[must_use]
pub fn asks_html(name: &header::HeaderName, value: &[u8]) -> bool {
    const SEC_FETCH_MODE: header::HeaderName = header::HeaderName::from_static("sec-fetch-mode");
    static HTML: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"text/html"));
    if *name == header::ACCEPT {
        HTML.find(value).is_some()
    } else {
        value == b"navigate" && *name == SEC_FETCH_MODE
    }
}

/// Drains an error response body into a string (tests and logs).
pub async fn body_text(resp: Response<ProxyBody>) -> String {
    match resp.into_body().collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_error_has_a_distinct_status_and_code_in_the_envelope() {
        let cid = CorrelationId::from("cid1");
        let cases = [
            (ProxyError::UnknownHost, 404, "unknown_host"),
            (ProxyError::RouteNotFound, 404, "route_not_found"),
            (ProxyError::BadRequest("x".into()), 400, "bad_request"),
            (
                ProxyError::HeadersTooLarge { limit: 1 },
                431,
                "headers_too_large",
            ),
            (
                ProxyError::PayloadTooLarge { limit: 1 },
                413,
                "payload_too_large",
            ),
            (ProxyError::RouteBusy { limit: 1 }, 429, "route_busy"),
            (ProxyError::Unauthenticated("x"), 401, "unauthenticated"),
            (ProxyError::Forbidden, 403, "forbidden"),
            (ProxyError::OriginNotAllowed, 403, "origin_not_allowed"),
            (
                ProxyError::SessionStoreUnavailable("x".into()),
                503,
                "session_store_unavailable",
            ),
            (ProxyError::BodyTimeout, 408, "body_timeout"),
            (ProxyError::UpstreamUnreachable, 502, "upstream_unreachable"),
            (ProxyError::UpstreamTimeout, 504, "upstream_timeout"),
            (ProxyError::UpstreamProtocol, 502, "upstream_bad_response"),
        ];
        for (err, status, code) in cases {
            let resp = err.into_response(&cid, false);
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.headers()["x-correlation-id"], "cid1");
            let v: serde_json::Value = serde_json::from_str(&body_text(resp).await).expect("json");
            assert_eq!(v["error"]["code"], code);
            assert_eq!(v["error"]["correlation_id"], "cid1");
        }
    }

    #[tokio::test]
    async fn navigations_get_html_with_the_same_facts() {
        let cid = CorrelationId::from("cid2");
        let resp = ProxyError::RouteNotFound.into_response(&cid, true);
        assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
        let text = body_text(resp).await;
        assert!(text.contains("route_not_found") && text.contains("cid2"));
    }
}
