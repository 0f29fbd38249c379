//! Header maps kept for reuse, a few per worker thread.
//!
//! An HTTP/1.1 exchange builds two maps, the client's request and the
//! upstream's answer, and drops both once their heads are written. Each
//! build is two allocations (the index table and the entries) and each drop
//! two frees: about 1,400 of the 35,500 instructions an authenticated
//! request took (callgrind). A map written out is cleared instead and kept
//! here for the next head parsed on the same thread. The proxy's own field
//! list for the upstream request is kept the same way, and so are an
//! answer's extensions (an answer passed on verbatim carries its lines
//! there: a fresh set is two allocations besides the value's own).
//!
//! Clearing drops every value, so a kept map holds no slice of an old read
//! buffer: the buffer's memory is the connection's again at once. Only maps
//! of ordinary size are kept, and only a few, so a head with hundreds of
//! fields leaves nothing large behind.

use std::cell::RefCell;
use std::thread::LocalKey;

use http::header::{HeaderName, HeaderValue};
use http::{Extensions, HeaderMap};

/// Maps kept per thread. An HTTP/1.1 worker parses a head and writes it
/// out within one poll more often than not, so a handful would cover its
/// churn; an HTTP/2 connection's turn takes a map for each request it
/// reads and each upstream answer it parses (ten streams of each, say)
/// before it writes any, so a thread keeps enough for two such turns.
/// A kept map of [`ROOM`] is about 2 KiB.
const KEPT: usize = 32;

/// Fields a kept map may have room for: a map grown past this (a head with
/// many fields) is freed rather than kept.
const ROOM: usize = 48;

/// The proxy's own fields for one upstream request ([`super::Added`]).
pub(crate) type Fields = Vec<(HeaderName, HeaderValue)>;

/// Room for what an authenticated request gets: five forwarding headers,
/// the correlation id, the identity headers and the assertion.
const FIELDS: usize = 12;

thread_local! {
    static SPARE: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
    static SPARE_FIELDS: RefCell<Vec<Fields>> = const { RefCell::new(Vec::new()) };
    static SPARE_EXTENSIONS: RefCell<Vec<Extensions>> = const { RefCell::new(Vec::new()) };
}

/// An empty map with room for `fields`, a kept one when there is one.
pub(crate) fn map_for(fields: usize) -> HeaderMap {
    match take(&SPARE) {
        Some(mut map) => {
            map.reserve(fields);
            map
        }
        None => HeaderMap::with_capacity(fields),
    }
}

/// Takes back a map whose head has been written: cleared, and kept when it
/// is of ordinary size and the thread keeps fewer than [`KEPT`].
pub(crate) fn recycle(mut map: HeaderMap) {
    if map.capacity() == 0 || map.capacity() > ROOM {
        return;
    }
    map.clear();
    keep(&SPARE, map);
}

/// An empty list for the proxy's own fields, a kept one when there is one.
pub(crate) fn fields() -> Fields {
    take(&SPARE_FIELDS).unwrap_or_else(|| Vec::with_capacity(FIELDS))
}

/// Takes back a list of fields written into a head, as [`recycle`] does
/// maps.
pub(crate) fn recycle_fields(mut fields: Fields) {
    if fields.capacity() == 0 || fields.capacity() > ROOM {
        return;
    }
    fields.clear();
    keep(&SPARE_FIELDS, fields);
}

/// An empty set of extensions, a kept one (its map already made) when
/// there is one.
pub(crate) fn extensions() -> Extensions {
    take(&SPARE_EXTENSIONS).unwrap_or_default()
}

/// Takes back an answer's extensions once its head is written: cleared
/// (their values dropped) and kept, as [`recycle`] does maps. An empty set
/// may never have made its map, and is not kept.
pub(crate) fn recycle_extensions(mut extensions: Extensions) {
    if extensions.is_empty() {
        return;
    }
    extensions.clear();
    keep(&SPARE_EXTENSIONS, extensions);
}

fn take<T: 'static>(spare: &'static LocalKey<RefCell<Vec<T>>>) -> Option<T> {
    spare.try_with(|s| s.borrow_mut().pop()).ok().flatten()
}

fn keep<T: 'static>(spare: &'static LocalKey<RefCell<Vec<T>>>, cleared: T) {
    // On a thread that is ending, it is simply dropped.
    let _ = spare.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < KEPT {
            s.push(cleared);
        }
    });
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn spare_count() -> usize {
        SPARE.with(|s| s.borrow().len())
    }

    #[test]
    fn a_recycled_map_comes_back_empty_and_lets_its_values_go() {
        std::thread::spawn(|| {
            let head = Bytes::from(b"text/plain".to_vec());
            let mut map = map_for(4);
            let value = HeaderValue::from_maybe_shared(head.clone()).expect("value");
            map.append(http::header::CONTENT_TYPE, value);
            assert!(!head.is_unique(), "the map holds a slice of the head");
            let room = map.capacity();
            recycle(map);
            assert!(
                head.is_unique(),
                "a kept map must not pin the head's buffer"
            );
            assert_eq!(spare_count(), 1);
            let again = map_for(4);
            assert!(again.is_empty());
            assert_eq!(again.capacity(), room, "the kept map is the one handed out");
            assert_eq!(spare_count(), 0);
            // Room for more fields than the kept map has is made.
            recycle(again);
            assert!(map_for(40).capacity() >= 40);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn field_lists_are_kept_empty_and_bounded() {
        std::thread::spawn(|| {
            let value = Bytes::from(b"10.0.0.1".to_vec());
            let mut list = fields();
            assert!(list.capacity() >= FIELDS);
            let header = HeaderValue::from_maybe_shared(value.clone()).expect("value");
            list.push((http::header::HOST, header));
            recycle_fields(list);
            assert!(value.is_unique(), "a kept list must not hold its values");
            assert!(fields().is_empty());
            recycle_fields(Vec::with_capacity(ROOM + 1));
            for _ in 0..KEPT + 3 {
                recycle_fields(Vec::with_capacity(FIELDS));
            }
            assert_eq!(SPARE_FIELDS.with(|s| s.borrow().len()), KEPT);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn extensions_are_kept_empty_without_their_values_and_bounded() {
        std::thread::spawn(|| {
            let value = Bytes::from(b"lines".to_vec());
            let mut ext = extensions();
            ext.insert(value.clone());
            assert!(!value.is_unique());
            recycle_extensions(ext);
            assert!(value.is_unique(), "kept extensions must not hold a value");
            assert_eq!(SPARE_EXTENSIONS.with(|s| s.borrow().len()), 1);
            assert!(extensions().is_empty());
            recycle_extensions(Extensions::new());
            assert_eq!(
                SPARE_EXTENSIONS.with(|s| s.borrow().len()),
                0,
                "an empty set is not kept"
            );
            for _ in 0..KEPT + 3 {
                let mut ext = Extensions::new();
                ext.insert(1u8);
                recycle_extensions(ext);
            }
            assert_eq!(SPARE_EXTENSIONS.with(|s| s.borrow().len()), KEPT);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn large_maps_are_freed_and_only_a_few_are_kept() {
        std::thread::spawn(|| {
            let mut big = map_for(0);
            for i in 0..ROOM + 1 {
                let name = HeaderName::from_bytes(format!("x-{i}").as_bytes()).expect("name");
                big.append(name, HeaderValue::from_static("v"));
            }
            assert!(big.capacity() > ROOM);
            recycle(big);
            assert_eq!(spare_count(), 0, "a map grown past ROOM is not kept");
            recycle(HeaderMap::new());
            assert_eq!(spare_count(), 0, "a map that never allocated is not kept");
            for _ in 0..KEPT + 3 {
                recycle(HeaderMap::with_capacity(8));
            }
            assert_eq!(spare_count(), KEPT);
        })
        .join()
        .expect("thread");
    }
}
