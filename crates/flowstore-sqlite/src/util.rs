//! Small helpers shared by this backend's repositories.

use chrono::{DateTime, Utc};

/// An instant in the fixed text form this backend stores, so that comparisons in SQL
/// order by time.
pub fn ts(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// [`ts`] for an optional instant.
pub fn ts_opt(t: &Option<DateTime<Utc>>) -> Option<String> {
    t.as_ref().map(ts)
}
