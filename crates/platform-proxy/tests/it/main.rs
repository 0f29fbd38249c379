//! Integration tests: one binary, real servers on loopback, a real SQLite
//! file per proxy.

#![allow(unreachable_pub)]

mod support;

mod access;
mod api;
mod api_access;
mod demo;
mod errors;
mod follower;
mod forward_auth;
mod forwarding;
mod http1;
mod http2;
mod http2_browser;
mod http2_limits;
mod listeners;
mod pool;
mod revocation;
mod rewriting;
mod routing;
mod sessions;
mod shutdown;
mod splice;
mod streaming;
mod upstream_view;
mod websocket;
