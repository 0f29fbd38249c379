//! Integration tests: one binary, real servers on loopback, a real SQLite
//! file per proxy.

#![allow(unreachable_pub)]

mod support;

mod api;
mod demo;
mod errors;
mod forwarding;
mod rewriting;
mod routing;
