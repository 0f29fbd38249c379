//! `platform_proxy_audit`: the append-only audit log, listed newest first.

use pp_model::records::{AuditEntry, AuditFilter, AuditOutcome};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite};

use super::rows::{self, Cells};
use super::SqliteStore;
use crate::{timestamp, Page, StoreError};

const TABLE: &str = "platform_proxy_audit";

macro_rules! audit_columns {
    () => {
        "id, at, action, outcome, actor, org_id, project_id, route_id, user_id, reason, \
         correlation_id, details"
    };
}

/// Stores `entries` in one transaction: a batch the caller flushed lands
/// whole or not at all. Does not bump the change feed: nothing a follower
/// rebuilds reads the log.
pub(super) async fn append(store: &SqliteStore, entries: &[AuditEntry]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    // Encode everything before taking the write lock, so a bad entry fails
    // the batch without holding up other writers.
    let encoded = entries
        .iter()
        .map(|e| Ok((timestamp::encode(e.at)?, rows::to_json(&e.details)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut tx = store.pool.begin_with("BEGIN IMMEDIATE").await?;
    for (e, (at, details)) in entries.iter().zip(encoded) {
        sqlx::query(concat!(
            "INSERT INTO platform_proxy_audit (",
            audit_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(e.id.to_string())
        .bind(at)
        .bind(&e.action)
        .bind(e.outcome.as_str())
        .bind(&e.actor)
        .bind(&e.org_id)
        .bind(&e.project_id)
        .bind(e.route_id.map(|id| id.to_string()))
        .bind(&e.user_id)
        .bind(&e.reason)
        .bind(&e.correlation_id)
        .bind(details)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Entries matching `filter`, newest first. `since` is inclusive and
/// `until` exclusive, so consecutive windows neither overlap nor leave gaps.
pub(super) async fn list(
    store: &SqliteStore,
    filter: &AuditFilter,
) -> Result<Page<AuditEntry>, StoreError> {
    let limit = rows::clamp_limit(filter.limit);
    let mut q = QueryBuilder::<Sqlite>::new(concat!(
        "SELECT ",
        audit_columns!(),
        " FROM platform_proxy_audit WHERE 1 = 1"
    ));
    if let Some(org_id) = &filter.org_id {
        q.push(" AND org_id = ").push_bind(org_id.clone());
    }
    if let Some(project_id) = &filter.project_id {
        q.push(" AND project_id = ").push_bind(project_id.clone());
    }
    if let Some(route_id) = filter.route_id {
        q.push(" AND route_id = ").push_bind(route_id.to_string());
    }
    if let Some(user_id) = &filter.user_id {
        q.push(" AND user_id = ").push_bind(user_id.clone());
    }
    if let Some(action) = &filter.action {
        q.push(" AND action = ").push_bind(action.clone());
    }
    if let Some(since) = filter.since {
        q.push(" AND at >= ").push_bind(timestamp::encode(since)?);
    }
    if let Some(until) = filter.until {
        q.push(" AND at < ").push_bind(timestamp::encode(until)?);
    }
    if let Some(before) = filter.before {
        // Keyset paging backwards; an unknown cursor compares as NULL and
        // gives an empty page, as for the other listings.
        q.push(" AND (at, id) < (SELECT at, id FROM platform_proxy_audit WHERE id = ")
            .push_bind(before.to_string())
            .push(")");
    }
    q.push(" ORDER BY at DESC, id DESC LIMIT ")
        .push_bind(rows::fetch_limit(limit));
    let found = q.build().fetch_all(&store.pool).await?;
    let items = found.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    Ok(rows::page(items, limit, |e| e.id))
}

fn decode(row: &SqliteRow) -> Result<AuditEntry, StoreError> {
    let (c, id) = Cells::with_id(row, TABLE)?;
    Ok(AuditEntry {
        id,
        at: c.time("at")?,
        action: c.text("action")?,
        outcome: c.name("outcome", AuditOutcome::parse)?,
        actor: c.opt_text("actor")?,
        org_id: c.opt_text("org_id")?,
        project_id: c.opt_text("project_id")?,
        route_id: c.opt_uuid("route_id")?,
        user_id: c.opt_text("user_id")?,
        reason: c.opt_text("reason")?,
        correlation_id: c.text("correlation_id")?,
        details: c.json("details")?,
    })
}
