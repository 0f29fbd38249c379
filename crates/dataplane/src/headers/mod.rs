//! Header operations on the forwarding path, one concern a module.

pub mod forwarded;
pub mod hop;
pub mod identity;
pub mod passed;
pub(crate) mod spare;
pub(crate) mod verbatim;

use std::sync::LazyLock;

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

    /// Puts a set of fields kept for reuse; a sink that writes heads takes
    /// them as the lines they were rendered to once.
    fn put_lines(&mut self, lines: &Lines) {
        lines.put_each(self);
    }
}

/// Fields the proxy adds again and again (a session's identity headers),
/// with the `name: value\r\n` lines they are written as, rendered once: a
/// head takes them in one copy where each field cost a push, two
/// reference counts, a copy field by field and a drop (about 190
/// instructions a field, docs/performance.md, fifteenth session).
#[derive(Debug, Clone, Default)]
pub struct Lines {
    fields: Vec<(HeaderName, HeaderValue)>,
    text: Bytes,
}

impl Lines {
    #[must_use]
    pub fn new(fields: Vec<(HeaderName, HeaderValue)>) -> Self {
        let mut text = Vec::new();
        for (name, value) in &fields {
            crate::codec::push_field(&mut text, name, value);
        }
        Self {
            fields,
            text: Bytes::from(text),
        }
    }

    /// The fields as written in a head.
    #[must_use]
    pub fn text(&self) -> &Bytes {
        &self.text
    }

    /// Puts the fields into `sink` one by one.
    fn put_each<S: Sink + ?Sized>(&self, sink: &mut S) {
        for (name, value) in &self.fields {
            sink.put(name.clone(), value.clone());
        }
    }
}

impl Sink for HeaderMap {
    fn put(&mut self, name: HeaderName, value: HeaderValue) {
        self.insert(name, value);
    }
}

/// The headers the proxy adds to an upstream request, kept beside the
/// client's map and written after its fields on the wire. A dozen inserts
/// into the map cost a hash and a probe each, about 6% of an
/// authenticated request; a push costs next to nothing. The client's
/// passed fields ([`passed`]) travel here too, to be written with them.
#[derive(Debug, Default)]
pub struct Added {
    fields: spare::Fields,
    passed: passed::Passed,
    /// Rendered lines put in one piece ([`Sink::put_lines`]); a second set
    /// goes into `fields` one by one.
    lines: Option<Bytes>,
}

impl Added {
    /// Room for what an authenticated request gets (a list kept from an
    /// earlier request when there is one, see [`spare::fields`]).
    #[must_use]
    pub fn new() -> Self {
        Self {
            fields: spare::fields(),
            passed: passed::Passed::default(),
            lines: None,
        }
    }

    /// Carries the client's passed fields to the upstream head.
    pub fn pass(&mut self, passed: passed::Passed) {
        self.passed = passed;
    }

    /// Gives the list back once its fields are written into a head.
    pub(crate) fn recycle(self) {
        spare::recycle_fields(self.fields);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.fields.iter().map(|(n, v)| (n, v))
    }

    /// The client's passed field lines, in runs, to be written as they are.
    pub(crate) fn passed_runs(&self) -> impl Iterator<Item = &[u8]> {
        self.passed.runs()
    }

    /// The rendered lines put, to be written as they are.
    pub(crate) fn lines(&self) -> &[u8] {
        self.lines.as_deref().unwrap_or_default()
    }

    /// Moves the headers into `headers`, for a request that travels as a
    /// map (a protocol switch, on hyper's client).
    pub fn merge_into(self, headers: &mut HeaderMap) {
        self.passed.merge_into(headers);
        if let Some(lines) = &self.lines {
            passed::merge_lines(lines, headers);
        }
        for (name, value) in self.fields {
            headers.insert(name, value);
        }
    }
}

impl Sink for Added {
    fn put(&mut self, name: HeaderName, value: HeaderValue) {
        self.fields.push((name, value));
    }

    fn put_lines(&mut self, lines: &Lines) {
        if self.lines.is_some() {
            lines.put_each(self);
        } else {
            self.lines = Some(lines.text().clone());
        }
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

/// Which of the names the forwarding path acts on a client's head holds,
/// found in one pass over its names ([`Scan`]). Each step that removes or
/// reads such names runs only when its flag is set: most requests hold
/// none of them, and each step's own pass (a hashed lookup, or a walk over
/// every name) was paid on every request.
///
/// A flag set means "may hold": a name removed since the scan leaves its
/// flag set, and the step then finds nothing, as it would have. Nothing may
/// put a flagged name into the map between the scan and the step that
/// reads the flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Present(u8);

impl Present {
    /// `Connection`, `Upgrade` or a fixed hop-by-hop name ([`hop::strip`]).
    pub const HOP: Self = Self(1);
    /// A name the client could claim forwarding facts under
    /// ([`forwarded::set`]).
    pub const FORWARDED: Self = Self(1 << 1);
    /// The correlation id's name, which the proxy's id replaces.
    pub const CORRELATION: Self = Self(1 << 2);
    /// A client-sent identity name ([`identity::strip_client_identity`]).
    pub const IDENTITY: Self = Self(1 << 3);
    pub const AUTHORIZATION: Self = Self(1 << 4);
    pub const COOKIE: Self = Self(1 << 5);
    pub const CONTENT_LENGTH: Self = Self(1 << 6);
    /// Every flag: for a head no scan was made of.
    pub const ALL: Self = Self(u8::MAX);

    /// The flags of one name (none for most).
    #[must_use]
    pub fn of_name(name: &HeaderName) -> Self {
        // The standard names most requests carry are compared as such and
        // are in no other list; the lists are asked of the rest.
        if *name == http::header::COOKIE {
            return Self::COOKIE;
        }
        if *name == http::header::AUTHORIZATION {
            return Self::AUTHORIZATION;
        }
        if *name == http::header::CONTENT_LENGTH {
            return Self::CONTENT_LENGTH;
        }
        // Most of a browser's fields (`accept*`, `sec-fetch-*`, `sec-ch-*`,
        // `host`) start with a byte no listed name does.
        let first = name.as_str().as_bytes().first();
        if !first.is_some_and(|b| ACTED_ON_FIRST[usize::from(*b)]) {
            return Self::default();
        }
        let flag = |on: bool, flag: Self| if on { flag.0 } else { 0 };
        Self(
            flag(hop::is_hop(name), Self::HOP)
                | flag(forwarded::is_client_forwarded(name), Self::FORWARDED)
                | flag(*name == X_CORRELATION_ID, Self::CORRELATION)
                | flag(identity::is_client_identity(name), Self::IDENTITY),
        )
    }

    /// Whether every name in `headers` that a step acts on has its flag
    /// here: the rule the steps rely on, asserted where they run in debug
    /// builds (a step added between the scan and them that puts such a
    /// name into the map would break it).
    #[must_use]
    pub fn covers(self, headers: &HeaderMap) -> bool {
        headers.keys().all(|name| {
            let needed = Self::of_name(name).0;
            self.0 & needed == needed
        })
    }

    /// Whether any of `flags` is set.
    #[must_use]
    pub fn has(self, flags: Self) -> bool {
        self.0 & flags.0 != 0
    }
}

impl std::ops::BitOr for Present {
    type Output = Self;
    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// The first bytes of the names [`Present::of_name`] looks up in the
/// steps' lists, made from the lists themselves (and the `x-` of
/// `x-platform-proxy-`), so a name added to a list is never filtered out.
static ACTED_ON_FIRST: LazyLock<[bool; 256]> = LazyLock::new(|| {
    let mut first = [false; 256];
    let (hop, forwarded) = (hop::HOP, forwarded::CLIENT_FORWARDED);
    let others = [http::header::UPGRADE, X_CORRELATION_ID];
    let names = hop
        .iter()
        .chain(&forwarded)
        .chain(&others)
        .map(HeaderName::as_str)
        .chain(identity::CLIENT_IDENTITY.iter().copied())
        .chain(["x-platform-proxy-"]);
    for name in names {
        if let Some(&b) = name.as_bytes().first() {
            first[usize::from(b)] = true;
        }
    }
    first
});

/// What one pass over a client's head finds, before any step runs: its
/// size against the header limit, whether the client is a browser
/// navigating (errors are answered in HTML), and the names the forwarding
/// steps act on ([`Present`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Scan {
    /// Bytes of the fields as the limit counts them: name, value and four
    /// for `": "` and the line end.
    pub bytes: usize,
    pub html: bool,
    pub present: Present,
}

impl Scan {
    #[must_use]
    pub fn of(headers: &HeaderMap) -> Self {
        let mut scan = Self::default();
        for (name, value) in headers {
            scan.bytes += name.as_str().len() + value.len() + 4;
            scan.html = scan.html || crate::error::asks_html(name, value.as_bytes());
            scan.present = scan.present | Present::of_name(name);
        }
        scan
    }

    /// Takes in the client's passed fields ([`passed`]), which hold no
    /// name a step acts on: their size, and whether they ask for HTML.
    pub fn add_passed(&mut self, passed: &passed::Passed) {
        self.bytes += passed.bytes();
        self.html |= passed.asks_html();
    }
}

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

    /// Every name a guarded step acts on, with the flag that lets the step
    /// run: a name missing its flag would pass to the upstream unremoved.
    const ACTED_ON: &[(&str, Present)] = &[
        ("connection", Present::HOP),
        ("upgrade", Present::HOP),
        ("keep-alive", Present::HOP),
        ("proxy-connection", Present::HOP),
        ("proxy-authenticate", Present::HOP),
        ("proxy-authorization", Present::HOP),
        ("te", Present::HOP),
        ("trailer", Present::HOP),
        ("transfer-encoding", Present::HOP),
        ("x-forwarded-for", Present::FORWARDED),
        ("x-forwarded-host", Present::FORWARDED),
        ("x-forwarded-proto", Present::FORWARDED),
        ("x-forwarded-prefix", Present::FORWARDED),
        ("x-forwarded-port", Present::FORWARDED),
        ("forwarded", Present::FORWARDED),
        ("x-real-ip", Present::FORWARDED),
        ("x-correlation-id", Present::CORRELATION),
        ("x-forwarded-user", Present::IDENTITY),
        ("x-forwarded-groups", Present::IDENTITY),
        ("x-auth-request-email", Present::IDENTITY),
        ("x-user-id", Present::IDENTITY),
        ("x-remote-user", Present::IDENTITY),
        ("remote-user", Present::IDENTITY),
        ("x-platform-proxy-assertion", Present::IDENTITY),
        ("x-platform-proxy-anything", Present::IDENTITY),
        ("authorization", Present::AUTHORIZATION),
        ("cookie", Present::COOKIE),
        ("content-length", Present::CONTENT_LENGTH),
    ];

    #[test]
    fn every_name_a_step_acts_on_sets_its_flag_alone_in_a_head() {
        for (name, flag) in ACTED_ON {
            let mut h = HeaderMap::new();
            h.insert(HeaderName::from_static(name), HeaderValue::from_static("v"));
            let scan = Scan::of(&h);
            assert!(scan.present.has(*flag), "{name} does not set {flag:?}");
            assert_eq!(
                scan.present, *flag,
                "{name} sets flags of steps that never act on it"
            );
        }
    }

    #[test]
    fn the_predicates_the_steps_use_agree_with_the_flags() {
        for (name, flag) in ACTED_ON {
            let name = HeaderName::from_static(name);
            assert_eq!(hop::is_hop(&name), *flag == Present::HOP, "{name}");
            assert_eq!(
                forwarded::is_client_forwarded(&name),
                *flag == Present::FORWARDED,
                "{name}"
            );
            assert_eq!(
                identity::is_client_identity(&name),
                *flag == Present::IDENTITY,
                "{name}"
            );
        }
    }

    #[test]
    fn an_ordinary_head_holds_nothing_to_act_on() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("host", "a.apps.test"),
            ("user-agent", "curl/8"),
            ("accept", "*/*"),
            ("accept-encoding", "gzip"),
            ("x-requested-with", "XMLHttpRequest"),
            ("x-forwarded", "not a forwarding name"),
            ("sec-fetch-mode", "cors"),
        ] {
            h.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let scan = Scan::of(&h);
        assert_eq!(scan.present, Present::default());
        assert!(!scan.html, "neither navigating nor asking for HTML");
        // Name, value and four bytes a field: 19 + 20 + 13 + 23 + 34 + 36 + 22.
        assert_eq!(scan.bytes, 167);
    }

    #[test]
    fn a_scan_covers_its_head_and_not_a_name_put_in_after_it() {
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, HeaderValue::from_static("a=1"));
        h.insert(http::header::USER_AGENT, HeaderValue::from_static("t"));
        let present = Scan::of(&h).present;
        assert!(present.covers(&h));
        h.insert(
            HeaderName::from_static("x-forwarded-user"),
            HeaderValue::from_static("admin"),
        );
        assert!(!present.covers(&h), "a name its step would skip");
        assert!(Present::ALL.covers(&h));
    }

    #[test]
    fn a_browser_navigating_is_found_by_either_field() {
        for (name, value, html) in [
            ("sec-fetch-mode", "navigate", true),
            ("sec-fetch-mode", "no-cors", false),
            ("accept", "text/html,application/xhtml+xml;q=0.9", true),
            ("accept", "application/json", false),
            (
                "accept",
                "application/xhtml+xml, text/html;q=0.9, */*",
                true,
            ),
            ("accept", "*/*", false),
            // The value alone is not enough: it must be Sec-Fetch-Mode's.
            ("x-fetch-mode", "navigate", false),
            ("sec-fetch-dest", "document", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
            assert_eq!(Scan::of(&h).html, html, "{name}: {value}");
        }
    }

    #[test]
    fn an_id_that_is_no_header_value_gives_none() {
        assert!(correlation_value(&CorrelationId::from("bad\nid")).is_none());
    }
}
