//! The `fleet` workload: three servers in this process on one database, each with a
//! backend (connections, change feed) of its own, as three `flowstore serve`
//! processes behind a load balancer would be. It measures how soon one server hears
//! what another commits:
//!
//! - an event on another server's stream: from sending `POST /workflows/{id}/runs`
//!   to server A until server B's `GET /events` delivers that run's `run.started`
//!   (and the same on A's own stream, for comparison);
//! - a claim's wake-up on another server: a claim waits on B with nothing to take;
//!   from sending the run's start to A until B's claim answers with its task;
//! - what idle waiting workers cost: transactions per second the database counts
//!   (PostgreSQL's `pg_stat_database`) while W claims wait on B with nothing to
//!   take, beside the same span with none waiting.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowstore_core::StoreResult;
use serde_json::{json, Value};

use super::{admin_key, fail, BenchOptions, InProcess, Raw, Report, Row, Samples, Target};

/// What a stream delivered: each chunk with the instant it arrived.
type Heard = Arc<Mutex<Vec<(Instant, String)>>>;

/// Reads `base`'s event stream into `heard` until the stream ends.
async fn listen(
    client: reqwest::Client,
    base: String,
    key: String,
    heard: Heard,
) -> StoreResult<()> {
    let mut stream = client
        .get(format!("{base}/events"))
        .bearer_auth(&key)
        .send()
        .await
        .map_err(|e| fail(format!("event stream: {e}")))?;
    if stream.status() != 200 {
        return Err(fail(format!("event stream answered {}", stream.status())));
    }
    while let Ok(Some(chunk)) = stream.chunk().await {
        let at = Instant::now();
        heard
            .lock()
            .expect("not poisoned")
            .push((at, String::from_utf8_lossy(&chunk).into_owned()));
    }
    Ok(())
}

/// When `heard` first held `run.started` of `run`.
fn heard_start(heard: &Heard, run: &str) -> Option<Instant> {
    heard
        .lock()
        .expect("not poisoned")
        .iter()
        .find(|(_, text)| text.contains("run.started") && text.contains(run))
        .map(|(at, _)| *at)
}

pub(crate) async fn post(
    client: &reqwest::Client,
    url: String,
    key: &str,
    body: Value,
) -> StoreResult<Value> {
    let answer = client
        .post(url)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .map_err(|e| fail(format!("request: {e}")))?;
    let status = answer.status();
    let body: Value = answer
        .json()
        .await
        .map_err(|e| fail(format!("answer: {e}")))?;
    if !status.is_success() {
        return Err(fail(format!("answered {status}: {body}")));
    }
    Ok(body)
}

pub(crate) async fn run(
    target: &Target,
    opts: &BenchOptions,
    report: &mut Report,
) -> StoreResult<()> {
    let key = admin_key(target, "bench fleet").await?;
    let servers = [
        InProcess::start(target.another_backend().await?).await?,
        InProcess::start(target.another_backend().await?).await?,
        InProcess::start(target.another_backend().await?).await?,
    ];
    let result = measure(target, opts, report, &servers, &key).await;
    for s in servers {
        s.stop().await;
    }
    result
}

async fn measure(
    target: &Target,
    opts: &BenchOptions,
    report: &mut Report,
    servers: &[InProcess; 3],
    key: &str,
) -> StoreResult<()> {
    let (a, b) = (&servers[0].base, &servers[1].base);
    let client = reqwest::Client::new();
    let handler = format!("bench-fleet-{}", uuid::Uuid::new_v4().simple());
    let runs_url = one_step_workflow(&client, a, key, &handler).await?;
    let samples = opts.query_calls.clamp(20, 200);

    // Events: streams open on B (another server) and on A (the same one).
    let (on_b, on_a): (Heard, Heard) = (Arc::default(), Arc::default());
    let streams = [
        tokio::spawn(listen(
            client.clone(),
            b.clone(),
            key.to_string(),
            on_b.clone(),
        )),
        tokio::spawn(listen(
            client.clone(),
            a.clone(),
            key.to_string(),
            on_a.clone(),
        )),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut started = Vec::new();
    for _ in 0..samples {
        let sent = Instant::now();
        let run = post(&client, runs_url.clone(), key, json!({})).await?;
        let answered = sent.elapsed();
        started.push((
            sent,
            answered,
            run["run"]["id"].as_str().unwrap_or_default().to_string(),
        ));
        // Spaced out, so that each sample is a wake-up of its own.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut other, mut same, mut request) =
        (Samples::default(), Samples::default(), Samples::default());
    for (sent, answered, run) in &started {
        let (Some(b_at), Some(a_at)) = (heard_start(&on_b, run), heard_start(&on_a, run)) else {
            return Err(fail(format!(
                "run {run}'s start was not heard on both servers within 2 s"
            )));
        };
        other.push(b_at - *sent);
        same.push(a_at - *sent);
        request.push(*answered);
    }
    for s in &streams {
        s.abort();
    }
    let note = format!(
        "from sending POST /workflows/{{id}}/runs to A until the stream delivers run.started; {} samples 25 ms apart; the POST itself took p50 {:.1} ms",
        started.len(),
        request.quantile_ms(0.5).unwrap_or(0.0)
    );
    for (variant, s) in [
        ("event on another server's stream", &other),
        ("event on the same server's stream", &same),
    ] {
        report.rows.push(Row {
            workload: "fleet".into(),
            variant: variant.into(),
            p50_ms: s.quantile_ms(0.5),
            p99_ms: s.quantile_ms(0.99),
            items: s.0.len() as u64,
            note: Some(note.clone()),
            ..Row::default()
        });
    }

    // Claims: one waits on B; the run starts on A.
    let drain = post(&client, format!("{b}/worker/claim"), key,
        json!({"worker_id": "drain", "handler_types": [handler], "limit": 1000, "lease_ms": 60000, "wait_ms": 0})).await?;
    complete_all(&client, b, key, &drain).await?;
    let mut woken = Samples::default();
    for _ in 0..samples.min(100) {
        let waiting = waiting_claim(&client, b, key, &handler, "waiting".into(), 10_000);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let sent = Instant::now();
        post(&client, runs_url.clone(), key, json!({})).await?;
        let (at, claimed) = waiting
            .await
            .map_err(|e| fail(format!("claim task: {e}")))?;
        let claimed = claimed?;
        if claimed.as_array().map_or(0, Vec::len) != 1 {
            return Err(fail(format!("the waiting claim took {claimed}")));
        }
        woken.push(at - sent);
        complete_all(&client, b, key, &claimed).await?;
    }
    report.rows.push(Row {
        workload: "fleet".into(),
        variant: "claim wake-up on another server".into(),
        p50_ms: woken.quantile_ms(0.5),
        p99_ms: woken.quantile_ms(0.99),
        items: woken.0.len() as u64,
        note: Some("a claim waits on B with nothing to take; from sending the run's start to A until B's claim answers with its task".into()),
        ..Row::default()
    });

    // Idle waiting workers: what the database does meanwhile.
    if let Raw::Postgres(pool) = &target.raw {
        let idle = opts.workers.max(1) * 8;
        // Two seconds a round: long enough for the waits' safety polls to show.
        let span = Duration::from_secs(2 * u64::from(opts.rounds.clamp(1, 10)));
        let quiet = transactions_per_second(pool, span).await?;
        let waiting: Vec<_> = (0..idle)
            .map(|i| waiting_claim(&client, b, key, &handler, format!("idle-{i}"), 30_000))
            .collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let busy = transactions_per_second(pool, span).await?;
        for w in waiting {
            w.abort();
        }
        report.rows.push(Row {
            workload: "fleet".into(),
            variant: format!("{idle} idle waiting claims"),
            rate: Some(busy),
            rate_unit: Some("xacts/s".into()),
            items: u64::from(idle),
            note: Some(format!(
                "pg_stat_database transactions per second over {} s while {idle} claims wait on B with nothing to take; {quiet:.1}/s with none waiting (the servers' own maintenance, feed and announcements)",
                span.as_secs()
            )),
            ..Row::default()
        });
    }
    Ok(())
}

/// Registers `handler` on `base` and makes an active workflow of one step it runs;
/// answers the URL that starts its runs.
pub(crate) async fn one_step_workflow(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    handler: &str,
) -> StoreResult<String> {
    post(
        client,
        format!("{base}/handlers"),
        key,
        json!({"handler_type": handler, "handler_name": handler}),
    )
    .await?;
    let wf = post(
        client,
        format!("{base}/workflows"),
        key,
        json!({"name": handler, "status": "active",
               "definition": {"steps": [{"key": "only", "handler": handler}]}}),
    )
    .await?;
    let id = wf["id"]
        .as_str()
        .ok_or_else(|| fail(format!("a workflow answered without an id: {wf}")))?;
    Ok(format!("{base}/workflows/{id}/runs"))
}

/// A claim of one task of `handler` on `base` that waits up to `wait_ms`; answers
/// when it returned, and what.
fn waiting_claim(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    handler: &str,
    worker: String,
    wait_ms: u64,
) -> tokio::task::JoinHandle<(Instant, StoreResult<Value>)> {
    let (client, url, key) = (
        client.clone(),
        format!("{base}/worker/claim"),
        key.to_string(),
    );
    let body = json!({"worker_id": worker, "handler_types": [handler], "limit": 1,
        "lease_ms": 60000, "wait_ms": wait_ms});
    tokio::spawn(async move {
        let claimed = post(&client, url, &key, body).await;
        (Instant::now(), claimed)
    })
}

/// Completes every task of a claim's answer on `base`.
async fn complete_all(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    claimed: &Value,
) -> StoreResult<()> {
    for t in claimed.as_array().into_iter().flatten() {
        post(
            client,
            format!("{base}/worker/complete"),
            key,
            json!({"task_id": t["task_id"], "attempt": t["attempt"], "output": {}}),
        )
        .await?;
    }
    Ok(())
}

/// Transactions per second the database counts over `span`.
async fn transactions_per_second(pool: &sqlx::PgPool, span: Duration) -> StoreResult<f64> {
    async fn count(pool: &sqlx::PgPool) -> StoreResult<i64> {
        // The statistics of the other sessions reach the view within a second.
        sqlx::query_scalar(
            "SELECT (xact_commit + xact_rollback)::int8 FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(pool)
        .await
        .map_err(super::db_err)
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = count(pool).await?;
    let started = Instant::now();
    tokio::time::sleep(span).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = count(pool).await?;
    // The two counting transactions themselves are not the servers'.
    Ok((after - before - 1).max(0) as f64
        / (started.elapsed() - Duration::from_millis(1100)).as_secs_f64())
}
