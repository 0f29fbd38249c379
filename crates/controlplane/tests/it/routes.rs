//! Create, read, update and delete of `/api/v1/routes`.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{api, id_of, new_route};

#[tokio::test]
async fn create_returns_201_with_location_public_url_and_defaults() {
    let api = api().await;
    let r = api
        .post("/api/v1/routes", &new_route("a7f9c2", "jupyter-a7f9"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let body = r.json();
    let id = id_of(&body);
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/routes/{id}").as_str())
    );
    assert_eq!(body["public_url"], "https://jupyter-a7f9.apps.example.com/");
    assert_eq!(body["public_path"], "/");
    assert_eq!(body["proxy_pool_id"], "shared");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["owner_id"], "a7f9c2");
    assert_eq!(body["adapter"], "jupyterlab");
    assert_eq!(body["limits"]["max_connections"], 20);
    assert!(body["deleted_at"].is_null());
}

#[tokio::test]
async fn path_prefix_route_gets_platform_path_in_public_url() {
    let api = api().await;
    let body = api
        .create(&json!({
            "owner_type": "app_instance",
            "owner_id": "a7f9c2",
            "endpoint_name": "web",
            "route_mode": "path_prefix",
            "upstream": { "targets": ["10.0.3.7:8888"] }
        }))
        .await;
    assert_eq!(body["public_path"], "/w/a7f9c2/web/");
    assert_eq!(body["public_url"], "https://apps.example.com/w/a7f9c2/web/");
}

#[tokio::test]
async fn get_returns_the_created_route() {
    let api = api().await;
    let created = api.create(&new_route("a1", "host-a1")).await;
    let r = api
        .get(&format!("/api/v1/routes/{}", id_of(&created)))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), created);
}

#[tokio::test]
async fn get_unknown_id_is_route_not_found() {
    let api = api().await;
    let r = api
        .get(&format!("/api/v1/routes/{}", uuid::Uuid::new_v4()))
        .await;
    r.assert_error(404, "route_not_found");
}

#[tokio::test]
async fn malformed_route_id_is_route_not_found_for_every_method() {
    let api = api().await;
    for uri in ["/api/v1/routes/not-a-uuid", "/api/v1/routes/%FF%FE"] {
        api.get(uri).await.assert_error(404, "route_not_found");
        api.delete(uri).await.assert_error(404, "route_not_found");
        api.patch(uri, &json!({}))
            .await
            .assert_error(404, "route_not_found");
    }
}

#[tokio::test]
async fn patch_changes_fields_and_bumps_updated_at() {
    let api = api().await;
    let created = api.create(&new_route("a1", "host-a1")).await;
    let uri = format!("/api/v1/routes/{}", id_of(&created));
    let r = api
        .patch(
            &uri,
            &json!({
                "route_host": "renamed-a1",
                "status": "active",
                "upstream": { "targets": ["10.0.0.9:9000", "10.0.0.10:9000"] }
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let body = r.json();
    assert_eq!(body["route_host"], "renamed-a1");
    assert_eq!(body["public_url"], "https://renamed-a1.apps.example.com/");
    assert_eq!(body["status"], "active");
    assert_eq!(body["upstream"]["targets"][1], "10.0.0.10:9000");
    assert_eq!(body["created_at"], created["created_at"]);
    assert_eq!(body["adapter"], "jupyterlab", "untouched field kept");
    // The change is stored, not only echoed.
    assert_eq!(api.get(&uri).await.json(), body);
}

#[tokio::test]
async fn patch_unknown_route_is_route_not_found() {
    let api = api().await;
    api.patch(
        &format!("/api/v1/routes/{}", uuid::Uuid::new_v4()),
        &json!({ "status": "active" }),
    )
    .await
    .assert_error(404, "route_not_found");
}

#[tokio::test]
async fn delete_hides_route_unless_include_deleted() {
    let api = api().await;
    let created = api.create(&new_route("a1", "host-a1")).await;
    let uri = format!("/api/v1/routes/{}", id_of(&created));

    let r = api.delete(&uri).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());

    api.get(&uri).await.assert_error(404, "route_not_found");
    api.get(&format!("{uri}?include_deleted=false"))
        .await
        .assert_error(404, "route_not_found");
    let r = api.get(&format!("{uri}?include_deleted=true")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json()["deleted_at"].is_string());

    // A deleted route can be neither deleted again nor patched.
    api.delete(&uri).await.assert_error(404, "route_not_found");
    api.patch(&uri, &json!({ "status": "active" }))
        .await
        .assert_error(404, "route_not_found");
}

#[tokio::test]
async fn delete_unknown_route_is_route_not_found() {
    let api = api().await;
    api.delete(&format!("/api/v1/routes/{}", uuid::Uuid::new_v4()))
        .await
        .assert_error(404, "route_not_found");
}

#[tokio::test]
async fn deleted_route_frees_its_host_for_a_new_route() {
    let api = api().await;
    let first = api.create(&new_route("a1", "shared-host")).await;
    api.delete(&format!("/api/v1/routes/{}", id_of(&first)))
        .await;
    let second = api.create(&new_route("a2", "shared-host")).await;
    assert_ne!(id_of(&first), id_of(&second));
}

#[tokio::test]
async fn duplicate_route_host_is_conflict_naming_the_field() {
    let api = api().await;
    let first = api.create(&new_route("a1", "jupyter-a7f9")).await;
    let r = api
        .post("/api/v1/routes", &new_route("a2", "Jupyter-A7F9"))
        .await;
    let error = r.assert_error(409, "conflict");
    assert_eq!(error["field"], "route_host");
    assert!(error["message"]
        .as_str()
        .is_some_and(|m| m.contains(&id_of(&first))));
}

#[tokio::test]
async fn patch_onto_a_taken_route_host_is_conflict() {
    let api = api().await;
    api.create(&new_route("a1", "taken")).await;
    let other = api.create(&new_route("a2", "free")).await;
    let error = api
        .patch(
            &format!("/api/v1/routes/{}", id_of(&other)),
            &json!({ "route_host": "taken" }),
        )
        .await
        .assert_error(409, "conflict");
    assert_eq!(error["field"], "route_host");
}
