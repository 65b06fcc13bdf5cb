//! A property test of the engine against an in-memory model of its rules.
//!
//! `Model` below is a deliberately plain reading of `docs/state_machine.md` for
//! `parallel` runs: tasks with dependencies, retries against `max_retries`, the
//! `fail_fast` and `continue` failure strategies and how a run ends. A seeded RNG
//! generates random DAG workflows and random worker behaviour (claim, complete,
//! fail retryable or not, vanish and be reaped); every action is applied to the real
//! store and to the model, and after every action the whole state (each task's
//! status, attempt and retry count, and the run's status) must agree, as must what
//! each call returned.
//!
//! A failure message names the seed; `FLOWSTORE_MODEL_SEED=<n>` runs only that seed
//! (and `FLOWSTORE_MODEL_SEED=<a>..<b>` a range of seeds, for a longer search).

use flowstore_testkit::fixtures;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use flowstore::ids::{RunId, TaskId};
use flowstore::model::engine::{AttemptRef, ClaimRequest, ClaimedTask, StartRun, Transition};
use flowstore::model::run::RunStatus;
use flowstore::model::task::TaskStatus;
use flowstore::model::workflow::{ExecutionStrategy, FailureStrategy, NewWorkflow, WorkflowStatus};
use flowstore::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

conformance!(random_dags_follow_the_model);

/// Seeds run per backend (each one full run of a fresh random workflow).
const SEEDS: std::ops::Range<u64> = 1..13;
/// More actions than any generated run can need (8 steps, at most 3 attempts each).
const MAX_ACTIONS: usize = 200;
/// The shortest lease, and how long a vanished worker is waited for.
const SHORT_LEASE: Duration = Duration::from_millis(100);
const LEASE_PASSES: Duration = Duration::from_millis(150);

// ---------------------------------------------------------------------------------
// The workflows.

#[derive(Clone, Debug)]
struct Step {
    key: String,
    deps: Vec<usize>,
    max_retries: i32,
}

#[derive(Clone, Debug)]
struct Dag {
    steps: Vec<Step>,
    failure: FailureStrategy,
}

/// 2–8 steps; an edge only from a lower to a higher index, so always acyclic.
fn random_dag(rng: &mut StdRng) -> Dag {
    let n = rng.gen_range(2..=8);
    let steps = (0..n)
        .map(|j| Step {
            key: format!("s{j}"),
            deps: (0..j).filter(|_| rng.gen_bool(0.35)).collect(),
            max_retries: rng.gen_range(0..=2),
        })
        .collect();
    let failure = if rng.gen_bool(0.5) {
        FailureStrategy::FailFast
    } else {
        FailureStrategy::Continue
    };
    Dag { steps, failure }
}

impl Dag {
    fn definition(&self, handler: &str) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|s| {
                json!({
                    "key": s.key,
                    "handler": handler,
                    "depends_on": s.deps.iter().map(|d| self.steps[*d].key.clone()).collect::<Vec<_>>(),
                    "max_retries": s.max_retries,
                })
            })
            .collect();
        json!({ "steps": steps })
    }

    fn describe(&self) -> String {
        let mut out = format!("{} [", self.failure.as_str());
        for s in &self.steps {
            let deps: Vec<&str> = s.deps.iter().map(|d| self.steps[*d].key.as_str()).collect();
            let _ = write!(out, " {}(r{})<-{:?}", s.key, s.max_retries, deps);
        }
        out.push_str(" ]");
        out
    }
}

// ---------------------------------------------------------------------------------
// The model.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TaskModel {
    status: TaskStatus,
    attempt: i32,
    retry_count: i32,
}

struct Model {
    dag: Dag,
    tasks: Vec<TaskModel>,
    run: RunStatus,
}

/// What one transition should report.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    status: TaskStatus,
    newly_ready: BTreeSet<String>,
    run_status: Option<RunStatus>,
}

fn is_open(s: TaskStatus) -> bool {
    matches!(
        s,
        TaskStatus::Pending | TaskStatus::Ready | TaskStatus::Running
    )
}

impl Model {
    fn start(dag: Dag) -> Model {
        let tasks = dag
            .steps
            .iter()
            .map(|s| TaskModel {
                status: if s.deps.is_empty() {
                    TaskStatus::Ready
                } else {
                    TaskStatus::Pending
                },
                attempt: 0,
                retry_count: 0,
            })
            .collect();
        Model {
            dag,
            tasks,
            run: RunStatus::Running,
        }
    }

    fn index(&self, key: &str) -> usize {
        self.dag
            .steps
            .iter()
            .position(|s| s.key == key)
            .unwrap_or_else(|| panic!("unknown step {key}"))
    }

    fn keys_with(&self, status: TaskStatus) -> BTreeSet<String> {
        self.dag
            .steps
            .iter()
            .zip(&self.tasks)
            .filter(|(_, t)| t.status == status)
            .map(|(s, _)| s.key.clone())
            .collect()
    }

    fn snapshot(&self) -> BTreeMap<String, TaskModel> {
        self.dag
            .steps
            .iter()
            .zip(&self.tasks)
            .map(|(s, t)| (s.key.clone(), *t))
            .collect()
    }

    /// A claim takes every ready task: ready → running, a new attempt.
    fn claim_all(&mut self) -> BTreeSet<String> {
        let ready = self.keys_with(TaskStatus::Ready);
        for t in &mut self.tasks {
            if t.status == TaskStatus::Ready {
                t.status = TaskStatus::Running;
                t.attempt += 1;
            }
        }
        ready
    }

    /// running → completed; in a live run, dependents whose dependencies are all
    /// completed become ready, and the run ends when nothing is open.
    fn complete(&mut self, i: usize) -> Outcome {
        assert_eq!(self.tasks[i].status, TaskStatus::Running, "model misuse");
        self.tasks[i].status = TaskStatus::Completed;
        let mut out = Outcome {
            status: TaskStatus::Completed,
            newly_ready: BTreeSet::new(),
            run_status: None,
        };
        if self.run == RunStatus::Running {
            self.settle(&mut out);
        }
        out
    }

    /// A failed attempt (a worker's `fail`, or an expired lease, which is always
    /// retryable): back to ready while retryable with retries left and the run still
    /// going, else failed and the run's failure strategy applies.
    fn fail(&mut self, i: usize, retryable: bool) -> Outcome {
        let t = &mut self.tasks[i];
        assert_eq!(t.status, TaskStatus::Running, "model misuse");
        let max_retries = self.dag.steps[i].max_retries;
        if retryable && t.retry_count < max_retries && self.run == RunStatus::Running {
            t.status = TaskStatus::Ready;
            t.retry_count += 1;
            return Outcome {
                status: TaskStatus::Ready,
                newly_ready: BTreeSet::new(),
                run_status: None,
            };
        }
        t.status = TaskStatus::Failed;
        let mut out = Outcome {
            status: TaskStatus::Failed,
            newly_ready: BTreeSet::new(),
            run_status: None,
        };
        if self.run != RunStatus::Running {
            return out;
        }
        match self.dag.failure {
            FailureStrategy::FailFast => {
                for t in &mut self.tasks {
                    if matches!(t.status, TaskStatus::Pending | TaskStatus::Ready) {
                        t.status = TaskStatus::Cancelled;
                    }
                }
                self.run = RunStatus::Failed;
                out.run_status = Some(RunStatus::Failed);
            }
            FailureStrategy::Continue => {
                for d in self.descendants(i) {
                    if matches!(
                        self.tasks[d].status,
                        TaskStatus::Pending | TaskStatus::Ready
                    ) {
                        self.tasks[d].status = TaskStatus::Cancelled;
                    }
                }
                self.settle(&mut out);
            }
        }
        out
    }

    /// Every step that depends on step `i`, directly or not.
    fn descendants(&self, i: usize) -> BTreeSet<usize> {
        let mut found = BTreeSet::new();
        let mut todo = vec![i];
        while let Some(x) = todo.pop() {
            for (j, s) in self.dag.steps.iter().enumerate() {
                if s.deps.contains(&x) && found.insert(j) {
                    todo.push(j);
                }
            }
        }
        found
    }

    fn settle(&mut self, out: &mut Outcome) {
        for j in 0..self.tasks.len() {
            if self.tasks[j].status == TaskStatus::Pending
                && self.dag.steps[j]
                    .deps
                    .iter()
                    .all(|d| self.tasks[*d].status == TaskStatus::Completed)
            {
                self.tasks[j].status = TaskStatus::Ready;
                out.newly_ready.insert(self.dag.steps[j].key.clone());
            }
        }
        if self.tasks.iter().any(|t| is_open(t.status)) {
            return;
        }
        let any = |s: TaskStatus| self.tasks.iter().any(|t| t.status == s);
        let end = if any(TaskStatus::Failed) {
            RunStatus::Failed
        } else if any(TaskStatus::Cancelled) {
            RunStatus::Cancelled
        } else {
            RunStatus::Completed
        };
        self.run = end;
        out.run_status = Some(end);
    }
}

// ---------------------------------------------------------------------------------
// The driver.

/// What the seeds exercised, so that the test can insist it covered the rules.
#[derive(Debug, Default)]
struct Coverage {
    strategies: BTreeSet<&'static str>,
    outcomes: BTreeSet<&'static str>,
    actions: BTreeMap<&'static str, usize>,
    retried: usize,
    reaped_to_ready: usize,
    reaped_to_failed: usize,
    cancelled_tasks: usize,
    after_run_end: usize,
    requeued_after_run_end: usize,
}

struct Ctx<'a> {
    store: &'a Store,
    seed: u64,
    run: RunId,
    handler: String,
    dag: String,
    keys: BTreeMap<TaskId, String>,
    log: Vec<String>,
}

impl Ctx<'_> {
    fn whence(&self) -> String {
        format!(
            "{:?} seed {} (reproduce with FLOWSTORE_MODEL_SEED={}), workflow {}, actions so far: {:?}",
            self.store.kind(),
            self.seed,
            self.seed,
            self.dag,
            self.log
        )
    }

    fn key(&self, id: TaskId) -> String {
        self.keys
            .get(&id)
            .cloned()
            .unwrap_or_else(|| panic!("task {id} is not of this run; {}", self.whence()))
    }

    /// The whole state of the store's run equals the model's.
    async fn check(&self, model: &Model) {
        let mut tx = self.store.begin_read().await.unwrap();
        let got: BTreeMap<String, TaskModel> = tx
            .run_tasks(self.run)
            .await
            .unwrap()
            .into_iter()
            .map(|t| {
                (
                    t.step_key.expect("run tasks have step keys"),
                    TaskModel {
                        status: t.status,
                        attempt: t.attempt,
                        retry_count: t.retry_count,
                    },
                )
            })
            .collect();
        assert_eq!(
            got,
            model.snapshot(),
            "tasks (left: store, right: model); {}",
            self.whence()
        );
        let status = tx.get_execution(self.run).await.unwrap().status;
        assert_eq!(
            status,
            model.run,
            "run status (left: store, right: model); {}",
            self.whence()
        );
    }

    fn check_transition(&self, what: &str, t: &Transition, want: Outcome) {
        let got = Outcome {
            status: t.status,
            newly_ready: t.newly_ready.iter().map(|id| self.key(*id)).collect(),
            run_status: t.run_status,
        };
        assert_eq!(
            got,
            want,
            "{what} returned (left: store, right: model); {}",
            self.whence()
        );
    }

    async fn claim(&self, lease: Duration) -> Vec<ClaimedTask> {
        // A retry waits for its backoff; make it claimable now, as the model does.
        self.store
            .backend()
            .execute_raw("UPDATE tasks SET run_after = NULL WHERE status = 'ready'")
            .await
            .unwrap();
        let mut tx = self.store.begin().await.unwrap();
        let claimed = tx
            .claim(&ClaimRequest {
                worker_id: format!("worker-{}", self.seed),
                handler_types: vec![self.handler.clone()],
                limit: 1000,
                lease,
                executor: None,
            })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        claimed
    }

    /// Claims everything ready in the store and the model, and checks both agree on
    /// which tasks and which attempts.
    async fn claim_all(&self, model: &mut Model, lease: Duration) -> Vec<ClaimedTask> {
        let claimed = self.claim(lease).await;
        let want = model.claim_all();
        let got: BTreeSet<String> = claimed.iter().map(|c| self.key(c.task_id)).collect();
        assert_eq!(
            got,
            want,
            "claimed tasks (left: store, right: model); {}",
            self.whence()
        );
        assert_eq!(
            got.len(),
            claimed.len(),
            "a task claimed twice; {}",
            self.whence()
        );
        for c in &claimed {
            let key = self.key(c.task_id);
            assert_eq!(
                c.attempt,
                model.tasks[model.index(&key)].attempt,
                "attempt handed out for {key}; {}",
                self.whence()
            );
        }
        claimed
    }

    async fn reap(&self) -> Vec<TaskId> {
        let mut tx = self.store.begin().await.unwrap();
        let reaped = tx.reap_expired_leases(100).await.unwrap();
        tx.commit().await.unwrap();
        reaped
    }
}

fn attempt(c: &ClaimedTask) -> AttemptRef {
    AttemptRef {
        task_id: c.task_id,
        attempt: c.attempt,
    }
}

async fn random_dags_follow_the_model(store: Store) {
    let seeds: Vec<u64> = match std::env::var("FLOWSTORE_MODEL_SEED") {
        Ok(s) => match s.split_once("..") {
            Some((a, b)) => (a.parse().expect("a seed")..b.parse().expect("a seed")).collect(),
            None => vec![s
                .parse()
                .expect("FLOWSTORE_MODEL_SEED is a seed or a range a..b")],
        },
        Err(_) => SEEDS.collect(),
    };
    let started = std::time::Instant::now();
    let mut coverage = Coverage::default();
    for seed in &seeds {
        run_one(&store, *seed, &mut coverage).await;
    }
    println!(
        "{:?}: {} seeds in {:?}: {coverage:?}",
        store.kind(),
        seeds.len(),
        started.elapsed()
    );
    if seeds.len() > 1 {
        // The seeds are fixed, so this is deterministic: it guards against a change
        // of generator or driver that would quietly stop exercising the rules.
        let a = &coverage.actions;
        assert_eq!(coverage.strategies.len(), 2, "{coverage:?}");
        assert!(
            ["completed", "failed"]
                .iter()
                .all(|o| coverage.outcomes.contains(o)),
            "{coverage:?}"
        );
        assert!(
            [
                "claim",
                "claim+vanish",
                "complete",
                "fail",
                "fail(retryable)",
                "vanish"
            ]
            .iter()
            .all(|k| a.get(k).copied().unwrap_or(0) > 0),
            "{coverage:?}"
        );
        assert!(
            coverage.retried > 0
                && coverage.reaped_to_ready > 0
                && coverage.reaped_to_failed > 0
                && coverage.cancelled_tasks > 0,
            "{coverage:?}"
        );
    }
}

async fn run_one(store: &Store, seed: u64, coverage: &mut Coverage) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dag = random_dag(&mut rng);
    // How often a worker does not simply complete: from nearly never to often.
    let chaos: f64 = rng.gen_range(0.05..0.6);
    // One handler type per seed, so that a claim only ever sees this run's tasks.
    let handler = format!("model-{seed}");
    let mut tx = store.begin().await.unwrap();
    fixtures::handler(&mut tx, &handler).await;
    let wf = tx
        .create_workflow(NewWorkflow {
            name: format!("model-{seed}-{}", uuid::Uuid::new_v4().simple()),
            status: Some(WorkflowStatus::Active),
            definition: Some(dag.definition(&handler)),
            execution_strategy: Some(ExecutionStrategy::Parallel),
            failure_strategy: Some(dag.failure),
            ..Default::default()
        })
        .await
        .unwrap();
    let started = tx
        .start_run(StartRun {
            workflow_id: wf.id,
            ..Default::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    coverage.strategies.insert(dag.failure.as_str());

    let mut ctx = Ctx {
        store,
        seed,
        run: started.run.id,
        handler,
        dag: format!("{} chaos {chaos:.2}", dag.describe()),
        keys: started
            .tasks
            .iter()
            .map(|t| (t.id, t.step_key.clone().expect("run tasks have step keys")))
            .collect(),
        log: vec![],
    };
    let mut model = Model::start(dag);
    assert_eq!(started.run.status, RunStatus::Running, "{}", ctx.whence());
    ctx.check(&model).await;

    // Tasks claimed and not yet reported, by step key.
    let mut held: BTreeMap<String, ClaimedTask> = BTreeMap::new();
    let mut finished = false;
    for _ in 0..MAX_ACTIONS {
        let ready = model.keys_with(TaskStatus::Ready);
        if ready.is_empty() && held.is_empty() {
            finished = true;
            break;
        }
        let run_ended = model.run != RunStatus::Running;
        if run_ended {
            coverage.after_run_end += 1;
        }
        let action: &'static str;
        if !ready.is_empty() && (held.is_empty() || rng.gen_bool(0.4)) {
            if rng.gen_bool(chaos / 2.0) {
                // A worker claims everything ready with the shortest lease and is
                // never heard from again; the reaper takes the tasks back.
                action = "claim+vanish";
                ctx.log.push(format!("claim+vanish {ready:?}"));
                let claimed = ctx.claim_all(&mut model, SHORT_LEASE).await;
                ctx.check(&model).await;
                tokio::time::sleep(LEASE_PASSES).await;
                let reaped = ctx.reap().await;
                let got: BTreeSet<String> = reaped.iter().map(|id| ctx.key(*id)).collect();
                let want: BTreeSet<String> = claimed.iter().map(|c| ctx.key(c.task_id)).collect();
                assert_eq!(got, want, "reaped (left) vs vanished; {}", ctx.whence());
                for id in &reaped {
                    let i = model.index(&ctx.key(*id));
                    let ended = model.run != RunStatus::Running;
                    let out = model.fail(i, true);
                    if out.status == TaskStatus::Ready {
                        coverage.reaped_to_ready += 1;
                        coverage.requeued_after_run_end += usize::from(ended);
                    } else {
                        coverage.reaped_to_failed += 1;
                    }
                }
            } else {
                action = "claim";
                ctx.log.push(format!("claim {ready:?}"));
                for c in ctx.claim_all(&mut model, Duration::from_secs(60)).await {
                    held.insert(ctx.key(c.task_id), c);
                }
            }
        } else {
            let key = held
                .keys()
                .nth(rng.gen_range(0..held.len()))
                .cloned()
                .expect("a held task");
            let c = held.remove(&key).expect("a held task");
            let i = model.index(&key);
            action = if rng.gen_bool(1.0 - chaos) {
                "complete"
            } else {
                ["fail", "fail(retryable)", "vanish"][rng.gen_range(0..3)]
            };
            ctx.log.push(format!("{action} {key}#{}", c.attempt));
            match action {
                "complete" => {
                    let mut tx = store.begin().await.unwrap();
                    let t = tx.complete(attempt(&c), json!({"step": key})).await;
                    let t = t.unwrap_or_else(|e| panic!("complete: {e}; {}", ctx.whence()));
                    tx.commit().await.unwrap();
                    ctx.check_transition("complete", &t, model.complete(i));
                }
                "fail" | "fail(retryable)" => {
                    let retryable = action == "fail(retryable)";
                    let mut tx = store.begin().await.unwrap();
                    let t = tx
                        .fail(attempt(&c), json!({"message": "boom"}), retryable)
                        .await;
                    let t = t.unwrap_or_else(|e| panic!("fail: {e}; {}", ctx.whence()));
                    tx.commit().await.unwrap();
                    if retryable {
                        assert_eq!(
                            t.retry_at.is_some(),
                            t.status == TaskStatus::Ready,
                            "a retry, and only a retry, has a time; {}",
                            ctx.whence()
                        );
                    }
                    let out = model.fail(i, retryable);
                    if out.status == TaskStatus::Ready {
                        coverage.retried += 1;
                        coverage.requeued_after_run_end += usize::from(run_ended);
                    }
                    ctx.check_transition(action, &t, out);
                }
                _ => {
                    // The worker holding the task shortens its lease to the minimum
                    // and then goes silent.
                    let mut tx = store.begin().await.unwrap();
                    let hb = tx.heartbeat(attempt(&c), SHORT_LEASE).await;
                    let hb = hb.unwrap_or_else(|e| panic!("heartbeat: {e}; {}", ctx.whence()));
                    tx.commit().await.unwrap();
                    assert_eq!(
                        hb.cancel_requested,
                        run_ended,
                        "a heartbeat tells whether the run is over; {}",
                        ctx.whence()
                    );
                    ctx.check(&model).await;
                    tokio::time::sleep(LEASE_PASSES).await;
                    let reaped = ctx.reap().await;
                    assert_eq!(
                        reaped,
                        vec![c.task_id],
                        "only the silent worker's task is reaped; {}",
                        ctx.whence()
                    );
                    if model.fail(i, true).status == TaskStatus::Ready {
                        coverage.reaped_to_ready += 1;
                        coverage.requeued_after_run_end += usize::from(run_ended);
                    } else {
                        coverage.reaped_to_failed += 1;
                    }
                }
            }
        }
        *coverage.actions.entry(action).or_default() += 1;
        ctx.check(&model).await;
    }
    assert!(
        finished,
        "no end after {MAX_ACTIONS} actions; {}",
        ctx.whence()
    );
    // Nothing ready or running is left: the run must be over, and nothing is
    // handed out any more.
    assert_ne!(
        model.run,
        RunStatus::Running,
        "the model's run is stuck; {}",
        ctx.whence()
    );
    assert!(
        model.tasks.iter().all(|t| !is_open(t.status)),
        "an open task in an ended run; {}",
        ctx.whence()
    );
    assert!(
        ctx.claim(Duration::from_secs(60)).await.is_empty(),
        "nothing to claim at the end; {}",
        ctx.whence()
    );
    coverage.outcomes.insert(model.run.as_str());
    coverage.cancelled_tasks += model
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Cancelled)
        .count();
}
