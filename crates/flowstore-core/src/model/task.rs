//! The area of tasks, their dependencies, pull requests and the seed 003 summaries.

use async_trait::async_trait;

/// Storage operations on tasks, their dependencies, pull requests and the seed 003 summaries.
#[async_trait]
pub trait TaskRepo: Send {}
