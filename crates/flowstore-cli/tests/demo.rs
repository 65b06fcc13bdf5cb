//! `flowstore seed --demo`: the data set it writes on SQLite and on PostgreSQL, the
//! refusal of a second seed, and the command line end to end.

use crate::binary::flowstore;
use flowstore_testkit::{PgDatabase, SqliteDatabase};
use std::collections::HashMap;

use chrono::TimeDelta;
use flowstore::model::metric::AggregateFilter;
use flowstore::model::ops::LogFilter;
use flowstore::model::project::ProjectFilter;
use flowstore::model::pull_request::PullRequestFilter;
use flowstore::model::run::RunStatus;
use flowstore::model::workflow::WorkflowFilter;
use flowstore::{PageRequest, Store, StoreError};

const RUNS: u32 = 30;

async fn seeds_a_realistic_data_set(store: Store) {
    let summary = flowstore_cli::demo::seed(&store, RUNS)
        .await
        .expect("the demo seeds");
    assert!(summary.starts_with("seeded "), "{summary}");
    assert!(summary.contains("3 projects"), "{summary}");
    assert!(summary.contains(&format!("{RUNS} runs (")), "{summary}");

    let mut tx = store.begin_read().await.unwrap();
    let page = PageRequest::default();
    let projects = tx
        .list_projects(&ProjectFilter::default(), &page)
        .await
        .unwrap();
    assert_eq!(projects.items.len(), 3);
    let workflows = tx
        .list_workflows(&WorkflowFilter::default(), &page)
        .await
        .unwrap();
    assert_eq!(workflows.items.len(), 5);

    // Every run, by status, through the engine's statistics of each workflow.
    let mut by_status: HashMap<RunStatus, i64> = HashMap::new();
    let mut execution_ids = Vec::new();
    for w in &workflows.items {
        let runs = tx
            .list_by_workflow(&w.id.to_string(), None, &PageRequest::first(1000))
            .await
            .unwrap();
        for r in runs.items {
            *by_status.entry(r.status).or_default() += 1;
            execution_ids.push(r.execution_id);
        }
    }
    assert_eq!(
        by_status.values().sum::<i64>(),
        i64::from(RUNS),
        "{by_status:?}"
    );
    for status in [
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::TimedOut,
        RunStatus::Running,
        RunStatus::Pending,
    ] {
        assert!(
            by_status.get(&status).copied().unwrap_or(0) > 0,
            "no run is {status}: {by_status:?}"
        );
    }

    // Metrics: about ten per run, spread over more than 25 days.
    let mut times = Vec::new();
    for e in &execution_ids {
        for m in tx.metrics_for_execution(e, None, Some(1000)).await.unwrap() {
            times.push(m.recorded_at);
        }
    }
    assert!(times.len() >= RUNS as usize * 5, "{} metrics", times.len());
    let (first, last) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    assert!(
        *last - *first > TimeDelta::days(25),
        "metrics span only {}",
        *last - *first
    );
    let aggregates = tx
        .aggregated_metrics(&AggregateFilter::default())
        .await
        .unwrap();
    assert!(aggregates.iter().any(|a| a.metric_name == "cpu_percent"));

    // Retries left more than one attempt on some task.
    let queue = tx.queue_depth().await.unwrap();
    assert!(
        !queue.is_empty(),
        "queued and in-flight runs leave work behind"
    );
    let summary_by_agent = tx.task_execution_summary().await.unwrap();
    let attempts: i64 = summary_by_agent.iter().map(|a| a.total_executions).sum();
    assert!(attempts > i64::from(RUNS), "{attempts} attempts");
    assert!(summary_by_agent.iter().any(|a| a.failed_executions > 0));

    // The backlog, pull requests, logs and configuration.
    let web = tx
        .get_project_by_name(flowstore_cli::demo::DEMO_PROJECT)
        .await
        .unwrap();
    let prs = tx
        .list_pull_requests(
            &PullRequestFilter {
                project_id: Some(web.id),
                ..Default::default()
            },
            &page,
        )
        .await
        .unwrap();
    let statuses: std::collections::HashSet<_> = prs.items.iter().map(|p| p.status).collect();
    assert_eq!(statuses.len(), 5, "a pull request in every status");
    assert!(prs
        .items
        .iter()
        .all(|p| p.validation_results.get("ci").is_some()));
    let logs = tx.query_logs(&LogFilter::default(), &page).await.unwrap();
    assert!(!logs.items.is_empty());
    let secret = tx
        .get_configuration("demo.notifications.slack_webhook")
        .await
        .unwrap();
    assert!(secret.is_sensitive);
    drop(tx);

    // A second seed is refused before writing anything.
    match flowstore_cli::demo::seed(&store, RUNS).await {
        Err(StoreError::Conflict { field, message }) => {
            assert_eq!(field, "name");
            assert!(
                message.contains(flowstore_cli::demo::DEMO_PROJECT),
                "{message}"
            );
        }
        other => panic!("a second seed must be a conflict, got {other:?}"),
    }
    let mut tx = store.begin_read().await.unwrap();
    let again = tx
        .list_projects(&ProjectFilter::default(), &page)
        .await
        .unwrap();
    assert_eq!(again.items.len(), 3, "nothing was duplicated");
}

conformance!(seeds_a_realistic_data_set);

fn seed_command(url: &str) {
    let run = |args: &[&str]| flowstore(url, args);
    let up = run(&["migrate", "up"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let seed = run(&["seed", "--demo", "--runs", "20"]);
    let out = String::from_utf8_lossy(&seed.stdout);
    assert!(
        seed.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&seed.stderr)
    );
    assert!(out.contains("20 runs ("), "{out}");
    let again = run(&["seed", "--demo", "--runs", "20"]);
    assert!(!again.status.success(), "a second seed fails");
    assert!(String::from_utf8_lossy(&again.stderr).contains("demo-web-storefront"));
}

#[test]
fn command_line_seeds_sqlite() {
    let db = SqliteDatabase::create();
    seed_command(db.url());
}

#[test]
fn command_line_seeds_postgres() {
    let db = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(PgDatabase::create());
    seed_command(db.url());
}
