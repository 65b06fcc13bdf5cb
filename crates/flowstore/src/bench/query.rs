//! The `query` workload: a database bulk-loaded with runs (ten metrics each over 30
//! days, one task per ten runs), then p50/p99 of the reads callers make most.

use std::time::{Duration, Instant};

use chrono::DurationRound;
use flowstore_core::model::metric::AggregateFilter;
use flowstore_core::model::run::{RunStatus, StatsFilter};
use flowstore_core::model::task::query::TaskFilter;
use flowstore_core::{PageRequest, StoreResult};
use rand::Rng;
use serde_json::json;

use super::{bar, db_err, fail, BenchOptions, Raw, Report, Row, Samples, Target};

/// Runs per loading statement (and transaction).
const CHUNK: u64 = 50_000;
/// Page size of the listing queries.
const PAGE: u32 = 50;
/// The deep page asked for.
const DEEP_PAGE: u32 = 200;
/// The workflow the listing and statistics queries look at.
const WF: &str = "bench-wf-3";
/// The longest one query is repeated.
const BUDGET: Duration = Duration::from_secs(20);

const PG_RUNS: &str = "
INSERT INTO workflow_executions (id, execution_id, workflow_id, workflow_name, status, strategy,
    start_time, end_time, actual_duration, created_at, updated_at)
SELECT gen_random_uuid(), 'bench-run-' || i, 'bench-wf-' || (i % 10), 'bench', st, 'parallel', t0,
       CASE WHEN st = 'running' THEN NULL ELSE t0 + d * interval '1 millisecond' END,
       CASE WHEN st IN ('completed', 'failed') THEN d END, t0, t0
  FROM (SELECT i,
               CASE WHEN i % 20 < 14 THEN 'completed' WHEN i % 20 < 16 THEN 'failed'
                    WHEN i % 20 < 18 THEN 'running' WHEN i % 20 = 18 THEN 'cancelled'
                    ELSE 'timed_out' END AS st,
               now() - (i % 30) * interval '1 day' - (i % 86400) * interval '1 second' AS t0,
               ((i * 37) % 60000)::int AS d
          FROM generate_series($1::bigint, $2::bigint) AS i) s";

const PG_METRICS: &str = "
INSERT INTO workflow_metrics (execution_id, metric_name, metric_value, metric_unit, metric_type, recorded_at)
SELECT 'bench-run-' || i, 'metric_' || m, ((i * 7 + m * 13) % 1000) / 10.0, 'ms',
       (ARRAY['performance', 'resource', 'quality', 'custom'])[1 + m % 4],
       now() - (i % 30) * interval '1 day' - ((i * (m + 1)) % 86400) * interval '1 second'
  FROM generate_series($1::bigint, $2::bigint) AS i, generate_series(0, 9) AS m";

const PG_TASKS: &str = "
INSERT INTO tasks (id, run_id, title, description, status, handler_type, requirements)
SELECT gen_random_uuid(), r.id,
       (ARRAY['deploy', 'build', 'test', 'release'])[1 + (i / 10) % 4] || ' service ' || i,
       'bench task for run ' || i, 'completed', 'bench-query',
       jsonb_build_object('os', CASE WHEN i % 20 = 0 THEN 'linux' ELSE 'macos' END,
                          'tier', CASE WHEN i % 40 = 0 THEN 'gold' ELSE 'silver' END)
  FROM generate_series($1::bigint, $2::bigint) AS i
  JOIN workflow_executions r ON r.execution_id = 'bench-run-' || i
 WHERE i % 10 = 0";

const PG_ROLLUPS: &str = "
INSERT INTO metric_rollups (bucket_start, metric_name, metric_type, sample_count, value_sum, value_min, value_max)
SELECT date_trunc('hour', recorded_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', metric_name,
       coalesce(metric_type, ''), count(*), sum(metric_value)::float8, min(metric_value)::float8,
       max(metric_value)::float8
  FROM workflow_metrics WHERE metric_value IS NOT NULL AND metric_name LIKE 'metric_%'
 GROUP BY 1, 2, 3";

const SQ_SERIES: &str =
    "WITH RECURSIVE s(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM s WHERE i < ?2)";

fn sq_runs() -> String {
    format!(
        "INSERT INTO workflow_executions (id, execution_id, workflow_id, workflow_name, status,
            strategy, start_time, end_time, actual_duration, created_at, updated_at)
         {SQ_SERIES}, v AS (
            SELECT i,
                   CASE WHEN i % 20 < 14 THEN 'completed' WHEN i % 20 < 16 THEN 'failed'
                        WHEN i % 20 < 18 THEN 'running' WHEN i % 20 = 18 THEN 'cancelled'
                        ELSE 'timed_out' END AS st,
                   '-' || (i % 30) || ' days' AS dd, '-' || (i % 86400) || ' seconds' AS ds,
                   (i * 37) % 60000 AS d
              FROM s)
         SELECT randomblob(16), 'bench-run-' || i, 'bench-wf-' || (i % 10), 'bench', st, 'parallel',
                strftime('%Y-%m-%dT%H:%M:%f', 'now', dd, ds) || '000Z',
                CASE WHEN st = 'running' THEN NULL
                     ELSE strftime('%Y-%m-%dT%H:%M:%f', 'now', dd, ds, '+' || (d / 1000.0) || ' seconds') || '000Z' END,
                CASE WHEN st IN ('completed', 'failed') THEN d END,
                strftime('%Y-%m-%dT%H:%M:%f', 'now', dd, ds) || '000Z',
                strftime('%Y-%m-%dT%H:%M:%f', 'now', dd, ds) || '000Z'
           FROM v"
    )
}

fn sq_metrics() -> String {
    format!(
        "INSERT INTO workflow_metrics (id, execution_id, metric_name, metric_value, metric_unit,
            metric_type, recorded_at)
         {SQ_SERIES}, m(m) AS (VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9))
         SELECT randomblob(16), 'bench-run-' || i, 'metric_' || m, ((i * 7 + m * 13) % 1000) / 10.0, 'ms',
                CASE m % 4 WHEN 0 THEN 'performance' WHEN 1 THEN 'resource'
                           WHEN 2 THEN 'quality' ELSE 'custom' END,
                strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || (i % 30) || ' days',
                         '-' || ((i * (m + 1)) % 86400) || ' seconds') || '000Z'
           FROM s, m"
    )
}

fn sq_tasks() -> String {
    format!(
        "INSERT INTO tasks (id, run_id, title, description, status, handler_type, requirements)
         {SQ_SERIES}
         SELECT randomblob(16), r.id,
                CASE (i / 10) % 4 WHEN 0 THEN 'deploy' WHEN 1 THEN 'build' WHEN 2 THEN 'test'
                                  ELSE 'release' END || ' service ' || i,
                'bench task for run ' || i, 'completed', 'bench-query',
                json_object('os', CASE WHEN i % 20 = 0 THEN 'linux' ELSE 'macos' END,
                            'tier', CASE WHEN i % 40 = 0 THEN 'gold' ELSE 'silver' END)
           FROM s JOIN workflow_executions r ON r.execution_id = 'bench-run-' || i
          WHERE i % 10 = 0"
    )
}

const SQ_ROLLUPS: &str = "
INSERT INTO metric_rollups (bucket_start, metric_name, metric_type, sample_count, value_sum, value_min, value_max)
SELECT substr(recorded_at, 1, 13) || ':00:00.000000Z', metric_name, coalesce(metric_type, ''),
       count(*), sum(metric_value), min(metric_value), max(metric_value)
  FROM workflow_metrics WHERE metric_value IS NOT NULL AND metric_name LIKE 'metric_%'
 GROUP BY 1, 2, 3";

async fn load(target: &Target, opts: &BenchOptions) -> StoreResult<Duration> {
    let n = opts.runs;
    let t = Instant::now();
    let pb = bar(opts, n, "query: loading runs".into());
    let mut from = 1u64;
    while from <= n {
        let to = (from + CHUNK - 1).min(n);
        let (a, b) = (from as i64, to as i64);
        match &target.raw {
            Raw::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(db_err)?;
                for sql in [PG_RUNS, PG_METRICS, PG_TASKS] {
                    sqlx::query(sql)
                        .bind(a)
                        .bind(b)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
                tx.commit().await.map_err(db_err)?;
            }
            Raw::Sqlite { pool, writer } => {
                let _g = writer.lock().await;
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
                for sql in [sq_runs(), sq_metrics(), sq_tasks()] {
                    sqlx::query(&sql)
                        .bind(a)
                        .bind(b)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
                tx.commit().await.map_err(db_err)?;
            }
        }
        pb.set_position(to);
        from = to + 1;
    }
    pb.finish_and_clear();
    match &target.raw {
        Raw::Postgres(pool) => {
            sqlx::query(PG_ROLLUPS)
                .execute(pool)
                .await
                .map_err(db_err)?;
            sqlx::query("ANALYZE").execute(pool).await.map_err(db_err)?;
        }
        Raw::Sqlite { pool, writer } => {
            let _g = writer.lock().await;
            sqlx::query(SQ_ROLLUPS)
                .execute(pool)
                .await
                .map_err(db_err)?;
            sqlx::query("ANALYZE").execute(pool).await.map_err(db_err)?;
        }
    }
    Ok(t.elapsed())
}

/// Repeats `f` up to `calls` times (at least a few, at most [`BUDGET`]).
async fn repeat<F, Fut>(calls: u32, mut f: F) -> StoreResult<Samples>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = StoreResult<()>>,
{
    let mut s = Samples::default();
    let start = Instant::now();
    for i in 0..calls.max(1) {
        let t = Instant::now();
        f(i).await?;
        s.push(t.elapsed());
        if i >= 10 && start.elapsed() > BUDGET {
            break;
        }
    }
    Ok(s)
}

pub(crate) async fn run(
    target: &Target,
    opts: &BenchOptions,
    report: &mut Report,
) -> StoreResult<()> {
    let n = opts.runs;
    if n == 0 {
        return Ok(());
    }
    let loaded = load(target, opts).await?;
    report.notes.push(format!(
        "query: loaded {n} runs, {} metrics, {} tasks in {:.1} s ({} runs per statement, raw SQL); each call is begin_read + the call + rollback",
        n * 10,
        n / 10,
        loaded.as_secs_f64(),
        CHUNK
    ));
    let backend = target.backend.clone();
    let calls = opts.query_calls;
    let mut rows: Vec<(String, Samples, String)> = Vec::new();

    // get by execution_id
    let s = repeat(calls, |_| {
        let backend = backend.clone();
        let i = rand::thread_rng().gen_range(1..=n);
        async move {
            let id = format!("bench-run-{i}");
            let mut tx = backend.begin_read().await?;
            let run = tx.find_by_execution_id(&id).await?;
            let _ = tx.rollback().await;
            if run.execution_id != id {
                return Err(fail("find_by_execution_id returned another run"));
            }
            Ok(())
        }
    })
    .await?;
    rows.push((
        "get by execution_id".into(),
        s,
        "find_by_execution_id".into(),
    ));

    // Pages of one workflow's completed runs.
    let wf_runs = (1..=n).filter(|i| i % 10 == 3).count() as u64;
    let completed_runs = (1..=n).filter(|i| i % 10 == 3 && i % 20 < 14).count() as u64;
    let mut cursor: Option<String> = None;
    let mut page_no = 1;
    let mut seen = 0u64;
    {
        let mut tx = backend.begin_read().await?;
        loop {
            let page = match &cursor {
                None => PageRequest::first(PAGE),
                Some(c) => PageRequest::after(c.clone(), PAGE),
            };
            let p = tx
                .list_by_workflow(WF, Some(RunStatus::Completed), &page)
                .await?;
            seen += p.items.len() as u64;
            match p.next_cursor {
                Some(next) if page_no < DEEP_PAGE - 1 => {
                    cursor = Some(next);
                    page_no += 1;
                }
                Some(next) => {
                    cursor = Some(next);
                    page_no += 1;
                    break;
                }
                None => break,
            }
        }
        let _ = tx.rollback().await;
    }
    if cursor.is_none() && seen != completed_runs {
        return Err(fail(format!(
            "list_by_workflow walked {seen} completed runs of {WF}, expected {completed_runs}"
        )));
    }
    let s = repeat(calls, |_| {
        let backend = backend.clone();
        async move {
            let mut tx = backend.begin_read().await?;
            let p = tx
                .list_by_workflow(WF, Some(RunStatus::Completed), &PageRequest::first(PAGE))
                .await?;
            let _ = tx.rollback().await;
            if p.items.len() as u64 != completed_runs.min(u64::from(PAGE)) {
                return Err(fail("first page has the wrong length"));
            }
            Ok(())
        }
    })
    .await?;
    rows.push((
        "page 1 of a workflow's runs by status".into(),
        s,
        format!("list_by_workflow, {PAGE} a page"),
    ));
    if let Some(c) = cursor.clone() {
        let s = repeat(calls, |_| {
            let backend = backend.clone();
            let c = c.clone();
            async move {
                let mut tx = backend.begin_read().await?;
                let p = tx
                    .list_by_workflow(WF, Some(RunStatus::Completed), &PageRequest::after(c, PAGE))
                    .await?;
                let _ = tx.rollback().await;
                if p.items.is_empty() {
                    return Err(fail("deep page is empty"));
                }
                Ok(())
            }
        })
        .await?;
        rows.push((
            format!("page {page_no} (by cursor)"),
            s,
            format!(
                "list_by_workflow after {} runs",
                u64::from(page_no - 1) * u64::from(PAGE)
            ),
        ));
    }

    // Statistics of a workflow.
    let s = repeat(calls, |_| {
        let backend = backend.clone();
        async move {
            let mut tx = backend.begin_read().await?;
            let st = tx.workflow_statistics(WF, None).await?;
            let _ = tx.rollback().await;
            if st.total_executions as u64 != wf_runs {
                return Err(fail(format!(
                    "workflow_statistics counted {}, expected {wf_runs}",
                    st.total_executions
                )));
            }
            Ok(())
        }
    })
    .await?;
    rows.push((
        "statistics (counters)".into(),
        s,
        "workflow_statistics".into(),
    ));
    let s = repeat(calls, |_| {
        let backend = backend.clone();
        async move {
            let mut tx = backend.begin_read().await?;
            let st = tx
                .execution_statistics(&StatsFilter {
                    workflow_id: Some(WF.into()),
                    status: None,
                })
                .await?;
            let _ = tx.rollback().await;
            if st.total_executions as u64 != wf_runs {
                return Err(fail(format!(
                    "execution_statistics counted {}, expected {wf_runs}",
                    st.total_executions
                )));
            }
            Ok(())
        }
    })
    .await?;
    rows.push((
        "statistics (seed 000 recount)".into(),
        s,
        "execution_statistics".into(),
    ));

    // 30-day aggregates.
    let since = (flowstore_core::time::now() - chrono::Duration::days(30))
        .duration_trunc(chrono::Duration::hours(1))
        .map_err(|e| fail(format!("since: {e}")))?;
    let filter = AggregateFilter {
        since: Some(since),
        ..Default::default()
    };
    for rollups in [false, true] {
        let s = repeat(calls, |_| {
            let backend = backend.clone();
            let filter = filter.clone();
            async move {
                let mut tx = backend.begin_read().await?;
                let a = if rollups {
                    tx.aggregated_metrics_from_rollups(&filter).await?
                } else {
                    tx.aggregated_metrics(&filter).await?
                };
                let _ = tx.rollback().await;
                let total: i64 = a
                    .iter()
                    .filter(|m| m.metric_name.starts_with("metric_"))
                    .map(|m| m.count)
                    .sum();
                if total as u64 != n * 10 {
                    return Err(fail(format!(
                        "30-day aggregate counted {total} samples, expected {}",
                        n * 10
                    )));
                }
                Ok(())
            }
        })
        .await?;
        rows.push(if rollups {
            (
                "30-day aggregate (rollups)".into(),
                s,
                "aggregated_metrics_from_rollups".into(),
            )
        } else {
            (
                "30-day aggregate (raw samples)".into(),
                s,
                "aggregated_metrics".into(),
            )
        });
    }

    // Tasks: full-text search and requirement containment.
    let expect_tasks = n >= 10;
    let s = repeat(calls, |_| {
        let backend = backend.clone();
        async move {
            let mut tx = backend.begin_read().await?;
            let found = tx
                .search_tasks("deploy service", &TaskFilter::default(), 50)
                .await?;
            let _ = tx.rollback().await;
            if expect_tasks && found.is_empty() {
                return Err(fail("search_tasks found nothing"));
            }
            Ok(())
        }
    })
    .await?;
    rows.push((
        "task search".into(),
        s,
        "search_tasks \"deploy service\", 50".into(),
    ));
    let req = json!({"os": "linux", "tier": "gold"});
    let expect_req = n >= 40;
    let s = repeat(calls, |_| {
        let backend = backend.clone();
        let req = req.as_object().cloned();
        async move {
            let mut tx = backend.begin_read().await?;
            let page = tx
                .list_tasks(
                    &TaskFilter {
                        requirements: req,
                        ..Default::default()
                    },
                    &PageRequest::first(PAGE),
                )
                .await?;
            let _ = tx.rollback().await;
            if expect_req && page.items.is_empty() {
                return Err(fail("list_tasks by requirements found nothing"));
            }
            Ok(())
        }
    })
    .await?;
    rows.push((
        "requirement containment".into(),
        s,
        "list_tasks requirements {os: linux, tier: gold}".into(),
    ));

    for (variant, s, note) in rows {
        report.rows.push(Row {
            workload: "query".into(),
            variant,
            p50_ms: s.quantile_ms(0.5),
            p99_ms: s.quantile_ms(0.99),
            items: s.0.len() as u64,
            note: Some(note),
            ..Row::default()
        });
    }
    Ok(())
}
