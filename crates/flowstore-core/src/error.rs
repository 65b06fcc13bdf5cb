//! The storage error: one type for every backend, so that callers (the HTTP layer, the
//! command line) decide what to show without knowing which database answered.

use std::fmt;

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
    Unavailable(String),
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
    /// Anything else: a bug or an unexpected driver error. Not shown to clients.
    #[error("internal storage error: {0}")]
    Internal(String),
}

/// The result of a storage operation.
pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
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
