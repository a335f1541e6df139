//! Which kernel functions can be attached to at all: those ftrace can patch, as the
//! kernel lists them in `available_filter_functions`. fentry and kprobes on a function's
//! first instruction both need it.

use std::collections::HashSet;
use std::path::Path;

/// Where tracefs may be mounted, newest convention first.
const AVAILABLE_FILTER_FUNCTIONS: &[&str] = &[
    "/sys/kernel/tracing/available_filter_functions",
    "/sys/kernel/debug/tracing/available_filter_functions",
];

/// Kernel functions ftrace can patch.
#[derive(Debug, Default)]
pub struct TraceableFunctions {
    names: HashSet<String>,
}

impl TraceableFunctions {
    /// Reads the kernel's list; `None` when no tracefs is mounted or it cannot be read
    /// (the caller then lets the kernel refuse functions one by one).
    pub fn read() -> Option<Self> {
        AVAILABLE_FILTER_FUNCTIONS
            .iter()
            .find_map(|path| std::fs::read_to_string(Path::new(path)).ok())
            .map(|text| Self::parse(&text))
    }

    /// Parses `NAME` or `NAME [MODULE]` lines; module functions are left out.
    pub fn parse(text: &str) -> Self {
        let names = text
            .lines()
            .filter(|line| !line.contains('['))
            .filter_map(|line| line.split_ascii_whitespace().next())
            .map(str::to_string)
            .collect();
        TraceableFunctions { names }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_kernel_functions_only() {
        let functions =
            TraceableFunctions::parse("sock_poll\n__sys_connect\nvirtnet_poll [virtio_net]\n");
        assert!(functions.contains("sock_poll"));
        assert!(functions.contains("__sys_connect"));
        assert!(!functions.contains("virtnet_poll"));
        assert!(!functions.contains("sock_i_uid"));
    }
}
