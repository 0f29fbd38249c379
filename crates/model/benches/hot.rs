//! Micro-benchmarks of the pure functions on every request's path: route
//! match (host and longest-prefix path, 10 vs 100,000 routes), path
//! normalization, and response header rewriting.
//!
//! `cargo bench -p pp-model`. Results are compared between runs on one
//! machine (docs/performance.md), never asserted in tests.

use pp_model::path::normalize;
use pp_model::rewrite::{rewrite_location, rewrite_set_cookie, RewriteContext};
use pp_model::{BaseUrlStrategy, NewRoute, Route, RouteTable};
use time::OffsetDateTime;

fn main() {
    divan::main();
}

fn route(i: usize, host: bool) -> Route {
    let v = if host {
        serde_json::json!({
            "owner_type": "app_instance", "owner_id": format!("app{i}"), "endpoint_name": "web",
            "route_mode": "subdomain", "route_host": format!("app{i}"),
            "upstream": {"targets": ["10.0.0.1:8888"]},
        })
    } else {
        serde_json::json!({
            "owner_type": "app_instance", "owner_id": format!("app{i}"), "endpoint_name": "web",
            "route_mode": "path_prefix", "upstream": {"targets": ["10.0.0.1:8888"]},
            "adapter": "jupyterlab",
        })
    };
    let new: NewRoute = serde_json::from_value(v).expect("route json");
    new.into_route(OffsetDateTime::UNIX_EPOCH)
        .expect("valid route")
}

fn table(n: usize) -> RouteTable {
    let routes = (0..n)
        .flat_map(|i| [route(i, true), route(i, false)])
        .collect();
    RouteTable::build("apps.example.com", routes).0
}

// Many iterations per sample: one lookup is tens of nanoseconds, close to
// the timer's precision.
#[divan::bench(args = [10, 100_000], sample_size = 2000)]
fn resolve_host_route(b: divan::Bencher<'_, '_>, n: usize) {
    let t = table(n);
    let host = format!("app{}.apps.example.com", n / 2);
    b.bench(|| {
        t.resolve(
            divan::black_box(&host),
            divan::black_box("/lab/tree/x.ipynb"),
        )
    });
}

#[divan::bench(args = [10, 100_000], sample_size = 2000)]
fn resolve_path_route(b: divan::Bencher<'_, '_>, n: usize) {
    let t = table(n);
    let path = format!("/w/app{}/web/static/lab/main.js", n / 2);
    b.bench(|| {
        t.resolve(
            divan::black_box("apps.example.com"),
            divan::black_box(&path),
        )
    });
}

#[divan::bench(args = [
    "/w/a7f9c2/web/lab/tree/notebooks/x.ipynb",
    "/w/a7f9c2/web/static/../lab/%2e%2e/tree",
    "/p/grafana//d/abc/dashboard?orgId=1",
])]
fn normalize_path(p: &str) -> Result<std::borrow::Cow<'_, str>, pp_model::path::PathError> {
    normalize(divan::black_box(p))
}

fn ctx(authorities: &[String]) -> RewriteContext<'_> {
    RewriteContext {
        public_scheme: "https",
        public_authority: "apps.example.com",
        public_prefix: "/w/a7f9c2/web",
        upstream_prefix: "",
        strategy: BaseUrlStrategy::None,
        upstream_authorities: authorities,
    }
}

#[divan::bench]
fn rewrite_location_absolute(b: divan::Bencher<'_, '_>) {
    let a = vec!["10.0.3.7:8888".to_owned()];
    let c = ctx(&a);
    b.bench(|| rewrite_location(divan::black_box("http://10.0.3.7:8888/lab?reset"), &c));
}

#[divan::bench]
fn rewrite_set_cookie_path(b: divan::Bencher<'_, '_>) {
    let a = vec!["10.0.3.7:8888".to_owned()];
    let c = ctx(&a);
    b.bench(|| {
        rewrite_set_cookie(
            divan::black_box("_xsrf=2|abc|def; Path=/; Domain=10.0.3.7; HttpOnly; SameSite=Lax"),
            &c,
        )
    });
}

#[divan::bench(args = [10, 100_000], sample_count = 3, sample_size = 1)]
fn build_table(b: divan::Bencher<'_, '_>, n: usize) {
    let routes: Vec<Route> = (0..n)
        .flat_map(|i| [route(i, true), route(i, false)])
        .collect();
    b.with_inputs(|| routes.clone())
        .bench_values(|r| RouteTable::build("apps.example.com", r));
}

#[divan::bench]
fn correlation_id() -> pp_model::CorrelationId {
    pp_model::CorrelationId::new()
}
