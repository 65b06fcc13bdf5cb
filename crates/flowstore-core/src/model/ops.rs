//! Logs and configurations (seed 002). Sensitive configuration values are sealed with
//! the keyring before they reach the database and are never printed afterwards.

use std::cmp::Ordering;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::crypto::{Keyring, Sealed};
use crate::ids::{ConfigurationId, LogId, RunId, TaskId};
use crate::text_enum;
use crate::time::Timestamp;
use crate::validate;
use crate::{Page, PageRequest, StoreError, StoreResult};

/// Longest log message accepted, in bytes.
pub const MAX_LOG_MESSAGE_BYTES: usize = 64 * 1024;

text_enum!(
    /// How severe a log entry is, from least to most.
    LogLevel, "level" {
        /// Finest detail.
        Trace => "trace",
        /// Detail for debugging.
        Debug => "debug",
        /// Normal events.
        Info => "info",
        /// Something unexpected that was handled.
        Warn => "warn",
        /// A failure.
        Error => "error",
        /// A failure that stops the component.
        Fatal => "fatal",
    }
);

impl LogLevel {
    /// Its severity: 0 for `trace` up to 5 for `fatal`, matching [`LEVEL_RANK_SQL`].
    pub fn rank(&self) -> i64 {
        match self {
            LogLevel::Trace => 0,
            LogLevel::Debug => 1,
            LogLevel::Info => 2,
            LogLevel::Warn => 3,
            LogLevel::Error => 4,
            LogLevel::Fatal => 5,
        }
    }
}

impl PartialOrd for LogLevel {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LogLevel {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// The SQL expression giving the severity of the `level` column, the same as
/// [`LogLevel::rank`], so a minimum level filters in the database on both backends.
pub const LEVEL_RANK_SQL: &str = "CASE level WHEN 'trace' THEN 0 WHEN 'debug' THEN 1 \
     WHEN 'info' THEN 2 WHEN 'warn' THEN 3 WHEN 'error' THEN 4 ELSE 5 END";

/// A log entry as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct LogEntry {
    /// Its ID.
    pub id: LogId,
    /// How severe it is.
    pub level: LogLevel,
    /// The component that wrote it.
    pub component_name: Option<String>,
    /// The run it concerns (a `workflow_executions` row).
    pub execution_id: Option<RunId>,
    /// The task it concerns.
    pub task_id: Option<TaskId>,
    /// What happened.
    pub message: String,
    /// Structured detail (a JSON object).
    pub context: Value,
    /// When it happened.
    pub timestamp: Timestamp,
}

/// What a caller gives to append a log entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLogEntry {
    /// How severe it is.
    pub level: LogLevel,
    /// What happened; not blank, at most 64 KiB.
    pub message: String,
    /// Structured detail; `{}` when absent.
    #[serde(default)]
    pub context: Option<Value>,
    /// The component that wrote it, at most 255 characters.
    #[serde(default)]
    pub component_name: Option<String>,
    /// The run it concerns; must exist.
    #[serde(default)]
    pub execution_id: Option<RunId>,
    /// The task it concerns; must exist.
    #[serde(default)]
    pub task_id: Option<TaskId>,
    /// When it happened; now when absent (set it when importing older entries).
    #[serde(default)]
    pub timestamp: Option<Timestamp>,
}

impl NewLogEntry {
    /// An entry at `level` with `message` and nothing else.
    pub fn new(level: LogLevel, message: impl Into<String>) -> Self {
        NewLogEntry {
            level,
            message: message.into(),
            context: None,
            component_name: None,
            execution_id: None,
            task_id: None,
            timestamp: None,
        }
    }

    /// Checks every field and builds the row to insert; `now` when no time is given.
    pub fn into_row(self, now: Timestamp) -> StoreResult<LogEntry> {
        if self.message.trim().is_empty() {
            return Err(StoreError::invalid("message", "must not be empty"));
        }
        if self.message.len() > MAX_LOG_MESSAGE_BYTES {
            return Err(StoreError::invalid(
                "message",
                format!(
                    "is {} bytes long; at most {MAX_LOG_MESSAGE_BYTES} are allowed",
                    self.message.len()
                ),
            ));
        }
        if self.message.contains('\0') {
            return Err(StoreError::invalid(
                "message",
                "must not contain NUL characters",
            ));
        }
        let context = self
            .context
            .unwrap_or_else(|| Value::Object(Default::default()));
        validate::json_object("context", &context)?;
        Ok(LogEntry {
            id: LogId::new(),
            level: self.level,
            component_name: validate::optional_text(
                "component_name",
                self.component_name.as_deref(),
                255,
            )?,
            execution_id: self.execution_id,
            task_id: self.task_id,
            message: self.message,
            context,
            timestamp: self.timestamp.map(crate::time::truncate).unwrap_or(now),
        })
    }
}

/// Filters for querying logs; every field set narrows the result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogFilter {
    /// Only entries of this run.
    pub execution_id: Option<RunId>,
    /// Only entries of this task.
    pub task_id: Option<TaskId>,
    /// Only entries of this component.
    pub component_name: Option<String>,
    /// Only entries at least this severe.
    pub min_level: Option<LogLevel>,
    /// Only entries at or after this time.
    pub since: Option<Timestamp>,
    /// Only entries before this time.
    pub until: Option<Timestamp>,
}

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

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
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
            _ => f.write_str("<redacted>"),
        }
    }
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::Plain(v) => write!(f, "{v}"),
            _ => f.write_str("<redacted>"),
        }
    }
}

impl Serialize for ConfigValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ConfigValue::Plain(v) => v.serialize(s),
            _ => s.serialize_str("<redacted>"),
        }
    }
}

/// A configuration entry as handed to callers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Configuration {
    /// Its ID.
    pub id: ConfigurationId,
    /// Its key; unique.
    pub key: String,
    /// Its value (hidden when sensitive).
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
    pub created_at: Timestamp,
    /// When it last changed.
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
                StoreError::Internal(format!("configuration {} holds bad JSON: {e}", self.key))
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
            return Err(StoreError::Internal(format!(
                "sensitive configuration {} has no sealed value",
                self.key
            )));
        };
        let plain = ring.open(&Sealed {
            bytes: bytes.clone(),
            key_id: key_id.clone(),
        })?;
        serde_json::from_slice(&plain).map_err(|e| {
            StoreError::Internal(format!("configuration {} holds bad JSON: {e}", self.key))
        })
    }
}

/// What a caller gives to set a configuration entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetConfiguration {
    /// The key: 1 to 255 of `A-Z a-z 0-9 . _ -`.
    pub key: String,
    /// The value (any JSON).
    pub value: Value,
    /// What it configures; `system` when absent.
    #[serde(default, rename = "type")]
    pub config_type: Option<ConfigType>,
    /// What it is for.
    #[serde(default)]
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
        let description = validate::optional_text(
            "description",
            self.description.as_deref(),
            validate::MAX_TEXT_BYTES,
        )?;
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

/// Storage operations on logs and configurations.
#[async_trait]
pub trait OpsRepo: Send {
    /// Appends a log entry. An unknown run is invalid `execution_id`; an unknown task
    /// is invalid `task_id`.
    async fn append_log(&mut self, new: NewLogEntry) -> StoreResult<LogEntry>;
    /// Appends several entries in this transaction; every entry is checked before
    /// any is written.
    async fn append_logs(&mut self, entries: Vec<NewLogEntry>) -> StoreResult<Vec<LogEntry>>;
    /// A page of entries matching `filter`, newest first.
    async fn query_logs(
        &mut self,
        filter: &LogFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<LogEntry>>;

    /// Creates or replaces the entry with this key; a sensitive value is stored only
    /// sealed. Returns the entry, its value decrypted but hidden when sensitive.
    async fn set_configuration(&mut self, set: SetConfiguration) -> StoreResult<Configuration>;
    /// The entry with this key, its sensitive value decrypted but hidden.
    async fn get_configuration(&mut self, key: &str) -> StoreResult<Configuration>;
    /// A page of entries (optionally of one type), newest first; sensitive values
    /// are not decrypted.
    async fn list_configurations(
        &mut self,
        config_type: Option<ConfigType>,
        page: &PageRequest,
    ) -> StoreResult<Page<Configuration>>;
    /// Deletes the entry with this key.
    async fn delete_configuration(&mut self, key: &str) -> StoreResult<()>;
    /// Re-seals every sensitive value under the current key (after a key rotation);
    /// returns how many were re-sealed.
    async fn reseal_configurations(&mut self) -> StoreResult<u64>;
}
