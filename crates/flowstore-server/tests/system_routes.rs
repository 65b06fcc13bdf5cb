//! System metrics (record, list by time range and cursor), component changes, and
//! the database pool's connections in `/metrics`: success and failure. On SQLite and
//! PostgreSQL.

use std::sync::Arc;

use flowstore_core::Backend;
use flowstore_testkit::{both_backends, TestApp};
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
    let c = TestApp::new(b).await;
    let sample = |name: &str, v: f64, component: Option<&str>| {
        json!({"metric_name": name, "metric_value": v, "metric_unit": "%",
                "component": component, "labels": {"host": "h1"}})
    };
    let first = c
        .admin()
        .record_metrics(sample("cpu", 10.0, Some("api")))
        .await
        .want(201);
    assert_eq!(
        (first["metric_unit"].clone(), first["labels"].clone()),
        (json!("%"), json!({"host": "h1"}))
    );
    for (n, v, comp) in [
        ("mem", 50.0, None),
        ("cpu", 20.0, Some("api")),
        ("cpu", 30.0, Some("worker")),
    ] {
        c.admin().record_metrics(sample(n, v, comp)).await.want(201);
    }
    // writes are an admin's; bad samples name their field
    c.user()
        .record_metrics(sample("cpu", 1.0, None))
        .await
        .want(403);
    let e = c
        .admin()
        .record_metrics(sample(" ", 1.0, None))
        .await
        .want(422);
    assert_eq!(e["field"], "metric_name");
    let labels = Some(json!({"metric_name": "x", "metric_value": 1, "labels": [1]}));
    assert_eq!(
        c.admin()
            .send("POST", "/api/v1/system-metrics", labels)
            .await
            .want(422)["field"],
        "labels"
    );
    let unknown =
        json!({"metric_name": "x", "metric_value": 1, "recorded_at": "2020-01-01T00:00:00Z"});
    c.admin().record_metrics(unknown).await.want(422);

    // newest first, by cursor; every key may read
    let p1 = c
        .user()
        .get("/api/v1/system-metrics?limit=3")
        .await
        .want(200);
    assert_eq!(names(&p1), ["cpu=30.0", "cpu=20.0", "mem=50.0"]);
    let cur = p1["next_cursor"].as_str().unwrap();
    let p2 = c
        .user()
        .get(&format!("/api/v1/system-metrics?limit=3&cursor={cur}"))
        .await
        .want(200);
    assert_eq!(names(&p2), ["cpu=10.0"]);
    assert!(p2["next_cursor"].is_null());
    let cpu = c
        .user()
        .get("/api/v1/system-metrics?name=cpu&component=api")
        .await
        .want(200);
    assert_eq!(names(&cpu), ["cpu=20.0", "cpu=10.0"]);
    // time range: [since, until)
    let at = first["recorded_at"].as_str().unwrap().replace('+', "%2B");
    let since = c
        .user()
        .get(&format!("/api/v1/system-metrics?name=cpu&since={at}"))
        .await
        .want(200);
    assert_eq!(names(&since).len(), 3);
    let until = c
        .user()
        .get(&format!("/api/v1/system-metrics?name=cpu&until={at}"))
        .await
        .want(200);
    assert!(names(&until).is_empty(), "until is exclusive");
    let later = c
        .user()
        .get("/api/v1/system-metrics?since=2999-01-01T00:00:00Z")
        .await
        .want(200);
    assert!(names(&later).is_empty());
    let e = c
        .user()
        .get("/api/v1/system-metrics?since=2020-01-02T00:00:00Z&until=2020-01-01T00:00:00Z")
        .await
        .want(422);
    assert_eq!(e["field"], "until");
    for (query, field) in [
        ("since=yesterday", "since"),
        ("limit=100000", "limit"),
        ("cursor=zz", "cursor"),
    ] {
        let path = format!("/api/v1/system-metrics?{query}");
        assert_eq!(c.user().get(&path).await.want(422)["field"], field);
    }
    c.user()
        .get("/api/v1/system-metrics?bogus=1")
        .await
        .want(422);
}

async fn component_patch(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let comp = c
        .user()
        .create_component(json!({"name": "worker-1", "type": "worker", "version": "1.0"}))
        .await
        .want(201);
    let id = comp["id"].as_str().unwrap();
    let patch =
        json!({"version": "1.1", "endpoints": {"http": "http://w1:8080"}, "status": "maintenance"});
    let by_name = c
        .admin()
        .patch("/api/v1/components/worker-1", patch)
        .await
        .want(200);
    assert_eq!(
        (
            by_name["version"].clone(),
            by_name["status"].clone(),
            by_name["endpoints"]["http"].clone()
        ),
        (json!("1.1"), json!("maintenance"), json!("http://w1:8080"))
    );
    let cleared = c
        .admin()
        .patch(
            &format!("/api/v1/components/{id}"),
            json!({"version": null}),
        )
        .await
        .want(200);
    assert!(cleared["version"].is_null());
    assert_eq!(cleared["status"], "maintenance", "absent fields stay");
    let got = c
        .user()
        .get(&format!("/api/v1/components/{id}"))
        .await
        .want(200);
    assert_eq!(got["endpoints"]["http"], "http://w1:8080");
    // failures
    c.admin()
        .patch("/api/v1/components/nope", json!({"version": "2"}))
        .await
        .want(404);
    for key in [&c.viewer, &c.user] {
        c.by(key)
            .patch("/api/v1/components/worker-1", json!({"version": "2"}))
            .await
            .want(403);
    }
    c.admin()
        .patch("/api/v1/components/worker-1", json!({"name": "w2"}))
        .await
        .want(422);
    let e = c
        .admin()
        .patch("/api/v1/components/worker-1", json!({"status": "sleepy"}))
        .await
        .want(422);
    assert_eq!(e["field"], "status");
    let e = c
        .admin()
        .patch("/api/v1/components/worker-1", json!({"endpoints": [1]}))
        .await
        .want(422);
    assert_eq!(e["field"], "endpoints");
}

async fn pool_connections_are_scraped(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
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
