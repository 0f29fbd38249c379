//! Domain types and pure rules of platform-proxy.
//!
//! Nothing in this crate does I/O: routes, adapters and the rules that decide
//! how a request maps onto an upstream (route matching, path normalization,
//! response header rewriting) live here so that the data plane, the control
//! plane and the store agree on one definition and can test it without
//! sockets.

pub mod access;
pub mod adapter;
pub mod envelope;
pub mod path;
pub mod public;
pub mod records;
pub mod rewrite;
pub mod route;
pub mod table;

pub use access::{Denial, Principal, PrincipalKind, Role, RouteScope, Scope};
pub use adapter::{Adapter, AdapterOverrides, BaseUrlStrategy};
pub use envelope::{CorrelationId, ErrorEnvelope, CORRELATION_HEADER};
pub use public::PublicBase;
pub use route::{
    AuthBridge, AuthBridgeInput, AuthBridgeMode, NewRoute, OwnerType, Route, RouteLimits,
    RouteMode, RoutePatch, RouteStatus, Upstream, UpstreamScheme, ValidationError,
};
pub use table::{ResolvedRoute, RouteChange, RouteTable, TableBuilder, Unseal};
