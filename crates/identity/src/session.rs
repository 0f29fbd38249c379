//! The proxy-session cookie and the one-time launch code.
//!
//! A browser session starts at the control plane: the platform calls
//! `POST /api/v1/routes/{id}/browser-session` with the user's token, the
//! proxy records a session and answers an `open_url` carrying a launch code.
//! The code is 256 random bits, stored only as its SHA-256, single use and
//! valid for about a minute. The browser follows the URL; the proxy redeems
//! the code on the route's own host, sets the session cookie and redirects
//! to the clean entry URL, so no reusable token stays in the address bar or
//! history (DESIGN.md "Security model").
//!
//! The cookie value is [`SessionClaims`] sealed (AES-256-GCM) with the
//! route id as associated data: a cookie for one route does not open on
//! another. It carries everything the hot path needs (user, roles of the
//! route's org, expiries), so a request is authenticated without a store
//! round-trip; revocation is checked against the in-memory set. The claims
//! are sealed in a compact binary form (`compact`): a third of their JSON,
//! which cookies sealed by earlier versions hold and which still opens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use pp_model::Principal;
use ring::digest;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::seal::{Keyring, Purpose, SealError};

mod compact;

/// Claims inside a session cookie. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// Session id (the stored session record's id).
    pub sid: Uuid,
    /// The route this cookie is good for.
    pub route: Uuid,
    /// When the session was minted: revocations of the user or route at or
    /// after this instant end it.
    pub iat: i64,
    /// This cookie's expiry; slides forward on use, never past `hard`.
    pub exp: i64,
    /// The session's hard end: the user relaunches from the platform.
    pub hard: i64,
    /// The user as authorized at mint time, roles of the route's org only.
    pub principal: Principal,
}

impl SessionClaims {
    /// Seals the claims into a cookie value for their route.
    ///
    /// # Errors
    /// The random source failed, or the claims do not serialize.
    pub fn seal(&self, keys: &Keyring) -> Result<String, SealError> {
        let plain = compact::encode(self).ok_or(SealError::Invalid)?;
        keys.seal(Purpose::SessionCookie, self.route.as_bytes(), &plain)
    }

    /// Opens a cookie value presented on `route`. Expiry is the caller's
    /// check (it knows the clock and the skew).
    ///
    /// # Errors
    /// [`SealError::Invalid`] for a value that is not a cookie we sealed
    /// for this route.
    pub fn open(keys: &Keyring, route: Uuid, value: &str) -> Result<Self, SealError> {
        let plain = keys.open(Purpose::SessionCookie, route.as_bytes(), value)?;
        let claims = match plain.first() {
            Some(&compact::FORMAT) => compact::decode(&plain, route),
            // Sealed as JSON by an earlier version, good until it expires.
            Some(b'{') => serde_json::from_slice::<Self>(&plain).ok(),
            _ => None,
        };
        claims
            .filter(|c| c.route == route)
            .ok_or(SealError::Invalid)
    }

    /// Whether the cookie is past its own expiry or the hard end at `now`.
    #[must_use]
    pub fn expired(&self, now: i64) -> bool {
        now >= self.exp || now >= self.hard
    }
}

pub use pp_model::table::{
    session_cookie_name as cookie_name, SESSION_COOKIE_PREFIX as COOKIE_PREFIX,
};

/// A freshly generated launch code: the value for the URL, and the hash to
/// store.
#[derive(Clone)]
pub struct LaunchCode {
    pub code: String,
    pub hash: String,
}

impl std::fmt::Debug for LaunchCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchCode")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl LaunchCode {
    /// 256 random bits, base64url.
    ///
    /// # Errors
    /// The system random source failed.
    pub fn generate() -> Result<Self, SealError> {
        let mut raw = [0u8; 32];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| SealError::Random)?;
        let code = URL_SAFE_NO_PAD.encode(raw);
        let hash = hash_secret(&code);
        Ok(Self { code, hash })
    }
}

/// Hex SHA-256 of a high-entropy secret (launch code, service token): what
/// the store keeps instead of the secret. No salt or stretching is needed:
/// the secrets are 256 random bits, not passwords.
#[must_use]
pub fn hash_secret(secret: &str) -> String {
    let d = digest::digest(&digest::SHA256, secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in d.as_ref() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use pp_model::{PrincipalKind, Role, Scope};

    use super::*;

    fn keys() -> Keyring {
        Keyring::new(&[vec![9; 32]]).expect("ring")
    }

    fn claims(route: Uuid) -> SessionClaims {
        let mut p = Principal::new(PrincipalKind::User, "alice");
        p.grant(Scope::project("acme", "dev"), Role::Member);
        SessionClaims {
            sid: Uuid::new_v4(),
            route,
            iat: 100,
            exp: 200,
            hard: 1000,
            principal: p,
        }
    }

    #[test]
    fn cookie_opens_only_on_its_own_route() {
        let k = keys();
        let route = Uuid::new_v4();
        let c = claims(route);
        let v = c.seal(&k).expect("seal");
        assert_eq!(SessionClaims::open(&k, route, &v).expect("open"), c);
        assert!(SessionClaims::open(&k, Uuid::new_v4(), &v).is_err());
        let other = Keyring::new(&[vec![8; 32]]).expect("ring");
        assert!(SessionClaims::open(&other, route, &v).is_err());
    }

    #[test]
    fn expiry_counts_both_the_sliding_and_the_hard_end() {
        let mut c = claims(Uuid::new_v4());
        assert!(!c.expired(150));
        assert!(c.expired(200));
        c.exp = 5000;
        assert!(c.expired(1000));
    }

    #[test]
    fn launch_codes_are_unique_and_hash_to_hex() {
        let a = LaunchCode::generate().expect("code");
        let b = LaunchCode::generate().expect("code");
        assert_ne!(a.code, b.code);
        assert_eq!(a.code.len(), 43);
        assert_eq!(a.hash, hash_secret(&a.code));
        assert_eq!(a.hash.len(), 64);
        assert!(!format!("{a:?}").contains(&a.code));
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn cookie_names_differ_per_route_and_share_the_prefix() {
        let a = cookie_name(Uuid::new_v4());
        let b = cookie_name(Uuid::new_v4());
        assert_ne!(a, b);
        assert!(a.starts_with(COOKIE_PREFIX) && a.len() == COOKIE_PREFIX.len() + 12);
    }
}
