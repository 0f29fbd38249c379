//! The in-memory view of identity state the hot path reads: grants pushed
//! through the API, live service tokens, and the revocation set.
//!
//! Like the route table it is an immutable snapshot, rebuilt from the store
//! off the hot path and swapped whole, so every request and every open
//! tunnel checks revocation without a store round-trip. Each swap bumps a
//! generation counter that open tunnels watch: a revocation reaches them as
//! soon as the snapshot holding it is published.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pp_model::records::{Grant, Revocation, RevocationTarget, ServiceToken};
use pp_model::{Principal, Role, Scope};
use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

use crate::session::SessionClaims;

/// The directory's maps hash with foldhash, seeded per process: every
/// request looks up its session, user and route here, and SipHash was
/// several times slower at it. Keys come from the store, never from a
/// client, so nobody outside can crowd a bucket.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::quality::RandomState>;

/// What ended a session, for the close reason and the audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Session,
    User,
    Route,
    PlatformSession,
}

impl Revoked {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session revoked",
            Self::User => "user signed out",
            Self::Route => "route access revoked",
            Self::PlatformSession => "platform session ended",
        }
    }
}

/// Revocations by target; user, route and platform-session entries hold the
/// latest revocation instant (Unix seconds): sessions minted at or before
/// it are dead, later ones live.
#[derive(Debug, Default, Clone)]
pub struct Revocations {
    sessions: HashSet<Uuid>,
    users: HashMap<String, i64>,
    routes: HashMap<Uuid, i64>,
    platform_sessions: HashMap<String, i64>,
}

impl Revocations {
    #[must_use]
    pub fn from_records(records: &[Revocation]) -> Self {
        let mut r = Self::default();
        for rec in records {
            let at = rec.revoked_at.unix_timestamp();
            match &rec.target {
                RevocationTarget::Session(id) => {
                    r.sessions.insert(*id);
                }
                RevocationTarget::User(u) => latest(&mut r.users, u.clone(), at),
                RevocationTarget::Route(id) => latest(&mut r.routes, *id, at),
                RevocationTarget::PlatformSession(s) => {
                    latest(&mut r.platform_sessions, s.clone(), at);
                }
            }
        }
        r
    }

    /// Whether a session with these claims is revoked, and by what.
    #[must_use]
    pub fn check(&self, c: &SessionClaims) -> Option<Revoked> {
        if self.sessions.contains(&c.sid) {
            return Some(Revoked::Session);
        }
        if self
            .users
            .get(&c.principal.id)
            .is_some_and(|at| c.iat <= *at)
        {
            return Some(Revoked::User);
        }
        if self.routes.get(&c.route).is_some_and(|at| c.iat <= *at) {
            return Some(Revoked::Route);
        }
        let platform = c.principal.platform_session.as_ref();
        if platform
            .and_then(|s| self.platform_sessions.get(s))
            .is_some_and(|at| c.iat <= *at)
        {
            return Some(Revoked::PlatformSession);
        }
        None
    }

    /// Whether a bearer principal's platform session or user was revoked
    /// after the token was issued (`issued_at`, Unix seconds).
    #[must_use]
    pub fn check_bearer(&self, p: &Principal, issued_at: i64) -> Option<Revoked> {
        if self.users.get(&p.id).is_some_and(|at| issued_at <= *at) {
            return Some(Revoked::User);
        }
        let platform = p.platform_session.as_ref();
        if platform
            .and_then(|s| self.platform_sessions.get(s))
            .is_some_and(|at| issued_at <= *at)
        {
            return Some(Revoked::PlatformSession);
        }
        None
    }

    /// Whether the route's sessions were revoked at or after `since` (Unix
    /// seconds): tunnels of bearer callers opened before such a revocation
    /// close too.
    #[must_use]
    pub fn route_revoked_since(&self, route: Uuid, since: i64) -> bool {
        self.routes.get(&route).is_some_and(|at| *at >= since)
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.sessions.len() + self.users.len() + self.routes.len() + self.platform_sessions.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn latest<K: std::hash::Hash + Eq>(m: &mut HashMap<K, i64>, k: K, at: i64) {
    let slot = m.entry(k).or_insert(at);
    *slot = (*slot).max(at);
}

/// One immutable snapshot.
#[derive(Debug, Default)]
pub struct Directory {
    grants: HashMap<String, Vec<(Scope, Role)>>,
    tokens: HashMap<String, ServiceToken>,
    /// Expiry of the tokens above by id, for open tunnels' "is my token
    /// still live" (asked of every tunnel on every snapshot).
    token_expiry: HashMap<String, OffsetDateTime>,
    revocations: Revocations,
}

impl Directory {
    #[must_use]
    pub fn new(grants: Vec<Grant>, tokens: Vec<ServiceToken>, revocations: &[Revocation]) -> Self {
        let mut by_subject: HashMap<String, Vec<(Scope, Role)>> = HashMap::default();
        for g in grants {
            by_subject
                .entry(g.subject.clone())
                .or_default()
                .push((g.scope(), g.role));
        }
        Self {
            grants: by_subject,
            token_expiry: tokens
                .iter()
                .filter(|t| t.revoked_at.is_none())
                .map(|t| (t.id.to_string(), t.expires_at))
                .collect(),
            tokens: tokens
                .into_iter()
                .map(|t| (t.token_hash.clone(), t))
                .collect(),
            revocations: Revocations::from_records(revocations),
        }
    }

    /// Whether grants are pushed for the principal with this id.
    #[must_use]
    pub fn has_grants(&self, id: &str) -> bool {
        self.grants.get(id).is_some_and(|gs| !gs.is_empty())
    }

    /// `p` with the grants pushed for its subject merged in.
    #[must_use]
    pub fn with_grants(&self, mut p: Principal) -> Principal {
        if let Some(gs) = self.grants.get(&p.id) {
            for (scope, role) in gs {
                p.grant(scope.clone(), *role);
            }
        }
        p
    }

    /// The principal of a service token, by the token's hash, if the token
    /// is live at `now`: its own roles, and those merged with the grants
    /// pushed for it.
    #[must_use]
    pub fn service_token(&self, hash: &str, now: OffsetDateTime) -> Option<(Principal, Principal)> {
        let t = self.tokens.get(hash)?;
        if t.revoked_at.is_some() || t.expires_at <= now {
            return None;
        }
        let own = t.principal();
        let merged = self.with_grants(own.clone());
        Some((own, merged))
    }

    /// Whether the service token with this id is in the snapshot, not
    /// revoked and not expired: open tunnels of a revoked token close.
    #[must_use]
    pub fn service_token_live(&self, id: &str) -> bool {
        self.token_expiry
            .get(id)
            .is_some_and(|exp| *exp > OffsetDateTime::now_utc())
    }

    #[must_use]
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }
}

/// The published snapshot and its generation counter.
#[derive(Debug)]
pub struct DirectoryHandle {
    current: ArcSwap<Directory>,
    generation: watch::Sender<u64>,
}

impl Default for DirectoryHandle {
    fn default() -> Self {
        Self::new(Directory::default())
    }
}

impl DirectoryHandle {
    #[must_use]
    pub fn new(d: Directory) -> Self {
        Self {
            current: ArcSwap::from_pointee(d),
            generation: watch::Sender::new(0),
        }
    }

    /// The snapshot in force now (lock-free).
    #[must_use]
    pub fn load(&self) -> Arc<Directory> {
        self.current.load_full()
    }

    /// Publishes a new snapshot and wakes every watcher.
    pub fn replace(&self, d: Directory) {
        self.current.store(Arc::new(d));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Changes when a new snapshot is published: open tunnels re-check
    /// their session then.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use pp_model::PrincipalKind;
    use time::Duration;

    use super::*;

    fn claims(user: &str, route: Uuid, iat: i64, platform: Option<&str>) -> SessionClaims {
        let mut p = Principal::new(PrincipalKind::User, user);
        p.platform_session = platform.map(str::to_owned);
        SessionClaims {
            sid: Uuid::new_v4(),
            route,
            iat,
            exp: iat + 600,
            hard: iat + 3600,
            principal: p,
        }
    }

    fn rev(target: RevocationTarget, at: i64) -> Revocation {
        let t = OffsetDateTime::from_unix_timestamp(at).expect("time");
        Revocation {
            target,
            revoked_at: t,
            expires_at: t + Duration::hours(12),
            reason: "test".into(),
        }
    }

    #[test]
    fn revocations_end_only_sessions_minted_at_or_before_them() {
        let route = Uuid::new_v4();
        let old = claims("alice", route, 100, Some("sid-1"));
        let new = claims("alice", route, 300, Some("sid-1"));
        let bob = claims("bob", route, 100, None);
        let cases = [
            (
                rev(RevocationTarget::User("alice".into()), 200),
                [Some(Revoked::User), None, None],
            ),
            (
                rev(RevocationTarget::Route(route), 200),
                [Some(Revoked::Route), None, Some(Revoked::Route)],
            ),
            (
                rev(RevocationTarget::PlatformSession("sid-1".into()), 200),
                [Some(Revoked::PlatformSession), None, None],
            ),
            (
                rev(RevocationTarget::Session(new.sid), 200),
                [None, Some(Revoked::Session), None],
            ),
        ];
        for (r, want) in cases {
            let set = Revocations::from_records(std::slice::from_ref(&r));
            let got = [set.check(&old), set.check(&new), set.check(&bob)];
            assert_eq!(got, want, "{:?}", r.target);
        }
    }

    #[test]
    fn service_tokens_resolve_by_hash_until_expiry_or_revocation() {
        let now = OffsetDateTime::now_utc();
        let token = |hash: &str, expires: OffsetDateTime, revoked| ServiceToken {
            id: Uuid::new_v4(),
            name: "ci".into(),
            token_hash: hash.into(),
            org_id: "acme".into(),
            project_id: Some("dev".into()),
            role: Role::Member,
            created_by: "operator".into(),
            created_at: now,
            expires_at: expires,
            revoked_at: revoked,
        };
        let d = Directory::new(
            vec![],
            vec![
                token("live", now + Duration::hours(1), None),
                token("expired", now - Duration::seconds(1), None),
                token("revoked", now + Duration::hours(1), Some(now)),
            ],
            &[],
        );
        let (_, p) = d.service_token("live", now).expect("live token");
        assert_eq!(p.kind, PrincipalKind::ServiceAccount);
        assert_eq!(p.project_role("acme", "dev"), Some(Role::Member));
        for h in ["expired", "revoked", "unknown"] {
            assert!(d.service_token(h, now).is_none(), "{h}");
        }
    }

    #[test]
    fn pushed_grants_merge_into_the_principal_and_replace_wakes_watchers() {
        let now = OffsetDateTime::now_utc();
        let g = Grant {
            id: Uuid::new_v4(),
            subject: "alice".into(),
            org_id: "acme".into(),
            project_id: None,
            role: Role::Admin,
            created_by: "operator".into(),
            created_at: now,
        };
        let handle = DirectoryHandle::default();
        let rx = handle.subscribe();
        let before = handle
            .load()
            .with_grants(Principal::new(PrincipalKind::User, "alice"));
        assert_eq!(before.org_role("acme"), None);
        handle.replace(Directory::new(vec![g], vec![], &[]));
        assert!(rx.has_changed().expect("sender alive"));
        let after = handle
            .load()
            .with_grants(Principal::new(PrincipalKind::User, "alice"));
        assert_eq!(after.org_role("acme"), Some(Role::Admin));
    }
}
