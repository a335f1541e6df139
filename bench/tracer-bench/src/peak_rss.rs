//! A tracer's peak memory, from the kernel's own accounting: `wait4` returns the child's
//! maximum resident set size. Linux reports the larger of the child's own peak and that of
//! the children it reaped, so for `rstap -c WORKLOAD` this is rstap's peak unless the
//! workload (a few MiB) used more.

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::Command;

pub fn run(out: &Path, command: &[OsString]) -> Result<u8, String> {
    let child = Command::new(&command[0])
        .args(&command[1..])
        .spawn()
        .map_err(|err| format!("cannot run {:?}: {err}", command[0]))?;
    let (status, peak_kib) = wait_with_peak_rss(child.id())?;
    fs::write(out, format!("{peak_kib}\n"))
        .map_err(|err| format!("cannot write {}: {err}", out.display()))?;
    Ok(status)
}

/// Reaps `pid`, waiting for it to exit; returns its exit status (128 + signal if killed)
/// and its peak RSS in KiB.
pub fn wait_with_peak_rss(pid: u32) -> Result<(u8, i64), String> {
    loop {
        if let Some(reaped) = reap(pid, 0)? {
            return Ok(reaped);
        }
    }
}

/// Like [`wait_with_peak_rss`], but returns None at once if `pid` is still running.
pub fn try_reap(pid: u32) -> Result<Option<(u8, i64)>, String> {
    reap(pid, libc::WNOHANG)
}

fn reap(pid: u32, flags: libc::c_int) -> Result<Option<(u8, i64)>, String> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: status and usage are valid for writes; pid is our own unreaped child.
    match unsafe { libc::wait4(pid, &mut status, flags, &mut usage) } {
        0 => return Ok(None),
        reaped if reaped == pid => {}
        _ => {
            let err = std::io::Error::last_os_error();
            return match err.kind() {
                std::io::ErrorKind::Interrupted => Ok(None),
                _ => Err(format!("wait4: {err}")),
            };
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok(Some((
        u8::try_from(code).unwrap_or(u8::MAX),
        usage.ru_maxrss,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_status_and_a_peak_that_grows_with_use() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        let big = dir.path().join("big");
        let sh = |script: &str| vec![OsString::from("sh"), "-c".into(), script.into()];
        assert_eq!(run(&small, &sh("exit 3")).unwrap(), 3);
        // dd touches all of its 64 MiB block buffer while it copies.
        assert_eq!(
            run(
                &big,
                &sh("dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null")
            )
            .unwrap(),
            0
        );
        let read =
            |path: &Path| -> i64 { fs::read_to_string(path).unwrap().trim().parse().unwrap() };
        assert!(read(&small) > 0);
        assert!(read(&big) >= 64 * 1024, "{}", read(&big));
    }

    #[test]
    fn a_missing_command_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(
            &dir.path().join("o"),
            &[OsString::from("/nonexistent/tracer")],
        )
        .unwrap_err();
        assert!(err.contains("cannot run"), "{err}");
    }
}
