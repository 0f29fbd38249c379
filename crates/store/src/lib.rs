//! Persistence of platform-proxy: one [`Store`] trait, implemented for
//! SQLite (the embedded default) and later PostgreSQL, plus a change feed the
//! data plane follows to rebuild its route table.

use std::future::Future;
use std::pin::Pin;

use pp_model::{OwnerType, Route, RouteStatus};
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
    #[error("unsupported store url {0:?}: expected sqlite://PATH or sqlite::memory:")]
    UnsupportedUrl(String),
    /// A stored row the model cannot represent (names the route and
    /// column). Reported rather than panicking: one bad row must not take the
    /// route table down.
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

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Cursor for the next page, if there is one.
    pub next: Option<Uuid>,
}

/// Everything the planes need from persistence.
///
/// Every write bumps the change feed ([`Store::subscribe`]) after it commits,
/// so a follower that sees a new revision and re-reads gets the write.
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
    /// Every live (not deleted) route, for building the route table.
    fn live_routes(&self) -> StoreFuture<'_, Vec<Route>>;

    /// The change feed: the value is a revision counter that increases after
    /// every committed write. Followers re-read on change; missed
    /// intermediate revisions are coalesced, never lost.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// Opens the store named by `url` and applies migrations.
///
/// # Errors
/// An unsupported URL, or the database refusing to open or migrate.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url).await?;
        store.migrate().await?;
        return Ok(std::sync::Arc::new(store));
    }
    Err(StoreError::UnsupportedUrl(url.to_owned()))
}
