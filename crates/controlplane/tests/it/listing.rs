//! `GET /api/v1/routes`: paging and filters.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::{api, id_of, new_route, Api};

async fn list(api: &Api, query: &str) -> Value {
    let r = api.get(&format!("/api/v1/routes{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    r.json()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect()
}

#[tokio::test]
async fn empty_store_lists_no_routes_and_no_cursor() {
    let api = api().await;
    assert_eq!(
        list(&api, "").await,
        json!({ "items": [], "next_cursor": null })
    );
}

#[tokio::test]
async fn paging_walks_three_pages_in_creation_order() {
    let api = api().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(id_of(
            &api.create(&new_route(&format!("a{i}"), &format!("host-{i}")))
                .await,
        ));
    }

    let first = list(&api, "?limit=2").await;
    assert_eq!(ids(&first), created[0..2]);
    let cursor = first["next_cursor"].as_str().expect("cursor after page 1");

    let second = list(&api, &format!("?limit=2&after={cursor}")).await;
    assert_eq!(ids(&second), created[2..4]);
    let cursor = second["next_cursor"].as_str().expect("cursor after page 2");

    let third = list(&api, &format!("?limit=2&after={cursor}")).await;
    assert_eq!(ids(&third), created[4..5]);
    assert!(third["next_cursor"].is_null(), "last page has no cursor");

    // Items are full views, public_url included.
    assert_eq!(
        first["items"][0]["public_url"],
        "https://host-0.apps.example.com/"
    );
}

#[tokio::test]
async fn default_page_holds_fifty_routes() {
    let api = api().await;
    for i in 0..51 {
        api.create(&new_route(&format!("a{i}"), &format!("host-{i}")))
            .await;
    }
    let page = list(&api, "").await;
    assert_eq!(ids(&page).len(), 50);
    assert!(page["next_cursor"].is_string());
}

#[tokio::test]
async fn filters_by_owner_and_status() {
    let api = api().await;
    let a = api.create(&new_route("owner-a", "host-a")).await;
    let b = api.create(&new_route("owner-b", "host-b")).await;
    let svc = api
        .create(&json!({
            "owner_type": "platform_service",
            "owner_id": "grafana",
            "route_mode": "path_prefix",
            "upstream": { "targets": ["grafana:3000"] },
            "status": "active",
            "org_id": "other-org"
        }))
        .await;
    let r = api
        .patch(
            &format!("/api/v1/routes/{}", id_of(&b)),
            &json!({ "status": "disabled" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    assert_eq!(ids(&list(&api, "?owner_id=owner-a").await), [id_of(&a)]);
    assert_eq!(
        ids(&list(&api, "?owner_type=platform_service").await),
        [id_of(&svc)]
    );
    assert_eq!(
        ids(&list(&api, "?owner_type=app_instance&owner_id=owner-b").await),
        [id_of(&b)]
    );
    assert_eq!(ids(&list(&api, "?status=disabled").await), [id_of(&b)]);
    assert_eq!(ids(&list(&api, "?status=active").await), [id_of(&svc)]);
    assert_eq!(
        ids(&list(&api, "?status=pending").await),
        [id_of(&a)],
        "b is disabled, svc active"
    );
    assert_eq!(ids(&list(&api, "?org_id=other-org").await), [id_of(&svc)]);
    assert_eq!(
        ids(&list(&api, "?project_id=ml-dev").await),
        [id_of(&a), id_of(&b)]
    );
    assert!(ids(&list(&api, "?owner_id=nobody").await).is_empty());
}

#[tokio::test]
async fn deleted_routes_are_listed_only_with_include_deleted() {
    let api = api().await;
    let kept = api.create(&new_route("a1", "host-1")).await;
    let gone = api.create(&new_route("a2", "host-2")).await;
    api.delete(&format!("/api/v1/routes/{}", id_of(&gone)))
        .await;

    assert_eq!(ids(&list(&api, "").await), [id_of(&kept)]);
    assert_eq!(
        ids(&list(&api, "?include_deleted=true").await),
        [id_of(&kept), id_of(&gone)]
    );
}

#[tokio::test]
async fn limit_out_of_range_is_bad_request_naming_limit() {
    let api = api().await;
    for limit in ["0", "501", "-1", "abc", "", "4294967296"] {
        let error = api
            .get(&format!("/api/v1/routes?limit={limit}"))
            .await
            .assert_error(400, "bad_request");
        assert_eq!(error["field"], "limit", "limit={limit}");
        assert!(error["message"]
            .as_str()
            .is_some_and(|m| m.contains("limit")));
    }
    // The bounds themselves are accepted.
    list(&api, "?limit=1").await;
    list(&api, "?limit=500").await;
}

#[tokio::test]
async fn malformed_query_values_are_bad_request_naming_the_parameter() {
    let api = api().await;
    for (query, field) in [
        ("after=not-a-uuid", "after"),
        ("status=sleeping", "status"),
        ("owner_type=robot", "owner_type"),
        ("include_deleted=yes", "include_deleted"),
        ("colour=blue", "colour"),
        ("limit=2&limit=3", "limit"),
    ] {
        let error = api
            .get(&format!("/api/v1/routes?{query}"))
            .await
            .assert_error(400, "bad_request");
        assert_eq!(error["field"], field, "{query}");
    }
}
