//! Turns ring-buffer events into probe-body runs: finds the function and the handlers an
//! event belongs to, and answers the tapset functions from the event.

use std::collections::HashMap;

use super::backtrace;
use super::context::{Kept, LateMemory, ProbeContext, ReadFault, TargetValue};
use super::interp::{Flow, Interpreter, RuntimeError};
use crate::kernel::event::HEADER_BYTES;
use crate::kernel::fetch::{Decoded, PayloadFault, PayloadValue};
use crate::kernel::memory::LateReader;
use crate::kernel::{Event, EventKind};
use crate::output::Sink;
use crate::resolve::code::KernelCode;
use crate::resolve::kallsyms::KernelSymbols;
use crate::resolve::plan::{
    Handler, PlannedFunction, PlannedSample, PlannedTracepoint, ProbePlan, Read, TextPart,
};

/// Where x86-64's kernel half of the address space starts: below it, an address is a
/// task's own.
const KERNEL_SPACE: u64 = 0xffff_8000_0000_0000;
use crate::script::BacktraceFormat;

/// Converts the programs' CLOCK_MONOTONIC timestamps to wall-clock time, which is what
/// SystemTap's `gettimeofday_us()` and `thread_indent()` report.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    realtime_minus_monotonic_ns: i64,
}

impl WallClock {
    pub fn now() -> Self {
        WallClock {
            realtime_minus_monotonic_ns: clock_ns(libc::CLOCK_REALTIME)
                - clock_ns(libc::CLOCK_MONOTONIC),
        }
    }

    pub fn to_unix_us(self, monotonic_ns: u64) -> i64 {
        self.to_unix_ns(monotonic_ns) / 1_000
    }

    pub fn to_unix_ns(self, monotonic_ns: u64) -> i64 {
        monotonic_ns as i64 + self.realtime_minus_monotonic_ns
    }
}

/// A clock's time in nanoseconds.
pub(crate) fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: time is a valid timespec to write to; these clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut time) };
    time.tv_sec * 1_000_000_000 + time.tv_nsec
}

/// Runs the script's probe bodies for each event, in the order events arrive.
pub struct Dispatcher<'a> {
    interpreter: &'a mut Interpreter,
    functions: &'a [PlannedFunction],
    by_address: HashMap<u64, usize>,
    tracepoints: &'a [PlannedTracepoint],
    samples: &'a [PlannedSample],
    symbols: &'a KernelSymbols,
    code: &'a KernelCode,
    clock: WallClock,
    target: i64,
    /// Whether the kernel's thread ids can be looked up in this process's /proc.
    tids_visible: bool,
    /// Records that were not rstap events; never expected, but never silently dropped.
    pub undecodable: u64,
    /// Threads whose `thread_indent` state was released because they had exited.
    pub released_threads: usize,
}

impl<'a> Dispatcher<'a> {
    pub fn new(
        interpreter: &'a mut Interpreter,
        plan: &'a ProbePlan,
        symbols: &'a KernelSymbols,
        code: &'a KernelCode,
        clock: WallClock,
        target: i64,
    ) -> Self {
        let by_address = plan
            .functions
            .iter()
            .enumerate()
            .map(|(index, function)| (function.address, index))
            .collect();
        Dispatcher {
            interpreter,
            functions: &plan.functions,
            by_address,
            tracepoints: &plan.tracepoints,
            samples: &plan.samples,
            symbols,
            code,
            clock,
            target,
            tids_visible: in_initial_pid_namespace(),
            undecodable: 0,
            released_threads: 0,
        }
    }

    /// The interpreter the events go to, to run probes that are not kernel events
    /// (timers) between them.
    pub fn interpreter(&mut self) -> &mut Interpreter {
        self.interpreter
    }

    /// Runs every handler of the event's function and side, in script order.
    pub fn dispatch(&mut self, record: &[u8], out: &mut dyn Sink) -> Result<Flow, RuntimeError> {
        let Some(event) = Event::decode(record) else {
            self.undecodable += 1;
            return Ok(Flow::Continue);
        };
        if self.tids_visible {
            self.released_threads += self.interpreter.release_exited_threads(thread_exists);
        }
        let payload = record.get(HEADER_BYTES..).unwrap_or_default();
        let return_side = match event.kind {
            EventKind::Entry => false,
            EventKind::Return => true,
            EventKind::Tracepoint | EventKind::Sample => {
                return self.dispatch_site(&event, payload, out)
            }
        };
        let Some(&index) = self.by_address.get(&event.function_address) else {
            self.undecodable += 1;
            return Ok(Flow::Continue);
        };
        let function = &self.functions[index];
        let (handlers, address, probefunc) = if return_side {
            let address = self.caller_address(&event);
            let caller = self.symbols.function_containing(address);
            let probefunc = caller.map_or("", |symbol| symbol.name);
            (&function.on_return, address, probefunc)
        } else {
            (&function.on_entry, function.address, function.name.as_str())
        };
        // Calls are followed only where both sides are probed: a script probing returns
        // alone means its counters to run unmatched, as SystemTap's would.
        let tid = i64::from(event.tid);
        let followed = !function.on_entry.is_empty() && !function.on_return.is_empty();
        let found = match return_side {
            _ if !followed => None,
            false => {
                self.interpreter.entering(tid, index);
                None
            }
            true => Some(self.interpreter.returning(tid, index)),
        };
        let site = Site {
            event: &event,
            payload,
            site: index,
            function_address: function.address,
            address,
            probefunc,
            user_mode: false,
        };
        let captures: &[Handler] = if return_side {
            &function.entry_captures
        } else {
            self.keep_for_returns(&site, &function.entry_captures)?;
            &[]
        };
        let flow = self.run_handlers(&site, handlers, captures, out)?;
        if let Some(found) = found {
            self.interpreter.returned(tid, found);
        }
        Ok(flow)
    }

    /// Runs the handlers of the tracepoint or sample the event names by its number.
    fn dispatch_site(
        &mut self,
        event: &Event,
        payload: &[u8],
        out: &mut dyn Sink,
    ) -> Result<Flow, RuntimeError> {
        let number = event.function_address as usize;
        let tracepoint = match event.kind {
            EventKind::Sample => None,
            _ => self.tracepoints.get(number),
        };
        let found = match event.kind {
            EventKind::Sample => self.samples.get(number).map(|sample| {
                // Where the task was interrupted: `addr()`, and its function `probefunc()`.
                let address = event.return_address;
                let user_mode = address < KERNEL_SPACE;
                let function = (!user_mode)
                    .then(|| self.symbols.function_containing(address))
                    .flatten();
                let probefunc = function.map_or("", |symbol| symbol.name);
                (&sample.handlers, address, probefunc, user_mode)
            }),
            _ => tracepoint.map(|tracepoint| (&tracepoint.handlers, 0, "", false)),
        };
        let Some((handlers, address, probefunc, user_mode)) = found else {
            self.undecodable += 1;
            return Ok(Flow::Continue);
        };
        let site = Site {
            event,
            payload,
            site: self.tracepoint_call(number),
            function_address: 0,
            address,
            probefunc,
            user_mode,
        };
        // A system call's entry keeps what its exit's probes want (`@entry`), under the
        // exit's number; the exit's probes take it back.
        let paired = tracepoint.and_then(|tracepoint| Some((tracepoint, tracepoint.paired?)));
        let captures: &[Handler] = match paired {
            Some((exit, entry)) if exit.entry_captures.is_empty() => {
                &self.tracepoints[entry].entry_captures
            }
            Some((entry, exit)) => {
                let at_entry = Site {
                    site: self.tracepoint_call(exit),
                    ..site
                };
                self.keep_for_returns(&at_entry, &entry.entry_captures)?;
                &[]
            }
            None => &[],
        };
        self.run_handlers(&site, handlers, captures, out)
    }

    /// The number under which a tracepoint's calls keep values for their returns, apart
    /// from the functions'.
    fn tracepoint_call(&self, number: usize) -> usize {
        self.functions.len() + number
    }

    /// Evaluates, at an entry, what the function's `.return` probes keep from it.
    fn keep_for_returns(
        &mut self,
        site: &Site<'_>,
        captures: &[Handler],
    ) -> Result<(), RuntimeError> {
        for capture in captures {
            let context = self.context(site, capture, None);
            let tid = i64::from(site.event.tid);
            self.interpreter
                .keep_at_entry(capture.probe, tid, site.site, &context)?;
        }
        Ok(())
    }

    /// Runs `handlers` in order; at a return, a handler that keeps values from the entry
    /// (`captures` lists those) runs only with what its call's entry kept.
    fn run_handlers(
        &mut self,
        site: &Site<'_>,
        handlers: &[Handler],
        captures: &[Handler],
        out: &mut dyn Sink,
    ) -> Result<Flow, RuntimeError> {
        for handler in handlers {
            let keeps = captures
                .iter()
                .any(|capture| capture.probe == handler.probe);
            let kept = if keeps {
                let tid = i64::from(site.event.tid);
                match self
                    .interpreter
                    .kept_for_return(handler.probe, tid, site.site)
                {
                    Some(kept) => Some(kept),
                    None => continue,
                }
            } else {
                None
            };
            let context = self.context(site, handler, kept.as_deref());
            match self.interpreter.run_probe(handler.probe, &context, out)? {
                Flow::Continue => {}
                ended => return Ok(ended),
            }
        }
        Ok(Flow::Continue)
    }

    fn context<'e>(
        &self,
        site: &Site<'e>,
        handler: &'e Handler,
        kept: Option<&'e [Kept]>,
    ) -> EventContext<'e>
    where
        'a: 'e,
    {
        EventContext {
            event: site.event,
            payload: site.payload,
            handler,
            kept,
            function_address: site.function_address,
            symbols: self.symbols,
            address: site.address,
            probefunc: site.probefunc,
            user_mode: site.user_mode,
            clock: self.clock,
            target: self.target,
        }
    }

    /// Where a returning function goes back to in its caller: the return address, or,
    /// when that lies in a trampoline rather than in kernel code, the frame's above.
    fn caller_address(&self, event: &Event) -> u64 {
        if event.outer_return_address != 0 && !self.code.contains(event.return_address) {
            event.outer_return_address
        } else {
            event.return_address
        }
    }
}

/// The programs report thread ids of the initial PID namespace; inside another one, /proc
/// would answer about different threads, and no state can safely be released.
fn in_initial_pid_namespace() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("NSpid:"))
            .is_some_and(|ids| ids.split_whitespace().count() == 1)
    })
}

/// A thread that has exited and been reaped has no /proc entry; any thread, leader or
/// not, can be looked up as /proc/TID.
fn thread_exists(tid: i64) -> bool {
    std::path::Path::new(&format!("/proc/{tid}")).exists()
}

/// One event at one function's entry or return, as its handlers share it.
struct Site<'e> {
    event: &'e Event,
    /// What the site's fetch program read.
    payload: &'e [u8],
    /// The number under which the site's calls keep values for their returns: the
    /// function's index in the plan, or the tracepoint's past the functions'.
    site: usize,
    /// The function's entry address; 0 for a tracepoint or a sample.
    function_address: u64,
    /// `addr()`.
    address: u64,
    /// `probefunc()`.
    probefunc: &'e str,
    /// `user_mode()`.
    user_mode: bool,
}

/// What a probe body sees of one event.
struct EventContext<'e> {
    event: &'e Event,
    /// What the site's fetch program read, laid out as `handler.reads` says.
    payload: &'e [u8],
    handler: &'e Handler,
    /// What the call's entry kept, for a `.return` body that reads it.
    kept: Option<&'e [Kept]>,
    /// The probed function's entry address, and the kernel's symbols, for backtraces.
    function_address: u64,
    symbols: &'e KernelSymbols,
    /// `addr()`: the function's entry on entry, the return address in its caller on return.
    address: u64,
    /// The symbol of `addr()`: the function itself on entry, its caller on return.
    probefunc: &'e str,
    user_mode: bool,
    clock: WallClock,
    target: i64,
}

impl ProbeContext for EventContext<'_> {
    fn kernel_symbols(&self) -> Option<&KernelSymbols> {
        Some(self.symbols)
    }
    fn tid(&self) -> i64 {
        i64::from(self.event.tid)
    }
    fn pid(&self) -> i64 {
        i64::from(self.event.pid)
    }
    fn cpu(&self) -> i64 {
        i64::from(self.event.cpu)
    }
    fn execname(&self) -> &str {
        self.event.comm()
    }
    fn addr(&self) -> u64 {
        self.address
    }
    fn probefunc(&self) -> &str {
        self.probefunc
    }
    fn ppfunc(&self) -> &str {
        &self.handler.function
    }
    fn pp(&self) -> &str {
        &self.handler.probe_point
    }
    fn gettimeofday_us(&self) -> i64 {
        self.clock.to_unix_us(self.event.timestamp_ns)
    }
    fn gettimeofday_ns(&self) -> i64 {
        self.clock.to_unix_ns(self.event.timestamp_ns)
    }
    fn monotonic_ns(&self) -> i64 {
        self.event.timestamp_ns as i64
    }
    fn target(&self) -> i64 {
        self.target
    }
    fn user_mode(&self) -> bool {
        self.user_mode
    }
    fn target_defined(&self, index: usize) -> bool {
        self.handler.defined.get(index).copied().unwrap_or(false)
    }
    fn entry_value(&self, index: usize) -> Option<&Kept> {
        self.kept.and_then(|kept| kept.get(index))
    }
    fn target_read(&self, index: usize) -> Result<TargetValue<'_>, ReadFault> {
        match self.handler.reads.get(index) {
            Some(Read::Value(value)) => decode(*value, self.payload, index),
            Some(Read::Text(parts)) => Ok(TargetValue::Owned(self.text(parts))),
            Some(Read::Unavailable(why)) => Err(ReadFault::Unavailable(why.clone())),
            Some(Read::Fixed(text)) => Ok(TargetValue::Str(text.as_bytes())),
            Some(Read::Backtrace(value, format)) => match value.decode(self.payload) {
                Ok(Decoded::Frames(bytes)) => {
                    Ok(TargetValue::Owned(self.backtrace(bytes, *format)))
                }
                _ => Err(ReadFault::NotCarried(index)),
            },
            None => Err(ReadFault::NotCarried(index)),
        }
    }
}

impl EventContext<'_> {
    /// The stack the payload holds, written as SystemTap writes backtraces.
    fn backtrace(&self, bytes: &[u8], format: BacktraceFormat) -> Vec<u8> {
        let raw: Vec<u64> = bytes
            .chunks_exact(8)
            .filter_map(|word| word.try_into().ok().map(u64::from_ne_bytes))
            .collect();
        let function = self.function_address;
        // At a function's entry the stack starts with the probe machinery's frames; a
        // sample's starts where the task was interrupted.
        let frames = if function == 0 {
            raw
        } else {
            let size = self
                .symbols
                .function_with_size(function)
                .map_or(0, |(_, size)| size);
            backtrace::at_entry(&raw, function, size)
        };
        let mut text = String::new();
        backtrace::write(&frames, format, self.symbols, &mut text);
        text.into_bytes()
    }

    /// `$$parms` or `$$return` as SystemTap prints them: `name=0x1f`, space-separated, a
    /// value that could not be read shown as `?`.
    fn text(&self, parts: &[TextPart]) -> Vec<u8> {
        let mut text = String::new();
        for (index, part) in parts.iter().enumerate() {
            if index > 0 {
                text.push(' ');
            }
            text.push_str(&part.name);
            match part.value {
                Err(fixed) => text.push_str(fixed),
                Ok(value) => match value.decode(self.payload) {
                    Ok(Decoded::Int(number)) => text.push_str(&format!("={:#x}", number as u64)),
                    _ => text.push_str("=?"),
                },
            }
        }
        text.into_bytes()
    }
}

impl LateMemory for LateReader {
    fn read(&mut self, read: usize, address: u64) -> Result<Kept, ReadFault> {
        let (value, payload) = self
            .run(read, address)
            .map_err(|err| ReadFault::Unavailable(err.to_string()))?;
        Ok(match decode(value, payload, read)? {
            TargetValue::Int(value) => Kept::Int(value),
            TargetValue::Str(text) => Kept::Str(text.to_vec()),
            TargetValue::Owned(text) => Kept::Str(text),
        })
    }
}

/// A payload value as the probe body gets it.
fn decode(value: PayloadValue, payload: &[u8], index: usize) -> Result<TargetValue<'_>, ReadFault> {
    match value.decode(payload) {
        Ok(Decoded::Int(value)) => Ok(TargetValue::Int(value)),
        Ok(Decoded::Str(text)) => Ok(TargetValue::Str(text)),
        Ok(Decoded::Frames(_)) => Err(ReadFault::NotCarried(index)),
        Err(PayloadFault::Memory(address)) => Err(ReadFault::Memory(address)),
        Err(PayloadFault::Copy { function, address }) => Err(ReadFault::Copy { function, address }),
        Err(PayloadFault::Truncated) => Err(ReadFault::NotCarried(index)),
    }
}

/// What a `begin` or `end` probe sees: rstap's own process, no function.
pub struct SessionContext<'s> {
    point: String,
    target: i64,
    symbols: &'s KernelSymbols,
    /// What a procfs `.write` probe was written.
    written: &'s [u8],
}

impl<'s> SessionContext<'s> {
    /// The context of a `point` run in rstap's own process (begin, end, error, timers).
    pub fn new(point: &str, target: i64, symbols: &'s KernelSymbols) -> Self {
        SessionContext {
            point: point.to_string(),
            target,
            symbols,
            written: b"",
        }
    }

    /// The context of a procfs write probe given `written`.
    pub fn with_written(self, written: &'s [u8]) -> Self {
        SessionContext { written, ..self }
    }
}

impl ProbeContext for SessionContext<'_> {
    fn kernel_symbols(&self) -> Option<&KernelSymbols> {
        Some(self.symbols)
    }
    fn tid(&self) -> i64 {
        // SAFETY: gettid has no failure mode.
        i64::from(unsafe { libc::gettid() })
    }
    fn pid(&self) -> i64 {
        i64::from(std::process::id())
    }
    fn cpu(&self) -> i64 {
        // SAFETY: sched_getcpu has no memory-safety preconditions.
        i64::from(unsafe { libc::sched_getcpu() })
    }
    fn execname(&self) -> &str {
        "rstap"
    }
    fn addr(&self) -> u64 {
        0
    }
    fn probefunc(&self) -> &str {
        ""
    }
    fn ppfunc(&self) -> &str {
        ""
    }
    fn pp(&self) -> &str {
        &self.point
    }
    fn gettimeofday_us(&self) -> i64 {
        self.gettimeofday_ns() / 1_000
    }
    fn gettimeofday_ns(&self) -> i64 {
        clock_ns(libc::CLOCK_REALTIME)
    }
    fn target(&self) -> i64 {
        self.target
    }
    fn procfs_written(&self) -> &[u8] {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exited_threads_are_gone_from_proc() {
        // SAFETY: gettid has no failure mode.
        let own = i64::from(unsafe { libc::gettid() });
        assert!(thread_exists(own));
        let (sender, receiver) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            // SAFETY: as above.
            sender.send(i64::from(unsafe { libc::gettid() })).unwrap();
        });
        let tid = receiver.recv().unwrap();
        worker.join().unwrap();
        // A joined thread can take a moment to be reaped by the kernel.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while thread_exists(tid) {
            assert!(std::time::Instant::now() < deadline, "thread {tid} lingers");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
