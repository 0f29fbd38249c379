//! The `platform-proxy` binary's library half: config loading, wiring and
//! the demo, so integration tests can start a real proxy in-process.

pub mod app;
mod backends;
pub mod config;
pub mod demo;
pub mod demo_app;
pub mod dev_platform;
mod follower;
pub mod runtime;
