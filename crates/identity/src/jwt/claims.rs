//! The compact JWS taken apart, the registered claims checked, and the
//! remaining claims mapped onto a principal or a logout request.
//!
//! Nothing here quotes token contents in an error: a message names the
//! claim and what was wrong with it, never the value.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey};
use pp_model::{Principal, PrincipalKind, Role, Scope};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ClaimMapping, JwtConfig, LogoutToken, TokenError, MAX_TOKEN_BYTES};

/// The `events` member that makes a JWT a logout token (OIDC Back-Channel
/// Logout 1.0 §2.4).
pub(super) const BACKCHANNEL_LOGOUT_EVENT: &str =
    "http://schemas.openid.net/event/backchannel-logout";

/// The explicit type a logout token should carry (Back-Channel Logout 1.0
/// §2.4, RFC 8725 §3.11).
const LOGOUT_TYP: &str = "logout+jwt";

/// The JOSE header fields we act on.
#[derive(Debug)]
pub(super) struct Header {
    pub(super) alg: Algorithm,
    pub(super) kid: Option<String>,
    pub(super) typ: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<Value>,
}

/// A token split into its parts, header decoded, payload and signature
/// still encoded (RFC 7515 §7.1).
#[derive(Debug)]
pub(super) struct Compact<'a> {
    pub(super) header: Header,
    /// `header.payload`: what the signature covers.
    message: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> Compact<'a> {
    /// Splits and decodes the header; the size limit comes first.
    pub(super) fn parse(token: &'a str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(malformed(&format!("longer than {MAX_TOKEN_BYTES} bytes")));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("not three dot-separated parts"));
        };
        if header.is_empty() || payload.is_empty() {
            return Err(malformed("empty header or payload"));
        }
        let raw: RawHeader = serde_json::from_slice(&decode_part(header, "header")?)
            .map_err(|_| malformed("the header is not a JSON object of string fields"))?;
        if raw.crit.is_some() {
            // RFC 7515 §4.1.11: extensions we do not understand must fail.
            return Err(malformed("critical header extensions are not supported"));
        }
        let alg = raw.alg.ok_or_else(|| malformed("the header has no alg"))?;
        let alg = Algorithm::from_str(&alg)
            .map_err(|_| TokenError::AlgorithmNotAllowed(printable(&alg)))?;
        Ok(Self {
            header: Header {
                alg,
                kid: raw.kid,
                typ: raw.typ,
            },
            message: &token[..header.len() + 1 + payload.len()],
            payload,
            signature,
        })
    }

    pub(super) fn verify_signature(
        &self,
        key: &DecodingKey,
        alg: Algorithm,
    ) -> Result<(), TokenError> {
        match jsonwebtoken::crypto::verify(self.signature, self.message.as_bytes(), key, alg) {
            Ok(true) => Ok(()),
            Ok(false) => Err(TokenError::BadSignature),
            Err(e) => match e.kind() {
                ErrorKind::Base64(_) => Err(malformed("the signature is not base64url")),
                _ => Err(TokenError::BadSignature),
            },
        }
    }

    /// The payload; call only once the signature verified.
    pub(super) fn claims(&self) -> Result<Claims, TokenError> {
        let map = serde_json::from_slice(&decode_part(self.payload, "payload")?)
            .map_err(|_| malformed("the payload is not a JSON object"))?;
        Ok(Claims {
            map,
            typ: self.header.typ.clone(),
        })
    }
}

/// Which time claims a kind of token must carry.
#[derive(Debug, Clone, Copy)]
pub(super) struct TimeRules {
    require_exp: bool,
    require_iat: bool,
}

impl TimeRules {
    /// Bearer tokens: `exp` required (a token that never expires is not one
    /// we honour).
    pub(super) const ACCESS: Self = Self {
        require_exp: true,
        require_iat: false,
    };
    /// Logout tokens: `iat` required (Back-Channel Logout 1.0 §2.4).
    pub(super) const LOGOUT: Self = Self {
        require_exp: false,
        require_iat: true,
    };
}

/// A verified token's payload.
#[derive(Debug)]
pub(super) struct Claims {
    map: Map<String, Value>,
    typ: Option<String>,
}

impl Claims {
    /// `iss`, `aud`, `exp`, `nbf`, `iat` (RFC 7519 §4.1), with leeway.
    pub(super) fn check_registered(
        &self,
        config: &JwtConfig,
        rules: TimeRules,
    ) -> Result<(), TokenError> {
        match present(self.map.get("iss")) {
            None => return Err(TokenError::MissingClaim("iss")),
            Some(Value::String(iss)) if *iss == config.issuer => {}
            Some(_) => return Err(TokenError::WrongIssuer),
        }
        let ours = |aud: &str| config.audiences.iter().any(|a| a == aud);
        let aud_ok = match present(self.map.get("aud")) {
            None => return Err(TokenError::MissingClaim("aud")),
            Some(Value::String(aud)) => ours(aud),
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(ours),
            Some(_) => return Err(bad("`aud` must be a string or a list of strings")),
        };
        if !aud_ok {
            return Err(TokenError::WrongAudience);
        }

        let now = now_secs();
        let leeway = config.leeway.as_secs_f64();
        match (self.numeric_date("exp")?, rules.require_exp) {
            (None, true) => return Err(TokenError::MissingClaim("exp")),
            // RFC 7519 §4.1.4: valid only *before* the expiry.
            (Some(exp), _) if now >= exp + leeway => return Err(TokenError::Expired),
            _ => {}
        }
        if let Some(nbf) = self.numeric_date("nbf")? {
            if now + leeway < nbf {
                return Err(TokenError::NotYetValid);
            }
        }
        match (self.numeric_date("iat")?, rules.require_iat) {
            (None, true) => return Err(TokenError::MissingClaim("iat")),
            (Some(iat), _) if now + leeway < iat => return Err(TokenError::NotYetValid),
            _ => {}
        }
        Ok(())
    }

    /// `exp` as a time; present once [`TimeRules::ACCESS`] passed.
    pub(super) fn expires_at(&self) -> Result<time::OffsetDateTime, TokenError> {
        let exp = self
            .numeric_date("exp")?
            .ok_or(TokenError::MissingClaim("exp"))?;
        to_time(exp, "exp")
    }

    /// `iat` as a time, if present.
    pub(super) fn issued_at(&self) -> Result<Option<time::OffsetDateTime>, TokenError> {
        self.numeric_date("iat")?
            .map(|iat| to_time(iat, "iat"))
            .transpose()
    }

    /// Typed `logout+jwt`, or carrying the logout event.
    pub(super) fn is_logout_token(&self) -> bool {
        self.typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(LOGOUT_TYP))
            || self
                .map
                .get("events")
                .and_then(Value::as_object)
                .is_some_and(|e| e.contains_key(BACKCHANNEL_LOGOUT_EVENT))
    }

    /// The principal the claims describe (module doc of `jwt`).
    pub(super) fn principal(&self, m: &ClaimMapping) -> Result<Principal, TokenError> {
        let id = self
            .string(&m.user_id)?
            .ok_or(TokenError::MissingClaim("sub"))?;
        let roles = self.string_list(&m.roles)?;
        let mut p = Principal::new(kind_for(&roles, m), id);
        p.email = self.string(&m.email)?;
        p.name = self.string(&m.name)?;
        p.platform_session = self.string(&m.session_id)?;
        p.platform_admin = m
            .platform_admin_role
            .as_deref()
            .is_some_and(|admin| roles.contains(&admin));
        match present(self.lookup(&m.memberships)) {
            None => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let (scope, role) = membership(item).map_err(|why| {
                        TokenError::BadClaim(format!("`{}`[{i}] {why}", m.memberships))
                    })?;
                    p.grant(scope, role);
                }
            }
            Some(_) => {
                return Err(TokenError::BadClaim(format!(
                    "`{}` must be a list",
                    m.memberships
                )))
            }
        }
        Ok(p)
    }

    /// Back-Channel Logout 1.0 §2.6 steps 4 to 6 (signature and registered
    /// claims were steps 1 to 3).
    pub(super) fn logout(&self, m: &ClaimMapping) -> Result<LogoutToken, TokenError> {
        let events = match present(self.map.get("events")) {
            None => return Err(TokenError::MissingClaim("events")),
            Some(Value::Object(events)) => events,
            Some(_) => return Err(bad("`events` must be a JSON object")),
        };
        match events.get(BACKCHANNEL_LOGOUT_EVENT) {
            Some(Value::Object(_)) => {}
            Some(_) => return Err(bad("the back-channel logout event must be a JSON object")),
            None => return Err(bad("`events` lacks the back-channel logout event")),
        }
        if self.map.contains_key("nonce") {
            return Err(bad("a logout token must not carry a nonce"));
        }
        let subject = self.string(&m.user_id)?;
        let session_id = self.string(&m.session_id)?;
        if subject.is_none() && session_id.is_none() {
            return Err(TokenError::MissingClaim("sub or sid"));
        }
        Ok(LogoutToken {
            subject,
            session_id,
            issued_at: self.issued_at()?,
        })
    }

    /// A claim by whole name first, then by dotted path.
    fn lookup(&self, name: &str) -> Option<&Value> {
        if let Some(v) = self.map.get(name) {
            return Some(v);
        }
        let mut parts = name.split('.');
        let mut v = self.map.get(parts.next()?)?;
        for part in parts {
            v = v.as_object()?.get(part)?;
        }
        Some(v)
    }

    /// An optional string claim; empty counts as absent.
    fn string(&self, name: &str) -> Result<Option<String>, TokenError> {
        match present(self.lookup(name)) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(TokenError::BadClaim(format!("`{name}` must be a string"))),
        }
    }

    /// An optional list of strings; absent is empty.
    fn string_list(&self, name: &str) -> Result<Vec<&str>, TokenError> {
        let not_a_list = || TokenError::BadClaim(format!("`{name}` must be a list of strings"));
        match present(self.lookup(name)) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().ok_or_else(not_a_list))
                .collect(),
            Some(_) => Err(not_a_list()),
        }
    }

    fn numeric_date(&self, name: &'static str) -> Result<Option<f64>, TokenError> {
        match present(self.map.get(name)) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(secs) if secs.is_finite() => Ok(Some(secs)),
                _ => Err(TokenError::BadClaim(format!("`{name}` is out of range"))),
            },
            Some(_) => Err(TokenError::BadClaim(format!(
                "`{name}` must be a NumericDate (RFC 7519 §2)"
            ))),
        }
    }
}

/// The principal kind a token's roles make.
fn kind_for(roles: &[&str], mapping: &ClaimMapping) -> PrincipalKind {
    match &mapping.service_account_role {
        Some(sa) if roles.contains(&sa.as_str()) => PrincipalKind::ServiceAccount,
        _ => PrincipalKind::User,
    }
}

/// One item of the memberships claim (format in the module doc of `jwt`).
/// The error completes "`memberships`[i] …".
pub(super) fn membership(item: &Value) -> Result<(Scope, Role), &'static str> {
    match item {
        Value::Object(o) => {
            let org = o
                .get("org")
                .and_then(Value::as_str)
                .ok_or("needs an `org` string")?;
            let project = match o.get("project") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) => Some(p.as_str()),
                Some(_) => return Err("has a `project` that is not a string"),
            };
            let role = o
                .get("role")
                .and_then(Value::as_str)
                .ok_or("needs a `role` string")?;
            scoped_role(org, project, role)
        }
        Value::String(s) => {
            let (scope, role) = s
                .rsplit_once(':')
                .ok_or("is not `org:role` or `org/project:role`")?;
            match scope.split_once('/') {
                Some((org, project)) => scoped_role(org, Some(project), role),
                None => scoped_role(scope, None, role),
            }
        }
        _ => Err("must be an object or a string"),
    }
}

fn scoped_role(
    org: &str,
    project: Option<&str>,
    role: &str,
) -> Result<(Scope, Role), &'static str> {
    if !valid_id(org) {
        return Err("has an org id that does not match [A-Za-z0-9._-]{1,128}");
    }
    if project.is_some_and(|p| !valid_id(p)) {
        return Err("has a project id that does not match [A-Za-z0-9._-]{1,128}");
    }
    let role = Role::parse(role).ok_or("has an unknown role (expected viewer, member or admin)")?;
    let scope = match project {
        Some(p) => Scope::project(org, p),
        None => Scope::org(org),
    };
    Ok((scope, role))
}

/// Org and project ids as the model spells them.
pub(super) fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn to_time(secs: f64, name: &str) -> Result<time::OffsetDateTime, TokenError> {
    // `as` saturates; out-of-range values fail below.
    #[allow(clippy::cast_possible_truncation)]
    let whole = secs.floor() as i64;
    time::OffsetDateTime::from_unix_timestamp(whole)
        .map_err(|_| TokenError::BadClaim(format!("`{name}` is out of range")))
}

/// `null` is as good as absent (RFC 7519 gives it no meaning for these).
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn decode_part(part: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(&format!("the {what} is not base64url")))
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An attacker-chosen string made safe to put in an error: short, plain.
fn printable(s: &str) -> String {
    s.chars()
        .take(16)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '?' })
        .collect()
}

fn malformed(why: &str) -> TokenError {
    TokenError::Malformed(why.to_owned())
}

fn bad(why: &str) -> TokenError {
    TokenError::BadClaim(why.to_owned())
}
