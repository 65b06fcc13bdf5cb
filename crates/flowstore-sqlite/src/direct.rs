//! The worker transitions that need no engine, on the writer's own thread.
//!
//! Through sqlx, every statement goes to its connection's thread and back, and each
//! row it returns crosses too: a group of claims and completions paid four or five
//! such hand-offs, each two context switches, besides its commit. Here a thread of
//! its own holds a connection of its own (rusqlite, with its statements prepared
//! once) and runs each group of the commonest transitions at once, under the same
//! writer lock as every other writer and with one commit, synced as the pool's are
//! (`synchronous=FULL` by default):
//!
//! - claims, each set of claims alike in one statement as the group writer's are
//!   (the same SQL, `hot_path.rs`);
//! - completions of the current attempt of a running task without a run, all the
//!   group's in one statement;
//! - lease extensions of current attempts, all in one statement.
//!
//! A group waits, before it takes the writer lock, up to [`GATHER`] for as many asks
//! as the last group answered: the workers it answered are still sending their next
//! ones, and one commit then takes what would have been several.
//!
//! Everything else takes the engine's way through the group writer (`group.rs`): a
//! failure, a task of a run (which must advance its run in the same transaction), a
//! report that is not the current attempt's (a repeat, a stale or unknown attempt),
//! and a whole group should any of its statements fail. The answer [`Answer::Engine`]
//! and the items handed back say so, and nothing of them was written. An in-memory
//! database has no second connection and takes the engine's way for everything.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowstore_core::ids::{AttemptId, RunId, TaskId};
use flowstore_core::model::engine::{
    check_lease, AttemptRef, ClaimRequest, ClaimedTask, EngineSettings, ExtendedLease, Heartbeat,
    Transition,
};
use flowstore_core::time::{self, Timestamp};
use flowstore_core::{StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use std::sync::mpsc;

use tokio::sync::{oneshot, Mutex};
use uuid::Uuid;

use crate::hot_path::{
    completion_list, lease_list, Arg, Claim, CLAIM_RECORDS, COMPLETE_RUNLESS, EXTEND_LEASES,
};
use crate::util::ts;

/// The most transitions committed together, as in the group writer.
const MAX_GROUP: usize = 64;

/// Longest a group waits for as many asks as the last group answered.
const GATHER: Duration = Duration::from_micros(200);

/// A transition asked of the writer's thread.
pub(crate) enum Ask {
    Claim(ClaimRequest),
    /// Completions, each task named once with an output within limits.
    Complete(Vec<(AttemptRef, Value)>),
    /// A lease to extend, for how long.
    Heartbeat(AttemptRef, Duration),
}

/// What the writer's thread did with an [`Ask`].
pub(crate) enum Answer {
    Claimed(Vec<ClaimedTask>),
    /// Per completion in order: its transition, or the item handed back for the
    /// engine (not the current attempt of a running task without a run).
    Completed(Vec<flowstore_core::engine::shortcut::Shortcut>),
    /// The lease extended, or `None`: not a current attempt, for the engine to answer.
    Heartbeat(Option<Heartbeat>),
    /// Nothing was written: the ask goes the engine's way (a statement of its group
    /// failed, or the thread has stopped).
    Engine,
}

struct Job {
    ask: Ask,
    reply: oneshot::Sender<Answer>,
}

/// What the thread shares with the pool's writers.
pub(crate) struct Shared {
    pub writer: Arc<Mutex<()>>,
    pub waits: Arc<flowstore_core::store::WaitBoard>,
    pub feed: crate::feed::FeedHandle,
    /// Statements slower than this are reported (`None`: none is).
    pub slow: Option<Duration>,
    /// What the engine writes besides what its guarantees need.
    pub engine: EngineSettings,
}

/// The handle of the writer's thread; the thread ends once the handle is dropped.
pub(crate) struct DirectWriter {
    /// `None` once closed.
    jobs: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The connection settings the pool's connections have, for the thread's own.
pub(crate) struct Pragmas {
    pub busy_timeout: Duration,
    pub synchronous: &'static str,
}

impl DirectWriter {
    /// Opens the thread's connection to `file` and starts the thread.
    pub(crate) fn start(file: &Path, pragmas: Pragmas, shared: Shared) -> StoreResult<Self> {
        let conn = open(file, &pragmas).map_err(|e| {
            StoreError::unavailable(format!(
                "cannot open the SQLite database {} for the writer: {e}",
                file.display()
            ))
        })?;
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("flowstore-sqlite-writer".into())
            .spawn(move || run(conn, shared, queue))
            .map_err(|e| StoreError::unavailable(format!("cannot start the writer: {e}")))?;
        Ok(DirectWriter {
            jobs: std::sync::Mutex::new(Some(jobs)),
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Stops the thread: it answers what it holds and closes its connection (the
    /// last one on the file checkpoints the log into it); later asks come back.
    pub(crate) async fn close(&self) {
        drop(self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Runs `ask` in the thread's next group and returns its answer once that group
    /// committed; `Err` with the ask when the thread has stopped.
    pub(crate) async fn ask(&self, ask: Ask) -> Result<StoreResult<Answer>, Ask> {
        let (reply, answer) = oneshot::channel();
        let job = Job { ask, reply };
        let sent = match &*self.jobs.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(jobs) => jobs.send(job).map_err(|mpsc::SendError(job)| job),
            None => Err(job),
        };
        if let Err(job) = sent {
            return Err(job.ask);
        }
        Ok(answer.await.map_err(|_| {
            StoreError::unavailable("the SQLite writer's thread stopped before answering")
        }))
    }
}

fn open(file: &Path, pragmas: &Pragmas) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(pragmas.busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", pragmas.synchronous)?;
    let shared = crate::backend::CONNECTION_PRAGMAS.iter();
    for (name, value) in shared.chain(&crate::backend::LOG_PRAGMAS) {
        conn.pragma_update(None, name, value)?;
    }
    Ok(conn)
}

fn run(conn: Connection, shared: Shared, queue: mpsc::Receiver<Job>) {
    // How many asks the last group answered: as many workers are likely to ask again.
    let mut last = 1;
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        // The workers the last group answered are still sending their next asks:
        // waiting a moment for them (before taking the writer, so that nobody else
        // waits meanwhile) makes one commit of what would be several.
        let until = Instant::now() + GATHER;
        while jobs.len() < last.min(MAX_GROUP) {
            match queue.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // Then the writer: asks that arrive while it is busy join this group too.
        let _writer = match shared.writer.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                let _waiting = shared.waits.wait();
                shared.writer.blocking_lock()
            }
        };
        while jobs.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        last = jobs.len();
        let (asks, replies): (Vec<Ask>, Vec<_>) =
            jobs.into_iter().map(|j| (j.ask, j.reply)).unzip();
        let mut group = Group {
            conn: &conn,
            slow: shared.slow,
            engine: shared.engine,
        };
        // A panic is a failed group too: its asks go the engine's way.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| group.run(&asks)));
        let answers = match ran {
            Ok(Ok(answers)) => {
                // Committed: whatever a listener does, the callers get their answers.
                let told = std::panic::catch_unwind(|| shared.feed.committed());
                if told.is_err() {
                    tracing::error!("a change listener panicked after the writer's commit");
                }
                answers
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "a group on the writer's thread failed; its transitions go the engine's way");
                let _ = conn.execute_batch("ROLLBACK");
                asks.iter().map(|_| Answer::Engine).collect()
            }
            Err(_) => {
                tracing::error!(
                    "a group on the writer's thread panicked; its transitions go the engine's way"
                );
                let _ = conn.execute_batch("ROLLBACK");
                asks.iter().map(|_| Answer::Engine).collect()
            }
        };
        // A rollback that failed leaves the transaction open, holding SQLite's write
        // lock: the thread then ends and its connection closes, which lets go of it,
        // and from then on every transition goes through the pool.
        let stuck = !conn.is_autocommit();
        if stuck {
            tracing::error!("the writer's thread could not roll back; it stops");
        }
        for ((reply, answer), ask) in replies.into_iter().zip(answers).zip(asks) {
            let _ = reply.send(match answer {
                // The items of a completion come back for the engine.
                Answer::Engine => match ask {
                    Ask::Complete(items) => Answer::Completed(items.into_iter().map(Err).collect()),
                    _ => Answer::Engine,
                },
                answer => answer,
            });
        }
        if stuck {
            return;
        }
    }
}

/// One group's transaction on the thread's connection.
struct Group<'c> {
    conn: &'c Connection,
    slow: Option<Duration>,
    engine: EngineSettings,
}

impl Group<'_> {
    /// Runs `asks` in one transaction: the completions first, then the lease
    /// extensions, then the claims. `Err` when a statement failed; the caller rolls
    /// back.
    fn run(&mut self, asks: &[Ask]) -> rusqlite::Result<Vec<Answer>> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let now = time::now();
        let mut answers: Vec<Option<Answer>> = asks.iter().map(|_| None).collect();

        // Completions: a task named by two asks goes to the engine the second time.
        let mut seen = HashSet::new();
        let mut items: Vec<(AttemptRef, &Value)> = Vec::new();
        for ask in asks {
            if let Ask::Complete(list) = ask {
                for (a, o) in list {
                    if seen.insert(a.task_id) {
                        items.push((*a, o));
                    }
                }
            }
        }
        let mut completed: HashSet<(TaskId, i32)> = HashSet::new();
        if !items.is_empty() {
            items.sort_by_key(|(a, _)| a.task_id);
            let args = [Arg::Text(completion_list(&items)), Arg::Text(ts(&now))];
            completed.extend(self.rows(COMPLETE_RUNLESS, &args, |r| {
                Ok((uuid_of(r, 0).map(TaskId)?, r.get::<_, i32>(1)?))
            })?);
        }

        // Lease extensions, each task once.
        let mut leases: Vec<(AttemptRef, Timestamp)> = Vec::new();
        let mut leased = HashSet::new();
        for ask in asks {
            if let Ask::Heartbeat(a, lease) = ask {
                if let Some(until) = lease_end(*lease, now) {
                    if leased.insert(a.task_id) {
                        leases.push((*a, until));
                    }
                }
            }
        }
        let mut extended: std::collections::HashMap<TaskId, ExtendedLease> = Default::default();
        if !leases.is_empty() {
            let args = [Arg::Text(lease_list(&leases)), Arg::Text(ts(&now))];
            extended.extend(
                self.rows(EXTEND_LEASES, &args, |r| {
                    let status: Option<String> = r.get(1)?;
                    Ok(ExtendedLease {
                        task_id: uuid_of(r, 0).map(TaskId)?,
                        run_status: status.and_then(|s| s.parse().ok()),
                        run_cancel_requested: r.get(2)?,
                    })
                })?
                .into_iter()
                .map(|e| (e.task_id, e)),
            );
        }

        // Claims: a refused request goes to the engine, which refuses it in words;
        // those alike share one statement.
        let mut sets: Vec<Vec<usize>> = Vec::new();
        for (i, ask) in asks.iter().enumerate() {
            let Ask::Claim(request) = ask else { continue };
            if request.check().is_err() {
                answers[i] = Some(Answer::Engine);
                continue;
            }
            let alike = |set: &Vec<usize>| match &asks[set[0]] {
                Ask::Claim(other) => {
                    other.handler_types == request.handler_types
                        && other.executor == request.executor
                        && other.lease == request.lease
                }
                _ => false,
            };
            match sets.iter_mut().find(|set| alike(set)) {
                Some(set) => set.push(i),
                None => sets.push(vec![i]),
            }
        }
        for set in sets {
            let requests: Vec<&ClaimRequest> = set
                .iter()
                .filter_map(|&i| match &asks[i] {
                    Ask::Claim(r) => Some(r),
                    _ => None,
                })
                .collect();
            for (&i, claimed) in set.iter().zip(self.claim(&requests, now)?) {
                answers[i] = Some(Answer::Claimed(claimed));
            }
        }
        self.conn.execute_batch("COMMIT")?;

        let mut named = HashSet::new();
        let mut beat = HashSet::new();
        Ok(asks
            .iter()
            .zip(answers)
            .map(|(ask, answer)| match (ask, answer) {
                (_, Some(answer)) => answer,
                (Ask::Complete(list), None) => Answer::Completed(
                    list.iter()
                        .map(|(a, o)| {
                            let done = named.insert(a.task_id)
                                && completed.contains(&(a.task_id, a.attempt));
                            if done {
                                Ok(Transition::completed(*a))
                            } else {
                                Err((*a, o.clone()))
                            }
                        })
                        .collect(),
                ),
                (Ask::Heartbeat(a, lease), None) => Answer::Heartbeat(
                    lease_end(*lease, now)
                        .filter(|_| beat.insert(a.task_id))
                        .and_then(|until| {
                            extended.get(&a.task_id).map(|e| Heartbeat {
                                lease_expires_at: until,
                                cancel_requested: e.cancel_requested(),
                            })
                        }),
                ),
                (Ask::Claim(_), None) => Answer::Engine,
            })
            .collect())
    }

    /// One claim statement for `requests` and the records of what it claimed.
    fn claim(
        &mut self,
        requests: &[&ClaimRequest],
        now: Timestamp,
    ) -> rusqlite::Result<Vec<Vec<ClaimedTask>>> {
        let Some(claim) = Claim::new(requests, now) else {
            return Ok(Vec::new());
        };
        let lease_until = claim.lease_until;
        let mut claimed = self.rows(&claim.sql, &claim.args, |r| {
            let parameters: Option<String> = r.get(5)?;
            let task = ClaimedTask {
                task_id: uuid_of(r, 0).map(TaskId)?,
                attempt_id: AttemptId(Uuid::nil()),
                attempt: r.get(1)?,
                run_id: match r.get::<_, Option<Vec<u8>>>(2)? {
                    Some(b) => Some(RunId(uuid_from(&b, 2)?)),
                    None => None,
                },
                step_key: r.get(3)?,
                handler_type: r.get(4)?,
                parameters: match parameters {
                    Some(p) => serde_json::from_str(&p).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            5,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })?,
                    None => Value::Null,
                },
                lease_expires_at: lease_until,
            };
            Ok((task, r.get::<_, String>(6)?))
        })?;
        let ids: Vec<AttemptId> = claimed.iter().map(|_| AttemptId::new()).collect();
        if let Some(args) = claim.records(&mut claimed, &ids, self.engine.claim_events) {
            self.rows(CLAIM_RECORDS, &args, |_| Ok(()))?;
        }
        Ok(claim.share_out(claimed))
    }

    /// Runs `sql` (statements separated by `;`, numbered parameters `?N` bound from
    /// `args`) and returns the rows of its last statement, each read by `read`.
    fn rows<T>(
        &mut self,
        sql: &str,
        args: &[Arg],
        mut read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        let started = Instant::now();
        let statements: Vec<&str> = sql.split(';').filter(|s| !s.trim().is_empty()).collect();
        let mut out = Vec::new();
        for (k, text) in statements.iter().enumerate() {
            let mut stmt = self.conn.prepare_cached(text)?;
            for n in 1..=stmt.parameter_count() {
                match args.get(n - 1) {
                    Some(Arg::Int(i)) => stmt.raw_bind_parameter(n, i)?,
                    Some(Arg::Text(t)) => stmt.raw_bind_parameter(n, t)?,
                    Some(Arg::Blob(b)) => stmt.raw_bind_parameter(n, b)?,
                    None => return Err(rusqlite::Error::InvalidParameterCount(args.len(), n)),
                }
            }
            let mut rows = stmt.raw_query();
            while let Some(row) = rows.next()? {
                if k + 1 == statements.len() {
                    out.push(read(row)?);
                }
            }
        }
        let elapsed = started.elapsed();
        if self.slow.is_some_and(|limit| elapsed >= limit) {
            flowstore_core::slow::record(sql, elapsed);
        }
        Ok(out)
    }
}

/// When a lease of `lease` taken at `now` ends; `None` for a lease out of bounds,
/// which the engine refuses in words.
fn lease_end(lease: Duration, now: Timestamp) -> Option<Timestamp> {
    check_lease(lease).ok()?;
    Some(now + chrono::Duration::from_std(lease).ok()?)
}

fn uuid_of(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    uuid_from(&row.get::<_, Vec<u8>>(i)?, i)
}

fn uuid_from(bytes: &[u8], i: usize) -> rusqlite::Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, Box::new(e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread's connection is set up as the pool's are: durable commits by
    /// default, foreign keys enforced, the same cache and log limits.
    #[test]
    fn the_threads_connection_has_the_pools_settings() {
        let dir = tempfile::tempdir().unwrap();
        // The pool creates the file; the thread only opens it.
        let file = dir.path().join("t.db");
        std::fs::File::create(&file).unwrap();
        for (sync, number) in [("FULL", 2), ("NORMAL", 1)] {
            let pragmas = Pragmas {
                busy_timeout: Duration::from_secs(3),
                synchronous: sync,
            };
            let conn = open(&file, &pragmas).unwrap();
            let get =
                |name: &str| -> i64 { conn.pragma_query_value(None, name, |r| r.get(0)).unwrap() };
            assert_eq!(get("synchronous"), number);
            assert_eq!(get("foreign_keys"), 1);
            assert_eq!(get("temp_store"), 2, "memory");
            assert_eq!(get("cache_size"), -16000);
            assert_eq!(get("busy_timeout"), 3000);
            assert_eq!(get("wal_autocheckpoint"), 10000);
            assert_eq!(get("journal_size_limit"), 16_777_216);
        }
    }
}
