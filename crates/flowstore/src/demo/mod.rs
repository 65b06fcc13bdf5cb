//! Demo data for `flowstore seed --demo`.

use crate::{Store, StoreResult};

/// Fills `store` with a realistic demo data set and returns a one-line summary.
pub async fn seed(store: &Store, runs: u32) -> StoreResult<String> {
    let _ = (store, runs);
    Err(crate::StoreError::Internal(
        "the demo data set is not built yet".into(),
    ))
}
