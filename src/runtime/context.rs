//! What a probe body can ask about the event that fired it.

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
}
