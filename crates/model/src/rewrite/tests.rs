use super::*;

fn ctx<'a>(
    prefix: &'a str,
    upstream: &'a str,
    strategy: BaseUrlStrategy,
    own: &'a [String],
) -> RewriteContext<'a> {
    RewriteContext {
        public_scheme: "https",
        public_authority: "apps.example.com",
        public_prefix: prefix,
        upstream_prefix: upstream,
        strategy,
        upstream_authorities: own,
    }
}

fn own() -> Vec<String> {
    vec!["10.0.3.7:8888".into()]
}

#[test]
fn location_table() {
    let own = own();
    let root_app = ctx("/w/a/web", "", BaseUrlStrategy::None, &own);
    let based_app = ctx("/w/a/web", "/w/a/web", BaseUrlStrategy::PlatformPath, &own);
    let host_based = ctx("", "/w/a/web", BaseUrlStrategy::PlatformPath, &own);
    let host_root = ctx("", "", BaseUrlStrategy::None, &own);
    let cases: &[(&RewriteContext<'_>, &str, Option<&str>)] = &[
        // root-relative, app at root: prefix added
        (&root_app, "/login?next=/x", Some("/w/a/web/login?next=/x")),
        (&root_app, "/", Some("/w/a/web/")),
        // already prefixed: never doubled
        (&root_app, "/w/a/web/lab", None),
        (&based_app, "/w/a/web/lab", None),
        (&based_app, "/w/a/web", None),
        // base-path-aware app redirecting outside its base: left alone
        (&based_app, "/other", None),
        // absolute to the upstream: public origin, mapped path
        (
            &root_app,
            "http://10.0.3.7:8888/tree",
            Some("https://apps.example.com/w/a/web/tree"),
        ),
        (
            &based_app,
            "http://10.0.3.7:8888/w/a/web/lab",
            Some("https://apps.example.com/w/a/web/lab"),
        ),
        (
            &root_app,
            "http://10.0.3.7:8888",
            Some("https://apps.example.com/w/a/web/"),
        ),
        (
            &root_app,
            "//10.0.3.7:8888/x",
            Some("https://apps.example.com/w/a/web/x"),
        ),
        // absolute to the public host with the wrong scheme: fixed
        (
            &based_app,
            "http://apps.example.com/w/a/web/lab",
            Some("https://apps.example.com/w/a/web/lab"),
        ),
        // foreign absolute URL: untouched (no open redirect rewriting)
        (&root_app, "https://idp.example.org/auth", None),
        // relative: already relative to the public URL
        (&root_app, "lab/tree", None),
        (&root_app, "?x=1", None),
        // host route fronting a base-path app: runtime prefix removed
        (&host_based, "/w/a/web/lab", Some("/lab")),
        (&host_based, "/w/a/web", Some("/")),
        (&host_based, "/w/a/web?x", Some("/?x")),
        (&host_root, "/lab", None),
    ];
    for (c, input, want) in cases {
        assert_eq!(
            rewrite_location(input, c).as_deref(),
            *want,
            "{input} via {:?}",
            c.strategy
        );
    }
}

#[test]
fn prefix_match_is_segment_aware() {
    let own = own();
    let c = ctx("/w/a/web", "", BaseUrlStrategy::None, &own);
    assert_eq!(
        rewrite_location("/w/a/website", &c).as_deref(),
        Some("/w/a/web/w/a/website")
    );
}

#[test]
fn set_cookie_table() {
    let own = own();
    let root_app = ctx("/w/a/web", "", BaseUrlStrategy::None, &own);
    let based_app = ctx("/w/a/web", "/w/a/web", BaseUrlStrategy::PlatformPath, &own);
    let host_based = ctx("", "/w/a/web", BaseUrlStrategy::PlatformPath, &own);
    let host_root = ctx("", "", BaseUrlStrategy::None, &own);
    let cases: &[(&RewriteContext<'_>, &str, Option<&str>)] = &[
        (
            &root_app,
            "sid=1; Path=/; HttpOnly",
            Some("sid=1; Path=/w/a/web/; HttpOnly"),
        ),
        (
            &root_app,
            "sid=1; path=/api",
            Some("sid=1; Path=/w/a/web/api"),
        ),
        (&root_app, "sid=1; Path=/w/a/web/", None),
        (
            &root_app,
            "sid=1; Domain=10.0.3.7; Path=/",
            Some("sid=1; Path=/w/a/web/"),
        ),
        (&root_app, "sid=1; HttpOnly", None),
        (&based_app, "_xsrf=2; Path=/w/a/web/", None),
        (
            &host_based,
            "_xsrf=2; Path=/w/a/web/",
            Some("_xsrf=2; Path=/"),
        ),
        (
            &host_root,
            "a=b; Path=/; Domain=.apps.example.com; Secure",
            Some("a=b; Path=/; Secure"),
        ),
        (&host_root, "a=b; Path=/", None),
        // value bytes kept exactly, including '=' inside the value
        (
            &root_app,
            "t=a=b==; Path=/",
            Some("t=a=b==; Path=/w/a/web/"),
        ),
    ];
    for (c, input, want) in cases {
        assert_eq!(rewrite_set_cookie(input, c).as_deref(), *want, "{input}");
    }
}
