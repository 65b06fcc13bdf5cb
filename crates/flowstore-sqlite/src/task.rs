//! SQLite storage for the `task` area.

use flowstore_core::model::task::TaskRepo;

use crate::backend::SqliteTx;

impl TaskRepo for SqliteTx {}
