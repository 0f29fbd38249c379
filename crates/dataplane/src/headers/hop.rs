//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection and
//! must not be forwarded, and neither may any header the `Connection` field
//! names. An upgrade keeps `Connection: upgrade` and `Upgrade` so the next
//! hop can switch protocols (RFC 9110 §7.8).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Fixed hop-by-hop names, plus `Proxy-Connection` which old clients send.
const HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers. With `keep_upgrade`, an `Upgrade` header is
/// kept and `Connection: upgrade` restored, for a protocol switch.
pub fn strip(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = if headers.contains_key(header::CONNECTION) {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect()
    } else {
        Vec::new()
    };
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
    fn upgrade_detection_needs_both_headers() {
        assert!(is_upgrade(&map(&[
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade")
        ])));
        assert!(!is_upgrade(&map(&[("upgrade", "websocket")])));
        assert!(!is_upgrade(&map(&[("connection", "upgrade")])));
    }
}
