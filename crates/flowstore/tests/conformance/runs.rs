//! Conformance tests for the `runs` area: seed 000's workflow executions and metrics
//! (with their hourly rollups), and task attempts with seed 003's summary.

use chrono::{TimeZone, Utc};
use flowstore::ids::TaskId;
use flowstore::model::metric::{AggregateFilter, MetricAggregate, MetricType, NewMetric};
use flowstore::model::run::{
    AttemptOutcome, AttemptStatus, ExecutionPatch, NewAttempt, NewExecution, RunStatus, StatsFilter,
};
use flowstore::model::task::NewTask;
use flowstore::time::Timestamp;
use flowstore::{PageRequest, Store, Tx};
use serde_json::json;

conformance!(
    create_records_execution_started,
    completing_records_execution_duration,
    terminal_status_cannot_change,
    statistics_match_a_hand_computation,
    list_by_workflow_pages_newest_first,
    find_by_task_and_dangling_task,
    bad_execution_input_is_refused,
    metric_input_is_checked,
    rollups_agree_with_raw_aggregation,
    attempts_and_summary,
);

fn run(execution_id: &str, workflow_id: &str) -> NewExecution {
    NewExecution {
        execution_id: execution_id.into(),
        workflow_id: workflow_id.into(),
        workflow_name: format!("{workflow_id} name"),
        ..Default::default()
    }
}

fn at(h: u32, m: u32) -> Timestamp {
    Utc.with_ymd_and_hms(2024, 3, 1, h, m, 0).unwrap()
}

fn patch(v: serde_json::Value) -> ExecutionPatch {
    serde_json::from_value(v).unwrap()
}

async fn task(tx: &mut Box<dyn Tx>, title: &str) -> TaskId {
    tx.create_task(NewTask {
        title: title.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .id
}

async fn create_records_execution_started(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let created = tx
        .create_execution(NewExecution {
            workflow_version: Some("1.2".into()),
            user_id: Some("alice".into()),
            ..run(" exec-1 ", "wf-a")
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(created.execution_id, "exec-1");
    assert_eq!(created.status, RunStatus::Pending);
    assert_eq!(created.priority, Some(1), "seed 000's default priority");
    assert_eq!(created.metadata, Some(json!({})));

    let mut tx = store.begin_read().await.unwrap();
    let got = tx.find_by_execution_id("exec-1").await.unwrap();
    assert_eq!(got, created, "what is read back equals what was written");
    assert_eq!(tx.get_execution(created.id).await.unwrap(), created);
    let metrics = tx
        .metrics_for_execution("exec-1", None, None)
        .await
        .unwrap();
    assert_eq!(metrics.len(), 1);
    let m = &metrics[0];
    assert_eq!(m.metric_name, "execution_started");
    assert_eq!(m.metric_value, Some(1.0));
    assert_eq!(m.metric_unit.as_deref(), Some("count"));
    assert_eq!(m.metric_type, Some(MetricType::Performance));
    assert_eq!(m.metadata, Some(json!({"status": "started"})));
    assert_err!(tx.find_by_execution_id("nope").await, NotFound);
}

async fn completing_records_execution_duration(store: Store) {
    let mut tx = store.begin().await.unwrap();
    tx.create_execution(NewExecution {
        start_time: Some(at(10, 0)),
        metadata: Some(json!({"k": "v"})),
        ..run("e-ok", "wf")
    })
    .await
    .unwrap();
    let running = tx
        .update_execution(
            "e-ok",
            patch(json!({"status": "running", "result_data": [1]})),
        )
        .await
        .unwrap();
    assert_eq!(running.status, RunStatus::Running);
    assert_eq!(running.result_data, Some(json!([1])));
    assert_eq!(
        running.metadata,
        Some(json!({"k": "v"})),
        "unnamed fields stay"
    );
    let done = tx
        .update_execution(
            "e-ok",
            patch(json!({"status": "completed", "actual_duration": 1500, "result_data": null})),
        )
        .await
        .unwrap();
    assert_eq!(done.actual_duration, Some(1500));
    assert_eq!(done.result_data, None, "null clears");
    assert_eq!(done.workflow_name, "wf name");
    let metrics = tx
        .metrics_for_execution("e-ok", Some(MetricType::Performance), None)
        .await
        .unwrap();
    let names: Vec<_> = metrics.iter().map(|m| m.metric_name.as_str()).collect();
    assert_eq!(
        names,
        ["execution_duration", "execution_started"],
        "newest first"
    );
    assert_eq!(metrics[0].metric_value, Some(1500.0));
    assert_eq!(metrics[0].metric_unit.as_deref(), Some("milliseconds"));
    assert_eq!(metrics[0].metadata, Some(json!({"status": "completed"})));

    // A failure with both times and no duration: the duration comes from the times,
    // but, as in seed 000, only a completed run records `execution_duration`.
    tx.create_execution(run("e-bad", "wf")).await.unwrap();
    let failed = tx
        .update_execution(
            "e-bad",
            patch(
                json!({"status": "failed", "start_time": at(10, 0), "end_time": at(10, 2),
                         "error_data": {"message": "boom"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(failed.actual_duration, Some(120_000));
    let m = tx.metrics_for_execution("e-bad", None, None).await.unwrap();
    let names: Vec<_> = m.iter().map(|m| m.metric_name.as_str()).collect();
    assert_eq!(
        names,
        ["execution_started"],
        "a failed run records no duration"
    );
    let m = tx
        .metrics_for_execution("e-ok", None, Some(1))
        .await
        .unwrap();
    assert_eq!(m.len(), 1, "the limit is applied");
    assert_eq!(m[0].metric_name, "execution_duration");
    tx.commit().await.unwrap();

    let mut tx = store.begin_read().await.unwrap();
    assert_eq!(tx.find_by_execution_id("e-ok").await.unwrap(), done);
    assert_eq!(tx.find_by_execution_id("e-bad").await.unwrap(), failed);

    // A run that completes without any duration records no duration metric.
    let mut tx = store.begin().await.unwrap();
    tx.create_execution(run("e-nodur", "wf")).await.unwrap();
    tx.update_execution("e-nodur", patch(json!({"status": "completed"})))
        .await
        .unwrap();
    let m = tx
        .metrics_for_execution("e-nodur", None, None)
        .await
        .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].metric_name, "execution_started");
    // Deleting a run takes its metrics with it.
    tx.delete_execution("e-ok").await.unwrap();
    assert!(tx
        .metrics_for_execution("e-ok", None, None)
        .await
        .unwrap()
        .is_empty());
    assert_err!(tx.delete_execution("e-ok").await, NotFound);
    assert_err!(
        tx.update_execution("e-ok", patch(json!({"priority": 2})))
            .await,
        NotFound
    );
    tx.commit().await.unwrap();
}

async fn terminal_status_cannot_change(store: Store) {
    let mut tx = store.begin().await.unwrap();
    for (id, status) in [("c", "completed"), ("x", "cancelled"), ("t", "timed_out")] {
        tx.create_execution(run(id, "wf")).await.unwrap();
        tx.update_execution(id, patch(json!({ "status": status })))
            .await
            .unwrap();
        for next in ["running", "failed", "pending"] {
            assert_err!(
                tx.update_execution(id, patch(json!({ "status": next })))
                    .await,
                Conflict,
                "status"
            );
        }
        // Other fields of a finished run may still be filled in.
        let r = tx
            .update_execution(id, patch(json!({"metadata": {"note": "late"}})))
            .await
            .unwrap();
        assert_eq!(r.status.as_str(), status);
    }
    assert!(RunStatus::Failed.is_terminal() && !RunStatus::Running.is_terminal());
    tx.commit().await.unwrap();
}

async fn statistics_match_a_hand_computation(store: Store) {
    // (workflow, status, duration)
    let rows: [(&str, &str, Option<i32>); 7] = [
        ("wf-a", "completed", Some(100)),
        ("wf-a", "completed", Some(250)),
        ("wf-a", "failed", Some(7)),
        ("wf-a", "running", None),
        ("wf-a", "pending", None),
        ("wf-b", "completed", Some(1000)),
        ("wf-b", "failed", None),
    ];
    let mut tx = store.begin().await.unwrap();
    let empty = tx
        .execution_statistics(&StatsFilter::default())
        .await
        .unwrap();
    assert_eq!(empty.total_executions, 0);
    assert_eq!(empty.average_duration, None);
    assert_eq!(empty.min_duration, None);
    for (i, (wf, status, duration)) in rows.iter().enumerate() {
        let id = format!("s{i}");
        tx.create_execution(run(&id, wf)).await.unwrap();
        tx.update_execution(
            &id,
            patch(json!({"status": status, "actual_duration": duration})),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let filters = [
        (None, None),
        (Some("wf-a"), None),
        (Some("wf-b"), None),
        (None, Some("completed")),
        (Some("wf-a"), Some("failed")),
        (Some("wf-none"), None),
    ];
    let mut tx = store.begin_read().await.unwrap();
    for (wf, status) in filters {
        let matched: Vec<_> = rows
            .iter()
            .filter(|r| wf.is_none_or(|w| w == r.0) && status.is_none_or(|s| s == r.1))
            .collect();
        let durations: Vec<i32> = matched.iter().filter_map(|r| r.2).collect();
        let stats = tx
            .execution_statistics(&StatsFilter {
                workflow_id: wf.map(String::from),
                status: status.map(|s| s.parse().unwrap()),
            })
            .await
            .unwrap();
        let ctx = format!("{wf:?} {status:?}");
        assert_eq!(stats.total_executions, matched.len() as i64, "{ctx}");
        let count = |s: &str| matched.iter().filter(|r| r.1 == s).count() as i64;
        assert_eq!(stats.completed_executions, count("completed"), "{ctx}");
        assert_eq!(stats.failed_executions, count("failed"), "{ctx}");
        let avg = (!durations.is_empty())
            .then(|| durations.iter().map(|d| f64::from(*d)).sum::<f64>() / durations.len() as f64);
        assert_eq!(stats.average_duration, avg, "{ctx}");
        assert_eq!(stats.min_duration, durations.iter().copied().min(), "{ctx}");
        assert_eq!(stats.max_duration, durations.iter().copied().max(), "{ctx}");
    }
}

async fn list_by_workflow_pages_newest_first(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let mut all = Vec::new();
    for i in 0..7 {
        let id = format!("l{i}");
        tx.create_execution(run(&id, "wf-l")).await.unwrap();
        let status = if i % 2 == 0 { "completed" } else { "failed" };
        all.push((id.clone(), status));
        tx.update_execution(&id, patch(json!({ "status": status })))
            .await
            .unwrap();
    }
    tx.create_execution(run("other", "wf-other")).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin_read().await.unwrap();
    for status in [None, Some(RunStatus::Completed), Some(RunStatus::Failed)] {
        let expected: Vec<String> = all
            .iter()
            .rev()
            .filter(|(_, s)| status.is_none_or(|st| st.as_str() == *s))
            .map(|(id, _)| id.clone())
            .collect();
        let mut seen = Vec::new();
        let mut page = PageRequest::first(2);
        loop {
            let p = tx.list_by_workflow("wf-l", status, &page).await.unwrap();
            assert!(p.items.len() <= 2);
            assert!(p.items.iter().all(|r| r.workflow_id == "wf-l"));
            seen.extend(p.items.iter().map(|r| r.execution_id.clone()));
            match p.next_cursor {
                Some(c) => page = PageRequest::after(c, 2),
                None => break,
            }
        }
        assert_eq!(seen, expected, "every run once, newest first ({status:?})");
    }
    let none = tx
        .list_by_workflow("wf-l", Some(RunStatus::Running), &PageRequest::default())
        .await
        .unwrap();
    assert!(none.items.is_empty() && none.next_cursor.is_none());
    assert_err!(
        tx.list_by_workflow("wf-l", None, &PageRequest::first(0))
            .await,
        Invalid,
        "limit"
    );
}

async fn find_by_task_and_dangling_task(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let t = task(&mut tx, "build it").await;
    let other = task(&mut tx, "other").await;
    for id in ["t1", "t2"] {
        tx.create_execution(NewExecution {
            task_id: Some(t),
            ..run(id, "wf")
        })
        .await
        .unwrap();
    }
    tx.create_execution(run("t3", "wf")).await.unwrap();
    let found: Vec<_> = tx
        .find_by_task(t)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.execution_id)
        .collect();
    assert_eq!(found, ["t2", "t1"], "newest first, only the task's runs");
    assert!(tx.find_by_task(other).await.unwrap().is_empty());
    assert_err!(
        tx.create_execution(NewExecution {
            task_id: Some(TaskId::new()),
            ..run("t4", "wf")
        })
        .await,
        Invalid,
        "task_id"
    );
    tx.commit().await.unwrap();
}

async fn bad_execution_input_is_refused(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let long = "x".repeat(256);
    assert_err!(
        tx.create_execution(run(" ", "wf")).await,
        Invalid,
        "execution_id"
    );
    assert_err!(
        tx.create_execution(run(&long, "wf")).await,
        Invalid,
        "execution_id"
    );
    assert_err!(
        tx.create_execution(run("e", "")).await,
        Invalid,
        "workflow_id"
    );
    assert_err!(
        tx.create_execution(run("e", &long)).await,
        Invalid,
        "workflow_id"
    );
    let mut no_name = run("e", "wf");
    no_name.workflow_name = String::new();
    assert_err!(tx.create_execution(no_name).await, Invalid, "workflow_name");
    let cases = [
        (
            NewExecution {
                metadata: Some(json!([1])),
                ..run("e", "wf")
            },
            "metadata",
        ),
        (
            NewExecution {
                input: Some(json!("s")),
                ..run("e", "wf")
            },
            "input",
        ),
        (
            NewExecution {
                estimated_duration: Some(-1),
                ..run("e", "wf")
            },
            "estimated_duration",
        ),
        (
            NewExecution {
                workflow_version: Some("v".repeat(51)),
                ..run("e", "wf")
            },
            "workflow_version",
        ),
    ];
    for (new, field) in cases {
        assert_err!(tx.create_execution(new).await, Invalid, field);
    }
    // Enumerations and field names are checked when the input is read.
    let bad: Result<NewExecution, _> = serde_json::from_value(
        json!({"execution_id": "e", "workflow_id": "w", "workflow_name": "n", "status": "done"}),
    );
    assert!(bad.is_err(), "unknown status is refused");
    assert!(serde_json::from_value::<ExecutionPatch>(json!({"workflow_name": "x"})).is_err());
    assert!(serde_json::from_value::<ExecutionPatch>(json!({"strategy": "random"})).is_err());

    tx.create_execution(run("dup", "wf")).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.create_execution(run("dup", "wf2")).await,
        Conflict,
        "execution_id"
    );
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.update_execution(
            "dup",
            patch(json!({"start_time": at(10, 0), "end_time": at(9, 0)}))
        )
        .await,
        Invalid,
        "end_time"
    );
    assert_err!(
        tx.update_execution("dup", patch(json!({"actual_duration": -5})))
            .await,
        Invalid,
        "actual_duration"
    );
    assert_err!(
        tx.update_execution("dup", patch(json!({"metadata": "flat"})))
            .await,
        Invalid,
        "metadata"
    );
    let unchanged = tx.find_by_execution_id("dup").await.unwrap();
    assert_eq!(unchanged.workflow_id, "wf");
    assert_eq!(unchanged.start_time, None);
}

async fn metric_input_is_checked(store: Store) {
    let mut tx = store.begin().await.unwrap();
    tx.create_execution(run("m", "wf")).await.unwrap();
    let metric = |value: Option<f64>| NewMetric {
        execution_id: Some("m".into()),
        metric_name: "latency".into(),
        metric_value: value,
        metric_unit: Some("ms".into()),
        metric_type: Some(MetricType::Resource),
        ..Default::default()
    };
    for bad in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e11,
        -2e12,
        99_999_999_999.999_96,
    ] {
        assert_err!(
            tx.record_metric(metric(Some(bad))).await,
            Invalid,
            "metric_value"
        );
    }
    for (bad, field) in [
        (
            NewMetric {
                execution_id: Some("ghost".into()),
                ..metric(Some(1.0))
            },
            "execution_id",
        ),
        (
            NewMetric {
                metric_name: " ".into(),
                ..metric(Some(1.0))
            },
            "metric_name",
        ),
    ] {
        assert_err!(tx.record_metric(bad).await, Invalid, field);
    }
    for (bad, field) in [
        (
            NewMetric {
                metric_name: "n".repeat(256),
                ..metric(None)
            },
            "metric_name",
        ),
        (
            NewMetric {
                metric_unit: Some("u".repeat(51)),
                ..metric(None)
            },
            "metric_unit",
        ),
        (
            NewMetric {
                metadata: Some(json!(3)),
                ..metric(None)
            },
            "metadata",
        ),
    ] {
        assert_err!(tx.record_metric(bad).await, Invalid, field);
    }
    assert!(serde_json::from_value::<NewMetric>(
        json!({"metric_name": "x", "metric_type": "speed"})
    )
    .is_err());

    // Values keep the 4 decimals PostgreSQL's DECIMAL(15, 4) keeps, on both backends.
    let stored = tx.record_metric(metric(Some(12.345_678))).await.unwrap();
    assert_eq!(stored.metric_value, Some(12.3457));
    let unvalued = tx.record_metric(metric(None)).await.unwrap();
    let free = tx
        .record_metric(NewMetric {
            execution_id: None,
            ..metric(Some(2.0))
        })
        .await
        .unwrap();
    assert_eq!(free.execution_id, None);
    let listed = tx
        .metrics_for_execution("m", Some(MetricType::Resource), None)
        .await
        .unwrap();
    assert_eq!(
        listed,
        vec![unvalued, stored],
        "newest first, only resource metrics"
    );
    for limit in [0, 1001] {
        assert_err!(
            tx.metrics_for_execution("m", None, Some(limit)).await,
            Invalid,
            "limit"
        );
    }
    assert!(tx
        .metrics_for_execution("ghost", None, None)
        .await
        .unwrap()
        .is_empty());
    tx.commit().await.unwrap();
}

fn assert_same(raw: &[MetricAggregate], rolled: &[MetricAggregate]) {
    assert_eq!(raw.len(), rolled.len(), "{raw:?} vs {rolled:?}");
    for (a, b) in raw.iter().zip(rolled) {
        assert_eq!(
            (
                &a.metric_name,
                a.metric_type,
                a.count,
                a.min_value,
                a.max_value
            ),
            (
                &b.metric_name,
                b.metric_type,
                b.count,
                b.min_value,
                b.max_value
            )
        );
        let (x, y) = (a.average_value.unwrap(), b.average_value.unwrap());
        assert!((x - y).abs() < 1e-9, "{x} vs {y}");
    }
}

async fn rollups_agree_with_raw_aggregation(store: Store) {
    let samples: [(&str, Option<MetricType>, f64, Timestamp); 9] = [
        ("cpu", Some(MetricType::Resource), 0.5, at(9, 59)),
        ("cpu", Some(MetricType::Resource), 1.25, at(10, 0)),
        ("cpu", Some(MetricType::Resource), 3.75, at(10, 30)),
        ("cpu", Some(MetricType::Resource), -2.0, at(11, 15)),
        ("cpu", None, 8.0, at(10, 5)),
        ("accuracy", Some(MetricType::Quality), 0.9375, at(10, 10)),
        ("accuracy", Some(MetricType::Quality), 0.8125, at(12, 0)),
        ("Zeta", Some(MetricType::Custom), 42.0, at(11, 0)),
        ("cpu", Some(MetricType::Performance), 7.5, at(8, 0)),
    ];
    let mut tx = store.begin().await.unwrap();
    for (name, ty, v, t) in samples {
        tx.record_metric(NewMetric {
            metric_name: name.into(),
            metric_value: Some(v),
            metric_type: ty,
            recorded_at: Some(t),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let mut tx = store.begin_read().await.unwrap();
    let all = tx
        .aggregated_metrics(&AggregateFilter::default())
        .await
        .unwrap();
    let keys: Vec<_> = all
        .iter()
        .map(|a| (a.metric_name.as_str(), a.metric_type))
        .collect();
    assert_eq!(
        keys,
        [
            ("Zeta", Some(MetricType::Custom)),
            ("accuracy", Some(MetricType::Quality)),
            ("cpu", Some(MetricType::Performance)),
            ("cpu", Some(MetricType::Resource)),
            ("cpu", None),
        ],
        "ordered by name (bytewise), then kind, no kind last"
    );
    let cpu = &all[3];
    assert_eq!(cpu.count, 4);
    assert_eq!((cpu.min_value, cpu.max_value), (Some(-2.0), Some(3.75)));
    assert_eq!(cpu.average_value, Some(0.875));

    for since in [None, Some(at(10, 0)), Some(at(11, 0)), Some(at(13, 0))] {
        for (name, ty) in [
            (None, None),
            (Some("cpu"), None),
            (None, Some(MetricType::Resource)),
        ] {
            let f = AggregateFilter {
                metric_name: name.map(String::from),
                metric_type: ty,
                since,
            };
            let raw = tx.aggregated_metrics(&f).await.unwrap();
            let rolled = tx.aggregated_metrics_from_rollups(&f).await.unwrap();
            assert_same(&raw, &rolled);
        }
    }
    let since_ten = AggregateFilter {
        since: Some(at(10, 0)),
        ..Default::default()
    };
    let late = tx.aggregated_metrics(&since_ten).await.unwrap();
    assert!(late
        .iter()
        .all(|a| a.metric_type != Some(MetricType::Performance)));
    drop(tx);

    // Seed 000 counts samples without a value too; their mean ignores them.
    let mut tx = store.begin().await.unwrap();
    tx.record_metric(NewMetric {
        metric_name: "Zeta".into(),
        metric_type: Some(MetricType::Custom),
        recorded_at: Some(at(11, 30)),
        ..Default::default()
    })
    .await
    .unwrap();
    let f = AggregateFilter {
        metric_name: Some("Zeta".into()),
        ..Default::default()
    };
    let raw = tx.aggregated_metrics(&f).await.unwrap();
    assert_eq!((raw[0].count, raw[0].average_value), (2, Some(42.0)));
    let rolled = tx.aggregated_metrics_from_rollups(&f).await.unwrap();
    assert_eq!(rolled[0].count, 1, "rollups hold valued samples only");
}

async fn attempts_and_summary(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let a = task(&mut tx, "a").await;
    let b = task(&mut tx, "b").await;
    let attempt = |task_id, n, agent: &str| NewAttempt {
        task_id,
        run_id: None,
        attempt: n,
        agent_type: agent.into(),
        worker_id: Some("w1".into()),
        status: Some(AttemptStatus::Running),
        input_context: Some(json!({"n": n})),
        started_at: Some(at(10, 0)),
        lease_expires_at: Some(at(10, 5)),
    };
    let a1 = tx.record_attempt(attempt(a, 1, "coder")).await.unwrap();
    let a2 = tx.record_attempt(attempt(a, 2, "coder")).await.unwrap();
    let b1 = tx.record_attempt(attempt(b, 1, "reviewer")).await.unwrap();
    let queued = tx
        .record_attempt(NewAttempt {
            status: None,
            started_at: None,
            ..attempt(b, 2, "coder")
        })
        .await
        .unwrap();
    assert_eq!(queued.execution_status, AttemptStatus::Queued);
    tx.commit().await.unwrap();

    // A failed statement ends a PostgreSQL transaction, so the conflict gets its own.
    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.record_attempt(attempt(a, 1, "coder")).await,
        Conflict,
        "task_id, attempt"
    );
    drop(tx);

    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.record_attempt(attempt(a, 0, "coder")).await,
        Invalid,
        "attempt"
    );
    assert_err!(
        tx.record_attempt(attempt(a, 3, " ")).await,
        Invalid,
        "agent_type"
    );
    assert_err!(
        tx.record_attempt(attempt(TaskId::new(), 1, "coder")).await,
        Invalid,
        "task_id"
    );
    assert_err!(
        tx.record_attempt(NewAttempt {
            input_context: Some(json!([])),
            ..attempt(a, 3, "c")
        })
        .await,
        Invalid,
        "input_context"
    );
    let outcome = |status, secs: u32, mem: i32| AttemptOutcome {
        status,
        output_results: Some(json!({"ok": true})),
        error_details: None,
        completed_at: Some(at(10, 0) + chrono::TimeDelta::seconds(secs.into())),
        memory_usage_mb: Some(mem),
        cpu_time_ms: Some(i64::from(secs) * 100),
    };
    let mut early = outcome(AttemptStatus::Completed, 1, 1);
    early.completed_at = Some(at(9, 0));
    for (refused, field) in [
        (outcome(AttemptStatus::Running, 1, 1), "status"),
        (outcome(AttemptStatus::Completed, 1, -1), "memory_usage_mb"),
        (early, "completed_at"),
    ] {
        assert_err!(tx.finish_attempt(a1.id, refused).await, Invalid, field);
    }
    let f1 = tx
        .finish_attempt(a1.id, outcome(AttemptStatus::Failed, 2, 100))
        .await
        .unwrap();
    assert_eq!(f1.duration_ms, Some(2000));
    assert_eq!(f1.execution_status, AttemptStatus::Failed);
    tx.finish_attempt(a2.id, outcome(AttemptStatus::Completed, 5, 300))
        .await
        .unwrap();
    tx.finish_attempt(b1.id, outcome(AttemptStatus::Completed, 1, 50))
        .await
        .unwrap();
    assert_err!(
        tx.finish_attempt(a1.id, outcome(AttemptStatus::Completed, 3, 1))
            .await,
        Conflict,
        "status"
    );
    assert_err!(
        tx.finish_attempt(
            flowstore::ids::AttemptId::new(),
            outcome(AttemptStatus::Completed, 1, 1)
        )
        .await,
        NotFound
    );
    tx.commit().await.unwrap();

    let mut tx = store.begin_read().await.unwrap();
    let listed = tx.list_attempts(a).await.unwrap();
    assert_eq!(listed.iter().map(|x| x.attempt).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(listed[0], f1, "what is read back equals what was written");
    assert_eq!(listed[1].duration_ms, Some(5000));
    assert_eq!(listed[1].output_results, json!({"ok": true}));

    let summary = tx.task_execution_summary().await.unwrap();
    assert_eq!(summary.len(), 2);
    let coder = &summary[0];
    assert_eq!(coder.agent_type, "coder");
    // coder: a1 failed (2 s, 100 MB), a2 completed (5 s, 300 MB), queued (nothing).
    assert_eq!(
        (
            coder.total_executions,
            coder.completed_executions,
            coder.failed_executions
        ),
        (3, 1, 1)
    );
    assert_eq!(coder.average_duration_ms, Some(3500.0));
    assert_eq!(coder.average_memory_mb, Some(200.0));
    assert_eq!(coder.average_cpu_time_ms, Some(350.0));
    let reviewer = &summary[1];
    assert_eq!(reviewer.agent_type, "reviewer");
    assert_eq!(
        (reviewer.total_executions, reviewer.completed_executions),
        (1, 1)
    );
    assert_eq!(reviewer.average_duration_ms, Some(1000.0));
}
