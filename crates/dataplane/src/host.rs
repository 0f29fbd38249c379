//! The request's authority: where it comes from (RFC 9112 §3.2: the
//! absolute-form target or HTTP/2 `:authority` wins over `Host`) and how it
//! splits into a lower-case host name and a port.

use std::borrow::Cow;

use http::uri::Authority;
use http::{header, HeaderValue, Request};

/// `(host, port)` of an authority such as `a.example.com:8080` or `[::1]:80`,
/// the host lower-case without trailing dots: borrowed when it already is
/// (as browsers send it), copied otherwise. `None` for something that is
/// not an authority.
#[must_use]
pub fn split_authority(auth: &str) -> Option<(Cow<'_, str>, Option<u16>)> {
    if auth.is_empty() || auth.len() > 255 {
        return None;
    }
    // One pass over the bytes for all the checks below (a `char` pattern
    // decodes UTF-8 as it goes, and this runs on every request): refused
    // bytes, the last colon, upper case.
    let (mut last_colon, mut upper) = (None, false);
    for (i, b) in auth.bytes().enumerate() {
        match b {
            b'/' | b'@' | b' ' | b'\\' => return None,
            b':' => last_colon = Some(i),
            b'A'..=b'Z' => upper = true,
            _ => {}
        }
    }
    let (host, port) = if let Some(rest) = auth.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        // `[` + h + `]`, the bracketed part of `auth` itself.
        (&auth[..h.len() + 2], port)
    } else {
        match last_colon {
            Some(i) => (&auth[..i], Some(&auth[i + 1..])),
            None => (auth, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    let host = host.trim_end_matches('.');
    if host.is_empty() {
        return None;
    }
    // Upper case in the port part fails its parse above: any left is the
    // host's.
    let host = if upper {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    Some((host, port))
}

/// The port of an authority that [`split_authority`] accepted, without
/// building the host name.
#[must_use]
pub fn port_of(auth: &str) -> Option<u16> {
    let tail = match auth.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.1.strip_prefix(':')?,
        // The port is a few bytes at the end: a search from there, not a
        // `char` pattern's general one.
        None => &auth[auth.bytes().rposition(|b| b == b':')? + 1..],
    };
    tail.parse().ok()
}

/// The authority the client addressed, as sent. It shares the request's
/// bytes (a `Host` value or the target's authority), so keeping it for the
/// access log after the request has moved on copies nothing.
#[derive(Debug, Clone)]
pub enum Addressed {
    /// The `Host` header, checked to be visible ASCII.
    Host(HeaderValue),
    /// The absolute-form target's or HTTP/2 `:authority`.
    Target(Authority),
}

impl Addressed {
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            // Checked when made; `to_str` only scans it again.
            Self::Host(v) => v.to_str().unwrap_or_default(),
            Self::Target(a) => a.as_str(),
        }
    }
}

/// The authority string the client addressed, as sent.
#[must_use]
pub fn authority<B>(req: &Request<B>) -> Option<Addressed> {
    // Only the absolute form (scheme present; always so for HTTP/2) names
    // the authority; a bare `x` target is authority-form, valid only for
    // CONNECT, and must not steer routing.
    if let (Some(_), Some(a)) = (req.uri().scheme(), req.uri().authority()) {
        return Some(Addressed::Target(a.clone()));
    }
    req.headers()
        .get(header::HOST)
        .filter(|h| h.to_str().is_ok())
        .map(|h| Addressed::Host(h.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, Option<(&str, Option<u16>)>)] = &[
            ("Apps.Example.com", Some(("apps.example.com", None))),
            ("apps.example.com.", Some(("apps.example.com", None))),
            ("a.localhost:8080", Some(("a.localhost", Some(8080)))),
            ("[::1]:80", Some(("[::1]", Some(80)))),
            ("[::1]", Some(("[::1]", None))),
            ("[::FFFF:a]:8", Some(("[::ffff:a]", Some(8)))),
            ("A.b..:81", Some(("a.b", Some(81)))),
            ("...", None),
            ("a:b", None),
            ("a:99999", None),
            ("", None),
            ("u@host", None),
            ("a/b", None),
            ("a b", None),
            ("a\\b:80", None),
            (":80", None),
            ("a:", None),
            ("a:8O", None),
            ("[::1]x", None),
            ("[::1", None),
            ("ok.example:443", Some(("ok.example", Some(443)))),
        ];
        for (input, want) in cases {
            let got = split_authority(input);
            if let Some((_, port)) = got {
                assert_eq!(port_of(input), port, "{input}");
            }
            assert_eq!(got, want.map(|(h, p)| (Cow::Borrowed(h), p)), "{input}");
        }
        // Already lower-case without trailing dots: the input's own bytes.
        for input in ["a.localhost:8080", "[::1]:80", "apps.example.com"] {
            match split_authority(input) {
                Some((Cow::Borrowed(h), _)) => assert_eq!(h.as_ptr(), input.as_ptr(), "{input}"),
                other => panic!("{input}: not borrowed: {other:?}"),
            }
        }
        for input in ["Apps.Example.com", "A.b..:81"] {
            assert!(
                matches!(split_authority(input), Some((Cow::Owned(_), _))),
                "{input}: lower-casing needs a copy"
            );
        }
    }

    #[test]
    fn absolute_form_wins_over_host_header() {
        let req = Request::builder()
            .uri("http://a.example.com/x")
            .header("host", "b.example.com")
            .body(())
            .expect("req");
        assert_eq!(
            authority(&req).as_ref().map(Addressed::as_str),
            Some("a.example.com")
        );
        let req = Request::builder()
            .uri("/x")
            .header("host", "b.example.com")
            .body(())
            .expect("req");
        assert_eq!(
            authority(&req).as_ref().map(Addressed::as_str),
            Some("b.example.com")
        );
        let mut req = req;
        req.headers_mut().insert(
            header::HOST,
            HeaderValue::from_bytes(b"b\xffexample.com").expect("opaque value"),
        );
        assert!(
            authority(&req).is_none(),
            "a Host that is not text names nothing"
        );
    }
}
