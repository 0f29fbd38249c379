//! Persistence of platform-proxy: one [`Store`] trait, implemented for
//! SQLite (the embedded default) and later PostgreSQL, plus a change feed the
//! data plane follows to rebuild its route table.

use std::future::Future;
use std::pin::Pin;

use pp_model::records::{
    AuditEntry, AuditFilter, Grant, Revocation, ServiceToken, SessionFilter, SessionRecord,
};
use pp_model::{OwnerType, Route, RouteChange, RouteStatus};
use time::OffsetDateTime;
use uuid::Uuid;

mod migrate;
mod sqlite;
mod timestamp;

pub use sqlite::SqliteStore;

/// Boxed future returned by [`Store`] methods, so the trait is object-safe
/// and callers can hold an `Arc<dyn Store>` whatever the backend.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another live route already owns this public address.
    #[error("{field} is already used by route {existing}")]
    Conflict { field: &'static str, existing: Uuid },
    /// A grant for the same subject and scope exists already.
    #[error("{subject} already holds a grant on this scope ({existing})")]
    GrantExists { subject: String, existing: Uuid },
    #[error("unsupported store url {0:?}: expected sqlite://PATH or sqlite::memory:")]
    UnsupportedUrl(String),
    /// A stored row the model cannot represent (names the table, the row
    /// and the column). Reported rather than panicking: one bad row must not
    /// take the route table down.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database's recorded schema history disagrees with this build's
    /// embedded migrations; continuing would guess at the schema.
    #[error("schema migration: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Filters and paging of `GET /api/v1/routes`.
#[derive(Debug, Clone, Default)]
pub struct RouteFilter {
    pub owner_type: Option<OwnerType>,
    pub owner_id: Option<String>,
    pub org_id: Option<String>,
    pub project_id: Option<String>,
    pub status: Option<RouteStatus>,
    /// Include soft-deleted routes.
    pub include_deleted: bool,
    /// Return routes after this one in `(created_at, id)` order: pass the
    /// previous page's `next`. Keyset paging, so writes between pages cause
    /// no duplicates or gaps among the other rows (unlike offsets); an id
    /// naming no route gives an empty page.
    pub after: Option<Uuid>,
    /// Page size, clamped to `1..=MAX_PAGE_LIMIT`.
    pub limit: u32,
}

/// Largest page [`Store::list_routes`] returns, whatever the caller asks:
/// one request must not make the store read every route.
pub const MAX_PAGE_LIMIT: u32 = 500;

/// Filters and paging of `GET /api/v1/grants`.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    pub subject: Option<String>,
    pub org_id: Option<String>,
    pub project_id: Option<String>,
    /// Grants after this one in `(created_at, id)` order.
    pub after: Option<Uuid>,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Cursor for the next page, if there is one.
    pub next: Option<Uuid>,
}

/// Everything the planes need from persistence.
///
/// Every write to what the in-memory snapshots hold (routes, grants,
/// service tokens, revocations) bumps the change feed ([`Store::subscribe`])
/// after it commits, so a follower that sees a new revision and re-reads
/// gets the write. Sessions, audit records and secrets do not bump it.
pub trait Store: Send + Sync + 'static {
    /// Applies pending schema migrations.
    fn migrate(&self) -> StoreFuture<'_, ()>;
    /// Cheap round-trip for readiness checks.
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Inserts a route. Fails with [`StoreError::Conflict`] when a live
    /// route already has the same `route_host` (subdomain mode) or
    /// `public_path` (path-prefix mode).
    fn create_route<'a>(&'a self, route: &'a Route) -> StoreFuture<'a, ()>;
    /// A route by id, deleted ones included (their `deleted_at` is set).
    fn get_route(&self, id: Uuid) -> StoreFuture<'_, Option<Route>>;
    /// Replaces a live route's mutable fields. Returns false if no live
    /// route has that id. Same conflict rule as `create_route`.
    fn update_route<'a>(&'a self, route: &'a Route) -> StoreFuture<'a, bool>;
    /// Soft-deletes a route (sets `deleted_at`). Returns false if no live
    /// route has that id.
    fn delete_route(&self, id: Uuid) -> StoreFuture<'_, bool>;
    /// A page of routes in creation order.
    fn list_routes<'a>(&'a self, filter: &'a RouteFilter) -> StoreFuture<'a, Page<Route>>;
    /// Every live (not deleted) route in creation order, handed to `each`
    /// as it is read: the route table is built from them without the whole
    /// set held twice. Returns the change number the read saw (see
    /// [`Store::routes_changed_since`]).
    fn each_live_route<'a>(
        &'a self,
        each: &'a mut (dyn FnMut(Route) + Send),
    ) -> StoreFuture<'a, u64>;
    /// The routes written after change number `since`, in the order they
    /// were written (a deleted one by its id): what a route table built at
    /// `since` needs to be current. Every route write takes the next change
    /// number. `Ok(None)` when more than `at_most` changed (a full read is
    /// then cheaper) or the store's numbers are behind `since` (a database
    /// restored from an older copy); otherwise the changes and the change
    /// number they bring the reader to. A row removed outright behind the
    /// store's back (the store itself only soft-deletes) is seen by a full
    /// read.
    fn routes_changed_since(
        &self,
        since: u64,
        at_most: usize,
    ) -> StoreFuture<'_, Option<(Vec<RouteChange>, u64)>>;

    /// Stores a grant. [`StoreError::GrantExists`] when the subject already
    /// holds a grant on the same (org, project).
    fn create_grant<'a>(&'a self, grant: &'a Grant) -> StoreFuture<'a, ()>;
    fn get_grant(&self, id: Uuid) -> StoreFuture<'_, Option<Grant>>;
    /// Deletes a grant; false if there was none.
    fn delete_grant(&self, id: Uuid) -> StoreFuture<'_, bool>;
    fn list_grants<'a>(&'a self, filter: &'a GrantFilter) -> StoreFuture<'a, Page<Grant>>;
    /// Every grant, for the in-memory directory.
    fn all_grants(&self) -> StoreFuture<'_, Vec<Grant>>;

    fn create_service_token<'a>(&'a self, token: &'a ServiceToken) -> StoreFuture<'a, ()>;
    fn get_service_token(&self, id: Uuid) -> StoreFuture<'_, Option<ServiceToken>>;
    /// Sets `revoked_at`; false if no unrevoked token has that id.
    fn revoke_service_token(&self, id: Uuid, at: OffsetDateTime) -> StoreFuture<'_, bool>;
    /// Tokens of an org (and project), newest first, revoked ones included.
    fn list_service_tokens<'a>(
        &'a self,
        org_id: Option<&'a str>,
        project_id: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<ServiceToken>>;
    /// Unrevoked tokens not expired at `now`, for the in-memory directory.
    fn live_service_tokens(&self, now: OffsetDateTime) -> StoreFuture<'_, Vec<ServiceToken>>;

    /// Records a freshly minted browser session (launch code unredeemed).
    /// Does not bump the change feed: no snapshot depends on sessions.
    fn create_session<'a>(&'a self, session: &'a SessionRecord) -> StoreFuture<'a, ()>;
    /// Redeems a launch code, at most once: atomically sets `redeemed_at`
    /// on the session whose code hash this is, if it is for `route_id`,
    /// unredeemed, unrevoked and `launch_expires_at > now`. Returns the
    /// session on success, `None` for every kind of failure alike.
    fn redeem_launch_code<'a>(
        &'a self,
        code_hash: &'a str,
        route_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<SessionRecord>>;
    fn get_session(&self, id: Uuid) -> StoreFuture<'_, Option<SessionRecord>>;
    fn list_sessions<'a>(
        &'a self,
        filter: &'a SessionFilter,
    ) -> StoreFuture<'a, Page<SessionRecord>>;
    /// Stores a revocation and marks `revoked_at` on every unrevoked
    /// session it names that was created at or before `revoked_at`; returns
    /// how many sessions it marked. Bumps the change feed.
    fn revoke<'a>(&'a self, revocation: &'a Revocation) -> StoreFuture<'a, u64>;
    /// Revocations whose `expires_at` is after `now`, for the in-memory set.
    fn live_revocations(&self, now: OffsetDateTime) -> StoreFuture<'_, Vec<Revocation>>;

    /// Appends audit entries in one transaction. Does not bump the feed.
    fn append_audit<'a>(&'a self, entries: &'a [AuditEntry]) -> StoreFuture<'a, ()>;
    /// Audit entries newest first (`(at, id)` descending), filtered.
    fn list_audit<'a>(&'a self, filter: &'a AuditFilter) -> StoreFuture<'a, Page<AuditEntry>>;

    /// The stored value of a named secret, storing `fresh` first if there
    /// is none (first start of the embedded default). Every caller, on any
    /// replica, gets the same value.
    fn get_or_create_secret<'a>(&'a self, name: &'a str, fresh: &'a str)
        -> StoreFuture<'a, String>;

    /// The change feed: the value is a revision counter that increases after
    /// every committed write. Followers re-read on change; missed
    /// intermediate revisions are coalesced, never lost.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// How a store is opened, beyond its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Database connections held open at most (a SQLite file; an in-memory
    /// database always has exactly one).
    pub max_connections: u32,
}

impl StoreOptions {
    /// The pool size when none is configured. SQLite takes one writer at a
    /// time whatever the pool, and under WAL a reader never waits for it,
    /// so a second connection is what lets an API read run beside the
    /// route table's rebuild. Each connection is a thread of its own with
    /// a malloc arena; a pool of four held about 0.6 MiB more at rest than
    /// a pool of one.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 2;
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Opens the store named by `url` with the default options and applies
/// migrations.
///
/// # Errors
/// An unsupported URL, or the database refusing to open or migrate.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    open_with(url, StoreOptions::default()).await
}

/// Opens the store named by `url` and applies migrations.
///
/// # Errors
/// An unsupported URL, or the database refusing to open or migrate.
pub async fn open_with(
    url: &str,
    options: StoreOptions,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect_with(url, options).await?;
        store.migrate().await?;
        return Ok(std::sync::Arc::new(store));
    }
    Err(StoreError::UnsupportedUrl(url.to_owned()))
}
