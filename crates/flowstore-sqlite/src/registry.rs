//! SQLite storage for the `registry` area.

use flowstore_core::model::registry::RegistryRepo;

use crate::backend::SqliteTx;

impl RegistryRepo for SqliteTx {}
