//! Kernel functions rstap never probes, whatever the script asks: tracing them would
//! recurse into the probe itself or run where a probe must not (locking, preemption and
//! interrupt bookkeeping, the BPF, ftrace and kprobe machinery).

use super::glob::Glob;

/// Patterns and why they are denied. Glob syntax, as in probe points.
const DENIED: &[(&str, &str)] = &[
    ("bpf_*", "part of the BPF machinery that runs the probes"),
    ("__bpf_*", "part of the BPF machinery that runs the probes"),
    ("*ftrace*", "part of the function tracing machinery"),
    ("*kprobe*", "part of the kprobe machinery"),
    ("rethook_*", "part of the kretprobe machinery"),
    ("arch_rethook_*", "part of the kretprobe machinery"),
    ("perf_*", "part of the perf event machinery kprobes use"),
    ("_raw_spin_*", "locking primitive used by the probes"),
    ("_raw_read_*", "locking primitive used by the probes"),
    ("_raw_write_*", "locking primitive used by the probes"),
    ("queued_spin_*", "locking primitive used by the probes"),
    (
        "native_queued_spin_*",
        "locking primitive used by the probes",
    ),
    ("lock_acquire*", "lock tracking used by the probes"),
    ("lock_release*", "lock tracking used by the probes"),
    ("preempt_count_*", "preemption bookkeeping"),
    ("migrate_disable", "preemption bookkeeping"),
    ("migrate_enable", "preemption bookkeeping"),
    (
        "__rcu_read_lock",
        "RCU read-side bookkeeping used by the probes",
    ),
    (
        "__rcu_read_unlock",
        "RCU read-side bookkeeping used by the probes",
    ),
    (
        "rcu_read_lock_*",
        "RCU read-side bookkeeping used by the probes",
    ),
    ("trace_hardirqs_*", "interrupt state tracking"),
    ("irq_enter*", "interrupt entry"),
    ("irq_exit*", "interrupt exit"),
    ("do_int3*", "breakpoint handling kprobes rely on"),
    ("exc_*", "exception entry"),
    ("asm_*", "low-level entry code"),
    ("native_*", "paravirtualisation primitive"),
    ("__switch_to*", "context switch"),
    ("default_idle*", "idle loop"),
    ("arch_cpu_idle*", "idle loop"),
];

/// The compiled deny list.
#[derive(Debug)]
pub struct DenyList {
    rules: Vec<(Glob, &'static str)>,
}

impl Default for DenyList {
    fn default() -> Self {
        let rules = DENIED
            .iter()
            .map(|&(pattern, reason)| {
                let glob = Glob::new(pattern).unwrap_or_else(|err| {
                    panic!("built-in deny pattern {pattern:?} is invalid: {err}")
                });
                (glob, reason)
            })
            .collect();
        DenyList { rules }
    }
}

impl DenyList {
    /// Why `function` must not be probed, if it must not.
    pub fn reason(&self, function: &str) -> Option<&'static str> {
        self.rules
            .iter()
            .find(|(glob, _)| glob.matches(function))
            .map(|&(_, reason)| reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denies_probe_machinery_and_allows_socket_functions() {
        let deny = DenyList::default();
        assert!(deny.reason("bpf_ringbuf_reserve").is_some());
        assert!(deny.reason("_raw_spin_lock_irqsave").is_some());
        assert!(deny.reason("kprobe_ftrace_handler").is_some());
        assert!(deny.reason("preempt_count_add").is_some());
        for allowed in ["sock_poll", "__sys_connect", "tcp_sendmsg", "sock_sendmsg"] {
            assert_eq!(deny.reason(allowed), None, "{allowed}");
        }
    }
}
