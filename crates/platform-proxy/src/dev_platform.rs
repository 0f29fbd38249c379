//! A stand-in for the platform, for `demo` and the tests: an OIDC issuer
//! (discovery document and JWKS on loopback, ES256 key made at start) that
//! mints user tokens, and the launch endpoint a platform offers — the
//! proxy's `identity.login_url` — which mints a browser session through the
//! proxy's API as the signed-in user and sends the browser to its
//! `open_url`.
//!
//! In production the platform's console and identity provider (Keycloak,
//! say) play these parts; nothing here is used by `serve`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

/// The audience the dev issuer's tokens are for.
pub const AUDIENCE: &str = "platform-proxy";

struct Inner {
    issuer: String,
    kid: String,
    jwk: serde_json::Value,
    key: EncodingKey,
    /// Where the launch endpoint reaches the proxy API, and as whom.
    launch: RwLock<Option<LaunchAs>>,
}

#[derive(Clone)]
struct LaunchAs {
    api_addr: SocketAddr,
    api_host: String,
    user_token: String,
}

/// A running dev platform.
#[derive(Clone)]
pub struct DevPlatform {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for DevPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevPlatform")
            .field("issuer", &self.inner.issuer)
            .finish_non_exhaustive()
    }
}

impl DevPlatform {
    /// Starts the issuer on 127.0.0.1 with a fresh key.
    ///
    /// # Errors
    /// No port, or the key could not be made.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("generating the dev issuer key failed"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow::anyhow!("loading the dev issuer key failed"))?;
        // Uncompressed SEC1 point: 0x04 || x (32) || y (32).
        let public = pair.public_key().as_ref();
        let (x, y) = (&public[1..33], &public[33..65]);
        let kid = format!("dev-{}", &URL_SAFE_NO_PAD.encode(x)[..8]);
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        });
        let inner = Arc::new(Inner {
            issuer: format!("http://{addr}"),
            kid,
            jwk,
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            launch: RwLock::new(None),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks.json", get(jwks))
            .route("/launch", get(launch))
            .with_state(Arc::clone(&inner));
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        Ok(Self {
            inner,
            addr,
            shutdown,
        })
    }

    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The `[identity]` config that trusts this issuer and sends browsers
    /// without a session to its launch endpoint.
    #[must_use]
    pub fn identity_toml(&self) -> String {
        format!(
            "[identity]\nlogin_url = \"{issuer}/launch\"\n\
             [identity.oidc]\nissuer = \"{issuer}\"\naudiences = [\"{AUDIENCE}\"]\n",
            issuer = self.inner.issuer
        )
    }

    /// Signs `claims`, adding `iss`, `aud`, `iat` and `exp` (in `ttl`)
    /// where missing; a claim given as `null` is left out (a token without
    /// `iat`, say).
    ///
    /// # Errors
    /// The claims do not serialize.
    pub fn mint(
        &self,
        mut claims: serde_json::Value,
        ttl: std::time::Duration,
    ) -> anyhow::Result<String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(3600);
        let obj = claims.as_object_mut().context("claims must be an object")?;
        obj.entry("iss")
            .or_insert_with(|| self.inner.issuer.clone().into());
        obj.entry("aud").or_insert_with(|| AUDIENCE.into());
        obj.entry("iat").or_insert_with(|| now.into());
        obj.entry("exp").or_insert_with(|| (now + ttl).into());
        obj.retain(|_, v| !v.is_null());
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.inner.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.inner.key)?)
    }

    /// A user token: `sub`, `email`, and `memberships` as
    /// `org[/project]:role` strings.
    ///
    /// # Errors
    /// As [`DevPlatform::mint`].
    pub fn user_token(
        &self,
        sub: &str,
        memberships: &[&str],
        ttl: std::time::Duration,
    ) -> anyhow::Result<String> {
        self.mint(
            serde_json::json!({
                "sub": sub,
                "email": format!("{sub}@example.com"),
                "name": sub,
                "sid": format!("platform-session-{}", uuid::Uuid::new_v4().simple()),
                "memberships": memberships,
            }),
            ttl,
        )
    }

    /// Makes the launch endpoint mint sessions through the proxy API at
    /// `api_addr` (Host `api_host`) as the holder of `user_token`.
    pub async fn launch_as(&self, api_addr: SocketAddr, api_host: &str, user_token: &str) {
        *self.inner.launch.write().await = Some(LaunchAs {
            api_addr,
            api_host: api_host.to_owned(),
            user_token: user_token.to_owned(),
        });
    }

    /// Mints a browser session for `route` as the signed-in user and
    /// returns its one-time `open_url`.
    ///
    /// # Errors
    /// No user signed in ([`DevPlatform::launch_as`]), or the proxy refused.
    pub async fn open_url(&self, route: uuid::Uuid) -> anyhow::Result<String> {
        let as_user = self
            .inner
            .launch
            .read()
            .await
            .clone()
            .context("no user is signed in to the dev platform")?;
        mint_session(&as_user, route, None).await
    }

    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

async fn discovery(State(inner): State<Arc<Inner>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "issuer": inner.issuer,
        "jwks_uri": format!("{}/jwks.json", inner.issuer),
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

async fn jwks(State(inner): State<Arc<Inner>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "keys": [inner.jwk] }))
}

#[derive(Deserialize)]
struct LaunchQuery {
    return_to: String,
}

/// The platform's launch endpoint: find the app the browser was going to
/// (the route whose `public_url` is the longest prefix of `return_to`,
/// among those the user may see), mint a session for it as the signed-in
/// user and send the browser to its `open_url`. The browser is only ever
/// sent where the proxy's API said.
async fn launch(State(inner): State<Arc<Inner>>, Query(q): Query<LaunchQuery>) -> Response {
    let Some(as_user) = inner.launch.read().await.clone() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no user is signed in to the dev platform",
        )
            .into_response();
    };
    // Land where the browser was going: the path of `return_to`.
    let next = q
        .return_to
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()));
    let route = match route_for(&as_user, &q.return_to).await {
        Ok(Some(r)) => r,
        Ok(None) => return (StatusCode::NOT_FOUND, "no app of yours lives there").into_response(),
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("listing apps failed: {e:#}"),
            )
                .into_response()
        }
    };
    match mint_session(&as_user, route, next).await {
        Ok(url) => (StatusCode::SEE_OTHER, [(header::LOCATION, url)]).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("the proxy refused the launch: {e:#}"),
        )
            .into_response(),
    }
}

fn api_client(as_user: &LaunchAs) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .resolve(&as_user.api_host, as_user.api_addr)
        .build()?)
}

/// The route (among those the user sees) whose public URL is the longest
/// prefix of `url`.
async fn route_for(as_user: &LaunchAs, url: &str) -> anyhow::Result<Option<uuid::Uuid>> {
    let port = as_user.api_addr.port();
    let v: serde_json::Value = api_client(as_user)?
        .get(format!(
            "http://{}:{port}/api/v1/routes?limit=500",
            as_user.api_host
        ))
        .bearer_auth(&as_user.user_token)
        .send()
        .await?
        .json()
        .await?;
    let best = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["public_url"].as_str()?, r["id"].as_str()?)))
        .filter(|(u, _)| url.starts_with(u) || format!("{url}/") == *u)
        .max_by_key(|(u, _)| u.len())
        .and_then(|(_, id)| id.parse().ok());
    Ok(best)
}

async fn mint_session(
    as_user: &LaunchAs,
    route: uuid::Uuid,
    next: Option<String>,
) -> anyhow::Result<String> {
    let client = api_client(as_user)?;
    let port = as_user.api_addr.port();
    let body = match next {
        Some(n) => serde_json::json!({ "next": n }),
        None => serde_json::json!({}),
    };
    let resp = client
        .post(format!(
            "http://{}:{port}/api/v1/routes/{route}/browser-session",
            as_user.api_host
        ))
        .bearer_auth(&as_user.user_token)
        .json(&body)
        .send()
        .await?;
    let status = resp.status();
    let v: serde_json::Value = resp.json().await?;
    if !status.is_success() {
        anyhow::bail!("{status}: {}", v["error"]["message"]);
    }
    v["open_url"]
        .as_str()
        .map(str::to_owned)
        .context("no open_url in the answer")
}
