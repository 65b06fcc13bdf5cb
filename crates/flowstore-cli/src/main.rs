//! The `flowstore` binary: everything is in this crate's `cli` module.

/// A server's requests, the drivers' rows and the JSON between them allocate and
/// free many small blocks from many threads; measured in BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Like other command-line tools, end quietly when the reader of stdout goes away
    // (`flowstore backup --json | head`) instead of panicking on the failed write.
    #[cfg(unix)]
    // SAFETY: restoring the default action of SIGPIPE at start, before any thread
    // writes, changes no Rust state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    flowstore_cli::cli::run().await
}
