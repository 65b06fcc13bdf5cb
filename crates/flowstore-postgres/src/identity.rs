//! PostgreSQL storage for the `identity` area.

use flowstore_core::model::identity::IdentityRepo;

use crate::backend::PostgresTx;

impl IdentityRepo for PostgresTx {}
