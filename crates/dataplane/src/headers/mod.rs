//! Header operations on the forwarding path, one concern a module.

pub mod forwarded;
pub mod hop;
pub mod identity;
