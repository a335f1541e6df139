//! What a probe body can ask about the event that fired it.

use crate::resolve::kallsyms::KernelSymbols;

/// The facts of one event, supplied by whoever delivers events (the kernel side, or a test).
pub trait ProbeContext {
    fn tid(&self) -> i64;
    fn pid(&self) -> i64;
    fn cpu(&self) -> i64;
    /// The task's comm, at most 15 bytes.
    fn execname(&self) -> &str;
    /// The probed function's address at entry, the return address in `.return`; 0 in begin/end.
    fn addr(&self) -> u64;
    /// The symbol containing `addr()`; "" in begin/end.
    fn probefunc(&self) -> &str;
    /// The probed function's name.
    fn ppfunc(&self) -> &str;
    /// The resolved probe point, e.g. `kernel.function("sock_poll@net/socket.c:1263").call`.
    fn pp(&self) -> &str;
    /// The event's wall-clock time in microseconds.
    fn gettimeofday_us(&self) -> i64;
    /// The event's wall-clock time in nanoseconds; contexts that know it no better than
    /// to the microsecond keep this default.
    fn gettimeofday_ns(&self) -> i64 {
        self.gettimeofday_us() * 1_000
    }
    /// The event's CLOCK_MONOTONIC time; the default, now, is right where the body runs
    /// as the event happens (begin, end, timers).
    fn monotonic_ns(&self) -> i64 {
        super::dispatch::clock_ns(libc::CLOCK_MONOTONIC)
    }
    /// The `-x`/`-c` process id, or 0.
    fn target(&self) -> i64;
    /// Whether the event interrupted the task in user space: only a sample can.
    fn user_mode(&self) -> bool {
        false
    }
    /// What the probe's target read number `index` found at the event (see
    /// `script::ir::TargetRead`). Only kernel events carry any: the script's checks refuse
    /// target variables in every other probe.
    fn target_read(&self, index: usize) -> Result<TargetValue<'_>, ReadFault> {
        Err(ReadFault::NotCarried(index))
    }
    /// `@defined` number `index`: whether its target expression resolved in the probed
    /// function. Nothing resolves outside kernel events.
    fn target_defined(&self, _index: usize) -> bool {
        false
    }
    /// The kernel's symbols, which name addresses for `symname()` and the like.
    fn kernel_symbols(&self) -> Option<&KernelSymbols> {
        None
    }
    /// In a procfs `.write` probe, the text written to the file.
    fn procfs_written(&self) -> &[u8] {
        b""
    }
    /// In a `.return` probe, the probe's entry value number `index` as the function's entry
    /// left it (see `script::ir::CheckedProbe::entry_values`).
    fn entry_value(&self, _index: usize) -> Option<&Kept> {
        None
    }
}

/// Reads of kernel memory a body makes when it runs, after its event (see
/// `script::ir::LateRead`), by whoever can make them: the kernel side, or a test.
pub trait LateMemory {
    /// Late read number `read` from `address`.
    fn read(&mut self, read: usize, address: u64) -> Result<Kept, ReadFault>;
}

/// A value evaluated at a function's entry and kept for its return probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    Int(i64),
    Str(Vec<u8>),
}

/// A target read's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetValue<'a> {
    Int(i64),
    Str(&'a [u8]),
    /// Text made for the read (`$$parms`).
    Owned(Vec<u8>),
}

/// A target read that gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadFault {
    /// The kernel could not read an address on the way (SystemTap's words).
    #[error("read fault [man error::fault] at 0x{0:x}")]
    Memory(u64),
    /// `kernel_string()` and friends could not copy the string.
    #[error("{function} copy fault at 0x{address:x} [man error::fault]")]
    Copy {
        function: &'static str,
        address: u64,
    },
    #[error("the event carries no value for target read {0}: an rstap bug, please report it")]
    NotCarried(usize),
    /// No reader of kernel memory was set up: never expected where the script has late reads.
    #[error("rstap cannot read kernel memory after the event in this run: an rstap bug, please report it")]
    NoLateMemory,
    /// A read `@defined` guards, which does not resolve in this function.
    #[error("{0}")]
    Unavailable(String),
}
