//! The issuer's key set: fetched (directly or through OIDC discovery),
//! cached, and fetched again when it goes stale or a token names a `kid`
//! we do not hold.
//!
//! When fetches happen:
//!
//! - the first verify fetches;
//! - a verify that finds the keys older than `cache_ttl` fetches, unless
//!   another verify is fetching already, in which case it uses the old keys;
//!   a failed fetch keeps the old keys;
//! - a verify whose `kid` (or, without `kid`, whose algorithm) matches no
//!   cached key waits for one fetch and looks again (OIDC Core 1.0
//!   §10.1.1: signing keys rotate by publishing a new `kid`).
//!
//! Every fetch, whatever its cause, counts against `refetch_min_interval`:
//! at most one per interval, so tokens with made-up `kid`s cannot turn us
//! into a flood against the issuer. Fetches are single-flight: verifies
//! that arrive while one runs wait for it and use its result rather than
//! starting their own.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::{JwtConfig, TokenError};

/// Largest discovery document or JWKS body we read.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Keys beyond this many in one set are ignored.
const MAX_KEYS: usize = 64;
/// Redirects followed per request.
const MAX_REDIRECTS: usize = 3;

/// The kind of public key, which fixes the algorithms it may verify
/// (RFC 7518 §3.1, RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    fn verifies(self, alg: Algorithm) -> bool {
        match self {
            Self::Rsa => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            Self::EcP256 => alg == Algorithm::ES256,
            Self::EcP384 => alg == Algorithm::ES384,
            Self::Ed25519 => alg == Algorithm::EdDSA,
        }
    }
}

/// One usable verification key.
pub(super) struct VerifyKey {
    kid: Option<String>,
    kind: KeyKind,
    /// The JWK's `alg`, which pins the key to that algorithm (RFC 7517 §4.4).
    alg: Option<Algorithm>,
    pub(super) decoding: DecodingKey,
}

impl VerifyKey {
    fn verifies(&self, alg: Algorithm) -> bool {
        self.kind.verifies(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// One fetched key set.
#[derive(Debug)]
struct KeySet {
    keys: Vec<Arc<VerifyKey>>,
    fetched_at: Instant,
}

enum Selection {
    Found(Arc<VerifyKey>),
    /// No key by that `kid` (or none for the algorithm): worth a refetch.
    Missing,
    /// Keys by that `kid` exist but none verifies this algorithm.
    WrongKind,
    /// No `kid`, and several keys would do.
    Ambiguous,
}

impl KeySet {
    fn select(&self, alg: Algorithm, kid: Option<&str>) -> Selection {
        match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .peekable();
                if named.peek().is_none() {
                    return Selection::Missing;
                }
                named
                    .find(|k| k.verifies(alg))
                    .map_or(Selection::WrongKind, |k| Selection::Found(Arc::clone(k)))
            }
            None => {
                let mut fits = self.keys.iter().filter(|k| k.verifies(alg));
                match (fits.next(), fits.next()) {
                    (Some(k), None) => Selection::Found(Arc::clone(k)),
                    (None, _) => Selection::Missing,
                    (Some(_), Some(_)) => Selection::Ambiguous,
                }
            }
        }
    }
}

/// Where the key set comes from.
#[derive(Debug)]
enum Source {
    Jwks(String),
    Discovery { issuer: String },
}

/// Guarded by the fetch lock.
#[derive(Debug, Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_error: Option<String>,
    /// The discovered `jwks_uri`, forgotten when a fetch from it fails.
    discovered: Option<String>,
}

impl FetchState {
    fn outcome(&self) -> Result<(), String> {
        self.last_error.clone().map_or(Ok(()), Err)
    }
}

#[derive(Debug)]
pub(super) struct KeyCache {
    source: Source,
    client: reqwest::Client,
    ttl: Duration,
    min_interval: Duration,
    keys: ArcSwapOption<KeySet>,
    /// Fetch attempts so far: a waiter that sees it moved knows a fetch ran
    /// while it waited.
    attempts: AtomicU64,
    fetch: Mutex<FetchState>,
}

impl KeyCache {
    pub(super) fn new(config: &JwtConfig) -> Result<Self, TokenError> {
        let source = match &config.jwks_url {
            Some(url) => Source::Jwks(checked_url(url, "jwks_url")?),
            None => Source::Discovery {
                issuer: checked_url(&config.issuer, "issuer")?,
            },
        };
        let client = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .connect_timeout(config.fetch_timeout)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .user_agent(concat!("platform-proxy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TokenError::Config(format!("JWKS HTTP client: {e}")))?;
        Ok(Self {
            source,
            client,
            ttl: config.cache_ttl,
            min_interval: config.refetch_min_interval,
            keys: ArcSwapOption::empty(),
            attempts: AtomicU64::new(0),
            fetch: Mutex::new(FetchState::default()),
        })
    }

    pub(super) async fn warm_up(&self) -> Result<usize, TokenError> {
        let seen = self.attempts.load(Ordering::Acquire);
        let outcome = self.refresh(seen, true).await;
        match self.keys.load_full() {
            Some(set) => Ok(set.keys.len()),
            None => Err(unavailable(outcome)),
        }
    }

    /// The key that should verify a token with this `alg` and `kid`.
    pub(super) async fn key_for(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Arc<VerifyKey>, TokenError> {
        let seen = self.attempts.load(Ordering::Acquire);
        let mut set = self.keys.load_full();
        match &set {
            None => {
                let outcome = self.refresh(seen, true).await;
                set = self.keys.load_full();
                if set.is_none() {
                    return Err(unavailable(outcome));
                }
            }
            Some(s) if s.fetched_at.elapsed() >= self.ttl => {
                // Stale: refresh unless someone is at it; the old keys do
                // meanwhile, and stay if the fetch fails.
                let _ = self.refresh(seen, false).await;
                set = self.keys.load_full();
            }
            Some(_) => {}
        }
        let Some(set) = set else {
            return Err(TokenError::UnknownKey);
        };
        match set.select(alg, kid) {
            Selection::Found(key) => return Ok(key),
            Selection::WrongKind => return Err(wrong_kind(alg)),
            Selection::Ambiguous => return Err(TokenError::UnknownKey),
            Selection::Missing => {}
        }
        // A kid we do not know: perhaps the issuer rotated. One fetch, then
        // look again.
        let _ = self.refresh(seen, true).await;
        match self.keys.load_full().map(|set| set.select(alg, kid)) {
            Some(Selection::Found(key)) => Ok(key),
            Some(Selection::WrongKind) => Err(wrong_kind(alg)),
            _ => Err(TokenError::UnknownKey),
        }
    }

    /// Fetches once unless a fetch ran since `seen` or the rate limit
    /// forbids it; `wait: false` gives up at once if a fetch is running.
    /// Returns how the latest fetch went.
    async fn refresh(&self, seen: u64, wait: bool) -> Result<(), String> {
        let mut state = if wait {
            self.fetch.lock().await
        } else {
            match self.fetch.try_lock() {
                Ok(state) => state,
                Err(_) => return Ok(()),
            }
        };
        if self.attempts.load(Ordering::Acquire) != seen {
            return state.outcome();
        }
        if state
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.min_interval)
        {
            tracing::debug!("JWKS refetch skipped: rate limited");
            return state.outcome();
        }
        state.last_attempt = Some(Instant::now());
        let outcome = match self.fetch(&mut state).await {
            Ok(set) => {
                tracing::info!(keys = set.keys.len(), "fetched the issuer's JWKS");
                self.keys.store(Some(Arc::new(set)));
                state.last_error = None;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS fetch failed; keeping the cached keys, if any");
                state.last_error = Some(e.clone());
                Err(e)
            }
        };
        self.attempts.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    async fn fetch(&self, state: &mut FetchState) -> Result<KeySet, String> {
        let url = match &self.source {
            Source::Jwks(url) => url.clone(),
            Source::Discovery { issuer } => match &state.discovered {
                Some(url) => url.clone(),
                None => {
                    let url = self.discover(issuer).await?;
                    state.discovered = Some(url.clone());
                    url
                }
            },
        };
        let set = self.get(&url).await.and_then(|body| parse_jwks(&body));
        if set.is_err() {
            state.discovered = None;
        }
        set
    }

    /// OIDC Discovery 1.0 §4: the metadata lives under the issuer with any
    /// trailing `/` removed; §4.3: its `issuer` must be ours exactly.
    async fn discover(&self, issuer: &str) -> Result<String, String> {
        #[derive(Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let body = self.get(&url).await?;
        let meta: Metadata = serde_json::from_slice(&body)
            .map_err(|e| format!("{url}: not OIDC provider metadata: {e}"))?;
        if meta.issuer != issuer {
            return Err(format!(
                "{url}: the metadata names another issuer than the configured one"
            ));
        }
        checked_url(&meta.jwks_uri, "jwks_uri").map_err(|e| format!("{url}: {e}"))
    }

    /// A GET whose body may not exceed [`MAX_BODY_BYTES`].
    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        tracing::debug!(url, "fetching issuer metadata");
        let mut resp = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("{url}: status {status}"));
        }
        let too_big = || format!("{url}: body over {MAX_BODY_BYTES} bytes");
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The usable signing keys of a JWKS body (RFC 7517 §5). Keys we cannot use
/// are skipped, not fatal: a set may mix in encryption keys or key types
/// newer than us. A set with no usable key is an error, so a glitch at the
/// issuer does not wipe the cache.
fn parse_jwks(body: &[u8]) -> Result<KeySet, String> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet = serde_json::from_slice(body).map_err(|e| format!("not a JWK set: {e}"))?;
    let keys: Vec<Arc<VerifyKey>> = raw
        .keys
        .into_iter()
        .take(MAX_KEYS)
        .filter_map(|v| match serde_json::from_value::<Jwk>(v) {
            Ok(jwk) => usable(&jwk).map(Arc::new),
            Err(e) => {
                tracing::debug!(error = %e, "skipping an unparseable JWK");
                None
            }
        })
        .collect();
    if keys.is_empty() {
        return Err("the JWK set holds no usable signing key".to_owned());
    }
    Ok(KeySet {
        keys,
        fetched_at: Instant::now(),
    })
}

/// A verification key, if the JWK is a public signing key we support:
/// `use` absent or `sig` (RFC 7517 §4.2), `key_ops` absent or holding
/// `verify` (§4.3), an asymmetric key type, an `alg` (if any) that suits it.
fn usable(jwk: &Jwk) -> Option<VerifyKey> {
    let kid = jwk.common.key_id.clone();
    let skip = |why: &str| {
        tracing::debug!(kid = ?kid, why, "skipping a JWK");
        None
    };
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return skip("not a signature key");
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return skip("key_ops lacks verify");
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => KeyKind::EcP256,
            EllipticCurve::P384 => KeyKind::EcP384,
            _ => return skip("unsupported curve"),
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            KeyKind::Ed25519
        }
        // Symmetric keys never verify issuer tokens.
        AlgorithmParameters::OctetKeyPair(_) | AlgorithmParameters::OctetKey(_) => {
            return skip("unsupported key type")
        }
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(ka) => match Algorithm::from_str(&ka.to_string()) {
            Ok(alg) if kind.verifies(alg) => Some(alg),
            _ => return skip("alg does not suit the key"),
        },
    };
    match DecodingKey::from_jwk(jwk) {
        Ok(decoding) => Some(VerifyKey {
            kid,
            kind,
            alg,
            decoding,
        }),
        Err(_) => skip("bad key parameters"),
    }
}

/// An http(s) URL, or a config error naming the setting.
fn checked_url(url: &str, setting: &str) -> Result<String, TokenError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(url.to_owned()),
        _ => Err(TokenError::Config(format!(
            "{setting} must be an http(s) URL"
        ))),
    }
}

fn unavailable(outcome: Result<(), String>) -> TokenError {
    TokenError::KeysUnavailable(
        outcome.err().unwrap_or_else(|| {
            "no key fetched yet; retrying after the refetch interval".to_owned()
        }),
    )
}

fn wrong_kind(alg: Algorithm) -> TokenError {
    TokenError::AlgorithmNotAllowed(format!("{alg:?} does not suit the key the token names"))
}
