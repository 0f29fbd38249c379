//! The audit log: batches, filters, time windows, newest-first paging.

use pp_model::records::{AuditEntry, AuditFilter, AuditOutcome};
use pp_store::{SqliteStore, Store};
use uuid::Uuid;

use crate::support::{at, audit_entry, TempDb};

fn ids(entries: &[AuditEntry]) -> Vec<Uuid> {
    entries.iter().map(|e| e.id).collect()
}

fn everything() -> AuditFilter {
    AuditFilter {
        limit: 500,
        ..AuditFilter::default()
    }
}

/// Entries of every shape the filters tell apart, appended in one batch.
async fn seed(store: &SqliteStore) -> Vec<AuditEntry> {
    let route = Uuid::new_v4();
    let mut denied = audit_entry("access.denied", 3);
    denied.outcome = AuditOutcome::Denied;
    denied.reason = Some("cross_tenant".to_owned());
    denied.org_id = Some("globex".to_owned());
    denied.project_id = None;
    denied.route_id = Some(route);
    denied.user_id = Some("mallory".to_owned());
    denied.actor = None;
    let mut redeemed = audit_entry("launch.redeemed", 2);
    redeemed.route_id = Some(route);
    let mut other_project = audit_entry("route.created", 1);
    other_project.project_id = Some("web".to_owned());
    other_project.user_id = None;
    let entries = vec![
        audit_entry("session.issued", 0),
        other_project,
        redeemed,
        denied,
        audit_entry("session.issued", 4),
    ];
    store.append_audit(&entries).await.expect("append");
    entries
}

#[tokio::test]
async fn appended_entries_read_back_equal_newest_first() {
    let db = TempDb::new();
    let store = db.open().await;
    let entries = seed(&store).await;

    let page = store.list_audit(&everything()).await.expect("list");
    let mut want = entries;
    want.reverse();
    assert_eq!(page.items, want);
    assert_eq!(page.next, None);
}

#[tokio::test]
async fn an_empty_batch_stores_nothing_and_a_bad_batch_stores_none_of_it() {
    let db = TempDb::new();
    let store = db.open().await;
    store.append_audit(&[]).await.expect("empty batch");
    let kept = audit_entry("session.issued", 0);
    store
        .append_audit(std::slice::from_ref(&kept))
        .await
        .expect("append");

    // The second entry reuses an id: the whole batch is refused.
    let mut dup = audit_entry("session.issued", 2);
    dup.id = kept.id;
    store
        .append_audit(&[audit_entry("launch.redeemed", 1), dup])
        .await
        .expect_err("duplicate id");
    let page = store.list_audit(&everything()).await.expect("list");
    assert_eq!(page.items, [kept]);
}

#[tokio::test]
async fn each_filter_narrows_the_log() {
    let db = TempDb::new();
    let store = db.open().await;
    let e = seed(&store).await;
    let route = e[2].route_id;
    let cases = [
        (
            "org",
            AuditFilter {
                org_id: Some("acme".to_owned()),
                ..everything()
            },
            vec![&e[4], &e[2], &e[1], &e[0]],
        ),
        (
            "org and project",
            AuditFilter {
                org_id: Some("acme".to_owned()),
                project_id: Some("web".to_owned()),
                ..everything()
            },
            vec![&e[1]],
        ),
        (
            "route",
            AuditFilter {
                route_id: route,
                ..everything()
            },
            vec![&e[3], &e[2]],
        ),
        (
            "user",
            AuditFilter {
                user_id: Some("mallory".to_owned()),
                ..everything()
            },
            vec![&e[3]],
        ),
        (
            "action",
            AuditFilter {
                action: Some("session.issued".to_owned()),
                ..everything()
            },
            vec![&e[4], &e[0]],
        ),
        (
            "since is inclusive, until exclusive",
            AuditFilter {
                since: Some(at(1)),
                until: Some(at(3)),
                ..everything()
            },
            vec![&e[2], &e[1]],
        ),
        (
            "action within a window",
            AuditFilter {
                action: Some("session.issued".to_owned()),
                since: Some(at(1)),
                ..everything()
            },
            vec![&e[4]],
        ),
        (
            "nothing",
            AuditFilter {
                user_id: Some("nobody".to_owned()),
                ..everything()
            },
            vec![],
        ),
    ];
    for (name, filter, want) in cases {
        let page = store.list_audit(&filter).await.expect(name);
        let want: Vec<Uuid> = want.iter().map(|e| e.id).collect();
        assert_eq!(ids(&page.items), want, "{name}");
    }
}

#[tokio::test]
async fn pages_walk_back_from_the_newest_entry_without_loss() {
    let db = TempDb::new();
    let store = db.open().await;
    // Ties in `at`, broken by id (descending).
    let mut entries: Vec<AuditEntry> = (0..9)
        .map(|i| audit_entry("session.issued", (i * 2) % 3))
        .collect();
    store.append_audit(&entries).await.expect("append");
    entries.sort_by_key(|e| std::cmp::Reverse((e.at, e.id)));

    let mut filter = AuditFilter {
        limit: 4,
        ..AuditFilter::default()
    };
    let mut listed = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.list_audit(&filter).await.expect("list");
        pages += 1;
        assert!(pages < 100, "paging does not terminate");
        listed.extend(ids(&page.items));
        match page.next {
            Some(next) => {
                assert_eq!(page.items.last().map(|e| e.id), Some(next));
                filter.before = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(listed, ids(&entries));
    assert_eq!(pages, 3);

    let unknown = store
        .list_audit(&AuditFilter {
            before: Some(Uuid::new_v4()),
            ..everything()
        })
        .await
        .expect("list");
    assert!(unknown.items.is_empty());
}
