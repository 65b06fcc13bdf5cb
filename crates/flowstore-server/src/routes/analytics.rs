//! What a dashboard reads beside the objects themselves: finished runs per hour or
//! day (from the rollups the database keeps), the attempts at a task, the queues and
//! workers (for admins), and seed 003's summary views. Every answer leaves out what
//! the caller may not read, by the same rules as the lists.

use std::time::Duration;

use axum::Json as AxumJson;
use flowstore_core::ids::{ProjectId, TaskId, WorkflowId};
use flowstore_core::model::engine::QueueDepth;
use flowstore_core::model::identity::Role;
use flowstore_core::model::run::{AgentSummary, TaskAttempt};
use flowstore_core::model::summary::{
    Bucket, DurationStats, RunBucket, RunSeriesFilter, WorkerSeen,
};
use flowstore_core::model::task::query::{ActiveTask, PrValidation};
use flowstore_core::model::workflow::SharePermission;
use flowstore_core::{time, Page, Tx};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::error::{ApiResult, Path, Problem, Query};
use crate::routes::in_path;
use crate::routes::Api;
use crate::state::AppState;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run_series))
        .routes(routes!(durations))
        .routes(routes!(task_attempts))
        .routes(routes!(queues))
        .routes(routes!(workers))
        .routes(routes!(agents))
        .routes(routes!(active_tasks))
        .routes(routes!(pull_request_validation))
}

query_params! {
    /// The range and width of `GET /analytics/runs`.
    pub struct RunSeriesQuery {
        /// Only runs of this workflow (its ID, or seed 000's free-text workflow ID);
        /// the caller must be able to read it. Every workflow they may read when
        /// absent.
        pub workflow_id: Option<String>,
        /// From this instant (RFC 3339), rounded down to its bucket; 24 hours (hour
        /// buckets) or 30 days (day buckets) before `until` when absent.
        pub since: Option<String>,
        /// Up to this instant (RFC 3339, excluded); now when absent.
        pub until: Option<String>,
        /// `hour` (the default) or `day`, in UTC.
        pub bucket: Option<String>,
    }
}

/// Finished runs per hour or day, by how they ended, with the failure rate and
/// durations: read from the hourly rollups the database keeps as runs finish, so a
/// month costs a few hundred rows whatever the number of runs. A run counts in the
/// hour it ended; rollups outlive the runs retention deletes. Buckets without runs
/// are left out.
#[utoipa::path(get, path = "/api/v1/analytics/runs", tag = "analytics", params(RunSeriesQuery),
    responses((status = 200, body = [RunBucket]), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn run_series(
    api: Api,
    Query(q): Query<RunSeriesQuery>,
) -> ApiResult<AxumJson<Vec<RunBucket>>> {
    let bucket = super::parse_opt::<Bucket>("bucket", q.bucket.as_deref())?.unwrap_or(Bucket::Hour);
    let until = super::instant("until", q.until.as_deref())?.unwrap_or_else(time::now);
    let span = match bucket {
        Bucket::Hour => chrono::TimeDelta::hours(24),
        Bucket::Day => chrono::TimeDelta::days(30),
    };
    let since = super::instant("since", q.since.as_deref())?.unwrap_or(until - span);
    let filter = RunSeriesFilter {
        workflow_id: q.workflow_id.filter(|w| !w.trim().is_empty()),
        since,
        until,
        bucket,
        viewer: Some(api.caller.viewer()),
    };
    let mut tx = api.lagging_read().await?;
    if let Some(w) = &filter.workflow_id {
        access::check_workflow_named(&mut *tx, &api.caller, w, SharePermission::Read).await?;
    }
    Ok(AxumJson(tx.run_series(&filter).await?))
}

query_params! {
    /// How many runs `GET /workflows/{id}/durations` reads.
    pub struct DurationsQuery {
        /// The newest completed runs to read: 1 to 10000; 1000 when absent.
        pub limit: Option<u32>,
    }
}

/// How long the workflow's newest completed runs took: mean, median, 90th and 99th
/// percentiles and the longest, over at most `limit` runs.
#[utoipa::path(get, path = "/api/v1/workflows/{id}/durations", tag = "analytics",
    params(in_path::Workflow, DurationsQuery),
    responses((status = 200, body = DurationStats), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn durations(
    api: Api,
    Path(id): Path<WorkflowId>,
    Query(q): Query<DurationsQuery>,
) -> ApiResult<AxumJson<DurationStats>> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(Problem::invalid(
            "limit",
            format!("{limit} is outside 1..=10000"),
        ));
    }
    let mut tx = api.lagging_read().await?;
    access::workflow(&mut *tx, &api.caller, id, SharePermission::Read).await?;
    let durations = tx.recent_durations(&id.to_string(), limit).await?;
    Ok(AxumJson(DurationStats::of(durations)))
}

/// A task's attempts, first attempt first: when each started and ended, which
/// worker held it, its error or output, and what it cost.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/attempts", tag = "tasks",
    params(in_path::Task),
    responses((status = 200, body = [TaskAttempt]), (status = 404, body = Problem)))]
pub async fn task_attempts(
    api: Api,
    Path(id): Path<TaskId>,
) -> ApiResult<AxumJson<Vec<TaskAttempt>>> {
    let mut tx = api.lagging_read().await?;
    access::task(&mut *tx, &api.caller, id, SharePermission::Read).await?;
    Ok(AxumJson(tx.list_attempts(id).await?))
}

/// Ready and running tasks by handler type, across every workflow (admins).
#[utoipa::path(get, path = "/api/v1/queues", tag = "analytics",
    responses((status = 200, body = [QueueDepth]), (status = 403, body = Problem)))]
pub async fn queues(api: Api) -> ApiResult<AxumJson<Vec<QueueDepth>>> {
    api.caller.require(Role::Admin)?;
    let mut tx = api.lagging_read().await?;
    Ok(AxumJson(tx.queue_depth().await?))
}

query_params! {
    /// The window of `GET /workers`.
    pub struct WorkersQuery {
        /// How far back to look, in seconds: 1 to 604800 (a week); 900 when absent.
        pub window_s: Option<u64>,
        /// How many workers at most: 1 to 1000; 100 when absent.
        pub limit: Option<u32>,
    }
}

/// The workers that claimed, heartbeat or ended an attempt in the window, most
/// recently seen first, with the attempts each holds now and how those of the
/// window ended (admins).
#[utoipa::path(get, path = "/api/v1/workers", tag = "analytics", params(WorkersQuery),
    responses((status = 200, body = [WorkerSeen]), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn workers(
    api: Api,
    Query(q): Query<WorkersQuery>,
) -> ApiResult<AxumJson<Vec<WorkerSeen>>> {
    api.caller.require(Role::Admin)?;
    let window = q.window_s.unwrap_or(900);
    if !(1..=604_800).contains(&window) {
        return Err(Problem::invalid(
            "window_s",
            format!("{window} is outside 1..=604800"),
        ));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid(
            "limit",
            format!("{limit} is outside 1..=1000"),
        ));
    }
    let since = time::now() - Duration::from_secs(window);
    let mut tx = api.lagging_read().await?;
    Ok(AxumJson(tx.workers_seen(since, limit).await?))
}

/// Seed 003's `task_execution_summary`: attempts by agent type, with how many
/// completed and failed and their mean duration, memory and CPU time, over every
/// workflow (admins).
#[utoipa::path(get, path = "/api/v1/summaries/agents", tag = "analytics",
    responses((status = 200, body = [AgentSummary]), (status = 403, body = Problem)))]
pub async fn agents(api: Api) -> ApiResult<AxumJson<Vec<AgentSummary>>> {
    api.caller.require(Role::Admin)?;
    let mut tx = api.lagging_read().await?;
    Ok(AxumJson(tx.task_execution_summary().await?))
}

paged_query_params! {
    /// The project and page of seed 003's summary views.
    pub struct ViewQuery {
        /// Only rows of this project; the caller must be able to read it.
        pub project_id: Option<String>,
    }
}

/// The project `q` names, checked readable by the caller in `tx`.
async fn view_project(tx: &mut dyn Tx, api: &Api, q: &ViewQuery) -> ApiResult<Option<ProjectId>> {
    let Some(id) = super::parse_opt::<ProjectId>("project_id", q.project_id.as_deref())? else {
        return Ok(None);
    };
    access::project(tx, &api.caller, id, SharePermission::Read).await?;
    Ok(Some(id))
}

/// Seed 003's `active_tasks`: tasks pending, ready or running with their project's
/// name and how many attempts each has had, newest first; only those the caller may
/// read.
#[utoipa::path(get, path = "/api/v1/summaries/active-tasks", tag = "analytics", params(ViewQuery),
    responses((status = 200, body = crate::openapi::ActiveTaskPage), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn active_tasks(
    api: Api,
    Query(q): Query<ViewQuery>,
) -> ApiResult<AxumJson<Page<ActiveTask>>> {
    let mut tx = api.lagging_read().await?;
    let project = view_project(&mut *tx, &api, &q).await?;
    Ok(AxumJson(
        tx.active_tasks_summary(
            project,
            &Some(api.caller.viewer()),
            &super::page(q.cursor, q.limit),
        )
        .await?,
    ))
}

/// Seed 003's `pr_validation_status`: pull requests with the status of their
/// validation results, newest first; only those the caller may read.
#[utoipa::path(get, path = "/api/v1/summaries/pull-requests", tag = "analytics", params(ViewQuery),
    responses((status = 200, body = crate::openapi::PrValidationPage), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn pull_request_validation(
    api: Api,
    Query(q): Query<ViewQuery>,
) -> ApiResult<AxumJson<Page<PrValidation>>> {
    let mut tx = api.lagging_read().await?;
    let project = view_project(&mut *tx, &api, &q).await?;
    Ok(AxumJson(
        tx.pr_validation_status(
            project,
            &Some(api.caller.viewer()),
            &super::page(q.cursor, q.limit),
        )
        .await?,
    ))
}
