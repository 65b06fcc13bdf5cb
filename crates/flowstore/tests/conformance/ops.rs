//! Conformance tests for the `ops` area: logs and configurations, including that
//! sensitive values are stored only sealed and never printed.

use chrono::TimeDelta;
use flowstore::ids::{RunId, TaskId};
use flowstore::model::ops::{
    ConfigType, ConfigValue, LogFilter, LogLevel, NewLogEntry, SetConfiguration,
};
use flowstore::{PageRequest, Store};
use flowstore_core::BackendKind;
use flowstore_testkit::fixtures::execute;
use serde_json::json;

use crate::conformance::raw::{self, insert_one, uuid_lit};

conformance!(
    logs_append_and_filter,
    log_bad_input_writes_nothing,
    log_pages_cover_every_row_once,
    plain_configurations_upsert_list_delete,
    sensitive_configurations_are_sealed_and_hidden,
    configuration_bad_input,
    reseal_keeps_values_readable,
);

/// A task row written by hand.
async fn raw_task(store: &Store) -> TaskId {
    let id = TaskId::new();
    let sql = format!(
        "INSERT INTO tasks (id, title) VALUES ({}, 'a task')",
        uuid_lit(store, id.0)
    );
    insert_one(store, &sql).await;
    id
}

fn entry(level: LogLevel, message: &str) -> NewLogEntry {
    NewLogEntry::new(level, message)
}

async fn logs_append_and_filter(store: Store) {
    let run = raw::run(&store).await;
    let task = raw_task(&store).await;
    let t0 = flowstore::time::now() - TimeDelta::hours(1);
    let at = |secs: i64| Some(t0 + TimeDelta::seconds(secs));

    let mut tx = store.begin().await.unwrap();
    let first = tx
        .append_log(NewLogEntry {
            context: Some(json!({"step": 1})),
            component_name: Some("engine".into()),
            execution_id: Some(run),
            timestamp: at(0),
            ..entry(LogLevel::Debug, "run started")
        })
        .await
        .unwrap();
    let batch = tx
        .append_logs(vec![
            NewLogEntry {
                execution_id: Some(run),
                task_id: Some(task),
                timestamp: at(1),
                ..entry(LogLevel::Warn, "task slow")
            },
            NewLogEntry {
                execution_id: Some(run),
                task_id: Some(task),
                component_name: Some("worker".into()),
                timestamp: at(2),
                ..entry(LogLevel::Error, "task failed")
            },
            NewLogEntry {
                component_name: Some("engine".into()),
                timestamp: at(3),
                ..entry(LogLevel::Info, "unrelated")
            },
        ])
        .await
        .unwrap();
    assert_eq!(batch.len(), 3);
    tx.commit().await.unwrap();

    let mut tx = store.begin_read().await.unwrap();
    let messages = |page: flowstore::Page<flowstore::model::ops::LogEntry>| {
        page.items
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
    };
    let page = PageRequest::first(50);
    let all = tx.query_logs(&LogFilter::default(), &page).await.unwrap();
    assert_eq!(all.items.len(), 4);
    assert_eq!(all.items[3], first, "newest first; read back as written");

    let by_run = LogFilter {
        execution_id: Some(run),
        ..Default::default()
    };
    assert_eq!(
        messages(tx.query_logs(&by_run, &page).await.unwrap()),
        ["task failed", "task slow", "run started"]
    );
    let by_task = LogFilter {
        task_id: Some(task),
        ..Default::default()
    };
    assert_eq!(
        messages(tx.query_logs(&by_task, &page).await.unwrap()),
        ["task failed", "task slow"]
    );
    let by_component = LogFilter {
        component_name: Some("engine".into()),
        ..Default::default()
    };
    assert_eq!(
        messages(tx.query_logs(&by_component, &page).await.unwrap()),
        ["unrelated", "run started"]
    );
    let warn_up = LogFilter {
        min_level: Some(LogLevel::Warn),
        ..Default::default()
    };
    assert_eq!(
        messages(tx.query_logs(&warn_up, &page).await.unwrap()),
        ["task failed", "task slow"]
    );
    let window = LogFilter {
        since: at(1),
        until: at(3),
        ..Default::default()
    };
    assert_eq!(
        messages(tx.query_logs(&window, &page).await.unwrap()),
        ["task failed", "task slow"],
        "since is inclusive, until exclusive"
    );
    let combined = LogFilter {
        execution_id: Some(run),
        min_level: Some(LogLevel::Error),
        since: at(0),
        ..Default::default()
    };
    assert_eq!(
        messages(tx.query_logs(&combined, &page).await.unwrap()),
        ["task failed"]
    );
    let unknown_run = LogFilter {
        execution_id: Some(RunId::new()),
        ..Default::default()
    };
    assert!(tx
        .query_logs(&unknown_run, &page)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(LogLevel::Fatal > LogLevel::Error && LogLevel::Trace < LogLevel::Debug);
}

async fn log_bad_input_writes_nothing(store: Store) {
    let run = raw::run(&store).await;
    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.append_log(entry(LogLevel::Info, "  ")).await,
        Invalid,
        "message"
    );
    assert_err!(
        tx.append_log(entry(LogLevel::Info, &"x".repeat(64 * 1024 + 1)))
            .await,
        Invalid,
        "message"
    );
    // Exactly 64 KiB is allowed.
    tx.append_log(entry(LogLevel::Info, &"x".repeat(64 * 1024)))
        .await
        .unwrap();
    for (bad, field) in [
        (
            NewLogEntry {
                context: Some(json!(["not", "an", "object"])),
                ..entry(LogLevel::Info, "m")
            },
            "context",
        ),
        (
            NewLogEntry {
                execution_id: Some(RunId::new()),
                ..entry(LogLevel::Info, "m")
            },
            "execution_id",
        ),
        (
            NewLogEntry {
                task_id: Some(TaskId::new()),
                ..entry(LogLevel::Info, "m")
            },
            "task_id",
        ),
        (
            NewLogEntry {
                component_name: Some("c".repeat(256)),
                ..entry(LogLevel::Info, "m")
            },
            "component_name",
        ),
    ] {
        assert_err!(tx.append_log(bad).await, Invalid, field);
    }
    // A batch with one bad entry is refused whole, before anything is written.
    assert_err!(
        tx.append_logs(vec![
            NewLogEntry {
                execution_id: Some(run),
                ..entry(LogLevel::Info, "good")
            },
            entry(LogLevel::Info, ""),
        ])
        .await,
        Invalid,
        "message"
    );
    assert!(
        serde_json::from_value::<NewLogEntry>(json!({"level": "verbose", "message": "m"})).is_err(),
        "an unknown level is refused"
    );
    assert!(
        serde_json::from_value::<NewLogEntry>(json!({"level": "info", "message": "m", "x": 1}))
            .is_err(),
        "unknown fields are refused"
    );
    let all = tx
        .query_logs(&LogFilter::default(), &PageRequest::first(50))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1, "only the 64 KiB entry was written");
    assert_err!(
        tx.query_logs(&LogFilter::default(), &PageRequest::after("bogus", 5))
            .await,
        Invalid,
        "cursor"
    );
}

async fn log_pages_cover_every_row_once(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let written = tx
        .append_logs(
            (0..9)
                .map(|i| entry(LogLevel::Info, &format!("m{i}")))
                .collect(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    let seen: Vec<_> = all_pages!(4, |page| tx.query_logs(&LogFilter::default(), &page))
        .iter()
        .map(|e| e.id)
        .collect();
    let mut ids: Vec<_> = written.iter().map(|e| e.id).collect();
    ids.reverse();
    assert_eq!(seen, ids);
}

async fn plain_configurations_upsert_list_delete(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let c = tx
        .set_configuration(SetConfiguration {
            config_type: Some(ConfigType::Workflow),
            description: Some("max parallel runs".into()),
            ..SetConfiguration::plain("workflow.max_parallel", json!(4))
        })
        .await
        .unwrap();
    assert_eq!(c.value, ConfigValue::Plain(json!(4)));
    assert_eq!(c.config_type, ConfigType::Workflow);
    assert!(!c.is_sensitive);
    tx.set_configuration(SetConfiguration::plain("ui-theme", json!({"dark": true})))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.get_configuration("workflow.max_parallel").await.unwrap(),
        c
    );
    let replaced = tx
        .set_configuration(SetConfiguration::plain("workflow.max_parallel", json!(8)))
        .await
        .unwrap();
    assert_eq!(replaced.id, c.id, "upsert keeps the entry");
    assert_eq!(replaced.created_at, c.created_at);
    assert_eq!(replaced.value.reveal(), Some(&json!(8)));
    assert_eq!(
        replaced.config_type,
        ConfigType::System,
        "type replaced too"
    );
    assert_eq!(
        serde_json::to_value(&replaced).unwrap()["value"],
        json!(8),
        "plain values are shown"
    );

    let page = tx
        .list_configurations(None, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    let systems = tx
        .list_configurations(Some(ConfigType::System), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(systems.items.len(), 2);
    let workflows = tx
        .list_configurations(Some(ConfigType::Workflow), &PageRequest::first(10))
        .await
        .unwrap();
    assert!(workflows.items.is_empty());

    tx.delete_configuration("ui-theme").await.unwrap();
    assert_err!(tx.get_configuration("ui-theme").await, NotFound);
    assert_err!(tx.delete_configuration("ui-theme").await, NotFound);
    tx.commit().await.unwrap();
}

async fn sensitive_configurations_are_sealed_and_hidden(store: Store) {
    let secret = json!({"password": "hunter2-s3cret"});
    let mut tx = store.begin().await.unwrap();
    let c = tx
        .set_configuration(SetConfiguration {
            config_type: Some(ConfigType::Integration),
            ..SetConfiguration::sensitive("smtp.credentials", secret.clone())
        })
        .await
        .unwrap();
    tx.set_configuration(SetConfiguration::plain("plain.one", json!("visible")))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(c.is_sensitive);
    assert!(c.encryption_key_id.is_some());

    // In the database: no plain value, a sealed one, and the secret nowhere in it.
    let contains_secret = match store.kind() {
        BackendKind::Sqlite => "instr(value_encrypted, CAST('hunter2' AS BLOB)) > 0",
        BackendKind::Postgres => "position(convert_to('hunter2', 'UTF8') in value_encrypted) > 0",
    };
    let sealed_only = execute(
        &store,
        &format!(
            "UPDATE configurations SET description = description \
             WHERE key = 'smtp.credentials' AND value IS NULL \
             AND value_encrypted IS NOT NULL AND encryption_key_id IS NOT NULL \
             AND NOT ({contains_secret})"
        ),
    )
    .await;
    assert_eq!(sealed_only, 1, "the value is stored only sealed");
    let plain_anywhere = execute(
        &store,
        "UPDATE configurations SET description = description \
             WHERE value LIKE '%hunter2%' OR description LIKE '%hunter2%'",
    )
    .await;
    assert_eq!(plain_anywhere, 0);

    let mut tx = store.begin().await.unwrap();
    let got = tx.get_configuration("smtp.credentials").await.unwrap();
    assert_eq!(got.value.reveal(), Some(&secret), "reveal gives it back");
    assert!(matches!(got.value, ConfigValue::Sensitive(_)));
    let debug = format!("{got:?}");
    assert!(
        debug.contains("<redacted>") && !debug.contains("hunter2"),
        "{debug}"
    );
    assert_eq!(got.value.to_string(), "<redacted>");
    let shown = serde_json::to_string(&got).unwrap();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(
        serde_json::to_value(&got).unwrap()["value"],
        json!("<redacted>")
    );

    let listed = tx
        .list_configurations(None, &PageRequest::first(10))
        .await
        .unwrap();
    let sensitive = listed
        .items
        .iter()
        .find(|c| c.key == "smtp.credentials")
        .unwrap();
    assert_eq!(sensitive.value, ConfigValue::Redacted);
    assert!(!format!("{listed:?}").contains("hunter2"));
    assert!(!serde_json::to_string(&listed).unwrap().contains("hunter2"));

    // Turning it plain stores it in the clear and drops the sealed copy; and back.
    let plain = tx
        .set_configuration(SetConfiguration::plain(
            "smtp.credentials",
            json!("now public"),
        ))
        .await
        .unwrap();
    assert_eq!(plain.value, ConfigValue::Plain(json!("now public")));
    assert_eq!(plain.encryption_key_id, None);
    let again = tx
        .set_configuration(SetConfiguration::sensitive("smtp.credentials", json!(42)))
        .await
        .unwrap();
    assert_eq!(again.value.reveal(), Some(&json!(42)));
    assert_eq!(again.id, c.id);
    tx.commit().await.unwrap();
}

async fn configuration_bad_input(store: Store) {
    let mut tx = store.begin().await.unwrap();
    for key in ["", "has space", "semi;colon", "ünï", "slash/key"] {
        assert_err!(
            tx.set_configuration(SetConfiguration::plain(key, json!(1)))
                .await,
            Invalid,
            "key"
        );
    }
    assert_err!(
        tx.set_configuration(SetConfiguration::plain("k".repeat(256), json!(1)))
            .await,
        Invalid,
        "key"
    );
    tx.set_configuration(SetConfiguration::plain("k".repeat(255), json!(1)))
        .await
        .unwrap();
    assert_err!(
        tx.set_configuration(SetConfiguration::plain("nul", json!("a\u{0}b")))
            .await,
        Invalid,
        "value"
    );
    assert_err!(tx.delete_configuration("bad key").await, Invalid, "key");
    assert_err!(tx.get_configuration("absent").await, NotFound);
    assert!(
        serde_json::from_value::<SetConfiguration>(
            json!({"key": "a", "value": 1, "type": "global"})
        )
        .is_err(),
        "an unknown type is refused"
    );
    assert!(
        serde_json::from_value::<SetConfiguration>(json!({"key": "a", "value": 1, "extra": 1}))
            .is_err(),
        "unknown fields are refused"
    );
    let page = tx
        .list_configurations(None, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "only the valid entry was written");
}

async fn reseal_keeps_values_readable(store: Store) {
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.reseal_configurations().await.unwrap(), 0);
    tx.set_configuration(SetConfiguration::sensitive("a", json!("one")))
        .await
        .unwrap();
    tx.set_configuration(SetConfiguration::sensitive("b", json!(["two"])))
        .await
        .unwrap();
    tx.set_configuration(SetConfiguration::plain("c", json!(3)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Keep the sealed bytes of "a", in hex, in the description of "c", to see them
    // change.
    let hex = match store.kind() {
        BackendKind::Sqlite => "hex(value_encrypted)",
        BackendKind::Postgres => "encode(value_encrypted, 'hex')",
    };
    let kept = execute(
        &store,
        &format!(
            "UPDATE configurations SET description = \
             (SELECT {hex} FROM configurations WHERE key = 'a') WHERE key = 'c'"
        ),
    )
    .await;
    assert_eq!(kept, 1);
    let same_bytes = format!(
        "UPDATE configurations SET description = description WHERE key = 'a' \
         AND lower({hex}) = lower((SELECT description FROM configurations WHERE key = 'c'))"
    );
    assert_eq!(store.backend().execute_raw(&same_bytes).await.unwrap(), 1);

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.reseal_configurations().await.unwrap(),
        2,
        "sensitive ones only"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        store.backend().execute_raw(&same_bytes).await.unwrap(),
        0,
        "sealed anew"
    );
    let mut tx = store.begin_read().await.unwrap();
    assert_eq!(
        tx.get_configuration("a").await.unwrap().value.reveal(),
        Some(&json!("one"))
    );
    assert_eq!(
        tx.get_configuration("b").await.unwrap().value.reveal(),
        Some(&json!(["two"]))
    );
    let c = tx.get_configuration("c").await.unwrap();
    assert_eq!(c.value.reveal(), Some(&json!(3)), "plain ones untouched");
}
