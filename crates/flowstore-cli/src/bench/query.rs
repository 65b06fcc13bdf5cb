//! The `query` workload: a database bulk-loaded with runs of ten workflows (ten
//! metrics each over 30 days, one task per ten runs), then p50/p99 of the reads
//! callers make most, and of the dashboard's whole pages over HTTP
//! ([`super::pages`]).

use std::time::{Duration, Instant};

use chrono::DurationRound;
use flowstore_core::model::metric::AggregateFilter;
use flowstore_core::model::run::{RunFilter, RunStatus, StatsFilter};
use flowstore_core::model::summary::{Bucket, RunSeriesFilter};
use flowstore_core::model::task::query::TaskFilter;
use flowstore_core::{PageRequest, StoreResult};
use rand::Rng;
use serde_json::json;

use super::query_load::{chunk, load, WORKFLOWS};
use super::{fail, BenchOptions, Report, Row, Samples, Target};

/// Page size of the listing queries.
const PAGE: u32 = 50;
/// The deep page asked for.
const DEEP_PAGE: u32 = 200;
/// The loaded workflow (`bench-wf-3`) the listing and statistics queries look at.
const WF: usize = 3;
/// The longest one query is repeated.
const BUDGET: Duration = Duration::from_secs(20);

/// Unmeasured calls made before the measured ones. The first call of a statement on
/// each pooled connection prepares it and fills that connection's page cache, which
/// a long-running server pays once, not per request; measured, those calls were the
/// slowest few of 200 (2-4 ms against 0.3 ms on SQLite at 200 000 runs).
const WARM_UP_CALLS: u32 = 5;
/// Warm-up stops early after this long, so that slow queries are not run for long.
const WARM_UP_BUDGET: Duration = Duration::from_secs(1);

/// Repeats `f` up to `calls` times (at least a few, at most [`BUDGET`]) after the
/// warm-up calls.
pub(super) async fn repeat<F, Fut>(calls: u32, mut f: F) -> StoreResult<Samples>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = StoreResult<()>>,
{
    let warm_up = Instant::now();
    for i in 0..WARM_UP_CALLS {
        f(i).await?;
        if warm_up.elapsed() > WARM_UP_BUDGET {
            break;
        }
    }
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
    // The samples span the 30 days before each load statement ran; the window is
    // taken from the load's start, so that an hour boundary passed during the load or
    // the queries before the aggregate cannot cut off its oldest samples.
    let load_started = flowstore_core::time::now();
    let loaded = load(target, opts).await?;
    let wf_id = loaded.workflows[WF].to_string();
    let wf = wf_id.as_str();
    report.notes.push(format!(
        "query: loaded {n} runs, {} metrics, {} tasks in {:.1} s ({} runs per statement, raw SQL; then VACUUM (ANALYZE) and CHECKPOINT on PostgreSQL, a TRUNCATE checkpoint on SQLite, all in the load time); each call is begin_read + the call + rollback, after up to {WARM_UP_CALLS} unmeasured warm-up calls per query",
        n * 10,
        n / 10,
        loaded.took.as_secs_f64(),
        chunk(target)
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
    let wf_runs = (1..=n)
        .filter(|i| i % WORKFLOWS as u64 == WF as u64)
        .count() as u64;
    let completed_runs = (1..=n)
        .filter(|i| i % WORKFLOWS as u64 == WF as u64 && i % 20 < 14)
        .count() as u64;
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
                .list_by_workflow(wf, Some(RunStatus::Completed), &page)
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
            "list_by_workflow walked {seen} completed runs of {wf}, expected {completed_runs}"
        )));
    }
    let s = repeat(calls, |_| {
        let backend = backend.clone();
        async move {
            let mut tx = backend.begin_read().await?;
            let p = tx
                .list_by_workflow(wf, Some(RunStatus::Completed), &PageRequest::first(PAGE))
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
                    .list_by_workflow(wf, Some(RunStatus::Completed), &PageRequest::after(c, PAGE))
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
            let st = tx.workflow_statistics(wf, None).await?;
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
                    workflow_id: Some(wf.into()),
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
    let since = (load_started - chrono::Duration::days(30))
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

    dashboard(&backend, wf, n, calls, &mut rows).await?;
    super::pages::measure(target, &loaded.workflows, WF, n, calls, &mut rows).await?;

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

/// What the dashboard's pages read: runs of every workflow (all, failed, one named
/// by its execution ID), finished runs per hour and per day from the rollups, and a
/// workflow's duration percentiles.
async fn dashboard(
    backend: &std::sync::Arc<dyn flowstore_core::Backend>,
    wf: &str,
    n: u64,
    calls: u32,
    rows: &mut Vec<(String, Samples, String)>,
) -> StoreResult<()> {
    let runs = |filter: RunFilter, want: usize| {
        let backend = backend.clone();
        move |_| {
            let backend = backend.clone();
            let filter = filter.clone();
            async move {
                let mut tx = backend.begin_read().await?;
                let p = tx.list_runs(&filter, &PageRequest::first(PAGE)).await?;
                let _ = tx.rollback().await;
                if p.items.len() < want {
                    return Err(fail(format!(
                        "list_runs found {} runs, expected {want}",
                        p.items.len()
                    )));
                }
                Ok(())
            }
        }
    };
    let full = (PAGE as usize).min(n as usize);
    let s = repeat(calls, runs(RunFilter::default(), full)).await?;
    rows.push((
        "dashboard: runs of every workflow, page 1".into(),
        s,
        format!("list_runs, {PAGE} a page"),
    ));
    let failed = RunFilter {
        status: Some(RunStatus::Failed),
        ..RunFilter::default()
    };
    let s = repeat(calls, runs(failed, if n >= 1000 { full } else { 0 })).await?;
    rows.push((
        "dashboard: failed runs, page 1".into(),
        s,
        "list_runs status failed".into(),
    ));
    let s = repeat(calls, |_| {
        let backend = backend.clone();
        let i = rand::thread_rng().gen_range(1..=n);
        async move {
            let text = format!("bench-run-{i}");
            let filter = RunFilter {
                text: Some(text.clone()),
                ..RunFilter::default()
            };
            let mut tx = backend.begin_read().await?;
            let p = tx.list_runs(&filter, &PageRequest::first(PAGE)).await?;
            let _ = tx.rollback().await;
            if p.items.len() != 1 || p.items[0].execution_id != text {
                return Err(fail("list_runs by execution ID found another run"));
            }
            Ok(())
        }
    })
    .await?;
    rows.push((
        "dashboard: a run by its execution ID".into(),
        s,
        "list_runs q=execution_id".into(),
    ));
    let s = repeat(calls, |_| {
        let backend = backend.clone();
        async move {
            let filter = RunFilter {
                text: Some("no run has this name".into()),
                ..RunFilter::default()
            };
            let mut tx = backend.begin_read().await?;
            let p = tx.list_runs(&filter, &PageRequest::first(PAGE)).await?;
            let _ = tx.rollback().await;
            if !p.items.is_empty() {
                return Err(fail("list_runs found runs for a name no run has"));
            }
            Ok(())
        }
    })
    .await?;
    rows.push((
        "dashboard: a search no run matches".into(),
        s,
        "list_runs q=text in no ID, execution ID or workflow name".into(),
    ));
    let now = flowstore_core::time::now();
    for (name, bucket, span, workflow) in [
        (
            "dashboard: finished runs per hour, 24 h",
            Bucket::Hour,
            chrono::TimeDelta::hours(24),
            None,
        ),
        (
            "dashboard: a workflow's runs per day, 30 days",
            Bucket::Day,
            chrono::TimeDelta::days(30),
            Some(wf),
        ),
    ] {
        let filter = RunSeriesFilter {
            workflow_id: workflow.map(str::to_string),
            since: now - span,
            until: now + chrono::TimeDelta::hours(1),
            bucket,
            viewer: None,
        };
        let s = repeat(calls, |_| {
            let backend = backend.clone();
            let filter = filter.clone();
            async move {
                let mut tx = backend.begin_read().await?;
                let points = tx.run_series(&filter).await?;
                let _ = tx.rollback().await;
                if n >= 1000 && points.is_empty() {
                    return Err(fail("run_series found no finished runs"));
                }
                Ok(())
            }
        })
        .await?;
        rows.push((
            name.into(),
            s,
            format!("run_series from run_rollups, {bucket} buckets"),
        ));
    }
    let s = repeat(calls, |_| {
        let backend = backend.clone();
        async move {
            let mut tx = backend.begin_read().await?;
            let d = tx.recent_durations(wf, 1000).await?;
            let _ = tx.rollback().await;
            if n >= 1000 && d.is_empty() {
                return Err(fail("recent_durations found nothing"));
            }
            Ok(())
        }
    })
    .await?;
    rows.push((
        "dashboard: a workflow's duration percentiles".into(),
        s,
        "recent_durations, 1000 runs".into(),
    ));
    Ok(())
}
