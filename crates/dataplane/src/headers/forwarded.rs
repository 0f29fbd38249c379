//! `X-Forwarded-*` headers the upstream sees. Whatever the client sent under
//! these names (and `Forwarded`, RFC 7239) is dropped first: nothing the
//! browser claims about its address or the public URL is trusted.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::{Present, Sink};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The public facts of one request.
#[derive(Debug, Clone, Copy)]
pub struct ForwardedFacts<'a> {
    /// The client's address, as `ip_value` writes it.
    pub client_ip: &'a HeaderValue,
    /// `host[:port]` as the browser sent it.
    pub host: &'a str,
    pub proto: &'a str,
    /// Public path prefix without trailing slash (`""` on host routes).
    pub prefix: &'a str,
    /// The names the client's head was found to hold: without
    /// [`Present::FORWARDED`] there is nothing of the client's to drop.
    pub present: Present,
}

/// Every name a client could claim forwarding facts under.
pub(super) const CLIENT_FORWARDED: [HeaderName; 7] = [
    X_FORWARDED_FOR,
    X_FORWARDED_HOST,
    X_FORWARDED_PROTO,
    X_FORWARDED_PREFIX,
    X_FORWARDED_PORT,
    FORWARDED,
    X_REAL_IP,
];

/// Whether `name` is one a client could claim forwarding facts under.
#[must_use]
pub fn is_client_forwarded(name: &HeaderName) -> bool {
    CLIENT_FORWARDED.contains(name)
}

/// Replaces every forwarding header in `headers` with the proxy's own
/// view, put into `added`. `host`, when given, is `f.host` as a value
/// already made (the client's `Host`, or one shared with the upstream's
/// `Host`), reused instead of copied.
pub fn set(
    headers: &mut HeaderMap,
    added: &mut impl Sink,
    f: &ForwardedFacts<'_>,
    host: Option<HeaderValue>,
) {
    if f.present.has(Present::FORWARDED) {
        super::remove_where(headers, is_client_forwarded);
    }
    added.put(X_FORWARDED_FOR, f.client_ip.clone());
    if let Some(v) = host.or_else(|| HeaderValue::from_str(f.host).ok()) {
        added.put(X_FORWARDED_HOST, v);
    }
    let https = f.proto == "https";
    added.put(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    let port = match crate::host::port_of(f.host) {
        Some(p) => HeaderValue::from(p),
        None => HeaderValue::from_static(if https { "443" } else { "80" }),
    };
    added.put(X_FORWARDED_PORT, port);
    let prefix = if f.prefix.is_empty() {
        Some(HeaderValue::from_static("/"))
    } else {
        HeaderValue::from_str(f.prefix).ok()
    };
    if let Some(v) = prefix {
        added.put(X_FORWARDED_PREFIX, v);
    }
}

/// The client address as a header value, made once a connection
/// ([`crate::ConnInfo::new`]). IPv4, the common case, is written digit by
/// digit: `Display` for addresses goes through the formatting machinery
/// with padding support, several times slower.
pub(crate) fn ip_value(ip: IpAddr) -> HeaderValue {
    let IpAddr::V4(v4) = ip else {
        return HeaderValue::from_str(&ip.to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
    };
    let mut buf = [0u8; 15];
    let mut n = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            buf[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            buf[n] = b'0' + (octet / 10) % 10;
            n += 1;
        }
        buf[n] = b'0' + octet % 10;
        n += 1;
    }
    HeaderValue::from_bytes(&buf[..n]).unwrap_or(HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_copies_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        h.insert(X_FORWARDED_HOST, HeaderValue::from_static("evil.example"));
        h.insert(FORWARDED, HeaderValue::from_static("for=6.6.6.6"));
        h.insert(X_REAL_IP, HeaderValue::from_static("6.6.6.6"));
        h.insert(X_FORWARDED_PREFIX, HeaderValue::from_static("/admin"));
        let mut added = crate::headers::Added::new();
        set(
            &mut h,
            &mut added,
            &ForwardedFacts {
                client_ip: &ip_value("127.0.0.1".parse().expect("ip")),
                host: "apps.example.com:8443",
                proto: "https",
                prefix: "/w/a/web",
                present: Present::of_name(&X_FORWARDED_FOR),
            },
            None,
        );
        added.merge_into(&mut h);
        assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.1");
        assert_eq!(h[&X_FORWARDED_HOST], "apps.example.com:8443");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[&X_FORWARDED_PREFIX], "/w/a/web");
        assert_eq!(h[&X_FORWARDED_PORT], "8443");
        assert!(!h.contains_key(FORWARDED));
        assert!(!h.contains_key(X_REAL_IP));
    }

    #[test]
    fn host_routes_have_root_prefix_and_default_port() {
        let mut h = HeaderMap::new();
        let mut added = crate::headers::Added::new();
        set(
            &mut h,
            &mut added,
            &ForwardedFacts {
                client_ip: &ip_value("::1".parse().expect("ip")),
                host: "demo.apps.example.com",
                proto: "https",
                prefix: "",
                present: Present::ALL,
            },
            Some(HeaderValue::from_static("demo.apps.example.com")),
        );
        added.merge_into(&mut h);
        assert_eq!(h[&X_FORWARDED_PREFIX], "/");
        assert_eq!(h[&X_FORWARDED_PORT], "443");
        assert_eq!(h[&X_FORWARDED_FOR], "::1");
    }

    #[test]
    fn ipv4_is_written_as_display_writes_it() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.20.30.40",
            "99.100.101.255",
            "192.168.1.9",
            "255.255.255.255",
        ] {
            let v = ip_value(ip.parse().expect("ip"));
            assert_eq!(v.to_str().expect("ascii"), ip);
        }
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        assert_eq!(ip_value(v6).to_str().expect("ascii"), "2001:db8::1");
    }
}
