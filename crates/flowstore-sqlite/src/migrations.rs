//! This backend's migrations and the runner that applies them. Each migration runs
//! in its own transaction together with its row in `schema_migrations`, so a failed
//! migration leaves the schema as it was.

use flowstore_core::migrate::{AppliedMigration, Migration};
use flowstore_core::model::audit::adopted_head;
use flowstore_core::store::KeySource;
use flowstore_core::StoreResult;
use futures::future::BoxFuture;
use sqlx::{Executor, SqliteConnection, SqlitePool};

use crate::error::map_err;
use crate::util::ts;

macro_rules! migration {
    ($version:literal, $file:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            up: include_str!(concat!("../migrations/", $file, "_", $name, ".up.sql")),
            down: include_str!(concat!("../migrations/", $file, "_", $name, ".down.sql")),
        }
    };
}

/// Every migration this backend knows, oldest first.
pub static MIGRATIONS: &[Migration] = &[
    migration!(1, "0001", "identity"),
    migration!(2, "0002", "projects_workflows"),
    migration!(3, "0003", "work"),
    migration!(4, "0004", "operations"),
    migration!(5, "0005", "engine"),
    migration!(6, "0006", "webhook_dispatch"),
    migration!(7, "0007", "performance"),
    migration!(8, "0008", "lease_index"),
    migration!(9, "0009", "trigger_conditions"),
    migration!(10, "0010", "counter_shards"),
    migration!(11, "0011", "audit_head"),
    migration!(12, "0012", "webhook_answers"),
    migration!(13, "0013", "attempt_outcome"),
    migration!(14, "0014", "key_not_null"),
];

/// The migration that adds the audit log's signed head.
const AUDIT_HEAD_VERSION: i64 = 11;

/// In the transaction of the migration that adds the head: signs the newest entry of
/// a log that already has entries as its head (the key is loaded only then).
async fn adopt_audit_head(c: &mut SqliteConnection, keys: &KeySource) -> StoreResult<()> {
    let tail = crate::audit::tail(&mut *c).await?;
    if let Some(h) = adopted_head(keys, tail, None)? {
        crate::audit::write_head(c, &h).await?;
    }
    Ok(())
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

/// Creates the bookkeeping table when missing.
pub async fn ensure_table(pool: &SqlitePool) -> StoreResult<()> {
    sqlx::query(CREATE_TABLE)
        .execute(pool)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// The migrations applied to this database.
pub async fn applied(pool: &SqlitePool) -> StoreResult<Vec<AppliedMigration>> {
    let exists: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
    )
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version",
    )
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    Ok(rows
        .into_iter()
        .map(|(version, name, checksum, applied_at)| AppliedMigration {
            version,
            name,
            checksum,
            applied_at,
        })
        .collect())
}

/// Applies one migration and records it, in one transaction; returns `false` when
/// another process applied it first. The IMMEDIATE transaction takes SQLite's write
/// lock before the check, so two migrators never apply the same version.
pub fn apply<'a>(
    pool: &'a SqlitePool,
    m: &'a Migration,
    keys: &'a KeySource,
) -> BoxFuture<'a, StoreResult<bool>> {
    Box::pin(async move {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let already: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM schema_migrations WHERE version = ?1")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if already.is_some() {
            return Ok(false);
        }
        (&mut *tx).execute(m.up).await.map_err(|e| {
            flowstore_core::StoreError::Migration(format!(
                "migration {} ({}) failed: {}",
                m.version,
                m.name,
                map_err(e)
            ))
        })?;
        if m.version == AUDIT_HEAD_VERSION {
            adopt_audit_head(&mut tx, keys).await?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)")
        .bind(m.version)
        .bind(m.name)
        .bind(m.checksum())
        .bind(ts(&flowstore_core::time::now()))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    })
}

/// Reverts one migration and forgets it, in one transaction.
pub fn revert<'a>(pool: &'a SqlitePool, m: &'a Migration) -> BoxFuture<'a, StoreResult<()>> {
    Box::pin(async move {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        (&mut *tx).execute(m.down).await.map_err(|e| {
            flowstore_core::StoreError::Migration(format!(
                "reverting {} ({}) failed: {}",
                m.version,
                m.name,
                map_err(e)
            ))
        })?;
        sqlx::query("DELETE FROM schema_migrations WHERE version = ?1")
            .bind(m.version)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    })
}
