//! Incoming webhook triggers (seed 004's `webhookUrl`): a secret URL per workflow,
//! `POST /hooks/{token}`, that starts a run of the workflow's current version as the
//! trigger's owner would.
//!
//! The token (32 random bytes) is shown once, when the trigger is created or
//! rotated, and stored as its SHA-256 like API keys. A trigger may require a
//! signature: a Stripe-style header `X-Flowstore-Signature: t=<unix seconds>,
//! v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` made with a signing secret that is
//! also shown once and stored sealed with the keyring (re-sealed by `flowstore keys
//! rotate` like webhook secrets). A signature whose timestamp is more than
//! [`SIGNATURE_TOLERANCE_SECS`] away from now is refused, and so is one already
//! accepted (its receipt is kept as long as its timestamp could pass). An
//! `Idempotency-Key` header makes a repeated call within [`IDEMPOTENCY_WINDOW_HOURS`]
//! answer the run the first call started instead of starting another.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::crypto::{sha256_hex, Keyring, Sealed, SecretString};
use crate::ids::{RunId, TriggerId, UserId, WorkflowId};
use crate::text_enum;
use crate::time::Timestamp;
use crate::validate;
use crate::{Page, PageRequest, StoreError, StoreResult};

/// How every trigger token begins (so that secret scanners and people recognise it).
pub const TRIGGER_TOKEN_PREFIX: &str = "fstrg_";
/// How every trigger signing secret begins.
pub const TRIGGER_SECRET_PREFIX: &str = "fstsig_";
/// The header that carries a trigger call's signature.
pub const SIGNATURE_HEADER: &str = "x-flowstore-signature";
/// The header that names a trigger call for idempotency.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// How far a signature's timestamp may be from the server's clock, either way.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;
/// How long an `Idempotency-Key` answers the run it started.
pub const IDEMPOTENCY_WINDOW_HOURS: i64 = 24;
/// The longest `Idempotency-Key` accepted, in characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
/// How many characters of a token (after its prefix) are kept to recognise it.
const TOKEN_PREFIX_CHARS: usize = 8;

text_enum!(
    /// What a trigger receipt remembers.
    ReceiptKind, "kind" {
        /// An `Idempotency-Key`: the same key answers the same run.
        Idempotency => "idempotency",
        /// A signature (`t` and `v1`): the same signature is refused.
        Signature => "signature",
    }
);

/// A trigger as stored and shown: never its token nor its secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Trigger {
    /// Its ID.
    pub id: TriggerId,
    /// The workflow it starts.
    pub workflow_id: WorkflowId,
    /// The user it acts as: whoever created it. It fires only while that user is
    /// active and may execute the workflow.
    pub owner_id: UserId,
    /// Its name, unique per workflow.
    pub name: String,
    /// The start of its token (`fstrg_` and 8 characters), to recognise it.
    pub token_prefix: String,
    /// Whether calls must carry a valid `X-Flowstore-Signature`.
    pub require_signature: bool,
    /// Whether it fires; a disabled trigger answers 404 like an unknown one.
    pub active: bool,
    /// How many runs it has started.
    pub fire_count: i64,
    /// When it last started a run.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_fired_at: Option<Timestamp>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

impl Trigger {
    /// The path its calls go to.
    pub fn path(token: &str) -> String {
        format!("/hooks/{token}")
    }
}

/// What a caller gives to create a trigger.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTrigger {
    /// Its name: required, at most 255 characters, unique per workflow.
    pub name: String,
    /// Whether calls must be signed with the signing secret (default false).
    #[serde(default)]
    pub require_signature: bool,
    /// The workflow. Not read from request bodies: the path names it.
    #[serde(skip)]
    pub workflow_id: Option<WorkflowId>,
    /// The owner. Not read from request bodies: the server sets the caller's user.
    #[serde(skip)]
    pub owner_id: Option<UserId>,
}

patch_struct! {
    /// What a caller may change on a trigger.
    #[derive(Clone, Debug, Default, Deserialize)]
    pub struct TriggerPatch {
        /// A new name.
        pub name: Option<String>,
        /// Enables or disables it.
        pub active: Option<bool>,
    }
}

/// A trigger just created or rotated, with its token and (when it requires
/// signatures) its signing secret: the only time either is shown.
#[derive(Clone, Debug)]
pub struct CreatedTrigger {
    /// The trigger.
    pub trigger: Trigger,
    /// Its token: the last segment of its URL.
    pub token: SecretString,
    /// Its signing secret, when it requires signatures.
    pub secret: Option<SecretString>,
}

/// New secrets of a trigger, checked and sealed, ready to write.
#[derive(Clone, Debug)]
pub struct TriggerSecrets {
    /// The token, to show once.
    pub token: SecretString,
    /// The start of the token, stored to recognise it.
    pub token_prefix: String,
    /// The token's SHA-256, stored.
    pub token_hash: String,
    /// The signing secret, to show once, and sealed.
    pub secret: Option<(SecretString, Sealed)>,
}

impl TriggerSecrets {
    /// A new token and, when `ring` is given (the trigger requires signatures), a
    /// new signing secret sealed with it.
    pub fn generate(ring: Option<&Keyring>) -> StoreResult<Self> {
        let token = format!("{TRIGGER_TOKEN_PREFIX}{}", random_hex(32));
        let token_prefix = token[..TRIGGER_TOKEN_PREFIX.len() + TOKEN_PREFIX_CHARS].to_string();
        let token_hash = sha256_hex(&token);
        let secret = match ring {
            Some(ring) => {
                let secret = format!("{TRIGGER_SECRET_PREFIX}{}", random_hex(32));
                let sealed = ring.seal(secret.as_bytes())?;
                Some((SecretString::new(secret), sealed))
            }
            None => None,
        };
        Ok(TriggerSecrets {
            token: SecretString::new(token),
            token_prefix,
            token_hash,
            secret,
        })
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Checks a trigger's name.
pub fn trigger_name(name: &str) -> StoreResult<String> {
    validate::required_text("name", name, 255)
}

/// Whether a presented token could be one: the prefix and 64 hex digits. Anything
/// else is not looked up.
pub fn plausible_token(token: &str) -> bool {
    token
        .strip_prefix(TRIGGER_TOKEN_PREFIX)
        .is_some_and(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks an `Idempotency-Key` (1 to 255 visible ASCII characters) and gives the
/// hash it is stored as.
pub fn idempotency_key_hash(key: &str) -> StoreResult<String> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_CHARS {
        return Err(StoreError::invalid(
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters long"),
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StoreError::invalid(
            "Idempotency-Key",
            "must be visible ASCII characters without spaces",
        ));
    }
    Ok(sha256_hex(key))
}

/// Why a signature was refused. Each is answered 401; the detail says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// No `X-Flowstore-Signature` header.
    Missing,
    /// The header is not `t=<unix seconds>,v1=<64 hex digits>`.
    Malformed,
    /// The timestamp is more than the tolerance away from now.
    Stale,
    /// The HMAC does not match.
    Mismatch,
}

impl SignatureError {
    /// What the caller is told.
    pub fn detail(self) -> &'static str {
        match self {
            SignatureError::Missing => {
                "this trigger requires the X-Flowstore-Signature header: t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">"
            }
            SignatureError::Malformed => {
                "the X-Flowstore-Signature header must be t=<unix seconds>,v1=<64 hex digits>"
            }
            SignatureError::Stale => "the signature's timestamp is more than 5 minutes from now",
            SignatureError::Mismatch => "the signature does not match the body",
        }
    }
}

/// A signature that verified: its timestamp, and the hash its receipt is kept as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// Its `t`, in Unix seconds.
    pub timestamp: i64,
    /// SHA-256 of `t` and `v1`: the receipt that refuses it a second time.
    pub receipt_hash: String,
}

/// `v1` of a body signed at `timestamp` with `secret`: hex HMAC-SHA256 of
/// `"<timestamp>.<body>"`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Verifies a signature header over `body` with `secret` at `now` (Unix seconds):
/// the timestamp within [`SIGNATURE_TOLERANCE_SECS`], then the HMAC, compared in
/// constant time. Several `v1` values (as during a rotation of the sender's secret)
/// are accepted when one matches.
pub fn verify_signature(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<VerifiedSignature, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k.trim() {
            "t" => {
                let t: i64 = v.trim().parse().map_err(|_| SignatureError::Malformed)?;
                if timestamp.replace(t).is_some() {
                    return Err(SignatureError::Malformed);
                }
            }
            "v1" => {
                let v = v.trim();
                if v.len() != 64 {
                    return Err(SignatureError::Malformed);
                }
                signatures.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?);
            }
            // Other schemes (a later `v2`) are ignored, as Stripe's clients do.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).abs() > SIGNATURE_TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let matched = signatures
        .iter()
        .find(|s| mac(secret, timestamp, body).verify_slice(s).is_ok())
        .ok_or(SignatureError::Mismatch)?;
    Ok(VerifiedSignature {
        timestamp,
        receipt_hash: sha256_hex(&format!("{timestamp}.{}", hex::encode(matched))),
    })
}

/// The run a receipt answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The run the call that left it started.
    pub run_id: RunId,
}

/// Storage operations on triggers. Access (write permission on the workflow) is the
/// caller's to check; these work by ID.
#[async_trait]
pub trait TriggerRepo: Send {
    /// Creates a trigger with a new token (and a new sealed signing secret when it
    /// requires signatures); returns them once. A name the workflow's triggers
    /// already use is a conflict on `name`.
    async fn create_trigger(&mut self, new: NewTrigger) -> StoreResult<CreatedTrigger>;
    /// A trigger.
    async fn get_trigger(&mut self, id: TriggerId) -> StoreResult<Trigger>;
    /// A page of a workflow's triggers, newest first.
    async fn list_triggers(
        &mut self,
        workflow_id: WorkflowId,
        page: &PageRequest,
    ) -> StoreResult<Page<Trigger>>;
    /// Renames, enables or disables a trigger.
    async fn update_trigger(&mut self, id: TriggerId, patch: TriggerPatch) -> StoreResult<Trigger>;
    /// Gives a trigger a new token (the old URL stops working at once) and, when it
    /// requires signatures, a new signing secret; returns them once.
    async fn rotate_trigger(&mut self, id: TriggerId) -> StoreResult<CreatedTrigger>;
    /// Deletes a trigger and its receipts.
    async fn delete_trigger(&mut self, id: TriggerId) -> StoreResult<()>;
    /// The active trigger whose token is `presented` (compared by hash); not found
    /// otherwise, without saying why.
    async fn find_trigger(&mut self, presented: &str) -> StoreResult<Trigger>;
    /// A trigger's decrypted signing secret (not found when it has none).
    async fn trigger_secret(&mut self, id: TriggerId) -> StoreResult<SecretString>;
    /// The unexpired receipt of `key_hash`, if any.
    async fn find_receipt(
        &mut self,
        trigger: TriggerId,
        kind: ReceiptKind,
        key_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<Receipt>>;
    /// Records a receipt for `run` unless an unexpired one of the same key exists
    /// (an expired one is replaced); whether it was recorded. Concurrent callers with
    /// the same key: one records, the others get `false` once it commits.
    async fn record_receipt(
        &mut self,
        trigger: TriggerId,
        kind: ReceiptKind,
        key_hash: &str,
        run: RunId,
        expires_at: Timestamp,
    ) -> StoreResult<bool>;
    /// Counts a run started by the trigger (`fire_count`, `last_fired_at`).
    async fn mark_trigger_fired(&mut self, id: TriggerId, at: Timestamp) -> StoreResult<()>;
    /// Deletes up to `limit` receipts expired at `now`; how many.
    async fn prune_trigger_receipts(&mut self, now: Timestamp, limit: u32) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_within_the_window_only() {
        let body = br#"{"a":1}"#;
        let v1 = sign("s3cret", 1_000, body);
        let header = format!("t=1000,v1={v1}");
        let ok = verify_signature("s3cret", Some(&header), body, 1_100).unwrap();
        assert_eq!(ok.timestamp, 1_000);
        assert_eq!(
            verify_signature("s3cret", Some(&header), body, 1_000 + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature("s3cret", Some(&header), body, 1_000 - 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature("other", Some(&header), body, 1_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature("s3cret", Some(&header), b"{}", 1_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature("s3cret", None, body, 1_000),
            Err(SignatureError::Missing)
        );
        for bad in [
            "",
            "t=x,v1=00",
            "v1=ab",
            "t=1000",
            "t=1000,v1=zz",
            "garbage",
        ] {
            assert_eq!(
                verify_signature("s3cret", Some(bad), body, 1_000),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
        // A second v1 that matches is enough.
        let two = format!("t=1000,v1={},v1={v1}", "0".repeat(64));
        assert!(verify_signature("s3cret", Some(&two), body, 1_000).is_ok());
    }

    #[test]
    fn tokens_and_keys_are_checked() {
        let s = TriggerSecrets::generate(None).unwrap();
        assert!(plausible_token(s.token.expose()));
        assert_eq!(s.token_hash, sha256_hex(s.token.expose()));
        assert!(s.token.expose().starts_with(&s.token_prefix));
        assert!(!plausible_token("fstrg_abc"));
        assert!(!plausible_token(&"x".repeat(70)));
        assert!(idempotency_key_hash("order-42").is_ok());
        assert!(idempotency_key_hash("").is_err());
        assert!(idempotency_key_hash("a b").is_err());
        assert!(idempotency_key_hash(&"k".repeat(256)).is_err());
    }
}
