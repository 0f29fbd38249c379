//! The session claims' compact form: what a session cookie seals.
//!
//! A browser sends its session cookie with every request to the route, and
//! the proxy reads, scans and compares every byte of it before the request
//! moves on. The claims were sealed as JSON, which spells out each field
//! name and each uuid as 36 characters: about 330 bytes of claims for a
//! user with one role, 500 characters of cookie once sealed and base64ed.
//! This form carries the same claims in about a third of that, and grows
//! with a user's roles by their ids' length, not by field names.
//!
//! Layout (integers as unsigned LEB128, signed ones zigzag first; a string
//! is its length, then its UTF-8 bytes):
//!
//! ```text
//! format          1 byte, FORMAT (JSON always begins with `{`)
//! sid             16 bytes
//! iat             signed
//! exp - iat       signed
//! hard - iat      signed
//! kind            1 byte: 0 user, 1 service account, 2 operator
//! flags           1 byte: which optional parts follow (FLAG_*)
//! id              16 bytes when FLAG_UUID_ID (the canonical text of a uuid), else a string
//! email           string, when FLAG_EMAIL
//! name            string, when FLAG_NAME
//! platform_session string, when FLAG_PLATFORM_SESSION
//! roles           count, then each: org string, role byte (ROLE_HAS_PROJECT
//!                 set: a project string follows)
//! ```
//!
//! The route id is not carried: it is the seal's associated data, so the
//! cipher already binds the cookie to its route, and opening takes it from
//! the route asked for. Decoding accepts exactly what encoding makes: no
//! trailing bytes, no unknown kind, role or flag, roles in their map's
//! order without repeats. A new claim needs a new format byte.

use std::collections::BTreeMap;

use pp_model::{Principal, PrincipalKind, Role, Scope};
use uuid::Uuid;

use super::SessionClaims;

/// The first byte of the compact form.
pub(super) const FORMAT: u8 = 2;

const FLAG_ADMIN: u8 = 1;
const FLAG_EMAIL: u8 = 1 << 1;
const FLAG_NAME: u8 = 1 << 2;
const FLAG_PLATFORM_SESSION: u8 = 1 << 3;
const FLAG_UUID_ID: u8 = 1 << 4;
const FLAGS_KNOWN: u8 = (1 << 5) - 1;

const ROLE_HAS_PROJECT: u8 = 0x80;

/// The claims in compact form; `None` for expiries that lie further from
/// the mint time than a signed 64-bit count of seconds reaches.
pub(super) fn encode(claims: &SessionClaims) -> Option<Vec<u8>> {
    let SessionClaims {
        sid,
        route: _,
        iat,
        exp,
        hard,
        principal,
    } = claims;
    // Every field named: a claim added to `Principal` fails to compile
    // here until the form carries it.
    let Principal {
        kind,
        id,
        email,
        name,
        platform_admin,
        roles,
        platform_session,
    } = principal;
    let mut out = Vec::with_capacity(64 + id.len() + roles.len() * 24);
    out.push(FORMAT);
    out.extend_from_slice(sid.as_bytes());
    put_signed(&mut out, *iat);
    put_signed(&mut out, exp.checked_sub(*iat)?);
    put_signed(&mut out, hard.checked_sub(*iat)?);
    out.push(match kind {
        PrincipalKind::User => 0,
        PrincipalKind::ServiceAccount => 1,
        PrincipalKind::Operator => 2,
    });
    let uuid_id = canonical_uuid(id);
    let flag = |on: bool, f: u8| if on { f } else { 0 };
    out.push(
        flag(*platform_admin, FLAG_ADMIN)
            | flag(email.is_some(), FLAG_EMAIL)
            | flag(name.is_some(), FLAG_NAME)
            | flag(platform_session.is_some(), FLAG_PLATFORM_SESSION)
            | flag(uuid_id.is_some(), FLAG_UUID_ID),
    );
    match uuid_id {
        Some(u) => out.extend_from_slice(u.as_bytes()),
        None => put_str(&mut out, id),
    }
    for text in [email, name, platform_session].into_iter().flatten() {
        put_str(&mut out, text);
    }
    put_unsigned(&mut out, roles.len() as u64);
    for (scope, role) in roles {
        put_str(&mut out, &scope.org_id);
        let code = role_code(*role);
        match &scope.project_id {
            Some(project) => {
                out.push(code | ROLE_HAS_PROJECT);
                put_str(&mut out, project);
            }
            None => out.push(code),
        }
    }
    Some(out)
}

/// The claims a compact form holds, for `route`; `None` for anything
/// [`encode`] would not have made.
pub(super) fn decode(bytes: &[u8], route: Uuid) -> Option<SessionClaims> {
    let mut r = Reader(bytes);
    if r.byte()? != FORMAT {
        return None;
    }
    let sid = Uuid::from_bytes(r.array()?);
    let iat = r.signed()?;
    let exp = iat.checked_add(r.signed()?)?;
    let hard = iat.checked_add(r.signed()?)?;
    let kind = match r.byte()? {
        0 => PrincipalKind::User,
        1 => PrincipalKind::ServiceAccount,
        2 => PrincipalKind::Operator,
        _ => return None,
    };
    let flags = r.byte()?;
    if flags & !FLAGS_KNOWN != 0 {
        return None;
    }
    let id = if flags & FLAG_UUID_ID != 0 {
        Uuid::from_bytes(r.array()?).hyphenated().to_string()
    } else {
        let id = r.string()?;
        // The encoder sends a uuid's canonical text as its bytes.
        if canonical_uuid(&id).is_some() {
            return None;
        }
        id
    };
    let mut optional = |f: u8| {
        if flags & f == 0 {
            Some(None)
        } else {
            r.string().map(Some)
        }
    };
    let email = optional(FLAG_EMAIL)?;
    let name = optional(FLAG_NAME)?;
    let platform_session = optional(FLAG_PLATFORM_SESSION)?;
    let count = r.unsigned()?;
    let mut roles = BTreeMap::new();
    let mut last: Option<Scope> = None;
    for _ in 0..count {
        let org_id = r.string()?;
        let code = r.byte()?;
        let role = role_of(code & !ROLE_HAS_PROJECT)?;
        let project_id = if code & ROLE_HAS_PROJECT != 0 {
            Some(r.string()?)
        } else {
            None
        };
        let scope = Scope { org_id, project_id };
        // In the map's order, each scope once: the one form of a map.
        if last.as_ref().is_some_and(|l| *l >= scope) {
            return None;
        }
        last = Some(scope.clone());
        roles.insert(scope, role);
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(SessionClaims {
        sid,
        route,
        iat,
        exp,
        hard,
        principal: Principal {
            kind,
            id,
            email,
            name,
            platform_admin: flags & FLAG_ADMIN != 0,
            roles,
            platform_session,
        },
    })
}

/// The uuid whose canonical text (lowercase, hyphenated) `id` is: such an
/// id travels as its 16 bytes and reads back as the same text.
fn canonical_uuid(id: &str) -> Option<Uuid> {
    let u = Uuid::try_parse(id).ok()?;
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    (u.hyphenated().encode_lower(&mut text).as_bytes() == id.as_bytes()).then_some(u)
}

fn role_code(role: Role) -> u8 {
    match role {
        Role::Viewer => 0,
        Role::Member => 1,
        Role::Admin => 2,
    }
}

fn role_of(code: u8) -> Option<Role> {
    Some(match code {
        0 => Role::Viewer,
        1 => Role::Member,
        2 => Role::Admin,
        _ => return None,
    })
}

fn put_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_unsigned(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_unsigned(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The compact form's bytes not read yet.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if n > self.0.len() {
            return None;
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(taken)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// LEB128 as [`put_unsigned`] writes it: at most ten bytes, no bits
    /// past 64, and no trailing zero groups (one value, one form).
    fn unsigned(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            let group = u64::from(b & 0x7f);
            if i == 9 && group > 1 {
                return None;
            }
            v |= group << (7 * i);
            if b & 0x80 == 0 {
                return (i == 0 || group != 0).then_some(v);
            }
        }
        None
    }

    fn signed(&mut self) -> Option<i64> {
        let z = self.unsigned()?;
        Some(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.unsigned()?).ok()?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).ok().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests;
