//! The `[identity]` section: session keys and lifetimes, the platform's
//! login page, WebSocket origins, identity assertions, and the OIDC issuer
//! whose JWTs authenticate users and automation.

use std::path::PathBuf;
use std::time::Duration;

use pp_dataplane::AccessSettings;
use pp_identity::jwt::{ClaimMapping, JwtConfig};
use serde::Deserialize;

use super::{invalid, secs, ConfigError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawIdentity {
    session_keys: Vec<String>,
    session_idle_secs: u64,
    session_max_secs: u64,
    launch_code_ttl_secs: u64,
    login_url: Option<String>,
    allowed_origins: Vec<String>,
    assertion: bool,
    assertion_key_file: Option<PathBuf>,
    assertion_ttl_secs: u64,
    service_token_max_secs: u64,
    oidc: Option<RawOidc>,
}

impl Default for RawIdentity {
    fn default() -> Self {
        Self {
            session_keys: Vec::new(),
            session_idle_secs: 15 * 60,
            session_max_secs: 12 * 3600,
            launch_code_ttl_secs: 60,
            login_url: None,
            allowed_origins: Vec::new(),
            assertion: false,
            assertion_key_file: None,
            assertion_ttl_secs: 60,
            service_token_max_secs: 365 * 24 * 3600,
            oidc: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    issuer: String,
    audiences: Vec<String>,
    jwks_url: Option<String>,
    #[serde(default = "d_leeway")]
    leeway_secs: u64,
    #[serde(default = "d_algs")]
    algorithms: Vec<String>,
    #[serde(default = "d_refetch")]
    jwks_refetch_min_secs: u64,
    #[serde(default = "d_cache")]
    jwks_cache_secs: u64,
    #[serde(default)]
    claims: RawClaims,
}

fn d_leeway() -> u64 {
    60
}
fn d_algs() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}
fn d_refetch() -> u64 {
    30
}
fn d_cache() -> u64 {
    600
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawClaims {
    user_id: String,
    email: String,
    name: String,
    session_id: String,
    memberships: String,
    roles: String,
    platform_admin_role: Option<String>,
    service_account_role: Option<String>,
}

impl Default for RawClaims {
    fn default() -> Self {
        let d = ClaimMapping::default();
        Self {
            user_id: d.user_id,
            email: d.email,
            name: d.name,
            session_id: d.session_id,
            memberships: d.memberships,
            roles: d.roles,
            platform_admin_role: d.platform_admin_role,
            service_account_role: d.service_account_role,
        }
    }
}

/// The validated identity settings.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Base64 master keys, newest first; empty: one is generated on first
    /// start and kept in the store.
    pub session_keys: Vec<String>,
    pub access: AccessSettings,
    pub session_max: Duration,
    pub launch_ttl: Duration,
    pub service_token_max: Duration,
    pub assertion: bool,
    pub assertion_key_file: Option<PathBuf>,
    pub oidc: Option<JwtConfig>,
}

fn check_url(key: &str, v: &str) -> Result<(), ConfigError> {
    let ok = (v.starts_with("https://") || v.starts_with("http://"))
        && v.len() > "http://".len()
        && !v.bytes().any(|b| b.is_ascii_control() || b == b' ');
    if ok {
        Ok(())
    } else {
        Err(invalid(key, format!("{v:?} is not an http(s) URL")))
    }
}

impl RawIdentity {
    pub(super) fn validate(self) -> Result<IdentityConfig, ConfigError> {
        for (i, k) in self.session_keys.iter().enumerate() {
            pp_identity::Keyring::from_base64(std::slice::from_ref(k)).map_err(|_| {
                invalid(
                    &format!("identity.session_keys[{i}]"),
                    "must be 32 random bytes, base64 (generate one with `openssl rand -base64 32`)",
                )
            })?;
        }
        let session_idle = secs("identity.session_idle_secs", self.session_idle_secs)?;
        let session_max = secs("identity.session_max_secs", self.session_max_secs)?;
        if session_idle > session_max {
            return Err(invalid(
                "identity.session_idle_secs",
                "must not exceed identity.session_max_secs",
            ));
        }
        let launch_ttl = secs("identity.launch_code_ttl_secs", self.launch_code_ttl_secs)?;
        if launch_ttl > Duration::from_secs(300) {
            return Err(invalid(
                "identity.launch_code_ttl_secs",
                "at most 300: a launch code is a one-minute ticket, not a credential",
            ));
        }
        if let Some(u) = &self.login_url {
            check_url("identity.login_url", u)?;
        }
        for (i, o) in self.allowed_origins.iter().enumerate() {
            let key = format!("identity.allowed_origins[{i}]");
            check_url(&key, o)?;
            if o.trim_start_matches("https://")
                .trim_start_matches("http://")
                .contains('/')
            {
                return Err(invalid(
                    &key,
                    "an origin is scheme://host[:port] without a path",
                ));
            }
        }
        let oidc = self.oidc.map(RawOidc::validate).transpose()?;
        Ok(IdentityConfig {
            session_keys: self.session_keys,
            access: AccessSettings {
                session_idle,
                login_url: self.login_url,
                allowed_origins: self.allowed_origins,
                assertion_ttl: secs("identity.assertion_ttl_secs", self.assertion_ttl_secs)?,
            },
            session_max,
            launch_ttl,
            service_token_max: secs(
                "identity.service_token_max_secs",
                self.service_token_max_secs,
            )?,
            assertion: self.assertion,
            assertion_key_file: self.assertion_key_file,
            oidc,
        })
    }
}

impl RawOidc {
    fn validate(self) -> Result<JwtConfig, ConfigError> {
        check_url("identity.oidc.issuer", &self.issuer)?;
        if self.audiences.is_empty() || self.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(invalid(
                "identity.oidc.audiences",
                "name at least one audience (the client id tokens are issued for)",
            ));
        }
        if let Some(u) = &self.jwks_url {
            check_url("identity.oidc.jwks_url", u)?;
        }
        let mut algorithms = Vec::new();
        for (i, a) in self.algorithms.iter().enumerate() {
            let alg = match a.as_str() {
                "RS256" => jsonwebtoken::Algorithm::RS256,
                "RS384" => jsonwebtoken::Algorithm::RS384,
                "RS512" => jsonwebtoken::Algorithm::RS512,
                "PS256" => jsonwebtoken::Algorithm::PS256,
                "ES256" => jsonwebtoken::Algorithm::ES256,
                "ES384" => jsonwebtoken::Algorithm::ES384,
                "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
                other => {
                    return Err(invalid(
                        &format!("identity.oidc.algorithms[{i}]"),
                        format!("{other:?} is not an accepted asymmetric algorithm"),
                    ))
                }
            };
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            return Err(invalid("identity.oidc.algorithms", "name at least one"));
        }
        let mut c = JwtConfig::new(self.issuer, self.audiences);
        c.jwks_url = self.jwks_url;
        c.leeway = Duration::from_secs(self.leeway_secs);
        c.algorithms = algorithms;
        c.refetch_min_interval = secs(
            "identity.oidc.jwks_refetch_min_secs",
            self.jwks_refetch_min_secs,
        )?;
        c.cache_ttl = secs("identity.oidc.jwks_cache_secs", self.jwks_cache_secs)?;
        c.claims = ClaimMapping {
            user_id: self.claims.user_id,
            email: self.claims.email,
            name: self.claims.name,
            session_id: self.claims.session_id,
            memberships: self.claims.memberships,
            roles: self.claims.roles,
            // An empty role name switches the mapping off.
            platform_admin_role: self.claims.platform_admin_role.filter(|r| !r.is_empty()),
            service_account_role: self.claims.service_account_role.filter(|r| !r.is_empty()),
        };
        Ok(c)
    }
}
