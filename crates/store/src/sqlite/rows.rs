//! What every table's code shares: reading a row column by column, where
//! anything the model cannot represent becomes [`StoreError::Corrupt`]
//! naming the table, the row and the column; JSON text; keyset pages.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{timestamp, Page, StoreError, MAX_PAGE_LIMIT};

/// One stored row being decoded. Every accessor checks its column, so a row
/// written by hand, by a newer build or by a bug is diagnosable from the
/// error alone and never takes a replica down.
pub(super) struct Cells<'r> {
    row: &'r SqliteRow,
    table: &'static str,
    /// How errors name the row: its id, or its key for tables without one.
    key: String,
}

impl<'r> Cells<'r> {
    pub(super) fn new(row: &'r SqliteRow, table: &'static str, key: String) -> Self {
        Self { row, table, key }
    }

    /// A row keyed by a UUID `id` column, and that id.
    pub(super) fn with_id(
        row: &'r SqliteRow,
        table: &'static str,
    ) -> Result<(Self, Uuid), StoreError> {
        let unnamed = Self::new(row, table, "?".to_owned());
        let raw: String = unnamed.get("id")?;
        let id = Uuid::parse_str(&raw).map_err(|e| corrupt(table, &raw, "id", &e))?;
        Ok((Self::new(row, table, raw), id))
    }

    pub(super) fn get<T>(&self, name: &str) -> Result<T, StoreError>
    where
        T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
    {
        self.row.try_get(name).map_err(|e| self.corrupt(name, &e))
    }

    pub(super) fn text(&self, name: &str) -> Result<String, StoreError> {
        self.get(name)
    }

    pub(super) fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.get(name)
    }

    pub(super) fn time(&self, name: &str) -> Result<OffsetDateTime, StoreError> {
        timestamp::decode(&self.text(name)?).map_err(|e| self.corrupt(name, &e))
    }

    pub(super) fn opt_time(&self, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        self.opt_text(name)?
            .map(|s| timestamp::decode(&s).map_err(|e| self.corrupt(name, &e)))
            .transpose()
    }

    pub(super) fn uuid(&self, name: &str) -> Result<Uuid, StoreError> {
        Uuid::parse_str(&self.text(name)?).map_err(|e| self.corrupt(name, &e))
    }

    pub(super) fn opt_uuid(&self, name: &str) -> Result<Option<Uuid>, StoreError> {
        self.opt_text(name)?
            .map(|s| Uuid::parse_str(&s).map_err(|e| self.corrupt(name, &e)))
            .transpose()
    }

    pub(super) fn json<T: DeserializeOwned>(&self, name: &str) -> Result<T, StoreError> {
        serde_json::from_str(&self.text(name)?).map_err(|e| self.corrupt(name, &e))
    }

    pub(super) fn opt_json<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        self.opt_text(name)?
            .map(|s| serde_json::from_str(&s).map_err(|e| self.corrupt(name, &e)))
            .transpose()
    }

    /// A name column read through the model's own parser, so the model stays
    /// the one spelling of each name.
    pub(super) fn name<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, StoreError> {
        parse(&self.text(name)?).ok_or_else(|| self.corrupt(name, &"unknown value"))
    }

    pub(super) fn corrupt(&self, column: &str, err: &dyn std::fmt::Display) -> StoreError {
        corrupt(self.table, &self.key, column, err)
    }
}

fn corrupt(table: &str, key: &str, column: &str, err: &dyn std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{table} row {key}, column {column}: {err}"))
}

/// The variant of `all` whose stored name is `s`, for model enums that have
/// `as_str` but no parser.
pub(super) fn parse_name<T: Copy, const N: usize>(
    s: &str,
    all: [T; N],
    name: fn(T) -> &'static str,
) -> Option<T> {
    all.into_iter().find(|v| name(*v) == s)
}

/// `v` as the JSON text a column stores.
pub(super) fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Database(sqlx::Error::Encode(e.into())))
}

/// Whether a write was refused by a `UNIQUE` constraint or index.
pub(super) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The page size actually served for a requested `limit`.
pub(super) fn clamp_limit(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE_LIMIT)
}

/// SQL `LIMIT` for a page of `limit`: one row past the page tells whether a
/// next page exists.
pub(super) fn fetch_limit(limit: u32) -> i64 {
    i64::from(limit) + 1
}

/// A page from rows fetched with [`fetch_limit`]: the cursor is the last
/// item's id, set only when a row past the page came back.
/// Ends a listing query with keyset paging in `(created_at, id)` order:
/// rows after the cursor row, then one more than `limit` (so [`page`] can
/// tell whether a next page exists). The cursor row is looked up without
/// the listing's filters, so paging survives the cursor row itself changing
/// or going away between pages; an unknown cursor compares as NULL and
/// yields an empty page.
pub(super) fn keyset_page(
    q: &mut sqlx::QueryBuilder<'_, sqlx::Sqlite>,
    table: &'static str,
    after: Option<Uuid>,
    limit: u32,
) {
    if let Some(after) = after {
        q.push(" AND (created_at, id) > (SELECT created_at, id FROM ")
            .push(table)
            .push(" WHERE id = ")
            .push_bind(after.to_string())
            .push(")");
    }
    q.push(" ORDER BY created_at, id LIMIT ")
        .push_bind(fetch_limit(limit));
}

pub(super) fn page<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> Uuid) -> Page<T> {
    let limit = limit as usize;
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(id) } else { None };
    Page { items, next }
}
