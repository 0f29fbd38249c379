//! Browser sessions end to end: minting, the one-time launch code, the
//! session cookie's shape, and every way a cookie or code is refused.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::identity::{cookie_pair, id, split_url, Secured};
use crate::support::upstream::echo;
use crate::support::*;

const ALICE: &[&str] = &["acme/dev:member"];

#[tokio::test]
async fn launch_code_sets_a_host_only_cookie_and_redirects_to_the_clean_entry() {
    let s = Secured::start().await;
    let up = echo().await;
    let route = s
        .route(
            "nb",
            up.addr,
            "acme",
            "dev",
            json!({"adapter": "jupyterlab"}),
        )
        .await;
    let alice = s.token("alice", ALICE);
    let minted = s.mint(&route, &alice).await;
    assert_eq!(minted.status(), 201);
    assert_eq!(minted.headers()["cache-control"], "no-store");
    let v: Value = minted.json().await.expect("json");
    let open_url = v["open_url"].as_str().expect("open_url");
    let (host, path) = split_url(open_url);
    assert!(
        host.starts_with("nb.apps.test:"),
        "the route's own origin: {open_url}"
    );
    assert!(
        path.starts_with("/.platform-proxy/launch?code="),
        "{open_url}"
    );

    let r = s.proxy.get(&host, &path).send().await.expect("launch");
    assert_eq!(r.status(), 303);
    // JupyterLab's adapter opens /lab; the code is gone from the URL.
    assert_eq!(r.headers()["location"], "/lab");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let cookies: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().expect("ascii"))
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let c = cookies[0];
    for attr in ["; Path=/;", "; HttpOnly", "; SameSite=Lax", "; Max-Age="] {
        assert!(c.contains(attr), "{attr} in {c}");
    }
    assert!(!c.contains("Domain="), "host-only: {c}");
    assert!(!c.contains("Secure"), "no Secure over plain HTTP: {c}");

    // The cookie opens the app; the app never sees it.
    let page = s
        .proxy
        .get(&host, "/lab")
        .header("cookie", format!("{}; app=1", cookie_pair(c)))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let seen: Value = page.json().await.expect("echo");
    assert_eq!(seen["headers"]["cookie"], "app=1");
    // Each once (the echo joins a repeated field): the session's identity
    // lines, rendered when its cookie was first opened.
    let seen_again: Value = s
        .proxy
        .get(&host, "/lab")
        .header("cookie", cookie_pair(c))
        .send()
        .await
        .expect("page")
        .json()
        .await
        .expect("echo");
    for seen in [&seen, &seen_again] {
        assert_eq!(seen["headers"]["x-forwarded-user"], "alice");
        assert_eq!(seen["headers"]["x-forwarded-email"], "alice@example.com");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_launch_code_works_once_and_only_on_its_route() {
    let s = Secured::start().await;
    let up = echo().await;
    let a = s.route("a", up.addr, "acme", "dev", json!({})).await;
    let b = s.route("b", up.addr, "acme", "dev", json!({})).await;
    let alice = s.token("alice", ALICE);
    let v: Value = s.mint(&a, &alice).await.json().await.expect("json");
    let (host, path) = split_url(v["open_url"].as_str().expect("url"));
    // On another route's host the code is refused (and so spent nowhere).
    let b_host = host.replacen("a.", "b.", 1);
    let wrong = s
        .proxy
        .get(&b_host, &path)
        .send()
        .await
        .expect("wrong route");
    assert_eq!(wrong.status(), 403);
    assert!(wrong.headers().get("set-cookie").is_none());
    let first = s.proxy.get(&host, &path).send().await.expect("first");
    assert_eq!(first.status(), 303);
    let again = s.proxy.get(&host, &path).send().await.expect("again");
    assert_eq!(again.status(), 403, "single use");
    assert!(again.headers().get("set-cookie").is_none());
    let garbage = s
        .proxy
        .get(&host, "/.platform-proxy/launch?code=not-a-code")
        .send()
        .await
        .expect("garbage");
    assert_eq!(garbage.status(), 403);
    let _ = b;
    s.stop().await;
}

#[tokio::test]
async fn an_expired_launch_code_is_refused() {
    let s = Secured::start_with("launch_code_ttl_secs = 1", "").await;
    let up = echo().await;
    let route = s.route("exp", up.addr, "acme", "dev", json!({})).await;
    let v: Value = s
        .mint(&route, &s.token("alice", ALICE))
        .await
        .json()
        .await
        .expect("json");
    let (host, path) = split_url(v["open_url"].as_str().expect("url"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = s.proxy.get(&host, &path).send().await.expect("late");
    assert_eq!(r.status(), 403);
    s.stop().await;
}

#[tokio::test]
async fn path_route_cookies_are_scoped_to_the_public_prefix() {
    let s = Secured::start().await;
    let up = echo().await;
    let route = s
        .proxy
        .path_route(
            "pr",
            up.addr,
            json!({"org_id": "acme", "project_id": "dev"}),
        )
        .await;
    let cookies = s.launch(&route, &s.token("alice", ALICE)).await;
    assert_eq!(cookies.len(), 1);
    assert!(cookies[0].contains("; Path=/w/pr/web/;"), "{}", cookies[0]);
    s.stop().await;
}

#[tokio::test]
async fn tampered_foreign_expired_and_unknown_cookies_are_refused() {
    let s = Secured::start_with("session_idle_secs = 1", "").await;
    let up = echo().await;
    let a = s.route("ca", up.addr, "acme", "dev", json!({})).await;
    let b = s.route("cb", up.addr, "acme", "dev", json!({})).await;
    let alice = s.token("alice", ALICE);
    let good = s.cookie(&a, &alice).await;
    let (name, value) = good.split_once('=').expect("pair");
    let port = s.proxy.addr.port();
    let host_a = format!("ca.apps.test:{port}");
    let host_b = format!("cb.apps.test:{port}");
    let status = |host: String, cookie: String| {
        let req = s.proxy.get(&host, "/").header("cookie", cookie);
        async move { req.send().await.expect("send").status().as_u16() }
    };
    assert_eq!(status(host_a.clone(), good.clone()).await, 200);
    // One flipped character anywhere in the sealed value.
    let mut chars: Vec<char> = value.chars().collect();
    let mid = chars.len() / 2;
    chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    assert_eq!(
        status(host_a.clone(), format!("{name}={tampered}")).await,
        401
    );
    // Route a's cookie value under route b's cookie name.
    let b_name = format!("pp_s_{}", &id(&b).replace('-', "")[..12]);
    assert_eq!(
        status(host_b.clone(), format!("{b_name}={value}")).await,
        401
    );
    assert_eq!(status(host_b, good.clone()).await, 401, "wrong route");
    assert_eq!(status(host_a.clone(), format!("{name}=")).await, 401);
    // Past the idle expiry without use.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(status(host_a, good).await, 401, "expired");
    s.stop().await;
}

#[tokio::test]
async fn a_used_session_slides_forward_with_a_renewed_cookie() {
    let s = Secured::start_with("session_idle_secs = 4", "").await;
    let up = echo().await;
    let route = s.route("sl", up.addr, "acme", "dev", json!({})).await;
    let mut cookie = s.cookie(&route, &s.token("alice", ALICE)).await;
    let host = format!("sl.apps.test:{}", s.proxy.addr.port());
    // Each use past half the idle time renews; the session outlives the
    // first cookie's 4 s.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(2200)).await;
        let r = s
            .proxy
            .get(&host, "/")
            .header("cookie", &cookie)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        let renewed = r
            .headers()
            .get("set-cookie")
            .expect("a renewed cookie past half the idle time")
            .to_str()
            .expect("ascii");
        cookie = cookie_pair(renewed);
    }
    s.stop().await;
}

#[tokio::test]
async fn without_a_session_browsers_go_to_the_login_page_and_scripts_get_401() {
    let s = Secured::start().await;
    let up = echo().await;
    s.route("nav", up.addr, "acme", "dev", json!({})).await;
    let host = format!("nav.apps.test:{}", s.proxy.addr.port());
    let nav = s
        .proxy
        .get(&host, "/some/page?x=1")
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("navigation");
    assert_eq!(nav.status(), 302);
    let location = nav.headers()["location"].to_str().expect("ascii");
    let want = format!(
        "{}/launch?return_to=http%3A%2F%2Fnav%2Eapps%2Etest%3A{}%2Fsome%2Fpage%3Fx%3D1",
        s.idp.issuer(),
        s.proxy.addr.port()
    );
    assert_eq!(location, want);
    let xhr = s.proxy.get(&host, "/api/data").send().await.expect("xhr");
    assert_eq!(xhr.status(), 401);
    assert!(xhr.headers()["www-authenticate"]
        .to_str()
        .expect("a")
        .starts_with("Bearer"));
    let v: Value = xhr.json().await.expect("envelope");
    assert_eq!(v["error"]["code"], "unauthenticated");
    assert_eq!(up.connections(), 0, "nothing reached the app");
    s.stop().await;
}

#[tokio::test]
async fn logout_revokes_the_session_and_clears_the_cookie() {
    let s = Secured::start().await;
    let up = echo().await;
    let route = s.route("lo", up.addr, "acme", "dev", json!({})).await;
    let cookie = s.cookie(&route, &s.token("alice", ALICE)).await;
    let host = format!("lo.apps.test:{}", s.proxy.addr.port());
    // A GET (any page can make the browser send one) only shows the form.
    let page = s
        .proxy
        .get(&host, "/.platform-proxy/logout")
        .header("cookie", &cookie)
        .send()
        .await
        .expect("logout page");
    assert_eq!(page.status(), 200);
    assert!(page.headers().get("set-cookie").is_none());
    assert!(page.text().await.expect("text").contains("method=\"post\""));
    let still = s
        .proxy
        .get(&host, "/")
        .header("cookie", &cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(still.status(), 200, "a GET signs nobody out");
    let out = s
        .proxy
        .req(reqwest::Method::POST, &host, "/.platform-proxy/logout")
        .header("cookie", &cookie)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), 303, "to the platform's login page");
    let clear = out.headers()["set-cookie"].to_str().expect("ascii");
    assert!(clear.contains("Max-Age=0"), "{clear}");
    s.proxy.running().routes_applied().await;
    let after = s
        .proxy
        .get(&host, "/")
        .header("cookie", &cookie)
        .send()
        .await
        .expect("after");
    assert_eq!(after.status(), 401, "the old cookie is dead everywhere");
    s.stop().await;
}

#[tokio::test]
async fn minting_needs_access_to_the_route() {
    let s = Secured::start().await;
    let up = echo().await;
    let route = s.route("mt", up.addr, "acme", "dev", json!({})).await;
    let cases = [
        (s.token("v", &["acme/dev:viewer"]), 201),
        (s.token("o", &["globex/dev:admin"]), 404),
        (s.token("p", &["acme/prod:admin"]), 403),
        (s.token("m", &["acme/dev:member"]), 201),
        (s.token("a", &["acme:admin"]), 201),
    ];
    for (token, want) in cases {
        assert_eq!(s.mint(&route, &token).await.status(), want);
    }
    // The bootstrap token is no user.
    let op = s.mint(&route, TOKEN).await;
    assert_eq!(op.status(), 403);
    s.stop().await;
}

#[tokio::test]
async fn over_tls_the_session_cookie_is_secure() {
    let pki = crate::support::tls::Pki::generate();
    let s = Secured::start_full(
        "tls_listen = [\"127.0.0.1:0\"]\npublic_scheme = \"https\"",
        "",
        &pki.toml(),
    )
    .await;
    let up = echo().await;
    let route = s.route("sec", up.addr, "acme", "dev", json!({})).await;
    let minted: Value = s
        .mint(&route, &s.token("alice", ALICE))
        .await
        .json()
        .await
        .expect("json");
    let open_url = minted["open_url"].as_str().expect("url");
    assert!(open_url.starts_with("https://sec.apps.test:"), "{open_url}");
    let tls = s.proxy.tls_addr.expect("tls listener");
    let client = pki
        .client(tls, &["sec.apps.test"])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let (_, path) = split_url(open_url);
    let r = client
        .get(format!("https://sec.apps.test:{}{path}", tls.port()))
        .send()
        .await
        .expect("launch");
    assert_eq!(r.status(), 303);
    let c = r.headers()["set-cookie"].to_str().expect("ascii");
    assert!(c.ends_with("; Secure"), "{c}");
    s.stop().await;
}

#[tokio::test]
async fn rotated_keys_open_old_cookies_until_the_old_key_is_dropped() {
    use base64::Engine as _;
    let b64 = |b: u8| base64::engine::general_purpose::STANDARD.encode([b; 32]);
    let (old, new) = (b64(1), b64(2));
    let s = Secured::start_with(&format!("session_keys = [\"{old}\"]"), "").await;
    let up = echo().await;
    let route = s.route("rot", up.addr, "acme", "dev", json!({})).await;
    let cookie = s.cookie(&route, &s.token("alice", ALICE)).await;
    let Secured { mut proxy, idp } = s;
    let port = proxy.addr.port();
    let restart = |proxy: &mut TestProxy, keys: String| {
        let extra = format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nshutdown_grace_secs = 1\n{}",
            idp.identity_toml().replacen(
                "[identity]\n",
                &format!("[identity]\nsession_keys = [{keys}]\n"),
                1
            )
        );
        let config =
            platform_proxy::config::Config::from_sources(&base_toml(&proxy.dir, &extra), "t", &[])
                .expect("config");
        async move { platform_proxy::app::start(&config).await.expect("restart") }
    };
    let status = |proxy: &TestProxy, c: &str| {
        proxy
            .get(&format!("rot.apps.test:{port}"), "/")
            .header("cookie", c.to_owned())
            .send()
    };
    for (keys, want) in [
        (format!("\"{new}\", \"{old}\""), 200),
        (format!("\"{new}\""), 401),
    ] {
        proxy.running.take().expect("running").stop().await;
        proxy.running = Some(restart(&mut proxy, keys.clone()).await);
        assert_eq!(
            status(&proxy, &cookie).await.expect("send").status(),
            want,
            "keys {keys}"
        );
    }
    proxy.stop().await;
    idp.stop();
}
