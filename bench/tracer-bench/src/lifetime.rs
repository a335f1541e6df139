//! Times a command from inside its own process, so that a tracer filtering on the command's
//! pid (rstap -c, bpftrace -c, ftrace's set_ftrace_pid) traces exactly the timed work.
//!
//! The process takes the start time, forks a watcher, and execs the command. The pipe's write
//! end stays open across exec and is closed by the kernel only when the command exits, so the
//! watcher's read returning end-of-file marks the command's end. The watcher is a separate
//! process and makes no socket calls, so a pid filter keeps it out of the trace.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::clock::monotonic;

pub fn become_timed(out: &Path, command: &[OsString]) -> Result<u8, String> {
    let start = monotonic();
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe writes. No O_CLOEXEC on purpose:
    // the write end must survive exec.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: pipe just created these descriptors and nothing else owns them.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: this process has one thread, so the child may run any code after fork.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(write_end);
            let status = watch(read_end, start, out);
            std::process::exit(status);
        }
        _ => {
            drop(read_end);
            let error = Command::new(&command[0]).args(&command[1..]).exec();
            drop(write_end);
            Err(format!("cannot run {:?}: {error}", command[0]))
        }
    }
}

/// Waits for the command to close the pipe, then writes its lifetime in seconds.
fn watch(read_end: OwnedFd, start: std::time::Duration, out: &Path) -> i32 {
    let mut pipe = File::from(read_end);
    let mut byte = [0u8; 1];
    // Nothing is ever written: any return, data or not, means every writer is gone.
    while let Err(err) = pipe.read(&mut byte) {
        if err.kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    let seconds = (monotonic() - start).as_secs_f64();
    match fs::write(out, format!("{seconds:.6}\n")) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("tracer-bench: cannot write {}: {err}", out.display());
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn watcher_reports_when_the_last_writer_closes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("lifetime");
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let start = monotonic();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(write_end);
        });
        let waited = Instant::now();
        assert_eq!(watch(read_end, start, &out), 0);
        closer.join().unwrap();
        assert!(waited.elapsed() >= Duration::from_millis(200));
        let seconds: f64 = fs::read_to_string(&out).unwrap().trim().parse().unwrap();
        assert!((0.2..5.0).contains(&seconds), "{seconds}");
    }
}
