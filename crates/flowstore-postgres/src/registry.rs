//! PostgreSQL storage for the `registry` area.

use flowstore_core::model::registry::RegistryRepo;

use crate::backend::PostgresTx;

impl RegistryRepo for PostgresTx {}
