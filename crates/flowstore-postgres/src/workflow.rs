//! PostgreSQL storage for the `workflow` area.

use flowstore_core::model::workflow::WorkflowRepo;

use crate::backend::PostgresTx;

impl WorkflowRepo for PostgresTx {}
