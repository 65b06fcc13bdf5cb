//! Conformance tests for the `registry` area: the handler registry, components with
//! their (stale) health, and system metrics.

use flowstore_testkit::fixtures::execute;
use std::time::Duration;

use flowstore::ids::ComponentId;
use flowstore::model::registry::{
    ComponentPatch, ComponentRef, ComponentStatus, HandlerPatch, HealthStatus, Heartbeat,
    NewComponent, NewHandler, NewSystemMetric,
};
use flowstore::{PageRequest, Store, Tx};
use serde_json::json;

conformance!(
    handlers_register_update_deactivate,
    handler_bad_input_and_duplicates,
    handler_pages_cover_every_row_once,
    components_register_patch_and_page,
    component_bad_input_and_duplicates,
    heartbeats_and_stale_health,
    system_metrics_record_and_list,
    system_metric_bad_input,
);

fn handler(t: &str) -> NewHandler {
    NewHandler {
        handler_type: t.into(),
        handler_name: format!("{t} handler"),
        ..Default::default()
    }
}

fn component(name: &str) -> NewComponent {
    NewComponent {
        name: name.into(),
        component_type: "service".into(),
        ..Default::default()
    }
}

/// The types of the active handlers, as listed.
async fn active_types(tx: &mut Box<dyn Tx>) -> Vec<String> {
    tx.list_active_handlers()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.handler_type)
        .collect()
}

async fn handlers_register_update_deactivate(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let h = tx
        .register_handler(NewHandler {
            handler_type: "shell".into(),
            handler_name: "Shell".into(),
            handler_class: Some("ShellHandler".into()),
            handler_path: Some("handlers/shell.js".into()),
            version: Some("1.2.0".into()),
            description: Some("runs commands".into()),
            capabilities: Some(json!(["exec", "timeout"])),
            configuration: Some(json!({"shell": "/bin/sh"})),
            is_active: None,
        })
        .await
        .unwrap();
    assert!(h.is_active, "handlers are active by default");
    tx.register_handler(handler("http")).await.unwrap();
    tx.register_handler(handler("email")).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.get_handler("shell").await.unwrap(), h);
    let patch: HandlerPatch =
        serde_json::from_value(json!({"version": "1.3.0", "description": null})).unwrap();
    let updated = tx.update_handler("shell", patch).await.unwrap();
    assert_eq!(updated.version.as_deref(), Some("1.3.0"));
    assert_eq!(updated.description, None);
    assert_eq!(updated.capabilities, h.capabilities);
    assert!(updated.updated_at >= h.updated_at);
    assert_eq!(tx.get_handler("shell").await.unwrap(), updated);

    let active = active_types(&mut tx).await;
    assert_eq!(
        active,
        ["email", "http", "shell"],
        "ordered by handler_type"
    );

    let off = tx.deactivate_handler("http").await.unwrap();
    assert!(!off.is_active);
    assert!(!tx.get_handler("http").await.unwrap().is_active);
    let active = active_types(&mut tx).await;
    assert_eq!(
        active,
        ["email", "shell"],
        "a deactivated handler is not listed"
    );
    let all = tx.list_handlers(&PageRequest::first(10)).await.unwrap();
    assert_eq!(all.items.len(), 3, "but it is still registered");
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_err!(tx.get_handler("nope").await, NotFound);
    assert_err!(tx.deactivate_handler("nope").await, NotFound);
}

async fn handler_bad_input_and_duplicates(store: Store) {
    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.register_handler(handler("  ")).await,
        Invalid,
        "handler_type"
    );
    assert_err!(
        tx.register_handler(handler(&"t".repeat(256))).await,
        Invalid,
        "handler_type"
    );
    for (bad, field) in [
        (
            NewHandler {
                handler_name: " ".into(),
                ..handler("a")
            },
            "handler_name",
        ),
        (
            NewHandler {
                handler_path: Some("p".repeat(501)),
                ..handler("a")
            },
            "handler_path",
        ),
        (
            NewHandler {
                version: Some("v".repeat(51)),
                ..handler("a")
            },
            "version",
        ),
        (
            NewHandler {
                configuration: Some(json!([1])),
                ..handler("a")
            },
            "configuration",
        ),
    ] {
        assert_err!(tx.register_handler(bad).await, Invalid, field);
    }
    assert!(
        serde_json::from_value::<NewHandler>(
            json!({"handler_type": "a", "handler_name": "A", "bogus": 1})
        )
        .is_err(),
        "unknown fields are refused"
    );
    assert!(tx.list_active_handlers().await.unwrap().is_empty());

    tx.register_handler(handler("dup")).await.unwrap();
    assert_err!(
        tx.register_handler(handler("dup")).await,
        Conflict,
        "handler_type"
    );
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    tx.register_handler(handler("dup")).await.unwrap();
    assert_err!(
        tx.update_handler(
            "dup",
            HandlerPatch {
                handler_name: Some(String::new()),
                ..Default::default()
            }
        )
        .await,
        Invalid,
        "handler_name"
    );
    tx.commit().await.unwrap();
}

async fn handler_pages_cover_every_row_once(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            tx.register_handler(handler(&format!("h{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    tx.commit().await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    let seen: Vec<_> = all_pages!(3, |page| tx.list_handlers(&page))
        .iter()
        .map(|h| h.id)
        .collect();
    ids.reverse();
    assert_eq!(seen, ids, "newest first, every row exactly once");
}

async fn components_register_patch_and_page(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let db = tx.register_component(component("db")).await.unwrap();
    let api = tx
        .register_component(NewComponent {
            version: Some("2.0".into()),
            endpoints: Some(json!({"http": "http://api:8080"})),
            health_check_url: Some("https://api.internal/health".into()),
            dependencies: vec!["db".into()],
            ..component("api")
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db.status, ComponentStatus::Active);
    assert_eq!(db.health_status, HealthStatus::Unknown);
    assert_eq!(db.last_health_check, None);

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.get_component(api.id.into()).await.unwrap(), api);
    assert_eq!(tx.get_component("api".into()).await.unwrap(), api);
    let patch: ComponentPatch = serde_json::from_value(json!({
        "status": "maintenance",
        "version": null,
        "health_check_url": "http://api.internal/healthz",
        "dependencies": ["db", "cache"]
    }))
    .unwrap();
    let updated = tx.update_component(api.id, patch).await.unwrap();
    assert_eq!(updated.status, ComponentStatus::Maintenance);
    assert_eq!(updated.version, None);
    assert_eq!(updated.dependencies, ["db", "cache"]);
    assert_eq!(updated.endpoints, api.endpoints);
    assert_eq!(tx.get_component(api.id.into()).await.unwrap(), updated);

    let page = tx.list_components(&PageRequest::first(1)).await.unwrap();
    assert_eq!(page.items[0].id, api.id, "newest first");
    let cursor = page.next_cursor.expect("a second page");
    let page = tx
        .list_components(&PageRequest::after(cursor, 1))
        .await
        .unwrap();
    assert_eq!(page.items[0].id, db.id);
    assert!(page.next_cursor.is_none());

    tx.delete_component(db.id).await.unwrap();
    assert_err!(tx.get_component(db.id.into()).await, NotFound);
    assert_err!(tx.delete_component(db.id).await, NotFound);
    tx.commit().await.unwrap();
}

async fn component_bad_input_and_duplicates(store: Store) {
    let mut tx = store.begin().await.unwrap();
    assert_err!(tx.register_component(component("")).await, Invalid, "name");
    for (bad, field) in [
        (
            NewComponent {
                component_type: " ".into(),
                ..component("c")
            },
            "type",
        ),
        (
            NewComponent {
                health_check_url: Some("ftp://x/health".into()),
                ..component("c")
            },
            "health_check_url",
        ),
        (
            NewComponent {
                configuration: Some(json!("text")),
                ..component("c")
            },
            "configuration",
        ),
        (
            NewComponent {
                dependencies: vec!["c".into()],
                ..component("c")
            },
            "dependencies",
        ),
        (
            NewComponent {
                dependencies: vec!["a".into(), "a".into()],
                ..component("c")
            },
            "dependencies",
        ),
    ] {
        assert_err!(tx.register_component(bad).await, Invalid, field);
    }
    assert!(
        serde_json::from_value::<ComponentPatch>(json!({"status": "sleeping"})).is_err(),
        "an unknown status is refused"
    );
    assert!(
        serde_json::from_value::<Heartbeat>(json!({"health_status": "fine"})).is_err(),
        "an unknown health status is refused"
    );
    let page = tx.list_components(&PageRequest::first(10)).await.unwrap();
    assert!(page.items.is_empty(), "nothing was written");

    let c = tx.register_component(component("c")).await.unwrap();
    assert_err!(
        tx.register_component(component("c")).await,
        Conflict,
        "name"
    );
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    let c2 = tx.register_component(component("c")).await.unwrap();
    assert_ne!(c.id, c2.id);
    assert_err!(
        tx.heartbeat_component(
            "c".into(),
            Heartbeat {
                health_status: HealthStatus::Healthy,
                performance_metrics: Some(json!([1, 2])),
            }
        )
        .await,
        Invalid,
        "performance_metrics"
    );
    assert_err!(
        tx.heartbeat_component(
            "missing".into(),
            Heartbeat {
                health_status: HealthStatus::Healthy,
                performance_metrics: None,
            }
        )
        .await,
        NotFound
    );
    assert_err!(
        tx.update_component(ComponentId::new(), ComponentPatch::default())
            .await,
        NotFound
    );
}

async fn heartbeats_and_stale_health(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let worker = tx.register_component(component("worker")).await.unwrap();
    tx.register_component(component("silent")).await.unwrap();
    tx.register_component(component("old")).await.unwrap();
    let beat = tx
        .heartbeat_component(
            ComponentRef::Name("worker".into()),
            Heartbeat {
                health_status: HealthStatus::Degraded,
                performance_metrics: Some(json!({"queue": 12})),
            },
        )
        .await
        .unwrap();
    assert_eq!(beat.health_status, HealthStatus::Degraded);
    assert_eq!(beat.performance_metrics, json!({"queue": 12}));
    assert!(beat.last_health_check.is_some());
    tx.heartbeat_component(
        "old".into(),
        Heartbeat {
            health_status: HealthStatus::Healthy,
            performance_metrics: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // "old" reported long ago: its heartbeat is stale whatever it said.
    let n = execute(
        &store,
        "UPDATE components SET last_health_check = '2000-01-01T00:00:00.000000Z' \
             WHERE name = 'old'",
    )
    .await;
    assert_eq!(n, 1);

    let mut tx = store.begin().await.unwrap();
    let again = tx
        .heartbeat_component(
            worker.id.into(),
            Heartbeat {
                health_status: HealthStatus::Healthy,
                performance_metrics: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(again.performance_metrics, json!({"queue": 12}), "kept");
    assert!(again.last_health_check >= beat.last_health_check);
    tx.commit().await.unwrap();

    let mut tx = store.begin_read().await.unwrap();
    let health = tx.component_health(Duration::from_secs(60)).await.unwrap();
    let summary: Vec<(&str, HealthStatus, bool)> = health
        .iter()
        .map(|h| (h.component.name.as_str(), h.effective_health, h.stale))
        .collect();
    assert_eq!(
        summary,
        [
            ("old", HealthStatus::Unknown, true),
            ("silent", HealthStatus::Unknown, true),
            ("worker", HealthStatus::Healthy, false),
        ]
    );
    assert_eq!(health[0].component.health_status, HealthStatus::Healthy);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let health = tx
        .component_health(Duration::from_millis(10))
        .await
        .unwrap();
    assert!(
        health
            .iter()
            .all(|h| h.stale && h.effective_health == HealthStatus::Unknown),
        "with a short limit every heartbeat is stale"
    );
}

async fn system_metrics_record_and_list(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let before = flowstore::time::now();
    let a = tx
        .record_system_metric(NewSystemMetric {
            metric_name: "cpu".into(),
            metric_value: 0.25,
            metric_unit: Some("ratio".into()),
            component: Some("worker".into()),
            labels: Some(json!({"host": "a"})),
        })
        .await
        .unwrap();
    for v in [0.5, 0.75] {
        tx.record_system_metric(NewSystemMetric {
            metric_name: "cpu".into(),
            metric_value: v,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    tx.record_system_metric(NewSystemMetric {
        metric_name: "memory".into(),
        metric_value: -1.5,
        ..Default::default()
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin_read().await.unwrap();
    let cpu = tx.list_system_metrics("cpu", before, 10).await.unwrap();
    let values: Vec<f64> = cpu.iter().map(|m| m.metric_value).collect();
    assert_eq!(values, [0.25, 0.5, 0.75], "only that name, oldest first");
    assert_eq!(cpu[0], a, "what is read back equals what was written");
    assert_eq!(cpu[1].labels, json!({}));
    let two = tx.list_system_metrics("cpu", before, 2).await.unwrap();
    assert_eq!(two.len(), 2);
    let later = tx
        .list_system_metrics("cpu", flowstore::time::now(), 10)
        .await
        .unwrap();
    assert!(later.is_empty(), "nothing recorded since now");
    let mem = tx.list_system_metrics("memory", before, 10).await.unwrap();
    assert_eq!(mem[0].metric_value, -1.5);
    assert_err!(
        tx.list_system_metrics("cpu", before, 0).await,
        Invalid,
        "limit"
    );
}

async fn system_metric_bad_input(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let ok = || NewSystemMetric {
        metric_name: "m".into(),
        metric_value: 1.0,
        ..Default::default()
    };
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_err!(
            tx.record_system_metric(NewSystemMetric {
                metric_value: bad,
                ..ok()
            })
            .await,
            Invalid,
            "metric_value"
        );
    }
    for (bad, field) in [
        (
            NewSystemMetric {
                metric_name: "".into(),
                ..ok()
            },
            "metric_name",
        ),
        (
            NewSystemMetric {
                labels: Some(json!(["x"])),
                ..ok()
            },
            "labels",
        ),
        (
            NewSystemMetric {
                metric_unit: Some("u".repeat(51)),
                ..ok()
            },
            "metric_unit",
        ),
    ] {
        assert_err!(tx.record_system_metric(bad).await, Invalid, field);
    }
    let since = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    assert!(tx
        .list_system_metrics("m", since, 10)
        .await
        .unwrap()
        .is_empty());
}
