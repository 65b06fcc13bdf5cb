//! The storage error: one type for every backend, so that callers (the HTTP layer, the
//! command line) decide what to show without knowing which database answered.

use std::fmt;
use std::sync::Arc;

mod constraints;
mod driver;

/// What went wrong in a storage operation.
///
/// Driver messages never travel in the public variants: constraint violations are
/// mapped to the field they concern, and unexpected driver errors are kept in
/// [`StoreError::Internal`], whose text is for logs, not for clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The entity named does not exist (or the caller may not see it).
    #[error("{entity} {id} was not found")]
    NotFound {
        /// The kind of entity, such as `project`.
        entity: &'static str,
        /// The identifier that was looked up.
        id: String,
    },
    /// The change conflicts with what is stored: a duplicate unique value, a stale
    /// version or attempt, or a state that does not allow the change.
    #[error("conflict on {field}: {message}")]
    Conflict {
        /// The field (or fields, comma-separated) at fault.
        field: String,
        /// Why the change conflicts.
        message: String,
    },
    /// The input is invalid; nothing was written.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field at fault.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The database could not be reached, or no connection became free in time.
    #[error("database unavailable: {0}")]
    Unavailable(Cause),
    /// The disk holding the database is full: nothing of the change was written.
    /// Writes succeed again once space is freed, without a restart.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// The database accepts no writes now: a read-only file, directory or mount, a
    /// read-only replica or a database set read-only.
    #[error("database read-only: {0}")]
    ReadOnly(String),
    /// A statement, or its wait for a lock, ran past its time limit; nothing of the
    /// change was written.
    #[error("database timeout: {0}")]
    TimedOut(String),
    /// The schema is not in a state this binary can work with.
    #[error("migration: {0}")]
    Migration(String),
    /// A value was sealed with an encryption key this process does not hold (the
    /// key's ID): another server's key, or one a rotation dropped too early.
    #[error(
        "value sealed with key {0}, which is not configured here: give the key it was sealed \
         with (ENCRYPTION_KEY or the key file in FLOWSTORE_KEY_FILE, or ENCRYPTION_KEY_PREVIOUS \
         during a rotation)"
    )]
    KeyMissing(String),
    /// Anything else: a bug or an unexpected driver error. Not shown to clients.
    #[error("internal storage error: {0}")]
    Internal(Cause),
}

/// What an unexpected error, or an unreachable database, was: a message and the
/// driver or I/O error behind it, kept for the logs (clients never see either).
#[derive(Clone, Debug)]
pub struct Cause {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Cause {
    /// A cause told by `message` alone.
    pub fn new(message: impl Into<String>) -> Self {
        Cause {
            message: message.into(),
            source: None,
        }
    }

    /// A cause told by `message`, with the error that led to it.
    pub fn from_error(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Cause {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// The message, without its source.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error behind this one, if there is one.
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

/// The message, then the chain of errors behind it.
impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut next: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|e| e as _);
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

/// The message, so that callers may search it as text.
impl std::ops::Deref for Cause {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

/// The result of a storage operation.
pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// The same error with its field named inside `outer` (`outer.field`), for an
    /// item of a list: `runs[3].execution_id`. An error without a field is unchanged.
    pub fn within(self, outer: &str) -> Self {
        match self {
            StoreError::Invalid { field, reason } => StoreError::Invalid {
                field: format!("{outer}.{field}"),
                reason,
            },
            StoreError::Conflict { field, message } => StoreError::Conflict {
                field: format!("{outer}.{field}"),
                message,
            },
            other => other,
        }
    }

    /// An [`StoreError::Invalid`] for `field` with `reason`.
    pub fn invalid(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        StoreError::Invalid {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// A [`StoreError::Conflict`] for `field` with `message`.
    pub fn conflict(field: impl Into<String>, message: impl fmt::Display) -> Self {
        StoreError::Conflict {
            field: field.into(),
            message: message.to_string(),
        }
    }

    /// A [`StoreError::NotFound`] for the entity and id given.
    pub fn not_found(entity: &'static str, id: impl fmt::Display) -> Self {
        StoreError::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// A [`StoreError::Internal`] told by `message`.
    pub fn internal(message: impl Into<String>) -> Self {
        StoreError::Internal(Cause::new(message))
    }

    /// A [`StoreError::Unavailable`] told by `message`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable(Cause::new(message))
    }

    /// This error with `source` kept as the cause behind an
    /// [`StoreError::Internal`] or [`StoreError::Unavailable`] (for the logs); other
    /// errors say all there is to say and are returned as they are.
    pub fn caused_by(self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        match self {
            StoreError::Internal(c) if c.source.is_none() => {
                StoreError::Internal(Cause::from_error(c.message, source))
            }
            StoreError::Unavailable(c) if c.source.is_none() => {
                StoreError::Unavailable(Cause::from_error(c.message, source))
            }
            other => other,
        }
    }

    /// The field this error names, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            StoreError::Conflict { field, .. } | StoreError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Whether this error is a fault of the database or its host that goes away by
    /// itself or by an operator's hand (unreachable, full, read-only, too slow), as
    /// opposed to a refusal of the request: worth retrying later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_)
                | StoreError::StorageFull(_)
                | StoreError::ReadOnly(_)
                | StoreError::TimedOut(_)
        )
    }
}

#[cfg(test)]
mod cause_tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_its_source_for_the_logs() {
        let io = std::io::Error::other("disk on fire");
        let e = StoreError::internal("sqlite").caused_by(io);
        let StoreError::Internal(cause) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(cause.message(), "sqlite");
        assert_eq!(
            cause.source().map(|s| s.to_string()).as_deref(),
            Some("disk on fire")
        );
        assert_eq!(
            e.to_string(),
            "internal storage error: sqlite: disk on fire"
        );
        // Errors that say all there is to say are returned unchanged.
        let conflict =
            StoreError::conflict("name", "is already taken").caused_by(std::io::Error::other("x"));
        assert_eq!(conflict.to_string(), "conflict on name: is already taken");
    }
}
