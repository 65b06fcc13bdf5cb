//! Storage for pull requests and their validation.

use async_trait::async_trait;
use flowstore_core::ids::{ProjectId, PullRequestId};
use flowstore_core::model::pull_request::{
    NewPullRequest, PullRequest, PullRequestFilter, PullRequestStatus,
};
use flowstore_core::model::task::query::PrValidation;
use flowstore_core::model::task::PullRequestRepo;
use flowstore_core::model::viewer::Viewer;
use flowstore_core::{time, validate, Page, PageRequest, StoreResult};
use serde_json::Value;

use crate::dialect::{ensure_exists, sql, sql_owned, ts, ts_opt, Tx};
use crate::rows;
use crate::visibility;

const COLUMNS: &str = "id, project_id, task_id, pr_number, repository_url, branch_name, \
    base_branch, title, description, status, validation_results, merged_at, closed_at, \
    created_at, updated_at";

impl Tx {
    /// The pull request; with `lock`, locked for the rest of the transaction, as a
    /// read-modify-write needs.
    pub(crate) async fn pr_get(
        &mut self,
        id: PullRequestId,
        lock: bool,
    ) -> StoreResult<PullRequest> {
        let lock = if lock { " FOR UPDATE" } else { "" };
        rows::one(
            &mut self.tx,
            &sql_owned(format!(
                "SELECT {COLUMNS} FROM pull_requests WHERE id = $1{lock}"
            )),
            "pull request",
            id,
        )
        .await
    }

    async fn pr_write(&mut self, p: &PullRequest) -> StoreResult<()> {
        sqlx::query(sql!(
            "UPDATE pull_requests SET status = $2, validation_results = $3, merged_at = $4,
                closed_at = $5, updated_at = $6
             WHERE id = $1"
        ))
        .bind(p.id)
        .bind(p.status)
        .bind(&p.validation_results)
        .bind(ts_opt(&p.merged_at))
        .bind(ts_opt(&p.closed_at))
        .bind(ts(&p.updated_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl PullRequestRepo for Tx {
    async fn create_pull_request(&mut self, new: NewPullRequest) -> StoreResult<PullRequest> {
        let p = new.into_row(time::now())?;
        ensure_exists(&mut self.tx, "projects", "project_id", Some(p.project_id.0)).await?;
        ensure_exists(&mut self.tx, "tasks", "task_id", p.task_id.map(|t| t.0)).await?;
        sqlx::query(sql!(
            "INSERT INTO pull_requests (id, project_id, task_id, pr_number, repository_url,
                branch_name, base_branch, title, description, status, validation_results,
                created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
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
        .await?;
        Ok(p)
    }

    async fn update_pull_request_status(
        &mut self,
        id: PullRequestId,
        status: PullRequestStatus,
    ) -> StoreResult<PullRequest> {
        let current = self.pr_get(id, true).await?;
        let p = PullRequestStatus::move_to(&current, status, time::now())?;
        self.pr_write(&p).await?;
        Ok(p)
    }

    async fn set_pull_request_validation(
        &mut self,
        id: PullRequestId,
        results: Value,
    ) -> StoreResult<PullRequest> {
        validate::json_object("validation_results", &results)?;
        let mut p = self.pr_get(id, true).await?;
        p.validation_results = results;
        p.updated_at = time::now();
        self.pr_write(&p).await?;
        Ok(p)
    }

    async fn list_pull_requests(
        &mut self,
        f: &PullRequestFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<PullRequest>> {
        let (restricted, me) = visibility::binds(&f.viewer);
        rows::page_with(
            &mut self.tx,
            &sql_owned(format!(
                "SELECT {COLUMNS} FROM pull_requests pr
             WHERE ($1::uuid IS NULL OR project_id = $1) AND ($2::text IS NULL OR status = $2)
               AND ($3::uuid IS NULL OR task_id = $3) AND ($4::uuid IS NULL OR id < $4){}
             ORDER BY id DESC LIMIT $5",
                visibility::clause("$6", "$7", &visibility::pull_request("pr"))
            )),
            page,
            |q, after, limit| {
                q.bind(f.project_id)
                    .bind(f.status.map(|s| s.as_str()))
                    .bind(f.task_id)
                    .bind(after)
                    .bind(limit)
                    .bind(restricted)
                    .bind(me)
            },
            |p: &PullRequest| p.id.0,
        )
        .await
    }

    async fn pr_validation_status(
        &mut self,
        project_id: Option<ProjectId>,
        viewer: &Option<Viewer>,
        page: &PageRequest,
    ) -> StoreResult<Page<PrValidation>> {
        // The view's computed column has no declared type on SQLite: the cast makes
        // it text on both.
        let select = "SELECT v.id, v.project_id, v.task_id, v.pr_number, v.title, v.status,
                    CAST(v.validation_status AS TEXT) AS validation_status, v.updated_at
               FROM pr_validation_status v JOIN pull_requests pr ON pr.id = v.id";
        let visible = visibility::pull_request("pr");
        self.project_view_page(
            select,
            &visible,
            project_id,
            viewer,
            page,
            |p: &PrValidation| p.id.0,
        )
        .await
    }

    async fn get_pull_request(&mut self, id: PullRequestId) -> StoreResult<PullRequest> {
        self.pr_get(id, false).await
    }
}
