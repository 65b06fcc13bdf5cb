//! Write-ahead-log checkpoints off the writers' path.
//!
//! By default SQLite checkpoints inside the commit that pushes the log past 1 000
//! pages: that commit copies the log into the database file and syncs it, and since
//! flowstore serialises its writers, every writer queued behind it waits for the
//! sync too. Here a background task checkpoints a few times a second on a connection
//! of its own, in `PASSIVE` mode (it copies what no reader still needs and never
//! waits for or blocks a writer), and the automatic checkpoint only steps in when the
//! log grows far past what the task keeps up with.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::task::JoinHandle;

/// Log pages after which a commit checkpoints by itself (about 40 MB at 4 KiB pages):
/// the safety net for when the background task falls behind.
pub(crate) const AUTO_CHECKPOINT_PAGES: &str = "10000";

/// Bytes the log file is cut back to when it restarts from its beginning (SQLite's
/// `journal_size_limit`): what a burst made it grow to is given back to the disk.
pub(crate) const LOG_SIZE_LIMIT: &str = "16777216";

/// Log pages (16 MiB at 4 KiB pages) past which the background task restarts the
/// log: it waits for the readers still using it (holding new writers meanwhile, for
/// at most the busy timeout) so that the next commit writes from its beginning
/// again. Readers that never pause would otherwise let the log grow without bound.
const RESTART_PAGES: i64 = 4096;

/// How often the background task checkpoints.
const EVERY: Duration = Duration::from_millis(200);

/// The background checkpoint task of one pool; stops when dropped or when the pool
/// is closed.
pub(crate) struct Checkpointer(JoinHandle<()>);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts checkpointing `pool`'s database in the background.
pub(crate) fn spawn(pool: SqlitePool) -> Checkpointer {
    Checkpointer(tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                break;
            }
            let passive: Result<(i64, i64, i64), _> =
                sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&pool)
                    .await;
            let result = match passive {
                Ok((_, log, _)) if log >= RESTART_PAGES => {
                    sqlx::query("PRAGMA wal_checkpoint(RESTART)")
                        .execute(&pool)
                        .await
                        .map(|_| ())
                }
                other => other.map(|_| ()),
            };
            if let Err(e) = result {
                if pool.is_closed() {
                    break;
                }
                // A failed checkpoint loses nothing: the log keeps every commit and the
                // automatic checkpoint remains as a fallback.
                tracing::debug!(error = %e, "background WAL checkpoint failed");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    use super::*;

    /// A pool on a new WAL database at `file` with automatic checkpoints off (and
    /// `more` options), holding an empty table `t` of blobs: what it writes stays in
    /// the log until something checkpoints it.
    async fn unchecked_pool(
        file: &std::path::Path,
        more: impl FnOnce(SqliteConnectOptions) -> SqliteConnectOptions,
    ) -> SqlitePool {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(more(options))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (b BLOB)")
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    /// With automatic checkpoints off, committed pages stay in the log until
    /// something copies them into the database file; the background task must.
    #[tokio::test]
    async fn the_background_task_copies_the_log_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ckpt.db");
        let pool = unchecked_pool(&file, |o| o).await;
        sqlx::query(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 256)
             INSERT INTO t SELECT randomblob(4000) FROM s",
        )
        .execute(&pool)
        .await
        .unwrap();
        let size = || std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(size() < 100_000, "the rows are only in the log yet");

        let task = spawn(pool.clone());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while size() < 1_000_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the log was not checkpointed (file is {} bytes)",
                size()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(task);
        pool.close().await;
    }

    /// A log grown far past its bound (here by 24 MiB of rows written with automatic
    /// checkpoints off) is restarted and cut back to `LOG_SIZE_LIMIT` by the task.
    #[tokio::test]
    async fn the_log_is_kept_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bound.db");
        let wal = dir.path().join("bound.db-wal");
        let pool = unchecked_pool(&file, |o| o.pragma("journal_size_limit", LOG_SIZE_LIMIT)).await;
        for _ in 0..6 {
            sqlx::query(
                "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1000)
                 INSERT INTO t SELECT randomblob(4000) FROM s",
            )
            .execute(&pool)
            .await
            .unwrap();
        }
        let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert!(wal_size() > 20_000_000, "the log grew: {}", wal_size());
        let limit: u64 = LOG_SIZE_LIMIT.parse().unwrap();
        let task = spawn(pool.clone());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            // The cut happens when the next writer starts the log again.
            sqlx::query("INSERT INTO t VALUES (x'00')")
                .execute(&pool)
                .await
                .unwrap();
            if wal_size() <= limit {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the log stayed at {} bytes",
                wal_size()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(task);
        pool.close().await;
    }
}
