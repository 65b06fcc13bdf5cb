//! `/metrics` counts slow statements (`flowstore_slow_queries_total`), on both
//! backends, from the process's slow-statement registry.

use std::time::Duration;

use flowstore_testkit::{record_slow_statements, TestApp, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_statements_are_counted_in_metrics_sqlite() {
    slow_statements_are_counted_in_metrics(&TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_statements_are_counted_in_metrics_postgres() {
    slow_statements_are_counted_in_metrics(&TestDb::postgres().await).await;
}

fn slow_total(text: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix("flowstore_slow_queries_total "))
        .unwrap_or_else(|| panic!("flowstore_slow_queries_total in {text}"))
        .trim()
        .parse()
        .unwrap()
}

async fn slow_statements_are_counted_in_metrics(db: &TestDb) {
    record_slow_statements();
    let store = db
        .store_with(|s| s.slow_query_threshold = Some(Duration::from_millis(1)))
        .await;
    let app = TestApp::new(store.backend_arc()).await;
    let before = app.raw("GET", "/metrics", None, None).await;
    assert_eq!(before.status, 200);
    let before = before.body.as_str().unwrap().to_string();
    assert!(
        before.contains("# TYPE flowstore_slow_queries_total counter"),
        "{before}"
    );
    // A million steps of a recursive CTE: over a millisecond on either database.
    store
        .backend()
        .execute_raw(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) \
             SELECT count(*) FROM c",
        )
        .await
        .unwrap();
    let after = app.raw("GET", "/metrics", None, None).await;
    let after = after.body.as_str().unwrap().to_string();
    assert!(
        slow_total(&after) > slow_total(&before),
        "the slow statement is counted: {after}"
    );
}
