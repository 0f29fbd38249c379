//! A route's auth bridge (seed 000, "App Auth Bridge"): the app-local
//! credential the proxy sets on every request it forwards, so an app that
//! wants its own token (JupyterLab's) is reached without the browser ever
//! holding it. The input as a client writes it, its checks, and the form
//! that is stored, with the secret sealed.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ValidationError;

/// How the app-local token reaches the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthBridgeMode {
    /// `Authorization: {scheme} {secret}` (JupyterLab: scheme `token`).
    AuthorizationHeader,
    /// `{header}: [{scheme} ]{secret}`.
    Header,
}

/// A route's auth bridge as stored: the secret sealed under the proxy's
/// key ring, readable only by the proxy.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthBridge {
    pub mode: AuthBridgeMode,
    pub header: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Sealed secret; never serialized (the API shows that one is set, not
    /// what it is).
    #[serde(skip)]
    #[schema(ignore)]
    pub sealed_secret: String,
}

/// Hand-written: even sealed, the secret stays out of logs.
impl std::fmt::Debug for AuthBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthBridge")
            .field("mode", &self.mode)
            .field("header", &self.header)
            .field("scheme", &self.scheme)
            .field("sealed_secret", &"<redacted>")
            .finish()
    }
}

/// The auth bridge as a client writes it.
#[derive(Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthBridgeInput {
    pub mode: AuthBridgeMode,
    /// Defaults to `Authorization` in `authorization_header` mode; required
    /// in `header` mode.
    pub header: Option<String>,
    /// `token`, `Bearer`, …; defaults to `Bearer` in
    /// `authorization_header` mode, none in `header` mode.
    pub scheme: Option<String>,
    /// The app-local credential. Write-only.
    pub secret: String,
}

/// Hand-written so the secret never reaches a log line.
impl std::fmt::Debug for AuthBridgeInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthBridgeInput")
            .field("mode", &self.mode)
            .field("header", &self.header)
            .field("scheme", &self.scheme)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Headers an auth bridge may not set: framing, routing and the identity
/// headers the proxy itself owns.
const BRIDGE_FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "cookie",
    "connection",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
];

impl AuthBridgeInput {
    /// Checks the input and splits it into what is stored in the clear and
    /// the secret to seal.
    ///
    /// # Errors
    /// The first malformed field, named `auth_bridge.*`.
    pub fn validate(self) -> Result<(AuthBridge, String), ValidationError> {
        let header = match (self.mode, self.header) {
            (AuthBridgeMode::AuthorizationHeader, None) => "authorization".to_owned(),
            (AuthBridgeMode::AuthorizationHeader, Some(h)) => {
                if !h.eq_ignore_ascii_case("authorization") {
                    return Err(ValidationError::new(
                        "auth_bridge.header",
                        "must be Authorization (or absent) in authorization_header mode",
                    ));
                }
                "authorization".to_owned()
            }
            (AuthBridgeMode::Header, None) => {
                return Err(ValidationError::new(
                    "auth_bridge.header",
                    "required in header mode",
                ))
            }
            (AuthBridgeMode::Header, Some(h)) => {
                let h = h.to_ascii_lowercase();
                let token = !h.is_empty()
                    && h.len() <= 64
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
                if !token {
                    return Err(ValidationError::new(
                        "auth_bridge.header",
                        "must be 1 to 64 letters, digits, '-' or '_'",
                    ));
                }
                if BRIDGE_FORBIDDEN_HEADERS.contains(&h.as_str())
                    || h.starts_with("x-forwarded-")
                    || h.starts_with("x-platform-proxy-")
                {
                    return Err(ValidationError::new(
                        "auth_bridge.header",
                        format!("{h} is set by the proxy and cannot carry a secret"),
                    ));
                }
                h
            }
        };
        let scheme = match (self.mode, self.scheme) {
            (_, Some(s)) => {
                if s.is_empty()
                    || s.len() > 32
                    || !s
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                {
                    return Err(ValidationError::new(
                        "auth_bridge.scheme",
                        "must be 1 to 32 letters, digits, '-', '_' or '.'",
                    ));
                }
                Some(s)
            }
            (AuthBridgeMode::AuthorizationHeader, None) => Some("Bearer".to_owned()),
            (AuthBridgeMode::Header, None) => None,
        };
        let secret = self.secret;
        if secret.is_empty()
            || secret.len() > 4096
            || !secret.bytes().all(|b| (0x21..0x7f).contains(&b))
        {
            return Err(ValidationError::new(
                "auth_bridge.secret",
                "must be 1 to 4096 visible ASCII characters",
            ));
        }
        Ok((
            AuthBridge {
                mode: self.mode,
                header,
                scheme,
                sealed_secret: String::new(),
            },
            secret,
        ))
    }
}
