//! Revocations: which sessions each kind of target ends, and the live set.

use std::collections::HashSet;

use pp_model::records::{RevocationTarget, SessionRecord};
use pp_store::{SqliteStore, Store};
use uuid::Uuid;

use crate::support::{at, revocation, session, TempDb};

/// The sessions every case starts from, named for the cases below.
struct Sessions {
    r1: Uuid,
    /// alice on r1 from sid-1: every case's target names it.
    named: SessionRecord,
    /// alice on r2 from sid-2.
    alice_elsewhere: SessionRecord,
    /// bob on r1 from sid-3.
    bob_same_route: SessionRecord,
    /// carol on r3 from sid-1.
    carol_same_platform_session: SessionRecord,
    /// alice on r1 from sid-1, minted after the revocation: never marked.
    minted_later: SessionRecord,
    /// alice on r1 from sid-1, revoked before: keeps its own revoked_at.
    revoked_before: SessionRecord,
}

/// When the cases revoke.
const REVOKED_AT: i64 = 10;

async fn seed(store: &SqliteStore) -> Sessions {
    let (r1, r2, r3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let mut revoked_before = session(r1, "alice", Some("sid-1"), 0);
    revoked_before.revoked_at = Some(at(5));
    let s = Sessions {
        r1,
        named: session(r1, "alice", Some("sid-1"), 0),
        alice_elsewhere: session(r2, "alice", Some("sid-2"), 1),
        bob_same_route: session(r1, "bob", Some("sid-3"), 2),
        carol_same_platform_session: session(r3, "carol", Some("sid-1"), REVOKED_AT),
        minted_later: session(r1, "alice", Some("sid-1"), REVOKED_AT + 1),
        revoked_before,
    };
    for rec in s.all() {
        store.create_session(rec).await.expect("create");
    }
    s
}

impl Sessions {
    fn all(&self) -> [&SessionRecord; 6] {
        [
            &self.named,
            &self.alice_elsewhere,
            &self.bob_same_route,
            &self.carol_same_platform_session,
            &self.minted_later,
            &self.revoked_before,
        ]
    }
}

#[tokio::test]
async fn each_target_kind_marks_exactly_the_sessions_it_names() {
    type Case = (
        &'static str,
        fn(&Sessions) -> RevocationTarget,
        fn(&Sessions) -> Vec<Uuid>,
    );
    let cases: [Case; 4] = [
        (
            "session",
            |s| RevocationTarget::Session(s.named.id),
            |s| vec![s.named.id],
        ),
        (
            "user",
            |_| RevocationTarget::User("alice".to_owned()),
            |s| vec![s.named.id, s.alice_elsewhere.id],
        ),
        (
            "route",
            |s| RevocationTarget::Route(s.r1),
            |s| vec![s.named.id, s.bob_same_route.id],
        ),
        (
            "platform session",
            |_| RevocationTarget::PlatformSession("sid-1".to_owned()),
            // Created at the revocation instant: at or before counts.
            |s| vec![s.named.id, s.carol_same_platform_session.id],
        ),
    ];
    for (name, target, want) in cases {
        let db = TempDb::new();
        let store = db.open().await;
        let s = seed(&store).await;
        let want: HashSet<Uuid> = want(&s).into_iter().collect();

        let marked = store
            .revoke(&revocation(target(&s), REVOKED_AT))
            .await
            .expect(name);
        assert_eq!(marked, want.len() as u64, "{name}: count");

        for before in s.all() {
            let after = store
                .get_session(before.id)
                .await
                .expect("get")
                .expect("found");
            let expected = if want.contains(&before.id) {
                Some(at(REVOKED_AT))
            } else {
                before.revoked_at
            };
            assert_eq!(
                after.revoked_at, expected,
                "{name}: session of {} created at {}",
                before.user_id, before.created_at
            );
        }
    }
}

#[tokio::test]
async fn revoking_again_marks_nothing_more_and_keeps_one_revocation() {
    let db = TempDb::new();
    let store = db.open().await;
    let s = seed(&store).await;
    let mut first = revocation(RevocationTarget::User("alice".to_owned()), REVOKED_AT);
    assert_eq!(store.revoke(&first).await.expect("revoke"), 2);

    // A retry with a later expiry: one stored revocation, the later expiry.
    first.expires_at += time::Duration::hours(1);
    assert_eq!(store.revoke(&first).await.expect("retry"), 0);
    assert_eq!(
        store.live_revocations(at(0)).await.expect("live"),
        [first.clone()]
    );
    assert_eq!(
        store
            .get_session(s.named.id)
            .await
            .expect("get")
            .and_then(|r| r.revoked_at),
        Some(at(REVOKED_AT))
    );
}

#[tokio::test]
async fn a_revocation_naming_no_session_is_still_stored() {
    let db = TempDb::new();
    let store = db.open().await;
    let r = revocation(RevocationTarget::User("nobody".to_owned()), 0);
    assert_eq!(store.revoke(&r).await.expect("revoke"), 0);
    assert_eq!(store.live_revocations(at(0)).await.expect("live"), [r]);
}

#[tokio::test]
async fn live_revocations_exclude_expired_ones_and_keep_every_kind() {
    let db = TempDb::new();
    let store = db.open().await;
    let mut expired = revocation(RevocationTarget::User("old".to_owned()), 0);
    expired.expires_at = at(100);
    let live = [
        revocation(RevocationTarget::Session(Uuid::new_v4()), 1),
        revocation(RevocationTarget::User("alice".to_owned()), 2),
        revocation(RevocationTarget::Route(Uuid::new_v4()), 3),
        revocation(RevocationTarget::PlatformSession("sid-9".to_owned()), 4),
    ];
    store.revoke(&expired).await.expect("revoke expired");
    for r in &live {
        store.revoke(r).await.expect("revoke");
    }

    // Expiring at exactly `now` is expired.
    assert_eq!(store.live_revocations(at(100)).await.expect("live"), live);
    let mut all = vec![expired];
    all.extend(live);
    assert_eq!(store.live_revocations(at(99)).await.expect("live"), all);
}

#[tokio::test]
async fn repeated_revocations_of_one_target_keep_one_row_and_wake_followers_only_when_it_matters() {
    let db = TempDb::new();
    let store = db.open().await;
    let user = || RevocationTarget::User("loop".into());
    let mut feed = store.subscribe();
    feed.borrow_and_update();
    store.revoke(&revocation(user(), 10)).await.expect("first");
    assert!(
        feed.has_changed().expect("feed"),
        "a new revocation wakes followers"
    );
    feed.borrow_and_update();
    // Again within the same second, a hundred times: nothing observable.
    for _ in 0..100 {
        let mut r = revocation(user(), 10);
        r.revoked_at += time::Duration::milliseconds(1);
        store.revoke(&r).await.expect("again");
    }
    assert!(
        !feed.has_changed().expect("feed"),
        "same-second repeats wake nobody"
    );
    // A later second moves the revocation forward and wakes them.
    store.revoke(&revocation(user(), 20)).await.expect("later");
    assert!(feed.has_changed().expect("feed"));
    let live = store.live_revocations(at(0)).await.expect("live");
    assert_eq!(live.len(), 1, "one row per target: {live:?}");
    assert_eq!(live[0].revoked_at, at(20));
}
