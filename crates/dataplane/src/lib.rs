//! The data plane of platform-proxy: listeners, the request pipeline, and
//! everything on the path of a proxied byte.
//!
//! Modules follow the request: [`listener`] accepts (TLS via [`tls`]),
//! [`pipeline`] dispatches by host and runs resolve → limit → forward →
//! rewrite, [`forward`] talks to the upstream, [`tunnel`] carries WebSocket
//! frames, [`respond`] rewrites the upstream's response headers, and
//! [`account`] writes the access log. The data plane never touches the store:
//! the binary feeds it route tables through [`RouteTableHandle`].

pub mod access;
pub mod account;
pub mod authenticate;
pub mod authorize;
pub mod body;
mod codec;
mod due;
pub mod error;
pub mod forward;
pub mod forward_auth;
pub mod headers;
pub mod host;
pub mod limit;
pub mod listener;
pub mod opened;
pub mod pipeline;
pub mod reserved;
pub mod respond;
pub mod routes;
pub mod server;
pub mod settings;
mod splice;
pub mod tls;
pub mod tunnel;

/// Locks `m`, carrying on past a panic in another holder: the data plane's
/// shared state (queues, pools, read sides) stays usable, and what a
/// panicking holder left half done is the worst it costs.
pub(crate) fn lock<T: ?Sized>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Seconds since the Unix epoch, what session expiries are compared with.
/// Read straight from the system clock: `OffsetDateTime::now_utc` works
/// out the calendar date too, which a timestamp has no use for (about 180
/// instructions a request on the authenticated path).
pub(crate) fn unix_now() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

pub use access::{Access, AccessSettings, SessionBackend};
pub use body::ProxyBody;
pub use error::ProxyError;
pub use listener::{serve, Listener};
pub use pipeline::{ApiHandler, ConnInfo, Proxy};
pub use routes::RouteTableHandle;
pub use settings::{Settings, Splice};
