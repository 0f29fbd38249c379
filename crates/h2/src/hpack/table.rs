//! HPACK's two tables (RFC 7541 §2.3): the static one of Appendix A and a
//! connection's dynamic one, addressed together from 1.

use std::collections::VecDeque;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

/// The dynamic table's size until a peer's `SETTINGS_HEADER_TABLE_SIZE`
/// says otherwise (RFC 9113 §6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// What an entry counts for beyond its bytes (RFC 7541 §4.1).
pub(crate) const ENTRY_OVERHEAD: usize = 32;

/// Appendix A, indexes 1 to 61.
pub(crate) static STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The static table's first index for `name`, for an encoder that sends
/// the name as an index and the value as a literal. Names are lowercase
/// in HTTP/2 (RFC 9113 §8.2.1); an uppercase one is not found.
#[must_use]
pub fn static_name(name: &[u8]) -> Option<u8> {
    let i = match name {
        b":authority" => 1,
        b":method" => 2,
        b":path" => 4,
        b":scheme" => 6,
        b":status" => 8,
        b"accept-charset" => 15,
        b"accept-encoding" => 16,
        b"accept-language" => 17,
        b"accept-ranges" => 18,
        b"accept" => 19,
        b"access-control-allow-origin" => 20,
        b"age" => 21,
        b"allow" => 22,
        b"authorization" => 23,
        b"cache-control" => 24,
        b"content-disposition" => 25,
        b"content-encoding" => 26,
        b"content-language" => 27,
        b"content-length" => 28,
        b"content-location" => 29,
        b"content-range" => 30,
        b"content-type" => 31,
        b"cookie" => 32,
        b"date" => 33,
        b"etag" => 34,
        b"expect" => 35,
        b"expires" => 36,
        b"from" => 37,
        b"host" => 38,
        b"if-match" => 39,
        b"if-modified-since" => 40,
        b"if-none-match" => 41,
        b"if-range" => 42,
        b"if-unmodified-since" => 43,
        b"last-modified" => 44,
        b"link" => 45,
        b"location" => 46,
        b"max-forwards" => 47,
        b"proxy-authenticate" => 48,
        b"proxy-authorization" => 49,
        b"range" => 50,
        b"referer" => 51,
        b"refresh" => 52,
        b"retry-after" => 53,
        b"server" => 54,
        b"set-cookie" => 55,
        b"strict-transport-security" => 56,
        b"transfer-encoding" => 57,
        b"user-agent" => 58,
        b"vary" => 59,
        b"via" => 60,
        b"www-authenticate" => 61,
        _ => return None,
    };
    Some(i)
}

/// One entry: name and value in one buffer, shared with the fields
/// decoded from it, and the field as `http` types once, when it is a
/// valid regular field: a client repeats its fields as indexes, and each
/// repeat is then a reference count rather than a parse.
#[derive(Debug)]
struct Entry {
    bytes: Bytes,
    name_len: usize,
    parsed: Option<(HeaderName, HeaderValue)>,
}

/// A field of either table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) value: &'a [u8],
    /// A dynamic entry's buffer, which `value` is a slice of.
    pub(crate) shared: Option<&'a Bytes>,
    /// A dynamic entry's field as `http` types, when it is a valid one.
    pub(crate) parsed: Option<&'a (HeaderName, HeaderValue)>,
}

impl Entry {
    fn name(&self) -> &[u8] {
        &self.bytes[..self.name_len]
    }

    fn value(&self) -> &[u8] {
        &self.bytes[self.name_len..]
    }

    fn size(&self) -> usize {
        self.bytes.len() + ENTRY_OVERHEAD
    }
}

/// A decoder's dynamic table: newest entry first, the oldest evicted
/// when an insert or a smaller size needs the room (RFC 7541 §4.3, §4.4).
#[derive(Debug)]
pub(crate) struct Dynamic {
    entries: VecDeque<Entry>,
    size: usize,
    max: usize,
}

impl Dynamic {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            size: 0,
            max,
        }
    }

    /// The entries' size as §4.1 counts it.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The field at `index` of the two tables together, 1-based.
    pub(crate) fn get(&self, index: usize) -> Option<(&[u8], &[u8])> {
        self.find(index).map(|f| (f.name, f.value))
    }

    /// The same, with what a dynamic entry keeps beside its bytes.
    pub(crate) fn find(&self, index: usize) -> Option<Found<'_>> {
        match index {
            0 => None,
            1..=61 => {
                let (n, v) = STATIC[index - 1];
                Some(Found {
                    name: n.as_bytes(),
                    value: v.as_bytes(),
                    shared: None,
                    parsed: None,
                })
            }
            _ => self.entries.get(index - 62).map(|e| Found {
                name: e.name(),
                value: e.value(),
                shared: Some(&e.bytes),
                parsed: e.parsed.as_ref(),
            }),
        }
    }

    /// Adds a field as the newest entry. One larger than the whole table
    /// empties it and is not added: not an error (§4.4).
    /// `field` is the name's bytes then the value's.
    pub(crate) fn insert(&mut self, field: Vec<u8>, name_len: usize) {
        let size = field.len() + ENTRY_OVERHEAD;
        self.evict_to(self.max.saturating_sub(size));
        if size > self.max {
            return;
        }
        let bytes = Bytes::from(field);
        let parsed = crate::server::regular_field(&bytes[..name_len], bytes.slice(name_len..));
        self.entries.push_front(Entry {
            bytes,
            name_len,
            parsed,
        });
        self.size += size;
    }

    /// A new maximum size, from the encoder's size update (§6.3).
    pub(crate) fn resize(&mut self, max: usize) {
        self.max = max;
        self.evict_to(max);
    }

    fn evict_to(&mut self, room: usize) {
        while self.size > room {
            match self.entries.pop_back() {
                Some(e) => self.size -= e.size(),
                None => break,
            }
        }
    }
}
