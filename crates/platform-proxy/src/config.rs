//! Configuration in two layers (STYLE.md "Config"): the TOML file with
//! `PLATFORM_PROXY_…` environment overrides is read into raw serde structs,
//! then [`Raw::validate`] turns it into the immutable typed [`Config`] or
//! stops start-up naming the bad key.
//!
//! Environment overrides: `PLATFORM_PROXY_<KEY>` where `__` separates
//! nesting levels, e.g. `PLATFORM_PROXY_API_HOST`, `PLATFORM_PROXY_STORE__URL`,
//! `PLATFORM_PROXY_SERVER__LISTEN='["0.0.0.0:8080"]'`. A value is read as a
//! TOML value when it parses as one (numbers, booleans, arrays), else as a
//! string.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pp_dataplane::tls::CertSpec;
use pp_dataplane::Settings;
use pp_model::PublicBase;
use pp_store::StoreOptions;
use serde::Deserialize;

mod identity;
mod raw;

pub use identity::IdentityConfig;

pub use raw::Raw;

/// Prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "PLATFORM_PROXY_";

/// A config problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Text,
}

/// The validated configuration the process runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    pub tls_listen: Vec<SocketAddr>,
    pub certificates: Vec<CertSpec>,
    pub public: PublicBase,
    pub store_url: String,
    pub store: StoreOptions,
    pub bootstrap_token: Option<String>,
    pub dataplane: Settings,
    pub route_resync: Duration,
    /// Runtime threads; 0 is one per core the process may run on.
    pub workers: usize,
    pub identity: IdentityConfig,
    pub log_format: LogFormat,
    pub log_level: String,
}

impl Config {
    /// Reads `path` (if any), applies the environment, validates.
    ///
    /// # Errors
    /// The first unreadable, malformed or invalid key.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_owned(),
                source,
            })?,
            None => String::new(),
        };
        let origin = path.map_or_else(|| "(defaults)".to_owned(), |p| p.display().to_string());
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::from_sources(&text, &origin, &env)
    }

    /// Builds a config from TOML text and environment pairs (testable
    /// without touching the process environment).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_sources(
        text: &str,
        origin: &str,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        raw::apply_env(&mut table, env)?;
        let de = toml::Value::Table(table);
        let raw: Raw = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            invalid(&key, e.into_inner().to_string())
        })?;
        raw.validate()
    }
}

pub(crate) fn secs(key: &str, v: u64) -> Result<Duration, ConfigError> {
    if v == 0 {
        return Err(invalid(key, "must be at least 1 second"));
    }
    Ok(Duration::from_secs(v))
}

pub(crate) fn check_hostname(key: &str, v: &str) -> Result<String, ConfigError> {
    let v = v.trim().to_ascii_lowercase();
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(v)
    } else {
        Err(invalid(key, format!("{v:?} is not a DNS host name")))
    }
}

#[cfg(test)]
mod tests;
