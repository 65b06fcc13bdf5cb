//! `flowstore stats` lists the slow statements flowstore recorded on the database
//! (written down by the process that ran them, as the server does every
//! maintenance tick), normalised, on both backends, without pg_stat_statements.

use std::time::Duration;

use flowstore::config::Settings;
use flowstore::Store;
use flowstore_core::slow;
use flowstore_testkit::fixtures::execute;
use flowstore_testkit::{record_slow_statements, ENCRYPTION_KEY};

use crate::binary::{flowstore as cli, succeeded};

per_database!(stats_lists_the_recorded_slow_statements);

async fn stats_lists_the_recorded_slow_statements(url: String) {
    record_slow_statements();
    slow::keep_for_flush();
    let settings = Settings {
        database_url: url.clone(),
        encryption_key: Some(ENCRYPTION_KEY.into()),
        slow_query_threshold: Some(Duration::from_millis(1)),
        ..Settings::default()
    };
    let store = Store::connect(&settings).await.unwrap();
    store.backend().migrate_up(None).await.unwrap();
    // A million steps of a recursive CTE: over a millisecond on either database;
    // the alias tells this test's statement from others'.
    let alias = format!("slow_{}", uuid::Uuid::new_v4().simple());
    execute(
        &store,
        &format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) \
             SELECT count(*) AS {alias} FROM c"
        ),
    )
    .await;
    slow::flush(store.backend()).await.unwrap();
    store.close().await;
    let normalised = format!(
        "WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + ? FROM c WHERE x < ?) \
         SELECT count(*) AS {alias} FROM c"
    );
    let out = succeeded(&cli(&url, &["stats", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let listed = v["recorded_slow_statements"]
        .as_array()
        .unwrap_or_else(|| panic!("recorded_slow_statements in {out}"))
        .iter()
        .find(|s| s["query"] == normalised.as_str())
        .unwrap_or_else(|| panic!("{normalised} listed in {out}"))
        .clone();
    assert_eq!(listed["calls"], 1);
    assert!(
        listed["max_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{listed}"
    );
    let text = succeeded(&cli(&url, &["stats"]));
    assert!(
        text.lines()
            .any(|l| l.starts_with("slow (recorded):") && l.ends_with(&normalised)),
        "{text}"
    );
}
