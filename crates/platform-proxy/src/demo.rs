//! `platform-proxy demo`: the embedded default with nothing to set up. It
//! starts the built-in demo app on loopback, a stand-in platform (an OIDC
//! issuer and its launch page, [`crate::dev_platform`]), the proxy with a
//! SQLite store in a data directory trusting that issuer, registers a host
//! route and a path route to the app and prints where to point a browser.
//!
//! Opening a route without a session goes the way it does in production:
//! the proxy sends the browser to the platform's launch page, which mints a
//! browser session for the demo user through the API; the browser follows
//! the one-time launch code back, gets its session cookie and lands on the
//! app.

use std::future::Future;
use std::path::PathBuf;

use anyhow::Context as _;
use pp_model::{
    AdapterOverrides, NewRoute, OwnerType, RouteLimits, RouteMode, Upstream, UpstreamScheme,
};
use pp_store::{RouteFilter, StoreError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{self, Running};
use crate::config::Config;
use crate::dev_platform::DevPlatform;

/// The demo user's org and project, and the role it holds there.
pub const DEMO_ORG: &str = "demo-org";
pub const DEMO_PROJECT: &str = "demo-project";

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Port on 127.0.0.1 for the proxy; 0 picks a free one. When the
    /// default is taken a free port is used instead.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Directory for the SQLite store. Default: a fresh temporary directory
    /// removed on exit.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// A running demo.
#[derive(Debug)]
pub struct Demo {
    pub running: Running,
    pub host_route_url: String,
    pub path_route_url: String,
    pub api_url: String,
    pub api_token: String,
    /// A platform JWT for the demo user (member of the demo project).
    pub user_token: String,
    pub platform: DevPlatform,
    pub app_addr: std::net::SocketAddr,
    app_shutdown: CancellationToken,
    temp_dir: Option<PathBuf>,
}

impl Demo {
    pub async fn stop(self) {
        self.running.stop().await;
        self.app_shutdown.cancel();
        self.platform.stop();
        if let Some(dir) = self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn free_port(wanted: u16) -> anyhow::Result<u16> {
    if wanted != 0 {
        if let Ok(l) = TcpListener::bind(("127.0.0.1", wanted)).await {
            drop(l);
            return Ok(wanted);
        }
        eprintln!("port {wanted} is taken; using a free port instead");
    }
    let l = TcpListener::bind("127.0.0.1:0").await?;
    Ok(l.local_addr()?.port())
}

/// Starts the demo app and the proxy and registers the demo routes.
///
/// # Errors
/// A port, the data directory or the store cannot be had.
pub async fn start(args: DemoArgs) -> anyhow::Result<Demo> {
    let (data_dir, temp_dir) = match args.data_dir {
        Some(d) => (d, None),
        None => {
            let d = std::env::temp_dir().join(format!(
                "platform-proxy-demo-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
            (d.clone(), Some(d))
        }
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let app_listener = TcpListener::bind("127.0.0.1:0").await?;
    let app_addr = app_listener.local_addr()?;
    let app_shutdown = CancellationToken::new();
    tokio::spawn(crate::demo_app::serve(app_listener, app_shutdown.clone()));

    let port = free_port(args.port).await?;
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let platform = DevPlatform::start().await?;
    let db = data_dir.join("platform-proxy.db");
    let toml = format!(
        "api_host = \"api.localhost\"\napps_domain = \"apps.localhost\"\n\
         [server]\nlisten = [\"127.0.0.1:{port}\"]\nshutdown_grace_secs = 2\n\
         [store]\nurl = \"sqlite://{}\"\n[api]\nbootstrap_token = \"{token}\"\n\
         [log]\nformat = \"text\"\nlevel = \"warn\"\n{}",
        db.display(),
        platform.identity_toml(),
    );
    let config = Config::from_sources(&toml, "demo", &[])?;
    let running = app::start(&config).await?;
    for mode in [RouteMode::Subdomain, RouteMode::PathPrefix] {
        register(&running, mode, &app_addr.to_string()).await?;
    }
    let user_token = platform.user_token(
        "demo-user",
        &[&format!("{DEMO_ORG}/{DEMO_PROJECT}:member")],
        std::time::Duration::from_secs(12 * 3600),
    )?;
    let api_addr = running
        .http_addrs
        .first()
        .copied()
        .context("the proxy has no listener")?;
    platform
        .launch_as(api_addr, "api.localhost", &user_token)
        .await;
    // Give the route table follower its turn; `start` served stored routes
    // already, these new ones arrive through the change feed.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    Ok(Demo {
        host_route_url: format!("http://demo.apps.localhost:{port}/"),
        path_route_url: format!("http://apps.localhost:{port}/w/demo/web/"),
        api_url: format!("http://api.localhost:{port}/api/v1/routes"),
        api_token: token,
        user_token,
        platform,
        app_addr,
        running,
        app_shutdown,
        temp_dir,
    })
}

/// Creates the demo route for `mode`, or points an existing one (a reused
/// data directory) at this run's demo app.
async fn register(running: &Running, mode: RouteMode, target: &str) -> anyhow::Result<()> {
    let new = NewRoute {
        owner_type: OwnerType::AppInstance,
        owner_id: "demo".into(),
        endpoint_name: Some("web".into()),
        org_id: Some(DEMO_ORG.into()),
        project_id: Some(DEMO_PROJECT.into()),
        proxy_pool_id: None,
        route_mode: mode,
        route_host: (mode == RouteMode::Subdomain).then(|| "demo".into()),
        upstream: Upstream {
            targets: vec![target.to_owned()],
            scheme: UpstreamScheme::Http,
        },
        adapter: Some("generic".into()),
        adapter_overrides: AdapterOverrides::default(),
        limits: RouteLimits::default(),
        policy: None,
        status: Some(pp_model::RouteStatus::Active),
        auth_bridge: None,
    };
    let route = new.into_route(time::OffsetDateTime::now_utc())?;
    match running.store.create_route(&route).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict { existing, .. }) => {
            let mut old = running
                .store
                .get_route(existing)
                .await?
                .context("conflicting demo route vanished")?;
            old.upstream = route.upstream;
            old.updated_at = time::OffsetDateTime::now_utc();
            running.store.update_route(&old).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs the demo until `stop` resolves (Ctrl-C).
///
/// # Errors
/// As [`start`].
pub async fn run(args: DemoArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let demo = start(args).await?;
    let routes = demo
        .running
        .store
        .list_routes(&RouteFilter {
            limit: 10,
            ..RouteFilter::default()
        })
        .await?;
    println!(
        "platform-proxy demo is running ({} routes).\n",
        routes.items.len()
    );
    println!("  Host route:  {}", demo.host_route_url);
    println!("  Path route:  {}", demo.path_route_url);
    if let Some(route) = routes
        .items
        .iter()
        .find(|r| r.route_mode == RouteMode::Subdomain)
    {
        match demo.platform.open_url(route.id).await {
            Ok(url) => println!("  Launch link: {url}\n               (one use, valid for a minute: the launch code a platform hands a browser)"),
            Err(e) => eprintln!("  (could not mint a launch link: {e:#})"),
        }
    }
    println!(
        "  Demo app:    http://{} (direct, for comparison)",
        demo.app_addr
    );
    println!("\n  User token:  {}", demo.user_token);
    println!(
        "  (demo-user, member of {DEMO_ORG}/{DEMO_PROJECT}; a platform JWT from the dev issuer)"
    );
    println!(
        "  List routes: curl -H 'Authorization: Bearer {}' {}",
        demo.user_token, demo.api_url
    );
    println!(
        "  Admin token: {} (bootstrap; first-run only)",
        demo.api_token
    );
    println!("\nOpen a route in a browser: without a session the proxy sends you to the dev");
    println!(
        "platform's launch page ({}/launch), which mints a browser session for",
        demo.platform.issuer()
    );
    println!("demo-user; the one-time launch code brings you back signed in. The page shows a");
    println!("WebSocket echo and an SSE clock arriving live through the proxy. Ctrl-C stops.");
    stop.await;
    println!("stopping…");
    demo.stop().await;
    Ok(())
}
