//! What the upstream sees, and what never crosses to the browser: identity
//! headers set by the proxy (client copies dropped), no browser
//! `Authorization` and no proxy cookie upstream, the signed identity
//! assertion, the auth bridge (a Jupyter-like app that demands its token),
//! and the WebSocket `Origin` rule.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::support::identity::{split_url, Secured};
use crate::support::upstream::{echo, full, serve, ws_echo, Upstream};
use crate::support::ws::{connect, header_values, raw_upgrade, raw_ws_upstream};
use crate::support::*;

const ALICE: &[&str] = &["acme/dev:member"];
const APP_TOKEN: &str = "jupyter-app-local-token-5f1e2d3c4b";

#[tokio::test]
async fn upstream_sees_proxy_identity_and_no_browser_credentials() {
    let s = Secured::start().await;
    let up = echo().await;
    s.route("id", up.addr, "acme", "dev", json!({})).await;
    let alice = s.token("alice", ALICE);
    let r = s
        .proxy
        .get(&format!("id.apps.test:{}", s.proxy.addr.port()), "/")
        .bearer_auth(&alice)
        .header("x-forwarded-user", "admin")
        .header("x-forwarded-roles", "acme:admin")
        .header("x-user-id", "root")
        .header("x-platform-proxy-assertion", "forged")
        .header("cookie", "pp_s_000000000000=forged; theme=dark")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.expect("echo");
    let h = &seen["headers"];
    assert_eq!(h["x-forwarded-user"], "alice");
    assert_eq!(h["x-forwarded-email"], "alice@example.com");
    assert_eq!(h["x-forwarded-org"], "acme");
    assert_eq!(h["x-forwarded-project"], "dev");
    assert_eq!(h["x-forwarded-roles"], "acme/dev:member");
    assert!(h.get("x-user-id").is_none());
    assert!(
        h.get("x-platform-proxy-assertion").is_none(),
        "assertions are off by default"
    );
    assert!(
        h.get("authorization").is_none(),
        "the platform token stays at the proxy"
    );
    assert_eq!(h["cookie"], "theme=dark");
    s.stop().await;
}

#[tokio::test]
async fn identity_assertion_verifies_against_the_published_jwks() {
    let s = Secured::start_with("assertion = true", "").await;
    let up = echo().await;
    s.route("as", up.addr, "acme", "dev", json!({})).await;
    let port = s.proxy.addr.port();
    let r = s
        .proxy
        .get(&format!("as.apps.test:{port}"), "/")
        .bearer_auth(s.token("alice", ALICE))
        .send()
        .await
        .expect("send");
    let seen: Value = r.json().await.expect("echo");
    let jwt = seen["headers"]["x-platform-proxy-assertion"]
        .as_str()
        .expect("assertion header");
    let jwks: Value = s
        .proxy
        .req(reqwest::Method::GET, API_HOST, "/.well-known/jwks.json")
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).expect("jwk set");
    let header = jsonwebtoken::decode_header(jwt).expect("header");
    let jwk = set
        .find(header.kid.as_deref().expect("kid"))
        .expect("key in the set");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[format!("http://as.apps.test:{port}")]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &v)
        .expect("verifies")
        .claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["org"], "acme");
    assert_eq!(claims["project"], "dev");
    // A tampered assertion does not verify.
    let mut bad = jwt.to_owned();
    bad.replace_range(bad.len() - 3.., "AAA");
    assert!(jsonwebtoken::decode::<Value>(&bad, &key, &v).is_err());
    s.stop().await;
}

/// A Jupyter-like app: without `Authorization: token APP_TOKEN` it
/// redirects to its own login page (as JupyterLab does); with it, it
/// serves a page, sets a cookie and redirects within itself. Records the
/// Authorization values it received.
async fn jupyter_like(seen: Arc<Mutex<Vec<String>>>) -> Upstream {
    serve(move |req: Request<Incoming>| {
        let seen = Arc::clone(&seen);
        async move {
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            seen.lock().expect("lock").push(auth.clone());
            let path = req.uri().path().to_owned();
            if auth != format!("token {APP_TOKEN}") {
                return Response::builder()
                    .status(302)
                    .header("location", format!("{path}login?next=%2Flab"))
                    .body(full(""))
                    .expect("response");
            }
            if path.ends_with("/tree") {
                return Response::builder()
                    .status(302)
                    .header("location", "/w/jl/web/lab")
                    .body(full(""))
                    .expect("response");
            }
            Response::builder()
                .header("content-type", "text/html")
                .header("set-cookie", "_xsrf=abc; Path=/w/jl/web/")
                .body(full("<html><body>JupyterLab</body></html>"))
                .expect("response")
        }
    })
    .await
}

#[tokio::test]
async fn auth_bridge_token_reaches_only_the_upstream() {
    let s = Secured::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let up = jupyter_like(Arc::clone(&seen)).await;
    let route = s
        .proxy
        .create_route(json!({
            "owner_type": "app_instance", "owner_id": "jl", "endpoint_name": "web",
            "org_id": "acme", "project_id": "dev",
            "route_mode": "subdomain", "route_host": "jl",
            "upstream": {"targets": [up.addr.to_string()]},
            "adapter": "jupyterlab",
            "auth_bridge": {"mode": "authorization_header", "scheme": "token", "secret": APP_TOKEN},
        }))
        .await;
    let mut browser_saw = Vec::new();
    browser_saw.push(route.to_string());
    assert_eq!(route["auth_bridge"]["mode"], "authorization_header");
    let api_get: Value = s
        .proxy
        .api(
            reqwest::Method::GET,
            &format!("/api/v1/routes/{}", route["id"].as_str().expect("id")),
        )
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    browser_saw.push(api_get.to_string());
    // A full session: mint, launch, the entry page, a redirect, an asset.
    let alice = s.token("alice", ALICE);
    let minted = s.mint(&route, &alice).await;
    let body = minted.text().await.expect("text");
    browser_saw.push(body.clone());
    let v: Value = serde_json::from_str(&body).expect("json");
    let (host, path) = split_url(v["open_url"].as_str().expect("url"));
    let launch = s.proxy.get(&host, &path).send().await.expect("launch");
    browser_saw.push(format!("{:?}", launch.headers()));
    let cookie = crate::support::identity::cookie_pair(
        launch.headers()["set-cookie"].to_str().expect("ascii"),
    );
    for p in ["/lab", "/tree", "/static/app.js"] {
        let r = s
            .proxy
            .get(&host, p)
            .header("cookie", &cookie)
            // The browser's own Authorization is replaced, never forwarded.
            .header("authorization", "token browser-guess")
            .send()
            .await
            .expect("send");
        assert_ne!(r.status(), 401);
        browser_saw.push(format!("{} {:?}", r.status(), r.headers()));
        browser_saw.push(r.text().await.expect("text"));
    }
    let all = browser_saw.join("\n");
    assert!(
        !all.contains(APP_TOKEN),
        "the app token leaked to the browser"
    );
    assert!(
        all.contains("JupyterLab"),
        "the app answered with the bridge"
    );
    assert!(
        !all.contains("login?next"),
        "the app never asked for its token"
    );
    let got = seen.lock().expect("lock").clone();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|a| a == &format!("token {APP_TOKEN}")),
        "{got:?}"
    );
    // The store holds the secret sealed, not in the clear.
    let db = std::fs::read(s.proxy.dir.0.join("pp.db")).expect("db");
    let wal = std::fs::read(s.proxy.dir.0.join("pp.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes
                .windows(APP_TOKEN.len())
                .any(|w| w == APP_TOKEN.as_bytes()),
            "secret stored in the clear"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn websocket_from_a_foreign_origin_is_refused_and_own_origin_passes() {
    let s = Secured::start_with("allowed_origins = [\"https://console.example.com\"]", "").await;
    let up = ws_echo().await;
    let route = s.route("wo", up, "acme", "dev", json!({})).await;
    let cookie = s.cookie(&route, &s.token("alice", ALICE)).await;
    let port = s.proxy.addr.port();
    let url = format!("ws://wo.apps.test:{port}/ws");
    let own = format!("http://wo.apps.test:{port}");
    for (origin, ok) in [
        (own.as_str(), true),
        ("https://console.example.com", true),
        ("https://evil.example", false),
        ("http://other.apps.test", false),
    ] {
        let r = connect(
            s.proxy.addr,
            &url,
            &[("cookie", &cookie), ("origin", origin)],
        )
        .await;
        match (r, ok) {
            (Ok(_), true) => {}
            (Err(tokio_tungstenite::tungstenite::Error::Http(resp)), false) => {
                assert_eq!(resp.status(), 403, "{origin}");
            }
            (other, _) => panic!("{origin}: unexpected {:?}", other.map(|_| ())),
        }
    }
    // Without a session the upgrade is refused like any request.
    let r = connect(s.proxy.addr, &url, &[("origin", own.as_str())]).await;
    match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("unexpected {:?}", other.map(|_| ())),
    }
    s.stop().await;
}

#[tokio::test]
async fn audit_records_the_session_lifecycle_and_denials() {
    let s = Secured::start().await;
    let up = ws_echo().await;
    let route = s.route("au", up, "acme", "dev", json!({})).await;
    let cookie = s.cookie(&route, &s.token("alice", ALICE)).await;
    let port = s.proxy.addr.port();
    let origin = format!("http://au.apps.test:{port}");
    let (ws, _) = connect(
        s.proxy.addr,
        &format!("ws://au.apps.test:{port}/ws"),
        &[("cookie", &cookie), ("origin", &origin)],
    )
    .await
    .expect("ws");
    drop(ws);
    let eve = s.token("eve", &["acme/prod:member"]);
    let denied = s
        .proxy
        .get(&format!("au.apps.test:{port}"), "/")
        .bearer_auth(&eve)
        .send()
        .await
        .expect("send");
    assert_eq!(denied.status(), 403);
    let cid = denied.headers()["x-correlation-id"]
        .to_str()
        .expect("a")
        .to_owned();
    let rid = route["id"].as_str().expect("id");
    let actions = Arc::new(Mutex::new(Vec::new()));
    eventually(std::time::Duration::from_secs(5), || {
        let req = s.proxy.api(
            reqwest::Method::GET,
            &format!("/api/v1/audit?route_id={rid}&limit=100"),
        );
        let actions = Arc::clone(&actions);
        async move {
            let v: Value = req.send().await.expect("audit").json().await.expect("json");
            let got: Vec<(String, Value)> = v["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| (e["action"].as_str().unwrap_or("").to_owned(), e.clone()))
                .collect();
            let done = got.iter().any(|(a, _)| a == "websocket.disconnected");
            *actions.lock().expect("lock") = got;
            done
        }
    })
    .await;
    let actions = actions.lock().expect("lock").clone();
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    for want in [
        "route.created",
        "session.issued",
        "launch.redeemed",
        "websocket.connected",
        "websocket.disconnected",
        "access.denied",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let denial = &actions
        .iter()
        .find(|(a, _)| a == "access.denied")
        .expect("denial")
        .1;
    assert_eq!(denial["reason"], "not_project_member");
    assert_eq!(denial["user_id"], "eve");
    assert_eq!(
        denial["correlation_id"],
        cid.as_str(),
        "joins the response's id"
    );
    // Filters: by user and action.
    let v: Value = s
        .proxy
        .api(
            reqwest::Method::GET,
            "/api/v1/audit?user_id=eve&action=access.denied",
        )
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    assert_eq!(v["items"].as_array().expect("items").len(), 1);
    s.stop().await;
}

/// A session's identity fields are kept rendered as head lines; a
/// WebSocket handshake goes upstream from a map, where they are put back:
/// the upstream sees each once (a plain request's are checked in
/// `sessions.rs`).
#[tokio::test]
async fn a_sessions_identity_reaches_the_upstream_once_each_over_a_switch() {
    let s = Secured::start().await;
    let up = raw_ws_upstream("").await;
    let route = s.route("idws", up.addr, "acme", "dev", json!({})).await;
    let cookie = s.cookie(&route, &s.token("alice", ALICE)).await;
    let host = format!("idws.apps.test:{}", s.proxy.addr.port());
    let origin = format!("http://{host}");
    let a = raw_upgrade(
        s.proxy.addr,
        &host,
        "/ws",
        &[("Cookie", cookie.as_str()), ("Origin", origin.as_str())],
    )
    .await;
    assert_eq!(a.status, 101, "{}", a.head);
    let heads = up.heads();
    assert_eq!(heads.len(), 1);
    for (name, value) in [
        ("x-forwarded-user", "alice"),
        ("x-forwarded-email", "alice@example.com"),
        ("x-forwarded-org", "acme"),
        ("x-forwarded-project", "dev"),
        ("x-forwarded-roles", "acme/dev:member"),
    ] {
        assert_eq!(
            header_values(&heads[0], name),
            [value],
            "{name}: {}",
            heads[0]
        );
    }
    assert!(
        header_values(&heads[0], "cookie").is_empty(),
        "{}",
        heads[0]
    );
    s.stop().await;
}
