//! Forward-auth (seed 004): `GET /api/v1/forward-auth` on the API host as
//! the auth endpoint of a gateway the platform already runs. Real requests
//! to the proxy with the facts a gateway forwards; then the nginx
//! `auth_request` example of docs/examples, run for real with Debian's
//! nginx in front of an upstream, and the Traefik example checked against
//! the headers the endpoint answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use platform_proxy::dev_platform::DevPlatform;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::identity::{id, Secured};
use crate::support::process::free_port;
use crate::support::upstream::{echo, full, serve, Upstream};
use crate::support::*;

const PATH: &str = "/api/v1/forward-auth";
/// The identity headers a 200 may carry.
const IDENTITY: [&str; 5] = [
    "x-user-id",
    "x-user-email",
    "x-user-role",
    "x-user-org",
    "x-user-project",
];
const ALICE: &[&str] = &["acme/ml-dev:member", "globex:viewer"];

/// A check as a gateway sends it: `query` after the path (may be empty),
/// the original request's facts in `X-Forwarded-*`.
fn check(s: &Secured, query: &str, host: &str, uri: &str) -> reqwest::RequestBuilder {
    s.proxy
        .req(Method::GET, API_HOST, &format!("{PATH}{query}"))
        .header("x-forwarded-host", host)
        .header("x-forwarded-uri", uri)
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
}

/// Sends and returns (status, identity headers present, body).
async fn send(rb: reqwest::RequestBuilder) -> (u16, BTreeMap<String, String>, String) {
    let r = rb.send().await.expect("forward-auth");
    let status = r.status().as_u16();
    let ids = IDENTITY
        .iter()
        .filter_map(|n| {
            r.headers()
                .get(*n)
                .map(|v| ((*n).to_owned(), v.to_str().expect("ascii").to_owned()))
        })
        .collect();
    (status, ids, r.text().await.expect("body"))
}

fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit")
}

fn ids(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn forward_auth_answers_401_without_a_valid_credential() {
    let s = Secured::start().await;
    let other = DevPlatform::start().await.expect("second issuer");
    let now = unix_now();
    let expired = s
        .idp
        .mint(
            json!({"sub": "alice", "email": "alice@example.com", "memberships": ALICE,
                   "iat": now - 1200, "exp": now - 600}),
            Duration::from_secs(60),
        )
        .expect("expired token");
    let foreign = other
        .user_token("alice", ALICE, Duration::from_secs(600))
        .expect("foreign token");
    // Our issuer's name, signed with another key.
    let forged = other
        .mint(
            json!({"iss": s.idp.issuer(), "sub": "alice", "memberships": ALICE}),
            Duration::from_secs(600),
        )
        .expect("forged token");
    let wrong_audience = s
        .idp
        .mint(
            json!({"sub": "alice", "aud": "another-client", "memberships": ALICE}),
            Duration::from_secs(600),
        )
        .expect("token");
    let cases: [(&str, Option<String>); 6] = [
        ("no credentials", None),
        ("malformed bearer", Some("Bearer not-a-jwt".into())),
        ("another issuer's token", Some(format!("Bearer {foreign}"))),
        ("forged signature", Some(format!("Bearer {forged}"))),
        ("expired token", Some(format!("Bearer {expired}"))),
        ("another audience", Some(format!("Bearer {wrong_audience}"))),
    ];
    for (name, authorization) in cases {
        let mut rb = check(&s, "", "app.example.com", "/notebooks/1");
        if let Some(a) = &authorization {
            rb = rb.header("authorization", a);
        }
        let r = rb.send().await.expect("send");
        assert_eq!(r.status(), 401, "{name}");
        assert!(
            r.headers()
                .get("www-authenticate")
                .is_some_and(|v| v.as_bytes().starts_with(b"Bearer")),
            "{name}: WWW-Authenticate"
        );
        for n in IDENTITY {
            assert!(r.headers().get(n).is_none(), "{name}: {n} on a refusal");
        }
        let cid = r
            .headers()
            .get("x-correlation-id")
            .expect("correlation id")
            .to_str()
            .expect("ascii")
            .to_owned();
        let v: Value = r.json().await.expect("envelope");
        assert_eq!(v["error"]["code"], "unauthenticated", "{name}: {v}");
        assert_eq!(v["error"]["correlation_id"], cid.as_str(), "{name}");
    }
    // A valid token of our issuer passes: the refusals were the tokens' fault.
    let (status, _, _) =
        send(check(&s, "", "app.example.com", "/").bearer_auth(s.token("alice", ALICE))).await;
    assert_eq!(status, 200);
    other.stop();
    s.stop().await;
}

#[tokio::test]
async fn forward_auth_passes_a_valid_token_with_its_identity() {
    let s = Secured::start().await;
    let alice = s.token("alice", ALICE);
    let r = check(&s, "", "app.example.com", "/notebooks/1?x=1")
        .bearer_auth(&alice)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let (status, got, body) = send(check(&s, "", "app.example.com", "/").bearer_auth(&alice)).await;
    assert_eq!(status, 200);
    assert!(body.is_empty(), "{body}");
    // No requirement names an org: every role is listed, and no org or
    // project header is claimed.
    assert_eq!(
        got,
        ids(&[
            ("x-user-id", "alice"),
            ("x-user-email", "alice@example.com"),
            ("x-user-role", "acme/ml-dev:member,globex:viewer"),
        ])
    );
    s.stop().await;
}

#[tokio::test]
async fn forward_auth_checks_the_org_project_and_role_the_query_requires() {
    let s = Secured::start().await;
    let alice = s.token("alice", ALICE);
    let bob = s.token("bob", &["acme:admin"]);
    let ml_dev = "?org_id=acme&project_id=ml-dev";
    let cases: [(&str, &str, &str, u16); 10] = [
        ("project member", &alice, ml_dev, 200),
        (
            "member role met",
            &alice,
            "?org_id=acme&project_id=ml-dev&role=member",
            200,
        ),
        (
            "viewer role met by a member",
            &alice,
            "?org_id=acme&project_id=ml-dev&role=viewer",
            200,
        ),
        (
            "admin role not met",
            &alice,
            "?org_id=acme&project_id=ml-dev&role=admin",
            403,
        ),
        (
            "another project",
            &alice,
            "?org_id=acme&project_id=prod",
            403,
        ),
        ("org role needs an org grant", &alice, "?org_id=acme", 403),
        ("org viewer", &alice, "?org_id=globex", 200),
        ("another org", &alice, "?org_id=initech", 403),
        (
            "org admins are members of every project",
            &bob,
            "?org_id=acme&project_id=prod&role=admin",
            200,
        ),
        ("org admin in another org", &bob, "?org_id=globex", 403),
    ];
    for (name, token, query, want) in cases {
        let (status, got, body) =
            send(check(&s, query, "app.example.com", "/").bearer_auth(token)).await;
        assert_eq!(status, want, "{name}: {body}");
        if want == 403 {
            let v: Value = serde_json::from_str(&body).expect("envelope");
            assert_eq!(v["error"]["code"], "forbidden", "{name}");
            assert!(got.is_empty(), "{name}: identity on a refusal: {got:?}");
        }
    }
    // A met requirement names its org and project, and the roles shown are
    // that org's only: the app of one tenant learns nothing of another.
    let (_, got, _) = send(check(&s, ml_dev, "app.example.com", "/").bearer_auth(&alice)).await;
    assert_eq!(
        got,
        ids(&[
            ("x-user-id", "alice"),
            ("x-user-email", "alice@example.com"),
            ("x-user-role", "acme/ml-dev:member"),
            ("x-user-org", "acme"),
            ("x-user-project", "ml-dev"),
        ])
    );
    // A requirement that cannot be understood is the caller's mistake.
    for bad in ["?role=owner", "?project_id=ml-dev", "?org=acme"] {
        let (status, _, body) =
            send(check(&s, bad, "app.example.com", "/").bearer_auth(&alice)).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    s.stop().await;
}

#[tokio::test]
async fn forward_auth_for_a_route_target_decides_as_the_route_does() {
    let s = Secured::start().await;
    let up = echo().await;
    let route = s.route("fa", up.addr, "acme", "ml-dev", json!({})).await;
    let other_route = s.route("fb", up.addr, "acme", "ml-dev", json!({})).await;
    let alice = s.token("alice", ALICE);
    let cookie = s.cookie(&route, &alice).await;
    let other_cookie = s.cookie(&other_route, &alice).await;
    let host = "fa.apps.test";

    let (status, got, _) =
        send(check(&s, "", host, "/lab/tree?x=1").header("cookie", &cookie)).await;
    assert_eq!(status, 200);
    assert_eq!(
        got,
        ids(&[
            ("x-user-id", "alice"),
            ("x-user-email", "alice@example.com"),
            ("x-user-role", "acme/ml-dev:member"),
            ("x-user-org", "acme"),
            ("x-user-project", "ml-dev"),
        ])
    );
    // The port of the forwarded host does not matter, as on the data plane.
    let (status, _, _) =
        send(check(&s, "", "fa.apps.test:8443", "/").header("cookie", &cookie)).await;
    assert_eq!(status, 200, "host with port");
    // A cookie is good for its own route only.
    let (status, _, _) = send(check(&s, "", host, "/").header("cookie", &other_cookie)).await;
    assert_eq!(status, 401, "another route's cookie");
    let (status, _, _) = send(check(&s, "", host, "/")).await;
    assert_eq!(status, 401, "no credentials");
    // API clients of the route: a bearer token, authorized like a session.
    let (status, got, _) = send(check(&s, "", host, "/api/contents").bearer_auth(&alice)).await;
    assert_eq!(status, 200, "bearer on the route");
    assert_eq!(got.get("x-user-org").map(String::as_str), Some("acme"));
    // A user of another org is refused, with 403 rather than the data
    // plane's 404 (gateways treat a 404 as their own error), and the
    // denial is audited with its real reason.
    let carol = s.token("carol", &["globex/ml:member"]);
    let (status, got, _) = send(check(&s, "", host, "/").bearer_auth(&carol)).await;
    assert_eq!(status, 403, "another org's user");
    assert!(got.is_empty());
    let dave = s.token("dave", &["acme/prod:member"]);
    let (status, _, _) = send(check(&s, "", host, "/").bearer_auth(&dave)).await;
    assert_eq!(status, 403, "another project's user");
    let audit = format!("/api/v1/audit?action=access.denied&route_id={}", id(&route));
    eventually(Duration::from_secs(5), || async {
        let v: Value = s
            .proxy
            .api(Method::GET, &audit)
            .send()
            .await
            .expect("audit")
            .json()
            .await
            .expect("json");
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let reason = |user: &str| {
            items
                .iter()
                .find(|e| e["user_id"] == user)
                .map(|e| e["reason"].clone())
        };
        reason("carol") == Some(json!("cross_tenant"))
            && reason("dave") == Some(json!("not_project_member"))
    })
    .await;
    s.stop().await;
}

#[tokio::test]
async fn forward_auth_never_outlives_a_revocation_or_a_removed_grant() {
    let s = Secured::start().await;
    let up = echo().await;
    let route = s.route("fr", up.addr, "acme", "ml-dev", json!({})).await;
    let alice = s.token("alice", ALICE);
    let cookie = s.cookie(&route, &alice).await;
    let on_route = || check(&s, "", "fr.apps.test", "/").header("cookie", &cookie);
    let elsewhere = || check(&s, "", "app.example.com", "/").bearer_auth(&alice);
    // Asked twice: the second answer may come from the decision cache.
    for _ in 0..2 {
        assert_eq!(send(on_route()).await.0, 200, "cookie before revocation");
        assert_eq!(send(elsewhere()).await.0, 200, "bearer before revocation");
    }
    let r = s
        .proxy
        .api(Method::POST, "/api/v1/sessions/revoke")
        .json(&json!({"user_id": "alice"}))
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert!(v["sessions_revoked"].as_u64() >= Some(1), "{v}");
    s.proxy.running().routes_applied().await;
    // At once, not after the cache's few seconds.
    assert_eq!(send(on_route()).await.0, 401, "cookie after revocation");
    assert_eq!(
        send(elsewhere()).await.0,
        401,
        "bearer issued before the revocation"
    );

    // A pushed grant counts while it exists, and not a request longer.
    let dave = s.token("dave", &[]);
    let needs = "?org_id=acme&project_id=ml-dev&role=member";
    let ask = || check(&s, needs, "app.example.com", "/").bearer_auth(&dave);
    assert_eq!(send(ask()).await.0, 403, "before the grant");
    let r = s
        .proxy
        .api(Method::POST, "/api/v1/grants")
        .json(
            &json!({"subject": "dave", "org_id": "acme", "project_id": "ml-dev", "role": "member"}),
        )
        .send()
        .await
        .expect("grant");
    assert_eq!(r.status(), 201);
    let grant: Value = r.json().await.expect("json");
    s.proxy.running().routes_applied().await;
    for _ in 0..2 {
        let (status, got, _) = send(ask()).await;
        assert_eq!(status, 200, "with the grant");
        assert_eq!(
            got.get("x-user-role").map(String::as_str),
            Some("acme/ml-dev:member")
        );
    }
    let r = s
        .proxy
        .api(Method::DELETE, &format!("/api/v1/grants/{}", id(&grant)))
        .send()
        .await
        .expect("delete grant");
    assert_eq!(r.status(), 204);
    s.proxy.running().routes_applied().await;
    assert_eq!(send(ask()).await.0, 403, "after the grant is gone");
    s.stop().await;
}

#[tokio::test]
async fn forward_auth_accepts_a_service_token_within_its_scope() {
    let s = Secured::start().await;
    let up = echo().await;
    s.route("fs", up.addr, "acme", "ml-dev", json!({})).await;
    let r = s
        .proxy
        .api(Method::POST, "/api/v1/service-tokens")
        .json(&json!({"name": "ci", "org_id": "acme", "project_id": "ml-dev", "role": "member"}))
        .send()
        .await
        .expect("create token");
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("json");
    let token = created["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("ppst_"), "{token}");
    let token_id = id(&created);
    s.proxy.running().routes_applied().await;

    let ml_dev = "?org_id=acme&project_id=ml-dev&role=member";
    let (status, got, _) = send(check(&s, ml_dev, "ci.example.com", "/").bearer_auth(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        got,
        ids(&[
            ("x-user-id", token_id.as_str()),
            ("x-user-role", "acme/ml-dev:member"),
            ("x-user-org", "acme"),
            ("x-user-project", "ml-dev"),
        ])
    );
    for (name, query) in [
        ("stronger role", "?org_id=acme&project_id=ml-dev&role=admin"),
        ("another project", "?org_id=acme&project_id=prod"),
        ("another org", "?org_id=globex"),
    ] {
        let (status, _, _) =
            send(check(&s, query, "ci.example.com", "/").bearer_auth(&token)).await;
        assert_eq!(status, 403, "{name}");
    }
    // The route of its project takes it too.
    let (status, _, _) = send(check(&s, "", "fs.apps.test", "/").bearer_auth(&token)).await;
    assert_eq!(status, 200, "on the route");
    // Revoked: refused at once.
    let r = s
        .proxy
        .api(
            Method::DELETE,
            &format!("/api/v1/service-tokens/{token_id}"),
        )
        .send()
        .await
        .expect("revoke token");
    assert_eq!(r.status(), 204);
    s.proxy.running().routes_applied().await;
    let (status, _, _) = send(check(&s, ml_dev, "ci.example.com", "/").bearer_auth(&token)).await;
    assert_eq!(status, 401, "revoked token");
    s.stop().await;
}

// ---------------------------------------------------------------------------
// The gateway examples of docs/examples.

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// An upstream that answers JSON with every value of every header it got
/// (a repeated header shows as several values), the method and the body
/// length.
async fn header_echo() -> Upstream {
    serve(|req: Request<Incoming>| async move {
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in req.headers() {
            headers
                .entry(k.as_str().to_owned())
                .or_default()
                .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
        }
        let method = req.method().to_string();
        let body_len = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .unwrap_or(0);
        let v = json!({"method": method, "headers": headers, "body_len": body_len});
        Response::builder()
            .header("content-type", "application/json")
            .body(full(v.to_string()))
            .expect("response")
    })
    .await
}

/// Debian's nginx (scripts/install-test-deps.sh installs it).
fn nginx_binary() -> PathBuf {
    let candidates = std::iter::once(PathBuf::from("/usr/sbin/nginx")).chain(
        std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("nginx"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    for c in candidates {
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "nginx is not installed (looked in /usr/sbin and PATH); \
         run scripts/install-test-deps.sh to install the test dependencies"
    );
}

/// nginx running the example config from a temp dir as its prefix; killed
/// when dropped. It runs as one process (`master_process off`), so the kill
/// leaves no orphaned worker behind.
struct Nginx {
    child: tokio::process::Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Nginx {
    async fn start(proxy: SocketAddr, upstream: SocketAddr) -> Self {
        let template = std::fs::read_to_string(repo_file("docs/examples/nginx-auth-request.conf"))
            .expect("docs/examples/nginx-auth-request.conf");
        for placeholder in ["@LISTEN@", "@PROXY@", "@UPSTREAM@", "@API_HOST@"] {
            assert!(
                template.contains(placeholder),
                "the template lacks {placeholder}"
            );
        }
        let bin = nginx_binary();
        for attempt in 1..=3 {
            let dir = TempDir::new();
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let conf = template
                .replace("@LISTEN@", &addr.to_string())
                .replace("@PROXY@", &proxy.to_string())
                .replace("@UPSTREAM@", &upstream.to_string())
                .replace("@API_HOST@", API_HOST);
            assert!(
                !conf
                    .lines()
                    .any(|l| !l.trim_start().starts_with('#') && l.contains('@')),
                "a placeholder is left:\n{conf}"
            );
            let conf_path = dir.0.join("nginx.conf");
            std::fs::write(&conf_path, conf).expect("write nginx.conf");
            let globals = format!(
                "daemon off; master_process off; pid {}; error_log {} info;",
                dir.0.join("nginx.pid").display(),
                dir.0.join("error.log").display()
            );
            let mut child = tokio::process::Command::new(&bin)
                .arg("-p")
                .arg(&dir.0)
                .arg("-c")
                .arg(&conf_path)
                .arg("-g")
                .arg(&globals)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                // Errors before the config is read go to stderr.
                .stderr(std::fs::File::create(dir.0.join("stderr.log")).expect("stderr file"))
                .kill_on_drop(true)
                .spawn()
                .expect("spawn nginx");
            let end = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = read_logs(&dir);
                    // Someone took the port between our probe and the bind.
                    if attempt < 3 && log.contains("Address already in use") {
                        break;
                    }
                    panic!("nginx exited with {status}:\n{log}");
                }
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    return Self { child, addr, dir };
                }
                assert!(
                    tokio::time::Instant::now() < end,
                    "nginx did not listen on {addr} within 10 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn log(&self) -> String {
        read_logs(&self.dir)
    }
}

/// nginx's stderr and error log in `dir`.
fn read_logs(dir: &TempDir) -> String {
    ["stderr.log", "error.log"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.0.join(f)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("")
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!("--- nginx log ---\n{}--- end ---", self.log());
        }
    }
}

#[tokio::test]
async fn nginx_auth_request_example_covers_the_gateway_test_list() {
    let s = Secured::start().await;
    let up = header_echo().await;
    let nginx = Nginx::start(s.proxy.addr, up.addr).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let url = |path: &str| format!("http://{}{path}", nginx.addr);
    let get = |path: &str| {
        client
            .get(url(path))
            .header("host", "notebooks.example.com")
            .header("x-user-id", "evil")
            .header("x-user-role", "platform:admin")
            .header("x-user-org", "evil-org")
    };
    let seen = |v: &Value, name: &str| -> Vec<String> {
        v["headers"][name]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };

    // Public: no check, and the client's identity headers are dropped.
    let r = get("/public/readme").send().await.expect("public");
    assert_eq!(r.status(), 200, "public location");
    let v: Value = r.json().await.expect("json");
    for n in IDENTITY {
        assert!(seen(&v, n).is_empty(), "public: {n} reached the app: {v}");
    }

    // Refusals never reach the upstream.
    let reached = up.connections();
    let other = DevPlatform::start().await.expect("second issuer");
    let foreign = other
        .user_token("alice", ALICE, Duration::from_secs(600))
        .expect("token");
    let refusals: [(&str, Option<String>); 3] = [
        ("no token", None),
        ("malformed token", Some("Bearer not-a-jwt".into())),
        ("invalid token", Some(format!("Bearer {foreign}"))),
    ];
    for (name, authorization) in refusals {
        let mut rb = get("/lab");
        if let Some(a) = &authorization {
            rb = rb.header("authorization", a);
        }
        let r = rb.send().await.expect("send");
        assert_eq!(r.status(), 401, "{name}");
    }
    assert_eq!(
        up.connections(),
        reached,
        "a refused request reached the upstream"
    );

    // Valid: the user context is forwarded, set by nginx from the answer,
    // and the client's X-User-Id cannot survive.
    let alice = s.token("alice", ALICE);
    let r = get("/lab/tree?x=1")
        .bearer_auth(&alice)
        .send()
        .await
        .expect("valid");
    assert_eq!(r.status(), 200, "valid token");
    let v: Value = r.json().await.expect("json");
    assert_eq!(seen(&v, "x-user-id"), ["alice"], "{v}");
    assert_eq!(seen(&v, "x-user-email"), ["alice@example.com"], "{v}");
    assert_eq!(
        seen(&v, "x-user-role"),
        ["acme/ml-dev:member,globex:viewer"],
        "{v}"
    );
    // No requirement names an org: nginx sends no X-User-Org, and the
    // client's is gone too.
    assert!(seen(&v, "x-user-org").is_empty(), "{v}");

    // nginx sends the subrequest with the client's method: a POST passes
    // the check too, and its body still reaches the app whole.
    let r = client
        .post(url("/api/upload"))
        .header("host", "notebooks.example.com")
        .bearer_auth(&alice)
        .body("hello")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200, "POST with a valid token");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["body_len"], 5);

    // The location with a requirement: members of acme/ml-dev only.
    let r = get("/ml-dev/board")
        .bearer_auth(&alice)
        .send()
        .await
        .expect("ml-dev");
    assert_eq!(r.status(), 200, "project member");
    let v: Value = r.json().await.expect("json");
    assert_eq!(seen(&v, "x-user-org"), ["acme"], "{v}");
    assert_eq!(seen(&v, "x-user-project"), ["ml-dev"], "{v}");
    assert_eq!(seen(&v, "x-user-role"), ["acme/ml-dev:member"], "{v}");
    let carol = s.token("carol", &["globex/ml:member"]);
    let r = get("/ml-dev/board")
        .bearer_auth(&carol)
        .send()
        .await
        .expect("ml-dev");
    assert_eq!(r.status(), 403, "another org's user");
    drop(nginx);
    other.stop();
    s.stop().await;
}

#[test]
fn traefik_example_names_the_endpoint_and_every_identity_header() {
    let text = std::fs::read_to_string(repo_file("docs/examples/traefik-forward-auth.yml"))
        .expect("docs/examples/traefik-forward-auth.yml");
    assert!(text.contains("forwardAuth:"), "no forwardAuth middleware");
    assert!(
        text.contains(&format!("address: \"http://platform-proxy:8080{PATH}\"")),
        "the address is not the forward-auth endpoint"
    );
    // Each identity header the endpoint answers is copied upstream, in
    // every middleware of the file.
    let middlewares = text.matches("forwardAuth:").count();
    for h in [
        "X-User-Id",
        "X-User-Email",
        "X-User-Role",
        "X-User-Org",
        "X-User-Project",
    ] {
        assert_eq!(
            text.matches(&format!("- \"{h}\"")).count(),
            middlewares,
            "{h} is not in every authResponseHeaders"
        );
    }
    for h in ["Cookie", "Authorization"] {
        assert_eq!(
            text.matches(&format!("- \"{h}\"")).count(),
            middlewares,
            "{h} is not in every authRequestHeaders"
        );
    }
    assert!(
        text.contains("middlewares: [\"platform-proxy-auth\"]"),
        "no router uses it"
    );
}

#[tokio::test]
async fn a_cached_decision_answers_only_for_the_credential_that_earned_it() {
    let s = Secured::start().await;
    let up = echo().await;
    let route = s.route("fc", up.addr, "acme", "ml-dev", json!({})).await;
    let cookie = s.cookie(&route, &s.token("alice", ALICE)).await;
    // Alice's cookie decides; a bogus bearer beside it must not inherit
    // her identity in the cache.
    let (status, got, _) = send(
        check(&s, "", "fc.apps.test", "/")
            .header("cookie", &cookie)
            .bearer_auth("shared-app-api-key"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got.get("x-user-id").map(String::as_str), Some("alice"));
    let (status, got, _) =
        send(check(&s, "", "fc.apps.test", "/").bearer_auth("shared-app-api-key")).await;
    assert_eq!(status, 401, "the bearer alone is nobody: {got:?}");
    s.stop().await;
}

#[tokio::test]
async fn public_routes_and_unnormalizable_uris_get_gateway_friendly_answers() {
    let s = Secured::start().await;
    let up = echo().await;
    s.proxy.host_route("pub", up.addr, json!({})).await;
    let (status, got, _) = send(check(&s, "", "pub.apps.test", "/docs")).await;
    assert_eq!(status, 200, "a public route needs no credential");
    assert!(got.is_empty(), "and names nobody: {got:?}");
    let (status, _, _) = send(check(&s, "", "pub.apps.test", "/a/../../etc/passwd")).await;
    assert_eq!(
        status, 403,
        "a climb above the root is refused, never a 4xx nginx turns into 500"
    );
    s.stop().await;
}
