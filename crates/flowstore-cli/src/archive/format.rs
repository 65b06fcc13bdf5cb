//! The archive file: a zstd stream of JSON lines, the manifest first, then one line
//! per row (`{"t":table,"r":[values…]}`), tables in insert order.
//!
//! The manifest holds each table's row count and the SHA-256 of its row lines, which
//! are only known once the rows are written. So rows go to a side file first; the
//! archive is then the manifest's zstd frame followed by the rows' frames (a zstd
//! stream may hold several frames), written to `FILE.partial`, synced and renamed.
//! Nothing named FILE exists until the whole archive does.
//!
//! An encrypted archive is that same stream sealed in chunks ([`super::crypt`]);
//! its side file is sealed too, under a key that lives in memory only, so no
//! plaintext row reaches the disk.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use flowstore_core::archive::{value, Column, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use flowstore::StoreError;

use super::crypt::{self, EncryptWriter, Secret};

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
    /// The database the snapshot was taken of (host and name, never a password).
    /// Absent from archives written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ArchiveSource>,
}

/// Where an archive's snapshot was taken: enough to recognise the database, never a
/// password.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArchiveSource {
    /// The database server (`host:port`), or for a database file the machine's
    /// host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The database's name, or the file's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The user connected as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl ArchiveSource {
    /// The source named by a database URL: for a database file its path (made
    /// absolute) on this machine, otherwise the URL's host, port, user and database.
    /// The password and the query are left out.
    pub fn from_url(url: &str) -> ArchiveSource {
        if let Some(file) = flowstore::Store::local_file(url) {
            let file = std::fs::canonicalize(&file).unwrap_or(file);
            return ArchiveSource {
                host: host_name(),
                database: Some(file.display().to_string()),
                user: None,
            };
        }
        match url::Url::parse(url.trim()) {
            Ok(u) => ArchiveSource {
                host: u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                }),
                database: Some(u.path().trim_start_matches('/').to_string())
                    .filter(|d| !d.is_empty()),
                user: Some(u.username().to_string()).filter(|n| !n.is_empty()),
            },
            Err(_) => ArchiveSource::default(),
        }
    }
}

impl std::fmt::Display for ArchiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.database.as_deref().unwrap_or("?"))?;
        if let Some(h) = &self.host {
            write!(f, " on {h}")?;
        }
        if let Some(u) = &self.user {
            write!(f, " as {u}")?;
        }
        Ok(())
    }
}

/// This machine's host name, when it has one.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length, which is what we pass.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..end])
        .ok()
        .map(str::to_string)
        .filter(|h| !h.is_empty())
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

/// Where the rows go before the archive is put together: the side file, sealed
/// under a key of its own when the archive is encrypted.
enum Side {
    Plain(BufWriter<File>),
    Sealed(Box<EncryptWriter<BufWriter<File>>>, [u8; 32], [u8; 7]),
}

impl Write for Side {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Side::Plain(w) => w.write(data),
            Side::Sealed(w, ..) => w.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Side::Plain(w) => w.flush(),
            Side::Sealed(w, ..) => w.flush(),
        }
    }
}

/// Writes an archive: rows first (to a side file), then [`ArchiveWriter::finish`].
pub struct ArchiveWriter<'s> {
    path: PathBuf,
    rows_path: PathBuf,
    rows: zstd::Encoder<'static, Side>,
    cleanup: Cleanup,
    current: Option<(Sha256, u64)>,
    secret: Option<&'s Secret>,
}

impl<'s> ArchiveWriter<'s> {
    /// Starts an archive at `path` (refused when it exists, so a backup never
    /// overwrites one).
    pub fn create(path: &Path) -> Result<Self, StoreError> {
        ArchiveWriter::create_with(path, None)
    }

    /// Starts an archive at `path`, encrypted with `secret` when one is given.
    pub fn create_with(path: &Path, secret: Option<&'s Secret>) -> Result<Self, StoreError> {
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
        let side = match secret {
            None => Side::Plain(BufWriter::new(file)),
            Some(_) => {
                let (w, key, prefix) = EncryptWriter::ephemeral(BufWriter::new(file));
                Side::Sealed(Box::new(w), key, prefix)
            }
        };
        let mut rows = zstd::Encoder::new(side, 3).map_err(|e| io_err(path, e))?;
        rows.include_checksum(true).map_err(|e| io_err(path, e))?;
        Ok(ArchiveWriter {
            path: path.to_path_buf(),
            rows_path,
            rows,
            cleanup,
            current: None,
            secret,
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
            secret,
            ..
        } = self;
        let e = |err| io_err(&path, err);
        let side = rows.finish().map_err(e)?;
        // The side file's reader: sealed rows are opened again with their key.
        let body: Box<dyn io::Read> = match side {
            Side::Plain(w) => {
                w.into_inner().map_err(|err| e(err.into_error()))?;
                Box::new(File::open(&rows_path).map_err(e)?)
            }
            Side::Sealed(w, key, prefix) => {
                w.finish()
                    .map_err(e)?
                    .into_inner()
                    .map_err(|err| e(err.into_error()))?;
                let file = File::open(&rows_path).map_err(e)?;
                Box::new(crypt::DecryptReader::ephemeral(
                    io::BufReader::new(file),
                    &key,
                    prefix,
                    rows_path.display().to_string(),
                ))
            }
        };
        let partial = with_suffix(&path, ".partial");
        let mut out = File::create(&partial).map_err(e)?;
        match secret {
            None => write_body(&mut out, manifest, body).map_err(|err| err.at(&path))?,
            Some(secret) => {
                let summary = crypt::Summary {
                    created_at: manifest.created_at.clone(),
                    backend: manifest.backend.clone(),
                    source: manifest.source.clone(),
                    schema_version: manifest.schema_version,
                    tables: manifest.tables.len(),
                    rows: manifest.tables.iter().map(|t| t.rows).sum(),
                    partial: manifest.is_partial(),
                };
                let mut sealed =
                    EncryptWriter::start(BufWriter::new(&mut out), secret, Some(summary))?;
                write_body(&mut sealed, manifest, body).map_err(|err| err.at(&path))?;
                sealed
                    .finish()
                    .map_err(e)?
                    .into_inner()
                    .map_err(|err| e(err.into_error()))?;
            }
        }
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

/// A failure while putting the archive together.
enum BodyError {
    Io(io::Error),
    Json(serde_json::Error),
}

impl BodyError {
    fn at(self, path: &Path) -> StoreError {
        match self {
            BodyError::Io(e) => io_err(path, e),
            BodyError::Json(e) => StoreError::internal(e.to_string()),
        }
    }
}

impl From<io::Error> for BodyError {
    fn from(e: io::Error) -> Self {
        BodyError::Io(e)
    }
}

/// The manifest's zstd frame, then the rows' frames.
fn write_body(
    out: &mut impl Write,
    manifest: &Manifest,
    mut rows: Box<dyn io::Read>,
) -> Result<(), BodyError> {
    {
        let mut head = zstd::Encoder::new(&mut *out, 3)?;
        serde_json::to_writer(&mut head, manifest).map_err(BodyError::Json)?;
        head.write_all(b"\n")?;
        head.finish()?;
    }
    io::copy(&mut rows, out)?;
    Ok(())
}

/// Reads an archive line by line, in constant memory.
pub struct ArchiveReader {
    path: PathBuf,
    lines: BufReader<zstd::Decoder<'static, BufReader<Box<dyn io::Read + Send>>>>,
    buf: String,
}

fn damaged(path: &Path, why: impl std::fmt::Display) -> StoreError {
    StoreError::invalid(
        "archive",
        format!("{} is not a whole flowstore archive: {why}", path.display()),
    )
}

/// What the first bytes of a file say it is.
pub enum Probe {
    /// A plain archive, with its manifest.
    Plain(Manifest),
    /// An encrypted archive, with its header.
    Encrypted(crypt::Header),
}

/// Reads only the beginning of `path`: an archive's manifest, or an encrypted
/// archive's header. An error for anything else.
pub fn probe(path: &Path) -> Result<Probe, StoreError> {
    let mut file = File::open(path)
        .map_err(|e| StoreError::invalid("FILE", format!("cannot read {}: {e}", path.display())))?;
    if crypt::is_encrypted(&mut file).map_err(|e| damaged(path, e))? {
        let (header, _) = crypt::read_header(&mut file, path)?;
        return Ok(Probe::Encrypted(header));
    }
    let (_, manifest) = ArchiveReader::open(path)?;
    Ok(Probe::Plain(manifest))
}

impl ArchiveReader {
    /// Opens `path` and reads its manifest (an encrypted archive is refused, naming
    /// the secret it needs).
    pub fn open(path: &Path) -> Result<(Self, Manifest), StoreError> {
        ArchiveReader::open_with(path, None)
    }

    /// Opens `path`, decrypting it with `secret` when it is encrypted, and reads
    /// its manifest.
    pub fn open_with(path: &Path, secret: Option<&Secret>) -> Result<(Self, Manifest), StoreError> {
        use std::io::Seek;
        let mut file = File::open(path).map_err(|e| {
            StoreError::invalid("FILE", format!("cannot read {}: {e}", path.display()))
        })?;
        let input: Box<dyn io::Read + Send> =
            if crypt::is_encrypted(&mut file).map_err(|e| damaged(path, e))? {
                let (header, bytes) = crypt::read_header(&mut file, path)?;
                Box::new(crypt::decrypt(file, &header, bytes, secret, path)?)
            } else {
                file.seek(io::SeekFrom::Start(0))
                    .map_err(|e| damaged(path, e))?;
                Box::new(file)
            };
        let decoder = zstd::Decoder::new(input).map_err(|e| damaged(path, e))?;
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
        let n =
            self.lines
                .read_line(&mut self.buf)
                .map_err(|e| match crypt::altered_message(&e) {
                    Some(m) => StoreError::invalid("archive", m),
                    None => damaged(&self.path, e),
                })?;
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
    verify_with(path, None)
}

/// [`verify`] of an archive that may be encrypted with `secret`: every chunk is
/// authenticated as it is read.
pub fn verify_with(path: &Path, secret: Option<&Secret>) -> Result<Manifest, StoreError> {
    let (mut reader, manifest) = ArchiveReader::open_with(path, secret)?;
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
