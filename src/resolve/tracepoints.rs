//! Tracepoints: which the kernel has, as tracefs lists them (`available_events`), and how a
//! BPF program reaches each. Most are raw tracepoints, whose programs get the tracepoint's
//! own arguments (its `TP_PROTO`: `$prev`, `$next` of `sched_switch`), as SystemTap's
//! tracepoint probes do; the kernel's BTF says which. The others (the `syscalls:` events
//! ftrace makes) exist only as trace records, read field by field as tracefs's `format`
//! describes them.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::types::{KernelTypes, Parameter};

/// A tracepoint as tracefs names it: `sched:sched_switch`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TracepointName {
    pub system: String,
    pub event: String,
}

impl std::fmt::Display for TracepointName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.system, self.event)
    }
}

/// How a tracepoint's probes get its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TracepointAccess {
    /// A raw tracepoint: the program gets the tracepoint's arguments, these, typed by BTF.
    Raw(Vec<Parameter>),
    /// A trace record: the program gets the record tracefs describes, of this event id.
    Record { id: u64, fields: Vec<RecordField> },
}

/// The field a syscall tracepoint's record holds the call's number in, before its
/// arguments.
pub const SYSCALL_NUMBER_FIELD: &str = "__syscall_nr";

/// One field of a trace record, from tracefs's `format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordField {
    pub name: String,
    /// As the format declares it: `int`, `const char *`, `char[16]`.
    pub c_type: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
}

impl RecordField {
    /// Whether the field is a plain number or pointer, which rstap reads as a long; arrays
    /// and `__data_loc` strings are not read yet.
    pub fn is_scalar(&self) -> bool {
        matches!(self.size, 1 | 2 | 4 | 8)
            && !self.c_type.contains('[')
            && !self.c_type.contains("__data_loc")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TracepointError {
    #[error(
        "cannot find the kernel's tracepoints: tracefs is not mounted and could not be \
         mounted ({0}); mount it (mount -t tracefs nodev /sys/kernel/tracing) and run \
         rstap again"
    )]
    NoTracefs(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Format { path: String, problem: String },
}

/// Answers which tracepoints the kernel has and how to reach one; a trait so that planning
/// can be tested without a kernel.
pub trait Tracepoints {
    /// Every tracepoint, sorted.
    fn names(&mut self) -> Result<&[TracepointName], TracepointError>;
    /// How a probe reaches `name`.
    fn access(&mut self, name: &TracepointName) -> Result<TracepointAccess, TracepointError>;
}

/// The running kernel's tracepoints, through tracefs, opened when first asked.
pub struct KernelTracepoints<'t> {
    types: Option<&'t KernelTypes>,
    tracefs: Option<Tracefs>,
    names: Option<Vec<TracepointName>>,
}

impl<'t> KernelTracepoints<'t> {
    /// `types`, the kernel's BTF, tells raw tracepoints from records; without it every
    /// tracepoint is read as its record.
    pub fn new(types: Option<&'t KernelTypes>) -> Self {
        KernelTracepoints {
            types,
            tracefs: None,
            names: None,
        }
    }

    fn tracefs(&mut self) -> Result<&Tracefs, TracepointError> {
        if self.tracefs.is_none() {
            self.tracefs = Some(Tracefs::open()?);
        }
        Ok(self.tracefs.as_ref().expect("opened above"))
    }
}

impl Tracepoints for KernelTracepoints<'_> {
    fn names(&mut self) -> Result<&[TracepointName], TracepointError> {
        if self.names.is_none() {
            let path = self.tracefs()?.path("available_events");
            let text = read(&path)?;
            self.names = Some(parse_available_events(&text));
        }
        Ok(self.names.as_deref().unwrap_or_default())
    }

    fn access(&mut self, name: &TracepointName) -> Result<TracepointAccess, TracepointError> {
        if let Some(parameters) = self
            .types
            .and_then(|types| types.tracepoint_parameters(&name.event))
        {
            return Ok(TracepointAccess::Raw(parameters));
        }
        let directory = self
            .tracefs()?
            .path(&format!("events/{}/{}", name.system, name.event));
        let id_path = directory.join("id");
        let id_text = read_event_file(&id_path)?;
        let id = id_text
            .trim()
            .parse()
            .map_err(|_| TracepointError::Format {
                path: id_path.display().to_string(),
                problem: format!("{:?} is not an event id", id_text.trim()),
            })?;
        let format = read_event_file(&directory.join("format"))?;
        Ok(TracepointAccess::Record {
            id,
            fields: parse_format(&format),
        })
    }
}

/// Times an event's file is read before its absence is believed, and the pause between.
const EVENT_FILE_ATTEMPTS: u32 = 5;
const EVENT_FILE_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// A file of an event that `available_events` lists. The kernel's eventfs makes these
/// files when they are looked up, and while another mount of tracefs is taken down (another
/// rstap ending) a lookup can briefly find none: seen on 6.18 with two rstap processes
/// reading every syscall event. A missing file is looked for again before it is an error.
fn read_event_file(path: &Path) -> Result<String, TracepointError> {
    let mut attempt = 1;
    loop {
        match read(path) {
            Err(TracepointError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound
                    && attempt < EVENT_FILE_ATTEMPTS =>
            {
                attempt += 1;
                std::thread::sleep(EVENT_FILE_PAUSE);
            }
            result => return result,
        }
    }
}

fn read(path: &Path) -> Result<String, TracepointError> {
    std::fs::read_to_string(path).map_err(|source| TracepointError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// `available_events`: one `system:event` per line.
fn parse_available_events(text: &str) -> Vec<TracepointName> {
    let mut names: Vec<TracepointName> = text
        .lines()
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(system, event)| TracepointName {
            system: system.to_string(),
            event: event.to_string(),
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The fields of a `format` file past the `common_` ones every record starts with:
/// `field:int fd; offset:16; size:8; signed:0;` (tab-separated).
fn parse_format(text: &str) -> Vec<RecordField> {
    text.lines()
        .filter_map(|line| {
            let mut declaration = None;
            let (mut offset, mut size, mut signed) = (None, None, None);
            for part in line.trim().split(';') {
                let Some((key, value)) = part.trim().split_once(':') else {
                    continue;
                };
                match key {
                    "field" => declaration = Some(value.trim()),
                    "offset" => offset = value.parse().ok(),
                    "size" => size = value.parse().ok(),
                    "signed" => signed = Some(value == "1"),
                    _ => {}
                }
            }
            let declaration = declaration?;
            let (c_type, name) = split_declaration(declaration)?;
            Some(RecordField {
                name,
                c_type,
                offset: offset?,
                size: size?,
                signed: signed?,
            })
        })
        .filter(|field| !field.name.starts_with("common_"))
        .collect()
}

/// `struct sockaddr * uservaddr` into its type and name; `char comm[16]` into `char[16]`
/// and `comm`.
fn split_declaration(declaration: &str) -> Option<(String, String)> {
    // `char comm[16]` puts the array after the name; `__data_loc char[] name`, before.
    let (declarator, array) = match declaration.find('[') {
        Some(at) if declaration.ends_with(']') => (&declaration[..at], &declaration[at..]),
        _ => (declaration, ""),
    };
    let name_start = declarator
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |at| at + 1);
    let name = &declarator[name_start..];
    let base = declarator[..name_start].trim();
    if name.is_empty() || base.is_empty() {
        return None;
    }
    Some((format!("{base}{array}"), name.to_string()))
}

/// Where tracefs usually is; rstap mounts it in a directory of its own if it is not.
const TRACEFS_MOUNTS: &[&str] = &["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// A mounted tracefs, unmounted again on drop if rstap mounted it.
struct Tracefs {
    root: PathBuf,
    mounted_by_rstap: bool,
}

impl Tracefs {
    fn open() -> Result<Self, TracepointError> {
        if let Some(root) = mounted_tracefs() {
            return Ok(Tracefs {
                root,
                mounted_by_rstap: false,
            });
        }
        // Not in the system's usual place, so that nothing is left changed: a directory of
        // rstap's own, gone when it is done.
        let root =
            std::env::temp_dir().join(format!("{PRIVATE_MOUNT_PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&root)
            .map_err(|err| TracepointError::NoTracefs(format!("{}: {err}", root.display())))?;
        let target = CString::new(root.as_os_str().as_encoded_bytes())
            .map_err(|_| TracepointError::NoTracefs("temporary path has a NUL byte".into()))?;
        // SAFETY: all three strings are NUL-terminated and outlive the call; no data.
        let mounted = unsafe {
            libc::mount(
                c"nodev".as_ptr(),
                target.as_ptr(),
                c"tracefs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if mounted != 0 {
            let err = std::io::Error::last_os_error();
            let _ = std::fs::remove_dir(&root);
            return Err(TracepointError::NoTracefs(format!("mount: {err}")));
        }
        Ok(Tracefs {
            root,
            mounted_by_rstap: true,
        })
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }
}

impl Drop for Tracefs {
    fn drop(&mut self) {
        if !self.mounted_by_rstap {
            return;
        }
        if let Ok(target) = CString::new(self.root.as_os_str().as_encoded_bytes()) {
            // SAFETY: target is NUL-terminated; a detached unmount cannot be kept busy.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = std::fs::remove_dir(&self.root);
    }
}

/// The name of the directory rstap mounts tracefs in, followed by its process id.
const PRIVATE_MOUNT_PREFIX: &str = "rstap-tracefs-";

/// A tracefs the system has mounted: in /proc/self/mounts, or reachable at a usual place.
/// Another rstap's own mount is listed too, but it goes away when that rstap is done.
fn mounted_tracefs() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let listed = mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
        let point = PathBuf::from(unescape_mount_point(point));
        let private = point
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(PRIVATE_MOUNT_PREFIX));
        (kind == "tracefs" && !private).then_some(point)
    });
    listed
        .into_iter()
        .chain(TRACEFS_MOUNTS.iter().map(PathBuf::from))
        .find(|root| root.join("available_events").exists())
}

/// /proc/mounts writes a space in a path as `\040` (octal escapes for space, tab, newline
/// and backslash).
fn unescape_mount_point(point: &str) -> String {
    let mut out = String::with_capacity(point.len());
    let mut rest = point;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4);
        match code.and_then(|digits| u8::from_str_radix(digits, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_events_are_split_and_sorted() {
        let names = parse_available_events("sock:inet_sock_set_state\nsched:sched_switch\n\n");
        let shown: Vec<String> = names.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["sched:sched_switch", "sock:inet_sock_set_state"]);
    }

    #[test]
    fn a_syscall_events_format_gives_its_fields_past_the_common_ones() {
        let format = "name: sys_enter_connect\nID: 1546\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
            \tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:struct sockaddr * uservaddr;\toffset:24;\tsize:8;\tsigned:0;\n\
            \tfield:char comm[16];\toffset:32;\tsize:16;\tsigned:0;\n\
            \tfield:__data_loc char[] name;\toffset:48;\tsize:4;\tsigned:0;\n\
            \nprint fmt: \"fd: 0x%08lx\", ((unsigned long)(REC->fd))\n";
        let fields = parse_format(format);
        let summary: Vec<(&str, &str, u32, u32, bool, bool)> = fields
            .iter()
            .map(|f| {
                let scalar = f.is_scalar();
                (
                    f.name.as_str(),
                    f.c_type.as_str(),
                    f.offset,
                    f.size,
                    f.signed,
                    scalar,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("__syscall_nr", "int", 8, 4, true, true),
                ("fd", "int", 16, 8, false, true),
                ("uservaddr", "struct sockaddr *", 24, 8, false, true),
                ("comm", "char[16]", 32, 16, false, false),
                ("name", "__data_loc char[]", 48, 4, false, false),
            ]
        );
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount_point("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(
            unescape_mount_point("/sys/kernel/tracing"),
            "/sys/kernel/tracing"
        );
        assert_eq!(unescape_mount_point("/odd\\x"), "/odd\\x");
    }
}
