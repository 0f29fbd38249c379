//! `platform_proxy_secrets`: keys the proxy generates once and shares
//! through the database with every replica.

use time::OffsetDateTime;

use super::SqliteStore;
use crate::{timestamp, StoreError};

/// The value stored under `name`, storing `fresh` first if there is none.
///
/// `INSERT OR IGNORE` then `SELECT` in one IMMEDIATE transaction: of two
/// replicas starting together, the first to take the write lock stores its
/// value and the second reads that one back, so both use the same key.
/// Does not bump the change feed: no snapshot depends on secrets, and only
/// the first call writes anything.
pub(super) async fn get_or_create(
    store: &SqliteStore,
    name: &str,
    fresh: &str,
) -> Result<String, StoreError> {
    let now = timestamp::encode(OffsetDateTime::now_utc())?;
    let mut tx = store.pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(
        "INSERT OR IGNORE INTO platform_proxy_secrets (name, value, created_at) VALUES (?, ?, ?)",
    )
    .bind(name)
    .bind(fresh)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let value: String =
        sqlx::query_scalar("SELECT value FROM platform_proxy_secrets WHERE name = ?")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(value)
}
