//! A request's header block as the fields of an `http::Request` (RFC 9113
//! §8.3.1), and the checks that make a request malformed (§8.1.1): a
//! malformed request is a stream error, answered with `RST_STREAM`.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, COOKIE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Uri, Version};

use crate::hpack::Field;

/// Collects one request's fields while its block is decoded.
#[derive(Debug, Default)]
pub(crate) struct Collect {
    method: Option<Method>,
    scheme: Option<Scheme>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    headers: HeaderMap,
    /// `Cookie` fields, which HTTP/2 lets a client split (§8.2.3), are
    /// joined back into one for the HTTP/1.1 upstream: the first as it
    /// came (shared, not copied), the join only once a second comes.
    cookie: Option<HeaderValue>,
    cookies_joined: Vec<u8>,
    regular_seen: bool,
    /// Why the request is malformed, once it is: the rest of the block is
    /// still decoded (the table must stay in step) but not kept.
    pub(crate) malformed: Option<&'static str>,
    /// The `Content-Length` the request declares, if any.
    pub(crate) content_length: Option<u64>,
}

fn fail(c: &mut Collect, why: &'static str) {
    if c.malformed.is_none() {
        c.malformed = Some(why);
    }
}

impl Collect {
    /// Collects into `headers`, an empty map.
    pub(crate) fn new(headers: HeaderMap) -> Self {
        Self {
            headers,
            ..Self::default()
        }
    }

    /// Takes in one decoded field.
    pub(crate) fn field(&mut self, f: Field<'_>) {
        if self.malformed.is_some() {
            return;
        }
        if let Some(pseudo) = f.name.strip_prefix(b":") {
            if self.regular_seen {
                return fail(self, "a pseudo-header after a regular field");
            }
            let slot = match pseudo {
                b"method" => {
                    if self.method.is_some() {
                        return fail(self, "a repeated :method");
                    }
                    match Method::from_bytes(f.value) {
                        Ok(m) => self.method = Some(m),
                        Err(_) => fail(self, "an invalid :method"),
                    }
                    return;
                }
                b"scheme" => {
                    if self.scheme.is_some() {
                        return fail(self, "a repeated :scheme");
                    }
                    match Scheme::try_from(f.value) {
                        Ok(s) => self.scheme = Some(s),
                        Err(_) => fail(self, "an invalid :scheme"),
                    }
                    return;
                }
                b"authority" => &mut self.authority,
                b"path" => &mut self.path,
                _ => return fail(self, "an unknown pseudo-header"),
            };
            if slot.is_some() {
                return fail(self, "a repeated pseudo-header");
            }
            *slot = Some(shared_or_copied(&f));
            return;
        }
        self.regular_seen = true;
        let (name, mut value) = match f.parsed {
            Some((n, v)) => (n.clone(), v.clone()),
            None => match regular_field(f.name, shared_or_copied(&f)) {
                Some(field) => field,
                None => return fail(self, "an invalid field name or value"),
            },
        };
        if is_connection_specific(&name, f.value) {
            return fail(self, "a connection-specific field");
        }
        if name == COOKIE {
            match &self.cookie {
                None => self.cookie = Some(value),
                Some(first) => {
                    if self.cookies_joined.is_empty() {
                        self.cookies_joined.extend_from_slice(first.as_bytes());
                    }
                    self.cookies_joined.extend_from_slice(b"; ");
                    self.cookies_joined.extend_from_slice(f.value);
                }
            }
            return;
        }
        if name == http::header::CONTENT_LENGTH {
            let parsed = std::str::from_utf8(f.value)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            match (parsed, self.content_length) {
                (Some(n), None) => self.content_length = Some(n),
                (Some(n), Some(m)) if n == m => return,
                _ => return fail(self, "an invalid or conflicting content-length"),
            }
        }
        value.set_sensitive(f.never_indexed);
        self.headers.append(name, value);
    }

    /// The request, once the block is decoded.
    ///
    /// # Errors
    /// Why the request is malformed.
    pub(crate) fn finish(mut self, end_stream: bool) -> Result<Request<()>, &'static str> {
        if let Some(why) = self.malformed {
            return Err(why);
        }
        let method = self.method.take().ok_or("no :method")?;
        if !self.cookies_joined.is_empty() {
            let v =
                HeaderValue::from_bytes(&self.cookies_joined).map_err(|_| "an invalid cookie")?;
            self.headers.append(COOKIE, v);
        } else if let Some(v) = self.cookie.take() {
            self.headers.append(COOKIE, v);
        }
        let mut parts = http::uri::Parts::default();
        if let Some(authority) = self.authority.take() {
            parts.authority =
                Some(Authority::from_maybe_shared(authority).map_err(|_| "an invalid :authority")?);
        }
        if method == Method::CONNECT {
            // A plain CONNECT names only its authority (§8.5); extended
            // CONNECT is not offered, so `:protocol` was refused above.
            if self.scheme.is_some() || self.path.is_some() {
                return Err("a CONNECT with :scheme or :path");
            }
            if parts.authority.is_none() {
                return Err("a CONNECT without :authority");
            }
        } else {
            let scheme = self.scheme.take().ok_or("no :scheme")?;
            let path = self.path.take().ok_or("no :path")?;
            if path.is_empty() {
                return Err("an empty :path");
            }
            parts.scheme = Some(scheme);
            parts.path_and_query =
                Some(PathAndQuery::from_maybe_shared(path).map_err(|_| "an invalid :path")?);
        }
        let uri = Uri::from_parts(parts).map_err(|_| "an invalid request target")?;
        if end_stream && self.content_length.is_some_and(|n| n > 0) {
            return Err("a content-length with no body");
        }
        let mut req = Request::new(());
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_2;
        *req.headers_mut() = self.headers;
        Ok(req)
    }
}

/// A regular field (not a pseudo-header) as `http` types, `None` when it
/// is not a valid one: an uppercase or invalid name (RFC 9113 §8.2.1), or
/// a value with NUL, CR or LF or whitespace at either end.
pub(crate) fn regular_field(name: &[u8], value: Bytes) -> Option<(HeaderName, HeaderValue)> {
    if name.starts_with(b":") || name.iter().any(u8::is_ascii_uppercase) || !value_is_valid(&value)
    {
        return None;
    }
    let name = HeaderName::from_bytes(name).ok()?;
    let value = HeaderValue::from_maybe_shared(value).ok()?;
    Some((name, value))
}

/// The field's value as `Bytes`: a slice of the dynamic table's entry
/// when it came from there (a reference count, no copy), else a copy.
fn shared_or_copied(f: &Field<'_>) -> Bytes {
    match f.shared {
        Some(entry) => entry.slice_ref(f.value),
        None => Bytes::copy_from_slice(f.value),
    }
}

/// Fields that describe an HTTP/1.1 connection and have no place in
/// HTTP/2 (§8.2.2); `TE` only as `trailers`.
fn is_connection_specific(name: &HeaderName, value: &[u8]) -> bool {
    use http::header::{CONNECTION, TE, TRANSFER_ENCODING, UPGRADE};
    if name == TE {
        return !value.eq_ignore_ascii_case(b"trailers");
    }
    name == CONNECTION
        || name == TRANSFER_ENCODING
        || name == UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// §8.2.1: no NUL, CR or LF, and no whitespace at either end.
fn value_is_valid(v: &[u8]) -> bool {
    let edge = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    !edge(v.first()) && !edge(v.last()) && !v.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n'))
}
