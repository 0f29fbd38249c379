//! Test harness: a real proxy on loopback over a fresh SQLite file, real
//! upstream servers (HTTP, SSE, WebSocket, slow, dying), and raw-socket
//! helpers for requests no well-behaved client would send.

#![allow(dead_code)]

pub mod browser;
pub mod identity;
pub mod process;
pub mod streams;
pub mod tls;
pub mod upstream;
pub mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use platform_proxy::app::{self, Running};
use platform_proxy::config::Config;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TOKEN: &str = "it-bootstrap-token-0123456789";
pub const API_HOST: &str = "api.test";
pub const APPS: &str = "apps.test";

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("pp-it-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestProxy {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub dir: TempDir,
}

/// The config text every test proxy starts from; `extra` is appended.
pub fn base_toml(dir: &TempDir, extra: &str) -> String {
    format!(
        "api_host = \"{API_HOST}\"\napps_domain = \"{APPS}\"\n\
         [store]\nurl = \"sqlite://{}/pp.db\"\n\
         [api]\nbootstrap_token = \"{TOKEN}\"\n{extra}",
        dir.0.display()
    )
}

impl TestProxy {
    pub async fn start() -> Self {
        Self::start_with("[server]\nlisten = [\"127.0.0.1:0\"]\n").await
    }

    /// Starts a proxy with `extra` TOML (which must set `[server] listen`).
    pub async fn start_with(extra: &str) -> Self {
        let dir = TempDir::new();
        let config = Config::from_sources(&base_toml(&dir, extra), "test", &[]).expect("config");
        let running = app::start(&config).await.expect("start");
        Self {
            addr: running.http_addrs[0],
            tls_addr: running.https_addrs.first().copied(),
            running: Some(running),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            dir,
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    /// A request to `path` on `host`, sent to the proxy's plain listener.
    pub fn req(&self, method: reqwest::Method, host: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("http://{}{path}", self.addr))
            .header("host", host)
    }

    pub fn get(&self, host: &str, path: &str) -> reqwest::RequestBuilder {
        self.req(reqwest::Method::GET, host, path)
    }

    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.req(method, API_HOST, path).bearer_auth(TOKEN)
    }

    /// Creates a route through the API and returns its JSON.
    pub async fn create_route(&self, mut body: Value) -> Value {
        let scoped = body.clone();
        open_unless_scoped(&mut body, &scoped);
        let resp = self
            .api(reqwest::Method::POST, "/api/v1/routes")
            .json(&body)
            .send()
            .await
            .expect("create route");
        let status = resp.status();
        let v: Value = resp.json().await.expect("json");
        assert_eq!(status, 201, "create route: {v}");
        self.running().routes_applied().await;
        v
    }

    /// A host route `{label}.apps.test` to `target` with optional extra fields.
    pub async fn host_route(&self, label: &str, target: SocketAddr, extra: Value) -> Value {
        let mut body = serde_json::json!({
            "owner_type": "app_instance", "owner_id": label, "endpoint_name": "web",
            "route_mode": "subdomain", "route_host": label,
            "upstream": {"targets": [target.to_string()]},
        });
        merge(&mut body, extra);
        self.create_route(body).await
    }

    /// A path route `/w/{owner}/web/` to `target` with optional extra fields.
    pub async fn path_route(&self, owner: &str, target: SocketAddr, extra: Value) -> Value {
        let mut body = serde_json::json!({
            "owner_type": "app_instance", "owner_id": owner, "endpoint_name": "web",
            "route_mode": "path_prefix",
            "upstream": {"targets": [target.to_string()]},
        });
        merge(&mut body, extra);
        self.create_route(body).await
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

/// Routes the spine's tests create are about carrying bytes, not about
/// access: unless a test names an org (then it tests access and gets the
/// full pipeline), the route is public.
fn open_unless_scoped(body: &mut Value, extra: &Value) {
    if extra.get("org_id").is_none() && extra.get("policy").is_none() {
        body["policy"] = serde_json::json!({"public": true});
    }
}

fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// Waits until `cond` holds, polling; panics after `within`.
pub async fn eventually<F, Fut>(within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + within;
    loop {
        if cond().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends raw bytes and reads the whole answer (the request should carry
/// `Connection: close`). Returns (status, head, body).
pub async fn raw(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_owned(), body.to_owned())
}

/// A GET with a raw (unnormalized) target.
pub async fn raw_get(addr: SocketAddr, host: &str, target: &str) -> (u16, String, String) {
    raw(
        addr,
        &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await
}
