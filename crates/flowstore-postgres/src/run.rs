//! PostgreSQL storage for the `run` area.

use flowstore_core::model::run::RunRepo;

use crate::backend::PostgresTx;

impl RunRepo for PostgresTx {}
