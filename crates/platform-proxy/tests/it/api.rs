//! The control-plane API as reached through the proxy's host dispatch, and
//! change propagation from the API to the data plane.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::upstream::echo;
use crate::support::*;

#[tokio::test]
async fn api_needs_the_bootstrap_token() {
    let p = TestProxy::start().await;
    let r = p
        .get(API_HOST, "/api/v1/routes")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "unauthorized");
    let r = p
        .get(API_HOST, "/api/v1/routes")
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = p
        .api(reqwest::Method::GET, "/api/v1/routes")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = p
        .get(API_HOST, "/api/v1/openapi.json")
        .send()
        .await
        .expect("send");
    let doc: Value = r.json().await.expect("json");
    assert!(doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    p.stop().await;
}

#[tokio::test]
async fn api_without_configured_token_refuses_everything() {
    let dir = TempDir::new();
    let toml = format!(
        "api_host = \"{API_HOST}\"\napps_domain = \"{APPS}\"\n[store]\nurl = \"sqlite://{}/pp.db\"\n[server]\nlisten = [\"127.0.0.1:0\"]\n",
        dir.0.display()
    );
    let config = platform_proxy::config::Config::from_sources(&toml, "t", &[]).expect("config");
    let running = platform_proxy::app::start(&config).await.expect("start");
    let client = reqwest::Client::new();
    let r = client
        .get(format!("http://{}/api/v1/routes", running.http_addrs[0]))
        .header("host", API_HOST)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    running.stop().await;
}

#[tokio::test]
async fn a_route_created_through_the_api_is_served_within_100ms() {
    let p = TestProxy::start().await;
    let up = echo().await;
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        let label = format!("fresh{i}");
        let started = Instant::now();
        p.host_route(&label, up.addr, json!({})).await;
        let host = format!("{label}.apps.test");
        loop {
            let r = p.get(&host, "/").send().await.expect("send");
            if r.status() == 200 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "route never served"
            );
        }
        worst = worst.max(started.elapsed());
    }
    println!("create → first proxied 200, worst of 5: {worst:?}");
    assert!(worst < Duration::from_millis(100), "took {worst:?}");
    p.stop().await;
}

#[tokio::test]
async fn invalid_route_names_the_bad_field() {
    let p = TestProxy::start().await;
    let r = p
        .api(reqwest::Method::POST, "/api/v1/routes")
        .json(&json!({
            "owner_type": "app_instance", "owner_id": "x", "endpoint_name": "web",
            "route_mode": "subdomain", "upstream": {"targets": ["127.0.0.1:1"]},
        }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["field"], "route_host");
    p.stop().await;
}
