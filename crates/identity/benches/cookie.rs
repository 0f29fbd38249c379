//! Micro-benchmarks of the identity work on every authenticated request:
//! opening (and sealing, on renewal) a session cookie, the revocation
//! check, and a service token lookup.
//!
//! `cargo bench -p pp-identity`.

use pp_identity::session::hash_secret;
use pp_identity::{Directory, Keyring, SessionClaims};
use pp_model::{Principal, PrincipalKind, Role, Scope};
use uuid::Uuid;

fn main() {
    divan::main();
}

fn claims(route: Uuid) -> SessionClaims {
    let mut p = Principal::new(PrincipalKind::User, "alice@example.com");
    p.email = Some("alice@example.com".into());
    p.grant(Scope::project("acme", "ml-dev"), Role::Member);
    p.platform_session = Some("kc-9f8e7d6c".into());
    SessionClaims {
        sid: Uuid::new_v4(),
        route,
        iat: 1_700_000_000,
        exp: 1_700_000_900,
        hard: 1_700_043_200,
        principal: p,
    }
}

#[divan::bench]
fn open_session_cookie(b: divan::Bencher<'_, '_>) {
    let keys = Keyring::new(&[vec![7; 32], vec![8; 32]]).expect("keys");
    let route = Uuid::new_v4();
    let sealed = claims(route).seal(&keys).expect("seal");
    b.bench(|| SessionClaims::open(&keys, route, divan::black_box(&sealed)));
}

#[divan::bench]
fn seal_session_cookie(b: divan::Bencher<'_, '_>) {
    let keys = Keyring::new(&[vec![7; 32]]).expect("keys");
    let c = claims(Uuid::new_v4());
    b.bench(|| divan::black_box(&c).seal(&keys));
}

#[divan::bench]
fn revocation_check(b: divan::Bencher<'_, '_>) {
    let d = Directory::default();
    let c = claims(Uuid::new_v4());
    b.bench(|| d.revocations().check(divan::black_box(&c)));
}

#[divan::bench]
fn service_token_hash(b: divan::Bencher<'_, '_>) {
    let t = pp_identity::token::generate().expect("token");
    b.bench(|| hash_secret(divan::black_box(&t.token)));
}
