//! Wiring: opens the store, follows its change feed into the data plane's
//! route table and identity directory, builds the identity parts (key ring,
//! authenticator, session backend, audit writer), mounts the control-plane
//! API on the API host, binds the listeners and runs until shutdown. No
//! logic lives here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http::{Request, Response};
use hyper::body::Incoming;
use pp_controlplane::{ApiConfig, ApiDeps};
use pp_dataplane::body::boxed;
use pp_dataplane::{Access, ApiHandler, Listener, Proxy, ProxyBody, RouteTableHandle};
use pp_identity::assertion::AssertionSigner;
use pp_identity::jwt::JwtVerifier;
use pp_identity::seal::Purpose;
use pp_identity::{Authenticator, Directory, DirectoryHandle, Keyring};
use pp_model::{Route, RouteTable, TableBuilder};
use pp_store::Store;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::backends::{StoreAudit, StoreSessions};
use crate::config::Config;

/// A running proxy.
pub struct Running {
    pub http_addrs: Vec<SocketAddr>,
    pub https_addrs: Vec<SocketAddr>,
    pub store: Arc<dyn Store>,
    pub proxy: Arc<Proxy>,
    pub directory: Arc<DirectoryHandle>,
    pub shutdown: CancellationToken,
    /// Store revision the served route table reflects.
    applied: tokio::sync::watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
    audit_stop: CancellationToken,
    audit_task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("http_addrs", &self.http_addrs)
            .field("https_addrs", &self.https_addrs)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Waits until every write the store has committed so far is reflected
    /// in the route table the data plane serves (read-your-writes for the
    /// API caller in one process; bounded by the change feed's latency).
    pub async fn routes_applied(&self) {
        let wanted = *self.store.subscribe().borrow();
        let mut applied = self.applied.clone();
        let _ = applied.wait_for(|rev| *rev >= wanted).await;
    }

    /// Waits until the proxy has shut down and drained, then stores the
    /// audit records still queued (tunnels closed by the drain included).
    pub async fn wait(self) {
        let _ = self.task.await;
        self.audit_stop.cancel();
        let _ = self.audit_task.await;
    }

    /// Triggers shutdown and waits for the drain to finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }
}

/// The control-plane router behind the data plane's host dispatch.
struct AxumApi(axum::Router);

impl ApiHandler for AxumApi {
    fn call(
        &self,
        req: Request<Incoming>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<ProxyBody>> + Send>> {
        let router = self.0.clone();
        Box::pin(async move {
            let req = req.map(axum::body::Body::new);
            match router.oneshot(req).await {
                Ok(resp) => resp.map(boxed),
                Err(never) => match never {},
            }
        })
    }
}

/// Starts the proxy described by `config`. Routes already stored are served
/// by the time this returns.
///
/// # Errors
/// The store cannot be opened, a certificate cannot be loaded, or a
/// listener cannot bind.
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    let store = pp_store::open(&config.store_url)
        .await
        .with_context(|| format!("opening store {}", config.store_url))?;
    let mut listeners = Vec::new();
    let mut http_addrs = Vec::new();
    let mut https_addrs = Vec::new();
    for addr in &config.listen {
        let tcp = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        http_addrs.push(tcp.local_addr()?);
        listeners.push(Listener { tcp, tls: None });
    }
    if !config.tls_listen.is_empty() {
        let tls = pp_dataplane::tls::server_config(&config.certificates)
            .context("loading TLS certificates")?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        for addr in &config.tls_listen {
            let tcp = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            https_addrs.push(tcp.local_addr()?);
            listeners.push(Listener {
                tcp,
                tls: Some(acceptor.clone()),
            });
        }
    }
    let keys = Arc::new(keyring(&*store, &config.identity.session_keys).await?);
    let apps_domain = config.dataplane.apps_domain.clone();
    // The revision is read before the data, as in `follow`: the first
    // snapshots are at least as new as it, and the follower rebuilds only
    // when the store moves past it (a second full build at start would
    // double the start-up time of a large table).
    let initial = *store.subscribe().borrow();
    let ((table, table_change), directory) = tokio::try_join!(
        build_table(&*store, &apps_domain, &keys),
        build_directory(&*store)
    )?;
    let table = Arc::new(RouteTableHandle::new(table));
    let directory = Arc::new(DirectoryHandle::new(directory));
    let shutdown = CancellationToken::new();
    let (applied_tx, applied) = tokio::sync::watch::channel(initial);
    tokio::spawn(follow(
        Follower {
            store: Arc::clone(&store),
            table: Arc::clone(&table),
            directory: Arc::clone(&directory),
            keys: Arc::clone(&keys),
            applied: applied_tx,
            apps_domain,
            resync: config.route_resync,
            table_change,
        },
        shutdown.clone(),
    ));
    let jwt = match &config.identity.oidc {
        Some(c) => {
            let v = Arc::new(JwtVerifier::new(c.clone()).context("identity.oidc")?);
            // Fetch the keys now so the first user does not wait; a provider
            // that is down is retried on the first token instead.
            if let Err(e) = v.warm_up().await {
                tracing::warn!(error = %e, issuer = %c.issuer, "identity provider keys not fetched yet");
            }
            Some(v)
        }
        None => None,
    };
    let authn = Arc::new(Authenticator::new(
        config.bootstrap_token.clone(),
        jwt,
        Arc::clone(&directory),
    ));
    let assertion = if config.identity.assertion {
        Some(Arc::new(assertion_signer(&*store, config).await?))
    } else {
        None
    };
    let audit_stop = CancellationToken::new();
    let (audit, audit_task) = StoreAudit::spawn(Arc::clone(&store), audit_stop.clone());
    let access = Access {
        settings: config.identity.access.clone(),
        keys: Arc::clone(&keys),
        authn: Arc::clone(&authn),
        sessions: Arc::new(StoreSessions {
            store: Arc::clone(&store),
            session_max: config.identity.session_max,
        }),
        audit,
        assertion: assertion.clone(),
        opened: Arc::default(),
    };
    // `listen = ["…:0"]` binds a free port: public URLs name the bound one.
    let mut public = config.public.clone();
    if public.port == Some(0) {
        let bound = if public.scheme == "https" {
            https_addrs.first()
        } else {
            http_addrs.first()
        };
        public.port = bound.map(SocketAddr::port);
    }
    let mut api_config = ApiConfig::new(public);
    api_config.session_max = config.identity.session_max;
    api_config.launch_ttl = config.identity.launch_ttl;
    api_config.service_token_max = config.identity.service_token_max;
    let api = pp_controlplane::router(
        ApiDeps {
            store: Arc::clone(&store),
            authn,
            keys,
            assertion,
        },
        api_config,
    );
    let proxy = Arc::new(Proxy::new(
        config.dataplane.clone(),
        table,
        Arc::new(AxumApi(api)),
        access,
    ));

    for a in &http_addrs {
        tracing::info!(addr = %a, "listening (HTTP/1.1, h2c)");
    }
    for a in &https_addrs {
        tracing::info!(addr = %a, "listening (TLS: h2, HTTP/1.1)");
    }
    let task = tokio::spawn(pp_dataplane::serve(
        Arc::clone(&proxy),
        listeners,
        shutdown.clone(),
    ));
    Ok(Running {
        http_addrs,
        https_addrs,
        store,
        proxy,
        directory,
        shutdown,
        applied,
        task,
        audit_stop,
        audit_task,
    })
}

/// The session key ring: the configured keys, or on the embedded default
/// one generated on first start and kept in the store, so sessions survive
/// restarts and every replica on the store shares it.
async fn keyring(store: &dyn Store, configured: &[String]) -> anyhow::Result<Keyring> {
    if !configured.is_empty() {
        return Keyring::from_base64(configured).context("identity.session_keys");
    }
    let fresh = Keyring::generate_key().context("generating a session key")?;
    let key = store
        .get_or_create_secret("session_key", &fresh)
        .await
        .context("reading the stored session key")?;
    tracing::info!("no identity.session_keys configured: using the key kept in the store");
    Keyring::from_base64(&[key]).context("the stored session key")
}

/// The identity-assertion signer: the configured PKCS#8 key, else one kept
/// in the store (generated on first start), so every replica signs with
/// the key the published JWKS names.
async fn assertion_signer(store: &dyn Store, config: &Config) -> anyhow::Result<AssertionSigner> {
    let issuer = format!("{}://{}", config.public.scheme, config.dataplane.api_host);
    if let Some(path) = &config.identity.assertion_key_file {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("identity.assertion_key_file {}", path.display()))?;
        return AssertionSigner::from_pkcs8_pem(issuer, &pem)
            .with_context(|| format!("identity.assertion_key_file {}", path.display()));
    }
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let rng = ring::rand::SystemRandom::new();
    let fresh = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .map_err(|_| anyhow::anyhow!("generating an assertion key failed"))?;
    let stored = store
        .get_or_create_secret("assertion_key", &b64.encode(fresh.as_ref()))
        .await
        .context("reading the stored assertion key")?;
    let der = b64
        .decode(stored)
        .context("the stored assertion key is not base64")?;
    AssertionSigner::from_pkcs8_der(issuer, &der).context("the stored assertion key")
}

/// Unseals a route's auth-bridge secret for the route table.
fn unseal_bridge(keys: &Keyring, route: &Route) -> Option<String> {
    let bridge = route.auth_bridge.as_ref()?;
    match keys.open(
        Purpose::StoredSecret,
        route.id.as_bytes(),
        &bridge.sealed_secret,
    ) {
        Ok(plain) => String::from_utf8(plain).ok(),
        Err(_) => {
            tracing::error!(route_id = %route.id, "auth-bridge secret does not open with the configured keys; the route is served without it");
            None
        }
    }
}

/// A full build of the route table, and the store's change number it is
/// current to.
async fn build_table(
    store: &dyn Store,
    apps_domain: &str,
    keys: &Keyring,
) -> anyhow::Result<(RouteTable, u64)> {
    let unseal = |r: &Route| unseal_bridge(keys, r);
    let mut builder = TableBuilder::new(apps_domain, &unseal);
    let change = store
        .each_live_route(&mut |r| builder.push(r))
        .await
        .context("reading routes")?;
    let (table, conflicts) = builder.finish();
    log_conflicts(conflicts);
    Ok((table, change))
}

/// Most changed routes applied to the current table; past this a full
/// build reads less than the changes would cost one by one.
const MAX_INCREMENTAL: usize = 1000;

/// The current table with the routes written since change number `since`
/// applied (`None` inside when no route changed: the table stands), and
/// the change number it is then current to; `None` when so many changed
/// that a full build is due.
///
/// The update copies the table's maps (some milliseconds at 100,000
/// routes), so it runs on a blocking thread, off the runtime threads that
/// serve requests.
async fn update_table(
    store: &dyn Store,
    current: Arc<RouteTable>,
    since: u64,
    keys: &Arc<Keyring>,
) -> anyhow::Result<Option<(Option<RouteTable>, u64)>> {
    let Some((changes, change)) = store
        .routes_changed_since(since, MAX_INCREMENTAL)
        .await
        .context("reading changed routes")?
    else {
        return Ok(None);
    };
    if changes.is_empty() {
        return Ok(Some((None, change)));
    }
    let keys = Arc::clone(keys);
    let (table, conflicts) = tokio::task::spawn_blocking(move || {
        current.with_changes(changes, &|r| unseal_bridge(&keys, r))
    })
    .await
    .context("applying changed routes")?;
    log_conflicts(conflicts);
    Ok(Some((Some(table), change)))
}

/// Lets go of a replaced table: a large one on a blocking thread (freeing
/// it is 200,000 reference counts and 100,000 strings at 100,000 routes),
/// a small one here. Requests still running on it keep it alive; the last
/// of them frees it where it runs.
fn release(old: Arc<RouteTable>) {
    if old.len() > 10_000 {
        drop(tokio::task::spawn_blocking(move || drop(old)));
    }
}

fn log_conflicts(conflicts: Vec<pp_model::table::Conflict>) {
    for c in conflicts {
        tracing::warn!(kept = %c.kept, dropped = %c.dropped, address = %c.address, "two routes claim one address");
    }
}

async fn build_directory(store: &dyn Store) -> anyhow::Result<Directory> {
    let now = OffsetDateTime::now_utc();
    let grants = store.all_grants().await.context("reading grants")?;
    let tokens = store
        .live_service_tokens(now)
        .await
        .context("reading service tokens")?;
    let revocations = store
        .live_revocations(now)
        .await
        .context("reading revocations")?;
    Ok(Directory::new(grants, tokens, &revocations))
}

/// What the follower keeps current.
struct Follower {
    store: Arc<dyn Store>,
    table: Arc<RouteTableHandle>,
    directory: Arc<DirectoryHandle>,
    keys: Arc<Keyring>,
    applied: tokio::sync::watch::Sender<u64>,
    apps_domain: String,
    resync: Duration,
    /// The store's change number the served table is current to.
    table_change: u64,
}

/// Keeps the route table and the identity directory current whenever the
/// store reports a change: the table takes just the routes written since
/// the change number it is current to (a full read of 100,000 routes on
/// every write left a new route unserved for most of a second), the
/// directory is read again. The periodic resync rebuilds both in full as
/// a safety net (it also drops service tokens and revocations that
/// expired, and places a route that an incremental update could not). A
/// failed read keeps the current snapshots: the data plane goes on
/// serving what it has.
async fn follow(mut f: Follower, shutdown: CancellationToken) {
    let mut changes = f.store.subscribe();
    let mut built_at = *f.applied.borrow();
    // A deadline, not a sleep per wait: writes arriving more often than the
    // resync interval must not put the full build off forever.
    let mut next_full = tokio::time::Instant::now() + f.resync;
    loop {
        // Wait for a change past what is served, or the resync.
        if *changes.borrow() == built_at {
            tokio::select! {
                () = shutdown.cancelled() => return,
                r = changes.changed() => {
                    if r.is_err() {
                        // The store is gone; keep serving what we have.
                        shutdown.cancelled().await;
                        return;
                    }
                }
                () = tokio::time::sleep_until(next_full) => {}
            }
        }
        let full = tokio::time::Instant::now() >= next_full;
        // Read the revision before the data: the snapshots are then at
        // least as new as the revision they are published under.
        let revision = *changes.borrow_and_update();
        let table = async {
            if !full {
                let current = f.table.load();
                match update_table(&*f.store, current, f.table_change, &f.keys).await {
                    Ok(Some(updated)) => return Ok(updated),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(
                        error = %format!("{e:#}"),
                        "applying the changed routes failed; reading every route instead"
                    ),
                }
            }
            let (table, change) = build_table(&*f.store, &f.apps_domain, &f.keys).await?;
            Ok::<_, anyhow::Error>((Some(table), change))
        };
        // Each snapshot is published on its own: a route read that fails
        // must not hold back revocations and removed grants.
        let (table, directory) = tokio::join!(table, build_directory(&*f.store));
        let directory_ok = match directory {
            Ok(d) => {
                f.directory.replace(d);
                true
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "identity directory rebuild failed; serving the previous directory");
                false
            }
        };
        match table {
            Ok((t, change)) if directory_ok => {
                tracing::debug!(
                    routes = t.as_ref().map(RouteTable::len),
                    revision,
                    change,
                    full,
                    "snapshots rebuilt"
                );
                // The old table is let go after the API calls waiting for
                // this revision have been told, not before.
                let old = t.map(|t| f.table.replace(t));
                f.applied.send_replace(revision);
                if let Some(old) = old {
                    release(old);
                }
                f.table_change = change;
                built_at = revision;
                if full {
                    next_full = tokio::time::Instant::now() + f.resync;
                }
            }
            other => {
                let old = match other {
                    // The table is current; only the directory failed.
                    Ok((t, change)) => {
                        f.table_change = change;
                        t.map(|t| f.table.replace(t))
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "route table rebuild failed; serving the previous table");
                        None
                    }
                };
                if let Some(old) = old {
                    release(old);
                }
                // Not in a tight loop: try again after a pause.
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(f.resync.min(Duration::from_secs(1))) => {}
                }
            }
        }
    }
}
