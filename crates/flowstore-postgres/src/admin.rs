//! Whole-database operations on PostgreSQL: integrity checks and their repairs.
//! Stats, vacuum and retention are in `admin/maint.rs`.

use async_trait::async_trait;
use flowstore_core::admin::{AdminBackend, Finding, FindingKind};
use flowstore_core::time::Timestamp;
use flowstore_core::StoreResult;
use sqlx::PgConnection;

use crate::backend::PostgresBackend;
use crate::check::{self, Repaired};

mod maint;

/// Single-column foreign keys of the schema: (table, column, parent, parent column,
/// on-delete action code).
type ForeignKey = (String, String, String, String, String);

async fn foreign_keys(conn: &mut PgConnection) -> StoreResult<Vec<ForeignKey>> {
    Ok(sqlx::query_as(
        "SELECT quote_ident(c.conrelid::regclass::text), quote_ident(a.attname),
                quote_ident(c.confrelid::regclass::text), quote_ident(af.attname),
                c.confdeltype::text
           FROM pg_constraint c
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
           JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = c.confkey[1]
          WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace
            AND array_length(c.conkey, 1) = 1
          ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Rows of `t` whose `col` names no row of `p` (foreign keys are enforced on
/// PostgreSQL, but triggers can be switched off by a superuser's raw writes).
fn anti_join(_t: &str, col: &str, p: &str, pcol: &str) -> String {
    format!("x.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {p} y WHERE y.{pcol} = x.{col})")
}

/// The tasks whose search vector is missing or not what their title and description
/// give, and the vectors of tasks that are gone (the triggers of migration 25 keep
/// them in step unless they were switched off).
const SEARCH_DRIFT: &str = "SELECT CAST(t.id AS TEXT) AS ex FROM tasks t
       LEFT JOIN task_search s ON s.task_id = t.id
      WHERE s.task_id IS NULL OR s.search_vector <> flowstore_task_words(t.title, t.description)
     UNION ALL
     SELECT CAST(s.task_id AS TEXT) FROM task_search s
      WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = s.task_id)";

async fn repair_orphans(conn: &mut PgConnection, now: &Timestamp) -> StoreResult<u64> {
    let mut n = 0;
    for (t, col, p, pcol, action) in foreign_keys(conn).await? {
        let cond = anti_join(&t, &col, &p, &pcol);
        // Repair as the foreign key would have: SET NULL keeps the row.
        let sql = if action == "n" {
            format!("UPDATE {t} AS x SET {col} = NULL WHERE {cond}")
        } else {
            format!("DELETE FROM {t} AS x WHERE {cond}")
        };
        n += check::exec(conn, &sql, now).await?;
    }
    n += check::exec(
        conn,
        "DELETE FROM events e WHERE (e.run_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM workflow_executions r WHERE r.id = e.run_id))
           OR (e.task_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = e.task_id))",
        now,
    )
    .await?;
    Ok(n)
}

#[async_trait]
impl AdminBackend for PostgresBackend {
    async fn find_problems(&self, now: Timestamp) -> StoreResult<(Vec<Finding>, Vec<String>)> {
        let mut conn = self.direct_pool().acquire().await?;
        let mut findings = Vec::new();
        let mut notes = Vec::new();
        for (t, col, p, pcol, _) in foreign_keys(&mut conn).await? {
            let sql = format!(
                "SELECT coalesce(to_jsonb(x)->>'id', x.ctid::text) AS ex FROM {t} x WHERE {}",
                anti_join(&t, &col, &p, &pcol)
            );
            let (count, examples) = check::probe(&mut conn, &sql, &now).await?;
            if count > 0 {
                findings.push(Finding {
                    kind: FindingKind::Orphan,
                    table: t.clone(),
                    count,
                    examples,
                    detail: format!("{col} refers to a missing row of {p}"),
                });
            }
        }
        findings.extend(check::find(&mut conn, &now).await?);
        // A database not yet migrated to 25 keeps its search in `tasks`.
        let search: bool = sqlx::query_scalar("SELECT to_regclass('task_search') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
        let (count, examples) = match search {
            true => check::probe(&mut conn, SEARCH_DRIFT, &now).await?,
            false => (0, Vec::new()),
        };
        if count > 0 {
            findings.push(Finding {
                kind: FindingKind::SearchDrift,
                table: "task_search".into(),
                count,
                examples,
                detail: "search vectors missing, stale or left by deleted tasks".into(),
            });
        }
        let invalid: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, t.relname::text FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
              WHERE NOT i.indisvalid AND c.relnamespace = current_schema()::regnamespace",
        )
        .fetch_all(&mut *conn)
        .await?;
        for (index, table) in invalid {
            findings.push(Finding {
                kind: FindingKind::InvalidIndex,
                table,
                count: 1,
                examples: vec![index],
                detail: "index marked invalid (a failed CREATE INDEX CONCURRENTLY)".into(),
            });
        }
        findings.extend(maint::amcheck(&mut conn, &mut notes).await?);
        Ok((findings, notes))
    }

    async fn repair(&self, kind: FindingKind, now: Timestamp) -> StoreResult<Option<u64>> {
        let mut tx = self.direct_pool().begin().await?;
        let c = &mut *tx;
        let n = match check::repair(c, kind, &now).await? {
            Repaired::Rows(n) => n,
            Repaired::Unsafe => return Ok(None),
            Repaired::Native => match kind {
                FindingKind::Orphan => repair_orphans(c, &now).await?,
                FindingKind::SearchDrift => {
                    // Rebuilt whole: the rows written, or the stale ones removed
                    // when no task is left.
                    let removed = check::exec(c, "DELETE FROM task_search", &now).await?;
                    let written = check::exec(
                        c,
                        "INSERT INTO task_search (task_id, search_vector)
                         SELECT id, flowstore_task_words(title, description) FROM tasks",
                        &now,
                    )
                    .await?;
                    written.max(removed)
                }
                FindingKind::InvalidIndex => {
                    let names: Vec<String> = sqlx::query_scalar(
                        "SELECT quote_ident(c.relname) FROM pg_index i
                   JOIN pg_class c ON c.oid = i.indexrelid
                  WHERE NOT i.indisvalid AND c.relnamespace = current_schema()::regnamespace",
                    )
                    .fetch_all(&mut *c)
                    .await?;
                    for name in &names {
                        check::exec(c, &format!("REINDEX INDEX {name}"), &now).await?;
                    }
                    names.len() as u64
                }
                _ => return Ok(None),
            },
        };
        tx.commit().await?;
        Ok(Some(n))
    }
}
