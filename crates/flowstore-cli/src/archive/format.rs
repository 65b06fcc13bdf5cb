//! The archive file: a zstd stream of JSON lines, the manifest first, then one line
//! per row (`{"t":table,"r":[values…]}`), tables in insert order.
//!
//! The manifest holds each table's row count and the SHA-256 of its row lines, which
//! are only known once the rows are written. So rows go to a side file first; the
//! archive is then the manifest's zstd frame followed by the rows' frames (a zstd
//! stream may hold several frames), written to `FILE.partial`, synced and renamed.
//! Nothing named FILE exists until the whole archive does.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use flowstore_core::archive::{value, Column, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use flowstore::StoreError;

/// What the first line of an archive says.
pub const FORMAT: &str = "flowstore-archive";
/// The archive layout this binary writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The first line of an archive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The layout version.
    pub format_version: u32,
    /// The flowstore version that wrote it.
    pub flowstore_version: String,
    /// The highest migration applied to the database it came from.
    pub schema_version: i64,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// When the snapshot was taken (RFC 3339).
    pub created_at: String,
    /// The tables, in the order their rows follow.
    pub tables: Vec<TableEntry>,
    /// Set when the backup is of some tables only (`backup --tables`): the tables
    /// asked for, in catalog order (`tables` also holds those `--with-references`
    /// added). A restore loads such an archive beside what the database holds and
    /// `--replace` empties only its tables. Absent from a backup of every table,
    /// and from archives written before partial restores existed, which restore as
    /// they always did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<Vec<String>>,
}

impl Manifest {
    /// Whether the archive holds some tables only (see [`Manifest::partial`]).
    pub fn is_partial(&self) -> bool {
        self.partial.is_some()
    }
}

/// One table in a [`Manifest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    /// The table.
    pub name: String,
    /// Its columns, in the order of each row's values.
    pub columns: Vec<Column>,
    /// How many rows follow.
    pub rows: u64,
    /// SHA-256 (hex) over the table's row lines, each with its newline.
    pub sha256: String,
}

#[derive(Serialize)]
struct RowOut<'a> {
    t: &'a str,
    r: &'a Row,
}

/// One row line read back.
#[derive(Deserialize)]
pub struct RowIn {
    /// The table.
    pub t: String,
    /// The values.
    pub r: Row,
}

fn io_err(path: &Path, e: io::Error) -> StoreError {
    let hint = match e.raw_os_error() {
        Some(28) => " (the disk is full)",
        Some(13) => " (permission denied)",
        Some(30) => " (read-only file system)",
        _ => "",
    };
    StoreError::unavailable(format!("cannot write {}{hint}: {e}", path.display()))
}

/// Removes the files it holds when dropped, unless disarmed: a failed or interrupted
/// backup leaves nothing behind.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes an archive: rows first (to a side file), then [`ArchiveWriter::finish`].
pub struct ArchiveWriter {
    path: PathBuf,
    rows_path: PathBuf,
    rows: zstd::Encoder<'static, BufWriter<File>>,
    cleanup: Cleanup,
    current: Option<(Sha256, u64)>,
}

impl ArchiveWriter {
    /// Starts an archive at `path` (refused when it exists, so a backup never
    /// overwrites one).
    pub fn create(path: &Path) -> Result<Self, StoreError> {
        if path.exists() {
            return Err(StoreError::conflict(
                "FILE",
                format!("{} already exists", path.display()),
            ));
        }
        let rows_path = with_suffix(path, ".rows.partial");
        let partial = with_suffix(path, ".partial");
        let cleanup = Cleanup(vec![rows_path.clone(), partial]);
        let file = File::create(&rows_path).map_err(|e| io_err(&rows_path, e))?;
        let mut rows = zstd::Encoder::new(BufWriter::new(file), 3).map_err(|e| io_err(path, e))?;
        rows.include_checksum(true).map_err(|e| io_err(path, e))?;
        Ok(ArchiveWriter {
            path: path.to_path_buf(),
            rows_path,
            rows,
            cleanup,
            current: None,
        })
    }

    /// Starts the rows of a table.
    pub fn begin_table(&mut self) {
        self.current = Some((Sha256::new(), 0));
    }

    /// Appends one row of the current table.
    pub fn row(&mut self, table: &str, row: &Row) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(&RowOut { t: table, r: row })
            .map_err(|e| StoreError::internal(e.to_string()))?;
        line.push(b'\n');
        let (hash, n) = self.current.get_or_insert_with(|| (Sha256::new(), 0));
        hash.update(&line);
        *n += 1;
        self.rows
            .write_all(&line)
            .map_err(|e| io_err(&self.path, e))
    }

    /// Ends the current table: its row count and checksum.
    pub fn end_table(&mut self) -> (u64, String) {
        let (hash, n) = self.current.take().unwrap_or_else(|| (Sha256::new(), 0));
        (n, hex::encode(hash.finalize()))
    }

    /// Writes the manifest and the rows to `FILE.partial`, syncs it and renames it to
    /// FILE; returns the archive's size in bytes.
    pub fn finish(self, manifest: &Manifest) -> Result<u64, StoreError> {
        let ArchiveWriter {
            path,
            rows_path,
            rows,
            cleanup,
            ..
        } = self;
        let e = |err| io_err(&path, err);
        let rows = rows.finish().map_err(e)?;
        rows.into_inner().map_err(|err| e(err.into_error()))?;
        let partial = with_suffix(&path, ".partial");
        let mut out = File::create(&partial).map_err(e)?;
        {
            let mut head = zstd::Encoder::new(&mut out, 3).map_err(e)?;
            serde_json::to_writer(&mut head, manifest)
                .map_err(|err| StoreError::internal(err.to_string()))?;
            head.write_all(b"\n").map_err(e)?;
            head.finish().map_err(e)?;
        }
        let mut body = File::open(&rows_path).map_err(e)?;
        io::copy(&mut body, &mut out).map_err(e)?;
        out.sync_all().map_err(e)?;
        let size = out.metadata().map_err(e)?.len();
        drop(out);
        fs::rename(&partial, &path).map_err(e)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename is durable once the directory is synced.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        drop(cleanup);
        Ok(size)
    }
}

/// Reads an archive line by line, in constant memory.
pub struct ArchiveReader {
    path: PathBuf,
    lines: BufReader<zstd::Decoder<'static, BufReader<File>>>,
    buf: String,
}

fn damaged(path: &Path, why: impl std::fmt::Display) -> StoreError {
    StoreError::invalid(
        "archive",
        format!("{} is not a whole flowstore archive: {why}", path.display()),
    )
}

impl ArchiveReader {
    /// Opens `path` and reads its manifest.
    pub fn open(path: &Path) -> Result<(Self, Manifest), StoreError> {
        let file = File::open(path).map_err(|e| {
            StoreError::invalid("FILE", format!("cannot read {}: {e}", path.display()))
        })?;
        let decoder = zstd::Decoder::new(file).map_err(|e| damaged(path, e))?;
        let mut reader = ArchiveReader {
            path: path.to_path_buf(),
            lines: BufReader::new(decoder),
            buf: String::new(),
        };
        let first = reader
            .next_line()?
            .ok_or_else(|| damaged(path, "it is empty"))?;
        let manifest: Manifest =
            serde_json::from_str(&first).map_err(|e| damaged(path, format!("manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(damaged(path, format!("format is {:?}", manifest.format)));
        }
        if manifest.format_version > FORMAT_VERSION {
            return Err(StoreError::invalid(
                "archive",
                format!(
                    "format version {} is newer than this binary reads ({FORMAT_VERSION}); upgrade flowstore",
                    manifest.format_version
                ),
            ));
        }
        Ok((reader, manifest))
    }

    fn next_line(&mut self) -> Result<Option<String>, StoreError> {
        self.buf.clear();
        let n = self
            .lines
            .read_line(&mut self.buf)
            .map_err(|e| damaged(&self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        if !self.buf.ends_with('\n') {
            return Err(damaged(&self.path, "it ends in the middle of a line"));
        }
        Ok(Some(std::mem::take(&mut self.buf)))
    }

    /// The next row and its raw line (with newline), or `None` at the end.
    pub fn next_row(&mut self) -> Result<Option<(RowIn, String)>, StoreError> {
        let Some(line) = self.next_line()? else {
            return Ok(None);
        };
        let row: RowIn =
            serde_json::from_str(&line).map_err(|e| damaged(&self.path, format!("a row: {e}")))?;
        Ok(Some((row, line)))
    }
}

/// Reads the whole archive and checks it: every row decodes by its column's type,
/// tables follow the manifest's order, and each table's count and SHA-256 match.
/// Returns the manifest. Nothing is written.
pub fn verify(path: &Path) -> Result<Manifest, StoreError> {
    let (mut reader, manifest) = ArchiveReader::open(path)?;
    let mut index = 0usize;
    let mut hash = Sha256::new();
    let mut count = 0u64;
    let close = |i: usize, hash: Sha256, count: u64| -> Result<(), StoreError> {
        let t = &manifest.tables[i];
        let sum = hex::encode(hash.finalize());
        if count != t.rows {
            return Err(damaged(
                path,
                format!(
                    "table {} has {count} rows, the manifest says {}",
                    t.name, t.rows
                ),
            ));
        }
        if sum != t.sha256 {
            return Err(damaged(
                path,
                format!("table {} fails its checksum", t.name),
            ));
        }
        Ok(())
    };
    if manifest.tables.is_empty() {
        return match reader.next_row()? {
            None => Ok(manifest),
            Some(_) => Err(damaged(path, "rows follow an empty manifest")),
        };
    }
    while let Some((row, line)) = reader.next_row()? {
        while manifest.tables[index].name != row.t {
            close(index, std::mem::take(&mut hash), count)?;
            hash = Sha256::new();
            count = 0;
            index += 1;
            if index == manifest.tables.len() {
                return Err(damaged(path, format!("rows of {} are out of place", row.t)));
            }
        }
        let t = &manifest.tables[index];
        if row.r.len() != t.columns.len() {
            return Err(damaged(
                path,
                format!("a row of {} has the wrong width", t.name),
            ));
        }
        for (c, v) in t.columns.iter().zip(&row.r) {
            value::check(c.ty, v, &c.name)?;
        }
        hash.update(line.as_bytes());
        count += 1;
    }
    close(index, hash, count)?;
    for i in index + 1..manifest.tables.len() {
        close(i, Sha256::new(), 0)?;
    }
    Ok(manifest)
}
