//! Identity and access records the store keeps beside routes: grants,
//! service tokens, browser sessions, revocations and the audit log.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access::{Principal, Role, Scope};

/// A role pushed through `/api/v1/grants`: `subject` (a user id or a
/// service account id) holds `role` on `scope`. Merged with the roles in
/// the subject's token claims at request time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Grant {
    pub id: Uuid,
    pub subject: String,
    pub org_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    pub role: Role,
    /// Who pushed it (principal id).
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl Grant {
    #[must_use]
    pub fn scope(&self) -> Scope {
        Scope {
            org_id: self.org_id.clone(),
            project_id: self.project_id.clone(),
        }
    }
}

/// A service token as stored: the secret itself is never kept, only its
/// SHA-256. The token acts as a service account holding `role` on `scope`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceToken {
    pub id: Uuid,
    pub name: String,
    /// Hex SHA-256 of the token.
    #[serde(skip_serializing)]
    #[schema(ignore)]
    pub token_hash: String,
    pub org_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    pub role: Role,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
}

impl ServiceToken {
    /// The principal this token acts as.
    #[must_use]
    pub fn principal(&self) -> Principal {
        let mut p = Principal::new(
            crate::access::PrincipalKind::ServiceAccount,
            self.id.to_string(),
        );
        p.name = Some(self.name.clone());
        p.grant(
            Scope {
                org_id: self.org_id.clone(),
                project_id: self.project_id.clone(),
            },
            self.role,
        );
        p
    }
}

/// A browser session for one user on one route, minted by
/// `POST /api/v1/routes/{id}/browser-session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: Uuid,
    pub route_id: Uuid,
    pub user_id: String,
    /// The identity as authorized at mint time (roles of the route's org).
    pub principal: Principal,
    /// The platform (OIDC) session it was minted from, if the token named one.
    pub platform_session: Option<String>,
    /// Hex SHA-256 of the one-time launch code.
    pub launch_code_hash: String,
    pub launch_expires_at: OffsetDateTime,
    pub redeemed_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    /// The hard end: no sliding renewal goes past it.
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub correlation_id: String,
}

/// What a revocation names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum RevocationTarget {
    /// One proxy session.
    Session(Uuid),
    /// Every session of a user minted before the revocation (logout).
    User(String),
    /// Every session of a route minted before the revocation.
    Route(Uuid),
    /// Every session minted from this platform (OIDC) session id.
    PlatformSession(String),
}

impl RevocationTarget {
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Session(_) => "session",
            Self::User(_) => "user",
            Self::Route(_) => "route",
            Self::PlatformSession(_) => "platform_session",
        }
    }

    #[must_use]
    pub fn value(&self) -> String {
        match self {
            Self::Session(id) | Self::Route(id) => id.to_string(),
            Self::User(s) | Self::PlatformSession(s) => s.clone(),
        }
    }

    /// Rebuilds a target from its stored kind and value.
    #[must_use]
    pub fn parse(kind: &str, value: &str) -> Option<Self> {
        Some(match kind {
            "session" => Self::Session(value.parse().ok()?),
            "user" => Self::User(value.to_owned()),
            "route" => Self::Route(value.parse().ok()?),
            "platform_session" => Self::PlatformSession(value.to_owned()),
            _ => return None,
        })
    }
}

/// A stored revocation: sessions it names that were issued at or before
/// `revoked_at` are dead. Kept until every session it could name has
/// expired on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub target: RevocationTarget,
    pub revoked_at: OffsetDateTime,
    /// After this no session it names can still be alive; safe to forget.
    pub expires_at: OffsetDateTime,
    pub reason: String,
}

/// The outcome recorded in an audit entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Allowed,
    Denied,
}

impl AuditOutcome {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allowed" => Some(Self::Allowed),
            "denied" => Some(Self::Denied),
            _ => None,
        }
    }
}

/// One audit record (seed 001 "Audit Expectations").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Dotted action name: `session.issued`, `launch.redeemed`,
    /// `access.denied`, `websocket.connected`, `route.created`, …
    pub action: String,
    pub outcome: AuditOutcome,
    /// Who acted (principal id), if known.
    pub actor: Option<String>,
    pub org_id: Option<String>,
    pub project_id: Option<String>,
    pub route_id: Option<Uuid>,
    /// The user the action concerns (the actor, or the subject of a grant or
    /// revocation).
    pub user_id: Option<String>,
    /// Machine-readable reason for a denial (`cross_tenant`, …).
    pub reason: Option<String>,
    pub correlation_id: String,
    /// Anything else worth keeping, never a secret.
    pub details: serde_json::Value,
}

/// Filters and paging of `GET /api/v1/audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub org_id: Option<String>,
    pub project_id: Option<String>,
    pub route_id: Option<Uuid>,
    pub user_id: Option<String>,
    pub action: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Entries older than this one in `(at, id)` descending order.
    pub before: Option<Uuid>,
    pub limit: u32,
}

/// Filters of `GET /api/v1/sessions`.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub route_id: Option<Uuid>,
    pub user_id: Option<String>,
    /// Only sessions neither expired nor revoked at this instant.
    pub live_at: Option<OffsetDateTime>,
    pub after: Option<Uuid>,
    pub limit: u32,
}
