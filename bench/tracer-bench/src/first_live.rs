//! Time from a tracer's start to its first live probe, measured the same way for every
//! tracer and needing nothing from it but its usual output.
//!
//! After starting the tracer, this process starts a marker thread every `interval`. Each
//! marker names itself `lm<N>` (N counts up from 0; seven characters at most, because
//! ftrace's function_graph prints only that much of a task's name), notes the time, and
//! opens and closes a socket, which runs `__sys_socket` and `sock_*` functions. The first
//! marker whose name shows up in the tracer's output ran after a probe was live, and the one
//! before it did not: the first live probe came between the two markers' calls. The figure
//! reported is the later of the two, an upper bound at most `interval` (plus the time to
//! start a thread) too high.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::clock::monotonic;
use crate::peak_rss;

/// Markers are `lm0` to `lm99999`: with the prefix, no more than seven characters.
const MAX_MARKERS: usize = 100_000;

/// How long a tracer gets to exit after SIGINT before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// The file the tracer writes its output to.
    pub watch: PathBuf,
    /// Where to write "SECONDS_TO_FIRST_LIVE_PROBE PEAK_RSS_KIB".
    pub out: PathBuf,
    pub interval: Duration,
    pub timeout: Duration,
    pub command: Vec<OsString>,
}

pub fn run(options: &Options) -> Result<u8, String> {
    let start = monotonic();
    let tracer = Command::new(&options.command[0])
        .args(&options.command[1..])
        .spawn()
        .map_err(|err| format!("cannot run {:?}: {err}", options.command[0]))?;
    let pid = tracer.id();
    let waited = wait_for_first_marker(options, pid, start);
    let (_, peak_kib) = stop(pid)?;
    let first_live = waited?;
    std::fs::write(
        &options.out,
        format!("{:.6} {peak_kib}\n", first_live.as_secs_f64()),
    )
    .map_err(|err| format!("cannot write {}: {err}", options.out.display()))?;
    Ok(0)
}

/// Makes markers until one shows up in the tracer's output; returns when that one made its
/// call, counted from `start`.
fn wait_for_first_marker(options: &Options, pid: u32, start: Duration) -> Result<Duration, String> {
    let mut output = LineReader::new(&options.watch);
    let mut made: Vec<Duration> = Vec::new();
    loop {
        if let Some(seen) = output
            .read_complete_lines()?
            .and_then(|lines| earliest_marker(&lines))
        {
            return made
                .get(seen)
                .copied()
                .ok_or_else(|| format!("the output names marker lm{seen}, which was never made"));
        }
        if monotonic() - start > options.timeout {
            return Err(format!(
                "no probe hit in {:?}: is the tracer attached?",
                options.timeout
            ));
        }
        if peak_rss::try_reap(pid)?.is_some() {
            return Err("the tracer exited before any probe hit showed up".into());
        }
        if made.len() == MAX_MARKERS {
            return Err(format!("{MAX_MARKERS} markers made and none seen"));
        }
        made.push(make_marker(made.len())? - start);
        thread::sleep(options.interval);
    }
}

/// Runs one marker thread; returns the time it made its socket call.
fn make_marker(number: usize) -> Result<Duration, String> {
    let name = CString::new(format!("lm{number}")).map_err(|err| err.to_string())?;
    let marker = thread::spawn(move || {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of which it keeps 15 bytes.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
        let made = monotonic();
        // SAFETY: plain system calls on a descriptor this thread owns.
        unsafe {
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0);
            if fd >= 0 {
                libc::close(fd);
            }
        }
        made
    });
    marker
        .join()
        .map_err(|_| "a marker thread panicked".to_string())
}

/// Sends SIGINT, the way a user stops a tracer, and reaps it; kills it if it lingers.
fn stop(pid: u32) -> Result<(u8, i64), String> {
    let raw = libc::pid_t::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    // SAFETY: raw is our own child, not yet reaped.
    unsafe { libc::kill(raw, libc::SIGINT) };
    let deadline = monotonic() + STOP_GRACE;
    loop {
        if let Some(reaped) = peak_rss::try_reap(pid)? {
            return Ok(reaped);
        }
        if monotonic() > deadline {
            // SAFETY: as above.
            unsafe { libc::kill(raw, libc::SIGKILL) };
            return peak_rss::wait_with_peak_rss(pid);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Reads a growing file a line at a time: a line still being written waits for the next call.
struct LineReader<'a> {
    path: &'a Path,
    offset: u64,
}

impl<'a> LineReader<'a> {
    fn new(path: &'a Path) -> Self {
        LineReader { path, offset: 0 }
    }

    /// The complete lines added since the last call, or None if there are none (or no file yet).
    fn read_complete_lines(&mut self) -> Result<Option<Vec<u8>>, String> {
        let mut file = match File::open(self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(format!("cannot read {}: {err}", self.path.display())),
        };
        let mut added = Vec::new();
        file.seek(SeekFrom::Start(self.offset))
            .and_then(|_| file.read_to_end(&mut added))
            .map_err(|err| format!("cannot read {}: {err}", self.path.display()))?;
        let Some(last_newline) = added.iter().rposition(|&b| b == b'\n') else {
            return Ok(None);
        };
        added.truncate(last_newline + 1);
        self.offset += added.len() as u64;
        Ok(Some(added))
    }
}

/// The lowest marker number named in `text`: `lm` and digits, as a word of their own
/// (not preceded by a letter, digit or `_`, not followed by a digit).
fn earliest_marker(text: &[u8]) -> Option<usize> {
    let word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    text.windows(2)
        .enumerate()
        .filter(|&(at, pair)| pair == b"lm" && (at == 0 || !word_byte(text[at - 1])))
        .filter_map(|(at, _)| {
            let digits: Vec<u8> = text[at + 2..]
                .iter()
                .copied()
                .take_while(u8::is_ascii_digit)
                .collect();
            std::str::from_utf8(&digits).ok()?.parse().ok()
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn finds_the_lowest_marker_in_each_tracers_format() {
        let rstap = b"     0 lm12(345): -> __sys_socket\n     3 lm7(346): -> sock_create\n";
        assert_eq!(earliest_marker(rstap), Some(7));
        let ftrace = b" 1)   lm41-518   |               |  __sys_socket() {\n";
        assert_eq!(earliest_marker(ftrace), Some(41));
        let bpftrace = b"     0 lm3(77):1 -> sock_alloc\n";
        assert_eq!(earliest_marker(bpftrace), Some(3));
    }

    #[test]
    fn ignores_lm_inside_words_and_without_digits() {
        assert_eq!(earliest_marker(b"  0 film3(1): -> x\n"), None);
        assert_eq!(earliest_marker(b"  0 lm(1): -> x\n"), None);
        assert_eq!(earliest_marker(b"lm0 first\n"), Some(0));
    }

    #[test]
    fn line_reader_returns_only_complete_new_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut reader = LineReader::new(&path);
        assert_eq!(reader.read_complete_lines().unwrap(), None);
        let mut file = File::create(&path).unwrap();
        file.write_all(b"a lm1\nb lm").unwrap();
        assert_eq!(
            reader.read_complete_lines().unwrap(),
            Some(b"a lm1\n".to_vec())
        );
        assert_eq!(reader.read_complete_lines().unwrap(), None);
        file.write_all(b"0\n").unwrap();
        assert_eq!(
            reader.read_complete_lines().unwrap(),
            Some(b"b lm0\n".to_vec())
        );
    }

    #[test]
    fn measures_a_tracer_that_reports_the_second_marker() {
        let dir = tempfile::tempdir().unwrap();
        let watch = dir.path().join("trace");
        let out = dir.path().join("result");
        // A stand-in tracer that becomes "live" after 100 ms, when marker lm1 or later runs.
        let script = format!(
            "sleep 0.1; echo ' 0 lm999(1): -> x' >{}; exec sleep 30",
            watch.display()
        );
        let options = Options {
            watch: watch.clone(),
            out: out.clone(),
            interval: Duration::from_millis(5),
            timeout: Duration::from_secs(10),
            command: vec!["sh".into(), "-c".into(), script.into()],
        };
        let err = run(&options).unwrap_err();
        assert!(err.contains("never made"), "{err}");
        std::fs::write(&watch, "").unwrap();

        let script = format!(
            "sleep 0.2; echo ' 0 lm1(1): -> x' >>{}; exec sleep 30",
            watch.display()
        );
        let options = Options {
            command: vec!["sh".into(), "-c".into(), script.into()],
            ..options
        };
        assert_eq!(run(&options).unwrap(), 0);
        let result = std::fs::read_to_string(&out).unwrap();
        let fields: Vec<&str> = result.split_whitespace().collect();
        let seconds: f64 = fields[0].parse().unwrap();
        let peak_kib: i64 = fields[1].parse().unwrap();
        assert!(seconds > 0.0 && seconds < 0.2, "{seconds}");
        assert!(peak_kib > 0);
    }
}
