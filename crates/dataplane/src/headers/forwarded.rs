//! `X-Forwarded-*` headers the upstream sees. Whatever the client sent under
//! these names (and `Forwarded`, RFC 7239) is dropped first: nothing the
//! browser claims about its address or the public URL is trusted.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};

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
    pub client_ip: IpAddr,
    /// `host[:port]` as the browser sent it.
    pub host: &'a str,
    pub proto: &'a str,
    /// Public path prefix without trailing slash (`""` on host routes).
    pub prefix: &'a str,
}

/// Replaces every forwarding header with the proxy's own view.
pub fn set(headers: &mut HeaderMap, f: &ForwardedFacts<'_>) {
    for name in [
        &X_FORWARDED_FOR,
        &X_FORWARDED_HOST,
        &X_FORWARDED_PROTO,
        &X_FORWARDED_PREFIX,
        &X_FORWARDED_PORT,
        &FORWARDED,
        &X_REAL_IP,
    ] {
        headers.remove(name);
    }
    let insert = |h: &mut HeaderMap, name: &HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(name.clone(), v);
        }
    };
    insert(headers, &X_FORWARDED_FOR, &f.client_ip.to_string());
    insert(headers, &X_FORWARDED_HOST, f.host);
    insert(headers, &X_FORWARDED_PROTO, f.proto);
    let port = crate::host::split_authority(f.host)
        .and_then(|(_, p)| p)
        .unwrap_or(if f.proto == "https" { 443 } else { 80 });
    insert(headers, &X_FORWARDED_PORT, &port.to_string());
    insert(
        headers,
        &X_FORWARDED_PREFIX,
        if f.prefix.is_empty() { "/" } else { f.prefix },
    );
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
        set(
            &mut h,
            &ForwardedFacts {
                client_ip: "127.0.0.1".parse().expect("ip"),
                host: "apps.example.com:8443",
                proto: "https",
                prefix: "/w/a/web",
            },
        );
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
        set(
            &mut h,
            &ForwardedFacts {
                client_ip: "::1".parse().expect("ip"),
                host: "demo.apps.example.com",
                proto: "https",
                prefix: "",
            },
        );
        assert_eq!(h[&X_FORWARDED_PREFIX], "/");
        assert_eq!(h[&X_FORWARDED_PORT], "443");
        assert_eq!(h[&X_FORWARDED_FOR], "::1");
    }
}
