//! The checks that let an archive of some tables only restore into a database that
//! holds the rest, made before anything is written, in the transaction that then
//! loads it.
//!
//! Every check works over the catalog's foreign keys ([`Table::references`]) with
//! one query text for both backends ([`RowLoader::select`]):
//!
//! - a reference from an archived row must find its row in the archive (when that
//!   table is in it) or in the database (when `--replace` does not empty it);
//! - without `--replace`, no archived row may have a key the database holds;
//! - with `--replace`, no row of a table outside the archive may point at a row of
//!   the archive's tables, since emptying them would delete or blank that row.
//!
//! The values looked up are held in memory: the distinct values of each reference
//! and the keys they point at, not whole rows. The archive's tables, and with
//! `--replace` the tables that point at them, are locked against other writers
//! first ([`RowLoader::lock`]), so that what was checked still holds at commit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use flowstore_core::archive::{
    self as catalog, quote, select_expr, Column, ColumnType, OnDelete, Reference, RowLoader, Table,
};
use serde_json::Value;

use super::{format, Plan};
use flowstore::{StoreError, StoreResult};

/// Archived keys looked up in the database per query.
const KEYS_PER_QUERY: usize = 100;
/// Referenced values looked up in the database per query.
const VALUES_PER_QUERY: usize = 500;

/// Refuses what a partial archive can never restore, before the database is
/// touched: a table the database derives from others.
pub(super) fn check_archive(plans: &[Plan]) -> StoreResult<()> {
    if let Some(p) = plans.iter().find(|p| p.table.derived) {
        return Err(StoreError::invalid(
            "archive",
            format!(
                "it is partial and holds {}, which the database keeps itself from other tables; a partial archive cannot restore it",
                p.table.name
            ),
        ));
    }
    Ok(())
}

/// A value as compared: UUIDs in canonical form, text as it is, the rest as JSON.
fn norm(ty: ColumnType, v: &Value) -> String {
    match (ty, v) {
        (ColumnType::Uuid, Value::String(s)) => uuid::Uuid::parse_str(s)
            .map(|u| u.to_string())
            .unwrap_or_else(|_| s.clone()),
        (_, Value::String(s)) => s.clone(),
        _ => v.to_string(),
    }
}

/// A value as shown in a message.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The distinct values one foreign key of an archived table holds.
struct RefValues {
    table: &'static Table,
    reference: &'static Reference,
    /// Where the column is in the archive's rows.
    at: usize,
    /// The type of the column pointed at.
    ty: ColumnType,
    values: BTreeMap<String, Value>,
}

/// Archived keys of one table, waiting to be looked up in the database.
struct KeyProbe {
    plan: usize,
    /// Where each key column is in the archive's rows.
    at: Vec<usize>,
    pending: Vec<Vec<Value>>,
}

/// Checks that the partial archive at `path` (planned as `plans`) can be loaded
/// into the database `loader` writes to, as described in the module docs, and
/// returns how many rows each of the archive's tables holds now. Writes nothing.
pub(super) async fn check(
    loader: &mut dyn RowLoader,
    path: &Path,
    secret: Option<&super::crypt::Secret>,
    plans: &[Plan],
    replace: bool,
) -> StoreResult<Vec<u64>> {
    let in_archive = |name: &str| plans.iter().position(|p| p.table.name == name);
    // Nothing may change what is checked here before the load commits: the
    // archive's tables (their keys and counts) and, for --replace, the tables
    // that point at them.
    let mut locked: Vec<&Table> = plans.iter().map(|p| p.table).collect();
    if replace {
        for p in plans {
            for (from, _) in catalog::referencing(p.table.name) {
                if !locked.iter().any(|t| t.name == from.name) {
                    locked.push(from);
                }
            }
        }
    }
    loader.lock(&locked).await?;
    let mut before = Vec::with_capacity(plans.len());
    for p in plans {
        before.push(loader.count(p.table).await?);
    }
    if replace {
        let mut found = Vec::new();
        for p in plans {
            for (from, r) in catalog::referencing(p.table.name) {
                if in_archive(from.name).is_none() {
                    if let Some(d) = dependents(loader, p.table, from, r).await? {
                        found.push(d);
                    }
                }
            }
        }
        if !found.is_empty() {
            return Err(dependents_error(&found));
        }
    }

    // What to collect while reading the archive.
    let mut refs: Vec<RefValues> = Vec::new();
    for p in plans {
        for r in &p.table.references {
            let Some(at) = p.columns.iter().position(|c| c.name == r.column) else {
                continue;
            };
            let target = catalog::table(r.target, "archive")?;
            let ty = target
                .column(r.target_column)
                .map_or(ColumnType::Uuid, |c| c.ty);
            refs.push(RefValues {
                table: p.table,
                reference: r,
                at,
                ty,
                values: BTreeMap::new(),
            });
        }
    }
    // The archived keys that references point at: (plan, column index) → values.
    let mut targets: HashMap<(usize, usize), HashSet<String>> = HashMap::new();
    for rv in &refs {
        if let Some(i) = in_archive(rv.reference.target) {
            if let Some(at) = plans[i]
                .columns
                .iter()
                .position(|c| c.name == rv.reference.target_column)
            {
                targets.entry((i, at)).or_default();
            }
        }
    }
    let mut probes: Vec<KeyProbe> = Vec::new();
    if !replace {
        for (i, p) in plans.iter().enumerate() {
            if before[i] == 0 {
                continue;
            }
            let at: Option<Vec<usize>> = p
                .table
                .key
                .iter()
                .map(|k| p.columns.iter().position(|c| c.name == *k))
                .collect();
            if let Some(at) = at {
                probes.push(KeyProbe {
                    plan: i,
                    at,
                    pending: Vec::new(),
                });
            }
        }
    }

    let (mut reader, _) = format::ArchiveReader::open_with(path, secret)?;
    let mut current = 0usize;
    while let Some((row, _)) = reader.next_row()? {
        if plans[current].table.name != row.t {
            current = in_archive(&row.t)
                .ok_or_else(|| StoreError::invalid("archive", "rows are out of order"))?;
        }
        let p = &plans[current];
        for rv in refs.iter_mut().filter(|rv| rv.table.name == p.table.name) {
            let v = &row.r[rv.at];
            if !v.is_null() {
                rv.values.insert(norm(rv.ty, v), v.clone());
            }
        }
        for ((i, at), keys) in targets.iter_mut() {
            if *i == current && !row.r[*at].is_null() {
                keys.insert(norm(p.columns[*at].ty, &row.r[*at]));
            }
        }
        if let Some(probe) = probes.iter_mut().find(|k| k.plan == current) {
            probe
                .pending
                .push(probe.at.iter().map(|&a| row.r[a].clone()).collect());
            if probe.pending.len() == KEYS_PER_QUERY {
                probe_keys(loader, plans, probe).await?;
            }
        }
    }
    for probe in &mut probes {
        probe_keys(loader, plans, probe).await?;
    }

    let mut failures = Vec::new();
    for rv in &refs {
        let r = rv.reference;
        let archived = in_archive(r.target).and_then(|i| {
            let at = plans[i]
                .columns
                .iter()
                .position(|c| c.name == r.target_column)?;
            targets.get(&(i, at))
        });
        let outside: Vec<(&String, &Value)> = rv
            .values
            .iter()
            .filter(|(k, _)| archived.is_none_or(|keys| !keys.contains(*k)))
            .collect();
        if outside.is_empty() {
            continue;
        }
        // --replace empties the archive's tables: the database's rows there do not
        // count.
        let emptied = replace && in_archive(r.target).is_some();
        let missing: Vec<&Value> = if emptied {
            outside.iter().map(|(_, v)| *v).collect()
        } else {
            absent(loader, r, rv.ty, &outside).await?
        };
        if let Some(first) = missing.first() {
            failures.push(Missing {
                table: rv.table,
                reference: r,
                first: (*first).clone(),
                count: missing.len(),
                emptied,
                target_in_archive: in_archive(r.target).is_some(),
            });
        }
    }
    if !failures.is_empty() {
        return Err(missing_error(&failures));
    }
    Ok(before)
}

/// Rows of a table outside the archive that point at rows `--replace` would delete.
struct Dependents {
    table: &'static Table,
    from: &'static Table,
    reference: &'static Reference,
    count: i64,
    first: Value,
}

/// With `--replace`: the rows of `from` (not in the archive) that point at rows
/// of `table`, which the restore would empty.
async fn dependents(
    loader: &mut dyn RowLoader,
    table: &'static Table,
    from: &'static Table,
    r: &'static Reference,
) -> StoreResult<Option<Dependents>> {
    let Some(column) = from.column(r.column) else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {value}, (SELECT CAST(count(*) AS BIGINT) FROM {t} WHERE {c} IS NOT NULL) FROM {t} WHERE {c} IS NOT NULL LIMIT 1",
        value = select_expr(column),
        t = quote(from.name),
        c = quote(r.column),
    );
    let found = loader
        .select(&sql, &[], &[column.ty, ColumnType::Int])
        .await?;
    Ok(found.into_iter().next().map(|mut row| Dependents {
        table,
        from,
        reference: r,
        count: row[1].as_i64().unwrap_or(1),
        first: row.swap_remove(0),
    }))
}

/// One more column a refusal names after its first: `{table}.{column} → {target}`
/// with how many `noun`s.
fn pointer(table: &str, column: &str, target: &str, count: i64, noun: &str) -> String {
    let s = if count == 1 { "" } else { "s" };
    format!("{table}.{column} → {target} ({count} {noun}{s})")
}

/// The end of a refusal's message: `label` and the `others` it names after its
/// first, or nothing when there are none.
fn listing(label: &str, others: impl Iterator<Item = String>) -> String {
    let others: Vec<String> = others.collect();
    if others.is_empty() {
        String::new()
    } else {
        format!("; {label}: {}", others.join(", "))
    }
}

/// The refusal of a `--replace` that would delete or blank rows outside the
/// archive: names the first such column and lists the others.
fn dependents_error(found: &[Dependents]) -> StoreError {
    let d = &found[0];
    let r = d.reference;
    let n = d.count;
    let fate = match r.on_delete {
        OnDelete::Cascade => "delete those rows with them".to_string(),
        OnDelete::SetNull => format!("blank their {}", r.column),
    };
    let others = found[1..].iter().map(|o| {
        let (from, column, to) = (o.from.name, o.reference.column, o.table.name);
        pointer(from, column, to, o.count, "row")
    });
    let also = listing("also pointing at the archive's tables", others);
    let mut tables: Vec<&str> = Vec::new();
    for o in found {
        if !tables.contains(&o.from.name) {
            tables.push(o.from.name);
        }
    }
    StoreError::conflict(
        format!("{}.{}", d.from.name, r.column),
        format!(
            "{n} row{s} of {from} point{v} at rows of {table} (the first at {table}.{tc} {first}); --replace would empty {table} and so {fate} (ON DELETE {action}){also}; nothing was written. Include {tables} in the backup, or remove those rows first",
            s = if n == 1 { "" } else { "s" },
            v = if n == 1 { "s" } else { "" },
            from = d.from.name,
            table = d.table.name,
            tc = r.target_column,
            first = shown(&d.first),
            action = r.on_delete.sql(),
            tables = tables.join(", "),
        ),
    )
}

/// Looks up the pending archived keys of one table in the database: a key it
/// already holds is a Conflict naming it.
async fn probe_keys(
    loader: &mut dyn RowLoader,
    plans: &[Plan],
    probe: &mut KeyProbe,
) -> StoreResult<()> {
    if probe.pending.is_empty() {
        return Ok(());
    }
    let p = &plans[probe.plan];
    let keys: Vec<&Column> = probe.at.iter().map(|&a| &p.columns[a]).collect();
    let mut params = Vec::new();
    let condition = if keys.len() == 1 {
        let list: Vec<String> = probe
            .pending
            .iter()
            .map(|k| {
                params.push((keys[0].ty, k[0].clone()));
                format!("${}", params.len())
            })
            .collect();
        format!("{} IN ({})", quote(&keys[0].name), list.join(", "))
    } else {
        let alternatives: Vec<String> = probe
            .pending
            .iter()
            .map(|k| {
                let parts: Vec<String> = keys
                    .iter()
                    .zip(k)
                    .map(|(c, v)| {
                        params.push((c.ty, v.clone()));
                        format!("{} = ${}", quote(&c.name), params.len())
                    })
                    .collect();
                format!("({})", parts.join(" AND "))
            })
            .collect();
        alternatives.join(" OR ")
    };
    let columns: Vec<String> = keys.iter().map(|c| select_expr(c)).collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE {condition} LIMIT 1",
        columns.join(", "),
        quote(p.table.name)
    );
    let types: Vec<ColumnType> = keys.iter().map(|c| c.ty).collect();
    let found = loader.select(&sql, &params, &types).await?;
    probe.pending.clear();
    let Some(row) = found.first() else {
        return Ok(());
    };
    let names: Vec<&str> = keys.iter().map(|c| c.name.as_str()).collect();
    let values: Vec<String> = row.iter().map(shown).collect();
    let (field, value) = if names.len() == 1 {
        (format!("{}.{}", p.table.name, names[0]), values[0].clone())
    } else {
        (
            format!("{}.({})", p.table.name, names.join(", ")),
            format!("({})", values.join(", ")),
        )
    };
    let tables: Vec<&str> = plans.iter().map(|p| p.table.name).collect();
    Err(StoreError::conflict(
        field,
        format!(
            "{value} is in the archive and already in this database; nothing was written. Pass --replace to replace the archive's tables ({}) with its rows, or restore into a database that does not hold them",
            tables.join(", ")
        ),
    ))
}

/// Of `values` (of the column `r` points at), those no row of its table holds.
async fn absent<'a>(
    loader: &mut dyn RowLoader,
    r: &Reference,
    ty: ColumnType,
    values: &[(&String, &'a Value)],
) -> StoreResult<Vec<&'a Value>> {
    let column = Column {
        name: r.target_column.to_string(),
        ty,
    };
    let mut missing = Vec::new();
    for chunk in values.chunks(VALUES_PER_QUERY) {
        let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} IN ({})",
            select_expr(&column),
            quote(r.target),
            quote(r.target_column),
            list.join(", ")
        );
        let params: Vec<(ColumnType, Value)> =
            chunk.iter().map(|(_, v)| (ty, (*v).clone())).collect();
        let found: HashSet<String> = loader
            .select(&sql, &params, &[ty])
            .await?
            .iter()
            .map(|row| norm(ty, &row[0]))
            .collect();
        missing.extend(
            chunk
                .iter()
                .filter(|(k, _)| !found.contains(*k))
                .map(|(_, v)| *v),
        );
    }
    Ok(missing)
}

/// A reference of archived rows that finds no row.
struct Missing {
    table: &'static Table,
    reference: &'static Reference,
    first: Value,
    count: usize,
    /// The table pointed at is in the archive and `--replace` empties it.
    emptied: bool,
    target_in_archive: bool,
}

/// The refusal of references that find no row: names the first (table, column
/// and a value) and lists the others, and says which tables the backup lacks.
fn missing_error(failures: &[Missing]) -> StoreError {
    let m = &failures[0];
    let r = m.reference;
    let more = match m.count {
        1 => String::new(),
        n => format!(
            " (and {} other value{})",
            n - 1,
            if n == 2 { "" } else { "s" }
        ),
    };
    let whose = if m.emptied {
        format!(
            "which the archive does not hold (--replace empties {})",
            r.target
        )
    } else if m.target_in_archive {
        "which neither the archive nor this database holds".to_string()
    } else {
        "which this database does not hold".to_string()
    };
    let others = failures[1..].iter().map(|o| {
        let (table, column, target) = (o.table.name, o.reference.column, o.reference.target);
        pointer(table, column, target, o.count as i64, "value")
    });
    let also = listing("also missing", others);
    let mut lacking: Vec<&str> = Vec::new();
    for f in failures.iter().filter(|f| !f.target_in_archive) {
        if !lacking.contains(&f.reference.target) {
            lacking.push(f.reference.target);
        }
    }
    let hint = if lacking.is_empty() {
        "the archive is not consistent; back it up again".to_string()
    } else {
        format!(
            "include {} in the backup (--tables …,{}, or --with-references) or restore into a database that has {}",
            lacking.join(", "),
            lacking.join(","),
            if lacking.len() == 1 { "it" } else { "them" }
        )
    };
    StoreError::invalid(
        format!("{}.{}", m.table.name, r.column),
        format!(
            "references {} {} {}{more}, {whose}{also}; nothing was written. To restore this archive, {hint}",
            r.target,
            r.target_column,
            shown(&m.first)
        ),
    )
}

/// Names the table in an error of a partial restore's load, and says what to do:
/// a clash with a unique value the database holds is a Conflict on `table.column`.
pub(super) fn in_table(table: &str, plans: &[Plan], replace: bool, e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict { field, message } if !replace => {
            let tables: Vec<&str> = plans.iter().map(|p| p.table.name).collect();
            StoreError::conflict(
                format!("{table}.{field}"),
                format!(
                    "{message}: a row of the archive's {table} clashes with one this database holds; nothing was written. Pass --replace to replace the archive's tables ({}) with its rows, or restore into a database that does not hold them",
                    tables.join(", ")
                ),
            )
        }
        StoreError::Conflict { field, message } => StoreError::conflict(
            format!("{table}.{field}"),
            format!("{message}; nothing was written"),
        ),
        StoreError::Invalid { field, reason } if field != "archive" => StoreError::invalid(
            format!("{table}.{field}"),
            format!("{reason}; nothing was written"),
        ),
        other => other,
    }
}
