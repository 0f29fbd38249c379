//! Bearer authentication shared by both planes: the API authenticates every
//! call with it, the data plane the API clients of app routes.
//!
//! A bearer value is, in this order: the first-run bootstrap token (a
//! platform admin, compared in constant time), a service token (looked up
//! by hash in the directory), or a JWT from the configured issuer. Pushed
//! grants are merged into the principal, and a user or platform session
//! revoked after the token was issued makes it fail like a bad token.

use std::sync::Arc;

use pp_model::Principal;
use time::OffsetDateTime;

use crate::directory::DirectoryHandle;
use crate::jwt::{JwtVerifier, TokenError};
use crate::session::hash_secret;
use crate::token::looks_like_service_token;

/// How a principal proved itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bootstrap,
    ServiceToken,
    Jwt,
    SessionCookie,
}

impl Via {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bootstrap => "bootstrap_token",
            Self::ServiceToken => "service_token",
            Self::Jwt => "jwt",
            Self::SessionCookie => "session_cookie",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The credential's roles merged with the pushed grants in force.
    pub principal: Principal,
    /// The credential's own roles, before pushed grants: what a session
    /// minted from it carries (grants are merged per request instead).
    pub token_principal: Principal,
    pub via: Via,
    /// When the credential was issued (Unix seconds), for revocation checks.
    pub issued_at: i64,
    /// When the credential stops being valid, if it says.
    pub expires_at: Option<OffsetDateTime>,
}

/// Why a bearer value was refused. Callers answer all of them with the same
/// 401; the code goes to the log and the audit record.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials")]
    Missing,
    #[error("unknown or expired service token")]
    UnknownServiceToken,
    #[error("the bearer token is not accepted: {0}")]
    Token(#[from] TokenError),
    #[error("no identity provider is configured for JWT bearer tokens")]
    NoIssuer,
    #[error("the credential was revoked: {0}")]
    Revoked(&'static str),
}

impl AuthError {
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing_credentials",
            Self::UnknownServiceToken => "unknown_service_token",
            Self::Token(e) => e.code(),
            Self::NoIssuer => "no_issuer_configured",
            Self::Revoked(_) => "credential_revoked",
        }
    }
}

/// Authenticates bearer values.
pub struct Authenticator {
    bootstrap: Option<String>,
    jwt: Option<Arc<JwtVerifier>>,
    directory: Arc<DirectoryHandle>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("bootstrap", &self.bootstrap.as_ref().map(|_| "<redacted>"))
            .field("jwt", &self.jwt.as_ref().map(|j| j.issuer().to_owned()))
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    #[must_use]
    pub fn new(
        bootstrap: Option<String>,
        jwt: Option<Arc<JwtVerifier>>,
        directory: Arc<DirectoryHandle>,
    ) -> Self {
        Self {
            bootstrap,
            jwt,
            directory,
        }
    }

    #[must_use]
    pub fn directory(&self) -> &Arc<DirectoryHandle> {
        &self.directory
    }

    #[must_use]
    pub fn jwt(&self) -> Option<&Arc<JwtVerifier>> {
        self.jwt.as_ref()
    }

    /// Authenticates one bearer value.
    ///
    /// # Errors
    /// Why the value is not accepted.
    pub async fn bearer(&self, token: &str) -> Result<Authenticated, AuthError> {
        let now = OffsetDateTime::now_utc();
        if let Some(expected) = &self.bootstrap {
            if constant_time_eq(expected.as_bytes(), token.as_bytes()) {
                return Ok(Authenticated {
                    principal: Principal::operator(),
                    token_principal: Principal::operator(),
                    via: Via::Bootstrap,
                    issued_at: 0,
                    expires_at: None,
                });
            }
        }
        let directory = self.directory.load();
        if looks_like_service_token(token) {
            let (token_principal, principal) = directory
                .service_token(&hash_secret(token), now)
                .ok_or(AuthError::UnknownServiceToken)?;
            return Ok(Authenticated {
                principal,
                token_principal,
                via: Via::ServiceToken,
                issued_at: 0,
                expires_at: None,
            });
        }
        let jwt = self.jwt.as_ref().ok_or(AuthError::NoIssuer)?;
        let verified = jwt.verify(token).await?;
        // A token without `iat` counts as issued at the dawn of time: any
        // revocation of its user or platform session ends it (it could
        // otherwise outlive every revocation until it expires).
        let issued_at = verified
            .issued_at
            .map_or(i64::MIN, OffsetDateTime::unix_timestamp);
        let token_principal = verified.principal;
        let principal = directory.with_grants(token_principal.clone());
        if let Some(r) = directory.revocations().check_bearer(&principal, issued_at) {
            return Err(AuthError::Revoked(r.as_str()));
        }
        Ok(Authenticated {
            principal,
            token_principal,
            via: Via::Jwt,
            issued_at,
            expires_at: Some(verified.expires_at),
        })
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme name
/// is case-insensitive (RFC 9110 §11.1); the token is taken verbatim.
#[must_use]
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim_start_matches(' ');
    (!token.is_empty()).then_some(token)
}

/// Compares two secrets in time that depends only on their lengths, not on
/// where they first differ, so response timing cannot be used to guess a
/// token byte by byte.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_matches_plain_equality() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"", b"", true),
            (b"secret", b"secret", true),
            (b"secret", b"secreT", false),
            (b"secret", b"secret2", false),
            (b"secret", b"", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(constant_time_eq(a, b), *want, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn bearer_token_parses_scheme_case_insensitively() {
        let cases = [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER  abc", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
            ("Bearerabc", None),
        ];
        for (value, want) in cases {
            assert_eq!(bearer_token(value), want, "{value:?}");
        }
    }

    #[tokio::test]
    async fn bootstrap_and_service_tokens_authenticate_without_an_issuer() {
        use pp_model::records::ServiceToken;
        use pp_model::Role;
        let t = crate::token::generate().expect("token");
        let now = OffsetDateTime::now_utc();
        let st = ServiceToken {
            id: uuid::Uuid::new_v4(),
            name: "ci".into(),
            token_hash: t.hash.clone(),
            org_id: "acme".into(),
            project_id: None,
            role: Role::Admin,
            created_by: "operator".into(),
            created_at: now,
            expires_at: now + time::Duration::hours(1),
            revoked_at: None,
        };
        let dir = Arc::new(DirectoryHandle::new(crate::Directory::new(
            vec![],
            vec![st],
            &[],
        )));
        let a = Authenticator::new(Some("boot".into()), None, dir);
        assert!(
            a.bearer("boot")
                .await
                .expect("bootstrap")
                .principal
                .platform_admin
        );
        let svc = a.bearer(&t.token).await.expect("service token");
        assert_eq!(svc.via, Via::ServiceToken);
        assert_eq!(svc.principal.org_role("acme"), Some(Role::Admin));
        let other = crate::token::generate().expect("token");
        assert!(matches!(
            a.bearer(&other.token).await,
            Err(AuthError::UnknownServiceToken)
        ));
        assert!(matches!(
            a.bearer("eyJ.x.y").await,
            Err(AuthError::NoIssuer)
        ));
    }
}
