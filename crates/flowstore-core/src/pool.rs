//! How both backends' connection pools decide whether an idle connection is still
//! alive before handing it out.
//!
//! sqlx pings every connection it hands out unless told otherwise: one more round trip
//! (on SQLite, one more hop to the connection's thread) in front of every transaction,
//! on the caller's path. It also pings every connection given back, after the caller
//! has left, to flush what the caller left queued (the rollback of a dropped
//! transaction). A connection that was alive when it came back a moment ago is taken
//! as alive; one that sat idle for longer is pinged first, because the server may
//! have restarted or a proxy may have cut it while nobody used it.

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
}
