//! The `flowstore` command: the HTTP server (`serve`), migrations, portable backups
//! and restores, checks and maintenance, key rotation, demo data and the benchmarks.
//! The library it drives is the `flowstore` crate; this crate holds what only the
//! binary needs (clap, indicatif, zstd, reqwest, rusqlite).

pub mod archive;
pub mod bench;
pub mod cli;
pub mod demo;
