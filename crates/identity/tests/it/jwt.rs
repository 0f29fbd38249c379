//! Bearer tokens against a real JWKS server: what is accepted, how claims
//! map, and that every kind of bad token fails with its own error.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pp_identity::jwt::{ClaimMapping, TokenError};
use pp_model::{PrincipalKind, Role, Scope};
use serde_json::json;

use crate::support::{b64, now, with, Idp, TestKey, AUDIENCE};

#[tokio::test]
async fn rs256_token_is_accepted_and_its_claims_map_onto_the_principal() {
    let key = TestKey::rs256("rsa-1");
    let idp = Idp::start(&[&key]).await;
    let verifier = idp.verifier(|_| {});
    let exp = now() + 600;
    let token = key.sign(&with(
        idp.claims("user-42"),
        json!({
            "exp": exp,
            "email": "ada@acme.example",
            "name": "Ada Lovelace",
            "sid": "platform-session-7",
            "roles": ["platform-admin", "something-else"],
            "memberships": [
                {"org": "acme", "role": "admin"},
                {"org": "acme", "project": "ml-dev", "role": "member"},
                "globex:viewer",
                "globex/analytics:admin",
            ],
        }),
    ));

    let verified = verifier.verify(&token).await.expect("valid RS256 token");

    let p = &verified.principal;
    assert_eq!(p.id, "user-42");
    assert_eq!(p.kind, PrincipalKind::User);
    assert_eq!(p.email.as_deref(), Some("ada@acme.example"));
    assert_eq!(p.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(p.platform_session.as_deref(), Some("platform-session-7"));
    assert!(p.platform_admin);
    let want = [
        (Scope::org("acme"), Role::Admin),
        (Scope::project("acme", "ml-dev"), Role::Member),
        (Scope::org("globex"), Role::Viewer),
        (Scope::project("globex", "analytics"), Role::Admin),
    ];
    assert_eq!(p.roles, want.into_iter().collect());
    assert_eq!(verified.expires_at.unix_timestamp(), exp);
    assert!(verified.issued_at.is_some());
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn es256_service_account_token_is_accepted_as_a_service_account() {
    let key = TestKey::es256("ec-1");
    let idp = Idp::start(&[&key]).await;
    let verifier = idp.verifier(|_| {});
    let token = key.sign(&with(
        idp.claims("ci-bot"),
        json!({"roles": ["service-account"], "memberships": ["acme/ml-dev:viewer"]}),
    ));

    let p = verifier
        .verify(&token)
        .await
        .expect("valid ES256 token")
        .principal;

    assert_eq!(p.kind, PrincipalKind::ServiceAccount);
    assert!(!p.platform_admin);
    assert_eq!(p.project_role("acme", "ml-dev"), Some(Role::Viewer));
    assert_eq!(p.email, None);
    assert_eq!(p.platform_session, None);
}

#[tokio::test]
async fn keycloak_style_nested_claims_map_through_dotted_paths() {
    let key = TestKey::es256("ec-1");
    let idp = Idp::start(&[&key]).await;
    let verifier = idp.verifier(|cfg| {
        cfg.claims = ClaimMapping {
            roles: "realm_access.roles".to_owned(),
            memberships: "ext.memberships".to_owned(),
            platform_admin_role: Some("proxy-admin".to_owned()),
            ..ClaimMapping::default()
        };
    });
    let token = key.sign(&with(
        idp.claims("u"),
        json!({
            "realm_access": {"roles": ["proxy-admin"]},
            "ext": {"memberships": [{"org": "acme", "role": "viewer"}]},
            // The default claim names are ignored once remapped.
            "roles": ["service-account"],
            "memberships": ["acme:admin"],
        }),
    ));

    let p = verifier.verify(&token).await.expect("valid").principal;

    assert!(p.platform_admin);
    assert_eq!(p.kind, PrincipalKind::User);
    assert_eq!(p.org_role("acme"), Some(Role::Viewer));
}

#[tokio::test]
async fn jwks_is_found_through_oidc_discovery() {
    let key = TestKey::es256("ec-1");
    let idp = Idp::start(&[&key]).await;
    let verifier = idp.verifier(|cfg| cfg.jwks_url = None);
    let token = key.sign(&idp.claims("u"));

    verifier.verify(&token).await.expect("valid via discovery");
    verifier.verify(&token).await.expect("valid from cache");

    assert_eq!(idp.discovery_fetches(), 1);
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn discovery_document_naming_another_issuer_is_not_trusted() {
    let key = TestKey::es256("ec-1");
    let idp = Idp::start(&[&key]).await;
    idp.set_discovery_issuer("https://evil.example");
    let verifier = idp.verifier(|cfg| cfg.jwks_url = None);

    let err = verifier
        .verify(&key.sign(&idp.claims("u")))
        .await
        .expect_err("issuer mismatch");

    assert!(matches!(err, TokenError::KeysUnavailable(_)), "{err:?}");
    assert_eq!(
        idp.jwks_fetches(),
        0,
        "the JWKS of a mismatched issuer is never read"
    );
}

#[tokio::test]
async fn bad_tokens_are_rejected_with_the_matching_error() {
    let key = TestKey::es256("ec-1");
    let rsa = TestKey::rs256("rsa-1");
    let stranger = TestKey::es256("stranger");
    let impostor = TestKey::es256("ec-1"); // our kid, another key
    let idp = Idp::start(&[&key, &rsa]).await;
    let verifier = idp.verifier(|_| {});
    let good = idp.claims("u");
    let n = now();

    let valid = key.sign(&good);
    let (head, rest) = valid.split_once('.').expect("header");
    let (_, sig) = rest.split_once('.').expect("payload");
    let tampered = format!(
        "{head}.{}.{sig}",
        b64(&with(good.clone(), json!({"sub": "admin"})))
    );

    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(rsa.kid.clone());
    let hmac_forgery = jsonwebtoken::encode(
        &hs_header,
        &good,
        &EncodingKey::from_secret(&rsa.public_bytes),
    )
    .expect("forge HS256");
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    let mut cross = Header::new(Algorithm::ES256);
    cross.kid = Some(rsa.kid.clone());
    let es_on_rsa_kid = key.sign_with(&cross, &good);
    let oversize = key.sign(&with(good.clone(), json!({"pad": "x".repeat(16 * 1024)})));

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            key.sign(&with(good.clone(), json!({"exp": n - 3600}))),
            "token_expired",
        ),
        (
            "not yet valid",
            key.sign(&with(good.clone(), json!({"nbf": n + 3600}))),
            "token_not_yet_valid",
        ),
        (
            "issued in the future",
            key.sign(&with(good.clone(), json!({"iat": n + 3600}))),
            "token_not_yet_valid",
        ),
        (
            "wrong issuer",
            key.sign(&with(good.clone(), json!({"iss": "https://other.example"}))),
            "token_wrong_issuer",
        ),
        (
            "wrong audience",
            key.sign(&with(good.clone(), json!({"aud": ["someone-else"]}))),
            "token_wrong_audience",
        ),
        (
            "no exp",
            key.sign(&with(good.clone(), json!({"exp": null}))),
            "token_missing_claim",
        ),
        (
            "no sub",
            key.sign(&with(good.clone(), json!({"sub": null}))),
            "token_missing_claim",
        ),
        (
            "bad membership role",
            key.sign(&with(
                good.clone(),
                json!({"memberships": [{"org": "acme", "role": "owner"}]}),
            )),
            "token_bad_claim",
        ),
        (
            "bad membership id",
            key.sign(&with(good.clone(), json!({"memberships": ["ac me:admin"]}))),
            "token_bad_claim",
        ),
        ("tampered payload", tampered, "token_bad_signature"),
        (
            "our kid, another key",
            impostor.sign(&good),
            "token_bad_signature",
        ),
        ("unknown key", stranger.sign(&good), "token_unknown_key"),
        (
            "HS256 with the public key as secret",
            hmac_forgery,
            "token_algorithm_not_allowed",
        ),
        ("alg none", alg_none, "token_algorithm_not_allowed"),
        (
            "ES256 naming an RSA key",
            es_on_rsa_kid,
            "token_algorithm_not_allowed",
        ),
        ("oversize", oversize, "token_malformed"),
        ("garbage", "not-a-jwt".to_owned(), "token_malformed"),
    ];
    for (what, token, want) in cases {
        let got = verifier
            .verify(&token)
            .await
            .map(|_| ())
            .map_err(|e| e.code());
        assert_eq!(got, Err(want), "{what}");
    }
    // The one valid token still passes, so the rejections are not blanket.
    verifier.verify(&valid).await.expect("valid token passes");
    // Missing sub reports which claim.
    let err = verifier
        .verify(&key.sign(&with(good, json!({"sub": null}))))
        .await
        .expect_err("no sub");
    assert!(matches!(err, TokenError::MissingClaim("sub")), "{err:?}");
}

#[tokio::test]
async fn algorithm_outside_the_allow_list_is_rejected_even_with_a_valid_signature() {
    let rsa = TestKey::rs256("rsa-1");
    let idp = Idp::start(&[&rsa]).await;
    let verifier = idp.verifier(|cfg| cfg.algorithms = vec![Algorithm::ES256]);

    let err = verifier
        .verify(&rsa.sign(&idp.claims("u")))
        .await
        .expect_err("RS256 not allowed");

    assert!(matches!(err, TokenError::AlgorithmNotAllowed(_)), "{err:?}");
    assert_eq!(idp.jwks_fetches(), 0, "refused before any key is fetched");
}

#[tokio::test]
async fn token_without_kid_uses_the_only_key_that_fits_its_algorithm() {
    let ec = TestKey::es256("ec-1");
    let rsa = TestKey::rs256("rsa-1");
    let idp = Idp::start(&[&ec, &rsa]).await;
    let verifier = idp.verifier(|_| {});
    let claims = idp.claims("u");

    let no_kid = ec.sign_with(&Header::new(Algorithm::ES256), &claims);
    verifier
        .verify(&no_kid)
        .await
        .expect("one P-256 key: it is the one");

    let second = TestKey::es256("ec-2");
    idp.set_keys(&[&ec, &second, &rsa]);
    let fresh = idp.verifier(|_| {});
    let err = fresh
        .verify(&no_kid)
        .await
        .expect_err("two P-256 keys: ambiguous");
    assert!(matches!(err, TokenError::UnknownKey), "{err:?}");
}

#[tokio::test]
async fn unusable_keys_in_the_set_are_skipped_without_losing_the_rest() {
    let key = TestKey::es256("ec-1");
    let idp = Idp::start(&[]).await;
    let set = json!({"keys": [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "p521"},
        {"kty": "OKP", "crv": "X25519", "x": "AA", "kid": "x25519"},
        {"kty": "future-kind", "kid": "new"},
        key.renamed("enc-use").as_object().map(|o| {
            let mut o = o.clone();
            o.insert("use".into(), json!("enc"));
            serde_json::Value::Object(o)
        }).expect("object"),
        key.jwk.clone(),
    ]});
    idp.set_jwks_body(set.to_string());
    let verifier = idp.verifier(|_| {});
    let claims = idp.claims("u");

    verifier
        .verify(&key.sign(&claims))
        .await
        .expect("the usable key verifies");

    // The same key listed for encryption only does not verify.
    let mut enc = Header::new(Algorithm::ES256);
    enc.kid = Some("enc-use".to_owned());
    let err = verifier
        .verify(&key.sign_with(&enc, &claims))
        .await
        .expect_err("enc key");
    assert!(matches!(err, TokenError::UnknownKey), "{err:?}");
}

#[tokio::test]
async fn audience_list_matches_any_configured_audience() {
    let key = TestKey::es256("ec-1");
    let idp = Idp::start(&[&key]).await;
    let verifier = idp.verifier(|cfg| cfg.audiences = vec!["api".into(), AUDIENCE.into()]);
    let token = key.sign(&with(
        idp.claims("u"),
        json!({"aud": ["unrelated", AUDIENCE]}),
    ));

    verifier
        .verify(&token)
        .await
        .expect("one of the audiences is ours");
}
