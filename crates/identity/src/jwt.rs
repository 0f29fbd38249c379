//! OIDC / JWT bearer tokens: signature checked against the issuer's JWKS,
//! registered claims validated, the rest mapped onto a [`Principal`].
//!
//! # What a token must be
//!
//! - A JWS in compact serialization (RFC 7515 §7.1) of at most 16 KiB,
//!   refused before any decoding so a client cannot make us parse megabytes.
//! - Signed with an algorithm from [`JwtConfig::algorithms`]. `none` and the
//!   HMAC family are never accepted: an HMAC "verified" with a public key is
//!   the classic algorithm-confusion forgery (RFC 8725 §2.1, §3.1). The
//!   algorithm must also suit the key: an RSA key verifies only `RS*`/`PS*`,
//!   a P-256 key only `ES256`, and a key whose JWK names an `alg` only that.
//! - The key is picked by the header's `kid`. A token without `kid` is
//!   accepted only when exactly one key of the set suits its algorithm.
//!   Header fields that point at keys (`jku`, `jwk`, `x5u`, `x5c`) are
//!   ignored: keys come from the configured issuer only. A `crit` header
//!   is refused, as we understand no extension (RFC 7515 §4.1.11).
//! - `iss` equal to the configured issuer (RFC 7519 §4.1.1), `aud` holding
//!   one of the configured audiences (§4.1.3), `exp` present and not passed
//!   (§4.1.4), `nbf` (§4.1.5) and `iat` (§4.1.6), where present, not in the
//!   future; every time check allows [`JwtConfig::leeway`] of clock skew.
//! - Not a back-channel logout token: one of those, replayed as a bearer
//!   token, would otherwise log its subject in (RFC 8725 §3.11).
//!
//! # Claims onto a principal
//!
//! The claim names come from [`ClaimMapping`]. A name is looked up as a
//! whole first (so URL-namespaced claims such as
//! `https://acme.example/roles` work), then as a dotted path through nested
//! objects (`realm_access.roles`).
//!
//! - `user_id` (default `sub`): required, a non-empty string →
//!   [`Principal::id`].
//! - `email`, `name`: optional strings.
//! - `session_id` (default `sid`): optional →
//!   [`Principal::platform_session`], so that a back-channel logout naming
//!   that session ends the proxy sessions minted from it.
//! - `roles` (default `roles`): optional list of strings. Holding
//!   [`ClaimMapping::platform_admin_role`] makes a platform admin; holding
//!   [`ClaimMapping::service_account_role`] makes the principal a
//!   [`PrincipalKind::ServiceAccount`] instead of a user.
//! - `memberships` (default `memberships`): optional JSON array; a missing
//!   claim means no org or project roles. Each item is either an object
//!
//!   ```json
//!   {"org": "acme", "project": "ml-dev", "role": "member"}
//!   ```
//!
//!   where `project` may be left out (or `null`) for an org role, or a
//!   string `"acme:admin"` (org role) / `"acme/ml-dev:member"` (project
//!   role). The role is one of `viewer`, `member`, `admin`; org and project
//!   ids match `[A-Za-z0-9._-]{1,128}`. Anything else fails the whole token
//!   with [`TokenError::BadClaim`] rather than silently dropping a grant.
//!   Each item becomes one [`Principal::grant`].
//!
//! # Keys
//!
//! The JWKS comes from [`JwtConfig::jwks_url`], or by OIDC Discovery 1.0
//! §4 from `{issuer}/.well-known/openid-configuration` (whose `issuer` must
//! equal ours, §4.3). It is cached; see `jwks` for when it is fetched again
//! (after [`JwtConfig::cache_ttl`], or when a token names an unknown `kid`, as
//! OIDC Core 1.0 §10.1.1 expects of key rotation, at most once per
//! [`JwtConfig::refetch_min_interval`]).

mod claims;
mod jwks;
#[cfg(test)]
mod tests;

use std::time::Duration;

use jsonwebtoken::Algorithm;
use pp_model::Principal;
#[cfg(doc)]
use pp_model::PrincipalKind;

use self::claims::{Compact, TimeRules};
use self::jwks::KeyCache;

/// Largest token we look at, in bytes. Real access tokens are a few KiB;
/// the limit applies before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// How tokens of one issuer are checked and mapped.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// Exact `iss` value required (RFC 7519 §4.1.1).
    pub issuer: String,
    /// `aud` must contain one of these; must not be empty.
    pub audiences: Vec<String>,
    /// Where the JWKS lives; `None` discovers it from the issuer
    /// (OIDC Discovery 1.0 §4).
    pub jwks_url: Option<String>,
    /// Clock skew allowed for `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Signature algorithms accepted; asymmetric ones only.
    pub algorithms: Vec<Algorithm>,
    /// Which claims carry what.
    pub claims: ClaimMapping,
    /// At most one JWKS fetch per interval, whatever triggers it (an unknown
    /// `kid`, a stale cache), so forged `kid`s cannot hammer the issuer.
    pub refetch_min_interval: Duration,
    /// Keys older than this are fetched again on the next verify; a failed
    /// fetch keeps the old keys.
    pub cache_ttl: Duration,
    /// Timeout for one discovery or JWKS request.
    pub fetch_timeout: Duration,
}

impl JwtConfig {
    /// A config with the usual defaults: 60 s leeway, RS256 and ES256,
    /// default claim names, JWKS by discovery, a refetch at most every 30 s,
    /// keys kept 10 minutes, 5 s fetch timeout.
    #[must_use]
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            jwks_url: None,
            leeway: Duration::from_secs(60),
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
            claims: ClaimMapping::default(),
            refetch_min_interval: Duration::from_secs(30),
            cache_ttl: Duration::from_secs(600),
            fetch_timeout: Duration::from_secs(5),
        }
    }

    fn validate(&self) -> Result<(), TokenError> {
        let bad = |msg: &str| Err(TokenError::Config(msg.to_owned()));
        if self.issuer.trim().is_empty() {
            return bad("issuer must not be empty");
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return bad("audiences must list at least one non-empty audience");
        }
        if self.algorithms.is_empty() {
            return bad("algorithms must list at least one algorithm");
        }
        if let Some(alg) = self
            .algorithms
            .iter()
            .find(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(TokenError::Config(format!(
                "algorithm {alg:?} is symmetric; only asymmetric algorithms may verify issuer tokens"
            )));
        }
        if self.fetch_timeout.is_zero() {
            return bad("fetch_timeout must be positive");
        }
        self.claims.validate()
    }
}

/// Which claims carry the principal's attributes. Names are looked up
/// whole first, then as dotted paths (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    /// Default `sub`.
    pub user_id: String,
    /// Default `email`.
    pub email: String,
    /// Default `name`.
    pub name: String,
    /// Default `sid`; becomes [`Principal::platform_session`].
    pub session_id: String,
    /// Default `memberships`; format in the module doc.
    pub memberships: String,
    /// Default `roles`; a list of strings.
    pub roles: String,
    /// A role (in `roles`) that makes a platform admin.
    pub platform_admin_role: Option<String>,
    /// A role (in `roles`) that makes a service account rather than a user.
    pub service_account_role: Option<String>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            user_id: "sub".to_owned(),
            email: "email".to_owned(),
            name: "name".to_owned(),
            session_id: "sid".to_owned(),
            memberships: "memberships".to_owned(),
            roles: "roles".to_owned(),
            platform_admin_role: Some("platform-admin".to_owned()),
            service_account_role: Some("service-account".to_owned()),
        }
    }
}

impl ClaimMapping {
    fn validate(&self) -> Result<(), TokenError> {
        let names = [
            ("user_id", &self.user_id),
            ("email", &self.email),
            ("name", &self.name),
            ("session_id", &self.session_id),
            ("memberships", &self.memberships),
            ("roles", &self.roles),
        ];
        for (field, value) in names {
            if value.is_empty() {
                return Err(TokenError::Config(format!(
                    "claims.{field} must name a claim"
                )));
            }
        }
        Ok(())
    }
}

/// Why a token was refused. [`TokenError::code`] is what goes into logs,
/// metrics and error envelopes; the messages never quote token contents.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("no key of the issuer's key set matches the token")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token comes from another issuer")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("signature algorithm not allowed: {0}")]
    AlgorithmNotAllowed(String),
    /// Names the registered claim whose role is missing; the configured
    /// user-id claim reports as `sub`.
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(&'static str),
    #[error("bad claim: {0}")]
    BadClaim(String),
    /// The JWKS could not be fetched and no key is cached.
    #[error("the issuer's keys are unavailable: {0}")]
    KeysUnavailable(String),
    #[error("invalid JWT configuration: {0}")]
    Config(String),
}

impl TokenError {
    /// Snake-case code for audit records, metrics and error envelopes.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "token_malformed",
            Self::BadSignature => "token_bad_signature",
            Self::UnknownKey => "token_unknown_key",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::WrongIssuer => "token_wrong_issuer",
            Self::WrongAudience => "token_wrong_audience",
            Self::AlgorithmNotAllowed(_) => "token_algorithm_not_allowed",
            Self::MissingClaim(_) => "token_missing_claim",
            Self::BadClaim(_) => "token_bad_claim",
            Self::KeysUnavailable(_) => "token_keys_unavailable",
            Self::Config(_) => "token_config",
        }
    }
}

/// A bearer token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub principal: Principal,
    /// The token's `exp`: nothing derived from it may outlive this.
    pub expires_at: time::OffsetDateTime,
    /// The token's `iat`, if it has one: a revocation of the user or the
    /// platform session after this time makes the token fail.
    pub issued_at: Option<time::OffsetDateTime>,
}

/// A verified OIDC back-channel logout token: end the sessions of this
/// subject, or of this platform session, or (both named) of that session of
/// that subject. The values come from the claims the [`ClaimMapping`] names
/// for `user_id` and `session_id`, so they compare equal to
/// [`Principal::id`] and [`Principal::platform_session`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    pub subject: Option<String>,
    pub session_id: Option<String>,
    /// The token's `iat` (required for logout tokens): the revocation is
    /// stamped with it, and a stale token is refused as a replay.
    pub issued_at: Option<time::OffsetDateTime>,
}

/// Checks tokens of one issuer. Cheap to share: put it in an `Arc`; keys
/// are cached inside and fetched as needed.
#[derive(Debug)]
pub struct JwtVerifier {
    config: JwtConfig,
    keys: KeyCache,
}

impl JwtVerifier {
    /// Validates the config and builds the HTTP client for key fetches. No
    /// request is made until the first verify.
    ///
    /// # Errors
    /// [`TokenError::Config`] naming the bad setting.
    pub fn new(config: JwtConfig) -> Result<Self, TokenError> {
        config.validate()?;
        let keys = KeyCache::new(&config)?;
        Ok(Self { config, keys })
    }

    /// The issuer whose tokens this verifier accepts.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Fetches the key set now (subject to the refetch rate limit), so a
    /// misconfigured issuer shows at startup rather than on the first
    /// request. Returns how many usable keys the cache holds.
    ///
    /// # Errors
    /// [`TokenError::KeysUnavailable`] when no key could be had.
    pub async fn warm_up(&self) -> Result<usize, TokenError> {
        self.keys.warm_up().await
    }

    /// Checks a bearer token (signature, `iss`, `aud`, `exp`, `nbf`, `iat`)
    /// and maps its claims; see the module doc for the rules.
    ///
    /// # Errors
    /// The first check that failed.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let claims = self.verified_claims(token, TimeRules::ACCESS).await?;
        if claims.is_logout_token() {
            return Err(TokenError::BadClaim(
                "a back-channel logout token is not a bearer token".to_owned(),
            ));
        }
        let principal = claims.principal(&self.config.claims)?;
        Ok(VerifiedToken {
            principal,
            expires_at: claims.expires_at()?,
            issued_at: claims.issued_at()?,
        })
    }

    /// Checks an OIDC Back-Channel Logout 1.0 logout token (§2.6): the same
    /// signature, `iss` and `aud` checks as [`verify`](Self::verify); `iat`
    /// required (`exp` checked where present); `events` holding the
    /// `http://schemas.openid.net/event/backchannel-logout` member; no
    /// `nonce` (so an ID token cannot pass for one, §2.4); `sub` or `sid`.
    ///
    /// # Errors
    /// The first check that failed.
    pub async fn verify_logout_token(&self, token: &str) -> Result<LogoutToken, TokenError> {
        let claims = self.verified_claims(token, TimeRules::LOGOUT).await?;
        claims.logout(&self.config.claims)
    }

    /// Signature and registered claims; the payload is not parsed before
    /// its signature verifies.
    async fn verified_claims(
        &self,
        token: &str,
        rules: TimeRules,
    ) -> Result<claims::Claims, TokenError> {
        let compact = Compact::parse(token)?;
        let alg = compact.header.alg;
        if !self.config.algorithms.contains(&alg) {
            return Err(TokenError::AlgorithmNotAllowed(format!("{alg:?}")));
        }
        let key = self
            .keys
            .key_for(alg, compact.header.kid.as_deref())
            .await?;
        compact.verify_signature(&key.decoding, alg)?;
        let claims = compact.claims()?;
        claims.check_registered(&self.config, rules)?;
        Ok(claims)
    }
}
