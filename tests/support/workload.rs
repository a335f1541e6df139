//! The socket workload (vm/workload), built once per test binary, in a target directory of
//! its own so that it never waits for the lock of the build running the tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn socket_workload() -> Result<&'static Path, String> {
    static WORKLOAD: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    WORKLOAD
        .get_or_init(|| {
            let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .ok_or("CARGO_TARGET_TMPDIR has no parent")?
                .join("vm-workload");
            build_release(&["-p", "socket-workload"], &target)?;
            Ok(target.join("release/socket-workload"))
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// Runs `cargo build --quiet --release ARGS --target-dir TARGET` in the repository: a
/// target directory other than the tests' own build's, whose lock that build holds.
pub fn build_release(args: &[&str], target: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "--release"])
        .args(args)
        .arg("--target-dir")
        .arg(target)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    let output = build
        .output()
        .map_err(|e| format!("cannot run {build:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{build:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
