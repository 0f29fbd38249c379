//! Bearer-token authentication of `/api/v1/*`.

use axum::body::Body;
use axum::http::{header, Method, Request};

use crate::support::{api, api_with_token, config, TOKEN};

fn get_with_auth(uri: &str, authorization: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(Method::GET).uri(uri);
    if let Some(value) = authorization {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    builder.body(Body::empty()).expect("request")
}

fn assert_unauthorized(r: &crate::support::Response) {
    r.assert_error(401, "unauthorized");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{:?}",
        r.header("www-authenticate")
    );
}

#[tokio::test]
async fn api_call_without_token_is_unauthorized() {
    let api = api().await;
    assert_unauthorized(&api.send(get_with_auth("/api/v1/routes", None)).await);
}

#[tokio::test]
async fn api_call_with_wrong_token_is_unauthorized() {
    let api = api().await;
    let near_miss = format!("Bearer {}x", &TOKEN[..TOKEN.len() - 1]);
    let prefix = format!("Bearer {}", &TOKEN[..4]);
    let longer = format!("Bearer {TOKEN}0");
    let basic = format!("Basic {TOKEN}");
    for value in [
        "Bearer wrong",
        near_miss.as_str(),
        prefix.as_str(),
        longer.as_str(),
        basic.as_str(),
        "Bearer",
        "",
    ] {
        assert_unauthorized(&api.send(get_with_auth("/api/v1/routes", Some(value))).await);
    }
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let api = api().await;
    let r = api
        .send(get_with_auth(
            "/api/v1/routes",
            Some(&format!("bearer {TOKEN}")),
        ))
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn every_mutation_needs_the_token() {
    let api = api().await;
    let id = uuid::Uuid::new_v4();
    for (method, uri) in [
        (Method::POST, "/api/v1/routes".to_owned()),
        (Method::PATCH, format!("/api/v1/routes/{id}")),
        (Method::DELETE, format!("/api/v1/routes/{id}")),
        (Method::GET, format!("/api/v1/routes/{id}")),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .expect("request");
        assert_unauthorized(&api.send(request).await);
    }
}

#[tokio::test]
async fn unknown_api_path_without_token_is_unauthorized_not_not_found() {
    let api = api().await;
    assert_unauthorized(&api.send(get_with_auth("/api/v1/secret-admin", None)).await);
}

#[tokio::test]
async fn no_configured_token_locks_the_api() {
    let api = api_with_token(config(), None).await;
    for value in [
        None,
        Some("Bearer "),
        Some("Bearer anything"),
        Some("Bearer test-bootstrap-token-0123456789"),
    ] {
        assert_unauthorized(&api.send(get_with_auth("/api/v1/routes", value)).await);
    }
    // The public endpoints stay public.
    let r = api.send(get_with_auth("/healthz", None)).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn probes_and_openapi_need_no_token() {
    let api = api().await;
    for uri in ["/healthz", "/readyz", "/api/v1/openapi.json"] {
        let r = api.send(get_with_auth(uri, None)).await;
        assert_eq!(r.status, 200, "{uri}");
    }
}

#[test]
fn config_defaults_bound_bodies_sessions_and_launch_codes() {
    let cfg = config();
    assert_eq!(cfg.max_body_bytes, pp_controlplane::DEFAULT_MAX_BODY_BYTES);
    assert_eq!(pp_controlplane::DEFAULT_MAX_BODY_BYTES, 1024 * 1024);
    assert_eq!(cfg.launch_ttl, std::time::Duration::from_secs(60));
    assert_eq!(cfg.session_max, std::time::Duration::from_secs(12 * 3600));
}
