//! pp-store against real SQLite files, one test binary (STYLE.md: a 2-core
//! machine links once).

mod audit;
mod changes;
mod corrupt;
mod feed;
mod grants;
mod listing;
mod migrations;
mod revocations;
mod routes;
mod secrets;
mod sessions;
mod support;
mod tokens;
