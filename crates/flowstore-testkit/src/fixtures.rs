//! What many tests start from: users, keys, teams, handlers and definitions.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;

use flowstore::Store;
use flowstore_core::admin::Finding;
use flowstore_core::crypto::SecretString;
use flowstore_core::ids::UserId;
use flowstore_core::model::identity::{NewUser, Role, User};
use flowstore_core::model::identity_access::{
    NewApiKey, NewNotification, Notification, NotificationType,
};
use flowstore_core::model::integration::{Credential, CredentialType, NewCredential};
use flowstore_core::model::ops::SecretValue;
use flowstore_core::model::registry::{Handler, NewHandler};
use flowstore_core::model::workflow::{NewWorkflow, Workflow, WorkflowStatus};
use flowstore_core::time::Timestamp;
use flowstore_core::{Backend, Tx};
use serde_json::{json, Value};

use crate::app::{Answer, TestApp};

/// The password of the users the tests sign in as.
pub const PASSWORD: &str = "correct horse battery";

/// Creates a user with this email and nothing else.
pub async fn user(tx: &mut Box<dyn Tx>, email: &str) -> User {
    tx.create_user(NewUser {
        email: email.into(),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Creates a user with this email and nothing else: their ID.
pub async fn user_id(tx: &mut Box<dyn Tx>, email: &str) -> UserId {
    user(tx, email).await.id
}

/// Creates a user with `role` whose password is [`PASSWORD`].
pub async fn user_with_password(tx: &mut Box<dyn Tx>, email: &str, role: Role) -> User {
    let new = NewUser {
        email: email.into(),
        password: Some(SecretString::new(PASSWORD)),
        role: Some(role),
        ..Default::default()
    };
    tx.create_user(new.hashed().unwrap()).await.unwrap()
}

/// Registers the handler type `name` (named the same).
pub async fn handler(tx: &mut Box<dyn Tx>, name: &str) -> Handler {
    tx.register_handler(NewHandler {
        handler_type: name.into(),
        handler_name: name.into(),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Creates an active workflow `name` with this definition.
pub async fn active_workflow(tx: &mut Box<dyn Tx>, name: &str, definition: Value) -> Workflow {
    tx.create_workflow(NewWorkflow {
        name: name.into(),
        status: Some(WorkflowStatus::Active),
        definition: Some(definition),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Creates an `info` notification for `user` with only a title.
pub async fn notification(tx: &mut Box<dyn Tx>, user: UserId, title: &str) -> Notification {
    tx.create_notification(NewNotification {
        user_id: user,
        kind: NotificationType::Info,
        title: title.into(),
        message: None,
        data: None,
    })
    .await
    .unwrap()
}

/// Creates an API-key credential `name` of no owner holding `secret`, expiring at
/// `expires_at` when given.
pub async fn credential(
    tx: &mut Box<dyn Tx>,
    name: &str,
    secret: Value,
    expires_at: Option<Timestamp>,
) -> Credential {
    tx.create_credential(NewCredential {
        name: name.into(),
        credential_type: CredentialType::ApiKey,
        data: SecretValue::new(secret),
        description: None,
        expires_at,
        owner_id: None,
    })
    .await
    .unwrap()
}

/// The problems `flowstore check` finds in the store's database now (without the
/// notes on what it could not check).
pub async fn problems(store: &Store) -> Vec<Finding> {
    let now = flowstore_core::time::now();
    let (findings, _) = store.backend().admin().find_problems(now).await.unwrap();
    findings
}

/// Runs raw SQL on the store's database: the rows it changed.
pub async fn execute(store: &Store, sql: &str) -> u64 {
    store.backend().execute_raw(sql).await.unwrap()
}

/// Creates an API key with `role` (acting for no user) directly in the database.
pub async fn api_key(backend: &Arc<dyn Backend>, role: Role) -> String {
    let mut tx = backend.begin().await.unwrap();
    let k = tx
        .create_api_key(NewApiKey {
            name: format!("test {role}"),
            role: Some(role),
            ..NewApiKey::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    k.key.expose().to_string()
}

/// Creates a user with `role` and a key of that role acting for them: (user ID, key).
pub async fn user_key(backend: &Arc<dyn Backend>, role: Role, email: &str) -> (String, String) {
    let mut tx = backend.begin().await.unwrap();
    let u = tx
        .create_user(NewUser {
            email: email.to_string(),
            role: Some(role),
            ..NewUser::default()
        })
        .await
        .unwrap();
    let k = tx
        .create_api_key(NewApiKey {
            name: format!("{email} {role}"),
            role: Some(role),
            user_id: Some(u.id),
            ..NewApiKey::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (u.id.to_string(), k.key.expose().to_string())
}

/// A definition of one step `a` run by `handler`.
pub fn one_step(handler: &str) -> Value {
    json!({"steps": [{"key": "a", "handler": handler}]})
}

/// A definition of four `shell` steps in a diamond: the first, then the second and
/// the third after it, then the last after both (keys as given, in that order).
pub fn diamond([first, left, right, last]: [&str; 4]) -> Value {
    json!({"steps": [
        {"key": first, "handler": "shell"},
        {"key": left, "handler": "shell", "depends_on": [first]},
        {"key": right, "handler": "shell", "depends_on": [first]},
        {"key": last, "handler": "shell", "depends_on": [left, right]}
    ]})
}

/// `base` with the fields of `extra` set on it.
pub fn merged(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().expect("an object of fields") {
        base[k] = v.clone();
    }
    base
}

/// An audit entry's `field` before and after the change.
pub fn changed(entry: &Value, field: &str) -> (Value, Value) {
    (
        entry["before"][field].clone(),
        entry["after"][field].clone(),
    )
}

impl TestApp {
    /// Registers the handler type `shell` (as the admin); one already there is fine.
    pub async fn shell_handler(&self) {
        let r = self
            .admin()
            .create_handler(json!({"handler_type": "shell", "handler_name": "shell"}))
            .await;
        assert!(r.code() == 201 || r.code() == 409, "{}", r.body);
    }

    /// Signs in as `email` with `password` (user agent `flowstore-tests/1`), from the
    /// client address `from` when given (as a server with connection info sees it).
    pub async fn sign_in_from(&self, email: &str, password: &str, from: Option<&str>) -> Answer {
        let body = json!({"email": email, "password": password}).to_string();
        let mut req = Request::builder()
            .method("POST")
            .uri("/api/v1/sessions")
            .header("content-type", "application/json")
            .header("user-agent", "flowstore-tests/1")
            .body(Body::from(body))
            .unwrap();
        if let Some(ip) = from {
            let addr = SocketAddr::new(ip.parse().unwrap(), 40000);
            req.extensions_mut().insert(ConnectInfo(addr));
        }
        self.send_request(req).await
    }

    /// Signs in as `email` with [`PASSWORD`]: the session token.
    pub async fn session_token(&self, email: &str) -> String {
        let a = self.sign_in_from(email, PASSWORD, None).await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body["token"].as_str().unwrap().to_string()
    }

    /// Creates a user with `role` and a key acting for them: (user ID, key).
    pub async fn user_key(&self, role: Role, email: &str) -> (String, String) {
        user_key(&self.backend, role, email).await
    }

    /// Creates a project `name` as the holder of `key`: its ID.
    pub async fn project(&self, key: &str, name: &str) -> String {
        self.by(key)
            .create_project(json!({ "name": name }))
            .await
            .want_id(201)
    }

    /// The audit entries of `action` about `entity_id`, newest first (as the admin).
    pub async fn audit_entries(&self, action: &str, entity_id: &str) -> Vec<Value> {
        let page = self
            .admin()
            .get(&format!(
                "/api/v1/audit?action={action}&entity_id={entity_id}"
            ))
            .await
            .want(200);
        page["items"].as_array().unwrap().clone()
    }

    /// The one audit entry of `action` about `entity_id`.
    pub async fn audit_entry(&self, action: &str, entity_id: &str) -> Value {
        let found = self.audit_entries(action, entity_id).await;
        assert_eq!(found.len(), 1, "one {action} of {entity_id}: {found:?}");
        found[0].clone()
    }

    /// Creates a user with a password ([`PASSWORD`]) through the API: their ID.
    pub async fn password_user(&self, email: &str, role: &str) -> String {
        let body = json!({"email": email, "password": PASSWORD, "role": role});
        self.admin().create_user(body).await.want_id(201)
    }
}

/// The text `field` of each item of a page, in order.
pub fn item_texts<'a>(page: &'a Value, field: &str) -> Vec<&'a str> {
    page["items"]
        .as_array()
        .expect("a page of items")
        .iter()
        .map(|item| item[field].as_str().expect("a text field"))
        .collect()
}

impl TestApp {
    /// Creates (as the admin) an API key `name` with the role user, acting for the
    /// user `user_id`: the key.
    pub async fn user_api_key(&self, user_id: &str, name: &str) -> String {
        let body = json!({"name": name, "role": "user", "user_id": user_id});
        let created = self.admin().create_api_key(body).await.want(201);
        created["key"].as_str().unwrap().to_string()
    }
}

impl TestApp {
    /// Creates a team `name` as the holder of `key` (an admin) with the users
    /// `members` in it: its ID.
    pub async fn team_with(&self, key: &str, name: &str, members: &[&str]) -> String {
        let team = self
            .by(key)
            .create_team(json!({ "name": name }))
            .await
            .want_id(201);
        for member in members {
            let body = json!({ "user_id": member });
            self.by(key).add_team_member(&team, body).await.want(201);
        }
        team
    }

    /// Creates a team `name` as the admin: its ID.
    pub async fn team(&self, name: &str) -> String {
        self.admin()
            .create_team(json!({ "name": name }))
            .await
            .want_id(201)
    }
}

impl TestApp {
    /// Registers the handler type `shell` as the admin; it must be new (201).
    pub async fn new_shell_handler(&self) {
        self.admin()
            .create_handler(json!({"handler_type": "shell", "handler_name": "shell"}))
            .await
            .want(201);
    }
}

impl TestApp {
    /// Creates, as the holder of `key`, an active workflow `name` of one `shell` step
    /// (see [`one_step`]): its ID.
    pub async fn shell_workflow(&self, key: &str, name: &str) -> String {
        let body = json!({"name": name, "status": "active", "definition": one_step("shell")});
        self.by(key).create_workflow(body).await.want_id(201)
    }

    /// Starts a run of the workflow `wf` as the holder of `key`, with the request
    /// `body` (201): the run's ID.
    pub async fn started_run(&self, key: &str, wf: &str, body: Value) -> String {
        let started = self.by(key).start_run(wf, body).await.want(201);
        started["run"]["id"]
            .as_str()
            .expect("the run's ID")
            .to_string()
    }
}
