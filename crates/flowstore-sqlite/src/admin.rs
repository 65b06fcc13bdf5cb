//! Whole-database operations on SQLite: integrity checks and their repairs. Stats,
//! vacuum and retention are in `admin/maint.rs`.

use async_trait::async_trait;
use flowstore_core::admin::{
    AdminBackend, DbStats, Finding, FindingKind, TableCounts, CREDENTIAL_EXPIRY_NOTICE_DAYS,
};
use flowstore_core::time::Timestamp;
use flowstore_core::StoreResult;
use sqlx::{Sqlite, SqliteConnection, Transaction};

use crate::backend::SqliteBackend;
use crate::error::map_err;
use crate::util::ts;

mod maint;

/// A UUID stored as a 16-byte BLOB, shown in its usual text form.
fn uuid_text(col: &str) -> String {
    format!(
        "lower(substr(hex({col}),1,8)||'-'||substr(hex({col}),9,4)||'-'||substr(hex({col}),13,4)
          ||'-'||substr(hex({col}),17,4)||'-'||substr(hex({col}),21))"
    )
}

const TERMINAL: &str = "('completed', 'failed', 'cancelled', 'timed_out')";

/// Tasks of a terminal run that are still open. A cancelled run's running attempts
/// stay running until their next heartbeat, so only an expired one counts there.
const OPEN_IN_TERMINAL: &str = "t.status IN ('pending', 'ready')
    OR (t.status = 'running' AND (r.status <> 'cancelled' OR t.lease_expires_at < ?1))";

const DEPENDENCIES_DONE: &str = "NOT EXISTS (SELECT 1 FROM task_dependencies d
        JOIN tasks p ON p.id = d.depends_on_id
        WHERE d.task_id = t.id AND p.status <> 'completed')";

/// The lost-promotion predicate over `t` (task) and `r` (its run): a pending task of
/// a live run whose dependencies are done; in a sequential run only when nothing else
/// of the run is ready or running.
fn lost_promotion() -> String {
    format!(
        "t.status = 'pending' AND r.status IN ('pending', 'running')
         AND r.cancel_requested_at IS NULL AND {DEPENDENCIES_DONE}
         AND (coalesce(r.strategy, 'parallel') <> 'sequential'
              OR NOT EXISTS (SELECT 1 FROM tasks o WHERE o.run_id = r.id
                              AND o.status IN ('ready', 'running')))"
    )
}

/// The run counters added up over their shards (see migration 0010).
const STATS_SUMS: &str = "SELECT workflow_id, status, sum(executions) AS executions,
        sum(duration_count) AS duration_count, sum(duration_sum) AS duration_sum
   FROM workflow_stats GROUP BY workflow_id, status";

/// The metric rollups merged over their shards (see migration 0010).
const ROLLUP_SUMS: &str = "SELECT bucket_start, metric_name, metric_type,
        sum(sample_count) AS sample_count, sum(value_sum) AS value_sum,
        min(value_min) AS value_min, max(value_max) AS value_max
   FROM metric_rollups GROUP BY bucket_start, metric_name, metric_type";

const STATS_RECOUNT: &str = "SELECT workflow_id, status, count(*) AS n,
        count(actual_duration) AS dc, coalesce(sum(actual_duration), 0) AS ds
   FROM workflow_executions GROUP BY workflow_id, status";

const ROLLUP_RECOUNT: &str = "SELECT substr(recorded_at, 1, 13) || ':00:00.000000Z' AS b,
        metric_name, coalesce(metric_type, '') AS mt, count(*) AS n,
        sum(metric_value) AS s, min(metric_value) AS mn, max(metric_value) AS mx
   FROM workflow_metrics WHERE metric_value IS NOT NULL GROUP BY 1, 2, 3";

/// Differs beyond rounding (the recount sums in another order).
fn differs(a: &str, b: &str) -> String {
    format!("(({a}) IS NULL) <> (({b}) IS NULL) OR abs(({a}) - ({b})) > 1e-6 * (1 + abs({b}))")
}

/// The probes: (kind, table, what is wrong, a query of one text column `ex`).
fn probes() -> Vec<(FindingKind, &'static str, &'static str, String)> {
    let id = uuid_text;
    let rollup_mismatch = format!(
        "WITH c AS ({ROLLUP_RECOUNT}), h AS (SELECT min(b) AS b FROM c)
         SELECT r.metric_name || ' @ ' || r.bucket_start AS ex FROM ({ROLLUP_SUMS}) r
           LEFT JOIN c ON c.b = r.bucket_start AND c.metric_name = r.metric_name
                      AND c.mt = r.metric_type
          WHERE r.bucket_start >= (SELECT b FROM h)
            AND (coalesce(c.n, 0) <> r.sample_count OR {} OR {} OR {})
         UNION ALL
         SELECT c.metric_name || ' @ ' || c.b FROM c
          WHERE NOT EXISTS (SELECT 1 FROM metric_rollups r WHERE r.bucket_start = c.b
                              AND r.metric_name = c.metric_name AND r.metric_type = c.mt)",
        differs("r.value_sum", "c.s"),
        differs("r.value_min", "c.mn"),
        differs("r.value_max", "c.mx"),
    );
    vec![
        (
            FindingKind::Orphan,
            "events",
            "run_id refers to no run",
            "SELECT CAST(e.id AS TEXT) AS ex FROM events e WHERE e.run_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM workflow_executions r WHERE r.id = e.run_id)"
                .into(),
        ),
        (
            FindingKind::Orphan,
            "events",
            "task_id refers to no task",
            "SELECT CAST(e.id AS TEXT) AS ex FROM events e WHERE e.task_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = e.task_id)"
                .into(),
        ),
        (
            FindingKind::CrossRunDependency,
            "task_dependencies",
            "a task depends on a task of another run",
            format!(
                "SELECT {} AS ex FROM task_dependencies d
                   JOIN tasks a ON a.id = d.task_id JOIN tasks b ON b.id = d.depends_on_id
                  WHERE a.run_id IS NOT NULL AND b.run_id IS NOT NULL AND a.run_id <> b.run_id",
                id("d.task_id")
            ),
        ),
        (
            FindingKind::ExpiredLease,
            "tasks",
            "running with a lease that has expired",
            format!(
                "SELECT {} AS ex FROM tasks WHERE status = 'running' AND lease_expires_at < ?1",
                id("id")
            ),
        ),
        (
            FindingKind::TerminalRunOpenTasks,
            "workflow_executions",
            "a finished run with pending, ready or running tasks",
            format!(
                "SELECT {} AS ex FROM workflow_executions r WHERE r.status IN {TERMINAL}
                   AND EXISTS (SELECT 1 FROM tasks t WHERE t.run_id = r.id AND ({OPEN_IN_TERMINAL}))",
                id("r.id")
            ),
        ),
        (
            FindingKind::PrematureTask,
            "tasks",
            "ready, running or completed before a dependency completed",
            format!(
                "SELECT {} AS ex FROM tasks t WHERE t.run_id IS NOT NULL
                   AND t.status IN ('ready', 'running', 'completed') AND NOT {DEPENDENCIES_DONE}",
                id("t.id")
            ),
        ),
        (
            FindingKind::LostPromotion,
            "tasks",
            "pending although every dependency completed (a lost promotion)",
            format!(
                "SELECT {} AS ex FROM tasks t JOIN workflow_executions r ON r.id = t.run_id
                  WHERE {}",
                id("t.id"),
                lost_promotion()
            ),
        ),
        (
            FindingKind::WorkflowStatsDrift,
            "workflow_stats",
            "counters differ from a recount of workflow_executions",
            format!(
                "WITH c AS ({STATS_RECOUNT})
                 SELECT s.workflow_id || '/' || s.status AS ex FROM ({STATS_SUMS}) s
                   LEFT JOIN c ON c.workflow_id = s.workflow_id AND c.status = s.status
                  WHERE coalesce(c.n, 0) <> s.executions OR coalesce(c.dc, 0) <> s.duration_count
                     OR coalesce(c.ds, 0) <> s.duration_sum
                 UNION ALL
                 SELECT c.workflow_id || '/' || c.status FROM c
                  WHERE NOT EXISTS (SELECT 1 FROM workflow_stats s
                                     WHERE s.workflow_id = c.workflow_id AND s.status = c.status)"
            ),
        ),
        (
            FindingKind::MetricRollupDrift,
            "metric_rollups",
            "hourly rollups differ from a recount of workflow_metrics (buckets older than the \
             oldest sample are kept history and not compared)",
            rollup_mismatch,
        ),
        (
            FindingKind::ExpiredSession,
            "user_sessions",
            "expired sessions still stored",
            format!(
                "SELECT {} AS ex FROM user_sessions WHERE expires_at < ?1",
                id("id")
            ),
        ),
        (
            FindingKind::StaleLock,
            "users",
            "accounts locked until a time that has passed",
            format!(
                "SELECT {} AS ex FROM users WHERE locked_until IS NOT NULL AND locked_until < ?1",
                id("id")
            ),
        ),
        (
            FindingKind::ExpiredCredential,
            "credentials",
            "credentials past their expires_at: revealing them is refused",
            format!(
                "SELECT {} AS ex FROM credentials WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                id("id")
            ),
        ),
        (
            FindingKind::ExpiringCredential,
            "credentials",
            "credentials that expire within 7 days",
            // Instants are fixed-width text, so text order is time order.
            format!(
                "SELECT {} AS ex FROM credentials WHERE expires_at > ?1
                   AND expires_at <= strftime('%Y-%m-%dT%H:%M:%f000Z', ?1, '+{CREDENTIAL_EXPIRY_NOTICE_DAYS} days')",
                id("id")
            ),
        ),
    ]
}

/// Runs one probe: how many rows and a few examples.
async fn probe(
    conn: &mut SqliteConnection,
    sql: &str,
    now: &str,
) -> StoreResult<(u64, Vec<String>)> {
    let count_sql = format!("SELECT count(*) FROM ({sql})");
    let ex_sql = format!("SELECT ex FROM ({sql}) LIMIT 5");
    let mut q = sqlx::query_scalar::<_, i64>(&count_sql);
    let mut e = sqlx::query_scalar::<_, Option<String>>(&ex_sql);
    if sql.contains("?1") {
        q = q.bind(now);
        e = e.bind(now);
    }
    let n = q.fetch_one(&mut *conn).await.map_err(map_err)?;
    if n == 0 {
        return Ok((0, Vec::new()));
    }
    let ex = e.fetch_all(&mut *conn).await.map_err(map_err)?;
    Ok((n as u64, ex.into_iter().flatten().collect()))
}

/// One row of `PRAGMA foreign_key_check`.
type FkViolation = (String, Option<i64>, String, i64);

impl SqliteBackend {
    /// Opens a write transaction in the writer's place.
    async fn write_tx(&self) -> StoreResult<(Transaction<'static, Sqlite>, WriterGuard)> {
        let guard = self.writer.clone().lock_owned().await;
        let tx = self
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        Ok((tx, guard))
    }
}

type WriterGuard = tokio::sync::OwnedMutexGuard<()>;

async fn repair_orphans(conn: &mut SqliteConnection) -> StoreResult<u64> {
    let rows: Vec<FkViolation> = sqlx::query_as("PRAGMA foreign_key_check")
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    let mut n = 0;
    for (table, rowid, _parent, fkid) in rows {
        let Some(rowid) = rowid else { continue };
        // Repair as the foreign key would have: SET NULL keeps the row.
        let fks: Vec<(i64, String, String)> = sqlx::query_as(&format!(
            "SELECT id, \"from\", on_delete FROM pragma_foreign_key_list('{table}')"
        ))
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
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
            .await
            .map_err(map_err)?
            .rows_affected();
    }
    n += exec(
        conn,
        "DELETE FROM events WHERE (run_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM workflow_executions r WHERE r.id = events.run_id))
           OR (task_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = events.task_id))",
        "",
    )
    .await?;
    Ok(n)
}

async fn exec(conn: &mut SqliteConnection, sql: &str, now: &str) -> StoreResult<u64> {
    let mut q = sqlx::query(sql);
    if sql.contains("?1") {
        q = q.bind(now);
    }
    Ok(q.execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected())
}

#[async_trait]
impl AdminBackend for SqliteBackend {
    async fn find_problems(&self, now: Timestamp) -> StoreResult<(Vec<Finding>, Vec<String>)> {
        let now = ts(&now);
        let mut conn = self.pool().acquire().await.map_err(map_err)?;
        let mut findings = Vec::new();
        let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
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
                .await
                .map_err(map_err)?;
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
            .await
            .map_err(map_err)?;
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
            .await
            .map_err(map_err)?;
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
        for (kind, table, detail, sql) in probes() {
            let (count, examples) = probe(&mut conn, &sql, &now).await?;
            if count > 0 {
                findings.push(Finding {
                    kind,
                    table: table.into(),
                    count,
                    examples,
                    detail: detail.into(),
                });
            }
        }
        Ok((findings, Vec::new()))
    }

    async fn repair(&self, kind: FindingKind, now: Timestamp) -> StoreResult<Option<u64>> {
        let now = ts(&now);
        let (mut tx, _guard) = self.write_tx().await?;
        let c = &mut *tx;
        let n = match kind {
            FindingKind::Orphan => repair_orphans(c).await?,
            FindingKind::CrossRunDependency => {
                exec(
                    c,
                    "DELETE FROM task_dependencies WHERE rowid IN (
                        SELECT d.rowid FROM task_dependencies d
                          JOIN tasks a ON a.id = d.task_id JOIN tasks b ON b.id = d.depends_on_id
                         WHERE a.run_id IS NOT NULL AND b.run_id IS NOT NULL
                           AND a.run_id <> b.run_id)",
                    &now,
                )
                .await?
            }
            FindingKind::TerminalRunOpenTasks => {
                let open = format!(
                    "SELECT t.id FROM tasks t JOIN workflow_executions r ON r.id = t.run_id
                      WHERE r.status IN {TERMINAL} AND ({OPEN_IN_TERMINAL})"
                );
                exec(
                    c,
                    &format!(
                        "UPDATE task_executions SET execution_status = 'cancelled', completed_at = ?1
                          WHERE execution_status IN ('queued', 'running') AND task_id IN ({open})"
                    ),
                    &now,
                )
                .await?;
                exec(
                    c,
                    &format!(
                        "UPDATE tasks SET status = 'cancelled', completed_at = ?1, run_after = NULL,
                                lease_owner = NULL, lease_expires_at = NULL
                          WHERE id IN ({open})"
                    ),
                    &now,
                )
                .await?
            }
            FindingKind::PrematureTask => {
                // Only a ready task can safely wait again; running and completed work is
                // left for an operator to judge.
                exec(
                    c,
                    &format!(
                        "UPDATE tasks AS t SET status = 'pending', run_after = NULL
                          WHERE t.run_id IS NOT NULL AND t.status = 'ready'
                            AND NOT {DEPENDENCIES_DONE}"
                    ),
                    &now,
                )
                .await?
            }
            FindingKind::LostPromotion => {
                let mut n = exec(
                    c,
                    &format!(
                        "UPDATE tasks SET status = 'ready' WHERE id IN (
                           SELECT t.id FROM tasks t JOIN workflow_executions r ON r.id = t.run_id
                            WHERE coalesce(r.strategy, 'parallel') <> 'sequential' AND {})",
                        lost_promotion()
                    ),
                    &now,
                )
                .await?;
                // A sequential run gets only its next step, as the engine would give it.
                n += exec(
                    c,
                    &format!(
                        "UPDATE tasks SET status = 'ready' WHERE id IN (
                           SELECT (SELECT t.id FROM tasks t WHERE t.run_id = r.id AND {}
                                    ORDER BY t.execution_order, t.id LIMIT 1)
                             FROM workflow_executions r WHERE r.strategy = 'sequential'
                              AND r.status IN ('pending', 'running'))",
                        lost_promotion()
                    ),
                    &now,
                )
                .await?;
                n
            }
            FindingKind::WorkflowStatsDrift => {
                exec(c, "DELETE FROM workflow_stats", &now).await?;
                exec(
                    c,
                    &format!(
                        "INSERT INTO workflow_stats (workflow_id, status, executions,
                            duration_count, duration_sum)
                         SELECT workflow_id, status, n, dc, ds FROM ({STATS_RECOUNT})"
                    ),
                    &now,
                )
                .await?
            }
            FindingKind::MetricRollupDrift => {
                exec(
                    c,
                    &format!(
                        "DELETE FROM metric_rollups
                          WHERE bucket_start >= (SELECT min(b) FROM ({ROLLUP_RECOUNT}))"
                    ),
                    &now,
                )
                .await?;
                exec(
                    c,
                    &format!(
                        "INSERT INTO metric_rollups (bucket_start, metric_name, metric_type,
                            sample_count, value_sum, value_min, value_max)
                         SELECT b, metric_name, mt, n, s, mn, mx FROM ({ROLLUP_RECOUNT})"
                    ),
                    &now,
                )
                .await?
            }
            FindingKind::ExpiredSession => {
                exec(c, "DELETE FROM user_sessions WHERE expires_at < ?1", &now).await?
            }
            FindingKind::StaleLock => {
                exec(
                    c,
                    "UPDATE users SET locked_until = NULL, failed_login_count = 0
                      WHERE locked_until IS NOT NULL AND locked_until < ?1",
                    &now,
                )
                .await?
            }
            // Leases go through the engine's reaper (see `admin::check`); corrupt pages
            // and index states have no safe repair here; the audit log is evidence,
            // never rewritten; a credential's new secret must come from its owner.
            FindingKind::ExpiredLease
            | FindingKind::Corruption
            | FindingKind::InvalidIndex
            | FindingKind::BrokenAuditChain
            | FindingKind::MigrationDrift
            | FindingKind::NullKey
            | FindingKind::ExpiredCredential
            | FindingKind::ExpiringCredential => return Ok(None),
        };
        tx.commit().await.map_err(map_err)?;
        Ok(Some(n))
    }

    async fn stats(&self) -> StoreResult<DbStats> {
        maint::stats(self).await
    }

    async fn database_bytes(&self) -> StoreResult<u64> {
        maint::database_bytes(self).await
    }

    async fn vacuum(&self) -> StoreResult<Vec<String>> {
        maint::vacuum(self, true).await
    }

    async fn cleanup_plan(&self, cutoff: Timestamp) -> StoreResult<TableCounts> {
        maint::cleanup(self, cutoff, None).await
    }

    async fn cleanup_runs(&self, cutoff: Timestamp, limit: u32) -> StoreResult<TableCounts> {
        maint::cleanup(self, cutoff, Some((true, limit))).await
    }

    async fn cleanup_loose(&self, cutoff: Timestamp, limit: u32) -> StoreResult<TableCounts> {
        maint::cleanup(self, cutoff, Some((false, limit))).await
    }

    async fn reclaim(&self) -> StoreResult<()> {
        maint::vacuum(self, false).await.map(|_| ())
    }

    async fn native_backup(&self, path: &std::path::Path) -> StoreResult<()> {
        let target = path.to_string_lossy().replace('\'', "''");
        sqlx::query(&format!("VACUUM INTO '{target}'"))
            .execute(self.pool())
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
