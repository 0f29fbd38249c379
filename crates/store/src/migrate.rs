//! Our own schema migration runner.
//!
//! sqlx's `migrate!` needs the macros feature and checks checksums we do not
//! want to manage; what we need is small: an ordered list of embedded SQL
//! scripts per backend, a `schema_migrations` table recording which ran, and
//! each script applied in its own transaction so a crash leaves the schema at
//! a known version. The list logic ([`run`], [`pending`]) is shared; each
//! backend supplies a [`MigrationExecutor`] (PostgreSQL's will take an
//! advisory lock where SQLite takes the write lock).

use sqlx::{Executor, Row, SqlitePool};
use time::OffsetDateTime;

use crate::timestamp;
use crate::{StoreError, StoreFuture};

/// One embedded schema change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Migration {
    /// Strictly increasing across a backend's list; never reused.
    pub(crate) version: i64,
    /// Recorded beside the version, so a database migrated by a build whose
    /// list differs from ours is noticed instead of silently diverging.
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// The SQLite schema, oldest first. Append only: an applied migration is
/// never edited, a change is a new file.
pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "routes",
        sql: include_str!("../migrations/sqlite/0001_routes.sql"),
    },
    Migration {
        version: 2,
        name: "identity",
        sql: include_str!("../migrations/sqlite/0002_identity.sql"),
    },
    Migration {
        version: 3,
        name: "route_changes",
        sql: include_str!("../migrations/sqlite/0003_route_changes.sql"),
    },
];

/// A row of `schema_migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) version: i64,
    pub(crate) name: String,
}

/// What a backend does for [`run`]. Methods return boxed `Send` futures
/// (as [`crate::Store`] does) so `run`'s future is `Send` whatever the
/// backend, which `async fn` in a trait cannot promise.
pub(crate) trait MigrationExecutor: Sync {
    /// Creates `schema_migrations` if it does not exist.
    fn prepare(&self) -> StoreFuture<'_, ()>;
    /// Every recorded migration.
    fn applied(&self) -> StoreFuture<'_, Vec<Applied>>;
    /// Runs `migration` and records it, in one transaction. Returns false,
    /// changing nothing, when another process recorded it first: two
    /// replicas starting together must not apply a script twice.
    fn apply<'a>(
        &'a self,
        migration: &'a Migration,
        applied_at: OffsetDateTime,
    ) -> StoreFuture<'a, bool>;
}

/// Applies every migration of `list` the database has not recorded yet, in
/// version order. Returns the versions this call applied (empty on re-run).
///
/// # Errors
/// A malformed list, a recorded history that disagrees with `list`, or the
/// database failing a script (that script's transaction is rolled back).
pub(crate) async fn run<E: MigrationExecutor>(
    executor: &E,
    list: &[Migration],
) -> Result<Vec<i64>, StoreError> {
    executor.prepare().await?;
    let applied = executor.applied().await?;
    let mut done = Vec::new();
    for migration in pending(list, &applied)? {
        if executor.apply(migration, OffsetDateTime::now_utc()).await? {
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "applied schema migration"
            );
            done.push(migration.version);
        }
    }
    Ok(done)
}

/// The migrations of `list` not in `applied`, oldest first.
///
/// A recorded version this build does not know is tolerated with a warning
/// (a newer replica migrated first during a rolling upgrade; migrations are
/// written to be additive), but a known version recorded under another name
/// means two builds disagree on history, and proceeding would guess.
pub(crate) fn pending<'a>(
    list: &'a [Migration],
    applied: &[Applied],
) -> Result<Vec<&'a Migration>, StoreError> {
    if let Some(w) = list.windows(2).find(|w| w[0].version >= w[1].version) {
        return Err(StoreError::Migration(format!(
            "embedded migrations out of order: {} before {}",
            w[0].version, w[1].version
        )));
    }
    for a in applied {
        match list.iter().find(|m| m.version == a.version) {
            Some(m) if m.name != a.name => {
                return Err(StoreError::Migration(format!(
                    "version {} is recorded as {:?} but this build calls it {:?}",
                    a.version, a.name, m.name
                )));
            }
            Some(_) => {}
            None => tracing::warn!(
                version = a.version,
                name = %a.name,
                "database has a schema migration this build does not know"
            ),
        }
    }
    Ok(list
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .collect())
}

/// [`MigrationExecutor`] for SQLite.
pub(crate) struct SqliteMigrator<'p> {
    pool: &'p SqlitePool,
}

impl<'p> SqliteMigrator<'p> {
    pub(crate) fn new(pool: &'p SqlitePool) -> Self {
        Self { pool }
    }
}

impl MigrationExecutor for SqliteMigrator<'_> {
    fn prepare(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INTEGER PRIMARY KEY,
                    name TEXT NOT NULL,
                    applied_at TEXT NOT NULL
                )",
            )
            .execute(self.pool)
            .await?;
            Ok(())
        })
    }

    fn applied(&self) -> StoreFuture<'_, Vec<Applied>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT version, name FROM schema_migrations ORDER BY version")
                .fetch_all(self.pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(Applied {
                        version: row.try_get("version")?,
                        name: row.try_get("name")?,
                    })
                })
                .collect()
        })
    }

    fn apply<'a>(
        &'a self,
        migration: &'a Migration,
        applied_at: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // IMMEDIATE takes the write lock up front, so the "already
            // applied?" check and the script see the database the commit
            // writes to.
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let already = sqlx::query("SELECT 1 FROM schema_migrations WHERE version = ?")
                .bind(migration.version)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if already {
                tx.rollback().await?;
                return Ok(false);
            }
            // Through `Executor` rather than `RawSql::execute`, whose generic
            // signature makes the future's `Send` unprovable here.
            (&mut *tx).execute(sqlx::raw_sql(migration.sql)).await?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            )
            .bind(migration.version)
            .bind(migration.name)
            .bind(timestamp::encode(applied_at)?)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Migration = Migration {
        version: 1,
        name: "a",
        sql: "",
    };
    const B: Migration = Migration {
        version: 2,
        name: "b",
        sql: "",
    };

    fn applied(version: i64, name: &str) -> Applied {
        Applied {
            version,
            name: name.to_owned(),
        }
    }

    #[test]
    fn pending_skips_recorded_versions_in_order() {
        let list = [A, B];
        let cases: [(&[Applied], &[i64]); 3] = [
            (&[], &[1, 2]),
            (&[applied(1, "a")], &[2]),
            (&[applied(1, "a"), applied(2, "b")], &[]),
        ];
        for (recorded, want) in cases {
            let got: Vec<i64> = pending(&list, recorded)
                .expect("consistent history")
                .iter()
                .map(|m| m.version)
                .collect();
            assert_eq!(got, want, "recorded {recorded:?}");
        }
    }

    #[test]
    fn pending_tolerates_versions_from_a_newer_build() {
        let got = pending(&[A], &[applied(1, "a"), applied(7, "future")]).expect("tolerated");
        assert!(got.is_empty());
    }

    #[test]
    fn pending_refuses_a_version_recorded_under_another_name() {
        let err = pending(&[A, B], &[applied(1, "not-a")]).expect_err("diverged history");
        assert!(matches!(err, StoreError::Migration(m) if m.contains("not-a")));
    }

    #[test]
    fn pending_refuses_an_unordered_list() {
        let err = pending(&[B, A], &[]).expect_err("unordered");
        assert!(matches!(err, StoreError::Migration(_)));
    }

    #[test]
    fn sqlite_list_is_numbered_from_one_without_gaps() {
        for (i, m) in SQLITE.iter().enumerate() {
            assert_eq!(usize::try_from(m.version).ok(), Some(i + 1), "{}", m.name);
        }
    }
}
