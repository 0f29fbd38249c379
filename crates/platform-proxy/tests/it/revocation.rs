//! Session authority (seed 001): revoking a session, a user or a route
//! stops new requests at once and closes open WebSockets within a second
//! with a close code that says why; OIDC back-channel logout ends the
//! sessions minted from a platform session; revocations survive restart.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::identity::Secured;
use crate::support::upstream::{echo, ws_echo};
use crate::support::ws::{connect, next, WAIT};
use crate::support::*;

const ALICE: &[&str] = &["acme/dev:member"];

async fn revoke(s: &Secured, body: Value) -> Value {
    let r = s
        .proxy
        .api(reqwest::Method::POST, "/api/v1/sessions/revoke")
        .json(&body)
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 200, "revoke {body}");
    let v = r.json().await.expect("json");
    // Read-your-writes for the requests that follow (the WebSocket tests
    // time the close from before this call, so the wait is theirs too).
    s.proxy.running().routes_applied().await;
    v
}

/// Opens a WebSocket through `route` with `cookie`, checks an echo.
async fn open_ws(s: &Secured, label: &str, cookie: &str) -> crate::support::ws::Ws {
    let port = s.proxy.addr.port();
    let origin = format!("http://{label}.apps.test:{port}");
    let (mut ws, _) = connect(
        s.proxy.addr,
        &format!("ws://{label}.apps.test:{port}/ws"),
        &[("cookie", cookie), ("origin", &origin)],
    )
    .await
    .expect("handshake");
    futures_util::SinkExt::send(&mut ws, Message::text("ping"))
        .await
        .expect("send");
    assert_eq!(next(&mut ws).await, Message::text("ping"));
    ws
}

/// Waits for the proxy's Close frame and returns (code, reason, elapsed).
async fn closed(ws: &mut crate::support::ws::Ws, since: Instant) -> (u16, String, Duration) {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a close within the wait")
            .expect("stream")
            .expect("frame");
        if let Message::Close(Some(f)) = m {
            return (u16::from(f.code), f.reason.to_string(), since.elapsed());
        }
    }
}

#[tokio::test]
async fn revoked_session_closes_open_websocket_within_a_second() {
    let s = Secured::start().await;
    let up = ws_echo().await;
    let route = s.route("rv", up, "acme", "dev", json!({})).await;
    let alice = s.token("alice", ALICE);
    let cookie = s.cookie(&route, &alice).await;
    let mut ws = open_ws(&s, "rv", &cookie).await;
    // A second session of the same user stays open: only one is revoked.
    let other_cookie = s.cookie(&route, &alice).await;
    let mut other = open_ws(&s, "rv", &other_cookie).await;
    let sessions: Value = s
        .proxy
        .api(
            reqwest::Method::GET,
            &format!(
                "/api/v1/sessions?route_id={}&live=true",
                route["id"].as_str().expect("id")
            ),
        )
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(sessions["items"].as_array().expect("items").len(), 2);
    // Newest first? Find the session whose cookie is `cookie` by revoking
    // the first and seeing which socket closes.
    let sid = sessions["items"][0]["id"].as_str().expect("id").to_owned();
    let t0 = Instant::now();
    let out = revoke(&s, json!({"session_id": sid, "reason": "test"})).await;
    assert_eq!(out["sessions_revoked"], 1);
    let (first, second) = tokio::join!(
        tokio::time::timeout(Duration::from_millis(1500), closed(&mut ws, t0)),
        tokio::time::timeout(Duration::from_millis(1500), closed(&mut other, t0)),
    );
    let results = [first.ok(), second.ok()];
    let closed_ones: Vec<_> = results.iter().flatten().collect();
    assert_eq!(
        closed_ones.len(),
        1,
        "exactly the revoked session's socket closes: {results:?}"
    );
    let (code, reason, elapsed) = closed_ones[0];
    assert_eq!(*code, 1008);
    assert_eq!(reason, "session revoked");
    assert!(
        *elapsed < Duration::from_secs(1),
        "closed after {elapsed:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn revoking_a_user_ends_every_session_and_new_requests() {
    let s = Secured::start().await;
    let up = ws_echo().await;
    let http = echo().await;
    let ws_route = s.route("ua", up, "acme", "dev", json!({})).await;
    let page_route = s.route("ub", http.addr, "acme", "dev", json!({})).await;
    let alice = s.token("alice", ALICE);
    let mut ws = open_ws(&s, "ua", &s.cookie(&ws_route, &alice).await).await;
    let page_cookie = s.cookie(&page_route, &alice).await;
    let bob = s.token("bob", ALICE);
    let bob_cookie = s.cookie(&page_route, &bob).await;
    let host = format!("ub.apps.test:{}", s.proxy.addr.port());
    let t0 = Instant::now();
    let out = revoke(&s, json!({"user_id": "alice"})).await;
    assert_eq!(out["sessions_revoked"], 2);
    let (code, reason, elapsed) = closed(&mut ws, t0).await;
    assert_eq!((code, reason.as_str()), (1008, "user signed out"));
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    let status = |c: &str| {
        s.proxy
            .get(&host, "/")
            .header("cookie", c.to_owned())
            .send()
    };
    assert_eq!(status(&page_cookie).await.expect("send").status(), 401);
    assert_eq!(
        status(&bob_cookie).await.expect("send").status(),
        200,
        "bob is untouched"
    );
    // Alice's bearer token minted before the revocation is dead too; a
    // fresh sign-in works.
    assert_eq!(
        s.proxy
            .get(&host, "/")
            .bearer_auth(&alice)
            .send()
            .await
            .expect("send")
            .status(),
        401
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = s.token("alice", ALICE);
    let c = s.cookie(&page_route, &fresh).await;
    assert_eq!(status(&c).await.expect("send").status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn revoking_a_route_ends_its_sessions_only() {
    let s = Secured::start().await;
    let http = echo().await;
    let a = s.route("ra", http.addr, "acme", "dev", json!({})).await;
    let b = s.route("rb", http.addr, "acme", "dev", json!({})).await;
    let alice = s.token("alice", ALICE);
    let (ca, cb) = (s.cookie(&a, &alice).await, s.cookie(&b, &alice).await);
    revoke(&s, json!({"route_id": a["id"]})).await;
    let port = s.proxy.addr.port();
    let get = |label: &str, c: &str| {
        s.proxy
            .get(&format!("{label}.apps.test:{port}"), "/")
            .header("cookie", c.to_owned())
            .send()
    };
    assert_eq!(get("ra", &ca).await.expect("send").status(), 401);
    assert_eq!(get("rb", &cb).await.expect("send").status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn backchannel_logout_ends_sessions_of_the_platform_session() {
    let s = Secured::start().await;
    let http = echo().await;
    let route = s.route("bc", http.addr, "acme", "dev", json!({})).await;
    let sid = "kc-session-1";
    let token = s
        .idp
        .mint(
            json!({"sub": "alice", "sid": sid, "memberships": ALICE}),
            Duration::from_secs(300),
        )
        .expect("token");
    let cookie = s.cookie(&route, &token).await;
    let host = format!("bc.apps.test:{}", s.proxy.addr.port());
    let logout = |t: String| {
        s.proxy
            .req(
                reqwest::Method::POST,
                API_HOST,
                "/api/v1/backchannel-logout",
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("logout_token={t}"))
            .send()
    };
    // A logout token must carry the event; an access token is refused.
    assert_eq!(logout(token.clone()).await.expect("send").status(), 400);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let lt = s
        .idp
        .mint(
            json!({
                "sub": "alice", "sid": sid, "jti": "lt-1",
                "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
                "iat": now,
            }),
            Duration::from_secs(120),
        )
        .expect("logout token");
    // A captured logout token replayed an hour later is refused.
    let stale = s
        .idp
        .mint(
            json!({
                "sub": "alice", "sid": sid, "jti": "lt-0",
                "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
                "iat": now - 3600,
            }),
            Duration::from_secs(7200),
        )
        .expect("stale logout token");
    assert_eq!(logout(stale).await.expect("send").status(), 400);
    let r = logout(lt).await.expect("send");
    assert_eq!(r.status(), 200);
    s.proxy.running().routes_applied().await;
    let after = s
        .proxy
        .get(&host, "/")
        .header("cookie", &cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(after.status(), 401);
    s.stop().await;
}

#[tokio::test]
async fn revocations_survive_a_restart() {
    let s = Secured::start().await;
    let http = echo().await;
    let route = s.route("pr", http.addr, "acme", "dev", json!({})).await;
    let cookie = s.cookie(&route, &s.token("alice", ALICE)).await;
    revoke(&s, json!({"user_id": "alice"})).await;
    // Same store file (and the session key kept in it), fresh state.
    let Secured { mut proxy, idp } = s;
    let running = proxy.running.take().expect("running");
    running.stop().await;
    let extra = format!(
        "[server]\nlisten = [\"127.0.0.1:{}\"]\n{}",
        proxy.addr.port(),
        idp.identity_toml()
    );
    let config =
        platform_proxy::config::Config::from_sources(&base_toml(&proxy.dir, &extra), "test", &[])
            .expect("config");
    proxy.running = Some(platform_proxy::app::start(&config).await.expect("restart"));
    let r = proxy
        .get(&format!("pr.apps.test:{}", proxy.addr.port()), "/")
        .header("cookie", &cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401, "still revoked after restart");
    proxy.stop().await;
    idp.stop();
}

#[tokio::test]
async fn revoked_service_tokens_and_removed_grants_close_their_websockets() {
    let s = Secured::start().await;
    let up = ws_echo().await;
    s.route("st", up, "acme", "dev", json!({})).await;
    let created = s
        .operator(
            reqwest::Method::POST,
            "/api/v1/service-tokens",
            json!({"name": "bot", "org_id": "acme", "project_id": "dev", "role": "member"}),
        )
        .await;
    let token = created["token"].as_str().expect("token").to_owned();
    let port = s.proxy.addr.port();
    let url = format!("ws://st.apps.test:{port}/ws");
    let bearer = format!("Bearer {token}");
    let (mut bot, _) = connect(s.proxy.addr, &url, &[("authorization", &bearer)])
        .await
        .expect("handshake");
    // Bob's access comes from a pushed grant only.
    let grant = s
        .operator(
            reqwest::Method::POST,
            "/api/v1/grants",
            json!({"subject": "bob", "org_id": "acme", "project_id": "dev", "role": "viewer"}),
        )
        .await;
    let bob = s.token("bob", &[]);
    let (mut bob_ws, _) = connect(
        s.proxy.addr,
        &url,
        &[("authorization", &format!("Bearer {bob}"))],
    )
    .await
    .expect("handshake");

    let t0 = Instant::now();
    let r = s
        .proxy
        .api(
            reqwest::Method::DELETE,
            &format!(
                "/api/v1/service-tokens/{}",
                created["id"].as_str().expect("id")
            ),
        )
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 204);
    let (code, reason, elapsed) = closed(&mut bot, t0).await;
    assert_eq!((code, reason.as_str()), (1008, "service token revoked"));
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");

    let t0 = Instant::now();
    let r = s
        .proxy
        .api(
            reqwest::Method::DELETE,
            &format!("/api/v1/grants/{}", grant["id"].as_str().expect("id")),
        )
        .send()
        .await
        .expect("delete grant");
    assert_eq!(r.status(), 204);
    let (code, reason, elapsed) = closed(&mut bob_ws, t0).await;
    assert_eq!((code, reason.as_str()), (1008, "access revoked"));
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_token_without_iat_does_not_outlive_a_user_revocation() {
    let s = Secured::start().await;
    let http = echo().await;
    s.route("ni", http.addr, "acme", "dev", json!({})).await;
    let mut claims = json!({"sub": "alice", "memberships": ALICE});
    // `null` makes the dev issuer leave the claim out.
    claims["iat"] = Value::Null;
    let token = s.idp.mint(claims, Duration::from_secs(300)).expect("token");
    let host = format!("ni.apps.test:{}", s.proxy.addr.port());
    let get = || s.proxy.get(&host, "/").bearer_auth(&token).send();
    assert_eq!(get().await.expect("send").status(), 200);
    revoke(&s, json!({"user_id": "alice"})).await;
    assert_eq!(get().await.expect("send").status(), 401);
    s.stop().await;
}
