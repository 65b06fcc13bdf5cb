//! The flows of `answers_match_the_document` for a workflow's life (archive, delete,
//! duplicate, one version, summary), a task's links, a project's summary, system
//! metrics and component changes.

use serde_json::json;

use super::{id, Checked, Keys};

/// Creates what it needs and checks every answer against the document.
pub async fn life_links_and_system(t: &Checked, k: &Keys) {
    let (a, admin, viewer) = (
        Some(k.a.as_str()),
        Some(k.admin.as_str()),
        Some(k.viewer.as_str()),
    );
    let handler = json!({"handler_type": "doc-shell", "handler_name": "doc-shell"});
    walk!(t;
        admin POST "/api/v1/handlers" [] with (handler) => 201;
    );
    let wf = json!({"name": "doc-wf", "status": "active",
        "definition": {"steps": [{"key": "a", "handler": "doc-shell"}]}});
    let wf = id(&t
        .call("POST", "/api/v1/workflows", &[], a, Some(wf), 201)
        .await);
    let w = wf.as_str();
    walk!(t;
        a GET "/api/v1/workflows/{id}/versions/{version}" [w, "1"] => 200;
        a GET "/api/v1/workflows/{id}/versions/{version}" [w, "9"] => 404;
    );
    let copy = t
        .call(
            "POST",
            "/api/v1/workflows/{id}/duplicate",
            &[w],
            a,
            Some(json!({"name": "doc-copy"})),
            201,
        )
        .await;
    let copy = id(&copy);
    walk!(t;
        a POST "/api/v1/workflows/{id}/duplicate" [w] with {"name": ""} => 422;
        a POST "/api/v1/workflows/{id}/runs" [w] with {} => 201;
        a GET "/api/v1/workflows/{id}/summary" [w] => 200;
        a DELETE "/api/v1/workflows/{id}" [w] => 409;
        a POST "/api/v1/workflows/{id}/archive" [w] => 200;
        a DELETE "/api/v1/workflows/{id}" [&copy] => 204;
    );

    let p = json!({"name": "doc-links"});
    let pid = id(&t
        .call("POST", "/api/v1/projects", &[], a, Some(p), 201)
        .await);
    let parent = json!({"title": "parent", "project_id": pid});
    let parent = id(&t
        .call("POST", "/api/v1/tasks", &[], a, Some(parent), 201)
        .await);
    let kid = json!({"title": "kid", "project_id": pid, "parent_task_id": parent, "depends_on": [parent]});
    let kid = id(&t
        .call("POST", "/api/v1/tasks", &[], a, Some(kid), 201)
        .await);
    walk!(t;
        a GET "/api/v1/tasks/{id}/dependencies" [&kid] => 200;
        a GET "/api/v1/tasks/{id}/children" [&parent] => 200;
        a GET "/api/v1/projects/{id}/summary" [&pid] => 200;
        a DELETE "/api/v1/tasks/{id}" [&kid] => 204;
        a DELETE "/api/v1/tasks/{id}" [&kid] => 404;
    );

    let sample = json!({"metric_name": "doc.cpu", "metric_value": 0.5, "metric_unit": "ratio",
        "component": "api", "labels": {"host": "h"}});
    walk!(t;
        admin POST "/api/v1/system-metrics" [] with (sample.clone()) => 201;
        a POST "/api/v1/system-metrics" [] with (sample) => 403;
        a GET "/api/v1/system-metrics?name=doc.cpu&limit=1" [] => 200;
        viewer GET "/api/v1/system-metrics" [] => 403;
        a GET "/api/v1/system-metrics?since=soon" [] => 422;
    );
    let comp = json!({"name": "doc-comp", "type": "worker"});
    walk!(t;
        a POST "/api/v1/components" [] with (comp) => 201;
    );
    let patch = json!({"version": "2", "endpoints": {"http": "http://h:1"}});
    walk!(t;
        a PATCH "/api/v1/components/{which}" ["doc-comp"] with (patch.clone()) => 403;
        admin PATCH "/api/v1/components/{which}" ["doc-comp"] with (patch) => 200;
        admin PATCH "/api/v1/components/{which}" ["nope"] with {} => 404;
    );
}

/// Incoming webhook triggers: managing them and firing them (a run, a replayed
/// idempotency key, a missing signature, an unknown token).
pub async fn triggers(t: &Checked, k: &Keys) {
    let (a, viewer) = (Some(k.a.as_str()), Some(k.viewer.as_str()));
    let wf = json!({"name": "doc-trigger-wf", "status": "active",
        "definition": {"steps": [{"key": "a", "handler": "doc-shell"}]}});
    let wf = id(&t
        .call("POST", "/api/v1/workflows", &[], a, Some(wf), 201)
        .await);
    let w = wf.as_str();
    let signed = t
        .call(
            "POST",
            "/api/v1/workflows/{id}/triggers",
            &[w],
            a,
            Some(json!({"name": "doc-signed", "require_signature": true})),
            201,
        )
        .await;
    let plain = t
        .call(
            "POST",
            "/api/v1/workflows/{id}/triggers",
            &[w],
            a,
            Some(json!({"name": "doc-plain"})),
            201,
        )
        .await;
    let tid = plain["trigger"]["id"].as_str().unwrap().to_string();
    let token = plain["token"].as_str().unwrap().to_string();
    let signed_token = signed["token"].as_str().unwrap();
    walk!(t;
        a GET "/api/v1/workflows/{id}/triggers" [w] => 200;
        viewer GET "/api/v1/workflows/{id}/triggers" [w] => 404;
        a POST "/api/v1/workflows/{id}/triggers" [w] with {"name": "doc-plain"} => 409;
        a GET "/api/v1/triggers/{id}" [&tid] => 200;
        a PATCH "/api/v1/triggers/{id}" [&tid] with {"name": "doc-renamed"} => 200;
        None POST "/hooks/{token}" [&token] with {"order": 1} => 202;
        None POST "/hooks/{token}" [signed_token] with {"order": 1} => 401;
        None POST "/hooks/{token}" ["fstrg_unknown"] with {} => 404;
    );
    let key = [("Idempotency-Key", "doc-1")];
    for want in [202, 200] {
        let body = json!({"order": 2});
        let r =
            t.c.hook(
                &format!("/hooks/{token}"),
                body.to_string().as_bytes(),
                &key,
            )
            .await;
        assert_eq!(r.status, want, "{}", r.body);
        t.check("POST", "/hooks/{token}", Some(&body), &r);
    }
    let rotated = t
        .call(
            "POST",
            "/api/v1/triggers/{id}/rotate",
            &[&tid],
            a,
            None,
            200,
        )
        .await;
    assert_ne!(rotated["token"].as_str(), Some(token.as_str()));
    walk!(t;
        None POST "/hooks/{token}" [&token] with {} => 404;
        a DELETE "/api/v1/triggers/{id}" [&tid] => 204;
        a GET "/api/v1/triggers/{id}" [&tid] => 404;
    );
}
