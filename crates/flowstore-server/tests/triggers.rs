//! Incoming webhook triggers over HTTP, on SQLite and PostgreSQL: managing them
//! (whoever may change the workflow; others 404, viewers 403), firing them at
//! `/hooks/{token}` without a key (the body becomes the run's input, the run is
//! the owner's), signatures (right, wrong, missing, stale, replayed), idempotency
//! keys, garbage bodies, and what stops a trigger (disabled, rotated, deleted, an
//! archived workflow, an owner switched off or without execute permission).

use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::model::trigger::sign;
use flowstore_core::Backend;
use flowstore_testkit::{both_backends, TestApp};
use serde_json::{json, Value};

both_backends!(
    triggers_are_managed_by_whoever_may_change_the_workflow,
    an_unsigned_trigger_starts_runs_with_the_body_as_input,
    idempotency_keys_answer_the_first_run,
    signed_triggers_verify_and_refuse_replays,
    what_stops_a_trigger,
);

/// An active one-step workflow of the holder of `key`: its ID.
async fn workflow(c: &TestApp, key: &str, name: &str) -> String {
    c.shell_handler().await;
    c.shell_workflow(key, name).await
}

/// Creates a trigger on `wf` as the holder of `key`: the answer's body.
async fn trigger(c: &TestApp, key: &str, wf: &str, name: &str, signed: bool) -> Value {
    c.by(key)
        .create_trigger(wf, json!({"name": name, "require_signature": signed}))
        .await
        .want(201)
}

fn url(created: &Value) -> String {
    created["url"].as_str().unwrap().to_string()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn triggers_are_managed_by_whoever_may_change_the_workflow(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (ada_id, ada) = c.user_key(Role::User, "ada@example.com").await;
    let (_, bob) = c.user_key(Role::User, "bob@example.com").await;
    let (reader_id, reader) = c.user_key(Role::User, "reader@example.com").await;
    let (_, viewer) = c.user_key(Role::Viewer, "vic@example.com").await;
    let wf = workflow(&c, &ada, "deploy").await;
    let share = json!({"user_id": reader_id, "permission": "read"});
    c.by(&ada).share_workflow(&wf, share).await.want(201);

    let created = trigger(&c, &ada, &wf, "github push", false).await;
    let t = &created["trigger"];
    let id = t["id"].as_str().unwrap().to_string();
    let token = created["token"].as_str().unwrap();
    assert!(
        token.starts_with("fstrg_") && token.len() == 6 + 64,
        "{token}"
    );
    assert_eq!(created["url"], format!("/hooks/{token}"));
    assert!(created.get("signing_secret").is_none(), "{created}");
    assert_eq!(t["workflow_id"], wf);
    assert_eq!(t["owner_id"], ada_id);
    assert_eq!(t["name"], "github push");
    assert_eq!(t["require_signature"], false);
    assert_eq!(t["active"], true);
    assert_eq!(t["fire_count"], 0);
    assert!(token.starts_with(t["token_prefix"].as_str().unwrap()));
    let entry = c.audit_entry("trigger.create", &id).await;
    assert_eq!(entry["actor_id"], ada_id);
    assert!(
        !entry.to_string().contains(token),
        "the token is not audited"
    );

    // Refusals: a name taken, unknown fields, a bad name, no user behind the key.
    let r = c
        .by(&ada)
        .create_trigger(&wf, json!({"name": "github push"}))
        .await;
    r.want_field(409, "name");
    let r = c
        .by(&ada)
        .create_trigger(&wf, json!({"name": "x", "owner_id": ada_id}))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = c.by(&ada).create_trigger(&wf, json!({"name": ""})).await;
    r.want_field(422, "name");
    let r = c.user().create_trigger(&wf, json!({"name": "x"})).await;
    assert_eq!(r.status, 403, "a key of no user owns nothing: {}", r.body);

    // The list never shows tokens or secrets.
    let signed = trigger(&c, &ada, &wf, "signed", true).await;
    let secret = signed["signing_secret"].as_str().unwrap();
    assert!(secret.starts_with("fstsig_"), "{signed}");
    let page = c.by(&ada).list_triggers(&wf).await.want(200);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{page}");
    assert_eq!(items[0]["name"], "signed", "newest first");
    let text = page.to_string();
    assert!(!text.contains(token) && !text.contains(secret), "{text}");
    let one = c.by(&ada).get_trigger(&id).await.want(200);
    assert_eq!(one["name"], "github push");
    assert!(!one.to_string().contains(token));

    // Another user does not see them; a reader of the workflow may not manage
    // them; a viewer changes nothing; an admin may.
    let r = c.by(&bob).create_trigger(&wf, json!({"name": "b"})).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(c.by(&bob).list_triggers(&wf).await.status, 404);
    assert_eq!(c.by(&bob).get_trigger(&id).await.status, 404);
    assert_eq!(c.by(&bob).delete_trigger(&id).await.status, 404);
    assert_eq!(c.by(&bob).rotate_trigger(&id).await.status, 404);
    let r = c
        .by(&bob)
        .update_trigger(&id, json!({"active": false}))
        .await;
    assert_eq!(r.status, 404);
    let r = c.by(&reader).list_triggers(&wf).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(c.by(&reader).get_trigger(&id).await.status, 403);
    let r = c
        .by(&reader)
        .create_trigger(&wf, json!({"name": "r"}))
        .await;
    assert_eq!(r.status, 403);
    let r = c
        .by(&viewer)
        .create_trigger(&wf, json!({"name": "v"}))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(c.by(&viewer).delete_trigger(&id).await.status, 403);
    assert_eq!(c.admin().list_triggers(&wf).await.status, 200);

    // Renaming and disabling; a name taken by a sibling is a conflict.
    let r = c
        .by(&ada)
        .update_trigger(&id, json!({"name": "push", "active": false}))
        .await
        .want(200);
    assert_eq!(
        (r["name"].as_str(), r["active"].as_bool()),
        (Some("push"), Some(false))
    );
    let r = c
        .by(&ada)
        .update_trigger(&id, json!({"name": "signed"}))
        .await;
    r.want_field(409, "name");
    let r = c
        .by(&ada)
        .update_trigger(&id, json!({"colour": "red"}))
        .await;
    assert_eq!(r.status, 422);
    c.audit_entry("trigger.update", &id).await;

    // Deleting: gone for everyone, and so is its URL.
    assert_eq!(c.by(&ada).delete_trigger(&id).await.status, 204);
    assert_eq!(c.by(&ada).get_trigger(&id).await.status, 404);
    assert_eq!(c.by(&ada).delete_trigger(&id).await.status, 404);
    c.audit_entry("trigger.delete", &id).await;
    let r = c.hook(&url(&created), b"{}", &[]).await;
    assert_eq!(r.status, 404);
    // Deleting the workflow deletes its triggers.
    let signed_id = signed["trigger"]["id"].as_str().unwrap().to_string();
    c.by(&ada).delete_workflow(&wf).await.want(204);
    assert_eq!(c.admin().get_trigger(&signed_id).await.status, 404);
    assert_eq!(c.hook(&url(&signed), b"{}", &[]).await.status, 404);
}

async fn an_unsigned_trigger_starts_runs_with_the_body_as_input(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (ada_id, ada) = c.user_key(Role::User, "ada@example.com").await;
    let wf = workflow(&c, &ada, "deploy").await;
    let created = trigger(&c, &ada, &wf, "push", false).await;
    let id = created["trigger"]["id"].as_str().unwrap().to_string();
    let hook = url(&created);

    // A JSON object is the input; the run is the owner's and names its trigger.
    let r = c.hook(&hook, br#"{"ref": "main", "n": 42}"#, &[]).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["replayed"], false);
    assert_eq!(r.body["trigger_id"], id);
    assert_eq!(r.body["workflow_id"], wf);
    assert_eq!(r.body["status"], "running");
    let run_id = r.body["run_id"].as_str().unwrap().to_string();
    let run = c.by(&ada).get_run(&run_id).await.want(200);
    assert_eq!(run["input"], json!({"ref": "main", "n": 42}));
    assert_eq!(run["user_id"], ada_id);
    assert_eq!(run["metadata"]["trigger_id"], id);
    assert_eq!(run["execution_id"], r.body["execution_id"]);
    let entry = c.audit_entry("trigger.fire", &id).await;
    assert_eq!(entry["actor_type"], "user");
    assert_eq!(entry["actor_id"], ada_id);
    assert_eq!(entry["after"]["run_id"], run_id);

    // Any other JSON value is the input's `payload`; an empty body is `{}`; the
    // content type does not matter.
    for (body, input) in [
        (&b"[1, 2]"[..], json!({"payload": [1, 2]})),
        (&b"\"hello\""[..], json!({"payload": "hello"})),
        (&b""[..], json!({})),
        (&b"  \n"[..], json!({})),
    ] {
        let r = c.hook(&hook, body, &[("content-type", "text/plain")]).await;
        assert_eq!(r.status, 202, "{}", r.body);
        let run = c
            .by(&ada)
            .get_run(r.body["run_id"].as_str().unwrap())
            .await
            .want(200);
        assert_eq!(run["input"], input);
    }

    // Garbage: never a 500, nothing started.
    for (body, status) in [
        (&b"{not json"[..], 400),
        (&b"\xff\xfe"[..], 400),
        (&br#"{"a": "\u0000"}"#[..], 422),
    ] {
        let r = c.hook(&hook, body, &[]).await;
        assert_eq!(r.status, status, "{:?}: {}", body, r.body);
        assert!(r.content_type.starts_with("application/problem+json"));
    }
    let t = c.by(&ada).get_trigger(&id).await.want(200);
    assert_eq!(t["fire_count"], 5);
    assert!(t["last_fired_at"].is_string());

    // Tokens that are not this one: the same 404, with no hint.
    let token = created["token"].as_str().unwrap();
    let mut wrong = token.to_string();
    wrong.replace_range(10..11, if &token[10..11] == "0" { "1" } else { "0" });
    for path in [
        format!("/hooks/{wrong}"),
        "/hooks/nothing".to_string(),
        format!("/hooks/{}", &token[..20]),
        "/hooks/%00".to_string(),
    ] {
        let r = c.hook(&path, b"{}", &[]).await;
        assert!(r.status == 404 || r.status == 422, "{path}: {}", r.status);
        if r.status == 404 {
            assert_eq!(r.body["detail"], "no trigger at this address", "{path}");
        }
    }
    // Only POST fires.
    let r = c.anonymous().get(&hook).await;
    assert_eq!(r.status, 405);
}

async fn idempotency_keys_answer_the_first_run(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (_, ada) = c.user_key(Role::User, "ada@example.com").await;
    let wf = workflow(&c, &ada, "deploy").await;
    let created = trigger(&c, &ada, &wf, "orders", false).await;
    let hook = url(&created);
    let key = [("Idempotency-Key", "order-42")];

    let first = c.hook(&hook, br#"{"order": 42}"#, &key).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let again = c.hook(&hook, br#"{"order": 42}"#, &key).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["replayed"], true);
    assert_eq!(again.body["run_id"], first.body["run_id"]);
    assert_eq!(again.body["execution_id"], first.body["execution_id"]);
    // Another key, or none, starts another run.
    let other = c
        .hook(
            &hook,
            br#"{"order": 42}"#,
            &[("Idempotency-Key", "order-43")],
        )
        .await;
    assert_eq!(other.status, 202);
    assert_ne!(other.body["run_id"], first.body["run_id"]);
    let none = c.hook(&hook, br#"{"order": 42}"#, &[]).await;
    assert_eq!(none.status, 202);
    // Keys belong to their trigger: the same key on another trigger is new.
    let second = trigger(&c, &ada, &wf, "orders 2", false).await;
    let r = c.hook(&url(&second), b"{}", &key).await;
    assert_eq!(r.status, 202);
    assert_ne!(r.body["run_id"], first.body["run_id"]);
    // Malformed keys are refused before anything starts.
    let long = "k".repeat(256);
    for bad in ["with space", long.as_str()] {
        let r = c.hook(&hook, b"{}", &[("Idempotency-Key", bad)]).await;
        r.want_field(422, "Idempotency-Key");
    }
    let id = created["trigger"]["id"].as_str().unwrap();
    let t = c.by(&ada).get_trigger(id).await.want(200);
    assert_eq!(t["fire_count"], 3, "a replay starts nothing");
}

async fn signed_triggers_verify_and_refuse_replays(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (_, ada) = c.user_key(Role::User, "ada@example.com").await;
    let wf = workflow(&c, &ada, "deploy").await;
    let created = trigger(&c, &ada, &wf, "signed", true).await;
    assert_eq!(created["trigger"]["require_signature"], true);
    let secret = created["signing_secret"].as_str().unwrap().to_string();
    let hook = url(&created);
    let body = br#"{"event": "push"}"#;
    let header = |t: i64, secret: &str, body: &[u8]| format!("t={t},v1={}", sign(secret, t, body));
    let unauthorised = |r: &flowstore_testkit::app::Answer, why: &str| {
        assert_eq!(r.status, 401, "{why}: {}", r.body);
        assert!(r.content_type.starts_with("application/problem+json"));
    };

    let r = c.hook(&hook, body, &[]).await;
    unauthorised(&r, "missing");
    let wrong = header(now(), "fstsig_not-the-secret", body);
    unauthorised(
        &c.hook(&hook, body, &[("X-Flowstore-Signature", &wrong)])
            .await,
        "wrong secret",
    );
    let other_body = header(now(), &secret, b"{}");
    unauthorised(
        &c.hook(&hook, body, &[("X-Flowstore-Signature", &other_body)])
            .await,
        "signature of another body",
    );
    let stale = header(now() - 301, &secret, body);
    unauthorised(
        &c.hook(&hook, body, &[("X-Flowstore-Signature", &stale)])
            .await,
        "stale",
    );
    let early = header(now() + 301, &secret, body);
    unauthorised(
        &c.hook(&hook, body, &[("X-Flowstore-Signature", &early)])
            .await,
        "future",
    );
    for garbage in ["t=abc,v1=00", "v1=zz", "nonsense", ""] {
        let r = c
            .hook(&hook, body, &[("X-Flowstore-Signature", garbage)])
            .await;
        unauthorised(&r, garbage);
    }
    let id = created["trigger"]["id"].as_str().unwrap();
    let t = c.by(&ada).get_trigger(id).await.want(200);
    assert_eq!(t["fire_count"], 0, "no refused call started a run");

    // Right: a run; the very same signature again is a replay.
    let good = header(now() - 30, &secret, body);
    let r = c
        .hook(&hook, body, &[("X-Flowstore-Signature", &good)])
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let replay = c
        .hook(&hook, body, &[("X-Flowstore-Signature", &good)])
        .await;
    unauthorised(&replay, "replayed");
    assert!(replay.body["detail"]
        .as_str()
        .unwrap()
        .contains("already used"));
    // Signed anew, the same body starts another run.
    let fresh = header(now(), &secret, body);
    let r2 = c
        .hook(&hook, body, &[("X-Flowstore-Signature", &fresh)])
        .await;
    assert_eq!(r2.status, 202, "{}", r2.body);
    assert_ne!(r2.body["run_id"], r.body["run_id"]);

    // With an Idempotency-Key, a retry of the same signed call answers its run.
    let signed = header(now(), &secret, b"{\"k\": 1}");
    let headers = [
        ("X-Flowstore-Signature", signed.as_str()),
        ("Idempotency-Key", "retry-1"),
    ];
    let first = c.hook(&hook, b"{\"k\": 1}", &headers).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let retry = c.hook(&hook, b"{\"k\": 1}", &headers).await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.body["run_id"], first.body["run_id"]);

    // Rotating gives a new URL and a new secret: the old ones stop working.
    let rotated = c.by(&ada).rotate_trigger(id).await.want(200);
    let new_secret = rotated["signing_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_ne!(url(&rotated), hook);
    let old = header(now(), &secret, body);
    assert_eq!(
        c.hook(&hook, body, &[("X-Flowstore-Signature", &old)])
            .await
            .status,
        404
    );
    let r = c
        .hook(&url(&rotated), body, &[("X-Flowstore-Signature", &old)])
        .await;
    unauthorised(&r, "the old secret");
    let new = header(now(), new_secret, body);
    let r = c
        .hook(&url(&rotated), body, &[("X-Flowstore-Signature", &new)])
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.audit_entry("trigger.rotate", id).await;
    assert!(
        !c.audit_entries("trigger.rotate", id).await[0]
            .to_string()
            .contains(new_secret),
        "secrets are not audited"
    );
}

async fn what_stops_a_trigger(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (_, ada) = c.user_key(Role::User, "ada@example.com").await;
    let (bob_id, bob) = c.user_key(Role::User, "bob@example.com").await;
    let wf = workflow(&c, &ada, "deploy").await;
    // Bob may change Ada's workflow through a share, and makes a trigger: it acts
    // as Bob.
    let share = json!({"user_id": bob_id, "permission": "write"});
    let share_id = c.by(&ada).share_workflow(&wf, share).await.want_id(201);
    let created = trigger(&c, &bob, &wf, "bob's", false).await;
    let id = created["trigger"]["id"].as_str().unwrap().to_string();
    let hook = url(&created);
    let fire = || c.hook(&hook, b"{}", &[]);
    let r = fire().await;
    assert_eq!(r.status, 202, "{}", r.body);
    let run = c
        .by(&ada)
        .get_run(r.body["run_id"].as_str().unwrap())
        .await
        .want(200);
    assert_eq!(run["user_id"], bob_id);

    // Disabled: 404; enabled again: fires.
    for (active, fired) in [(false, 404), (true, 202)] {
        let patch = json!({ "active": active });
        c.by(&bob).update_trigger(&id, patch).await.want(200);
        assert_eq!(fire().await.status, fired, "active: {active}");
    }

    // Its owner switched off, or demoted to viewer: 404 until restored.
    let user = format!("/api/v1/users/{bob_id}");
    for (change, fired) in [
        (json!({"status": "suspended"}), 404),
        (json!({"status": "active"}), 202),
        (json!({"role": "viewer"}), 404),
        (json!({"role": "user"}), 202),
    ] {
        c.admin().patch(&user, change.clone()).await.want(200);
        assert_eq!(fire().await.status, fired, "owner {change}");
    }

    // The workflow inactive or archived: 409.
    c.by(&ada)
        .update_workflow(&wf, json!({"status": "inactive"}))
        .await
        .want(200);
    let r = fire().await;
    r.want_field(409, "status");
    c.by(&ada)
        .update_workflow(&wf, json!({"status": "active"}))
        .await
        .want(200);
    assert_eq!(fire().await.status, 202);

    // The share taken back: Bob may no longer execute it, so neither may his trigger.
    c.by(&ada)
        .delete(&format!("/api/v1/workflows/{wf}/shares/{share_id}"))
        .await
        .want(204);
    assert_eq!(fire().await.status, 404);

    // Ada's own trigger stops when the workflow is archived.
    let own = trigger(&c, &ada, &wf, "ada's", false).await;
    assert_eq!(c.hook(&url(&own), b"{}", &[]).await.status, 202);
    c.by(&ada).archive_workflow(&wf).await.want(200);
    let r = c.hook(&url(&own), b"{}", &[]).await;
    r.want_field(409, "status");
    let t = c.by(&ada).get_trigger(&id).await.want(200);
    assert_eq!(t["fire_count"], 5);
}
