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
    t.call("POST", "/api/v1/handlers", &[], admin, Some(handler), 201)
        .await;
    let wf = json!({"name": "doc-wf", "status": "active",
        "definition": {"steps": [{"key": "a", "handler": "doc-shell"}]}});
    let wf = id(&t
        .call("POST", "/api/v1/workflows", &[], a, Some(wf), 201)
        .await);
    let w = wf.as_str();
    t.call(
        "GET",
        "/api/v1/workflows/{id}/versions/{version}",
        &[w, "1"],
        a,
        None,
        200,
    )
    .await;
    t.call(
        "GET",
        "/api/v1/workflows/{id}/versions/{version}",
        &[w, "9"],
        a,
        None,
        404,
    )
    .await;
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
    t.call(
        "POST",
        "/api/v1/workflows/{id}/duplicate",
        &[w],
        a,
        Some(json!({"name": ""})),
        422,
    )
    .await;
    t.call(
        "POST",
        "/api/v1/workflows/{id}/runs",
        &[w],
        a,
        Some(json!({})),
        201,
    )
    .await;
    t.call("GET", "/api/v1/workflows/{id}/summary", &[w], a, None, 200)
        .await;
    t.call("DELETE", "/api/v1/workflows/{id}", &[w], a, None, 409)
        .await;
    t.call("POST", "/api/v1/workflows/{id}/archive", &[w], a, None, 200)
        .await;
    t.call("DELETE", "/api/v1/workflows/{id}", &[&copy], a, None, 204)
        .await;

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
    t.call(
        "GET",
        "/api/v1/tasks/{id}/dependencies",
        &[&kid],
        a,
        None,
        200,
    )
    .await;
    t.call(
        "GET",
        "/api/v1/tasks/{id}/children",
        &[&parent],
        a,
        None,
        200,
    )
    .await;
    t.call(
        "GET",
        "/api/v1/projects/{id}/summary",
        &[&pid],
        a,
        None,
        200,
    )
    .await;
    t.call("DELETE", "/api/v1/tasks/{id}", &[&kid], a, None, 204)
        .await;
    t.call("DELETE", "/api/v1/tasks/{id}", &[&kid], a, None, 404)
        .await;

    let sample = json!({"metric_name": "doc.cpu", "metric_value": 0.5, "metric_unit": "ratio",
        "component": "api", "labels": {"host": "h"}});
    t.call(
        "POST",
        "/api/v1/system-metrics",
        &[],
        admin,
        Some(sample.clone()),
        201,
    )
    .await;
    t.call("POST", "/api/v1/system-metrics", &[], a, Some(sample), 403)
        .await;
    t.call(
        "GET",
        "/api/v1/system-metrics?name=doc.cpu&limit=1",
        &[],
        a,
        None,
        200,
    )
    .await;
    t.call("GET", "/api/v1/system-metrics", &[], viewer, None, 403)
        .await;
    t.call(
        "GET",
        "/api/v1/system-metrics?since=soon",
        &[],
        a,
        None,
        422,
    )
    .await;
    let comp = json!({"name": "doc-comp", "type": "worker"});
    t.call("POST", "/api/v1/components", &[], a, Some(comp), 201)
        .await;
    let patch = json!({"version": "2", "endpoints": {"http": "http://h:1"}});
    t.call(
        "PATCH",
        "/api/v1/components/{which}",
        &["doc-comp"],
        a,
        Some(patch.clone()),
        403,
    )
    .await;
    t.call(
        "PATCH",
        "/api/v1/components/{which}",
        &["doc-comp"],
        admin,
        Some(patch),
        200,
    )
    .await;
    t.call(
        "PATCH",
        "/api/v1/components/{which}",
        &["nope"],
        admin,
        Some(json!({})),
        404,
    )
    .await;
}
