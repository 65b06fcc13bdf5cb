//! Statistics, vacuum and retention on SQLite.

use flowstore_core::admin::{
    ConnectionStats, DbStats, IndexStat, RetentionPass, TableCounts, TableStat,
};
use flowstore_core::time::Timestamp;
use flowstore_core::{BackendKind, StoreResult};
use sqlx::{Connection, SqliteConnection};

use crate::backend::SqliteBackend;
use crate::retention;

async fn scalar(b: &SqliteBackend, sql: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(b.pool()).await?)
}

/// Folds the whole write-ahead log into the file and empties it. A reader that is
/// still ending its transaction (a read's rollback goes out when its connection is
/// given back) makes SQLite answer "busy" instead of waiting; it is asked again for
/// up to two seconds, so that what VACUUM rewrote is in the file and not left in
/// the log beside it.
async fn checkpoint(conn: &mut SqliteConnection) -> StoreResult<()> {
    for _ in 0..100 {
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await?;
        if busy == 0 {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tracing::warn!("the write-ahead log could not be checkpointed: readers kept it busy");
    Ok(())
}

#[async_trait::async_trait]
impl flowstore_core::admin::Maintenance for SqliteBackend {
    async fn vacuum_pass(&self, optimize: bool) -> StoreResult<Vec<String>> {
        let b = self;
        // VACUUM needs the database to itself: take the writer's place first.
        let _guard = b.writer.lock().await;
        let mut conn = b.pool().acquire().await?;
        let mut steps = vec![
            "PRAGMA wal_checkpoint(TRUNCATE)",
            "VACUUM",
            "PRAGMA incremental_vacuum",
        ];
        if optimize {
            steps.push("PRAGMA optimize");
        }
        steps.push("PRAGMA wal_checkpoint(TRUNCATE)");
        for s in &steps {
            if s.starts_with("PRAGMA wal_checkpoint") {
                checkpoint(&mut conn).await?;
            } else {
                sqlx::query(s).execute(&mut *conn).await?;
            }
        }
        Ok(steps.into_iter().map(String::from).collect())
    }

    async fn retention_pass(
        &self,
        cutoff: Timestamp,
        pass: RetentionPass,
    ) -> StoreResult<TableCounts> {
        // A plan writes nothing: it need not wait for the writer.
        if pass == RetentionPass::Plan {
            let mut conn = self.pool().acquire().await?;
            let mut tx = conn.begin().await?;
            let out = retention::run(&mut tx, &cutoff, pass).await?;
            tx.rollback().await?;
            return Ok(out);
        }
        let (mut tx, _guard) = self.write_tx().await?;
        let out = retention::run(&mut tx, &cutoff, pass).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn stats(&self) -> StoreResult<DbStats> {
        let b = self;
        let mut notes = Vec::new();
        let pool = b.pool();
        let objects: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT type, name, tbl_name FROM sqlite_master
              WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%'
                AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
        )
        .fetch_all(pool)
        .await?;
        // dbstat exists only when SQLite was built with SQLITE_ENABLE_DBSTAT_VTAB.
        let sizes: Option<Vec<(String, i64)>> =
            sqlx::query_as("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
                .fetch_all(pool)
                .await
                .ok();
        if sizes.is_none() {
            notes.push(
                "per-table and per-index sizes need the dbstat table, which this SQLite build lacks"
                    .into(),
            );
        }
        let size_of = |name: &str| {
            sizes.as_ref().map(|s| {
                s.iter()
                    .find(|(n, _)| n == name)
                    .map_or(0, |(_, b)| *b as u64)
            })
        };
        let mut tables = Vec::new();
        let mut indexes = Vec::new();
        for (kind, name, table) in &objects {
            if kind == "table" {
                let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{name}\""))
                    .fetch_one(pool)
                    .await?;
                let own = size_of(name);
                let with_indexes = own.map(|own| {
                    own + objects
                        .iter()
                        .filter(|(k, _, t)| k == "index" && t == name)
                        .filter_map(|(_, i, _)| size_of(i))
                        .sum::<u64>()
                });
                tables.push(TableStat {
                    name: name.clone(),
                    rows: rows as u64,
                    bytes: with_indexes,
                    dead_rows: None,
                });
            } else {
                indexes.push(IndexStat {
                    name: name.clone(),
                    table: table.clone(),
                    scans: None,
                    bytes: size_of(name),
                });
            }
        }
        let analysed: i64 = scalar(
            b,
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'",
        )
        .await?;
        notes.push(format!(
            "SQLite does not count index scans, so unused indexes cannot be listed; planner \
             statistics (sqlite_stat1) are {}",
            if analysed > 0 {
                "present (refreshed by `flowstore vacuum`)"
            } else {
                "absent until `flowstore vacuum` runs PRAGMA optimize"
            }
        ));
        notes.push("SQLite keeps no statement statistics: the slow statements listed are those flowstore recorded".into());
        let freelist: i64 = scalar(b, "PRAGMA freelist_count").await?;
        Ok(DbStats {
            backend: BackendKind::Sqlite,
            database_bytes: b.database_bytes().await?,
            tables,
            indexes,
            unused_indexes: Vec::new(),
            connections: ConnectionStats {
                pool_size: pool.size(),
                pool_idle: pool.num_idle() as u32,
                server_by_state: Default::default(),
            },
            slow_statements: Vec::new(),
            freelist_pages: Some(freelist as u64),
            dead_rows: None,
            notes,
        })
    }

    async fn database_bytes(&self) -> StoreResult<u64> {
        let b = self;
        let files: Vec<(i64, String, String)> = sqlx::query_as("PRAGMA database_list")
            .fetch_all(b.pool())
            .await?;
        if let Some((_, _, file)) = files.iter().find(|(_, n, _)| n == "main") {
            if !file.is_empty() {
                if let Ok(m) = std::fs::metadata(file) {
                    let wal = std::fs::metadata(format!("{file}-wal")).map_or(0, |m| m.len());
                    return Ok(m.len() + wal);
                }
            }
        }
        let pages: i64 = scalar(b, "PRAGMA page_count").await?;
        let size: i64 = scalar(b, "PRAGMA page_size").await?;
        Ok((pages * size) as u64)
    }

    async fn native_backup(&self, path: &std::path::Path) -> StoreResult<()> {
        let target = path.to_string_lossy().replace('\'', "''");
        sqlx::query(&format!("VACUUM INTO '{target}'"))
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
