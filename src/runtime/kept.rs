//! What `.return` probes keep from their function's entry (`@entry(expr)`, the parameters
//! they read), per thread and per call: pushed at each entry, taken back at the return, so
//! that nested and recursive calls each get their own.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::context::Kept;

/// Threads with kept values below which exited threads are not looked for (as for
/// `thread_indent`'s state).
const SWEEP_FLOOR: usize = 1024;

/// One probe's values for one function, on one thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Owner {
    tid: i64,
    function: usize,
    probe: usize,
}

#[derive(Debug)]
pub struct KeptAtEntry {
    /// The calls in progress, innermost last.
    calls: HashMap<Owner, Vec<Vec<Kept>>>,
    sweep_at: usize,
    /// Returns whose entry was not seen (rstap attached inside the call, or the entry was
    /// lost): their `.return` bodies do not run, as a kretprobe's would not.
    pub returns_without_entry: u64,
}

impl Default for KeptAtEntry {
    fn default() -> Self {
        KeptAtEntry {
            calls: HashMap::new(),
            sweep_at: SWEEP_FLOOR,
            returns_without_entry: 0,
        }
    }
}

impl KeptAtEntry {
    /// Keeps what `probe` evaluated at `function`'s entry on thread `tid`.
    pub fn push(&mut self, tid: i64, function: usize, probe: usize, kept: Vec<Kept>) {
        let owner = Owner {
            tid,
            function,
            probe,
        };
        self.calls.entry(owner).or_default().push(kept);
    }

    /// What the innermost call of `function` on `tid` kept for `probe`, taken back at its
    /// return; `None` (and counted) if its entry was not seen.
    pub fn take(&mut self, tid: i64, function: usize, probe: usize) -> Option<Vec<Kept>> {
        let owner = Owner {
            tid,
            function,
            probe,
        };
        let kept = match self.calls.entry(owner) {
            Entry::Occupied(mut calls) => {
                let kept = calls.get_mut().pop();
                if calls.get().is_empty() {
                    calls.remove();
                }
                kept
            }
            Entry::Vacant(_) => None,
        };
        if kept.is_none() {
            self.returns_without_entry += 1;
        }
        kept
    }

    /// Drops what exited threads kept, once the entries held have doubled since the last
    /// sweep; returns how many were dropped.
    pub fn release_exited_threads(&mut self, mut alive: impl FnMut(i64) -> bool) -> usize {
        if self.calls.len() < self.sweep_at {
            return 0;
        }
        let before = self.calls.len();
        self.calls.retain(|owner, _| alive(owner.tid));
        self.sweep_at = (2 * self.calls.len()).max(SWEEP_FLOOR);
        before - self.calls.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_calls_each_get_their_own() {
        let mut kept = KeptAtEntry::default();
        kept.push(7, 0, 1, vec![Kept::Int(10)]);
        kept.push(7, 0, 1, vec![Kept::Int(20)]);
        kept.push(8, 0, 1, vec![Kept::Int(30)]);
        assert_eq!(kept.take(7, 0, 1), Some(vec![Kept::Int(20)]));
        assert_eq!(kept.take(8, 0, 1), Some(vec![Kept::Int(30)]));
        assert_eq!(kept.take(7, 0, 1), Some(vec![Kept::Int(10)]));
        assert_eq!(kept.returns_without_entry, 0);
        assert_eq!(kept.take(7, 0, 1), None);
        assert_eq!(kept.take(7, 0, 2), None);
        assert_eq!(kept.returns_without_entry, 2);
        assert!(kept.calls.is_empty(), "finished calls leave nothing behind");
    }

    #[test]
    fn exited_threads_are_swept() {
        let mut kept = KeptAtEntry::default();
        for tid in 0..SWEEP_FLOOR as i64 {
            kept.push(tid, 0, 0, Vec::new());
        }
        assert_eq!(
            kept.release_exited_threads(|tid| tid < 10),
            SWEEP_FLOOR - 10
        );
        assert_eq!(kept.calls.len(), 10);
    }
}
