//! System metrics (record, list by time range and cursor), component changes, and
//! the database pool's connections in `/metrics`: success and failure. On SQLite and
//! PostgreSQL.

#[macro_use]
mod common;

use std::sync::Arc;

use common::{ok, Client};
use flowstore_core::Backend;
use serde_json::{json, Value};

both_backends!(
    system_metrics,
    component_patch,
    pool_connections_are_scraped
);

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}={}",
                m["metric_name"].as_str().unwrap(),
                m["metric_value"]
            )
        })
        .collect()
}

async fn system_metrics(b: Arc<dyn Backend>) {
    let c = Client::new(b).await;
    let sample = |name: &str, v: f64, component: Option<&str>| {
        Some(
            json!({"metric_name": name, "metric_value": v, "metric_unit": "%",
                    "component": component, "labels": {"host": "h1"}}),
        )
    };
    let first = ok(
        &c,
        "POST",
        "/api/v1/system-metrics",
        &c.admin,
        sample("cpu", 10.0, Some("api")),
        201,
    )
    .await;
    assert_eq!(
        (first["metric_unit"].clone(), first["labels"].clone()),
        (json!("%"), json!({"host": "h1"}))
    );
    for (n, v, comp) in [
        ("mem", 50.0, None),
        ("cpu", 20.0, Some("api")),
        ("cpu", 30.0, Some("worker")),
    ] {
        ok(
            &c,
            "POST",
            "/api/v1/system-metrics",
            &c.admin,
            sample(n, v, comp),
            201,
        )
        .await;
    }
    // writes are an admin's; bad samples name their field
    ok(
        &c,
        "POST",
        "/api/v1/system-metrics",
        &c.user,
        sample("cpu", 1.0, None),
        403,
    )
    .await;
    let e = ok(
        &c,
        "POST",
        "/api/v1/system-metrics",
        &c.admin,
        sample(" ", 1.0, None),
        422,
    )
    .await;
    assert_eq!(e["field"], "metric_name");
    let labels = Some(json!({"metric_name": "x", "metric_value": 1, "labels": [1]}));
    assert_eq!(
        ok(&c, "POST", "/api/v1/system-metrics", &c.admin, labels, 422).await["field"],
        "labels"
    );
    let unknown =
        Some(json!({"metric_name": "x", "metric_value": 1, "recorded_at": "2020-01-01T00:00:00Z"}));
    ok(&c, "POST", "/api/v1/system-metrics", &c.admin, unknown, 422).await;

    // newest first, by cursor; every key may read
    let p1 = ok(
        &c,
        "GET",
        "/api/v1/system-metrics?limit=3",
        &c.user,
        None,
        200,
    )
    .await;
    assert_eq!(names(&p1), ["cpu=30.0", "cpu=20.0", "mem=50.0"]);
    let cur = p1["next_cursor"].as_str().unwrap();
    let p2 = ok(
        &c,
        "GET",
        &format!("/api/v1/system-metrics?limit=3&cursor={cur}"),
        &c.user,
        None,
        200,
    )
    .await;
    assert_eq!(names(&p2), ["cpu=10.0"]);
    assert!(p2["next_cursor"].is_null());
    let cpu = ok(
        &c,
        "GET",
        "/api/v1/system-metrics?name=cpu&component=api",
        &c.user,
        None,
        200,
    )
    .await;
    assert_eq!(names(&cpu), ["cpu=20.0", "cpu=10.0"]);
    // time range: [since, until)
    let at = first["recorded_at"].as_str().unwrap().replace('+', "%2B");
    let since = ok(
        &c,
        "GET",
        &format!("/api/v1/system-metrics?name=cpu&since={at}"),
        &c.user,
        None,
        200,
    )
    .await;
    assert_eq!(names(&since).len(), 3);
    let until = ok(
        &c,
        "GET",
        &format!("/api/v1/system-metrics?name=cpu&until={at}"),
        &c.user,
        None,
        200,
    )
    .await;
    assert!(names(&until).is_empty(), "until is exclusive");
    let later = ok(
        &c,
        "GET",
        "/api/v1/system-metrics?since=2999-01-01T00:00:00Z",
        &c.user,
        None,
        200,
    )
    .await;
    assert!(names(&later).is_empty());
    let e = ok(
        &c,
        "GET",
        "/api/v1/system-metrics?since=2020-01-02T00:00:00Z&until=2020-01-01T00:00:00Z",
        &c.user,
        None,
        422,
    )
    .await;
    assert_eq!(e["field"], "until");
    assert_eq!(
        ok(
            &c,
            "GET",
            "/api/v1/system-metrics?since=yesterday",
            &c.user,
            None,
            422
        )
        .await["field"],
        "since"
    );
    assert_eq!(
        ok(
            &c,
            "GET",
            "/api/v1/system-metrics?limit=100000",
            &c.user,
            None,
            422
        )
        .await["field"],
        "limit"
    );
    assert_eq!(
        ok(
            &c,
            "GET",
            "/api/v1/system-metrics?cursor=zz",
            &c.user,
            None,
            422
        )
        .await["field"],
        "cursor"
    );
    ok(
        &c,
        "GET",
        "/api/v1/system-metrics?bogus=1",
        &c.user,
        None,
        422,
    )
    .await;
}

async fn component_patch(b: Arc<dyn Backend>) {
    let c = Client::new(b).await;
    let comp = ok(
        &c,
        "POST",
        "/api/v1/components",
        &c.user,
        Some(json!({"name": "worker-1", "type": "worker", "version": "1.0"})),
        201,
    )
    .await;
    let id = comp["id"].as_str().unwrap();
    let patch =
        json!({"version": "1.1", "endpoints": {"http": "http://w1:8080"}, "status": "maintenance"});
    let by_name = ok(
        &c,
        "PATCH",
        "/api/v1/components/worker-1",
        &c.admin,
        Some(patch),
        200,
    )
    .await;
    assert_eq!(
        (
            by_name["version"].clone(),
            by_name["status"].clone(),
            by_name["endpoints"]["http"].clone()
        ),
        (json!("1.1"), json!("maintenance"), json!("http://w1:8080"))
    );
    let cleared = ok(
        &c,
        "PATCH",
        &format!("/api/v1/components/{id}"),
        &c.admin,
        Some(json!({"version": null})),
        200,
    )
    .await;
    assert!(cleared["version"].is_null());
    assert_eq!(cleared["status"], "maintenance", "absent fields stay");
    let got = ok(
        &c,
        "GET",
        &format!("/api/v1/components/{id}"),
        &c.user,
        None,
        200,
    )
    .await;
    assert_eq!(got["endpoints"]["http"], "http://w1:8080");
    // failures
    ok(
        &c,
        "PATCH",
        "/api/v1/components/nope",
        &c.admin,
        Some(json!({"version": "2"})),
        404,
    )
    .await;
    for key in [&c.viewer, &c.user] {
        ok(
            &c,
            "PATCH",
            "/api/v1/components/worker-1",
            key,
            Some(json!({"version": "2"})),
            403,
        )
        .await;
    }
    ok(
        &c,
        "PATCH",
        "/api/v1/components/worker-1",
        &c.admin,
        Some(json!({"name": "w2"})),
        422,
    )
    .await;
    let e = ok(
        &c,
        "PATCH",
        "/api/v1/components/worker-1",
        &c.admin,
        Some(json!({"status": "sleepy"})),
        422,
    )
    .await;
    assert_eq!(e["field"], "status");
    let e = ok(
        &c,
        "PATCH",
        "/api/v1/components/worker-1",
        &c.admin,
        Some(json!({"endpoints": [1]})),
        422,
    )
    .await;
    assert_eq!(e["field"], "endpoints");
}

async fn pool_connections_are_scraped(b: Arc<dyn Backend>) {
    let c = Client::new(b.clone()).await;
    // a transaction held open while scraping is a connection in use
    let held = b.begin_read().await.unwrap();
    let r = c.raw("GET", "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    let text = r.body.as_str().unwrap().to_string();
    let value = |line: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line))
            .unwrap_or_else(|| panic!("{line} in {text}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(
        text.contains("# TYPE flowstore_db_connections gauge"),
        "{text}"
    );
    let in_use = value("flowstore_db_connections{state=\"in_use\"}");
    let idle = value("flowstore_db_connections{state=\"idle\"}");
    let max = value("flowstore_db_connections_max");
    assert!(in_use >= 1.0, "the held transaction is in use: {text}");
    assert!(
        idle >= 0.0 && in_use + idle <= max,
        "{in_use} + {idle} <= {max}"
    );
    assert_eq!(max, 8.0, "the tests' pools hold 8");
    let status = b.pool_status();
    assert!(status.in_use() >= 1);
    drop(held);
}
