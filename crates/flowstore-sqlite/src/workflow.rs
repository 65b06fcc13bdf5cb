//! SQLite storage for the `workflow` area.

use flowstore_core::model::workflow::WorkflowRepo;

use crate::backend::SqliteTx;

impl WorkflowRepo for SqliteTx {}
