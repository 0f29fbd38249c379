use pp_model::{Principal, PrincipalKind, Role, Scope};
use uuid::Uuid;

use super::{decode, encode, FORMAT};
use crate::seal::{Keyring, Purpose};
use crate::session::SessionClaims;

/// A user as the launch flow mints them: a uuid subject, an email, one
/// project role, the platform session.
fn user(route: Uuid) -> SessionClaims {
    let mut p = Principal::new(PrincipalKind::User, "db23227b-5cf8-4937-b281-ec3767f5aa1d");
    p.email = Some("alice@example.com".into());
    p.grant(Scope::project("acme", "ml-dev"), Role::Member);
    p.platform_session = Some("kc-9f8e7d6c".into());
    SessionClaims {
        sid: Uuid::new_v4(),
        route,
        iat: 1_765_099_999,
        exp: 1_765_100_899,
        hard: 1_765_128_799,
        principal: p,
    }
}

/// Claims that use every part of the form, and the edges of each.
fn variety(route: Uuid) -> Vec<SessionClaims> {
    let mut all = vec![user(route)];
    for (kind, id) in [
        (PrincipalKind::User, "alice"),
        (PrincipalKind::ServiceAccount, "sa-ci-runner"),
        (PrincipalKind::Operator, "operator"),
        // Not a uuid's canonical text: kept as text, case and all.
        (PrincipalKind::User, "DB23227B-5CF8-4937-B281-EC3767F5AA1D"),
        (PrincipalKind::User, "db23227b5cf84937b281ec3767f5aa1d"),
        (PrincipalKind::User, ""),
        (PrincipalKind::User, "Zoë Ω ✓"),
    ] {
        let mut c = user(route);
        c.principal = Principal::new(kind, id);
        all.push(c);
    }
    let mut c = user(route);
    c.principal.name = Some("Alice Example".into());
    c.principal.platform_admin = true;
    c.principal.email = None;
    c.principal.grant(Scope::org("acme"), Role::Admin);
    c.principal.grant(Scope::project("acme", "a"), Role::Viewer);
    c.principal.grant(Scope::org("zeta"), Role::Viewer);
    c.principal.grant(Scope::project("", ""), Role::Member);
    all.push(c);
    let mut c = user(route);
    for i in 0..200 {
        c.principal.grant(
            Scope::project("acme", &format!("project-{i:03}")),
            Role::Member,
        );
    }
    c.principal.platform_session = Some("s".repeat(300));
    all.push(c);
    for (iat, exp, hard) in [
        (0, 0, 0),
        (-1, 1, -5),
        (i64::MAX, i64::MAX, i64::MAX),
        (i64::MIN, i64::MIN, -1),
        (i64::MIN / 2, i64::MAX / 2, 63),
    ] {
        let mut c = user(route);
        (c.iat, c.exp, c.hard) = (iat, exp, hard);
        all.push(c);
    }
    all
}

#[test]
fn every_claim_reads_back_as_it_was() {
    let route = Uuid::new_v4();
    for c in variety(route) {
        let bytes = encode(&c).expect("encodes");
        assert_eq!(bytes[0], FORMAT);
        assert_eq!(decode(&bytes, route).as_ref(), Some(&c), "{c:?}");
    }
}

#[test]
fn a_uuid_subject_travels_as_its_sixteen_bytes() {
    let c = user(Uuid::new_v4());
    let as_uuid = encode(&c).expect("encodes").len();
    let mut text = c.clone();
    text.principal.id = text.principal.id.to_uppercase();
    let as_text = encode(&text).expect("encodes").len();
    // 36 characters and their length byte, against 16 bytes.
    assert_eq!(as_text - as_uuid, 37 - 16);
}

#[test]
fn the_route_comes_from_the_opener_and_is_not_carried() {
    let c = user(Uuid::new_v4());
    let bytes = encode(&c).expect("encodes");
    let other = Uuid::new_v4();
    assert_eq!(decode(&bytes, other).expect("decodes").route, other);
    assert!(!bytes
        .windows(16)
        .any(|w| w == c.route.as_bytes().as_slice()));
}

#[test]
fn expiries_beyond_a_signed_offset_from_the_mint_time_are_refused() {
    let mut c = user(Uuid::new_v4());
    (c.iat, c.exp) = (i64::MIN, i64::MAX);
    assert!(encode(&c).is_none());
    (c.iat, c.exp, c.hard) = (1, 1, i64::MIN);
    assert!(encode(&c).is_none());
}

#[test]
fn a_sealed_cookie_is_a_third_of_its_json() {
    let keys = Keyring::new(&[vec![9; 32]]).expect("ring");
    let c = user(Uuid::new_v4());
    let compact = c.seal(&keys).expect("seal");
    let json = serde_json::to_vec(&c).expect("json");
    let as_json = keys
        .seal(Purpose::SessionCookie, c.route.as_bytes(), &json)
        .expect("seal");
    assert!(
        compact.len() * 5 < as_json.len() * 2,
        "{} characters against {}",
        compact.len(),
        as_json.len()
    );
    assert!(compact.len() < 200, "{} characters", compact.len());
}

/// Every byte string short of or past a valid form, and every one with a
/// byte changed, decodes to nothing or to claims that encode back to it:
/// never a panic, never two forms of the same claims.
#[test]
fn any_other_bytes_decode_to_nothing_or_to_their_own_claims() {
    let route = Uuid::new_v4();
    // The two-hundred-role claims repeat one shape at length: left out.
    for c in variety(route)
        .into_iter()
        .filter(|c| c.principal.roles.len() < 100)
    {
        let bytes = encode(&c).expect("encodes");
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], route).is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, route).is_none(), "a trailing byte");
        for at in 0..bytes.len() {
            for flip in [0x01, 0x02, 0x10, 0x40, 0x80, 0xff] {
                let mut changed = bytes.clone();
                changed[at] ^= flip;
                if let Some(d) = decode(&changed, route) {
                    assert_eq!(
                        encode(&d).as_deref(),
                        Some(changed.as_slice()),
                        "byte {at} ^ {flip:#x} decoded to another form of {d:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn malformed_parts_are_refused() {
    let route = Uuid::new_v4();
    let head = |kind: u8, flags: u8| {
        let mut b = vec![FORMAT];
        b.extend_from_slice(&[7; 16]);
        b.extend_from_slice(&[2, 2, 2, kind, flags]);
        b
    };
    let with = |mut b: Vec<u8>, rest: &[u8]| {
        b.extend_from_slice(rest);
        b
    };
    // The smallest valid form: id "a", no roles.
    assert!(decode(&with(head(0, 0), &[1, b'a', 0]), route).is_some());
    for (bad, why) in [
        (with(head(3, 0), &[1, b'a', 0]), "an unknown kind"),
        (with(head(0, 1 << 5), &[1, b'a', 0]), "an unknown flag"),
        (
            with(head(0, 0), &[2, 0xff, 0xfe, 0]),
            "an id that is no UTF-8",
        ),
        (with(head(0, 0), &[9, b'a', 0]), "a length past the end"),
        (
            with(head(0, 0), &[1, b'a', 1, 1, b'o', 3]),
            "an unknown role",
        ),
        (
            with(head(0, 0), &[1, b'a', 2, 1, b'o', 1, 1, b'o', 1]),
            "a scope twice",
        ),
        (
            with(head(0, 0), &[1, b'a', 2, 1, b'p', 1, 1, b'o', 1]),
            "scopes out of order",
        ),
        (
            with(head(0, 0), &[1, b'a', 0x80, 0]),
            "a count with a trailing zero group",
        ),
        (
            with(
                head(0, 0),
                &[
                    1, b'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                ],
            ),
            "a count past 64 bits",
        ),
        (
            with(head(0, 0), &[36])
                .into_iter()
                .chain(*b"db23227b-5cf8-4937-b281-ec3767f5aa1d")
                .chain([0])
                .collect(),
            "a uuid's canonical text sent as text",
        ),
        (vec![b'{'], "JSON is not this form"),
        (Vec::new(), "nothing"),
    ] {
        assert!(decode(&bad, route).is_none(), "{why}");
    }
}

#[test]
fn a_cookie_sealed_as_json_by_an_earlier_version_still_opens() {
    let keys = Keyring::new(&[vec![9; 32]]).expect("ring");
    // Two hundred roles made JSON past the 8 KiB a sealed value may have:
    // such a cookie never opened.
    for c in variety(Uuid::new_v4())
        .into_iter()
        .filter(|c| c.principal.roles.len() < 100)
    {
        let json = serde_json::to_vec(&c).expect("json");
        let sealed = keys
            .seal(Purpose::SessionCookie, c.route.as_bytes(), &json)
            .expect("seal");
        assert_eq!(
            SessionClaims::open(&keys, c.route, &sealed).expect("opens"),
            c
        );
        // JSON naming another route does not open, as before.
        let mut moved = c.clone();
        moved.route = Uuid::new_v4();
        let json = serde_json::to_vec(&moved).expect("json");
        let sealed = keys
            .seal(Purpose::SessionCookie, c.route.as_bytes(), &json)
            .expect("seal");
        assert!(SessionClaims::open(&keys, c.route, &sealed).is_err());
    }
}

#[test]
fn a_sealed_value_of_neither_form_does_not_open() {
    let keys = Keyring::new(&[vec![9; 32]]).expect("ring");
    let route = Uuid::new_v4();
    for plain in [&b""[..], b"\x00", b"\x01abc", b"[1,2]", b"{not json"] {
        let sealed = keys
            .seal(Purpose::SessionCookie, route.as_bytes(), plain)
            .expect("seal");
        assert!(
            SessionClaims::open(&keys, route, &sealed).is_err(),
            "{plain:?}"
        );
    }
}
