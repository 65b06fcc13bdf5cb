//! Runs: started through the engine and driven with claim, complete, fail, cancel
//! and timeout enforcement, exactly as workers and the scheduler would, so that runs
//! end in every state; then about ten metrics per run spread over the last 30 days,
//! and logs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::TimeDelta;
use serde_json::{json, Value};

use flowstore::ids::{RunId, TaskId};
use flowstore::model::engine::{AttemptRef, ClaimRequest, ClaimedTask, RunTask, StartRun};
use flowstore::model::metric::{MetricType, NewMetric};
use flowstore::model::ops::{LogLevel, NewLogEntry};
use flowstore::model::run::{NewExecution, RunStatus, RunStrategy};
use flowstore::model::task::TaskStatus;
use flowstore::time::{self, Timestamp};
use flowstore::{StoreResult, Tx};

use super::catalog::{Catalog, DemoWorkflow, Kind, HANDLER_TYPES};
use super::Dice;

/// How a planned run is meant to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Completed,
    /// A step fails in a fail_fast workflow: the run fails at once.
    FailFast,
    /// A step fails in a continue workflow: its dependents are cancelled, the rest
    /// runs, and the run ends failed.
    FailContinue,
    /// Cancelled after its first step completed.
    Cancelled,
    /// Runs the smoke check and passes its one-second deadline.
    TimedOut,
    /// Left running with its first task claimed by a worker.
    InFlight,
    /// Left running with its first task ready and unclaimed.
    Queued,
    /// Recorded as a pending execution: the engine starts every run as running, so a
    /// scheduled-but-not-started run is written with `create_execution`.
    Pending,
}

/// Every fate, in the order small seeds get them (one each).
const ALL_FATES: [Fate; 8] = [
    Fate::Completed,
    Fate::FailFast,
    Fate::FailContinue,
    Fate::Cancelled,
    Fate::TimedOut,
    Fate::InFlight,
    Fate::Queued,
    Fate::Pending,
];

/// The share of runs (in percent) given each fate but `Completed`, which takes the
/// rest; each gets at least one run.
const SHARES: [(Fate, u32); 7] = [
    (Fate::FailFast, 8),
    (Fate::FailContinue, 6),
    (Fate::Cancelled, 6),
    (Fate::TimedOut, 3),
    (Fate::InFlight, 4),
    (Fate::Queued, 3),
    (Fate::Pending, 3),
];

/// One planned run.
struct Planned {
    fate: Fate,
    workflow: DemoWorkflow,
    /// Whether the retry step's first attempt fails (completed runs only).
    retry: bool,
    execution_id: String,
    run: Option<RunId>,
}

/// What [`seed`] created, for the summary.
#[derive(Default)]
pub(super) struct Tally {
    by_status: BTreeMap<&'static str, u64>,
    pub attempts: u64,
    pub metrics: u64,
    pub logs: u64,
}

impl Tally {
    pub fn total(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// `120 completed, 20 failed, …`, in the order of the run lifecycle.
    pub fn breakdown(&self) -> String {
        let order = [
            "completed",
            "failed",
            "cancelled",
            "timed_out",
            "running",
            "pending",
        ];
        order
            .iter()
            .filter_map(|s| self.by_status.get(s).map(|n| format!("{n} {s}")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Which fate each of `n` runs gets, shuffled so that every state shows up across
/// the whole 30 days.
fn fates(n: usize, dice: &mut Dice) -> Vec<Fate> {
    if n < ALL_FATES.len() {
        return ALL_FATES[..n].to_vec();
    }
    let mut out = Vec::with_capacity(n);
    for (fate, percent) in SHARES {
        let k = (n * percent as usize / 100).max(1);
        out.extend(std::iter::repeat_n(fate, k));
    }
    out.resize(n, Fate::Completed);
    for i in (1..out.len()).rev() {
        out.swap(i, dice.below(i as u64 + 1) as usize);
    }
    out
}

/// Creates `n` runs and their metrics and logs.
pub(super) async fn seed(tx: &mut dyn Tx, catalog: &Catalog, n: u32) -> StoreResult<Tally> {
    let mut dice = Dice(0x5eed_f10e);
    let mut tally = Tally::default();
    let rotate = [Kind::Ci, Kind::Data, Kind::Agent, Kind::Release];
    let mut plan: Vec<Planned> = Vec::new();
    for (i, fate) in fates(n as usize, &mut dice).into_iter().enumerate() {
        let kind = match fate {
            Fate::TimedOut => Kind::Smoke,
            Fate::FailFast => [Kind::Ci, Kind::Release][i % 2],
            Fate::FailContinue => [Kind::Data, Kind::Agent][i % 2],
            _ => rotate[i % rotate.len()],
        };
        let workflow = catalog.workflow(kind).clone();
        plan.push(Planned {
            fate,
            retry: fate == Fate::Completed && i.is_multiple_of(5),
            execution_id: format!("demo-{:?}-{:04}", kind, i + 1).to_lowercase(),
            workflow,
            run: None,
        });
    }

    let mut driver = Driver::default();
    // Phase 1: the runs that end (or stay in flight) through claims.
    let driven = [
        Fate::Completed,
        Fate::FailFast,
        Fate::FailContinue,
        Fate::Cancelled,
        Fate::InFlight,
    ];
    for (i, p) in plan.iter_mut().enumerate() {
        if driven.contains(&p.fate) {
            let run = start(tx, catalog, p, i).await?;
            driver
                .fates
                .insert(run, (p.fate, p.workflow.clone(), p.retry));
        }
    }
    driver.drive(tx, &mut tally).await?;

    // Phase 2: timed-out runs. Nothing else is ready now, so these claims only pick
    // up the smoke checks' tasks.
    let mut timed = Vec::new();
    for (i, p) in plan.iter_mut().enumerate() {
        if p.fate == Fate::TimedOut {
            timed.push(start(tx, catalog, p, i).await?);
        }
    }
    if !timed.is_empty() {
        time_out(tx, &mut tally).await?;
    }

    // Phase 3: runs left waiting, last, so that no claim above took their tasks.
    for (i, p) in plan.iter_mut().enumerate() {
        match p.fate {
            Fate::Queued => {
                start(tx, catalog, p, i).await?;
            }
            Fate::Pending => {
                let run = tx
                    .create_execution(NewExecution {
                        execution_id: p.execution_id.clone(),
                        workflow_id: p.workflow.id.to_string(),
                        workflow_name: p.workflow.name.clone(),
                        user_id: Some(catalog.user().to_string()),
                        status: Some(RunStatus::Pending),
                        strategy: Some(RunStrategy::Parallel),
                        metadata: Some(json!({"demo": true, "trigger": "schedule"})),
                        workflow_ref: Some(p.workflow.id),
                        ..Default::default()
                    })
                    .await?;
                p.run = Some(run.id);
            }
            _ => {}
        }
    }

    // Metrics and logs, dated by each run's place in the plan: the first run 30 days
    // ago, the last one today.
    let now = time::now();
    let span = (plan.len().max(2) - 1) as f64;
    for (i, p) in plan.iter().enumerate() {
        let Some(run) = p.run else { continue };
        let exec = tx.get_execution(run).await?;
        *tally.by_status.entry(exec.status.as_str()).or_default() += 1;
        if p.fate != Fate::Pending {
            // The engine's own execution_started and (for completed runs, as in seed
            // 000) execution_duration.
            tally.metrics += 1 + u64::from(exec.status == RunStatus::Completed);
        }
        let age_minutes = (29.7 * 1440.0 * (span - i as f64) / span) as i64 + 5;
        let at = now - TimeDelta::minutes(age_minutes + dice.below(90) as i64);
        let tasks = if p.fate == Fate::Pending {
            Vec::new()
        } else {
            tx.run_tasks(run).await?
        };
        tally.metrics += metrics(tx, p, exec.status, &tasks, at, &mut dice).await?;
        tally.logs += logs(tx, p, run, exec.status, &tasks, at).await?;
    }
    Ok(tally)
}

/// What set a run off, for its metadata.
const TRIGGERS: [&str; 3] = ["push", "schedule", "manual"];

/// Starts a planned run through the engine.
async fn start(
    tx: &mut dyn Tx,
    catalog: &Catalog,
    p: &mut Planned,
    i: usize,
) -> StoreResult<RunId> {
    let started = tx
        .start_run(StartRun {
            workflow_id: p.workflow.id,
            execution_id: Some(p.execution_id.clone()),
            input: Some(
                json!({"commit": format!("{:07x}", 0xa1b2c3 + i * 7919), "branch": "main"}),
            ),
            priority: Some((i % 3) as i32),
            user_id: Some(
                if i.is_multiple_of(4) {
                    catalog.admin()
                } else {
                    catalog.user()
                }
                .to_string(),
            ),
            metadata: Some(json!({"demo": true, "trigger": TRIGGERS[i % TRIGGERS.len()]})),
            ..Default::default()
        })
        .await?;
    p.run = Some(started.run.id);
    Ok(started.run.id)
}

/// Plays the workers: claims ready tasks per handler type and completes or fails
/// them according to each run's fate.
#[derive(Default)]
struct Driver {
    fates: HashMap<RunId, (Fate, DemoWorkflow, bool)>,
    /// Runs that reached a terminal status.
    ended: HashSet<RunId>,
    /// Tasks waiting out a retry backoff, and when they become claimable.
    waiting: HashMap<TaskId, Timestamp>,
}

/// A lease long enough that nothing the demo leaves running is reaped soon after.
const LEASE: Duration = Duration::from_secs(3600);

impl Driver {
    async fn drive(&mut self, tx: &mut dyn Tx, tally: &mut Tally) -> StoreResult<()> {
        let mut idle = 0;
        // Bounded, so that an engine bug cannot hang the seed.
        for round in 0..100_000u32 {
            let mut any = false;
            for handler in HANDLER_TYPES {
                let claimed = tx
                    .claim(&ClaimRequest {
                        worker_id: format!("demo-{handler}-worker-{}", round % 3 + 1),
                        handler_types: vec![handler.to_string()],
                        limit: 1000,
                        lease: LEASE,
                        executor: None,
                    })
                    .await?;
                tally.attempts += claimed.len() as u64;
                for c in claimed {
                    any = true;
                    self.waiting.remove(&c.task_id);
                    self.act(tx, &c).await?;
                }
            }
            if any {
                idle = 0;
                continue;
            }
            // Nothing ready: either everything is done or retries wait out a backoff.
            let Some(latest) = self.waiting.values().max().copied() else {
                break;
            };
            idle += 1;
            if idle > 20 {
                break;
            }
            let wait = (latest - time::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait.min(Duration::from_secs(5)) + Duration::from_millis(20)).await;
        }
        Ok(())
    }

    async fn act(&mut self, tx: &mut dyn Tx, c: &ClaimedTask) -> StoreResult<()> {
        let Some(run) = c.run_id else { return Ok(()) };
        let Some((fate, workflow, retry)) = self.fates.get(&run).cloned() else {
            return Ok(());
        };
        let attempt = AttemptRef {
            task_id: c.task_id,
            attempt: c.attempt,
        };
        let step = c.step_key.clone().unwrap_or_default();
        if self.ended.contains(&run) {
            // A sibling claimed in the same batch as the step that ended the run: its
            // worker learns of the end from its heartbeat and stops.
            let beat = tx.heartbeat(attempt, LEASE).await?;
            if beat.cancel_requested {
                tx.fail(
                    attempt,
                    json!({"message": "stopped: the run has ended"}),
                    false,
                )
                .await?;
            }
            return Ok(());
        }
        let transition = match fate {
            Fate::InFlight => {
                tx.heartbeat(attempt, LEASE).await?;
                return Ok(());
            }
            Fate::Completed if retry && step == workflow.retry_step && c.attempt == 1 => {
                let t = tx
                    .fail(attempt, transient_error(&c.handler_type), true)
                    .await?;
                if let Some(at) = t.retry_at {
                    self.waiting.insert(c.task_id, at);
                }
                t
            }
            Fate::FailFast | Fate::FailContinue if step == workflow.fail_step => {
                tx.fail(attempt, step_error(&step), false).await?
            }
            _ => tx.complete(attempt, output(&step, &c.handler_type)).await?,
        };
        if transition.run_status.is_some() {
            self.ended.insert(run);
        } else if fate == Fate::Cancelled {
            tx.cancel_run(run).await?;
            self.ended.insert(run);
        }
        Ok(())
    }
}

/// Claims the smoke checks' first steps and completes them, claims the second ones
/// and leaves them running past the one-second deadline, then enforces timeouts.
async fn time_out(tx: &mut dyn Tx, tally: &mut Tally) -> StoreResult<()> {
    let claim = |handler: &str| ClaimRequest {
        worker_id: format!("demo-{handler}-worker-1"),
        handler_types: vec![handler.to_string()],
        limit: 1000,
        lease: LEASE,
        executor: None,
    };
    let pings = tx.claim(&claim("http")).await?;
    for c in &pings {
        let at = AttemptRef {
            task_id: c.task_id,
            attempt: c.attempt,
        };
        tx.complete(at, json!({"status": 200, "latency_ms": 41}))
            .await?;
    }
    let verifies = tx.claim(&claim("shell")).await?;
    tally.attempts += (pings.len() + verifies.len()) as u64;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    tx.enforce_timeouts(1000).await?;
    for c in &verifies {
        let at = AttemptRef {
            task_id: c.task_id,
            attempt: c.attempt,
        };
        if tx.heartbeat(at, LEASE).await?.cancel_requested {
            tx.fail(at, json!({"message": "stopped: the run timed out"}), false)
                .await?;
        }
    }
    Ok(())
}

fn transient_error(handler: &str) -> Value {
    match handler {
        "llm" => json!({"message": "rate limited by the model provider", "retry_after_s": 1}),
        "http" => json!({"message": "503 Service Unavailable", "status": 503}),
        _ => json!({"message": "connection reset by peer", "exit_code": 137}),
    }
}

fn step_error(step: &str) -> Value {
    match step {
        "test" => json!({"message": "3 tests failed in checkout_spec", "exit_code": 1}),
        "transform" => json!({"message": "schema mismatch: column amount is text", "rows": 1842}),
        "security_scan" => json!({"message": "model output was not valid JSON", "tokens": 4096}),
        _ => json!({"message": format!("{step} failed"), "exit_code": 2}),
    }
}

fn output(step: &str, handler: &str) -> Value {
    json!({"step": step, "handler": handler, "ok": true})
}

/// A step's typical duration in milliseconds, by handler type.
fn typical_ms(handler: &str) -> f64 {
    match handler {
        "docker" => 95_000.0,
        "llm" => 22_000.0,
        "http" => 1_800.0,
        _ => 12_000.0,
    }
}

/// Records about ten metrics for one run at `at` (and minutes after), and returns
/// how many.
async fn metrics(
    tx: &mut dyn Tx,
    p: &Planned,
    status: RunStatus,
    tasks: &[RunTask],
    at: Timestamp,
    dice: &mut Dice,
) -> StoreResult<u64> {
    let mut samples: Vec<(String, f64, &str, MetricType, Value)> = Vec::new();
    samples.push((
        "queue_wait_ms".into(),
        dice.between(50.0, 4_000.0),
        "milliseconds",
        MetricType::Performance,
        json!({}),
    ));
    let mut total = 0.0;
    for t in tasks.iter().filter(|t| t.attempt > 0) {
        let handler = t.handler_type.as_deref().unwrap_or("shell");
        let ms = typical_ms(handler) * dice.between(0.5, 1.8);
        total += ms;
        samples.push((
            "step_duration_ms".into(),
            ms,
            "milliseconds",
            MetricType::Performance,
            json!({"step": t.step_key, "status": t.status.as_str(), "attempts": t.attempt}),
        ));
    }
    if p.fate != Fate::Pending {
        let heavy = matches!(p.workflow.kind, Kind::Data | Kind::Ci);
        samples.push((
            "cpu_percent".into(),
            dice.between(15.0, 95.0),
            "percent",
            MetricType::Resource,
            json!({}),
        ));
        samples.push((
            "memory_mb".into(),
            dice.between(256.0, if heavy { 6_144.0 } else { 1_536.0 }),
            "megabytes",
            MetricType::Resource,
            json!({}),
        ));
        samples.push((
            "run_duration_ms".into(),
            total,
            "milliseconds",
            MetricType::Performance,
            json!({"status": status.as_str()}),
        ));
    }
    match p.workflow.kind {
        Kind::Ci => samples.push((
            "test_pass_rate".into(),
            if status == RunStatus::Failed {
                dice.between(90.0, 99.0)
            } else {
                100.0
            },
            "percent",
            MetricType::Quality,
            json!({}),
        )),
        Kind::Agent => samples.push((
            "llm_cost_usd".into(),
            dice.between(0.02, 0.9),
            "usd",
            MetricType::Custom,
            json!({"model": "demo-large"}),
        )),
        Kind::Data => samples.push((
            "rows_processed".into(),
            dice.between(1e4, 2e6).round(),
            "rows",
            MetricType::Custom,
            json!({}),
        )),
        _ => {}
    }
    let n = samples.len() as u64;
    for (k, (name, value, unit, kind, metadata)) in samples.into_iter().enumerate() {
        tx.record_metric(NewMetric {
            execution_id: Some(p.execution_id.clone()),
            metric_name: name,
            metric_value: Some(value),
            metric_unit: Some(unit.into()),
            metric_type: Some(kind),
            metadata: Some(metadata),
            recorded_at: Some(at + TimeDelta::seconds(k as i64 * 20)),
        })
        .await?;
    }
    Ok(n)
}

/// Writes one run's log lines, dated from `at`, and returns how many.
async fn logs(
    tx: &mut dyn Tx,
    p: &Planned,
    run: RunId,
    status: RunStatus,
    tasks: &[RunTask],
    at: Timestamp,
) -> StoreResult<u64> {
    let entry = |level: LogLevel, message: String, task: Option<TaskId>, secs: i64| NewLogEntry {
        context: Some(json!({"execution_id": p.execution_id, "workflow": p.workflow.name})),
        component_name: Some("demo-scheduler".into()),
        execution_id: Some(run),
        task_id: task,
        timestamp: Some(at + TimeDelta::seconds(secs)),
        ..NewLogEntry::new(level, message)
    };
    let mut lines = vec![entry(
        LogLevel::Info,
        format!("{} queued", p.execution_id),
        None,
        0,
    )];
    for (k, t) in tasks.iter().enumerate() {
        let step = t.step_key.clone().unwrap_or_default();
        let secs = 10 + k as i64 * 30;
        if t.retry_count > 0 {
            lines.push(entry(
                LogLevel::Warn,
                format!("step {step} failed, retrying ({} retries)", t.retry_count),
                Some(t.id),
                secs,
            ));
        }
        match t.status {
            TaskStatus::Completed => lines.push(entry(
                LogLevel::Debug,
                format!("step {step} completed"),
                Some(t.id),
                secs + 5,
            )),
            TaskStatus::Failed => lines.push(entry(
                LogLevel::Error,
                format!("step {step} failed"),
                Some(t.id),
                secs + 5,
            )),
            TaskStatus::Running => lines.push(entry(
                LogLevel::Trace,
                format!("step {step} heartbeat"),
                Some(t.id),
                secs + 5,
            )),
            _ => {}
        }
    }
    let level = match status {
        RunStatus::Completed => LogLevel::Info,
        RunStatus::Failed | RunStatus::TimedOut => LogLevel::Error,
        RunStatus::Cancelled => LogLevel::Warn,
        RunStatus::Running | RunStatus::Pending | RunStatus::Paused => LogLevel::Info,
    };
    lines.push(entry(
        level,
        format!("{} is {status}", p.execution_id),
        None,
        600,
    ));
    let n = lines.len() as u64;
    tx.append_logs(lines).await?;
    Ok(n)
}
