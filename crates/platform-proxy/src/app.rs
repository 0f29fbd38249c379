//! Wiring: opens the store, builds the first route table and identity
//! directory and starts the change feed's follower (`follower`) that keeps
//! them current, builds the identity parts (key ring,
//! authenticator, session backend, audit writer), mounts the control-plane
//! API on the API host, binds the listeners and runs until shutdown. No
//! logic lives here.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use http::{Request, Response};
use pp_controlplane::{ApiConfig, ApiDeps};
use pp_dataplane::body::boxed;
use pp_dataplane::server::ClientBody;
use pp_dataplane::{Access, ApiHandler, Listener, Proxy, ProxyBody, RouteTableHandle};
use pp_identity::assertion::AssertionSigner;
use pp_identity::jwt::JwtVerifier;
use pp_identity::{Authenticator, DirectoryHandle, Keyring};
use pp_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::backends::{StoreAudit, StoreSessions};
use crate::config::Config;
use crate::follower::{build_directory, build_table, follow, Follower};

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
        req: Request<ClientBody>,
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
    let store = pp_store::open_with(&config.store_url, config.store)
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
