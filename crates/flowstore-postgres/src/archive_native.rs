//! What portable backup and restore do PostgreSQL's way (the rest is
//! `crates/storage/archive.rs`): a snapshot is one REPEATABLE READ READ ONLY
//! transaction, a load is one transaction; neither has a statement timeout, since a
//! large table may take longer than an ordinary statement may. A load empties tables
//! with TRUNCATE, locks them against other writers and brings sequences up to the
//! loaded keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use flowstore_core::archive::{
    self, quote as q, value, ArchiveBackend, RowLoader, SnapshotReader, Table,
};
use flowstore_core::StoreResult;
use serde_json::Value;

use crate::archive::{Loader, Snapshot};
use crate::dialect::Conn;
use crate::PostgresBackend;

/// What a load holds besides its transaction: nothing.
pub(crate) type LoadGuard = ();

#[async_trait]
impl ArchiveBackend for PostgresBackend {
    async fn snapshot(&self) -> StoreResult<Box<dyn SnapshotReader>> {
        let mut tx = self
            .direct_pool()
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await?;
        Ok(Box::new(Snapshot::new(tx)))
    }

    async fn loader(&self) -> StoreResult<Box<dyn RowLoader>> {
        let mut tx = self.direct_pool().begin().await?;
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await?;
        Ok(Box::new(Loader::new(tx, ())))
    }

    async fn native_columns(&self) -> StoreResult<Vec<(String, String, String)>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT c.table_name::text, c.column_name::text, c.data_type::text
               FROM information_schema.columns c
               JOIN information_schema.tables t USING (table_schema, table_name)
              WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
                AND c.is_generated = 'NEVER' AND c.table_name <> 'schema_migrations'
                -- The tasks' search vectors, derived from tasks by triggers as SQLite's
                -- FTS tables are: a restore of tasks writes them again.
                AND c.table_name <> 'task_search'
              ORDER BY c.table_name, c.ordinal_position",
        )
        .fetch_all(self.direct_pool())
        .await?;
        Ok(rows)
    }
}

/// A boolean as stored.
pub(crate) type Bool = bool;

/// A stored boolean as a portable one.
pub(crate) fn bool_value(b: Bool) -> bool {
    b
}

/// A JSON document as stored: JSONB (which reorders keys).
pub(crate) type Json = Value;

/// A stored JSON document in its portable (canonical) form.
pub(crate) fn json_value(j: Json, _column: &str) -> StoreResult<Value> {
    Ok(value::canonical_json(j))
}

/// An instant as stored: TIMESTAMPTZ.
pub(crate) type Instant = DateTime<Utc>;

/// A stored instant in its portable form.
pub(crate) fn instant_value(t: Instant, _column: &str) -> StoreResult<Value> {
    Ok(value::timestamp(t))
}

/// Deletes every row of `tables` (given in insert order), append-only ones included.
pub(crate) async fn clear(c: &mut Conn, tables: &[&Table]) -> StoreResult<()> {
    if tables.is_empty() {
        return Ok(());
    }
    // TRUNCATE fires no row triggers, so the append-only audit log empties too.
    // PostgreSQL refuses it for a table that a table outside the statement
    // references (however empty): those tables (of a restore of some tables
    // only) are emptied row by row instead, after the rest, in reverse insert
    // order; their foreign keys then act as declared.
    let closed = archive::closed_under_references(tables);
    if !closed.is_empty() {
        let names: Vec<String> = closed.iter().rev().map(|t| q(t.name)).collect();
        sqlx::query(&format!("TRUNCATE {}", names.join(", ")))
            .execute(&mut *c)
            .await?;
    }
    for t in tables.iter().rev() {
        if !closed.iter().any(|e| e.name == t.name) {
            sqlx::query(&format!("DELETE FROM {}", q(t.name)))
                .execute(&mut *c)
                .await?;
        }
    }
    Ok(())
}

/// Keeps other writers of `tables` (and a second restore) off until the load's
/// transaction ends; their readers go on.
pub(crate) async fn lock(c: &mut Conn, tables: &[&Table]) -> StoreResult<()> {
    if tables.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = tables.iter().map(|t| q(t.name)).collect();
    sqlx::query(&format!(
        "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
        names.join(", ")
    ))
    .execute(c)
    .await?;
    Ok(())
}

/// Before a load commits: serial keys were loaded as given, so their sequences are
/// moved past the highest.
pub(crate) async fn settle_load(c: &mut Conn) -> StoreResult<()> {
    let serials: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text,
                pg_get_serial_sequence(quote_ident(c.table_name), c.column_name)
           FROM information_schema.columns c
          WHERE c.table_schema = current_schema()
            AND pg_get_serial_sequence(quote_ident(c.table_name), c.column_name) IS NOT NULL",
    )
    .fetch_all(&mut *c)
    .await?;
    for (table, column, seq) in serials {
        let sql = format!(
            "SELECT setval($1::regclass, coalesce(max({c}), 1), max({c}) IS NOT NULL) FROM {t}",
            c = q(&column),
            t = q(&table)
        );
        sqlx::query(&sql).bind(seq).execute(&mut *c).await?;
    }
    Ok(())
}
