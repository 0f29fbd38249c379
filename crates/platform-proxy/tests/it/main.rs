//! Integration tests: one binary, real servers on loopback, a real SQLite
//! file per proxy.

#![allow(unreachable_pub)]

mod support;

mod api;
mod demo;
mod errors;
mod forwarding;
mod listeners;
mod rewriting;
mod routing;
mod shutdown;
mod streaming;
mod websocket;
