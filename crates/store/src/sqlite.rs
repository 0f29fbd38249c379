//! The SQLite backend: the embedded default, one file beside the binary.
//!
//! This file opens the database and maps [`Store`] onto the per-table code:
//! routes, access (grants and service tokens), sessions (with revocations),
//! audit and named secrets each have their own module.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use pp_model::records::{
    AuditEntry, AuditFilter, Grant, Revocation, ServiceToken, SessionFilter, SessionRecord,
};
use pp_model::{Route, RouteChange};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::migrate::{self, SqliteMigrator};
use crate::{GrantFilter, Page, RouteFilter, Store, StoreError, StoreFuture, StoreOptions};

mod access;
mod audit;
mod routes;
mod rows;
mod secrets;
mod sessions;

/// How long a writer waits for another connection's write lock before
/// failing with "database is locked". SQLite allows one writer at a time;
/// our writes are a few rows each (an audit batch at most), so seconds of
/// contention means something is stuck, not busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a file's connection may sit unused before the pool closes it
/// (the pool checks this often, so one goes 2–4 s after its last use).
/// Each connection is a thread of its own, and a data plane whose process
/// has more than one thread pays for it on every socket system call: the
/// kernel takes and drops a reference to the socket's file for each, where
/// a single-threaded process borrows it. Reads and writes come in bursts
/// (an API call, the route table's rebuild), so the store is idle nearly
/// all the time and a connection is opened again in about a millisecond.
const IDLE_CLOSE: Duration = Duration::from_secs(2);

/// [`Store`] on SQLite through sqlx.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The change feed: a process-local counter, enough for the embedded
    /// single-replica deployment where every write goes through this value.
    /// Writes by another process on the same file do not bump it; the data
    /// plane's periodic full resync (DESIGN.md, Scale-out) covers those.
    revision: watch::Sender<u64>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database named by `url`:
    /// `sqlite://PATH` (relative or absolute; `sqlite:PATH` also works) or
    /// `sqlite::memory:`, with the default [`StoreOptions`]. Does not
    /// migrate; [`Store::migrate`] does, and [`crate::open`] calls both.
    ///
    /// # Errors
    /// A URL that names no SQLite database, a parent directory that cannot
    /// be created, or SQLite refusing to open the file.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// [`SqliteStore::connect`] with `options`: a file's pool holds up to
    /// `max_connections` (at least one), opened as they are first needed.
    ///
    /// # Errors
    /// As [`SqliteStore::connect`].
    pub async fn connect_with(url: &str, store: StoreOptions) -> Result<Self, StoreError> {
        let unsupported = || StoreError::UnsupportedUrl(url.to_owned());
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(unsupported)?;
        let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
        if database.is_empty() {
            return Err(unsupported());
        }
        let in_memory = database == ":memory:" || params.split('&').any(|p| p == "mode=memory");

        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| unsupported())?
            .create_if_missing(true)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = if in_memory {
            // An in-memory database lives as long as its last connection:
            // keep exactly one, forever. One connection also sidesteps the
            // table-level locks of SQLite's shared cache.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?
        } else {
            if let Some(parent) = options.get_filename().parent() {
                if parent != Path::new("") {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| {
                        StoreError::Database(sqlx::Error::Io(std::io::Error::new(
                            e.kind(),
                            format!("creating {}: {e}", parent.display()),
                        )))
                    })?;
                }
            }
            // WAL lets readers (the route-table rebuild, API listings) run
            // while a write commits. Synchronous stays FULL: writes are rare
            // control-plane calls, and an acknowledged route must survive a
            // power cut.
            let size = store.max_connections.max(1);
            connect_file(options.journal_mode(SqliteJournalMode::Wal), size).await?
        };
        Ok(Self {
            pool,
            revision: watch::Sender::new(0),
        })
    }

    /// The most connections the pool holds open.
    #[must_use]
    pub fn max_connections(&self) -> u32 {
        self.pool.options().get_max_connections()
    }

    /// The connections open now, busy or idle: a file's pool closes those
    /// idle past [`IDLE_CLOSE`], an in-memory one keeps its one.
    #[must_use]
    pub fn open_connections(&self) -> u32 {
        self.pool.size()
    }

    /// Tells followers that a write committed. Called only after `commit`
    /// returned, so a follower woken by it reads the write.
    fn bump(&self) {
        self.revision.send_modify(|r| *r += 1);
    }
}

/// Opens the pool on a file, retrying while another process holds the lock.
///
/// Switching a new file to WAL takes an exclusive lock that SQLite does not
/// wait for (it skips the busy handler where waiting could deadlock), so two
/// processes opening one new file together can get `SQLITE_BUSY` despite the
/// busy timeout. Once the file is in WAL mode this succeeds first time.
async fn connect_file(options: SqliteConnectOptions, size: u32) -> Result<SqlitePool, sqlx::Error> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        let pool = SqlitePoolOptions::new()
            .max_connections(size)
            .idle_timeout(IDLE_CLOSE)
            .connect_with(options.clone())
            .await;
        match pool {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            done => return done,
        }
    }
}

/// `SQLITE_BUSY` or one of its extended codes (the low byte is the primary
/// code, <https://www.sqlite.org/rescode.html>).
fn is_busy(e: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    matches!(e, sqlx::Error::Database(db)
        if db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| c & 0xff == SQLITE_BUSY))
}

impl Store for SqliteStore {
    fn migrate(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            migrate::run(&SqliteMigrator::new(&self.pool), migrate::SQLITE).await?;
            Ok(())
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
    }

    fn create_route<'a>(&'a self, route: &'a Route) -> StoreFuture<'a, ()> {
        Box::pin(routes::create(self, route))
    }

    fn get_route(&self, id: Uuid) -> StoreFuture<'_, Option<Route>> {
        Box::pin(routes::get(self, id))
    }

    fn update_route<'a>(&'a self, route: &'a Route) -> StoreFuture<'a, bool> {
        Box::pin(routes::update(self, route))
    }

    fn delete_route(&self, id: Uuid) -> StoreFuture<'_, bool> {
        Box::pin(routes::delete(self, id))
    }

    fn list_routes<'a>(&'a self, filter: &'a RouteFilter) -> StoreFuture<'a, Page<Route>> {
        Box::pin(routes::list(self, filter))
    }

    fn each_live_route<'a>(
        &'a self,
        each: &'a mut (dyn FnMut(Route) + Send),
    ) -> StoreFuture<'a, u64> {
        Box::pin(routes::live(self, each))
    }

    fn routes_changed_since(
        &self,
        since: u64,
        at_most: usize,
    ) -> StoreFuture<'_, Option<(Vec<RouteChange>, u64)>> {
        Box::pin(routes::changed_since(self, since, at_most))
    }

    fn create_grant<'a>(&'a self, grant: &'a Grant) -> StoreFuture<'a, ()> {
        Box::pin(access::create_grant(self, grant))
    }

    fn get_grant(&self, id: Uuid) -> StoreFuture<'_, Option<Grant>> {
        Box::pin(access::get_grant(self, id))
    }

    fn delete_grant(&self, id: Uuid) -> StoreFuture<'_, bool> {
        Box::pin(access::delete_grant(self, id))
    }

    fn list_grants<'a>(&'a self, filter: &'a GrantFilter) -> StoreFuture<'a, Page<Grant>> {
        Box::pin(access::list_grants(self, filter))
    }

    fn all_grants(&self) -> StoreFuture<'_, Vec<Grant>> {
        Box::pin(access::all_grants(self))
    }

    fn create_service_token<'a>(&'a self, token: &'a ServiceToken) -> StoreFuture<'a, ()> {
        Box::pin(access::create_service_token(self, token))
    }

    fn get_service_token(&self, id: Uuid) -> StoreFuture<'_, Option<ServiceToken>> {
        Box::pin(access::get_service_token(self, id))
    }

    fn revoke_service_token(&self, id: Uuid, at: OffsetDateTime) -> StoreFuture<'_, bool> {
        Box::pin(access::revoke_service_token(self, id, at))
    }

    fn list_service_tokens<'a>(
        &'a self,
        org_id: Option<&'a str>,
        project_id: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<ServiceToken>> {
        Box::pin(access::list_service_tokens(self, org_id, project_id))
    }

    fn live_service_tokens(&self, now: OffsetDateTime) -> StoreFuture<'_, Vec<ServiceToken>> {
        Box::pin(access::live_service_tokens(self, now))
    }

    fn create_session<'a>(&'a self, session: &'a SessionRecord) -> StoreFuture<'a, ()> {
        Box::pin(sessions::create(self, session))
    }

    fn redeem_launch_code<'a>(
        &'a self,
        code_hash: &'a str,
        route_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SessionRecord>> {
        Box::pin(sessions::redeem(self, code_hash, route_id, now))
    }

    fn get_session(&self, id: Uuid) -> StoreFuture<'_, Option<SessionRecord>> {
        Box::pin(sessions::get(self, id))
    }

    fn list_sessions<'a>(
        &'a self,
        filter: &'a SessionFilter,
    ) -> StoreFuture<'a, Page<SessionRecord>> {
        Box::pin(sessions::list(self, filter))
    }

    fn revoke<'a>(&'a self, revocation: &'a Revocation) -> StoreFuture<'a, u64> {
        Box::pin(sessions::revoke(self, revocation))
    }

    fn live_revocations(&self, now: OffsetDateTime) -> StoreFuture<'_, Vec<Revocation>> {
        Box::pin(sessions::live_revocations(self, now))
    }

    fn append_audit<'a>(&'a self, entries: &'a [AuditEntry]) -> StoreFuture<'a, ()> {
        Box::pin(audit::append(self, entries))
    }

    fn list_audit<'a>(&'a self, filter: &'a AuditFilter) -> StoreFuture<'a, Page<AuditEntry>> {
        Box::pin(audit::list(self, filter))
    }

    fn get_or_create_secret<'a>(
        &'a self,
        name: &'a str,
        fresh: &'a str,
    ) -> StoreFuture<'a, String> {
        Box::pin(secrets::get_or_create(self, name, fresh))
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }
}
