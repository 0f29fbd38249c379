//! One function per endpoint. Handlers stay thin: decode (extractors),
//! apply the model's rule, call the store, shape the answer.

use crate::error::ApiError;

pub(crate) mod health;
pub(crate) mod routes;

/// Fallback for paths the router does not know.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}
