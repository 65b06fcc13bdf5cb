//! Retention written once for both backends: which rows a pass deletes (finished
//! runs older than the cutoff with everything that belongs to them, or the run-less
//! history), in an order that leaves no row pointing at a deleted one.

use flowstore_core::admin::{RetentionPass, TableCounts};
use flowstore_core::time::Timestamp;
use flowstore_core::StoreResult;

use crate::check::TERMINAL;
use crate::dialect::{sql_fmt, sql_owned, ts, Conn, TEMP, UUID_TYPE};

/// Runs `pass` in the caller's transaction, which the caller commits after a deleting
/// pass and rolls back after a plan (a plan counts both kinds of rows, deleting
/// nothing); returns the rows per table.
pub(crate) async fn run(
    conn: &mut Conn,
    cutoff: &Timestamp,
    pass: RetentionPass,
) -> StoreResult<TableCounts> {
    let mut out = TableCounts::new();
    match pass {
        RetentionPass::Plan => {
            for runs in [true, false] {
                step(conn, cutoff, runs, None, true, &mut out).await?;
            }
        }
        RetentionPass::Runs(limit) => {
            step(conn, cutoff, true, Some(limit), false, &mut out).await?
        }
        RetentionPass::Loose(limit) => {
            step(conn, cutoff, false, Some(limit), false, &mut out).await?
        }
    }
    Ok(out)
}

/// Counts (`count_only`) or deletes up to `limit` finished runs older than `cutoff`
/// with everything that belongs to them (`runs`), or up to `limit` rows of each
/// run-less history table; adds the rows per table to `out`.
async fn step(
    conn: &mut Conn,
    cutoff: &Timestamp,
    runs: bool,
    limit: Option<u32>,
    count_only: bool,
    out: &mut TableCounts,
) -> StoreResult<()> {
    // No limit is the largest one: both databases take it.
    let limit = limit.map_or(i64::MAX, i64::from);
    let runs_sql = format!("SELECT id FROM {TEMP}.cleanup_runs");
    let tasks = format!("SELECT id FROM tasks WHERE run_id IN ({runs_sql})");
    // Numbered events only (one not yet numbered has not been seen by any reader),
    // by number from the oldest, up to the first not older than the cutoff: numbers
    // follow commits, so that is every older event but the few a slow commit
    // numbered after a newer one, which a later pass takes. Walking the numbers'
    // index needs no index of events by time, which every event's insert wrote.
    let events = "SELECT seq FROM events WHERE run_id IS NULL
                    AND seq < coalesce((SELECT n.seq FROM events n
                                         WHERE n.seq IS NOT NULL AND n.created_at >= $1
                                         ORDER BY n.seq LIMIT 1),
                                       (SELECT max(m.seq) + 1 FROM events m))
                  ORDER BY seq LIMIT $2";
    let steps: Vec<(&str, String)> = if runs {
        for s in [
            sql_fmt!(
                "CREATE TEMP TABLE IF NOT EXISTS cleanup_runs (id {UUID_TYPE} PRIMARY KEY, \
                 execution_id TEXT)"
            ),
            sql_fmt!("DELETE FROM {TEMP}.cleanup_runs"),
        ] {
            sqlx::query(s).execute(&mut *conn).await?;
        }
        // Only finished runs: pending and running ones are kept whatever their age.
        sqlx::query(sql_fmt!(
            "INSERT INTO {TEMP}.cleanup_runs (id, execution_id)
             SELECT id, execution_id FROM workflow_executions
              WHERE status IN {TERMINAL} AND end_time IS NOT NULL AND end_time < $1
              ORDER BY end_time LIMIT $2"
        ))
        .bind(ts(cutoff))
        .bind(limit)
        .execute(&mut *conn)
        .await?;
        vec![
            (
                "webhook_deliveries",
                format!("event_seq IN (SELECT seq FROM events WHERE run_id IN ({runs_sql}))"),
            ),
            ("events", format!("run_id IN ({runs_sql})")),
            (
                "logs",
                format!("execution_id IN ({runs_sql}) OR task_id IN ({tasks})"),
            ),
            (
                "workflow_metrics",
                format!("execution_id IN (SELECT execution_id FROM {TEMP}.cleanup_runs)"),
            ),
            (
                "task_executions",
                format!("run_id IN ({runs_sql}) OR task_id IN ({tasks})"),
            ),
            (
                "task_dependencies",
                format!("task_id IN ({tasks}) OR depends_on_id IN ({tasks})"),
            ),
            ("tasks", format!("run_id IN ({runs_sql})")),
            ("workflow_executions", format!("id IN ({runs_sql})")),
        ]
    } else {
        vec![
            ("webhook_deliveries", format!("event_seq IN ({events})")),
            ("events", format!("seq IN ({events})")),
            (
                "logs",
                "id IN (SELECT id FROM logs WHERE execution_id IS NULL AND task_id IS NULL
                         AND timestamp < $1 LIMIT $2)"
                    .into(),
            ),
            (
                "system_metrics",
                "id IN (SELECT id FROM system_metrics WHERE recorded_at < $1 LIMIT $2)".into(),
            ),
        ]
    };
    for (table, pred) in steps {
        let n = if count_only {
            let sql = sql_owned(format!("SELECT count(*) FROM {table} WHERE {pred}"));
            let mut q = sqlx::query_scalar::<_, i64>(&sql);
            if pred.contains("$1") {
                q = q.bind(ts(cutoff)).bind(limit);
            }
            q.fetch_one(&mut *conn).await? as u64
        } else {
            let sql = sql_owned(format!("DELETE FROM {table} WHERE {pred}"));
            let mut q = sqlx::query(&sql);
            if pred.contains("$1") {
                q = q.bind(ts(cutoff)).bind(limit);
            }
            q.execute(&mut *conn).await?.rows_affected()
        };
        *out.entry(table.to_string()).or_default() += n;
    }
    Ok(())
}
