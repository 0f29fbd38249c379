//! What the upstream learns about the user, and what it must never see.
//!
//! Nothing the browser claims is trusted (DESIGN.md "Security model"): every
//! identity header a client could send is dropped before the proxy sets its
//! own. The browser's `Authorization` and the proxy's own session cookies
//! never reach the upstream; the route's auth-bridge header is injected in
//! their place.

use std::sync::{LazyLock, OnceLock};

use memchr::memmem;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use pp_identity::session::COOKIE_PREFIX;
use pp_model::table::CompiledRoute;
use pp_model::Principal;

use super::{Lines, Sink};

pub const X_FORWARDED_USER: HeaderName = HeaderName::from_static("x-forwarded-user");
pub const X_FORWARDED_EMAIL: HeaderName = HeaderName::from_static("x-forwarded-email");
pub const X_FORWARDED_ORG: HeaderName = HeaderName::from_static("x-forwarded-org");
pub const X_FORWARDED_PROJECT: HeaderName = HeaderName::from_static("x-forwarded-project");
pub const X_FORWARDED_ROLES: HeaderName = HeaderName::from_static("x-forwarded-roles");
/// The proxy-signed identity JWT (verifiable with the proxy's JWKS).
pub const X_ASSERTION: HeaderName = HeaderName::from_static("x-platform-proxy-assertion");

/// Identity headers that other gateways and apps commonly trust. A client
/// sending any of them is ignored, whatever the proxy sets afterwards.
pub(super) const CLIENT_IDENTITY: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-name",
    "x-forwarded-org",
    "x-forwarded-project",
    "x-forwarded-roles",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-access-token",
    "x-user-id",
    "x-user-email",
    "x-user-role",
    "x-user-org",
    "x-user-project",
    "x-remote-user",
    "remote-user",
];

/// Drops every client-sent identity header, and everything under the
/// proxy's own `x-platform-proxy-` namespace.
pub fn strip_client_identity(headers: &mut HeaderMap) {
    super::remove_where(headers, is_client_identity);
}

/// Whether `name` is a client-sent identity name or under the proxy's own
/// `x-platform-proxy-` namespace.
#[must_use]
pub fn is_client_identity(name: &HeaderName) -> bool {
    let name = name.as_str();
    // Every listed name starts with `x-` or is `remote-user`: most
    // headers are ruled out by their first bytes.
    (name.starts_with("x-") || name == "remote-user")
        && (name.starts_with("x-platform-proxy-") || CLIENT_IDENTITY.contains(&name))
}

/// Removes the proxy's session cookies from `Cookie`, keeping the app's
/// own. HTTP/2 may split cookies over several fields (RFC 9113 §8.2.3);
/// they are joined back into one (RFC 6265 §5.4 form) for the HTTP/1.1
/// upstream. Works on bytes: a value with non-ASCII bytes (which an app's
/// script can plant) must not shield the proxy's cookie beside it.
pub fn strip_proxy_cookies(headers: &mut HeaderMap) {
    /// Built once: `memmem::find` builds its searcher on every call.
    static OURS: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(COOKIE_PREFIX.as_bytes()));
    // Looked up once, as an entry: the fields are walked twice below, and
    // removing or replacing them through it needs no second lookup.
    let header::Entry::Occupied(mut entry) = headers.entry(header::COOKIE) else {
        return;
    };
    let mut fields = entry.iter();
    let Some(first) = fields.next() else {
        return;
    };
    // The common case: one field that holds none of ours stays as it is.
    let split = fields.next().is_some();
    if !split && OURS.find(first.as_bytes()).is_none() {
        return;
    }
    let mut kept: Vec<u8> = Vec::new();
    let mut dropped = false;
    for v in entry.iter() {
        for pair in cookie_pairs(v.as_bytes()) {
            if pair.starts_with(COOKIE_PREFIX.as_bytes()) {
                dropped = true;
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
    }
    if !dropped && !split {
        return;
    }
    // The app's own cookies replace the field's values in place; with none
    // left (or none that makes a value) the field goes.
    match HeaderValue::from_bytes(&kept) {
        Ok(v) if !kept.is_empty() => {
            entry.insert(v);
        }
        _ => {
            entry.remove_entry_mult();
        }
    }
}

/// The `name=value` pairs of one `Cookie` field, trimmed, empty ones
/// skipped. Splits with `memchr`: a session cookie is a few hundred bytes,
/// and a byte-by-byte split of it was a tenth of an authenticated request.
fn cookie_pairs(field: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(field);
    std::iter::from_fn(move || loop {
        let r = rest?;
        let (pair, after) = match memchr::memchr(b';', r) {
            Some(i) => (&r[..i], Some(&r[i + 1..])),
            None => (r, None),
        };
        rest = after;
        let pair = pair.trim_ascii();
        if !pair.is_empty() {
            return Some(pair);
        }
    })
}

/// The values of every `name=value` cookie called `name`, in the order the
/// browser sent them (most specific Path first, RFC 6265 §5.4). Pairs are
/// split on bytes, so a neighbour with non-ASCII bytes hides nothing. The
/// values are bytes: whoever reads one as text checks it (the opened
/// sessions' cache only for a value it has not seen before).
pub fn cookies_named<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| cookie_pairs(v.as_bytes()))
        .filter_map(move |pair| pair.strip_prefix(name.as_bytes())?.strip_prefix(b"="))
}

/// The identity header values of one principal on one route, built on
/// first use and kept beside an opened session cookie: a cookie is sealed
/// for one route and its principal never changes, so building five header
/// values (an allocation and a copy each, and the role list) on every
/// request repeated the same work.
#[derive(Debug, Default)]
pub struct IdentityValues(OnceLock<Values>);

#[derive(Debug)]
struct Values {
    /// The route scope the values were built for. A route moved to another
    /// org or project since has its values built afresh on each request.
    org: Option<Box<str>>,
    project: Option<Box<str>>,
    fields: Lines,
}

impl IdentityValues {
    fn fields(&self, principal: &Principal, route: &CompiledRoute) -> Option<&Lines> {
        let v = self.0.get_or_init(|| Values {
            org: route.route.org_id.as_deref().map(Box::from),
            project: route.route.project_id.as_deref().map(Box::from),
            fields: Lines::new(identity_fields(principal, route)),
        });
        (v.org.as_deref() == route.route.org_id.as_deref()
            && v.project.as_deref() == route.route.project_id.as_deref())
        .then_some(&v.fields)
    }
}

/// The identity headers `principal` gets on `route`.
fn identity_fields(principal: &Principal, route: &CompiledRoute) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(5);
    let mut set = |name: HeaderName, v: &str| {
        // A claim that is not a valid header value (control bytes) is left
        // out rather than mangled: the upstream sees no header, not a lie.
        match HeaderValue::from_str(v) {
            Ok(v) => out.push((name, v)),
            Err(_) => {
                tracing::warn!(header = %name, "identity value is not a valid header value; not sent")
            }
        }
    };
    set(X_FORWARDED_USER, &principal.id);
    if let Some(email) = &principal.email {
        set(X_FORWARDED_EMAIL, email);
    }
    if let Some(org) = &route.route.org_id {
        set(X_FORWARDED_ORG, org);
    }
    if let Some(project) = &route.route.project_id {
        set(X_FORWARDED_PROJECT, project);
    }
    let roles = principal.role_header(route.route.org_id.as_deref(), false);
    if !roles.is_empty() {
        set(X_FORWARDED_ROLES, &roles);
    }
    out
}

/// Sets the identity headers for an authorized caller on `route`: from
/// `kept` when the caller's session keeps them, else built now.
pub fn set_identity(
    headers: &mut impl Sink,
    principal: &Principal,
    route: &CompiledRoute,
    kept: Option<&IdentityValues>,
    assertion: Option<&str>,
) {
    match kept.and_then(|k| k.fields(principal, route)) {
        Some(lines) => headers.put_lines(lines),
        None => {
            for (name, value) in identity_fields(principal, route) {
                headers.put(name, value);
            }
        }
    }
    if let Some(a) = assertion {
        match HeaderValue::from_str(a) {
            Ok(v) => headers.put(X_ASSERTION, v),
            Err(_) => tracing::warn!("identity assertion is not a valid header value; not sent"),
        }
    }
}

/// Injects the route's auth-bridge header (seed 000 "App Auth Bridge") into
/// `added`, dropping whatever the client sent under that name.
pub fn set_bridge(headers: &mut HeaderMap, added: &mut impl Sink, route: &CompiledRoute) {
    let Some(bridge) = &route.bridge else {
        return;
    };
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(bridge.name.as_bytes()),
        HeaderValue::from_str(&bridge.value),
    ) {
        let mut value = value;
        value.set_sensitive(true);
        headers.remove(&name);
        added.put(name, value);
    }
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

    #[test]
    fn proxy_cookies_are_removed_and_app_cookies_kept() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["a=1; pp_s_0123456789ab=x; b=2"], Some("a=1; b=2")),
            (&["pp_s_0123456789ab=x"], None),
            (&["a=1"], Some("a=1")),
            // h2 split cookies are joined, ours dropped.
            (&["a=1", "pp_s_aaaaaaaaaaaa=y", "b=2"], Some("a=1; b=2")),
            (&["a=1", "b=2"], Some("a=1; b=2")),
        ];
        for (input, want) in cases {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
            for v in *input {
                h.append(header::COOKIE, HeaderValue::from_str(v).expect("v"));
            }
            h.insert(header::USER_AGENT, HeaderValue::from_static("t"));
            strip_proxy_cookies(&mut h);
            let got = h.get(header::COOKIE).map(|v| v.to_str().expect("ascii"));
            assert_eq!(got, *want, "{input:?}");
            assert!(h.get_all(header::COOKIE).iter().count() <= 1);
            // The fields beside it are untouched.
            assert_eq!(h[header::ACCEPT], "*/*");
            assert_eq!(h[header::USER_AGENT], "t");
            assert_eq!(h.len(), 2 + usize::from(want.is_some()));
        }
    }

    #[test]
    fn every_client_identity_header_is_dropped() {
        let mut pairs: Vec<(&str, &str)> = CLIENT_IDENTITY.iter().map(|n| (*n, "evil")).collect();
        pairs.push(("x-platform-proxy-assertion", "forged"));
        pairs.push(("x-platform-proxy-anything", "forged"));
        pairs.push(("x-app-header", "kept"));
        let mut h = map(&pairs);
        strip_client_identity(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-app-header"], "kept");
    }

    #[test]
    fn non_ascii_neighbours_neither_shield_nor_hide_the_proxy_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_bytes(b"pp_s_aaaaaaaaaaaa=sealed; z=\xc3\xa9").expect("obs-text"),
        );
        let found: Vec<&[u8]> = cookies_named(&h, "pp_s_aaaaaaaaaaaa").collect();
        assert_eq!(found, vec![b"sealed"]);
        strip_proxy_cookies(&mut h);
        assert_eq!(h[header::COOKIE].as_bytes(), b"z=\xc3\xa9");
    }

    #[test]
    fn a_field_without_our_cookies_passes_unchanged_even_when_a_value_looks_like_one() {
        for field in ["app=1;;  theme=dark ", "app=pp_s_lookalike; x_pp_s_y=2"] {
            let mut h = map(&[("cookie", field)]);
            strip_proxy_cookies(&mut h);
            assert_eq!(
                h.get(header::COOKIE).map(HeaderValue::as_bytes),
                Some(field.as_bytes())
            );
        }
        let mut h = map(&[("cookie", "app=pp_s_lookalike; pp_s_abc=v;x=1")]);
        strip_proxy_cookies(&mut h);
        assert_eq!(
            h.get(header::COOKIE).map(HeaderValue::as_bytes),
            Some(&b"app=pp_s_lookalike; x=1"[..])
        );
        assert_eq!(
            cookies_named(&h, "app").collect::<Vec<_>>(),
            [b"pp_s_lookalike"]
        );
        assert_eq!(cookies_named(&h, "ap").count(), 0);
    }

    #[test]
    fn cookies_named_finds_every_copy_in_order() {
        let h = map(&[("cookie", "x=1; pp_s_a=first"), ("cookie", "pp_s_a=second")]);
        let got: Vec<&[u8]> = cookies_named(&h, "pp_s_a").collect();
        assert_eq!(got, vec![&b"first"[..], b"second"]);
    }

    #[test]
    fn the_bridge_header_replaces_a_client_copy_of_its_name() {
        let mut route = org_route("acme", "p1");
        route.bridge = Some(pp_model::table::BridgeHeader {
            name: "x-app-key".into(),
            value: "sealed-secret".into(),
        });
        let mut h = map(&[("x-app-key", "forged"), ("x-kept", "yes")]);
        let mut added = crate::headers::Added::new();
        set_bridge(&mut h, &mut added, &route);
        assert!(!h.contains_key("x-app-key"), "the client's copy is gone");
        added.merge_into(&mut h);
        let sent: Vec<_> = h.get_all("x-app-key").iter().collect();
        assert_eq!(sent, ["sealed-secret"]);
        assert!(h["x-app-key"].is_sensitive());
        assert_eq!(h["x-kept"], "yes");
    }

    fn org_route(org: &str, project: &str) -> CompiledRoute {
        let new: pp_model::NewRoute = serde_json::from_value(serde_json::json!({
            "owner_type": "app_instance", "owner_id": "a1", "endpoint_name": "web",
            "route_mode": "subdomain", "route_host": "a1",
            "upstream": {"targets": ["127.0.0.1:1"]}, "adapter": "generic",
            "org_id": org, "project_id": project,
        }))
        .expect("new route");
        let route = new
            .into_route(time::OffsetDateTime::now_utc())
            .expect("valid route");
        let id = route.id;
        let (table, _) = pp_model::RouteTable::build("apps.test", vec![route]);
        CompiledRoute::clone(table.get(id).expect("served"))
    }

    fn alice() -> Principal {
        let mut p = Principal::new(pp_model::PrincipalKind::User, "alice");
        p.email = Some("alice@example.com".into());
        p.grant(pp_model::Scope::org("acme"), pp_model::Role::Member);
        p.grant(pp_model::Scope::org("globex"), pp_model::Role::Admin);
        p
    }

    fn identity_of(h: &HeaderMap) -> Vec<(String, String)> {
        let mut v: Vec<_> = h
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().expect("ascii").to_owned()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn kept_identity_values_are_the_ones_built_fresh_and_follow_a_moved_route() {
        let (p, kept) = (alice(), IdentityValues::default());
        let acme = org_route("acme", "p1");
        let (mut fresh, mut from_kept) = (HeaderMap::new(), HeaderMap::new());
        set_identity(&mut fresh, &p, &acme, None, Some("jwt"));
        set_identity(&mut from_kept, &p, &acme, Some(&kept), Some("jwt"));
        assert!(kept.0.get().is_some(), "the values are kept on first use");
        let want = [
            ("x-forwarded-email", "alice@example.com"),
            ("x-forwarded-org", "acme"),
            ("x-forwarded-project", "p1"),
            ("x-forwarded-roles", "acme:member"),
            ("x-forwarded-user", "alice"),
            ("x-platform-proxy-assertion", "jwt"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(identity_of(&fresh), want);
        assert_eq!(identity_of(&from_kept), want);
        // Used again: the same values, replacing whatever is there.
        from_kept.insert(X_FORWARDED_USER, HeaderValue::from_static("mallory"));
        set_identity(&mut from_kept, &p, &acme, Some(&kept), Some("jwt"));
        assert_eq!(identity_of(&from_kept), want);

        // The route moved to another org: the kept values are not used.
        let mut moved = acme.clone();
        moved.route.org_id = Some("globex".into());
        let mut h = HeaderMap::new();
        set_identity(&mut h, &p, &moved, Some(&kept), None);
        let got = identity_of(&h);
        assert!(
            got.contains(&("x-forwarded-org".into(), "globex".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&("x-forwarded-roles".into(), "globex:admin".into())),
            "{got:?}"
        );
        let mut moved = acme;
        moved.route.project_id = Some("p2".into());
        let mut h = HeaderMap::new();
        set_identity(&mut h, &p, &moved, Some(&kept), None);
        assert!(identity_of(&h).contains(&("x-forwarded-project".into(), "p2".into())));
    }

    /// Into an upstream head's added fields, kept values go as the lines
    /// they were rendered to once; put back into a map (a protocol
    /// switch) they read as the fields built fresh.
    #[test]
    fn kept_identity_goes_into_a_head_as_its_rendered_lines() {
        let (p, kept) = (alice(), IdentityValues::default());
        let acme = org_route("acme", "p1");
        let mut added = crate::headers::Added::new();
        set_identity(&mut added, &p, &acme, Some(&kept), Some("jwt"));
        assert_eq!(
            added.lines(),
            b"x-forwarded-user: alice\r\nx-forwarded-email: alice@example.com\r\n\
              x-forwarded-org: acme\r\nx-forwarded-project: p1\r\n\
              x-forwarded-roles: acme:member\r\n"
        );
        let single: Vec<_> = added.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            single,
            ["x-platform-proxy-assertion"],
            "the assertion is per request"
        );
        // A second set of kept lines goes field by field.
        let other = IdentityValues::default();
        set_identity(
            &mut added,
            &p,
            &org_route("globex", "p2"),
            Some(&other),
            None,
        );
        assert_eq!(added.iter().count(), 6);
        let mut fresh = HeaderMap::new();
        set_identity(&mut fresh, &p, &acme, None, Some("jwt"));
        let mut merged = HeaderMap::new();
        let mut added = crate::headers::Added::new();
        set_identity(&mut added, &p, &acme, Some(&kept), Some("jwt"));
        added.merge_into(&mut merged);
        assert_eq!(identity_of(&merged), identity_of(&fresh));
    }

    #[test]
    fn an_identity_value_that_is_no_header_value_is_left_out() {
        let mut p = alice();
        p.email = Some("alice\n@example.com".into());
        let kept = IdentityValues::default();
        let mut h = HeaderMap::new();
        set_identity(&mut h, &p, &org_route("acme", "p1"), Some(&kept), None);
        assert!(h.get("x-forwarded-email").is_none());
        assert_eq!(
            h.get("x-forwarded-user").map(HeaderValue::as_bytes),
            Some(&b"alice"[..])
        );
    }
}
