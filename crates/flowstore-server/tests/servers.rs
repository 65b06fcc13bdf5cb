//! Several servers on one database: what one commits reaches the others through the
//! database's change feed (`Backend::listen`), not through their polls. Each test
//! sets the polls far beyond its own wait, so only the feed can make it pass: on
//! PostgreSQL two backends hear each other through LISTEN/NOTIFY, on SQLite two
//! backends of this process on one file tell each other of their commits.

use std::time::Duration;

use flowstore_core::model::identity::Role;
use flowstore_server::{serve, AppState, ServerConfig};
use flowstore_testkit::{TestApp, TestDb};
use serde_json::json;

flowstore_testkit::__per_backend!(pooled; db => &db;
    a_waiting_claim_wakes_when_another_server_makes_work,
    an_event_stream_hears_what_another_server_commits,
    a_key_revoked_on_one_server_stops_working_on_another,
    a_demoted_users_key_loses_the_role_on_every_server,
    the_scrape_tells_the_feed_the_schema_and_the_waits,
    health_reports_the_time_build_pool_and_schema,
    a_server_without_the_key_names_it_instead_of_failing
);

/// Polls that never come within a test: a wake-up can only come from the feed.
fn no_polling() -> ServerConfig {
    ServerConfig {
        poll_interval: Duration::from_secs(120),
        safety_poll_interval: Duration::from_secs(120),
        key_cache_ttl: Duration::from_secs(3600),
        ..ServerConfig::default()
    }
}

/// A server on `db` that hears the others.
async fn listening_app(db: &TestDb) -> TestApp {
    let backend = db.backend().await;
    let state = AppState::with_config(backend.clone(), no_polling());
    state.listen_for_changes();
    TestApp::with_state(state, backend).await
}

async fn workflow(c: &TestApp) -> String {
    c.shell_handler().await;
    let body = json!({"name": "build", "status": "active",
        "definition": {"steps": [{"key": "a", "handler": "shell"}]}});
    c.user().create_workflow(body).await.want_id(201)
}

async fn a_waiting_claim_wakes_when_another_server_makes_work(db: &TestDb) {
    let a = listening_app(db).await;
    let b = listening_app(db).await;
    let wf = workflow(&a).await;
    // B's worker waits (30 s at most) with nothing to claim; its own poll would
    // come only after two minutes.
    let b_key = b.user.clone();
    let waiting = tokio::spawn(async move {
        b.by(&b_key)
            .claim(
                json!({"worker_id": "w", "handler_types": ["shell"], "limit": 1,
                "lease_ms": 30000, "wait_ms": 30000}),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.user().start_run(&wf, json!({})).await.want(201);
    // Woken, the claim answers long before its own 30 s wait would end it.
    let claimed = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the claim on B was woken by A's run")
        .unwrap()
        .want(200);
    let tasks = claimed.as_array().expect("a list of claimed tasks");
    assert_eq!(
        tasks.len(),
        1,
        "the claim waiting on B was woken by A's new run and took its task: {claimed}"
    );
}

async fn an_event_stream_hears_what_another_server_commits(db: &TestDb) {
    let a = listening_app(db).await;
    let wf = workflow(&a).await;
    // B is a real server (which starts listening as it starts) with an open stream.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let b = AppState::with_config(db.backend().await, no_polling());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, b, async move {
        let _ = stopped.await;
    }));
    let mut stream = reqwest::Client::new()
        .get(format!("{base}/api/v1/events"))
        .bearer_auth(&a.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.user().start_run(&wf, json!({})).await.want(201);
    let mut heard = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !heard.contains("run.started") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("B's stream heard A's run within 20 s, long before its poll")
            .unwrap()
            .expect("the stream stays open");
        heard.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stream);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

async fn a_key_revoked_on_one_server_stops_working_on_another(db: &TestDb) {
    let a = listening_app(db).await;
    let b = listening_app(db).await;
    let created = a
        .admin()
        .create_api_key(json!({"name": "ci"}))
        .await
        .want(201);
    let (id, key) = (
        created["api_key"]["id"].as_str().unwrap().to_string(),
        created["key"].as_str().unwrap().to_string(),
    );
    // B has looked the key up and keeps it for an hour unless told otherwise.
    b.by(&key).get("/api/v1/projects").await.want(200);
    a.admin().delete_api_key(&id).await.want(204);
    let mut status = 200;
    for _ in 0..200 {
        status = b.by(&key).get("/api/v1/projects").await.code();
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status, 401,
        "B refused the key A revoked, without waiting for its cache time"
    );
}

async fn a_demoted_users_key_loses_the_role_on_every_server(db: &TestDb) {
    let a = listening_app(db).await;
    let b = listening_app(db).await;
    let (ada, key) = a.user_key(Role::Admin, "ada@example.com").await;
    // Another admin, so that Ada is not the last one and may be demoted.
    a.user_key(Role::Admin, "grace@example.com").await;
    b.by(&key).list_users().await.want(200);
    a.admin()
        .update_user(&ada, json!({"role": "viewer"}))
        .await
        .want(200);
    // The key was made with the admin role; it never does more than its user may
    // do now, on the server that demoted her at once and on B as soon as it hears.
    a.by(&key).list_users().await.want(403);
    a.by(&key).get("/api/v1/projects").await.want(200);
    let mut status = 200;
    for _ in 0..200 {
        status = b.by(&key).list_users().await.code();
        if status == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 403, "B lowered the key to its user's new role");
    b.by(&key).get("/api/v1/projects").await.want(200);
}

/// `/metrics` tells whether the feed is live, the build, the schema known and
/// applied, and the claims waiting and streams open now.
async fn the_scrape_tells_the_feed_the_schema_and_the_waits(db: &TestDb) {
    let scrape = |c: &TestApp| {
        let router = c.router.clone();
        async move {
            use tower::ServiceExt;
            let r = router
                .oneshot(
                    axum::http::Request::get("/metrics")
                        .body(axum::body::Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        }
    };
    let value = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().parse().unwrap())
    };
    let quiet = TestApp::with_config(db.backend().await, no_polling()).await;
    let text = scrape(&quiet).await;
    assert_eq!(
        value(&text, "flowstore_change_feed_live"),
        Some(0.0),
        "{text}"
    );
    let newest = quiet
        .backend
        .migrations()
        .iter()
        .map(|m| m.version as f64)
        .fold(0.0, f64::max);
    assert_eq!(
        value(&text, "flowstore_schema_version{which=\"known\"}"),
        Some(newest)
    );
    assert_eq!(
        value(&text, "flowstore_schema_version{which=\"applied\"}"),
        Some(newest)
    );
    assert!(
        text.contains(&format!(
            "flowstore_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert_eq!(value(&text, "flowstore_waiting_claims"), Some(0.0));
    assert_eq!(value(&text, "flowstore_event_streams"), Some(0.0));
    assert_eq!(
        value(&text, "flowstore_webhook_deliveries{status=\"pending\"}"),
        Some(0.0)
    );
    // A delivery waiting to be sent is counted, with its age.
    crate::webhook_destinations::webhook_with_a_delivery(
        &quiet.backend,
        "ops",
        "https://a.example.com/in",
    )
    .await;
    let text = scrape(&quiet).await;
    assert_eq!(
        value(&text, "flowstore_webhook_deliveries{status=\"pending\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "flowstore_webhook_deliveries{status=\"dead\"}"),
        Some(0.0)
    );
    assert!(value(&text, "flowstore_webhook_oldest_pending_seconds").unwrap() >= 0.0);
    let b = listening_app(db).await;
    let key = b.user.clone();
    let waiting = tokio::spawn({
        let router = b.router.clone();
        async move {
            use tower::ServiceExt;
            let body = json!({"worker_id": "w", "handler_types": ["shell"], "limit": 1,
                "lease_ms": 30000, "wait_ms": 1500});
            router
                .oneshot(
                    axum::http::Request::post("/api/v1/worker/claim")
                        .header("authorization", format!("Bearer {key}"))
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(body.to_string()))
                        .unwrap(),
                )
                .await
                .unwrap()
                .status()
        }
    });
    // PostgreSQL's feed hears every server, so the waits may poll rarely while it
    // is live; SQLite's hears only the backends of this process, never live.
    let live = match db {
        TestDb::Postgres(_) | TestDb::Pooled(_) => 1.0,
        TestDb::Sqlite(_) => 0.0,
    };
    let mut text = scrape(&b).await;
    for _ in 0..100 {
        if value(&text, "flowstore_change_feed_live") == Some(live)
            && value(&text, "flowstore_waiting_claims") == Some(1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = scrape(&b).await;
    }
    assert_eq!(
        value(&text, "flowstore_change_feed_live"),
        Some(live),
        "{text}"
    );
    assert_eq!(
        value(&text, "flowstore_waiting_claims"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(waiting.await.unwrap(), 200);
    assert_eq!(
        value(&scrape(&b).await, "flowstore_waiting_claims"),
        Some(0.0)
    );
    // A run's events wait for their number where numbering follows the commit (no
    // maintenance numbers them on this server), and for the webhook fan-out.
    let wf = workflow(&quiet).await;
    quiet.user().start_run(&wf, json!({})).await.want(201);
    let text = scrape(&quiet).await;
    let unnumbered = value(&text, "flowstore_events_unnumbered").unwrap();
    let behind = value(&text, "flowstore_webhook_events_behind").unwrap();
    if quiet.backend.capabilities().sequences_events {
        assert!(unnumbered >= 1.0, "{text}");
    } else {
        assert_eq!(unnumbered, 0.0, "{text}");
        assert!(behind >= 1.0, "{text}");
    }
    assert!(value(&text, "flowstore_event_lag_seconds").unwrap() >= 0.0);
}

/// `/healthz` and `/readyz` answer seed 002's report: status, the time, the build,
/// the pool's figures, and (`/readyz`, which asks the database) the schema versions.
async fn health_reports_the_time_build_pool_and_schema(db: &TestDb) {
    let c = TestApp::with_config(db.backend().await, no_polling()).await;
    let before = flowstore_core::time::now();
    let alive = c.raw("GET", "/healthz", None, None).await.want(200);
    let ready = c.raw("GET", "/readyz", None, None).await.want(200);
    assert_eq!(
        (alive["status"].as_str(), ready["status"].as_str()),
        (Some("ok"), Some("ready"))
    );
    for r in [&alive, &ready] {
        let at: flowstore_core::time::Timestamp = r["timestamp"].as_str().unwrap().parse().unwrap();
        assert!(at >= before, "{r}");
        assert_eq!(r["version"], env!("CARGO_PKG_VERSION"));
        let (size, idle, in_use, max) = (
            r["pool"]["size"].as_u64().unwrap(),
            r["pool"]["idle"].as_u64().unwrap(),
            r["pool"]["in_use"].as_u64().unwrap(),
            r["pool"]["max"].as_u64().unwrap(),
        );
        assert!(idle + in_use == size && size <= max && max == 8, "{r}");
    }
    assert!(alive.get("schema").is_none(), "{alive}");
    let newest = c
        .backend
        .migrations()
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap();
    assert_eq!(ready["schema"], json!({"known": newest, "applied": newest}));
}

/// With a replica, lists are read from it, except for a caller that wrote through
/// this server within `read_own_writes_for`, which reads its own writes from the
/// primary; single objects are always read from the primary; a replica that cannot
/// be reached leaves the lists to the primary. The "replica" here is a database of
/// its own that never receives the primary's changes: the lag made total, so that
/// where each read went shows in what it finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_read_the_replica_except_the_callers_own_recent_writes() {
    let primary = TestDb::postgres().await;
    let replica = TestDb::postgres().await;
    replica.backend().await;
    let backend = primary.backend_reading(replica.url()).await;
    let config = ServerConfig {
        read_own_writes_for: Duration::from_millis(500),
        ..ServerConfig::default()
    };
    let app = TestApp::with_config(backend.clone(), config).await;
    let other_admin = flowstore_testkit::fixtures::api_key(&backend, Role::Admin).await;
    let wf = workflow(&app).await;
    let names = |page: serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_str().unwrap().to_string())
            .collect()
    };
    // The writer (the user key that made the workflow) reads its own write.
    let own = app.user().list_workflows().await.want(200);
    assert_eq!(names(own), vec![wf.clone()], "read from the primary");
    // Another caller, which wrote nothing, lists from the replica: nothing there.
    let lagging = app.by(&other_admin).list_workflows().await.want(200);
    assert!(names(lagging).is_empty(), "read from the replica");
    // One object is read from the primary whoever asks.
    app.by(&other_admin).get_workflow(&wf).await.want(200);
    // Once the writer's window has passed, its lists lag like anyone's.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = app.user().list_workflows().await.want(200);
    assert!(
        names(later).is_empty(),
        "read from the replica once the window passed"
    );

    // A replica that cannot be reached: the lists are read from the primary.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let unreachable = format!("postgres://postgres@127.0.0.1:{closed}/nothing");
    let backend = primary.backend_reading(&unreachable).await;
    let app = TestApp::new(backend).await;
    let all = app.admin().list_workflows().await.want(200);
    assert_eq!(
        names(all),
        vec![wf.clone()],
        "the primary answered for the replica"
    );
    // It is then left alone for a while: the next list does not wait for it.
    let started = std::time::Instant::now();
    let again = app.admin().list_workflows().await.want(200);
    assert_eq!(names(again), vec![wf]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// A server pointed at a primary that cannot take writes (here the database's
/// `default_transaction_read_only`, as on a standby) is not ready: `/readyz`
/// answers 503 `read-only`, so a load balancer stops sending it work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_cannot_take_writes_is_not_ready() {
    let db = TestDb::postgres().await;
    let TestDb::Postgres(pg) = &db else {
        unreachable!("a PostgreSQL database")
    };
    let c = TestApp::new(db.backend().await).await;
    c.backend
        .execute_raw(&format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            pg.name()
        ))
        .await
        .unwrap();
    // The health connection opens now, under the new setting.
    let answer = c.raw("GET", "/readyz", None, None).await.want(503);
    assert!(
        answer["type"].as_str().unwrap_or("").ends_with("read-only"),
        "{answer}"
    );
}

/// A server given another key than the one a value was sealed with (two servers
/// started on an empty database with different keys) answers 503 `key-missing`
/// naming the key's ID and the settings to fix, never a 500.
async fn a_server_without_the_key_names_it_instead_of_failing(db: &TestDb) {
    let a = TestApp::new(db.backend().await).await;
    let body = json!({"name": "registry", "type": "basic_auth",
        "data": {"user": "ci", "password": "hunter2"}});
    let cred = a.admin().create_credential(body).await.want_id(201);
    let other = db
        .store_with(|s| s.encryption_key = Some("ab".repeat(32)))
        .await;
    let b = TestApp::new(other.backend_arc()).await;
    let refused = b
        .admin()
        .post_empty(&format!("/api/v1/credentials/{cred}/reveal"))
        .await
        .want(503);
    assert!(
        refused["type"]
            .as_str()
            .unwrap_or("")
            .ends_with("key-missing"),
        "{refused}"
    );
    let detail = refused["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("ENCRYPTION_KEY") && detail.contains("FLOWSTORE_KEY_FILE"),
        "{refused}"
    );
    let answer = a
        .admin()
        .post_empty(&format!("/api/v1/credentials/{cred}/reveal"))
        .await
        .want(200);
    assert_eq!(answer["data"]["password"], "hunter2");
}
