//! The identity assertion the proxy signs for upstreams, verified the way
//! an upstream would: with jsonwebtoken and the published JWKS, and with
//! our own verifier fetching that JWKS over HTTP.

use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use pp_identity::assertion::AssertionSigner;
use pp_identity::jwt::{ClaimMapping, JwtConfig, JwtVerifier};
use pp_model::{Principal, PrincipalKind, Role, Scope};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::Value;

use crate::support::{Idp, TempDir};

const ISSUER: &str = "https://proxy.example";
const APP: &str = "https://notebook.acme.example";

fn user() -> Principal {
    let mut p = Principal::new(PrincipalKind::User, "user-42");
    p.email = Some("ada@acme.example".to_owned());
    p.grant(Scope::project("acme", "ml-dev"), Role::Member);
    p.grant(Scope::org("globex"), Role::Admin);
    p
}

/// What an upstream does: take the key from the JWKS by `kid`, check
/// ES256, issuer, audience and expiry.
fn upstream_verify(
    jwks: &Value,
    token: &str,
    audience: &str,
) -> jsonwebtoken::errors::Result<Value> {
    let set: JwkSet = serde_json::from_value(jwks.clone()).expect("JWKS parses");
    let kid = jsonwebtoken::decode_header(token)?
        .kid
        .expect("kid in header");
    let jwk = set.find(&kid).expect("kid in JWKS");
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &v).map(|d| d.claims)
}

#[test]
fn assertion_verifies_against_the_published_jwks_and_carries_the_identity() {
    let signer = AssertionSigner::generate(ISSUER.to_owned()).expect("signer");
    let token = signer
        .sign(
            &user(),
            APP,
            Some("acme"),
            Some("ml-dev"),
            Some("proxy-sess-1"),
            Duration::from_secs(60),
        )
        .expect("sign");

    let c = upstream_verify(&signer.jwks(), &token, APP).expect("upstream accepts");

    assert_eq!(c["sub"], "user-42");
    assert_eq!(c["email"], "ada@acme.example");
    assert_eq!(c["org"], "acme");
    assert_eq!(c["project"], "ml-dev");
    assert_eq!(c["sid"], "proxy-sess-1");
    assert_eq!(c["roles"], serde_json::json!(["acme/ml-dev:member"]));
    assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 22));
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some(signer.kid()));
}

#[test]
fn assertion_for_one_app_is_refused_by_another_and_tampering_is_detected() {
    let signer = AssertionSigner::generate(ISSUER.to_owned()).expect("signer");
    let token = signer
        .sign(
            &user(),
            APP,
            Some("acme"),
            None,
            None,
            Duration::from_secs(60),
        )
        .expect("sign");

    let err = upstream_verify(&signer.jwks(), &token, "https://other-app.example")
        .expect_err("wrong audience");
    assert_eq!(
        *err.kind(),
        jsonwebtoken::errors::ErrorKind::InvalidAudience
    );

    let other = AssertionSigner::generate(ISSUER.to_owned()).expect("other signer");
    let forged = other
        .sign(
            &user(),
            APP,
            Some("acme"),
            None,
            None,
            Duration::from_secs(60),
        )
        .expect("sign");
    let (head, _) = token.split_once('.').expect("header");
    let (_, rest) = forged.split_once('.').expect("header");
    let spliced = format!("{head}.{rest}");
    let err = upstream_verify(&signer.jwks(), &spliced, APP).expect_err("foreign signature");
    assert_eq!(
        *err.kind(),
        jsonwebtoken::errors::ErrorKind::InvalidSignature
    );
}

#[tokio::test]
async fn assertion_verifies_with_our_own_verifier_fetching_the_published_jwks() {
    let signer = AssertionSigner::generate(ISSUER.to_owned()).expect("signer");
    let idp = Idp::start(&[]).await;
    idp.set_jwks_body(signer.jwks().to_string());
    let mut cfg = JwtConfig::new(ISSUER, vec![APP.to_owned()]);
    cfg.jwks_url = Some(idp.jwks_url());
    cfg.algorithms = vec![Algorithm::ES256];
    cfg.claims = ClaimMapping {
        session_id: "sid".to_owned(),
        ..ClaimMapping::default()
    };
    let verifier = JwtVerifier::new(cfg).expect("verifier");
    let token = signer
        .sign(
            &user(),
            APP,
            Some("acme"),
            None,
            Some("proxy-sess-1"),
            Duration::from_secs(60),
        )
        .expect("sign");

    let verified = verifier.verify(&token).await.expect("verifies");

    assert_eq!(verified.principal.id, "user-42");
    assert_eq!(
        verified.principal.email.as_deref(),
        Some("ada@acme.example")
    );
    assert_eq!(
        verified.principal.platform_session.as_deref(),
        Some("proxy-sess-1")
    );
    let ttl = verified.expires_at - verified.issued_at.expect("iat");
    assert_eq!(ttl, time::Duration::seconds(60));
}

#[test]
fn pkcs8_pem_round_trips_to_the_same_key_and_kid() {
    let rng = SystemRandom::new();
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let b64 = STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\r\n{}\r\n-----END PRIVATE KEY-----\r\n",
        lines.join("\r\n")
    );

    let from_der = AssertionSigner::from_pkcs8_der(ISSUER.to_owned(), der.as_ref()).expect("der");
    let from_pem = AssertionSigner::from_pkcs8_pem(ISSUER.to_owned(), &pem).expect("pem");

    assert_eq!(from_der.kid(), from_pem.kid());
    assert_eq!(from_der.jwks(), from_pem.jwks());
    // A replica with the same key: its assertions verify with ours.
    let token = from_pem
        .sign(
            &user(),
            APP,
            Some("acme"),
            None,
            None,
            Duration::from_secs(30),
        )
        .expect("sign");
    upstream_verify(&from_der.jwks(), &token, APP).expect("replica's assertion verifies");
    let fresh = AssertionSigner::generate(ISSUER.to_owned()).expect("fresh");
    assert_ne!(fresh.kid(), from_der.kid(), "another key, another kid");
}

#[test]
fn openssl_generated_p256_pem_key_is_accepted() {
    let dir = TempDir::new("p256");
    let path = dir.path("assertion.pem");
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&path)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&path).expect("read pem");

    let signer = AssertionSigner::from_pkcs8_pem(ISSUER.to_owned(), &pem).expect("openssl key");
    let token = signer
        .sign(&user(), APP, None, None, None, Duration::from_secs(30))
        .expect("sign");

    let c = upstream_verify(&signer.jwks(), &token, APP).expect("verifies");
    assert_eq!(c["roles"], serde_json::json!([]));
}
