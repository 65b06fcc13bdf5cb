//! This backend's migrations and the runner that applies them. Each migration runs
//! in one transaction with its row in `schema_migrations`; a session-level advisory
//! lock keeps two migrators from interleaving.

use flowstore_core::migrate::{AppliedMigration, Migration};
use flowstore_core::model::audit::adopted_head;
use flowstore_core::store::KeySource;
use flowstore_core::{StoreError, StoreResult};
use futures::future::BoxFuture;
use sqlx::{Executor, PgConnection};

use crate::error::map_err;

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

/// The advisory lock key that migrators share ("flowstor" in ASCII).
pub const LOCK_KEY: i64 = 0x666c_6f77_7374_6f72;

/// The migration that adds the audit log's signed head.
const AUDIT_HEAD_VERSION: i64 = 11;

/// In the transaction of the migration that adds the head: signs the newest entry of
/// a log that already has entries as its head (the key is loaded only then).
async fn adopt_audit_head(c: &mut PgConnection, keys: &KeySource) -> StoreResult<()> {
    let tail = crate::audit::tail(&mut *c).await?;
    if let Some(h) = adopted_head(keys, tail, None)? {
        crate::audit::write_head(c, &h).await?;
    }
    Ok(())
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// Creates the bookkeeping table when missing.
pub fn ensure_table(conn: &mut PgConnection) -> BoxFuture<'_, StoreResult<()>> {
    Box::pin(async move {
        conn.execute(CREATE_TABLE).await.map_err(map_err)?;
        Ok(())
    })
}

/// The migrations applied to this database.
pub fn applied(conn: &mut PgConnection) -> BoxFuture<'_, StoreResult<Vec<AppliedMigration>>> {
    Box::pin(async move {
        let exists: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('schema_migrations')::text")
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
        if exists.is_none() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version",
        )
        .fetch_all(&mut *conn)
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
    })
}

/// Applies one migration and records it, in one transaction.
pub fn apply<'a>(
    conn: &'a mut PgConnection,
    m: &'a Migration,
    keys: &'a KeySource,
) -> BoxFuture<'a, StoreResult<()>> {
    Box::pin(async move {
        conn.execute("BEGIN").await.map_err(map_err)?;
        let result = async {
            conn.execute(m.up).await.map_err(|e| {
                StoreError::Migration(format!(
                    "migration {} ({}) failed: {}",
                    m.version,
                    m.name,
                    map_err(e)
                ))
            })?;
            if m.version == AUDIT_HEAD_VERSION {
                adopt_audit_head(&mut *conn, keys).await?;
            }
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(m.checksum())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            Ok(())
        }
        .await;
        finish(conn, result).await
    })
}

/// Reverts one migration and forgets it, in one transaction.
pub fn revert<'a>(conn: &'a mut PgConnection, m: &'a Migration) -> BoxFuture<'a, StoreResult<()>> {
    Box::pin(async move {
        conn.execute("BEGIN").await.map_err(map_err)?;
        let result = async {
            conn.execute(m.down).await.map_err(|e| {
                StoreError::Migration(format!(
                    "reverting {} ({}) failed: {}",
                    m.version,
                    m.name,
                    map_err(e)
                ))
            })?;
            sqlx::query("DELETE FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            Ok(())
        }
        .await;
        finish(conn, result).await
    })
}

async fn finish(conn: &mut PgConnection, result: StoreResult<()>) -> StoreResult<()> {
    match result {
        Ok(()) => {
            conn.execute("COMMIT").await.map_err(map_err)?;
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute("ROLLBACK").await;
            Err(e)
        }
    }
}
