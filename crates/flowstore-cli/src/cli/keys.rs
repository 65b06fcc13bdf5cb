//! `flowstore keys rotate`: re-seals every sensitive configuration value, credential
//! and webhook secret under the current encryption key, marks the credentials
//! re-sealed as rotated (`rotated_at`), and signs the audit log's head with the
//! current key (when it verifies with the old one, keeping the entry it names).
//!
//! The new key is the current one (`ENCRYPTION_KEY`, or the key file) and the old one
//! is given as previous (`ENCRYPTION_KEY_PREVIOUS`, or `--previous-key-file`), so
//! every value stays readable during the rotation. Values are re-sealed in batches,
//! one transaction each; a value already under the current key is left alone, so an
//! interrupted rotation is finished by running it again, and running it once more
//! does nothing. Once it reports zero left, the old key can be removed: nothing is
//! sealed nor signed with it any more.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use flowstore_core::model::audit_head::HeadResign;
use flowstore_core::model::integration::{SealedKind, StaleSecrets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use flowstore::config::Settings;
use flowstore::{Store, StoreError};

/// `flowstore keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-seal every sensitive value under the current key (after changing
    /// ENCRYPTION_KEY, with the old key in ENCRYPTION_KEY_PREVIOUS).
    #[command(
        after_help = "Example:\n  ENCRYPTION_KEY=<new> ENCRYPTION_KEY_PREVIOUS=<old> flowstore keys rotate"
    )]
    Rotate(RotateArgs),
}

/// `flowstore keys rotate`
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// A key file holding the previous key (added to ENCRYPTION_KEY_PREVIOUS).
    #[arg(long)]
    pub previous_key_file: Option<PathBuf>,
    /// Values re-sealed per transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub batch: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What a rotation did.
#[derive(Debug, Serialize)]
pub struct RotateReport {
    /// The ID of the key every value is now sealed with.
    pub key_id: String,
    /// Values re-sealed, by kind.
    pub resealed: StaleSecrets,
    /// What became of the audit log's signed head.
    pub audit_head: HeadResign,
}

/// Adds the previous key file's key to the settings, before the store is opened.
pub fn prepare(settings: &mut Settings, args: &RotateArgs) -> Result<(), StoreError> {
    if let Some(path) = &args.previous_key_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            StoreError::invalid(
                "previous_key_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        settings.previous_keys.push(text.trim().to_string());
    }
    if settings.encryption_key.is_none() && !settings.previous_keys.is_empty() {
        // The key file is the current key: give it with the previous ones as a ring.
        let current = std::fs::read_to_string(&settings.key_file).map_err(|e| {
            StoreError::invalid(
                "key_file",
                format!(
                    "cannot read the current key file {}: {e}",
                    settings.key_file.display()
                ),
            )
        })?;
        settings.encryption_key = Some(current.trim().to_string());
    }
    Ok(())
}

/// Re-seals everything not under the current key, in batches.
pub async fn rotate(
    store: &Store,
    settings: &Settings,
    args: RotateArgs,
) -> Result<(), StoreError> {
    store.backend().check_schema().await?;
    let report = reseal_all(store, settings, args.batch, !args.json).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let r = &report.resealed;
        println!(
            "re-sealed {} configuration value(s), {} credential(s), {} webhook secret(s), \
             {} trigger secret(s); every value is sealed with key {}",
            r.configurations, r.credentials, r.webhooks, r.triggers, report.key_id
        );
        match report.audit_head {
            HeadResign::Resigned => println!(
                "the audit log's head is now signed with key {}",
                report.key_id
            ),
            HeadResign::Current | HeadResign::Absent => {}
            HeadResign::Forged => eprintln!(
                "warning: the audit log's head does not verify and was left as it is; \
                 run `flowstore check`"
            ),
        }
    }
    Ok(())
}

/// The rotation itself, for the command and for tests: re-seals batch after batch of
/// each kind until none is left, showing a progress bar when `progress` is set.
pub async fn reseal_all(
    store: &Store,
    settings: &Settings,
    batch: u32,
    progress: bool,
) -> Result<RotateReport, StoreError> {
    let key_id = settings.key_source()?.keyring()?.current_id().to_string();
    let mut tx = store.begin_read().await?;
    let stale = tx.stale_secrets().await?;
    tx.rollback().await?;
    let bar = bar(stale.total(), progress);
    let mut done = StaleSecrets::default();
    for kind in SealedKind::ALL {
        loop {
            let mut tx = store.begin().await?;
            let n = tx.reseal_batch(kind, batch).await?;
            tx.commit().await?;
            if n == 0 {
                break;
            }
            match kind {
                SealedKind::Configurations => done.configurations += n,
                SealedKind::Credentials => done.credentials += n,
                SealedKind::Webhooks => done.webhooks += n,
                SealedKind::Triggers => done.triggers += n,
            }
            bar.inc(n);
        }
    }
    bar.finish_and_clear();
    // Under the append lock, like an append: a head signed with the old key is
    // signed again with the new one over the same entry, or left as evidence when
    // it does not verify.
    let mut tx = store.begin().await?;
    let audit_head = tx.resign_audit_head().await?;
    tx.commit().await?;
    Ok(RotateReport {
        key_id,
        resealed: done,
        audit_head,
    })
}

fn bar(total: u64, show: bool) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if !show || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("re-sealing {bar:30} {pos}/{len} {elapsed}") {
        bar.set_style(style);
    }
    bar
}
