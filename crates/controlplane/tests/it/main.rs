//! Integration tests of the control-plane API: the router driven in-process
//! with `tower::ServiceExt::oneshot` against a real SQLite store on a
//! temporary file. One binary, so the 2-core CI links once.

mod auth;
mod errors;
mod health;
mod listing;
mod openapi;
mod routes;
mod support;
