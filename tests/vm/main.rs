//! Tests that need a real kernel: each kernel boots once under qemu, runs every scenario of
//! this binary, and the tests assert on what each scenario left behind. See
//! `harness.rs` for how, and `vm/` for the scripts it drives.

mod attach;
mod hardening;
mod harness;
mod sampling;
#[path = "../support/sampling.rs"]
mod sampling_checks;
mod smoke;
mod source;
#[path = "../support/tapsets.rs"]
mod tapset_checks;
mod tapsets;
mod targets;
mod trace;
#[path = "../support/tracepoints.rs"]
mod tracepoint_checks;
mod tracepoints;
#[path = "../support/workload.rs"]
mod workload;

use harness::Scenario;

/// Every scenario any test module wants run; all of them run in each kernel's one boot.
fn all_scenarios() -> Vec<Scenario> {
    let mut scenarios = smoke::scenarios();
    scenarios.extend(trace::scenarios());
    scenarios.extend(source::scenarios());
    scenarios.extend(attach::scenarios());
    scenarios.extend(hardening::scenarios());
    scenarios.extend(targets::scenarios());
    scenarios.extend(tracepoints::scenarios());
    scenarios.extend(tapsets::scenarios());
    scenarios.extend(sampling::scenarios());
    scenarios
}
