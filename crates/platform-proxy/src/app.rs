//! Wiring: opens the store, follows its change feed into the data plane's
//! route table, mounts the control-plane API on the API host, binds the
//! listeners and runs until shutdown. No logic lives here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http::{Request, Response};
use hyper::body::Incoming;
use pp_controlplane::ApiConfig;
use pp_dataplane::body::boxed;
use pp_dataplane::{ApiHandler, Listener, Proxy, ProxyBody, RouteTableHandle};
use pp_model::RouteTable;
use pp_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::config::Config;

/// A running proxy.
pub struct Running {
    pub http_addrs: Vec<SocketAddr>,
    pub https_addrs: Vec<SocketAddr>,
    pub store: Arc<dyn Store>,
    pub proxy: Arc<Proxy>,
    pub shutdown: CancellationToken,
    /// Store revision the served route table reflects.
    applied: tokio::sync::watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
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

    /// Waits until the proxy has shut down and drained.
    pub async fn wait(self) {
        let _ = self.task.await;
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
    let apps_domain = config.dataplane.apps_domain.clone();
    let table = Arc::new(RouteTableHandle::new(
        build_table(&*store, &apps_domain).await?,
    ));
    let shutdown = CancellationToken::new();
    let (applied_tx, applied) = tokio::sync::watch::channel(0);
    tokio::spawn(follow(
        Arc::clone(&store),
        Arc::clone(&table),
        applied_tx,
        apps_domain,
        config.route_resync,
        shutdown.clone(),
    ));
    let api = pp_controlplane::router(
        Arc::clone(&store),
        ApiConfig::new(config.bootstrap_token.clone(), config.public.clone()),
    );
    let proxy = Arc::new(Proxy::new(
        config.dataplane.clone(),
        table,
        Arc::new(AxumApi(api)),
    ));

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
        shutdown,
        applied,
        task,
    })
}

async fn build_table(store: &dyn Store, apps_domain: &str) -> anyhow::Result<RouteTable> {
    let routes = store.live_routes().await.context("reading routes")?;
    let (table, conflicts) = RouteTable::build(apps_domain, routes);
    for c in conflicts {
        tracing::warn!(kept = %c.kept, dropped = %c.dropped, address = %c.address, "two routes claim one address");
    }
    Ok(table)
}

/// Rebuilds the route table whenever the store reports a change, and on a
/// periodic resync as a safety net. A failed read keeps the current table:
/// the data plane goes on serving the routes it has.
async fn follow(
    store: Arc<dyn Store>,
    table: Arc<RouteTableHandle>,
    applied: tokio::sync::watch::Sender<u64>,
    apps_domain: String,
    resync: Duration,
    shutdown: CancellationToken,
) {
    let mut changes = store.subscribe();
    loop {
        // Read the revision before the routes: the table is then at least
        // as new as the revision it is published under.
        let revision = *changes.borrow_and_update();
        match build_table(&*store, &apps_domain).await {
            Ok(t) => {
                tracing::debug!(routes = t.len(), revision, "route table rebuilt");
                table.replace(t);
                applied.send_replace(revision);
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "route table rebuild failed; serving the previous table")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            r = changes.changed() => {
                if r.is_err() {
                    // The store is gone; keep serving what we have until shutdown.
                    shutdown.cancelled().await;
                    return;
                }
            }
            () = tokio::time::sleep(resync) => {}
        }
    }
}
