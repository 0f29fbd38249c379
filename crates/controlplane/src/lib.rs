//! The control-plane REST API of platform-proxy (DESIGN.md, "Public
//! contracts": `/api/v1/…`, `/healthz`, `/readyz`).
//!
//! This crate builds an axum [`Router`](axum::Router) and nothing more: the
//! binary's listener owns sockets, TLS and host dispatch, and hands requests
//! for the API host to this router as a tower `Service`. Keeping the server
//! out of here lets the tests drive the API in-process with `oneshot`.
//!
//! The request path through this crate, outermost first:
//!
//! 1. `correlation`: takes the listener's correlation id from the request
//!    extensions (or makes one), and on the way out turns every error into
//!    the one error envelope with `X-Correlation-Id`.
//! 2. `auth`: deny by default; only an allowlist of public paths is served
//!    without the bootstrap bearer token.
//! 3. `handlers`: one function per endpoint, with the typed extractors of
//!    `extract` and errors as `error::ApiError`.
//!
//! `openapi` describes the same handlers as an OpenAPI 3.1 document.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use pp_model::PublicBase;
use pp_store::Store;

mod auth;
mod correlation;
mod error;
mod extract;
mod handlers;
mod openapi;

pub use handlers::routes::{RouteList, RouteView};
pub use openapi::ApiDoc;

/// Request bodies above this are refused with 413 unless configured
/// otherwise: a route is a few KiB of JSON, so 1 MiB leaves room for large
/// policies while bounding what one request can make the API buffer.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the API needs from the proxy's configuration.
#[derive(Clone)]
pub struct ApiConfig {
    /// The operator's bearer token for `/api/v1/*`. `None` locks the API:
    /// every authenticated call answers 401, so a proxy started without a
    /// token never serves an open admin API.
    pub bootstrap_token: Option<String>,
    /// How browsers reach the apps domain, for each route's `public_url`.
    pub public: PublicBase,
    /// Largest accepted request body, in bytes ([`DEFAULT_MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
}

impl ApiConfig {
    /// A config with the default body limit.
    #[must_use]
    pub fn new(bootstrap_token: Option<String>, public: PublicBase) -> Self {
        Self {
            bootstrap_token,
            public,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Hand-written so that the token can never reach a log line through
/// `{:?}` (DESIGN.md: secrets are never logged).
impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "<redacted>"),
            )
            .field("public", &self.public)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// Shared state of every handler; cheap to clone (all `Arc`s).
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bootstrap_token: Option<Arc<str>>,
    pub(crate) public: Arc<PublicBase>,
    pub(crate) max_body_bytes: usize,
}

/// Builds the control-plane API.
///
/// Unknown paths answer `not_found`, known paths with another method
/// `method_not_allowed`; both, like every other error, in the error envelope.
pub fn router(store: Arc<dyn Store>, config: ApiConfig) -> Router {
    let state = AppState {
        store,
        bootstrap_token: config.bootstrap_token.map(Arc::from),
        public: Arc::new(config.public),
        max_body_bytes: config.max_body_bytes,
    };
    Router::new()
        .route("/healthz", get(handlers::health::healthz))
        .route("/readyz", get(handlers::health::readyz))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route(
            "/api/v1/routes",
            get(handlers::routes::list).post(handlers::routes::create),
        )
        .route(
            "/api/v1/routes/{id}",
            get(handlers::routes::get)
                .patch(handlers::routes::update)
                .delete(handlers::routes::delete),
        )
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_bearer,
        ))
        .layer(axum::middleware::from_fn(correlation::envelope_errors))
        .with_state(state)
}
