//! Encrypted archives: the archive's bytes (the zstd stream of [`super::format`])
//! sealed with AES-256-GCM in chunks, so that neither writing nor reading needs the
//! archive in memory.
//!
//! The file is [`MAGIC`], a 4-byte big-endian length and a JSON [`Header`], then the
//! chunks. Each chunk is [`CHUNK`] bytes of plaintext (the last one fewer, possibly
//! none) followed by its 16-byte tag, sealed under the nonce `prefix(7) ‖
//! counter(4, big-endian) ‖ last(1)` (the STREAM construction), with the header's
//! bytes as associated data: a chunk moved, dropped, repeated or cut off, a changed
//! header and a file cut after a whole chunk all fail to authenticate.
//!
//! The archive key is derived per archive from a random salt kept in the header:
//! with a passphrase through argon2id (its parameters in the header), with a key
//! file (32 bytes, as 64 hex characters or base64) through HMAC-SHA256. The header
//! also holds a check value (HMAC of a fixed label under the derived key), so a
//! wrong passphrase or key file is told apart from a damaged or altered archive.
//! Besides, the header keeps an unauthenticated summary (creation time, source,
//! counts) so that `backup list` can describe an archive without its secret; it is
//! authenticated once the archive is read with the secret.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use flowstore::StoreError;

/// The first bytes of an encrypted archive.
pub const MAGIC: &[u8; 16] = b"flowstore-crypt\n";
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const PREFIX: usize = 7;
/// The layout version of the header.
const VERSION: u32 = 1;
/// Longest header read (it holds a few hundred bytes).
const MAX_HEADER: u32 = 64 * 1024;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// How the archive key is made from the secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kdf", rename_all = "snake_case")]
pub enum Kdf {
    /// argon2id over the passphrase and the salt.
    Argon2id {
        /// Memory in KiB.
        m_cost: u32,
        /// Passes.
        t_cost: u32,
        /// Lanes.
        p_cost: u32,
    },
    /// HMAC-SHA256 of the salt under the key file's key.
    KeyFile,
}

/// What an encrypted archive says in the clear about itself (unauthenticated until
/// it is read with its secret).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// When its snapshot was taken (RFC 3339).
    pub created_at: String,
    /// The backend it came from.
    pub backend: String,
    /// The database it came from (host and name, never a password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<super::format::ArchiveSource>,
    /// Its schema version.
    pub schema_version: i64,
    /// How many tables it holds.
    pub tables: usize,
    /// How many rows it holds.
    pub rows: u64,
    /// Whether it holds some tables only.
    #[serde(default)]
    pub partial: bool,
}

/// The header of an encrypted archive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Layout version.
    pub version: u32,
    /// How the key is derived.
    #[serde(flatten)]
    pub kdf: Kdf,
    /// The per-archive salt (hex).
    pub salt: String,
    /// The chunks' nonce prefix (hex, 7 bytes).
    pub nonce_prefix: String,
    /// Plaintext bytes per chunk.
    pub chunk: u32,
    /// HMAC-SHA256 of a fixed label under the derived key (hex).
    pub key_check: String,
    /// What the archive holds, for listing without the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

/// The secret an archive is encrypted with.
pub enum SecretKind {
    /// A passphrase, stretched with argon2id.
    Passphrase(String),
    /// A 32-byte key read from a file.
    KeyFile {
        /// The file, named in errors.
        path: PathBuf,
        /// Its key.
        key: [u8; 32],
    },
}

/// A passphrase or key file, with the last key derived from it (a restore reads the
/// archive more than once; argon2id runs once).
pub struct Secret {
    kind: SecretKind,
    derived: Mutex<Option<(Header, [u8; 32])>>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.kind {
            SecretKind::Passphrase(_) => "Secret(passphrase, <redacted>)",
            SecretKind::KeyFile { .. } => "Secret(key file, <redacted>)",
        })
    }
}

/// argon2id's parameters for new archives: 64 MiB, 3 passes, 1 lane.
const ARGON2: Kdf = Kdf::Argon2id {
    m_cost: 64 * 1024,
    t_cost: 3,
    p_cost: 1,
};

impl Secret {
    /// A passphrase (refused when empty).
    pub fn passphrase(text: &str, named: &str) -> Result<Secret, StoreError> {
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            return Err(StoreError::invalid(named, "the passphrase is empty"));
        }
        Ok(Secret::new(SecretKind::Passphrase(text.to_string())))
    }

    /// The passphrase held by the first line of `path`.
    pub fn passphrase_file(path: &Path, named: &str) -> Result<Secret, StoreError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            StoreError::invalid(named, format!("cannot read {}: {e}", path.display()))
        })?;
        let first = text.lines().next().unwrap_or("");
        Secret::passphrase(first, named).map_err(|_| {
            StoreError::invalid(
                named,
                format!("{} holds no passphrase on its first line", path.display()),
            )
        })
    }

    /// The key held by `path`: 32 bytes as 64 hex characters or base64 (as
    /// `openssl rand -hex 32` writes).
    pub fn key_file(path: &Path, named: &str) -> Result<Secret, StoreError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            StoreError::invalid(named, format!("cannot read {}: {e}", path.display()))
        })?;
        match flowstore_core::crypto::key_bytes(&text) {
            Some(key) => Ok(Secret::new(SecretKind::KeyFile {
                path: path.to_path_buf(),
                key,
            })),
            None => Err(StoreError::invalid(
                named,
                format!(
                    "{} must hold 32 bytes as 64 hex characters or as base64 (openssl rand -hex 32 writes one)",
                    path.display()
                ),
            )),
        }
    }

    fn new(kind: SecretKind) -> Secret {
        Secret {
            kind,
            derived: Mutex::new(None),
        }
    }

    /// What the secret is, for messages: "passphrase" or "key file PATH".
    pub fn describe(&self) -> String {
        match &self.kind {
            SecretKind::Passphrase(_) => "passphrase".into(),
            SecretKind::KeyFile { path, .. } => format!("key file {}", path.display()),
        }
    }

    /// A header for a new archive, with a fresh salt and nonce prefix, and its
    /// encryption key.
    fn seal_header(&self, summary: Option<Summary>) -> Result<(Header, [u8; 32]), StoreError> {
        let mut salt = [0u8; 16];
        let mut prefix = [0u8; PREFIX];
        rand::thread_rng().fill_bytes(&mut salt);
        rand::thread_rng().fill_bytes(&mut prefix);
        let kdf = match self.kind {
            SecretKind::Passphrase(_) => ARGON2,
            SecretKind::KeyFile { .. } => Kdf::KeyFile,
        };
        let mut header = Header {
            version: VERSION,
            kdf,
            salt: hex::encode(salt),
            nonce_prefix: hex::encode(prefix),
            chunk: CHUNK as u32,
            key_check: String::new(),
            summary,
        };
        let master = self.master(&header)?;
        header.key_check = hex::encode(hmac(&master, &[b"flowstore archive key check"]));
        Ok((header, hmac(&master, &[b"flowstore archive encryption"])))
    }

    /// The derived master key of `header` (argon2id or HMAC over its salt).
    fn master(&self, header: &Header) -> Result<[u8; 32], StoreError> {
        let salt = hex::decode(&header.salt)
            .map_err(|_| StoreError::invalid("archive", "its encryption header is damaged"))?;
        match (&self.kind, &header.kdf) {
            (
                SecretKind::Passphrase(p),
                Kdf::Argon2id {
                    m_cost,
                    t_cost,
                    p_cost,
                },
            ) => {
                if *m_cost > 4 * 1024 * 1024 || *t_cost > 64 || *p_cost > 64 {
                    return Err(StoreError::invalid(
                        "archive",
                        "its encryption header asks for more work than any flowstore writes",
                    ));
                }
                let params = argon2::Params::new(*m_cost, *t_cost, *p_cost, Some(32))
                    .map_err(|e| StoreError::invalid("archive", format!("its encryption header: {e}")))?;
                let argon = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    params,
                );
                let mut out = [0u8; 32];
                argon
                    .hash_password_into(p.as_bytes(), &salt, &mut out)
                    .map_err(|e| StoreError::internal(format!("argon2id: {e}")))?;
                Ok(out)
            }
            (SecretKind::KeyFile { key, .. }, Kdf::KeyFile) => {
                Ok(hmac(key, &[b"flowstore archive key file", &salt]))
            }
            (SecretKind::KeyFile { .. }, Kdf::Argon2id { .. }) => Err(StoreError::invalid(
                "--passphrase-file",
                "the archive is encrypted with a passphrase, not a key file: give it with --passphrase-file FILE or FLOWSTORE_BACKUP_PASSPHRASE",
            )),
            (SecretKind::Passphrase(_), Kdf::KeyFile) => Err(StoreError::invalid(
                "--key-file",
                "the archive is encrypted with a key file, not a passphrase: give it with --key-file FILE or FLOWSTORE_BACKUP_KEY_FILE",
            )),
        }
    }

    /// The encryption key of an archive with `header`, checked against its key
    /// check value: a wrong secret is an error naming the archive.
    fn open_key(&self, header: &Header, path: &Path) -> Result<[u8; 32], StoreError> {
        let mut cache = self.derived.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((h, key)) = cache.as_ref() {
            if h == header {
                return Ok(*key);
            }
        }
        let master = self.master(header)?;
        let check = hex::encode(hmac(&master, &[b"flowstore archive key check"]));
        if check != header.key_check {
            return Err(StoreError::invalid(
                match self.kind {
                    SecretKind::Passphrase(_) => "passphrase",
                    SecretKind::KeyFile { .. } => "--key-file",
                },
                format!(
                    "the {} does not open {} (wrong passphrase or key file, or a damaged header)",
                    self.describe(),
                    path.display()
                ),
            ));
        }
        let key = hmac(&master, &[b"flowstore archive encryption"]);
        *cache = Some((header.clone(), key));
        Ok(key)
    }
}

/// Encrypts what is written to it in chunks; [`EncryptWriter::finish`] writes the
/// last chunk.
pub struct EncryptWriter<W: Write> {
    inner: W,
    cipher: Aes256Gcm,
    aad: Vec<u8>,
    prefix: [u8; PREFIX],
    counter: u32,
    buf: Vec<u8>,
}

fn nonce(prefix: &[u8; PREFIX], counter: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..PREFIX].copy_from_slice(prefix);
    n[PREFIX..PREFIX + 4].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn prefix_of(header: &Header) -> Option<[u8; PREFIX]> {
    hex::decode(&header.nonce_prefix).ok()?.try_into().ok()
}

/// The header's bytes as written: magic, length, JSON. They are every chunk's
/// associated data.
fn header_bytes(header: &Header) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(header).map_err(|e| StoreError::internal(e.to_string()))?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + json.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

impl<W: Write> EncryptWriter<W> {
    /// Writes the header of a new archive encrypted with `secret` to `inner` and
    /// returns the writer of its contents.
    pub fn start(
        mut inner: W,
        secret: &Secret,
        summary: Option<Summary>,
    ) -> Result<Self, StoreError> {
        let (header, key) = secret.seal_header(summary)?;
        let bytes = header_bytes(&header)?;
        inner
            .write_all(&bytes)
            .map_err(|e| StoreError::unavailable(format!("cannot write the archive: {e}")))?;
        let prefix = prefix_of(&header).ok_or_else(|| StoreError::internal("nonce prefix"))?;
        Ok(EncryptWriter::with_key(inner, &key, prefix, bytes))
    }

    /// A writer under a key of its own with no header (a side file's, whose key
    /// lives in memory only).
    pub fn ephemeral(inner: W) -> (Self, [u8; 32], [u8; PREFIX]) {
        let mut key = [0u8; 32];
        let mut prefix = [0u8; PREFIX];
        rand::thread_rng().fill_bytes(&mut key);
        rand::thread_rng().fill_bytes(&mut prefix);
        (
            EncryptWriter::with_key(inner, &key, prefix, Vec::new()),
            key,
            prefix,
        )
    }

    fn with_key(inner: W, key: &[u8; 32], prefix: [u8; PREFIX], aad: Vec<u8>) -> Self {
        EncryptWriter {
            inner,
            cipher: Aes256Gcm::new(key.into()),
            aad,
            prefix,
            counter: 0,
            buf: Vec::with_capacity(CHUNK + TAG),
        }
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let n = nonce(&self.prefix, self.counter, last);
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("the archive is too large to encrypt (256 TiB)"))?;
        self.cipher
            .encrypt_in_place(Nonce::from_slice(&n), &self.aad, &mut self.buf)
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Seals the last chunk and returns the inner writer, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            // A full chunk is never the last: the last one holds fewer bytes.
            self.seal(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts chunk by chunk what an [`EncryptWriter`] wrote; a chunk that fails to
/// authenticate, a missing last chunk or bytes after it are an error naming the
/// archive.
pub struct DecryptReader<R: Read> {
    inner: R,
    cipher: Aes256Gcm,
    aad: Vec<u8>,
    prefix: [u8; PREFIX],
    counter: u32,
    raw: Vec<u8>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    name: String,
}

impl<R: Read> DecryptReader<R> {
    /// Reads a side file's chunks under its in-memory key.
    pub fn ephemeral(inner: R, key: &[u8; 32], prefix: [u8; PREFIX], name: String) -> Self {
        DecryptReader::with_key(inner, key, prefix, Vec::new(), name)
    }

    fn with_key(
        inner: R,
        key: &[u8; 32],
        prefix: [u8; PREFIX],
        aad: Vec<u8>,
        name: String,
    ) -> Self {
        DecryptReader {
            inner,
            cipher: Aes256Gcm::new(key.into()),
            aad,
            prefix,
            counter: 0,
            raw: Vec::with_capacity(CHUNK + TAG + 1),
            buf: Vec::with_capacity(CHUNK + TAG),
            pos: 0,
            done: false,
            name,
        }
    }

    fn altered(&self, why: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            Altered(format!(
                "{} has been altered or damaged: {why} (the secret is right; the encrypted data is not what was written)",
                self.name
            )),
        )
    }

    /// Reads and opens the next chunk into `buf`.
    fn next_chunk(&mut self) -> io::Result<()> {
        let full = CHUNK + TAG;
        // One byte past a full chunk tells whether another follows; bytes read
        // ahead stay in `raw` for the next chunk.
        let mut got = self.raw.len();
        self.raw.resize(full + 1, 0);
        while got < self.raw.len() {
            let n = self.inner.read(&mut self.raw[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        self.raw.truncate(got);
        let last = got <= full;
        let take = got.min(full);
        if take < TAG {
            return Err(self.altered("it is cut short"));
        }
        if last && take == full {
            // A full chunk is never the last one written: the file was cut.
            return Err(self.altered("it is cut short after a whole chunk"));
        }
        self.buf.clear();
        self.buf.extend_from_slice(&self.raw[..take]);
        self.raw.drain(..take);
        let n = nonce(&self.prefix, self.counter, last);
        let counter = self.counter;
        self.cipher
            .decrypt_in_place(Nonce::from_slice(&n), &self.aad, &mut self.buf)
            .map_err(|_| self.altered(&format!("chunk {counter} fails authentication")))?;
        self.counter = self.counter.wrapping_add(1);
        self.pos = 0;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.buf.len() {
                let n = (self.buf.len() - self.pos).min(out.len());
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
    }
}

/// The error of a chunk that fails to authenticate.
#[derive(Debug)]
pub struct Altered(String);

impl std::fmt::Display for Altered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Altered {}

/// The message of an I/O error that is an encrypted archive failing to
/// authenticate, however deep the readers above it passed it on.
pub fn altered_message(e: &io::Error) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|i| i as _);
    while let Some(err) = cur {
        if let Some(a) = err.downcast_ref::<Altered>() {
            return Some(a.0.clone());
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if let Some(m) = altered_message(io) {
                return Some(m);
            }
        }
        cur = err.source();
    }
    None
}

/// Reads the header of an encrypted archive from `file` (positioned after
/// [`MAGIC`]); returns it and its bytes.
pub fn read_header(file: &mut impl Read, path: &Path) -> Result<(Header, Vec<u8>), StoreError> {
    let bad = |why: &str| {
        StoreError::invalid(
            "archive",
            format!("{} has a damaged encryption header: {why}", path.display()),
        )
    };
    let mut len = [0u8; 4];
    file.read_exact(&mut len)
        .map_err(|_| bad("it is cut short"))?;
    let len = u32::from_be_bytes(len);
    if len > MAX_HEADER {
        return Err(bad("it is too long"));
    }
    let mut json = vec![0u8; len as usize];
    file.read_exact(&mut json)
        .map_err(|_| bad("it is cut short"))?;
    let header: Header = serde_json::from_slice(&json).map_err(|e| bad(&e.to_string()))?;
    if header.version > VERSION {
        return Err(StoreError::invalid(
            "archive",
            format!(
                "{} is encrypted in a newer layout ({}) than this binary reads ({VERSION}); upgrade flowstore",
                path.display(),
                header.version
            ),
        ));
    }
    if header.chunk as usize != CHUNK || prefix_of(&header).is_none() {
        return Err(bad("unknown chunk size or nonce"));
    }
    let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + json.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(&json);
    Ok((header, bytes))
}

/// Whether `file` starts with [`MAGIC`]; reads that far.
pub fn is_encrypted(file: &mut File) -> io::Result<bool> {
    let mut magic = [0u8; MAGIC.len()];
    let mut got = 0;
    while got < magic.len() {
        let n = file.read(&mut magic[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got == magic.len() && &magic == MAGIC)
}

/// The reader of an encrypted archive's contents, `file` being positioned after its
/// header. Without a secret the error says which one to give.
pub fn decrypt(
    file: File,
    header: &Header,
    header_bytes: Vec<u8>,
    secret: Option<&Secret>,
    path: &Path,
) -> Result<DecryptReader<File>, StoreError> {
    let Some(secret) = secret else {
        let (field, how) = match header.kdf {
            Kdf::Argon2id { .. } => (
                "--passphrase-file",
                "with a passphrase: give it with --passphrase-file FILE or FLOWSTORE_BACKUP_PASSPHRASE",
            ),
            Kdf::KeyFile => (
                "--key-file",
                "with a key file: give it with --key-file FILE or FLOWSTORE_BACKUP_KEY_FILE",
            ),
        };
        return Err(StoreError::invalid(
            field,
            format!("{} is encrypted {how}", path.display()),
        ));
    };
    let key = secret.open_key(header, path)?;
    let prefix = prefix_of(header).ok_or_else(|| StoreError::internal("nonce prefix"))?;
    Ok(DecryptReader::with_key(
        file,
        &key,
        prefix,
        header_bytes,
        path.display().to_string(),
    ))
}
