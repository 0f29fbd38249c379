//! The JWKS cache against a real server: rotation, the refetch rate limit,
//! single-flight fetches, staleness, and an issuer that goes away.

use std::sync::Arc;
use std::time::Duration;

use pp_identity::jwt::TokenError;

use crate::support::{Idp, TestKey};

#[tokio::test]
async fn rotated_key_is_accepted_after_one_refetch() {
    let old = TestKey::es256("2024-old");
    let new = TestKey::rs256("2025-new");
    let idp = Idp::start(&[&old]).await;
    let verifier = idp.verifier(|cfg| cfg.refetch_min_interval = Duration::from_millis(200));
    verifier
        .verify(&old.sign(&idp.claims("u")))
        .await
        .expect("old key");
    assert_eq!(idp.jwks_fetches(), 1);

    idp.set_keys(&[&new]);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let p = verifier
        .verify(&new.sign(&idp.claims("u")))
        .await
        .expect("new kid accepted after a refetch")
        .principal;

    assert_eq!(p.id, "u");
    assert_eq!(idp.jwks_fetches(), 2, "exactly one refetch");
    // The old key left the set with the refetch.
    let err = verifier
        .verify(&old.sign(&idp.claims("u")))
        .await
        .expect_err("old key retired");
    assert!(matches!(err, TokenError::UnknownKey), "{err:?}");
}

#[tokio::test]
async fn unknown_kid_refetches_are_rate_limited() {
    let key = TestKey::es256("real");
    let idp = Idp::start(&[&key]).await;
    let interval = Duration::from_millis(300);
    let verifier = idp.verifier(|cfg| cfg.refetch_min_interval = interval);
    verifier
        .verify(&key.sign(&idp.claims("u")))
        .await
        .expect("valid");
    assert_eq!(idp.jwks_fetches(), 1);
    // Minted up front so that the burst itself is quick.
    let forged: Vec<String> = (0..25)
        .map(|i| {
            let kid = format!("made-up-{i}-{}", uuid::Uuid::new_v4());
            TestKey::es256(&kid).sign(&idp.claims("u"))
        })
        .collect();
    tokio::time::sleep(interval + Duration::from_millis(100)).await;

    for token in &forged {
        let err = verifier.verify(token).await.expect_err("unknown kid");
        assert!(matches!(err, TokenError::UnknownKey), "{err:?}");
    }
    assert_eq!(
        idp.jwks_fetches(),
        2,
        "a burst of unknown kids costs one fetch"
    );

    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    let forged = TestKey::es256("made-up-after-the-interval");
    let _ = verifier.verify(&forged.sign(&idp.claims("u"))).await;
    assert_eq!(
        idp.jwks_fetches(),
        3,
        "the next interval allows a fetch again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verifies_of_an_unknown_kid_share_one_fetch() {
    let old = TestKey::es256("old");
    let new = TestKey::es256("new");
    let idp = Idp::start(&[&old]).await;
    // No rate limit: only single-flight can keep this to one fetch.
    let verifier = Arc::new(idp.verifier(|cfg| cfg.refetch_min_interval = Duration::ZERO));
    verifier
        .verify(&old.sign(&idp.claims("u")))
        .await
        .expect("old key");
    idp.set_keys(&[&old, &new]);
    idp.set_delay(Duration::from_millis(200));

    let token = Arc::new(new.sign(&idp.claims("u")));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (verifier, token) = (Arc::clone(&verifier), Arc::clone(&token));
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("task")
            .expect("every concurrent verify succeeds");
    }

    assert_eq!(idp.jwks_fetches(), 2, "16 concurrent verifies, one refetch");
}

#[tokio::test]
async fn stale_keys_are_refetched_after_the_cache_ttl() {
    let key = TestKey::es256("k");
    let idp = Idp::start(&[&key]).await;
    let verifier = idp.verifier(|cfg| {
        cfg.cache_ttl = Duration::from_millis(500);
        cfg.refetch_min_interval = Duration::ZERO;
    });
    let token = key.sign(&idp.claims("u"));
    verifier.verify(&token).await.expect("valid");
    verifier.verify(&token).await.expect("valid, from cache");
    assert_eq!(idp.jwks_fetches(), 1);

    tokio::time::sleep(Duration::from_millis(600)).await;
    verifier.verify(&token).await.expect("valid after refresh");

    assert_eq!(idp.jwks_fetches(), 2);
}

#[tokio::test]
async fn cached_keys_keep_verifying_while_the_jwks_server_fails_or_is_down() {
    let key = TestKey::es256("k");
    let mut idp = Idp::start(&[&key]).await;
    let verifier = idp.verifier(|cfg| {
        cfg.cache_ttl = Duration::from_millis(100);
        cfg.refetch_min_interval = Duration::ZERO;
        cfg.fetch_timeout = Duration::from_millis(500);
    });
    let token = key.sign(&idp.claims("u"));
    verifier.verify(&token).await.expect("valid");

    idp.set_failing(true);
    tokio::time::sleep(Duration::from_millis(150)).await;
    verifier
        .verify(&token)
        .await
        .expect("a 503 on refresh keeps the cached keys");
    assert_eq!(idp.jwks_fetches(), 2, "the stale cache did try a refresh");

    idp.shut_down().await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    verifier
        .verify(&token)
        .await
        .expect("a refused connection on refresh keeps the cached keys");
}

#[tokio::test]
async fn unreachable_issuer_without_cached_keys_is_keys_unavailable_and_rate_limited() {
    let key = TestKey::es256("k");
    let idp = Idp::start(&[&key]).await;
    idp.set_failing(true);
    let verifier = idp.verifier(|cfg| cfg.refetch_min_interval = Duration::from_secs(60));
    let token = key.sign(&idp.claims("u"));

    for _ in 0..5 {
        let err = verifier.verify(&token).await.expect_err("no keys");
        assert!(matches!(err, TokenError::KeysUnavailable(_)), "{err:?}");
        assert_eq!(err.code(), "token_keys_unavailable");
    }
    assert_eq!(idp.jwks_fetches(), 1, "failed fetches are rate limited too");
    let err = verifier.warm_up().await.expect_err("still no keys");
    assert!(matches!(err, TokenError::KeysUnavailable(_)), "{err:?}");
}

#[tokio::test]
async fn warm_up_fetches_the_keys_before_the_first_token() {
    let a = TestKey::es256("a");
    let b = TestKey::rs256("b");
    let idp = Idp::start(&[&a, &b]).await;
    let verifier = idp.verifier(|_| {});

    assert_eq!(verifier.warm_up().await.expect("keys"), 2);
    verifier
        .verify(&b.sign(&idp.claims("u")))
        .await
        .expect("valid");

    assert_eq!(idp.jwks_fetches(), 1, "the verify used the warmed cache");
}

#[tokio::test]
async fn jwks_body_over_one_mebibyte_is_refused() {
    let key = TestKey::es256("k");
    let idp = Idp::start(&[]).await;
    let padding = "x".repeat(1024 * 1024);
    idp.set_jwks_body(format!(r#"{{"keys":[{}],"padding":"{padding}"}}"#, key.jwk));
    let verifier = idp.verifier(|_| {});

    let err = verifier
        .verify(&key.sign(&idp.claims("u")))
        .await
        .expect_err("oversize JWKS");

    match err {
        TokenError::KeysUnavailable(why) => assert!(why.contains("bytes"), "{why}"),
        other => panic!("expected KeysUnavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn empty_key_set_does_not_replace_the_cached_keys() {
    let key = TestKey::es256("k");
    let idp = Idp::start(&[&key]).await;
    let verifier = idp.verifier(|cfg| {
        cfg.cache_ttl = Duration::from_millis(100);
        cfg.refetch_min_interval = Duration::ZERO;
    });
    let token = key.sign(&idp.claims("u"));
    verifier.verify(&token).await.expect("valid");

    idp.set_jwks_body(r#"{"keys":[]}"#.to_owned());
    tokio::time::sleep(Duration::from_millis(150)).await;
    verifier
        .verify(&token)
        .await
        .expect("the cached key survives an empty set");

    assert_eq!(idp.jwks_fetches(), 2);
}
