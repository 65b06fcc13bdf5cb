//! Credentials and webhooks. Each belongs to the user of the key that created it;
//! its owner and admins may use it, and to anyone else it does not exist (404). A
//! credential's data is never returned except by `POST /credentials/{id}/reveal`; a
//! webhook's secret only once, when it is created. Request bodies are wrapped at
//! once so that secrets cannot reach a log.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::{CredentialId, UserId, WebhookId, WorkflowId};
use flowstore_core::model::integration::{
    Credential, CredentialFilter, CredentialPatch, CredentialType, DeliveryStatus, NewCredential,
    NewDelivery, NewWebhook, Webhook, WebhookDelivery, WebhookFilter, WebhookPatch,
};
use flowstore_core::{Page, StoreError, Tx};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::routes::in_path;
use crate::routes::Api;
use crate::state::AppState;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_credential, list_credentials))
        .routes(routes!(
            get_credential,
            update_credential,
            delete_credential
        ))
        .routes(routes!(reveal_credential))
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(deliveries))
        .routes(routes!(send_test))
}

/// A credential with its decrypted data: the answer of an explicit reveal only.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevealedCredential {
    /// The credential's metadata.
    pub credential: Credential,
    /// Its data, decrypted.
    pub data: Value,
}

/// A webhook just created: the only time its signing secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// The webhook as stored.
    pub webhook: Webhook,
    /// The secret that signs its deliveries (`X-Flowstore-Signature`).
    pub secret: String,
}

paged_query_params! {
    /// Filters and page of `GET /credentials`.
    pub struct CredentialQuery {
        /// Only this user's (an admin only; others always see their own).
        pub owner_id: Option<String>,
        /// Only of this type.
        #[serde(rename = "type")]
        #[param(rename = "type")]
        pub credential_type: Option<String>,
    }
}

paged_query_params! {
    /// Filters and page of `GET /webhooks`.
    pub struct WebhookQuery {
        /// Only this user's (an admin only; others always see their own).
        pub owner_id: Option<String>,
        /// Only those filtered on this workflow.
        pub workflow_id: Option<String>,
        /// Only active (`true`) or inactive (`false`) ones.
        pub active: Option<bool>,
    }
}

paged_query_params! {
    /// Filter and page of `GET /webhooks/{id}/deliveries`.
    pub struct DeliveryQuery {
        /// Only deliveries in this status.
        pub status: Option<String>,
    }
}

/// Whether `caller` may see an object owned by `owner`: admins see all, others their
/// own (an unowned object is the admins').
fn visible(caller: &Caller, owner: Option<UserId>) -> bool {
    caller.is_admin() || (owner.is_some() && owner == caller.0.user_id)
}

/// The owner of what `caller` creates: its key's user. A non-admin key that acts for
/// no user could not find it again, so it may not create any.
fn creator(caller: &Caller) -> ApiResult<Option<UserId>> {
    match caller.0.user_id {
        Some(u) => Ok(Some(u)),
        None if caller.is_admin() => Ok(None),
        None => Err(Problem::forbidden(
            "this API key acts for no user; credentials and webhooks need one",
        )),
    }
}

/// Whose objects a list shows: an admin's choice (everyone when none), else one's own.
fn list_owner(caller: &Caller, asked: Option<&str>) -> ApiResult<Option<UserId>> {
    let asked = super::parse_opt::<UserId>("owner_id", asked)?;
    if caller.is_admin() {
        return Ok(asked);
    }
    let me = caller.0.user_id.ok_or_else(|| {
        Problem::forbidden("this API key acts for no user; it owns no credentials or webhooks")
    })?;
    match asked {
        Some(other) if other != me => Err(Problem::forbidden(
            "only an admin may list another user's credentials or webhooks",
        )),
        _ => Ok(Some(me)),
    }
}

/// The ID of a `what` given in a path: text that is no such ID names nothing (404).
fn parse_id<T: std::str::FromStr>(what: &str, id: &str) -> ApiResult<T> {
    id.parse()
        .map_err(|_| Problem::not_found(format!("no {what} {id}")))
}

/// Refuses a `what` that `caller` may not see (see [`visible`]) as if it did not
/// exist.
fn hidden_unless_visible(
    caller: &Caller,
    owner: Option<UserId>,
    what: &'static str,
    id: impl std::fmt::Display,
) -> ApiResult<()> {
    if visible(caller, owner) {
        Ok(())
    } else {
        Err(StoreError::not_found(what, id).into())
    }
}

async fn credential(tx: &mut dyn Tx, caller: &Caller, id: &str) -> ApiResult<Credential> {
    let id: CredentialId = parse_id("credential", id)?;
    let c = tx.get_credential(id).await?;
    hidden_unless_visible(caller, c.owner_id, "credential", id)?;
    Ok(c)
}

async fn webhook(tx: &mut dyn Tx, caller: &Caller, id: &str) -> ApiResult<Webhook> {
    let id: WebhookId = parse_id("webhook", id)?;
    let w = tx.get_webhook(id).await?;
    hidden_unless_visible(caller, w.owner_id, "webhook", id)?;
    Ok(w)
}

/// Stores a credential; its data is sealed and not shown again.
#[utoipa::path(post, path = "/api/v1/credentials", tag = "credentials", request_body = doc::NewCredential,
    responses((status = 201, body = doc::Credential), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_credential(
    api: Api,
    Json(mut new): Json<NewCredential>,
) -> ApiResult<impl IntoResponse> {
    new.owner_id = creator(&api.caller)?;
    let mut tx = api.write().await?;
    let c = tx.create_credential(new).await?;
    let after = audit::json(&c);
    api.commit(tx, "credential.create", c.id, None, after)
        .await?;
    Ok((StatusCode::CREATED, AxumJson(c)))
}

/// A page of credentials (metadata only), newest first.
#[utoipa::path(get, path = "/api/v1/credentials", tag = "credentials", params(CredentialQuery),
    responses((status = 200, body = doc::CredentialPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_credentials(
    api: Api,
    Query(q): Query<CredentialQuery>,
) -> ApiResult<AxumJson<Page<Credential>>> {
    let filter = CredentialFilter {
        owner_id: list_owner(&api.caller, q.owner_id.as_deref())?,
        credential_type: super::parse_opt::<CredentialType>("type", q.credential_type.as_deref())?,
    };
    let mut tx = api.read().await?;
    Ok(AxumJson(
        tx.list_credentials(&filter, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// One credential's metadata.
#[utoipa::path(get, path = "/api/v1/credentials/{id}", tag = "credentials", params(in_path::Id),
    responses((status = 200, body = doc::Credential), (status = 404, body = Problem)))]
pub async fn get_credential(api: Api, Path(id): Path<String>) -> ApiResult<AxumJson<Credential>> {
    let mut tx = api.read().await?;
    Ok(AxumJson(credential(&mut *tx, &api.caller, &id).await?))
}

/// Changes a credential; giving `data` replaces (rotates) the secret.
#[utoipa::path(patch, path = "/api/v1/credentials/{id}", tag = "credentials", params(in_path::Id),
    request_body = doc::CredentialPatch,
    responses((status = 200, body = doc::Credential), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_credential(
    api: Api,
    Path(id): Path<String>,
    Json(patch): Json<CredentialPatch>,
) -> ApiResult<AxumJson<Credential>> {
    let mut tx = api.write().await?;
    let before = credential(&mut *tx, &api.caller, &id).await?;
    let c = tx.update_credential(before.id, patch).await?;
    api.commit_change(tx, "credential.update", c.id, &before, &c)
        .await?;
    Ok(AxumJson(c))
}

/// Deletes a credential.
#[utoipa::path(delete, path = "/api/v1/credentials/{id}", tag = "credentials", params(in_path::Id),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_credential(api: Api, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let mut tx = api.write().await?;
    let c = credential(&mut *tx, &api.caller, &id).await?;
    tx.delete_credential(c.id).await?;
    let before = audit::json(&c);
    api.commit(tx, "credential.delete", c.id, before, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to revealing an expired credential: 409 of type `credential-expired`
/// naming `expires_at` (the credential exists; its state forbids the use until it is
/// given new data and a later expiry). Other errors as usual.
fn reveal_problem(e: StoreError) -> Problem {
    match e {
        StoreError::Conflict {
            ref field,
            ref message,
        } if field == "expires_at" => {
            Problem::new(StatusCode::CONFLICT, "credential-expired", message.clone())
                .with_field("expires_at")
        }
        other => other.into(),
    }
}

/// Decrypts a credential's data for its owner or an admin (and records the use). An
/// expired credential is refused: 409 of type `credential-expired`.
#[utoipa::path(post, path = "/api/v1/credentials/{id}/reveal", tag = "credentials", params(in_path::Id),
    responses((status = 200, body = RevealedCredential), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the credential has expired (type `credential-expired`, field `expires_at`)")))]
pub async fn reveal_credential(
    api: Api,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<RevealedCredential>> {
    let mut tx = api.write().await?;
    let c = credential(&mut *tx, &api.caller, &id).await?;
    let (credential, data) = tx.reveal_credential(c.id).await.map_err(reveal_problem)?;
    // Who read a secret is recorded, never the secret itself.
    api.commit(tx, "credential.reveal", c.id, None, None)
        .await?;
    tracing::info!(credential = %credential.id, caller = %api.caller.who(), "credential revealed");
    Ok(AxumJson(RevealedCredential {
        credential,
        data: data.reveal().clone(),
    }))
}

/// Registers a webhook; the answer carries its signing secret, shown only now. Its
/// URL must point at a public address (not loopback, private, link-local, a
/// metadata service or a local name) unless the operator allows it with
/// `webhook_allow`; otherwise 422 naming `url`.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = doc::NewWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_webhook(
    api: Api,
    Json(mut new): Json<NewWebhook>,
) -> ApiResult<impl IntoResponse> {
    new.owner_id = creator(&api.caller)?;
    // Where the server may be made to send requests is settled before the
    // transaction (nothing is looked up; deliveries check resolved addresses).
    new.check_destination(&api.state.config().webhooks.destinations)?;
    let mut tx = api.write().await?;
    if let Some(wf) = new.workflow_id {
        // Filtering on a workflow reveals its events: the api.caller must be able to read it.
        match crate::access::workflow(
            &mut *tx,
            &api.caller,
            wf,
            flowstore_core::model::workflow::SharePermission::Read,
        )
        .await
        {
            Err(p) if p.status == 404 => {
                return Err(Problem::invalid(
                    "workflow_id",
                    "refers to no workflow you can read",
                ))
            }
            other => {
                other?;
            }
        }
    }
    let created = tx.create_webhook(new).await?;
    let after = audit::json(&created.webhook);
    let id = created.webhook.id;
    api.commit(tx, "webhook.create", id, None, after).await?;
    Ok((
        StatusCode::CREATED,
        AxumJson(CreatedWebhook {
            webhook: created.webhook,
            secret: created.secret.expose().to_string(),
        }),
    ))
}

/// A page of webhooks, newest first (never their secrets).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", params(WebhookQuery),
    responses((status = 200, body = doc::WebhookPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_webhooks(
    api: Api,
    Query(q): Query<WebhookQuery>,
) -> ApiResult<AxumJson<Page<Webhook>>> {
    let filter = WebhookFilter {
        owner_id: list_owner(&api.caller, q.owner_id.as_deref())?,
        workflow_id: super::parse_opt::<WorkflowId>("workflow_id", q.workflow_id.as_deref())?,
        active: q.active,
    };
    let mut tx = api.read().await?;
    Ok(AxumJson(
        tx.list_webhooks(&filter, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// One webhook.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(in_path::Id),
    responses((status = 200, body = doc::Webhook), (status = 404, body = Problem)))]
pub async fn get_webhook(api: Api, Path(id): Path<String>) -> ApiResult<AxumJson<Webhook>> {
    let mut tx = api.read().await?;
    Ok(AxumJson(webhook(&mut *tx, &api.caller, &id).await?))
}

/// Changes a webhook (URL, events, headers, active, secret, workflow filter); a new
/// URL is checked as at creation.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(in_path::Id),
    request_body = doc::WebhookPatch,
    responses((status = 200, body = doc::Webhook), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_webhook(
    api: Api,
    Path(id): Path<String>,
    Json(patch): Json<WebhookPatch>,
) -> ApiResult<AxumJson<Webhook>> {
    patch.check_destination(&api.state.config().webhooks.destinations)?;
    let mut tx = api.write().await?;
    let before = webhook(&mut *tx, &api.caller, &id).await?;
    let w = tx.update_webhook(before.id, patch).await?;
    api.commit_change(tx, "webhook.update", w.id, &before, &w)
        .await?;
    Ok(AxumJson(w))
}

/// Deletes a webhook and its deliveries.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(in_path::Id),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_webhook(api: Api, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let mut tx = api.write().await?;
    let w = webhook(&mut *tx, &api.caller, &id).await?;
    tx.delete_webhook(w.id).await?;
    let before = audit::json(&w);
    api.commit(tx, "webhook.delete", w.id, before, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of a webhook's deliveries, newest first, with attempts and outcomes (of
/// an answer, its status and a summary, never its body).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", params(in_path::Id, DeliveryQuery),
    responses((status = 200, body = doc::DeliveryPage), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn deliveries(
    api: Api,
    Path(id): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> ApiResult<AxumJson<Page<WebhookDelivery>>> {
    let status = super::parse_opt::<DeliveryStatus>("status", q.status.as_deref())?;
    let mut tx = api.read().await?;
    let w = webhook(&mut *tx, &api.caller, &id).await?;
    Ok(AxumJson(
        tx.list_deliveries(w.id, status, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// Queues a `webhook.test` delivery, sent by the dispatcher at once (also to an
/// inactive webhook once it is turned on).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", params(in_path::Id),
    responses((status = 202, body = doc::WebhookDelivery), (status = 404, body = Problem)))]
pub async fn send_test(api: Api, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    let mut tx = api.write().await?;
    let w = webhook(&mut *tx, &api.caller, &id).await?;
    let d = tx
        .record_delivery(NewDelivery::test(w.id, flowstore_core::time::now()))
        .await?;
    tx.commit().await?;
    api.state.notify_changed();
    Ok((StatusCode::ACCEPTED, AxumJson(d)))
}
