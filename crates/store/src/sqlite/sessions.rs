//! `platform_proxy_sessions` and `platform_proxy_revocations`: browser
//! sessions with their one-time launch codes, and what ended them.

use pp_model::records::{Revocation, RevocationTarget, SessionFilter, SessionRecord};
use pp_model::Principal;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{self, Cells};
use super::SqliteStore;
use crate::{timestamp, Page, StoreError};

const SESSIONS: &str = "platform_proxy_sessions";
const REVOCATIONS: &str = "platform_proxy_revocations";

macro_rules! session_columns {
    () => {
        "id, route_id, user_id, principal, platform_session, launch_code_hash, \
         launch_expires_at, redeemed_at, created_at, expires_at, revoked_at, correlation_id"
    };
}

/// Marks the unrevoked sessions whose `$column` is `?2` and that were
/// created at or before the revocation instant `?1`: a session minted after
/// a logout is not ended by it.
macro_rules! mark_sessions {
    ($column:literal) => {
        concat!(
            "UPDATE platform_proxy_sessions SET revoked_at = ?1 WHERE ",
            $column,
            " = ?2 AND revoked_at IS NULL AND created_at <= ?1"
        )
    };
}

pub(super) async fn create(store: &SqliteStore, s: &SessionRecord) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "INSERT INTO platform_proxy_sessions (",
        session_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(s.id.to_string())
    .bind(s.route_id.to_string())
    .bind(&s.user_id)
    .bind(rows::to_json(&s.principal)?)
    .bind(&s.platform_session)
    .bind(&s.launch_code_hash)
    .bind(timestamp::encode(s.launch_expires_at)?)
    .bind(s.redeemed_at.map(timestamp::encode).transpose()?)
    .bind(timestamp::encode(s.created_at)?)
    .bind(timestamp::encode(s.expires_at)?)
    .bind(s.revoked_at.map(timestamp::encode).transpose()?)
    .bind(&s.correlation_id)
    .execute(&store.pool)
    .await?;
    // No bump: no snapshot a follower rebuilds depends on sessions.
    Ok(())
}

pub(super) async fn redeem(
    store: &SqliteStore,
    code_hash: &str,
    route_id: Uuid,
    now: OffsetDateTime,
) -> Result<Option<SessionRecord>, StoreError> {
    // At most once by construction: the check and the mark are one UPDATE,
    // and SQLite runs one writer at a time, so a second redemption finds
    // `redeemed_at` set and matches nothing.
    //
    // In an explicit transaction, read with `fetch_all`: sqlx does not step
    // an `UPDATE … RETURNING` read by `fetch_one`/`fetch_optional` to the
    // end, which leaves the autocommit write uncommitted
    // (launchbadge/sqlx#3430). IMMEDIATE queues concurrent redeemers on the
    // write lock under the busy timeout rather than failing them.
    let mut tx = store.pool.begin_with("BEGIN IMMEDIATE").await?;
    let found = sqlx::query(concat!(
        "UPDATE platform_proxy_sessions SET redeemed_at = ?1
         WHERE launch_code_hash = ?2 AND route_id = ?3
           AND redeemed_at IS NULL AND revoked_at IS NULL AND launch_expires_at > ?1
         RETURNING ",
        session_columns!()
    ))
    .bind(timestamp::encode(now)?)
    .bind(code_hash)
    .bind(route_id.to_string())
    .fetch_all(&mut *tx)
    .await?;
    // The code hash is unique, so at most one row; a corrupt one rolls the
    // redemption back with the transaction.
    let session = found.first().map(decode_session).transpose()?;
    tx.commit().await?;
    Ok(session)
}

pub(super) async fn get(
    store: &SqliteStore,
    id: Uuid,
) -> Result<Option<SessionRecord>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        session_columns!(),
        " FROM platform_proxy_sessions WHERE id = ?"
    ))
    .bind(id.to_string())
    .fetch_optional(&store.pool)
    .await?;
    row.as_ref().map(decode_session).transpose()
}

pub(super) async fn list(
    store: &SqliteStore,
    filter: &SessionFilter,
) -> Result<Page<SessionRecord>, StoreError> {
    let limit = rows::clamp_limit(filter.limit);
    let mut q = QueryBuilder::<Sqlite>::new(concat!(
        "SELECT ",
        session_columns!(),
        " FROM platform_proxy_sessions WHERE 1 = 1"
    ));
    if let Some(route_id) = filter.route_id {
        q.push(" AND route_id = ").push_bind(route_id.to_string());
    }
    if let Some(user_id) = &filter.user_id {
        q.push(" AND user_id = ").push_bind(user_id.clone());
    }
    if let Some(live_at) = filter.live_at {
        // Live at that instant: not yet expired, and not revoked by then (a
        // revocation stamped later had not happened yet).
        let live_at = timestamp::encode(live_at)?;
        q.push(" AND expires_at > ")
            .push_bind(live_at.clone())
            .push(" AND (revoked_at IS NULL OR revoked_at > ")
            .push_bind(live_at)
            .push(")");
    }
    rows::keyset_page(&mut q, "platform_proxy_sessions", filter.after, limit);
    let found = q.build().fetch_all(&store.pool).await?;
    let items = found
        .iter()
        .map(decode_session)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows::page(items, limit, |s| s.id))
}

pub(super) async fn revoke(store: &SqliteStore, r: &Revocation) -> Result<u64, StoreError> {
    let revoked_at = timestamp::encode(r.revoked_at)?;
    let target = &r.target;
    let mut tx = store.pool.begin_with("BEGIN IMMEDIATE").await?;
    let before: Option<String> = sqlx::query_scalar(
        "SELECT revoked_at FROM platform_proxy_revocations WHERE kind = ? AND value = ?",
    )
    .bind(target.kind())
    .bind(target.value())
    .fetch_optional(&mut *tx)
    .await?;
    // One row per target: the latest revocation wins (fixed-width text
    // timestamps compare as times), the expiry only grows, the reason is
    // the latest one's.
    sqlx::query(
        "INSERT INTO platform_proxy_revocations (kind, value, revoked_at, expires_at, reason)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (kind, value) DO UPDATE SET
             reason = CASE WHEN excluded.revoked_at >= revoked_at THEN excluded.reason ELSE reason END,
             revoked_at = max(revoked_at, excluded.revoked_at),
             expires_at = max(expires_at, excluded.expires_at)",
    )
    .bind(target.kind())
    .bind(target.value())
    .bind(&revoked_at)
    .bind(timestamp::encode(r.expires_at)?)
    .bind(&r.reason)
    .execute(&mut *tx)
    .await?;
    let mark = match target {
        RevocationTarget::Session(_) => mark_sessions!("id"),
        RevocationTarget::User(_) => mark_sessions!("user_id"),
        RevocationTarget::Route(_) => mark_sessions!("route_id"),
        RevocationTarget::PlatformSession(_) => mark_sessions!("platform_session"),
    };
    let marked = sqlx::query(mark)
        .bind(&revoked_at)
        .bind(target.value())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    // The in-memory set holds whole seconds: a revocation within the same
    // second as the stored one changes nothing there, and marks nothing,
    // so it wakes no replica (revoking oneself in a loop costs no rebuilds).
    let same_second = before
        .as_deref()
        .is_some_and(|b| b.get(..19) >= revoked_at.get(..19));
    if marked > 0 || !same_second {
        store.bump();
    }
    Ok(marked)
}

pub(super) async fn live_revocations(
    store: &SqliteStore,
    now: OffsetDateTime,
) -> Result<Vec<Revocation>, StoreError> {
    let found = sqlx::query(
        "SELECT kind, value, revoked_at, expires_at, reason FROM platform_proxy_revocations
         WHERE expires_at > ? ORDER BY revoked_at, kind, value",
    )
    .bind(timestamp::encode(now)?)
    .fetch_all(&store.pool)
    .await?;
    found.iter().map(decode_revocation).collect()
}

fn decode_revocation(row: &SqliteRow) -> Result<Revocation, StoreError> {
    let unnamed = Cells::new(row, REVOCATIONS, "?".to_owned());
    let (kind, value) = (unnamed.text("kind")?, unnamed.text("value")?);
    let c = Cells::new(row, REVOCATIONS, format!("{kind}:{value}"));
    Ok(Revocation {
        target: RevocationTarget::parse(&kind, &value)
            .ok_or_else(|| c.corrupt("kind", &"not a revocation target kind and value"))?,
        revoked_at: c.time("revoked_at")?,
        expires_at: c.time("expires_at")?,
        reason: c.text("reason")?,
    })
}

fn decode_session(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
    let (c, id) = Cells::with_id(row, SESSIONS)?;
    Ok(SessionRecord {
        id,
        route_id: c.uuid("route_id")?,
        user_id: c.text("user_id")?,
        principal: c.json::<Principal>("principal")?,
        platform_session: c.opt_text("platform_session")?,
        launch_code_hash: c.text("launch_code_hash")?,
        launch_expires_at: c.time("launch_expires_at")?,
        redeemed_at: c.opt_time("redeemed_at")?,
        created_at: c.time("created_at")?,
        expires_at: c.time("expires_at")?,
        revoked_at: c.opt_time("revoked_at")?,
        correlation_id: c.text("correlation_id")?,
    })
}
