//! `platform_proxy_routes`: create, read, update, soft delete, listing.

use pp_model::{AuthBridge, AuthBridgeMode, OwnerType, Route, RouteChange, RouteMode, RouteStatus};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{self, Cells, Folded};
use super::SqliteStore;
use crate::{timestamp, Page, RouteFilter, StoreError};

const TABLE: &str = "platform_proxy_routes";

/// Columns of `platform_proxy_routes` in the order [`decode`] reads them. A
/// macro, not a const, so `concat!` can build whole statements.
macro_rules! route_columns {
    () => {
        "id, owner_type, owner_id, endpoint_name, org_id, project_id, proxy_pool_id, \
         route_mode, route_host, public_path, upstream, adapter, adapter_overrides, limits, \
         policy, status, failure_reason, created_at, updated_at, deleted_at, auth_bridge"
    };
}

pub(super) async fn create(store: &SqliteStore, route: &Route) -> Result<(), StoreError> {
    let row = EncodedRoute::new(route)?;
    // IMMEDIATE: hold the write lock from the start, so when the insert hits
    // a unique index the lookup of who holds the address sees the same rows
    // the index did.
    let mut tx = store.pool.begin_with("BEGIN IMMEDIATE").await?;
    let inserted = sqlx::query(concat!(
        "INSERT INTO platform_proxy_routes (",
        route_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
    .bind(&row.auth_bridge)
    .execute(&mut *tx)
    .await;
    if let Err(e) = inserted {
        return Err(write_error(&mut tx, route, e).await);
    }
    tx.commit().await?;
    store.bump();
    Ok(())
}

pub(super) async fn update(store: &SqliteStore, route: &Route) -> Result<bool, StoreError> {
    let row = EncodedRoute::new(route)?;
    let mut tx = store.pool.begin_with("BEGIN IMMEDIATE").await?;
    // Everything but identity (id, owner) and history (created_at,
    // deleted_at). The owner is who the route belongs to; moving it is a new
    // route, not an update.
    let updated = sqlx::query(
        "UPDATE platform_proxy_routes SET
            endpoint_name = ?, org_id = ?, project_id = ?, proxy_pool_id = ?,
            route_mode = ?, route_host = ?, public_path = ?, upstream = ?, adapter = ?,
            adapter_overrides = ?, limits = ?, policy = ?, status = ?,
            failure_reason = ?, auth_bridge = ?, updated_at = ?
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
    .bind(&row.auth_bridge)
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
        store.bump();
    }
    Ok(changed)
}

pub(super) async fn delete(store: &SqliteStore, id: Uuid) -> Result<bool, StoreError> {
    let now = timestamp::encode(OffsetDateTime::now_utc())?;
    let done = sqlx::query(
        "UPDATE platform_proxy_routes SET deleted_at = ?1, updated_at = ?1
         WHERE id = ?2 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(id.to_string())
    .execute(&store.pool)
    .await?;
    let changed = done.rows_affected() > 0;
    if changed {
        store.bump();
    }
    Ok(changed)
}

pub(super) async fn get(store: &SqliteStore, id: Uuid) -> Result<Option<Route>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        route_columns!(),
        " FROM platform_proxy_routes WHERE id = ?"
    ))
    .bind(id.to_string())
    .fetch_optional(&store.pool)
    .await?;
    row.as_ref().map(decode).transpose()
}

pub(super) async fn list(
    store: &SqliteStore,
    filter: &RouteFilter,
) -> Result<Page<Route>, StoreError> {
    let limit = rows::clamp_limit(filter.limit);
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
    rows::keyset_page(&mut q, "platform_proxy_routes", filter.after, limit);
    let found = q.build().fetch_all(&store.pool).await?;
    let items = found.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    Ok(rows::page(items, limit, |r| r.id))
}

/// Routes one chunk of the bulk read carries: about 700 KB of JSON text.
const LIVE_CHUNK: usize = 1000;

/// Every live route in creation order, each handed to `each` as its chunk
/// is decoded; nothing but the current chunk is held. Returns the change
/// number of the snapshot read.
///
/// Rows come folded by SQLite, a thousand to a value ([`Folded`]): the
/// route table's rebuild reads every route, at start-up and on every
/// change, and sqlx's per-column values and per-row hand-offs were most of
/// its cost. The table is STRICT, so every column is text or NULL and
/// always folds. The chunks are keyset pages in (`created_at`, `id`)
/// order, read in one transaction so they come from one snapshot.
pub(super) async fn live(
    store: &SqliteStore,
    each: &mut (dyn FnMut(Route) + Send),
) -> Result<u64, StoreError> {
    static CHUNK: LazyLock<Folded> = LazyLock::new(|| {
        Folded::chunked(
            route_columns!(),
            "platform_proxy_routes WHERE deleted_at IS NULL AND (created_at, id) > (?, ?) \
             ORDER BY created_at, id LIMIT ?",
            "created_at, id",
        )
    });
    let chunk_sql = CHUNK.sql.as_str();
    let mut tx = store.pool.begin().await?;
    let seen = last_change(&mut tx).await?;
    // Below every stored timestamp and id: the first chunk starts at the top.
    let (mut after_created, mut after_id) = (String::new(), String::new());
    loop {
        let text: String = sqlx::query_scalar(chunk_sql)
            .bind(&after_created)
            .bind(&after_id)
            .bind(LIVE_CHUNK as i64)
            .fetch_one(&mut *tx)
            .await?;
        let rows = CHUNK.chunk(TABLE, &text)?;
        let mut last = None;
        for values in &rows {
            let (cells, id) = Cells::folded_with_id(&CHUNK, values, TABLE)?;
            let route = decode_cells(&cells, id)?;
            last = Some(cells);
            each(route);
        }
        match last {
            Some(cells) if rows.len() == LIVE_CHUNK => {
                after_created = cells.text("created_at")?;
                after_id = cells.text("id")?;
            }
            _ => break,
        }
    }
    // Read only: nothing to commit, and a rollback that failed would throw
    // away a complete read. Dropping the transaction ends it.
    drop(tx);
    Ok(seen)
}

/// The last change number handed out, in the reader's snapshot.
async fn last_change(tx: &mut sqlx::Transaction<'_, Sqlite>) -> Result<u64, StoreError> {
    let n: Option<i64> = sqlx::query_scalar("SELECT n FROM platform_proxy_route_change_counter")
        .fetch_optional(&mut **tx)
        .await?;
    let n = n.ok_or_else(|| {
        StoreError::Corrupt("platform_proxy_route_change_counter has no row".to_owned())
    })?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{TABLE}: change number {n}")))
}

/// The routes written after change number `since` in write order, a
/// deleted one by its id alone; `None` when more than `at_most` changed,
/// or when the store's numbers are behind `since` (a database restored
/// from an older copy): a full read is due then. One read transaction:
/// the changes and the change number returned are one snapshot.
pub(super) async fn changed_since(
    store: &SqliteStore,
    since: u64,
    at_most: usize,
) -> Result<Option<(Vec<RouteChange>, u64)>, StoreError> {
    static CHANGED: LazyLock<Folded> = LazyLock::new(|| {
        Folded::chunked(
            route_columns!(),
            "platform_proxy_routes WHERE change_seq > ? ORDER BY change_seq LIMIT ?",
            "change_seq",
        )
    });
    let since_i = i64::try_from(since).unwrap_or(i64::MAX);
    let mut tx = store.pool.begin().await?;
    let seen = last_change(&mut tx).await?;
    if seen < since {
        return Ok(None);
    }
    if seen == since {
        return Ok(Some((Vec::new(), since)));
    }
    // One more than allowed tells "too many" from "exactly at_most".
    let limit = i64::try_from(at_most.saturating_add(1)).unwrap_or(i64::MAX);
    let text: String = sqlx::query_scalar(CHANGED.sql.as_str())
        .bind(since_i)
        .bind(limit)
        .fetch_one(&mut *tx)
        .await?;
    drop(tx);
    let rows = CHANGED.chunk(TABLE, &text)?;
    if rows.len() > at_most {
        return Ok(None);
    }
    let mut changes = Vec::with_capacity(rows.len());
    for values in &rows {
        let (cells, id) = Cells::folded_with_id(&CHANGED, values, TABLE)?;
        changes.push(if cells.opt_text("deleted_at")?.is_some() {
            RouteChange::Deleted(id)
        } else {
            RouteChange::stored(decode_cells(&cells, id)?)
        });
    }
    Ok(Some((changes, seen)))
}

/// A route's auth bridge as the `auth_bridge` column stores it (JSON).
///
/// The model's [`AuthBridge`] skips `sealed_secret` in serde, because the
/// API must never show it; the store needs it most of all, so it keeps its
/// own shape. That also keeps the stored form fixed when the API's changes.
#[derive(Serialize, Deserialize)]
struct StoredAuthBridge {
    mode: AuthBridgeMode,
    header: String,
    scheme: Option<String>,
    /// Already sealed under the proxy's key ring by the caller; the store
    /// never sees the secret in the clear.
    sealed_secret: String,
}

impl From<&AuthBridge> for StoredAuthBridge {
    fn from(b: &AuthBridge) -> Self {
        Self {
            mode: b.mode,
            header: b.header.clone(),
            scheme: b.scheme.clone(),
            sealed_secret: b.sealed_secret.clone(),
        }
    }
}

impl From<StoredAuthBridge> for AuthBridge {
    fn from(b: StoredAuthBridge) -> Self {
        Self {
            mode: b.mode,
            header: b.header,
            scheme: b.scheme,
            sealed_secret: b.sealed_secret,
        }
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
    auth_bridge: Option<String>,
}

impl EncodedRoute {
    fn new(route: &Route) -> Result<Self, StoreError> {
        Ok(Self {
            upstream: rows::to_json(&route.upstream)?,
            adapter_overrides: rows::to_json(&route.adapter_overrides)?,
            limits: rows::to_json(&route.limits)?,
            policy: rows::to_json(&route.policy)?,
            created_at: timestamp::encode(route.created_at)?,
            updated_at: timestamp::encode(route.updated_at)?,
            deleted_at: route.deleted_at.map(timestamp::encode).transpose()?,
            auth_bridge: route
                .auth_bridge
                .as_ref()
                .map(|b| rows::to_json(&StoredAuthBridge::from(b)))
                .transpose()?,
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
    if !rows::is_unique_violation(&err) {
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

/// A stored route, every column checked.
fn decode(row: &SqliteRow) -> Result<Route, StoreError> {
    let (c, id) = Cells::with_id(row, TABLE)?;
    decode_cells(&c, id)
}

fn decode_cells(c: &Cells<'_>, id: Uuid) -> Result<Route, StoreError> {
    let owner_types = [OwnerType::AppInstance, OwnerType::PlatformService];
    let route_modes = [RouteMode::Subdomain, RouteMode::PathPrefix];
    Ok(Route {
        id,
        owner_type: c.name("owner_type", |s| {
            rows::parse_name(s, owner_types, OwnerType::as_str)
        })?,
        owner_id: c.text("owner_id")?,
        endpoint_name: c.text("endpoint_name")?,
        org_id: c.opt_text("org_id")?,
        project_id: c.opt_text("project_id")?,
        proxy_pool_id: c.text("proxy_pool_id")?,
        route_mode: c.name("route_mode", |s| {
            rows::parse_name(s, route_modes, RouteMode::as_str)
        })?,
        route_host: c.opt_text("route_host")?,
        public_path: c.text("public_path")?,
        upstream: c.json("upstream")?,
        adapter: c.text("adapter")?,
        adapter_overrides: c.json("adapter_overrides")?,
        limits: c.json("limits")?,
        policy: c.json("policy")?,
        status: c.name("status", RouteStatus::parse)?,
        failure_reason: c.opt_text("failure_reason")?,
        auth_bridge: c
            .opt_json::<StoredAuthBridge>("auth_bridge")?
            .map(AuthBridge::from),
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
        deleted_at: c.opt_time("deleted_at")?,
    })
}
