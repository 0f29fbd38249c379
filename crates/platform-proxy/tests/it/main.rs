//! Integration tests: one binary, real servers on loopback.
