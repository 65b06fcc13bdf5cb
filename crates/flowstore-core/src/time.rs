//! Time as flowstore keeps it: UTC instants truncated to microseconds, the precision
//! both backends store, so that a value read back equals the value written.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// An instant in UTC.
pub type Timestamp = DateTime<Utc>;

/// The current instant, truncated to microseconds.
pub fn now() -> Timestamp {
    truncate(Utc::now())
}

/// `t` truncated to microseconds.
pub fn truncate(t: Timestamp) -> Timestamp {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// Milliseconds from `start` to `end`, never negative, saturating at `i32::MAX` (seed
/// 000 keeps durations in an INTEGER column of milliseconds).
pub fn duration_ms(start: Timestamp, end: Timestamp) -> i32 {
    (end - start).num_milliseconds().clamp(0, i32::MAX as i64) as i32
}
