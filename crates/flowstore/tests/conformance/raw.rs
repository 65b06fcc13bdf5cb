//! Rows written with raw SQL, so that an area's tests do not depend on the
//! repository of another.

use flowstore::ids::RunId;
use flowstore::Store;
use flowstore_core::BackendKind;

/// A SQL literal for a UUID column on this backend.
pub fn uuid_lit(store: &Store, id: uuid::Uuid) -> String {
    match store.kind() {
        BackendKind::Sqlite => format!("X'{}'", id.simple()),
        BackendKind::Postgres => format!("'{id}'::uuid"),
    }
}

/// Runs `sql`, which inserts one row.
pub async fn insert_one(store: &Store, sql: &str) {
    assert_eq!(store.backend().execute_raw(sql).await.unwrap(), 1, "{sql}");
}

/// A `workflow_executions` row naming no stored workflow.
pub async fn run(store: &Store) -> RunId {
    let id = RunId::new();
    let sql = format!(
        "INSERT INTO workflow_executions (id, execution_id, workflow_id, workflow_name) \
         VALUES ({}, 'exec-{}', 'wf', 'Workflow')",
        uuid_lit(store, id.0),
        id.0.simple()
    );
    insert_one(store, &sql).await;
    id
}
