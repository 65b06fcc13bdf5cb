//! Demo data for `flowstore seed --demo`: a realistic data set written entirely
//! through the library's typed repository operations and the execution engine, so
//! that what it produces is exactly what real use would produce.
//!
//! The pieces live in submodules: [`catalog`] (people, projects, handlers,
//! components, workflows, configuration), [`runs`] (runs driven through the engine,
//! their metrics and logs) and [`backlog`] (standalone project tasks and pull
//! requests).

mod backlog;
mod catalog;
mod runs;

use flowstore::{Store, StoreError, StoreResult, Tx};

/// The name of the first demo project. Its presence marks a database that already
/// holds the demo data set.
pub const DEMO_PROJECT: &str = "demo-web-storefront";

/// The number of runs `flowstore seed --demo` creates unless told otherwise.
pub const DEFAULT_RUNS: u32 = 200;

/// Fills `store` with a realistic demo data set and returns a one-line summary of
/// what it wrote.
///
/// It seeds three users (admin, user, viewer) in a team, three projects with
/// repositories, the handler types `shell`, `docker`, `http` and `llm`, five
/// components with heartbeats, five workflows (a CI pipeline, a sequential data
/// pipeline, an AI code-review agent, a release train and a smoke check with a
/// one-second deadline), `runs` runs started and driven through the engine so that
/// they end completed, failed (under fail_fast and under continue), cancelled and
/// timed out, with some left running and some pending; about ten metrics per run
/// spread over the last 30 days, logs, standalone project tasks with dependencies,
/// pull requests in every status and configuration entries (one sensitive).
///
/// Everything is written in **one transaction**: if anything fails, nothing is
/// written. Seeding a database that already holds the demo data set is refused,
/// before any write, with [`StoreError::Conflict`] on `name` naming
/// [`DEMO_PROJECT`]; it never duplicates. Handler types that already exist and are
/// active are reused rather than registered again.
///
/// Seeding takes a few seconds of wall-clock time whatever `runs` is: retries wait
/// out the engine's backoff (under a second) and the timed-out runs wait out their
/// one-second deadline. Sensitive configuration needs the store's encryption key.
pub async fn seed(store: &Store, runs: u32) -> StoreResult<String> {
    let mut tx = store.begin().await?;
    match seed_in(&mut *tx, runs).await {
        Ok(summary) => {
            tx.commit().await?;
            Ok(summary)
        }
        Err(e) => {
            // The error that stopped the seed matters more than a failed rollback.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

async fn seed_in(tx: &mut dyn Tx, runs: u32) -> StoreResult<String> {
    match tx.get_project_by_name(DEMO_PROJECT).await {
        Ok(_) => {
            return Err(StoreError::conflict(
                "name",
                format!(
                    "the demo data set is already loaded (project {DEMO_PROJECT:?} exists); \
                     seed a fresh database instead"
                ),
            ))
        }
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let catalog = catalog::seed(tx).await?;
    let backlog = backlog::seed(tx, &catalog).await?;
    let runs = runs::seed(tx, &catalog, runs).await?;
    Ok(format!(
        "seeded {} users, 1 team, {} projects, {} handlers, {} components, {} workflows, \
         {} runs ({}), {} attempts, {} metrics, {} tasks, {} pull requests, {} logs, \
         {} configurations",
        catalog.users.len(),
        catalog.projects.len(),
        catalog.handlers,
        catalog.components,
        catalog.workflows.len(),
        grouped(runs.total()),
        runs.breakdown(),
        grouped(runs.attempts),
        grouped(runs.metrics),
        backlog.tasks,
        backlog.pull_requests,
        grouped(runs.logs),
        catalog.configurations,
    ))
}

/// `n` with thousands separators (`2,000`), for the summary line.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A small deterministic generator (splitmix64), so that every seed produces the same
/// shape of data and a failing seed can be reproduced.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `lo..hi` (floating point).
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        lo + unit * (hi - lo)
    }

    /// An integer in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(2000), "2,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn dice_stay_in_range() {
        let mut d = Dice(7);
        for _ in 0..1000 {
            let x = d.between(2.0, 3.0);
            assert!((2.0..3.0).contains(&x));
            assert!(d.below(5) < 5);
        }
    }
}
