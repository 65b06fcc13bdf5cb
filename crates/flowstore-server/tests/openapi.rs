//! The OpenAPI document against the server's real answers, on SQLite and
//! PostgreSQL: every documented path is routed; and for real requests on every
//! resource (create, list, get, change, the worker protocol, errors) each answer's
//! status is documented for its operation, its media type is documented for that
//! status, and its body validates against the documented schema (as does each
//! accepted request body against the documented request schema).

/// Sends each request of the list through [`Checked::call`] (status asserted, answer
/// checked against the document): `KEY METHOD "template" [args] (with BODY)? =>
/// status;`, KEY an `Option<&str>` (or `None`), BODY a JSON literal or a
/// parenthesised expression.
macro_rules! walk {
    ($t:expr; $($key:ident $method:ident $template:literal [$($arg:expr),*] $(with $body:tt)? => $status:literal;)*) => {
        $(
            $t.call(
                stringify!($method),
                $template,
                &[$($arg),*],
                $key,
                walk!(@body $($body)?),
                $status,
            )
            .await;
        )*
    };
    (@body) => {
        None
    };
    (@body $body:tt) => {
        Some(serde_json::json!($body))
    };
}

mod core_flows;
mod more_flows;
mod resource_flows;
mod validate;

use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::{Backend, BackendKind};
use flowstore_testkit::{both_backends, fixtures::user_key, Answer, TestApp};
use serde_json::{json, Value};
use validate::Validator;

both_backends!(
    answers_match_the_document,
    expired_credentials_and_a_cut_audit_log_match_the_document,
    every_documented_path_is_routed
);

/// A client that checks every answer against the document.
struct Checked {
    c: TestApp,
    doc: Value,
}

/// `template` with each `{…}` replaced by the next of `args`.
fn fill(template: &str, args: &[&str]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(&rest[..open]);
        out.push_str(args.next().expect("an argument for each placeholder"));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

impl Checked {
    async fn new(b: Arc<dyn Backend>) -> Checked {
        let c = TestApp::new(b).await;
        let doc = c.raw("GET", "/api/v1/openapi.json", None, None).await.body;
        Checked { c, doc }
    }

    /// The documented operation of `method` on `template` (path part only).
    fn operation(&self, method: &str, template: &str) -> &Value {
        let path = template.split('?').next().unwrap();
        let op = &self.doc["paths"][path][method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not documented");
        op
    }

    /// Sends the request, asserts the status, checks the answer against the
    /// document and returns its body.
    async fn call(
        &self,
        method: &str,
        template: &str,
        args: &[&str],
        key: Option<&str>,
        body: Option<Value>,
        want: u16,
    ) -> Value {
        let url = fill(template, args);
        let raw = body.as_ref().map(|b| serde_json::to_vec(b).unwrap());
        let r = self.c.raw(method, &url, key, raw).await;
        let status = r.status.as_u16();
        assert_eq!(status, want, "{method} {url}: {}", r.body);
        self.check(method, template, body.as_ref(), &r);
        r.body
    }

    fn check(&self, method: &str, template: &str, request: Option<&Value>, answer: &Answer) {
        let (status, body) = (answer.status.as_u16(), &answer.body);
        let op = self.operation(method, template);
        let v = Validator::new(&self.doc);
        let strict = Validator::strict(&self.doc);
        let what = format!("{method} {template} → {status}");
        if let (Some(req), true) = (request, (200..300).contains(&status)) {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(
                schema.is_object(),
                "{what}: the request body is not documented"
            );
            let errors = v.errors(schema, req);
            assert!(
                errors.is_empty(),
                "{what}: the accepted request {req} breaks its schema: {errors:#?}"
            );
        }
        let response = &op["responses"][status.to_string()];
        let shown = short(body);
        assert!(
            response.is_object(),
            "{what}: status not documented: {shown}"
        );
        for header in response["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|h| h.0)
        {
            assert!(
                answer.headers.contains_key(header.as_str()),
                "{what}: no {header} header"
            );
        }
        if body.is_null() {
            return;
        }
        let media = answer.content_type.split(';').next().unwrap().trim();
        let content = &response["content"][media];
        assert!(
            content.is_object(),
            "{what}: {media} not documented ({}): {shown}",
            response["content"]
        );
        if media.ends_with("json") {
            let schema = &content["schema"];
            assert!(schema.is_object(), "{what}: no schema for the body {shown}");
            let errors = strict.errors(schema, body);
            assert!(
                errors.is_empty(),
                "{what}: the body breaks its schema: {errors:#?}\n{shown}"
            );
        }
    }

    /// Asserts that the documented request schema refuses `body` too (the server
    /// refused it with 422 for an unknown field).
    fn schema_refuses(&self, method: &str, template: &str, body: &Value) {
        let op = self.operation(method, template);
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        let errors = Validator::new(&self.doc).errors(schema, body);
        assert!(
            !errors.is_empty(),
            "{method} {template}: the schema accepts {body}"
        );
    }
}

/// A body cut short for a failure message.
fn short(body: &Value) -> String {
    let text = body.to_string();
    match text.char_indices().nth(600) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

/// The keys the flows use: an admin's, a viewer's, and user A's (with A's ID).
struct Keys {
    admin: String,
    viewer: String,
    a: String,
    a_id: String,
}

async fn answers_match_the_document(b: Arc<dyn Backend>) {
    let t = Checked::new(b.clone()).await;
    let (a_id, a) = user_key(&b, Role::User, "a@x.io").await;
    let k = Keys {
        admin: t.c.admin.clone(),
        viewer: t.c.viewer.clone(),
        a,
        a_id,
    };
    let pid = core_flows::operations_to_executions(&t, &b, &k).await;
    resource_flows::tasks_to_keys(&t, &b, &k, &pid).await;
    more_flows::life_links_and_system(&t, &k).await;
    more_flows::triggers(&t, &k).await;
}

/// The refusal to reveal an expired credential and a verification that finds the
/// newest audit entries cut are documented answers with bodies that validate.
async fn expired_credentials_and_a_cut_audit_log_match_the_document(b: Arc<dyn Backend>) {
    let t = Checked::new(b.clone()).await;
    let (_, a) = user_key(&b, Role::User, "a@x.io").await;
    let (a, admin) = (Some(a.as_str()), Some(t.c.admin.as_str()));
    let old = json!({"name": "old", "type": "jwt", "data": "x",
        "expires_at": "2001-01-01T00:00:00Z"});
    let c = id(&t
        .call("POST", "/api/v1/credentials", &[], a, Some(old), 201)
        .await);
    let refused = t
        .call(
            "POST",
            "/api/v1/credentials/{id}/reveal",
            &[c.as_str()],
            a,
            None,
            409,
        )
        .await;
    assert_eq!(refused["field"], "expires_at");

    for name in ["doc-t1", "doc-t2"] {
        walk!(t;
            admin POST "/api/v1/teams" [] with {"name": name} => 201;
        );
    }
    // The teams' entries are linked into the chain (as a running server's linker
    // does at once), then the newest is cut.
    t.call("GET", "/api/v1/audit/verify", &[], admin, None, 200)
        .await;
    let drop = match b.kind() {
        BackendKind::Sqlite => "DROP TRIGGER trg_audit_log_no_delete",
        BackendKind::Postgres => "DROP TRIGGER trg_audit_log_append_only ON audit_log",
    };
    b.execute_raw(drop).await.unwrap();
    b.execute_raw("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)")
        .await
        .unwrap();
    let v = t
        .call("GET", "/api/v1/audit/verify", &[], admin, None, 200)
        .await;
    assert!(v["head_mismatch"]["missing_from"].is_i64(), "{v}");
}

/// Every documented path and method is routed (never the fallback's 404 or a 405),
/// and whatever it answers to a request with placeholder IDs and an empty body is a
/// documented status whose body validates.
async fn every_documented_path_is_routed(b: Arc<dyn Backend>) {
    let t = Checked::new(b).await;
    // every reference in the document resolves
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    out.push(r.to_string());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&t.doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(
            t.doc.pointer(pointer).is_some(),
            "$ref {r} does not resolve"
        );
    }
    let paths = t.doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 50, "{} paths", paths.len());
    let zero = "00000000-0000-0000-0000-000000000000";
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let concrete: String = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { zero } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            // the event stream never ends: ask it something it refuses at once
            let concrete = if path == "/api/v1/events" {
                format!("{concrete}?after=x")
            } else {
                concrete
            };
            let body = (method != "get" && method != "delete").then(|| b"{}".to_vec());
            let r =
                t.c.raw(&method.to_uppercase(), &concrete, Some(&t.c.admin), body)
                    .await;
            assert_ne!(r.status, 405, "{method} {path} is routed");
            assert!(r.status.as_u16() < 500, "{method} {path}: {}", r.body);
            if r.status == 404 {
                assert_ne!(
                    r.body["detail"], "no such route",
                    "{method} {path} is routed"
                );
            }
            t.check(method, path, None, &r);
        }
    }
}
