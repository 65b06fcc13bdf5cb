//! Backups as an operator runs them, on SQLite and PostgreSQL: encrypted archives
//! (right and wrong passphrase or key file, a tampered byte), `backup list` and
//! `backup prune` over a directory that also holds other files, `restore` naming
//! the archive's creation time and source, and the server's scheduled backups.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowstore::{Store, StoreError};
use flowstore_cli::archive::{self, format, ArchiveSource, BackupOptions, Secret};
use flowstore_testkit::ENCRYPTION_KEY;
use serde_json::Value;

use crate::backup::{assert_same, dump, fresh, populate, quiet, sqlite_url, temp};
use crate::binary::{flowstore, succeeded as ok};

const PASSPHRASE: &str = "correct horse battery staple";

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// Flips one bit in the middle of `path`'s encrypted part.
fn tamper(path: &Path, into: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() - bytes.len() / 3;
    bytes[at] ^= 0x01;
    std::fs::write(into, bytes).unwrap();
}

async fn assert_empty(store: &Store) {
    let rows: usize = dump(store).await.iter().map(|(_, r)| r.len()).sum();
    assert_eq!(rows, 0, "a refused restore wrote rows");
}

async fn encrypted_round_trip(source: Store) {
    populate(&source).await;
    let before = dump(&source).await;
    let dir = temp();
    let pass = Secret::passphrase(PASSPHRASE, "test").unwrap();
    let file = dir.path().join("enc.fsa");
    let options = BackupOptions {
        secret: Some(&pass),
        source: Some(ArchiveSource::from_url(
            "postgres://u:pw@db.example:5432/prod",
        )),
        ..BackupOptions::default()
    };
    let summary = archive::backup_with(&source, &file, &options, &quiet)
        .await
        .unwrap();
    assert!(summary.rows > 0);
    // Nothing of the archive is readable without the passphrase: no manifest text,
    // no row text, and the password of the URL is recorded nowhere.
    let raw = std::fs::read(&file).unwrap();
    assert!(raw.starts_with(archive::crypt::MAGIC));
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains("hunter2") && !text.contains("pw@"), "{text}");
    assert!(
        !text.contains("workflow_versions"),
        "table names are encrypted"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "only the archive is left: {left:?}");

    // Without a secret, with the wrong one, and tampered: refused, nothing written.
    let target = fresh(&source).await;
    let err = archive::restore(&target, &file, false, &quiet)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is encrypted with a passphrase"),
        "{err}"
    );
    let wrong = Secret::passphrase("correct horse battery stapler", "test").unwrap();
    let err = archive::restore_with(&target, &file, false, Some(&wrong), &quiet)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    assert!(
        err.to_string().contains("passphrase does not open"),
        "{err}"
    );
    let bad = dir.path().join("tampered.fsa");
    tamper(&file, &bad);
    let err = archive::restore_with(&target, &bad, false, Some(&pass), &quiet)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("tampered.fsa has been altered or damaged"),
        "{err}"
    );
    let cut = dir.path().join("cut.fsa");
    let whole = std::fs::read(&file).unwrap();
    std::fs::write(&cut, &whole[..whole.len() - 7]).unwrap();
    assert!(format::verify_with(&cut, Some(&pass)).is_err());
    assert_empty(&target).await;

    // The right passphrase restores every row, and says where they came from.
    let restored = archive::restore_with(&target, &file, false, Some(&pass), &quiet)
        .await
        .unwrap();
    assert!(restored.encrypted);
    assert_eq!(restored.created_at, summary.manifest.created_at);
    let from = restored.source.unwrap();
    assert_eq!(from.host.as_deref(), Some("db.example:5432"));
    assert_eq!(from.database.as_deref(), Some("prod"));
    assert_eq!(from.user.as_deref(), Some("u"));
    assert_same(&before, &dump(&target).await);

    // A key file instead of a passphrase; a passphrase does not open its archive.
    let key = write(
        &dir.path().join("backup.key"),
        &format!("{}\n", "ab".repeat(32)),
    );
    let keyed = Secret::key_file(&key, "test").unwrap();
    let kfile = dir.path().join("keyed.fsa");
    archive::backup_with(
        &source,
        &kfile,
        &BackupOptions {
            secret: Some(&keyed),
            ..BackupOptions::default()
        },
        &quiet,
    )
    .await
    .unwrap();
    let err = format::verify_with(&kfile, Some(&pass)).unwrap_err();
    assert!(err.to_string().contains("key file"), "{err}");
    let other = write(&dir.path().join("other.key"), &"cd".repeat(32));
    let err =
        format::verify_with(&kfile, Some(&Secret::key_file(&other, "test").unwrap())).unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");
    let again = fresh(&source).await;
    archive::restore_with(&again, &kfile, false, Some(&keyed), &quiet)
        .await
        .unwrap();
    assert_same(&before, &dump(&again).await);
}

conformance!(encrypted_round_trip);

/// `flowstore …` with extra environment.
fn flowstore_env(url: &str, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flowstore"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env("ENCRYPTION_KEY", ENCRYPTION_KEY)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

fn archives(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".fsa"))
        .collect();
    names.sort();
    names
}

/// The database part of `url` as an archive records it.
fn database_of(url: &str) -> String {
    ArchiveSource::from_url(url).database.unwrap()
}

async fn list_prune_and_restore_output(url: String) {
    tokio::task::spawn_blocking(move || list_prune_and_restore(&url))
        .await
        .unwrap();
}

fn list_prune_and_restore(url: &str) {
    let dir = temp();
    let store = dir.path().join("archives");
    std::fs::create_dir(&store).unwrap();
    let s = store.to_str().unwrap();
    let pass = write(&dir.path().join("pass"), &format!("{PASSPHRASE}\n"));
    let p = pass.to_str().unwrap();
    ok(&flowstore(url, &["migrate", "up"]));
    ok(&flowstore(url, &["seed", "--demo", "--runs", "3"]));
    let (a, b, c) = (
        store.join("a.fsa"),
        store.join("b.fsa"),
        store.join("c.fsa"),
    );
    ok(&flowstore(url, &["backup", a.to_str().unwrap()]));
    ok(&flowstore(
        url,
        &["backup", "--passphrase-file", p, b.to_str().unwrap()],
    ));
    let out = ok(&flowstore_env(
        url,
        &[("FLOWSTORE_BACKUP_PASSPHRASE", PASSPHRASE)],
        &["backup", c.to_str().unwrap()],
    ));
    assert!(out.contains("encrypted with a passphrase"), "{out}");
    // Files that are not archives: a note, a file that merely looks like one and a
    // backup still being written.
    write(&store.join("README.txt"), "keep me");
    write(&store.join("fake.fsa"), "not an archive at all");
    std::fs::copy(&a, store.join("d.fsa.partial")).unwrap();

    let listing: Value = serde_json::from_str(&ok(&flowstore(
        url,
        &["backup", "list", "--dir", s, "--json"],
    )))
    .unwrap();
    let got = listing["archives"].as_array().unwrap();
    let names: Vec<&str> = got.iter().map(|a| a["file"].as_str().unwrap()).collect();
    assert_eq!(names, ["a.fsa", "b.fsa", "c.fsa"], "oldest first");
    let db = database_of(url);
    for a in got {
        assert_eq!(a["source"]["database"], db.as_str(), "{a}");
        assert!(!a["source"].to_string().contains("password"));
        assert!(a["rows"].as_u64().unwrap() > 0 && a["tables"].as_u64().unwrap() > 20);
        assert!(a["bytes"].as_u64().unwrap() > 0);
        assert!(a["created_at"].as_str().unwrap().ends_with('Z'));
        assert!(a["verified"].is_null(), "verified only with --verify");
    }
    assert_eq!(
        got.iter()
            .map(|a| a["encrypted"].clone())
            .collect::<Vec<_>>(),
        [Value::Null, "passphrase".into(), "passphrase".into()]
    );
    let skipped: Vec<&str> = listing["other"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["file"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["README.txt", "d.fsa.partial", "fake.fsa"]);

    // --verify reads each archive whole: with the passphrase all verify; without it
    // the encrypted ones say what they need, and the command fails.
    let out = ok(&flowstore(
        url,
        &[
            "backup",
            "list",
            "--dir",
            s,
            "--verify",
            "--passphrase-file",
            p,
        ],
    ));
    assert_eq!(out.matches("  verified").count(), 3, "{out}");
    assert!(out.contains("README.txt  (skipped"), "{out}");
    let no_secret = flowstore(url, &["backup", "list", "--dir", s, "--verify"]);
    assert!(!no_secret.status.success());
    let text = String::from_utf8_lossy(&no_secret.stdout);
    assert!(
        text.contains("DOES NOT VERIFY") && text.contains("--passphrase-file"),
        "{text}"
    );

    // restore names the time and the source, before restoring and in --json.
    let target = sqlite_url(dir.path(), "target.db");
    let refused = flowstore(&target, &["restore", b.to_str().unwrap()]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("is encrypted with a passphrase"), "{err}");
    let out = ok(&flowstore(
        &target,
        &["restore", "--passphrase-file", p, b.to_str().unwrap()],
    ));
    let created = got[1]["created_at"].as_str().unwrap();
    assert!(
        out.starts_with(&format!(
            "restoring {} (encrypted): taken {created}",
            b.display()
        )),
        "{out}"
    );
    assert!(out.contains(&format!("database {db}")), "{out}");
    let other = sqlite_url(dir.path(), "other.db");
    let out: Value = serde_json::from_str(&ok(&flowstore(
        &other,
        &["restore", "--json", a.to_str().unwrap()],
    )))
    .unwrap();
    assert_eq!(out["created_at"], got[0]["created_at"]);
    assert_eq!(out["source"]["database"], db.as_str());
    assert_eq!(out["encrypted"], false);

    // prune: a dry run deletes nothing; then the oldest archive goes and the other
    // files stay.
    let out = ok(&flowstore(
        url,
        &["backup", "prune", "--dir", s, "--keep", "2", "--dry-run"],
    ));
    assert!(out.contains("would delete a.fsa"), "{out}");
    assert_eq!(archives(&store), ["a.fsa", "b.fsa", "c.fsa", "fake.fsa"]);
    let pruned: Value = serde_json::from_str(&ok(&flowstore(
        url,
        &["backup", "prune", "--dir", s, "--keep", "2", "--json"],
    )))
    .unwrap();
    assert_eq!(pruned["deleted"], serde_json::json!(["a.fsa"]));
    assert_eq!(pruned["kept"], serde_json::json!(["b.fsa", "c.fsa"]));
    assert_eq!(archives(&store), ["b.fsa", "c.fsa", "fake.fsa"]);
    assert!(store.join("README.txt").exists() && store.join("d.fsa.partial").exists());
    let zero = flowstore(url, &["backup", "prune", "--dir", s, "--keep", "0"]);
    assert!(!zero.status.success());
    for help in [
        vec!["backup", "list", "--help"],
        vec!["backup", "prune", "--help"],
    ] {
        assert!(ok(&flowstore(url, &help)).contains("Example:"));
    }
    assert!(ok(&flowstore(url, &["restore", "--help"])).contains("--passphrase-file"));
}

/// A `flowstore serve` child, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

async fn scheduled_backups(url: String) {
    let dir = temp();
    let backups = dir.path().join("scheduled");
    ok(&flowstore(&url, &["migrate", "up"]));
    ok(&flowstore(&url, &["seed", "--demo", "--runs", "2"]));
    // Something that is not an archive sits in the directory from the start.
    std::fs::create_dir(&backups).unwrap();
    write(&backups.join("notes.txt"), "not an archive");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowstore"))
        .args(["--database-url", &url, "serve", "--listen", "127.0.0.1:0"])
        .args(["--backup-interval", "1s", "--backup-keep", "2"])
        .env("ENCRYPTION_KEY", ENCRYPTION_KEY)
        .env("FLOWSTORE_BACKUP_DIR", &backups)
        .env("FLOWSTORE_BACKUP_PASSPHRASE", PASSPHRASE)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let addr = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                l.strip_prefix("flowstore is listening on ")
                    .map(str::to_string)
            })
            .expect("serve prints its address");
        // Keep draining, so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        addr
    })
    .await
    .unwrap();
    let scrape = || async {
        reqwest::get(format!("{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // At least three backups written, and only the newest two kept (waiting at
    // most a minute; a backup may be between its rename and its prune).
    let start = Instant::now();
    loop {
        let text = scrape().await;
        let done = metric(&text, "flowstore_backups_total{result=\"success\"}").unwrap_or(0.0);
        let kept = archives(&backups)
            .iter()
            .filter(|n| n.starts_with("flowstore-"))
            .count();
        if done >= 3.0 && kept == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for three backups with two kept: {done} written, {kept} kept\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = scrape().await;
    assert_eq!(
        metric(&text, "flowstore_backups_total{result=\"failure\"}"),
        Some(0.0),
        "{text}"
    );
    assert!(metric(&text, "flowstore_backup_last_success_timestamp_seconds").unwrap() > 1.7e9);
    drop(server);
    assert!(
        backups.join("notes.txt").exists(),
        "prune left the note alone"
    );
    let names = archives(&backups);
    for n in &names {
        assert!(
            n.starts_with("flowstore-2") && n.ends_with("Z.fsa"),
            "named by UTC time: {n}"
        );
    }
    // Whole archives only (a backup cut off by the kill leaves no archive), each
    // encrypted, and the newest restores.
    let listing: Value = serde_json::from_str(&ok(&flowstore_env(
        &url,
        &[("FLOWSTORE_BACKUP_PASSPHRASE", PASSPHRASE)],
        &[
            "backup",
            "list",
            "--dir",
            backups.to_str().unwrap(),
            "--verify",
            "--json",
        ],
    )))
    .unwrap();
    let got = listing["archives"].as_array().unwrap();
    assert!(!got.is_empty() && got.len() <= 3, "{listing}");
    for a in got {
        assert_eq!(a["verified"], "ok", "{a}");
        assert_eq!(a["encrypted"], "passphrase");
        assert_eq!(a["source"]["database"], database_of(&url).as_str());
    }
    let newest = got.last().unwrap()["path"].as_str().unwrap().to_string();
    let target = sqlite_url(dir.path(), "restored.db");
    let out = ok(&flowstore_env(
        &target,
        &[("FLOWSTORE_BACKUP_PASSPHRASE", PASSPHRASE)],
        &["restore", &newest],
    ));
    assert!(
        out.contains("restored") && out.contains("taken 20"),
        "{out}"
    );
    // Without the passphrase it is refused, naming what it needs.
    let other = sqlite_url(dir.path(), "other.db");
    let refused = flowstore(&other, &["restore", &newest]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("FLOWSTORE_BACKUP_PASSPHRASE"));
}

/// The binary's commands, per database (`conformance!` above has the store's).
mod binary {
    use super::{list_prune_and_restore_output, scheduled_backups};
    per_database!(list_prune_and_restore_output, scheduled_backups);
}

/// A schedule without a directory, or with a secret it cannot read, stops `serve`
/// before it starts, naming the setting.
#[test]
fn schedule_settings_are_checked() {
    let dir = temp();
    let url = sqlite_url(dir.path(), "s.db");
    let serve = |settings: &[&str]| {
        let args = [&["serve", "--listen", "127.0.0.1:0"], settings].concat();
        flowstore(&url, &args)
    };
    let out = serve(&["--backup-interval", "6h"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--backup-dir"));
    let out = serve(&["--backup-interval", "soon"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--backup-interval"));
    let missing = dir.path().join("missing.pass");
    let out = serve(&[
        "--backup-interval",
        "6h",
        "--backup-dir",
        dir.path().to_str().unwrap(),
        "--backup-passphrase-file",
        missing.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pass"));
    let help = ok(&flowstore(&url, &["serve", "--help"]));
    for flag in [
        "--backup-interval",
        "--backup-dir",
        "--backup-keep",
        "FLOWSTORE_BACKUP_DIR",
    ] {
        assert!(help.contains(flag), "{flag}");
    }
}
