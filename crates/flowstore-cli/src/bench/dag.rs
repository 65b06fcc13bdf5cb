//! The `dag` workload: runs of a five-step diamond (a → b, c, d → e) driven to
//! completion by W workers through the library, once with every task completed in its
//! own transaction and once with each claimed batch completed in one.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowstore_core::model::engine::{AttemptRef, ClaimRequest, ClaimedTask, StartRun};
use flowstore_core::model::registry::NewHandler;
use flowstore_core::model::workflow::{NewWorkflow, WorkflowStatus};
use flowstore_core::{Backend, StoreResult};
use serde_json::json;

use super::claim::Counter;
use super::table_writes::TableWrites;
use super::{bar, fail, median, BenchOptions, Report, Row, Samples, Target};

/// Tasks each worker claims at once.
const DAG_BATCH: u32 = 16;

/// How a worker reports the tasks it claimed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Completion {
    /// Each task on its own (`complete_now`).
    Each,
    /// The claimed batch at once (`complete_many_now`), as a worker using
    /// `POST /worker/complete-batch` does.
    Batch,
}

impl Completion {
    fn label(self) -> &'static str {
        match self {
            Completion::Each => "cmpl=each",
            Completion::Batch => "cmpl=batch",
        }
    }
}

/// What one round measured.
struct Round {
    rate: f64,
    start_rate: f64,
    claim: Samples,
    complete: Samples,
    /// What the drive wrote per run, where counted.
    writes: Option<String>,
}

pub(crate) async fn run(
    target: &Target,
    opts: &BenchOptions,
    report: &mut Report,
) -> StoreResult<()> {
    if opts.dag_runs == 0 {
        return Ok(());
    }
    let mut tx = target.backend.begin().await?;
    tx.register_handler(NewHandler {
        handler_type: "bench-dag".into(),
        handler_name: "bench-dag".into(),
        ..Default::default()
    })
    .await?;
    tx.commit().await?;
    for mode in [Completion::Each, Completion::Batch] {
        let mut rates = Vec::new();
        let mut start_rates = Vec::new();
        let mut claim = Samples::default();
        let mut complete = Samples::default();
        let mut writes = None;
        for round in 0..opts.rounds {
            let r = round_of(target, opts, mode, round).await?;
            writes = r.writes.or(writes);
            rates.push(r.rate);
            start_rates.push(r.start_rate);
            claim.extend(r.claim);
            complete.extend(r.complete);
        }
        report.rows.push(Row {
            workload: "dag".into(),
            variant: format!(
                "diamond runs to completion W={} B={DAG_BATCH} {}",
                opts.workers,
                mode.label()
            ),
            rate: median(&rates),
            rate_unit: Some("runs/s".into()),
            p50_ms: claim.quantile_ms(0.5),
            p99_ms: claim.quantile_ms(0.99),
            complete_p50_ms: complete.quantile_ms(0.5),
            complete_p99_ms: complete.quantile_ms(0.99),
            items: u64::from(opts.dag_runs),
            note: Some(format!(
                "runs started beforehand through start_run (100 per transaction, median {:.0} runs/s, not in the rate){}",
                median(&start_rates).unwrap_or(0.0),
                writes.map(|w| format!("; the drive's {w}")).unwrap_or_default()
            )),
            ..Row::default()
        });
    }
    Ok(())
}

/// Starts `opts.dag_runs` runs of a new diamond workflow, drives them to the end and
/// checks that every task completed once and every run completed.
async fn round_of(
    target: &Target,
    opts: &BenchOptions,
    mode: Completion,
    round: u32,
) -> StoreResult<Round> {
    let backend = &target.backend;
    let runs = opts.dag_runs;
    let name = format!("bench-diamond-{}-{round}", mode.label());
    let mut tx = backend.begin().await?;
    let wf = tx
        .create_workflow(NewWorkflow {
            name: name.clone(),
            status: Some(WorkflowStatus::Active),
            definition: Some(json!({"steps": [
                {"key": "a", "handler": "bench-dag"},
                {"key": "b", "handler": "bench-dag", "depends_on": ["a"]},
                {"key": "c", "handler": "bench-dag", "depends_on": ["a"]},
                {"key": "d", "handler": "bench-dag", "depends_on": ["a"]},
                {"key": "e", "handler": "bench-dag", "depends_on": ["b", "c", "d"]},
            ]})),
            ..Default::default()
        })
        .await?;
    tx.commit().await?;

    // Start every run (100 per transaction), then drive them.
    let t = Instant::now();
    let mut started = 0;
    while started < runs {
        let mut tx = backend.begin().await?;
        for _ in 0..100.min(runs - started) {
            tx.start_run(StartRun {
                workflow_id: wf.id,
                execution_id: Some(format!("{name}-{started}")),
                ..Default::default()
            })
            .await?;
            started += 1;
        }
        tx.commit().await?;
    }
    let start_rate = f64::from(runs) / t.elapsed().as_secs_f64().max(1e-9);

    // The drive's rows, counted in the last round.
    let before = TableWrites::before(&target.raw, round + 1 == opts.rounds).await?;
    let total = u64::from(runs) * 5;
    let pb = bar(
        opts,
        total,
        format!("dag {} round {}", mode.label(), round + 1),
    );
    let completed: Counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..opts.workers {
        let backend = backend.clone();
        let completed = completed.clone();
        let pb = pb.clone();
        handles.push(tokio::spawn(async move {
            let request = ClaimRequest {
                worker_id: format!("dag-{w}"),
                handler_types: vec!["bench-dag".into()],
                limit: DAG_BATCH,
                lease: Duration::from_secs(600),
                executor: None,
            };
            let mut seen = Vec::new();
            let (mut cl, mut co) = (Samples::default(), Samples::default());
            let mut idle_since: Option<Instant> = None;
            while completed.load(Ordering::SeqCst) < total {
                let t0 = Instant::now();
                let claimed = backend.claim_now(&request).await?;
                if claimed.is_empty() {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(60) {
                        return Err(fail(
                            "dag: no task became ready for 60 s; work was left behind",
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                idle_since = None;
                cl.push(t0.elapsed());
                let n = claimed.len() as u64;
                seen.extend(claimed.iter().map(|c| c.task_id));
                complete_claimed(&backend, mode, claimed, &mut co).await?;
                completed.fetch_add(n, Ordering::SeqCst);
                pb.inc(n);
            }
            StoreResult::Ok((seen, cl, co))
        }));
    }
    let mut seen = Vec::new();
    let (mut claim, mut complete) = (Samples::default(), Samples::default());
    for h in handles {
        let (s, c, k) = h
            .await
            .map_err(|e| fail(format!("a worker panicked: {e}")))??;
        seen.extend(s);
        claim.extend(c);
        complete.extend(k);
    }
    let elapsed = start.elapsed();
    pb.finish_and_clear();
    let writes = TableWrites::since(before, &target.raw, u64::from(runs), "run").await?;
    let distinct: HashSet<_> = seen.iter().collect();
    if seen.len() as u64 != total || distinct.len() as u64 != total {
        return Err(fail(format!(
            "dag: {} completions of {} distinct tasks, expected {total}",
            seen.len(),
            distinct.len()
        )));
    }
    let mut tx = backend.begin_read().await?;
    let stats = tx.workflow_statistics(&wf.id.to_string(), None).await?;
    let _ = tx.rollback().await;
    if stats.total_executions != i64::from(runs) || stats.completed_executions != i64::from(runs) {
        return Err(fail(format!(
            "dag: {} runs, {} completed, expected {runs} of {runs}",
            stats.total_executions, stats.completed_executions
        )));
    }
    Ok(Round {
        rate: f64::from(runs) / elapsed.as_secs_f64().max(1e-9),
        start_rate,
        claim,
        complete,
        writes,
    })
}

/// Reports the claimed tasks as completed, one transaction each or one for all,
/// timing each transaction.
async fn complete_claimed(
    backend: &Arc<dyn Backend>,
    mode: Completion,
    claimed: Vec<ClaimedTask>,
    samples: &mut Samples,
) -> StoreResult<()> {
    let attempts = claimed.iter().map(|c| AttemptRef {
        task_id: c.task_id,
        attempt: c.attempt,
    });
    match mode {
        Completion::Each => {
            for attempt in attempts {
                let t = Instant::now();
                backend.complete_now(attempt, json!({})).await?;
                samples.push(t.elapsed());
            }
        }
        Completion::Batch => {
            let t = Instant::now();
            let results = backend
                .complete_many_now(attempts.map(|a| (a, json!({}))).collect())
                .await?;
            samples.push(t.elapsed());
            if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
                return Err(fail(format!("dag: batch completion refused one: {e}")));
            }
        }
    }
    Ok(())
}
