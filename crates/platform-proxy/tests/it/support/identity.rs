//! Identity for the integration tests: a proxy that trusts a real loopback
//! OIDC issuer (the dev platform: discovery, JWKS, ES256 tokens), routes
//! that belong to an org and project, and the browser's sign-in dance
//! (mint a session, redeem the launch code, keep the cookie).

use std::net::SocketAddr;
use std::time::Duration;

use platform_proxy::dev_platform::DevPlatform;
use serde_json::{json, Value};

use super::{TestProxy, API_HOST};

/// A proxy trusting a fresh dev issuer; `extra` TOML is appended (it may
/// add `[identity]` keys only through `identity_extra`).
pub struct Secured {
    pub proxy: TestProxy,
    pub idp: DevPlatform,
}

impl Secured {
    pub async fn start() -> Self {
        Self::start_with("", "").await
    }

    /// `identity_extra` goes under `[identity]`; `extra` after everything.
    pub async fn start_with(identity_extra: &str, extra: &str) -> Self {
        Self::start_full("", identity_extra, extra).await
    }

    /// As [`Secured::start_with`], with `server_extra` under `[server]`.
    pub async fn start_full(server_extra: &str, identity_extra: &str, extra: &str) -> Self {
        let idp = DevPlatform::start().await.expect("dev issuer");
        let identity = idp.identity_toml().replacen(
            "[identity]\n",
            &format!("[identity]\n{identity_extra}\n"),
            1,
        );
        let proxy = TestProxy::start_with(&format!(
            // A short grace: tests stop proxies with tunnels still open.
            "[server]\nlisten = [\"127.0.0.1:0\"]\nshutdown_grace_secs = 1\n{server_extra}\n{identity}{extra}"
        ))
        .await;
        Self { proxy, idp }
    }

    /// An operator (bootstrap token) call with a JSON body that must
    /// succeed; waits until the data plane applies its change. Returns the
    /// answer's JSON.
    pub async fn operator(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .proxy
            .api(method, path)
            .json(&body)
            .send()
            .await
            .expect("operator call");
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert!(status.is_success(), "{path}: {status} {v}");
        self.proxy.running().routes_applied().await;
        v
    }

    /// A user token with `memberships` (`org[/project]:role`).
    pub fn token(&self, user: &str, memberships: &[&str]) -> String {
        self.idp
            .user_token(user, memberships, Duration::from_secs(600))
            .expect("token")
    }

    /// A host route `{label}.apps.test` owned by `org`/`project`.
    pub async fn route(
        &self,
        label: &str,
        target: SocketAddr,
        org: &str,
        project: &str,
        extra: Value,
    ) -> Value {
        let mut e = json!({"org_id": org, "project_id": project});
        if let (Some(m), Value::Object(x)) = (e.as_object_mut(), extra) {
            m.extend(x);
        }
        self.proxy.host_route(label, target, e).await
    }

    /// `POST /api/v1/routes/{id}/browser-session` with `token`.
    pub async fn mint(&self, route: &Value, token: &str) -> reqwest::Response {
        self.proxy
            .req(
                reqwest::Method::POST,
                API_HOST,
                &format!("/api/v1/routes/{}/browser-session", id(route)),
            )
            .bearer_auth(token)
            .send()
            .await
            .expect("mint")
    }

    /// Mints a session for `token` and redeems its launch code; returns
    /// the `Set-Cookie` values of the redemption.
    pub async fn launch(&self, route: &Value, token: &str) -> Vec<String> {
        let minted = self.mint(route, token).await;
        assert_eq!(minted.status(), 201, "mint");
        let v: Value = minted.json().await.expect("json");
        let (host, path) = split_url(v["open_url"].as_str().expect("open_url"));
        let r = self.proxy.get(&host, &path).send().await.expect("launch");
        assert_eq!(r.status(), 303, "launch redirect");
        r.headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().expect("ascii").to_owned())
            .collect()
    }

    /// Signs in and returns the `Cookie` header value for the route.
    pub async fn cookie(&self, route: &Value, token: &str) -> String {
        cookie_pair(&self.launch(route, token).await[0])
    }

    pub async fn stop(self) {
        self.proxy.stop().await;
        self.idp.stop();
    }
}

pub fn id(route: &Value) -> String {
    route["id"].as_str().expect("route id").to_owned()
}

/// `name=value` of a `Set-Cookie` value.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .expect("pair")
        .trim()
        .to_owned()
}

/// `http://host[:port]/path?q` → (`host[:port]`, `/path?q`).
pub fn split_url(url: &str) -> (String, String) {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .expect("absolute url");
    match rest.find('/') {
        Some(i) => (rest[..i].to_owned(), rest[i..].to_owned()),
        None => (rest.to_owned(), "/".to_owned()),
    }
}
