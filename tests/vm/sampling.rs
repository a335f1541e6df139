//! Sampling on real kernels: `timer.profile` on every CPU (see `tests/support/sampling.rs`).

use crate::harness::{guest, kernel_tests, Kernel, Scenario};
use crate::sampling_checks;

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario::new(
        "sampling",
        format!(
            "cat >profile.stp <<'EOF'\n{}\nEOF\n\
             cp /boot/config-$(uname -r) $OUT/config\n\
             rstap -o trace -c \"socket-workload --rounds 300 --report $OUT/report\" profile.stp",
            sampling_checks::SCRIPT
        ),
    )]
}

fn the_workloads_samples_match_its_cpu_time(kernel: Kernel) {
    let Some(vm) = guest(kernel) else { return };
    let result = vm.scenario("sampling");
    result.assert_success();
    let hz = sampling_checks::hz_of_config(&result.file("config"));
    sampling_checks::check(
        &result.file("trace"),
        &result.file("report"),
        hz,
        &result.describe(),
    );
}

kernel_tests!(the_workloads_samples_match_its_cpu_time);
