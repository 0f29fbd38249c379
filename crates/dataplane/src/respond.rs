//! Response head rewriting (pipeline step 8, headers part): hop-by-hop
//! headers dropped, `Location` / `Content-Location` / `Set-Cookie` mapped
//! onto the public origin and prefix by the rules in `pp_model::rewrite`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use pp_model::rewrite::{rewrite_location, rewrite_set_cookie, RewriteContext};
use pp_model::table::CompiledRoute;

use crate::headers::hop;

/// What [`rewrite_headers`] does to a field, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rewrite {
    /// Dropped, with what a `Connection` field names ([`hop::strip`]).
    Hop,
    /// `Location` or `Content-Location`, mapped onto the public address.
    Location,
    /// `Set-Cookie`, its `Domain` and `Path` mapped.
    Cookie,
}

/// The rewrite a field named `name` gets, if any. The upstream client asks
/// it too: an answer holding such a name is not passed on as it came
/// (`headers::verbatim`).
pub(crate) fn rewrite_of(name: &HeaderName) -> Option<Rewrite> {
    if hop::is_hop(name) {
        Some(Rewrite::Hop)
    } else if name == header::LOCATION || name == header::CONTENT_LOCATION {
        Some(Rewrite::Location)
    } else if name == header::SET_COOKIE {
        Some(Rewrite::Cookie)
    } else {
        None
    }
}

/// Rewrites the upstream's response headers in place.
pub fn rewrite_headers(
    headers: &mut HeaderMap,
    route: &CompiledRoute,
    public_scheme: &str,
    public_authority: &str,
) {
    // Most answers have none of the fields acted on here (the upstream
    // client already leaves out a plain `Connection` and the framing
    // fields): one pass over the names present costs less than the
    // hop-by-hop pass and three hashed lookups.
    let (mut hops, mut locations, mut cookies) = (false, false, false);
    for name in headers.keys() {
        match rewrite_of(name) {
            Some(Rewrite::Hop) => hops = true,
            Some(Rewrite::Location) => locations = true,
            Some(Rewrite::Cookie) => cookies = true,
            None => {}
        }
    }
    if hops {
        hop::strip(headers, false);
    }
    if !locations && !cookies {
        return;
    }
    let ctx = RewriteContext {
        public_scheme,
        public_authority,
        public_prefix: &route.public_prefix,
        upstream_prefix: &route.upstream_prefix,
        strategy: route.adapter.base_url_strategy,
        upstream_authorities: &route.upstream_authorities,
    };
    for name in [header::LOCATION, header::CONTENT_LOCATION]
        .into_iter()
        .filter(|_| locations)
    {
        let new = headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| rewrite_location(v, &ctx));
        if let Some(v) = new.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, v);
        }
    }
    if cookies {
        let cookies: Vec<HeaderValue> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| {
                // A cookie that is not text cannot be checked for its
                // Domain and Path; passing it unread could plant it on
                // every sibling app, so it is dropped.
                let Ok(s) = v.to_str() else {
                    tracing::warn!("upstream Set-Cookie with non-ASCII bytes dropped");
                    return None;
                };
                Some(
                    rewrite_set_cookie(s, &ctx)
                        .and_then(|s| HeaderValue::from_str(&s).ok())
                        .unwrap_or_else(|| v.clone()),
                )
            })
            .collect();
        headers.remove(header::SET_COOKIE);
        for c in cookies {
            headers.append(header::SET_COOKIE, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use pp_model::{NewRoute, RouteTable};

    use super::*;

    fn path_route() -> RouteTable {
        let new: NewRoute = serde_json::from_value(serde_json::json!({
            "owner_type": "app_instance", "owner_id": "a1", "endpoint_name": "web",
            "route_mode": "path_prefix", "upstream": {"targets": ["127.0.0.1:1"]},
        }))
        .expect("route");
        let route = new
            .into_route(time::OffsetDateTime::now_utc())
            .expect("valid");
        RouteTable::build("apps.test", vec![route]).0
    }

    #[test]
    fn each_hop_by_hop_field_alone_is_dropped_from_the_answer() {
        let table = path_route();
        let compiled = table.routes().next().expect("served");
        for hop in [
            "upgrade",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "te",
            "trailer",
            "transfer-encoding",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            h.insert(
                http::HeaderName::from_static(hop),
                HeaderValue::from_static("v"),
            );
            rewrite_headers(&mut h, compiled, "http", "apps.test");
            assert!(!h.contains_key(hop), "{hop} passed to the client");
            assert!(h.contains_key(header::CONTENT_TYPE));
        }
        // `Connection` naming a field: both go.
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        rewrite_headers(&mut h, compiled, "http", "apps.test");
        let names: Vec<&str> = h.keys().map(http::HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn set_cookies_lose_their_domain_and_unreadable_ones_are_dropped() {
        let table = path_route();
        let compiled = table.routes().next().expect("served");
        let mut h = HeaderMap::new();
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("a=1; Path=/; Domain=apps.test"),
        );
        // Non-ASCII bytes: its Domain cannot be read, so it cannot pass.
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_bytes(b"x=\xc3\xa9; Domain=apps.test").expect("obs-text"),
        );
        rewrite_headers(&mut h, compiled, "http", "apps.test");
        let got: Vec<&[u8]> = h
            .get_all(header::SET_COOKIE)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        assert_eq!(got, vec![b"a=1; Path=/w/a1/web/".as_slice()]);
    }
}
