//! Unit tests of the pieces of an assertion; signing and verifying end to
//! end is in `tests/it/assertion.rs`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use pp_model::{Principal, PrincipalKind, Role, Scope};

use super::*;

fn payload(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).expect("payload part");
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

fn principal() -> Principal {
    let mut p = Principal::new(PrincipalKind::User, "u-1");
    p.grant(Scope::org("acme"), Role::Viewer);
    p.grant(Scope::project("acme", "ml-dev"), Role::Admin);
    p.grant(Scope::org("globex"), Role::Admin);
    p
}

#[test]
fn roles_claim_holds_only_the_route_orgs_roles_spelled_like_the_model() {
    let signer = AssertionSigner::generate("https://proxy.example".into()).expect("signer");
    let p = principal();
    let token = signer
        .sign(
            &p,
            "https://app.example",
            Some("acme"),
            None,
            None,
            Duration::from_secs(60),
        )
        .expect("sign");
    let want: Vec<String> = p.restricted_to_org(Some("acme")).role_strings();
    assert_eq!(want, ["acme:viewer", "acme/ml-dev:admin"]);
    assert_eq!(payload(&token)["roles"], serde_json::json!(want));

    let none = signer
        .sign(
            &p,
            "https://app.example",
            None,
            None,
            None,
            Duration::from_secs(60),
        )
        .expect("sign");
    assert_eq!(payload(&none)["roles"], serde_json::json!([]));
    assert!(payload(&none).get("org").is_none());
}

#[test]
fn optional_claims_are_left_out_and_times_follow_the_ttl() {
    let signer = AssertionSigner::generate("https://proxy.example".into()).expect("signer");
    let p = Principal::new(PrincipalKind::ServiceAccount, "bot");
    let token = signer
        .sign(
            &p,
            "https://app.example",
            Some("acme"),
            Some("ml"),
            Some("sess"),
            Duration::from_secs(90),
        )
        .expect("sign");
    let c = payload(&token);
    assert!(c.get("email").is_none());
    assert_eq!(c["project"], "ml");
    assert_eq!(c["sid"], "sess");
    let (iat, exp) = (
        c["iat"].as_u64().expect("iat"),
        c["exp"].as_u64().expect("exp"),
    );
    assert_eq!(exp - iat, 90);
    let other = signer
        .sign(
            &p,
            "https://app.example",
            None,
            None,
            None,
            Duration::from_secs(90),
        )
        .expect("sign");
    assert_ne!(
        payload(&other)["jti"],
        c["jti"],
        "jti must be fresh per assertion"
    );
}

#[test]
fn ttl_under_a_second_is_refused() {
    let signer = AssertionSigner::generate("https://proxy.example".into()).expect("signer");
    let p = Principal::new(PrincipalKind::User, "u");
    let err = signer
        .sign(
            &p,
            "https://app.example",
            None,
            None,
            None,
            Duration::from_millis(500),
        )
        .expect_err("refused");
    assert!(matches!(err, AssertionError::BadTtl));
}

#[test]
fn kid_is_the_truncated_rfc7638_thumbprint_of_the_published_key() {
    let signer = AssertionSigner::generate("https://proxy.example".into()).expect("signer");
    let jwk = &signer.jwks()["keys"][0];
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["x"].as_str().expect("x"),
        jwk["y"].as_str().expect("y")
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    let full = URL_SAFE_NO_PAD.encode(digest.as_ref());
    assert_eq!(signer.kid(), &full[..16]);
    assert_eq!(jwk["kid"], signer.kid());
}

#[test]
fn unusable_keys_and_pem_are_refused() {
    let issuer = || "https://proxy.example".to_owned();
    assert!(matches!(
        AssertionSigner::from_pkcs8_der(issuer(), b"not a key"),
        Err(AssertionError::BadKey(_))
    ));
    assert!(matches!(
        AssertionSigner::generate(String::new()),
        Err(AssertionError::NoIssuer)
    ));
    let pems = [
        "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        "no armor at all",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n",
        "-----BEGIN PRIVATE KEY-----\n%%%%\n-----END PRIVATE KEY-----\n",
    ];
    for pem in pems {
        assert!(
            matches!(
                AssertionSigner::from_pkcs8_pem(issuer(), pem),
                Err(AssertionError::BadPem(_))
            ),
            "{pem}"
        );
    }
}
