//! The area of the handler registry and components.

use async_trait::async_trait;

/// Storage operations on the handler registry and components.
#[async_trait]
pub trait RegistryRepo: Send {}
