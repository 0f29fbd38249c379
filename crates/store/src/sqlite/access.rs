//! `platform_proxy_grants` and `platform_proxy_service_tokens`: who holds
//! which role beyond their token claims, and the automation tokens.

use pp_model::records::{Grant, ServiceToken};
use pp_model::Role;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{self, Cells};
use super::SqliteStore;
use crate::{timestamp, GrantFilter, Page, StoreError};

const GRANTS: &str = "platform_proxy_grants";
const TOKENS: &str = "platform_proxy_service_tokens";

macro_rules! grant_columns {
    () => {
        "id, subject, org_id, project_id, role, created_by, created_at"
    };
}

macro_rules! token_columns {
    () => {
        "id, name, token_hash, org_id, project_id, role, created_by, created_at, expires_at, \
         revoked_at"
    };
}

pub(super) async fn create_grant(store: &SqliteStore, grant: &Grant) -> Result<(), StoreError> {
    let created_at = timestamp::encode(grant.created_at)?;
    // IMMEDIATE, as for routes: the lookup of the grant a unique violation
    // collided with sees the rows the index saw.
    let mut tx = store.pool.begin_with("BEGIN IMMEDIATE").await?;
    let inserted = sqlx::query(concat!(
        "INSERT INTO platform_proxy_grants (",
        grant_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(grant.id.to_string())
    .bind(&grant.subject)
    .bind(&grant.org_id)
    .bind(&grant.project_id)
    .bind(grant.role.as_str())
    .bind(&grant.created_by)
    .bind(created_at)
    .execute(&mut *tx)
    .await;
    if let Err(e) = inserted {
        return Err(grant_write_error(&mut tx, grant, e).await);
    }
    tx.commit().await?;
    store.bump();
    Ok(())
}

/// Turns a unique violation on the scope index into
/// [`StoreError::GrantExists`] naming the grant already there; any other
/// failure (a reused id included) is reported as it is.
async fn grant_write_error(
    conn: &mut SqliteConnection,
    grant: &Grant,
    err: sqlx::Error,
) -> StoreError {
    if !rows::is_unique_violation(&err) {
        return err.into();
    }
    // Spelled as the unique index is, so SQLite answers from it.
    let holder: Result<Option<String>, _> = sqlx::query_scalar(
        "SELECT id FROM platform_proxy_grants
         WHERE subject = ? AND org_id = ? AND COALESCE(project_id, '') = ?",
    )
    .bind(&grant.subject)
    .bind(&grant.org_id)
    .bind(grant.project_id.as_deref().unwrap_or(""))
    .fetch_optional(&mut *conn)
    .await;
    match holder
        .ok()
        .flatten()
        .and_then(|id| Uuid::parse_str(&id).ok())
    {
        Some(existing) => StoreError::GrantExists {
            subject: grant.subject.clone(),
            existing,
        },
        None => err.into(),
    }
}

pub(super) async fn get_grant(store: &SqliteStore, id: Uuid) -> Result<Option<Grant>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        grant_columns!(),
        " FROM platform_proxy_grants WHERE id = ?"
    ))
    .bind(id.to_string())
    .fetch_optional(&store.pool)
    .await?;
    row.as_ref().map(decode_grant).transpose()
}

pub(super) async fn delete_grant(store: &SqliteStore, id: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM platform_proxy_grants WHERE id = ?")
        .bind(id.to_string())
        .execute(&store.pool)
        .await?;
    let changed = done.rows_affected() > 0;
    if changed {
        store.bump();
    }
    Ok(changed)
}

pub(super) async fn list_grants(
    store: &SqliteStore,
    filter: &GrantFilter,
) -> Result<Page<Grant>, StoreError> {
    let limit = rows::clamp_limit(filter.limit);
    let mut q = QueryBuilder::<Sqlite>::new(concat!(
        "SELECT ",
        grant_columns!(),
        " FROM platform_proxy_grants WHERE 1 = 1"
    ));
    if let Some(subject) = &filter.subject {
        q.push(" AND subject = ").push_bind(subject.clone());
    }
    if let Some(org_id) = &filter.org_id {
        q.push(" AND org_id = ").push_bind(org_id.clone());
    }
    if let Some(project_id) = &filter.project_id {
        q.push(" AND project_id = ").push_bind(project_id.clone());
    }
    rows::keyset_page(&mut q, "platform_proxy_grants", filter.after, limit);
    let found = q.build().fetch_all(&store.pool).await?;
    let items = found
        .iter()
        .map(decode_grant)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows::page(items, limit, |g| g.id))
}

pub(super) async fn all_grants(store: &SqliteStore) -> Result<Vec<Grant>, StoreError> {
    let found = sqlx::query(concat!(
        "SELECT ",
        grant_columns!(),
        " FROM platform_proxy_grants ORDER BY created_at, id"
    ))
    .fetch_all(&store.pool)
    .await?;
    found.iter().map(decode_grant).collect()
}

fn decode_grant(row: &SqliteRow) -> Result<Grant, StoreError> {
    let (c, id) = Cells::with_id(row, GRANTS)?;
    Ok(Grant {
        id,
        subject: c.text("subject")?,
        org_id: c.text("org_id")?,
        project_id: c.opt_text("project_id")?,
        role: c.name("role", Role::parse)?,
        created_by: c.text("created_by")?,
        created_at: c.time("created_at")?,
    })
}

pub(super) async fn create_service_token(
    store: &SqliteStore,
    token: &ServiceToken,
) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "INSERT INTO platform_proxy_service_tokens (",
        token_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(token.id.to_string())
    .bind(&token.name)
    .bind(&token.token_hash)
    .bind(&token.org_id)
    .bind(&token.project_id)
    .bind(token.role.as_str())
    .bind(&token.created_by)
    .bind(timestamp::encode(token.created_at)?)
    .bind(timestamp::encode(token.expires_at)?)
    .bind(token.revoked_at.map(timestamp::encode).transpose()?)
    .execute(&store.pool)
    .await?;
    store.bump();
    Ok(())
}

pub(super) async fn get_service_token(
    store: &SqliteStore,
    id: Uuid,
) -> Result<Option<ServiceToken>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        token_columns!(),
        " FROM platform_proxy_service_tokens WHERE id = ?"
    ))
    .bind(id.to_string())
    .fetch_optional(&store.pool)
    .await?;
    row.as_ref().map(decode_token).transpose()
}

pub(super) async fn revoke_service_token(
    store: &SqliteStore,
    id: Uuid,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE platform_proxy_service_tokens SET revoked_at = ?
         WHERE id = ? AND revoked_at IS NULL",
    )
    .bind(timestamp::encode(at)?)
    .bind(id.to_string())
    .execute(&store.pool)
    .await?;
    let changed = done.rows_affected() > 0;
    if changed {
        store.bump();
    }
    Ok(changed)
}

pub(super) async fn list_service_tokens(
    store: &SqliteStore,
    org_id: Option<&str>,
    project_id: Option<&str>,
) -> Result<Vec<ServiceToken>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(concat!(
        "SELECT ",
        token_columns!(),
        " FROM platform_proxy_service_tokens WHERE 1 = 1"
    ));
    if let Some(org_id) = org_id {
        q.push(" AND org_id = ").push_bind(org_id);
    }
    if let Some(project_id) = project_id {
        q.push(" AND project_id = ").push_bind(project_id);
    }
    q.push(" ORDER BY created_at DESC, id DESC");
    let found = q.build().fetch_all(&store.pool).await?;
    found.iter().map(decode_token).collect()
}

pub(super) async fn live_service_tokens(
    store: &SqliteStore,
    now: OffsetDateTime,
) -> Result<Vec<ServiceToken>, StoreError> {
    let found = sqlx::query(concat!(
        "SELECT ",
        token_columns!(),
        " FROM platform_proxy_service_tokens
          WHERE revoked_at IS NULL AND expires_at > ?
          ORDER BY created_at, id"
    ))
    .bind(timestamp::encode(now)?)
    .fetch_all(&store.pool)
    .await?;
    found.iter().map(decode_token).collect()
}

fn decode_token(row: &SqliteRow) -> Result<ServiceToken, StoreError> {
    let (c, id) = Cells::with_id(row, TOKENS)?;
    Ok(ServiceToken {
        id,
        name: c.text("name")?,
        token_hash: c.text("token_hash")?,
        org_id: c.text("org_id")?,
        project_id: c.opt_text("project_id")?,
        role: c.name("role", Role::parse)?,
        created_by: c.text("created_by")?,
        created_at: c.time("created_at")?,
        expires_at: c.time("expires_at")?,
        revoked_at: c.opt_time("revoked_at")?,
    })
}
