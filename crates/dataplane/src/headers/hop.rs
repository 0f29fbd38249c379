//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection and
//! must not be forwarded, and neither may any header the `Connection` field
//! names. An upgrade keeps `Connection: upgrade` and `Upgrade` so the next
//! hop can switch protocols (RFC 9110 §7.8).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Fixed hop-by-hop names, plus `Proxy-Connection` which old clients send.
pub(super) const HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Whether [`strip`] acts on `name`: `Connection`, `Upgrade` or a fixed
/// hop-by-hop name. (A name `Connection` lists is hop-by-hop too, but only
/// where a `Connection` field is present.)
#[must_use]
pub fn is_hop(name: &HeaderName) -> bool {
    *name == header::UPGRADE || HOP.contains(name)
}

/// Removes hop-by-hop headers. With `keep_upgrade`, an `Upgrade` header is
/// kept and `Connection: upgrade` restored, for a protocol switch.
pub fn strip(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named = connection_named(headers);
    super::remove_where(headers, |k| {
        if *k == header::UPGRADE {
            return !keep_upgrade;
        }
        HOP.contains(k) || named.contains(k)
    });
    if keep_upgrade && headers.contains_key(header::UPGRADE) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The headers present that the `Connection` field names, besides the
/// fixed hop-by-hop ones and `Upgrade` (which [`strip`] decides on). The
/// usual values (`keep-alive`, `close`, `upgrade`) leave this empty without
/// allocating: a token is looked up by its text and becomes a name only
/// when such a header is there to remove.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut named = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim) {
            let fixed = token.eq_ignore_ascii_case(header::UPGRADE.as_str())
                || HOP.iter().any(|h| token.eq_ignore_ascii_case(h.as_str()));
            if token.is_empty() || fixed || !headers.contains_key(token) {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                named.push(name);
            }
        }
    }
    named
}

/// Whether a request asks to switch protocols (HTTP/1.1 Upgrade).
#[must_use]
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<String> {
        let mut v: Vec<String> = h.keys().map(|k| k.as_str().to_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn table() {
        let cases: &[(&[(&str, &str)], bool, &[&str])] = &[
            (
                &[
                    ("connection", "keep-alive"),
                    ("keep-alive", "timeout=5"),
                    ("x-a", "1"),
                ],
                false,
                &["x-a"],
            ),
            (
                &[
                    ("connection", "close, X-Secret"),
                    ("x-secret", "s"),
                    ("x-a", "1"),
                ],
                false,
                &["x-a"],
            ),
            (
                &[
                    ("te", "trailers"),
                    ("trailer", "x"),
                    ("transfer-encoding", "chunked"),
                ],
                false,
                &[],
            ),
            (
                &[
                    ("proxy-authorization", "Basic x"),
                    ("proxy-connection", "keep-alive"),
                ],
                false,
                &[],
            ),
            (
                &[("upgrade", "websocket"), ("connection", "Upgrade")],
                false,
                &[],
            ),
            (
                &[
                    ("upgrade", "websocket"),
                    ("connection", "keep-alive, Upgrade"),
                ],
                true,
                &["connection", "upgrade"],
            ),
            (
                &[
                    ("connection", "x-a"),
                    ("connection", "x-b"),
                    ("x-a", "1"),
                    ("x-b", "2"),
                    ("x-c", "3"),
                ],
                false,
                &["x-c"],
            ),
        ];
        for (input, keep, want) in cases {
            let mut h = map(input);
            strip(&mut h, *keep);
            assert_eq!(names(&h), *want, "{input:?}");
        }
    }

    #[test]
    fn connection_options_name_headers_whatever_their_case_or_count() {
        let cases: &[(&[(&str, &str)], &[&str])] = &[
            // `close` is an option; a field of that name still goes.
            (
                &[("connection", "close"), ("close", "x"), ("x-a", "1")],
                &["x-a"],
            ),
            // A token naming no header present removes nothing else.
            (
                &[("connection", "X-Absent, ,keep-alive"), ("x-a", "1")],
                &["x-a"],
            ),
            (
                &[("connection", "X-A"), ("X-A", "1"), ("x-b", "2")],
                &["x-b"],
            ),
        ];
        for (input, want) in cases {
            let mut h = map(input);
            strip(&mut h, false);
            assert_eq!(names(&h), *want, "{input:?}");
        }
        // More doomed names than remove_where holds on the stack.
        let listed: Vec<String> = (0..12).map(|i| format!("x-h{i}")).collect();
        let mut pairs: Vec<(&str, &str)> = listed.iter().map(|n| (n.as_str(), "v")).collect();
        let connection = listed.join(", ");
        pairs.push(("connection", &connection));
        pairs.push(("keep-alive", "timeout=5"));
        pairs.push(("x-kept", "1"));
        let mut h = map(&pairs);
        strip(&mut h, false);
        assert_eq!(names(&h), ["x-kept"]);
    }

    #[test]
    fn non_text_connection_values_name_nothing() {
        let mut h = map(&[("x-a", "1")]);
        h.append(
            header::CONNECTION,
            HeaderValue::from_bytes(b"x-a\xff").expect("opaque value"),
        );
        strip(&mut h, false);
        assert_eq!(names(&h), ["x-a"]);
    }

    #[test]
    fn no_connection_header_strips_only_the_fixed_names() {
        let mut h = map(&[("te", "trailers"), ("x-a", "1")]);
        strip(&mut h, false);
        assert_eq!(names(&h), ["x-a"]);
    }

    #[test]
    fn the_upgrade_dance_still_reads_its_own_tokens() {
        let mut h = map(&[("upgrade", "websocket"), ("connection", "Upgrade")]);
        strip(&mut h, true);
        assert_eq!(names(&h), ["connection", "upgrade"]);
        assert_eq!(
            h.get(header::CONNECTION).map(HeaderValue::as_bytes),
            Some(&b"upgrade"[..])
        );
    }

    #[test]
    fn upgrade_detection_needs_both_headers() {
        assert!(is_upgrade(&map(&[
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade")
        ])));
        assert!(!is_upgrade(&map(&[("upgrade", "websocket")])));
        assert!(!is_upgrade(&map(&[("connection", "upgrade")])));
    }
}
