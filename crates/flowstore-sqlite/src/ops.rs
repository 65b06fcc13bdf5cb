//! SQLite storage for the `ops` area.

use flowstore_core::model::ops::OpsRepo;

use crate::backend::SqliteTx;

impl OpsRepo for SqliteTx {}
