//! Notifications flowstore produces, on SQLite and PostgreSQL: a run of your
//! workflow failed, a workflow was shared with you or your team, your API key was
//! revoked by someone else; and none for what you did yourself.

use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_testkit::fixtures::one_step;
use flowstore_testkit::{both_backends, TestApp};
use serde_json::{json, Value};

both_backends!(what_a_user_must_know_is_notified);

async fn notes(c: &TestApp, key: &str) -> Vec<Value> {
    c.by(key).list_notifications().await.want(200)["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn what_a_user_must_know_is_notified(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    c.shell_handler().await;
    let (a_id, a) = c.user_key(Role::User, "a@x.io").await;
    let (b_id, bk) = c.user_key(Role::User, "b@x.io").await;
    let (c_id, ck) = c.user_key(Role::User, "c@x.io").await;
    let (root, admin) = c.user_key(Role::Admin, "root@x.io").await;
    let root = flowstore_core::ids::UserId(root.parse().unwrap());
    let wf = c
        .by(&a)
        .create_workflow(
            json!({"name": "nightly", "status": "active", "definition": one_step("shell")}),
        )
        .await
        .want_id(201);

    // A's run fails: A hears of it.
    let run = c.by(&a).start_run(&wf, json!({})).await.want(201)["run"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let claimed = c
        .by(&a)
        .claim(json!({"worker_id": "w", "handler_types": ["shell"], "limit": 1, "lease_ms": 30000}))
        .await
        .want(200);
    let t = &claimed.as_array().unwrap()[0];
    c.by(&a)
        .fail(json!({"task_id": t["task_id"], "attempt": t["attempt"], "error": {"m": "x"}}))
        .await
        .want(200);
    let got = notes(&c, &a).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "execution_failed");
    assert_eq!(got[0]["data"]["run_id"], run.as_str());
    assert!(got[0]["title"].as_str().unwrap().contains("nightly"));
    // A completed run tells no one.
    c.by(&a).start_run(&wf, json!({})).await.want(201);
    let claimed = c
        .by(&a)
        .claim(json!({"worker_id": "w", "handler_types": ["shell"], "limit": 1, "lease_ms": 30000}))
        .await
        .want(200);
    let t = &claimed.as_array().unwrap()[0];
    c.by(&a)
        .complete(json!({"task_id": t["task_id"], "attempt": t["attempt"]}))
        .await
        .want(200);
    assert_eq!(notes(&c, &a).await.len(), 1);

    // Shared with B directly, and with a team of B and C: each hears of it once per
    // share; A, who shared, hears nothing.
    c.by(&a)
        .share_workflow(&wf, json!({"user_id": b_id, "permission": "read"}))
        .await
        .want(201);
    let team = c
        .by(&admin)
        .create_team(json!({"name": "ops"}))
        .await
        .want_id(201);
    for m in [&b_id, &c_id] {
        c.by(&admin)
            .add_team_member(&team, json!({"user_id": m}))
            .await
            .want(201);
    }
    c.by(&a)
        .share_workflow(&wf, json!({"team_id": team, "permission": "execute"}))
        .await
        .want(201);
    let to_b: Vec<String> = notes(&c, &bk)
        .await
        .iter()
        .map(|n| format!("{} {}", n["type"], n["data"]["permission"]))
        .collect();
    assert_eq!(
        to_b,
        [
            "\"workflow_shared\" \"execute\"",
            "\"workflow_shared\" \"read\""
        ],
        "newest first"
    );
    assert_eq!(notes(&c, &ck).await.len(), 1);
    assert_eq!(notes(&c, &a).await.len(), 1, "the sharer is not told");

    // An admin revokes B's key: B hears of it; revoking one's own key tells no one.
    let mut tx = c.backend.begin().await.unwrap();
    let b_key = tx
        .create_api_key(flowstore_core::model::identity_access::NewApiKey {
            name: "b's laptop".into(),
            user_id: Some(flowstore_core::ids::UserId(b_id.parse().unwrap())),
            ..Default::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c.by(&admin)
        .delete_api_key(b_key.api_key.id)
        .await
        .want(204);
    let last = &notes(&c, &bk).await[0];
    assert_eq!(last["type"], "security_alert");
    assert!(last["title"].as_str().unwrap().contains("b's laptop"));
    // Revoking a key of one's own tells no one.
    let mut tx = c.backend.begin().await.unwrap();
    let own = tx
        .create_api_key(flowstore_core::model::identity_access::NewApiKey {
            name: "spare".into(),
            user_id: Some(root),
            role: Some(Role::Admin),
            ..Default::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c.by(&admin).delete_api_key(own.api_key.id).await.want(204);
    assert!(notes(&c, &admin).await.is_empty(), "one's own revocation");
    let _ = a_id;
}
