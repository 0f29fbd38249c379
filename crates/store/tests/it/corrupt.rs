//! Rows the model cannot represent are reported, never a panic.

use pp_store::{RouteFilter, Store, StoreError};

use crate::support::{app_route, TempDb};

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

    let err = store.live_routes().await.expect_err("corrupt");
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("policy")),
        "{err:?}"
    );
}
