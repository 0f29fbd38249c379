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
///
/// The names found are held on the stack (a response nearly always loses
/// one or two, `Connection` among them); only more than [`INLINE`] spill to
/// the heap.
pub fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    let mut inline: [Option<HeaderName>; INLINE] = [const { None }; INLINE];
    let mut spill = Vec::new();
    for (found, name) in headers.keys().filter(|k| doomed(k)).enumerate() {
        match inline.get_mut(found) {
            Some(slot) => *slot = Some(name.clone()),
            None => spill.push(name.clone()),
        }
    }
    for name in inline.into_iter().flatten().chain(spill) {
        headers.remove(name);
    }
}

/// Names [`remove_where`] holds without allocating.
const INLINE: usize = 8;
