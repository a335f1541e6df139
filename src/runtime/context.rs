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
    /// The `-x`/`-c` process id, or 0.
    fn target(&self) -> i64;
}
