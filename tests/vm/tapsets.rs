//! rstap's tapsets on real kernels: syscall, syscall_any, kprocess and scheduler aliases
//! and the task functions; tcp, udp, netdev, vfs and signal aliases and the address
//! functions; each checked against the workload's report.

use crate::harness::{check_workload_trace, kernel_tests, Kernel, Scenario};
use crate::{network_checks, tapset_checks};

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::on_workload("tapsets", tapset_checks::SCRIPT),
        Scenario::on_workload("network-tapsets", network_checks::SCRIPT),
    ]
}

fn tapset_aliases_report_what_the_workload_did(kernel: Kernel) {
    check_workload_trace(kernel, "tapsets", tapset_checks::check);
}

fn network_tapsets_report_the_workload_connections_and_sizes(kernel: Kernel) {
    check_workload_trace(kernel, "network-tapsets", network_checks::check);
}

kernel_tests!(
    tapset_aliases_report_what_the_workload_did,
    network_tapsets_report_the_workload_connections_and_sizes
);
