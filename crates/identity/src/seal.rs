//! Authenticated encryption under a rotating key ring.
//!
//! Session cookies and stored secrets (auth-bridge tokens) are sealed with
//! AES-256-GCM (ring's AEAD; the same crypto library rustls already links,
//! so no second AES stack). The ring lists keys newest first: the newest
//! seals, every listed key opens, so an operator rotates by prepending a
//! key and drops the old one once nothing sealed under it can still matter
//! (sessions last hours; a route PATCH re-seals its secret).
//!
//! Each configured master key is stretched with HKDF-SHA256 (RFC 5869) into
//! one subkey per [`Purpose`], so a sealed cookie can never be replayed as a
//! stored secret or the other way round, even under the same master key.
//!
//! Wire form, base64url without padding (RFC 4648 §5, cookie- and
//! URL-safe): `version (1) | key id (4) | nonce (12) | ciphertext | tag (16)`.
//! The key id is the first four bytes of SHA-256 over the master key, so
//! the right key is found without trial decryption. The caller's
//! associated data (a route id, say) is authenticated but not stored: a
//! value sealed for one route does not open for another.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::{digest, hkdf};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Bytes a master key must have.
pub const KEY_LEN: usize = 32;
/// Largest sealed text accepted for opening: bounds the work an attacker
/// can cause with one oversized cookie.
const MAX_SEALED_LEN: usize = 8 * 1024;

/// What a sealed value is for; each purpose has its own subkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    SessionCookie,
    StoredSecret,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Self::SessionCookie => b"platform-proxy session cookie v1",
            Self::StoredSecret => b"platform-proxy stored secret v1",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the key ring is empty")]
    NoKeys,
    #[error("key {index} is not {KEY_LEN} bytes of base64")]
    BadKey { index: usize },
    /// Not ours, tampered with, sealed under a key we no longer hold, or for
    /// other associated data: callers must not tell these apart.
    #[error("the sealed value does not open")]
    Invalid,
    #[error("the system random source failed")]
    Random,
}

struct Entry {
    id: [u8; KEY_ID_LEN],
    session: LessSafeKey,
    secret: LessSafeKey,
}

/// The key ring: newest key first.
pub struct Keyring {
    keys: Vec<Entry>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

struct SubkeyLen;

impl hkdf::KeyType for SubkeyLen {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

fn subkey(master: &[u8], purpose: Purpose) -> Result<LessSafeKey, SealError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"platform-proxy").extract(master);
    let info = [purpose.info()];
    let okm = prk
        .expand(&info, SubkeyLen)
        .map_err(|_| SealError::NoKeys)?;
    let mut bytes = [0u8; KEY_LEN];
    okm.fill(&mut bytes).map_err(|_| SealError::NoKeys)?;
    let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::NoKeys)?;
    Ok(LessSafeKey::new(unbound))
}

impl Keyring {
    /// A ring from raw master keys, newest first.
    ///
    /// # Errors
    /// No keys, or a key that is not [`KEY_LEN`] bytes.
    pub fn new(masters: &[Vec<u8>]) -> Result<Self, SealError> {
        if masters.is_empty() {
            return Err(SealError::NoKeys);
        }
        let mut keys = Vec::with_capacity(masters.len());
        for (index, m) in masters.iter().enumerate() {
            if m.len() != KEY_LEN {
                return Err(SealError::BadKey { index });
            }
            let hash = digest::digest(&digest::SHA256, m);
            let mut id = [0u8; KEY_ID_LEN];
            id.copy_from_slice(&hash.as_ref()[..KEY_ID_LEN]);
            keys.push(Entry {
                id,
                session: subkey(m, Purpose::SessionCookie)?,
                secret: subkey(m, Purpose::StoredSecret)?,
            });
        }
        Ok(Self {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// A ring from base64 (standard or URL-safe) master keys, newest first,
    /// as the config holds them.
    ///
    /// # Errors
    /// A key that does not decode to [`KEY_LEN`] bytes, or none at all.
    pub fn from_base64(keys: &[String]) -> Result<Self, SealError> {
        let masters = keys
            .iter()
            .enumerate()
            .map(|(index, k)| decode_key(k).ok_or(SealError::BadKey { index }))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(&masters)
    }

    /// A fresh random master key, base64url: what `demo` and the first
    /// start of the embedded default use when none is configured.
    ///
    /// # Errors
    /// The system random source failed.
    pub fn generate_key() -> Result<String, SealError> {
        let mut k = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut k)
            .map_err(|_| SealError::Random)?;
        Ok(URL_SAFE_NO_PAD.encode(k))
    }

    fn key(entry: &Entry, purpose: Purpose) -> &LessSafeKey {
        match purpose {
            Purpose::SessionCookie => &entry.session,
            Purpose::StoredSecret => &entry.secret,
        }
    }

    /// Seals `plaintext` under the newest key, binding `aad`.
    ///
    /// # Errors
    /// The random source failed (no nonce, no seal).
    pub fn seal(
        &self,
        purpose: Purpose,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<String, SealError> {
        let entry = self.keys.first().ok_or(SealError::NoKeys)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut buf = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        buf.push(VERSION);
        buf.extend_from_slice(&entry.id);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext);
        let mut body = buf.split_off(HEADER_LEN);
        Self::key(entry, purpose)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| SealError::Invalid)?;
        buf.extend_from_slice(&body);
        Ok(URL_SAFE_NO_PAD.encode(buf))
    }

    /// Opens a value [`Keyring::seal`] produced under any key of the ring,
    /// for the same purpose and associated data.
    ///
    /// # Errors
    /// [`SealError::Invalid`] for anything that does not open.
    pub fn open(&self, purpose: Purpose, aad: &[u8], sealed: &str) -> Result<Vec<u8>, SealError> {
        if sealed.len() > MAX_SEALED_LEN {
            return Err(SealError::Invalid);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| SealError::Invalid)?;
        if raw.len() < HEADER_LEN + TAG_LEN || raw[0] != VERSION {
            return Err(SealError::Invalid);
        }
        let id = &raw[1..=KEY_ID_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&raw[1 + KEY_ID_LEN..HEADER_LEN]);
        for entry in self.keys.iter().filter(|e| e.id == id) {
            let mut body = raw[HEADER_LEN..].to_vec();
            if let Ok(plain) = Self::key(entry, purpose).open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            ) {
                return Ok(plain.to_vec());
            }
        }
        Err(SealError::Invalid)
    }
}

fn decode_key(k: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
    let k = k.trim();
    [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD, &STANDARD_NO_PAD]
        .iter()
        .find_map(|e| e.decode(k).ok())
        .filter(|b| b.len() == KEY_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[[u8; KEY_LEN]]) -> Keyring {
        Keyring::new(&keys.iter().map(|k| k.to_vec()).collect::<Vec<_>>()).expect("ring")
    }

    #[test]
    fn seal_then_open_round_trips_and_binds_aad_and_purpose() {
        let r = ring(&[[7; KEY_LEN]]);
        let s = r
            .seal(Purpose::SessionCookie, b"route-a", b"hello")
            .expect("seal");
        assert_eq!(
            r.open(Purpose::SessionCookie, b"route-a", &s)
                .expect("open"),
            b"hello"
        );
        assert_eq!(
            r.open(Purpose::SessionCookie, b"route-b", &s),
            Err(SealError::Invalid)
        );
        assert_eq!(
            r.open(Purpose::StoredSecret, b"route-a", &s),
            Err(SealError::Invalid)
        );
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let r = ring(&[[1; KEY_LEN]]);
        let s = r
            .seal(Purpose::SessionCookie, b"", b"payload")
            .expect("seal");
        let raw = URL_SAFE_NO_PAD.decode(&s).expect("b64");
        for i in 0..raw.len() {
            let mut t = raw.clone();
            t[i] ^= 0x01;
            let tampered = URL_SAFE_NO_PAD.encode(&t);
            assert!(
                r.open(Purpose::SessionCookie, b"", &tampered).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn rotation_old_keys_open_newest_seals_removed_keys_do_not_open() {
        let old = ring(&[[1; KEY_LEN]]);
        let sealed_old = old.seal(Purpose::StoredSecret, b"x", b"v1").expect("seal");
        let rotated = ring(&[[2; KEY_LEN], [1; KEY_LEN]]);
        assert_eq!(
            rotated
                .open(Purpose::StoredSecret, b"x", &sealed_old)
                .expect("open"),
            b"v1"
        );
        let sealed_new = rotated
            .seal(Purpose::StoredSecret, b"x", b"v2")
            .expect("seal");
        assert!(old.open(Purpose::StoredSecret, b"x", &sealed_new).is_err());
        let dropped = ring(&[[2; KEY_LEN]]);
        assert!(dropped
            .open(Purpose::StoredSecret, b"x", &sealed_old)
            .is_err());
        assert_eq!(
            dropped
                .open(Purpose::StoredSecret, b"x", &sealed_new)
                .expect("open"),
            b"v2"
        );
    }

    #[test]
    fn garbage_and_oversized_values_are_invalid_not_panics() {
        let r = ring(&[[3; KEY_LEN]]);
        let long = "A".repeat(MAX_SEALED_LEN + 1);
        for bad in ["", "!!!", "AAAA", long.as_str()] {
            assert_eq!(
                r.open(Purpose::SessionCookie, b"", bad),
                Err(SealError::Invalid)
            );
        }
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert_eq!(Keyring::from_base64(&[]).err(), Some(SealError::NoKeys));
        assert_eq!(
            Keyring::from_base64(&["c2hvcnQ".into()]).err(),
            Some(SealError::BadKey { index: 0 })
        );
        let k = Keyring::generate_key().expect("key");
        assert!(Keyring::from_base64(&[k]).is_ok());
    }
}
