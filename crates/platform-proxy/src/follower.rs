//! The change feed's follower: keeps the data plane's route table and
//! identity directory current with the store. The store says what changed
//! (a revision per commit, a change number per route write); the model
//! says what a change means for the table ([`RouteTable::with_changes`]);
//! this module only decides when to read what, and publishes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use pp_dataplane::RouteTableHandle;
use pp_identity::seal::Purpose;
use pp_identity::{Directory, DirectoryHandle, Keyring};
use pp_model::{Route, RouteTable, TableBuilder};
use pp_store::Store;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
pub(crate) async fn build_table(
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

/// Tables of more routes than this are freed on a blocking thread.
const FREED_ASIDE: usize = 10_000;

/// Lets go of a replaced table: a large one on a blocking thread (freeing
/// it is 200,000 reference counts and 100,000 strings at 100,000 routes),
/// a small one here. Requests still running on it keep it alive; the last
/// of them frees it where it runs.
fn release(old: Arc<RouteTable>) {
    if old.len() > FREED_ASIDE {
        drop(tokio::task::spawn_blocking(move || drop(old)));
    }
}

fn log_conflicts(conflicts: Vec<pp_model::table::Conflict>) {
    for c in conflicts {
        tracing::warn!(kept = %c.kept, dropped = %c.dropped, address = %c.address, "two routes claim one address");
    }
}

pub(crate) async fn build_directory(store: &dyn Store) -> anyhow::Result<Directory> {
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
pub(crate) struct Follower {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) table: Arc<RouteTableHandle>,
    pub(crate) directory: Arc<DirectoryHandle>,
    pub(crate) keys: Arc<Keyring>,
    pub(crate) applied: tokio::sync::watch::Sender<u64>,
    pub(crate) apps_domain: String,
    pub(crate) resync: Duration,
    /// The store's change number the served table is current to.
    pub(crate) table_change: u64,
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
pub(crate) async fn follow(mut f: Follower, shutdown: CancellationToken) {
    let mut changes = f.store.subscribe();
    let mut built_at = *f.applied.borrow();
    // A deadline, not a sleep per wait: writes arriving more often than the
    // resync interval must not put the full build off forever.
    let mut next_full = Instant::now() + f.resync;
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
        let full = Instant::now() >= next_full;
        // Read the revision before the data: the snapshots are then at
        // least as new as the revision they are published under.
        let revision = *changes.borrow_and_update();
        // Each snapshot is published on its own: a route read that fails
        // must not hold back revocations and removed grants.
        let (table, directory) = tokio::join!(next_table(&f, full), build_directory(&*f.store));
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
        let table_ok = match table {
            Ok((t, change)) => {
                tracing::debug!(
                    routes = t.as_ref().map(RouteTable::len),
                    revision,
                    change,
                    full,
                    "snapshots rebuilt"
                );
                let old = t.map(|t| f.table.replace(t));
                f.table_change = change;
                if directory_ok {
                    f.applied.send_replace(revision);
                    built_at = revision;
                    if full {
                        next_full = Instant::now() + f.resync;
                    }
                }
                // Let go of the old table after the API calls waiting for
                // this revision have been told, not before.
                if let Some(old) = old {
                    release(old);
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "route table rebuild failed; serving the previous table");
                false
            }
        };
        if !(table_ok && directory_ok) {
            // Not in a tight loop: try again after a pause.
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(f.resync.min(Duration::from_secs(1))) => {}
            }
        }
    }
}

/// The route table the follower publishes next: the current one with the
/// changed routes applied, or a full build when `full` is due, too many
/// changed or the incremental read failed. `None` inside: the current
/// table stands.
async fn next_table(f: &Follower, full: bool) -> anyhow::Result<(Option<RouteTable>, u64)> {
    if !full {
        match update_table(&*f.store, f.table.load(), f.table_change, &f.keys).await {
            Ok(Some(updated)) => return Ok(updated),
            Ok(None) => {}
            Err(e) => tracing::warn!(
                error = %format!("{e:#}"),
                "applying the changed routes failed; reading every route instead"
            ),
        }
    }
    let (table, change) = build_table(&*f.store, &f.apps_domain, &f.keys).await?;
    Ok((Some(table), change))
}
