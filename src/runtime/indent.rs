//! State behind `thread_indent()`, `indent()` and their `_depth` forms, as SystemTap's
//! `indent.stp` tapset keeps it: a nesting counter and a base timestamp per thread (and one
//! more pair for the thread-less `indent()`).
//!
//! Beside each thread's counter lies the stack of its calls still open, of functions probed
//! on both sides. The kernel can skip a probe hit (see `recursion_misses` in the kernel
//! module); without the stack, one missed return would leave the counter one too deep for
//! every later line of the thread. With it, a return finds its call and puts the counter
//! back where that call left it.

use rustc_hash::FxHashMap;

use crate::output::printf::{write_decimal, Arg, Format};

/// Up to this many threads with state, no sweep runs: a sweep asks about every thread.
const SWEEP_FLOOR: usize = 1024;

/// More open calls than a kernel stack can nest (16 KiB, at least 16 bytes a frame): past
/// this the oldest are dropped, since they can only be calls that never return (do_exit)
/// or whose returns were all missed.
const MAX_OPEN_CALLS: usize = 1024;

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    depth: i64,
    base_us: i64,
}

impl Counter {
    /// Applies `delta` and returns the indentation width. Positive deltas count before the
    /// width is taken, negative ones after, so a call and its return line up.
    fn step(&mut self, delta: i64) -> i64 {
        let x = self.depth.wrapping_add(delta.max(0));
        self.depth = self.depth.wrapping_add(delta);
        if x > 0 {
            x - 1
        } else {
            0
        }
    }

    fn step_timed(&mut self, delta: i64, now_us: i64) -> (i64, i64) {
        if self.depth == 0 {
            self.base_us = now_us;
        }
        let width = self.step(delta);
        (now_us.wrapping_sub(self.base_us), width)
    }
}

/// A call whose entry was seen and whose return was not yet.
#[derive(Debug, Clone, Copy)]
struct OpenCall {
    /// The function, as the caller numbers them.
    function: usize,
    /// The thread's counter before the call's entry probes ran.
    depth_before: i64,
}

#[derive(Debug, Default)]
struct ThreadState {
    counter: Counter,
    open_calls: Vec<OpenCall>,
}

/// What [`IndentState::returning`] found: whether the returning call's entry was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "pass it to IndentState::returned once the return probes ran"]
pub enum ReturnOf {
    /// The entry was seen: the return probes undo what its entry probes did.
    SeenCall,
    /// The entry was missed: the counter goes back to this once the return probes ran.
    UnseenCall { depth_before: i64 },
}

#[derive(Debug)]
pub struct IndentState {
    /// Keyed by tid: a hash meant for small integers, as this lookup runs for every event.
    threads: FxHashMap<i64, ThreadState>,
    global: Counter,
    global_format: Format,
    /// The number of threads with state at which the next sweep for exited ones runs.
    sweep_at: usize,
    /// MAXSTRINGLEN, which an indent string is cut at.
    max_string_len: usize,
}

fn plain_format(text: &str) -> Format {
    // Both formats are fixed and valid; an error here is a bug caught by the tests.
    Format::parse(text.as_bytes(), &vec![false; text.len()])
        .unwrap_or_else(|e| panic!("bad built-in format {text:?}: {e}"))
}

/// What `Format` makes of `"%6d %s(%d):%-*s"` with (elapsed, execname, tid, width, ""),
/// at most `limit` bytes of it, written without reading the format: this runs for every
/// event of the seed scripts.
fn write_thread_indent(
    out: &mut Vec<u8>,
    elapsed: i64,
    execname: &[u8],
    tid: i64,
    width: i64,
    limit: usize,
) {
    let start = out.len();
    // A field's width, like the rest, stops at the limit.
    write_decimal(out, elapsed, 6.min(limit));
    out.push(b' ');
    out.extend_from_slice(execname);
    out.push(b'(');
    write_decimal(out, tid, 0);
    out.extend_from_slice(b"):");
    // `%-*s` takes its width as a C int, clamped to [0, what the limit leaves].
    let room = limit.saturating_sub(out.len() - start);
    let pad = ((width as i32).max(0) as usize).min(room);
    out.resize(out.len() + pad, b' ');
    out.truncate(start + limit.min(out.len() - start));
}

impl IndentState {
    pub fn new(max_string_len: usize) -> Self {
        IndentState {
            max_string_len,
            threads: FxHashMap::default(),
            global: Counter::default(),
            global_format: plain_format("%6d :%-*s"),
            sweep_at: SWEEP_FLOOR,
        }
    }

    /// `thread_indent(delta)`: appends `"%6d %s(%d):%-*s"` of (µs since the thread's outermost
    /// call, execname, tid, width, "") to `out`, cut at SystemTap's string length.
    pub fn thread_indent(
        &mut self,
        tid: i64,
        execname: &[u8],
        delta: i64,
        now_us: i64,
        out: &mut Vec<u8>,
    ) {
        let (elapsed, width) = self
            .threads
            .entry(tid)
            .or_default()
            .counter
            .step_timed(delta, now_us);
        write_thread_indent(out, elapsed, execname, tid, width, self.max_string_len - 1);
    }

    /// `indent(delta)`: like `thread_indent` with one counter for all threads and no name.
    pub fn indent(&mut self, delta: i64, now_us: i64, out: &mut Vec<u8>) {
        let (elapsed, width) = self.global.step_timed(delta, now_us);
        let args = [Arg::Int(elapsed), Arg::Int(width), Arg::Str(b"")];
        self.global_format
            .write(&args, out, self.max_string_len - 1);
    }

    /// `thread_indent_depth(delta)`: the width alone; the base time is left alone.
    pub fn thread_indent_depth(&mut self, tid: i64, delta: i64) -> i64 {
        self.threads.entry(tid).or_default().counter.step(delta)
    }

    /// Notes that `function` was entered on `tid`, before its entry probes run.
    pub fn entering(&mut self, tid: i64, function: usize) {
        let thread = self.threads.entry(tid).or_default();
        if thread.open_calls.len() >= MAX_OPEN_CALLS {
            thread.open_calls.drain(..MAX_OPEN_CALLS / 2);
        }
        thread.open_calls.push(OpenCall {
            function,
            depth_before: thread.counter.depth,
        });
    }

    /// Notes that `function` returns on `tid`, before its return probes run. Calls it made
    /// whose returns were missed are closed, and the counter is put back to where the
    /// first of them found it, as if their return probes had run.
    pub fn returning(&mut self, tid: i64, function: usize) -> ReturnOf {
        let thread = self.threads.entry(tid).or_default();
        let Some(open) = thread
            .open_calls
            .iter()
            .rposition(|call| call.function == function)
        else {
            return ReturnOf::UnseenCall {
                depth_before: thread.counter.depth,
            };
        };
        if let Some(first_missed) = thread.open_calls.get(open + 1) {
            thread.counter.depth = first_missed.depth_before;
        }
        thread.open_calls.truncate(open);
        ReturnOf::SeenCall
    }

    /// Completes [`IndentState::returning`] once the return probes ran: a return whose
    /// entry was missed leaves the counter as it found it, so that the missing entry's
    /// step is not undone twice.
    pub fn returned(&mut self, tid: i64, found: ReturnOf) {
        if let ReturnOf::UnseenCall { depth_before } = found {
            self.threads.entry(tid).or_default().counter.depth = depth_before;
        }
    }

    /// `indent_depth(delta)`.
    pub fn indent_depth(&mut self, delta: i64) -> i64 {
        self.global.step(delta)
    }

    /// Drops the state of threads that `alive` says have exited, once the number of threads
    /// with state has doubled since the last sweep. State then stays within twice the live
    /// threads (or [`SWEEP_FLOOR`]), and each sweep is paid for by the new threads before
    /// it. Returns how many threads' state was released.
    pub fn release_exited_threads(&mut self, mut alive: impl FnMut(i64) -> bool) -> usize {
        if self.threads.len() < self.sweep_at {
            return 0;
        }
        let before = self.threads.len();
        self.threads.retain(|&tid, _| alive(tid));
        self.sweep_at = (2 * self.threads.len()).max(SWEEP_FLOOR);
        self.threads.shrink_to(self.sweep_at);
        before - self.threads.len()
    }

    /// How many threads have state now.
    pub fn threads_held(&self) -> usize {
        self.threads.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::printf::MAX_STRING_LEN;

    #[test]
    fn the_thread_indent_writer_prints_what_the_format_does() {
        let format = plain_format("%6d %s(%d):%-*s");
        for elapsed in [0, 7, 123_456, 1_234_567, -5, i64::MIN, i64::MAX] {
            for (tid, width) in [(1, 0), (4242, 3), (-1, 17), (i64::MAX, -4), (9, 1 << 33)] {
                for limit in [0, 5, 12, 30, MAX_STRING_LEN - 1] {
                    let args = [
                        Arg::Int(elapsed),
                        Arg::Str(b"socket-workload"),
                        Arg::Int(tid),
                        Arg::Int(width),
                        Arg::Str(b""),
                    ];
                    let (mut want, mut got) = (b"x".to_vec(), b"x".to_vec());
                    format.write(&args, &mut want, limit);
                    write_thread_indent(&mut got, elapsed, b"socket-workload", tid, width, limit);
                    assert_eq!(
                        String::from_utf8_lossy(&got),
                        String::from_utf8_lossy(&want),
                        "{elapsed} {tid} {width} {limit}"
                    );
                }
            }
        }
    }

    fn line(state: &mut IndentState, tid: i64, comm: &str, delta: i64, now: i64) -> String {
        let mut out = Vec::new();
        state.thread_indent(tid, comm.as_bytes(), delta, now, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn call_and_return_line_up() {
        let mut s = IndentState::new(MAX_STRING_LEN);
        assert_eq!(line(&mut s, 1, "init", 1, 100), "     0 init(1):");
        assert_eq!(line(&mut s, 1, "init", 1, 103), "     3 init(1): ");
        assert_eq!(line(&mut s, 1, "init", -1, 110), "    10 init(1): ");
        assert_eq!(line(&mut s, 1, "init", -1, 115), "    15 init(1):");
        // Back at depth 0: the next call starts a new base time.
        assert_eq!(line(&mut s, 1, "init", 1, 500), "     0 init(1):");
    }

    #[test]
    fn unmatched_return_goes_negative_and_stays_out_of_step() {
        let mut s = IndentState::new(MAX_STRING_LEN);
        assert_eq!(line(&mut s, 7, "a", -1, 50), "     0 a(7):");
        // Counter is -1: not zero, so the base stays at 50.
        assert_eq!(line(&mut s, 7, "a", 1, 60), "    10 a(7):");
        assert_eq!(line(&mut s, 7, "a", 1, 70), "     0 a(7):");
    }

    #[test]
    fn depth_functions_share_the_counter_but_not_the_clock() {
        let mut s = IndentState::new(MAX_STRING_LEN);
        assert_eq!(s.thread_indent_depth(3, 1), 0);
        assert_eq!(s.thread_indent_depth(3, 1), 1);
        // The base time was never set, so it counts from 0, as in SystemTap.
        assert_eq!(line(&mut s, 3, "x", -1, 9), "     9 x(3): ");
        assert_eq!(s.indent_depth(2), 1);
        assert_eq!(s.indent_depth(-5), 1);
        assert_eq!(s.indent_depth(0), 0);
    }

    #[test]
    fn global_indent_has_no_name() {
        let mut s = IndentState::new(MAX_STRING_LEN);
        let mut out = Vec::new();
        s.indent(1, 10, &mut out);
        s.indent(1, 12, &mut out);
        assert_eq!(out, b"     0 :     2 : ");
    }

    #[test]
    fn released_thread_starts_again() {
        let mut s = IndentState::new(MAX_STRING_LEN);
        for tid in 0..SWEEP_FLOOR as i64 {
            line(&mut s, tid, "t", 1, 10);
        }
        assert_eq!(s.release_exited_threads(|tid| tid != 5), 1);
        assert_eq!(line(&mut s, 5, "t", 1, 90), "     0 t(5):");
        assert_eq!(line(&mut s, 6, "t", 1, 90), "    80 t(6): ");
    }

    #[test]
    fn state_of_exited_threads_stays_bounded() {
        let mut s = IndentState::new(MAX_STRING_LEN);
        let mut asked = 0;
        // 100 000 threads, one after another, each leaving its counter at 1.
        for tid in 0..100_000 {
            s.thread_indent_depth(tid, 1);
            s.release_exited_threads(|held| {
                asked += 1;
                held == tid
            });
            assert!(s.threads_held() <= SWEEP_FLOOR, "{} held", s.threads_held());
        }
        // Sweeps are rare: about one question per thread, not one per thread per event.
        assert!(asked <= 2 * 100_000, "{asked} liveness checks");
    }

    #[test]
    fn live_threads_keep_their_state_through_sweeps() {
        let mut s = IndentState::new(MAX_STRING_LEN);
        for tid in 0..3 * SWEEP_FLOOR as i64 {
            s.thread_indent_depth(tid, 1);
            s.release_exited_threads(|_| true);
        }
        assert_eq!(s.threads_held(), 3 * SWEEP_FLOOR);
        assert_eq!(s.thread_indent_depth(0, 1), 1);
    }

    /// A call to `function` and its `thread_indent(1)` line.
    fn call(state: &mut IndentState, function: usize, now: i64) -> String {
        state.entering(1, function);
        line(state, 1, "t", 1, now)
    }

    /// A return from `function` and its `thread_indent(-1)` line.
    fn ret(state: &mut IndentState, function: usize, now: i64) -> String {
        let found = state.returning(1, function);
        let text = line(state, 1, "t", -1, now);
        state.returned(1, found);
        text
    }

    #[test]
    fn a_missed_return_is_closed_by_its_callers() {
        let mut s = IndentState::new(MAX_STRING_LEN);
        assert_eq!(call(&mut s, 10, 0), "     0 t(1):");
        assert_eq!(call(&mut s, 20, 1), "     1 t(1): ");
        assert_eq!(call(&mut s, 30, 2), "     2 t(1):  ");
        // 30's and 20's returns are missed: 10's return lines up with its call anyway.
        assert_eq!(ret(&mut s, 10, 5), "     5 t(1):");
        assert_eq!(s.thread_indent_depth(1, 0), 0);
        // and the next call starts a new base time at depth 0.
        assert_eq!(call(&mut s, 10, 9), "     0 t(1):");
    }

    #[test]
    fn a_return_whose_call_was_missed_leaves_the_counter_alone() {
        let mut s = IndentState::new(MAX_STRING_LEN);
        assert_eq!(call(&mut s, 10, 0), "     0 t(1):");
        // 20's entry was missed: its return prints, and 10 still lines up.
        assert_eq!(ret(&mut s, 20, 1), "     1 t(1):");
        assert_eq!(call(&mut s, 30, 2), "     2 t(1): ");
        assert_eq!(ret(&mut s, 30, 3), "     3 t(1): ");
        assert_eq!(ret(&mut s, 10, 4), "     4 t(1):");
    }

    #[test]
    fn recursive_calls_return_innermost_first() {
        let mut s = IndentState::new(MAX_STRING_LEN);
        call(&mut s, 10, 0);
        call(&mut s, 10, 1);
        call(&mut s, 10, 2);
        assert_eq!(ret(&mut s, 10, 3), "     3 t(1):  ");
        assert_eq!(ret(&mut s, 10, 4), "     4 t(1): ");
        assert_eq!(ret(&mut s, 10, 5), "     5 t(1):");
    }

    #[test]
    fn calls_that_never_return_are_bounded() {
        let mut s = IndentState::new(MAX_STRING_LEN);
        for now in 0..10 * MAX_OPEN_CALLS as i64 {
            s.entering(1, 7);
            line(&mut s, 1, "t", 1, now);
        }
        let held = s
            .threads
            .get(&1)
            .map_or(0, |thread| thread.open_calls.len());
        assert!(held <= MAX_OPEN_CALLS, "{held} open calls held");
    }

    #[test]
    fn result_is_cut_at_string_length() {
        let mut s = IndentState::new(MAX_STRING_LEN);
        for _ in 0..1000 {
            s.thread_indent_depth(1, 1);
        }
        assert_eq!(line(&mut s, 1, "x", 1, 0).len(), MAX_STRING_LEN - 1);
    }
}
