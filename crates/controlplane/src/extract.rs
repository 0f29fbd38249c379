//! Extractors that turn request parts into typed values or an [`ApiError`]
//! that names the part at fault.
//!
//! axum's own `Json`, `Path` and `Query` answer with plain-text bodies and
//! messages that do not name the field, so the API reads the raw parts and
//! decodes them here instead.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;
use crate::AppState;

/// A JSON request body of at most `max_body_bytes`, decoded with the path of
/// the offending field in every error (`upstream.targets[0]: invalid type`).
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = state.max_body_bytes;
        // Refuse a declared oversize body before reading a byte of it.
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        // And enforce the limit while reading, for chunked or lying bodies.
        let bytes = match Limited::new(request.into_body(), limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            Err(e) => {
                return Err(ApiError::BadRequest {
                    field: None,
                    message: format!("could not read the request body: {e}"),
                })
            }
        };
        parse_json(&bytes).map(Self)
    }
}

/// `application/json`, with or without parameters (`; charset=utf-8`);
/// media types are case-insensitive (RFC 9110 §8.3.1).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Decodes `bytes` as one JSON value of type `T`, naming the field path of
/// the first error in both the message and the envelope's `field`.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        json_error(path_field(&path), e.inner())
    })?;
    // Trailing bytes after the value: `{"a":1} x` is not one JSON document.
    de.end().map_err(|e| json_error(None, &e))?;
    Ok(value)
}

/// serde_path_to_error writes `.` for the root and `?` where it lost track.
fn path_field(path: &str) -> Option<String> {
    (path != "." && path != "?").then(|| path.to_owned())
}

fn json_error(path: Option<String>, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::BadRequest {
            field: None,
            message: format!("malformed JSON: {e}"),
        },
        Category::Data => {
            // A missing field is reported at its parent; name the field
            // itself, which is what the client has to add.
            let field = match missing_field(&e.to_string()) {
                Some(name) => Some(match path {
                    Some(parent) => format!("{parent}.{name}"),
                    None => name.to_owned(),
                }),
                None => path,
            };
            let message = match &field {
                Some(f) => format!("{f}: {e}"),
                None => e.to_string(),
            };
            ApiError::BadRequest { field, message }
        }
    }
}

/// The name in serde's "missing field `name`" message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split_once('`').map(|(name, _)| name)
}

/// The `{id}` path segment as a route id. Anything that is not a UUID
/// cannot name a route, so it answers `route_not_found` like an unknown
/// id: one answer for "no such route" whatever the reason.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteId(pub(crate) Uuid);

impl<S: Send + Sync> FromRequestParts<S> for RouteId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::RouteNotFound)?;
        Uuid::parse_str(&raw)
            .map(Self)
            .map_err(|_| ApiError::RouteNotFound)
    }
}

/// The query string as `(name, value)` pairs, percent-decoded, in order.
/// Handlers match names themselves so that an unknown or repeated parameter
/// is an error naming it, not silently ignored.
#[derive(Debug, Default)]
pub(crate) struct QueryPairs(pub(crate) Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).map_err(
                |_| ApiError::BadRequest {
                    field: None,
                    message: "malformed query string".to_owned(),
                },
            )?;
        let mut seen: Vec<&str> = Vec::with_capacity(pairs.len());
        for (name, _) in &pairs {
            if seen.contains(&name.as_str()) {
                return Err(ApiError::bad_request(
                    name.clone(),
                    format!("{name}: given more than once"),
                ));
            }
            seen.push(name);
        }
        Ok(Self(pairs))
    }
}

/// `true` or `false`, the spellings the OpenAPI document promises.
pub(crate) fn parse_bool(field: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad_request(
            field,
            format!("{field}: expected true or false, got {value:?}"),
        )),
    }
}

/// A page size: 1 to [`pp_store::MAX_PAGE_LIMIT`].
pub(crate) fn parse_limit(value: &str) -> Result<u32, ApiError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|l| (1..=pp_store::MAX_PAGE_LIMIT).contains(l))
        .ok_or_else(|| {
            ApiError::bad_request(
                "limit",
                format!(
                    "limit: expected an integer from 1 to {}, got {value:?}",
                    pp_store::MAX_PAGE_LIMIT
                ),
            )
        })
}

/// An id (UUID) in the query, the error naming its parameter.
pub(crate) fn parse_uuid(field: &str, value: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(value).map_err(|_| {
        ApiError::bad_request(field, format!("{field}: expected a UUID, got {value:?}"))
    })
}

/// The error for a query parameter the endpoint does not take.
pub(crate) fn unknown_param(name: &str) -> ApiError {
    ApiError::bad_request(name, format!("{name}: unknown query parameter"))
}

#[cfg(test)]
mod tests;
