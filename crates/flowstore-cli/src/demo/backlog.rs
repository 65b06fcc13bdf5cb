//! Standalone project tasks (seed 003 style: requirements, tags, an assigned agent,
//! dependencies) and pull requests in every status.

use serde_json::json;

use flowstore::model::pull_request::{NewPullRequest, PullRequestStatus};
use flowstore::model::task::{NewTask, TaskPatch, TaskStatus};
use flowstore::{StoreResult, Tx};

use super::catalog::Catalog;

/// What [`seed`] created.
pub(super) struct Backlog {
    pub tasks: usize,
    pub pull_requests: usize,
}

/// A task of the backlog: title, agent, tags, the index of the task it waits for
/// (within the same project) and the status it ends in.
type Item = (
    &'static str,
    &'static str,
    &'static [&'static str],
    Option<usize>,
    TaskStatus,
);

/// Writes each project's backlog and the storefront's pull requests.
pub(super) async fn seed(tx: &mut dyn Tx, catalog: &Catalog) -> StoreResult<Backlog> {
    let backlogs: [&[Item]; 3] = [
        &[
            (
                "Add product search",
                "claude-code",
                &["feature", "frontend"],
                None,
                TaskStatus::Completed,
            ),
            (
                "Paginate search results",
                "claude-code",
                &["feature", "frontend"],
                Some(0),
                TaskStatus::Ready,
            ),
            (
                "Fix checkout rounding bug",
                "codex",
                &["bug", "payments"],
                None,
                TaskStatus::Completed,
            ),
            (
                "Load-test checkout",
                "qa-agent",
                &["perf"],
                Some(2),
                TaskStatus::Pending,
            ),
        ],
        &[
            (
                "Ingest supplier feed",
                "data-agent",
                &["ingest"],
                None,
                TaskStatus::Completed,
            ),
            (
                "Deduplicate customers",
                "data-agent",
                &["quality"],
                Some(0),
                TaskStatus::Failed,
            ),
            (
                "Weekly revenue report",
                "report-bot",
                &["report"],
                Some(1),
                TaskStatus::Cancelled,
            ),
        ],
        &[
            (
                "Prompt for security review",
                "claude-code",
                &["ai", "security"],
                None,
                TaskStatus::Completed,
            ),
            (
                "Evaluate review accuracy",
                "eval-agent",
                &["ai", "eval"],
                Some(0),
                TaskStatus::Ready,
            ),
            (
                "Auto-fix lint findings",
                "codex",
                &["ai", "lint"],
                Some(0),
                TaskStatus::Pending,
            ),
        ],
    ];
    let mut tasks = 0;
    let mut first_task = None;
    for (project, items) in catalog.projects.iter().zip(backlogs) {
        let mut ids = Vec::new();
        for (i, (title, agent, tags, after, status)) in items.iter().enumerate() {
            let t = tx
                .create_task(NewTask {
                    project_id: Some(project.id),
                    title: (*title).into(),
                    description: Some(format!("{title} for {}", project.name)),
                    task_type: Some(tags[0].into()),
                    priority: Some(5 - i as i32),
                    requirements: Some(json!({
                        "acceptance": [format!("{title} works end to end"), "tests pass"],
                        "estimate_hours": 2 + i * 3,
                    })),
                    context: Some(json!({"repository": project.repository_name})),
                    tags: Some(tags.iter().map(|t| t.to_string()).collect()),
                    assigned_agent: Some((*agent).into()),
                    depends_on: after.map(|a| ids[a]).into_iter().collect(),
                    created_by: Some(catalog.user()),
                    ..Default::default()
                })
                .await?;
            if *status != TaskStatus::Pending {
                tx.update_task(
                    t.id,
                    TaskPatch {
                        status: Some(*status),
                        ..Default::default()
                    },
                )
                .await?;
            }
            first_task.get_or_insert(t.id);
            ids.push(t.id);
            tasks += 1;
        }
    }

    // Pull requests start as draft or open; the others reach their status through
    // the allowed moves, as they would in real use.
    let web = &catalog.projects[0];
    let repo = web
        .repository_url
        .clone()
        .unwrap_or_else(|| "https://github.com/acme/storefront".into());
    let prs = [
        (
            101,
            "feat/search",
            "Add product search",
            PullRequestStatus::Merged,
            "passed",
        ),
        (
            102,
            "feat/search-pages",
            "Paginate search",
            PullRequestStatus::Review,
            "passed",
        ),
        (
            103,
            "fix/rounding",
            "Fix checkout rounding",
            PullRequestStatus::Open,
            "failed",
        ),
        (
            104,
            "spike/graphql",
            "GraphQL spike",
            PullRequestStatus::Closed,
            "skipped",
        ),
        (
            105,
            "wip/dark-mode",
            "Dark mode (WIP)",
            PullRequestStatus::Draft,
            "pending",
        ),
    ];
    for (number, branch, title, status, checks) in prs {
        let failed = checks == "failed";
        let pr = tx
            .create_pull_request(NewPullRequest {
                project_id: web.id,
                task_id: if number == 101 { first_task } else { None },
                pr_number: Some(number),
                repository_url: repo.clone(),
                branch_name: branch.into(),
                base_branch: Some(web.default_branch.clone()),
                title: title.into(),
                description: Some(format!("{title}.")),
                status: Some(if status == PullRequestStatus::Draft {
                    PullRequestStatus::Draft
                } else {
                    PullRequestStatus::Open
                }),
                validation_results: None,
            })
            .await?;
        tx.set_pull_request_validation(
            pr.id,
            json!({
                "ci": checks,
                "tests": {"passed": if failed { 412 } else { 420 }, "failed": if failed { 8 } else { 0 }},
                "lint": if failed { "3 warnings" } else { "clean" },
                "coverage_percent": 81.4,
            }),
        )
        .await?;
        if matches!(
            status,
            PullRequestStatus::Merged | PullRequestStatus::Review | PullRequestStatus::Closed
        ) {
            tx.update_pull_request_status(pr.id, status).await?;
        }
    }
    Ok(Backlog {
        tasks,
        pull_requests: prs.len(),
    })
}
