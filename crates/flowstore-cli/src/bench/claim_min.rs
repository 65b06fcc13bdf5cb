//! The `claim` workload's minimal floor: a job table as small as a durable queue can
//! be (one narrow row per job, one partial index over the jobs not yet taken), claimed
//! by one statement and completed by deleting the row, as the leanest Rust queues do.
//! Beside the floor on flowstore's own `tasks` table it shows how much of the gap to
//! the database's limit is the schema (wide rows, many indexes, history) and how much
//! is flowstore.

use flowstore_core::StoreResult;
use uuid::Uuid;

use super::claim::{check_each_once, count, insert_series};
use super::{db_err, fail, Raw};

/// The table and its index, created once per bench database (the bench's databases
/// are its own, dropped when it ends), with the dialect's `id` and time types.
/// `locked_at` is NULL until a worker takes the job; the index holds only those, so
/// taking one removes it from the index.
fn schema(id: &str, time: &str) -> [String; 2] {
    [
        format!(
            "CREATE TABLE IF NOT EXISTS bench_min_jobs (
                id {id},
                queue TEXT NOT NULL,
                attempt INTEGER NOT NULL DEFAULT 0,
                locked_by TEXT,
                locked_at {time})"
        ),
        "CREATE INDEX IF NOT EXISTS bench_min_jobs_ready ON bench_min_jobs (queue, id)
            WHERE locked_at IS NULL"
            .to_string(),
    ]
}

/// A job's ID in the workload's `(Uuid, attempt)` pairs.
fn as_uuid(id: i64) -> Uuid {
    Uuid::from_u64_pair(0, id as u64)
}

fn as_id(id: Uuid) -> i64 {
    id.as_u64_pair().1 as i64
}

/// Creates the table when missing and inserts `n` jobs of `queue`, in one statement.
pub(crate) async fn insert(raw: &Raw, queue: &str, n: u32) -> StoreResult<()> {
    create(raw).await?;
    insert_series(raw, "bench_min_jobs (queue)", ["$1", "?1"], queue, n).await
}

/// Creates the table and its index when missing.
pub(crate) async fn create(raw: &Raw) -> StoreResult<()> {
    match raw {
        Raw::Postgres(pool) => {
            for ddl in schema("BIGSERIAL PRIMARY KEY", "TIMESTAMPTZ") {
                sqlx::query(&ddl).execute(pool).await.map_err(db_err)?;
            }
        }
        Raw::Sqlite { pool, writer } => {
            let _g = writer.lock().await;
            for ddl in schema("INTEGER PRIMARY KEY", "TEXT") {
                sqlx::query(&ddl).execute(pool).await.map_err(db_err)?;
            }
        }
    }
    Ok(())
}

/// Takes up to `batch` jobs of `queue` for `worker`: one statement (skipping rows
/// other workers hold on PostgreSQL; under the one writer on SQLite).
pub(crate) async fn claim(
    raw: &Raw,
    queue: &str,
    worker: &str,
    batch: u32,
) -> StoreResult<Vec<(Uuid, i32)>> {
    let rows: Vec<(i64, i32)> = match raw {
        Raw::Postgres(pool) => sqlx::query_as(
            "UPDATE bench_min_jobs SET locked_by = $2, locked_at = now(), attempt = attempt + 1
              WHERE id IN (SELECT id FROM bench_min_jobs
                            WHERE queue = $1 AND locked_at IS NULL
                            ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
              RETURNING id, attempt",
        )
        .bind(queue)
        .bind(worker)
        .bind(i64::from(batch))
        .fetch_all(pool)
        .await
        .map_err(db_err)?,
        Raw::Sqlite { pool, writer } => {
            let _g = writer.lock().await;
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
            let rows = sqlx::query_as(
                "UPDATE bench_min_jobs
                    SET locked_by = ?2, locked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                        attempt = attempt + 1
                  WHERE id IN (SELECT id FROM bench_min_jobs
                                WHERE queue = ?1 AND locked_at IS NULL
                                ORDER BY id LIMIT ?3)
                  RETURNING id, attempt",
            )
            .bind(queue)
            .bind(worker)
            .bind(i64::from(batch))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            rows
        }
    };
    Ok(rows.into_iter().map(|(id, a)| (as_uuid(id), a)).collect())
}

/// Completes the taken jobs by deleting their rows, in one statement and transaction,
/// guarded by the attempt each was taken with.
pub(crate) async fn complete(raw: &Raw, jobs: &[(Uuid, i32)]) -> StoreResult<()> {
    let ids: Vec<i64> = jobs.iter().map(|(id, _)| as_id(*id)).collect();
    let attempts: Vec<i32> = jobs.iter().map(|(_, a)| *a).collect();
    let gone = match raw {
        Raw::Postgres(pool) => sqlx::query(
            "DELETE FROM bench_min_jobs j USING UNNEST($1::bigint[], $2::int[]) AS u(id, attempt)
              WHERE j.id = u.id AND j.attempt = u.attempt",
        )
        .bind(&ids)
        .bind(&attempts)
        .execute(pool)
        .await
        .map_err(db_err)?
        .rows_affected(),
        Raw::Sqlite { pool, writer } => {
            let list = serde_json::to_string(
                &ids.iter()
                    .zip(&attempts)
                    .map(|(i, a)| [*i, i64::from(*a)])
                    .collect::<Vec<_>>(),
            )
            .map_err(|e| fail(e.to_string()))?;
            let _g = writer.lock().await;
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
            let gone = sqlx::query(
                "DELETE FROM bench_min_jobs
                  WHERE (id, attempt) IN (SELECT value ->> '$[0]', value ->> '$[1]'
                                            FROM json_each(?1))",
            )
            .bind(list)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            tx.commit().await.map_err(db_err)?;
            gone
        }
    };
    if gone != jobs.len() as u64 {
        return Err(fail(format!(
            "the minimal table's completion of {} jobs removed {gone}",
            jobs.len()
        )));
    }
    Ok(())
}

/// Checks that each of the `n` jobs of `queue` was done once, by its first attempt,
/// and that none is left in the table.
pub(crate) async fn check_done(
    raw: &Raw,
    queue: &str,
    n: u32,
    done: &[(Uuid, i32)],
) -> StoreResult<()> {
    check_each_once(queue, n, done)?;
    let left = count(
        raw,
        "SELECT count(*) FROM bench_min_jobs WHERE queue = $1",
        &[queue],
    )
    .await?;
    if left != 0 {
        return Err(fail(format!(
            "{queue}: {left} jobs left in the minimal table"
        )));
    }
    Ok(())
}
