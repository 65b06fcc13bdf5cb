//! Filtered lists page correctly: with many rows the caller may not see interleaved
//! with those it may, every page is full but the last, and walking the cursors
//! returns exactly the visible rows, once each. Workflows, projects, pull requests
//! and tasks, on SQLite and PostgreSQL.

use std::collections::BTreeSet;
use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_testkit::{both_backends, TestApp};
use serde_json::{json, Value};

both_backends!(hidden_rows_do_not_shorten_pages);

const EACH: usize = 12;
const LIMIT: usize = 5;

async fn create(c: &TestApp, key: &str, path: &str, body: Value) -> String {
    let r = c.by(key).post(path, body).await;
    assert_eq!(r.status, 201, "POST {path}: {}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

/// Walks `path` page by page as `key`; checks that every page but the last holds
/// `LIMIT` items and that the last is not empty; returns every ID seen.
async fn walk(c: &TestApp, key: &str, path: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("{path}?limit={LIMIT}"),
            Some(cur) => format!("{path}?limit={LIMIT}&cursor={cur}"),
        };
        let r = c.by(key).get(&url).await;
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        let items = r.body["items"].as_array().unwrap();
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_string()));
        match r.body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(items.len(), LIMIT, "{url}: a page before the last is full");
                cursor = Some(next.to_string());
            }
            None => {
                assert!(!items.is_empty(), "{url}: the last page is not empty");
                return seen;
            }
        }
    }
}

fn check(kind: &str, seen: Vec<String>, visible: &[String]) {
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "{kind}: no row twice");
    let want: BTreeSet<&String> = visible.iter().collect();
    assert_eq!(unique, want, "{kind}: exactly the visible rows");
}

async fn hidden_rows_do_not_shorten_pages(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, bk) = c.user_key(Role::User, "b@x.io").await;
    let mut visible: [Vec<String>; 4] = Default::default();
    let [wfs, projects, prs, tasks] = &mut visible;
    // One row A may see, then one it may not, so that the hidden rows sit between
    // the visible ones in ID order.
    for i in 0..EACH {
        for (rows, path, field) in [
            (&mut *wfs, "/api/v1/workflows", "name"),
            (&mut *projects, "/api/v1/projects", "name"),
            (&mut *tasks, "/api/v1/tasks", "title"),
        ] {
            rows.push(create(&c, &a, path, json!({ field: format!("a{i}") })).await);
            create(&c, &bk, path, json!({ field: format!("b{i}") })).await;
        }
    }
    let pa = projects[0].clone();
    let pb = create(&c, &bk, "/api/v1/projects", json!({"name": "b-prs"})).await;
    for i in 0..EACH as u32 {
        let pr = |p: &str, n: u32| {
            json!({"project_id": p, "repository_url": "https://git.example/r",
                   "branch_name": "b", "title": "t", "pr_number": n})
        };
        prs.push(create(&c, &a, "/api/v1/pull-requests", pr(&pa, 2 * i + 1)).await);
        create(&c, &bk, "/api/v1/pull-requests", pr(&pb, 2 * i + 2)).await;
    }

    check("workflows", walk(&c, &a, "/api/v1/workflows").await, wfs);
    check("projects", walk(&c, &a, "/api/v1/projects").await, projects);
    check("tasks", walk(&c, &a, "/api/v1/tasks").await, tasks);
    check(
        "pull requests",
        walk(&c, &a, "/api/v1/pull-requests").await,
        prs,
    );
    // an admin walks everything with the same page size
    assert_eq!(
        walk(&c, &c.admin, "/api/v1/workflows").await.len(),
        2 * EACH
    );
    assert_eq!(walk(&c, &c.admin, "/api/v1/tasks").await.len(), 2 * EACH);
}
