//! The raw layer: serde structs mirroring the TOML file, with defaults, and
//! the environment overlay.

use std::net::SocketAddr;
use std::path::PathBuf;

use pp_dataplane::tls::{self, CertSpec};
use pp_dataplane::{Settings, Splice};
use pp_model::PublicBase;
use pp_store::StoreOptions;
use serde::Deserialize;

use super::{check_hostname, invalid, secs, Config, ConfigError, LogFormat, ENV_PREFIX};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    #[serde(default = "d_api_host")]
    api_host: String,
    #[serde(default = "d_apps_domain")]
    apps_domain: String,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    websocket: RawWebsocket,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    identity: super::identity::RawIdentity,
}

fn d_api_host() -> String {
    "api.localhost".into()
}
fn d_apps_domain() -> String {
    "apps.localhost".into()
}

/// More runtime threads than this is a typo, not a machine.
const MAX_WORKERS: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: Vec<String>,
    tls_listen: Vec<String>,
    public_scheme: Option<String>,
    public_port: Option<u16>,
    header_read_timeout_secs: u64,
    body_read_timeout_secs: u64,
    send_timeout_secs: u64,
    max_header_bytes: usize,
    shutdown_grace_secs: u64,
    route_resync_secs: u64,
    workers: usize,
    splice: RawSplice,
}

/// `server.splice`: which large bodies are spliced socket to socket.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawSplice {
    Both,
    Requests,
    Responses,
    Off,
}

impl From<RawSplice> for Splice {
    fn from(raw: RawSplice) -> Self {
        Self {
            requests: matches!(raw, RawSplice::Both | RawSplice::Requests),
            responses: matches!(raw, RawSplice::Both | RawSplice::Responses),
        }
    }
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: vec!["127.0.0.1:8080".into()],
            tls_listen: Vec::new(),
            public_scheme: None,
            public_port: None,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 60,
            send_timeout_secs: 60,
            max_header_bytes: 64 * 1024,
            shutdown_grace_secs: 30,
            route_resync_secs: 30,
            workers: 0,
            splice: RawSplice::Both,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTls {
    certificates: Vec<RawCert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCert {
    cert: PathBuf,
    key: PathBuf,
    #[serde(default)]
    hosts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStore {
    url: String,
    max_connections: u32,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            url: "sqlite://data/platform-proxy.db".into(),
            max_connections: StoreOptions::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// A pool larger than this buys nothing on SQLite (one writer at a time)
/// and costs a thread and its memory a connection.
const STORE_CONNECTIONS_MAX: u32 = 16;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawApi {
    bootstrap_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawUpstream {
    connect_timeout_secs: u64,
    response_timeout_secs: u64,
    pool_idle_timeout_secs: u64,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            connect_timeout_secs: 5,
            response_timeout_secs: 60,
            pool_idle_timeout_secs: 90,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_body_bytes: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: Settings::default().default_max_body_bytes,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWebsocket {
    idle_timeout_secs: u64,
    max_lifetime_secs: u64,
}

impl Default for RawWebsocket {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 900,
            max_lifetime_secs: 12 * 3600,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    format: LogFormat,
    level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".into(),
        }
    }
}

fn addrs(key: &str, v: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
    v.iter()
        .enumerate()
        .map(|(i, a)| {
            a.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    &format!("{key}[{i}]"),
                    format!("{a:?} is not an ip:port socket address"),
                )
            })
        })
        .collect()
}

impl Raw {
    /// Turns raw values into the typed config, naming the first bad key.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with the key path.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let api_host = check_hostname("api_host", &self.api_host)?;
        let apps_domain = check_hostname("apps_domain", &self.apps_domain)?;
        if api_host == apps_domain || api_host.ends_with(&format!(".{apps_domain}")) {
            return Err(invalid(
                "api_host",
                "must lie outside the apps domain: the API host never serves app content",
            ));
        }
        let listen = addrs("server.listen", &self.server.listen)?;
        let tls_listen = addrs("server.tls_listen", &self.server.tls_listen)?;
        if listen.is_empty() && tls_listen.is_empty() {
            return Err(invalid("server.listen", "no listener configured"));
        }
        if !tls_listen.is_empty() && self.tls.certificates.is_empty() {
            return Err(invalid(
                "tls.certificates",
                "server.tls_listen is set but no certificate is configured",
            ));
        }
        let mut certificates = Vec::new();
        for (i, c) in self.tls.certificates.into_iter().enumerate() {
            for (field, p) in [("cert", &c.cert), ("key", &c.key)] {
                if !tls::readable(p) {
                    return Err(invalid(
                        &format!("tls.certificates[{i}].{field}"),
                        format!("{} is not a readable file", p.display()),
                    ));
                }
            }
            certificates.push(CertSpec {
                cert: c.cert,
                key: c.key,
                hosts: c.hosts,
            });
        }
        let public_scheme = match self.server.public_scheme.as_deref() {
            None if tls_listen.is_empty() => "http".to_owned(),
            None => "https".to_owned(),
            Some(s @ ("http" | "https")) => s.to_owned(),
            Some(other) => {
                return Err(invalid(
                    "server.public_scheme",
                    format!("{other:?} is not http or https"),
                ))
            }
        };
        let public_port = self.server.public_port.or_else(|| {
            let first = if public_scheme == "https" {
                tls_listen.first()
            } else {
                listen.first()
            };
            first.map(SocketAddr::port)
        });
        let store_url = self.store.url.trim().to_owned();
        if !store_url.starts_with("sqlite:") {
            return Err(invalid(
                "store.url",
                "expected sqlite://PATH (PostgreSQL comes with scale-out)",
            ));
        }
        if !(1..=STORE_CONNECTIONS_MAX).contains(&self.store.max_connections) {
            return Err(invalid(
                "store.max_connections",
                format!("must be 1 to {STORE_CONNECTIONS_MAX}"),
            ));
        }
        let store = StoreOptions {
            max_connections: self.store.max_connections,
        };
        let bootstrap_token = match self.api.bootstrap_token {
            Some(t) if t.len() < 16 => {
                return Err(invalid(
                    "api.bootstrap_token",
                    "must be at least 16 characters",
                ));
            }
            other => other,
        };
        if self.server.max_header_bytes < 1024 || self.server.max_header_bytes > 1024 * 1024 {
            return Err(invalid(
                "server.max_header_bytes",
                "must be between 1024 and 1048576",
            ));
        }
        if self.server.workers > MAX_WORKERS {
            return Err(invalid(
                "server.workers",
                format!("must be at most {MAX_WORKERS} (0: one per core the process may use)"),
            ));
        }
        if self.limits.max_body_bytes == 0 {
            return Err(invalid("limits.max_body_bytes", "must be at least 1"));
        }
        if self.log.level.trim().is_empty() {
            return Err(invalid("log.level", "must not be empty"));
        }
        let dataplane = Settings {
            api_host,
            apps_domain: apps_domain.clone(),
            max_header_bytes: self.server.max_header_bytes,
            default_max_body_bytes: self.limits.max_body_bytes,
            header_read_timeout: secs(
                "server.header_read_timeout_secs",
                self.server.header_read_timeout_secs,
            )?,
            body_read_timeout: secs(
                "server.body_read_timeout_secs",
                self.server.body_read_timeout_secs,
            )?,
            send_timeout: secs("server.send_timeout_secs", self.server.send_timeout_secs)?,
            upstream_connect_timeout: secs(
                "upstream.connect_timeout_secs",
                self.upstream.connect_timeout_secs,
            )?,
            upstream_response_timeout: secs(
                "upstream.response_timeout_secs",
                self.upstream.response_timeout_secs,
            )?,
            upstream_pool_idle_timeout: secs(
                "upstream.pool_idle_timeout_secs",
                self.upstream.pool_idle_timeout_secs,
            )?,
            websocket_idle_timeout: secs(
                "websocket.idle_timeout_secs",
                self.websocket.idle_timeout_secs,
            )?,
            websocket_max_lifetime: secs(
                "websocket.max_lifetime_secs",
                self.websocket.max_lifetime_secs,
            )?,
            shutdown_grace: secs(
                "server.shutdown_grace_secs",
                self.server.shutdown_grace_secs,
            )?,
            splice: self.server.splice.into(),
        };
        Ok(Config {
            listen,
            tls_listen,
            certificates,
            public: PublicBase {
                scheme: public_scheme,
                apps_domain,
                port: public_port,
            },
            store_url,
            store,
            bootstrap_token,
            dataplane,
            route_resync: secs("server.route_resync_secs", self.server.route_resync_secs)?,
            workers: self.server.workers,
            identity: self.identity.validate()?,
            log_format: self.log.format,
            log_level: self.log.level,
        })
    }
}

/// Overlays `PLATFORM_PROXY_A__B=v` onto `table` as `a.b = v`.
pub(super) fn apply_env(
    table: &mut toml::Table,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        // The config file path itself is a CLI/env option, not a config key.
        if key == "CONFIG" {
            continue;
        }
        let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
        let dotted = path.join(".");
        if path.iter().any(String::is_empty) {
            return Err(invalid(
                &dotted,
                format!("environment variable {name} names an empty key"),
            ));
        }
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let mut cur = &mut *table;
        for part in &path[..path.len() - 1] {
            let entry = cur
                .entry(part.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cur = entry.as_table_mut().ok_or_else(|| {
                invalid(
                    &dotted,
                    format!("{name} overrides a key that is not a table"),
                )
            })?;
        }
        if let Some(last) = path.last() {
            cur.insert(last.clone(), parsed);
        }
    }
    Ok(())
}
