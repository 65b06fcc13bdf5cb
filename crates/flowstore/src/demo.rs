//! Demo data for `flowstore seed --demo`.
