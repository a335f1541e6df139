//! Boots each kernel once per test binary and runs every scenario in that boot.
//!
//! The heavy lifting is in the scripts under `vm/` (shared with the user's `vm/rstap-vm`):
//! `fetch-kernel.sh` caches Debian's kernel, `build-initramfs.sh` packs busybox, rstap, the
//! socket workload, the ftrace oracle and the scenarios, and `boot.sh` runs qemu and unpacks
//! the results the guest sends back. This module writes the scenarios and the guest-side
//! runner, and turns the results into `ScenarioResult`s.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Per-scenario limit unless a scenario sets its own: generous, since TCG is slow.
const DEFAULT_TIMEOUT_SECONDS: u32 = 180;

/// Time for qemu, the kernel and the guest's init on top of the scenarios' own limits.
const BOOT_ALLOWANCE_SECONDS: u32 = 120;

/// Guest memory: what the notes found enough for a busybox guest with rstap.
const GUEST_MEMORY_MB: u32 = 2048;

/// Guest memory with the debug vmlinux: it is unpacked into RAM (590 MB) from an initramfs
/// that also stays in RAM until unpacked.
const GUEST_MEMORY_WITH_DEBUGINFO_MB: u32 = 4096;

/// Runs each scenario in /scenarios/list ("NAME TIMEOUT_SECONDS" lines) in a session of its
/// own, so that its timeout kills everything it started, and records what it left behind.
const RUNNER: &str = r#"#!/bin/sh
while read -r name limit; do
    dir=$RESULTS/scenarios/$name
    mkdir -p "$dir/files"
    read -r start _ </proc/uptime
    # For the host, which stops a guest stuck past a scenario's limit (see vm/boot.sh).
    echo "rstap-vm: scenario $name started, limit ${limit}s"
    (cd "$dir/files" && OUT=$dir/files exec setsid sh "/scenarios/$name.sh" \
        >"$dir/stdout" 2>"$dir/stderr" </dev/null) &
    pid=$!
    (sleep "$limit" && touch "$dir/timed-out" && kill -KILL -"$pid") 2>/dev/null &
    watchdog=$!
    wait "$pid"
    echo $? >"$dir/status"
    kill "$watchdog" 2>/dev/null
    read -r end _ </proc/uptime
    echo "$start $end" >"$dir/uptime"
    echo "rstap-vm: scenario $name ended with status $(cat "$dir/status")"
done </scenarios/list
"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    V6_1,
    V6_12,
}

impl Kernel {
    /// The version `vm/fetch-kernel.sh` takes.
    fn version(self) -> &'static str {
        match self {
            Kernel::V6_1 => "6.1",
            Kernel::V6_12 => "6.12",
        }
    }

    fn index(self) -> usize {
        match self {
            Kernel::V6_1 => 0,
            Kernel::V6_12 => 1,
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kernel {}", self.version())
    }
}

/// A shell script run in the guest as root, in an empty working directory that `$OUT` also
/// names; whatever it writes there comes back as the result's files. `rstap`,
/// `socket-workload` and `ftrace-count.sh` are on its PATH.
pub struct Scenario {
    pub name: &'static str,
    pub script: String,
    pub timeout_seconds: u32,
    /// Whether the kernel's DWARF vmlinux must be at /usr/lib/debug/boot/vmlinux-RELEASE;
    /// if any scenario wants it, the boot carries it for all of them.
    pub debuginfo: bool,
    /// The one kernel to run on, for scenarios that are not about both.
    pub only_on: Option<Kernel>,
    /// Files the scenario needs in the guest: each guest path with what gives its host
    /// file, called only by a boot that carries the scenario (so that a costly file is not
    /// made for nothing). The boot carries them for all its scenarios.
    pub files: Vec<(String, HostFile)>,
}

/// Gives a host file for a scenario (see [`Scenario::with_file`]), or says why not.
pub type HostFile = Box<dyn Fn() -> Result<PathBuf, String>>;

impl Scenario {
    pub fn new(name: &'static str, script: impl Into<String>) -> Self {
        Scenario {
            name,
            script: script.into(),
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            debuginfo: false,
            only_on: None,
            files: Vec::new(),
        }
    }

    /// A scenario that runs `script` on two rounds of the socket workload, leaving rstap's
    /// output in `trace` and the workload's report in `report` (see
    /// [`check_workload_trace`]).
    pub fn on_workload(name: &'static str, script: &str) -> Self {
        Scenario::new(
            name,
            format!(
                "cat >{name}.stp <<'EOF'\n{script}\nEOF\n\
                 rstap -o trace -c \"socket-workload --rounds 2 --report $OUT/report\" \
                     {name}.stp"
            ),
        )
    }

    pub fn only_on(self, kernel: Kernel) -> Self {
        Scenario {
            only_on: Some(kernel),
            ..self
        }
    }

    pub fn with_debuginfo(self) -> Self {
        Scenario {
            debuginfo: true,
            ..self
        }
    }

    /// Puts the host file that `host` gives at `guest` (an absolute path) in the guest;
    /// the boot fails with the error `host` returns.
    pub fn with_file(
        mut self,
        guest: impl Into<String>,
        host: impl Fn() -> Result<PathBuf, String> + 'static,
    ) -> Self {
        self.files.push((guest.into(), Box::new(host)));
        self
    }

    pub fn with_timeout(self, timeout_seconds: u32) -> Self {
        Scenario {
            timeout_seconds,
            ..self
        }
    }
}

/// What one scenario did in the guest.
#[derive(Debug)]
pub struct ScenarioResult {
    pub stdout: String,
    pub stderr: String,
    /// The script's exit status; 137 (SIGKILL) when it timed out.
    pub status: i32,
    pub timed_out: bool,
    /// Guest-clock seconds the scenario took.
    pub seconds: f64,
    files: PathBuf,
}

impl ScenarioResult {
    /// The text of a file the scenario wrote to `$OUT`.
    pub fn file(&self, name: &str) -> String {
        String::from_utf8(self.file_bytes(name))
            .unwrap_or_else(|e| panic!("{name} is not UTF-8: {e}\n{}", self.describe()))
    }

    /// The contents of a file the scenario wrote to `$OUT`.
    pub fn file_bytes(&self, name: &str) -> Vec<u8> {
        let path = self.files.join(name);
        fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), self.describe()))
    }

    /// The contents of a file the scenario wrote to `$OUT`, or None if it wrote none.
    pub fn file_if_present(&self, name: &str) -> Option<Vec<u8>> {
        fs::read(self.files.join(name)).ok()
    }

    /// Panics, showing the scenario's output, unless it exited 0 in time.
    pub fn assert_success(&self) {
        assert!(
            !self.timed_out && self.status == 0,
            "scenario failed: {}",
            self.describe()
        );
    }

    /// What rstap's `WARNING: N events lost` said, or 0 without one.
    pub fn lost_events(&self) -> u64 {
        warning_count(&self.stderr, "events lost")
    }

    /// What rstap's `WARNING: N probe hits missed` said, or 0 without one.
    pub fn missed_hits(&self) -> u64 {
        warning_count(&self.stderr, "probe hits missed")
    }

    pub fn describe(&self) -> String {
        format!(
            "status {}{}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status,
            if self.timed_out { " (timed out)" } else { "" },
            self.stdout,
            self.stderr
        )
    }
}

/// The N of the warning `WARNING: N PHRASE`, or 0 without one.
fn warning_count(stderr: &str, phrase: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("WARNING: "))
        .filter_map(|rest| rest.split_once(' '))
        .filter(|(_, rest)| rest.starts_with(phrase))
        .map(|(count, _)| {
            count
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("WARNING: {count} {phrase}"))
        })
        .sum()
}

/// One boot of one kernel, with the results of every scenario.
pub struct GuestRun {
    pub kernel: Kernel,
    /// The `uname -r` of the kernel that was fetched and booted.
    pub release: String,
    /// Guest-clock seconds from kernel start to the init script's shell.
    pub boot_seconds: f64,
    /// The host copy of the debug vmlinux the guest has, when a scenario asked for it.
    pub vmlinux: Option<PathBuf>,
    scenarios: BTreeMap<String, ScenarioResult>,
}

impl GuestRun {
    /// The host copy of the guest's debug vmlinux, mapped; panics if no scenario asked for it.
    pub fn map_vmlinux(&self) -> memmap2::Mmap {
        let path = self.vmlinux.as_ref().expect("the boot carries the vmlinux");
        let file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // SAFETY: the cached vmlinux is not modified while the tests run.
        unsafe { memmap2::Mmap::map(&file) }.unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn scenario(&self, name: &str) -> &ScenarioResult {
        self.scenarios
            .get(name)
            .unwrap_or_else(|| panic!("{}: no scenario named {name} ran", self.kernel))
    }
}

/// Why a boot produced no results.
enum Failure {
    /// The machine cannot run the VM (no qemu, no kernel to be had): a skip outside CI.
    Unavailable(String),
    /// The VM ran and something in it or in the harness went wrong: always a failure.
    Broken(String),
}

/// The one boot of `kernel` for this test binary, or None (with a note on stderr) when
/// the VM cannot run here and `CI` is not `true`.
/// Checks what a [`Scenario::on_workload`] left with `check(trace, report, described)`.
pub fn check_workload_trace(kernel: Kernel, name: &str, check: fn(&str, &str, &str)) {
    let Some(vm) = guest(kernel) else { return };
    let result = vm.scenario(name);
    result.assert_success();
    check(
        &result.file("trace"),
        &result.file("report"),
        &result.describe(),
    );
}

pub fn guest(kernel: Kernel) -> Option<&'static GuestRun> {
    static RUNS: [OnceLock<Result<GuestRun, Failure>>; 2] = [OnceLock::new(), OnceLock::new()];
    let boot_once = || {
        let scenarios: Vec<Scenario> = crate::all_scenarios()
            .into_iter()
            .filter(|s| s.only_on.is_none_or(|only| only == kernel))
            .collect();
        boot(kernel, &scenarios)
    };
    match RUNS[kernel.index()].get_or_init(boot_once) {
        Ok(run) => Some(run),
        Err(Failure::Broken(why)) => panic!("{kernel}: {why}"),
        Err(Failure::Unavailable(why)) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{kernel}: the VM cannot run: {why}");
            }
            eprintln!("skipped: {kernel}: the VM cannot run here: {why}");
            None
        }
    }
}

/// Runs a command and returns its stdout, or a message with its stderr.
fn run(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_string())
    } else {
        Err(format!(
            "{command:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(REPO).join("vm").join(name)
}

fn check_names(scenarios: &[Scenario]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for scenario in scenarios {
        let name = scenario.name;
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(format!("scenario name {name:?}: use [a-z0-9_-] only"));
        }
        if !seen.insert(name) {
            return Err(format!("two scenarios are named {name}"));
        }
    }
    Ok(())
}

fn boot(kernel: Kernel, scenarios: &[Scenario]) -> Result<GuestRun, Failure> {
    check_names(scenarios).map_err(Failure::Broken)?;
    run(Command::new("qemu-system-x86_64").arg("--version"))
        .map_err(|e| Failure::Unavailable(format!("no usable qemu ({e})")))?;
    let debuginfo = scenarios.iter().any(|s| s.debuginfo);
    let mut fetch = Command::new(script("fetch-kernel.sh"));
    fetch.arg(kernel.version());
    if debuginfo {
        fetch.arg("--debuginfo");
    }
    let kernel_dir = run(&mut fetch)
        .map(PathBuf::from)
        .map_err(|e| Failure::Unavailable(format!("no kernel: {e}")))?;
    let release = fs::read_to_string(kernel_dir.join("release"))
        .map_err(|e| Failure::Broken(format!("{}: {e}", kernel_dir.display())))?
        .trim()
        .to_string();
    let workload = crate::workload::socket_workload().map_err(Failure::Broken)?;

    let files: Vec<(PathBuf, String)> = scenarios
        .iter()
        .flat_map(|s| &s.files)
        .map(|(guest, host)| {
            host()
                .map(|host| (host, guest.clone()))
                .map_err(|e| Failure::Broken(format!("no host file for {guest}: {e}")))
        })
        .collect::<Result<_, _>>()?;

    let work = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("vm")
        .join(kernel.version());
    prepare(&work, scenarios).map_err(|e| Failure::Broken(format!("{}: {e}", work.display())))?;

    let mut initramfs = Command::new(script("build-initramfs.sh"));
    initramfs
        .arg("-o")
        .arg(work.join("initrd.gz"))
        .arg("-s")
        .arg(work.join("runner.sh"));
    let adds = [
        (
            PathBuf::from(env!("CARGO_BIN_EXE_rstap")),
            "/usr/local/bin/rstap".to_string(),
        ),
        (
            workload.to_path_buf(),
            "/usr/local/bin/socket-workload".to_string(),
        ),
        (
            script("guest/ftrace-count.sh"),
            "/usr/local/bin/ftrace-count.sh".to_string(),
        ),
        (work.join("scenarios/list"), "/scenarios/list".to_string()),
        // Where a distribution keeps it: scripts ask it for HZ, tests for what to expect.
        (kernel_dir.join("config"), format!("/boot/config-{release}")),
    ]
    .into_iter()
    .chain(scenarios.iter().map(|s| {
        let file = format!("{}.sh", s.name);
        (
            work.join("scenarios").join(&file),
            format!("/scenarios/{file}"),
        )
    }))
    .chain(files);
    for (host, guest) in adds {
        initramfs
            .arg("-a")
            .arg(format!("{}:{guest}", host.display()));
    }
    let vmlinux = debuginfo.then(|| kernel_dir.join("vmlinux"));
    if let Some(vmlinux) = &vmlinux {
        initramfs.arg("-r").arg(format!(
            "{}:/usr/lib/debug/boot/vmlinux-{release}",
            vmlinux.display()
        ));
    }
    run(&mut initramfs).map_err(Failure::Broken)?;

    let timeout: u32 =
        BOOT_ALLOWANCE_SECONDS + scenarios.iter().map(|s| s.timeout_seconds).sum::<u32>();
    let memory_mb = if debuginfo {
        GUEST_MEMORY_WITH_DEBUGINFO_MB
    } else {
        GUEST_MEMORY_MB
    };
    let results = work.join("results");
    let first_console = work.join("console.log.first");
    // Left by an earlier run of the tests, it would be taken for this boot's.
    let _ = fs::remove_file(&first_console);
    let started = Instant::now();
    run(Command::new(script("boot.sh"))
        .arg(&kernel_dir)
        .arg(work.join("initrd.gz"))
        .arg(&results)
        .arg(work.join("console.log"))
        .arg(timeout.to_string())
        .arg(memory_mb.to_string()))
    .map_err(Failure::Broken)?;
    if first_console.exists() {
        eprintln!(
            "{kernel}: the first boot's kernel broke under the emulator and the guest was booted again; see {}",
            first_console.display()
        );
    }
    let wall = started.elapsed();

    let boot_seconds = read_number(&results.join("boot-seconds")).map_err(Failure::Broken)?;
    eprintln!(
        "{kernel} ({release}): init's shell after {boot_seconds:.2}s of guest time; \
         the whole run with {} scenarios took {:.1}s",
        scenarios.len(),
        wall.as_secs_f64()
    );
    let scenarios = scenarios
        .iter()
        .map(|s| {
            let dir = results.join("scenarios").join(s.name);
            read_result(&dir).map(|result| (s.name.to_string(), result))
        })
        .collect::<Result<_, _>>()
        .map_err(Failure::Broken)?;
    Ok(GuestRun {
        kernel,
        release,
        boot_seconds,
        vmlinux,
        scenarios,
    })
}

/// Writes the runner, the scenario list and the scenarios into a fresh `work` directory.
fn prepare(work: &Path, scenarios: &[Scenario]) -> std::io::Result<()> {
    if work.exists() {
        fs::remove_dir_all(work)?;
    }
    fs::create_dir_all(work.join("scenarios"))?;
    fs::write(work.join("runner.sh"), RUNNER)?;
    let mut list = String::new();
    for scenario in scenarios {
        list.push_str(&format!("{} {}\n", scenario.name, scenario.timeout_seconds));
        fs::write(
            work.join("scenarios").join(format!("{}.sh", scenario.name)),
            &scenario.script,
        )?;
    }
    fs::write(work.join("scenarios/list"), list)
}

fn read_text(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_number<T: std::str::FromStr>(path: &Path) -> Result<T, String> {
    let text = read_text(path)?;
    let first = text.split_whitespace().next().unwrap_or("");
    first
        .parse()
        .map_err(|_| format!("{}: not a number: {text:?}", path.display()))
}

fn read_result(dir: &Path) -> Result<ScenarioResult, String> {
    let uptime = read_text(&dir.join("uptime"))?;
    let times: Vec<f64> = uptime
        .split_whitespace()
        .map(|t| {
            t.parse()
                .map_err(|_| format!("{}/uptime: {uptime:?}", dir.display()))
        })
        .collect::<Result<_, _>>()?;
    let [start, end] = times[..] else {
        return Err(format!("{}/uptime: {uptime:?}", dir.display()));
    };
    Ok(ScenarioResult {
        stdout: read_text(&dir.join("stdout"))?,
        stderr: read_text(&dir.join("stderr"))?,
        status: read_number(&dir.join("status"))?,
        timed_out: dir.join("timed-out").exists(),
        seconds: end - start,
        files: dir.join("files"),
    })
}

/// Declares each named check, a `fn(Kernel)`, as one test per kernel, `CHECK::bookworm_6_1`
/// and `CHECK::trixie_6_12`. Test names sort the two kernels' tests of a check next to each
/// other, so parallel test threads boot both kernels at once; filter with `bookworm` or
/// `trixie` to boot only one.
macro_rules! kernel_tests {
    ($($check:ident),* $(,)?) => {
        $(mod $check {
            #[test]
            fn bookworm_6_1() {
                super::$check($crate::harness::Kernel::V6_1)
            }

            #[test]
            fn trixie_6_12() {
                super::$check($crate::harness::Kernel::V6_12)
            }
        })*
    };
}
pub(crate) use kernel_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_counted_by_phrase() {
        let stderr =
            "WARNING: 12 events lost: the ring buffer was full\nWARNING: 3 probe hits missed\n";
        assert_eq!(warning_count(stderr, "events lost"), 12);
        assert_eq!(warning_count(stderr, "probe hits missed"), 3);
        assert_eq!(warning_count("", "events lost"), 0);
    }
}
