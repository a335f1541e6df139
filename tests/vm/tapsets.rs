//! rstap's tapsets on real kernels: syscall, syscall_any, kprocess and scheduler aliases
//! and the task functions, checked against the workload's report.

use crate::harness::{check_workload_trace, kernel_tests, Kernel, Scenario};
use crate::tapset_checks;

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario::on_workload("tapsets", tapset_checks::SCRIPT)]
}

fn tapset_aliases_report_what_the_workload_did(kernel: Kernel) {
    check_workload_trace(kernel, "tapsets", tapset_checks::check);
}

kernel_tests!(tapset_aliases_report_what_the_workload_did);
