//! Rows the model cannot represent are reported, never a panic.

use pp_model::records::{AuditFilter, RevocationTarget};
use pp_model::Role;
use pp_store::{RouteFilter, Store, StoreError};
use sqlx::SqlitePool;
use uuid::Uuid;

use crate::support::{
    app_route, at, audit_entry, grant, live_routes, revocation, service_token, session, TempDb,
};

#[tokio::test]
async fn a_corrupt_column_is_reported_with_route_id_and_column_name() {
    let db = TempDb::new();
    let store = db.open().await;
    let raw = db.raw().await;
    let cases = [
        ("upstream", "{not json"),
        ("adapter_overrides", "[]"),
        ("limits", r#"{"max_connections": "many"}"#),
        ("policy", ""),
        ("status", "sleeping"),
        ("owner_type", "robot"),
        ("route_mode", "carrier_pigeon"),
        ("created_at", "yesterday"),
        ("deleted_at", "2025-01-01"),
    ];
    for (i, (column, value)) in cases.into_iter().enumerate() {
        let route = app_route(&format!("o{i}"), None);
        store.create_route(&route).await.expect("create");
        // Columns come from the fixed list above, never from input.
        sqlx::query(&format!(
            "UPDATE platform_proxy_routes SET {column} = ? WHERE id = ?"
        ))
        .bind(value)
        .bind(route.id.to_string())
        .execute(&raw)
        .await
        .expect("corrupt the row");

        let err = store.get_route(route.id).await.expect_err(column);
        let StoreError::Corrupt(message) = &err else {
            panic!("{column}: expected Corrupt, got {err:?}");
        };
        assert!(
            message.contains(&route.id.to_string()),
            "{column}: {message}"
        );
        assert!(message.contains(column), "{column}: {message}");

        let listed = store
            .list_routes(&RouteFilter {
                include_deleted: true,
                limit: 500,
                ..RouteFilter::default()
            })
            .await;
        assert!(
            matches!(listed, Err(StoreError::Corrupt(_))),
            "{column}: list"
        );

        // Repair it so the next case sees exactly one bad row.
        sqlx::query("DELETE FROM platform_proxy_routes WHERE id = ?")
            .bind(route.id.to_string())
            .execute(&raw)
            .await
            .expect("remove the row");
    }
}

#[tokio::test]
async fn live_routes_reports_a_corrupt_row_instead_of_skipping_it() {
    let db = TempDb::new();
    let store = db.open().await;
    let route = app_route("a1", None);
    store.create_route(&route).await.expect("create");
    let raw = db.raw().await;
    sqlx::query("UPDATE platform_proxy_routes SET policy = '{' WHERE id = ?")
        .bind(route.id.to_string())
        .execute(&raw)
        .await
        .expect("corrupt the row");

    let err = live_routes(&store).await.expect_err("corrupt");
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("policy")),
        "{err:?}"
    );
}

/// Overwrites one column of the row keyed `key_column = key`. Table and
/// column names come from the literals of the test below, never from input.
async fn spoil(
    raw: &SqlitePool,
    table: &str,
    column: &str,
    value: &str,
    key_column: &str,
    key: &str,
) {
    sqlx::query(&format!(
        "UPDATE {table} SET {column} = ? WHERE {key_column} = ?"
    ))
    .bind(value)
    .bind(key)
    .execute(raw)
    .await
    .expect("corrupt the row");
}

fn assert_names(err: &StoreError, parts: &[&str]) {
    let StoreError::Corrupt(message) = err else {
        panic!("expected Corrupt, got {err:?}");
    };
    for part in parts {
        assert!(message.contains(part), "{part:?} missing from {message:?}");
    }
}

#[tokio::test]
async fn corrupt_identity_rows_are_reported_naming_table_row_and_column() {
    let db = TempDb::new();
    let store = db.open().await;
    let raw = db.raw().await;

    let g = grant("alice", "acme", None, Role::Viewer, 0);
    store.create_grant(&g).await.expect("grant");
    let id = g.id.to_string();
    spoil(&raw, "platform_proxy_grants", "role", "overlord", "id", &id).await;
    let err = store.get_grant(g.id).await.expect_err("grant role");
    assert_names(&err, &["platform_proxy_grants", &id, "role"]);
    let err = store.all_grants().await.expect_err("all grants");
    assert_names(&err, &["platform_proxy_grants", "role"]);

    let t = service_token("ci", "acme", None, 0);
    store.create_service_token(&t).await.expect("token");
    let id = t.id.to_string();
    spoil(
        &raw,
        "platform_proxy_service_tokens",
        "expires_at",
        "soon",
        "id",
        &id,
    )
    .await;
    let err = store
        .get_service_token(t.id)
        .await
        .expect_err("token expiry");
    assert_names(&err, &["platform_proxy_service_tokens", &id, "expires_at"]);
    let err = store
        .live_service_tokens(at(0))
        .await
        .expect_err("live tokens");
    assert_names(&err, &["expires_at"]);

    let s = session(Uuid::new_v4(), "alice", None, 0);
    store.create_session(&s).await.expect("session");
    let id = s.id.to_string();
    spoil(
        &raw,
        "platform_proxy_sessions",
        "principal",
        r#"{"kind":"alien"}"#,
        "id",
        &id,
    )
    .await;
    let err = store
        .get_session(s.id)
        .await
        .expect_err("session principal");
    assert_names(&err, &["platform_proxy_sessions", &id, "principal"]);
    let err = store
        .redeem_launch_code(&s.launch_code_hash, s.route_id, at(1))
        .await
        .expect_err("redeem a corrupt session");
    assert_names(&err, &["principal"]);

    let e = audit_entry("session.issued", 0);
    store
        .append_audit(std::slice::from_ref(&e))
        .await
        .expect("audit");
    let id = e.id.to_string();
    spoil(
        &raw,
        "platform_proxy_audit",
        "route_id",
        "not-a-uuid",
        "id",
        &id,
    )
    .await;
    let err = store
        .list_audit(&AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .expect_err("audit route id");
    assert_names(&err, &["platform_proxy_audit", &id, "route_id"]);

    let r = revocation(RevocationTarget::User("alice".to_owned()), 0);
    store.revoke(&r).await.expect("revoke");
    spoil(
        &raw,
        "platform_proxy_revocations",
        "kind",
        "everyone",
        "value",
        "alice",
    )
    .await;
    let err = store
        .live_revocations(at(0))
        .await
        .expect_err("revocation kind");
    assert_names(
        &err,
        &["platform_proxy_revocations", "everyone:alice", "kind"],
    );

    let route = app_route("a1", None);
    store.create_route(&route).await.expect("route");
    let id = route.id.to_string();
    spoil(
        &raw,
        "platform_proxy_routes",
        "auth_bridge",
        r#"{"mode":"carrier_pigeon"}"#,
        "id",
        &id,
    )
    .await;
    let err = store.get_route(route.id).await.expect_err("auth bridge");
    assert_names(&err, &["platform_proxy_routes", &id, "auth_bridge"]);
}
