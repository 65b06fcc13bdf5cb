//! Statistics, amcheck, vacuum and retention on PostgreSQL.

use flowstore_core::admin::{
    ConnectionStats, DbStats, Finding, FindingKind, IndexStat, RetentionPass, SlowStatement,
    TableCounts, TableStat,
};
use flowstore_core::time::Timestamp;
use flowstore_core::{BackendKind, StoreError, StoreResult};
use sqlx::{Connection, PgConnection};
use std::path::{Path, PathBuf};

use crate::backend::PostgresBackend;
use crate::retention;

/// Checks every b-tree index of the schema with amcheck when it is installed.
pub(super) async fn amcheck(
    conn: &mut PgConnection,
    notes: &mut Vec<String>,
) -> StoreResult<Vec<Finding>> {
    let installed: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'amcheck')")
            .fetch_one(&mut *conn)
            .await?;
    if !installed {
        notes.push(
            "amcheck is not installed: b-tree indexes were not verified \
             (CREATE EXTENSION amcheck to enable)"
                .into(),
        );
        return Ok(Vec::new());
    }
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT quote_ident(c.relname), t.relname::text FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
           JOIN pg_am am ON am.oid = c.relam
          WHERE am.amname = 'btree' AND i.indisvalid
            AND c.relnamespace = current_schema()::regnamespace",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for (index, table) in indexes {
        let check = sqlx::query("SELECT bt_index_check($1::regclass)")
            .bind(&index)
            .execute(&mut *conn)
            .await;
        if let Err(e) = check {
            out.push(Finding {
                kind: FindingKind::Corruption,
                table,
                count: 1,
                examples: vec![index],
                detail: format!("amcheck: {e}"),
            });
        }
    }
    Ok(out)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn slow_statements(
    b: &PostgresBackend,
    notes: &mut Vec<String>,
) -> StoreResult<Vec<SlowStatement>> {
    let installed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')",
    )
    .fetch_one(b.direct_pool())
    .await?;
    if !installed {
        notes.push("pg_stat_statements is not installed: the slow statements listed are those flowstore recorded".into());
        return Ok(Vec::new());
    }
    let rows: Result<Vec<(String, i64, f64, f64)>, _> = sqlx::query_as(
        "SELECT query, calls, mean_exec_time, total_exec_time FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          ORDER BY mean_exec_time DESC LIMIT 10",
    )
    .fetch_all(b.direct_pool())
    .await;
    match rows {
        Ok(rows) => Ok(rows
            .into_iter()
            .map(|(query, calls, mean_ms, total_ms)| SlowStatement {
                query,
                calls: calls as u64,
                mean_ms,
                total_ms,
                max_ms: None,
            })
            .collect()),
        Err(e) => {
            notes.push(format!("pg_stat_statements cannot be read: {e}"));
            Ok(Vec::new())
        }
    }
}

/// `pg_dump` on PATH, else the newest in `/usr/lib/postgresql/*/bin`.
fn find_pg_dump() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("pg_dump"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin/pg_dump")))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    })
}

/// Runs `pg_dump --format=custom` of `url` into `out`.
pub(crate) fn pg_dump(url: &str, out: &Path) -> StoreResult<()> {
    let exe = find_pg_dump().ok_or_else(|| {
        StoreError::unavailable(
            "pg_dump was not found on PATH or in /usr/lib/postgresql/*/bin; install the PostgreSQL client tools or use a portable backup (without --native)"
        )
    })?;
    let output = std::process::Command::new(&exe)
        .arg("--format=custom")
        .arg("--file")
        .arg(out)
        .arg("--dbname")
        .arg(url)
        .output()
        .map_err(|e| StoreError::unavailable(format!("cannot run {}: {e}", exe.display())))?;
    if !output.status.success() {
        return Err(StoreError::unavailable(format!(
            "pg_dump failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

#[async_trait::async_trait]
impl flowstore_core::admin::Maintenance for PostgresBackend {
    async fn vacuum_pass(&self, reindex: bool) -> StoreResult<Vec<String>> {
        let b = self;
        let mut conn = b.direct_pool().acquire().await?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = current_schema()
              ORDER BY tablename",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut steps = Vec::new();
        for t in &tables {
            steps.push(format!("VACUUM (ANALYZE) {t}"));
            if reindex {
                steps.push(format!("REINDEX TABLE CONCURRENTLY {t}"));
            }
        }
        sqlx::Executor::execute(&mut *conn, "SET statement_timeout = 0").await?;
        let mut result = Ok(());
        for s in &steps {
            if let Err(e) = sqlx::Executor::execute(&mut *conn, s.as_str()).await {
                result = Err(StoreError::from(e));
                break;
            }
        }
        let _ = sqlx::Executor::execute(&mut *conn, "RESET statement_timeout").await;
        result.map(|_| steps)
    }

    async fn retention_pass(
        &self,
        cutoff: Timestamp,
        pass: RetentionPass,
    ) -> StoreResult<TableCounts> {
        let mut conn = self.direct_pool().acquire().await?;
        let mut tx = conn.begin().await?;
        let out = retention::run(&mut tx, &cutoff, pass).await?;
        if pass == RetentionPass::Plan {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(out)
    }

    async fn stats(&self) -> StoreResult<DbStats> {
        let b = self;
        let pool = b.direct_pool();
        let mut notes = Vec::new();
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT relname::text, n_dead_tup, pg_total_relation_size(relid)
               FROM pg_stat_user_tables WHERE schemaname = current_schema() ORDER BY relname",
        )
        .fetch_all(pool)
        .await?;
        let mut tables = Vec::new();
        let mut dead = 0u64;
        for (name, dead_rows, bytes) in rows {
            let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quote(&name)))
                .fetch_one(pool)
                .await?;
            dead += dead_rows as u64;
            tables.push(TableStat {
                name,
                rows: count as u64,
                bytes: Some(bytes as u64),
                dead_rows: Some(dead_rows as u64),
            });
        }
        let idx: Vec<(String, String, i64, i64, bool)> = sqlx::query_as(
            "SELECT s.indexrelname::text, s.relname::text, s.idx_scan, pg_relation_size(s.indexrelid),
                    i.indisunique OR i.indisprimary
               FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
              WHERE s.schemaname = current_schema() ORDER BY s.indexrelname",
        )
        .fetch_all(pool)
        .await?;
        // Unique indexes enforce constraints even when never scanned: not "unused".
        let unused = idx
            .iter()
            .filter(|(_, _, scans, _, unique)| *scans == 0 && !unique)
            .map(|(n, ..)| n.clone())
            .collect();
        let indexes = idx
            .into_iter()
            .map(|(name, table, scans, bytes, _)| IndexStat {
                name,
                table,
                scans: Some(scans as u64),
                bytes: Some(bytes as u64),
            })
            .collect();
        notes.push("index scans are counted since the statistics were last reset".into());
        let by_state: Vec<(String, i64)> = sqlx::query_as(
            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity
              WHERE datname = current_database() GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(pool)
        .await?;
        let slow = slow_statements(b, &mut notes).await?;
        Ok(DbStats {
            backend: BackendKind::Postgres,
            database_bytes: b.database_bytes().await?,
            tables,
            indexes,
            unused_indexes: unused,
            connections: ConnectionStats {
                pool_size: pool.size(),
                pool_idle: pool.num_idle() as u32,
                server_by_state: by_state.into_iter().map(|(s, n)| (s, n as u64)).collect(),
            },
            slow_statements: slow,
            freelist_pages: None,
            dead_rows: Some(dead),
            notes,
        })
    }

    async fn database_bytes(&self) -> StoreResult<u64> {
        let b = self;
        let n: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(b.direct_pool())
            .await?;
        Ok(n as u64)
    }

    async fn native_backup(&self, path: &std::path::Path) -> StoreResult<()> {
        let url = self.url.clone();
        let out = path.to_path_buf();
        tokio::task::spawn_blocking(move || pg_dump(&url, &out))
            .await
            .map_err(|e| flowstore_core::StoreError::internal(e.to_string()))?
    }
}
