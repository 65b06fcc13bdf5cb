//! The SQLite driver comparison: the claim floor's own SQL run through rusqlite, whose
//! calls run on the caller's thread, beside the same floor through sqlx, which hands
//! every call to a thread of its own per connection and waits for the answer.
//!
//! The claim target for SQLite is far above what the floor reaches through sqlx, so
//! the bench measures whether the driver is the limit instead of assuming it: same
//! file, same statements, same writer serialisation, same worker count; only the
//! driver differs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowstore_core::StoreResult;
use rusqlite::{params, Connection};
use uuid::Uuid;

use super::claim::{
    sqlite_claim_sql, sqlite_complete_batch_sql, sqlite_complete_sql, RoundResult, Worked,
};
use super::{fail, Samples};

/// Claims and completes `n` ready tasks of `handler` with `workers` threads, each on
/// its own rusqlite connection to `path`, `batch` tasks per claim.
pub(crate) async fn drive(
    path: std::path::PathBuf,
    handler: String,
    batch: u32,
    workers: u32,
    synchronous: flowstore_sqlite::Synchronous,
) -> StoreResult<RoundResult> {
    tokio::task::spawn_blocking(move || drive_threads(&path, &handler, batch, workers, synchronous))
        .await
        .map_err(|e| fail(format!("the rusqlite floor panicked: {e}")))?
}

fn drive_threads(
    path: &std::path::Path,
    handler: &str,
    batch: u32,
    workers: u32,
    synchronous: flowstore_sqlite::Synchronous,
) -> StoreResult<RoundResult> {
    // Writers are serialised by one process lock, as the sqlx floor and flowstore's
    // own SQLite writers are, so that no time goes to busy retries.
    let writer = Arc::new(Mutex::new(()));
    let connections = (0..workers)
        .map(|_| open(path, synchronous))
        .collect::<StoreResult<Vec<_>>>()?;
    let start = Instant::now();
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = connections
            .into_iter()
            .enumerate()
            .map(|(w, conn)| {
                let writer = writer.clone();
                scope.spawn(move || work(&conn, &writer, handler, &format!("bench-{w}"), batch))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| fail("a rusqlite floor worker panicked"))?
            })
            .collect::<StoreResult<Vec<_>>>()
    })?;
    Ok(RoundResult::of_workers(start.elapsed(), results))
}

/// A connection set up as flowstore sets up its own (WAL is already the file's mode).
fn open(
    path: &std::path::Path,
    synchronous: flowstore_sqlite::Synchronous,
) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(sq_err)?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(sq_err)?;
    let sync = match synchronous {
        flowstore_sqlite::Synchronous::Full => "FULL",
        flowstore_sqlite::Synchronous::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA temp_store = memory; PRAGMA cache_size = -16000;"
    ))
    .map_err(sq_err)?;
    Ok(conn)
}

fn work(
    conn: &Connection,
    writer: &Mutex<()>,
    handler: &str,
    worker: &str,
    batch: u32,
) -> StoreResult<Worked> {
    let (claim_sql, one_sql, batch_sql) = (
        sqlite_claim_sql(),
        sqlite_complete_sql(),
        sqlite_complete_batch_sql(),
    );
    let mut done = Vec::new();
    let (mut claim_lat, mut complete_lat) = (Samples::default(), Samples::default());
    loop {
        let t0 = Instant::now();
        let claimed: Vec<(Uuid, i32)> = write(conn, writer, |conn| {
            let mut stmt = conn.prepare_cached(&claim_sql)?;
            let rows = stmt.query_map(params![handler, worker, i64::from(batch)], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i32>(1)?))
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })?
        .into_iter()
        .map(|(id, a)| {
            Uuid::from_slice(&id)
                .map(|u| (u, a))
                .map_err(|e| fail(format!("task id: {e}")))
        })
        .collect::<StoreResult<_>>()?;
        if claimed.is_empty() {
            break;
        }
        claim_lat.push(t0.elapsed());
        if batch > 1 {
            let list: Vec<serde_json::Value> = claimed
                .iter()
                .map(|(t, a)| serde_json::json!([t.simple().to_string(), a]))
                .collect();
            let list = serde_json::Value::Array(list).to_string();
            let t1 = Instant::now();
            let changed = write(conn, writer, |conn| {
                conn.prepare_cached(&batch_sql)?
                    .execute(params![list, "{\"ok\":true}"])
            })?;
            complete_lat.push(t1.elapsed());
            if changed != claimed.len() {
                return Err(fail(format!(
                    "rusqlite batch completion of {} tasks changed {changed} rows",
                    claimed.len()
                )));
            }
            done.extend(claimed);
            continue;
        }
        for (task, attempt) in claimed {
            let t1 = Instant::now();
            let changed = write(conn, writer, |conn| {
                conn.prepare_cached(&one_sql)?.execute(params![
                    task.as_bytes().to_vec(),
                    attempt,
                    "{\"ok\":true}"
                ])
            })?;
            complete_lat.push(t1.elapsed());
            if changed != 1 {
                return Err(fail(format!(
                    "rusqlite completion of {task} changed {changed} rows"
                )));
            }
            done.push((task, attempt));
        }
    }
    Ok((done, claim_lat, complete_lat))
}

/// Runs `f` in one `BEGIN IMMEDIATE` transaction under the process writer lock.
fn write<T>(
    conn: &Connection,
    writer: &Mutex<()>,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> StoreResult<T> {
    let _g = writer
        .lock()
        .map_err(|_| fail("the rusqlite writer lock was poisoned"))?;
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sq_err)?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("COMMIT").map_err(sq_err)?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(sq_err(e))
        }
    }
}

fn sq_err(e: rusqlite::Error) -> flowstore_core::StoreError {
    fail(format!("rusqlite: {e}"))
}

/// The SQLite file behind a URL the bench opened, if it names one.
pub(crate) fn sqlite_path(pool: &sqlx::SqlitePool) -> Option<std::path::PathBuf> {
    let name = pool.connect_options().get_filename().to_path_buf();
    let in_memory = name.as_os_str().is_empty() || name.to_string_lossy().contains(":memory:");
    (!in_memory).then_some(name)
}
