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
