//! Storage for incoming webhook triggers and their receipts. Tokens arrive hashed and
//! secrets sealed from flowstore-core; these statements only move hashes and sealed
//! bytes.

use async_trait::async_trait;
use flowstore_core::crypto::{sha256_hex, Sealed, SecretString};
use flowstore_core::ids::{RunId, TriggerId, WorkflowId};
use flowstore_core::model::integration::open_clearly;
use flowstore_core::model::trigger::{
    plausible_token, trigger_name, CreatedTrigger, NewTrigger, Receipt, ReceiptKind, Trigger,
    TriggerPatch, TriggerRepo, TriggerSecrets,
};
use flowstore_core::time::Timestamp;
use flowstore_core::{time, Page, PageRequest, StoreError, StoreResult};

use crate::dialect::{ensure_exists, sql, sql_fmt, ts, Tx};
use crate::rows;

pub(crate) const TRIGGER_COLUMNS: &str = "id, workflow_id, owner_id, name, token_prefix, \
     require_signature, active, fire_count, last_fired_at, created_at, updated_at";

impl Tx {
    /// Refuses a name another trigger of the workflow has (before the UNIQUE
    /// constraint would, so both backends name the field alike).
    async fn trigger_name_free(
        &mut self,
        workflow: WorkflowId,
        name: &str,
        except: Option<TriggerId>,
    ) -> StoreResult<()> {
        rows::ensure_free(
            &mut self.tx,
            sql!(
                "SELECT 1 FROM webhook_triggers WHERE workflow_id = $1 AND name = $2
                AND ($3::uuid IS NULL OR id <> $3)"
            ),
            (workflow, name, except),
            "name",
            format!("this workflow already has a trigger named {name:?}"),
        )
        .await
    }

    /// The trigger `id` just written with `secrets`, with its token and signing
    /// secret to show once.
    async fn created_trigger(
        &mut self,
        id: TriggerId,
        secrets: TriggerSecrets,
    ) -> StoreResult<CreatedTrigger> {
        Ok(CreatedTrigger {
            trigger: self.get_trigger(id).await?,
            token: secrets.token,
            secret: secrets.secret.map(|(s, _)| s),
        })
    }

    fn trigger_secrets(&self, signed: bool) -> StoreResult<TriggerSecrets> {
        let keys = self.keys.clone();
        if signed {
            TriggerSecrets::generate(Some(keys.keyring()?))
        } else {
            TriggerSecrets::generate(None)
        }
    }
}

/// The sealed signing secret of `secrets` and its key's ID, as their columns hold
/// them (both NULL for a trigger without signatures).
fn sealed_columns(secrets: &TriggerSecrets) -> (Option<Vec<u8>>, Option<String>) {
    match &secrets.secret {
        Some((_, s)) => (Some(s.bytes.clone()), Some(s.key_id.clone())),
        None => (None, None),
    }
}

#[async_trait]
impl TriggerRepo for Tx {
    async fn create_trigger(&mut self, new: NewTrigger) -> StoreResult<CreatedTrigger> {
        let name = trigger_name(&new.name)?;
        let workflow = new
            .workflow_id
            .ok_or_else(|| StoreError::invalid("workflow_id", "is required"))?;
        let owner = new
            .owner_id
            .ok_or_else(|| StoreError::invalid("owner_id", "is required"))?;
        ensure_exists(&mut self.tx, "workflows", "workflow_id", Some(workflow.0)).await?;
        ensure_exists(&mut self.tx, "users", "owner_id", Some(owner.0)).await?;
        self.trigger_name_free(workflow, &name, None).await?;
        let secrets = self.trigger_secrets(new.require_signature)?;
        let id = TriggerId::new();
        let now = time::now();
        let (sealed, key_id) = sealed_columns(&secrets);
        sqlx::query(sql!(
            "INSERT INTO webhook_triggers (id, workflow_id, owner_id, name, token_prefix,
                token_hash, require_signature, secret_encrypted, encryption_key_id, active,
                created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, true, $10, $10)"
        ))
        .bind(id)
        .bind(workflow)
        .bind(owner)
        .bind(&name)
        .bind(&secrets.token_prefix)
        .bind(&secrets.token_hash)
        .bind(new.require_signature)
        .bind(sealed)
        .bind(key_id)
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        self.created_trigger(id, secrets).await
    }

    async fn get_trigger(&mut self, id: TriggerId) -> StoreResult<Trigger> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {TRIGGER_COLUMNS} FROM webhook_triggers WHERE id = $1"),
            "trigger",
            id,
        )
        .await
    }

    async fn list_triggers(
        &mut self,
        workflow_id: WorkflowId,
        page: &PageRequest,
    ) -> StoreResult<Page<Trigger>> {
        rows::page_with(
            &mut self.tx,
            sql_fmt!(
                "SELECT {TRIGGER_COLUMNS} FROM webhook_triggers
             WHERE workflow_id = $1 AND ($2::uuid IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3"
            ),
            page,
            |q, after, limit| q.bind(workflow_id).bind(after).bind(limit),
            |t: &Trigger| t.id.0,
        )
        .await
    }

    async fn update_trigger(&mut self, id: TriggerId, patch: TriggerPatch) -> StoreResult<Trigger> {
        let mut t = self.get_trigger(id).await?;
        if let Some(name) = patch.name {
            t.name = trigger_name(&name)?;
            self.trigger_name_free(t.workflow_id, &t.name, Some(id))
                .await?;
        }
        if let Some(active) = patch.active {
            t.active = active;
        }
        sqlx::query(sql!(
            "UPDATE webhook_triggers SET name = $2, active = $3, updated_at = $4 WHERE id = $1"
        ))
        .bind(id)
        .bind(&t.name)
        .bind(t.active)
        .bind(ts(&time::now()))
        .execute(&mut *self.tx)
        .await?;
        self.get_trigger(id).await
    }

    async fn rotate_trigger(&mut self, id: TriggerId) -> StoreResult<CreatedTrigger> {
        let t = self.get_trigger(id).await?;
        let secrets = self.trigger_secrets(t.require_signature)?;
        let (sealed, key_id) = sealed_columns(&secrets);
        sqlx::query(sql!(
            "UPDATE webhook_triggers SET token_prefix = $2, token_hash = $3,
                secret_encrypted = $4, encryption_key_id = $5, updated_at = $6
             WHERE id = $1"
        ))
        .bind(id)
        .bind(&secrets.token_prefix)
        .bind(&secrets.token_hash)
        .bind(sealed)
        .bind(key_id)
        .bind(ts(&time::now()))
        .execute(&mut *self.tx)
        .await?;
        self.created_trigger(id, secrets).await
    }

    async fn delete_trigger(&mut self, id: TriggerId) -> StoreResult<()> {
        rows::delete_one(
            &mut self.tx,
            sql!("DELETE FROM webhook_triggers WHERE id = $1"),
            "trigger",
            id,
        )
        .await
    }

    async fn find_trigger(&mut self, presented: &str) -> StoreResult<Trigger> {
        // The token itself never goes into an error message.
        let missing = || StoreError::not_found("trigger", "for the token presented");
        if !plausible_token(presented) {
            return Err(missing());
        }
        let found: Option<Trigger> = sqlx::query_as(sql_fmt!(
            "SELECT {TRIGGER_COLUMNS} FROM webhook_triggers WHERE token_hash = $1 AND active"
        ))
        .bind(sha256_hex(presented))
        .fetch_optional(&mut *self.tx)
        .await?;
        found.ok_or_else(missing)
    }

    async fn trigger_secret(&mut self, id: TriggerId) -> StoreResult<SecretString> {
        let row: Option<(Option<Vec<u8>>, Option<String>)> = sqlx::query_as(sql!(
            "SELECT secret_encrypted, encryption_key_id FROM webhook_triggers WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        let (Some(bytes), Some(key_id)) = row.unwrap_or((None, None)) else {
            return Err(StoreError::not_found("trigger secret", id));
        };
        let keys = self.keys.clone();
        let plain = open_clearly(
            keys.keyring()?,
            &Sealed { bytes, key_id },
            &format!("the secret of trigger {id}"),
        )?;
        String::from_utf8(plain)
            .map(SecretString::new)
            .map_err(|_| StoreError::internal(format!("the secret of trigger {id} is not text")))
    }

    async fn find_receipt(
        &mut self,
        trigger: TriggerId,
        kind: ReceiptKind,
        key_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<Receipt>> {
        let run: Option<RunId> = sqlx::query_scalar(sql!(
            "SELECT run_id FROM trigger_receipts
             WHERE trigger_id = $1 AND kind = $2 AND key_hash = $3 AND expires_at > $4"
        ))
        .bind(trigger)
        .bind(kind)
        .bind(key_hash)
        .bind(ts(&now))
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(run.map(|run_id| Receipt { run_id }))
    }

    async fn record_receipt(
        &mut self,
        trigger: TriggerId,
        kind: ReceiptKind,
        key_hash: &str,
        run: RunId,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        let now = time::now();
        sqlx::query(sql!(
            "DELETE FROM trigger_receipts
             WHERE trigger_id = $1 AND kind = $2 AND key_hash = $3 AND expires_at <= $4"
        ))
        .bind(trigger)
        .bind(kind)
        .bind(key_hash)
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        let done = sqlx::query(sql!(
            "INSERT INTO trigger_receipts (id, trigger_id, kind, key_hash, run_id, expires_at,
                created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (trigger_id, kind, key_hash) DO NOTHING"
        ))
        .bind(uuid::Uuid::now_v7())
        .bind(trigger)
        .bind(kind)
        .bind(key_hash)
        .bind(run)
        .bind(ts(&time::truncate(expires_at)))
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_trigger_fired(&mut self, id: TriggerId, at: Timestamp) -> StoreResult<()> {
        sqlx::query(sql!(
            "UPDATE webhook_triggers SET fire_count = fire_count + 1, last_fired_at = $2
             WHERE id = $1"
        ))
        .bind(id)
        .bind(ts(&at))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn prune_trigger_receipts(&mut self, now: Timestamp, limit: u32) -> StoreResult<u64> {
        let done = sqlx::query(sql!(
            "DELETE FROM trigger_receipts WHERE id IN (
                SELECT id FROM trigger_receipts WHERE expires_at <= $1
                 ORDER BY expires_at LIMIT $2)"
        ))
        .bind(ts(&now))
        .bind(i64::from(limit))
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected())
    }
}
