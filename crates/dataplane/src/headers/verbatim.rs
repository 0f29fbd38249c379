//! An upstream answer's fields passed on to an HTTP/1.1 client as they
//! came, not through a map.
//!
//! Most answers need none of the proxy's answer steps: no hop-by-hop field
//! beyond the framing ones the upstream client takes out, no `Location` or
//! `Set-Cookie` to map onto the public origin, no correlation id to
//! replace. Parsing such an answer into a map costs a check of every
//! value's bytes again (httparse has checked them) and a hashed append for
//! each field, writing it costs a copy field by field, and clearing the map
//! for reuse a reference count per value. Passed on as they came, the
//! field lines are one slice of the upstream's read buffer and one copy
//! into the client's head: an authenticated request went from 28,749 to
//! 26,684 instructions (callgrind, docs/performance.md, thirteenth
//! session, with the extensions kept per thread).
//!
//! The upstream client decides as it parses, from the names it looks at
//! anyway: a head with a name any answer step acts on
//! ([`Verbatim::is_acted_on`]) becomes a map as before, and so does any
//! head when the request asked for one (an HTTP/2 client: hyper writes from
//! a map). The lines ride in the response's extensions; the response's map
//! then holds only what the proxy adds (the correlation id, a renewed
//! session cookie), written after them.
//!
//! A step that comes to read or change an answer's upstream fields must
//! add the names it acts on to [`Verbatim::is_acted_on`], or have its
//! requests ask for a map ([`crate::forward::Upstreams::send`]).

use bytes::Bytes;
use http::header::HeaderName;

use super::X_CORRELATION_ID;
use crate::respond::rewrite_of;

/// The field lines of an upstream answer, each `name: value\r\n` as the
/// upstream sent it (names keep their case, fields their order), without
/// the framing and connection fields the upstream client took out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verbatim {
    lines: Bytes,
    length: Option<u64>,
    dated: bool,
}

impl Verbatim {
    /// `lines` must be whole field lines, each ending in CRLF; `length`
    /// the `Content-Length` they declare, `dated` whether a `Date` field
    /// is among them.
    pub(crate) fn new(lines: Bytes, length: Option<u64>, dated: bool) -> Self {
        debug_assert!(lines.is_empty() || lines.ends_with(b"\r\n"));
        Self {
            lines,
            length,
            dated,
        }
    }

    /// The field lines, to be written as they are.
    pub(crate) fn lines(&self) -> &[u8] {
        &self.lines
    }

    /// The `Content-Length` the lines declare.
    pub(crate) fn length(&self) -> Option<u64> {
        self.length
    }

    /// Whether the lines hold a `Date` field, so the proxy adds none.
    pub(crate) fn dated(&self) -> bool {
        self.dated
    }

    /// Whether an answer holding a field named `name` must become a map:
    /// a name the answer's rewrite acts on ([`rewrite_of`]: hop-by-hop,
    /// locations, cookies; the framing fields and a plain `Connection`,
    /// which the upstream client takes out itself, never reach this), or
    /// the correlation id, which `Proxy::handle` replaces with the proxy's.
    pub(crate) fn is_acted_on(name: &HeaderName) -> bool {
        rewrite_of(name).is_some() || *name == X_CORRELATION_ID
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_the_answer_steps_act_on_rule_verbatim_out_and_others_do_not() {
        for acted in [
            "location",
            "content-location",
            "set-cookie",
            "x-correlation-id",
            "connection",
            "upgrade",
            "proxy-authenticate",
            "trailer",
            "te",
        ] {
            let name = HeaderName::from_static(acted);
            assert!(Verbatim::is_acted_on(&name), "{acted}");
        }
        for passed in [
            "content-type",
            "content-length",
            "date",
            "etag",
            "server",
            "cache-control",
            "x-app",
        ] {
            let name = HeaderName::from_static(passed);
            assert!(!Verbatim::is_acted_on(&name), "{passed}");
        }
    }
}
