//! What the pipeline's identity steps need, handed in by the binary: the
//! key ring, the bearer authenticator, the session backend (launch-code
//! redemption and logout, which are the only identity steps that write),
//! the audit sink, the optional assertion signer and the cache of opened
//! session cookies.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pp_identity::assertion::AssertionSigner;
use pp_identity::{AuditSink, Authenticator, Keyring};
use pp_model::records::SessionRecord;
use uuid::Uuid;

use crate::opened::OpenedSessions;

/// Boxed future of the session backend.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// The writes the data plane needs from the store, behind a trait so this
/// crate never talks to the store itself.
pub trait SessionBackend: Send + Sync + 'static {
    /// Redeems a launch code at most once (see `Store::redeem_launch_code`).
    fn redeem(&self, code_hash: String, route: Uuid) -> BackendFuture<'_, Option<SessionRecord>>;
    /// Revokes one session (logout on an app host).
    fn revoke_session(&self, session: Uuid, reason: &'static str) -> BackendFuture<'_, ()>;
}

/// Identity settings of the data plane.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// A session cookie stays valid this long after it was last renewed;
    /// it slides forward on use up to the session's hard end.
    pub session_idle: Duration,
    /// Where a browser without a session is sent (the platform's login or
    /// launch page). `route_id` and `return_to` are appended. `None`: a
    /// 401 page instead.
    pub login_url: Option<String>,
    /// Origins besides the route's own that may open WebSockets (the
    /// platform shell that embeds apps).
    pub allowed_origins: Vec<String>,
    /// Lifetime of the proxy-signed identity assertion.
    pub assertion_ttl: Duration,
}

impl Default for AccessSettings {
    fn default() -> Self {
        Self {
            session_idle: Duration::from_secs(15 * 60),
            login_url: None,
            allowed_origins: Vec::new(),
            assertion_ttl: Duration::from_secs(60),
        }
    }
}

/// The identity parts of the data plane.
#[derive(Clone)]
pub struct Access {
    pub settings: AccessSettings,
    pub keys: Arc<Keyring>,
    pub authn: Arc<Authenticator>,
    pub sessions: Arc<dyn SessionBackend>,
    pub audit: Arc<dyn AuditSink>,
    pub assertion: Option<Arc<AssertionSigner>>,
    /// Session cookies already opened (see [`OpenedSessions`]).
    pub opened: Arc<OpenedSessions>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("settings", &self.settings)
            .field("assertion", &self.assertion.is_some())
            .finish_non_exhaustive()
    }
}
