//! Waking waiting claims: a task started here wakes one claim that takes its handler
//! type, not every waiting claim, and a claim woken for a task it may not take passes
//! the wake on. The server's polls are set far beyond the test's span, so only a wake
//! can answer a claim in time, and the server listens to the change feed as `serve`
//! makes it do (hearing its own announcement would wake every claim again). On
//! SQLite and PostgreSQL.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_server::ServerConfig;
use flowstore_testkit::{both_backends, TestApp};
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};

both_backends!(
    a_started_task_wakes_one_claim_of_its_type,
    a_claim_woken_for_a_task_it_may_not_take_passes_it_on
);

async fn app(b: Arc<dyn Backend>) -> TestApp {
    let c = TestApp::with_config(
        b,
        ServerConfig {
            poll_interval: Duration::from_secs(60),
            safety_poll_interval: Duration::from_secs(60),
            ..ServerConfig::default()
        },
    )
    .await;
    // As `serve` does: the server hears the database's change feed and announces its
    // own changes on it, which it must not then hear as work to look for.
    c.state.listen_for_changes();
    // A feed that listens on a connection of its own (PostgreSQL's) wakes every
    // waiting claim once when it starts listening, since what changed before is
    // unknown to it: the claims below start waiting after that. SQLite's feed is the
    // process's own, ready at once, and never reports being live (other processes'
    // writes are found by polling), so there the wait ends at its bound.
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while !c.state.feed_live() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    for h in ["a", "b"] {
        let body = json!({"handler_type": h, "handler_name": h});
        c.admin().create_handler(body).await.want(201);
    }
    c
}

/// A one-step workflow of `handler` made by `key`.
async fn workflow(c: &TestApp, key: &str, handler: &str) -> String {
    let body = json!({"name": handler, "status": "active",
        "definition": {"steps": [{"key": "only", "handler": handler}]}});
    c.by(key).create_workflow(body).await.want_id(201)
}

fn claim(worker: &str, handler: &str) -> Option<Value> {
    Some(
        json!({"worker_id": worker, "handler_types": [handler], "limit": 1,
        "lease_ms": 60000, "wait_ms": 20000}),
    )
}

/// A claim of one task of `handler` that waits up to 20 s, by `caller`.
async fn waiting_claim(
    caller: flowstore_testkit::Caller<'_>,
    worker: &'static str,
    handler: &str,
) -> (&'static str, Value) {
    let answer = caller
        .send("POST", "/api/v1/worker/claim", claim(worker, handler))
        .await
        .want(200);
    (worker, answer)
}

fn found_nothing(c: &TestApp) -> u64 {
    c.state
        .metrics()
        .claims_found_nothing
        .load(Ordering::Relaxed)
}

async fn a_started_task_wakes_one_claim_of_its_type(b: Arc<dyn Backend>) {
    let c = app(b).await;
    let wf = workflow(&c, &c.admin, "b").await;
    let mut claims = FuturesUnordered::new();
    for (worker, handler) in [("b1", "b"), ("b2", "b"), ("b3", "b"), ("a1", "a")] {
        claims.push(waiting_claim(c.admin(), worker, handler));
    }
    // Every claim looks once, finds nothing and waits.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), claims.next())
            .await
            .is_err(),
        "no claim answers with nothing to take"
    );
    assert_eq!(found_nothing(&c), 4);

    let run = c.admin().start_run(&wf, json!({})).await.want(201);
    let (worker, got) = tokio::time::timeout(Duration::from_secs(5), claims.next())
        .await
        .expect("a waiting claim is woken for the new task")
        .unwrap();
    assert!(worker.starts_with('b'), "{worker} took a task of type b");
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["run_id"], run["run"]["id"]);
    // The other claims were not woken: none looked again, none answered.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), claims.next())
            .await
            .is_err(),
        "the other claims still wait"
    );
    assert_eq!(found_nothing(&c), 4, "only the claim woken looked");

    // Two more tasks of type b wake the two claims of type b still waiting.
    c.admin().start_run(&wf, json!({})).await.want(201);
    c.admin().start_run(&wf, json!({})).await.want(201);
    for _ in 0..2 {
        let (worker, got) = tokio::time::timeout(Duration::from_secs(5), claims.next())
            .await
            .expect("each new task wakes a claim")
            .unwrap();
        assert!(worker.starts_with('b'), "{worker}");
        assert_eq!(got.as_array().unwrap().len(), 1);
    }
    assert_eq!(found_nothing(&c), 4);
}

async fn a_claim_woken_for_a_task_it_may_not_take_passes_it_on(b: Arc<dyn Backend>) {
    let c = app(b).await;
    let (_, owner) = c.user_key(Role::User, "owner@x.io").await;
    // A private workflow of one user: the key of no user may not execute it.
    let wf = workflow(&c, &owner, "b").await;
    let mut claims = FuturesUnordered::new();
    // The key of no user waits longest, so it is the one woken first.
    claims.push(waiting_claim(c.user(), "nobody", "b"));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), claims.next())
            .await
            .is_err()
    );
    claims.push(waiting_claim(c.by(&owner), "owner", "b"));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), claims.next())
            .await
            .is_err()
    );

    let run = c.by(&owner).start_run(&wf, json!({})).await.want(201);
    let (worker, got) = tokio::time::timeout(Duration::from_secs(5), claims.next())
        .await
        .expect("the wake reaches a claim that may take the task")
        .unwrap();
    assert_eq!(worker, "owner");
    assert_eq!(got[0]["run_id"], run["run"]["id"]);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), claims.next())
            .await
            .is_err(),
        "the claim that may not take it goes on waiting"
    );
}
