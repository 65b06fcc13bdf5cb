//! SQLite storage for pull requests (their trait methods are in `task.rs`).

use flowstore_core::ids::PullRequestId;
use flowstore_core::model::pull_request::{
    NewPullRequest, PullRequest, PullRequestFilter, PullRequestStatus,
};
use flowstore_core::{time, validate, Page, PageRequest, StoreError, StoreResult};
use serde_json::Value;

use crate::backend::SqliteTx;
use crate::error::map_err;
use crate::util::{ensure_exists, ts, ts_opt};
use crate::visibility;

const COLUMNS: &str = "id, project_id, task_id, pr_number, repository_url, branch_name, \
    base_branch, title, description, status, validation_results, merged_at, closed_at, \
    created_at, updated_at";

impl SqliteTx {
    pub(crate) async fn pr_create(&mut self, new: NewPullRequest) -> StoreResult<PullRequest> {
        let p = new.into_row(time::now())?;
        ensure_exists(&mut self.tx, "projects", "project_id", Some(p.project_id.0)).await?;
        ensure_exists(&mut self.tx, "tasks", "task_id", p.task_id.map(|t| t.0)).await?;
        sqlx::query(
            "INSERT INTO pull_requests (id, project_id, task_id, pr_number, repository_url,
                branch_name, base_branch, title, description, status, validation_results,
                created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )
        .bind(p.id)
        .bind(p.project_id)
        .bind(p.task_id)
        .bind(p.pr_number)
        .bind(&p.repository_url)
        .bind(&p.branch_name)
        .bind(&p.base_branch)
        .bind(&p.title)
        .bind(&p.description)
        .bind(p.status)
        .bind(&p.validation_results)
        .bind(ts(&p.created_at))
        .bind(ts(&p.updated_at))
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(p)
    }

    pub(crate) async fn pr_get(&mut self, id: PullRequestId) -> StoreResult<PullRequest> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM pull_requests WHERE id = ?1"
        ))
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(map_err)?
        .ok_or_else(|| StoreError::not_found("pull request", id))
    }

    async fn pr_write(&mut self, p: &PullRequest) -> StoreResult<()> {
        sqlx::query(
            "UPDATE pull_requests SET status = ?2, validation_results = ?3, merged_at = ?4,
                closed_at = ?5, updated_at = ?6
             WHERE id = ?1",
        )
        .bind(p.id)
        .bind(p.status)
        .bind(&p.validation_results)
        .bind(ts_opt(&p.merged_at))
        .bind(ts_opt(&p.closed_at))
        .bind(ts(&p.updated_at))
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    pub(crate) async fn pr_move(
        &mut self,
        id: PullRequestId,
        status: PullRequestStatus,
    ) -> StoreResult<PullRequest> {
        let current = self.pr_get(id).await?;
        let p = PullRequestStatus::move_to(&current, status, time::now())?;
        self.pr_write(&p).await?;
        Ok(p)
    }

    pub(crate) async fn pr_validate(
        &mut self,
        id: PullRequestId,
        results: Value,
    ) -> StoreResult<PullRequest> {
        validate::json_object("validation_results", &results)?;
        let mut p = self.pr_get(id).await?;
        p.validation_results = results;
        p.updated_at = time::now();
        self.pr_write(&p).await?;
        Ok(p)
    }

    pub(crate) async fn pr_list(
        &mut self,
        f: &PullRequestFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<PullRequest>> {
        let (limit, after) = page.parts()?;
        let (restricted, me) = visibility::binds(&f.viewer);
        let rows: Vec<PullRequest> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM pull_requests pr
             WHERE (?1 IS NULL OR project_id = ?1) AND (?2 IS NULL OR status = ?2)
               AND (?3 IS NULL OR task_id = ?3) AND (?4 IS NULL OR id < ?4){}
             ORDER BY id DESC LIMIT ?5",
            visibility::clause("?6", "?7", &visibility::pull_request("pr"))
        ))
        .bind(f.project_id)
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.task_id)
        .bind(after)
        .bind(i64::from(limit) + 1)
        .bind(restricted)
        .bind(me)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(Page::from_rows(rows, limit, |p| p.id.0))
    }
}
