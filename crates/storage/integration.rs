//! Storage for credentials and webhooks (their deliveries, the dispatcher's
//! queue and key rotation are in `integration_dispatch.rs`). Secrets are sealed in
//! flowstore-core before they reach SQL; these statements only move sealed bytes.

use async_trait::async_trait;
use flowstore_core::crypto::{Sealed, SecretString};
use flowstore_core::ids::{CredentialId, UserId, WebhookId};
use flowstore_core::model::integration::{
    open_clearly, open_json, CreatedWebhook, Credential, CredentialFilter, CredentialPatch,
    NewCredential, NewWebhook, Webhook, WebhookFilter, WebhookPatch,
};
use flowstore_core::model::integration::{CredentialRepo, WebhookRepo};
use flowstore_core::model::ops::SecretValue;
use flowstore_core::time::Timestamp;
use flowstore_core::{time, Page, PageRequest, StoreError, StoreResult};

use crate::dialect::{ensure_exists, sql, sql_fmt, sql_owned, ts, ts_opt, Tx};
use crate::rows;

pub(crate) const CREDENTIAL_COLUMNS: &str = "id, owner_id, name, type, description, \
     encryption_key_id, expires_at, last_used_at, rotated_at, created_at, updated_at";

pub(crate) const WEBHOOK_COLUMNS: &str = "id, owner_id, workflow_id, name, url, events, \
     headers, active, failure_count, last_triggered_at, encryption_key_id, created_at, \
     updated_at";

impl Tx {
    /// Locks a row for a read-modify-write, so concurrent patches apply one after
    /// the other instead of one overwriting the other.
    async fn lock_row(&mut self, table: &str, id: uuid::Uuid) -> StoreResult<()> {
        sqlx::query(&sql_owned(format!(
            "SELECT 1 FROM {table} WHERE id = $1 FOR UPDATE"
        )))
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Refuses a name the owner already uses (also for unowned credentials, which the
    /// UNIQUE constraint cannot see because NULLs differ).
    async fn credential_name_free(
        &mut self,
        owner: Option<UserId>,
        name: &str,
        except: Option<CredentialId>,
    ) -> StoreResult<()> {
        rows::ensure_free(
            &mut self.tx,
            sql!(
                "SELECT 1 FROM credentials WHERE owner_id IS NOT DISTINCT FROM $1 AND name = $2
                AND ($3::uuid IS NULL OR id <> $3)"
            ),
            (owner, name, except),
            "name",
            format!("a credential named {name:?} already exists"),
        )
        .await
    }

    async fn webhook_url_free(
        &mut self,
        owner: Option<UserId>,
        url: &str,
        except: Option<WebhookId>,
    ) -> StoreResult<()> {
        rows::ensure_free(
            &mut self.tx,
            sql!(
                "SELECT 1 FROM webhooks WHERE owner_id IS NOT DISTINCT FROM $1 AND url = $2
                AND ($3::uuid IS NULL OR id <> $3)"
            ),
            (owner, url, except),
            "url",
            "a webhook with this URL already exists",
        )
        .await
    }
}

#[async_trait]
impl CredentialRepo for Tx {
    async fn create_credential(&mut self, new: NewCredential) -> StoreResult<Credential> {
        let keys = self.keys.clone();
        let w = new.prepare(keys.keyring()?, time::now())?;
        let c = &w.credential;
        ensure_exists(&mut self.tx, "users", "owner_id", c.owner_id.map(|u| u.0)).await?;
        self.credential_name_free(c.owner_id, &c.name, None).await?;
        sqlx::query(sql!(
            "INSERT INTO credentials (id, owner_id, name, type, description, encrypted_data,
                encryption_key_id, expires_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
        ))
        .bind(c.id)
        .bind(c.owner_id)
        .bind(&c.name)
        .bind(c.credential_type)
        .bind(&c.description)
        .bind(&w.sealed.bytes)
        .bind(&w.sealed.key_id)
        .bind(ts_opt(&c.expires_at))
        .bind(ts(&c.created_at))
        .execute(&mut *self.tx)
        .await?;
        self.get_credential(c.id).await
    }

    async fn get_credential(&mut self, id: CredentialId) -> StoreResult<Credential> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE id = $1"),
            "credential",
            id,
        )
        .await
    }

    async fn reveal_credential(
        &mut self,
        id: CredentialId,
    ) -> StoreResult<(Credential, SecretValue)> {
        self.get_credential(id).await?.ensure_usable(time::now())?;
        let row: Option<(Vec<u8>, String)> = sqlx::query_as(sql!(
            "SELECT encrypted_data, encryption_key_id FROM credentials WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        let (bytes, key_id) = row.ok_or_else(|| StoreError::not_found("credential", id))?;
        let keys = self.keys.clone();
        let value = open_json(
            keys.keyring()?,
            Sealed { bytes, key_id },
            &format!("credential {id}"),
        )?;
        sqlx::query(sql!(
            "UPDATE credentials SET last_used_at = $2 WHERE id = $1"
        ))
        .bind(id)
        .bind(ts(&time::now()))
        .execute(&mut *self.tx)
        .await?;
        Ok((self.get_credential(id).await?, SecretValue::new(value)))
    }

    async fn list_credentials(
        &mut self,
        filter: &CredentialFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Credential>> {
        rows::page_with(
            &mut self.tx,
            sql_fmt!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials
             WHERE ($1::uuid IS NULL OR owner_id = $1) AND ($2::text IS NULL OR type = $2)
               AND ($3::uuid IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4"
            ),
            page,
            |q, after, limit| {
                q.bind(filter.owner_id)
                    .bind(filter.credential_type)
                    .bind(after)
                    .bind(limit)
            },
            |c: &Credential| c.id.0,
        )
        .await
    }

    async fn update_credential(
        &mut self,
        id: CredentialId,
        patch: CredentialPatch,
    ) -> StoreResult<Credential> {
        self.lock_row("credentials", id.0).await?;
        let mut c = self.get_credential(id).await?;
        let keys = self.keys.clone();
        let sealed = patch.apply(&mut c, || keys.keyring(), time::now())?;
        self.credential_name_free(c.owner_id, &c.name, Some(id))
            .await?;
        sqlx::query(sql!(
            "UPDATE credentials SET name = $2, description = $3, expires_at = $4,
                encrypted_data = coalesce($5, encrypted_data), encryption_key_id = $6,
                rotated_at = $7, updated_at = $8
             WHERE id = $1"
        ))
        .bind(id)
        .bind(&c.name)
        .bind(&c.description)
        .bind(ts_opt(&c.expires_at))
        .bind(sealed.as_ref().map(|s| s.bytes.clone()))
        .bind(&c.encryption_key_id)
        .bind(ts_opt(&c.rotated_at))
        .bind(ts(&c.updated_at))
        .execute(&mut *self.tx)
        .await?;
        self.get_credential(id).await
    }

    async fn delete_credential(&mut self, id: CredentialId) -> StoreResult<()> {
        rows::delete_one(
            &mut self.tx,
            sql!("DELETE FROM credentials WHERE id = $1"),
            "credential",
            id,
        )
        .await
    }

    async fn credentials_expiring_untold(
        &mut self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Credential>> {
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials
             WHERE expires_at > $1 AND expires_at <= $2
               AND NOT EXISTS (SELECT 1 FROM credential_expiry_notices n
                                WHERE n.credential_id = credentials.id
                                  AND n.expires_at = credentials.expires_at)
             ORDER BY expires_at, id LIMIT $3"
        ))
        .bind(ts(&now))
        .bind(ts(&until))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn note_expiry_told(
        &mut self,
        id: CredentialId,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(sql!(
            "INSERT INTO credential_expiry_notices (credential_id, expires_at, created_at)
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
        ))
        .bind(id)
        .bind(ts(&expires_at))
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl WebhookRepo for Tx {
    async fn create_webhook(&mut self, new: NewWebhook) -> StoreResult<CreatedWebhook> {
        let keys = self.keys.clone();
        let w = new.prepare(keys.keyring()?, time::now())?;
        let h = &w.webhook;
        ensure_exists(&mut self.tx, "users", "owner_id", h.owner_id.map(|u| u.0)).await?;
        ensure_exists(
            &mut self.tx,
            "workflows",
            "workflow_id",
            h.workflow_id.map(|u| u.0),
        )
        .await?;
        self.webhook_url_free(h.owner_id, &h.url, None).await?;
        sqlx::query(sql!(
            "INSERT INTO webhooks (id, owner_id, workflow_id, name, url, secret_encrypted,
                encryption_key_id, events, headers, active, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)"
        ))
        .bind(h.id)
        .bind(h.owner_id)
        .bind(h.workflow_id)
        .bind(&h.name)
        .bind(&h.url)
        .bind(&w.sealed.bytes)
        .bind(&w.sealed.key_id)
        .bind(serde_json::json!(h.events))
        .bind(&h.headers)
        .bind(h.active)
        .bind(ts(&h.created_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(CreatedWebhook {
            webhook: self.get_webhook(h.id).await?,
            secret: w.secret,
        })
    }

    async fn get_webhook(&mut self, id: WebhookId) -> StoreResult<Webhook> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"),
            "webhook",
            id,
        )
        .await
    }

    async fn list_webhooks(
        &mut self,
        filter: &WebhookFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Webhook>> {
        rows::page_with(
            &mut self.tx,
            sql_fmt!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks
             WHERE ($1::uuid IS NULL OR owner_id = $1) AND ($2::uuid IS NULL OR workflow_id = $2)
               AND ($3::bool IS NULL OR active = $3) AND ($4::uuid IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5"
            ),
            page,
            |q, after, limit| {
                q.bind(filter.owner_id)
                    .bind(filter.workflow_id)
                    .bind(filter.active)
                    .bind(after)
                    .bind(limit)
            },
            |w: &Webhook| w.id.0,
        )
        .await
    }

    async fn update_webhook(&mut self, id: WebhookId, patch: WebhookPatch) -> StoreResult<Webhook> {
        self.lock_row("webhooks", id.0).await?;
        let mut w = self.get_webhook(id).await?;
        let keys = self.keys.clone();
        let sealed = patch.apply(&mut w, || keys.keyring(), time::now())?;
        ensure_exists(
            &mut self.tx,
            "workflows",
            "workflow_id",
            w.workflow_id.map(|u| u.0),
        )
        .await?;
        self.webhook_url_free(w.owner_id, &w.url, Some(id)).await?;
        sqlx::query(sql!(
            "UPDATE webhooks SET name = $2, url = $3, events = $4, headers = $5, active = $6,
                workflow_id = $7, failure_count = $8,
                secret_encrypted = coalesce($9, secret_encrypted), encryption_key_id = $10,
                updated_at = $11
             WHERE id = $1"
        ))
        .bind(id)
        .bind(&w.name)
        .bind(&w.url)
        .bind(serde_json::json!(w.events))
        .bind(&w.headers)
        .bind(w.active)
        .bind(w.workflow_id)
        .bind(w.failure_count)
        .bind(sealed.as_ref().map(|s| s.bytes.clone()))
        .bind(&w.encryption_key_id)
        .bind(ts(&w.updated_at))
        .execute(&mut *self.tx)
        .await?;
        self.get_webhook(id).await
    }

    async fn delete_webhook(&mut self, id: WebhookId) -> StoreResult<()> {
        rows::delete_one(
            &mut self.tx,
            sql!("DELETE FROM webhooks WHERE id = $1"),
            "webhook",
            id,
        )
        .await
    }

    async fn webhook_secret(&mut self, id: WebhookId) -> StoreResult<SecretString> {
        let row: Option<(Vec<u8>, String)> = sqlx::query_as(sql!(
            "SELECT secret_encrypted, encryption_key_id FROM webhooks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        let (bytes, key_id) = row.ok_or_else(|| StoreError::not_found("webhook", id))?;
        let keys = self.keys.clone();
        let plain = open_clearly(
            keys.keyring()?,
            &Sealed { bytes, key_id },
            &format!("the secret of webhook {id}"),
        )?;
        String::from_utf8(plain)
            .map(SecretString::new)
            .map_err(|_| StoreError::internal(format!("the secret of webhook {id} is not text")))
    }
}
