//! Whole-database operations on PostgreSQL: integrity checks and their repairs.
//! Stats, vacuum and retention are in `admin/maint.rs`.

use async_trait::async_trait;
use flowstore_core::admin::{
    AdminBackend, DbStats, Finding, FindingKind, TableCounts, CREDENTIAL_EXPIRY_NOTICE_DAYS,
};
use flowstore_core::time::Timestamp;
use flowstore_core::StoreResult;
use sqlx::PgConnection;

use crate::backend::PostgresBackend;
use crate::error::map_err;

mod maint;

const TERMINAL: &str = "('completed', 'failed', 'cancelled', 'timed_out')";

/// Tasks of a terminal run that are still open. A cancelled run's running attempts
/// stay running until their next heartbeat, so only an expired one counts there.
const OPEN_IN_TERMINAL: &str = "t.status IN ('pending', 'ready')
    OR (t.status = 'running' AND (r.status <> 'cancelled' OR t.lease_expires_at < $1))";

const DEPENDENCIES_DONE: &str = "NOT EXISTS (SELECT 1 FROM task_dependencies d
        JOIN tasks p ON p.id = d.depends_on_id
        WHERE d.task_id = t.id AND p.status <> 'completed')";

/// A pending task of a live run whose dependencies are done; in a sequential run
/// only when nothing else of the run is ready or running.
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

/// Buckets are whole UTC hours whatever the session's time zone.
const ROLLUP_RECOUNT: &str = "SELECT date_trunc('hour', recorded_at AT TIME ZONE 'UTC')
            AT TIME ZONE 'UTC' AS b,
        metric_name, coalesce(metric_type, '') AS mt, count(*) AS n,
        sum(metric_value)::float8 AS s, min(metric_value)::float8 AS mn,
        max(metric_value)::float8 AS mx
   FROM workflow_metrics WHERE metric_value IS NOT NULL GROUP BY 1, 2, 3";

/// Differs beyond rounding (the recount sums in another order).
fn differs(a: &str, b: &str) -> String {
    format!("(({a}) IS NULL) <> (({b}) IS NULL) OR abs(({a}) - ({b})) > 1e-6 * (1 + abs({b}))")
}

/// The probes: (kind, table, what is wrong, a query of one text column `ex`).
fn probes() -> Vec<(FindingKind, &'static str, &'static str, String)> {
    let rollup_mismatch = format!(
        "WITH c AS ({ROLLUP_RECOUNT}), h AS (SELECT min(b) AS b FROM c)
         SELECT r.metric_name || ' @ ' || r.bucket_start::text AS ex FROM ({ROLLUP_SUMS}) r
           LEFT JOIN c ON c.b = r.bucket_start AND c.metric_name = r.metric_name
                      AND c.mt = r.metric_type
          WHERE r.bucket_start >= (SELECT b FROM h)
            AND (coalesce(c.n, 0) <> r.sample_count OR {} OR {} OR {})
         UNION ALL
         SELECT c.metric_name || ' @ ' || c.b::text FROM c
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
            "SELECT e.id::text AS ex FROM events e WHERE e.run_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM workflow_executions r WHERE r.id = e.run_id)"
                .into(),
        ),
        (
            FindingKind::Orphan,
            "events",
            "task_id refers to no task",
            "SELECT e.id::text AS ex FROM events e WHERE e.task_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = e.task_id)"
                .into(),
        ),
        (
            FindingKind::CrossRunDependency,
            "task_dependencies",
            "a task depends on a task of another run",
            "SELECT d.task_id::text AS ex FROM task_dependencies d
               JOIN tasks a ON a.id = d.task_id JOIN tasks b ON b.id = d.depends_on_id
              WHERE a.run_id IS NOT NULL AND b.run_id IS NOT NULL AND a.run_id <> b.run_id"
                .into(),
        ),
        (
            FindingKind::ExpiredLease,
            "tasks",
            "running with a lease that has expired",
            "SELECT id::text AS ex FROM tasks WHERE status = 'running' AND lease_expires_at < $1"
                .into(),
        ),
        (
            FindingKind::TerminalRunOpenTasks,
            "workflow_executions",
            "a finished run with pending, ready or running tasks",
            format!(
                "SELECT r.id::text AS ex FROM workflow_executions r WHERE r.status IN {TERMINAL}
                   AND EXISTS (SELECT 1 FROM tasks t WHERE t.run_id = r.id AND ({OPEN_IN_TERMINAL}))"
            ),
        ),
        (
            FindingKind::PrematureTask,
            "tasks",
            "ready, running or completed before a dependency completed",
            format!(
                "SELECT t.id::text AS ex FROM tasks t WHERE t.run_id IS NOT NULL
                   AND t.status IN ('ready', 'running', 'completed') AND NOT {DEPENDENCIES_DONE}"
            ),
        ),
        (
            FindingKind::LostPromotion,
            "tasks",
            "pending although every dependency completed (a lost promotion)",
            format!(
                "SELECT t.id::text AS ex FROM tasks t JOIN workflow_executions r ON r.id = t.run_id
                  WHERE {}",
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
            "SELECT id::text AS ex FROM user_sessions WHERE expires_at < $1".into(),
        ),
        (
            FindingKind::StaleLock,
            "users",
            "accounts locked until a time that has passed",
            "SELECT id::text AS ex FROM users WHERE locked_until IS NOT NULL AND locked_until < $1"
                .into(),
        ),
        (
            FindingKind::ExpiredCredential,
            "credentials",
            "credentials past their expires_at: revealing them is refused",
            "SELECT id::text AS ex FROM credentials WHERE expires_at <= $1".into(),
        ),
        (
            FindingKind::ExpiringCredential,
            "credentials",
            "credentials that expire within 7 days",
            format!(
                "SELECT id::text AS ex FROM credentials WHERE expires_at > $1
                   AND expires_at <= $1 + interval '{CREDENTIAL_EXPIRY_NOTICE_DAYS} days'"
            ),
        ),
    ]
}

/// Runs one probe: how many rows and a few examples.
async fn probe(
    conn: &mut PgConnection,
    sql: &str,
    now: Timestamp,
) -> StoreResult<(u64, Vec<String>)> {
    let count_sql = format!("SELECT count(*) FROM ({sql}) q");
    let ex_sql = format!("SELECT ex FROM ({sql}) q LIMIT 5");
    let mut q = sqlx::query_scalar::<_, i64>(&count_sql);
    let mut e = sqlx::query_scalar::<_, Option<String>>(&ex_sql);
    if sql.contains("$1") {
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

/// Single-column foreign keys of the schema: (table, column, parent, parent column,
/// on-delete action code).
type ForeignKey = (String, String, String, String, String);

async fn foreign_keys(conn: &mut PgConnection) -> StoreResult<Vec<ForeignKey>> {
    sqlx::query_as(
        "SELECT quote_ident(c.conrelid::regclass::text), quote_ident(a.attname),
                quote_ident(c.confrelid::regclass::text), quote_ident(af.attname),
                c.confdeltype::text
           FROM pg_constraint c
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
           JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = c.confkey[1]
          WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace
            AND array_length(c.conkey, 1) = 1
          ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)
}

/// Rows of `t` whose `col` names no row of `p` (foreign keys are enforced on
/// PostgreSQL, but triggers can be switched off by a superuser's raw writes).
fn anti_join(_t: &str, col: &str, p: &str, pcol: &str) -> String {
    format!("x.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {p} y WHERE y.{pcol} = x.{col})")
}

async fn exec(conn: &mut PgConnection, sql: &str, now: Timestamp) -> StoreResult<u64> {
    let mut q = sqlx::query(sql);
    if sql.contains("$1") {
        q = q.bind(now);
    }
    Ok(q.execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected())
}

async fn repair_orphans(conn: &mut PgConnection, now: Timestamp) -> StoreResult<u64> {
    let mut n = 0;
    for (t, col, p, pcol, action) in foreign_keys(conn).await? {
        let cond = anti_join(&t, &col, &p, &pcol);
        // Repair as the foreign key would have: SET NULL keeps the row.
        let sql = if action == "n" {
            format!("UPDATE {t} AS x SET {col} = NULL WHERE {cond}")
        } else {
            format!("DELETE FROM {t} AS x WHERE {cond}")
        };
        n += exec(conn, &sql, now).await?;
    }
    n += exec(
        conn,
        "DELETE FROM events e WHERE (e.run_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM workflow_executions r WHERE r.id = e.run_id))
           OR (e.task_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = e.task_id))",
        now,
    )
    .await?;
    Ok(n)
}

#[async_trait]
impl AdminBackend for PostgresBackend {
    async fn find_problems(&self, now: Timestamp) -> StoreResult<(Vec<Finding>, Vec<String>)> {
        let mut conn = self.pool().acquire().await.map_err(map_err)?;
        let mut findings = Vec::new();
        let mut notes = Vec::new();
        for (t, col, p, pcol, _) in foreign_keys(&mut conn).await? {
            let sql = format!(
                "SELECT coalesce(to_jsonb(x)->>'id', x.ctid::text) AS ex FROM {t} x WHERE {}",
                anti_join(&t, &col, &p, &pcol)
            );
            let (count, examples) = probe(&mut conn, &sql, now).await?;
            if count > 0 {
                findings.push(Finding {
                    kind: FindingKind::Orphan,
                    table: t.clone(),
                    count,
                    examples,
                    detail: format!("{col} refers to a missing row of {p}"),
                });
            }
        }
        for (kind, table, detail, sql) in probes() {
            let (count, examples) = probe(&mut conn, &sql, now).await?;
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
        let invalid: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, t.relname::text FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
              WHERE NOT i.indisvalid AND c.relnamespace = current_schema()::regnamespace",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        for (index, table) in invalid {
            findings.push(Finding {
                kind: FindingKind::InvalidIndex,
                table,
                count: 1,
                examples: vec![index],
                detail: "index marked invalid (a failed CREATE INDEX CONCURRENTLY)".into(),
            });
        }
        findings.extend(maint::amcheck(&mut conn, &mut notes).await?);
        Ok((findings, notes))
    }

    async fn repair(&self, kind: FindingKind, now: Timestamp) -> StoreResult<Option<u64>> {
        let mut tx = self.pool().begin().await.map_err(map_err)?;
        let c = &mut *tx;
        let n = match kind {
            FindingKind::Orphan => repair_orphans(c, now).await?,
            FindingKind::CrossRunDependency => {
                exec(
                    c,
                    "DELETE FROM task_dependencies d USING tasks a, tasks b
                      WHERE a.id = d.task_id AND b.id = d.depends_on_id
                        AND a.run_id IS NOT NULL AND b.run_id IS NOT NULL AND a.run_id <> b.run_id",
                    now,
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
                        "UPDATE task_executions SET execution_status = 'cancelled', completed_at = $1
                          WHERE execution_status IN ('queued', 'running') AND task_id IN ({open})"
                    ),
                    now,
                )
                .await?;
                exec(
                    c,
                    &format!(
                        "UPDATE tasks SET status = 'cancelled', completed_at = $1, run_after = NULL,
                                lease_owner = NULL, lease_expires_at = NULL
                          WHERE id IN ({open})"
                    ),
                    now,
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
                    now,
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
                    now,
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
                    now,
                )
                .await?;
                n
            }
            FindingKind::WorkflowStatsDrift => {
                exec(c, "DELETE FROM workflow_stats", now).await?;
                exec(
                    c,
                    &format!(
                        "INSERT INTO workflow_stats (workflow_id, status, executions,
                            duration_count, duration_sum)
                         SELECT workflow_id, status, n, dc, ds FROM ({STATS_RECOUNT}) q"
                    ),
                    now,
                )
                .await?
            }
            FindingKind::MetricRollupDrift => {
                exec(
                    c,
                    &format!(
                        "DELETE FROM metric_rollups
                          WHERE bucket_start >= (SELECT min(b) FROM ({ROLLUP_RECOUNT}) q)"
                    ),
                    now,
                )
                .await?;
                exec(
                    c,
                    &format!(
                        "INSERT INTO metric_rollups (bucket_start, metric_name, metric_type,
                            sample_count, value_sum, value_min, value_max)
                         SELECT b, metric_name, mt, n, s, mn, mx FROM ({ROLLUP_RECOUNT}) q"
                    ),
                    now,
                )
                .await?
            }
            FindingKind::ExpiredSession => {
                exec(c, "DELETE FROM user_sessions WHERE expires_at < $1", now).await?
            }
            FindingKind::StaleLock => {
                exec(
                    c,
                    "UPDATE users SET locked_until = NULL, failed_login_count = 0
                      WHERE locked_until IS NOT NULL AND locked_until < $1",
                    now,
                )
                .await?
            }
            FindingKind::InvalidIndex => {
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT quote_ident(c.relname) FROM pg_index i
                       JOIN pg_class c ON c.oid = i.indexrelid
                      WHERE NOT i.indisvalid AND c.relnamespace = current_schema()::regnamespace",
                )
                .fetch_all(&mut *c)
                .await
                .map_err(map_err)?;
                for name in &names {
                    exec(c, &format!("REINDEX INDEX {name}"), now).await?;
                }
                names.len() as u64
            }
            // Leases go through the engine's reaper (see `admin::check`); a damaged
            // b-tree needs an operator; the audit log is evidence, never rewritten; a
            // credential's new secret must come from its owner.
            FindingKind::ExpiredLease
            | FindingKind::Corruption
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
        let url = self.url.clone();
        let out = path.to_path_buf();
        tokio::task::spawn_blocking(move || maint::pg_dump(&url, &out))
            .await
            .map_err(|e| flowstore_core::StoreError::internal(e.to_string()))?
    }
}
