//! Portable backup and restore, export and import, on SQLite and PostgreSQL: round
//! trips across backends with every row compared, damaged and newer archives refused
//! before anything is written, consistency under concurrent writes, and no archive
//! left behind by a failed backup.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use flowstore::archive::{self, export, format};
use flowstore::model::engine::StartRun;
use flowstore::model::ops::SetConfiguration;
use flowstore::{Store, StoreError};
use flowstore_core::archive::{catalog, native_types};
use serde_json::json;

#[path = "conformance/common.rs"]
#[macro_use]
#[allow(dead_code, unused_macros)]
mod common;

fn quiet(_: &str, _: u64) {}

/// Every row of every table, in portable form, table by table.
async fn dump(store: &Store) -> Vec<(String, Vec<String>)> {
    let mut snap = store.backend().archive().snapshot().await.unwrap();
    let mut out = Vec::new();
    for t in catalog() {
        let mut rows = Vec::new();
        snap.read_table(t, &mut |r| {
            rows.push(serde_json::to_string(&r).unwrap());
            Ok(())
        })
        .await
        .unwrap();
        out.push((t.name.to_string(), rows));
    }
    snap.finish().await.unwrap();
    out
}

/// Asserts two dumps hold the same rows, showing the first difference only.
fn assert_same(a: &[(String, Vec<String>)], b: &[(String, Vec<String>)]) {
    for ((name, x), (_, y)) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len(), "rows of {name}");
        if let Some((r, s)) = x.iter().zip(y).find(|(r, s)| r != s) {
            panic!("table {name} differs:\n  source {r}\n  target {s}");
        }
    }
}

fn total(d: &[(String, Vec<String>)]) -> usize {
    d.iter().map(|(_, r)| r.len()).sum()
}

/// Data made through the repositories, plus the references a restore must defer.
async fn populate(store: &Store) {
    flowstore::demo::seed(store, 12).await.expect("demo data");
    let mut tx = store.begin().await.unwrap();
    tx.set_configuration(SetConfiguration {
        key: "smtp.password".into(),
        value: json!("hunter2"),
        is_sensitive: true,
        config_type: None,
        description: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // A sub-task, a run that points at a task and a workflow with a parent: the
    // cyclic and self references a restore loads in two steps.
    for sql in [
        "UPDATE tasks SET parent_task_id = (SELECT id FROM tasks ORDER BY id DESC LIMIT 1)
          WHERE id = (SELECT id FROM tasks ORDER BY id LIMIT 1)",
        "UPDATE workflow_executions SET task_id = (SELECT id FROM tasks ORDER BY id DESC LIMIT 1)
          WHERE id = (SELECT id FROM workflow_executions ORDER BY id LIMIT 1)",
        "UPDATE workflows SET parent_workflow_id = (SELECT id FROM workflows ORDER BY id DESC LIMIT 1)
          WHERE id = (SELECT id FROM workflows ORDER BY id LIMIT 1)",
    ] {
        assert_eq!(store.backend().execute_raw(sql).await.unwrap(), 1, "{sql}");
    }
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

async fn round_trip(source: Store, target: Store) {
    populate(&source).await;
    let dir = temp();
    let file = dir.path().join("all.fsa");
    let summary = archive::backup(&source, &file, None, &quiet).await.unwrap();
    assert_eq!(summary.manifest.tables.len(), catalog().len());
    assert!(!dir.path().join("all.fsa.partial").exists());
    let restored = archive::restore(&target, &file, false, &quiet)
        .await
        .unwrap();
    let before = dump(&source).await;
    let after = dump(&target).await;
    assert!(total(&before) > 100, "the source holds data");
    for t in [
        "tasks",
        "workflow_executions",
        "configurations",
        "events",
        "workflow_stats",
    ] {
        let rows = &before.iter().find(|(n, _)| n == t).unwrap().1;
        assert!(!rows.is_empty(), "{t} has rows to compare");
    }
    assert_same(&before, &after);
    assert_eq!(restored.rows as usize, total(&before));
    // The sensitive value stayed sealed and opens with the same key.
    let mut tx = target.begin_read().await.unwrap();
    let c = tx.get_configuration("smtp.password").await.unwrap();
    assert!(c.is_sensitive);
    drop(tx);
    // The restored database takes new work: event ids continue past the restored ones.
    let workflow = active_workflow(&target).await;
    let mut tx = target.begin().await.unwrap();
    tx.start_run(StartRun {
        workflow_id: workflow.into(),
        ..Default::default()
    })
    .await
    .expect("a run starts on the restored database");
    tx.rollback().await.unwrap();
    // A second backup of the target has the same checksums as the first.
    let again = archive::backup(&target, &dir.path().join("again.fsa"), None, &quiet)
        .await
        .unwrap();
    for (a, b) in summary.manifest.tables.iter().zip(&again.manifest.tables) {
        assert_eq!((a.rows, &a.sha256), (b.rows, &b.sha256), "{}", a.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_sqlite_to_sqlite() {
    round_trip(common::sqlite().await, common::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_postgres_to_postgres() {
    round_trip(common::postgres().await, common::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_sqlite_to_postgres() {
    round_trip(common::sqlite().await, common::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_postgres_to_sqlite() {
    round_trip(common::postgres().await, common::sqlite().await).await;
}

/// The catalog names every table and column of the real schema, with a compatible
/// type: a migration cannot leave anything out of backups unnoticed.
async fn catalog_matches_schema(store: Store) {
    let sqlite = store.kind() == flowstore::BackendKind::Sqlite;
    let native = store.backend().archive().native_columns().await.unwrap();
    let mut tables: Vec<&str> = native.iter().map(|(t, _, _)| t.as_str()).collect();
    tables.dedup();
    let mut ours: Vec<&str> = catalog().iter().map(|t| t.name).collect();
    ours.sort();
    assert_eq!(
        tables, ours,
        "the catalog lists exactly the schema's tables"
    );
    for t in catalog() {
        let cols: Vec<&(String, String, String)> =
            native.iter().filter(|(n, _, _)| n == t.name).collect();
        assert_eq!(cols.len(), t.columns.len(), "columns of {}", t.name);
        for (_, name, ty) in cols {
            let c = t
                .column(name)
                .unwrap_or_else(|| panic!("{}.{name} is missing from the catalog", t.name));
            assert!(
                native_types(c.ty, sqlite).contains(&ty.as_str()),
                "{}.{name}: {ty} does not hold {:?}",
                t.name,
                c.ty
            );
        }
    }
}

async fn assert_empty(store: &Store) {
    assert_eq!(total(&dump(store).await), 0, "nothing was written");
}

/// A flipped byte, a truncated archive and a newer schema are refused before the
/// target is touched.
async fn damaged_archives_are_refused(target: Store) {
    let source = common::sqlite().await;
    populate(&source).await;
    let dir = temp();
    let good = dir.path().join("good.fsa");
    archive::backup(&source, &good, None, &quiet).await.unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let flipped = dir.path().join("flipped.fsa");
    let mut b = bytes.clone();
    let at = b.len() * 2 / 3;
    b[at] ^= 0x20;
    std::fs::write(&flipped, &b).unwrap();
    let truncated = dir.path().join("truncated.fsa");
    std::fs::write(&truncated, &bytes[..bytes.len() - 200]).unwrap();
    for bad in [&flipped, &truncated] {
        let err = archive::restore(&target, bad, false, &quiet)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid { field, .. } if field == "archive"),
            "{bad:?}: {err}"
        );
        assert_empty(&target).await;
    }

    let newer = dir.path().join("newer.fsa");
    let mut manifest = format::verify(&good).unwrap();
    manifest.schema_version = 999;
    manifest.tables.clear();
    format::ArchiveWriter::create(&newer)
        .unwrap()
        .finish(&manifest)
        .unwrap();
    let err = archive::restore(&target, &newer, false, &quiet)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
    assert_empty(&target).await;
}

/// A database holding data is refused unless --replace, which swaps it whole.
async fn non_empty_target_needs_replace(target: Store) {
    let source = common::sqlite().await;
    populate(&source).await;
    populate(&target).await;
    let dir = temp();
    let file = dir.path().join("a.fsa");
    archive::backup(&source, &file, None, &quiet).await.unwrap();
    let before = dump(&target).await;
    let err = archive::restore(&target, &file, false, &quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { field, .. } if field == "database"),
        "{err}"
    );
    assert_eq!(
        dump(&target).await,
        before,
        "a refused restore changes nothing"
    );
    archive::restore(&target, &file, true, &quiet)
        .await
        .unwrap();
    assert_same(&dump(&target).await, &dump(&source).await);
}

/// The ID of an active workflow.
async fn active_workflow(store: &Store) -> uuid::Uuid {
    let d = dump(store).await;
    let rows = &d.iter().find(|(n, _)| n == "workflows").unwrap().1;
    rows.iter()
        .map(|r| serde_json::from_str::<Vec<serde_json::Value>>(r).unwrap())
        .find(|r| r[4] == json!("active"))
        .map(|r| r[0].as_str().unwrap().parse().unwrap())
        .expect("an active workflow")
}

/// A backup taken while runs are being started is one consistent snapshot.
async fn backup_during_writes_is_consistent(store: Store) {
    populate(&store).await;
    let workflow = active_workflow(&store).await;
    let store = Arc::new(store);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..2 {
        let (store, stop) = (store.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut tx = store.begin().await.unwrap();
                tx.start_run(StartRun {
                    workflow_id: workflow.into(),
                    ..Default::default()
                })
                .await
                .unwrap();
                tx.commit().await.unwrap();
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let dir = temp();
    let file = dir.path().join("live.fsa");
    archive::backup(&store, &file, None, &quiet).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut started = 0;
    for w in writers {
        started += w.await.unwrap();
    }
    assert!(started > 0, "writers ran during the backup");
    format::verify(&file).unwrap();
    let (mut reader, _) = format::ArchiveReader::open(&file).unwrap();
    let mut runs = std::collections::HashSet::new();
    let mut task_runs = Vec::new();
    while let Some((row, _)) = reader.next_row().unwrap() {
        match row.t.as_str() {
            "workflow_executions" => {
                runs.insert(row.r[0].as_str().unwrap().to_string());
            }
            "tasks" => {
                if let Some(run) = row.r[3].as_str() {
                    task_runs.push(run.to_string());
                }
            }
            _ => {}
        }
    }
    assert!(!task_runs.is_empty());
    assert!(
        task_runs.iter().all(|r| runs.contains(r)),
        "every task's run is in the archive"
    );
    // And it restores.
    let target = common::sqlite().await;
    archive::restore(&target, &file, false, &quiet)
        .await
        .unwrap();
}

/// Workflows move between installations; duplicates are a Conflict unless skipped.
async fn export_and_import(target: Store) {
    let source = common::sqlite().await;
    populate(&source).await;
    let doc = export::export(&source, None).await.unwrap();
    let text = serde_json::to_string(&doc).unwrap();
    assert!(!text.contains("hunter2") && !text.contains("credentials"));
    let wf = doc.tables.iter().find(|t| t.name == "workflows").unwrap();
    assert!(!wf.rows.is_empty());
    let summary = export::import(&target, &doc, false).await.unwrap();
    assert!(summary
        .imported
        .iter()
        .any(|(t, n)| t == "workflow_versions" && *n > 0));
    let err = export::import(&target, &doc, false).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { field, .. } if field.starts_with("projects.")),
        "{err}"
    );
    let again = export::import(&target, &doc, true).await.unwrap();
    assert!(again.imported.iter().all(|(_, n)| *n == 0));
    let one = wf.rows[0][0].as_str().unwrap().to_string();
    let single = export::export(&source, Some(&[one])).await.unwrap();
    let wf = single
        .tables
        .iter()
        .find(|t| t.name == "workflows")
        .unwrap();
    assert_eq!(wf.rows.len(), 1);
    let missing = uuid::Uuid::now_v7().to_string();
    assert!(matches!(
        export::export(&source, Some(&[missing])).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        export::export(&source, Some(&["nope".into()])).await,
        Err(StoreError::Invalid { field, .. }) if field == "--workflows"
    ));
}

/// Unknown tables are refused by name, and a selection writes only those tables.
async fn table_selection(store: Store) {
    populate(&store).await;
    let dir = temp();
    let err = archive::backup(
        &store,
        &dir.path().join("x.fsa"),
        Some(&["users".into(), "nope".into()]),
        &quiet,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid { field, reason } if field == "--tables" && reason.contains("nope"))
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no file is left"
    );
    let file = dir.path().join("some.fsa");
    let s = archive::backup(
        &store,
        &file,
        Some(&["projects".into(), "workflows".into()]),
        &quiet,
    )
    .await
    .unwrap();
    let names: Vec<&str> = s.manifest.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["projects", "workflows"]);
}

conformance!(
    catalog_matches_schema,
    damaged_archives_are_refused,
    non_empty_target_needs_replace,
    backup_during_writes_is_consistent,
    export_and_import,
    table_selection,
    failed_backup_leaves_no_archive
);

/// Mounts a 64 KiB tmpfs (as root) so that a backup runs out of space.
fn tiny_disk() -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("fs-full-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).ok()?;
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(dir)
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn failed_backup_leaves_no_archive(store: Store) {
    populate(&store).await;
    // Fill enough incompressible bytes that the archive cannot fit in 64 KiB.
    let mut tx = store.begin().await.unwrap();
    for i in 0..40 {
        let noise: String = (0..4000)
            .map(|_| format!("{:x}", rand::random::<u8>()))
            .collect();
        tx.set_configuration(SetConfiguration {
            key: format!("noise.{i}"),
            value: json!(noise),
            is_sensitive: false,
            config_type: None,
            description: None,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    match tiny_disk() {
        Some(dir) => {
            let err = archive::backup(&store, &dir.join("full.fsa"), None, &quiet)
                .await
                .unwrap_err();
            let text = err.to_string();
            // Look while the full disk is still mounted: that is where a partial
            // archive would be.
            let left = leftovers(&dir);
            let _ = std::process::Command::new("umount").arg(&dir).status();
            let _ = std::fs::remove_dir(&dir);
            assert!(text.contains("disk is full"), "{text}");
            assert!(left.is_empty(), "left behind: {left:?}");
        }
        None => {
            // Not root: a directory that does not exist fails the same way.
            let dir = temp();
            let err = archive::backup(&store, &dir.path().join("no/such/dir/a.fsa"), None, &quiet)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("cannot write"), "{err}");
            assert!(leftovers(dir.path()).is_empty());
        }
    }
}

fn flowstore(url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flowstore"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env(
            "ENCRYPTION_KEY",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        )
        .output()
        .expect("the binary runs")
}

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The commands end to end: backup, restore, export, import and --native.
fn cli_round_trip(source: &str, target: &str, other: &str) {
    let dir = temp();
    let file = dir.path().join("b.fsa");
    let f = file.to_str().unwrap();
    ok(&flowstore(source, &["migrate", "up"]));
    ok(&flowstore(source, &["seed", "--demo", "--runs", "4"]));
    let out = ok(&flowstore(source, &["backup", f, "--json"]));
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(summary["rows"].as_u64().unwrap() > 0);
    let again = flowstore(source, &["backup", f]);
    assert!(
        !again.status.success(),
        "an existing archive is not overwritten"
    );
    assert!(ok(&flowstore(target, &["restore", f])).contains("restored"));
    let refused = flowstore(target, &["restore", f]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--replace"));
    ok(&flowstore(target, &["restore", "--replace", f]));
    let defs = dir.path().join("defs.json");
    ok(&flowstore(
        source,
        &["export", "--all", "--output", defs.to_str().unwrap()],
    ));
    ok(&flowstore(other, &["migrate", "up"]));
    ok(&flowstore(other, &["import", defs.to_str().unwrap()]));
    let dup = flowstore(other, &["import", defs.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&dup.stderr).contains("--skip-existing"));
    ok(&flowstore(
        other,
        &["import", "--skip-existing", defs.to_str().unwrap()],
    ));
    let native = dir.path().join("native.dump");
    ok(&flowstore(
        source,
        &["backup", "--native", native.to_str().unwrap()],
    ));
    assert!(std::fs::metadata(&native).unwrap().len() > 0);
    for cmd in ["backup", "restore", "export", "import"] {
        assert!(ok(&flowstore(source, &[cmd, "--help"])).contains("Example:"));
    }
}

fn sqlite_url(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

#[test]
fn cli_sqlite() {
    let dir = temp();
    let (a, b, c) = (
        sqlite_url(dir.path(), "a.db"),
        sqlite_url(dir.path(), "b.db"),
        sqlite_url(dir.path(), "c.db"),
    );
    cli_round_trip(&a, &b, &c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_postgres() {
    let (a, b, c) = (
        common::fresh_pg_database().await,
        common::fresh_pg_database().await,
        common::fresh_pg_database().await,
    );
    tokio::task::spawn_blocking(move || cli_round_trip(&a, &b, &c))
        .await
        .unwrap();
}
