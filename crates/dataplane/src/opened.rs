//! Session cookies already opened, remembered by their sealed value.
//!
//! Opening a cookie (base64, AES-256-GCM, the claims' JSON) costs about as
//! much as forwarding the request it came with, and a browser sends the
//! same value on every request until the cookie is renewed. The sealed
//! value fixes the claims (the cipher authenticates every byte, with the
//! route id bound in), so what it opened to once it opens to again; only
//! the checks that depend on the clock and on revocations are repeated on
//! every request, by the caller. The key ring is fixed for the process's
//! life, so an entry never goes stale.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use pp_identity::{Keyring, SealError, SessionClaims};
use pp_model::Principal;
use uuid::Uuid;

use crate::headers::identity::IdentityValues;

/// Opened cookies kept at most; past it the expired ones go, and if that
/// is not enough, all of them (the next requests open their cookies again).
pub const DEFAULT_CAPACITY: usize = 4096;

/// One opened cookie: its claims, and their principal shared on its own
/// (every request's caller holds it; cloning its role map each time was a
/// good part of what the cache saves), and the identity header values the
/// principal gets on the cookie's route, built on first use.
#[derive(Debug, Clone)]
pub struct Opened {
    pub claims: Arc<SessionClaims>,
    pub principal: Arc<Principal>,
    pub identity: Arc<IdentityValues>,
}

impl Opened {
    fn new(claims: SessionClaims) -> Self {
        Self {
            principal: Arc::new(claims.principal.clone()),
            claims: Arc::new(claims),
            identity: Arc::default(),
        }
    }
}

/// Sealed values by a hash of their tail (the cipher's tag, which differs
/// for every sealing), each bucket compared in full: hashing a whole
/// cookie of a few hundred bytes on every request cost a tenth of its
/// authentication. Only cookies that opened are ever inserted, and nobody
/// can seal one to collide on purpose.
type Buckets = HashMap<u64, Vec<(Box<[u8]>, Opened)>, foldhash::quality::RandomState>;

/// How many trailing bytes of a sealed value are hashed.
const HASHED_TAIL: usize = 24;

/// A bounded map from sealed cookie value to its claims.
#[derive(Debug)]
pub struct OpenedSessions {
    map: Mutex<Buckets>,
    hasher: foldhash::quality::RandomState,
    len: std::sync::atomic::AtomicUsize,
    capacity: usize,
}

impl Default for OpenedSessions {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl OpenedSessions {
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::default()),
            hasher: foldhash::quality::RandomState::default(),
            len: std::sync::atomic::AtomicUsize::new(0),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        crate::lock(&self.map)
    }

    /// Cookies remembered right now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn key(&self, value: &[u8]) -> u64 {
        self.hasher
            .hash_one(&value[value.len().saturating_sub(HASHED_TAIL)..])
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The claims sealed in `value` for `route`: remembered, or opened and
    /// remembered. `now` (Unix seconds) decides which entries may go when
    /// the map is full.
    ///
    /// # Errors
    /// [`SealError`] when `value` is not a cookie sealed for `route`.
    pub fn open(
        &self,
        keys: &Keyring,
        route: Uuid,
        value: &[u8],
        now: i64,
    ) -> Result<Opened, SealError> {
        let key = self.key(value);
        let hit = self.lock().get(&key).and_then(|bucket| {
            bucket
                .iter()
                .find(|(v, _)| **v == *value)
                .map(|(_, o)| o.clone())
        });
        // One value opens for one route only (the route id is sealed in);
        // a value seen on another route is not a hit.
        if let Some(opened) = hit.filter(|o| o.claims.route == route) {
            return Ok(opened);
        }
        // Text is only checked for a value not seen before: a remembered
        // one was text when it was opened.
        let text = std::str::from_utf8(value).map_err(|_| SealError::Invalid)?;
        let opened = Opened::new(SessionClaims::open(keys, route, text)?);
        if opened.claims.expired(now) {
            return Ok(opened);
        }
        let mut map = self.lock();
        let mut len = self.len.load(std::sync::atomic::Ordering::Relaxed);
        if len >= self.capacity {
            map.retain(|_, bucket| {
                bucket.retain(|(_, o)| !o.claims.expired(now));
                !bucket.is_empty()
            });
            len = map.values().map(Vec::len).sum();
            if len >= self.capacity {
                map.clear();
                len = 0;
            }
        }
        let bucket = map.entry(key).or_default();
        if !bucket.iter().any(|(v, _)| **v == *value) {
            bucket.push((value.into(), opened.clone()));
            len += 1;
        }
        self.len.store(len, std::sync::atomic::Ordering::Relaxed);
        Ok(opened)
    }
}

#[cfg(test)]
mod tests {
    use pp_model::PrincipalKind;

    use super::*;

    fn keys() -> Keyring {
        Keyring::new(&[vec![7; 32]]).expect("ring")
    }

    fn sealed(keys: &Keyring, route: Uuid, exp: i64) -> String {
        SessionClaims {
            sid: Uuid::new_v4(),
            route,
            iat: 100,
            exp,
            hard: exp,
            principal: Principal::new(PrincipalKind::User, "alice"),
        }
        .seal(keys)
        .expect("seal")
    }

    #[test]
    fn a_value_opens_once_and_is_then_remembered() {
        let (k, route) = (keys(), Uuid::new_v4());
        let cache = OpenedSessions::new(8);
        let v = sealed(&k, route, 1000);
        let first = cache.open(&k, route, v.as_bytes(), 150).expect("opens");
        let again = cache.open(&k, route, v.as_bytes(), 150).expect("opens");
        assert!(
            Arc::ptr_eq(&first.claims, &again.claims),
            "second open is the remembered one"
        );
        assert!(Arc::ptr_eq(&first.principal, &again.principal));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_remembered_value_is_no_good_on_another_route() {
        let (k, route) = (keys(), Uuid::new_v4());
        let cache = OpenedSessions::new(8);
        let v = sealed(&k, route, 1000);
        cache.open(&k, route, v.as_bytes(), 150).expect("opens");
        assert!(cache.open(&k, Uuid::new_v4(), v.as_bytes(), 150).is_err());
    }

    #[test]
    fn a_forgery_that_shares_a_cookies_tail_is_not_a_hit() {
        let (k, route) = (keys(), Uuid::new_v4());
        let cache = OpenedSessions::new(8);
        let v = sealed(&k, route, 1000);
        cache.open(&k, route, v.as_bytes(), 150).expect("opens");
        // Same hashed tail (same bucket), different head.
        let head = if v.starts_with('A') { "B" } else { "A" };
        let forged = format!("{head}{}", &v[1..]);
        assert_eq!(cache.key(forged.as_bytes()), cache.key(v.as_bytes()));
        assert!(cache.open(&k, route, forged.as_bytes(), 150).is_err());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn garbage_and_expired_cookies_are_not_remembered() {
        let (k, route) = (keys(), Uuid::new_v4());
        let cache = OpenedSessions::new(8);
        assert!(cache.open(&k, route, b"not-a-cookie", 150).is_err());
        assert!(
            cache.open(&k, route, b"\xff\xfe-not-text", 150).is_err(),
            "a value that is not text opens nothing"
        );
        let old = sealed(&k, route, 120);
        let opened = cache.open(&k, route, old.as_bytes(), 150).expect("opens");
        assert!(
            opened.claims.expired(150),
            "the caller still sees it expired"
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn crossing_the_capacity_drops_expired_entries_first_then_all() {
        let (k, route) = (keys(), Uuid::new_v4());
        let cache = OpenedSessions::new(3);
        let short = sealed(&k, route, 200);
        cache.open(&k, route, short.as_bytes(), 150).expect("opens");
        for _ in 0..2 {
            cache
                .open(&k, route, sealed(&k, route, 1000).as_bytes(), 150)
                .expect("opens");
        }
        assert_eq!(cache.len(), 3);
        // Full at t=300: the one expired entry goes, the new one comes in.
        cache
            .open(&k, route, sealed(&k, route, 1000).as_bytes(), 300)
            .expect("opens");
        assert_eq!(cache.len(), 3);
        // Full with live entries only: everything goes but the newcomer.
        cache
            .open(&k, route, sealed(&k, route, 1000).as_bytes(), 300)
            .expect("opens");
        assert_eq!(cache.len(), 1);
    }
}
