//! PostgreSQL storage for the `ops` area.

use flowstore_core::model::ops::OpsRepo;

use crate::backend::PostgresTx;

impl OpsRepo for PostgresTx {}
