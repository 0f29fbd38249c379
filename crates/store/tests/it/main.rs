//! pp-store against real SQLite files, one test binary (STYLE.md: a 2-core
//! machine links once).

mod corrupt;
mod feed;
mod listing;
mod migrations;
mod routes;
mod support;
