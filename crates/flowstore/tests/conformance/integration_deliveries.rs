//! Conformance tests for webhook deliveries: outbox events fan out once, past a
//! persisted cursor, to the active webhooks that subscribe to them; claims, retries
//! with backoff, success and giving up; deletes cascade.

use flowstore_testkit::fixtures::execute;
use std::time::Duration;

use flowstore::ids::WebhookId;
use flowstore::model::integration::{
    AttemptResult, DeliveryStatus, NewDelivery, NewWebhook, RetryPolicy,
};
use flowstore::model::workflow::NewWorkflow;
use flowstore::{time, PageRequest, Store};
use serde_json::json;

use crate::conformance::integration::{count_where, webhook};
use crate::conformance::raw::uuid_lit;
use flowstore_testkit::fixtures::user_id;

conformance!(
    events_fan_out_once_to_matching_webhooks,
    deliveries_retry_then_succeed_or_die,
    deleting_a_webhook_deletes_its_deliveries,
);

/// Appends an outbox event with `seq` as the engine would (now, numbered).
async fn event(store: &Store, seq: i64, event_type: &str, workflow_id: Option<String>) {
    let wf = workflow_id.map_or("NULL".to_string(), |w| format!("'{w}'"));
    let now = time::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
    execute(
        store,
        &format!(
            "INSERT INTO events (seq, event_type, workflow_id, payload, created_at)
             VALUES ({seq}, '{event_type}', {wf}, '{{\"n\": {seq}}}', '{now}')"
        ),
    )
    .await;
}

async fn fan_out_all(store: &Store, limit: u32) -> u64 {
    let mut queued = 0;
    loop {
        let mut tx = store.begin().await.unwrap();
        let f = tx.fan_out_events(limit).await.unwrap();
        tx.commit().await.unwrap();
        queued += f.deliveries;
        if f.events == 0 {
            return queued;
        }
    }
}

async fn deliveries_of(store: &Store, id: WebhookId) -> Vec<i64> {
    let mut tx = store.begin_read().await.unwrap();
    let page = tx
        .list_deliveries(id, None, &PageRequest::first(1000))
        .await
        .unwrap();
    let mut seqs: Vec<i64> = page.items.iter().filter_map(|d| d.event_seq).collect();
    seqs.sort();
    seqs
}

async fn events_fan_out_once_to_matching_webhooks(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let ada = user_id(&mut tx, "ada@example.com").await;
    let wf = tx
        .create_workflow(NewWorkflow {
            name: "deploy".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let runs = tx
        .create_webhook(webhook("https://a.example.com/", Some(ada), &["run.*"]))
        .await
        .unwrap()
        .webhook;
    let done = tx
        .create_webhook(webhook(
            "https://b.example.com/",
            Some(ada),
            &["task.completed"],
        ))
        .await
        .unwrap()
        .webhook;
    let off = tx
        .create_webhook(NewWebhook {
            active: Some(false),
            ..webhook("https://c.example.com/", None, &["*"])
        })
        .await
        .unwrap()
        .webhook;
    let only_wf = tx
        .create_webhook(NewWebhook {
            workflow_id: Some(wf.id),
            ..webhook("https://d.example.com/", None, &["*"])
        })
        .await
        .unwrap()
        .webhook;
    tx.commit().await.unwrap();

    event(&store, 1, "run.started", Some(wf.id.to_string())).await;
    event(&store, 2, "task.completed", Some("another".into())).await;
    event(&store, 3, "task.failed", None).await;
    let mut tx = store.begin().await.unwrap();
    let later = tx
        .create_webhook(webhook("https://e.example.com/", None, &["*"]))
        .await
        .unwrap()
        .webhook;
    assert_eq!(tx.webhook_cursor().await.unwrap(), 0);
    let first = tx.fan_out_events(2).await.unwrap();
    assert_eq!((first.events, first.deliveries, first.cursor), (2, 3, 2));
    tx.commit().await.unwrap();
    assert_eq!(fan_out_all(&store, 10).await, 0, "seq 3 matches no one");
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.webhook_cursor().await.unwrap(), 3, "the cursor is kept");
    tx.commit().await.unwrap();

    assert_eq!(deliveries_of(&store, runs.id).await, vec![1]);
    assert_eq!(deliveries_of(&store, done.id).await, vec![2]);
    assert_eq!(deliveries_of(&store, off.id).await, Vec::<i64>::new());
    assert_eq!(deliveries_of(&store, only_wf.id).await, vec![1]);
    assert_eq!(
        deliveries_of(&store, later.id).await,
        Vec::<i64>::new(),
        "a webhook gets only what happens after it exists"
    );
    let mut tx = store.begin_read().await.unwrap();
    let d = &tx
        .list_deliveries(runs.id, None, &PageRequest::first(5))
        .await
        .unwrap()
        .items[0];
    assert_eq!(d.status, DeliveryStatus::Pending);
    assert_eq!((d.attempts, d.event_type.as_str()), (0, "run.started"));
    assert_eq!(d.payload["id"], "1");
    assert_eq!(d.payload["type"], "run.started");
    assert_eq!(d.payload["workflow_id"], wf.id.to_string());
    assert_eq!(d.payload["data"], json!({"n": 1}));
    drop(tx);

    // Four dispatchers fanning out at once still queue each event once. (The events
    // name a workflow that is no stored one, so ada may read them; an event about
    // nothing at all goes to admins' webhooks only.)
    for seq in 4..=40 {
        event(&store, seq, "task.completed", Some("another".into())).await;
    }
    let mut racers = Vec::new();
    for _ in 0..4 {
        let s = store.clone();
        racers.push(tokio::spawn(async move { fan_out_all(&s, 3).await }));
    }
    let mut queued = 0;
    for r in racers {
        queued += r.await.unwrap();
    }
    assert_eq!(queued, 2 * 37, "later and done each get 37 events, once");
    assert_eq!(deliveries_of(&store, done.id).await.len(), 38);
    assert_eq!(
        deliveries_of(&store, later.id).await,
        (4..=40).collect::<Vec<_>>()
    );
}

async fn deliveries_retry_then_succeed_or_die(store: Store) {
    let policy = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_secs(60),
        max_delay: Duration::from_secs(600),
    };
    let mut tx = store.begin().await.unwrap();
    let h = tx
        .create_webhook(NewWebhook {
            headers: Some(json!({"X-Team": "ops"})),
            ..webhook("https://a.example.com/in", None, &["*"])
        })
        .await
        .unwrap();
    let d = tx
        .record_delivery(NewDelivery::test(h.webhook.id, time::now()))
        .await
        .unwrap();
    assert_eq!(
        (d.status, d.attempts, d.event_seq),
        (DeliveryStatus::Pending, 0, None)
    );
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let claimed = tx
        .claim_deliveries(10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    assert_eq!((c.delivery.id, c.delivery.attempts), (d.id, 1));
    assert_eq!(c.url, "https://a.example.com/in");
    assert_eq!(c.headers.get("X-Team").map(String::as_str), Some("ops"));
    assert_eq!(c.secret.expose(), h.secret.expose());
    assert!(
        tx.claim_deliveries(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "a claimed delivery is not claimed again while it is being sent"
    );
    let failed = tx
        .finish_delivery(
            d.id,
            1,
            AttemptResult {
                response_code: Some(500),
                response_body: Some("boom".into()),
                error: None,
            },
            &policy,
        )
        .await
        .unwrap();
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert_eq!(failed.response_code, Some(500));
    assert_eq!(failed.response_body.as_deref(), Some("boom"));
    assert_eq!(
        failed.error.as_deref(),
        Some("the receiver answered HTTP 500")
    );
    let next = failed.next_attempt_at.unwrap();
    assert!(
        next >= time::now() + chrono::TimeDelta::seconds(29),
        "backoff"
    );
    assert_eq!(tx.get_webhook(h.webhook.id).await.unwrap().failure_count, 1);
    assert_err!(
        tx.finish_delivery(d.id, 1, AttemptResult::default(), &policy)
            .await,
        Conflict,
        "attempt"
    );
    assert!(tx
        .claim_deliveries(10, Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());
    tx.commit().await.unwrap();

    // Once due, it is retried; a 2xx ends it.
    execute(
        &store,
        &format!(
            "UPDATE webhook_deliveries SET next_attempt_at = '2000-01-01T00:00:00.000000Z'
              WHERE id = {}",
            uuid_lit(&store, d.id.0)
        ),
    )
    .await;
    let mut tx = store.begin().await.unwrap();
    let again = tx
        .claim_deliveries(10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again[0].delivery.attempts, 2);
    let ok = tx
        .finish_delivery(
            d.id,
            2,
            AttemptResult {
                response_code: Some(204),
                ..Default::default()
            },
            &policy,
        )
        .await
        .unwrap();
    assert_eq!(
        (ok.status, ok.next_attempt_at),
        (DeliveryStatus::Succeeded, None)
    );
    assert_eq!((ok.response_code, ok.error), (Some(204), None));
    let hook = tx.get_webhook(h.webhook.id).await.unwrap();
    assert_eq!(hook.failure_count, 0);
    assert!(hook.last_triggered_at.is_some());

    // Attempts exhausted: dead.
    let e = tx
        .record_delivery(NewDelivery::test(h.webhook.id, time::now()))
        .await
        .unwrap();
    tx.claim_deliveries(10, Duration::from_secs(60))
        .await
        .unwrap();
    let one = RetryPolicy {
        max_attempts: 1,
        ..policy.clone()
    };
    let dead = tx
        .finish_delivery(
            e.id,
            1,
            AttemptResult {
                error: Some("connection refused".into()),
                ..Default::default()
            },
            &one,
        )
        .await
        .unwrap();
    assert_eq!(
        (dead.status, dead.next_attempt_at),
        (DeliveryStatus::Dead, None)
    );
    assert_eq!(dead.error.as_deref(), Some("connection refused"));
    assert_eq!(dead.response_code, None);
    let listed = tx
        .list_deliveries(
            h.webhook.id,
            Some(DeliveryStatus::Dead),
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(
        listed.items.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![e.id]
    );
    let all = tx
        .list_deliveries(h.webhook.id, None, &PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(all.items[0].id, e.id, "newest first");
    assert!(all.next_cursor.is_some());
    assert_eq!(
        tx.get_delivery(d.id).await.unwrap().status,
        DeliveryStatus::Succeeded
    );

    // An inactive webhook's deliveries wait.
    tx.update_webhook(
        h.webhook.id,
        flowstore::model::integration::WebhookPatch {
            active: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.record_delivery(NewDelivery::test(h.webhook.id, time::now()))
        .await
        .unwrap();
    assert!(tx
        .claim_deliveries(10, Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());
    assert_err!(
        tx.list_deliveries(WebhookId::new(), None, &PageRequest::first(10))
            .await,
        NotFound
    );
    assert_err!(
        tx.record_delivery(NewDelivery::test(WebhookId::new(), time::now()))
            .await,
        Invalid,
        "webhook_id"
    );
    tx.commit().await.unwrap();
}

async fn deleting_a_webhook_deletes_its_deliveries(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let h = tx
        .create_webhook(webhook("https://a.example.com/", None, &["*"]))
        .await
        .unwrap()
        .webhook;
    let keep = tx
        .create_webhook(webhook("https://b.example.com/", None, &["*"]))
        .await
        .unwrap()
        .webhook;
    for id in [h.id, h.id, keep.id] {
        tx.record_delivery(NewDelivery::test(id, time::now()))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let of = |id: WebhookId| format!("webhook_id = {}", uuid_lit(&store, id.0));
    assert_eq!(
        count_where(&store, "webhook_deliveries", &of(h.id)).await,
        2
    );
    let mut tx = store.begin().await.unwrap();
    tx.delete_webhook(h.id).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        count_where(&store, "webhook_deliveries", &of(h.id)).await,
        0
    );
    assert_eq!(
        count_where(&store, "webhook_deliveries", &of(keep.id)).await,
        1
    );
}
