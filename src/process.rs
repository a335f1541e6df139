//! The process `-c CMD` runs: started held at the door, so that probes are in place
//! before its first instruction, then released.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot run command {command:?}: {source}")]
    Spawn { command: String, source: io::Error },
    #[error("cannot run command {command:?}: {program} is not found on PATH")]
    NotFound { command: String, program: String },
    #[error("cannot run command {command:?}: {} is not an executable file", program.display())]
    NotExecutable { command: String, program: PathBuf },
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
    /// process is the command itself rather than a shell around it; its program is looked up
    /// first, so that a typo is reported before any probe is attached rather than by the
    /// shell once tracing has begun.
    pub fn spawn(command: &str) -> Result<Self, ProcessError> {
        let spawn_error = |source| ProcessError::Spawn {
            command: command.to_string(),
            source,
        };
        let script = if command.contains(SHELL_SYNTAX) {
            command.to_string()
        } else {
            let path = std::env::var_os("PATH").unwrap_or_default();
            check_program(command, &path)?;
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
            // SAFETY: see above; this is the child. Its copy of the write end is closed
            // first, or closing rstap's copy would never end the read.
            unsafe {
                libc::close(write_end.as_raw_fd());
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

/// Checks that the program a plain command starts with exists and may be executed: a name
/// with a `/` as a path, any other name on `path` (as the shell's `exec` would search it).
fn check_program(command: &str, path: &OsStr) -> Result<(), ProcessError> {
    let Some(program) = command.split_ascii_whitespace().next() else {
        return Err(ProcessError::Spawn {
            command: command.to_string(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "the command is empty"),
        });
    };
    if program.contains('/') {
        return if is_executable_file(Path::new(program)) {
            Ok(())
        } else {
            Err(ProcessError::NotExecutable {
                command: command.to_string(),
                program: PathBuf::from(program),
            })
        };
    }
    let found = std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .any(|candidate| is_executable_file(&candidate));
    if found {
        Ok(())
    } else {
        Err(ProcessError::NotFound {
            command: command.to_string(),
            program: program.to_string(),
        })
    }
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
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
    fn shell_command_that_cannot_run_exits_127() {
        let mut command = HeldCommand::spawn("/nonexistent/program; exit $?").unwrap();
        command.release().unwrap();
        assert_eq!(wait(&mut command), 127);
    }

    #[test]
    fn plain_command_that_cannot_run_is_refused_before_forking() {
        assert!(matches!(
            HeldCommand::spawn("/nonexistent/program --flag"),
            Err(ProcessError::NotExecutable { .. })
        ));
        assert!(matches!(
            HeldCommand::spawn("no-such-program-rstap"),
            Err(ProcessError::NotFound { .. })
        ));
    }

    #[test]
    fn programs_are_looked_up_like_the_shell_does() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("tool");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths(["/nonexistent", dir.path().to_str().unwrap()]).unwrap();
        assert!(matches!(
            check_program("tool -x", &path),
            Err(ProcessError::NotFound { .. })
        ));
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check_program("tool -x", &path).is_ok());
        assert!(check_program(script.to_str().unwrap(), &path).is_ok());
        // A directory is not a program, even with its x bits set.
        assert!(check_program(dir.path().to_str().unwrap(), &path).is_err());
        assert!(check_program("   ", &path).is_err());
    }

    #[test]
    fn unreleased_command_never_runs_and_is_reaped() {
        let marker = std::env::temp_dir().join(format!("rstap-never-{}", std::process::id()));
        let command = HeldCommand::spawn(&format!("touch {}; true", marker.display())).unwrap();
        let pid = command.pid();
        // Dropping without a release must end the child, not wait for it forever.
        drop(command);
        assert!(!marker.exists(), "an unreleased command ran");
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
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
