//! Integration tests of pp-identity, one binary (STYLE.md: link once).

mod assertion;
mod jwt;
mod jwt_keys;
mod logout;
mod support;
