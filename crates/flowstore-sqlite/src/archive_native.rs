//! What portable backup and restore do SQLite's way (the rest is
//! `crates/storage/archive.rs`): a snapshot is one read transaction (WAL keeps it
//! stable while writers go on), a load is one `BEGIN IMMEDIATE` transaction holding
//! the writer's place; booleans are 0 or 1, JSON documents and instants are text.

use async_trait::async_trait;
use flowstore_core::archive::{
    quote as q, value, ArchiveBackend, RowLoader, SnapshotReader, Table,
};
use flowstore_core::StoreResult;
use serde_json::Value;
use tokio::sync::OwnedMutexGuard;

use crate::archive::{Loader, Snapshot};
use crate::dialect::Conn;
use crate::SqliteBackend;

/// What a load holds besides its transaction: the process's writer lock.
pub(crate) type LoadGuard = OwnedMutexGuard<()>;

#[async_trait]
impl ArchiveBackend for SqliteBackend {
    async fn snapshot(&self) -> StoreResult<Box<dyn SnapshotReader>> {
        let mut tx = self.pool().begin().await?;
        // A deferred transaction takes its snapshot at the first read: take it now.
        sqlx::query("SELECT count(*) FROM sqlite_master")
            .execute(&mut *tx)
            .await?;
        Ok(Box::new(Snapshot::new(tx)))
    }

    async fn loader(&self) -> StoreResult<Box<dyn RowLoader>> {
        let guard = self.writer.clone().lock_owned().await;
        let tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        Ok(Box::new(Loader::new(tx, guard)))
    }

    async fn native_columns(&self) -> StoreResult<Vec<(String, String, String)>> {
        // pragma_table_list tells virtual (FTS) and shadow tables apart from ours.
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT t.name, c.name, upper(c.type)
               FROM pragma_table_list AS t, pragma_table_info(t.name) AS c
              WHERE t.schema = 'main' AND t.type = 'table'
                AND t.name NOT LIKE 'sqlite_%' AND t.name <> 'schema_migrations'
              ORDER BY t.name, c.cid",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }
}

/// A boolean as stored: 0 or 1.
pub(crate) type Bool = i64;

/// A stored boolean as a portable one.
pub(crate) fn bool_value(b: Bool) -> bool {
    b != 0
}

/// A JSON document as stored: checked text.
pub(crate) type Json = String;

/// A stored JSON document in its portable (canonical) form.
pub(crate) fn json_value(j: Json, column: &str) -> StoreResult<Value> {
    value::json_text(&j, column)
}

/// An instant as stored: text in the fixed form.
pub(crate) type Instant = String;

/// A stored instant in its portable form.
pub(crate) fn instant_value(t: Instant, column: &str) -> StoreResult<Value> {
    Ok(match value::to_timestamp(&Value::String(t), column)? {
        Some(t) => value::timestamp(t),
        None => Value::Null,
    })
}

/// Deletes every row of `tables` (given in insert order), in reverse order.
pub(crate) async fn clear(c: &mut Conn, tables: &[&Table]) -> StoreResult<()> {
    for t in tables.iter().rev() {
        // Lift for the moment the triggers that make a table append-only (DDL is
        // transactional on SQLite, so they come back on rollback too).
        let guards: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, sql FROM sqlite_master
              WHERE type = 'trigger' AND tbl_name = ?1 AND upper(sql) LIKE '%BEFORE DELETE%'",
        )
        .bind(t.name)
        .fetch_all(&mut *c)
        .await?;
        for (name, _) in &guards {
            sqlx::query(&format!("DROP TRIGGER {}", q(name)))
                .execute(&mut *c)
                .await?;
        }
        sqlx::query(&format!("DELETE FROM {}", q(t.name)))
            .execute(&mut *c)
            .await?;
        for (_, sql) in guards {
            sqlx::query(&sql).execute(&mut *c).await?;
        }
    }
    Ok(())
}

/// Nothing to lock: a load's write transaction already excludes every other writer.
pub(crate) async fn lock(_c: &mut Conn, _tables: &[&Table]) -> StoreResult<()> {
    Ok(())
}

/// Nothing to settle before a load commits: an AUTOINCREMENT key goes on from the
/// highest ever inserted, the loaded ones included.
pub(crate) async fn settle_load(_c: &mut Conn) -> StoreResult<()> {
    Ok(())
}
