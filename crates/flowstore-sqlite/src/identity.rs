//! SQLite storage for the `identity` area.

use flowstore_core::model::identity::IdentityRepo;

use crate::backend::SqliteTx;

impl IdentityRepo for SqliteTx {}
