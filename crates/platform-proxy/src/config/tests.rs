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
fn the_store_pool_defaults_to_two_and_takes_one_to_sixteen() {
    let c = Config::from_sources("", "t", &[]).expect("valid");
    assert_eq!(c.store.max_connections, 2);
    for n in [1, 16] {
        let c = Config::from_sources(&format!("[store]\nmax_connections = {n}"), "t", &[])
            .expect("valid");
        assert_eq!(c.store.max_connections, n);
    }
    let c = Config::from_sources(
        "",
        "t",
        &env(&[("PLATFORM_PROXY_STORE__MAX_CONNECTIONS", "3")]),
    )
    .expect("valid");
    assert_eq!(c.store.max_connections, 3);
}

#[test]
fn splice_names_the_bodies_spliced_and_defaults_to_both() {
    let splice = |text: &str, e: &[(&str, &str)]| {
        let s = Config::from_sources(text, "t", &env(e))
            .expect("valid")
            .dataplane
            .splice;
        (s.requests, s.responses)
    };
    assert_eq!(splice("", &[]), (true, true));
    assert_eq!(splice("[server]\nsplice = \"both\"", &[]), (true, true));
    assert_eq!(
        splice("[server]\nsplice = \"requests\"", &[]),
        (true, false)
    );
    assert_eq!(
        splice("[server]\nsplice = \"responses\"", &[]),
        (false, true)
    );
    assert_eq!(splice("[server]\nsplice = \"off\"", &[]), (false, false));
    assert_eq!(
        splice(
            "[server]\nsplice = \"off\"",
            &[("PLATFORM_PROXY_SERVER__SPLICE", "responses")]
        ),
        (false, true),
        "the environment overrides the file"
    );
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
        ("[store]\nmax_connections = 0", &[], "store.max_connections"),
        (
            "[store]\nmax_connections = 17",
            &[],
            "store.max_connections",
        ),
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
        ("[server]\nsplice = \"sometimes\"", &[], "server.splice"),
        ("[server]\nsplice = true", &[], "server.splice"),
        ("[server]\nworkers = 1025", &[], "server.workers"),
        ("[server]\nworkers = -1", &[], "server.workers"),
        (
            "[server]\nbody_read_timeout_secs = 0",
            &[],
            "server.body_read_timeout_secs",
        ),
        (
            "[server]\nsend_timeout_secs = 0",
            &[],
            "server.send_timeout_secs",
        ),
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

#[test]
fn bad_identity_keys_are_named() {
    let oidc = "[identity.oidc]\nissuer = \"https://id.example.com/realms/gpu\"\n";
    let cases: Vec<(String, &str)> = vec![
        (
            "[identity]\nsession_keys = [\"c2hvcnQ=\"]\n".into(),
            "identity.session_keys[0]",
        ),
        (
            "[identity]\nlaunch_code_ttl_secs = 600\n".into(),
            "identity.launch_code_ttl_secs",
        ),
        (
            "[identity]\nlaunch_code_ttl_secs = 0\n".into(),
            "identity.launch_code_ttl_secs",
        ),
        (
            "[identity]\nsession_idle_secs = 100\nsession_max_secs = 10\n".into(),
            "identity.session_idle_secs",
        ),
        (
            "[identity]\nlogin_url = \"javascript:alert(1)\"\n".into(),
            "identity.login_url",
        ),
        (
            "[identity]\nallowed_origins = [\"https://console.example.com/app\"]\n".into(),
            "identity.allowed_origins[0]",
        ),
        (format!("{oidc}audiences = []\n"), "identity.oidc.audiences"),
        (
            format!("{oidc}audiences = [\"pp\"]\nalgorithms = [\"HS256\"]\n"),
            "identity.oidc.algorithms[0]",
        ),
        (
            "[identity.oidc]\nissuer = \"id.example.com\"\naudiences = [\"pp\"]\n".into(),
            "identity.oidc.issuer",
        ),
        (
            format!("{oidc}audiences = [\"pp\"]\nbogus = 1\n"),
            "identity.oidc",
        ),
    ];
    for (text, want) in cases {
        let got = err_key(&text, &[]);
        assert!(
            got.starts_with(want),
            "{text:?}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn identity_settings_are_read_and_defaulted() {
    let c = Config::from_sources(
        "[identity]\nlogin_url = \"https://console.example.com/launch\"\n\
         allowed_origins = [\"https://console.example.com\"]\n\
         [identity.oidc]\nissuer = \"https://id.example.com/realms/gpu\"\naudiences = [\"pp\"]\n\
         [identity.oidc.claims]\nroles = \"realm_access.roles\"\n",
        "t",
        &[],
    )
    .expect("valid");
    let id = &c.identity;
    assert_eq!(id.access.session_idle, std::time::Duration::from_secs(900));
    assert_eq!(id.session_max, std::time::Duration::from_secs(12 * 3600));
    assert_eq!(id.launch_ttl, std::time::Duration::from_secs(60));
    assert_eq!(
        id.access.login_url.as_deref(),
        Some("https://console.example.com/launch")
    );
    let oidc = id.oidc.as_ref().expect("oidc");
    assert_eq!(oidc.claims.roles, "realm_access.roles");
    assert_eq!(oidc.claims.user_id, "sub");
    assert!(!id.assertion);
}
