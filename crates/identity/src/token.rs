//! Service tokens: long random secrets for automation and for the embedded
//! default, created through the API, shown once, stored as a SHA-256.
//!
//! The `ppst_` prefix makes a leaked token recognisable to secret scanners
//! and lets the API tell a service token from a JWT without trying both.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::seal::SealError;
use crate::session::hash_secret;

/// Prefix of every service token.
pub const PREFIX: &str = "ppst_";

/// A new service token and the hash the store keeps.
pub struct NewServiceToken {
    pub token: String,
    pub hash: String,
}

impl std::fmt::Debug for NewServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewServiceToken")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Generates a token: the prefix and 256 random bits, base64url.
///
/// # Errors
/// The system random source failed.
pub fn generate() -> Result<NewServiceToken, SealError> {
    let mut raw = [0u8; 32];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| SealError::Random)?;
    let token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
    let hash = hash_secret(&token);
    Ok(NewServiceToken { token, hash })
}

/// Whether a bearer value has the shape of a service token (then it is
/// looked up by hash, never parsed as a JWT).
#[must_use]
pub fn looks_like_service_token(bearer: &str) -> bool {
    bearer.len() == PREFIX.len() + 43 && bearer.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_shape_and_hash() {
        let t = generate().expect("token");
        assert!(looks_like_service_token(&t.token));
        assert_eq!(t.hash, hash_secret(&t.token));
        assert!(!format!("{t:?}").contains(&t.token));
        assert!(!looks_like_service_token("ppst_short"));
        assert!(!looks_like_service_token("eyJhbGciOi.x.y"));
    }
}
