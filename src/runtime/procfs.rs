//! The files of procfs probes. SystemTap's kernel module adds them under
//! `/proc/systemtap/MODULE/`; a process cannot add files to `/proc`, so rstap serves each as
//! a named pipe (FIFO) in `/run/rstap/MODULE/`, which `cat` and `echo` use as they would
//! the procfs file.
//!
//! A read file is served when someone has it open for reading: opening a FIFO for writing
//! without blocking succeeds only then. rstap runs the file's read probes, writes what
//! they left in `$value` and closes, so the reader sees the text and then the end of the
//! file. A write file stays open for reading in rstap; each line written to it (or what is
//! left without a newline once the writer is done) runs its write probes once, as a
//! `write(2)` of a line to the procfs file would.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::resolve::plan::PlannedProcfs;
use crate::runtime::{Flow, RuntimeError};
use crate::script::ProcfsAccess;

/// Where rstap's procfs directories are made, one per run.
pub const PROCFS_ROOT: &str = "/run/rstap";

/// After serving a reader, rstap leaves the file alone this long: that reader may still
/// hold it open, and serving it twice would give it the text twice. A new reader waits
/// this long at most.
const SERVED_PAUSE: Duration = Duration::from_millis(50);

/// How long a reader that does not read may hold up rstap before it is given up on.
const READER_PATIENCE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ProcfsError {
    #[error("module name \"{0}\" (-m) may hold only letters, digits and `_`, at most 64 of them")]
    ModuleName(String),
    #[error(
        "{} already exists: another rstap run with module name \"{module}\" serves it, or one \
         was killed before it could remove it; remove it, or name this run with -m",
        .dir.display()
    )]
    Exists { dir: PathBuf, module: String },
    #[error("cannot make the procfs file {} for {point}", .path.display())]
    Create {
        path: PathBuf,
        point: String,
        source: io::Error,
    },
    #[error(
        "procfs file \"{path}\" has both read and write probes ({read} and {write}): rstap serves \
         procfs files as FIFOs, which carry data one way; give the reads and the writes \
         separate files"
    )]
    ReadAndWrite {
        path: String,
        read: String,
        write: String,
    },
}

/// A probe to run for one of the files.
struct FileProbe {
    probe: usize,
    point: String,
    value: Option<usize>,
}

enum Access {
    Read {
        /// At most this many bytes of the probes' text are given to a reader.
        max_bytes: usize,
        /// When the file may be served again.
        rest_until: Instant,
    },
    Write {
        /// rstap's own read end, open for the run.
        pipe: File,
        /// What a writer sent after its last newline.
        partial: Vec<u8>,
    },
}

struct ServedFile {
    path: PathBuf,
    probes: Vec<FileProbe>,
    access: Access,
}

/// A probe to run because a file was read or written.
pub struct ProcfsHit<'a> {
    pub probe: usize,
    /// The point as `pp()` gives it.
    pub point: &'a str,
    /// What was written, for a write probe; empty for a read.
    pub written: &'a [u8],
    /// The probe's string local that holds `$value`, whose text a read gives.
    pub value: Option<usize>,
}

/// What a probe run for a file did: how the session goes on, and its `$value`.
pub type HitOutcome = Result<(Flow, Vec<u8>), RuntimeError>;

/// The run's procfs files, removed with their directories when this is dropped.
pub struct ProcfsFiles {
    dir: PathBuf,
    files: Vec<ServedFile>,
    /// Directories made for paths with a `/`, parents first.
    made_dirs: Vec<PathBuf>,
    /// What went wrong while serving, for the session to report.
    warnings: Vec<String>,
    /// The longest line a write probe is given (MAXSTRINGLEN less its terminator).
    max_written: usize,
}

impl ProcfsFiles {
    /// Makes `root/module/` and a FIFO in it for each file `planned` names; None if it
    /// names none. `max_string_len` bounds a read's `$value` where no `.maxsize` does,
    /// and each write.
    pub fn create(
        root: &Path,
        module: &str,
        planned: &[PlannedProcfs],
        max_string_len: usize,
    ) -> Result<Option<Self>, ProcfsError> {
        if planned.is_empty() {
            return Ok(None);
        }
        check_module_name(module)?;
        let groups = grouped_by_path(planned)?;
        let dir = root.join(module);
        let create = |path: &Path, point: &str, source| ProcfsError::Create {
            path: path.to_path_buf(),
            point: point.to_string(),
            source,
        };
        let first = &planned[0].point;
        fs::create_dir_all(root).map_err(|e| create(root, first, e))?;
        match fs::create_dir(&dir) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(ProcfsError::Exists {
                    dir,
                    module: module.to_string(),
                })
            }
            result => result.map_err(|e| create(&dir, first, e))?,
        }
        let mut files = ProcfsFiles {
            dir,
            files: Vec::new(),
            made_dirs: Vec::new(),
            warnings: Vec::new(),
            max_written: max_string_len.saturating_sub(1).max(1),
        };
        for (path, group) in groups {
            let full = files.dir.join(path);
            let point = &group[0].point;
            files
                .make_parents(path)
                .map_err(|e| create(&full, point, e))?;
            let served = files
                .make_file(&full, &group, max_string_len)
                .map_err(|e| create(&full, point, e))?;
            files.files.push(served);
        }
        Ok(Some(files))
    }

    /// The directory that holds the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What went wrong while serving since the last call.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Serves the readers and writers waiting now: runs each of their probes through
    /// `run`, gives readers the text. Stops at the first probe that ends the session.
    pub fn serve(
        &mut self,
        mut run: impl FnMut(&ProcfsHit) -> HitOutcome,
    ) -> Result<Flow, RuntimeError> {
        let mut warnings = Vec::new();
        for file in &mut self.files {
            let flow = match &mut file.access {
                Access::Read {
                    max_bytes,
                    rest_until,
                } => serve_reader(
                    &file.path,
                    &file.probes,
                    *max_bytes,
                    rest_until,
                    &mut run,
                    &mut warnings,
                ),
                Access::Write { pipe, partial } => serve_writers(
                    &file.probes,
                    pipe,
                    partial,
                    self.max_written,
                    &mut run,
                    &mut warnings,
                ),
            };
            if !matches!(flow, Ok(Flow::Continue)) {
                self.warnings.append(&mut warnings);
                return flow;
            }
        }
        self.warnings.append(&mut warnings);
        Ok(Flow::Continue)
    }

    fn make_parents(&mut self, path: &str) -> io::Result<()> {
        let mut dir = self.dir.clone();
        let Some((parents, _)) = path.rsplit_once('/') else {
            return Ok(());
        };
        for name in parents.split('/') {
            dir.push(name);
            if !self.made_dirs.contains(&dir) {
                fs::create_dir(&dir)?;
                self.made_dirs.push(dir.clone());
            }
        }
        Ok(())
    }

    fn make_file(
        &self,
        path: &Path,
        group: &[&PlannedProcfs],
        max_string_len: usize,
    ) -> io::Result<ServedFile> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
        // SAFETY: c_path is a NUL-terminated path that outlives the call.
        if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let access = group[0].access;
        // SystemTap's modes: 0400 for reading and 0200 for writing, or the umask's
        // complement of 0444 or 0222 where the point gives one.
        let (all, owner) = match access {
            ProcfsAccess::Read => (0o444, 0o400),
            ProcfsAccess::Write => (0o222, 0o200),
        };
        let mode = group
            .iter()
            .filter_map(|p| p.umask)
            .map(|umask| all & !umask)
            .fold(owner, |mode, other| mode | other);
        fs::set_permissions(path, Permissions::from_mode(mode))?;
        let probes = group
            .iter()
            .map(|p| FileProbe {
                probe: p.probe,
                point: p.point.clone(),
                value: p.value,
            })
            .collect();
        let access = match access {
            ProcfsAccess::Read => Access::Read {
                max_bytes: group
                    .iter()
                    .filter_map(|p| p.maxsize)
                    .max()
                    .map_or(max_string_len.saturating_sub(1), |max| {
                        usize::try_from(max).unwrap_or(usize::MAX)
                    }),
                rest_until: Instant::now(),
            },
            ProcfsAccess::Write => Access::Write {
                pipe: OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(path)?,
                partial: Vec::new(),
            },
        };
        Ok(ServedFile {
            path: path.to_path_buf(),
            probes,
            access,
        })
    }
}

impl Drop for ProcfsFiles {
    fn drop(&mut self) {
        // Nothing of the run is left behind: the files, the directories made for them,
        // and the root if no other run uses it.
        for file in &self.files {
            let _ = fs::remove_file(&file.path);
        }
        for dir in self.made_dirs.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
        let _ = fs::remove_dir(&self.dir);
        if let Some(root) = self.dir.parent() {
            let _ = fs::remove_dir(root);
        }
    }
}

/// SystemTap's module names: letters, digits and underscores.
fn check_module_name(module: &str) -> Result<(), ProcfsError> {
    let valid = !module.is_empty()
        && module.len() <= 64
        && module
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(ProcfsError::ModuleName(module.to_string()))
    }
}

/// The planned points by file, in the order each file first appears; a file read and
/// written is refused.
fn grouped_by_path(
    planned: &[PlannedProcfs],
) -> Result<Vec<(&str, Vec<&PlannedProcfs>)>, ProcfsError> {
    let mut groups: Vec<(&str, Vec<&PlannedProcfs>)> = Vec::new();
    for point in planned {
        match groups.iter_mut().find(|(path, _)| *path == point.path) {
            Some((_, group)) => {
                if let Some(other) = group.iter().find(|p| p.access != point.access) {
                    let (read, write) = match point.access {
                        ProcfsAccess::Read => (point, *other),
                        ProcfsAccess::Write => (*other, point),
                    };
                    return Err(ProcfsError::ReadAndWrite {
                        path: point.path.clone(),
                        read: read.point.clone(),
                        write: write.point.clone(),
                    });
                }
                group.push(point);
            }
            None => groups.push((&point.path, vec![point])),
        }
    }
    Ok(groups)
}

/// Serves a reader of a read file if one is waiting: the probes' text, then the end.
fn serve_reader(
    path: &Path,
    probes: &[FileProbe],
    max_bytes: usize,
    rest_until: &mut Instant,
    run: &mut impl FnMut(&ProcfsHit) -> HitOutcome,
    warnings: &mut Vec<String>,
) -> Result<Flow, RuntimeError> {
    if Instant::now() < *rest_until {
        return Ok(Flow::Continue);
    }
    let mut pipe = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(pipe) => pipe,
        // No reader.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(Flow::Continue),
        Err(e) => {
            warnings.push(format!("cannot serve {}: {e}", path.display()));
            return Ok(Flow::Continue);
        }
    };
    let mut text = Vec::new();
    let mut flow = Flow::Continue;
    for probe in probes {
        let (ran, value) = run(&ProcfsHit {
            probe: probe.probe,
            point: &probe.point,
            written: b"",
            value: probe.value,
        })?;
        text.extend_from_slice(&value);
        if ran != Flow::Continue {
            flow = ran;
            break;
        }
    }
    text.truncate(max_bytes);
    if let Err(e) = write_within(&mut pipe, &text, Instant::now() + READER_PATIENCE) {
        // A reader that left early (EPIPE) has what it wanted.
        if e.kind() != ErrorKind::BrokenPipe {
            warnings.push(format!("cannot give {} its text: {e}", path.display()));
        }
    }
    drop(pipe);
    *rest_until = Instant::now() + SERVED_PAUSE;
    Ok(flow)
}

/// Writes all of `text` to a pipe opened without blocking, waiting for the reader to make
/// room until `deadline`.
fn write_within(pipe: &mut File, mut text: &[u8], deadline: Instant) -> io::Result<()> {
    while !text.is_empty() {
        match pipe.write(text) {
            Ok(n) => text = &text[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        ErrorKind::TimedOut,
                        "the reader stopped reading",
                    ));
                }
                let mut wait = libc::pollfd {
                    fd: pipe.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                let millis = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
                // SAFETY: one valid pollfd, for the duration of the call.
                unsafe { libc::poll(&mut wait, 1, millis) };
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Runs a write file's probes once per line its writers sent; what follows the last
/// newline waits for more, unless no writer is left.
fn serve_writers(
    probes: &[FileProbe],
    pipe: &mut File,
    partial: &mut Vec<u8>,
    max_line: usize,
    run: &mut impl FnMut(&ProcfsHit) -> HitOutcome,
    warnings: &mut Vec<String>,
) -> Result<Flow, RuntimeError> {
    let mut chunk = [0u8; 4096];
    let writers_done = loop {
        match pipe.read(&mut chunk) {
            // No writer has it open.
            Ok(0) => break true,
            Ok(n) => partial.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                warnings.push(format!("cannot read what was written: {e}"));
                break false;
            }
        }
    };
    let lines = split_writes(partial, max_line, writers_done);
    for line in &lines {
        for probe in probes {
            let (flow, _) = run(&ProcfsHit {
                probe: probe.probe,
                point: &probe.point,
                written: line,
                value: probe.value,
            })?;
            if flow != Flow::Continue {
                return Ok(flow);
            }
        }
    }
    Ok(Flow::Continue)
}

/// Takes the complete writes out of `pending`: each line with its newline, cut into
/// pieces of at most `max_line` bytes; the rest too if `all`.
fn split_writes(pending: &mut Vec<u8>, max_line: usize, all: bool) -> Vec<Vec<u8>> {
    let mut writes = Vec::new();
    let mut start = 0;
    while start < pending.len() {
        let rest = &pending[start..];
        let end = match rest.iter().position(|&b| b == b'\n') {
            Some(newline) => newline + 1,
            None if all || rest.len() >= max_line => rest.len(),
            None => break,
        };
        let end = end.min(max_line);
        writes.push(rest[..end].to_vec());
        start += end;
    }
    pending.drain(..start);
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(probe: usize, path: &str, access: ProcfsAccess) -> PlannedProcfs {
        let suffix = match access {
            ProcfsAccess::Read => "read",
            ProcfsAccess::Write => "write",
        };
        PlannedProcfs {
            probe,
            point: format!("procfs(\"{path}\").{suffix}"),
            path: path.to_string(),
            access,
            umask: None,
            maxsize: None,
            value: Some(0),
        }
    }

    #[test]
    fn writes_are_split_into_lines_and_the_rest_waits() {
        let mut pending = b"12\n345\n67".to_vec();
        assert_eq!(
            split_writes(&mut pending, 100, false),
            [b"12\n".to_vec(), b"345\n".to_vec()]
        );
        assert_eq!(pending, b"67");
        assert_eq!(split_writes(&mut pending, 100, true), [b"67".to_vec()]);
        assert!(pending.is_empty());
        let mut long = b"abcdefg\n".to_vec();
        assert_eq!(
            split_writes(&mut long, 3, false),
            [b"abc".to_vec(), b"def".to_vec(), b"g\n".to_vec()]
        );
    }

    #[test]
    fn a_file_both_read_and_written_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let both = [
            planned(0, "ctl", ProcfsAccess::Read),
            planned(1, "ctl", ProcfsAccess::Write),
        ];
        let err = ProcfsFiles::create(root.path(), "stap_t", &both, 256)
            .err()
            .unwrap();
        assert!(matches!(err, ProcfsError::ReadAndWrite { .. }), "{err}");
        assert!(ProcfsFiles::create(root.path(), "bad-name", &both[..1], 256).is_err());
    }

    #[test]
    fn files_are_served_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let points = [
            planned(0, "stats/now", ProcfsAccess::Read),
            planned(1, "block", ProcfsAccess::Write),
        ];
        let mut files = ProcfsFiles::create(root.path(), "stap_t", &points, 256)
            .unwrap()
            .unwrap();
        let read_path = files.dir().join("stats/now");
        let mode = fs::metadata(&read_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        assert!(ProcfsFiles::create(root.path(), "stap_t", &points, 256).is_err());

        // A reader blocks in open until rstap serves it.
        let reader = std::thread::spawn(move || fs::read_to_string(read_path).unwrap());
        let mut written = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut served = 0;
        while !reader.is_finished() {
            assert!(Instant::now() < deadline, "the reader was never served");
            files
                .serve(|hit| {
                    if hit.probe == 0 {
                        served += 1;
                        Ok((Flow::Continue, b"42\n".to_vec()))
                    } else {
                        written.push(hit.written.to_vec());
                        Ok((Flow::Continue, Vec::new()))
                    }
                })
                .unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(reader.join().unwrap(), "42\n");
        assert_eq!(served, 1);

        fs::write(files.dir().join("block"), b"123\n456").unwrap();
        files
            .serve(|hit| {
                written.push(hit.written.to_vec());
                Ok((Flow::Continue, Vec::new()))
            })
            .unwrap();
        assert_eq!(written, [b"123\n".to_vec(), b"456".to_vec()]);
        assert!(files.take_warnings().is_empty());

        let dir = files.dir().to_path_buf();
        drop(files);
        assert!(!dir.exists());
    }
}
