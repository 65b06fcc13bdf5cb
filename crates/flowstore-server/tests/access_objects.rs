//! The authorization matrix, continued: user A against user B's projects, pull
//! requests and standalone tasks (private, seen through a public or a team
//! workflow, unowned), for reads, writes and lists, and for a key of no user. On
//! SQLite and PostgreSQL.

use std::collections::BTreeSet;
use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_testkit::fixtures::item_texts;
use flowstore_testkit::{both_backends, TestApp};
use serde_json::{json, Value};

both_backends!(projects_pull_requests_and_tasks);

async fn create(c: &TestApp, key: &str, path: &str, body: Value) -> String {
    let r = c.by(key).post(path, body).await;
    assert_eq!(r.status, 201, "POST {path}: {}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

async fn status(c: &TestApp, key: &str, method: &str, path: &str, body: Option<Value>) -> u16 {
    let r = c.by(key).send(method, path, body).await;
    if r.status.as_u16() >= 400 {
        assert!(
            r.content_type.starts_with("application/problem+json"),
            "{method} {path}: {}",
            r.content_type
        );
    }
    r.status.as_u16()
}

async fn ids(c: &TestApp, key: &str, path: &str) -> BTreeSet<String> {
    let r = c.by(key).get(path).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn set(v: &[&String]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn pr(project: &str, n: u32) -> Value {
    json!({"project_id": project, "repository_url": "https://git.example/r", "branch_name": "b",
           "title": "pr", "pr_number": n})
}

async fn projects_pull_requests_and_tasks(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (a_id, a) = c.user_key(Role::User, "a@x.io").await;
    let (b_id, bk) = c.user_key(Role::User, "b@x.io").await;
    let (_, admin) = c.user_key(Role::Admin, "root@x.io").await;
    // B puts a workflow in the team, so B is in it too
    let team = c.team_with(&admin, "t1", &[&a_id, &b_id]).await;

    // B's projects: private; seen through a public workflow; seen through a
    // workflow visible to A's team. An unowned one (made by a key of no user), A's own.
    let p_priv = create(&c, &bk, "/api/v1/projects", json!({"name": "priv"})).await;
    let p_pub = create(&c, &bk, "/api/v1/projects", json!({"name": "pub"})).await;
    let p_team = create(&c, &bk, "/api/v1/projects", json!({"name": "team"})).await;
    let p_free = create(&c, &c.user, "/api/v1/projects", json!({"name": "free"})).await;
    let p_a = create(&c, &a, "/api/v1/projects", json!({"name": "mine"})).await;
    let wf = |p: &str, extra: Value| {
        let mut body = json!({"name": "wf", "project_id": p});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    create(
        &c,
        &bk,
        "/api/v1/workflows",
        wf(&p_pub, json!({"visibility": "public"})),
    )
    .await;
    create(
        &c,
        &bk,
        "/api/v1/workflows",
        wf(&p_team, json!({"visibility": "team", "team_id": team})),
    )
    .await;
    // a private workflow of B in the private project shows it to no one else
    create(&c, &bk, "/api/v1/workflows", wf(&p_priv, json!({}))).await;

    //                         get  patch delete
    for (p, want) in [
        (&p_priv, [404, 404, 404]),
        (&p_pub, [200, 403, 403]),
        (&p_team, [200, 403, 403]),
        (&p_a, [200, 200, 0]),
        (&p_free, [200, 200, 0]),
    ] {
        let path = format!("/api/v1/projects/{p}");
        let got = [
            status(&c, &a, "GET", &path, None).await,
            status(&c, &a, "PATCH", &path, Some(json!({"description": "by a"}))).await,
            if want[2] == 0 {
                0
            } else {
                status(&c, &a, "DELETE", &path, None).await
            },
        ];
        assert_eq!(got, want, "project {p}");
        assert_eq!(status(&c, &admin, "GET", &path, None).await, 200, "admin");
    }
    // a key of no user sees the unowned project and the one with a public workflow
    for (p, want) in [
        (&p_priv, 404),
        (&p_pub, 200),
        (&p_team, 404),
        (&p_free, 200),
    ] {
        let got = status(&c, &c.user, "GET", &format!("/api/v1/projects/{p}"), None).await;
        assert_eq!(got, want, "no user's key, project {p}");
    }
    assert_eq!(
        ids(&c, &a, "/api/v1/projects?limit=100").await,
        set(&[&p_pub, &p_team, &p_free, &p_a])
    );
    assert_eq!(
        ids(&c, &c.user, "/api/v1/projects?limit=100").await,
        set(&[&p_pub, &p_free])
    );
    assert_eq!(ids(&c, &admin, "/api/v1/projects?limit=100").await.len(), 5);
    // A may not attach things to a project it cannot see (422, as for a missing
    // one), nor to one it may see but does not own (403)
    let wf_priv = wf(&p_priv, json!({}));
    assert_eq!(
        status(&c, &a, "POST", "/api/v1/workflows", Some(wf_priv)).await,
        422
    );
    let t = |p: &str| json!({"title": "t", "project_id": p});
    assert_eq!(
        status(&c, &a, "POST", "/api/v1/tasks", Some(t(&p_priv))).await,
        422
    );
    assert_eq!(
        status(&c, &a, "POST", "/api/v1/tasks", Some(t(&p_pub))).await,
        403
    );
    assert_eq!(
        status(
            &c,
            &a,
            "POST",
            "/api/v1/pull-requests",
            Some(pr(&p_priv, 9))
        )
        .await,
        422
    );
    assert_eq!(
        status(&c, &a, "POST", "/api/v1/pull-requests", Some(pr(&p_pub, 9))).await,
        403
    );

    // pull requests inherit their project's access
    let pr_priv = create(&c, &bk, "/api/v1/pull-requests", pr(&p_priv, 1)).await;
    let pr_pub = create(&c, &bk, "/api/v1/pull-requests", pr(&p_pub, 2)).await;
    let pr_free = create(&c, &a, "/api/v1/pull-requests", pr(&p_free, 3)).await;
    for (id, want) in [
        (&pr_priv, [404, 404, 404]),
        (&pr_pub, [200, 403, 403]),
        (&pr_free, [200, 200, 200]),
    ] {
        let path = format!("/api/v1/pull-requests/{id}");
        let got = [
            status(&c, &a, "GET", &path, None).await,
            status(
                &c,
                &a,
                "POST",
                &format!("{path}/status"),
                Some(json!({"status": "open"})),
            )
            .await,
            status(
                &c,
                &a,
                "PUT",
                &format!("{path}/validation"),
                Some(json!({"validation_results": {"status": "ok"}})),
            )
            .await,
        ];
        assert_eq!(got, want, "pull request {id}");
    }
    assert_eq!(
        ids(&c, &a, "/api/v1/pull-requests?limit=100").await,
        set(&[&pr_pub, &pr_free])
    );
    assert_eq!(
        ids(&c, &admin, "/api/v1/pull-requests?limit=100")
            .await
            .len(),
        3
    );

    // standalone tasks: by their project, their creator, or no one's
    let t_priv = create(&c, &bk, "/api/v1/tasks", t(&p_priv)).await;
    let t_pub = create(&c, &bk, "/api/v1/tasks", t(&p_pub)).await;
    let t_alone = create(&c, &bk, "/api/v1/tasks", json!({"title": "b alone"})).await;
    let t_free = create(&c, &c.user, "/api/v1/tasks", json!({"title": "no one's"})).await;
    let t_a = create(&c, &a, "/api/v1/tasks", json!({"title": "a alone"})).await;
    for (id, want) in [
        (&t_priv, [404, 404]),
        (&t_pub, [200, 403]),
        (&t_alone, [404, 404]),
        (&t_free, [200, 200]),
        (&t_a, [200, 200]),
    ] {
        let path = format!("/api/v1/tasks/{id}");
        let got = [
            status(&c, &a, "GET", &path, None).await,
            status(&c, &a, "PATCH", &path, Some(json!({"priority": 3}))).await,
        ];
        assert_eq!(got, want, "task {id}");
        assert_eq!(status(&c, &admin, "GET", &path, None).await, 200, "admin");
    }
    assert_eq!(
        ids(&c, &a, "/api/v1/tasks?limit=100").await,
        set(&[&t_pub, &t_free, &t_a])
    );
    assert_eq!(
        ids(&c, &c.user, "/api/v1/tasks?limit=100").await,
        set(&[&t_pub, &t_free])
    );
    // the full-text search leaves out what A may not see as well
    let found = c.by(&a).get("/api/v1/tasks?q=alone").await;
    let found = item_texts(&found.body, "id");
    assert_eq!(found, [t_a.as_str()]);
    // a pull request may not name a task A cannot see
    let mut body = pr(&p_free, 4);
    body["task_id"] = json!(t_alone);
    assert_eq!(
        status(&c, &a, "POST", "/api/v1/pull-requests", Some(body)).await,
        422
    );
}
