//! The harness itself, proven on both kernels: the guest boots the fetched kernel, the
//! workload runs, the ftrace oracle counts the workload's socket calls exactly and the same
//! way twice, and a hung scenario is stopped without taking the boot down with it.

use std::collections::BTreeMap;

use crate::harness::{guest, kernel_tests, Kernel, Scenario};

const ROUNDS: u32 = 3;

/// Socket-path functions and how often one workload round calls each (see
/// `vm/workload/src/round.rs`): 4 sockets and a socketpair, 3 sends of which one `sendto`,
/// 3 `recv` and a `recvfrom` (both are recvfrom(2)), 5 polls, 7 descriptors closed.
const CALLS_PER_ROUND: &[(&str, u32)] = &[
    ("__sys_socket", 4),
    ("__sys_socketpair", 1),
    ("__sys_bind", 2),
    ("__sys_listen", 1),
    ("__sys_connect", 1),
    ("__sys_accept4", 1),
    ("__sys_getsockname", 3),
    ("__sys_getpeername", 1),
    ("__sys_setsockopt", 3),
    ("__sys_getsockopt", 2),
    ("__sys_sendto", 3),
    ("__sys_recvfrom", 4),
    ("__sys_sendmsg", 1),
    ("__sys_recvmsg", 1),
    ("__sys_shutdown", 2),
    ("sock_poll", 5),
    ("sock_close", 7),
];

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("smoke-uname", "uname -r"),
        Scenario::new(
            "smoke-workload",
            format!("socket-workload --rounds {ROUNDS}"),
        ),
        // All __sys_* and sock_* functions but sock_free_inode, which runs from RCU
        // callbacks whenever they fire and so varies from run to run.
        Scenario::new(
            "smoke-ftrace-twice",
            format!(
                "grep -E '^(__sys_|sock_)' /sys/kernel/tracing/available_filter_functions \
                   | cut -d' ' -f1 | grep -vx sock_free_inode >functions
                 for run in 1 2; do
                     ftrace-count.sh functions -- socket-workload --rounds {ROUNDS} >run$run \
                         || exit
                 done"
            ),
        ),
        Scenario::new(
            "smoke-timeout",
            "sleep 1000 & echo started; sleep 1000; echo not reached",
        )
        .with_timeout(2),
        Scenario::new("smoke-after-timeout", "echo still running"),
    ]
}

fn parse_counts(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .map(|line| {
            let (name, count) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("not a FUNCTION COUNT line: {line:?}"));
            (name.to_string(), count.parse().unwrap())
        })
        .collect()
}

fn boots_the_fetched_release(kernel: Kernel) {
    let Some(vm) = guest(kernel) else { return };
    let uname = vm.scenario("smoke-uname");
    uname.assert_success();
    assert_eq!(uname.stdout.trim(), vm.release);
    assert!(vm.boot_seconds > 0.0);
}

fn workload_exits_zero(kernel: Kernel) {
    let Some(vm) = guest(kernel) else { return };
    let workload = vm.scenario("smoke-workload");
    workload.assert_success();
    assert_eq!(workload.stderr, "");
}

fn ftrace_counts_are_exact_and_repeatable(kernel: Kernel) {
    let Some(vm) = guest(kernel) else { return };
    let result = vm.scenario("smoke-ftrace-twice");
    result.assert_success();
    let first = parse_counts(&result.file("run1"));
    let second = parse_counts(&result.file("run2"));
    assert_eq!(first, second, "two runs of the same workload differ");
    for &(function, per_round) in CALLS_PER_ROUND {
        assert_eq!(
            first.get(function).copied(),
            Some(u64::from(per_round * ROUNDS)),
            "{function}"
        );
    }
}

fn a_hung_scenario_is_killed_and_the_next_runs(kernel: Kernel) {
    let Some(vm) = guest(kernel) else { return };
    let hung = vm.scenario("smoke-timeout");
    assert!(hung.timed_out);
    assert_eq!(hung.status, 137);
    assert_eq!(hung.stdout, "started\n");
    assert!(hung.seconds < 10.0, "took {}s", hung.seconds);
    let next = vm.scenario("smoke-after-timeout");
    next.assert_success();
    assert_eq!(next.stdout, "still running\n");
}

kernel_tests!(
    boots_the_fetched_release,
    workload_exits_zero,
    ftrace_counts_are_exact_and_repeatable,
    a_hung_scenario_is_killed_and_the_next_runs,
);
