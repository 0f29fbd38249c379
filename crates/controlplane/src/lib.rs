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
//!    without a bearer token (bootstrap, service token or platform JWT).
//! 3. `handlers`: one function per endpoint, with the typed extractors of
//!    `extract` and errors as `error::ApiError`.
//!
//! `openapi` describes the same handlers as an OpenAPI 3.1 document.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{delete, get, post};
use axum::Router;
use pp_identity::assertion::AssertionSigner;
use pp_identity::{Authenticator, Keyring};
use pp_model::PublicBase;
use pp_store::Store;

mod audit;
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
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// How browsers reach the apps domain, for each route's `public_url`.
    pub public: PublicBase,
    /// Largest accepted request body, in bytes ([`DEFAULT_MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
    /// Hard lifetime of a browser session: after it the user relaunches
    /// from the platform.
    pub session_max: Duration,
    /// How long a launch code may wait to be redeemed.
    pub launch_ttl: Duration,
    /// Longest lifetime a service token may be given.
    pub service_token_max: Duration,
}

impl ApiConfig {
    /// A config with the default limits: 1 MiB bodies, 12 h sessions,
    /// 60 s launch codes, service tokens of at most a year.
    #[must_use]
    pub fn new(public: PublicBase) -> Self {
        Self {
            public,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            session_max: Duration::from_secs(12 * 3600),
            launch_ttl: Duration::from_secs(60),
            service_token_max: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

/// The running parts the API works with.
#[derive(Clone)]
pub struct ApiDeps {
    pub store: Arc<dyn Store>,
    pub authn: Arc<Authenticator>,
    /// Seals auth-bridge secrets before they are stored.
    pub keys: Arc<Keyring>,
    /// Publishes its JWKS at `/.well-known/jwks.json` when set.
    pub assertion: Option<Arc<AssertionSigner>>,
}

/// Shared state of every handler; cheap to clone (all `Arc`s).
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) authn: Arc<Authenticator>,
    pub(crate) keys: Arc<Keyring>,
    pub(crate) assertion: Option<Arc<AssertionSigner>>,
    pub(crate) public: Arc<PublicBase>,
    pub(crate) config: Arc<ApiConfig>,
    pub(crate) max_body_bytes: usize,
}

/// Builds the control-plane API.
///
/// Unknown paths answer `not_found`, known paths with another method
/// `method_not_allowed`; both, like every other error, in the error envelope.
pub fn router(deps: ApiDeps, config: ApiConfig) -> Router {
    let state = AppState {
        store: deps.store,
        authn: deps.authn,
        keys: deps.keys,
        assertion: deps.assertion,
        public: Arc::new(config.public.clone()),
        max_body_bytes: config.max_body_bytes,
        config: Arc::new(config),
    };
    Router::new()
        .route("/healthz", get(handlers::health::healthz))
        .route("/readyz", get(handlers::health::readyz))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/.well-known/jwks.json", get(handlers::sessions::jwks))
        .route("/api/v1/me", get(handlers::sessions::me))
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
        .route(
            "/api/v1/routes/{id}/browser-session",
            post(handlers::sessions::mint),
        )
        .route("/api/v1/sessions", get(handlers::sessions::list))
        .route("/api/v1/sessions/revoke", post(handlers::sessions::revoke))
        .route(
            "/api/v1/backchannel-logout",
            post(handlers::sessions::backchannel_logout),
        )
        .route(
            "/api/v1/grants",
            get(handlers::grants::list).post(handlers::grants::create),
        )
        .route(
            "/api/v1/grants/{id}",
            get(handlers::grants::get).delete(handlers::grants::delete),
        )
        .route(
            "/api/v1/service-tokens",
            get(handlers::tokens::list).post(handlers::tokens::create),
        )
        .route(
            "/api/v1/service-tokens/{id}",
            delete(handlers::tokens::revoke),
        )
        .route("/api/v1/audit", get(handlers::audit::list))
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_bearer,
        ))
        .layer(axum::middleware::from_fn(correlation::envelope_errors))
        .with_state(state)
}
