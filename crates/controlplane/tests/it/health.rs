//! `/healthz` and `/readyz`.

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::json;

use crate::support::{api, api_over, send_to, FailingStore, FAILURE_DETAIL};

fn get(uri: &str) -> Request<Body> {
    Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(Body::empty())
        .expect("request")
}

#[tokio::test]
async fn healthz_is_ok() {
    let api = api().await;
    let r = api.send(get("/healthz")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({ "status": "ok" }));
}

#[tokio::test]
async fn readyz_is_ready_when_the_store_answers() {
    let api = api().await;
    let r = api.send(get("/readyz")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({ "status": "ready" }));
}

#[tokio::test]
async fn readyz_is_store_unavailable_when_the_store_fails() {
    let router = api_over(FailingStore::shared());
    let r = send_to(&router, get("/readyz")).await;
    r.assert_error(503, "store_unavailable");
    assert!(!String::from_utf8_lossy(&r.body).contains(FAILURE_DETAIL));
}

#[tokio::test]
async fn healthz_stays_ok_when_the_store_fails() {
    let router = api_over(FailingStore::shared());
    let r = send_to(&router, get("/healthz")).await;
    assert_eq!(r.status, 200);
}
