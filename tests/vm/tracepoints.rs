//! Tracepoints on real kernels: raw tracepoints with their arguments typed by BTF, and a
//! syscall event read through its trace record, checked against the workload's report.

use crate::harness::{guest, kernel_tests, Kernel, Scenario};
use crate::tracepoint_checks;

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario::new(
        "tracepoints",
        format!(
            "cat >tracepoints.stp <<'EOF'\n{}\nEOF\n\
             rstap -o trace -c \"socket-workload --rounds 2 --report $OUT/report\" \
                 tracepoints.stp",
            tracepoint_checks::SCRIPT
        ),
    )]
}

fn tracepoints_report_what_the_workload_did(kernel: Kernel) {
    let Some(vm) = guest(kernel) else { return };
    let result = vm.scenario("tracepoints");
    result.assert_success();
    tracepoint_checks::check(
        &result.file("trace"),
        &result.file("report"),
        &result.describe(),
    );
}

kernel_tests!(tracepoints_report_what_the_workload_did);
