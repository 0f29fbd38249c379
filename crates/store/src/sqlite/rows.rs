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
    src: Src<'r>,
    table: &'static str,
    /// How errors name the row: its id, or its key for tables without one.
    key: String,
}

/// Where a row's columns come from.
#[derive(Clone, Copy)]
enum Src<'r> {
    /// A row as SQLite returned it, one value per column.
    Row(&'r SqliteRow),
    /// The same columns folded by SQLite's `json_array()` into one text
    /// value ([`Folded`]).
    Folded(&'r [Option<Text<'r>>], &'r [&'r str]),
}

/// A text column of a [`Folded`] row: borrowed from the row's JSON unless
/// it had to be unescaped.
#[derive(serde::Deserialize)]
pub(super) struct Text<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

/// A bulk read that folds each row's text columns into one JSON array, and
/// each chunk of rows into one array of those.
///
/// sqlx hands every column value from SQLite's worker thread to the reading
/// task on its own (a copy, an allocation and a free across threads each):
/// for a read of many rows of small columns one value per row was several
/// times faster (100,000 routes: 0.35 s against 1.1 s before any decoding),
/// and one value per chunk of rows saves the two threads waking each other
/// for every few rows (a quarter of a 100,000-route start).
pub(super) struct Folded {
    /// The columns in the order each row's array holds them.
    columns: Vec<&'static str>,
    /// The chunk's statement ([`Folded::chunked`]).
    pub(super) sql: String,
}

impl Folded {
    /// A read of many rows that SQLite folds into one JSON array of row
    /// arrays per chunk (`json_group_array`), so a chunk of `LIMIT` rows
    /// crosses from SQLite's worker thread to the reading task as one
    /// value. `from` is what follows `FROM` in the chunk's subquery (its
    /// `WHERE`, `ORDER BY` and `LIMIT`), `order` the order the rows keep
    /// inside the chunk.
    ///
    /// Needs SQLite 3.44 or later (an `ORDER BY` inside an aggregate, and
    /// `json_array`'s result kept as JSON through it); the bundled library
    /// is newer, and a test checks the version the store runs on.
    pub(super) fn chunked(columns: &'static str, from: &str, order: &str) -> Self {
        let columns: Vec<&'static str> = columns.split(',').map(str::trim).collect();
        let sql = format!(
            "SELECT json_group_array(json_array({}) ORDER BY {order}) FROM (SELECT * FROM {from})",
            columns.join(", ")
        );
        Self { columns, sql }
    }

    /// The rows of one chunk of a [`Self::chunked`] read.
    pub(super) fn chunk<'a>(
        &self,
        table: &str,
        chunk: &'a str,
    ) -> Result<Vec<Vec<Option<Text<'a>>>>, StoreError> {
        let rows: Vec<Vec<Option<Text<'a>>>> = serde_json::from_str(chunk)
            .map_err(|e| StoreError::Corrupt(format!("{table} rows as JSON: {e}")))?;
        for values in &rows {
            self.check(table, values.len())?;
        }
        Ok(rows)
    }

    fn check(&self, table: &str, values: usize) -> Result<(), StoreError> {
        if values == self.columns.len() {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "{table} row as JSON: {values} values for {} columns",
                self.columns.len()
            )))
        }
    }
}

impl<'r> Cells<'r> {
    pub(super) fn new(row: &'r SqliteRow, table: &'static str, key: String) -> Self {
        Self {
            src: Src::Row(row),
            table,
            key,
        }
    }

    /// A row keyed by a UUID `id` column, and that id.
    pub(super) fn with_id(
        row: &'r SqliteRow,
        table: &'static str,
    ) -> Result<(Self, Uuid), StoreError> {
        Self::keyed_by_id(Src::Row(row), table)
    }

    /// A row of a `folded` chunk ([`Folded::chunk`]), keyed by its `id`, and
    /// that id.
    pub(super) fn folded_with_id(
        folded: &'r Folded,
        values: &'r [Option<Text<'r>>],
        table: &'static str,
    ) -> Result<(Self, Uuid), StoreError> {
        Self::keyed_by_id(Src::Folded(values, &folded.columns), table)
    }

    fn keyed_by_id(src: Src<'r>, table: &'static str) -> Result<(Self, Uuid), StoreError> {
        let unnamed = Self {
            src,
            table,
            key: "?".to_owned(),
        };
        let raw = unnamed.text("id")?;
        let id = Uuid::parse_str(&raw).map_err(|e| corrupt(table, &raw, "id", &e))?;
        Ok((
            Self {
                src,
                table,
                key: raw,
            },
            id,
        ))
    }

    fn get<T>(&self, row: &'r SqliteRow, name: &str) -> Result<T, StoreError>
    where
        T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
    {
        row.try_get(name).map_err(|e| self.corrupt(name, &e))
    }

    pub(super) fn text(&self, name: &str) -> Result<String, StoreError> {
        self.opt_text(name)?
            .ok_or_else(|| self.corrupt(name, &"NULL where text is required"))
    }

    pub(super) fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self.src {
            Src::Row(row) => self.get(row, name),
            Src::Folded(values, columns) => {
                match columns
                    .iter()
                    .position(|c| *c == name)
                    .map(|i| values.get(i))
                {
                    Some(Some(v)) => Ok(v.as_ref().map(|t| t.0.clone().into_owned())),
                    _ => Err(self.corrupt(name, &"not among the columns read")),
                }
            }
        }
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
