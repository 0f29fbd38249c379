//! The SQLite backend: the embedded default, one file beside the binary.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use pp_model::{OwnerType, Route, RouteMode, RouteStatus};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::migrate::{self, SqliteMigrator};
use crate::{timestamp, Page, RouteFilter, Store, StoreError, StoreFuture, MAX_PAGE_LIMIT};

/// How long a writer waits for another connection's write lock before
/// failing with "database is locked". SQLite allows one writer at a time;
/// our writes are single rows, so seconds of contention means something is
/// stuck, not busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Readers run in parallel under WAL while writers queue on SQLite's one
/// write lock whatever the pool size, so a few connections are enough.
const FILE_POOL_SIZE: u32 = 4;

/// Columns of `platform_proxy_routes` in the order [`decode_route`] reads
/// them. A macro, not a const, so `concat!` can build whole statements.
macro_rules! route_columns {
    () => {
        "id, owner_type, owner_id, endpoint_name, org_id, project_id, proxy_pool_id, \
         route_mode, route_host, public_path, upstream, adapter, adapter_overrides, limits, \
         policy, status, failure_reason, created_at, updated_at, deleted_at"
    };
}

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
    /// `sqlite::memory:`. Does not migrate; [`Store::migrate`] does, and
    /// [`crate::open`] calls both.
    ///
    /// # Errors
    /// A URL that names no SQLite database, a parent directory that cannot
    /// be created, or SQLite refusing to open the file.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
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
            connect_file(options.journal_mode(SqliteJournalMode::Wal)).await?
        };
        Ok(Self {
            pool,
            revision: watch::Sender::new(0),
        })
    }

    /// Tells followers that a write committed. Called only after `commit`
    /// returned, so a follower woken by it reads the write.
    fn bump(&self) {
        self.revision.send_modify(|r| *r += 1);
    }

    async fn create(&self, route: &Route) -> Result<(), StoreError> {
        let row = EncodedRoute::new(route)?;
        // IMMEDIATE: hold the write lock from the start, so when the insert
        // hits a unique index the lookup of who holds the address sees the
        // same rows the index did.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = sqlx::query(concat!(
            "INSERT INTO platform_proxy_routes (",
            route_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(route.id.to_string())
        .bind(route.owner_type.as_str())
        .bind(&route.owner_id)
        .bind(&route.endpoint_name)
        .bind(&route.org_id)
        .bind(&route.project_id)
        .bind(&route.proxy_pool_id)
        .bind(route.route_mode.as_str())
        .bind(&route.route_host)
        .bind(&route.public_path)
        .bind(&row.upstream)
        .bind(&route.adapter)
        .bind(&row.adapter_overrides)
        .bind(&row.limits)
        .bind(&row.policy)
        .bind(route.status.as_str())
        .bind(&route.failure_reason)
        .bind(&row.created_at)
        .bind(&row.updated_at)
        .bind(&row.deleted_at)
        .execute(&mut *tx)
        .await;
        if let Err(e) = inserted {
            return Err(write_error(&mut tx, route, e).await);
        }
        tx.commit().await?;
        self.bump();
        Ok(())
    }

    async fn update(&self, route: &Route) -> Result<bool, StoreError> {
        let row = EncodedRoute::new(route)?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Everything but identity (id, owner) and history (created_at,
        // deleted_at). The owner is who the route belongs to; moving it is a
        // new route, not an update.
        let updated = sqlx::query(
            "UPDATE platform_proxy_routes SET
                endpoint_name = ?, org_id = ?, project_id = ?, proxy_pool_id = ?,
                route_mode = ?, route_host = ?, public_path = ?, upstream = ?, adapter = ?,
                adapter_overrides = ?, limits = ?, policy = ?, status = ?,
                failure_reason = ?, updated_at = ?
             WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(&route.endpoint_name)
        .bind(&route.org_id)
        .bind(&route.project_id)
        .bind(&route.proxy_pool_id)
        .bind(route.route_mode.as_str())
        .bind(&route.route_host)
        .bind(&route.public_path)
        .bind(&row.upstream)
        .bind(&route.adapter)
        .bind(&row.adapter_overrides)
        .bind(&row.limits)
        .bind(&row.policy)
        .bind(route.status.as_str())
        .bind(&route.failure_reason)
        .bind(&row.updated_at)
        .bind(route.id.to_string())
        .execute(&mut *tx)
        .await;
        let changed = match updated {
            Ok(done) => done.rows_affected() > 0,
            Err(e) => return Err(write_error(&mut tx, route, e).await),
        };
        tx.commit().await?;
        if changed {
            self.bump();
        }
        Ok(changed)
    }

    async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        let now = timestamp::encode(OffsetDateTime::now_utc())?;
        let done = sqlx::query(
            "UPDATE platform_proxy_routes SET deleted_at = ?1, updated_at = ?1
             WHERE id = ?2 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        let changed = done.rows_affected() > 0;
        if changed {
            self.bump();
        }
        Ok(changed)
    }

    async fn get(&self, id: Uuid) -> Result<Option<Route>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            route_columns!(),
            " FROM platform_proxy_routes WHERE id = ?"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode_route).transpose()
    }

    async fn list(&self, filter: &RouteFilter) -> Result<Page<Route>, StoreError> {
        let limit = filter.limit.clamp(1, MAX_PAGE_LIMIT);
        let mut q = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            route_columns!(),
            " FROM platform_proxy_routes WHERE 1 = 1"
        ));
        if !filter.include_deleted {
            q.push(" AND deleted_at IS NULL");
        }
        if let Some(owner_type) = filter.owner_type {
            q.push(" AND owner_type = ").push_bind(owner_type.as_str());
        }
        if let Some(owner_id) = &filter.owner_id {
            q.push(" AND owner_id = ").push_bind(owner_id.clone());
        }
        if let Some(org_id) = &filter.org_id {
            q.push(" AND org_id = ").push_bind(org_id.clone());
        }
        if let Some(project_id) = &filter.project_id {
            q.push(" AND project_id = ").push_bind(project_id.clone());
        }
        if let Some(status) = filter.status {
            q.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(after) = filter.after {
            // The cursor route is looked up without the filters, so paging
            // survives the cursor route itself changing status or being
            // deleted between pages. An unknown cursor compares as NULL and
            // yields an empty page.
            q.push(
                " AND (created_at, id) > \
                 (SELECT created_at, id FROM platform_proxy_routes WHERE id = ",
            )
            .push_bind(after.to_string())
            .push(")");
        }
        // One row past the page tells us whether a next page exists.
        q.push(" ORDER BY created_at, id LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = q.build().fetch_all(&self.pool).await?;
        let mut items = rows
            .iter()
            .map(decode_route)
            .collect::<Result<Vec<_>, _>>()?;
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next = if more {
            items.last().map(|r| r.id)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn live(&self) -> Result<Vec<Route>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            route_columns!(),
            " FROM platform_proxy_routes WHERE deleted_at IS NULL ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_route).collect()
    }
}

/// Opens the pool on a file, retrying while another process holds the lock.
///
/// Switching a new file to WAL takes an exclusive lock that SQLite does not
/// wait for (it skips the busy handler where waiting could deadlock), so two
/// processes opening one new file together can get `SQLITE_BUSY` despite the
/// busy timeout. Once the file is in WAL mode this succeeds first time.
async fn connect_file(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        let pool = SqlitePoolOptions::new()
            .max_connections(FILE_POOL_SIZE)
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
        Box::pin(self.create(route))
    }

    fn get_route(&self, id: Uuid) -> StoreFuture<'_, Option<Route>> {
        Box::pin(self.get(id))
    }

    fn update_route<'a>(&'a self, route: &'a Route) -> StoreFuture<'a, bool> {
        Box::pin(self.update(route))
    }

    fn delete_route(&self, id: Uuid) -> StoreFuture<'_, bool> {
        Box::pin(self.delete(id))
    }

    fn list_routes<'a>(&'a self, filter: &'a RouteFilter) -> StoreFuture<'a, Page<Route>> {
        Box::pin(self.list(filter))
    }

    fn live_routes(&self) -> StoreFuture<'_, Vec<Route>> {
        Box::pin(self.live())
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }
}

/// The columns of a route that are not stored as they are in the model.
struct EncodedRoute {
    upstream: String,
    adapter_overrides: String,
    limits: String,
    policy: String,
    created_at: String,
    updated_at: String,
    deleted_at: Option<String>,
}

impl EncodedRoute {
    fn new(route: &Route) -> Result<Self, StoreError> {
        fn json<T: Serialize>(v: &T) -> Result<String, StoreError> {
            serde_json::to_string(v)
                .map_err(|e| StoreError::Database(sqlx::Error::Encode(e.into())))
        }
        Ok(Self {
            upstream: json(&route.upstream)?,
            adapter_overrides: json(&route.adapter_overrides)?,
            limits: json(&route.limits)?,
            policy: json(&route.policy)?,
            created_at: timestamp::encode(route.created_at)?,
            updated_at: timestamp::encode(route.updated_at)?,
            deleted_at: route.deleted_at.map(timestamp::encode).transpose()?,
        })
    }
}

/// Turns a failed insert or update into [`StoreError::Conflict`] when a
/// unique index refused it because a live route holds the same address.
///
/// The index is the single authority on uniqueness (no check-then-write
/// race); this only finds out *whom* it collided with. It runs in the
/// writer's IMMEDIATE transaction, so the holder cannot change meanwhile.
async fn write_error(conn: &mut SqliteConnection, route: &Route, err: sqlx::Error) -> StoreError {
    let unique = matches!(&err, sqlx::Error::Database(db) if db.is_unique_violation());
    if !unique {
        return err.into();
    }
    // The literals repeat the partial indexes' WHERE clauses so SQLite can
    // answer from those indexes.
    let (field, sql, value) = match route.route_mode {
        RouteMode::Subdomain => (
            "route_host",
            "SELECT id FROM platform_proxy_routes
             WHERE route_host = ? AND deleted_at IS NULL AND route_mode = 'subdomain' AND id <> ?",
            route.route_host.as_deref(),
        ),
        RouteMode::PathPrefix => (
            "public_path",
            "SELECT id FROM platform_proxy_routes
             WHERE public_path = ? AND deleted_at IS NULL AND route_mode = 'path_prefix' AND id <> ?",
            Some(route.public_path.as_str()),
        ),
    };
    let holder = sqlx::query(sql)
        .bind(value)
        .bind(route.id.to_string())
        .fetch_optional(&mut *conn)
        .await;
    match holder {
        Ok(Some(row)) => match row
            .try_get::<String, _>("id")
            .ok()
            .and_then(|id| Uuid::parse_str(&id).ok())
        {
            Some(existing) => StoreError::Conflict { field, existing },
            None => err.into(),
        },
        // Not an address collision (e.g. a duplicate id): report it as is.
        Ok(None) | Err(_) => err.into(),
    }
}

/// A stored route, checking every column: a row written by hand, by a newer
/// build or by a bug becomes [`StoreError::Corrupt`] naming the route and
/// column, so one bad row is diagnosable and never takes a replica down.
fn decode_route(row: &SqliteRow) -> Result<Route, StoreError> {
    let raw_id: String = column(row, "?", "id")?;
    let id = Uuid::parse_str(&raw_id).map_err(|e| corrupt(&raw_id, "id", &e))?;
    let id_s = raw_id.as_str();
    let text = |name: &str| column::<String>(row, id_s, name);
    let opt_text = |name: &str| column::<Option<String>>(row, id_s, name);
    let time = |name: &str| -> Result<OffsetDateTime, StoreError> {
        timestamp::decode(&text(name)?).map_err(|e| corrupt(id_s, name, &e))
    };
    let known = |name: &str| corrupt(id_s, name, &"unknown value");
    let owner_types = [OwnerType::AppInstance, OwnerType::PlatformService];
    let route_modes = [RouteMode::Subdomain, RouteMode::PathPrefix];

    Ok(Route {
        id,
        owner_type: parse_name(&text("owner_type")?, owner_types, OwnerType::as_str)
            .ok_or_else(|| known("owner_type"))?,
        owner_id: text("owner_id")?,
        endpoint_name: text("endpoint_name")?,
        org_id: opt_text("org_id")?,
        project_id: opt_text("project_id")?,
        proxy_pool_id: text("proxy_pool_id")?,
        route_mode: parse_name(&text("route_mode")?, route_modes, RouteMode::as_str)
            .ok_or_else(|| known("route_mode"))?,
        route_host: opt_text("route_host")?,
        public_path: text("public_path")?,
        upstream: json(row, id_s, "upstream")?,
        adapter: text("adapter")?,
        adapter_overrides: json(row, id_s, "adapter_overrides")?,
        limits: json(row, id_s, "limits")?,
        policy: json(row, id_s, "policy")?,
        status: RouteStatus::parse(&text("status")?).ok_or_else(|| known("status"))?,
        failure_reason: opt_text("failure_reason")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
        deleted_at: opt_text("deleted_at")?
            .map(|s| timestamp::decode(&s).map_err(|e| corrupt(id_s, "deleted_at", &e)))
            .transpose()?,
    })
}

fn column<'r, T>(row: &'r SqliteRow, id: &str, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(name).map_err(|e| corrupt(id, name, &e))
}

fn json<T: DeserializeOwned>(row: &SqliteRow, id: &str, name: &str) -> Result<T, StoreError> {
    let text: String = column(row, id, name)?;
    serde_json::from_str(&text).map_err(|e| corrupt(id, name, &e))
}

/// The variant of `all` whose stored name is `s`. Goes through the model's
/// `as_str`, so the model stays the one spelling of each name.
fn parse_name<T: Copy, const N: usize>(
    s: &str,
    all: [T; N],
    name: fn(T) -> &'static str,
) -> Option<T> {
    all.into_iter().find(|v| name(*v) == s)
}

fn corrupt(id: &str, column: &str, err: &dyn std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("route {id}, column {column}: {err}"))
}
