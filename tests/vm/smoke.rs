//! The harness itself, proven on both kernels: the guest boots the fetched kernel, the
//! workload runs, the ftrace oracle counts the workload's socket calls exactly and the same
//! way twice, a hung scenario is stopped without taking the boot down with it, and the
//! kernel's debug vmlinux reaches the guest where SystemTap looks for it.

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
        // Twice in the task's own context, where counts repeat exactly, then once more
        // with softirqs on the task counted as well, which adds but never removes calls.
        Scenario::new(
            "smoke-ftrace",
            format!(
                "grep -E '^(__sys_|sock_)' /sys/kernel/tracing/available_filter_functions \
                   | cut -d' ' -f1 >functions
                 for run in 1 2; do
                     ftrace-count.sh --task-only functions -- \
                         socket-workload --rounds {ROUNDS} >task$run || exit
                 done
                 ftrace-count.sh functions -- socket-workload --rounds {ROUNDS} >all"
            ),
        ),
        Scenario::new(
            "smoke-timeout",
            "sleep 1000 & echo started; sleep 1000; echo not reached",
        )
        .with_timeout(2),
        Scenario::new("smoke-after-timeout", "echo still running"),
        Scenario::new(
            "smoke-debuginfo",
            "cp /sys/kernel/notes notes && stat -c %s /usr/lib/debug/boot/vmlinux-$(uname -r)",
        )
        .with_debuginfo()
        // 6.1 is the kernel whose DWARF the project resolves source-file probes against;
        // carrying 590 MB costs the boot several seconds under TCG.
        .only_on(Kernel::V6_1),
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
    let result = vm.scenario("smoke-ftrace");
    result.assert_success();
    let first = parse_counts(&result.file("task1"));
    let second = parse_counts(&result.file("task2"));
    let all = parse_counts(&result.file("all"));
    assert_eq!(first, second, "two runs of the same workload differ");
    for &(function, per_round) in CALLS_PER_ROUND {
        let expected = Some(u64::from(per_round * ROUNDS));
        assert_eq!(first.get(function).copied(), expected, "{function}");
        assert_eq!(all.get(function).copied(), expected, "{function}");
    }
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        first.keys().collect::<Vec<_>>()
    );
    for (function, count) in &first {
        assert!(all[function] >= *count, "{function}: {all:?}");
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

/// The GNU build-id among ELF notes laid out as in /sys/kernel/notes.
fn gnu_build_id(mut notes: &[u8]) -> Option<&[u8]> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let padded = |n: usize| n.div_ceil(4) * 4;
    while notes.len() >= 12 {
        let word = |at: usize| u32::from_le_bytes(notes[at..at + 4].try_into().unwrap());
        let (name_size, desc_size, kind) = (word(0) as usize, word(4) as usize, word(8));
        let desc_start = 12 + padded(name_size);
        let next = desc_start + padded(desc_size);
        if next > notes.len() {
            return None;
        }
        if kind == NT_GNU_BUILD_ID && &notes[12..12 + name_size] == b"GNU\0" {
            return Some(&notes[desc_start..desc_start + desc_size]);
        }
        notes = &notes[next..];
    }
    None
}

#[test]
fn the_6_1_guest_has_the_running_kernels_debuginfo() {
    let Some(vm) = guest(Kernel::V6_1) else {
        return;
    };
    let result = vm.scenario("smoke-debuginfo");
    result.assert_success();
    let vmlinux = vm.map_vmlinux();
    assert_eq!(result.stdout.trim(), vmlinux.len().to_string());

    let notes = result.file_bytes("notes");
    let running = gnu_build_id(&notes).expect("the running kernel has a build-id");
    let object = object::File::parse(&*vmlinux).unwrap();
    let built = object::Object::build_id(&object).unwrap();
    assert_eq!(Some(running), built);
}

kernel_tests!(
    boots_the_fetched_release,
    workload_exits_zero,
    ftrace_counts_are_exact_and_repeatable,
    a_hung_scenario_is_killed_and_the_next_runs,
);

#[test]
fn build_id_is_found_among_other_notes() {
    let mut notes = Vec::new();
    for (name, kind, desc) in [
        (&b"Xen\0"[..], 1u32, &[7u8, 7, 7][..]),
        (b"GNU\0", 3, &[1, 2, 3, 4, 5]),
    ] {
        notes.extend((name.len() as u32).to_le_bytes());
        notes.extend((desc.len() as u32).to_le_bytes());
        notes.extend(kind.to_le_bytes());
        notes.extend(name);
        notes.extend(desc);
        notes.resize(notes.len().div_ceil(4) * 4, 0);
    }
    assert_eq!(gnu_build_id(&notes), Some(&[1u8, 2, 3, 4, 5][..]));
    assert_eq!(gnu_build_id(&notes[..notes.len() - 4]), None);
}
