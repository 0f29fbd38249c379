//! Header operations on the forwarding path, one concern a module.

pub mod forwarded;
pub mod hop;
pub mod identity;
pub(crate) mod spare;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use pp_model::CorrelationId;

/// The correlation id header as a parsed name: inserting under a `&str`
/// parses the name again on every request.
pub const X_CORRELATION_ID: HeaderName = HeaderName::from_static(pp_model::CORRELATION_HEADER);

/// The correlation id as a header value, for both the upstream request and
/// the answer. The 32 bytes of an id [`CorrelationId::new`] made are held
/// inline in one shared allocation, so the second use is a reference count
/// rather than a second copy. `None` for an id that is no header value.
///
/// The value is marked sensitive, which HTTP/2 writes as a literal never
/// indexed (RFC 7541 §6.2.3) and HTTP/1.1 ignores. An id is new on every
/// answer: indexed, each would take a slot of the 4 KiB dynamic table and
/// push out the fields that do repeat, and the encoder compares every new
/// id with each one still held (memcmp was 3% of an HTTP/2 answer).
#[must_use]
pub fn correlation_value(cid: &CorrelationId) -> Option<HeaderValue> {
    let bytes = match cid.fresh_bytes() {
        Some(fixed) => Bytes::from_owner(fixed),
        None => Bytes::copy_from_slice(cid.as_str().as_bytes()),
    };
    let mut value = HeaderValue::from_maybe_shared(bytes).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Where the proxy's own request headers go. A name put is one the
/// request's map no longer holds: its client copies were removed first, so
/// putting never has to replace.
pub trait Sink {
    fn put(&mut self, name: HeaderName, value: HeaderValue);
}

impl Sink for HeaderMap {
    fn put(&mut self, name: HeaderName, value: HeaderValue) {
        self.insert(name, value);
    }
}

/// The headers the proxy adds to an upstream request, kept beside the
/// client's map and written after its fields on the wire. A dozen inserts
/// into the map cost a hash and a probe each, about 6% of an
/// authenticated request; a push costs next to nothing.
#[derive(Debug, Default)]
pub struct Added(spare::Fields);

impl Added {
    /// Room for what an authenticated request gets (a list kept from an
    /// earlier request when there is one, see [`spare::fields`]).
    #[must_use]
    pub fn new() -> Self {
        Self(spare::fields())
    }

    /// Gives the list back once its fields are written into a head.
    pub(crate) fn recycle(self) {
        spare::recycle_fields(self.0);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.0.iter().map(|(n, v)| (n, v))
    }

    /// Moves the headers into `headers`, for a request that travels as a
    /// map (a protocol switch, on hyper's client).
    pub fn merge_into(self, headers: &mut HeaderMap) {
        for (name, value) in self.0 {
            headers.insert(name, value);
        }
    }
}

impl Sink for Added {
    fn put(&mut self, name: HeaderName, value: HeaderValue) {
        self.0.push((name, value));
    }
}

/// Removes every header whose name `doomed` picks, in one pass over the
/// names present. A request carries a handful of headers while the lists
/// of names to drop are long: removing each listed name would hash every
/// one of them on every request, for headers that are almost never there.
///
/// Most requests hold none of the names, so a first pass only looks; the
/// names found are then held on the stack, and only more than [`INLINE`]
/// spill to the heap.
pub fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    let Some(first) = headers.keys().position(&doomed) else {
        return;
    };
    let mut inline: [Option<HeaderName>; INLINE] = [const { None }; INLINE];
    let mut spill = Vec::new();
    let found = headers.keys().skip(first).filter(|k| doomed(k));
    for (found, name) in found.enumerate() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_correlation_value_reads_back_as_the_id_and_is_never_indexed() {
        for cid in [
            CorrelationId::new(),
            CorrelationId::from("given-by-the-client-1"),
        ] {
            let v = correlation_value(&cid).expect("a header value");
            assert_eq!(v.to_str().expect("text"), cid.as_str());
            assert!(
                v.is_sensitive(),
                "HTTP/2 writes it as a literal never indexed"
            );
        }
    }

    #[test]
    fn an_id_that_is_no_header_value_gives_none() {
        assert!(correlation_value(&CorrelationId::from("bad\nid")).is_none());
    }
}
