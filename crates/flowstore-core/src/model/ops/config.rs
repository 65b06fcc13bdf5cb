//! Configuration entries (seed 002 with `is_sensitive`): the types of the operations
//! area that keep sensitive values sealed in the database and hidden in memory.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::crypto::{redacted_fmt, Keyring, Sealed, REDACTED};
use crate::ids::ConfigurationId;
use crate::text_enum;
use crate::time::Timestamp;
use crate::validate;
use crate::{StoreError, StoreResult};

text_enum!(
    /// What a configuration entry configures.
    ConfigType, "type" {
        /// The installation.
        System => "system",
        /// A user's preference.
        User => "user",
        /// Workflows.
        Workflow => "workflow",
        /// A component.
        Component => "component",
        /// An integration with another system.
        Integration => "integration",
    }
);

/// A decrypted sensitive value: it prints, and serialises, as `<redacted>`, so it can
/// reach neither logs nor API responses by accident. [`SecretValue::reveal`] is the
/// one way to read it.
#[derive(Clone, PartialEq)]
pub struct SecretValue(Value);

impl SecretValue {
    /// Wraps a sensitive value.
    pub fn new(value: Value) -> Self {
        SecretValue(value)
    }

    /// The value itself, for the one place that needs it.
    pub fn reveal(&self) -> &Value {
        &self.0
    }
}

redacted_fmt!(SecretValue);

impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// The value of a configuration entry as handed to callers.
#[derive(Clone, PartialEq)]
pub enum ConfigValue {
    /// A value that is not sensitive.
    Plain(Value),
    /// A sensitive value, decrypted but hidden from `Debug`, `Display` and JSON.
    Sensitive(SecretValue),
    /// A sensitive value that was not decrypted (lists never decrypt).
    Redacted,
}

impl ConfigValue {
    /// The value itself: the plain value, or the decrypted sensitive one; `None` when
    /// it was not decrypted.
    pub fn reveal(&self) -> Option<&Value> {
        match self {
            ConfigValue::Plain(v) => Some(v),
            ConfigValue::Sensitive(s) => Some(s.reveal()),
            ConfigValue::Redacted => None,
        }
    }
}

impl fmt::Debug for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::Plain(v) => write!(f, "Plain({v:?})"),
            _ => f.write_str(REDACTED),
        }
    }
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::Plain(v) => write!(f, "{v}"),
            _ => f.write_str(REDACTED),
        }
    }
}

impl Serialize for ConfigValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ConfigValue::Plain(v) => v.serialize(s),
            _ => s.serialize_str(REDACTED),
        }
    }
}

/// A configuration entry as handed to callers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Configuration {
    /// Its ID.
    pub id: ConfigurationId,
    /// Its key; unique.
    pub key: String,
    /// Its value (hidden when sensitive).
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub value: ConfigValue,
    /// What it configures.
    #[serde(rename = "type")]
    pub config_type: ConfigType,
    /// What it is for.
    pub description: Option<String>,
    /// Whether its value is encrypted and hidden.
    pub is_sensitive: bool,
    /// The ID of the key that sealed the value, when sensitive.
    pub encryption_key_id: Option<String>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// A configuration row as stored; backends decode it and turn it into a
/// [`Configuration`] with [`ConfigurationRow::into_configuration`].
#[derive(Clone, sqlx::FromRow)]
pub struct ConfigurationRow {
    /// Its ID.
    pub id: ConfigurationId,
    /// Its key.
    pub key: String,
    /// The JSON text of a plain value.
    pub value: Option<String>,
    /// The sealed JSON text of a sensitive value.
    pub value_encrypted: Option<Vec<u8>>,
    /// The ID of the key that sealed it.
    pub encryption_key_id: Option<String>,
    /// What it configures.
    #[sqlx(rename = "type")]
    pub config_type: ConfigType,
    /// What it is for.
    pub description: Option<String>,
    /// Whether it is sensitive.
    pub is_sensitive: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl ConfigurationRow {
    /// The entry for callers. With a keyring a sensitive value is decrypted (and
    /// wrapped); without one it is [`ConfigValue::Redacted`].
    pub fn into_configuration(self, keyring: Option<&Keyring>) -> StoreResult<Configuration> {
        let value = if self.is_sensitive {
            match keyring {
                None => ConfigValue::Redacted,
                Some(ring) => ConfigValue::Sensitive(SecretValue(self.open(ring)?)),
            }
        } else {
            let text = self.value.as_deref().unwrap_or("null");
            ConfigValue::Plain(serde_json::from_str(text).map_err(|e| {
                StoreError::internal(format!("configuration {} holds bad JSON: {e}", self.key))
            })?)
        };
        Ok(Configuration {
            id: self.id,
            key: self.key,
            value,
            config_type: self.config_type,
            description: self.description,
            is_sensitive: self.is_sensitive,
            encryption_key_id: self.encryption_key_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }

    /// Decrypts the sensitive value of this row.
    pub fn open(&self, ring: &Keyring) -> StoreResult<Value> {
        let (Some(bytes), Some(key_id)) = (&self.value_encrypted, &self.encryption_key_id) else {
            return Err(StoreError::internal(format!(
                "sensitive configuration {} has no sealed value",
                self.key
            )));
        };
        let plain = ring.open(&Sealed {
            bytes: bytes.clone(),
            key_id: key_id.clone(),
        })?;
        serde_json::from_slice(&plain).map_err(|e| {
            StoreError::internal(format!("configuration {} holds bad JSON: {e}", self.key))
        })
    }
}

/// What a caller gives to set a configuration entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetConfiguration {
    /// The key: 1 to 255 of `A-Z a-z 0-9 . _ -`.
    pub key: String,
    /// The value (any JSON).
    pub value: Value,
    /// What it configures; `system` when absent.
    #[serde(rename = "type")]
    pub config_type: Option<ConfigType>,
    /// What it is for.
    pub description: Option<String>,
    /// Whether to encrypt and hide the value.
    #[serde(default)]
    pub is_sensitive: bool,
}

/// What is written for a [`SetConfiguration`] once checked: the plain JSON text, or
/// the sealed one.
#[derive(Clone, Debug)]
pub struct ConfigurationWrite {
    /// A new ID, used only when the key is new.
    pub id: ConfigurationId,
    /// The checked key.
    pub key: String,
    /// The JSON text of a plain value.
    pub value: Option<String>,
    /// The sealed value of a sensitive one.
    pub sealed: Option<Sealed>,
    /// What it configures.
    pub config_type: ConfigType,
    /// The checked description.
    pub description: Option<String>,
    /// Whether it is sensitive.
    pub is_sensitive: bool,
    /// The time of the write.
    pub now: Timestamp,
}

/// Checks a configuration key: non-empty, at most 255, only `A-Za-z0-9._-`.
pub fn config_key(key: &str) -> StoreResult<String> {
    if key.is_empty() {
        return Err(StoreError::invalid("key", "must not be empty"));
    }
    validate::bounded("key", key, 255)?;
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(StoreError::invalid(
            "key",
            "may only contain letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(key.to_string())
}

impl SetConfiguration {
    /// A plain entry of type `system`.
    pub fn plain(key: impl Into<String>, value: Value) -> Self {
        SetConfiguration {
            key: key.into(),
            value,
            config_type: None,
            description: None,
            is_sensitive: false,
        }
    }

    /// A sensitive entry of type `system`.
    pub fn sensitive(key: impl Into<String>, value: Value) -> Self {
        SetConfiguration {
            is_sensitive: true,
            ..SetConfiguration::plain(key, value)
        }
    }

    /// Checks every field and, for a sensitive value, seals it with the keyring that
    /// `keyring` yields (asked for only then, so plain entries need no key).
    pub fn prepare<'k>(
        self,
        keyring: impl FnOnce() -> StoreResult<&'k Keyring>,
        now: Timestamp,
    ) -> StoreResult<ConfigurationWrite> {
        let key = config_key(&self.key)?;
        validate::json_size("value", &self.value)?;
        let description = validate::free_text("description", self.description.as_deref())?;
        let text = self.value.to_string();
        let (value, sealed) = if self.is_sensitive {
            (None, Some(keyring()?.seal(text.as_bytes())?))
        } else {
            (Some(text), None)
        };
        Ok(ConfigurationWrite {
            id: ConfigurationId::new(),
            key,
            value,
            sealed,
            config_type: self.config_type.unwrap_or(ConfigType::System),
            description,
            is_sensitive: self.is_sensitive,
            now,
        })
    }
}
