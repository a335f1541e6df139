//! Tests that need a real kernel: each kernel boots once under qemu, runs every scenario of
//! this binary, and the tests assert on what each scenario left behind. See
//! `harness.rs` for how, and `vm/` for the scripts it drives.

mod attach;
mod examples;
#[allow(dead_code)] // shared with tests/corpus.rs, which uses other parts of it
#[path = "../support/examples.rs"]
mod examples_support;
mod hardening;
mod harness;
#[path = "../support/network_tapsets.rs"]
mod network_checks;
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
/// `RSTAP_VM_SCENARIOS=NAME,...` keeps only the scenarios named, a debugging aid for one
/// test (`RSTAP_VM_SCENARIOS=examples cargo test --test vm examples`): the tests of the
/// others then fail, finding no results.
fn all_scenarios() -> Vec<Scenario> {
    let mut scenarios = every_scenario();
    if let Ok(names) = std::env::var("RSTAP_VM_SCENARIOS") {
        let names: Vec<&str> = names.split(',').map(str::trim).collect();
        scenarios.retain(|s| names.contains(&s.name));
    }
    scenarios
}

fn every_scenario() -> Vec<Scenario> {
    let mut scenarios = smoke::scenarios();
    scenarios.extend(trace::scenarios());
    scenarios.extend(source::scenarios());
    scenarios.extend(attach::scenarios());
    scenarios.extend(hardening::scenarios());
    scenarios.extend(targets::scenarios());
    scenarios.extend(tracepoints::scenarios());
    scenarios.extend(tapsets::scenarios());
    scenarios.extend(sampling::scenarios());
    scenarios.extend(examples::scenarios());
    scenarios
}
