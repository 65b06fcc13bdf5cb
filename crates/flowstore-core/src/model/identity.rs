//! The area of users, teams and their members, sessions, API keys and notifications.

use async_trait::async_trait;

/// Storage operations on users, teams and their members, sessions, API keys and notifications.
#[async_trait]
pub trait IdentityRepo: Send {}
