//! The process `-c CMD` runs: started held at the door, so that probes are in place
//! before its first instruction, then released.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot run command {command:?}: {source}")]
    Spawn { command: String, source: io::Error },
    #[error("no process with PID {0}")]
    NoSuchProcess(u32),
}

/// A command forked and waiting to exec until [`HeldCommand::release`].
pub struct HeldCommand {
    pid: libc::pid_t,
    /// Writing a byte lets the child exec; closing it without one makes the child exit.
    gate: Option<OwnedFd>,
    status: Option<i32>,
}

/// Shell syntax beyond a plain word list: such a command runs in a shell process, which is
/// then the traced process.
const SHELL_SYNTAX: &[char] = &[
    ';', '&', '|', '<', '>', '(', ')', '$', '`', '\n', '*', '?', '{', '}',
];

impl HeldCommand {
    /// Forks `/bin/sh -c CMD`. A plain command is run with `exec`, so that the traced
    /// process is the command itself rather than a shell around it.
    pub fn spawn(command: &str) -> Result<Self, ProcessError> {
        let spawn_error = |source| ProcessError::Spawn {
            command: command.to_string(),
            source,
        };
        let script = if command.contains(SHELL_SYNTAX) {
            command.to_string()
        } else {
            format!("exec {command}")
        };
        let argv: Vec<CString> = ["/bin/sh", "-c", script.as_str()]
            .iter()
            .map(|arg| CString::new(*arg))
            .collect::<Result<_, _>>()
            .map_err(|_| {
                spawn_error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "contains a NUL byte",
                ))
            })?;
        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|arg| arg.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());

        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(spawn_error(io::Error::last_os_error()));
        }
        // SAFETY: pipe2 just created these descriptors and nothing else owns them.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

        // SAFETY: between fork and exec the child only calls async-signal-safe functions
        // (read, execv, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(spawn_error(io::Error::last_os_error()));
        }
        if pid == 0 {
            let mut byte = 0u8;
            // SAFETY: see above; this is the child.
            unsafe {
                if libc::read(read_end.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) == 1 {
                    libc::execv(argv_ptrs[0], argv_ptrs.as_ptr());
                }
                libc::_exit(127);
            }
        }
        drop(read_end);
        Ok(HeldCommand {
            pid,
            gate: Some(write_end),
            status: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Lets the command run.
    pub fn release(&mut self) -> io::Result<()> {
        if let Some(gate) = self.gate.take() {
            // SAFETY: writing one byte from a live buffer to our own pipe.
            if unsafe { libc::write(gate.as_raw_fd(), [1u8].as_ptr().cast(), 1) } != 1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// The command's exit status once it has ended, shell-style (128 + signal if killed).
    pub fn try_wait(&mut self) -> io::Result<Option<i32>> {
        if self.status.is_none() {
            let mut status = 0;
            // SAFETY: waiting for our own child with a valid status pointer.
            let ret = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if ret < 0 {
                return Err(io::Error::last_os_error());
            }
            if ret == self.pid {
                self.status = Some(if libc::WIFSIGNALED(status) {
                    128 + libc::WTERMSIG(status)
                } else {
                    libc::WEXITSTATUS(status)
                });
            }
        }
        Ok(self.status)
    }
}

impl Drop for HeldCommand {
    /// A command never released exits on its own when the gate closes; one still running
    /// when rstap stops early is ended, as stap does, rather than left untraced.
    fn drop(&mut self) {
        if self.gate.take().is_none() && self.status.is_none() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(self.pid, libc::SIGTERM) };
        }
        if self.status.is_none() {
            let mut status = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
        }
    }
}

/// Checks that `pid` names a live process, for `-x`.
pub fn check_exists(pid: u32) -> Result<(), ProcessError> {
    if std::path::Path::new(&format!("/proc/{pid}")).exists() {
        Ok(())
    } else {
        Err(ProcessError::NoSuchProcess(pid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait(command: &mut HeldCommand) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = command.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "command did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn held_command_runs_only_once_released_and_reports_its_status() {
        let dir = std::env::temp_dir().join(format!("rstap-held-{}", std::process::id()));
        let marker = dir.with_extension("marker");
        let mut command =
            HeldCommand::spawn(&format!("touch {}; exit 3", marker.display())).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!marker.exists(), "the command ran before it was released");
        command.release().unwrap();
        assert_eq!(wait(&mut command), 3);
        assert!(marker.exists());
        std::fs::remove_file(marker).unwrap();
    }

    #[test]
    fn plain_command_is_the_process_itself() {
        let mut command = HeldCommand::spawn("sleep 5").unwrap();
        command.release().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", command.pid())).unwrap();
        assert_eq!(comm.trim(), "sleep");
    }

    #[test]
    fn command_that_cannot_run_exits_127() {
        let mut command = HeldCommand::spawn("/nonexistent/program").unwrap();
        command.release().unwrap();
        assert_eq!(wait(&mut command), 127);
    }

    #[test]
    fn missing_pid_is_an_error() {
        assert!(check_exists(std::process::id()).is_ok());
        assert!(matches!(
            check_exists(u32::MAX - 1),
            Err(ProcessError::NoSuchProcess(_))
        ));
    }
}
