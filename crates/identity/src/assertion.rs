//! The identity assertion: a short-lived ES256 JWT the proxy signs for an
//! upstream that wants to verify who the user is rather than trust a plain
//! header (the idea of Pomerium's `X-Pomerium-Jwt-Assertion`).
//!
//! The upstream checks it against the JWKS the proxy publishes
//! ([`AssertionSigner::jwks`]): signature (ES256, RFC 7518 §3.4), `iss` (the
//! proxy), `aud` (the route's public origin, so an assertion made for one
//! app is refused by another, RFC 7519 §4.1.3) and `exp`.
//!
//! Claims:
//!
//! | claim | value |
//! | --- | --- |
//! | `iss` | the proxy's issuer URL |
//! | `aud` | the route's public origin |
//! | `sub` | [`Principal::id`] |
//! | `email` | [`Principal::email`], if any |
//! | `org`, `project` | the route's org and project, if any |
//! | `roles` | the principal's roles **in the route's org only**, as [`Principal::role_strings`] renders them (`acme:admin`, `acme/ml-dev:member`); empty for a route without org. An upstream of one tenant learns nothing of the user's other tenants |
//! | `sid` | the proxy session id, if any |
//! | `iat`, `exp` | issue time and `iat + ttl`, whole seconds |
//! | `jti` | 128 random bits, base64url |
//!
//! Signing is on the request path, so everything that does not change per
//! request is computed once: the parsed key pair, the encoded header, the
//! JWKS. A signature costs one JSON encoding of the claims, one P-256
//! signature and two string allocations.
//!
//! Replicas that must verify each other's assertions share one key through
//! [`AssertionSigner::from_pkcs8_der`] / [`AssertionSigner::from_pkcs8_pem`];
//! the `kid` is derived from the public key (RFC 7638 thumbprint), so they
//! agree on it without configuration.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use pp_model::{Principal, Role, Scope};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::ser::{Serialize, Serializer};

/// Characters of the thumbprint kept as `kid`: 96 bits, plenty to tell a
/// handful of keys apart.
const KID_LEN: usize = 16;

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// Why a signer could not be made or could not sign.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("the assertion key is not a usable P-256 PKCS#8 private key: {0}")]
    BadKey(String),
    #[error("the assertion key PEM is unusable: {0}")]
    BadPem(&'static str),
    #[error("the assertion issuer must not be empty")]
    NoIssuer,
    #[error("an assertion must live at least one second")]
    BadTtl,
    #[error("the system random number generator failed")]
    Random,
    #[error("signing the assertion failed")]
    Sign,
}

/// Signs identity assertions with one P-256 key. `Send + Sync`; share it in
/// an `Arc`.
pub struct AssertionSigner {
    issuer: String,
    kid: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// The encoded header followed by `.`: the first part of every token.
    header_prefix: String,
    jwks: serde_json::Value,
}

impl fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    /// A fresh random key: fine for one replica, or where assertions only
    /// need to outlive the process.
    ///
    /// # Errors
    /// The random number generator failed, or the issuer is empty.
    pub fn generate(issuer: String) -> Result<Self, AssertionError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| AssertionError::Random)?;
        Self::from_pkcs8_der(issuer, pkcs8.as_ref())
    }

    /// A configured key, PKCS#8 DER (RFC 5208) of a P-256 key.
    ///
    /// # Errors
    /// The key is not a P-256 PKCS#8 key, or the issuer is empty.
    pub fn from_pkcs8_der(issuer: String, der: &[u8]) -> Result<Self, AssertionError> {
        if issuer.is_empty() {
            return Err(AssertionError::NoIssuer);
        }
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| AssertionError::BadKey(e.to_string()))?;
        // SEC 1 §2.3.3 uncompressed point: 0x04 || x || y.
        let point = key.public_key().as_ref();
        let (x, y) = match point {
            [0x04, xy @ ..] if xy.len() == 64 => xy.split_at(32),
            _ => {
                return Err(AssertionError::BadKey(
                    "unexpected public key form".to_owned(),
                ))
            }
        };
        let x = URL_SAFE_NO_PAD.encode(x);
        let y = URL_SAFE_NO_PAD.encode(y);
        let kid = thumbprint(&x, &y);
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        let mut header_prefix = URL_SAFE_NO_PAD.encode(header.to_string());
        header_prefix.push('.');
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC",
            "crv": "P-256",
            "x": x,
            "y": y,
            "use": "sig",
            "alg": "ES256",
            "kid": kid,
        }]});
        Ok(Self {
            issuer,
            kid,
            key,
            rng,
            header_prefix,
            jwks,
        })
    }

    /// A configured key as an unencrypted PKCS#8 PEM block
    /// (`-----BEGIN PRIVATE KEY-----`, RFC 7468 §10), as
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`
    /// writes it.
    ///
    /// # Errors
    /// No such block, bad base64, or not a P-256 key.
    pub fn from_pkcs8_pem(issuer: String, pem: &str) -> Result<Self, AssertionError> {
        if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
            return Err(AssertionError::BadPem(
                "a SEC 1 `EC PRIVATE KEY`; convert it with `openssl pkcs8 -topk8 -nocrypt`",
            ));
        }
        if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(AssertionError::BadPem(
                "encrypted private keys are not supported",
            ));
        }
        let start = pem.find(PEM_BEGIN).ok_or(AssertionError::BadPem(
            "no `-----BEGIN PRIVATE KEY-----` line",
        ))? + PEM_BEGIN.len();
        let len = pem[start..].find(PEM_END).ok_or(AssertionError::BadPem(
            "no `-----END PRIVATE KEY-----` line",
        ))?;
        let body: String = pem[start..start + len]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = STANDARD
            .decode(body)
            .map_err(|_| AssertionError::BadPem("the block is not base64"))?;
        Self::from_pkcs8_der(issuer, &der)
    }

    /// The key id in the header and the JWKS.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The `iss` of every assertion.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public JWKS (RFC 7517 §5) that verifies the assertions, to
    /// publish at a well-known path.
    #[must_use]
    pub fn jwks(&self) -> serde_json::Value {
        self.jwks.clone()
    }

    /// Signs an assertion of `p` for the route at `audience` (claims in the
    /// module doc).
    ///
    /// # Errors
    /// A TTL under a second, or a failure of the random source or signer.
    pub fn sign(
        &self,
        p: &Principal,
        audience: &str,
        org: Option<&str>,
        project: Option<&str>,
        session_id: Option<&str>,
        ttl: Duration,
    ) -> Result<String, AssertionError> {
        if ttl.as_secs() == 0 {
            return Err(AssertionError::BadTtl);
        }
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut jti = [0u8; 16];
        self.rng
            .fill(&mut jti)
            .map_err(|_| AssertionError::Random)?;
        let claims = Claims {
            iss: &self.issuer,
            aud: audience,
            sub: &p.id,
            email: p.email.as_deref(),
            org,
            project,
            roles: OrgRoles { p, org },
            platform_admin: p.platform_admin,
            sid: session_id,
            iat,
            exp: iat.saturating_add(ttl.as_secs()),
            jti: URL_SAFE_NO_PAD.encode(jti),
        };
        let json = serde_json::to_vec(&claims).map_err(|_| AssertionError::Sign)?;
        // header + '.' + payload + '.' + 64-byte signature (86 chars).
        let mut token = String::with_capacity(self.header_prefix.len() + json.len() * 4 / 3 + 90);
        token.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(&json, &mut token);
        let sig = self
            .key
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| AssertionError::Sign)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut token);
        Ok(token)
    }
}

/// RFC 7638 §3.2: SHA-256 over the required members in lexical order, no
/// whitespace; base64url, cut to [`KID_LEN`].
fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    let mut kid = URL_SAFE_NO_PAD.encode(digest.as_ref());
    kid.truncate(KID_LEN);
    kid
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<&'a str>,
    roles: OrgRoles<'a>,
    /// Present (and `true`) only for platform admins, whose access comes
    /// from no org role.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    platform_admin: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    iat: u64,
    exp: u64,
    jti: String,
}

/// The principal's roles in one org, serialized straight from the map
/// without building a list of strings first.
struct OrgRoles<'a> {
    p: &'a Principal,
    org: Option<&'a str>,
}

impl Serialize for OrgRoles<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let org = self.org;
        s.collect_seq(
            self.p
                .roles
                .iter()
                .filter(|(scope, _)| Some(scope.org_id.as_str()) == org)
                .map(|(scope, role)| RoleString(scope, *role)),
        )
    }
}

/// `org:role` or `org/project:role`, as [`Principal::role_strings`] spells
/// it.
struct RoleString<'a>(&'a Scope, Role);

impl fmt::Display for RoleString<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.project_id {
            Some(project) => write!(f, "{}/{project}:{}", self.0.org_id, self.1.as_str()),
            None => write!(f, "{}:{}", self.0.org_id, self.1.as_str()),
        }
    }
}

impl Serialize for RoleString<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests;
