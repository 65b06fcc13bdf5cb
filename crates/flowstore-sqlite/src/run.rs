//! SQLite storage for the `run` area.

use flowstore_core::model::run::RunRepo;

use crate::backend::SqliteTx;

impl RunRepo for SqliteTx {}
