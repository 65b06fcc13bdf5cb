//! Conformance tests for projects: the pattern every area follows.

use flowstore::model::project::{NewProject, ProjectFilter, ProjectPatch};
use flowstore::{PageRequest, Store};
use flowstore_testkit::fixtures::execute;
use serde_json::json;

conformance!(
    create_get_update_delete,
    bad_input_is_refused_with_the_field,
    duplicate_name_is_a_conflict,
    keyset_pages_cover_every_row_once,
    raw_sql_updates_keep_updated_at_current,
    rolled_back_transaction_leaves_nothing,
);

fn new(name: &str) -> NewProject {
    NewProject {
        name: name.into(),
        ..Default::default()
    }
}

async fn create_get_update_delete(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let created = tx
        .create_project(NewProject {
            name: " website ".into(),
            description: Some("the public site".into()),
            repository_url: Some("https://git.example.com/site".into()),
            settings: Some(json!({"ci": {"enabled": true}})),
            ..Default::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(created.name, "website");
    assert_eq!(created.default_branch, "main");

    let mut tx = store.begin().await.unwrap();
    let got = tx.get_project(created.id).await.unwrap();
    assert_eq!(got, created, "what is read back equals what was written");
    assert_eq!(
        tx.get_project_by_name("website").await.unwrap().id,
        created.id
    );

    let patch: ProjectPatch =
        serde_json::from_value(json!({"description": null, "default_branch": "trunk"})).unwrap();
    let updated = tx.update_project(created.id, patch).await.unwrap();
    assert_eq!(updated.description, None);
    assert_eq!(updated.default_branch, "trunk");
    assert_eq!(updated.repository_url, created.repository_url);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(tx.get_project(created.id).await.unwrap(), updated);

    tx.delete_project(created.id).await.unwrap();
    assert_err!(tx.get_project(created.id).await, NotFound);
    assert_err!(tx.delete_project(created.id).await, NotFound);
    tx.commit().await.unwrap();
}

async fn bad_input_is_refused_with_the_field(store: Store) {
    let mut tx = store.begin().await.unwrap();
    assert_err!(tx.create_project(new("   ")).await, Invalid, "name");
    assert_err!(
        tx.create_project(new(&"x".repeat(256))).await,
        Invalid,
        "name"
    );
    assert_err!(tx.create_project(new("a\0b")).await, Invalid, "name");
    for (bad, field) in [
        (
            NewProject {
                settings: Some(json!([1, 2])),
                ..new("p")
            },
            "settings",
        ),
        (
            NewProject {
                repository_url: Some("ftp://x".into()),
                ..new("p")
            },
            "repository_url",
        ),
        (
            NewProject {
                owner_id: Some(flowstore::ids::UserId::new()),
                ..new("p")
            },
            "owner_id",
        ),
    ] {
        assert_err!(tx.create_project(bad).await, Invalid, field);
    }
    assert_err!(
        tx.list_projects(&ProjectFilter::default(), &PageRequest::first(0))
            .await,
        Invalid,
        "limit"
    );
    assert_err!(
        tx.list_projects(
            &ProjectFilter::default(),
            &PageRequest::after("not-a-cursor", 5)
        )
        .await,
        Invalid,
        "cursor"
    );
    // Nothing was written by any of the refused calls.
    let page = tx
        .list_projects(&ProjectFilter::default(), &PageRequest::first(10))
        .await
        .unwrap();
    assert!(page.items.is_empty());
    let malformed = serde_json::from_str::<NewProject>(r#"{"name": "x", "unknown": 1}"#);
    assert!(malformed.is_err(), "unknown fields are refused");
}

async fn duplicate_name_is_a_conflict(store: Store) {
    let mut tx = store.begin().await.unwrap();
    tx.create_project(new("dup")).await.unwrap();
    assert_err!(tx.create_project(new("dup")).await, Conflict, "name");
    drop(tx);
    // The failed insert did not poison the next transaction.
    let mut tx = store.begin().await.unwrap();
    tx.create_project(new("dup")).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let other = tx.create_project(new("other")).await.unwrap();
    let clash = tx
        .update_project(
            other.id,
            ProjectPatch {
                name: Some("dup".into()),
                ..Default::default()
            },
        )
        .await;
    assert_err!(clash, Conflict, "name");
}

async fn keyset_pages_cover_every_row_once(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..23 {
        ids.push(
            tx.create_project(new(&format!("p{i:02}")))
                .await
                .unwrap()
                .id,
        );
    }
    tx.commit().await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    let seen: Vec<_> = all_pages!(5, |page| tx.list_projects(&ProjectFilter::default(), &page))
        .iter()
        .map(|p| p.id)
        .collect();
    ids.reverse();
    assert_eq!(seen, ids, "newest first, every row exactly once");
}

async fn raw_sql_updates_keep_updated_at_current(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let p = tx.create_project(new("raw")).await.unwrap();
    tx.commit().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let n = execute(
        &store,
        "UPDATE projects SET description = 'changed by hand' WHERE name = 'raw'",
    )
    .await;
    assert_eq!(n, 1);
    let mut tx = store.begin_read().await.unwrap();
    let after = tx.get_project(p.id).await.unwrap();
    assert_eq!(after.description.as_deref(), Some("changed by hand"));
    assert!(
        after.updated_at > p.updated_at,
        "the database moved updated_at"
    );
}

async fn rolled_back_transaction_leaves_nothing(store: Store) {
    let mut tx = store.begin().await.unwrap();
    tx.create_project(new("a")).await.unwrap();
    tx.create_project(new("b")).await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.create_project(new("c")).await.unwrap();
    drop(tx); // dropped without commit
    let mut tx = store.begin_read().await.unwrap();
    let page = tx
        .list_projects(&ProjectFilter::default(), &PageRequest::first(10))
        .await
        .unwrap();
    assert!(page.items.is_empty());
}
