//! The migrations and the steps of the runner that applies them, written once for
//! both backends; the SQL files are each backend's (`migrations/` of its crate, under
//! the same versions and names). Each migration runs in its own transaction together
//! with its row in `schema_migrations`, so a failed migration leaves the schema as it
//! was. What keeps two migrators apart is each backend's: SQLite's write lock, which
//! the migration's `BEGIN IMMEDIATE` takes before it checks its version, and
//! PostgreSQL's session advisory lock, held around the whole run (`backend.rs`).

use flowstore_core::migrate::{AppliedMigration, Migration};
use flowstore_core::model::audit::adopted_head;
use flowstore_core::store::KeySource;
use flowstore_core::time::{self, Timestamp};
use flowstore_core::{StoreError, StoreResult};
use sqlx::{Connection, Executor};

use crate::dialect::{sql, ts, Conn, MIGRATIONS_TABLE_EXISTS, MIGRATION_BEGIN, MIGRATION_COLUMNS};

macro_rules! migration {
    ($version:literal, $file:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            up: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $file,
                "_",
                $name,
                ".up.sql"
            )),
            down: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $file,
                "_",
                $name,
                ".down.sql"
            )),
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
    migration!(15, "0015", "change_feed"),
    migration!(16, "0016", "seed_compat"),
    migration!(17, "0017", "run_rollups"),
    migration!(18, "0018", "webhook_triggers"),
    migration!(19, "0019", "notification_preferences"),
    migration!(20, "0020", "run_names"),
    migration!(21, "0021", "audit_queue"),
    migration!(22, "0022", "lean_indexes"),
    migration!(23, "0023", "stats_per_statement"),
    migration!(24, "0024", "lighter_writes"),
    migration!(25, "0025", "task_updates"),
    migration!(26, "0026", "event_numbers"),
];

/// The migration that adds the audit log's signed head.
const AUDIT_HEAD_VERSION: i64 = 11;

/// In the transaction of the migration that adds the head: signs the newest entry of
/// a log that already has entries as its head (the key is loaded only then).
async fn adopt_audit_head(c: &mut Conn, keys: &KeySource) -> StoreResult<()> {
    let tail = crate::audit::tail(&mut *c).await?;
    if let Some(h) = adopted_head(keys, tail, None)? {
        crate::audit::write_head(c, &h).await?;
    }
    Ok(())
}

/// Creates the bookkeeping table when missing.
pub(crate) async fn ensure_table(c: &mut Conn) -> StoreResult<()> {
    let [version, applied_at] = MIGRATION_COLUMNS;
    c.execute(
        format!(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version {version} PRIMARY KEY, \
             name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at {applied_at})"
        )
        .as_str(),
    )
    .await?;
    Ok(())
}

/// The migrations applied to this database.
pub(crate) async fn applied(c: &mut Conn) -> StoreResult<Vec<AppliedMigration>> {
    let exists: bool = sqlx::query_scalar(MIGRATIONS_TABLE_EXISTS)
        .fetch_one(&mut *c)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, String, String, Timestamp)> = sqlx::query_as(
        "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version",
    )
    .fetch_all(&mut *c)
    .await?;
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
/// another migrator applied it first.
pub(crate) async fn apply(c: &mut Conn, m: &Migration, keys: &KeySource) -> StoreResult<bool> {
    let mut tx = c.begin_with(MIGRATION_BEGIN).await?;
    let already: Option<i64> = sqlx::query_scalar(sql!(
        "SELECT version FROM schema_migrations WHERE version = $1"
    ))
    .bind(m.version)
    .fetch_optional(&mut *tx)
    .await?;
    if already.is_some() {
        return Ok(false);
    }
    (&mut *tx).execute(m.up).await.map_err(|e| {
        StoreError::Migration(format!(
            "migration {} ({}) failed: {}",
            m.version,
            m.name,
            StoreError::from(e)
        ))
    })?;
    if m.version == AUDIT_HEAD_VERSION {
        adopt_audit_head(&mut tx, keys).await?;
    }
    sqlx::query(sql!(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at)
         VALUES ($1, $2, $3, $4)"
    ))
    .bind(m.version)
    .bind(m.name)
    .bind(m.checksum())
    .bind(ts(&time::now()))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Reverts one migration and forgets it, in one transaction.
pub(crate) async fn revert(c: &mut Conn, m: &Migration) -> StoreResult<()> {
    let mut tx = c.begin_with(MIGRATION_BEGIN).await?;
    (&mut *tx).execute(m.down).await.map_err(|e| {
        StoreError::Migration(format!(
            "reverting {} ({}) failed: {}",
            m.version,
            m.name,
            StoreError::from(e)
        ))
    })?;
    sqlx::query(sql!("DELETE FROM schema_migrations WHERE version = $1"))
        .bind(m.version)
        .execute(&mut *tx)
        .await?;
    Ok(tx.commit().await?)
}
