//! Header operations on the forwarding path, one concern a module.

pub mod forwarded;
pub mod hop;
pub mod identity;

use http::header::{HeaderMap, HeaderName};

/// The correlation id header as a parsed name: inserting under a `&str`
/// parses the name again on every request.
pub const X_CORRELATION_ID: HeaderName = HeaderName::from_static(pp_model::CORRELATION_HEADER);

/// Removes every header whose name `doomed` picks, in one pass over the
/// names present. A request carries a handful of headers while the lists
/// of names to drop are long: removing each listed name would hash every
/// one of them on every request, for headers that are almost never there.
pub fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    let names: Vec<HeaderName> = headers.keys().filter(|k| doomed(k)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}
