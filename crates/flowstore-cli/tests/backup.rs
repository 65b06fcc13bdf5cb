//! Portable backup and restore, export and import, on SQLite and PostgreSQL: round
//! trips across backends with every row compared, damaged and newer archives refused
//! before anything is written, consistency under concurrent writes, and no archive
//! left behind by a failed backup.

use crate::binary::{flowstore, succeeded as ok};
use flowstore_testkit::{PgDatabase, TestStore};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use flowstore::model::engine::StartRun;
use flowstore::model::ops::SetConfiguration;
use flowstore::{Store, StoreError};
use flowstore_cli::archive::{self, export, format};
use flowstore_core::archive::{catalog, native_types, ColumnType};
use serde_json::json;

pub(crate) fn quiet(_: &str, _: u64) {}

/// Every row of every table, in portable form, table by table.
pub(crate) async fn dump(store: &Store) -> Vec<(String, Vec<String>)> {
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
pub(crate) fn assert_same(a: &[(String, Vec<String>)], b: &[(String, Vec<String>)]) {
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

/// Sets one configuration value, in a transaction of its own.
async fn set_configuration(store: &Store, key: &str, value: serde_json::Value, is_sensitive: bool) {
    let mut tx = store.begin().await.unwrap();
    tx.set_configuration(SetConfiguration {
        key: key.into(),
        value,
        is_sensitive,
        config_type: None,
        description: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Data made through the repositories, plus the references a restore must defer.
pub(crate) async fn populate(store: &Store) {
    flowstore_cli::demo::seed(store, 12)
        .await
        .expect("demo data");
    set_configuration(store, "smtp.password", json!("hunter2"), true).await;
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

pub(crate) fn temp() -> tempfile::TempDir {
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
    // The search finds the same tasks in both: it is derived from the tasks (on
    // PostgreSQL a table of its own), so the restore rebuilt it.
    for word in ["search", "checkout", "deploy"] {
        let found = async |store: &Store| {
            let mut tx = store.begin_read().await.unwrap();
            let mut ids: Vec<_> = tx
                .search_tasks(word, &Default::default(), 100)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.id)
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(found(&source).await, found(&target).await, "{word}");
    }
    let mut tx = source.begin_read().await.unwrap();
    let titled = tx
        .search_tasks("checkout", &Default::default(), 100)
        .await
        .unwrap();
    assert!(!titled.is_empty(), "the demo data has tasks to find");
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

two_stores! {
    round_trip_sqlite_to_sqlite: round_trip(sqlite, sqlite);
    round_trip_postgres_to_postgres: round_trip(postgres, postgres);
    round_trip_sqlite_to_postgres: round_trip(sqlite, postgres);
    round_trip_postgres_to_sqlite: round_trip(postgres, sqlite);
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
    let source = TestStore::sqlite().await;
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
    let source = TestStore::sqlite().await;
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
    let target = TestStore::sqlite().await;
    archive::restore(&target, &file, false, &quiet)
        .await
        .unwrap();
}

/// Workflows move between installations; duplicates are a Conflict unless skipped.
async fn export_and_import(target: Store) {
    let source = TestStore::sqlite().await;
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
    assert_eq!(
        s.manifest.partial,
        Some(vec!["projects".to_string(), "workflows".to_string()])
    );
    assert_eq!(s.references_outside, ["users", "teams"]);
    // The table the database derives from runs cannot be archived on its own.
    let err = archive::backup(
        &store,
        &dir.path().join("stats.fsa"),
        Some(&["workflow_stats".into()]),
        &quiet,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid { field, reason } if field == "--tables" && reason.contains("workflow_stats")),
        "{err}"
    );
    assert!(!dir.path().join("stats.fsa").exists());
    // Naming every table is a whole backup.
    let every: Vec<String> = catalog().iter().map(|t| t.name.to_string()).collect();
    let all = archive::backup(&store, &dir.path().join("every.fsa"), Some(&every), &quiet)
        .await
        .unwrap();
    assert_eq!(all.manifest.partial, None);
}

/// A new store on the same backend as `like`.
pub(crate) async fn fresh(like: &Store) -> TestStore {
    match like.kind() {
        flowstore::BackendKind::Sqlite => TestStore::sqlite().await,
        flowstore::BackendKind::Postgres => TestStore::postgres().await,
    }
}

/// The rows of `table` in a dump.
fn rows<'a>(d: &'a [(String, Vec<String>)], table: &str) -> &'a [String] {
    &d.iter().find(|(n, _)| n == table).unwrap().1
}

/// The first value (the id) of each row of `table`.
fn ids(d: &[(String, Vec<String>)], table: &str) -> Vec<String> {
    rows(d, table)
        .iter()
        .map(|r| serde_json::from_str::<Vec<serde_json::Value>>(r).unwrap()[0].to_string())
        .map(|v| v.trim_matches('"').to_string())
        .collect()
}

/// Asserts that `tables` hold the same rows in both dumps and every other table
/// holds the rows of `others`.
fn assert_tables(
    got: &[(String, Vec<String>)],
    tables: &[&str],
    want: &[(String, Vec<String>)],
    others: &[(String, Vec<String>)],
) {
    for (name, r) in got {
        let expected = if tables.contains(&name.as_str()) {
            rows(want, name)
        } else {
            rows(others, name)
        };
        assert_eq!(r.as_slice(), expected, "rows of {name}");
    }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

const DEFS: &[&str] = &["workflows", "workflow_versions"];
const PEOPLE: &[&str] = &["users", "teams", "projects"];

/// A partial archive restores into a database that holds what its rows point at,
/// is refused (naming the reference) by one that does not, and is refused over
/// rows the database already holds; nothing is written by a refused restore.
async fn partial_restore_needs_what_rows_point_at(source: Store) {
    populate(&source).await;
    let source_rows = dump(&source).await;
    let dir = temp();
    let defs = dir.path().join("defs.fsa");
    let s = archive::backup(&source, &defs, Some(&strings(DEFS)), &quiet)
        .await
        .unwrap();
    assert_eq!(s.manifest.partial, Some(strings(DEFS)));
    assert_eq!(s.references_outside, PEOPLE);
    assert!(s.rows > 0);

    // Into an empty database: refused, naming table, column and a missing user.
    let empty = fresh(&source).await;
    for replace in [false, true] {
        let err = archive::restore(&empty, &defs, replace, &quiet)
            .await
            .unwrap_err();
        match &err {
            StoreError::Invalid { field, reason } => {
                assert_eq!(field, "workflows.owner_id", "{err}");
                assert!(reason.contains("references users id "), "{err}");
                // Every reference that finds nothing is listed, with what to add.
                assert!(
                    reason.contains("also missing: workflows.team_id → teams"),
                    "{err}"
                );
                assert!(
                    reason.contains("include users, teams, projects in the backup"),
                    "{err}"
                );
                assert!(
                    ids(&source_rows, "users")
                        .iter()
                        .any(|u| reason.contains(u)),
                    "the missing user is named: {err}"
                );
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert_empty(&empty).await;
    }

    // Into a database that holds the users, teams and projects: loaded beside them.
    let target = fresh(&source).await;
    let people = dir.path().join("people.fsa");
    archive::backup(&source, &people, Some(&strings(PEOPLE)), &quiet)
        .await
        .unwrap();
    archive::restore(&target, &people, false, &quiet)
        .await
        .unwrap();
    let with_people = dump(&target).await;
    assert_tables(&with_people, PEOPLE, &source_rows, &dump(&empty).await);
    let restored = archive::restore(&target, &defs, false, &quiet)
        .await
        .unwrap();
    assert!(restored.partial);
    let counts: Vec<(String, u64)> = s
        .manifest
        .tables
        .iter()
        .map(|t| (t.name.clone(), t.rows))
        .collect();
    assert_eq!(restored.tables, counts);
    assert_eq!(restored.rows, s.rows);
    let after = dump(&target).await;
    assert_tables(&after, DEFS, &source_rows, &with_people);
    assert!(!rows(&after, "workflow_versions").is_empty());

    // Again, without --replace: the rows are there already.
    let err = archive::restore(&target, &defs, false, &quiet)
        .await
        .unwrap_err();
    match &err {
        StoreError::Conflict { field, message } => {
            assert_eq!(field, "workflows.id", "{err}");
            assert!(message.contains("--replace"), "{err}");
            assert!(
                ids(&source_rows, "workflows")
                    .iter()
                    .any(|w| message.starts_with(w.as_str())),
                "the clashing row is named: {err}"
            );
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(
        dump(&target).await,
        after,
        "a refused restore changes nothing"
    );

    // With --with-references the archive restores into an empty database.
    let whole = dir.path().join("defs-and-people.fsa");
    let s = archive::backup_tables(&source, &whole, Some(&strings(DEFS)), true, &quiet)
        .await
        .unwrap();
    let names: Vec<&str> = s.manifest.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, [PEOPLE, DEFS].concat());
    assert_eq!(s.manifest.partial, Some(strings(DEFS)));
    assert!(s.references_outside.is_empty());
    archive::restore(&empty, &whole, false, &quiet)
        .await
        .unwrap();
    assert_tables(
        &dump(&empty).await,
        &[PEOPLE, DEFS].concat(),
        &source_rows,
        &with_people
            .iter()
            .map(|(n, _)| (n.clone(), Vec::new()))
            .collect::<Vec<_>>(),
    );

    // A row that clashes on another unique column (the same email under another
    // id) is a Conflict naming table and column, found when loading: still
    // nothing is written.
    let seeded = fresh(&source).await;
    populate(&seeded).await;
    let held = dump(&seeded).await;
    let users = dir.path().join("users.fsa");
    archive::backup(&source, &users, Some(&strings(&["users"])), &quiet)
        .await
        .unwrap();
    let err = archive::restore(&seeded, &users, false, &quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { field, message }
            if field == "users.email" && message.contains("nothing was written")),
        "{err}"
    );
    assert_eq!(
        dump(&seeded).await,
        held,
        "a refused restore changes nothing"
    );
}

/// `--replace` with a partial archive empties only the archive's tables, and is
/// refused while rows of other tables point at them.
async fn partial_replace_touches_only_its_tables(source: Store) {
    populate(&source).await;
    let source_rows = dump(&source).await;
    let dir = temp();
    let defs = dir.path().join("defs.fsa");
    archive::backup(&source, &defs, Some(&strings(DEFS)), &quiet)
        .await
        .unwrap();

    // The source itself: runs, tasks and shares point at its workflows, which
    // --replace would delete or blank with them.
    let err = archive::restore(&source, &defs, true, &quiet)
        .await
        .unwrap_err();
    match &err {
        StoreError::Conflict { field, message } => {
            let (table, column) = field.split_once('.').unwrap();
            assert!(!DEFS.contains(&table), "{err}");
            let t = catalog().iter().find(|t| t.name == table).unwrap();
            assert!(
                t.references
                    .iter()
                    .any(|r| r.column == column && DEFS.contains(&r.target)),
                "{err}"
            );
            assert!(message.contains("--replace would empty"), "{err}");
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(
        dump(&source).await,
        source_rows,
        "a refused restore changes nothing"
    );

    // A database with the definitions and the people, its own changes to the
    // definitions, and rows in tables outside the archive.
    let target = fresh(&source).await;
    let whole = dir.path().join("whole.fsa");
    archive::backup_tables(&source, &whole, Some(&strings(DEFS)), true, &quiet)
        .await
        .unwrap();
    archive::restore(&target, &whole, false, &quiet)
        .await
        .unwrap();
    set_configuration(&target, "local.setting", json!("kept"), false).await;
    for sql in [
        "UPDATE workflows SET description = 'edited here'",
        "DELETE FROM workflow_versions WHERE id = (SELECT id FROM workflow_versions ORDER BY id LIMIT 1)",
    ] {
        assert!(target.backend().execute_raw(sql).await.unwrap() > 0, "{sql}");
    }
    let before = dump(&target).await;
    assert_ne!(rows(&before, "workflows"), rows(&source_rows, "workflows"));
    assert!(!rows(&before, "configurations").is_empty());
    assert!(!rows(&before, "users").is_empty());

    let restored = archive::restore(&target, &defs, true, &quiet)
        .await
        .unwrap();
    assert!(restored.partial);
    let after = dump(&target).await;
    // The archive's tables hold the archive's rows; every other table is as it was.
    assert_tables(&after, DEFS, &source_rows, &before);
}

/// The catalog's foreign keys are exactly the schema's, with the same actions:
/// partial restores check and clear by them.
async fn catalog_references_match_schema(store: Store) {
    let sql = match store.kind() {
        flowstore::BackendKind::Sqlite => {
            "SELECT m.name, p.\"from\", p.\"table\", p.\"to\", p.on_delete
               FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS p
              WHERE m.type = 'table'"
        }
        flowstore::BackendKind::Postgres => {
            "SELECT cl.relname::text, a.attname::text, fcl.relname::text, fa.attname::text,
                    CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL'
                         ELSE c.confdeltype::text END
               FROM pg_constraint c
               JOIN pg_class cl ON cl.oid = c.conrelid
               JOIN pg_class fcl ON fcl.oid = c.confrelid
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
               JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1]
              WHERE c.contype = 'f'
                AND cl.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
        }
    };
    let mut loader = store.backend().archive().loader().await.unwrap();
    let found = loader
        .select(sql, &[], &[ColumnType::Text; 5])
        .await
        .unwrap();
    drop(loader);
    let mut native: Vec<String> = found
        .iter()
        .map(|r| {
            let v: Vec<&str> = r.iter().map(|v| v.as_str().unwrap()).collect();
            format!("{}.{} -> {}.{} {}", v[0], v[1], v[2], v[3], v[4])
        })
        .collect();
    let mut ours: Vec<String> = catalog()
        .iter()
        .flat_map(|t| {
            t.references.iter().map(move |r| {
                format!(
                    "{}.{} -> {}.{} {}",
                    t.name,
                    r.column,
                    r.target,
                    r.target_column,
                    r.on_delete.sql()
                )
            })
        })
        .collect();
    native.sort();
    ours.sort();
    assert!(ours.len() > 30, "{ours:?}");
    assert_eq!(native, ours);
}

conformance!(
    catalog_matches_schema,
    damaged_archives_are_refused,
    non_empty_target_needs_replace,
    backup_during_writes_is_consistent,
    export_and_import,
    table_selection,
    failed_backup_leaves_no_archive,
    partial_restore_needs_what_rows_point_at,
    partial_replace_touches_only_its_tables,
    catalog_references_match_schema
);

/// A partial archive moves between backends in both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_restore_across_backends() {
    let sqlite = TestStore::sqlite().await;
    populate(&sqlite).await;
    let source_rows = dump(&sqlite).await;
    let dir = temp();
    let whole = dir.path().join("whole.fsa");
    archive::backup_tables(&sqlite, &whole, Some(&strings(DEFS)), true, &quiet)
        .await
        .unwrap();
    let postgres = TestStore::postgres().await;
    let nothing: Vec<(String, Vec<String>)> = source_rows
        .iter()
        .map(|(n, _)| (n.clone(), Vec::new()))
        .collect();
    archive::restore(&postgres, &whole, false, &quiet)
        .await
        .unwrap();
    let moved = [PEOPLE, DEFS].concat();
    assert_tables(&dump(&postgres).await, &moved, &source_rows, &nothing);

    // Back: the definitions from PostgreSQL into SQLite that holds the people.
    let defs = dir.path().join("defs-from-pg.fsa");
    archive::backup(&postgres, &defs, Some(&strings(DEFS)), &quiet)
        .await
        .unwrap();
    let people = dir.path().join("people.fsa");
    archive::backup(&sqlite, &people, Some(&strings(PEOPLE)), &quiet)
        .await
        .unwrap();
    let back = TestStore::sqlite().await;
    archive::restore(&back, &people, false, &quiet)
        .await
        .unwrap();
    archive::restore(&back, &defs, false, &quiet).await.unwrap();
    assert_tables(&dump(&back).await, &moved, &source_rows, &nothing);
}

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

pub(crate) fn sqlite_url(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

/// `backup --tables` says what the archive lacks; `restore` names the missing
/// reference; `--with-references` makes an archive that restores anywhere.
#[test]
fn cli_partial_sqlite() {
    let dir = temp();
    let (a, b) = (
        sqlite_url(dir.path(), "a.db"),
        sqlite_url(dir.path(), "b.db"),
    );
    ok(&flowstore(&a, &["migrate", "up"]));
    ok(&flowstore(&a, &["seed", "--demo", "--runs", "2"]));
    let defs = dir.path().join("defs.fsa");
    let f = defs.to_str().unwrap();
    let out = ok(&flowstore(
        &a,
        &["backup", "--tables", "workflows,workflow_versions", f],
    ));
    assert!(
        out.contains("partial archive of workflows, workflow_versions"),
        "{out}"
    );
    assert!(out.contains("users, teams, projects"), "{out}");
    let refused = flowstore(&b, &["restore", f]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("workflows.owner_id") && err.contains("users"),
        "{err}"
    );
    let whole = dir.path().join("whole.fsa");
    let w = whole.to_str().unwrap();
    ok(&flowstore(
        &a,
        &[
            "backup",
            "--tables",
            "workflows,workflow_versions",
            "--with-references",
            w,
        ],
    ));
    let out = ok(&flowstore(&b, &["restore", w]));
    assert!(out.contains("partial"), "{out}");
    let again = flowstore(&b, &["restore", w]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("users.id") && err.contains("--replace"),
        "{err}"
    );
    let no_tables = flowstore(&a, &["backup", "--with-references", "x.fsa"]);
    assert!(
        !no_tables.status.success(),
        "--with-references needs --tables"
    );
    assert!(ok(&flowstore(&a, &["restore", "--help"])).contains("partial archive"));
    assert!(ok(&flowstore(&a, &["backup", "--help"])).contains("--with-references"));
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
    let dbs = [
        PgDatabase::create().await,
        PgDatabase::create().await,
        PgDatabase::create().await,
    ];
    let [a, b, c] = dbs.each_ref().map(|d| d.url().to_string());
    tokio::task::spawn_blocking(move || cli_round_trip(&a, &b, &c))
        .await
        .unwrap();
}
