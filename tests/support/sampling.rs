//! `timer.profile` on the socket workload, checked against the CPU time the workload says
//! it used and the kernel's tick rate: run natively (the build machines' kernel samples
//! perf events) and in both VMs.

/// Counts the workload's samples, in user space and in the kernel, and each kind of
/// sample whose task or address contradicts what the probe was told.
pub const SCRIPT: &str = r#"
global samples, user, kernel, named, other_task, user_in_kernel, kernel_in_user
probe timer.profile {
  if (pid() != target()) next
  samples++
  # The same process is first rstap's child, released to exec the shell that execs the
  # workload.
  name = execname()
  if (name != "socket-workload" && name != "sh" && name != "rstap") other_task++
  if (user_mode()) {
    user++
    if (addr() < 0) user_in_kernel++
  } else {
    kernel++
    if (probefunc() != "") named++
    if (addr() >= 0) kernel_in_user++
  }
}
probe end {
  printf("samples=%d user=%d kernel=%d named=%d other_task=%d user_in_kernel=%d kernel_in_user=%d\n",
         samples, user, kernel, named, other_task, user_in_kernel, kernel_in_user)
}
"#;

/// `key=value` numbers of a line.
fn numbers(line: &str) -> std::collections::BTreeMap<&str, i64> {
    line.split_whitespace()
        .filter_map(|field| field.split_once('='))
        .filter_map(|(key, value)| Some((key, value.parse().ok()?)))
        .collect()
}

/// The kernel's HZ, from its config as `CONFIG_HZ=250` gives it.
pub fn hz_of_config(config: &str) -> i64 {
    config
        .lines()
        .find_map(|line| line.strip_prefix("CONFIG_HZ="))
        .and_then(|hz| hz.trim().parse().ok())
        .unwrap_or_else(|| panic!("the kernel's config gives no CONFIG_HZ"))
}

/// Checks a trace of [`SCRIPT`] against the workload's report, at `hz` ticks a second.
pub fn check(trace: &str, report: &str, hz: i64, described: &str) {
    let cpu = report
        .lines()
        .find(|line| line.starts_with("cpu "))
        .map(numbers)
        .unwrap_or_else(|| panic!("no cpu line in the report: {report}"));
    let used_us = cpu["user_us"] + cpu["system_us"];
    let expected = used_us * hz / 1_000_000;
    assert!(
        expected >= 20,
        "too little CPU time to sample: {used_us} us\n{described}"
    );
    let counts = numbers(trace.lines().next().unwrap_or_default());
    let samples = counts["samples"];
    assert!(
        (expected / 2..=expected * 3 / 2).contains(&samples),
        "{samples} samples for {used_us} us of CPU time at HZ={hz} (expected about {expected})\n\
         {described}"
    );
    assert_eq!(counts["user"] + counts["kernel"], samples, "{described}");
    assert!(
        counts["kernel"] > 0,
        "the workload lives in system calls\n{described}"
    );
    assert_eq!(
        counts["named"], counts["kernel"],
        "every kernel address has a function"
    );
    for contradiction in ["other_task", "user_in_kernel", "kernel_in_user"] {
        assert_eq!(counts[contradiction], 0, "{contradiction}\n{described}");
    }
}
