//! Checks on the source tree itself.

/// Above the storage crates nothing branches on which database it runs on: code
/// asks the backend what it supports (`Backend::capabilities`, `migrations`,
/// `AdminBackend::native_backup`, …). Only the backend crates, and `Store`'s
/// opening of one (`store.rs`), name a `BackendKind` variant; tests may.
#[test]
fn no_backend_kind_branches_above_the_storage_crates() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let allowed = ["flowstore-sqlite", "flowstore-postgres"];
    let mut found = Vec::new();
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_dir()
                && !allowed
                    .iter()
                    .any(|a| p.file_name().is_some_and(|n| n == *a))
        })
        .map(|p| p.join("src"))
        .filter(|p| p.is_dir())
        .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs")
                || path.ends_with("flowstore/src/store.rs")
                || path.ends_with("flowstore-core/src/store.rs")
                || path.ends_with("flowstore/src/tidy.rs")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.contains("BackendKind::Sqlite") || line.contains("BackendKind::Postgres") {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "a backend is named outside the storage crates: ask it what it supports instead: {found:#?}"
    );
}
