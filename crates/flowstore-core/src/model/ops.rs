//! Logs and configurations (seed 002). Sensitive configuration values are sealed with
//! the keyring before they reach the database and are never printed afterwards.

use std::cmp::Ordering;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{LogId, RunId, TaskId};
use crate::text_enum;
use crate::time::Timestamp;
use crate::validate;
use crate::{Page, PageRequest, StoreError, StoreResult};

mod config;

pub use config::{
    config_key, ConfigType, ConfigValue, Configuration, ConfigurationRow, ConfigurationWrite,
    SecretValue, SetConfiguration,
};

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub timestamp: Timestamp,
}

/// What a caller gives to append a log entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewLogEntry {
    /// How severe it is.
    pub level: LogLevel,
    /// What happened; not blank, at most 64 KiB.
    pub message: String,
    /// Structured detail; `{}` when absent.
    pub context: Option<Value>,
    /// The component that wrote it, at most 255 characters.
    pub component_name: Option<String>,
    /// The run it concerns; must exist.
    pub execution_id: Option<RunId>,
    /// The task it concerns; must exist.
    pub task_id: Option<TaskId>,
    /// When it happened; now when absent (set it when importing older entries).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
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
        let context = validate::object_or_empty("context", self.context)?;
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
