//! Which kernel functions can be attached to at all: those ftrace can patch, as the
//! kernel lists them in `available_filter_functions`. fentry and kprobes on a function's
//! first instruction both need it.

use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Where tracefs may be mounted, newest convention first.
const AVAILABLE_FILTER_FUNCTIONS: &[&str] = &[
    "/sys/kernel/tracing/available_filter_functions",
    "/sys/kernel/debug/tracing/available_filter_functions",
];

/// Kernel functions ftrace can patch: the kernel's list as read, and the position of each
/// name in it, sorted by name (tens of thousands of names; one string for all of them).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceableFunctions {
    text: String,
    sorted: Vec<Range<u32>>,
}

impl TraceableFunctions {
    /// Reads the kernel's list; `None` when no tracefs is mounted or it cannot be read
    /// (the caller then lets the kernel refuse functions one by one).
    pub fn read() -> Option<Self> {
        AVAILABLE_FILTER_FUNCTIONS
            .iter()
            .find_map(|path| std::fs::read_to_string(Path::new(path)).ok())
            .map(Self::parse)
    }

    /// Parses `NAME` or `NAME [MODULE]` lines; module functions are left out.
    pub fn parse(text: String) -> Self {
        let mut sorted = Vec::new();
        let mut start = 0;
        for line in text.split_inclusive('\n') {
            let name = line.split_ascii_whitespace().next().unwrap_or_default();
            if !line.contains('[') && !name.is_empty() {
                let begin = start + (line.len() - line.trim_start().len());
                sorted.push(begin as u32..(begin + name.len()) as u32);
            }
            start += line.len();
        }
        sorted.sort_unstable_by(|a, b| {
            text[a.start as usize..a.end as usize].cmp(&text[b.start as usize..b.end as usize])
        });
        TraceableFunctions { text, sorted }
    }

    /// Whether every name lies within the text, on character boundaries: what a list read
    /// back from a cache must show before it is used.
    pub fn is_consistent(&self) -> bool {
        self.sorted.iter().all(|range| {
            range.start <= range.end
                && self
                    .text
                    .get(range.start as usize..range.end as usize)
                    .is_some()
        })
    }

    fn name(&self, range: &Range<u32>) -> &str {
        &self.text[range.start as usize..range.end as usize]
    }

    pub fn contains(&self, name: &str) -> bool {
        self.sorted
            .binary_search_by(|range| self.name(range).cmp(name))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_kernel_functions_only() {
        let functions = TraceableFunctions::parse(
            "sock_poll\n__sys_connect\nvirtnet_poll [virtio_net]\n".to_string(),
        );
        assert!(functions.contains("sock_poll"));
        assert!(functions.contains("__sys_connect"));
        assert!(!functions.contains("virtnet_poll"));
        assert!(!functions.contains("sock_i_uid"));
        assert!(functions.is_consistent());
        let broken = TraceableFunctions {
            text: "abc".into(),
            sorted: [1..9, 0..1].into(),
        };
        assert!(!broken.is_consistent());
    }
}
