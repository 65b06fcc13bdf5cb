//! The area of workflows, their versions and shares.

use async_trait::async_trait;

/// Storage operations on workflows, their versions and shares.
#[async_trait]
pub trait WorkflowRepo: Send {}
