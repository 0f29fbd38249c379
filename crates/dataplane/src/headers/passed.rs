//! A client's request fields that no step reads, passed to the upstream as
//! they came rather than through the request's map.
//!
//! A browser's request carries fifteen or so fields (`User-Agent`, the
//! `Accept*` and `Sec-Fetch-*` families, the `Sec-CH-UA` hints, `Referer`,
//! `Priority`), and the proxy's steps read a handful of others (`Host`,
//! `Cookie`, `Authorization`, `Origin`, the hop-by-hop, forwarding and
//! identity names). Of the first, `Accept` and `Sec-Fetch-Mode` are only
//! asked whether the client wants HTML errors, which the server notes as
//! it passes them ([`Passed::asks_html`], taken into the header scan).
//! Put into the map, each field cost a check of its value's bytes again
//! (httparse has checked them), a hashed append, a place in the header
//! scan, a reference count to drop when the map is cleared for reuse, and
//! a copy into the upstream head field by field: about 750 instructions a
//! field beside httparse's own 280 (docs/performance.md, fifteenth
//! session). Passed on, such a field is a range of the client's head,
//! copied into the upstream head with its neighbours in one piece.
//!
//! The HTTP/1.1 server decides as it reads the head, from the names it
//! looks at anyway: a field whose name is [`is_passed`] goes here, any
//! other into the map. The lines ride in the request's body
//! ([`crate::server::ClientBody::take_passed`]) to the forwarding step,
//! which writes them after the map's fields. A request handed anywhere
//! else, the API and the forward-auth check, gets them put back into its
//! map first ([`Passed::merge_into`]), as does a protocol switch, which
//! hyper's client sends from a map.
//!
//! A step that comes to read a request field named in [`is_passed`] must
//! take the name off that list.

use std::ops::Range;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Runs of adjacent lines kept at most: a field that would start another
/// goes into the map instead. A browser's fields interleave with the ones
/// the steps read in four runs or so.
const RUNS: usize = 8;

/// The passed field lines of one request head: runs of whole lines, each
/// `name: value\r\n` as the client sent it (names keep their case, fields
/// their order), in a slice of the head shared with the map's values.
#[derive(Debug, Default)]
pub struct Passed {
    head: Bytes,
    runs: [(u32, u32); RUNS],
    len: u8,
    /// The fields' size as the header limit counts it
    /// ([`crate::headers::Scan::bytes`]).
    bytes: u32,
    /// One of them asks for HTML ([`crate::error::asks_html`]).
    html: bool,
}

impl Passed {
    /// Takes the line `line` of the head being read (its field `counted`
    /// bytes as the header limit counts them, and `html` whether it asks
    /// for HTML) when it continues the last run or a new run has room;
    /// `false` leaves the field to the map.
    pub(crate) fn take(&mut self, line: Range<usize>, counted: usize, html: bool) -> bool {
        let (Ok(start), Ok(end), Ok(counted)) = (
            u32::try_from(line.start),
            u32::try_from(line.end),
            u32::try_from(counted),
        ) else {
            return false;
        };
        let n = usize::from(self.len);
        match n.checked_sub(1).map(|last| &mut self.runs[last]) {
            Some(run) if run.1 == start => run.1 = end,
            _ if n < RUNS => {
                self.runs[n] = (start, end);
                self.len += 1;
            }
            _ => return false,
        }
        self.bytes += counted;
        self.html |= html;
        true
    }

    /// Binds the lines taken to the head they were read from, once it is
    /// split off the read buffer.
    pub(crate) fn seal(&mut self, head: &Bytes) {
        if self.len > 0 {
            self.head = head.clone();
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The fields' size as the header limit counts it: name, value and
    /// four bytes for `": "` and the line end.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes as usize
    }

    /// Whether a passed field asks for HTML: `Accept` or `Sec-Fetch-Mode`
    /// as [`crate::error::asks_html`] reads them.
    #[must_use]
    pub fn asks_html(&self) -> bool {
        self.html
    }

    /// The runs of lines, to be written as they are.
    pub(crate) fn runs(&self) -> impl Iterator<Item = &[u8]> {
        self.runs[..usize::from(self.len)]
            .iter()
            .map(|&(start, end)| &self.head[start as usize..end as usize])
    }

    /// Puts the fields into `headers`, for a request that travels as a
    /// map ([`merge_lines`]).
    pub fn merge_into(self, headers: &mut HeaderMap) {
        for run in self.runs() {
            merge_lines(run, headers);
        }
    }
}

/// Appends the fields of whole `name: value` lines (each ended by CRLF)
/// to `headers`. The lines are the proxy's own or were checked as the head
/// was read; a line that does not parse (none can) is left out rather
/// than passed unchecked.
pub(crate) fn merge_lines(text: &[u8], headers: &mut HeaderMap) {
    for line in text.split_inclusive(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
}

/// Whether a request field named `name` is passed on as it came: a name no
/// step reads (but for `Accept` and `Sec-Fetch-Mode`, read as they pass),
/// on the request of a browser or of a common client. The list is closed:
/// a name outside it goes into the map, so a new step that reads an
/// unlisted name finds it there.
#[must_use]
pub fn is_passed(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "user-agent"
            | "accept"
            | "accept-encoding"
            | "accept-language"
            | "referer"
            | "cache-control"
            | "pragma"
            | "content-type"
            | "if-none-match"
            | "if-modified-since"
            | "if-match"
            | "if-unmodified-since"
            | "if-range"
            | "range"
            | "dnt"
            | "upgrade-insecure-requests"
            | "sec-fetch-site"
            | "sec-fetch-mode"
            | "sec-fetch-dest"
            | "sec-fetch-user"
            | "sec-ch-ua"
            | "sec-ch-ua-mobile"
            | "sec-ch-ua-platform"
            | "priority"
            | "x-requested-with"
    )
}

#[cfg(test)]
mod tests;
