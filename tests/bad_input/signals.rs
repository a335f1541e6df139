//! How a run ends when it is told to: by a signal, by the reader of its output going away,
//! or by the `-c` command exiting. Scripts with only begin and end probes attach nothing, so
//! these run on any kernel; the VM tests (tests/vm/hardening.rs) cover traced runs.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use super::run::RSTAP;

const BEGIN_AND_END: &str =
    "probe begin { printf(\"begun\\n\") } probe end { printf(\"ended\\n\") }";

fn spawn(args: &[&str]) -> Child {
    Command::new(RSTAP)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start rstap")
}

/// The lines rstap prints, as they come.
fn lines(stdout: ChildStdout) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

fn next_line(lines: &Receiver<String>) -> String {
    lines
        .recv_timeout(Duration::from_secs(20))
        .expect("rstap printed nothing")
}

fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: sending a signal to our own child.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

#[test]
fn int_term_and_hup_end_the_run_cleanly_with_end_probes_flushed() {
    for (name, number) in [
        ("SIGINT", libc::SIGINT),
        ("SIGTERM", libc::SIGTERM),
        ("SIGHUP", libc::SIGHUP),
    ] {
        let mut child = spawn(&["-e", BEGIN_AND_END]);
        let lines = lines(child.stdout.take().unwrap());
        assert_eq!(next_line(&lines), "begun", "{name}");
        signal(&child, number);
        let status = wait_within(&mut child, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{name} did not end the run"));
        assert_eq!(next_line(&lines), "ended", "{name}");
        assert_eq!(status.code(), Some(0), "{name}");
        assert_eq!(stderr_of(&mut child), "", "{name}");
    }
}

#[test]
fn second_sigint_ends_rstap_at_once() {
    // The command ignores the SIGTERM rstap ends it with, so stopping waits for it; it says
    // when it does (its stdout is rstap's).
    let mut child = spawn(&[
        "-c",
        "trap '' TERM; echo ignoring; sleep 4",
        "-e",
        BEGIN_AND_END,
    ]);
    let lines = lines(child.stdout.take().unwrap());
    assert_eq!(next_line(&lines), "begun");
    assert_eq!(next_line(&lines), "ignoring");
    signal(&child, libc::SIGINT);
    assert_eq!(next_line(&lines), "ended");
    if let Some(status) = wait_within(&mut child, Duration::from_millis(500)) {
        panic!(
            "rstap did not wait for its command ({status:?}), so this test shows nothing: {}",
            stderr_of(&mut child)
        );
    }
    let second = Instant::now();
    signal(&child, libc::SIGINT);
    let status =
        wait_within(&mut child, Duration::from_secs(2)).expect("a second SIGINT did not end rstap");
    assert!(second.elapsed() < Duration::from_secs(2));
    assert!(!status.success(), "{status:?}");
}

#[test]
fn closed_output_ends_the_run_quietly() {
    // Far more than the pipe and rstap's buffer hold, so writing must fail once the reader
    // has gone.
    let mut script = String::from("probe begin {\n");
    for _ in 0..20_000 {
        script.push_str("printf(\"%s\\n\", \"0123456789012345678901234567890123456789\")\n");
    }
    script.push('}');
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loud.stp");
    std::fs::write(&path, script).unwrap();
    let mut child = spawn(&[path.to_str().unwrap()]);
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    assert_eq!(first, "0123456789012345678901234567890123456789\n");
    // The reader is dropped here, as `head -1` exits after its line.
    let status = wait_within(&mut child, Duration::from_secs(10))
        .expect("rstap kept running with nobody reading");
    assert_eq!(stderr_of(&mut child), "");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn command_exit_status_is_rstaps() {
    for (command, expected) in [
        ("sh -c 'exit 7'", 7),
        ("true", 0),
        ("sh -c 'kill -KILL $$'", 128 + libc::SIGKILL),
    ] {
        let mut child = spawn(&["-c", command, "-e", "probe begin { }"]);
        let status = wait_within(&mut child, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{command}: rstap did not exit with its command"));
        assert_eq!(status.code(), Some(expected), "{command}");
    }
}
