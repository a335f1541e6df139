//! Running the built rstap as a user would, for the tests that compare what it prints.

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const RSTAP: &str = env!("CARGO_BIN_EXE_rstap");
/// No case may take longer: a hang is as much a failure as a crash.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs rstap from the crate's root (so paths in messages are as written in the cases),
/// with stdin closed, and kills it if it outlives [`CASE_TIMEOUT`].
pub fn run_rstap(args: &[String]) -> Output {
    let child = Command::new(RSTAP)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start rstap");
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // Output is read while rstap runs: an error quoting a huge line can outgrow a pipe.
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    match receiver.recv_timeout(CASE_TIMEOUT) {
        Ok(output) => output.expect("cannot read rstap's output"),
        Err(_) => {
            // SAFETY: signalling the child this test started, which has not been reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("rstap {args:?} still runs after {CASE_TIMEOUT:?}");
        }
    }
}
