//! Test harness: an API over a fresh SQLite store, request builders that
//! carry the token, and a response holder with the body read.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use pp_controlplane::{router, ApiConfig, ApiDeps};
use pp_identity::{Authenticator, DirectoryHandle, Keyring};
use pp_model::records::{
    AuditEntry, AuditFilter, Grant, Revocation, ServiceToken, SessionFilter, SessionRecord,
};
use pp_model::PublicBase;
use pp_store::Store;
use pp_store::StoreFuture;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tower::ServiceExt;
use uuid::Uuid;

pub(crate) const TOKEN: &str = "test-bootstrap-token-0123456789";

/// A directory removed when the test ends, pass or fail.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("pp-controlplane-it-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn public_base() -> PublicBase {
    PublicBase {
        scheme: "https".to_owned(),
        apps_domain: "apps.example.com".to_owned(),
        port: None,
    }
}

pub(crate) fn config() -> ApiConfig {
    ApiConfig::new(public_base())
}

/// The API's parts over `store`, authenticating `bootstrap` as the
/// operator (and nothing else: no issuer, no service tokens loaded).
pub(crate) fn deps(store: Arc<dyn Store>, bootstrap: Option<&str>) -> ApiDeps {
    ApiDeps {
        store,
        authn: Arc::new(Authenticator::new(
            bootstrap.map(str::to_owned),
            None,
            Arc::new(DirectoryHandle::default()),
        )),
        keys: Arc::new(Keyring::new(&[vec![7; 32]]).expect("key ring")),
        assertion: None,
    }
}

pub(crate) struct Api {
    pub(crate) router: Router,
    _dir: TempDir,
}

/// The API with the test token over a fresh SQLite store.
pub(crate) async fn api() -> Api {
    api_with(config()).await
}

pub(crate) async fn api_with(config: ApiConfig) -> Api {
    api_with_token(config, Some(TOKEN)).await
}

/// The API with `bootstrap` as its only accepted token (`None`: none).
pub(crate) async fn api_with_token(config: ApiConfig, bootstrap: Option<&str>) -> Api {
    let dir = TempDir::new();
    let url = format!("sqlite://{}/x.db", dir.0.display());
    let store = pp_store::open(&url).await.expect("open sqlite store");
    Api {
        router: router(deps(store, bootstrap), config),
        _dir: dir,
    }
}

/// The API over any store (a failing one, say); no temp dir needed.
pub(crate) fn api_over(store: Arc<dyn Store>) -> Router {
    router(deps(store, Some(TOKEN)), config())
}

pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the error envelope with `code` and the correlation id in
    /// both body and header; returns the body's `error` object.
    pub(crate) fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "content-type {:?}",
            self.header("content-type")
        );
        let body = self.json();
        let error = body["error"].clone();
        assert_eq!(error["code"], code, "{body}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        let cid = error["correlation_id"].as_str().expect("correlation_id");
        assert!(!cid.is_empty());
        assert_eq!(self.header("x-correlation-id"), Some(cid));
        error
    }
}

pub(crate) async fn send_to(router: &Router, request: Request<Body>) -> Response {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("router is infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("read body").to_bytes().to_vec();
    Response {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// A request carrying the test token.
pub(crate) fn authed(method: Method, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
}

pub(crate) fn json_request(method: Method, uri: &str, body: &Value) -> Request<Body> {
    authed(method, uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

impl Api {
    pub(crate) async fn send(&self, request: Request<Body>) -> Response {
        send_to(&self.router, request).await
    }

    pub(crate) async fn get(&self, uri: &str) -> Response {
        self.send(
            authed(Method::GET, uri)
                .body(Body::empty())
                .expect("request"),
        )
        .await
    }

    pub(crate) async fn delete(&self, uri: &str) -> Response {
        self.send(
            authed(Method::DELETE, uri)
                .body(Body::empty())
                .expect("request"),
        )
        .await
    }

    pub(crate) async fn post(&self, uri: &str, body: &Value) -> Response {
        self.send(json_request(Method::POST, uri, body)).await
    }

    pub(crate) async fn patch(&self, uri: &str, body: &Value) -> Response {
        self.send(json_request(Method::PATCH, uri, body)).await
    }

    /// Creates a route and returns its view, asserting 201.
    pub(crate) async fn create(&self, body: &Value) -> Value {
        let r = self.post("/api/v1/routes", body).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }
}

/// A valid subdomain route for app instance `owner` with host `host`.
pub(crate) fn new_route(owner: &str, host: &str) -> Value {
    json!({
        "owner_type": "app_instance",
        "owner_id": owner,
        "endpoint_name": "web",
        "org_id": "acme",
        "project_id": "ml-dev",
        "route_mode": "subdomain",
        "route_host": host,
        "upstream": { "targets": ["10.0.3.7:8888"], "scheme": "http" },
        "adapter": "jupyterlab",
        "adapter_overrides": { "default_open_path": "/lab" },
        "limits": { "max_connections": 20 }
    })
}

pub(crate) fn id_of(view: &Value) -> String {
    view["id"].as_str().expect("id").to_owned()
}

/// A store whose every call fails, with a detail that must never reach a
/// client.
pub(crate) struct FailingStore {
    feed: tokio::sync::watch::Sender<u64>,
}

pub(crate) const FAILURE_DETAIL: &str = "disk on fire at /var/secret/path";

impl FailingStore {
    pub(crate) fn shared() -> Arc<dyn Store> {
        Arc::new(Self {
            feed: tokio::sync::watch::channel(0).0,
        })
    }
}

fn fail<'a, T: Send + 'a>() -> pp_store::StoreFuture<'a, T> {
    Box::pin(async { Err(pp_store::StoreError::Corrupt(FAILURE_DETAIL.to_owned())) })
}

impl Store for FailingStore {
    fn migrate(&self) -> pp_store::StoreFuture<'_, ()> {
        fail()
    }
    fn ping(&self) -> pp_store::StoreFuture<'_, ()> {
        fail()
    }
    fn create_route<'a>(&'a self, _: &'a pp_model::Route) -> pp_store::StoreFuture<'a, ()> {
        fail()
    }
    fn get_route(&self, _: uuid::Uuid) -> pp_store::StoreFuture<'_, Option<pp_model::Route>> {
        fail()
    }
    fn update_route<'a>(&'a self, _: &'a pp_model::Route) -> pp_store::StoreFuture<'a, bool> {
        fail()
    }
    fn delete_route(&self, _: uuid::Uuid) -> pp_store::StoreFuture<'_, bool> {
        fail()
    }
    fn list_routes<'a>(
        &'a self,
        _: &'a pp_store::RouteFilter,
    ) -> pp_store::StoreFuture<'a, pp_store::Page<pp_model::Route>> {
        fail()
    }
    fn each_live_route<'a>(
        &'a self,
        _: &'a mut (dyn FnMut(pp_model::Route) + Send),
    ) -> pp_store::StoreFuture<'a, u64> {
        fail()
    }
    fn routes_changed_since(
        &self,
        _: u64,
        _: usize,
    ) -> pp_store::StoreFuture<'_, Option<(Vec<pp_model::RouteChange>, u64)>> {
        fail()
    }
    fn create_grant<'a>(&'a self, _: &'a Grant) -> StoreFuture<'a, ()> {
        fail()
    }
    fn get_grant(&self, _: Uuid) -> StoreFuture<'_, Option<Grant>> {
        fail()
    }
    fn delete_grant(&self, _: Uuid) -> StoreFuture<'_, bool> {
        fail()
    }
    fn list_grants<'a>(
        &'a self,
        _: &'a pp_store::GrantFilter,
    ) -> StoreFuture<'a, pp_store::Page<Grant>> {
        fail()
    }
    fn all_grants(&self) -> StoreFuture<'_, Vec<Grant>> {
        fail()
    }
    fn create_service_token<'a>(&'a self, _: &'a ServiceToken) -> StoreFuture<'a, ()> {
        fail()
    }
    fn get_service_token(&self, _: Uuid) -> StoreFuture<'_, Option<ServiceToken>> {
        fail()
    }
    fn revoke_service_token(&self, _: Uuid, _: OffsetDateTime) -> StoreFuture<'_, bool> {
        fail()
    }
    fn list_service_tokens<'a>(
        &'a self,
        _: Option<&'a str>,
        _: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<ServiceToken>> {
        fail()
    }
    fn live_service_tokens(&self, _: OffsetDateTime) -> StoreFuture<'_, Vec<ServiceToken>> {
        fail()
    }
    fn create_session<'a>(&'a self, _: &'a SessionRecord) -> StoreFuture<'a, ()> {
        fail()
    }
    fn redeem_launch_code<'a>(
        &'a self,
        _: &'a str,
        _: Uuid,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SessionRecord>> {
        fail()
    }
    fn get_session(&self, _: Uuid) -> StoreFuture<'_, Option<SessionRecord>> {
        fail()
    }
    fn list_sessions<'a>(
        &'a self,
        _: &'a SessionFilter,
    ) -> StoreFuture<'a, pp_store::Page<SessionRecord>> {
        fail()
    }
    fn revoke<'a>(&'a self, _: &'a Revocation) -> StoreFuture<'a, u64> {
        fail()
    }
    fn live_revocations(&self, _: OffsetDateTime) -> StoreFuture<'_, Vec<Revocation>> {
        fail()
    }
    fn append_audit<'a>(&'a self, _: &'a [AuditEntry]) -> StoreFuture<'a, ()> {
        fail()
    }
    fn list_audit<'a>(&'a self, _: &'a AuditFilter) -> StoreFuture<'a, pp_store::Page<AuditEntry>> {
        fail()
    }
    fn get_or_create_secret<'a>(&'a self, _: &'a str, _: &'a str) -> StoreFuture<'a, String> {
        fail()
    }
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.feed.subscribe()
    }
}
