//! Identity for platform-proxy: who a request comes from, and whether that
//! is still true.
//!
//! - [`jwt`]: OIDC / JWT bearer tokens checked against the issuer's JWKS
//!   (fetched or discovered, cached, refetched on an unknown `kid`), claims
//!   mapped onto a [`Principal`](pp_model::Principal); OIDC back-channel
//!   logout tokens.
//! - [`assertion`]: the short-lived JWT the proxy signs for upstreams that
//!   want a verifiable identity, and the JWKS that verifies it.
//! - [`seal`]: authenticated encryption (AES-256-GCM) under a rotating key
//!   ring: the newest key seals, every listed key opens.
//! - [`session`]: the proxy-session cookie and the one-time launch code.
//! - [`token`]: service tokens: generated, shown once, stored as a hash.
//! - [`directory`]: the in-memory snapshot the hot path reads: pushed
//!   grants, service tokens and the revocation set, swapped whole.
//!
//! Nothing here knows routes' upstreams or talks to the store: the binary
//! loads snapshots from the store and hands them in.

pub mod assertion;
pub mod audit;
pub mod authn;
pub mod directory;
pub mod jwt;
pub mod seal;
pub mod session;
pub mod token;

pub use audit::AuditSink;
pub use authn::{AuthError, Authenticated, Authenticator, Via};
pub use directory::{Directory, DirectoryHandle, Revocations};
pub use seal::{Keyring, SealError};
pub use session::{LaunchCode, SessionClaims};
