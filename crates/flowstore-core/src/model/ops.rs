//! The area of logs and configurations.

use async_trait::async_trait;

/// Storage operations on logs and configurations.
#[async_trait]
pub trait OpsRepo: Send {}
