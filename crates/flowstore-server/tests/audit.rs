//! The audit log through the API: an entry with its actor and the entity before and
//! after for each audited route, none for a refused change, admins only, filters
//! and pages, and a chain that verifies until someone tampers with it (an entry
//! edited, or the newest entries removed); entries queued by changes linked by the
//! running server and by maintenance, with no reader asking. On SQLite and
//! PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowstore_core::model::identity::Role;
use flowstore_core::{Backend, BackendKind};
use flowstore_server::ServerConfig;
use flowstore_testkit::fixtures::changed;
use flowstore_testkit::fixtures::item_texts;
use flowstore_testkit::{both_backends, requests, Served, TestApp};
use serde_json::{json, Value};

both_backends!(
    people_keys_and_configurations_are_audited,
    workflows_and_runs_are_audited,
    refused_changes_write_nothing,
    only_admins_read_the_audit_log,
    filters_and_pages,
    the_chain_verifies_and_tampering_is_found,
    a_cut_tail_is_found_by_verify,
    queued_entries_are_linked_without_a_reader,
);

async fn people_keys_and_configurations_are_audited(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (admin_id, admin) = c.user_key(Role::Admin, "root@x.io").await;
    let actor = |e: &Value| (e["actor_type"].clone(), e["actor_id"].clone());
    let by_admin = (json!("user"), json!(admin_id));

    // Users: create, update, delete.
    let u = c
        .by(&admin)
        .create_user(json!({"email": "ada@x.io", "password": "correct horse battery"}))
        .await
        .want(201);
    let uid = u["id"].as_str().unwrap();
    let e = c.audit_entry("user.create", uid).await;
    assert_eq!(actor(&e), by_admin);
    assert_eq!(
        (e["entity_type"].as_str(), e["after"]["email"].as_str()),
        (Some("user"), Some("ada@x.io"))
    );
    assert!(e["before"].is_null());
    assert!(!e.to_string().contains("argon2"), "no password hash: {e}");
    assert_eq!(e["hash"].as_str().unwrap().len(), 64);
    c.by(&admin)
        .update_user(uid, json!({"display_name": "Ada"}))
        .await
        .want(200);
    let e = c.audit_entry("user.update", uid).await;
    assert_eq!(changed(&e, "display_name"), (Value::Null, json!("Ada")));

    // Sessions: a failed and a successful sign-in, then signing out.
    assert_eq!(c.sign_in_from("ada@x.io", "wrong", None).await.status, 401);
    let e = c.audit_entry("session.login_failed", uid).await;
    assert_eq!(actor(&e), (json!("system"), Value::Null));
    assert_eq!(
        (
            e["after"]["reason"].as_str(),
            e["after"]["failed_login_count"].as_i64()
        ),
        (Some("bad_credentials"), Some(1))
    );
    assert_eq!(
        c.sign_in_from("nobody@x.io", "wrong", None).await.status,
        401
    );
    let all_failed = c
        .by(&admin)
        .get("/api/v1/audit?action=session.login_failed")
        .await
        .want(200);
    assert_eq!(all_failed["items"][0]["after"]["email"], "nobody@x.io");
    assert!(all_failed["items"][0]["entity_id"].is_null());
    let signed = c
        .sign_in_from("ada@x.io", "correct horse battery", None)
        .await;
    assert_eq!(signed.status, 201);
    let sid = signed.body["session"]["id"].as_str().unwrap();
    let token = signed.body["token"].as_str().unwrap();
    let e = c.audit_entry("session.login", sid).await;
    assert_eq!(actor(&e), (json!("user"), json!(uid)));
    assert!(!e.to_string().contains(token), "no token in the log");
    c.by(token).sign_out().await.want(204);
    let e = c.audit_entry("session.logout", sid).await;
    assert_eq!(actor(&e), (json!("user"), json!(uid)));
    assert!(e["before"]["revoked_at"].is_null() && e["after"]["revoked_at"].is_string());

    // Teams and members.
    let t = c
        .by(&admin)
        .create_team(json!({"name": "core"}))
        .await
        .want(201);
    let tid = t["id"].as_str().unwrap();
    assert_eq!(
        c.audit_entry("team.create", tid).await["after"]["name"],
        "core"
    );
    let members = format!("/api/v1/teams/{tid}/members");
    c.by(&admin)
        .post(&members, json!({"user_id": uid}))
        .await
        .want(201);
    assert_eq!(
        c.audit_entry("team.member_add", tid).await["after"]["user_id"],
        json!(uid)
    );
    c.by(&admin)
        .patch(&format!("{members}/{uid}"), json!({"role": "admin"}))
        .await
        .want(200);
    let e = c.audit_entry("team.member_update", tid).await;
    assert_eq!(
        (e["before"]["role"].as_str(), e["after"]["role"].as_str()),
        (Some("member"), Some("admin"))
    );
    c.by(&admin)
        .delete(&format!("{members}/{uid}"))
        .await
        .want(204);
    assert_eq!(
        c.audit_entry("team.member_remove", tid).await["before"]["role"],
        "admin"
    );
    c.by(&admin).delete_team(tid).await.want(204);
    let e = c.audit_entry("team.delete", tid).await;
    assert_eq!(
        (e["before"]["team"]["name"].as_str(), e["after"].is_null()),
        (Some("core"), true)
    );

    // API keys, by a key of no user: the actor is the key.
    let k = c
        .admin()
        .create_api_key(json!({"name": "ci", "role": "user"}))
        .await
        .want(201);
    let kid = k["api_key"]["id"].as_str().unwrap();
    let e = c.audit_entry("api_key.create", kid).await;
    assert_eq!(e["actor_type"], "api_key");
    assert!(e["actor_id"].is_string());
    assert!(
        !e.to_string().contains(k["key"].as_str().unwrap()),
        "never the key"
    );
    c.by(&admin).delete_api_key(kid).await.want(204);
    let e = c.audit_entry("api_key.revoke", kid).await;
    assert!(e["before"]["revoked_at"].is_null() && e["after"]["revoked_at"].is_string());

    // Configurations: a sensitive value never reaches the log, only that it was set.
    let secret = "hunter2-very-secret";
    let set = json!({"key": "smtp.password", "value": secret, "is_sensitive": true});
    c.by(&admin).set_configuration(set).await.want(200);
    let again = json!({"key": "smtp.password", "value": "another-secret", "is_sensitive": true});
    c.by(&admin).set_configuration(again).await.want(200);
    let sets = c.audit_entries("configuration.set", "smtp.password").await;
    assert_eq!(sets.len(), 2);
    assert!(sets[1]["before"].is_null() && sets[0]["before"]["key"] == "smtp.password");
    c.by(&admin)
        .delete("/api/v1/configurations/smtp.password")
        .await
        .want(204);
    let e = c.audit_entry("configuration.delete", "smtp.password").await;
    let log = c
        .by(&admin)
        .get("/api/v1/audit?entity_type=configuration")
        .await
        .want(200);
    assert_eq!(log["items"].as_array().unwrap().len(), 3);
    assert!(
        !log.to_string().contains(secret) && !log.to_string().contains("another-secret"),
        "{log}"
    );
    assert!(e["after"].is_null());
    let plain = json!({"key": "ui.theme", "value": "dark"});
    c.by(&admin).set_configuration(plain).await.want(200);
    assert_eq!(
        c.audit_entry("configuration.set", "ui.theme").await["after"]["value"],
        "dark"
    );

    // Deleting the user last.
    c.by(&admin).delete_user(uid).await.want(204);
    assert_eq!(
        c.audit_entry("user.delete", uid).await["before"]["email"],
        "ada@x.io"
    );
}

async fn workflows_and_runs_are_audited(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (uid, a) = c.user_key(Role::User, "a@x.io").await;
    let (other, _) = c.user_key(Role::User, "b@x.io").await;
    c.new_shell_handler().await;
    let w = c.by(&a).create_workflow(json!({"name": "wf", "status": "active", "definition": {"steps": [{"key": "a", "handler": "shell"}]}})).await.want(201);
    let wid = w["id"].as_str().unwrap();
    let e = c.audit_entry("workflow.create", wid).await;
    assert_eq!(
        (e["actor_type"].as_str(), e["actor_id"].as_str()),
        (Some("user"), Some(uid.as_str()))
    );
    assert_eq!(e["after"]["name"], "wf");
    c.by(&a)
        .update_workflow(wid, json!({"description": "second"}))
        .await
        .want(200);
    let e = c.audit_entry("workflow.update", wid).await;
    assert_eq!(changed(&e, "description"), (Value::Null, json!("second")));
    let s = c
        .by(&a)
        .share_workflow(wid, json!({"user_id": other, "permission": "read"}))
        .await
        .want(201);
    assert_eq!(
        c.audit_entry("workflow.share", wid).await["after"]["id"],
        s["id"]
    );
    c.by(&a)
        .delete(&format!(
            "/api/v1/workflows/{wid}/shares/{}",
            s["id"].as_str().unwrap()
        ))
        .await
        .want(204);
    assert_eq!(
        c.audit_entry("workflow.unshare", wid).await["before"]["id"],
        s["id"]
    );

    let started = c.by(&a).start_run(wid, json!({})).await.want(201);
    let rid = started["run"]["id"].as_str().unwrap();
    let e = c.audit_entry("run.start", rid).await;
    assert_eq!(
        (
            e["entity_type"].as_str(),
            e["after"]["workflow_ref"].as_str()
        ),
        (Some("run"), Some(wid))
    );
    c.by(&a).cancel_run(rid).await.want(200);
    let e = c.audit_entry("run.cancel", rid).await;
    assert_ne!(e["before"]["status"], e["after"]["status"]);
    assert_eq!(e["after"]["status"], "cancelled");

    // Every entry of this actor, newest first.
    let mine = c
        .admin()
        .get(&format!("/api/v1/audit?actor={uid}"))
        .await
        .want(200);
    let actions = item_texts(&mine, "action");
    assert_eq!(
        actions,
        [
            "run.cancel",
            "run.start",
            "workflow.unshare",
            "workflow.share",
            "workflow.update",
            "workflow.create"
        ]
    );

    // Duplicate, delete (the copy, which never ran; the original has a run: 409 and
    // no entry) and archive.
    let copy = c
        .by(&a)
        .duplicate_workflow(wid, json!({"name": "wf copy"}))
        .await
        .want(201);
    let cid = copy["id"].as_str().unwrap();
    let e = c.audit_entry("workflow.duplicate", cid).await;
    assert_eq!(e["after"]["copy_of"], json!(wid));
    assert_eq!(e["after"]["workflow"]["name"], "wf copy");
    c.by(&a).delete_workflow(cid).await.want(204);
    assert_eq!(
        c.audit_entry("workflow.delete", cid).await["before"]["name"],
        "wf copy"
    );
    c.by(&a).delete_workflow(wid).await.want(409);
    assert!(c.audit_entries("workflow.delete", wid).await.is_empty());
    c.by(&a).archive_workflow(wid).await.want(200);
    let e = c.audit_entry("workflow.archive", wid).await;
    assert!(e["before"]["archived_at"].is_null() && e["after"]["archived_at"].is_string());
}

async fn refused_changes_write_nothing(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    for (key, path, body, status) in [
        (&c.admin, "/api/v1/teams", json!({"name": "core"}), 201),
        (&c.admin, "/api/v1/teams", json!({"name": "core"}), 409),
        (&c.admin, "/api/v1/users", json!({"email": "bad"}), 422),
        (&c.user, "/api/v1/workflows", json!({"name": ""}), 422),
        (&c.user, "/api/v1/teams", json!({"name": "other"}), 403),
    ] {
        c.by(key).post(path, body).await.want(status);
    }
    let log = c.admin().list_audit().await.want(200);
    let actions = item_texts(&log, "action");
    assert_eq!(actions, ["team.create"]);
}

async fn only_admins_read_the_audit_log(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (_, admin_user) = c.user_key(Role::Admin, "root@x.io").await;
    for key in [&c.user, &c.viewer] {
        requests!(c;
            GET "/api/v1/audit" by key => 403;
            GET "/api/v1/audit/verify" by key => 403;
        );
    }
    assert_eq!(c.raw("GET", "/api/v1/audit", None, None).await.status, 401);
    for key in [&c.admin, &admin_user] {
        requests!(c;
            GET "/api/v1/audit" by key => 200;
            GET "/api/v1/audit/verify" by key => 200;
        );
    }
}

async fn filters_and_pages(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    for name in ["t1", "t2", "t3"] {
        c.admin().create_team(json!({"name": name})).await.want(201);
    }
    let first = c.admin().get("/api/v1/audit?limit=2").await.want(200);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["items"][0]["after"]["name"], "t3");
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second = c
        .admin()
        .get(&format!("/api/v1/audit?limit=2&cursor={cursor}"))
        .await
        .want(200);
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["after"]["name"], "t1");
    assert!(second["next_cursor"].is_null());

    let since = first["items"][0]["created_at"]
        .as_str()
        .unwrap()
        .replace('+', "%2B");
    let recent = c
        .admin()
        .get(&format!("/api/v1/audit?since={since}"))
        .await
        .want(200);
    assert_eq!(recent["items"].as_array().unwrap().len(), 1);
    let future = c
        .admin()
        .get("/api/v1/audit?since=2999-01-01T00:00:00Z")
        .await
        .want(200);
    assert!(future["items"].as_array().unwrap().is_empty());
    for (query, field) in [
        ("since=yesterday", "since"),
        ("cursor=zzz", "cursor"),
        ("limit=5000", "limit"),
        ("colour=red", "colour"),
    ] {
        let r = c.admin().get(&format!("/api/v1/audit?{query}")).await;
        assert_eq!(
            (r.status.as_u16(), r.body["field"].as_str()),
            (422, Some(field)),
            "{query}: {}",
            r.body
        );
    }
}

async fn the_chain_verifies_and_tampering_is_found(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let v = c.admin().verify_audit().await.want(200);
    assert_eq!(
        (v["checked"].as_u64(), v["first_broken"].is_null()),
        (Some(0), true)
    );
    for name in ["t1", "t2", "t3"] {
        c.admin().create_team(json!({"name": name})).await.want(201);
    }
    let v = c.admin().verify_audit().await.want(200);
    assert_eq!(
        (v["checked"].as_u64(), v["last_seq"].as_i64()),
        (Some(3), Some(3))
    );
    assert!(v["first_broken"].is_null(), "{v}");

    // The triggers refuse a change; someone who drops them can make one, and it shows.
    assert!(b
        .execute_raw("UPDATE audit_log SET action = 'x' WHERE seq = 2")
        .await
        .is_err());
    match b.kind() {
        BackendKind::Sqlite => {
            b.execute_raw("DROP TRIGGER trg_audit_log_no_update")
                .await
                .unwrap();
        }
        BackendKind::Postgres => {
            b.execute_raw("DROP TRIGGER trg_audit_log_append_only ON audit_log")
                .await
                .unwrap();
        }
    }
    let after = match b.kind() {
        BackendKind::Sqlite => "json('{\"name\":\"renamed\"}')",
        BackendKind::Postgres => "'{\"name\":\"renamed\"}'::jsonb",
    };
    b.execute_raw(&format!(
        "UPDATE audit_log SET after = {after} WHERE seq = 2"
    ))
    .await
    .unwrap();
    let v = c.admin().verify_audit().await.want(200);
    assert_eq!(v["first_broken"]["seq"], 2, "{v}");
    assert_eq!(v["last_seq"], 1);
    // The edited entry reads as edited: the log shows what is there now.
    let log = c.admin().get("/api/v1/audit?limit=3").await.want(200);
    assert_eq!(log["items"][1]["after"]["name"], "renamed");
}

/// Removes the newest `n` entries with raw SQL, as someone with the database's
/// credentials (but not the encryption key) could after dropping the triggers.
async fn cut_tail(b: &Arc<dyn Backend>, n: i64) {
    let drops: &[&str] = match b.kind() {
        BackendKind::Sqlite => &["DROP TRIGGER trg_audit_log_no_delete"],
        BackendKind::Postgres => &["DROP TRIGGER trg_audit_log_append_only ON audit_log"],
    };
    for sql in drops {
        b.execute_raw(sql).await.unwrap();
    }
    let cut = b
        .execute_raw(&format!(
            "DELETE FROM audit_log WHERE seq > (SELECT max(seq) - {n} FROM audit_log)"
        ))
        .await
        .unwrap();
    assert_eq!(cut, n as u64);
}

async fn a_cut_tail_is_found_by_verify(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    for name in ["t1", "t2", "t3", "t4", "t5"] {
        c.admin().create_team(json!({"name": name})).await.want(201);
    }
    let v = c.admin().verify_audit().await.want(200);
    assert!(
        v["first_broken"].is_null() && v["head_mismatch"].is_null(),
        "{v}"
    );
    let newest = v["last_seq"].as_i64().unwrap();

    // What is left is a valid chain; only the signed head shows the cut.
    cut_tail(&b, 2).await;
    let v = c.admin().verify_audit().await.want(200);
    assert!(v["first_broken"].is_null(), "{v}");
    let m = &v["head_mismatch"];
    assert_eq!(
        (m["missing_from"].as_i64(), m["missing_to"].as_i64()),
        (Some(newest - 1), Some(newest)),
        "{v}"
    );
    assert_eq!(m["newest_seq"].as_i64(), Some(newest - 2));
    assert!(m["reason"].as_str().unwrap().contains("missing"), "{v}");

    // The API keeps working; the next entry follows the head, so the gap stays
    // visible in the chain itself.
    c.admin().create_team(json!({"name": "t6"})).await.want(201);
    let v = c.admin().verify_audit().await.want(200);
    assert_eq!(v["first_broken"]["seq"].as_i64(), Some(newest + 1), "{v}");
    assert!(
        v["first_broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("missing"),
        "{v}"
    );
}

/// The entries in the chain as stored, read without linking what is queued.
async fn linked_actions(b: &Arc<dyn Backend>) -> Vec<String> {
    let mut tx = b.begin_read().await.unwrap();
    let stored = tx.audit_chain_after(0, 100).await.unwrap();
    tx.rollback().await.unwrap();
    stored.into_iter().map(|e| e.action).collect()
}

async fn queued_entries_are_linked_without_a_reader(b: Arc<dyn Backend>) {
    // Maintenance runs when the server starts and then not for an hour, so what
    // links the entries of later changes is the server's audit linker.
    let config = ServerConfig {
        maintenance_interval: Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    let c = TestApp::with_config(b.clone(), config).await;
    // No server runs: the change's entry waits in the queue until maintenance.
    c.admin().create_team(json!({"name": "t1"})).await.want(201);
    assert_eq!(linked_actions(&b).await, Vec::<String>::new());
    flowstore_server::maintenance_tick(&c.state).await.unwrap();
    assert_eq!(linked_actions(&b).await, ["team.create"]);
    c.admin().create_team(json!({"name": "t2"})).await.want(201);

    let served = Served::start(c.state.clone()).await;
    // The first maintenance links t2's entry; once it has, maintenance is done
    // linking for the hour.
    linked_within(&b, 2).await;
    for name in ["t3", "t4"] {
        c.admin().create_team(json!({"name": name})).await.want(201);
    }
    linked_within(&b, 4).await;
    // Linked by the linker or, at the latest, as the server stops.
    c.admin().create_team(json!({"name": "t5"})).await.want(201);
    served.stop().await;
    assert_eq!(linked_actions(&b).await.len(), 5);
    let v = c.admin().verify_audit().await.want(200);
    assert!(
        v["first_broken"].is_null() && v["head_mismatch"].is_null() && v["checked"] == 5,
        "{v}"
    );

    // The head signed with a key this server does not have: changes still commit,
    // their entries wait in the queue, and neither maintenance nor the log's list
    // fails over it; the failure is counted. Once the key is back, they are linked.
    b.execute_raw("UPDATE audit_head SET key_id = 'retired' || key_id")
        .await
        .unwrap();
    let errors = || {
        c.state
            .metrics()
            .maintenance_errors
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = errors();
    c.admin().create_team(json!({"name": "t6"})).await.want(201);
    flowstore_server::maintenance_tick(&c.state).await.unwrap();
    assert!(errors() > before, "the failed link is counted");
    let listed = c.admin().get("/api/v1/audit").await.want(200);
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(5),
        "{listed}"
    );
    assert_eq!(linked_actions(&b).await.len(), 5, "t6's entry stays queued");
    b.execute_raw("UPDATE audit_head SET key_id = substr(key_id, 8)")
        .await
        .unwrap();
    flowstore_server::maintenance_tick(&c.state).await.unwrap();
    assert_eq!(linked_actions(&b).await.len(), 6);
    let v = c.admin().verify_audit().await.want(200);
    assert!(v["checked"] == 6 && v["head_mismatch"].is_null(), "{v}");
}

/// Waits up to ten seconds for `n` entries in the chain.
async fn linked_within(b: &Arc<dyn Backend>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while linked_actions(b).await.len() < n {
        assert!(
            Instant::now() < deadline,
            "not linked: {:?}",
            linked_actions(b).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
