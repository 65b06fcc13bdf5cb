//! Whether the database file can take writes now: its file, its directory (where
//! SQLite writes the log and the shared-memory index) and the free space of its disk.
//! `/readyz` asks this, so that a server whose writes would fail says so before a
//! client finds out.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use flowstore_core::{StoreError, StoreResult};

/// Free space under which the disk counts as full: the next checkpoint, or the log's
/// growth by one large transaction, would fail.
pub const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// Checks that `file` (a database file) and its directory can be written and that
/// its disk has at least [`MIN_FREE_BYTES`] free. Blocking: a few system calls.
pub fn check(file: &Path) -> StoreResult<()> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Err(e) = writable(file) {
        return Err(match e.kind() {
            io::ErrorKind::NotFound => {
                StoreError::unavailable(format!("the database file {} is gone", file.display()))
            }
            _ => StoreError::ReadOnly(format!(
                "read-only file: {} cannot be written: {}",
                file.display(),
                describe(&e)
            )),
        });
    }
    if let Err(e) = writable(dir) {
        return Err(StoreError::ReadOnly(format!(
            "read-only directory: {} cannot be written: {}",
            dir.display(),
            describe(&e)
        )));
    }
    let c_dir = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| StoreError::invalid("DATABASE_URL", "the path holds a NUL character"))?;
    let free = free_bytes(&c_dir).map_err(|e| {
        StoreError::unavailable(format!(
            "cannot read the free space of {}: {}",
            dir.display(),
            describe(&e)
        ))
    })?;
    if free < MIN_FREE_BYTES {
        return Err(StoreError::StorageFull(format!(
            "{free} bytes free on the disk holding {} (at least {MIN_FREE_BYTES} needed)",
            file.display()
        )));
    }
    Ok(())
}

/// Whether `path` may be written, asked with `access(2)`: never by opening it, since
/// closing any descriptor of a database file drops every POSIX lock this process
/// holds on that file, SQLite's included.
pub fn writable(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the path"))?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Bytes an unprivileged process may still write on the file system of `dir`.
fn free_bytes(dir: &CString) -> io::Result<u64> {
    // SAFETY: `statvfs` is plain data; zeroed is a valid value for it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `dir` is NUL-terminated and `st` is a valid place to write to.
    if unsafe { libc::statvfs(dir.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// An I/O error in words: "read-only file system", "permission denied".
pub fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EROFS) => "read-only file system".into(),
        Some(libc::EACCES) | Some(libc::EPERM) => "permission denied".into(),
        Some(libc::ENOSPC) => "no space left on the disk".into(),
        _ => e.to_string(),
    }
}
