//! Unit tests of the pure parts: token splitting, membership parsing, claim
//! mapping and config validation. Signatures and key fetching are covered
//! end to end in `tests/it/jwt*.rs` against a real JWKS server.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use pp_model::{PrincipalKind, Role, Scope};
use serde_json::{json, Value};

use super::claims::{membership, valid_id, Compact, TimeRules};
use super::*;

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// An unsigned compact token with these parts; the signature is junk.
fn compact(header: &Value, payload: &Value) -> String {
    format!("{}.{}.c2ln", b64(header), b64(payload))
}

fn claims_of(payload: &Value) -> super::claims::Claims {
    let token = compact(&json!({"alg": "RS256"}), payload);
    Compact::parse(&token)
        .expect("parses")
        .claims()
        .expect("claims")
}

fn config() -> JwtConfig {
    JwtConfig::new("https://idp.example", vec!["proxy".to_owned()])
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[test]
fn membership_items_parse_to_scoped_roles() {
    let cases: Vec<(Value, Option<(Scope, Role)>)> = vec![
        (
            json!({"org": "acme", "role": "admin"}),
            Some((Scope::org("acme"), Role::Admin)),
        ),
        (
            json!({"org": "acme", "project": "ml-dev", "role": "member"}),
            Some((Scope::project("acme", "ml-dev"), Role::Member)),
        ),
        (
            json!({"org": "acme", "project": null, "role": "viewer"}),
            Some((Scope::org("acme"), Role::Viewer)),
        ),
        (json!("acme:admin"), Some((Scope::org("acme"), Role::Admin))),
        (
            json!("acme/ml-dev:member"),
            Some((Scope::project("acme", "ml-dev"), Role::Member)),
        ),
        (
            json!("a.b_c-9/p.1:viewer"),
            Some((Scope::project("a.b_c-9", "p.1"), Role::Viewer)),
        ),
        (json!({"org": "acme", "role": "owner"}), None),
        (json!({"org": "acme"}), None),
        (json!({"role": "admin"}), None),
        (json!({"org": "acme", "project": 7, "role": "admin"}), None),
        (json!({"org": "ac me", "role": "admin"}), None),
        (json!("acme:owner"), None),
        (json!("acme"), None),
        (json!(":admin"), None),
        (json!("acme/:admin"), None),
        (json!("acme/a/b:admin"), None),
        (json!("acme:ml:admin"), None),
        (json!("ac/me/x:member"), None),
        (json!("Acme:Admin"), None),
        (json!(42), None),
        (json!(["acme", "admin"]), None),
    ];
    for (item, want) in cases {
        assert_eq!(membership(&item).ok(), want, "{item}");
    }
}

#[test]
fn ids_are_limited_to_the_model_alphabet_and_length() {
    let long = "a".repeat(128);
    let too_long = "a".repeat(129);
    let cases = [
        ("acme", true),
        ("A.b_c-9", true),
        (long.as_str(), true),
        ("", false),
        (too_long.as_str(), false),
        ("a b", false),
        ("a/b", false),
        ("a:b", false),
        ("é", false),
    ];
    for (id, want) in cases {
        assert_eq!(valid_id(id), want, "{id:?}");
    }
}

#[test]
fn claims_map_onto_a_principal_through_nested_paths() {
    let mapping = ClaimMapping {
        user_id: "oid".to_owned(),
        memberships: "ext.memberships".to_owned(),
        roles: "realm_access.roles".to_owned(),
        email: "https://acme.example/email".to_owned(),
        ..ClaimMapping::default()
    };
    let c = claims_of(&json!({
        "oid": "u-1",
        "https://acme.example/email": "ada@acme.example",
        "name": "Ada",
        "sid": "s-9",
        "ext": {"memberships": ["acme:viewer", {"org": "acme", "role": "member"}]},
        "realm_access": {"roles": ["platform-admin", "other"]},
    }));
    let p = c.principal(&mapping).expect("maps");
    assert_eq!(p.id, "u-1");
    assert_eq!(p.kind, PrincipalKind::User);
    assert_eq!(p.email.as_deref(), Some("ada@acme.example"));
    assert_eq!(p.name.as_deref(), Some("Ada"));
    assert_eq!(p.platform_session.as_deref(), Some("s-9"));
    assert!(p.platform_admin);
    // The stronger of two grants on one scope wins.
    assert_eq!(p.org_role("acme"), Some(Role::Member));
}

#[test]
fn claim_type_errors_are_bad_claims_and_absent_optionals_are_fine() {
    let m = ClaimMapping::default();
    let minimal = claims_of(&json!({"sub": "u"}))
        .principal(&m)
        .expect("minimal");
    assert_eq!(minimal.email, None);
    assert!(minimal.roles.is_empty());
    assert!(!minimal.platform_admin);

    let cases = [
        json!({"sub": 5}),
        json!({"sub": "u", "email": 5}),
        json!({"sub": "u", "roles": "platform-admin"}),
        json!({"sub": "u", "roles": [1]}),
        json!({"sub": "u", "memberships": "acme:admin"}),
        json!({"sub": "u", "memberships": ["acme:root"]}),
    ];
    for payload in cases {
        let err = claims_of(&payload).principal(&m).expect_err("must fail");
        assert!(matches!(err, TokenError::BadClaim(_)), "{payload}: {err:?}");
    }
    for payload in [json!({}), json!({"sub": ""}), json!({"sub": null})] {
        let err = claims_of(&payload).principal(&m).expect_err("must fail");
        assert!(
            matches!(err, TokenError::MissingClaim("sub")),
            "{payload}: {err:?}"
        );
    }
}

#[test]
fn service_account_role_changes_the_principal_kind() {
    let m = ClaimMapping::default();
    let p = claims_of(&json!({"sub": "bot", "roles": ["service-account"]}))
        .principal(&m)
        .expect("maps");
    assert_eq!(p.kind, PrincipalKind::ServiceAccount);
    assert!(!p.platform_admin);
    let none = ClaimMapping {
        service_account_role: None,
        ..ClaimMapping::default()
    };
    let p = claims_of(&json!({"sub": "bot", "roles": ["service-account"]}))
        .principal(&none)
        .expect("maps");
    assert_eq!(p.kind, PrincipalKind::User);
}

#[test]
fn registered_claims_are_checked_with_leeway() {
    let cfg = config();
    let n = now();
    let base = |extra: Value| {
        let mut v = json!({"iss": "https://idp.example", "aud": "proxy", "exp": n + 300});
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    };
    let cases: Vec<(Value, Result<(), &str>)> = vec![
        (base(json!({})), Ok(())),
        (base(json!({"aud": ["other", "proxy"]})), Ok(())),
        (base(json!({"exp": n - 30})), Ok(())), // inside the 60 s leeway
        (base(json!({"exp": n - 120})), Err("token_expired")),
        (
            base(json!({"exp": (n - 120) as f64 + 0.5})),
            Err("token_expired"),
        ),
        (base(json!({"nbf": n + 30})), Ok(())),
        (base(json!({"nbf": n + 120})), Err("token_not_yet_valid")),
        (base(json!({"iat": n + 120})), Err("token_not_yet_valid")),
        (base(json!({"exp": null})), Err("token_missing_claim")),
        (base(json!({"exp": "soon"})), Err("token_bad_claim")),
        (
            base(json!({"iss": "https://idp.example/"})),
            Err("token_wrong_issuer"),
        ),
        (base(json!({"iss": null})), Err("token_missing_claim")),
        (base(json!({"aud": "other"})), Err("token_wrong_audience")),
        (base(json!({"aud": []})), Err("token_wrong_audience")),
        (base(json!({"aud": 1})), Err("token_bad_claim")),
    ];
    for (payload, want) in cases {
        let got = claims_of(&payload)
            .check_registered(&cfg, TimeRules::ACCESS)
            .map_err(|e| e.code());
        assert_eq!(got, want, "{payload}");
    }
    let no_iat = base(json!({}));
    assert_eq!(
        claims_of(&no_iat)
            .check_registered(&cfg, TimeRules::LOGOUT)
            .map_err(|e| e.code()),
        Err("token_missing_claim")
    );
}

#[test]
fn malformed_tokens_are_refused_before_any_key_is_needed() {
    let payload = json!({"sub": "u"});
    let oversize = format!(
        "{}.{}.sig",
        b64(&json!({"alg": "RS256"})),
        "A".repeat(MAX_TOKEN_BYTES)
    );
    let cases: Vec<(String, &str)> = vec![
        (oversize, "token_malformed"),
        ("abc".to_owned(), "token_malformed"),
        ("a.b".to_owned(), "token_malformed"),
        ("a.b.c.d".to_owned(), "token_malformed"),
        (".e30.sig".to_owned(), "token_malformed"),
        ("!!.e30.sig".to_owned(), "token_malformed"),
        (compact(&json!({"typ": "JWT"}), &payload), "token_malformed"),
        (compact(&json!({"alg": 256}), &payload), "token_malformed"),
        (
            compact(&json!({"alg": "RS256", "kid": 1}), &payload),
            "token_malformed",
        ),
        (
            compact(
                &json!({"alg": "RS256", "crit": ["b64"], "b64": false}),
                &payload,
            ),
            "token_malformed",
        ),
        (
            compact(&json!({"alg": "none"}), &payload),
            "token_algorithm_not_allowed",
        ),
        (
            compact(&json!({"alg": "XS999"}), &payload),
            "token_algorithm_not_allowed",
        ),
    ];
    for (token, want) in cases {
        let got = Compact::parse(&token).map(|_| ()).map_err(|e| e.code());
        assert_eq!(got, Err(want), "{}", &token[..token.len().min(60)]);
    }
    let ok = compact(
        &json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}),
        &payload,
    );
    let parsed = Compact::parse(&ok).expect("parses");
    assert_eq!(parsed.header.alg, Algorithm::ES256);
    assert_eq!(parsed.header.kid.as_deref(), Some("k1"));
}

#[test]
fn logout_claims_need_the_event_no_nonce_and_a_subject_or_session() {
    let m = ClaimMapping::default();
    let event = json!({super::claims::BACKCHANNEL_LOGOUT_EVENT: {}});
    let ok = claims_of(&json!({"sid": "s1", "events": event}))
        .logout(&m)
        .expect("logout");
    assert_eq!(ok.session_id.as_deref(), Some("s1"));
    assert_eq!(ok.subject, None);
    let cases = [
        (json!({"sub": "u"}), "token_missing_claim"),
        (json!({"sub": "u", "events": {}}), "token_bad_claim"),
        (json!({"sub": "u", "events": []}), "token_bad_claim"),
        (
            json!({"sub": "u", "events": {super::claims::BACKCHANNEL_LOGOUT_EVENT: true}}),
            "token_bad_claim",
        ),
        (
            json!({"sub": "u", "nonce": "n", "events": event}),
            "token_bad_claim",
        ),
        (json!({"events": event}), "token_missing_claim"),
    ];
    for (payload, want) in cases {
        let got = claims_of(&payload).logout(&m).map_err(|e| e.code());
        assert_eq!(got, Err(want), "{payload}");
    }
}

#[test]
fn config_validation_names_the_bad_setting() {
    let cases: Vec<(Box<dyn Fn(&mut JwtConfig)>, &str)> = vec![
        (Box::new(|c| c.issuer = " ".to_owned()), "issuer"),
        (Box::new(|c| c.audiences.clear()), "audiences"),
        (Box::new(|c| c.audiences.push(String::new())), "audiences"),
        (Box::new(|c| c.algorithms.clear()), "algorithms"),
        (
            Box::new(|c| c.algorithms.push(Algorithm::HS256)),
            "symmetric",
        ),
        (
            Box::new(|c| c.fetch_timeout = std::time::Duration::ZERO),
            "fetch_timeout",
        ),
        (Box::new(|c| c.claims.user_id.clear()), "claims.user_id"),
        (
            Box::new(|c| c.jwks_url = Some("file:///etc/jwks".to_owned())),
            "jwks_url",
        ),
        (Box::new(|c| c.issuer = "not a url".to_owned()), "issuer"),
    ];
    for (change, needle) in cases {
        let mut cfg = config();
        change(&mut cfg);
        match JwtVerifier::new(cfg) {
            Err(TokenError::Config(msg)) => assert!(msg.contains(needle), "{msg} lacks {needle}"),
            other => panic!("{needle}: expected a config error, got {other:?}"),
        }
    }
    let ok = JwtVerifier::new(config()).expect("default config is valid");
    assert_eq!(ok.issuer(), "https://idp.example");
}

#[test]
fn error_codes_are_distinct_snake_case() {
    let all = [
        TokenError::Malformed(String::new()),
        TokenError::BadSignature,
        TokenError::UnknownKey,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::WrongIssuer,
        TokenError::WrongAudience,
        TokenError::AlgorithmNotAllowed(String::new()),
        TokenError::MissingClaim("sub"),
        TokenError::BadClaim(String::new()),
        TokenError::KeysUnavailable(String::new()),
        TokenError::Config(String::new()),
    ];
    let codes: std::collections::BTreeSet<_> = all.iter().map(TokenError::code).collect();
    assert_eq!(codes.len(), all.len());
    for code in codes {
        assert!(code.starts_with("token_"), "{code}");
        assert!(
            code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{code}"
        );
    }
}

#[test]
fn verifier_is_shareable_across_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<JwtVerifier>();
}
