//! The route: seed 000's `platform_proxy_routes` row, and the rules that
//! validate a route before it is stored.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::adapter::{Adapter, AdapterOverrides};

mod bridge;
pub use bridge::{AuthBridge, AuthBridgeInput, AuthBridgeMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OwnerType {
    AppInstance,
    PlatformService,
}

impl OwnerType {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AppInstance => "app_instance",
            Self::PlatformService => "platform_service",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteMode {
    /// `{route_host}.{apps_domain}`: the app gets its own origin.
    Subdomain,
    /// `/w/{owner_id}/{endpoint}/` or `/p/{owner_id}/` on the bare apps domain.
    PathPrefix,
}

impl RouteMode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subdomain => "subdomain",
            Self::PathPrefix => "path_prefix",
        }
    }
}

/// Lifecycle of a route (seed 000). The data plane serves `pending` and
/// `active` routes; `disabled` and `failed` routes answer as not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteStatus {
    Pending,
    Active,
    Failed,
    Disabled,
}

impl RouteStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "active" => Self::Active,
            "failed" => Self::Failed,
            "disabled" => Self::Disabled,
            _ => return None,
        })
    }

    /// Whether the data plane forwards traffic for a route in this state.
    #[must_use]
    pub fn is_served(self) -> bool {
        matches!(self, Self::Pending | Self::Active)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamScheme {
    #[default]
    Http,
    Https,
}

impl UpstreamScheme {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// Where a route's traffic goes: one or more `host:port` targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub targets: Vec<String>,
    #[serde(default)]
    pub scheme: UpstreamScheme,
}

/// Per-route limits; unset fields take the proxy-wide defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteLimits {
    /// Largest request body accepted, in bytes (413 above it).
    pub max_body_bytes: Option<u64>,
    /// Most concurrent requests and tunnels for this route.
    pub max_connections: Option<u32>,
    /// A WebSocket with no frame either way for this long is closed.
    pub websocket_idle_timeout_secs: Option<u64>,
    /// A WebSocket is closed this long after it opened, busy or not.
    pub websocket_max_lifetime_secs: Option<u64>,
}

/// A stored route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Route {
    pub id: Uuid,
    pub owner_type: OwnerType,
    pub owner_id: String,
    pub endpoint_name: String,
    pub org_id: Option<String>,
    pub project_id: Option<String>,
    pub proxy_pool_id: String,
    pub route_mode: RouteMode,
    /// The first DNS label(s) of a subdomain route's host.
    pub route_host: Option<String>,
    /// Path prefix the browser sees, always ending in `/`.
    pub public_path: String,
    pub upstream: Upstream,
    pub adapter: String,
    pub adapter_overrides: AdapterOverrides,
    pub limits: RouteLimits,
    pub policy: serde_json::Value,
    pub status: RouteStatus,
    pub failure_reason: Option<String>,
    /// The app-local credential injected upstream (seed 000 "App Auth
    /// Bridge"); its secret is sealed and never serialized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_bridge: Option<AuthBridge>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<OffsetDateTime>,
}

impl Route {
    /// The route's adapter preset with its overrides applied. Unknown preset
    /// names cannot be stored, so this falls back to `generic` only for rows
    /// written by a newer version that knows more presets.
    #[must_use]
    pub fn effective_adapter(&self) -> Adapter {
        Adapter::preset(&self.adapter)
            .or_else(|| Adapter::preset("generic"))
            .map(|a| a.with_overrides(&self.adapter_overrides))
            .unwrap_or_else(unreachable_generic)
    }

    /// Whether the route's policy opens it to unauthenticated callers.
    #[must_use]
    pub fn is_public(&self) -> bool {
        self.policy
            .get("public")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }

    /// The prefix the upstream serves under (no trailing slash; empty for
    /// root). Base-path-aware apps run under the platform path
    /// `/w/{owner_id}/{endpoint}` (or `/p/{owner_id}`) whatever the public
    /// route mode, so a subdomain route can still front them.
    #[must_use]
    pub fn runtime_prefix(&self) -> String {
        match self.owner_type {
            OwnerType::AppInstance => format!("/w/{}/{}", self.owner_id, self.endpoint_name),
            OwnerType::PlatformService => format!("/p/{}", self.owner_id),
        }
    }
}

fn unreachable_generic() -> Adapter {
    // `generic` is a preset compiled into this crate; its absence is a bug
    // caught by `adapter::tests::every_listed_preset_exists_and_unknown_does_not`.
    Adapter::preset("generic").unwrap_or_else(|| panic!("generic adapter preset missing"))
}

/// The body of `POST /api/v1/routes`.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoute {
    pub owner_type: OwnerType,
    pub owner_id: String,
    pub endpoint_name: Option<String>,
    pub org_id: Option<String>,
    pub project_id: Option<String>,
    pub proxy_pool_id: Option<String>,
    pub route_mode: RouteMode,
    pub route_host: Option<String>,
    pub upstream: Upstream,
    pub adapter: Option<String>,
    #[serde(default)]
    pub adapter_overrides: AdapterOverrides,
    #[serde(default)]
    pub limits: RouteLimits,
    pub policy: Option<serde_json::Value>,
    pub status: Option<RouteStatus>,
    /// Write-only: the secret is sealed before it is stored.
    pub auth_bridge: Option<AuthBridgeInput>,
}

/// The body of `PATCH /api/v1/routes/{id}`: every field optional. Identity
/// fields (owner, endpoint, mode) are fixed at creation: a different public
/// address is a different route.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutePatch {
    pub route_host: Option<String>,
    pub upstream: Option<Upstream>,
    pub adapter: Option<String>,
    pub adapter_overrides: Option<AdapterOverrides>,
    pub limits: Option<RouteLimits>,
    pub policy: Option<serde_json::Value>,
    pub status: Option<RouteStatus>,
    pub failure_reason: Option<String>,
    pub proxy_pool_id: Option<String>,
    /// Absent: unchanged; `null`: removed; an object: replaced.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<AuthBridgeInput>)]
    pub auth_bridge: Option<Option<AuthBridgeInput>>,
}

/// Tells a field that is `null` (`Some(None)`) from one that is absent
/// (`None`, through `#[serde(default)]`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A request that names the field it got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The pool every route lands in until pools are managed (seed 000: "The MVP
/// implements only `shared`", but the id is part of the model from day one).
pub const SHARED_POOL_ID: &str = "shared";

const MAX_TARGETS: usize = 64;

impl NewRoute {
    /// Validates the request and builds the route to store.
    ///
    /// # Errors
    /// The first field that is missing, malformed or inconsistent.
    pub fn into_route(self, now: OffsetDateTime) -> Result<Route, ValidationError> {
        check_id("owner_id", &self.owner_id)?;
        let endpoint_name = match (self.owner_type, self.endpoint_name) {
            (OwnerType::AppInstance, Some(e)) => {
                check_id("endpoint_name", &e)?;
                e
            }
            (OwnerType::AppInstance, None) => {
                return Err(ValidationError::new(
                    "endpoint_name",
                    "required for owner_type app_instance",
                ))
            }
            (OwnerType::PlatformService, Some(e)) => {
                check_id("endpoint_name", &e)?;
                e
            }
            (OwnerType::PlatformService, None) => "web".to_owned(),
        };
        if let Some(org) = &self.org_id {
            check_id("org_id", org)?;
        }
        if let Some(project) = &self.project_id {
            check_id("project_id", project)?;
        }
        let proxy_pool_id = self
            .proxy_pool_id
            .unwrap_or_else(|| SHARED_POOL_ID.to_owned());
        check_id("proxy_pool_id", &proxy_pool_id)?;
        check_upstream(&self.upstream)?;
        let adapter = self.adapter.unwrap_or_else(|| "generic".to_owned());
        check_adapter(&adapter, &self.adapter_overrides)?;
        check_limits(&self.limits)?;
        let route_host = check_mode(self.route_mode, self.route_host)?;
        let public_path = match self.route_mode {
            RouteMode::Subdomain => "/".to_owned(),
            RouteMode::PathPrefix => match self.owner_type {
                OwnerType::AppInstance => format!("/w/{}/{}/", self.owner_id, endpoint_name),
                OwnerType::PlatformService => format!("/p/{}/", self.owner_id),
            },
        };
        let policy = self.policy.unwrap_or_else(|| serde_json::json!({}));
        check_policy(&policy)?;
        Ok(Route {
            id: Uuid::new_v4(),
            owner_type: self.owner_type,
            owner_id: self.owner_id,
            endpoint_name,
            org_id: self.org_id,
            project_id: self.project_id,
            proxy_pool_id,
            route_mode: self.route_mode,
            route_host,
            public_path,
            upstream: self.upstream,
            adapter,
            adapter_overrides: self.adapter_overrides,
            limits: self.limits,
            policy,
            status: self.status.unwrap_or(RouteStatus::Pending),
            failure_reason: None,
            // Sealed and set by the caller, which holds the key ring.
            auth_bridge: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        })
    }
}

impl RoutePatch {
    /// Applies the patch to `route`, validating each changed field.
    ///
    /// # Errors
    /// The first changed field that is malformed or inconsistent.
    pub fn apply(self, route: &mut Route, now: OffsetDateTime) -> Result<(), ValidationError> {
        if let Some(host) = self.route_host {
            route.route_host = check_mode(route.route_mode, Some(host))?;
        }
        if let Some(upstream) = self.upstream {
            check_upstream(&upstream)?;
            route.upstream = upstream;
        }
        let adapter = self.adapter.unwrap_or_else(|| route.adapter.clone());
        let overrides = self
            .adapter_overrides
            .unwrap_or_else(|| route.adapter_overrides.clone());
        check_adapter(&adapter, &overrides)?;
        route.adapter = adapter;
        route.adapter_overrides = overrides;
        if let Some(limits) = self.limits {
            check_limits(&limits)?;
            route.limits = limits;
        }
        if let Some(policy) = self.policy {
            check_policy(&policy)?;
            route.policy = policy;
        }
        if let Some(pool) = self.proxy_pool_id {
            check_id("proxy_pool_id", &pool)?;
            route.proxy_pool_id = pool;
        }
        if let Some(status) = self.status {
            route.status = status;
            if status != RouteStatus::Failed {
                route.failure_reason = None;
            }
        }
        if let Some(reason) = self.failure_reason {
            if reason.len() > 1024 {
                return Err(ValidationError::new(
                    "failure_reason",
                    "longer than 1024 bytes",
                ));
            }
            route.failure_reason = Some(reason);
        }
        route.updated_at = now;
        Ok(())
    }
}

/// Identifiers become path segments, log fields and header values: keep
/// them to a safe alphabet so no identifier can smuggle `/`, `..` or
/// encoded bytes.
///
/// # Errors
/// The field, named, when `v` is empty, longer than 128 bytes, a dot
/// segment or outside `[A-Za-z0-9._-]`.
pub fn check_id(field: &str, v: &str) -> Result<(), ValidationError> {
    if v.is_empty() || v.len() > 128 {
        return Err(ValidationError::new(field, "must be 1 to 128 characters"));
    }
    if v == "." || v == ".." {
        return Err(ValidationError::new(field, "may not be a dot segment"));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(ValidationError::new(
            field,
            "may contain only ASCII letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

fn check_mode(mode: RouteMode, host: Option<String>) -> Result<Option<String>, ValidationError> {
    match (mode, host) {
        (RouteMode::Subdomain, Some(h)) => {
            let h = h.to_ascii_lowercase();
            check_host_label(&h)?;
            Ok(Some(h))
        }
        (RouteMode::Subdomain, None) => Err(ValidationError::new(
            "route_host",
            "required for route_mode subdomain",
        )),
        (RouteMode::PathPrefix, Some(_)) => Err(ValidationError::new(
            "route_host",
            "must be absent for route_mode path_prefix",
        )),
        (RouteMode::PathPrefix, None) => Ok(None),
    }
}

/// A route host is one or more DNS labels placed in front of the apps domain
/// (RFC 1035 §2.3.1 letters-digits-hyphen, 63 bytes a label).
fn check_host_label(h: &str) -> Result<(), ValidationError> {
    let bad = |m: &str| Err(ValidationError::new("route_host", m));
    if h.is_empty() || h.len() > 200 {
        return bad("must be 1 to 200 characters");
    }
    for label in h.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each DNS label must be 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("may contain only letters, digits, '-' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a DNS label may not start or end with '-'");
        }
    }
    Ok(())
}

fn check_upstream(u: &Upstream) -> Result<(), ValidationError> {
    // Refused rather than accepted and failed at request time: the data
    // plane's upstream client speaks plain HTTP only so far.
    if u.scheme == UpstreamScheme::Https {
        return Err(ValidationError::new(
            "upstream.scheme",
            "https upstreams are not supported yet; use http",
        ));
    }
    if u.targets.is_empty() {
        return Err(ValidationError::new(
            "upstream.targets",
            "needs at least one target",
        ));
    }
    if u.targets.len() > MAX_TARGETS {
        return Err(ValidationError::new(
            "upstream.targets",
            format!("at most {MAX_TARGETS} targets"),
        ));
    }
    for (i, t) in u.targets.iter().enumerate() {
        let field = format!("upstream.targets[{i}]");
        let Some((host, port)) = split_host_port(t) else {
            return Err(ValidationError::new(field, "must be host:port"));
        };
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(ValidationError::new(field, "port must be 1 to 65535"));
        }
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']')
            });
        if !host_ok {
            return Err(ValidationError::new(
                field,
                "host is not a DNS name or IP address",
            ));
        }
    }
    Ok(())
}

/// Splits `host:port` and `[v6]:port`.
#[must_use]
pub fn split_host_port(t: &str) -> Option<(&str, &str)> {
    let (host, port) = t.rsplit_once(':')?;
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return None;
    }
    Some((host, port))
}

fn check_adapter(name: &str, overrides: &AdapterOverrides) -> Result<(), ValidationError> {
    if Adapter::preset(name).is_none() {
        return Err(ValidationError::new(
            "adapter",
            format!(
                "unknown adapter {name:?}; known: {}",
                crate::adapter::PRESET_NAMES.join(", ")
            ),
        ));
    }
    if let Some(p) = &overrides.default_open_path {
        if !p.starts_with('/') || p.starts_with("//") || p.contains("..") {
            return Err(ValidationError::new(
                "adapter_overrides.default_open_path",
                "must be an absolute path without '..'",
            ));
        }
    }
    Ok(())
}

fn check_policy(policy: &serde_json::Value) -> Result<(), ValidationError> {
    let Some(obj) = policy.as_object() else {
        return Err(ValidationError::new("policy", "must be a JSON object"));
    };
    if obj.get("public").is_some_and(|v| !v.is_boolean()) {
        return Err(ValidationError::new(
            "policy.public",
            "must be true or false",
        ));
    }
    Ok(())
}

/// Longest WebSocket idle timeout a route may ask for.
const MAX_IDLE_SECS: u64 = 24 * 3600;
/// Longest WebSocket lifetime a route may ask for.
const MAX_LIFETIME_SECS: u64 = 7 * 24 * 3600;

fn check_limits(l: &RouteLimits) -> Result<(), ValidationError> {
    if l.max_connections == Some(0) {
        return Err(ValidationError::new(
            "limits.max_connections",
            "must be at least 1",
        ));
    }
    if l.websocket_idle_timeout_secs
        .is_some_and(|s| !(1..=MAX_IDLE_SECS).contains(&s))
    {
        return Err(ValidationError::new(
            "limits.websocket_idle_timeout_secs",
            format!("must be 1 to {MAX_IDLE_SECS} (a day)"),
        ));
    }
    if l.websocket_max_lifetime_secs
        .is_some_and(|s| !(1..=MAX_LIFETIME_SECS).contains(&s))
    {
        return Err(ValidationError::new(
            "limits.websocket_max_lifetime_secs",
            format!("must be 1 to {MAX_LIFETIME_SECS} (a week)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
