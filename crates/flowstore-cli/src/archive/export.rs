//! `flowstore export` / `flowstore import`: workflow definitions, with their versions,
//! projects and the handler registrations they name, as one JSON document for moving
//! definitions between installations.
//!
//! References to people (owners, teams, authors) are dropped, since they mean nothing
//! on another installation; credentials and other secrets are never exported.

use std::collections::{HashMap, HashSet};

use flowstore_core::archive::{self as catalog, Column, Row, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use flowstore::{Store, StoreError, StoreResult};

/// What the `format` field of an export says.
pub const EXPORT_FORMAT: &str = "flowstore-export";

/// The tables an export carries, in insert order, and the columns it blanks.
const TABLES: &[(&str, &[&str])] = &[
    ("projects", &["owner_id"]),
    ("handler_registry", &[]),
    ("workflows", &["owner_id", "team_id", "parent_workflow_id"]),
    ("workflow_versions", &["created_by"]),
];

/// An export document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Export {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// The layout version (1).
    pub format_version: u32,
    /// The flowstore version that wrote it.
    pub flowstore_version: String,
    /// When it was written.
    pub exported_at: String,
    /// The rows, per table.
    pub tables: Vec<ExportTable>,
}

/// The rows of one table in an [`Export`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportTable {
    /// The table.
    pub name: String,
    /// The columns, in the order of each row's values.
    pub columns: Vec<Column>,
    /// The rows.
    pub rows: Vec<Row>,
}

/// What an import did, per table.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportSummary {
    /// Rows written per table.
    pub imported: Vec<(String, u64)>,
    /// Rows left out because they already existed (`--skip-existing`).
    pub skipped: Vec<(String, u64)>,
}

fn col(t: &Table, name: &str) -> usize {
    t.columns.iter().position(|c| c.name == name).unwrap_or(0)
}

fn strings(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(m) => m.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Exports the workflows `ids` (every workflow when `None`).
pub async fn export(store: &Store, ids: Option<&[String]>) -> StoreResult<Export> {
    let wanted: Option<HashSet<String>> = match ids {
        None => None,
        Some(ids) => Some(
            ids.iter()
                .map(|s| {
                    Uuid::parse_str(s.trim())
                        .map(|u| u.to_string())
                        .map_err(|_| {
                            StoreError::invalid(
                                "--workflows",
                                format!("{s:?} is not a workflow ID"),
                            )
                        })
                })
                .collect::<StoreResult<_>>()?,
        ),
    };
    let mut snap = store.backend().archive().snapshot().await?;
    let read = |name: &str| catalog::table(name, "export");
    // Workflows first: they decide which versions, projects and handlers go along.
    let wf = read("workflows")?;
    let (id_i, project_i) = (col(wf, "id"), col(wf, "project_id"));
    let mut workflows = Vec::new();
    snap.read_table(wf, &mut |r: Row| {
        let id = r[id_i].as_str().unwrap_or_default();
        if wanted.as_ref().is_none_or(|w| w.contains(id)) {
            workflows.push(r);
        }
        Ok(())
    })
    .await?;
    let found: HashSet<String> = workflows
        .iter()
        .filter_map(|r| r[id_i].as_str().map(String::from))
        .collect();
    if let Some(w) = &wanted {
        if let Some(missing) = w.iter().find(|id| !found.contains(*id)) {
            return Err(StoreError::not_found("workflow", missing));
        }
    }
    let projects_wanted: HashSet<String> = workflows
        .iter()
        .filter_map(|r| r[project_i].as_str().map(String::from))
        .collect();
    let mut named = HashSet::new();
    for r in &workflows {
        strings(&r[col(wf, "definition")], &mut named);
        strings(&r[col(wf, "configuration")], &mut named);
    }
    let mut tables = Vec::new();
    for (name, blank) in TABLES {
        let t = read(name)?;
        let mut rows = if *name == "workflows" {
            std::mem::take(&mut workflows)
        } else {
            let keep = |r: &Row| -> bool {
                match *name {
                    "projects" => r[col(t, "id")]
                        .as_str()
                        .is_some_and(|i| projects_wanted.contains(i)),
                    "workflow_versions" => r[col(t, "workflow_id")]
                        .as_str()
                        .is_some_and(|i| found.contains(i)),
                    _ => {
                        wanted.is_none()
                            || r[col(t, "handler_type")]
                                .as_str()
                                .is_some_and(|h| named.contains(h))
                    }
                }
            };
            let mut rows = Vec::new();
            snap.read_table(t, &mut |r: Row| {
                if keep(&r) {
                    rows.push(r);
                }
                Ok(())
            })
            .await?;
            rows
        };
        for r in &mut rows {
            for b in *blank {
                r[col(t, b)] = Value::Null;
            }
        }
        tables.push(ExportTable {
            name: name.to_string(),
            columns: t.columns.clone(),
            rows,
        });
    }
    snap.finish().await?;
    Ok(Export {
        format: EXPORT_FORMAT.into(),
        format_version: 1,
        flowstore_version: env!("CARGO_PKG_VERSION").into(),
        exported_at: catalog::value::timestamp(chrono::Utc::now())
            .as_str()
            .unwrap_or_default()
            .into(),
        tables,
    })
}

/// Imports an export in one transaction. A row that already exists (same ID, or the
/// same unique name) is a Conflict naming it, unless `skip_existing`, which leaves the
/// existing row (and a skipped workflow's versions) as they are.
pub async fn import(
    store: &Store,
    doc: &Export,
    skip_existing: bool,
) -> StoreResult<ImportSummary> {
    if doc.format != EXPORT_FORMAT || doc.format_version > 1 {
        return Err(StoreError::invalid(
            "FILE",
            format!(
                "is not a flowstore export this binary reads (format {:?} v{})",
                doc.format, doc.format_version
            ),
        ));
    }
    store.backend().check_schema().await?;
    let mut loader = store.backend().archive().loader().await?;
    let mut summary = ImportSummary::default();
    // Projects kept by name under another ID: references move to the existing one.
    let mut remap: HashMap<String, String> = HashMap::new();
    let mut skipped_workflows: HashSet<String> = HashSet::new();
    for (name, _) in TABLES {
        let Some(part) = doc.tables.iter().find(|t| t.name == *name) else {
            continue;
        };
        let t = catalog::table(name, "FILE")?;
        for c in &part.columns {
            if t.column(&c.name).is_none_or(|ours| ours.ty != c.ty) {
                return Err(StoreError::invalid(
                    "FILE",
                    format!("column {name}.{} is not in this schema", c.name),
                ));
            }
        }
        let at = |n: &str| part.columns.iter().position(|c| c.name == n);
        let id_i = at("id")
            .ok_or_else(|| StoreError::invalid("FILE", format!("{name} rows have no id")))?;
        let unique = match *name {
            "projects" => at("name"),
            "handler_registry" => at("handler_type"),
            _ => None,
        };
        let mut rows = Vec::new();
        let mut skipped = 0;
        for row in &part.rows {
            let mut row = row.clone();
            if *name == "workflows" {
                if let Some(p) = at("project_id") {
                    if let Some(to) = row[p].as_str().and_then(|s| remap.get(s)) {
                        row[p] = Value::String(to.clone());
                    }
                }
            }
            if *name == "workflow_versions" {
                let wf = at("workflow_id")
                    .and_then(|i| row[i].as_str())
                    .unwrap_or_default();
                if skipped_workflows.contains(wf) {
                    skipped += 1;
                    continue;
                }
            }
            let mut existing = loader
                .find_id(t, &part.columns[id_i], &row[id_i])
                .await?
                .map(|_| "id");
            let mut other_id = None;
            if existing.is_none() {
                if let Some(u) = unique {
                    if let Some(id) = loader.find_id(t, &part.columns[u], &row[u]).await? {
                        existing = Some(part.columns[u].name.as_str());
                        other_id = Some(id.to_string());
                    }
                }
            }
            if let Some(field) = existing {
                if !skip_existing {
                    return Err(StoreError::conflict(
                        format!("{name}.{field}"),
                        format!(
                            "{} already exists; pass --skip-existing to keep the existing rows",
                            row[if field == "id" {
                                id_i
                            } else {
                                unique.unwrap_or(id_i)
                            }]
                        ),
                    ));
                }
                let id = row[id_i].as_str().unwrap_or_default().to_string();
                if let Some(other) = other_id {
                    remap.insert(id.clone(), other);
                }
                if *name == "workflows" {
                    skipped_workflows.insert(id);
                }
                skipped += 1;
                continue;
            }
            rows.push(row);
        }
        loader.insert(t, &part.columns, &rows).await?;
        summary.imported.push((name.to_string(), rows.len() as u64));
        summary.skipped.push((name.to_string(), skipped));
    }
    loader.commit().await?;
    Ok(summary)
}
