//! Credentials, webhooks and webhook deliveries (seed 004's integration area).
//!
//! A credential's data and a webhook's signing secret are sealed with the keyring
//! (AES-256-GCM, the sealing key's ID stored beside each row) before they reach the
//! database, exactly as sensitive configuration values are; what callers get back
//! is metadata, and a decrypted value only through the explicit reveal operations,
//! wrapped so that it prints as `<redacted>`. Webhook types are in
//! `integration/webhook.rs`, deliveries and their retry rules in
//! `integration/delivery.rs`, and the rule for where deliveries may go in
//! `integration/destination.rs`.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::crypto::{Keyring, Sealed, SecretString};
use crate::ids::{CredentialId, DeliveryId, UserId, WebhookId};
use crate::model::nullable;
use crate::model::ops::SecretValue;
use crate::text_enum;
use crate::time::Timestamp;
use crate::validate;
use crate::{Page, PageRequest, StoreError, StoreResult};

mod audience;
mod delivery;
mod destination;
mod webhook;

pub use audience::Audience;
pub use delivery::{
    retry_delay, AttemptResult, ClaimedDelivery, DeliveryBacklog, DeliveryStatus, FanOut,
    NewDelivery, RetryPolicy, WebhookDelivery, MAX_RESPONSE_BODY_BYTES,
};
pub use destination::{address_reason, Destinations, Refused, ALLOW_SETTING};
pub use webhook::{
    event_patterns, webhook_destination, webhook_headers, webhook_secret, webhook_url,
    CreatedWebhook, NewWebhook, Webhook, WebhookFilter, WebhookPatch, WebhookWrite,
    MAX_WEBHOOK_URL_CHARS,
};

text_enum!(
    /// What kind of secret a credential holds.
    CredentialType, "type" {
        /// An API key or token.
        ApiKey => "api_key",
        /// OAuth 2 client or tokens.
        OAuth2 => "oauth2",
        /// A user name and password.
        BasicAuth => "basic_auth",
        /// A JSON Web Token.
        Jwt => "jwt",
        /// An SSH private key.
        SshKey => "ssh_key",
        /// Database connection details.
        Database => "database",
        /// Anything else.
        Custom => "custom",
    }
);

// A sensitive value may be given in a request body; it is wrapped at once so that
// it cannot reach a log through `Debug` afterwards.
impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(SecretValue::new)
    }
}

/// A credential's metadata: everything but its data, which stays sealed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Credential {
    /// Its ID.
    pub id: CredentialId,
    /// The user it belongs to; `None` for one only admins manage.
    pub owner_id: Option<UserId>,
    /// Its name, unique per owner.
    pub name: String,
    /// What kind of secret it holds.
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub credential_type: CredentialType,
    /// What it is for.
    pub description: Option<String>,
    /// The ID of the key that sealed its data.
    pub encryption_key_id: String,
    /// When it stops being valid.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// When its data was last revealed.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_used_at: Option<Timestamp>,
    /// When its secret was last rotated: its data replaced through an update, or
    /// re-sealed under a new encryption key by `flowstore keys rotate`. Either way
    /// what protected it before no longer does.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub rotated_at: Option<Timestamp>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// What a caller gives to store a credential.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    /// Its name: required, at most 255 characters, unique per owner.
    pub name: String,
    /// What kind of secret it holds.
    #[serde(rename = "type")]
    pub credential_type: CredentialType,
    /// The secret itself (any JSON but `null`); sealed before it is stored.
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub data: SecretValue,
    /// What it is for.
    pub description: Option<String>,
    /// When it stops being valid.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// The user it belongs to. Not read from request bodies: the server sets it to
    /// the caller's user.
    #[serde(skip)]
    pub owner_id: Option<UserId>,
}

patch_struct! {
    /// What a caller may change on a credential. Giving `data` replaces the secret (a
    /// rotation: `rotated_at` is set).
    #[derive(Clone, Debug, Default, Deserialize)]
    pub struct CredentialPatch {
        /// A new name.
        pub name: Option<String>,
        /// A new description; `null` clears it.
        #[serde(deserialize_with = "nullable")]
        pub description: Option<Option<String>>,
        /// A new expiry; `null` clears it.
        #[serde(deserialize_with = "nullable")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
        pub expires_at: Option<Option<Timestamp>>,
        /// A new secret.
        #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
        pub data: Option<SecretValue>,
    }
}

/// Which credentials a list returns; every field set narrows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CredentialFilter {
    /// Only this user's.
    pub owner_id: Option<UserId>,
    /// Only of this type.
    pub credential_type: Option<CredentialType>,
}

/// A credential checked and sealed, ready to insert.
#[derive(Clone, Debug)]
pub struct CredentialWrite {
    /// Its metadata as it will be stored.
    pub credential: Credential,
    /// Its sealed data.
    pub sealed: Sealed,
}

/// Checks a credential's name.
pub fn credential_name(name: &str) -> StoreResult<String> {
    validate::required_text("name", name, 255)
}

/// Checks a secret value (credential data): not `null`, within the JSON limits.
pub fn secret_data(field: &str, data: &SecretValue) -> StoreResult<()> {
    if data.reveal().is_null() {
        return Err(StoreError::invalid(field, "is required"));
    }
    if matches!(data.reveal(), Value::String(s) if s.is_empty()) {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    validate::json_size(field, data.reveal())
}

/// Seals a secret JSON value with the current key.
pub fn seal_json(ring: &Keyring, value: &Value) -> StoreResult<Sealed> {
    ring.seal(value.to_string().as_bytes())
}

/// Opens a JSON value sealed by [`seal_json`]; `what` names the row in errors.
pub fn open_json(ring: &Keyring, sealed: Sealed, what: &str) -> StoreResult<Value> {
    let plain = open_clearly(ring, &sealed, what)?;
    serde_json::from_slice(&plain).map_err(|e| {
        StoreError::internal(format!("{what} holds a sealed value that is not JSON: {e}"))
    })
}

/// Opens `sealed`, saying which row failed and why: an unknown key ID means the key
/// that sealed it is not configured (give it as a previous key); a failed
/// authentication means the configured key with that ID is not the one that sealed
/// it, or the value was altered.
pub fn open_clearly(ring: &Keyring, sealed: &Sealed, what: &str) -> StoreResult<Vec<u8>> {
    ring.open(sealed).map_err(|e| match e {
        StoreError::Internal(msg) => StoreError::internal(format!(
            "cannot decrypt {what}: {msg}; configure the key it was sealed with \
             (ENCRYPTION_KEY, or ENCRYPTION_KEY_PREVIOUS during a rotation)"
        )),
        other => other,
    })
}

impl Credential {
    /// Refuses to open the data of a credential that has expired at `now`: a
    /// conflict on `expires_at` saying when. What every operation that decrypts a
    /// credential for use calls first (a re-seal under a new key is not a use).
    pub fn ensure_usable(&self, now: Timestamp) -> StoreResult<()> {
        match self.expires_at {
            Some(at) if at <= now => Err(StoreError::conflict(
                "expires_at",
                format!(
                    "credential {} expired at {}; give it new data and a later expires_at, \
                     or clear expires_at, before using it",
                    self.id,
                    at.format("%Y-%m-%dT%H:%M:%S%.6fZ")
                ),
            )),
            _ => Ok(()),
        }
    }
}

impl NewCredential {
    /// Checks every field and seals the data with `ring`.
    pub fn prepare(self, ring: &Keyring, now: Timestamp) -> StoreResult<CredentialWrite> {
        let name = credential_name(&self.name)?;
        let description = validate::free_text("description", self.description.as_deref())?;
        secret_data("data", &self.data)?;
        let sealed = seal_json(ring, self.data.reveal())?;
        Ok(CredentialWrite {
            credential: Credential {
                id: CredentialId::new(),
                owner_id: self.owner_id,
                name,
                credential_type: self.credential_type,
                description,
                encryption_key_id: sealed.key_id.clone(),
                expires_at: self.expires_at.map(crate::time::truncate),
                last_used_at: None,
                rotated_at: None,
                created_at: now,
                updated_at: now,
            },
            sealed,
        })
    }
}

impl CredentialPatch {
    /// Applies the patch to `c`; returns the new data sealed with `ring` when the
    /// patch replaces it (and then sets `rotated_at`).
    pub fn apply<'k>(
        self,
        c: &mut Credential,
        ring: impl FnOnce() -> StoreResult<&'k Keyring>,
        now: Timestamp,
    ) -> StoreResult<Option<Sealed>> {
        if let Some(name) = self.name {
            c.name = credential_name(&name)?;
        }
        if let Some(d) = self.description {
            c.description = validate::free_text("description", d.as_deref())?;
        }
        if let Some(e) = self.expires_at {
            c.expires_at = e.map(crate::time::truncate);
        }
        let sealed = match self.data {
            Some(data) => {
                secret_data("data", &data)?;
                let sealed = seal_json(ring()?, data.reveal())?;
                c.encryption_key_id = sealed.key_id.clone();
                c.rotated_at = Some(now);
                Some(sealed)
            }
            None => None,
        };
        c.updated_at = now;
        Ok(sealed)
    }
}

/// Which kind of sealed value a re-seal works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SealedKind {
    /// Sensitive configuration values.
    Configurations,
    /// Credential data.
    Credentials,
    /// Webhook signing secrets.
    Webhooks,
    /// Incoming webhook triggers' signing secrets.
    Triggers,
}

impl SealedKind {
    /// Every kind, in the order a rotation re-seals them.
    pub const ALL: [SealedKind; 4] = [
        SealedKind::Configurations,
        SealedKind::Credentials,
        SealedKind::Webhooks,
        SealedKind::Triggers,
    ];
}

/// How many sealed values are not yet under the current key, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StaleSecrets {
    /// Sensitive configuration values.
    pub configurations: u64,
    /// Credentials.
    pub credentials: u64,
    /// Webhook secrets.
    pub webhooks: u64,
    /// Trigger signing secrets.
    pub triggers: u64,
}

impl StaleSecrets {
    /// The count of one kind.
    pub fn of(&self, kind: SealedKind) -> u64 {
        match kind {
            SealedKind::Configurations => self.configurations,
            SealedKind::Credentials => self.credentials,
            SealedKind::Webhooks => self.webhooks,
            SealedKind::Triggers => self.triggers,
        }
    }

    /// The count over every kind.
    pub fn total(&self) -> u64 {
        self.configurations + self.credentials + self.webhooks + self.triggers
    }
}

/// Storage operations on credentials. Access (owner, admin) is the caller's to
/// check; these work by ID.
#[async_trait]
pub trait CredentialRepo: Send {
    /// Stores a credential, its data sealed. A name its owner already uses is a
    /// conflict on `name`; an unknown owner is invalid `owner_id`.
    async fn create_credential(&mut self, new: NewCredential) -> StoreResult<Credential>;
    /// A credential's metadata.
    async fn get_credential(&mut self, id: CredentialId) -> StoreResult<Credential>;
    /// A credential's metadata and its decrypted data; records the use in
    /// `last_used_at`. An expired credential (`expires_at` passed) is refused with a
    /// conflict on `expires_at` and nothing is decrypted nor recorded. A value sealed
    /// with a key that is not configured fails with an error that names the key ID.
    async fn reveal_credential(
        &mut self,
        id: CredentialId,
    ) -> StoreResult<(Credential, SecretValue)>;
    /// A page of credentials' metadata matching `filter`, newest first.
    async fn list_credentials(
        &mut self,
        filter: &CredentialFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Credential>>;
    /// Changes a credential; new data is sealed under the current key.
    async fn update_credential(
        &mut self,
        id: CredentialId,
        patch: CredentialPatch,
    ) -> StoreResult<Credential>;
    /// Deletes a credential.
    async fn delete_credential(&mut self, id: CredentialId) -> StoreResult<()>;
    /// Credentials that expire after `now` and no later than `until` whose coming
    /// expiry was not told yet (see [`CredentialRepo::note_expiry_told`]), soonest
    /// first, at most `limit`.
    async fn credentials_expiring_untold(
        &mut self,
        now: crate::time::Timestamp,
        until: crate::time::Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Credential>>;
    /// Records that a credential's expiry at `expires_at` was told; `false` when it
    /// had been already (by another server, say), so that each expiry is told once.
    async fn note_expiry_told(
        &mut self,
        id: CredentialId,
        expires_at: crate::time::Timestamp,
        now: crate::time::Timestamp,
    ) -> StoreResult<bool>;
}

/// Storage operations on webhooks. Access (owner, admin) is the caller's to check;
/// these work by ID.
#[async_trait]
pub trait WebhookRepo: Send {
    /// Registers a webhook, its secret sealed (a random one when none is given);
    /// returns the secret once. A URL its owner already uses is a conflict on `url`;
    /// an unknown workflow is invalid `workflow_id`.
    async fn create_webhook(&mut self, new: NewWebhook) -> StoreResult<CreatedWebhook>;
    /// A webhook (never its secret).
    async fn get_webhook(&mut self, id: WebhookId) -> StoreResult<Webhook>;
    /// A page of webhooks matching `filter`, newest first.
    async fn list_webhooks(
        &mut self,
        filter: &WebhookFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Webhook>>;
    /// Changes a webhook; a new secret is sealed under the current key.
    async fn update_webhook(&mut self, id: WebhookId, patch: WebhookPatch) -> StoreResult<Webhook>;
    /// Deletes a webhook and its deliveries.
    async fn delete_webhook(&mut self, id: WebhookId) -> StoreResult<()>;
    /// A webhook's decrypted signing secret.
    async fn webhook_secret(&mut self, id: WebhookId) -> StoreResult<SecretString>;
}

/// Storage operations on webhook deliveries: the fan-out of events, the
/// dispatcher's queue and the outcomes of attempts.
#[async_trait]
pub trait DeliveryRepo: Send {
    /// Queues a delivery, due now.
    async fn record_delivery(&mut self, new: NewDelivery) -> StoreResult<WebhookDelivery>;
    /// One delivery.
    async fn get_delivery(&mut self, id: DeliveryId) -> StoreResult<WebhookDelivery>;
    /// A page of a webhook's deliveries (optionally in one status), newest first.
    async fn list_deliveries(
        &mut self,
        webhook_id: WebhookId,
        status: Option<DeliveryStatus>,
        page: &PageRequest,
    ) -> StoreResult<Page<WebhookDelivery>>;
    /// Reads up to `limit` sequenced events past the dispatcher's persisted cursor,
    /// queues one delivery per active webhook that subscribes to each (and existed
    /// when it happened), and moves the cursor past them. Concurrent callers are
    /// serialised on the cursor, so each event fans out once.
    async fn fan_out_events(&mut self, limit: u32) -> StoreResult<FanOut>;
    /// Takes up to `limit` due deliveries of active webhooks, oldest due first:
    /// counts the attempt and pushes `next_attempt_at` `lease` ahead so that no other
    /// dispatcher takes them while this one sends (rows another transaction holds
    /// are skipped). Returns each with what is needed to send it.
    async fn claim_deliveries(
        &mut self,
        limit: u32,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records how attempt `attempt` of a delivery went: succeeded, failed with a
    /// retry scheduled by `policy`, or dead when attempts are exhausted; updates the
    /// webhook's `failure_count` and `last_triggered_at`. An attempt that is no
    /// longer the delivery's latest is a conflict on `attempt`.
    async fn finish_delivery(
        &mut self,
        id: DeliveryId,
        attempt: i32,
        result: AttemptResult,
        policy: &RetryPolicy,
    ) -> StoreResult<WebhookDelivery>;
    /// The dispatcher's cursor: the `seq` of the last event fanned out.
    async fn webhook_cursor(&mut self) -> StoreResult<i64>;
    /// How many deliveries wait and how many were given up on, and the oldest
    /// waiting one's age.
    async fn delivery_backlog(&mut self) -> StoreResult<DeliveryBacklog>;
}

/// Storage operations of a key rotation: finding sealed values not under the
/// current key and sealing them again.
#[async_trait]
pub trait SealedRepo: Send {
    /// How many sealed values of each kind are not under the current key.
    async fn stale_secrets(&mut self) -> StoreResult<StaleSecrets>;
    /// Re-seals up to `limit` values of `kind` that are not under the current key;
    /// returns how many. A credential re-sealed gets `rotated_at` set. Calling it
    /// until it returns 0 finishes a rotation, and calling it again afterwards does
    /// nothing.
    async fn reseal_batch(&mut self, kind: SealedKind, limit: u32) -> StoreResult<u64>;
    /// The IDs of the keys that sealed values in the database and that this store's
    /// keyring does not hold (sorted): a server missing one cannot open those values.
    async fn unknown_key_ids(&mut self) -> StoreResult<Vec<String>>;
}
