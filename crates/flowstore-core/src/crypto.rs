//! Encryption at rest for sensitive values (configurations marked sensitive,
//! credentials, webhook secrets): AES-256-GCM with a random 96-bit nonce per value.
//! Each stored value records the ID of the key that sealed it, so keys can rotate
//! without a flag day: old keys stay in the keyring for reading until every row is
//! re-sealed under the current one.
//!
//! Each key also yields a MAC key, derived from it (HMAC-SHA256 of the key over a
//! fixed label), that signs the audit log's head: the signature proves that whoever
//! wrote the head held the encryption key, which never enters the database.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{StoreError, StoreResult};

const NONCE_LEN: usize = 12;

/// The label the audit head's MAC key is derived with. A different label would give
/// an unrelated key, so the MAC key cannot open sealed values nor the other way round.
const AUDIT_HEAD_LABEL: &[u8] = b"flowstore audit head";

type HmacSha256 = Hmac<Sha256>;

/// A 256-bit key with its ID (the first 8 bytes of its SHA-256, in hex).
#[derive(Clone)]
pub struct Key {
    id: String,
    cipher: Aes256Gcm,
    /// HMAC-SHA256(key, [`AUDIT_HEAD_LABEL`]): the key that signs the audit head.
    audit_mac: [u8; 32],
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}, <redacted>)", self.id)
    }
}

/// The 32 bytes of a key written as 64 hex characters or as base64 (as
/// `openssl rand -hex 32` writes one), surrounding white space ignored; `None` for
/// anything else. The encryption key and backup key files are read this one way.
pub fn key_bytes(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        hex::decode(text).ok()
    } else {
        base64::engine::general_purpose::STANDARD.decode(text).ok()
    };
    bytes.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
}

impl Key {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let id = hex::encode(&Sha256::digest(bytes)[..8]);
        Key {
            id,
            cipher: Aes256Gcm::new(bytes.into()),
            audit_mac: hmac_sha256(bytes, AUDIT_HEAD_LABEL),
        }
    }

    /// Parses a key given as 64 hex characters or as base64 of 32 bytes.
    pub fn parse(text: &str) -> StoreResult<Self> {
        match key_bytes(text) {
            Some(arr) => Ok(Key::from_bytes(&arr)),
            None => Err(StoreError::invalid(
                "ENCRYPTION_KEY",
                "must be 32 bytes given as 64 hex characters or as base64",
            )),
        }
    }

    /// A new random key, returned with its hex text so it can be saved.
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        (Key::from_bytes(&bytes), hex::encode(bytes))
    }

    /// Reads the key file at `path`, creating it with a new random key and mode 0600
    /// when it does not exist.
    pub fn load_or_create_file(path: &Path) -> StoreResult<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Key::parse(&text).map_err(|_| {
                StoreError::invalid(
                    "key_file",
                    format!("{} does not hold a valid key", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, text) = Key::generate();
                write_private(path, &text).map_err(|e| {
                    StoreError::internal(format!("cannot create key file {}: {e}", path.display()))
                })?;
                Ok(key)
            }
            Err(e) => Err(StoreError::internal(format!(
                "cannot read key file {}: {e}",
                path.display()
            ))),
        }
    }

    /// The key's ID, stored beside every value it seals.
    pub fn id(&self) -> &str {
        &self.id
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// The current key, which seals, and older keys, which only open.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: Key,
    previous: Vec<Key>,
}

/// A value sealed by a [`Keyring`]: nonce and ciphertext, and the sealing key's ID.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The nonce followed by the ciphertext and its tag.
    pub bytes: Vec<u8>,
    /// The ID of the key that sealed it.
    pub key_id: String,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes, key {})", self.bytes.len(), self.key_id)
    }
}

impl Keyring {
    /// A keyring that seals with `current`.
    pub fn new(current: Key) -> Self {
        Keyring {
            current,
            previous: Vec::new(),
        }
    }

    /// Adds a key that may still open older values.
    pub fn with_previous(mut self, key: Key) -> Self {
        if key.id != self.current.id && !self.previous.iter().any(|k| k.id == key.id) {
            self.previous.push(key);
        }
        self
    }

    /// The ID of the key that seals new values.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` under the current key.
    pub fn seal(&self, plaintext: &[u8]) -> StoreResult<Sealed> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .map_err(|_| StoreError::internal("encryption failed"))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed {
            bytes,
            key_id: self.current.id.clone(),
        })
    }

    /// The key of this ring with ID `key_id`.
    fn key(&self, key_id: &str) -> Option<&Key> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.id == key_id)
    }

    /// True when a key with ID `key_id` is in this ring.
    pub fn has_key(&self, key_id: &str) -> bool {
        self.key(key_id).is_some()
    }

    /// Signs `message` with the current key's audit MAC key: the key's ID and the
    /// HMAC-SHA256 in hex.
    pub fn sign_audit(&self, message: &[u8]) -> (String, String) {
        (
            self.current.id.clone(),
            hex::encode(hmac_sha256(&self.current.audit_mac, message)),
        )
    }

    /// Checks a MAC made by [`Keyring::sign_audit`] with the key `key_id`, in
    /// constant time: `None` when that key is not in this ring, else whether the
    /// MAC is right.
    pub fn verify_audit(&self, key_id: &str, message: &[u8], mac_hex: &str) -> Option<bool> {
        let key = self.key(key_id)?;
        let Ok(given) = hex::decode(mac_hex) else {
            return Some(false);
        };
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&key.audit_mac).expect("any key length");
        mac.update(message);
        Some(mac.verify_slice(&given).is_ok())
    }

    /// Opens a value sealed by any key of this ring.
    pub fn open(&self, sealed: &Sealed) -> StoreResult<Vec<u8>> {
        let key = self
            .key(&sealed.key_id)
            .ok_or_else(|| StoreError::KeyMissing(sealed.key_id.clone()))?;
        if sealed.bytes.len() < NONCE_LEN {
            return Err(StoreError::internal("sealed value is truncated"));
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_LEN);
        key.cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| StoreError::internal("sealed value failed authentication"))
    }
}

/// What a secret shows wherever it is printed or serialised.
pub const REDACTED: &str = "<redacted>";

/// Implements `Debug` and `Display` for a secret's type as [`REDACTED`], so that
/// neither logs nor error messages can carry the secret.
macro_rules! redacted_fmt {
    ($name:ty) => {
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::crypto::REDACTED)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::crypto::REDACTED)
            }
        }
    };
}
pub(crate) use redacted_fmt;

/// A string that is never printed: its `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

redacted_fmt!(SecretString);

/// SHA-256 of `text` in hex: how tokens and API keys are stored.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip() {
        let ring = Keyring::new(Key::generate().0);
        let sealed = ring.seal(b"hunter2").unwrap();
        assert_ne!(&sealed.bytes[NONCE_LEN..], b"hunter2");
        assert_eq!(ring.open(&sealed).unwrap(), b"hunter2");
    }

    #[test]
    fn tampering_and_unknown_keys_are_refused() {
        let ring = Keyring::new(Key::generate().0);
        let mut sealed = ring.seal(b"secret").unwrap();
        *sealed.bytes.last_mut().unwrap() ^= 1;
        assert!(ring.open(&sealed).is_err());
        let other = Keyring::new(Key::generate().0);
        assert!(other.open(&ring.seal(b"x").unwrap()).is_err());
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = Key::generate().0;
        let sealed = Keyring::new(old.clone()).seal(b"v").unwrap();
        let ring = Keyring::new(Key::generate().0).with_previous(old);
        assert_eq!(ring.open(&sealed).unwrap(), b"v");
        assert_ne!(ring.seal(b"v").unwrap().key_id, sealed.key_id);
    }

    #[test]
    fn audit_macs_verify_only_with_their_key() {
        let old = Key::generate().0;
        let ring = Keyring::new(old.clone());
        let (id, mac) = ring.sign_audit(b"head");
        assert_eq!(id, old.id());
        assert_eq!(ring.verify_audit(&id, b"head", &mac), Some(true));
        assert_eq!(ring.verify_audit(&id, b"other", &mac), Some(false));
        assert_eq!(ring.verify_audit(&id, b"head", "zz"), Some(false));
        assert_eq!(ring.verify_audit("feedfacefeedface", b"head", &mac), None);
        // After a rotation the old key still verifies what it signed; a new
        // signature is made with the new key.
        let rotated = Keyring::new(Key::generate().0).with_previous(old);
        assert_eq!(rotated.verify_audit(&id, b"head", &mac), Some(true));
        assert_ne!(rotated.sign_audit(b"head").0, id);
    }

    #[test]
    fn keys_parse_and_secrets_hide() {
        assert!(Key::parse("short").is_err());
        let (_, text) = Key::generate();
        assert!(Key::parse(&text).is_ok());
        assert_eq!(format!("{:?}", SecretString::new("pw")), "<redacted>");
    }

    #[test]
    fn key_file_is_created_private() {
        let dir = std::env::temp_dir().join(format!("fs-key-{}", uuid::Uuid::new_v4()));
        let path = dir.join("key");
        let a = Key::load_or_create_file(&path).unwrap();
        let b = Key::load_or_create_file(&path).unwrap();
        assert_eq!(a.id(), b.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
