//! Who is asking, and what they may do: principals, grants, and the pure
//! rules that decide route access and control-plane rights.
//!
//! The tenancy model is seed 003's "Scope model": an org (tenant) holds
//! projects; users and service accounts hold roles on an org or on one
//! project. Cross-tenant and cross-project access is denied by default: a
//! principal reaches only what a grant names.
//!
//! Org admins count as members of every project of their org: they manage
//! those projects' routes and grants already, so refusing them the app would
//! only push them into granting themselves membership.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::adapter::ScopeStrategy;

/// A role on an org or a project, weakest first: every role includes the
/// rights of the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May open the project's apps (mint their own browser sessions, use
    /// them, call them with a token).
    Viewer,
    /// As viewer; the role a project's users normally hold. Gateways may
    /// ask for it through forward-auth (`role=member`) to keep viewers to
    /// read-only surfaces.
    Member,
    /// Manages the scope's routes, grants and service tokens.
    Admin,
}

impl Role {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Member => "member",
            Self::Admin => "admin",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "viewer" => Self::Viewer,
            "member" => Self::Member,
            "admin" => Self::Admin,
            _ => return None,
        })
    }
}

/// What kind of caller a principal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person, from the platform's identity provider.
    User,
    /// Automation holding a service token or a client-credentials JWT.
    ServiceAccount,
    /// The first-run bootstrap token: a platform admin with no user behind it.
    Operator,
}

/// Where a grant applies: a whole org, or one project of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
pub struct Scope {
    pub org_id: String,
    /// `None`: the grant is an org role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
}

impl Scope {
    #[must_use]
    pub fn org(org: &str) -> Self {
        Self {
            org_id: org.to_owned(),
            project_id: None,
        }
    }

    #[must_use]
    pub fn project(org: &str, project: &str) -> Self {
        Self {
            org_id: org.to_owned(),
            project_id: Some(project.to_owned()),
        }
    }
}

/// The authenticated caller and every role it holds, from token claims and
/// from grants pushed through the API, merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// Stable subject id (`sub` claim, service account id, `operator`).
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub platform_admin: bool,
    /// Roles by scope; one role per scope, the strongest seen. Serialized
    /// as a list of `{org_id, project_id?, role}` (JSON object keys must be
    /// strings).
    #[serde(default, with = "roles_list")]
    pub roles: BTreeMap<Scope, Role>,
    /// The platform session this identity came from (OIDC `sid`), so a
    /// back-channel logout naming it ends the proxy sessions minted from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_session: Option<String>,
}

mod roles_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Role, Scope};

    #[derive(Serialize, Deserialize)]
    struct Entry {
        #[serde(flatten)]
        scope: Scope,
        role: Role,
    }

    pub(super) fn serialize<S: Serializer>(
        m: &BTreeMap<Scope, Role>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let v: Vec<Entry> = m
            .iter()
            .map(|(scope, role)| Entry {
                scope: scope.clone(),
                role: *role,
            })
            .collect();
        v.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Scope, Role>, D::Error> {
        let v = Vec::<Entry>::deserialize(d)?;
        let mut m = BTreeMap::new();
        for e in v {
            let slot = m.entry(e.scope).or_insert(e.role);
            if e.role > *slot {
                *slot = e.role;
            }
        }
        Ok(m)
    }
}

impl Principal {
    #[must_use]
    pub fn new(kind: PrincipalKind, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
            email: None,
            name: None,
            platform_admin: false,
            roles: BTreeMap::new(),
            platform_session: None,
        }
    }

    /// The bootstrap operator: a platform admin.
    #[must_use]
    pub fn operator() -> Self {
        Self {
            platform_admin: true,
            ..Self::new(PrincipalKind::Operator, "operator")
        }
    }

    /// Adds a role, keeping the stronger one if the scope already has one.
    pub fn grant(&mut self, scope: Scope, role: Role) {
        let slot = self.roles.entry(scope).or_insert(role);
        if role > *slot {
            *slot = role;
        }
    }

    /// The role on an org itself.
    #[must_use]
    pub fn org_role(&self, org: &str) -> Option<Role> {
        self.role_on(org, None)
    }

    /// The role granted on exactly this scope. Principals hold a handful of
    /// roles: a scan over borrowed names beats building an owned key for
    /// the map on every request; a long list takes the map lookup.
    fn role_on(&self, org: &str, project: Option<&str>) -> Option<Role> {
        if self.roles.len() > 16 {
            let key = Scope {
                org_id: org.to_owned(),
                project_id: project.map(str::to_owned),
            };
            return self.roles.get(&key).copied();
        }
        self.roles
            .iter()
            .find(|(s, _)| s.org_id == org && s.project_id.as_deref() == project)
            .map(|(_, r)| *r)
    }

    /// The effective role on a project: its own grant or the org's admin
    /// role, whichever is stronger. An org viewer or member is no project
    /// member by that alone.
    #[must_use]
    pub fn project_role(&self, org: &str, project: &str) -> Option<Role> {
        let own = self.role_on(org, Some(project));
        let via_org = self.org_role(org).filter(|r| *r == Role::Admin);
        own.max(via_org)
    }

    /// Whether any grant names this org (for "does this principal belong
    /// to the tenant at all").
    #[must_use]
    pub fn in_org(&self, org: &str) -> bool {
        self.roles.keys().any(|s| s.org_id == org)
    }

    /// The roles of one org only: what a session cookie bound to a route of
    /// that org needs to carry.
    #[must_use]
    pub fn restricted_to_org(&self, org: Option<&str>) -> Self {
        let mut p = self.clone();
        p.roles.retain(|s, _| Some(s.org_id.as_str()) == org);
        p
    }

    /// The roles an upstream is told of, comma-separated: `platform:admin`
    /// first for platform admins, then the roles on `org` (all roles when
    /// `org` is `None` and `all_without_org`).
    #[must_use]
    pub fn role_header(&self, org: Option<&str>, all_without_org: bool) -> String {
        let all = org.is_none() && all_without_org;
        let mut out = String::new();
        if self.platform_admin {
            out.push_str("platform:admin");
        }
        // Written straight into one string: this runs on every
        // authenticated request.
        for (scope, role) in &self.roles {
            if !all && Some(scope.org_id.as_str()) != org {
                continue;
            }
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&scope.org_id);
            if let Some(p) = &scope.project_id {
                out.push('/');
                out.push_str(p);
            }
            out.push(':');
            out.push_str(role.as_str());
        }
        out
    }

    /// The org roles and project roles, rendered `org:role` and
    /// `org/project:role`, sorted: the identity header upstreams see.
    #[must_use]
    pub fn role_strings(&self) -> Vec<String> {
        self.roles
            .iter()
            .map(|(s, r)| match &s.project_id {
                Some(p) => format!("{}/{p}:{}", s.org_id, r.as_str()),
                None => format!("{}:{}", s.org_id, r.as_str()),
            })
            .collect()
    }
}

/// What a route requires of a principal: its org, project and the adapter's
/// scope strategy.
#[derive(Debug, Clone, Copy)]
pub struct RouteScope<'a> {
    pub org_id: Option<&'a str>,
    pub project_id: Option<&'a str>,
    pub strategy: ScopeStrategy,
}

/// Why access was refused. Never shown to the caller (who gets one answer
/// for "no such route" and "not yours"); written to the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("the route belongs to no org; only platform admins may use it")]
    RouteHasNoOrg,
    #[error("the route is project-scoped but names no project; only platform admins may use it")]
    RouteHasNoProject,
    #[error("the principal holds no role in the route's org")]
    CrossTenant,
    #[error("the principal is not a member of the route's project")]
    NotProjectMember,
    #[error("the route is org-only and needs an org admin role")]
    NeedsOrgAdmin,
}

impl Denial {
    /// Whether the caller is an outsider to the route's tenant: such a
    /// caller must get the answer a missing route gets (no enumeration);
    /// an org member who lacks the project or role may learn it is
    /// forbidden.
    #[must_use]
    pub fn is_outsider(self) -> bool {
        matches!(self, Self::CrossTenant | Self::RouteHasNoOrg)
    }

    /// Snake-case code for audit records and metrics.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::RouteHasNoOrg => "route_has_no_org",
            Self::RouteHasNoProject => "route_has_no_project",
            Self::CrossTenant => "cross_tenant",
            Self::NotProjectMember => "not_project_member",
            Self::NeedsOrgAdmin => "needs_org_admin",
        }
    }
}

/// The role `p` holds for using the route, or why it holds none.
fn route_role(p: &Principal, route: RouteScope<'_>) -> Result<Role, Denial> {
    if p.platform_admin {
        return Ok(Role::Admin);
    }
    let org = route.org_id.ok_or(Denial::RouteHasNoOrg)?;
    if !p.in_org(org) {
        return Err(Denial::CrossTenant);
    }
    match route.strategy {
        ScopeStrategy::OrgOnly => match p.org_role(org) {
            Some(Role::Admin) => Ok(Role::Admin),
            _ => Err(Denial::NeedsOrgAdmin),
        },
        ScopeStrategy::ProjectRequired => {
            let project = route.project_id.ok_or(Denial::RouteHasNoProject)?;
            p.project_role(org, project).ok_or(Denial::NotProjectMember)
        }
    }
}

/// May `p` use (open, proxy through) the route?
///
/// # Errors
/// The reason for refusal, for the audit log.
pub fn may_use_route(p: &Principal, route: RouteScope<'_>) -> Result<(), Denial> {
    route_role(p, route).map(|_| ())
}

/// May `p` manage (create, change, delete, revoke sessions of) routes,
/// grants and service tokens in `scope`? Platform admins everywhere; org
/// admins in their org; project admins in their project.
#[must_use]
pub fn may_manage(p: &Principal, scope: &Scope) -> bool {
    if p.platform_admin {
        return true;
    }
    if p.org_role(&scope.org_id) == Some(Role::Admin) {
        return true;
    }
    match &scope.project_id {
        Some(project) => {
            p.roles
                .get(&Scope::project(&scope.org_id, project))
                .copied()
                == Some(Role::Admin)
        }
        None => false,
    }
}

/// May `p` manage a route with this org / project? A route without an org
/// is a platform route: platform admins only.
#[must_use]
pub fn may_manage_route(p: &Principal, org: Option<&str>, project: Option<&str>) -> bool {
    match org {
        None => p.platform_admin,
        Some(org) => may_manage(
            p,
            &Scope {
                org_id: org.to_owned(),
                project_id: project.map(str::to_owned),
            },
        ),
    }
}

/// May `p` see a route (read it, list it)? Anyone who may use it or manage
/// it; nobody else learns it exists.
#[must_use]
pub fn may_see_route(p: &Principal, route: RouteScope<'_>) -> bool {
    may_use_route(p, route).is_ok() || may_manage_route(p, route.org_id, route.project_id)
}

#[cfg(test)]
mod tests;

/// May `p` hold `route` as it stands (create it so, or leave it so after a
/// change)? Beyond an admin role on the route's scope (an org admin for
/// `org_only` routes, whose users are org admins), some properties are the
/// operator's decision alone, because they reach beyond the tenant
/// (DESIGN.md "Security model"):
///
/// - path routes and platform-service routes share the apps domain's
///   origin with every other such route: their scripts can read each
///   other's pages as the same user, so only platform admins place apps
///   there;
/// - `policy.public` serves the app to anyone;
/// - `bearer_passthrough` hands callers' platform credentials to the app;
/// - upstream targets on loopback, link-local (cloud metadata) or
///   unspecified addresses reach the proxy's own host.
///
/// # Errors
/// Why not, for the 403 message.
pub fn may_hold_route(p: &Principal, route: &crate::Route) -> Result<(), &'static str> {
    use crate::adapter::AuthStrategy;
    use crate::route::{OwnerType, RouteMode};
    let adapter = route.effective_adapter();
    let org = route.org_id.as_deref();
    let scoped_ok = match (adapter.scope_strategy, org) {
        (ScopeStrategy::OrgOnly, Some(org)) => may_manage(p, &Scope::org(org)),
        _ => may_manage_route(p, org, route.project_id.as_deref()),
    };
    if !scoped_ok {
        return Err(match adapter.scope_strategy {
            ScopeStrategy::OrgOnly => "an org-only route is managed by its org's admins",
            ScopeStrategy::ProjectRequired => {
                "managing this route needs an admin role on its project or org (routes without an org: a platform admin)"
            }
        });
    }
    if p.platform_admin {
        return Ok(());
    }
    if route.route_mode == RouteMode::PathPrefix || route.owner_type == OwnerType::PlatformService {
        return Err(
            "path and platform-service routes share one origin: only platform admins create them",
        );
    }
    if route.is_public() {
        return Err("only platform admins make a route public");
    }
    if adapter.auth_strategy == AuthStrategy::BearerPassthrough {
        return Err("only platform admins let callers' tokens through to an app");
    }
    if route.upstream.targets.iter().any(|t| internal_target(t)) {
        return Err(
            "loopback, link-local and unspecified upstream addresses are for platform admins",
        );
    }
    Ok(())
}

/// Whether `host:port` names an IP literal on loopback, link-local or the
/// unspecified address. Names are resolved at connect time and are not
/// judged here; egress to such ranges belongs in the network policy too.
fn internal_target(target: &str) -> bool {
    let Some((host, _)) = crate::route::split_host_port(target) else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_link_local())
        }
        Err(_) => false,
    }
}
