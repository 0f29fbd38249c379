//! The error envelope: every failure names its code, its correlation id
//! and, where one is at fault, the field.

use axum::body::Body;
use axum::http::{header, Method, Request};
use pp_model::CorrelationId;
use serde_json::json;

use crate::support::{
    api, api_over, api_with, authed, config, json_request, new_route, send_to, FailingStore,
    FAILURE_DETAIL,
};

fn raw_post(uri: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = authed(Method::POST, uri);
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    builder.body(body.into()).expect("request")
}

#[tokio::test]
async fn unknown_json_field_is_bad_request_naming_the_field() {
    let api = api().await;
    let mut body = new_route("a1", "host-a1");
    body["colour"] = json!("blue");
    let error = api
        .post("/api/v1/routes", &body)
        .await
        .assert_error(400, "bad_request");
    assert_eq!(error["field"], "colour");
    assert!(error["message"]
        .as_str()
        .is_some_and(|m| m.contains("unknown field `colour`")));

    let mut body = new_route("a1", "host-a1");
    body["upstream"]["weight"] = json!(3);
    let error = api
        .post("/api/v1/routes", &body)
        .await
        .assert_error(400, "bad_request");
    assert_eq!(error["field"], "upstream.weight");
}

#[tokio::test]
async fn unknown_patch_field_is_bad_request_naming_the_field() {
    let api = api().await;
    let created = api.create(&new_route("a1", "host-a1")).await;
    let error = api
        .patch(
            &format!("/api/v1/routes/{}", created["id"].as_str().expect("id")),
            &json!({ "owner_id": "someone-else" }),
        )
        .await
        .assert_error(400, "bad_request");
    assert_eq!(
        error["field"], "owner_id",
        "identity fields are not patchable"
    );
}

#[tokio::test]
async fn wrong_json_type_is_bad_request_naming_the_path() {
    let api = api().await;
    let mut body = new_route("a1", "host-a1");
    body["upstream"]["targets"] = json!(["10.0.0.1:80", 8080]);
    let error = api
        .post("/api/v1/routes", &body)
        .await
        .assert_error(400, "bad_request");
    assert_eq!(error["field"], "upstream.targets[1]");
    assert!(error["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("upstream.targets[1]: invalid type")));
}

#[tokio::test]
async fn missing_required_field_is_bad_request_naming_it() {
    let api = api().await;
    let mut body = new_route("a1", "host-a1");
    body.as_object_mut().expect("object").remove("upstream");
    let error = api
        .post("/api/v1/routes", &body)
        .await
        .assert_error(400, "bad_request");
    assert_eq!(error["field"], "upstream");
}

#[tokio::test]
async fn malformed_json_is_bad_request() {
    let api = api().await;
    for body in [r#"{"owner_id": "#, "", "[1,2", r#"{} trailing"#, "\u{0}"] {
        api.send(raw_post("/api/v1/routes", Some("application/json"), body))
            .await
            .assert_error(400, "bad_request");
    }
}

#[tokio::test]
async fn model_rule_violation_is_validation_failed_with_field() {
    let api = api().await;
    let cases = [
        (json!({ "endpoint_name": null }), "endpoint_name"),
        (json!({ "upstream": { "targets": [] } }), "upstream.targets"),
        (
            json!({ "upstream": { "targets": ["no-port"] } }),
            "upstream.targets[0]",
        ),
        (json!({ "route_host": "bad_host!" }), "route_host"),
        (json!({ "adapter": "no-such-adapter" }), "adapter"),
        (json!({ "owner_id": "../etc" }), "owner_id"),
        (
            json!({ "limits": { "max_connections": 0 } }),
            "limits.max_connections",
        ),
        (json!({ "policy": [1] }), "policy"),
    ];
    for (change, field) in cases {
        let mut body = new_route("a1", "host-a1");
        for (k, v) in change.as_object().expect("object") {
            body[k] = v.clone();
        }
        let error = api
            .post("/api/v1/routes", &body)
            .await
            .assert_error(422, "validation_failed");
        assert_eq!(error["field"], field, "{change}");
    }
}

#[tokio::test]
async fn patch_rule_violation_is_validation_failed_with_field() {
    let api = api().await;
    let created = api.create(&new_route("a1", "host-a1")).await;
    let uri = format!("/api/v1/routes/{}", created["id"].as_str().expect("id"));
    let error = api
        .patch(&uri, &json!({ "route_host": "-bad-" }))
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(error["field"], "route_host");
    // Nothing was stored.
    assert_eq!(api.get(&uri).await.json()["route_host"], "host-a1");
}

#[tokio::test]
async fn body_over_the_limit_is_payload_too_large() {
    let mut cfg = config();
    cfg.max_body_bytes = 1024;
    let api = api_with(cfg).await;
    let mut body = new_route("a1", "host-a1");
    body["policy"] = json!({ "padding": "x".repeat(2048) });
    let text = body.to_string();

    // Declared in Content-Length: refused before reading.
    let declared = authed(Method::POST, "/api/v1/routes")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, text.len())
        .body(Body::from(text.clone()))
        .expect("request");
    api.send(declared)
        .await
        .assert_error(413, "payload_too_large");

    // Undeclared (as with chunked encoding): refused while reading.
    api.send(raw_post("/api/v1/routes", Some("application/json"), text))
        .await
        .assert_error(413, "payload_too_large");

    // PATCH is bounded too; the body is refused before the id is looked up.
    let patch = json_request(
        Method::PATCH,
        &format!("/api/v1/routes/{}", uuid::Uuid::new_v4()),
        &json!({ "policy": { "padding": "x".repeat(2048) } }),
    );
    api.send(patch).await.assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn body_at_the_limit_is_accepted() {
    let body = new_route("a1", "host-a1").to_string();
    let mut cfg = config();
    cfg.max_body_bytes = body.len();
    let api = api_with(cfg).await;
    let r = api
        .send(raw_post("/api/v1/routes", Some("application/json"), body))
        .await;
    assert_eq!(r.status, 201, "{}", r.json());
}

#[tokio::test]
async fn non_json_content_type_is_unsupported_media_type() {
    let api = api().await;
    let body = new_route("a1", "host-a1").to_string();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        api.send(raw_post("/api/v1/routes", ct, body.clone()))
            .await
            .assert_error(415, "unsupported_media_type");
    }
    let created = api.create(&new_route("a1", "host-a1")).await;
    let patch = authed(
        Method::PATCH,
        &format!("/api/v1/routes/{}", created["id"].as_str().expect("id")),
    )
    .header(header::CONTENT_TYPE, "text/plain")
    .body(Body::from("{}"))
    .expect("request");
    api.send(patch)
        .await
        .assert_error(415, "unsupported_media_type");
    // With parameters, application/json is still JSON.
    let r = api
        .send(raw_post(
            "/api/v1/routes",
            Some("application/json; charset=utf-8"),
            new_route("a2", "host-a2").to_string(),
        ))
        .await;
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn unknown_path_is_not_found() {
    let api = api().await;
    for uri in ["/api/v1/nope", "/api/v1/routes/x/y", "/", "/api/v2/routes"] {
        api.get(uri).await.assert_error(404, "not_found");
    }
}

#[tokio::test]
async fn wrong_method_is_method_not_allowed_with_allow() {
    let api = api().await;
    let r = api
        .send(
            authed(Method::PUT, "/api/v1/routes")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    r.assert_error(405, "method_not_allowed");
    let allow = r.header("allow").expect("Allow header").to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

    let r = api
        .send(
            authed(
                Method::POST,
                &format!("/api/v1/routes/{}", uuid::Uuid::new_v4()),
            )
            .body(Body::empty())
            .expect("request"),
        )
        .await;
    r.assert_error(405, "method_not_allowed");

    let r = api
        .send(
            Request::builder()
                .method(Method::DELETE)
                .uri("/healthz")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    r.assert_error(405, "method_not_allowed");
}

#[tokio::test]
async fn store_failure_is_internal_without_leaking_the_cause() {
    let router = api_over(FailingStore::shared());
    let id = uuid::Uuid::new_v4();
    let requests = [
        authed(Method::GET, "/api/v1/routes")
            .body(Body::empty())
            .expect("request"),
        authed(Method::GET, &format!("/api/v1/routes/{id}"))
            .body(Body::empty())
            .expect("request"),
        authed(Method::DELETE, &format!("/api/v1/routes/{id}"))
            .body(Body::empty())
            .expect("request"),
        json_request(Method::POST, "/api/v1/routes", &new_route("a1", "host-a1")),
        json_request(
            Method::PATCH,
            &format!("/api/v1/routes/{id}"),
            &json!({ "status": "active" }),
        ),
    ];
    for request in requests {
        let r = send_to(&router, request).await;
        r.assert_error(500, "internal");
        let text = String::from_utf8_lossy(&r.body);
        assert!(!text.contains(FAILURE_DETAIL), "{text}");
        assert!(!text.contains("corrupt"), "{text}");
    }
}

#[tokio::test]
async fn correlation_id_from_the_listener_is_echoed() {
    let api = api().await;
    let mut request = authed(Method::GET, "/api/v1/routes/not-a-uuid")
        .body(Body::empty())
        .expect("request");
    request
        .extensions_mut()
        .insert(CorrelationId::from("listener-cid-42"));
    let error = api.send(request).await.assert_error(404, "route_not_found");
    assert_eq!(error["correlation_id"], "listener-cid-42");
}

#[tokio::test]
async fn client_sent_correlation_header_is_not_trusted() {
    let api = api().await;
    let request = authed(Method::GET, "/api/v1/nope")
        .header("x-correlation-id", "attacker-chosen")
        .body(Body::empty())
        .expect("request");
    let r = api.send(request).await;
    let error = r.assert_error(404, "not_found");
    assert_ne!(error["correlation_id"], "attacker-chosen");
}

#[tokio::test]
async fn successful_responses_carry_a_correlation_id_too() {
    let api = api().await;
    let r = api.get("/api/v1/routes").await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-correlation-id").is_some_and(|c| !c.is_empty()));
}
