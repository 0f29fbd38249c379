//! One function per endpoint. Handlers stay thin: decode (extractors),
//! apply the model's rule, call the store, shape the answer.

use crate::error::ApiError;

pub(crate) mod audit;
pub(crate) mod grants;
pub(crate) mod health;
pub(crate) mod routes;
pub(crate) mod sessions;
pub(crate) mod tokens;

/// Fallback for paths the router does not know.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}
