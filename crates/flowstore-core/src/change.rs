//! What one server learns of the changes other servers (or other backends in the
//! process) commit to the database it shares with them, so that long polls, event
//! streams and caches react at once instead of on their next poll.
//!
//! A backend that can tell ([`crate::Backend::listen`]) delivers [`Change`]s to a
//! [`ChangeSink`]: PostgreSQL through `LISTEN`/`NOTIFY` (triggers of the change-feed
//! migration send them at commit), SQLite between the backends a process opened on
//! one file. Changes are hints, never data: a receiver reads the database again, so
//! a change delivered twice or late costs a query, and a change lost while the feed
//! was down is made up for by [`Change::Lost`] and by the safety poll.

use crate::time::Timestamp;

/// One hint about committed changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Tasks became ready: now when `at` is `None`, else at `at` (a retry's backoff).
    Work {
        /// When the task becomes claimable, if later than now.
        at: Option<Timestamp>,
    },
    /// Events were appended.
    Events,
    /// An API key, a user or a session changed (revoked, deactivated, demoted,
    /// ended): what a server holds of them in its caches is stale.
    Access,
    /// The feed is live: from now on changes are delivered.
    Listening,
    /// The feed was interrupted: anything may have changed meanwhile, and until
    /// [`Change::Listening`] comes again nothing is delivered.
    Lost,
}

/// Where a backend delivers [`Change`]s.
pub trait ChangeSink: Send + Sync + 'static {
    /// Takes one change; returns `false` once the receiver is gone, which ends the
    /// backend's listening.
    fn changed(&self, change: Change) -> bool;

    /// Whether the receiver is gone, asked while no change arrives.
    fn is_closed(&self) -> bool;
}
