//! rstap run natively on the build machine, whatever its kernel: scripts that need no
//! kernel probes, listing, and the errors a user sees before anything is attached. On a
//! kernel that cannot trace functions (such as the project's build machines), also the
//! error that says so.

#[path = "support/root.rs"]
mod root;
#[path = "support/sampling.rs"]
mod sampling_checks;
#[path = "support/tapsets.rs"]
mod tapset_checks;
#[path = "support/tracepoints.rs"]
mod tracepoint_checks;
#[path = "support/workload.rs"]
mod workload;

use std::path::Path;
use std::process::{Command, Output};

use root::is_root;

fn rstap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rstap"))
        .args(args)
        .output()
        .expect("rstap runs")
}

/// Whether the test cannot run here, not being root, which it says: `needs` is what for.
fn skipped_without_root(needs: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipped: needs root to {needs}");
    true
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn begin_and_end_probes_run_without_kernel_probes() {
    if skipped_without_root("read kernel symbols") {
        return;
    }
    let output = rstap(&[
        "-e",
        r#"probe begin { printf("%s %d %p\n", "hello", 6 * 7, 255); exit() } probe end { println("bye") }"#,
    ]);
    assert_eq!(
        stdout(&output),
        "hello 42 0xff\nbye\n",
        "{}",
        stderr(&output)
    );
    assert!(output.status.success());
}

#[test]
fn checking_a_script_creates_no_output_file() {
    if skipped_without_root("read kernel symbols") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rstap-native-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let file = dir.join("out.txt");
    let output = rstap(&[
        "-p",
        "2",
        "-o",
        file.to_str().expect("a UTF-8 path"),
        "-e",
        "probe begin { exit() }",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!file.exists(), "-p 2 created {}", file.display());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_script_error_names_the_place_and_attaches_nothing() {
    let output = rstap(&["-e", "probe begin {\n  printf(\"%d\\n\", execname())\n}"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines[0], "<input>:2:18: error: the format wants a long here",
        "{message}"
    );
    assert!(
        message.contains("  printf(\"%d\\n\", execname())"),
        "{message}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.trim_end().ends_with("^^^^^^^^^^")),
        "{message}"
    );
}

#[test]
fn listing_is_sorted_and_fails_when_nothing_matches() {
    if skipped_without_root("read kernel symbols") {
        return;
    }
    let output = rstap(&["-l", r#"kernel.function("__sys_*").return"#]);
    assert!(output.status.success(), "{}", stderr(&output));
    let listing = stdout(&output);
    let lines: Vec<&str> = listing.lines().collect();
    assert!(
        lines.contains(&r#"kernel.function("__sys_connect").return"#),
        "{listing}"
    );
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(lines, sorted);

    let output = rstap(&["-l", r#"kernel.function("__sys_conect")"#]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    assert!(
        stderr(&output).contains("did you mean __sys_connect"),
        "{}",
        stderr(&output)
    );

    // Points that need no kernel, such as a procfs file and the alias on one, list too.
    let output = rstap(&["-l", r#"procfs("status").read"#]);
    assert_eq!(
        stdout(&output),
        "procfs(\"status\").read\n",
        "{}",
        stderr(&output)
    );
    let output = rstap(&["-l", "prometheus"]);
    assert_eq!(stdout(&output), "prometheus\n", "{}", stderr(&output));
}

#[test]
fn listing_with_variables_gives_the_parameters_from_btf() {
    if skipped_without_root("read kernel symbols") {
        return;
    }
    let output = rstap(&["-L", r#"kernel.function("tcp_sendmsg")"#]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "kernel.function(\"tcp_sendmsg\") $sk:struct sock* $msg:struct msghdr* $size:size_t\n"
    );
}

/// The build machines' kernel refuses fentry and has no kprobes: rstap must say so in
/// one line of its own, not with libbpf's log.
#[test]
fn a_kernel_that_cannot_trace_functions_is_explained() {
    if !is_root() || Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        eprintln!("skipped: this kernel has kprobes, so it can trace");
        return;
    }
    let output = rstap(&[
        "-e",
        r#"probe kernel.function("sock_poll") { printf("%s\n", probefunc()) }"#,
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.starts_with("rstap: error: cannot trace kernel functions on this kernel ("),
        "{message}"
    );
    assert!(
        message.contains("the kernel refuses fentry/fexit programs"),
        "{message}"
    );
    assert!(
        message.contains("the kernel has no kprobe support"),
        "{message}"
    );
    assert!(message.contains("vm/rstap-vm"), "{message}");
    assert!(!message.contains("libbpf"), "{message}");
}

#[test]
fn source_file_points_need_debug_info_for_the_running_kernel() {
    if skipped_without_root("read kernel symbols") {
        return;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let release = release.trim();
    if Path::new(&format!("/usr/lib/debug/boot/vmlinux-{release}")).exists() {
        eprintln!("skipped: this machine has the running kernel's debug info");
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_rstap"))
        .args(["-l", r#"kernel.function("*@net/socket.c")"#])
        .env_remove("DEBUGINFOD_URLS")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.starts_with(&format!(
            "rstap: error: missing kernel debuginfo for {release}"
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!("linux-image-{release}-dbg")),
        "{message}"
    );
}

#[test]
fn the_shipped_examples_compile() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut compiled = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "stp") {
            let text = std::fs::read_to_string(&path).unwrap();
            let source = rstap::script::SourceFile::new(path.display().to_string(), text);
            if let Err(err) = rstap::script::compile(&source) {
                panic!("{err}");
            }
            compiled += 1;
        }
    }
    assert!(compiled >= 2, "examples/ has {compiled} scripts");
}

/// Runs `script` on `rounds` of the socket workload: rstap's output, and the workload's
/// report of what it did.
fn traced_workload(script: &str, rounds: u32) -> (String, String) {
    let workload = workload::socket_workload().expect("the socket workload builds");
    let dir = tempfile::tempdir().expect("temporary directory");
    let script_file = dir.path().join("script.stp");
    std::fs::write(&script_file, script).expect("script written");
    let (trace, report) = (dir.path().join("trace"), dir.path().join("report"));
    let command = format!(
        "{} --rounds {rounds} --report {}",
        workload.display(),
        report.display()
    );
    let output = rstap(&[
        "-o",
        &trace.display().to_string(),
        "-c",
        &command,
        &script_file.display().to_string(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    (read(&trace), read(&report))
}

/// This machine's kernel loads tracepoint programs: raw ones and those reading a syscall
/// event's record, checked against what the socket workload reports it did.
#[test]
fn tracepoints_report_what_the_workload_did() {
    if skipped_without_root("load tracepoint programs") {
        return;
    }
    let (trace, report) = traced_workload(tracepoint_checks::SCRIPT, 2);
    tracepoint_checks::check(
        &trace,
        &report,
        &format!("trace:\n{trace}\nreport:\n{report}"),
    );
}

/// rstap's tapsets (syscall, syscall_any, kprocess, scheduler aliases, the task
/// functions) on this machine's kernel, checked against what the socket workload reports.
#[test]
fn tapset_aliases_report_what_the_workload_did() {
    if skipped_without_root("load tracepoint programs") {
        return;
    }
    let (trace, report) = traced_workload(tapset_checks::SCRIPT, 2);
    tapset_checks::check(
        &trace,
        &report,
        &format!("trace:\n{trace}\nreport:\n{report}"),
    );
}

/// `rstap -l 'syscall.*'` lists every system call the kernel has tracepoints for, as
/// tracefs lists them, and SystemTap's
/// syscall.recv and syscall.send beside them.
#[test]
fn every_system_call_of_the_kernel_has_a_syscall_alias() {
    if skipped_without_root("read tracefs") {
        return;
    }
    // In a mount namespace of its own, so that no rstap running beside this test sees
    // the mount and reads through it after it is gone.
    let place = tempfile::tempdir().expect("temporary directory");
    let listing = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t tracefs nodev '{0}' && ls '{0}/events/syscalls'",
            place.path().display()
        ))
        .output()
        .expect("unshare runs");
    assert!(listing.status.success(), "{}", stderr(&listing));
    let expected: std::collections::BTreeSet<String> = stdout(&listing)
        .lines()
        .filter_map(|name| Some(name.strip_prefix("sys_enter_")?.to_string()))
        .collect();
    assert!(expected.len() > 200, "{expected:?}");
    let output = rstap(&["-l", "syscall.*"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let listed: std::collections::BTreeSet<String> = stdout(&output)
        .lines()
        .map(|line| line.strip_prefix("syscall.").unwrap_or(line).to_string())
        .collect();
    let missing: Vec<&String> = expected.difference(&listed).collect();
    assert!(missing.is_empty(), "not listed: {missing:?}");
    // The aliases of calls x86-64 does not have: recv(2) and send(2), which are
    // recvfrom(2) and sendto(2).
    let extra: Vec<&String> = listed.difference(&expected).collect();
    assert_eq!(extra, ["recv", "send"]);
}

/// This machine's kernel samples perf events: `timer.profile` against the CPU time the
/// workload used and the kernel's HZ (from /proc/config.gz).
#[test]
fn timer_profile_samples_the_workload_as_its_cpu_time_says() {
    if skipped_without_root("load sampling programs") {
        return;
    }
    let Ok(compressed) = std::fs::read("/proc/config.gz") else {
        eprintln!("skipped: this kernel does not give its config (/proc/config.gz)");
        return;
    };
    let mut config = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut config,
    )
    .expect("/proc/config.gz decompresses");
    let hz = sampling_checks::hz_of_config(&config);
    let (trace, report) = traced_workload(sampling_checks::SCRIPT, 3000);
    sampling_checks::check(
        &trace,
        &report,
        hz,
        &format!("trace:\n{trace}\nreport:\n{report}"),
    );
}

#[test]
fn procfs_files_are_read_and_written_like_systemtaps() {
    if skipped_without_root("make files in /run/rstap") {
        return;
    }
    let script = r#"
        global written
        probe procfs("ctl/state").read { $value = sprintf("written %d\n", written) }
        probe procfs("block").umask(0022).write { written++; printf("got %s", $value) }
        probe procfs("stop").write { exit() }"#;
    let (child, dir) = serve_procfs(script);
    let block = dir.join("block");
    let mode = std::fs::metadata(&block).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o200
    );
    std::fs::write(&block, "123\n").unwrap();
    std::fs::write(&block, "456\n").unwrap();
    // Both writes are served within a poll or two; the read waits for rstap to serve it.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let state = std::fs::read_to_string(dir.join("ctl/state")).unwrap();
    std::fs::write(dir.join("stop"), "\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(state, "written 2\n", "{}", stderr(&output));
    assert_eq!(stdout(&output), "got 123\ngot 456\n");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!dir.exists(), "the procfs directory is left behind");
}

/// Starts rstap on a script with procfs probes, one of them `procfs("stop").write`, and
/// waits for its files: the process and the module's directory.
fn serve_procfs(script: &str) -> (std::process::Child, std::path::PathBuf) {
    let module = format!("rstap_test_{}_{}", std::process::id(), script.len());
    let dir = std::path::Path::new("/run/rstap").join(&module);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rstap"))
        .args(["-m", &module, "-T", "30", "-e", script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("rstap runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !dir.join("stop").exists() {
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            panic!("rstap stopped before serving: {}", stderr(&output));
        }
        assert!(std::time::Instant::now() < deadline, "no procfs files");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (child, dir)
}

#[test]
fn the_prometheus_file_shows_arrays_of_one_to_seven_keys() {
    if skipped_without_root("make files in /run/rstap") {
        return;
    }
    let script = r#"
        global seven, one
        probe begin { seven["a", 1, 2, 3, 4, 5, "x\"y"] = 7; one["p"] = 9 }
        probe prometheus {
            @prometheus_dump_array7(seven, "seven", "k1", "k2", "k3", "k4", "k5", "k6", "k7")
            @prometheus_dump_array1_map_unquoted(one, "one", "k", sprint, sprint)
        }
        probe procfs("stop").write { exit() }"#;
    let (child, dir) = serve_procfs(script);
    let metrics = std::fs::read_to_string(dir.join("__prometheus")).unwrap();
    std::fs::write(dir.join("stop"), "\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        metrics,
        "seven{k1=\"a\",k2=\"1\",k3=\"2\",k4=\"3\",k5=\"4\",k6=\"5\",k7=\"x\\\"y\"} 7\n\
         one{k=p} 9\n",
        "{}",
        stderr(&output)
    );
    assert!(output.status.success(), "{}", stderr(&output));
}

/// A pointer kept from an event and cast in a later probe is read when that probe runs:
/// the task `sched_switch` switched out, read again from a timer while it sleeps, against
/// what the event itself read and the command rstap started.
#[test]
fn casts_of_kept_pointers_read_the_kernel_when_the_body_runs() {
    if skipped_without_root("load tracepoint and reader programs") {
        return;
    }
    let script = r#"
        global task, pid_at_event
        probe kernel.trace("sched:sched_switch") {
            if ($prev->tgid == target() && !(1 in task)) {
                task[1] = $prev; pid_at_event[1] = $prev->pid
            }
        }
        probe timer.ms(200) {
            if (!(1 in task)) next
            t = task[1]
            comm = kernel_string(t + &@cast(0, "task_struct")->comm)
            printf("%d %d %s %s\n", @cast(t, "task_struct")->pid == pid_at_event[1],
                   kernel_int(t + &@cast(0, "task_struct")->tgid) == target(), comm,
                   kernel_string(@cast(t, "task_struct")->comm))
            exit()
        }"#;
    let output = rstap(&["-c", "sleep 3", "-e", script]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "1 1 sleep sleep\n", "{}", stderr(&output));
}

/// `task_current()` in a function is the task of the event whose probe called it: the
/// probe reads it at its event, and the function's casts of it are read when it runs. So
/// are `uid()` and `pexecname()`, which are rstap's own process's when a begin probe calls.
#[test]
fn task_current_in_a_function_is_the_calling_probes_task() {
    if skipped_without_root("load tracepoint and reader programs") {
        return;
    }
    let script = r#"
        function me() {
            t = task_current()
            return sprintf("%d %s", task_pid(t) == target(), task_execname(task_parent(t)))
        }
        function who() { return sprintf("uid=%d parent=%s", uid(), pexecname()) }
        probe begin { println(who()) }
        probe kernel.trace("sched:sched_switch") {
            if (pid() == target()) { println(me()); println(who()); exit() }
        }"#;
    let output = rstap(&["-c", "sleep 3", "-e", script]);
    assert!(output.status.success(), "{}", stderr(&output));
    // rstap's own parent is the test; the sleep's is rstap, which started it.
    let printed = stdout(&output);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 3, "{printed}");
    assert!(
        lines[0].starts_with("uid=0 parent=") && lines[0] != "uid=0 parent=rstap",
        "{printed}"
    );
    assert_eq!(lines[1..], ["1 rstap", "uid=0 parent=rstap"], "{printed}");
}

/// `@entry` in a `syscall.*.return` probe is evaluated at the call's entry tracepoint:
/// `dd` reads five blocks of 7 bytes from its standard input, fd 0, asking for 7 bytes
/// each time, and each return comes after its entry.
#[test]
fn entry_values_of_system_calls_come_from_their_entry() {
    if skipped_without_root("load tracepoint programs") {
        return;
    }
    let script = r#"
        probe syscall.read.return {
            if (pid() == target() && @entry($fd) == 0)
                printf("%d %d %d %d\n", @entry($fd), @entry($count), retval,
                       gettimeofday_ns() >= @entry(gettimeofday_ns()))
        }"#;
    let output = rstap(&[
        "-c",
        "dd if=/dev/zero of=/dev/null bs=7 count=5 status=none",
        "-e",
        script,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "0 7 7 1\n".repeat(5),
        "{}",
        stderr(&output)
    );
}

/// The task and process functions that /proc answers, against the command rstap runs:
/// its arguments, its open descriptors (standard input, output and error, and what this
/// test's process passes down), its file limit as `ulimit` set it, and memory of its own.
#[test]
fn process_facts_are_those_of_the_probed_process() {
    if skipped_without_root("load tracepoint programs") {
        return;
    }
    let script = r#"
        probe syscall.clock_nanosleep {
            if (pid() != target()) next
            printf("%s|%d|%d|%d|%d\n", cmdline_str(), task_open_file_handles(task_current()),
                   task_rlimit_nofile(task_current()),
                   proc_mem_size(pid()) >= proc_mem_rss(pid()),
                   proc_mem_rss(pid()) >= proc_mem_shr(pid()) && proc_mem_shr(pid()) > 0)
            exit()
        }"#;
    let output = rstap(&["-c", "ulimit -n 123; exec sleep 1 </dev/null", "-e", script]);
    assert!(output.status.success(), "{}", stderr(&output));
    let descriptors = 3 + inherited_descriptors();
    assert_eq!(
        stdout(&output),
        format!("sleep 1|{descriptors}|123|1|1\n"),
        "{}",
        stderr(&output)
    );
}

/// This process's descriptors past standard error that a command it runs inherits: those
/// without close-on-exec (O_CLOEXEC, octal 02000000 in fdinfo's flags), which cargo's
/// jobserver, for one, leaves open.
fn inherited_descriptors() -> usize {
    let entries = std::fs::read_dir("/proc/self/fdinfo").expect("/proc/self/fdinfo");
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let fd: u32 = entry.file_name().to_str()?.parse().ok()?;
            let info = std::fs::read_to_string(entry.path()).ok()?;
            let flags = info.lines().find_map(|line| line.strip_prefix("flags:"))?;
            let flags = u32::from_str_radix(flags.trim(), 8).ok()?;
            (fd > 2 && flags & 0o2000000 == 0).then_some(fd)
        })
        .count()
}

/// `@cast_sizeof` and `@cast_module_sizeof` give the sizes the kernel's ABI fixes: a
/// `struct sembuf` is three shorts, a `list_head` two pointers.
#[test]
fn type_sizes_come_from_the_kernels_types() {
    let script = r#"probe begin {
        printf("%d %d %d\n", @cast_sizeof("struct sembuf"),
               @cast_module_sizeof("kernel", "struct sembuf"),
               @cast_sizeof("list_head", "kernel<linux/list.h>"))
        exit()
    }"#;
    let output = rstap(&["-e", script]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "6 6 16\n");
}
