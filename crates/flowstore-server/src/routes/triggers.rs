//! Incoming webhook triggers (see [`flowstore_core::model::trigger`]): managed under
//! `/api/v1` by whoever may change the workflow, and fired by anyone holding a
//! trigger's URL at `POST /hooks/{token}`, a public route outside the authentication
//! layer ([`hooks_router`]).
//!
//! Firing answers an unknown, disabled or powerless trigger (its owner inactive, or
//! no longer allowed to execute the workflow) with the same 404, so a URL tells
//! nothing about why it does not work; a signature problem with 401; an archived
//! or inactive workflow with 409. The run starts as the owner would start it, in one
//! transaction with the audit entry `trigger.fire` (actor: the owner). The token and
//! the signing secret are never logged: the token is hashed before any lookup and
//! the secret is only opened to compute a MAC.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use chrono::TimeDelta;
use flowstore_core::ids::{RunId, TriggerId, WorkflowId};
use flowstore_core::model::audit::{ActorType, NewAuditEntry};
use flowstore_core::model::engine::StartRun;
use flowstore_core::model::identity::{Role, UserStatus};
use flowstore_core::model::trigger::{
    idempotency_key_hash, plausible_token, verify_signature, CreatedTrigger, NewTrigger,
    ReceiptKind, Trigger, TriggerPatch, IDEMPOTENCY_HEADER, IDEMPOTENCY_WINDOW_HOURS,
    SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECS,
};
use flowstore_core::model::viewer::{self, Viewer};
use flowstore_core::model::workflow::{SharePermission, WorkflowStatus};
use flowstore_core::{Page, StoreError, Tx};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::audit;
use crate::auth::Origin;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::routes::{in_path, page, Api, PageQuery};
use crate::state::AppState;

/// The management routes (behind authentication) with their OpenAPI paths.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(rotate))
}

/// The public route that fires triggers, with its OpenAPI path.
pub(crate) fn hooks_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(fire))
}

/// A trigger just created or rotated: the only time its token and signing secret
/// are shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTriggerAnswer {
    /// The trigger as stored.
    pub trigger: Trigger,
    /// Its token: the last segment of its URL.
    pub token: String,
    /// The path to POST to, on this server: `/hooks/{token}`.
    pub url: String,
    /// The secret that signs calls (`X-Flowstore-Signature`), when it requires them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

impl From<CreatedTrigger> for CreatedTriggerAnswer {
    fn from(c: CreatedTrigger) -> Self {
        CreatedTriggerAnswer {
            url: Trigger::path(c.token.expose()),
            token: c.token.expose().to_string(),
            signing_secret: c.secret.map(|s| s.expose().to_string()),
            trigger: c.trigger,
        }
    }
}

/// What firing a trigger answers: the run it started, or (`replayed`) the run a
/// call with the same `Idempotency-Key` started.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerFired {
    /// The trigger.
    pub trigger_id: TriggerId,
    /// The run.
    pub run_id: RunId,
    /// The run's `execution_id`.
    pub execution_id: String,
    /// The workflow.
    pub workflow_id: WorkflowId,
    /// The run's status now.
    pub status: String,
    /// Whether this answers an earlier call with the same `Idempotency-Key`.
    pub replayed: bool,
}

/// The trigger with `id`, if the caller may change its workflow (a trigger of a
/// workflow the caller may not read is not found).
async fn writable(tx: &mut dyn Tx, api: &Api, id: TriggerId) -> ApiResult<Trigger> {
    let t = tx.get_trigger(id).await?;
    match access::workflow(tx, &api.caller, t.workflow_id, SharePermission::Write).await {
        Err(p) if p.status == 404 => Err(Problem::not_found(format!("no trigger {id}"))),
        Err(p) => Err(p),
        Ok(_) => Ok(t),
    }
}

/// Creates a trigger on a workflow the caller may change; it will start runs as
/// the caller. The answer carries its token (and signing secret), shown only now.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/triggers", tag = "triggers",
    request_body = NewTrigger, params(in_path::Workflow),
    responses((status = 201, body = CreatedTriggerAnswer), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem, description = "the workflow has a trigger of that name"),
        (status = 422, body = Problem)))]
pub async fn create(
    api: Api,
    Path(id): Path<WorkflowId>,
    Json(mut new): Json<NewTrigger>,
) -> ApiResult<impl IntoResponse> {
    let owner = access::me(&api.caller)?;
    let mut tx = api.write().await?;
    access::workflow(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    new.workflow_id = Some(id);
    new.owner_id = Some(owner);
    let created = tx.create_trigger(new).await?;
    let (tid, after) = (created.trigger.id, audit::json(&created.trigger));
    api.commit(tx, "trigger.create", tid, None, after).await?;
    Ok((
        StatusCode::CREATED,
        AxumJson(CreatedTriggerAnswer::from(created)),
    ))
}

/// A page of a workflow's triggers, newest first (never their tokens or secrets);
/// for whoever may change the workflow.
#[utoipa::path(get, path = "/api/v1/workflows/{id}/triggers", tag = "triggers",
    params(in_path::Workflow, PageQuery),
    responses((status = 200, body = doc::TriggerPage), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn list(
    api: Api,
    Path(id): Path<WorkflowId>,
    Query(q): Query<PageQuery>,
) -> ApiResult<AxumJson<Page<Trigger>>> {
    let mut tx = api.read().await?;
    access::workflow(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    Ok(AxumJson(
        tx.list_triggers(id, &page(q.cursor, q.limit)).await?,
    ))
}

/// One trigger.
#[utoipa::path(get, path = "/api/v1/triggers/{id}", tag = "triggers", params(in_path::Trigger),
    responses((status = 200, body = Trigger), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get(api: Api, Path(id): Path<TriggerId>) -> ApiResult<AxumJson<Trigger>> {
    let mut tx = api.read().await?;
    Ok(AxumJson(writable(&mut *tx, &api, id).await?))
}

/// Renames, disables (`active: false`: its URL answers 404) or enables a trigger.
#[utoipa::path(patch, path = "/api/v1/triggers/{id}", tag = "triggers", params(in_path::Trigger),
    request_body = TriggerPatch,
    responses((status = 200, body = Trigger), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    api: Api,
    Path(id): Path<TriggerId>,
    Json(patch): Json<TriggerPatch>,
) -> ApiResult<AxumJson<Trigger>> {
    let mut tx = api.write().await?;
    let before = writable(&mut *tx, &api, id).await?;
    let after = tx.update_trigger(id, patch).await?;
    api.commit_change(tx, "trigger.update", id, &before, &after)
        .await?;
    Ok(AxumJson(after))
}

/// Deletes a trigger: its URL answers 404 from now on.
#[utoipa::path(delete, path = "/api/v1/triggers/{id}", tag = "triggers", params(in_path::Trigger),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(api: Api, Path(id): Path<TriggerId>) -> ApiResult<StatusCode> {
    let mut tx = api.write().await?;
    let before = writable(&mut *tx, &api, id).await?;
    tx.delete_trigger(id).await?;
    api.commit(tx, "trigger.delete", id, audit::json(&before), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a trigger a new token (its old URL answers 404 at once) and, when it
/// requires signatures, a new signing secret; both shown only now.
#[utoipa::path(post, path = "/api/v1/triggers/{id}/rotate", tag = "triggers", params(in_path::Trigger),
    responses((status = 200, body = CreatedTriggerAnswer), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn rotate(
    api: Api,
    Path(id): Path<TriggerId>,
) -> ApiResult<AxumJson<CreatedTriggerAnswer>> {
    let mut tx = api.write().await?;
    writable(&mut *tx, &api, id).await?;
    let rotated = tx.rotate_trigger(id).await?;
    api.commit(
        tx,
        "trigger.rotate",
        id,
        None,
        audit::json(&rotated.trigger),
    )
    .await?;
    Ok(AxumJson(CreatedTriggerAnswer::from(rotated)))
}

/// The 404 of every trigger that cannot fire, whatever the reason.
fn no_trigger() -> Problem {
    Problem::not_found("no trigger at this address")
}

/// A header's value as text; one that is not visible ASCII is refused (422).
fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> ApiResult<Option<&'h str>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| Problem::invalid(name, "must be visible ASCII text")),
    }
}

/// The run's input: the body's JSON object, `{"payload": v}` for any other JSON
/// value, `{}` for an empty body. A body that is not JSON is 400; one with a NUL
/// character 422.
fn input_of(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let value: Value = crate::error::decode(body)?;
    Ok(match value {
        Value::Object(_) => value,
        other => json!({ "payload": other }),
    })
}

/// Starts a run of the trigger's workflow (its current version) with the body as
/// input. With `Idempotency-Key`, a repeated key within 24 hours answers the run
/// the first call started (200, `replayed`). A trigger that requires signatures
/// needs `X-Flowstore-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
/// "<t>.<raw body>")>` with `t` within 5 minutes of now, never used before.
#[utoipa::path(post, path = "/hooks/{token}", tag = "triggers", security(()),
    params(in_path::HookToken,
        ("Idempotency-Key" = Option<String>, Header, description = "repeating a key within 24 hours answers the first call's run instead of starting another (1 to 255 visible ASCII characters)"),
        ("X-Flowstore-Signature" = Option<String>, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\" with the signing secret>; required when the trigger requires signatures")),
    request_body(content = Object, description = "the run's input: a JSON object, or any JSON value (given as `payload`); may be empty", content_type = "application/json"),
    responses((status = 202, body = TriggerFired, description = "a run was started"),
        (status = 200, body = TriggerFired, description = "a call with this Idempotency-Key already started a run: that run"),
        (status = 400, body = Problem, description = "the body is not JSON"),
        (status = 401, body = Problem, description = "the signature is missing, malformed, stale, wrong or already used"),
        (status = 404, body = Problem, description = "no trigger that may fire has this token"),
        (status = 409, body = Problem, description = "the workflow is archived or inactive"),
        (status = 422, body = Problem),
        (status = 429, body = Problem, description = "too many calls to this trigger: wait for Retry-After")))]
pub async fn fire(
    State(state): State<AppState>,
    origin: Origin,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::response::Response> {
    // Nothing that cannot be a token reaches the database.
    if !plausible_token(&token) {
        return Err(no_trigger());
    }
    let digest = flowstore_core::crypto::sha256_hex(&token);
    let bucket = uuid::Uuid::parse_str(&digest[..32]).map_err(|e| Problem::internal(&e))?;
    state.limiter().check(bucket).map_err(|wait| {
        let mut p = Problem::rate_limited(wait);
        p.detail = format!("too many calls to this trigger; retry in {wait} s");
        p
    })?;
    let body = body.map_err(crate::error::bytes_rejection)?;
    let mut tx = state.backend().begin().await?;
    let trigger = match tx.find_trigger(&token).await {
        Err(StoreError::NotFound { .. }) => return Err(no_trigger()),
        other => other?,
    };
    // The owner as they are now: active, allowed to start runs, and to execute this
    // workflow.
    let owner = match tx.get_user(trigger.owner_id).await {
        Err(StoreError::NotFound { .. }) => return Err(no_trigger()),
        other => other?,
    };
    if owner.status != UserStatus::Active || owner.role.rank() < Role::User.rank() {
        return Err(no_trigger());
    }
    let workflow = tx.get_workflow(trigger.workflow_id).await?;
    let as_owner = Viewer {
        user_id: Some(owner.id),
        admin: owner.role == Role::Admin,
    };
    if !viewer::may_use_workflow(&mut *tx, &as_owner, &workflow, SharePermission::Execute).await? {
        return Err(no_trigger());
    }
    let now = flowstore_core::time::now();
    let signature = if trigger.require_signature {
        let secret = tx.trigger_secret(trigger.id).await?;
        let header = header_text(&headers, SIGNATURE_HEADER).map_err(|_| {
            Problem::unauthenticated("the X-Flowstore-Signature header is malformed")
        })?;
        let verified = verify_signature(secret.expose(), header, &body, now.timestamp())
            .map_err(|e| Problem::unauthenticated(e.detail()))?;
        Some(verified)
    } else {
        None
    };
    let input = input_of(&body)?;
    let idempotency = header_text(&headers, IDEMPOTENCY_HEADER)?
        .map(|k| idempotency_key_hash(k).map_err(Problem::from))
        .transpose()?;
    if let Some(key) = &idempotency {
        if let Some(seen) = tx
            .find_receipt(trigger.id, ReceiptKind::Idempotency, key, now)
            .await?
        {
            let _ = tx.rollback().await;
            return replayed(&state, &trigger, seen.run_id).await;
        }
    }
    if matches!(
        workflow.status,
        WorkflowStatus::Archived | WorkflowStatus::Inactive
    ) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "the workflow is {}: its triggers do not fire",
                workflow.status
            ),
        )
        .with_field("status"));
    }
    let started = tx
        .start_run(StartRun {
            workflow_id: workflow.id,
            version: None,
            execution_id: None,
            input: Some(input),
            subject_task_id: None,
            priority: None,
            user_id: Some(owner.id.to_string()),
            metadata: Some(json!({ "trigger_id": trigger.id, "trigger_name": trigger.name })),
        })
        .await
        .map_err(|e| match e {
            // The body is the run's input: name it as the caller sent it.
            StoreError::Invalid { field, reason } if field == "input" => {
                Problem::invalid("body", reason)
            }
            other => other.into(),
        })?;
    let run = &started.run;
    if let Some(key) = &idempotency {
        let until = now + TimeDelta::hours(IDEMPOTENCY_WINDOW_HOURS);
        if !tx
            .record_receipt(trigger.id, ReceiptKind::Idempotency, key, run.id, until)
            .await?
        {
            // A concurrent call with the same key committed first: answer its run.
            let _ = tx.rollback().await;
            let mut tx = state.backend().begin_read().await?;
            let seen = tx
                .find_receipt(trigger.id, ReceiptKind::Idempotency, key, now)
                .await;
            let _ = tx.rollback().await;
            return match seen? {
                Some(seen) => replayed(&state, &trigger, seen.run_id).await,
                None => Err(Problem::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "a call with this Idempotency-Key is in progress; retry",
                )
                .with_field(IDEMPOTENCY_HEADER)),
            };
        }
    }
    if let Some(sig) = &signature {
        // Kept as long as its timestamp could still pass the window.
        let until =
            chrono::DateTime::from_timestamp(sig.timestamp + SIGNATURE_TOLERANCE_SECS + 1, 0)
                .unwrap_or(now + TimeDelta::seconds(2 * SIGNATURE_TOLERANCE_SECS));
        if !tx
            .record_receipt(
                trigger.id,
                ReceiptKind::Signature,
                &sig.receipt_hash,
                run.id,
                until,
            )
            .await?
        {
            let _ = tx.rollback().await;
            return Err(Problem::unauthenticated(
                "this signature was already used; sign each call anew",
            ));
        }
    }
    tx.mark_trigger_fired(trigger.id, now).await?;
    let mut entry = NewAuditEntry::new(
        ActorType::User,
        Some(owner.id.to_string()),
        "trigger.fire",
        "trigger",
        Some(trigger.id.to_string()),
    );
    entry.after = Some(json!({
        "run_id": run.id,
        "execution_id": run.execution_id,
        "workflow_id": workflow.id,
        "idempotency_key": idempotency.is_some(),
        "signed": signature.is_some(),
    }));
    entry.ip_address = origin.ip_address;
    entry.request_id = origin.request_id;
    tx.append_audit(entry).await?;
    let fired = TriggerFired {
        trigger_id: trigger.id,
        run_id: run.id,
        execution_id: run.execution_id.clone(),
        workflow_id: workflow.id,
        status: run.status.to_string(),
        replayed: false,
    };
    tx.commit().await?;
    state.notify_changed();
    Ok((StatusCode::ACCEPTED, AxumJson(fired)).into_response())
}

/// The answer to a repeated `Idempotency-Key`: the run the first call started.
async fn replayed(
    state: &AppState,
    trigger: &Trigger,
    run: RunId,
) -> ApiResult<axum::response::Response> {
    let mut tx = state.backend().begin_read().await?;
    let found = tx.get_execution(run).await;
    let _ = tx.rollback().await;
    let run = found?;
    Ok((
        StatusCode::OK,
        AxumJson(TriggerFired {
            trigger_id: trigger.id,
            run_id: run.id,
            execution_id: run.execution_id,
            workflow_id: trigger.workflow_id,
            status: run.status.to_string(),
            replayed: true,
        }),
    )
        .into_response())
}
