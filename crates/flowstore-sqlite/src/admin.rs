//! Whole-database operations on SQLite: integrity checks and their repairs. Stats,
//! vacuum and retention are in `admin/maint.rs`.

use async_trait::async_trait;
use flowstore_core::admin::{AdminBackend, Finding, FindingKind};
use flowstore_core::time::Timestamp;
use flowstore_core::StoreResult;
use sqlx::{Sqlite, SqliteConnection, Transaction};

use crate::backend::SqliteBackend;
use crate::check::{self, Repaired};

mod maint;

/// One row of `PRAGMA foreign_key_check`.
type FkViolation = (String, Option<i64>, String, i64);

impl SqliteBackend {
    /// Opens a write transaction in the writer's place.
    async fn write_tx(&self) -> StoreResult<(Transaction<'static, Sqlite>, WriterGuard)> {
        let guard = self.writer.clone().lock_owned().await;
        let tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        Ok((tx, guard))
    }
}

type WriterGuard = tokio::sync::OwnedMutexGuard<()>;

impl SqliteBackend {
    /// The search index (FTS5 over the tasks' titles and descriptions) against the
    /// tasks themselves: FTS5's integrity check reports a missing or stale entry as
    /// corruption of the index, any other error is an error. The check is written
    /// as an INSERT, so the caller holds the writer's place (taken before the
    /// connection, as every writer takes them); it runs on the connection the rest
    /// of the check uses (on another one, a later check's `PRAGMA integrity_check`
    /// after a rebuild reported the index malformed). A database not yet migrated
    /// has no index to check.
    async fn search_drift(conn: &mut SqliteConnection) -> StoreResult<Option<Finding>> {
        let indexed: bool =
            sqlx::query_scalar("SELECT count(*) > 0 FROM sqlite_master WHERE name = 'tasks_fts'")
                .fetch_one(&mut *conn)
                .await?;
        if !indexed {
            return Ok(None);
        }
        let Err(e) =
            sqlx::query("INSERT INTO tasks_fts (tasks_fts, rank) VALUES ('integrity-check', 1)")
                .execute(&mut *conn)
                .await
        else {
            return Ok(None);
        };
        // SQLITE_CORRUPT and SQLITE_CORRUPT_VTAB.
        let code = e.as_database_error().and_then(|d| d.code());
        if !matches!(code.as_deref(), Some("11" | "267")) {
            return Err(e.into());
        }
        Ok(Some(Finding {
            kind: FindingKind::SearchDrift,
            table: "tasks_fts".into(),
            count: 1,
            examples: vec![e.to_string()],
            detail: "the full-text index does not match the tasks".into(),
        }))
    }
}

async fn repair_orphans(conn: &mut SqliteConnection) -> StoreResult<u64> {
    let rows: Vec<FkViolation> = sqlx::query_as("PRAGMA foreign_key_check")
        .fetch_all(&mut *conn)
        .await?;
    let mut n = 0;
    for (table, rowid, _parent, fkid) in rows {
        let Some(rowid) = rowid else { continue };
        // Repair as the foreign key would have: SET NULL keeps the row.
        let fks: Vec<(i64, String, String)> = sqlx::query_as(&format!(
            "SELECT id, \"from\", on_delete FROM pragma_foreign_key_list('{table}')"
        ))
        .fetch_all(&mut *conn)
        .await?;
        let set_null = fks
            .iter()
            .find(|(id, _, _)| *id == fkid)
            .filter(|(_, _, action)| action == "SET NULL");
        let sql = match set_null {
            Some((_, col, _)) => {
                format!("UPDATE \"{table}\" SET \"{col}\" = NULL WHERE rowid = ?1")
            }
            None => format!("DELETE FROM \"{table}\" WHERE rowid = ?1"),
        };
        n += sqlx::query(&sql)
            .bind(rowid)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    n += check::exec(
        conn,
        "DELETE FROM events WHERE (run_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM workflow_executions r WHERE r.id = events.run_id))
           OR (task_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = events.task_id))",
        &flowstore_core::time::now(),
    )
    .await?;
    Ok(n)
}

#[async_trait]
impl AdminBackend for SqliteBackend {
    async fn find_problems(&self, now: Timestamp) -> StoreResult<(Vec<Finding>, Vec<String>)> {
        // The writer's place first, then the connection, in the order every writer
        // takes them (the other way round, a pool of one connection would deadlock
        // with a writer waiting for it); held only for the search's check.
        let writer = self.writer.clone().lock_owned().await;
        let mut conn = self.pool().acquire().await?;
        let search = Self::search_drift(&mut conn).await?;
        drop(writer);
        let mut findings = Vec::new();
        let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut *conn)
            .await?;
        if integrity != ["ok"] {
            findings.push(Finding {
                kind: FindingKind::Corruption,
                table: "(database)".into(),
                count: integrity.len() as u64,
                examples: integrity.into_iter().take(5).collect(),
                detail: "PRAGMA integrity_check reports damage".into(),
            });
        }
        // SQLite lets a key that is not an INTEGER hold NULL: rows written so by
        // another client (or before the triggers that refuse them) are reported.
        for table in flowstore_core::archive::catalog() {
            // An older schema (a database not yet migrated) may lack the table or a
            // key column: what is not there is not checked.
            let present: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?1)")
                .bind(table.name)
                .fetch_all(&mut *conn)
                .await?;
            if !table.key.iter().all(|k| present.iter().any(|p| p == k)) {
                continue;
            }
            let Some(null) = table
                .key
                .iter()
                .map(|k| format!("{k} IS NULL"))
                .reduce(|a, b| format!("{a} OR {b}"))
            else {
                continue;
            };
            let rows: Vec<i64> = sqlx::query_scalar(&format!(
                "SELECT rowid FROM {} WHERE {null} LIMIT 1000",
                table.name
            ))
            .fetch_all(&mut *conn)
            .await?;
            if !rows.is_empty() {
                findings.push(Finding {
                    kind: FindingKind::NullKey,
                    table: table.name.to_string(),
                    count: rows.len() as u64,
                    examples: rows.iter().take(5).map(|r| format!("rowid {r}")).collect(),
                    detail: format!("rows whose key ({}) is NULL", table.key.join(", ")),
                });
            }
        }
        // Foreign keys can be off for raw writers; SQLite then keeps the orphans.
        let fk: Vec<FkViolation> = sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(&mut *conn)
            .await?;
        let mut by_table: std::collections::BTreeMap<(String, String), Vec<i64>> =
            Default::default();
        for (table, rowid, parent, _) in fk {
            by_table
                .entry((table, parent))
                .or_default()
                .push(rowid.unwrap_or(0));
        }
        for ((table, parent), rows) in by_table {
            findings.push(Finding {
                kind: FindingKind::Orphan,
                detail: format!("refers to a missing row of {parent} (PRAGMA foreign_key_check)"),
                count: rows.len() as u64,
                examples: rows.iter().take(5).map(|r| format!("rowid {r}")).collect(),
                table,
            });
        }
        findings.extend(check::find(&mut conn, &now).await?);
        findings.extend(search);
        Ok((findings, Vec::new()))
    }

    async fn repair(&self, kind: FindingKind, now: Timestamp) -> StoreResult<Option<u64>> {
        let (mut tx, _guard) = self.write_tx().await?;
        let c = &mut *tx;
        let n = match check::repair(c, kind, &now).await? {
            Repaired::Rows(n) => n,
            Repaired::Unsafe => return Ok(None),
            Repaired::Native => match kind {
                FindingKind::Orphan => repair_orphans(c).await?,
                FindingKind::SearchDrift => {
                    sqlx::query("INSERT INTO tasks_fts (tasks_fts) VALUES ('rebuild')")
                        .execute(&mut *c)
                        .await?;
                    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tasks")
                        .fetch_one(&mut *c)
                        .await? as u64
                }
                // Index states have no safe repair here.
                _ => return Ok(None),
            },
        };
        tx.commit().await?;
        Ok(Some(n))
    }
}
