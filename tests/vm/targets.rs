//! Target variables on real kernels: parameters, members reached through pointers, a
//! bitfield, `$return`, and strings copied from user memory, read at the event by every
//! attach mechanism and checked against what the socket workload reports it passed and got.

use std::collections::BTreeMap;

use crate::harness::{guest, kernel_tests, Kernel, Scenario, ScenarioResult};

const ROUNDS: u32 = 2;

/// Reads what the workload knows: socket()'s arguments (at its return, as SystemTap gives
/// parameters there) and descriptor, bind's and connect's address length, each send's
/// length and bytes, through the socket structs the family, type and (for the UDP sender,
/// which set SO_SNDBUF) the send-buffer lock, and with `@entry` tcp_sendmsg's size and the
/// time at its entry.
const SCRIPT: &str = r#"
probe kernel.function("__sys_socket").return {
  printf("socket family=%d type=%d fd=%d\n", $family, $type, $return)
}
probe kernel.function("__sys_socket").return { printf("text %s\n", $$return) }
probe kernel.function("__sys_bind") {
  printf("bind fd=%d addrlen=%d\n", $fd, $addrlen)
  printf("text %s\n", $$parms)
}
probe kernel.function("__sys_connect") { printf("connect fd=%d addrlen=%d\n", $fd, $addrlen) }
probe kernel.function("__sys_sendto") {
  printf("sendto fd=%d len=%d\n", $fd, $len)
  printf("data %s\n", user_string_n($buff, 21))
}
probe kernel.function("tcp_sendmsg") {
  printf("tcp family=%d type=%d size=%d count=%d\n", $sk->__sk_common->skc_family,
         $sk->sk_type, $size, $msg->msg_iter->count)
}
probe kernel.function("tcp_sendmsg") {
  printf("defined size=%d nope=%d choose=%d\n", @defined($size), @defined($sk->nope),
         @choose_defined($sk->nope, 7))
}
probe kernel.function("tcp_sendmsg").return {
  printf("tcp returned %d of size=%d after %d ns\n", $return, @entry($size),
         local_clock_ns() - @entry(local_clock_ns()))
}
probe kernel.function("udp_sendmsg") {
  printf("udp family=%d type=%d len=%d userlocks=%d\n", $sk->__sk_common->skc_family,
         $sk->sk_type, $len, $sk->sk_userlocks)
}
probe kernel.function("unix_stream_sendmsg") {
  printf("unix family=%d type=%d len=%d\n", $sock->sk->__sk_common->skc_family, $sock->type,
         $len)
}
"#;

/// A string read that must fault: `buff` is a user pointer, not kernel memory.
const FAULTING_SCRIPT: &str = r#"
probe kernel.function("__sys_sendto") { println(kernel_string($buff)) }
"#;

/// A load that must fault on the way to its value: `buff` is a user pointer, not a
/// kernel struct. Kernels before 6.7 verify the fetch loop's step once, so this also
/// checks that a fault found by one step is reported by a later one.
const LOAD_FAULT_SCRIPT: &str = r#"
probe kernel.function("__sys_sendto") {
  println(@cast($buff, "sock", "kernel")->__sk_common->skc_family)
}
"#;

/// The kernel stack at tcp_sendmsg's entry, in the three shapes SystemTap writes it.
const BACKTRACE_SCRIPT: &str = r#"
probe kernel.function("tcp_sendmsg") {
  print_backtrace()
  printf("hex %s\n", backtrace())
  printf("simple\n%s", sprint_backtrace())
  exit()
}
"#;

/// `script` as `fault.stp`, on one round of the workload.
fn fault_scenario(name: &'static str, script: &str) -> Scenario {
    Scenario::new(
        name,
        format!(
            "cat >fault.stp <<'EOF'\n{script}\nEOF\n\
             rstap -o trace -c 'socket-workload --rounds 1' fault.stp"
        ),
    )
}

/// Backtraces through each of `mechanisms`, one trace file each.
fn backtrace_scenario(name: &'static str, mechanisms: &[&str]) -> Scenario {
    let runs: Vec<String> = mechanisms
        .iter()
        .map(|attach| {
            format!(
                "rstap --attach {attach} -o backtrace-{attach} \
                     -c 'socket-workload --rounds 1' backtrace.stp || exit"
            )
        })
        .collect();
    Scenario::new(
        name,
        format!(
            "cat >backtrace.stp <<'EOF'\n{BACKTRACE_SCRIPT}\nEOF\n{}",
            runs.join("\n")
        ),
    )
}

fn targets_scenario(name: &'static str, attach: &str) -> Scenario {
    Scenario::new(
        name,
        format!(
            "cat >targets.stp <<'EOF'\n{SCRIPT}\nEOF\n\
             rstap --attach {attach} -o trace \
                 -c \"socket-workload --rounds {ROUNDS} --report $OUT/report\" targets.stp"
        ),
    )
}

/// The mechanisms each kernel has (kprobe.session and kprobe.multi need fprobe, which
/// Debian's 6.1 lacks), with their scenarios.
fn mechanisms(kernel: Kernel) -> &'static [(&'static str, &'static str)] {
    match kernel {
        Kernel::V6_1 => &[("targets-fentry", "fentry"), ("targets-kprobe", "kprobe")],
        Kernel::V6_12 => &[
            ("targets-session", "session"),
            ("targets-multi", "multi"),
            ("targets-fentry", "fentry"),
            ("targets-kprobe", "kprobe"),
        ],
    }
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        targets_scenario("targets-session", "session").only_on(Kernel::V6_12),
        targets_scenario("targets-multi", "multi").only_on(Kernel::V6_12),
        targets_scenario("targets-fentry", "fentry"),
        targets_scenario("targets-kprobe", "kprobe"),
        backtrace_scenario("targets-backtrace", &["fentry", "kprobe"]),
        backtrace_scenario("targets-backtrace-fprobe", &["session", "multi"])
            .only_on(Kernel::V6_12),
        fault_scenario("targets-fault", FAULTING_SCRIPT),
        fault_scenario("targets-load-fault", LOAD_FAULT_SCRIPT),
    ]
}

/// The lines of `text` that start with `word `, in order.
fn lines_of<'a>(text: &'a str, word: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| line.split(' ').next() == Some(word))
        .collect()
}

/// `key=value` fields of a line, by key.
fn fields(line: &str) -> BTreeMap<&str, i64> {
    line.split(' ')
        .filter_map(|field| field.split_once('='))
        .map(|(key, value)| {
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("{key}={value} in {line:?} is not a number"));
            (key, value)
        })
        .collect()
}

/// Every send's length, sorted, from lines whose field `key` holds it.
fn lengths(lines: &[&str], key: &str) -> Vec<i64> {
    let mut lengths: Vec<i64> = lines.iter().map(|line| fields(line)[key]).collect();
    lengths.sort_unstable();
    lengths
}

/// Every line's `family` and `type` fields are `expected`.
fn assert_sockets(lines: &[&str], expected: (i64, i64), what: &str) {
    assert!(!lines.is_empty(), "no {what} sends traced");
    for line in lines {
        let f = fields(line);
        assert_eq!((f["family"], f["type"]), expected, "{what}: {line}");
    }
}

fn check_against_the_report(result: &ScenarioResult) {
    result.assert_success();
    let (trace, report) = (result.file("trace"), result.file("report"));
    // What the system calls were passed and returned, line for line.
    for call in ["socket", "bind", "connect", "sendto"] {
        let expected = lines_of(&report, call);
        assert!(
            !expected.is_empty(),
            "the workload reported no {call}: {report}"
        );
        assert_eq!(
            lines_of(&trace, call),
            expected,
            "{call}\n{}",
            result.describe()
        );
    }
    // `$$return` and `$$parms` in SystemTap's shape: `name=%#x`, space-separated.
    let expected_text: Vec<String> = lines_of(&report, "socket")
        .into_iter()
        .chain(lines_of(&report, "bind"))
        .map(|line| {
            let f = fields(line);
            if line.starts_with("socket") {
                format!("text return={:#x}", f["fd"])
            } else {
                format!(
                    "text fd={:#x} umyaddr=0x? addrlen={:#x}",
                    f["fd"], f["addrlen"]
                )
            }
        })
        .collect();
    let text: Vec<String> = lines_of(&trace, "text")
        .into_iter()
        .map(|line| {
            // The user address differs from run to run: only its shape is checked.
            let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
            for word in &mut words {
                if let Some(address) = word.strip_prefix("umyaddr=0x") {
                    assert!(u64::from_str_radix(address, 16).is_ok(), "{line}");
                    *word = "umyaddr=0x?".to_string();
                }
            }
            words.join(" ")
        })
        .collect();
    let mut sorted_text = text.clone();
    sorted_text.sort();
    let mut sorted_expected = expected_text.clone();
    sorted_expected.sort();
    assert_eq!(sorted_text, sorted_expected, "{}", result.describe());
    let defined = lines_of(&trace, "defined");
    assert!(!defined.is_empty());
    assert!(
        defined
            .iter()
            .all(|line| *line == "defined size=1 nope=0 choose=7"),
        "{defined:?}"
    );
    let data = lines_of(&trace, "data");
    assert_eq!(data.len(), lines_of(&report, "sendto").len());
    assert!(
        data.iter()
            .all(|line| *line == "data rstap socket-workload"),
        "{data:?}"
    );
    // Each protocol's send path, with the socket reached through the kernel's structs.
    let tcp = lines_of(&trace, "tcp");
    let (tcp_calls, tcp_returns): (Vec<&str>, Vec<&str>) = tcp
        .iter()
        .partition(|line| !line.starts_with("tcp returned"));
    assert_sockets(&tcp_calls, (2, 1), "AF_INET, SOCK_STREAM");
    for line in &tcp_calls {
        let f = fields(line);
        assert_eq!(
            f["size"], f["count"],
            "the iterator holds what is sent: {line}"
        );
    }
    let mut returned = Vec::new();
    for line in &tcp_returns {
        // "tcp returned R of size=S after T ns"
        let words: Vec<&str> = line.split(' ').collect();
        let value: i64 = words[2].parse().unwrap();
        assert_eq!(
            value,
            fields(line)["size"],
            "tcp_sendmsg returns what @entry($size) asked: {line}"
        );
        let took: i64 = words[6].parse().unwrap();
        assert!(took >= 0, "the return comes after the entry: {line}");
        returned.push(value);
    }
    returned.sort_unstable();
    assert_eq!(
        returned,
        lengths(&tcp_calls, "size"),
        "each tcp_sendmsg returns once, what it was asked to send"
    );
    let udp = lines_of(&trace, "udp");
    assert_sockets(&udp, (2, 2), "AF_INET, SOCK_DGRAM");
    for line in &udp {
        assert_eq!(
            fields(line)["userlocks"],
            1,
            "the sender set SO_SNDBUF alone: {line}"
        );
    }
    let unix = lines_of(&trace, "unix");
    assert_sockets(&unix, (1, 1), "AF_UNIX, SOCK_STREAM");
    // Every byte count the workload sent, each seen by its protocol's function.
    let sends: Vec<&str> = lines_of(&report, "sendto")
        .into_iter()
        .chain(lines_of(&report, "sendmsg"))
        .collect();
    let mut seen = lengths(&tcp_calls, "size");
    seen.extend(lengths(&udp, "len"));
    seen.extend(lengths(&unix, "len"));
    seen.sort_unstable();
    assert_eq!(seen, lengths(&sends, "len"), "{}", result.describe());
}

/// The trace with what differs from run to run masked: user addresses, times.
fn without_run_specifics(trace: &str) -> String {
    trace
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            let masked: Vec<&str> = words
                .iter()
                .enumerate()
                .map(|(index, word)| {
                    let is_time = words.get(index + 1) == Some(&"ns")
                        && words.get(index.wrapping_sub(1)) == Some(&"after");
                    if word.starts_with("umyaddr=") {
                        "umyaddr=?"
                    } else if is_time {
                        "?"
                    } else {
                        word
                    }
                })
                .collect();
            masked.join(" ") + "\n"
        })
        .collect()
}

fn every_mechanism_reads_what_the_workload_passed(kernel: Kernel) {
    let Some(vm) = guest(kernel) else { return };
    let mut traces = Vec::new();
    for (scenario, _) in mechanisms(kernel) {
        let result = vm.scenario(scenario);
        check_against_the_report(result);
        traces.push(without_run_specifics(&result.file("trace")));
    }
    // The same values, whichever mechanism read them: descriptors and lengths are fixed by
    // the workload; the user address and the time in the call are not, and are masked.
    for (trace, (scenario, _)) in traces.iter().zip(mechanisms(kernel)) {
        assert_eq!(
            trace,
            &traces[0],
            "{scenario} differs from {}",
            mechanisms(kernel)[0].0
        );
    }
}

/// The first `ERROR: ` line of a fault scenario, which must have failed.
fn fault_error(kernel: Kernel, scenario: &str) -> Option<String> {
    let vm = guest(kernel)?;
    let result = vm.scenario(scenario);
    assert_ne!(result.status, 0, "{}", result.describe());
    result
        .stderr
        .lines()
        .find(|line| line.starts_with("ERROR: "))
        .map(str::to_string)
        .or_else(|| panic!("no error: {}", result.describe()))
}

fn a_faulting_load_is_an_error_at_its_place(kernel: Kernel) {
    let Some(error) = fault_error(kernel, "targets-load-fault") else {
        return;
    };
    assert!(
        error.starts_with("ERROR: read fault [man error::fault] at 0x")
            && error.contains("fault.stp:3:"),
        "{error}"
    );
}

fn a_faulting_read_is_an_error_at_its_place(kernel: Kernel) {
    let Some(error) = fault_error(kernel, "targets-fault") else {
        return;
    };
    assert!(
        error.starts_with("ERROR: kernel string copy fault at 0x")
            && error.contains("[man error::fault] near identifier 'kernel_string' at fault.stp:2:"),
        "{error}"
    );
}

/// One backtrace in its three shapes: the function at its entry, then its callers up to the
/// system call's entry, each line in SystemTap's layout.
fn check_backtrace(trace: &str, mechanism: &str) {
    let (full, rest) = trace
        .split_once("hex ")
        .unwrap_or_else(|| panic!("{mechanism}: no backtrace() line:\n{trace}"));
    let (hex, simple) = rest
        .split_once("\nsimple\n")
        .unwrap_or_else(|| panic!("{mechanism}: no sprint_backtrace():\n{trace}"));
    let full: Vec<&str> = full.lines().collect();
    let first = full.first().copied().unwrap_or_default();
    assert!(
        first.starts_with(" 0xffffffff")
            && first.contains(" : tcp_sendmsg+0x0/0x")
            && first.ends_with(" [kernel]"),
        "{mechanism}: the probed function first, at its entry: {first:?}\n{trace}"
    );
    let names: Vec<&str> = full
        .iter()
        .map(|line| {
            let (_, symbol) = line
                .split_once(" : ")
                .unwrap_or_else(|| panic!("{mechanism}: {line:?}"));
            symbol.split('+').next().unwrap_or_default()
        })
        .collect();
    assert!(names.contains(&"__sys_sendto"), "{mechanism}: {names:?}");
    assert!(
        names
            .iter()
            .any(|name| name.starts_with("entry_SYSCALL_64")),
        "{mechanism}: the stack reaches the system call's entry: {names:?}"
    );
    // backtrace(): the same frames as hex, each followed by a space.
    let addresses: Vec<&str> = hex.split_terminator(' ').collect();
    let full_addresses: Vec<&str> = full
        .iter()
        .map(|line| line.trim_start().split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(addresses, full_addresses, "{mechanism}");
    // sprint_backtrace(): `name+offset [kernel]` lines for the same frames.
    let simple_names: Vec<&str> = simple
        .lines()
        .map(|line| line.split('+').next().unwrap_or_default())
        .collect();
    assert_eq!(simple_names, names, "{mechanism}");
}

fn backtraces_show_the_system_call_path(kernel: Kernel) {
    let Some(vm) = guest(kernel) else { return };
    let mut scenarios = vec![("targets-backtrace", ["fentry", "kprobe"])];
    if kernel == Kernel::V6_12 {
        scenarios.push(("targets-backtrace-fprobe", ["session", "multi"]));
    }
    for (scenario, mechanisms) in scenarios {
        let result = vm.scenario(scenario);
        result.assert_success();
        for mechanism in mechanisms {
            check_backtrace(&result.file(&format!("backtrace-{mechanism}")), mechanism);
        }
    }
}

kernel_tests!(
    backtraces_show_the_system_call_path,
    every_mechanism_reads_what_the_workload_passed,
    a_faulting_read_is_an_error_at_its_place,
    a_faulting_load_is_an_error_at_its_place,
);
