//! Facts about the machine rstap runs on that scripts can ask for: the kernel's release and
//! build configuration (`%( CONFIG_HZ ... %)`, `HZ()`), its tick count (`jiffies()`), the
//! local time zone (`tz_ctime()`) and rstap's own process (`uid()` in a `begin` probe).

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

/// `uname -r`, e.g. `6.12.118+deb13-cloud-amd64`; "" if /proc cannot tell.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|release| release.trim().to_string())
        .unwrap_or_default()
}

/// Where the running kernel's build configuration may be, in the order they are tried.
fn kernel_config_paths(release: &str) -> [String; 2] {
    [format!("/boot/config-{release}"), "/proc/config.gz".into()]
}

/// The running kernel's build configuration, `CONFIG_NAME` to its value (quotes removed),
/// read when first asked for and kept; empty if neither Debian's /boot file nor the
/// kernel's own /proc/config.gz can be read.
pub fn kernel_config() -> &'static HashMap<String, String> {
    static CONFIG: OnceLock<HashMap<String, String>> = OnceLock::new();
    CONFIG.get_or_init(|| read_kernel_config(&kernel_release()))
}

fn read_kernel_config(release: &str) -> HashMap<String, String> {
    let [boot, proc] = kernel_config_paths(release);
    let text = std::fs::read_to_string(boot).ok().or_else(|| {
        let mut text = String::new();
        let file = std::fs::File::open(proc).ok()?;
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    });
    parse_config(&text.unwrap_or_default())
}

pub fn parse_config(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_string(), value.trim_matches('"').to_string()))
        .collect()
}

/// The kernel's tick rate, its CONFIG_HZ.
pub fn kernel_hz() -> Result<i64, String> {
    kernel_config()
        .get("CONFIG_HZ")
        .and_then(|hz| hz.parse().ok())
        .filter(|&hz: &i64| hz > 0)
        .ok_or_else(|| {
            let [boot, proc] = kernel_config_paths(&kernel_release());
            format!("cannot tell the kernel's HZ: neither {boot} nor {proc} gives CONFIG_HZ")
        })
}

/// The kernel's `jiffies` at a CLOCK_MONOTONIC time, as /proc/timer_list shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickSample {
    pub monotonic_ns: i64,
    pub jiffies: i64,
}

pub fn tick_sample() -> Result<TickSample, String> {
    let text = std::fs::read_to_string("/proc/timer_list")
        .map_err(|err| format!("cannot read /proc/timer_list for the kernel's jiffies: {err}"))?;
    parse_tick_sample(&text).ok_or_else(|| "/proc/timer_list shows no jiffies".to_string())
}

fn parse_tick_sample(text: &str) -> Option<TickSample> {
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    };
    Some(TickSample {
        monotonic_ns: field("now at ")?,
        jiffies: field("jiffies: ")?,
    })
}

/// The local time zone as the C library sees it now: seconds west of UTC (SystemTap's
/// `tz_gmtoff()`) and its abbreviation.
pub fn local_time_zone() -> (i64, String) {
    // SAFETY: time(NULL) only reads the clock; localtime_r writes the tm it is given, and
    // tm_zone then points at a static, NUL-terminated abbreviation (or is null).
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return (0, "UTC".into());
        }
        let name = if tm.tm_zone.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(tm.tm_zone)
                .to_string_lossy()
                .into_owned()
        };
        (-tm.tm_gmtoff, name)
    }
}

/// rstap's own process, which `begin`, `end` and timer probes run in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnProcess {
    pub uid: i64,
    pub gid: i64,
    pub euid: i64,
    pub egid: i64,
    pub ppid: i64,
    /// The parent's comm.
    pub parent_name: String,
}

pub fn own_process() -> OwnProcess {
    // SAFETY: these calls have no failure mode and touch no memory.
    let (uid, gid, euid, egid, ppid) = unsafe {
        (
            libc::getuid(),
            libc::getgid(),
            libc::geteuid(),
            libc::getegid(),
            libc::getppid(),
        )
    };
    OwnProcess {
        uid: i64::from(uid),
        gid: i64::from(gid),
        euid: i64::from(euid),
        egid: i64::from(egid),
        ppid: i64::from(ppid),
        parent_name: std::fs::read_to_string(format!("/proc/{ppid}/comm"))
            .map(|comm| comm.trim_end().to_string())
            .unwrap_or_default(),
    }
}

/// A process's memory in pages, as /proc/PID/statm gives it; zeros for a process that
/// is gone.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProcessPages {
    pub size: i64,
    pub resident: i64,
    pub shared: i64,
}

pub fn process_pages(pid: i64) -> ProcessPages {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    parse_statm(&text).unwrap_or_default()
}

fn parse_statm(text: &str) -> Option<ProcessPages> {
    let mut fields = text.split_whitespace().map(str::parse::<i64>);
    Some(ProcessPages {
        size: fields.next()?.ok()?,
        resident: fields.next()?.ok()?,
        shared: fields.next()?.ok()?,
    })
}

/// A process's arguments separated by spaces, as /proc/PID/cmdline holds them; empty
/// for a process that is gone.
pub fn process_arguments(pid: i64) -> String {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    bytes
        .split(|&byte| byte == 0)
        .filter(|argument| !argument.is_empty())
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// How many file descriptors a process has open; 0 for a process that is gone.
pub fn open_files(pid: i64) -> i64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count() as i64)
}

/// The `bytes` (at most 8) at `address` in process `pid`'s memory, as a native-endian
/// number zero-extended; `None` where the process is gone or the address is not mapped.
pub fn process_memory(pid: i64, address: u64, bytes: usize) -> Option<u64> {
    let mut buffer = [0u8; 8];
    let length = bytes.min(buffer.len());
    let local = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: length,
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: length,
    };
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: `local` describes `buffer`, which outlives the call; the kernel checks
    // `remote` against the other process's mappings and writes at most `length` bytes.
    let read = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    (usize::try_from(read).ok()? == length).then(|| u64::from_ne_bytes(buffer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_memory_reads_a_process_and_refuses_unmapped_addresses() {
        let value: u32 = 0xfeed_beef;
        let pid = i64::from(std::process::id());
        let address = std::ptr::addr_of!(value) as u64;
        assert_eq!(process_memory(pid, address, 4), Some(0xfeed_beef));
        assert_eq!(process_memory(pid, address, 2), Some(0xbeef));
        assert_eq!(process_memory(pid, 8, 4), None);
    }

    #[test]
    fn timer_list_gives_time_and_jiffies() {
        let text = "Timer List Version: v0.9\nHRTIMER_MAX_CLOCK_BASES: 8\nnow at 394498808202 nsecs\n\ncpu: 0\n  .last_jiffies   : 4294990840\njiffies: 4294991439\n";
        assert_eq!(
            parse_tick_sample(text),
            Some(TickSample {
                monotonic_ns: 394_498_808_202,
                jiffies: 4_294_991_439
            })
        );
        assert_eq!(parse_tick_sample("now at 5 nsecs\n"), None);
    }

    #[test]
    fn config_values_lose_their_quotes() {
        let config = parse_config("# comment\nCONFIG_HZ=250\nCONFIG_LOCALVERSION=\"-x\"\n");
        assert_eq!(config["CONFIG_HZ"], "250");
        assert_eq!(config["CONFIG_LOCALVERSION"], "-x");
    }

    #[test]
    fn statm_gives_size_resident_and_shared_pages() {
        let pages = parse_statm("2520 1000 830 5 0 300 0\n").unwrap();
        assert_eq!(
            (pages.size, pages.resident, pages.shared),
            (2520, 1000, 830)
        );
        assert_eq!(parse_statm(""), None);
    }

    #[test]
    fn this_process_has_arguments_and_open_files() {
        let own = i64::from(std::process::id());
        let expected: Vec<String> = std::env::args().collect();
        assert_eq!(process_arguments(own), expected.join(" "));
        assert!(open_files(own) >= 3);
        assert!(process_pages(own).resident > 0);
        assert_eq!(process_pages(-1), ProcessPages::default());
    }

    #[test]
    fn own_process_is_this_one() {
        let own = own_process();
        // SAFETY: getppid has no failure mode.
        assert_eq!(own.ppid, i64::from(unsafe { libc::getppid() }));
        assert!(!own.parent_name.is_empty());
    }
}
