//! The area of runs (seed 000's workflow executions), their metrics and task attempts.

use async_trait::async_trait;

/// Storage operations on runs (seed 000's workflow executions), their metrics and task attempts.
#[async_trait]
pub trait RunRepo: Send {}
