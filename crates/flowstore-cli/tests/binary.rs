//! The `flowstore` binary as the tests run it: `--database-url` and the test key.

use std::process::{Command, Output};

use flowstore_testkit::ENCRYPTION_KEY;

/// `flowstore --database-url URL ARGS…` with the tests' `ENCRYPTION_KEY`.
pub fn flowstore(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowstore"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env("ENCRYPTION_KEY", ENCRYPTION_KEY)
        .output()
        .expect("the binary runs")
}

/// Asserts the command succeeded (its stderr is the message); its stdout.
#[track_caller]
pub fn succeeded(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}
