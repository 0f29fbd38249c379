use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn err_key(text: &str, e: &[(&str, &str)]) -> String {
    match Config::from_sources(text, "test.toml", &env(e)) {
        Err(ConfigError::Invalid { key, .. }) => key,
        Err(other) => format!("other: {other}"),
        Ok(_) => "ok".into(),
    }
}

#[test]
fn defaults_are_valid() {
    let c = Config::from_sources("", "t", &[]).expect("valid");
    assert_eq!(c.dataplane.apps_domain, "apps.localhost");
    assert_eq!(c.public.scheme, "http");
    assert_eq!(c.public.port, Some(8080));
}

#[test]
fn file_values_are_read() {
    let c = Config::from_sources(
        "api_host = \"API.example.com\"\napps_domain = \"apps.example.com\"\n[server]\nlisten = [\"0.0.0.0:9000\"]\n[api]\nbootstrap_token = \"0123456789abcdef\"\n",
        "t",
        &[],
    )
    .expect("valid");
    assert_eq!(c.dataplane.api_host, "api.example.com");
    assert_eq!(c.listen[0].port(), 9000);
    assert_eq!(c.bootstrap_token.as_deref(), Some("0123456789abcdef"));
}

#[test]
fn environment_overrides_file_and_nests_with_double_underscore() {
    let c = Config::from_sources(
        "[server]\nlisten = [\"127.0.0.1:1\"]\n",
        "t",
        &env(&[
            ("PLATFORM_PROXY_SERVER__LISTEN", "[\"127.0.0.1:7000\"]"),
            ("PLATFORM_PROXY_APPS_DOMAIN", "apps.test"),
            ("PLATFORM_PROXY_WEBSOCKET__IDLE_TIMEOUT_SECS", "5"),
            ("PLATFORM_PROXY_API__BOOTSTRAP_TOKEN", "abcdefghijklmnopq"),
            ("PLATFORM_PROXY_CONFIG", "/ignored.toml"),
            ("OTHER", "x"),
        ]),
    )
    .expect("valid");
    assert_eq!(c.listen[0].port(), 7000);
    assert_eq!(c.dataplane.apps_domain, "apps.test");
    assert_eq!(c.dataplane.websocket_idle_timeout.as_secs(), 5);
    assert_eq!(c.bootstrap_token.as_deref(), Some("abcdefghijklmnopq"));
}

#[test]
fn bad_keys_are_named() {
    let cases: &[(&str, &[(&str, &str)], &str)] = &[
        ("nonsense = 1", &[], "nonsense"),
        ("[server]\nlisten = [\"nope\"]", &[], "server.listen[0]"),
        ("[server]\nlisten = 5", &[], "server.listen"),
        ("[server]\nbogus = 1", &[], "server.bogus"),
        ("api_host = \"bad host\"", &[], "api_host"),
        ("api_host = \"x.apps.localhost\"", &[], "api_host"),
        ("[store]\nurl = \"mysql://x\"", &[], "store.url"),
        (
            "[api]\nbootstrap_token = \"short\"",
            &[],
            "api.bootstrap_token",
        ),
        (
            "[websocket]\nidle_timeout_secs = 0",
            &[],
            "websocket.idle_timeout_secs",
        ),
        (
            "[server]\ntls_listen = [\"127.0.0.1:8443\"]",
            &[],
            "tls.certificates",
        ),
        (
            "[[tls.certificates]]\ncert = \"/nonexistent.pem\"\nkey = \"/nonexistent.key\"",
            &[],
            "tls.certificates[0].cert",
        ),
        (
            "",
            &[("PLATFORM_PROXY_SERVER__MAX_HEADER_BYTES", "1")],
            "server.max_header_bytes",
        ),
        (
            "",
            &[("PLATFORM_PROXY_UPSTREAM__CONNECT_TIMEOUT_SECS", "soon")],
            "upstream.connect_timeout_secs",
        ),
        ("", &[("PLATFORM_PROXY_LOG__FORMAT", "xml")], "log.format"),
    ];
    for (text, e, key) in cases {
        assert_eq!(err_key(text, e), *key, "{text} {e:?}");
    }
}

#[test]
fn malformed_toml_names_the_file() {
    match Config::from_sources("[server", "my.toml", &[]) {
        Err(ConfigError::Syntax { path, .. }) => assert_eq!(path, "my.toml"),
        other => panic!("unexpected {other:?}"),
    }
}
