//! rstap tracing kernel functions on real kernels: the seed script's bodies on the
//! socket system-call path, checked against the kernel's own ftrace function tracer, on
//! every attach mechanism.

use std::collections::{BTreeMap, BTreeSet};

use crate::harness::{guest, kernel_tests, Kernel, Scenario, ScenarioResult};

const ROUNDS: u32 = 3;

/// The seed script's bodies, with name globs covering the socket system-call path.
const SEED_BODIES: &str = r#"
probe kernel.function("__sys_*").call, kernel.function("sock_*").call {
  printf ("%s -> %s\n", thread_indent(1), probefunc())
}
probe kernel.function("__sys_*").return, kernel.function("sock_*").return {
  printf ("%s <- %s\n", thread_indent(-1), probefunc())
}
"#;

/// The same with the seed's addr() variant.
const SEED_ADDR_BODIES: &str = r#"
probe kernel.function("__sys_*").call, kernel.function("sock_*").call {
  printf ("%s -> %p, %s\n", thread_indent(1), addr(), probefunc())
}
probe kernel.function("__sys_*").return, kernel.function("sock_*").return {
  printf ("%s <- %p, %s\n", thread_indent(-1), addr(), probefunc())
}
"#;

/// Functions the oracle counts that rstap rightly does not report: rstap's own bpf(2)
/// calls (the oracle follows rstap's process too; rstap never traces itself), and RCU
/// callbacks, which run in whichever task is current when they fire, rstap's included.
const NOT_THE_WORKLOADS: &[&str] = &["__sys_bpf", "sock_free_inode"];

/// Runs rstap on the workload under the ftrace oracle, so that both count the very same
/// execution: functions run from interrupts or RCU callbacks vary from run to run, but
/// not between two observers of one run. The oracle follows rstap and what it forks; rstap
/// itself makes no socket calls, so only the workload's show up in either count.
fn trace_scenario(name: &'static str, script: &str, attach: &str) -> Scenario {
    Scenario::new(
        name,
        format!(
            "grep -E '^(__sys_|sock_)' /sys/kernel/tracing/available_filter_functions \
               | cut -d' ' -f1 >functions\n\
             cat >script.stp <<'EOF'\n{script}\nEOF\n\
             ftrace-count.sh functions -- \
                 rstap -v --attach {attach} -o trace -c 'socket-workload --rounds {ROUNDS}' script.stp \
                 >oracle || exit\n\
             cp /proc/kallsyms kallsyms"
        ),
    )
}

/// The forced strategies traced on each kernel: kprobe.session and kprobe.multi need
/// fprobe, which Debian's 6.1 does not have (attach.rs checks what forcing them says).
fn forced_scenarios(kernel: Kernel) -> &'static [&'static str] {
    match kernel {
        Kernel::V6_1 => &["trace-fentry", "trace-kprobe"],
        Kernel::V6_12 => &[
            "trace-session",
            "trace-multi",
            "trace-fentry",
            "trace-kprobe",
        ],
    }
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        trace_scenario("trace-auto", SEED_BODIES, "auto"),
        trace_scenario("trace-session", SEED_BODIES, "session").only_on(Kernel::V6_12),
        trace_scenario("trace-multi", SEED_BODIES, "multi").only_on(Kernel::V6_12),
        trace_scenario("trace-fentry", SEED_BODIES, "fentry"),
        trace_scenario("trace-kprobe", SEED_BODIES, "kprobe"),
        trace_scenario("trace-addr", SEED_ADDR_BODIES, "auto"),
        // A cache of its own, so that the first run is sure to read the kernel's lists.
        Scenario::new(
            "trace-cached-symbols",
            "export XDG_CACHE_HOME=$OUT/cache\n\
             rstap -v -l 'kernel.function(\"sock_*\")' >list-first 2>first\n\
             rstap -v -l 'kernel.function(\"sock_*\")' >list-second 2>second\n\
             rstap -v -o trace -c 'socket-workload --rounds 1' \
                 -e 'probe kernel.function(\"__sys_connect\").return { println(probefunc()) }' \
                 2>traced",
        ),
        Scenario::new(
            "example-counts",
            format!(
                "grep -E '^(__sys_|sock_)' /sys/kernel/tracing/available_filter_functions \
                   | cut -d' ' -f1 >functions\n\
                 cat >counts.stp <<'RSTAP_EXAMPLE_END'\n{}RSTAP_EXAMPLE_END\n\
                 ftrace-count.sh functions -- \
                     rstap -o counts -c 'socket-workload --rounds {ROUNDS}' counts.stp >oracle",
                include_str!("../../examples/socket-counts.stp")
            ),
        ),
        Scenario::new(
            "example-summary",
            format!(
                "cat >summary.stp <<'RSTAP_EXAMPLE_END'\n{}RSTAP_EXAMPLE_END\n\
                 rstap -c 'socket-workload --rounds {ROUNDS}' summary.stp",
                include_str!("../../examples/socket-summary.stp")
            ),
        ),
    ]
}

/// One line of thread_indent() output: `%6d %s(%d):%-*s -> NAME` or `<- NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    pub micros: i64,
    pub execname: String,
    pub tid: u32,
    pub indent: usize,
    pub entry: bool,
    /// What follows the arrow: `NAME` or `ADDRESS, NAME`.
    pub rest: String,
}

fn parse_line(line: &str) -> TraceLine {
    try_parse_line(line).unwrap_or_else(|| panic!("not a thread_indent line: {line:?}"))
}

fn try_parse_line(line: &str) -> Option<TraceLine> {
    let (micros, rest) = line.trim_start().split_once(' ')?;
    let open = rest.rfind("):")?;
    let (who, rest) = (&rest[..open], &rest[open + 2..]);
    let paren = who.rfind('(')?;
    let body = rest.trim_start_matches(' ');
    let spaces = rest.len() - body.len();
    let (arrow, name) = body.split_once(' ')?;
    Some(TraceLine {
        micros: micros.parse().ok()?,
        execname: who[..paren].to_string(),
        tid: who[paren + 1..].parse().ok()?,
        // `%-*s` pads to the width, then the format adds one space before the arrow.
        indent: spaces.checked_sub(1)?,
        entry: match arrow {
            "->" => true,
            "<-" => false,
            _ => return None,
        },
        rest: name.to_string(),
    })
}

pub fn trace_lines(result: &ScenarioResult) -> Vec<TraceLine> {
    result.assert_success();
    let lines: Vec<TraceLine> = result.file("trace").lines().map(parse_line).collect();
    assert!(!lines.is_empty(), "rstap printed nothing");
    lines
}

/// Pairs every entry with its return, per thread, checking that each `<-` comes back at
/// its `->`'s indentation. Returns what follows the arrows of each pair, in return order.
pub fn check_pairs(lines: &[TraceLine]) -> Vec<(String, String)> {
    let mut open: BTreeMap<u32, Vec<&TraceLine>> = BTreeMap::new();
    let mut pairs = Vec::new();
    for line in lines {
        let stack = open.entry(line.tid).or_default();
        if line.entry {
            assert_eq!(line.indent, stack.len(), "-> at the wrong depth: {line:?}");
            stack.push(line);
        } else {
            let call = stack
                .pop()
                .unwrap_or_else(|| panic!("<- without ->: {line:?}"));
            assert_eq!(
                line.indent, call.indent,
                "<- not at its ->'s indentation: {line:?}"
            );
            assert!(
                line.micros >= call.micros,
                "time went backwards: {call:?} {line:?}"
            );
            pairs.push((call.rest.clone(), line.rest.clone()));
        }
    }
    for (tid, stack) in open {
        assert!(
            stack.is_empty(),
            "thread {tid} left calls without returns: {stack:?}"
        );
    }
    pairs
}

pub fn call_counts<'a>(names: impl Iterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for name in names {
        *counts.entry(name.to_string()).or_insert(0) += 1;
    }
    counts
}

pub fn oracle_counts(result: &ScenarioResult) -> BTreeMap<String, u64> {
    result
        .file("oracle")
        .lines()
        .map(|line| {
            let (name, count) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("oracle line {line:?}"));
            (name.to_string(), count.parse().unwrap())
        })
        .filter(|(_, count): &(String, u64)| *count > 0)
        .collect()
}

pub fn without_others(mut counts: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    counts.retain(|name, _| !NOT_THE_WORKLOADS.contains(&name.as_str()));
    counts
}

fn matches_the_ftrace_oracle(kernel: Kernel, scenario: &str) {
    let Some(vm) = guest(kernel) else { return };
    let result = vm.scenario(scenario);
    let lines = trace_lines(result);
    let names = check_pairs(&lines);
    let execnames: BTreeSet<&str> = lines.iter().map(|l| l.execname.as_str()).collect();
    assert_eq!(
        execnames.into_iter().collect::<Vec<_>>(),
        ["socket-workload"],
        "traced threads other than the workload's"
    );
    let traced = without_others(call_counts(
        names.iter().map(|(function, _)| function.as_str()),
    ));
    // A forced mechanism may refuse some functions; rstap says which (-v).
    let refused: Vec<&str> = result
        .stderr
        .lines()
        .filter_map(|line| line.strip_prefix("rstap: could not probe "))
        .filter_map(|rest| rest.split_once(':').map(|(name, _)| name))
        .collect();
    if scenario == "trace-auto" {
        assert!(refused.is_empty(), "auto attach refused {refused:?}");
    }
    let mut oracle = without_others(oracle_counts(result));
    oracle.retain(|name, _| !refused.contains(&name.as_str()));
    assert!(
        oracle.contains_key("__sys_connect") && oracle.contains_key("sock_poll"),
        "{oracle:?}"
    );
    assert_accounted(&traced, &oracle, 2, result);
}

/// Every call the oracle saw is accounted for: each function printed at most as often as
/// the oracle saw it, and every hit the oracle saw that rstap did not print (`hits_per_call`
/// a call) counted as missed or lost. The kernel counts misses per program, in any task,
/// while the oracle counts the workload's: misses can exceed what the workload lost, so
/// only without misses or losses is this per-function equality.
pub fn assert_accounted(
    printed: &BTreeMap<String, u64>,
    oracle: &BTreeMap<String, u64>,
    hits_per_call: u64,
    result: &ScenarioResult,
) {
    for (function, &count) in printed {
        let seen = oracle.get(function).copied().unwrap_or(0);
        assert!(
            count <= seen,
            "rstap printed {count} calls of {function}, the oracle saw {seen}"
        );
    }
    let (missed, lost) = (result.missed_hits(), result.lost_events());
    let printed_calls: u64 = printed.values().sum();
    let oracle_calls: u64 = oracle.values().sum();
    let unprinted_hits = (oracle_calls - printed_calls) * hits_per_call;
    let context = format!(
        "printed {printed_calls} calls, missed {missed} and lost {lost} hits; per function \
         the oracle saw {oracle:?}, rstap printed {printed:?}"
    );
    if missed + lost == 0 {
        assert_eq!(printed, oracle, "{context}");
    } else {
        assert!(unprinted_hits <= missed + lost, "{context}");
    }
}

fn auto_matches_the_oracle(kernel: Kernel) {
    matches_the_ftrace_oracle(kernel, "trace-auto");
}

fn session_matches_the_oracle(kernel: Kernel) {
    if forced_scenarios(kernel).contains(&"trace-session") {
        matches_the_ftrace_oracle(kernel, "trace-session");
    }
}

fn multi_matches_the_oracle(kernel: Kernel) {
    if forced_scenarios(kernel).contains(&"trace-multi") {
        matches_the_ftrace_oracle(kernel, "trace-multi");
    }
}

fn fentry_matches_the_oracle(kernel: Kernel) {
    matches_the_ftrace_oracle(kernel, "trace-fentry");
}

fn kprobe_matches_the_oracle(kernel: Kernel) {
    matches_the_ftrace_oracle(kernel, "trace-kprobe");
}

/// Every strategy reports the same events as kprobes alone: every function seen in both
/// runs returns to the same callers, so return addresses and `probefunc()` in `.return`
/// agree (runs differ in which interrupt-time calls land in the workload, so only the
/// functions both saw compare).
fn mechanisms_report_the_same_callers(kernel: Kernel) {
    let Some(vm) = guest(kernel) else { return };
    let callers = |scenario| -> BTreeMap<String, BTreeSet<String>> {
        let mut callers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (function, caller) in check_pairs(&trace_lines(vm.scenario(scenario))) {
            callers.entry(function).or_default().insert(caller);
        }
        callers
    };
    let kprobe = callers("trace-kprobe");
    let others = forced_scenarios(kernel)
        .iter()
        .filter(|&&scenario| scenario != "trace-kprobe");
    for scenario in std::iter::once(&"trace-auto").chain(others) {
        let mut compared = 0;
        for (function, their_callers) in &callers(scenario) {
            if let Some(kprobe_callers) = kprobe.get(function) {
                assert_eq!(
                    their_callers, kprobe_callers,
                    "{scenario}: callers of {function}"
                );
                compared += 1;
            }
        }
        assert!(
            compared >= 20,
            "{scenario}: only {compared} functions in common"
        );
    }
}

/// The addr() variant: entry addresses are the named functions' own, return addresses
/// lie inside the named callers, by the guest's /proc/kallsyms.
fn addresses_map_back_to_names(kernel: Kernel) {
    let Some(vm) = guest(kernel) else { return };
    let result = vm.scenario("trace-addr");
    let lines = trace_lines(result);
    check_pairs(&lines);
    let mut symbols: Vec<(u64, String)> = result
        .file("kallsyms")
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = u64::from_str_radix(fields.next()?, 16).ok()?;
            let kind = fields.next()?;
            let name = fields.next()?;
            matches!(kind, "t" | "T" | "w" | "W").then(|| (address, name.to_string()))
        })
        .collect();
    symbols.sort();
    for line in &lines {
        let (address, name) = line
            .rest
            .split_once(", ")
            .unwrap_or_else(|| panic!("{line:?}"));
        let address = u64::from_str_radix(address.trim_start_matches("0x"), 16).unwrap();
        let holder = &symbols[symbols.partition_point(|(start, _)| *start <= address) - 1];
        if line.entry {
            assert!(
                symbols.contains(&(address, name.to_string())),
                "{name} is not at {address:#x}: {line:?}"
            );
        } else {
            assert_eq!(
                holder.1, name,
                "return address {address:#x} is in {}, not {name}",
                holder.1
            );
        }
    }
}

/// The shipped example with a global, a begin probe and return probes: one line per
/// socket system call of the workload, each with the syscall's own name and its caller.
fn the_summary_example_runs(kernel: Kernel) {
    let Some(vm) = guest(kernel) else { return };
    let result = vm.scenario("example-summary");
    result.assert_success();
    let mut lines = result.stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("tracing socket system calls of pid "),
        "{header}"
    );
    let calls: Vec<&str> = lines.collect();
    let connects = calls
        .iter()
        .filter(|line| line.contains(" __sys_connect "))
        .count();
    assert_eq!(connects, ROUNDS as usize, "{}", result.stdout);
    for line in &calls {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 6, "{line}");
        assert_eq!(fields[1], "us", "{line}");
        assert!(fields[2].starts_with("__sys_"), "{line}");
        assert!(fields[3].starts_with("socket-workload("), "{line}");
    }
}

/// A script of arrays, foreach and statistics counts what the oracle counts: the calls per
/// function, busiest first, and their total in the histogram.
fn the_counting_example_matches_the_oracle(kernel: Kernel) {
    let Some(vm) = guest(kernel) else { return };
    let result = vm.scenario("example-counts");
    result.assert_success();
    let output = result.file("counts");
    let mut lines = output.lines();
    let mut printed = BTreeMap::new();
    let mut previous = u64::MAX;
    let total_line = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("no total in:\n{output}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[..] {
            [function, count] => {
                let count: u64 = count.parse().unwrap_or_else(|_| panic!("{line}"));
                assert!(count <= previous, "not busiest first: {line}\n{output}");
                previous = count;
                printed.insert(function.to_string(), count);
            }
            _ => break line,
        }
    };
    let total: u64 = printed.values().sum();
    assert_eq!(
        total_line,
        format!("{total} calls; socket functions open at each call:"),
        "{output}"
    );
    // thread_indent_depth(1) gives the depth before its call: 0 for a call with no socket
    // function open below it, as SystemTap's does.
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("value |---"), "{output}");
    let mut in_histogram = 0;
    for row in lines.take_while(|line| !line.is_empty()) {
        let (_, rest) = row.split_once('|').unwrap_or_else(|| panic!("{row}"));
        let count: u64 = rest
            .split_whitespace()
            .last()
            .unwrap_or("")
            .parse()
            .unwrap_or(0);
        in_histogram += count;
    }
    assert_eq!(in_histogram, total, "{output}");
    let oracle = without_others(oracle_counts(result));
    assert_accounted(&without_others(printed), &oracle, 1, result);
}

/// The second run takes the kernel's symbols and ftrace's list from the cache the first
/// wrote, lists the same points, and a trace with them names the right callers: the
/// cached image lands where KASLR put it.
fn cached_symbols_serve_as_the_kernels_own(kernel: Kernel) {
    let Some(vm) = guest(kernel) else { return };
    let result = vm.scenario("trace-cached-symbols");
    result.assert_success();
    assert!(
        result
            .file("first")
            .contains("rstap: kernel symbols read from the kernel"),
        "{}",
        result.file("first")
    );
    for run in ["second", "traced"] {
        assert!(
            result
                .file(run)
                .contains("rstap: kernel symbols from the cache for this kernel build"),
            "{run}: {}",
            result.file(run)
        );
    }
    let listed = result.file("list-first");
    assert!(listed.lines().count() > 50, "{listed}");
    assert_eq!(listed, result.file("list-second"));
    assert_eq!(result.file("trace"), "__x64_sys_connect\n");
}

kernel_tests!(
    cached_symbols_serve_as_the_kernels_own,
    the_summary_example_runs,
    the_counting_example_matches_the_oracle,
    auto_matches_the_oracle,
    session_matches_the_oracle,
    multi_matches_the_oracle,
    fentry_matches_the_oracle,
    kprobe_matches_the_oracle,
    mechanisms_report_the_same_callers,
    addresses_map_back_to_names,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_thread_indent_lines() {
        let line = parse_line("    15 socket-workload(412):  <- 0xffffffff81197f42, do_select");
        assert_eq!(line.micros, 15);
        assert_eq!(line.execname, "socket-workload");
        assert_eq!(line.tid, 412);
        assert_eq!(line.indent, 1);
        assert!(!line.entry);
        assert_eq!(line.rest, "0xffffffff81197f42, do_select");
        assert_eq!(parse_line("     0 init(1): -> sock_poll").indent, 0);
    }

    #[test]
    fn pairing_rejects_a_return_at_another_depth() {
        let lines: Vec<TraceLine> = [
            "     0 a(1): -> f",
            "     1 a(1):  -> g",
            "     2 a(1): <- f",
            "     3 a(1): <- x",
        ]
        .iter()
        .map(|l| parse_line(l))
        .collect();
        assert!(std::panic::catch_unwind(|| check_pairs(&lines)).is_err());
    }
}
