//! How both backends' connection pools decide whether an idle connection is still
//! alive before handing it out.
//!
//! sqlx pings every connection it hands out unless told otherwise: one more round trip
//! (on SQLite, one more hop to the connection's thread) in front of every transaction,
//! on the caller's path. It also pings every connection given back, after the caller
//! has left, to flush what the caller left queued (the rollback of a dropped
//! transaction). A connection that was alive when it came back a moment ago is taken
//! as alive; one that sat idle for longer is pinged first, because the server may
//! have restarted or a proxy may have cut it while nobody used it. A connection given
//! back still inside a transaction is closed.

use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::{Connection, Database};

/// A connection idle for at least this long is pinged before it is handed out.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(5);

/// `options` with connections pinged before use only after [`PING_AFTER_IDLE`].
/// A connection that fails the ping is closed and the pool hands out another.
pub fn ping_long_idle<DB: Database>(options: PoolOptions<DB>) -> PoolOptions<DB> {
    options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        // A connection sqlx still counts as inside a transaction once the rollback of
        // its dropped transaction has run (the ping waits for it) is closed, not kept:
        // SQLite ends a transaction by itself on a full disk or an I/O error, so that
        // rollback fails ("no transaction is active"), sqlx keeps its count, and every
        // later `BEGIN` on the connection would be refused for good. The pool opens a
        // fresh connection in its place. This runs after the caller has left.
        .after_release(|conn, _| {
            Box::pin(async move {
                if conn.is_in_transaction() {
                    conn.ping().await?;
                }
                Ok(!conn.is_in_transaction())
            })
        })
}
