//! Source-file probe points on the 6.1 guest, whose DWARF vmlinux the harness provides:
//! the seed scripts run unchanged, the probed set is what an independent listing says
//! net/socket.c declares, and the counts agree with the kernel's ftrace.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use gimli::{EndianSlice, RunTimeEndian};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

use crate::harness::{guest, Kernel, Scenario};
use crate::trace::{assert_accounted, check_pairs, oracle_counts, trace_lines, without_others};

const SEED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/seed");
const ROUNDS: u32 = 3;
const SOCKET_C: &str = r#"kernel.function("*@net/socket.c")"#;

/// A guest shell line that writes a seed script into the scenario's directory, unchanged.
fn seed_file(name: &str) -> String {
    let path = format!("{SEED_DIR}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(!text.contains("RSTAP_SEED_END"));
    format!("cat >{name} <<'RSTAP_SEED_END'\n{text}RSTAP_SEED_END\n")
}

/// Runs a seed script on the workload under the ftrace oracle, over the functions that
/// `rstap -l` says the script probes.
fn seed_scenario(name: &'static str, seed: &str) -> Scenario {
    Scenario::new(
        name,
        format!(
            "{}rstap -l '{SOCKET_C}' | sed 's/^kernel.function(\"\\([^@]*\\)@.*/\\1/' >functions\n\
             ftrace-count.sh functions -- rstap -o trace -c 'socket-workload --rounds {ROUNDS}' {seed} \
                 >oracle || exit\n\
             cp /proc/kallsyms kallsyms",
            seed_file(seed)
        ),
    )
    .only_on(Kernel::V6_1)
    .with_debuginfo()
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new(
            "source-list",
            format!(
                "rstap -l '{SOCKET_C}' >list || exit\n\
                 rstap -L '{SOCKET_C}' >list-variables || exit\n\
                 cp /sys/kernel/tracing/available_filter_functions traceable\n\
                 rstap -v -p 2 -e 'probe kernel.function(\"sock_init\"), \
                     kernel.function(\"sock_poll\") {{}}' 2>init-skipped"
            ),
        )
        .only_on(Kernel::V6_1)
        .with_debuginfo(),
        seed_scenario("source-seed", "socket-trace.stp"),
        seed_scenario("source-seed-addr", "socket-trace-addr.stp"),
        Scenario::new(
            "source-wrong-vmlinux",
            format!(
                "head -c 1000000 /usr/lib/debug/boot/vmlinux-$(uname -r) >truncated\n\
                     rstap -l '{SOCKET_C}' --vmlinux truncated"
            ),
        )
        .only_on(Kernel::V6_1)
        .with_debuginfo(),
    ]
}

/// The function symbols of the vmlinux that lie in the address ranges of the compile
/// unit of net/socket.c: an independent listing of what that file defines out of line,
/// made from the ELF symbol table and the unit's ranges only.
fn functions_defined_in_socket_c(vmlinux: &[u8]) -> BTreeSet<String> {
    let elf = object::File::parse(vmlinux).unwrap();
    let endian = if elf.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let section = |id: gimli::SectionId| -> Result<EndianSlice<'_, RunTimeEndian>, gimli::Error> {
        let data = elf
            .section_by_name(id.name())
            .and_then(|s| s.data().ok())
            .unwrap_or(&[]);
        Ok(EndianSlice::new(data, endian))
    };
    let dwarf = gimli::Dwarf::load(section).unwrap();
    let mut ranges: Vec<Range<u64>> = Vec::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next().unwrap() {
        let unit = dwarf.unit(header).unwrap();
        let name = unit
            .name
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "net/socket.c" {
            let mut unit_ranges = dwarf.unit_ranges(&unit).unwrap();
            while let Some(range) = unit_ranges.next().unwrap() {
                ranges.push(range.begin..range.end);
            }
        }
    }
    assert!(!ranges.is_empty(), "no net/socket.c unit in the vmlinux");
    elf.symbols()
        .filter(|symbol| {
            symbol.kind() == SymbolKind::Text
                && ranges.iter().any(|r| r.contains(&symbol.address()))
        })
        .filter_map(|symbol| symbol.name().ok().map(str::to_string))
        .filter(|name| {
            !name.starts_with("__pfx_") && !name.contains(".part.") && !name.contains(".cold")
        })
        .collect()
}

#[test]
fn probes_exactly_the_attachable_functions_net_socket_c_declares() {
    let Some(vm) = guest(Kernel::V6_1) else {
        return;
    };
    let result = vm.scenario("source-list");
    result.assert_success();
    let vmlinux = vm.map_vmlinux();
    let traceable: BTreeSet<String> = result
        .file("traceable")
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect();
    let expected: BTreeSet<String> = functions_defined_in_socket_c(&vmlinux)
        .into_iter()
        .filter(|name| traceable.contains(name))
        .map(|name| name.split('.').next().unwrap_or_default().to_string())
        .collect();

    let listing = result.file("list");
    let lines: Vec<&str> = listing.lines().collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(lines, sorted, "-l output is not sorted and unique");
    let listed: BTreeSet<String> = lines
        .iter()
        .map(|line| {
            let inner = line
                .strip_prefix("kernel.function(\"")
                .and_then(|rest| rest.strip_suffix("\")"))
                .unwrap_or_else(|| panic!("not a resolved probe point: {line}"));
            let (name, location) = inner.split_once('@').unwrap_or_else(|| panic!("{line}"));
            let (file, line_number) = location.split_once(':').unwrap_or_else(|| panic!("{line}"));
            assert_eq!(file, "net/socket.c", "{line}");
            line_number
                .parse::<u32>()
                .unwrap_or_else(|_| panic!("{line}"));
            name.to_string()
        })
        .collect();
    assert!(listed.len() > 100, "only {} functions listed", listed.len());
    assert_eq!(listed, expected);
    // sock_init is net/socket.c's initcall: still in kallsyms, long freed.
    let init_skipped = result.file("init-skipped");
    assert!(
        init_skipped
            .contains("rstap: skipped sock_init: init code, which the kernel freed after booting"),
        "{init_skipped}"
    );
    assert!(result
        .file("list-variables")
        .contains(r#"kernel.function("sock_poll@net/socket.c:"#));
    assert!(result.file("list-variables").contains("$file:struct file*"));
}

fn seed_runs_and_matches_the_oracle(scenario: &str) -> Vec<(String, String)> {
    let Some(vm) = guest(Kernel::V6_1) else {
        return Vec::new();
    };
    let result = vm.scenario(scenario);
    let lines = trace_lines(result);
    let pairs = check_pairs(&lines);
    assert!(
        lines.iter().all(|line| line.execname == "socket-workload"),
        "other processes traced"
    );
    let mut traced: BTreeMap<String, u64> = BTreeMap::new();
    for (function, _) in &pairs {
        let name = function.rsplit(", ").next().unwrap_or(function);
        *traced.entry(name.to_string()).or_insert(0) += 1;
    }
    let traced = without_others(traced);
    for syscall in [
        "__sys_socket",
        "__sys_connect",
        "__sys_accept4",
        "__sys_sendto",
        "__sys_recvfrom",
        "__sys_sendmsg",
        "__sys_recvmsg",
        "__sys_shutdown",
        "sock_poll",
        "sock_close",
    ] {
        assert!(
            traced.contains_key(syscall),
            "{syscall} missing from the trace"
        );
    }
    assert_accounted(&traced, &without_others(oracle_counts(result)), 2, result);
    pairs
}

#[test]
fn the_seed_script_runs_unchanged() {
    seed_runs_and_matches_the_oracle("source-seed");
}

#[test]
fn the_seed_addr_script_runs_unchanged() {
    let pairs = seed_runs_and_matches_the_oracle("source-seed-addr");
    for (call, ret) in &pairs {
        assert!(call.starts_with("0xffffffff"), "{call}");
        assert!(ret.starts_with("0xffffffff"), "{ret}");
    }
}

#[test]
fn a_truncated_vmlinux_is_a_clear_error() {
    let Some(vm) = guest(Kernel::V6_1) else {
        return;
    };
    let result = vm.scenario("source-wrong-vmlinux");
    assert_eq!(result.status, 1, "{}", result.stderr);
    assert!(
        result.stderr.starts_with("rstap: error: "),
        "{}",
        result.stderr
    );
    assert!(result.stderr.contains("truncated"), "{}", result.stderr);
    assert_eq!(result.stderr.lines().count(), 1, "{}", result.stderr);
}
