//! Browser sessions: one-time launch codes and listing.

use std::sync::Arc;

use pp_model::records::{RevocationTarget, SessionFilter, SessionRecord};
use pp_store::{Store, StoreError};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::support::{at, revocation, session, TempDb, LAUNCH_SECONDS};

#[tokio::test]
async fn created_session_reads_back_equal_including_its_principal() {
    let db = TempDb::new();
    let store = db.open().await;
    let s = session(Uuid::new_v4(), "alice", Some("sid-1"), 0);
    assert_eq!(s.principal.roles.len(), 2, "builder gives roles to store");
    store.create_session(&s).await.expect("create");

    assert_eq!(store.get_session(s.id).await.expect("get"), Some(s));
    assert_eq!(store.get_session(Uuid::new_v4()).await.expect("get"), None);
}

#[tokio::test]
async fn two_sessions_with_one_launch_code_are_refused() {
    let db = TempDb::new();
    let store = db.open().await;
    let first = session(Uuid::new_v4(), "alice", None, 0);
    store.create_session(&first).await.expect("create");
    let mut twin = session(first.route_id, "bob", None, 1);
    twin.launch_code_hash = first.launch_code_hash.clone();
    let err = store.create_session(&twin).await.expect_err("code taken");
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
}

#[tokio::test]
async fn a_launch_code_redeems_once_then_never_again() {
    let db = TempDb::new();
    let store = db.open().await;
    let s = session(Uuid::new_v4(), "alice", None, 0);
    store.create_session(&s).await.expect("create");

    let redeemed = store
        .redeem_launch_code(&s.launch_code_hash, s.route_id, at(1))
        .await
        .expect("redeem")
        .expect("first redemption succeeds");
    let mut want = s.clone();
    want.redeemed_at = Some(at(1));
    assert_eq!(redeemed, want);
    assert_eq!(store.get_session(s.id).await.expect("get"), Some(want));

    let again = store
        .redeem_launch_code(&s.launch_code_hash, s.route_id, at(2))
        .await
        .expect("redeem again");
    assert_eq!(again, None);
    let stored = store.get_session(s.id).await.expect("get").expect("found");
    assert_eq!(
        stored.redeemed_at,
        Some(at(1)),
        "the first redemption stands"
    );
}

#[tokio::test]
async fn a_launch_code_does_not_redeem_for_another_route_late_or_revoked() {
    let db = TempDb::new();
    let store = db.open().await;
    // (case, wrong route?, redeem at, revoke first?)
    let cases = [
        ("another route", true, 1, false),
        ("at its expiry instant", false, LAUNCH_SECONDS, false),
        ("after expiry", false, LAUNCH_SECONDS + 1, false),
        ("revoked", false, 1, true),
    ];
    for (case, wrong_route, when, revoke) in cases {
        let s = session(Uuid::new_v4(), "alice", None, 0);
        store.create_session(&s).await.expect("create");
        if revoke {
            let marked = store
                .revoke(&revocation(RevocationTarget::Session(s.id), 0))
                .await
                .expect("revoke");
            assert_eq!(marked, 1, "{case}");
        }
        let route = if wrong_route {
            Uuid::new_v4()
        } else {
            s.route_id
        };
        let got = store
            .redeem_launch_code(&s.launch_code_hash, route, at(when))
            .await
            .expect(case);
        assert_eq!(got, None, "{case}");
        let stored = store.get_session(s.id).await.expect("get").expect("found");
        assert_eq!(stored.redeemed_at, None, "{case}: nothing marked");
    }
    let unknown = store
        .redeem_launch_code("no-such-code", Uuid::new_v4(), at(1))
        .await
        .expect("unknown code");
    assert_eq!(unknown, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_redemptions_of_one_code_succeed_exactly_once() {
    let db = TempDb::new();
    let store = Arc::new(db.open().await);
    let s = session(Uuid::new_v4(), "alice", None, 0);
    store.create_session(&s).await.expect("create");

    let start = Arc::new(Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, start) = (Arc::clone(&store), Arc::clone(&start));
            let (code, route) = (s.launch_code_hash.clone(), s.route_id);
            tokio::spawn(async move {
                start.wait().await;
                store.redeem_launch_code(&code, route, at(1)).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(won) = task.await.expect("task").expect("redeem") {
            winners.push(won);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners[0].id, s.id);
}

#[tokio::test]
async fn list_filters_by_route_user_and_liveness() {
    let db = TempDb::new();
    let store = db.open().await;
    let (r1, r2) = (Uuid::new_v4(), Uuid::new_v4());
    let a1 = session(r1, "alice", None, 0);
    let a2 = session(r2, "alice", None, 1);
    let b1 = session(r1, "bob", None, 2);
    let mut expired = session(r1, "bob", None, 3);
    expired.expires_at = at(50);
    let revoked = session(r2, "carol", None, 4);
    for s in [&a1, &a2, &b1, &expired, &revoked] {
        store.create_session(s).await.expect("create");
    }
    store
        .revoke(&revocation(RevocationTarget::Session(revoked.id), 40))
        .await
        .expect("revoke");

    let ids = |v: &[&SessionRecord]| v.iter().map(|s| s.id).collect::<Vec<_>>();
    let cases = [
        (
            "all",
            SessionFilter::default(),
            vec![&a1, &a2, &b1, &expired, &revoked],
        ),
        (
            "route",
            SessionFilter {
                route_id: Some(r1),
                ..SessionFilter::default()
            },
            vec![&a1, &b1, &expired],
        ),
        (
            "user",
            SessionFilter {
                user_id: Some("alice".to_owned()),
                ..SessionFilter::default()
            },
            vec![&a1, &a2],
        ),
        (
            "live after the revocation and the expiry",
            SessionFilter {
                live_at: Some(at(60)),
                ..SessionFilter::default()
            },
            vec![&a1, &a2, &b1],
        ),
        (
            "live before either",
            SessionFilter {
                live_at: Some(at(30)),
                ..SessionFilter::default()
            },
            vec![&a1, &a2, &b1, &expired, &revoked],
        ),
        (
            "route and live",
            SessionFilter {
                route_id: Some(r1),
                live_at: Some(at(60)),
                ..SessionFilter::default()
            },
            vec![&a1, &b1],
        ),
    ];
    for (name, mut filter, want) in cases {
        filter.limit = 100;
        let page = store.list_sessions(&filter).await.expect(name);
        let got: Vec<Uuid> = page.items.iter().map(|s| s.id).collect();
        assert_eq!(got, ids(&want), "{name}");
        assert_eq!(page.next, None, "{name}");
    }
}

#[tokio::test]
async fn session_pages_return_every_session_once_in_creation_order() {
    let db = TempDb::new();
    let store = db.open().await;
    let route = Uuid::new_v4();
    let mut all: Vec<SessionRecord> = (0..7)
        .map(|i| session(route, "alice", None, (i * 5) % 3))
        .collect();
    for s in &all {
        store.create_session(s).await.expect("create");
    }
    all.sort_by_key(|s| (s.created_at, s.id));

    let mut filter = SessionFilter {
        limit: 3,
        ..SessionFilter::default()
    };
    let mut listed = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.list_sessions(&filter).await.expect("list");
        pages += 1;
        assert!(pages < 100, "paging does not terminate");
        listed.extend(page.items.iter().map(|s| s.id));
        match page.next {
            Some(next) => {
                assert_eq!(page.items.last().map(|s| s.id), Some(next));
                filter.after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(listed, all.iter().map(|s| s.id).collect::<Vec<_>>());
    assert_eq!(pages, 3);
}
