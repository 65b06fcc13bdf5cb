//! Conformance tests for what dashboards read: finished runs per hour and day from
//! the rollups the database keeps by trigger (for rows any client writes), runs
//! across workflows with filters and time-keyed pages, the attempts of a run with
//! what workers report they cost, and the workers seen lately.

use std::collections::HashSet;

use chrono::{TimeDelta, TimeZone, Utc};
use flowstore::ids::TaskId;
use flowstore::model::run::{
    AttemptStatus, ExecutionPatch, NewAttempt, NewExecution, RunFilter, RunStatus, Usage,
};
use flowstore::model::summary::{Bucket, RunSeriesFilter};
use flowstore::model::task::NewTask;
use flowstore::time::Timestamp;
use flowstore::{PageRequest, Store, StoreError};
use serde_json::json;

conformance!(
    finished_runs_fold_into_hourly_and_daily_points,
    a_run_changed_after_it_ended_moves_between_points,
    series_ranges_are_checked,
    runs_across_workflows_filter_and_page_by_time,
    run_attempts_carry_reported_usage,
    workers_seen_in_a_window,
);

fn at(d: u32, h: u32, m: u32) -> Timestamp {
    Utc.with_ymd_and_hms(2024, 3, d, h, m, 0).unwrap()
}

/// A run of `workflow` that ended at `end` in `status`, taking `ms`.
fn ended(id: &str, workflow: &str, status: &str, end: Timestamp, ms: Option<i32>) -> NewExecution {
    NewExecution {
        execution_id: id.into(),
        workflow_id: workflow.into(),
        workflow_name: format!("{workflow} name"),
        status: Some(status.parse().unwrap()),
        start_time: Some(end - TimeDelta::milliseconds(ms.unwrap_or(0).into())),
        ..Default::default()
    }
}

fn finish(status: &str, end: Timestamp, ms: Option<i32>) -> ExecutionPatch {
    serde_json::from_value(json!({"status": status, "end_time": end, "actual_duration": ms}))
        .unwrap()
}

fn series(
    workflow: Option<&str>,
    since: Timestamp,
    until: Timestamp,
    bucket: Bucket,
) -> RunSeriesFilter {
    RunSeriesFilter {
        workflow_id: workflow.map(str::to_string),
        since,
        until,
        bucket,
        viewer: None,
    }
}

async fn finished_runs_fold_into_hourly_and_daily_points(store: Store) {
    let mut tx = store.begin().await.unwrap();
    // Runs written finished (as seed 000's own code may), and runs finished later.
    for (id, wf, status, end, ms) in [
        ("a1", "wf-a", "completed", at(1, 10, 5), Some(100)),
        ("a2", "wf-a", "completed", at(1, 10, 50), Some(300)),
        ("a3", "wf-a", "failed", at(1, 10, 59), Some(200)),
        ("a4", "wf-a", "timed_out", at(1, 11, 0), Some(50)),
        ("b1", "wf-b", "completed", at(1, 10, 30), Some(1000)),
        ("a5", "wf-a", "cancelled", at(2, 9, 0), Some(10)),
    ] {
        tx.create_execution(ended(id, wf, "pending", end, ms))
            .await
            .unwrap();
        tx.update_execution(id, finish(status, end, ms))
            .await
            .unwrap();
    }
    // Still running: not counted anywhere.
    tx.create_execution(ended("a6", "wf-a", "running", at(1, 10, 0), None))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin_read().await.unwrap();
    let hours = tx
        .run_series(&series(
            Some("wf-a"),
            at(1, 10, 30),
            at(3, 0, 0),
            Bucket::Hour,
        ))
        .await
        .unwrap();
    // `since` is rounded down to its hour, so 10:05 counts.
    let starts: Vec<Timestamp> = hours.iter().map(|b| b.bucket_start).collect();
    assert_eq!(starts, [at(1, 10, 0), at(1, 11, 0), at(2, 9, 0)]);
    let ten = &hours[0];
    assert_eq!(
        (ten.total, ten.completed, ten.failed, ten.timed_out),
        (3, 2, 1, 0)
    );
    assert!((ten.failure_rate - 1.0 / 3.0).abs() < 1e-9, "{ten:?}");
    assert_eq!(ten.average_duration_ms, Some(200.0));
    assert_eq!(
        (ten.min_duration_ms, ten.max_duration_ms),
        (Some(100), Some(300))
    );
    assert_eq!((hours[1].timed_out, hours[1].failure_rate), (1, 1.0));
    assert_eq!((hours[2].cancelled, hours[2].failure_rate), (1, 0.0));

    let days = tx
        .run_series(&series(None, at(1, 0, 0), at(3, 0, 0), Bucket::Day))
        .await
        .unwrap();
    assert_eq!(days.len(), 2, "{days:?}");
    assert_eq!(days[0].bucket_start, at(1, 0, 0));
    assert_eq!((days[0].total, days[0].completed), (5, 3), "both workflows");
    assert_eq!(days[0].max_duration_ms, Some(1000));
    assert_eq!(days[1].total, 1);

    // The range's end is excluded; a range without runs is empty.
    let none = tx
        .run_series(&series(None, at(5, 0, 0), at(6, 0, 0), Bucket::Hour))
        .await
        .unwrap();
    assert!(none.is_empty());
    let before_eleven = tx
        .run_series(&series(
            Some("wf-a"),
            at(1, 0, 0),
            at(1, 11, 0),
            Bucket::Hour,
        ))
        .await
        .unwrap();
    assert_eq!(before_eleven.len(), 1);
}

async fn a_run_changed_after_it_ended_moves_between_points(store: Store) {
    let mut tx = store.begin().await.unwrap();
    tx.create_execution(ended("m1", "wf", "completed", at(1, 8, 0), Some(40)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let now = flowstore::time::now();
    let read = |store: Store, bucket: Bucket| async move {
        let mut tx = store.begin_read().await.unwrap();
        tx.run_series(&series(
            Some("wf"),
            at(1, 0, 0),
            now + TimeDelta::days(1),
            bucket,
        ))
        .await
        .unwrap()
    };
    let first = read(store.clone(), Bucket::Day).await;
    // Written finished with no end time: it counts on the day it was created.
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].bucket_start.date_naive(), now.date_naive());
    assert_eq!((first[0].total, first[0].completed), (1, 1));

    // Another client rewrites the ended run (seed 000 allows it through its own
    // SQL): the run leaves its old point and enters its new one.
    let rewrite = "UPDATE workflow_executions SET status = 'failed', actual_duration = 70,
                       end_time = '2024-03-01T09:30:00.000000Z' WHERE execution_id = 'm1'";
    assert_eq!(store.backend().execute_raw(rewrite).await.unwrap(), 1);
    let second = read(store.clone(), Bucket::Day).await;
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0].bucket_start, at(1, 0, 0));
    assert_eq!((second[0].total, second[0].failed), (1, 1));
    assert_eq!(second[0].average_duration_ms, Some(70.0));
    let mut tx = store.begin_read().await.unwrap();
    let hour = tx
        .run_series(&series(Some("wf"), at(1, 0, 0), at(2, 0, 0), Bucket::Hour))
        .await
        .unwrap();
    assert_eq!(hour.len(), 1, "{hour:?}");
    assert_eq!(hour[0].bucket_start, at(1, 9, 0));
}

async fn series_ranges_are_checked(store: Store) {
    let mut tx = store.begin_read().await.unwrap();
    let reversed = tx
        .run_series(&series(None, at(2, 0, 0), at(1, 0, 0), Bucket::Hour))
        .await
        .unwrap_err();
    assert!(
        matches!(reversed, StoreError::Invalid { ref field, .. } if field == "until"),
        "{reversed:?}"
    );
    let huge = tx
        .run_series(&series(
            None,
            at(1, 0, 0),
            at(1, 0, 0) + TimeDelta::days(500),
            Bucket::Hour,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(huge, StoreError::Invalid { ref field, .. } if field == "since"),
        "{huge:?}"
    );
    // The same span in days is fine.
    tx.run_series(&series(
        None,
        at(1, 0, 0),
        at(1, 0, 0) + TimeDelta::days(500),
        Bucket::Day,
    ))
    .await
    .unwrap();
}

async fn runs_across_workflows_filter_and_page_by_time(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let mut made = Vec::new();
    for i in 0..7 {
        let wf = if i % 2 == 0 { "build" } else { "Deploy_Prod" };
        let mut new = ended(&format!("x{i}"), wf, "pending", at(1, 0, 0), None);
        new.workflow_name = format!("{wf} pipeline");
        let r = tx.create_execution(new).await.unwrap();
        made.push(r);
    }
    tx.update_execution(
        "x3",
        serde_json::from_value(json!({"status": "running"})).unwrap(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin_read().await.unwrap();
    // Every run, three at a time, newest first, none twice.
    let mut seen = Vec::new();
    let mut page = PageRequest::first(3);
    loop {
        let p = tx.list_runs(&RunFilter::default(), &page).await.unwrap();
        seen.extend(p.items.iter().map(|r| r.execution_id.clone()));
        match p.next_cursor {
            Some(c) => page = PageRequest::after(c, 3),
            None => break,
        }
    }
    assert_eq!(seen, ["x6", "x5", "x4", "x3", "x2", "x1", "x0"]);

    let only = |f: RunFilter| f;
    let ids = |p: flowstore::Page<flowstore::model::run::WorkflowExecution>| {
        p.items
            .into_iter()
            .map(|r| r.execution_id)
            .collect::<Vec<_>>()
    };
    let first = PageRequest::first(50);
    let by_wf = tx
        .list_runs(
            &only(RunFilter {
                workflow_id: Some("build".into()),
                ..Default::default()
            }),
            &first,
        )
        .await
        .unwrap();
    assert_eq!(ids(by_wf), ["x6", "x4", "x2", "x0"]);
    let running = tx
        .list_runs(
            &RunFilter {
                status: Some(RunStatus::Running),
                ..Default::default()
            },
            &first,
        )
        .await
        .unwrap();
    assert_eq!(ids(running), ["x3"]);
    // Text: an execution ID, a run ID, or part of the workflow's name in any case;
    // LIKE's wildcards are taken literally.
    for (text, want) in [
        ("x5", vec!["x5"]),
        (made[2].id.to_string().as_str(), vec!["x2"]),
        ("deploy_prod", vec!["x5", "x3", "x1"]),
        ("PIPE", vec!["x6", "x5", "x4", "x3", "x2", "x1", "x0"]),
        ("_", vec!["x5", "x3", "x1"]),
        ("%", vec![]),
    ] {
        assert_eq!(found_by_text(&mut tx, text).await, want, "{text}");
    }
    // Time range on creation.
    let t3 = made[3].created_at;
    let got = tx
        .list_runs(
            &RunFilter {
                since: Some(t3),
                until: Some(made[5].created_at),
                ..Default::default()
            },
            &first,
        )
        .await
        .unwrap();
    assert_eq!(ids(got), ["x4", "x3"]);
    let err = tx
        .list_runs(
            &RunFilter {
                since: Some(t3),
                until: Some(made[0].created_at),
                ..Default::default()
            },
            &first,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { ref field, .. } if field == "until"),
        "{err:?}"
    );
    for bad in ["nope", "12.zz", "x.0190c5a0e2a27c2e8b3b0a1c2d3e4f50"] {
        let err = tx
            .list_runs(&RunFilter::default(), &PageRequest::after(bad, 5))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid { ref field, .. } if field == "cursor"),
            "{bad}: {err:?}"
        );
    }
    let nul = tx
        .list_runs(
            &RunFilter {
                text: Some("a\0b".into()),
                ..Default::default()
            },
            &first,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(nul, StoreError::Invalid { ref field, .. } if field == "q"),
        "{nul:?}"
    );
    let _ = tx.rollback().await;

    // With more distinct workflow names than the search walks through first, the
    // search walks the runs instead, with the same answers.
    let mut tx = store.begin().await.unwrap();
    for i in 0..1001 {
        let mut new = ended(&format!("bulk{i}"), "bulk", "completed", at(1, 0, 0), None);
        new.workflow_name = format!("bulk {i:04}");
        tx.create_execution(new).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    for (text, want) in [
        ("deploy_prod", vec!["x5", "x3", "x1"]),
        ("lk 1000", vec!["bulk1000"]),
        ("no such name", vec![]),
    ] {
        assert_eq!(found_by_text(&mut tx, text).await, want, "{text}");
    }
}

/// The execution IDs of the runs `list_runs` finds by `text`, first page of 50.
async fn found_by_text(tx: &mut Box<dyn flowstore::Tx>, text: &str) -> Vec<String> {
    let filter = RunFilter {
        text: Some(text.into()),
        ..Default::default()
    };
    let page = tx
        .list_runs(&filter, &PageRequest::first(50))
        .await
        .unwrap();
    page.items.into_iter().map(|r| r.execution_id).collect()
}

async fn attempt_of(
    tx: &mut Box<dyn flowstore::Tx>,
    task: TaskId,
    run: flowstore::ids::RunId,
    n: i32,
    worker: &str,
) {
    tx.record_attempt(NewAttempt {
        task_id: task,
        run_id: Some(run),
        attempt: n,
        agent_type: "coder".into(),
        worker_id: Some(worker.into()),
        status: Some(AttemptStatus::Running),
        input_context: None,
        started_at: None,
        lease_expires_at: None,
    })
    .await
    .unwrap();
}

async fn run_attempts_carry_reported_usage(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let run = tx
        .create_execution(ended("u1", "wf", "running", at(1, 0, 0), None))
        .await
        .unwrap();
    let other = tx
        .create_execution(ended("u2", "wf", "running", at(1, 0, 0), None))
        .await
        .unwrap();
    let task = |title: &str| NewTask {
        title: title.into(),
        run_id: Some(run.id),
        ..Default::default()
    };
    let t1 = tx.create_task(task("one")).await.unwrap().id;
    let t2 = tx.create_task(task("two")).await.unwrap().id;
    let t3 = tx
        .create_task(NewTask {
            run_id: Some(other.id),
            ..task("elsewhere")
        })
        .await
        .unwrap()
        .id;
    attempt_of(&mut tx, t1, run.id, 1, "w1").await;
    attempt_of(&mut tx, t2, run.id, 1, "w2").await;
    attempt_of(&mut tx, t1, run.id, 2, "w1").await;
    attempt_of(&mut tx, t3, other.id, 1, "w1").await;
    tx.record_usage(
        t1,
        2,
        Usage {
            memory_usage_mb: Some(512),
            cpu_time_ms: Some(1234),
        },
    )
    .await
    .unwrap();
    // A later report of one figure keeps the other.
    tx.record_usage(
        t1,
        2,
        Usage {
            memory_usage_mb: None,
            cpu_time_ms: Some(2000),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let got = tx.list_run_attempts(run.id).await.unwrap();
    let keys: Vec<(TaskId, i32)> = got.iter().map(|a| (a.task_id, a.attempt)).collect();
    assert_eq!(keys, [(t1, 1), (t2, 1), (t1, 2)]);
    assert_eq!(
        (got[2].memory_usage_mb, got[2].cpu_time_ms),
        (Some(512), Some(2000))
    );
    assert_eq!((got[0].memory_usage_mb, got[0].cpu_time_ms), (None, None));

    let negative = tx
        .record_usage(
            t1,
            1,
            Usage {
                memory_usage_mb: Some(-1),
                cpu_time_ms: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(negative, StoreError::Invalid { ref field, .. } if field == "memory_usage_mb"),
        "{negative:?}"
    );
    let missing = tx
        .record_usage(
            t1,
            9,
            Usage {
                memory_usage_mb: Some(1),
                cpu_time_ms: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::NotFound { .. }),
        "{missing:?}"
    );
}

async fn workers_seen_in_a_window(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let run = tx
        .create_execution(ended("w", "wf", "running", at(1, 0, 0), None))
        .await
        .unwrap();
    let t = tx
        .create_task(NewTask {
            title: "t".into(),
            run_id: Some(run.id),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    attempt_of(&mut tx, t, run.id, 1, "busy").await;
    tx.commit().await.unwrap();

    let mut tx = store.begin_read().await.unwrap();
    let now = flowstore::time::now();
    let seen = tx
        .workers_seen(now - TimeDelta::minutes(5), 10)
        .await
        .unwrap();
    let names: HashSet<&str> = seen.iter().map(|w| w.worker_id.as_str()).collect();
    assert_eq!(names, HashSet::from(["busy"]));
    assert_eq!(
        (seen[0].running, seen[0].completed, seen[0].failed),
        (1, 0, 0)
    );
    // A running attempt is seen whatever the window.
    let later = tx
        .workers_seen(now + TimeDelta::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
}
