//! OIDC Back-Channel Logout 1.0 logout tokens (§2.4, §2.6).

use jsonwebtoken::{Algorithm, Header};
use pp_identity::jwt::TokenError;
use serde_json::{json, Value};

use crate::support::{now, with, Idp, TestKey, AUDIENCE};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout token's claims as Keycloak or Auth0 send them.
fn logout_claims(idp: &Idp) -> Value {
    json!({
        "iss": idp.issuer(),
        "aud": AUDIENCE,
        "iat": now(),
        "jti": "bcl-1",
        "sub": "user-42",
        "sid": "platform-session-7",
        "events": {EVENT: {}},
    })
}

fn typed(key: &TestKey) -> Header {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(key.kid.clone());
    h.typ = Some("logout+jwt".to_owned());
    h
}

#[tokio::test]
async fn logout_token_names_the_subject_and_the_platform_session() {
    let key = TestKey::es256("k");
    let idp = Idp::start(&[&key]).await;
    let verifier = idp.verifier(|_| {});

    let logout = verifier
        .verify_logout_token(&key.sign_with(&typed(&key), &logout_claims(&idp)))
        .await
        .expect("valid logout token");

    assert_eq!(logout.subject.as_deref(), Some("user-42"));
    assert_eq!(logout.session_id.as_deref(), Some("platform-session-7"));

    let sid_only = with(logout_claims(&idp), json!({"sub": null}));
    let logout = verifier
        .verify_logout_token(&key.sign(&sid_only))
        .await
        .expect("sid alone is enough");
    assert_eq!(logout.subject, None);
    assert_eq!(logout.session_id.as_deref(), Some("platform-session-7"));
}

#[tokio::test]
async fn malformed_logout_tokens_are_rejected() {
    let key = TestKey::es256("k");
    let stranger = TestKey::es256("other");
    let idp = Idp::start(&[&key]).await;
    let verifier = idp.verifier(|_| {});
    let good = logout_claims(&idp);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "no events",
            key.sign(&with(good.clone(), json!({"events": null}))),
            "token_missing_claim",
        ),
        (
            "other event",
            key.sign(&with(good.clone(), json!({"events": {"urn:other": {}}}))),
            "token_bad_claim",
        ),
        (
            "nonce",
            key.sign(&with(good.clone(), json!({"nonce": "n-1"}))),
            "token_bad_claim",
        ),
        (
            "neither sub nor sid",
            key.sign(&with(good.clone(), json!({"sub": null, "sid": null}))),
            "token_missing_claim",
        ),
        (
            "no iat",
            key.sign(&with(good.clone(), json!({"iat": null}))),
            "token_missing_claim",
        ),
        (
            "expired",
            key.sign(&with(good.clone(), json!({"exp": now() - 3600}))),
            "token_expired",
        ),
        (
            "wrong issuer",
            key.sign(&with(good.clone(), json!({"iss": "https://other.example"}))),
            "token_wrong_issuer",
        ),
        (
            "wrong audience",
            key.sign(&with(good.clone(), json!({"aud": "other"}))),
            "token_wrong_audience",
        ),
        ("unknown key", stranger.sign(&good), "token_unknown_key"),
    ];
    for (what, token, want) in cases {
        let got = verifier
            .verify_logout_token(&token)
            .await
            .map(|_| ())
            .map_err(|e| e.code());
        assert_eq!(got, Err(want), "{what}");
    }
    let err = verifier
        .verify_logout_token(&key.sign(&with(good, json!({"sub": null, "sid": null}))))
        .await
        .expect_err("no subject");
    assert!(
        matches!(err, TokenError::MissingClaim("sub or sid")),
        "{err:?}"
    );
}

#[tokio::test]
async fn logout_token_is_not_accepted_as_a_bearer_token() {
    let key = TestKey::es256("k");
    let idp = Idp::start(&[&key]).await;
    let verifier = idp.verifier(|_| {});
    let claims = with(logout_claims(&idp), json!({"exp": now() + 300}));

    for token in [
        key.sign(&claims),
        key.sign_with(&typed(&key), &idp.claims("user-42")),
    ] {
        let err = verifier
            .verify(&token)
            .await
            .expect_err("not a bearer token");
        assert!(matches!(err, TokenError::BadClaim(_)), "{err:?}");
    }
    // And an ordinary ID token is no logout token.
    let id_token = with(idp.claims("user-42"), json!({"nonce": "n", "sid": "s"}));
    let err = verifier
        .verify_logout_token(&key.sign(&id_token))
        .await
        .expect_err("not a logout token");
    assert!(matches!(err, TokenError::MissingClaim("events")), "{err:?}");
}
