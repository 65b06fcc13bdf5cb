//! What `flowstore check` probes and repairs the same way on both databases: the
//! engine's invariants (open tasks of finished runs, premature and lost promotions),
//! the counters against a recount, expired sessions and locks, credentials. Each
//! backend adds its own checks (integrity of pages and indexes, foreign keys left
//! unenforced) and repairs orphans its own way.

use flowstore_core::admin::{FindingKind, CREDENTIAL_EXPIRY_NOTICE_DAYS};
use flowstore_core::time::Timestamp;
use flowstore_core::StoreResult;

use crate::dialect::{hour_bucket, id_text, plus_days, sql_owned, ts, Conn};

pub(crate) const TERMINAL: &str = "('completed', 'failed', 'cancelled', 'timed_out')";

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

/// The metric samples recounted into hourly buckets (whole UTC hours).
fn rollup_recount() -> String {
    format!(
        "SELECT {} AS b,
            metric_name, coalesce(metric_type, '') AS mt, count(*) AS n,
            sum(metric_value)::float8 AS s, min(metric_value)::float8 AS mn,
            max(metric_value)::float8 AS mx
         FROM workflow_metrics WHERE metric_value IS NOT NULL GROUP BY 1, 2, 3",
        hour_bucket("recorded_at")
    )
}

/// Differs beyond rounding (the recount sums in another order).
fn differs(a: &str, b: &str) -> String {
    format!("(({a}) IS NULL) <> (({b}) IS NULL) OR abs(({a}) - ({b})) > 1e-6 * (1 + abs({b}))")
}

/// The probes: (kind, table, what is wrong, a query of one text column `ex`).
/// The probe of events whose `column` names no row of `table` (the outbox's
/// references are not foreign keys): `says` is the finding's text.
fn orphan_events(
    column: &str,
    table: &str,
    says: &'static str,
) -> (FindingKind, &'static str, &'static str, String) {
    let sql = format!(
        "SELECT CAST(e.id AS TEXT) AS ex FROM events e WHERE e.{column} IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM {table} x WHERE x.id = e.{column})"
    );
    (FindingKind::Orphan, "events", says, sql)
}

fn probes() -> Vec<(FindingKind, &'static str, &'static str, String)> {
    let id = id_text;
    let rollup_mismatch = format!(
        "WITH c AS ({}), h AS (SELECT min(b) AS b FROM c)
         SELECT r.metric_name || ' @ ' || CAST(r.bucket_start AS TEXT) AS ex FROM ({ROLLUP_SUMS}) r
           LEFT JOIN c ON c.b = r.bucket_start AND c.metric_name = r.metric_name
                      AND c.mt = r.metric_type
          WHERE r.bucket_start >= (SELECT b FROM h)
            AND (coalesce(c.n, 0) <> r.sample_count OR {} OR {} OR {})
         UNION ALL
         SELECT c.metric_name || ' @ ' || CAST(c.b AS TEXT) FROM c
          WHERE NOT EXISTS (SELECT 1 FROM metric_rollups r WHERE r.bucket_start = c.b
                              AND r.metric_name = c.metric_name AND r.metric_type = c.mt)",
        rollup_recount(),
        differs("r.value_sum", "c.s"),
        differs("r.value_min", "c.mn"),
        differs("r.value_max", "c.mx"),
    );
    vec![
        orphan_events("run_id", "workflow_executions", "run_id refers to no run"),
        orphan_events("task_id", "tasks", "task_id refers to no task"),
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
            format!("SELECT {} AS ex FROM tasks WHERE status = 'running' AND lease_expires_at < $1", id("id")),
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
            format!("SELECT {} AS ex FROM user_sessions WHERE expires_at < $1", id("id")),
        ),
        (
            FindingKind::StaleLock,
            "users",
            "accounts locked until a time that has passed",
            format!("SELECT {} AS ex FROM users WHERE locked_until IS NOT NULL AND locked_until < $1", id("id")),
        ),
        (
            FindingKind::ExpiredCredential,
            "credentials",
            "credentials past their expires_at: revealing them is refused",
            format!("SELECT {} AS ex FROM credentials WHERE expires_at IS NOT NULL AND expires_at <= $1", id("id")),
        ),
        (
            FindingKind::ExpiringCredential,
            "credentials",
            "credentials that expire within 7 days",
            format!(
                "SELECT {} AS ex FROM credentials WHERE expires_at > $1 AND expires_at <= {}",
                id("id"),
                plus_days("$1", CREDENTIAL_EXPIRY_NOTICE_DAYS)
            ),
        ),
    ]
}

/// Runs one probe: how many rows and a few examples.
pub(crate) async fn probe(
    conn: &mut Conn,
    sql: &str,
    now: &Timestamp,
) -> StoreResult<(u64, Vec<String>)> {
    let count_sql = sql_owned(format!("SELECT count(*) FROM ({sql}) q"));
    let ex_sql = sql_owned(format!("SELECT ex FROM ({sql}) q LIMIT 5"));
    let mut q = sqlx::query_scalar::<_, i64>(&count_sql);
    let mut e = sqlx::query_scalar::<_, Option<String>>(&ex_sql);
    if sql.contains("$1") {
        q = q.bind(ts(now));
        e = e.bind(ts(now));
    }
    let n = q.fetch_one(&mut *conn).await?;
    if n == 0 {
        return Ok((0, Vec::new()));
    }
    let ex = e.fetch_all(&mut *conn).await?;
    Ok((n as u64, ex.into_iter().flatten().collect()))
}

/// What [`repair`] did with a kind of finding.
pub(crate) enum Repaired {
    /// Changed this many rows.
    Rows(u64),
    /// The kind has no safe repair here.
    Unsafe,
    /// The kind is repaired by each database's own means.
    Native,
}

/// Repairs every finding of `kind` on `c` (the caller's transaction).
pub(crate) async fn repair(
    c: &mut Conn,
    kind: FindingKind,
    now: &Timestamp,
) -> StoreResult<Repaired> {
    let n = match kind {
        FindingKind::CrossRunDependency => {
            exec(
                c,
                "DELETE FROM task_dependencies WHERE (task_id, depends_on_id) IN (
                    SELECT d.task_id, d.depends_on_id FROM task_dependencies d
                      JOIN tasks a ON a.id = d.task_id JOIN tasks b ON b.id = d.depends_on_id
                     WHERE a.run_id IS NOT NULL AND b.run_id IS NOT NULL
                       AND a.run_id <> b.run_id)",
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
                      WHERE bucket_start >= (SELECT min(b) FROM ({}) q)",
                    rollup_recount()
                ),
                now,
            )
            .await?;
            exec(
                c,
                &format!(
                    "INSERT INTO metric_rollups (bucket_start, metric_name, metric_type,
                        sample_count, value_sum, value_min, value_max)
                     SELECT b, metric_name, mt, n, s, mn, mx FROM ({}) q",
                    rollup_recount()
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
        FindingKind::Orphan | FindingKind::InvalidIndex | FindingKind::SearchDrift => {
            return Ok(Repaired::Native)
        }
        // Leases go through the engine's reaper (see `admin::check`); damaged pages
        // need an operator; the audit log is evidence, never rewritten; a
        // credential's new secret must come from its owner.
        FindingKind::ExpiredLease
        | FindingKind::Corruption
        | FindingKind::BrokenAuditChain
        | FindingKind::MigrationDrift
        | FindingKind::NullKey
        | FindingKind::ExpiredCredential
        | FindingKind::ExpiringCredential => return Ok(Repaired::Unsafe),
    };
    Ok(Repaired::Rows(n))
}

/// Runs one statement of a repair, binding `now` as `$1` when it uses it.
pub(crate) async fn exec(c: &mut Conn, sql: &str, now: &Timestamp) -> StoreResult<u64> {
    let sql = sql_owned(sql.to_string());
    let mut q = sqlx::query(&sql);
    if sql.contains("$1") || sql.contains("?1") {
        q = q.bind(ts(now));
    }
    Ok(q.execute(&mut *c).await?.rows_affected())
}

/// Runs every shared probe; returns the findings of those that found something.
pub(crate) async fn find(
    c: &mut Conn,
    now: &Timestamp,
) -> StoreResult<Vec<flowstore_core::admin::Finding>> {
    let mut findings = Vec::new();
    for (kind, table, detail, sql) in probes() {
        let (count, examples) = probe(c, &sql, now).await?;
        if count > 0 {
            findings.push(flowstore_core::admin::Finding {
                kind,
                table: table.into(),
                count,
                examples,
                detail: detail.into(),
            });
        }
    }
    Ok(findings)
}
