//! A fake identity provider for the tests: a real HTTP server on
//! 127.0.0.1:0 serving OIDC discovery metadata and a JWKS that can be
//! swapped, broken, slowed down or shut down at runtime, counting every
//! request; plus signing keys made the way a real IdP has them (ring for
//! P-256, the `openssl` CLI for RSA) and token minting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pp_identity::jwt::{JwtConfig, JwtVerifier};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The audience every test token is minted for.
pub(crate) const AUDIENCE: &str = "platform-proxy";

#[derive(Default)]
struct Shared {
    /// The JWKS body served, verbatim.
    jwks: Mutex<String>,
    /// `issuer` in the discovery document; `None`: the server's base URL.
    discovery_issuer: Mutex<Option<String>>,
    failing: AtomicBool,
    delay: Mutex<Duration>,
    jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
    base: Mutex<String>,
}

/// The running fake IdP. Dropping it stops the server.
pub(crate) struct Idp {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Idp {
    /// Starts serving `keys` as the JWKS.
    pub(crate) async fn start(keys: &[&TestKey]) -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        *shared.base.lock().expect("lock") = format!("http://{addr}");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        let idp = Self {
            shared,
            addr,
            stop: Some(stop),
            task: Some(task),
        };
        idp.set_keys(keys);
        idp
    }

    /// The issuer URL (discovery lives under it).
    pub(crate) fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn jwks_url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    /// Serves these keys' JWKs from now on.
    pub(crate) fn set_keys(&self, keys: &[&TestKey]) {
        let set = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        self.set_jwks_body(set.to_string());
    }

    /// Serves this JWKS body verbatim from now on.
    pub(crate) fn set_jwks_body(&self, body: String) {
        *self.shared.jwks.lock().expect("lock") = body;
    }

    pub(crate) fn set_discovery_issuer(&self, issuer: &str) {
        *self.shared.discovery_issuer.lock().expect("lock") = Some(issuer.to_owned());
    }

    /// While set, every request answers 503 (and still counts).
    pub(crate) fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Every JWKS response waits this long first.
    pub(crate) fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().expect("lock") = delay;
    }

    pub(crate) fn jwks_fetches(&self) -> usize {
        self.shared.jwks_hits.load(Ordering::SeqCst)
    }

    pub(crate) fn discovery_fetches(&self) -> usize {
        self.shared.discovery_hits.load(Ordering::SeqCst)
    }

    /// Stops the server and waits until it no longer accepts connections.
    pub(crate) async fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("server stops within 5 s")
                .expect("server task")
                .expect("server ran");
        }
    }

    /// A verifier for this IdP reading the JWKS URL directly, short
    /// intervals so tests need not wait long; `tune` adjusts it.
    pub(crate) fn verifier(&self, tune: impl FnOnce(&mut JwtConfig)) -> JwtVerifier {
        let mut cfg = JwtConfig::new(self.issuer(), vec![AUDIENCE.to_owned()]);
        cfg.jwks_url = Some(self.jwks_url());
        cfg.fetch_timeout = Duration::from_secs(2);
        tune(&mut cfg);
        JwtVerifier::new(cfg).expect("valid verifier config")
    }

    /// Registered claims of a valid token from this IdP.
    pub(crate) fn claims(&self, sub: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer(),
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now,
            "exp": now + 300,
        })
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn discovery(State(s): State<Arc<Shared>>) -> Response {
    s.discovery_hits.fetch_add(1, Ordering::SeqCst);
    if s.failing.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let base = s.base.lock().expect("lock").clone();
    let issuer = s
        .discovery_issuer
        .lock()
        .expect("lock")
        .clone()
        .unwrap_or_else(|| base.clone());
    axum::Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/jwks"),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
    .into_response()
}

async fn jwks(State(s): State<Arc<Shared>>) -> Response {
    s.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let delay = *s.delay.lock().expect("lock");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if s.failing.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let body = s.jwks.lock().expect("lock").clone();
    ([("content-type", "application/json")], body).into_response()
}

/// A signing key of the fake IdP with its public JWK.
pub(crate) struct TestKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    pub(crate) encoding: EncodingKey,
    pub(crate) jwk: Value,
    /// Public key bytes (SEC 1 point or PKCS#1 DER), for forging HMACs.
    pub(crate) public_bytes: Vec<u8>,
}

impl TestKey {
    /// A fresh P-256 key made with ring.
    pub(crate) fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("parse P-256 key");
        let point = pair.public_key().as_ref().to_vec();
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            "use": "sig",
            "alg": "ES256",
            "kid": kid,
        });
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
            public_bytes: point,
        }
    }

    /// A fresh RSA-2048 key made by the `openssl` CLI.
    pub(crate) fn rs256(kid: &str) -> Self {
        let dir = TempDir::new("rsa");
        let pem = dir.path("key.pem");
        let der = dir.path("key.der");
        run(Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&pem)
            .arg("2048"));
        run(Command::new("openssl")
            // PKCS#1, which ring reads; OpenSSL 3 writes PKCS#8 otherwise.
            .args(["rsa", "-traditional", "-outform", "DER", "-in"])
            .arg(&pem)
            .arg("-out")
            .arg(&der));
        let modulus = run(Command::new("openssl")
            .args(["rsa", "-noout", "-modulus", "-in"])
            .arg(&pem));
        let hex = modulus
            .trim()
            .strip_prefix("Modulus=")
            .expect("openssl prints Modulus=HEX");
        let n = hex_decode(hex);
        let pkcs1 = std::fs::read(&der).expect("read DER key");
        let jwk = json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(&n),
            "e": "AQAB",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
        });
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(&pkcs1),
            jwk,
            public_bytes: n,
        }
    }

    /// The same key published under another `kid`.
    pub(crate) fn renamed(&self, kid: &str) -> Value {
        let mut jwk = self.jwk.clone();
        jwk["kid"] = json!(kid);
        jwk
    }

    /// A token with this key's `alg` and `kid`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        self.sign_with(&header, claims)
    }

    pub(crate) fn sign_with(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).expect("sign test token")
    }
}

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Adds or replaces top-level members of a JSON object.
pub(crate) fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(obj), Value::Object(extra)) = (base.as_object_mut(), extra) {
        obj.extend(extra);
    }
    base
}

pub(crate) fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run openssl (is it installed?)");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn hex_decode(hex: &str) -> Vec<u8> {
    assert_eq!(hex.len() % 2, 0, "even-length hex");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "pp-identity-it-{}-{tag}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
