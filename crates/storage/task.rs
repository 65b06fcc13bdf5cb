//! Storage for tasks, their dependencies, searches, progress and the seed 003
//! summaries. Pull requests are in `pull_request.rs`.

use async_trait::async_trait;
use flowstore_core::ids::{ProjectId, RunId, TaskId, WorkflowId};
use flowstore_core::model::task::query::{
    cycle_error, dependency_path, search_limit, search_words, ActiveTask, ReqTerm, TaskFilter,
    TaskProgress,
};
use flowstore_core::model::task::TaskRepo;
use flowstore_core::model::task::{NewTask, Task, TaskPatch, TaskStatus};
use flowstore_core::model::viewer::Viewer;
use flowstore_core::{time, Page, PageRequest, StoreError, StoreResult};
use serde_json::Value;
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::dialect::{
    ensure_exists, exclusive, id_list, in_id_list, sql, sql_fmt, sql_owned, ts, ts_opt, Db, Tx,
};
use crate::rows;
use crate::task_query;
use crate::visibility;

/// The advisory lock that serialises changes of the dependency graph after creation
/// (PostgreSQL; SQLite's writer lock does it there): "flowdeps".
const DEPENDENCIES_LOCK: i64 = 0x666c_6f77_6465_7073;

/// Every column of [`Task`], from `tasks t`.
const COLUMNS: &str = "t.id, t.project_id, t.workflow_id, t.run_id, t.parent_task_id, t.step_key, \
    t.title, t.description, t.type, t.status, t.priority, t.requirements, t.context, t.tags, \
    t.metadata, t.assigned_agent, t.handler_type, t.command, t.parameters, t.environment, \
    t.working_directory, t.execution_order, t.timeout_seconds, t.max_retries, t.retry_count, \
    t.estimated_duration_seconds, t.result, t.error_message, t.started_at, t.completed_at, \
    t.created_by, t.created_at, t.updated_at";

/// Appends ` AND …` for each filter given. The requirement terms come from
/// [`TaskFilter::check`], which refuses the shapes the two databases cannot evaluate
/// alike; the tag and requirement tests are each database's own (`task_query.rs`).
fn push_filters(qb: &mut QueryBuilder<'_, Db>, f: &TaskFilter, terms: &[ReqTerm]) {
    if let Some(v) = f.project_id {
        qb.push(" AND t.project_id = ").push_bind(v);
    }
    if let Some(v) = f.workflow_id {
        qb.push(" AND t.workflow_id = ").push_bind(v);
    }
    if let Some(v) = f.run_id {
        qb.push(" AND t.run_id = ").push_bind(v);
    }
    if let Some(v) = f.status {
        qb.push(" AND t.status = ").push_bind(v.as_str());
    }
    if let Some(v) = &f.assigned_agent {
        qb.push(" AND t.assigned_agent = ")
            .push_bind(v.trim().to_string());
    }
    if let Some(v) = f.parent_task_id {
        qb.push(" AND t.parent_task_id = ").push_bind(v);
    }
    if let Some(tag) = &f.tag {
        task_query::push_tag(qb, tag.trim());
    }
    if let (Some(req), false) = (&f.requirements, terms.is_empty()) {
        task_query::push_requirements(qb, req, terms);
    }
}

impl Tx {
    async fn insert_task(&mut self, t: &Task) -> StoreResult<()> {
        sqlx::query(sql!(
            "INSERT INTO tasks (id, project_id, workflow_id, run_id, parent_task_id, step_key,
                title, description, type, status, priority, requirements, context, tags, metadata,
                assigned_agent, handler_type, command, parameters, environment, working_directory,
                execution_order, timeout_seconds, max_retries, retry_count,
                estimated_duration_seconds, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)"
        ))
        .bind(t.id)
        .bind(t.project_id)
        .bind(t.workflow_id)
        .bind(t.run_id)
        .bind(t.parent_task_id)
        .bind(&t.step_key)
        .bind(&t.title)
        .bind(&t.description)
        .bind(&t.task_type)
        .bind(t.status)
        .bind(t.priority)
        .bind(&t.requirements)
        .bind(&t.context)
        .bind(Value::from(t.tags.clone()))
        .bind(&t.metadata)
        .bind(&t.assigned_agent)
        .bind(&t.handler_type)
        .bind(&t.command)
        .bind(&t.parameters)
        .bind(&t.environment)
        .bind(&t.working_directory)
        .bind(t.execution_order)
        .bind(t.timeout_seconds)
        .bind(t.max_retries)
        .bind(t.retry_count)
        .bind(t.estimated_duration_seconds)
        .bind(t.created_by)
        .bind(ts(&t.created_at))
        .bind(ts(&t.updated_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Refuses `parent` for `task` when `task` is `parent` or one of its ancestors.
    async fn check_parent(&mut self, task: TaskId, parent: TaskId) -> StoreResult<()> {
        ensure_exists(&mut self.tx, "tasks", "parent_task_id", Some(parent.0)).await?;
        let cycle: Option<i32> = sqlx::query_scalar(sql!(
            "WITH RECURSIVE anc(id) AS (
                 SELECT $1::uuid
                 UNION
                 SELECT t.parent_task_id FROM tasks t JOIN anc ON t.id = anc.id
                 WHERE t.parent_task_id IS NOT NULL)
             SELECT 1 FROM anc WHERE id = $2"
        ))
        .bind(parent)
        .bind(task)
        .fetch_optional(&mut *self.tx)
        .await?;
        if cycle.is_some() {
            return Err(StoreError::invalid(
                "parent_task_id",
                format!("task {task} is an ancestor of {parent}: that would make a cycle"),
            ));
        }
        Ok(())
    }

    /// The task, locked until the transaction ends; NotFound when there is none.
    async fn task_for_update(&mut self, id: TaskId) -> StoreResult<Task> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {COLUMNS} FROM tasks t WHERE t.id = $1 FOR UPDATE"),
            "task",
            id,
        )
        .await
    }

    async fn progress(&mut self, column: &str, id: Uuid) -> StoreResult<TaskProgress> {
        let rows: Vec<(TaskStatus, i64)> = sqlx::query_as(&sql_owned(format!(
            "SELECT status, count(*) FROM tasks WHERE {column} = $1 GROUP BY status"
        )))
        .bind(id)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(TaskProgress::from_counts(&rows))
    }

    async fn exists(&mut self, table: &str, id: Uuid) -> StoreResult<bool> {
        let found: Option<i32> =
            sqlx::query_scalar(&sql_owned(format!("SELECT 1 FROM {table} WHERE id = $1")))
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?;
        Ok(found.is_some())
    }
}

#[async_trait]
impl TaskRepo for Tx {
    async fn create_task(&mut self, new: NewTask) -> StoreResult<Task> {
        let (row, deps) = new.into_row(time::now())?;
        ensure_exists(
            &mut self.tx,
            "projects",
            "project_id",
            row.project_id.map(|v| v.0),
        )
        .await?;
        ensure_exists(
            &mut self.tx,
            "workflows",
            "workflow_id",
            row.workflow_id.map(|v| v.0),
        )
        .await?;
        ensure_exists(
            &mut self.tx,
            "workflow_executions",
            "run_id",
            row.run_id.map(|v| v.0),
        )
        .await?;
        ensure_exists(
            &mut self.tx,
            "tasks",
            "parent_task_id",
            row.parent_task_id.map(|v| v.0),
        )
        .await?;
        ensure_exists(
            &mut self.tx,
            "users",
            "created_by",
            row.created_by.map(|v| v.0),
        )
        .await?;
        for d in &deps {
            ensure_exists(&mut self.tx, "tasks", "depends_on", Some(d.0)).await?;
        }
        self.insert_task(&row).await?;
        for d in &deps {
            sqlx::query(sql!(
                "INSERT INTO task_dependencies (task_id, depends_on_id) VALUES ($1, $2)"
            ))
            .bind(row.id)
            .bind(d)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(row)
    }

    async fn get_task(&mut self, id: TaskId) -> StoreResult<Task> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {COLUMNS} FROM tasks t WHERE t.id = $1"),
            "task",
            id,
        )
        .await
    }

    async fn task_workflows(
        &mut self,
        ids: &[TaskId],
    ) -> StoreResult<Vec<(TaskId, Option<WorkflowId>)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT id, workflow_id FROM tasks WHERE {listed}",
            listed = in_id_list("id", "$1")
        ))
        .bind(id_list(ids.iter().map(|t| t.0)))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn update_task(&mut self, id: TaskId, patch: TaskPatch) -> StoreResult<Task> {
        let current: Task = rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {COLUMNS} FROM tasks t WHERE t.id = $1 FOR UPDATE"),
            "task",
            id,
        )
        .await?;
        let row = patch.apply(&current, time::now())?;
        if let Some(parent) = row
            .parent_task_id
            .filter(|p| Some(*p) != current.parent_task_id)
        {
            self.check_parent(id, parent).await?;
        }
        sqlx::query(sql!(
            "UPDATE tasks SET title = $2, description = $3, priority = $4, requirements = $5,
                context = $6, tags = $7, metadata = $8, assigned_agent = $9, parent_task_id = $10,
                status = $11, completed_at = $12, updated_at = $13
             WHERE id = $1"
        ))
        .bind(id)
        .bind(&row.title)
        .bind(&row.description)
        .bind(row.priority)
        .bind(&row.requirements)
        .bind(&row.context)
        .bind(Value::from(row.tags.clone()))
        .bind(&row.metadata)
        .bind(&row.assigned_agent)
        .bind(row.parent_task_id)
        .bind(row.status)
        .bind(ts_opt(&row.completed_at))
        .bind(ts(&row.updated_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(row)
    }

    async fn delete_task(&mut self, id: TaskId) -> StoreResult<()> {
        rows::delete_one(
            &mut self.tx,
            sql!("DELETE FROM tasks WHERE id = $1"),
            "task",
            id,
        )
        .await
    }

    async fn add_task_dependency(&mut self, task: TaskId, depends_on: TaskId) -> StoreResult<Task> {
        // Two transactions each adding one edge of a cycle would both find none
        // without this (on SQLite the writer lock already serialises them).
        exclusive(&mut self.tx, DEPENDENCIES_LOCK).await?;
        let current = self.task_for_update(task).await?;
        current.check_dependency_change(true)?;
        ensure_exists(&mut self.tx, "tasks", "depends_on", Some(depends_on.0)).await?;
        if task == depends_on {
            return Err(StoreError::invalid(
                "depends_on",
                "a task cannot depend on itself",
            ));
        }
        // Every dependency edge reachable from `depends_on`: if `task` is among the
        // targets, the new edge would close a cycle.
        let edges: Vec<(Uuid, Uuid)> = sqlx::query_as(sql!(
            "WITH RECURSIVE reach(a, b) AS (
                 SELECT task_id, depends_on_id FROM task_dependencies WHERE task_id = $1
                 UNION
                 SELECT d.task_id, d.depends_on_id FROM task_dependencies d
                 JOIN reach r ON d.task_id = r.b)
             SELECT a, b FROM reach"
        ))
        .bind(depends_on)
        .fetch_all(&mut *self.tx)
        .await?;
        if let Some(path) = dependency_path(&edges, depends_on.0, task.0) {
            return Err(cycle_error(task, &path));
        }
        sqlx::query(sql!(
            "INSERT INTO task_dependencies (task_id, depends_on_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING"
        ))
        .bind(task)
        .bind(depends_on)
        .execute(&mut *self.tx)
        .await?;
        if current.status != TaskStatus::Ready {
            return Ok(current);
        }
        // A ready task may be claimed at any moment: one that now waits for an
        // unfinished task goes back to pending (the claim skips the row while it is
        // locked here, and finds it pending afterwards).
        let demoted: Option<TaskId> = sqlx::query_scalar(sql!(
            "UPDATE tasks SET status = 'pending', run_after = NULL, updated_at = $3
              WHERE id = $1 AND status = 'ready'
                AND EXISTS (SELECT 1 FROM tasks d WHERE d.id = $2 AND d.status <> 'completed')
             RETURNING id"
        ))
        .bind(task)
        .bind(depends_on)
        .bind(ts(&time::now()))
        .fetch_optional(&mut *self.tx)
        .await?;
        match demoted {
            Some(_) => self.get_task(task).await,
            None => Ok(current),
        }
    }

    async fn remove_task_dependency(
        &mut self,
        task: TaskId,
        depends_on: TaskId,
    ) -> StoreResult<()> {
        self.task_for_update(task)
            .await?
            .check_dependency_change(false)?;
        let done = sqlx::query(sql!(
            "DELETE FROM task_dependencies WHERE task_id = $1 AND depends_on_id = $2"
        ))
        .bind(task)
        .bind(depends_on)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found(
                "task dependency",
                format!("{task} -> {depends_on}"),
            ));
        }
        Ok(())
    }

    async fn task_dependencies(&mut self, task: TaskId) -> StoreResult<Vec<TaskId>> {
        Ok(sqlx::query_scalar(sql!(
            "SELECT depends_on_id FROM task_dependencies WHERE task_id = $1 ORDER BY depends_on_id"
        ))
        .bind(task)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn list_task_children(&mut self, parent: TaskId) -> StoreResult<Vec<Task>> {
        if !self.exists("tasks", parent.0).await? {
            return Err(StoreError::not_found("task", parent));
        }
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {COLUMNS} FROM tasks t WHERE t.parent_task_id = $1 ORDER BY t.id"
        ))
        .bind(parent)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn get_runnable_tasks(&mut self, workflow_id: WorkflowId) -> StoreResult<Vec<Task>> {
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {COLUMNS} FROM tasks t
             WHERE t.workflow_id = $1 AND t.status = 'pending'
               AND NOT EXISTS (SELECT 1 FROM task_dependencies d
                               JOIN tasks u ON u.id = d.depends_on_id
                               WHERE d.task_id = t.id AND u.status <> 'completed')
             ORDER BY t.execution_order IS NULL, t.execution_order, t.priority DESC, t.id"
        ))
        .bind(workflow_id)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn list_tasks(
        &mut self,
        filter: &TaskFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Task>> {
        let terms = filter.check()?;
        let (limit, after) = page.parts()?;
        let mut qb = QueryBuilder::<Db>::new(format!("SELECT {COLUMNS} FROM tasks t WHERE 1 = 1"));
        push_filters(&mut qb, filter, &terms);
        visibility::push(&mut qb, &filter.viewer, &visibility::task("t"));
        if let Some(a) = after {
            qb.push(" AND t.id < ").push_bind(a);
        }
        qb.push(" ORDER BY t.id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows: Vec<Task> = qb.build_query_as().fetch_all(&mut *self.tx).await?;
        Ok(Page::from_rows(rows, limit, |t| t.id.0))
    }

    async fn search_tasks(
        &mut self,
        query: &str,
        filter: &TaskFilter,
        limit: u32,
    ) -> StoreResult<Vec<Task>> {
        let words = search_words(query)?;
        let terms = filter.check()?;
        let limit = search_limit(limit)?;
        let mut qb = task_query::search(COLUMNS, &words);
        push_filters(&mut qb, filter, &terms);
        visibility::push(&mut qb, &filter.viewer, &visibility::task("t"));
        task_query::push_rank(&mut qb, &words);
        qb.push(", t.id LIMIT ").push_bind(i64::from(limit));
        Ok(qb.build_query_as().fetch_all(&mut *self.tx).await?)
    }

    async fn workflow_progress(&mut self, workflow_id: WorkflowId) -> StoreResult<TaskProgress> {
        if !self.exists("workflows", workflow_id.0).await? {
            return Err(StoreError::not_found("workflow", workflow_id));
        }
        self.progress("workflow_id", workflow_id.0).await
    }

    async fn run_progress(&mut self, run_id: RunId) -> StoreResult<TaskProgress> {
        if !self.exists("workflow_executions", run_id.0).await? {
            return Err(StoreError::not_found("run", run_id));
        }
        self.progress("run_id", run_id.0).await
    }

    async fn active_tasks_summary(
        &mut self,
        project_id: Option<ProjectId>,
        viewer: &Option<Viewer>,
        page: &PageRequest,
    ) -> StoreResult<Page<ActiveTask>> {
        let select = "SELECT v.id, v.project_id, v.project_name, v.title, v.status, v.priority,
                    v.assigned_agent, v.created_at, v.execution_count
               FROM active_tasks v JOIN tasks t ON t.id = v.id";
        let visible = visibility::task("t");
        self.project_view_page(
            select,
            &visible,
            project_id,
            viewer,
            page,
            |t: &ActiveTask| t.id.0,
        )
        .await
    }
}
