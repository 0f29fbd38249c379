//! Service tokens: stored by hash, listed newest first, revoked once.

use pp_store::{Store, StoreError};
use uuid::Uuid;

use crate::support::{at, service_token, TempDb};

#[tokio::test]
async fn created_token_reads_back_equal_including_its_hash() {
    let db = TempDb::new();
    let store = db.open().await;
    let token = service_token("ci", "acme", Some("ml-dev"), 0);
    store.create_service_token(&token).await.expect("create");

    let got = store
        .get_service_token(token.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(got.token_hash, token.token_hash);
    assert_eq!(got, token);
    assert_eq!(
        store.get_service_token(Uuid::new_v4()).await.expect("get"),
        None
    );
}

#[tokio::test]
async fn two_tokens_with_one_hash_are_refused() {
    let db = TempDb::new();
    let store = db.open().await;
    let first = service_token("a", "acme", None, 0);
    store.create_service_token(&first).await.expect("create");
    let mut twin = service_token("b", "acme", None, 1);
    twin.token_hash = first.token_hash.clone();
    let err = store
        .create_service_token(&twin)
        .await
        .expect_err("hash taken");
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert_eq!(store.get_service_token(twin.id).await.expect("get"), None);
}

#[tokio::test]
async fn revoking_sets_revoked_at_once() {
    let db = TempDb::new();
    let store = db.open().await;
    let token = service_token("ci", "acme", None, 0);
    store.create_service_token(&token).await.expect("create");

    assert!(store
        .revoke_service_token(token.id, at(10))
        .await
        .expect("revoke"));
    assert!(!store
        .revoke_service_token(token.id, at(20))
        .await
        .expect("revoke again"));
    assert!(!store
        .revoke_service_token(Uuid::new_v4(), at(20))
        .await
        .expect("revoke unknown"));
    let got = store
        .get_service_token(token.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(got.revoked_at, Some(at(10)), "the first revocation stands");
}

#[tokio::test]
async fn list_is_newest_first_by_org_and_project_revoked_included() {
    let db = TempDb::new();
    let store = db.open().await;
    let old = service_token("old", "acme", None, 0);
    let proj = service_token("proj", "acme", Some("ml-dev"), 1);
    let revoked = service_token("revoked", "acme", Some("ml-dev"), 2);
    let other = service_token("other", "globex", Some("ml-dev"), 3);
    for t in [&old, &proj, &revoked, &other] {
        store.create_service_token(t).await.expect("create");
    }
    assert!(store
        .revoke_service_token(revoked.id, at(5))
        .await
        .expect("revoke"));

    let names = |tokens: Vec<pp_model::records::ServiceToken>| -> Vec<String> {
        tokens.into_iter().map(|t| t.name).collect()
    };
    let cases: [(Option<&str>, Option<&str>, &[&str]); 4] = [
        (None, None, &["other", "revoked", "proj", "old"]),
        (Some("acme"), None, &["revoked", "proj", "old"]),
        (Some("acme"), Some("ml-dev"), &["revoked", "proj"]),
        (Some("initech"), None, &[]),
    ];
    for (org, project, want) in cases {
        let got = store.list_service_tokens(org, project).await.expect("list");
        assert_eq!(names(got), want, "{org:?} {project:?}");
    }
}

#[tokio::test]
async fn live_tokens_exclude_revoked_and_expired_ones() {
    let db = TempDb::new();
    let store = db.open().await;
    let live = service_token("live", "acme", None, 0);
    let revoked = service_token("revoked", "acme", None, 0);
    let mut expired = service_token("expired", "acme", None, 0);
    expired.expires_at = at(100);
    let mut expiring_now = service_token("expiring-now", "acme", None, 0);
    expiring_now.expires_at = at(200);
    for t in [&live, &revoked, &expired, &expiring_now] {
        store.create_service_token(t).await.expect("create");
    }
    assert!(store
        .revoke_service_token(revoked.id, at(1))
        .await
        .expect("revoke"));

    let got = store.live_service_tokens(at(200)).await.expect("live");
    assert_eq!(got, [live]);
}
