//! PostgreSQL storage for the `task` area.

use flowstore_core::model::task::TaskRepo;

use crate::backend::PostgresTx;

impl TaskRepo for PostgresTx {}
