//! `/api/v1/openapi.json`.

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::Value;

use crate::support::api;

async fn document() -> Value {
    let api = api().await;
    let r = api
        .send(
            Request::builder()
                .method(Method::GET)
                .uri("/api/v1/openapi.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, 200);
    r.json()
}

#[tokio::test]
async fn openapi_document_is_3_1_and_lists_route_paths() {
    let doc = document().await;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/routes",
        "/api/v1/routes/{id}",
        "/healthz",
        "/readyz",
        "/api/v1/openapi.json",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
    let routes = &doc["paths"]["/api/v1/routes"];
    assert!(routes["get"].is_object() && routes["post"].is_object());
    let route = &doc["paths"]["/api/v1/routes/{id}"];
    for method in ["get", "patch", "delete"] {
        assert!(route[method].is_object(), "{method} /api/v1/routes/{{id}}");
    }
}

#[tokio::test]
async fn openapi_declares_bearer_auth_on_protected_operations_only() {
    let doc = document().await;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["paths"]["/api/v1/routes"]["post"]["security"][0]["bearer"].is_array());
    assert!(doc["paths"]["/healthz"]["get"]["security"].is_null());
}

#[tokio::test]
async fn openapi_schemas_cover_the_route_resource_and_every_ref_resolves() {
    let doc = document().await;
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "RouteView",
        "RouteList",
        "NewRoute",
        "RoutePatch",
        "Route",
        "ErrorEnvelope",
    ] {
        assert!(schemas.contains_key(name), "missing schema {name}");
    }
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(schemas.contains_key(name), "dangling $ref {r}");
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_owned());
                    }
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
