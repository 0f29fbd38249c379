//! Grants: one per subject and scope, filtered listing, keyset paging.

use pp_model::records::Grant;
use pp_model::Role;
use pp_store::{GrantFilter, SqliteStore, Store, StoreError};
use uuid::Uuid;

use crate::support::{grant, TempDb};

fn ids(grants: &[Grant]) -> Vec<Uuid> {
    grants.iter().map(|g| g.id).collect()
}

/// Every page of `filter` from the start, checking each cursor names the
/// last item of its page.
async fn all_pages(store: &SqliteStore, filter: &GrantFilter) -> (usize, Vec<Grant>) {
    let mut filter = filter.clone();
    let mut items = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.list_grants(&filter).await.expect("list");
        pages += 1;
        assert!(pages < 1000, "paging does not terminate");
        if let Some(next) = page.next {
            assert_eq!(page.items.last().map(|g| g.id), Some(next));
        }
        items.extend(page.items);
        match page.next {
            Some(next) => filter.after = Some(next),
            None => return (pages, items),
        }
    }
}

#[tokio::test]
async fn created_grant_reads_back_equal_and_unknown_is_none() {
    let db = TempDb::new();
    let store = db.open().await;
    let org = grant("alice", "acme", None, Role::Admin, 0);
    let project = grant("alice", "acme", Some("ml-dev"), Role::Viewer, 1);
    store.create_grant(&org).await.expect("create org grant");
    store
        .create_grant(&project)
        .await
        .expect("a project grant beside the org grant");

    assert_eq!(
        store.get_grant(org.id).await.expect("get"),
        Some(org.clone())
    );
    assert_eq!(
        store.get_grant(project.id).await.expect("get"),
        Some(project.clone())
    );
    assert_eq!(store.get_grant(Uuid::new_v4()).await.expect("get"), None);
    assert_eq!(store.all_grants().await.expect("all"), [org, project]);
}

#[tokio::test]
async fn a_second_grant_on_the_same_scope_is_refused_naming_the_first() {
    for project in [None, Some("ml-dev")] {
        let db = TempDb::new();
        let store = db.open().await;
        let first = grant("alice", "acme", project, Role::Viewer, 0);
        store.create_grant(&first).await.expect("create first");

        // Another role on the same scope is still the same scope.
        let err = store
            .create_grant(&grant("alice", "acme", project, Role::Admin, 5))
            .await
            .expect_err("scope taken");
        assert!(
            matches!(&err, StoreError::GrantExists { subject, existing }
                if subject == "alice" && *existing == first.id),
            "{project:?}: {err:?}"
        );
        assert_eq!(
            store.all_grants().await.expect("all"),
            [first],
            "{project:?}"
        );

        // Other subjects, orgs and projects are other scopes.
        for other in [
            grant("bob", "acme", project, Role::Viewer, 1),
            grant("alice", "globex", project, Role::Viewer, 2),
            grant("alice", "acme", Some("other"), Role::Viewer, 3),
        ] {
            store.create_grant(&other).await.expect("other scope");
        }
    }
}

#[tokio::test]
async fn reusing_a_grant_id_on_another_scope_is_a_database_error() {
    let db = TempDb::new();
    let store = db.open().await;
    let first = grant("alice", "acme", None, Role::Viewer, 0);
    store.create_grant(&first).await.expect("create");
    let mut again = grant("bob", "acme", None, Role::Viewer, 1);
    again.id = first.id;
    let err = store.create_grant(&again).await.expect_err("id taken");
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
}

#[tokio::test]
async fn deleting_a_grant_frees_its_scope() {
    let db = TempDb::new();
    let store = db.open().await;
    let g = grant("alice", "acme", Some("ml-dev"), Role::Member, 0);
    store.create_grant(&g).await.expect("create");

    assert!(store.delete_grant(g.id).await.expect("delete"));
    assert!(!store.delete_grant(g.id).await.expect("delete again"));
    assert_eq!(store.get_grant(g.id).await.expect("get"), None);
    let again = grant("alice", "acme", Some("ml-dev"), Role::Admin, 1);
    store.create_grant(&again).await.expect("scope is free");
    assert_eq!(store.all_grants().await.expect("all"), [again]);
}

#[tokio::test]
async fn list_filters_by_subject_org_and_project() {
    let db = TempDb::new();
    let store = db.open().await;
    let a_org = grant("alice", "acme", None, Role::Admin, 0);
    let a_proj = grant("alice", "acme", Some("ml-dev"), Role::Member, 1);
    let b_proj = grant("bob", "acme", Some("ml-dev"), Role::Viewer, 2);
    let b_other = grant("bob", "globex", Some("ml-dev"), Role::Viewer, 3);
    for g in [&a_org, &a_proj, &b_proj, &b_other] {
        store.create_grant(g).await.expect("create");
    }
    let cases = [
        (
            "all",
            GrantFilter::default(),
            vec![&a_org, &a_proj, &b_proj, &b_other],
        ),
        (
            "subject",
            GrantFilter {
                subject: Some("alice".to_owned()),
                ..GrantFilter::default()
            },
            vec![&a_org, &a_proj],
        ),
        (
            "org",
            GrantFilter {
                org_id: Some("acme".to_owned()),
                ..GrantFilter::default()
            },
            vec![&a_org, &a_proj, &b_proj],
        ),
        (
            "org and project",
            GrantFilter {
                org_id: Some("acme".to_owned()),
                project_id: Some("ml-dev".to_owned()),
                ..GrantFilter::default()
            },
            vec![&a_proj, &b_proj],
        ),
        (
            "subject and org",
            GrantFilter {
                subject: Some("bob".to_owned()),
                org_id: Some("globex".to_owned()),
                ..GrantFilter::default()
            },
            vec![&b_other],
        ),
        (
            "nobody",
            GrantFilter {
                subject: Some("carol".to_owned()),
                ..GrantFilter::default()
            },
            vec![],
        ),
    ];
    for (name, mut filter, want) in cases {
        filter.limit = 100;
        let page = store.list_grants(&filter).await.expect(name);
        let want: Vec<Uuid> = want.iter().map(|g| g.id).collect();
        assert_eq!(ids(&page.items), want, "{name}");
        assert_eq!(page.next, None, "{name}");
    }
}

#[tokio::test]
async fn pages_return_every_grant_once_in_creation_order() {
    let db = TempDb::new();
    let store = db.open().await;
    // Ties in created_at, broken by id.
    let mut grants: Vec<Grant> = (0..11)
        .map(|i| {
            grant(
                &format!("user-{i}"),
                "acme",
                None,
                Role::Viewer,
                (i * 3) % 4,
            )
        })
        .collect();
    for g in &grants {
        store.create_grant(g).await.expect("create");
    }
    grants.sort_by_key(|g| (g.created_at, g.id));

    let (pages, listed) = all_pages(
        &store,
        &GrantFilter {
            limit: 4,
            ..GrantFilter::default()
        },
    )
    .await;
    assert_eq!(ids(&listed), ids(&grants));
    assert_eq!(pages, 3);

    // A page ending exactly at the last grant has no next.
    let exact = store
        .list_grants(&GrantFilter {
            limit: 11,
            ..GrantFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(exact.items.len(), 11);
    assert_eq!(exact.next, None);

    // Limit 0 is clamped up to one.
    let one = store
        .list_grants(&GrantFilter::default())
        .await
        .expect("list");
    assert_eq!(ids(&one.items), ids(&grants[..1]));
    assert_eq!(one.next, Some(grants[0].id));
}
