//! The `flowstore` binary: everything is in the library's `cli` module.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    flowstore::cli::run().await
}
