//! Tracepoints on real kernels: raw tracepoints with their arguments typed by BTF, and a
//! syscall event read through its trace record, checked against the workload's report.

use crate::harness::{check_workload_trace, kernel_tests, Kernel, Scenario};
use crate::tracepoint_checks;

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario::on_workload(
        "tracepoints",
        tracepoint_checks::SCRIPT,
    )]
}

fn tracepoints_report_what_the_workload_did(kernel: Kernel) {
    check_workload_trace(kernel, "tracepoints", tracepoint_checks::check);
}

kernel_tests!(tracepoints_report_what_the_workload_did);
