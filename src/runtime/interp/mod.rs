//! The probe-body interpreter: runs the typed statements of a [`CheckedScript`] against one
//! event's [`ProbeContext`], writing output to the caller's writer.
//!
//! Variables live in slots numbered at check time; string temporaries come from a pool of
//! buffers that is reused from event to event, so a steady stream of events allocates
//! nothing unless the script uses arrays, whose keys are built per access.

mod statements;
mod values;

use std::io::Write;
use std::rc::Rc;

use super::array::{key_matches, Array, Element, Full, Key, KeyPart};
use super::context::{Kept, LateMemory, ProbeContext, ReadFault, TargetValue};
use super::indent::{IndentState, ReturnOf};
use super::kept::KeptAtEntry;
use super::library::{self, Answer, Failure, LibraryState};
use super::stats::Stats;
use crate::output::printf::{Arg, PRINT_LIMIT};
use crate::output::Sink;
use crate::script::{
    ArithOp, Call, CheckedFunction, CmpOp, Deletion, ElementRef, ForeachLoop, Histogram, IntExpr,
    KeySlice, LateValue, Library, LibraryCall, Place, PrintCall, Shown, Slot, StatOp, Stmt,
    StrExpr, Ty, Value,
};
use crate::script::{CheckedProbe, CheckedScript, IntContext, SourceMap, Span, StrContext};

/// What the caller should do after a probe body ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The script called `exit()`: run the end probes and stop.
    Exit,
    /// The script called `abort()`: stop without running the end probes.
    Abort,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    // Displayed as SystemTap words them, after its `ERROR: ` prefix, each naming the token
    // it happened at (see `SourceFile::near`).
    #[error("division by 0 near {near}")]
    DivisionByZero { near: String },
    #[error("Array overflow, check {limit} near {near}")]
    ArrayFull { limit: String, near: String },
    /// A library function's refusal (`error("...")` has no place, as in SystemTap).
    #[error("{message}{}", near.as_ref().map(|near| format!(" near {near}")).unwrap_or_default())]
    Library {
        message: String,
        near: Option<String>,
    },
    #[error("MAXNESTING exceeded near {near}")]
    NestingLimit { near: String },
    #[error("MAXACTION exceeded near {near}")]
    ActionLimit { near: String },
    #[error("empty aggregate near {near}")]
    EmptyAggregate { near: String },
    /// A target variable or `kernel_string()` whose read of kernel memory faulted at the
    /// event.
    #[error("{fault} near {near}")]
    Read { fault: ReadFault, near: String },
    #[error("writing script output: {0}")]
    Output(#[from] std::io::Error),
    #[error("no probe number {0} in this script")]
    NoSuchProbe(usize),
}

impl RuntimeError {
    /// Whether `try`/`catch` catches it: SystemTap's script errors are caught, but not
    /// running out of MAXACTION, nor failing to write output.
    fn catchable(&self) -> bool {
        !matches!(
            self,
            RuntimeError::ActionLimit { .. }
                | RuntimeError::Output(_)
                | RuntimeError::NoSuchProbe(_)
        )
    }

    /// The error in its own words, without where it happened: what `catch (msg)` gets.
    fn words(&self) -> String {
        match self {
            RuntimeError::DivisionByZero { .. } => "division by 0".to_string(),
            RuntimeError::ArrayFull { limit, .. } => format!("Array overflow, check {limit}"),
            RuntimeError::EmptyAggregate { .. } => "empty aggregate".to_string(),
            RuntimeError::NestingLimit { .. } => "MAXNESTING exceeded".to_string(),
            RuntimeError::Library { message, .. } => message.clone(),
            RuntimeError::Read { fault, .. } => fault.to_string(),
            other => other.to_string(),
        }
    }
}

pub struct Interpreter {
    probes: Vec<CheckedProbe>,
    /// What `.return` probes keep from entries, per thread and call.
    kept: KeptAtEntry,
    shown_at_exit: Vec<Shown>,
    array_names: Vec<String>,
    machine: Machine,
}

/// Everything a body can change, apart from the body itself.
struct Machine {
    source: SourceMap,
    int_globals: Vec<i64>,
    str_globals: Vec<Vec<u8>>,
    stats_globals: Vec<Stats>,
    arrays: Vec<Array>,
    int_locals: Vec<i64>,
    str_locals: Vec<Vec<u8>>,
    indent: IndentState,
    /// Loop iterations the running probe may still make, of `max_actions`: SystemTap's
    /// MAXACTION budget. SystemTap charges every statement against it; rstap charges loop
    /// iterations, so that a straight-line body always runs and a runaway loop still ends
    /// in SystemTap's error.
    iterations_left: u32,
    max_actions: u32,
    max_string_len: usize,
    functions: Rc<[CheckedFunction]>,
    max_nesting: usize,
    /// How many function calls are open.
    nesting: usize,
    /// What the last `return` gave.
    returned_int: i64,
    returned_str: Vec<u8>,
    /// What functions called from expressions printed, for the statement that called them
    /// to print first.
    output: Vec<u8>,
    /// What `warn()` said while the probe ran, for stderr.
    warnings: Vec<String>,
    /// The last `=~`: whether it matched, what it matched against, and where each group
    /// of the expression was in it.
    matched: bool,
    match_subject: Vec<u8>,
    match_groups: Vec<Option<(usize, usize)>>,
    library: LibraryState,
    pool: Vec<Vec<u8>>,
    /// The arguments of the print call being formatted, each with where its string ends.
    print_args: Vec<(Evaluated, usize)>,
    exit_requested: bool,
    /// Each probe's `pn()` if it is on an alias (else `pp()` answers), and which probe
    /// is running.
    probe_names: Rc<[Option<Box<str>>]>,
    current_probe: usize,
    /// Each probe's string local that may hold more than MAXSTRINGLEN, with its limit: a
    /// procfs read's `$value` under `.maxsize`.
    long_values: Rc<[Option<(usize, usize)>]>,
    long_value: Option<(usize, usize)>,
    /// Where late reads of kernel memory are made, if the script has any.
    late_memory: Option<Box<dyn LateMemory>>,
    /// Each probe's read of its event's task, for `task_current()` in the functions it calls.
    current_task_reads: Rc<[Option<usize>]>,
}

/// A print argument, evaluated: a long, or where its string starts in the call's buffer.
#[derive(Debug, Clone, Copy)]
enum Evaluated {
    Int(i64),
    Str(usize),
}

/// Print calls with at most this many arguments format them from the stack.
const INLINE_PRINT_ARGS: usize = 6;

/// Why a body stopped early.
enum Stop {
    Next,
    Break,
    Continue,
    /// A function's `return`; its value, if any, is in the machine's return slots.
    Return,
    /// `abort()`, which no `try` catches and no caller goes on after.
    Abort,
    Error(RuntimeError),
}

impl From<RuntimeError> for Stop {
    fn from(e: RuntimeError) -> Self {
        Stop::Error(e)
    }
}

impl Interpreter {
    pub fn new(script: &CheckedScript) -> Self {
        Interpreter {
            probes: script.probes.clone(),
            kept: KeptAtEntry::default(),
            shown_at_exit: script.globals.shown_at_exit.clone(),
            array_names: script
                .globals
                .arrays
                .iter()
                .map(|a| a.name.clone())
                .collect(),
            machine: Machine {
                source: script.source.clone(),
                int_globals: script.globals.ints.clone(),
                str_globals: script.globals.strs.clone(),
                stats_globals: script.globals.stats.iter().map(Stats::new).collect(),
                arrays: script.globals.arrays.iter().map(Array::new).collect(),
                int_locals: Vec::new(),
                str_locals: Vec::new(),
                indent: IndentState::new(script.max_string_len),
                iterations_left: script.max_actions,
                max_actions: script.max_actions,
                max_string_len: script.max_string_len,
                functions: script.functions.clone().into(),
                max_nesting: script.max_nesting,
                nesting: 0,
                returned_int: 0,
                returned_str: Vec::new(),
                output: Vec::new(),
                warnings: Vec::new(),
                matched: false,
                match_subject: Vec::new(),
                match_groups: Vec::new(),
                library: LibraryState::new(script.max_string_len),
                pool: Vec::new(),
                print_args: Vec::new(),
                exit_requested: false,
                probe_names: script
                    .probes
                    .iter()
                    .map(|probe| probe.expansion.as_ref().map(|e| e.name.as_str().into()))
                    .collect(),
                current_probe: 0,
                long_values: script
                    .probes
                    .iter()
                    .map(|probe| probe.long_value(script.max_string_len))
                    .collect(),
                long_value: None,
                late_memory: None,
                current_task_reads: script
                    .probes
                    .iter()
                    .map(|probe| probe.current_task)
                    .collect(),
            },
        }
    }

    /// Gives the script's late reads of kernel memory their reader.
    pub fn set_late_memory(&mut self, memory: Box<dyn LateMemory>) {
        self.machine.late_memory = Some(memory);
    }

    /// Runs the body of probe `probe_index` (an index into `CheckedScript::probes`).
    pub fn run_probe(
        &mut self,
        probe_index: usize,
        ctx: &dyn ProbeContext,
        out: &mut dyn Sink,
    ) -> Result<Flow, RuntimeError> {
        let probe = probe_at(&self.probes, probe_index)?;
        let m = &mut self.machine;
        m.current_probe = probe_index;
        m.long_value = m.long_values.get(probe_index).copied().flatten();
        m.iterations_left = m.max_actions;
        // Locals start as 0 and "" on every hit.
        m.int_locals.clear();
        m.int_locals.resize(probe.int_locals, 0);
        m.str_locals.truncate(probe.str_locals);
        m.str_locals.iter_mut().for_each(Vec::clear);
        m.str_locals.resize_with(probe.str_locals, Vec::new);
        let ran = m.block(&probe.body, ctx, out);
        // What the body printed is kept, even if it then failed, as SystemTap keeps it.
        let written = if m.output.is_empty() {
            Ok(())
        } else {
            let written = out.write_all(&m.output);
            m.output.clear();
            written
        };
        for warning in m.warnings.drain(..) {
            out.warning(&warning);
        }
        match ran {
            // Lowering allows `break` and `continue` only inside loops, which catch them,
            // and `return` only in functions.
            Ok(()) | Err(Stop::Next | Stop::Break | Stop::Continue | Stop::Return) => {}
            Err(Stop::Abort) => return written.map(|()| Flow::Abort).map_err(Into::into),
            Err(Stop::Error(e)) => return Err(e),
        }
        written?;
        Ok(if m.exit_requested {
            Flow::Exit
        } else {
            Flow::Continue
        })
    }

    /// String local `slot` as the last probe run left it ("" if it has none).
    pub fn str_local(&self, slot: usize) -> &[u8] {
        self.machine.str_locals.get(slot).map_or(&[], Vec::as_slice)
    }

    /// Prints the globals the script wrote but never read, as SystemTap does after the end
    /// probes: `x=5`, `s="text"`, `a["key",2]=7` (largest value first), `x @count=...`.
    pub fn show_unread_globals(&self, out: &mut dyn Write) -> Result<(), RuntimeError> {
        let m = &self.machine;
        for shown in &self.shown_at_exit {
            match shown {
                Shown::Scalar { name, ty, index } => match ty {
                    Ty::Long => writeln!(out, "{name}={}", m.int_globals[*index])?,
                    Ty::Str => {
                        write!(out, "{name}=\"")?;
                        out.write_all(&m.str_globals[*index])?;
                        writeln!(out, "\"")?;
                    }
                    Ty::Stats => {
                        write!(out, "{name}")?;
                        write_summary(&m.stats_globals[*index], out)?;
                    }
                },
                Shown::Array(array) => {
                    let name = &self.array_names[*array];
                    let mut elements: Vec<_> = m.arrays[*array].iter().collect();
                    // Stable: equal values keep their insertion order, as in SystemTap.
                    elements.sort_by(|a, b| compare_elements(b.1, a.1, StatOp::Count));
                    for (key, element) in elements {
                        write!(out, "{name}[")?;
                        for (i, part) in key.iter().enumerate() {
                            if i > 0 {
                                out.write_all(b",")?;
                            }
                            match part {
                                KeyPart::Int(n) => write!(out, "{n}")?,
                                KeyPart::Str(s) => {
                                    out.write_all(b"\"")?;
                                    out.write_all(s.as_ref())?;
                                    out.write_all(b"\"")?;
                                }
                            }
                        }
                        out.write_all(b"]")?;
                        match element {
                            Element::Int(n) => writeln!(out, "={n}")?,
                            Element::Str(s) => {
                                out.write_all(b"=\"")?;
                                out.write_all(s.as_slice())?;
                                out.write_all(b"\"\n")?;
                            }
                            Element::Stats(stats) => write_summary(stats, out)?,
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// See [`IndentState::release_exited_threads`].
    pub fn release_exited_threads(&mut self, mut alive: impl FnMut(i64) -> bool) -> usize {
        self.kept.release_exited_threads(&mut alive);
        self.machine.indent.release_exited_threads(alive)
    }

    /// Evaluates what probe `probe_index` keeps from a function's entry for its `.return`
    /// body (its `@entry` expressions and the parameters it reads), at the entry event `ctx`
    /// of `function` on thread `tid`, and keeps it for that call's return.
    pub fn keep_at_entry(
        &mut self,
        probe_index: usize,
        tid: i64,
        function: usize,
        ctx: &dyn ProbeContext,
    ) -> Result<(), RuntimeError> {
        let probe = probe_at(&self.probes, probe_index)?;
        let m = &mut self.machine;
        m.iterations_left = m.max_actions;
        let mut kept = Vec::with_capacity(probe.entry_values.len());
        for value in &probe.entry_values {
            let evaluated = match value {
                Value::Str(e) => {
                    let mut text = Vec::new();
                    m.str(e, ctx, &mut text).map(|()| Kept::Str(text))
                }
                Value::Int(e) => m.int(e, ctx).map(Kept::Int),
                Value::Hist(_) => Ok(Kept::Int(0)),
            };
            match evaluated {
                Ok(value) => kept.push(value),
                Err(Stop::Error(e)) => return Err(e),
                Err(_) => kept.push(Kept::Int(0)),
            }
        }
        self.kept.push(tid, function, probe_index, kept);
        Ok(())
    }

    /// What [`Interpreter::keep_at_entry`] kept for this return of `function` on `tid`;
    /// `None` if its entry was not seen.
    pub fn kept_for_return(
        &mut self,
        probe: usize,
        tid: i64,
        function: usize,
    ) -> Option<Vec<Kept>> {
        self.kept.take(tid, function, probe)
    }

    /// Returns whose `.return` bodies did not run because their entry was not seen.
    pub fn returns_without_entry(&self) -> u64 {
        self.kept.returns_without_entry
    }

    /// See [`IndentState::entering`].
    pub fn entering(&mut self, tid: i64, function: usize) {
        self.machine.indent.entering(tid, function);
    }

    /// See [`IndentState::returning`].
    pub fn returning(&mut self, tid: i64, function: usize) -> ReturnOf {
        self.machine.indent.returning(tid, function)
    }

    /// See [`IndentState::returned`].
    pub fn returned(&mut self, tid: i64, found: ReturnOf) {
        self.machine.indent.returned(tid, found);
    }

    /// How many threads have `thread_indent` state.
    pub fn threads_held(&self) -> usize {
        self.machine.indent.threads_held()
    }
}

fn probe_at(probes: &[CheckedProbe], index: usize) -> Result<&CheckedProbe, RuntimeError> {
    probes.get(index).ok_or(RuntimeError::NoSuchProbe(index))
}

fn compare<T: Ord + ?Sized>(op: CmpOp, a: &T, b: &T) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
    }
}

/// Appends `extra` to a string value, keeping SystemTap's length limit.
fn append_limited(dst: &mut Vec<u8>, extra: &[u8], max_string_len: usize) {
    let room = (max_string_len - 1).saturating_sub(dst.len());
    dst.extend_from_slice(&extra[..extra.len().min(room)]);
}

/// `a op b` with SystemTap's wrap-around; `None` for a division by zero.
fn arith(op: ArithOp, a: i64, b: i64) -> Option<i64> {
    Some(match op {
        ArithOp::Add => a.wrapping_add(b),
        ArithOp::Sub => a.wrapping_sub(b),
        ArithOp::Mul => a.wrapping_mul(b),
        ArithOp::Div | ArithOp::Mod if b == 0 => return None,
        ArithOp::Div => a.wrapping_div(b),
        ArithOp::Mod => a.wrapping_rem(b),
        // Shift counts are taken modulo 64, as x86 does for the C code SystemTap emits.
        ArithOp::Shl => a.wrapping_shl(b as u32),
        ArithOp::Shr => a.wrapping_shr(b as u32),
        ArithOp::And => a & b,
        ArithOp::Or => a | b,
        ArithOp::Xor => a ^ b,
    })
}

/// An aggregate as the exit display shows it, after its name.
fn write_summary(stats: &Stats, out: &mut dyn Write) -> std::io::Result<()> {
    match (stats.min(), stats.max(), stats.avg()) {
        (Some(min), Some(max), Some(avg)) => writeln!(
            out,
            " @count={} @min={min} @max={max} @sum={} @avg={avg}",
            stats.count(),
            stats.sum()
        ),
        _ => writeln!(out, " @count=0x0"),
    }
}

/// foreach's order of values: numbers and strings as themselves, aggregates by `figure`.
fn compare_elements(a: &Element, b: &Element, figure: StatOp) -> std::cmp::Ordering {
    match (a, b) {
        (Element::Int(a), Element::Int(b)) => a.cmp(b),
        (Element::Str(a), Element::Str(b)) => a.cmp(b),
        (Element::Stats(a), Element::Stats(b)) => {
            let value = |stats: &Stats| match figure {
                StatOp::Sum => Some(stats.sum()),
                StatOp::Min => stats.min(),
                StatOp::Max => stats.max(),
                StatOp::Avg => stats.avg(),
                StatOp::Count | StatOp::Variance => Some(stats.count()),
            };
            value(a).cmp(&value(b))
        }
        _ => std::cmp::Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Captured;
    use crate::script::{compile, SourceFile};

    struct Event {
        tid: i64,
        comm: &'static str,
        addr: u64,
        func: &'static str,
        now_us: i64,
    }

    impl ProbeContext for Event {
        fn tid(&self) -> i64 {
            self.tid
        }
        fn pid(&self) -> i64 {
            self.tid + 1000
        }
        fn cpu(&self) -> i64 {
            1
        }
        fn execname(&self) -> &str {
            self.comm
        }
        fn addr(&self) -> u64 {
            self.addr
        }
        fn probefunc(&self) -> &str {
            self.func
        }
        fn ppfunc(&self) -> &str {
            "sock_poll"
        }
        fn pp(&self) -> &str {
            "kernel.function(\"sock_poll@net/socket.c:1263\").call"
        }
        fn gettimeofday_us(&self) -> i64 {
            self.now_us
        }
        fn target(&self) -> i64 {
            42
        }
    }

    fn event(tid: i64, comm: &'static str, addr: u64, func: &'static str, now_us: i64) -> Event {
        Event {
            tid,
            comm,
            addr,
            func,
            now_us,
        }
    }

    fn interpreter(text: &str) -> Interpreter {
        Interpreter::new(&compile(&SourceFile::new("t.stp", text)).unwrap())
    }

    fn run(interp: &mut Interpreter, probe: usize, ev: &Event) -> String {
        let mut out = Captured::default();
        interp.run_probe(probe, ev, &mut out).unwrap();
        String::from_utf8(out.output).unwrap()
    }

    #[test]
    fn seed_bodies_print_systemtap_lines() {
        let mut interp = interpreter(include_str!("../../../tests/golden/socket-trace.stp"));
        let call = event(1, "init", 0xffffffff81431450, "sock_poll", 1_000_000);
        let ret = event(1, "init", 0xffffffff81197f42, "do_select", 1_000_015);
        assert_eq!(run(&mut interp, 0, &call), "     0 init(1): -> sock_poll\n");
        assert_eq!(run(&mut interp, 1, &ret), "    15 init(1): <- do_select\n");
    }

    #[test]
    fn addr_variant_prints_pointers() {
        let mut interp = interpreter(include_str!("../../../tests/golden/socket-trace-addr.stp"));
        let call = event(1694, "NetworkManager", 0xffffffff81431450, "sock_poll", 0);
        let ret = event(
            1694,
            "NetworkManager",
            0xffffffff8119764b,
            "do_sys_poll",
            15,
        );
        assert_eq!(
            run(&mut interp, 0, &call),
            "     0 NetworkManager(1694): -> 0xffffffff81431450, sock_poll\n"
        );
        assert_eq!(
            run(&mut interp, 1, &ret),
            "    15 NetworkManager(1694): <- 0xffffffff8119764b, do_sys_poll\n"
        );
    }

    #[test]
    fn locals_reset_and_globals_persist() {
        let mut interp = interpreter(
            "global n\nprobe begin { n += 1; s .= \"x\"; println(n, s, \" \", pid(), cpu(), target(), ppfunc()) }",
        );
        let ev = event(7, "a", 0, "", 0);
        assert_eq!(run(&mut interp, 0, &ev), "1x 1007142sock_poll\n");
        assert_eq!(run(&mut interp, 0, &ev), "2x 1007142sock_poll\n");
    }

    #[test]
    fn control_flow_next_and_exit() {
        let mut interp = interpreter(
            "probe begin { if (tid() == 1) { print(\"one\") next } else print(\"other\"); exit(); print(\"!\") }",
        );
        let mut out = Captured::default();
        assert_eq!(
            interp
                .run_probe(0, &event(1, "a", 0, "", 0), &mut out)
                .unwrap(),
            Flow::Continue
        );
        assert_eq!(
            interp
                .run_probe(0, &event(2, "a", 0, "", 0), &mut out)
                .unwrap(),
            Flow::Exit
        );
        // exit() does not end the body; later statements still run, as in SystemTap.
        assert_eq!(out.output, b"oneother!");
    }

    #[test]
    fn arithmetic_wraps_and_strings_compare() {
        let mut interp = interpreter(
            "probe begin { printf(\"%d %d %d %d %d %d\\n\", 9223372036854775807 + 1, -7 / 2, -7 % 2, 1 << 65, ~0 >> 1, !5 || 3 && 2)\n\
             printf(\"%d%d%d %s\\n\", \"a\" < \"b\", \"b\" == \"b\", execname() != \"sh\", tid() > 2 ? \"big\" : \"small\") }",
        );
        assert_eq!(
            run(&mut interp, 0, &event(3, "sh", 0, "", 0)),
            "-9223372036854775808 -3 -1 2 -1 1\n110 big\n"
        );
    }

    #[test]
    fn sprintf_and_concat_respect_string_limits() {
        let mut interp = interpreter(
            "probe begin { s = sprintf(\"%600s\", \"x\"); t = s . \"tail\"; printf(\"%d %d %s\\n\", 1, 2, sprintf(\"%c%s\", 0, \"gone\")) ; print(s == t) }",
        );
        assert_eq!(run(&mut interp, 0, &event(1, "a", 0, "", 0)), "1 2 \n1");
    }

    #[test]
    fn division_by_zero_names_operator_and_place() {
        let mut interp = interpreter("probe begin {\n  x = 0\n  y = 5 % x\n}");
        let err = interp
            .run_probe(0, &event(1, "a", 0, "", 0), &mut Captured::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "division by 0 near operator '%' at t.stp:3:9"
        );
    }

    #[test]
    fn output_errors_are_reported() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl Sink for Broken {
            fn warning(&mut self, _: &str) {}
            fn error(&mut self, _: &str) {}
            fn note(&mut self, _: &str) {}
        }
        let mut interp = interpreter("probe begin { print(1) }");
        let err = interp
            .run_probe(0, &event(1, "a", 0, "", 0), &mut Broken)
            .unwrap_err();
        assert!(matches!(err, RuntimeError::Output(_)));
        assert!(matches!(
            interp.run_probe(5, &event(1, "a", 0, "", 0), &mut Captured::default()),
            Err(RuntimeError::NoSuchProbe(5))
        ));
    }

    #[test]
    fn releasing_a_thread_resets_its_indent() {
        let mut interp = interpreter("probe begin { print(thread_indent(1), thread_indent_depth(0), indent(0), indent_depth(0)) }");
        assert_eq!(
            run(&mut interp, 0, &event(4, "a", 0, "", 10)),
            "     0 a(4):0     0 :0"
        );
        // indent(0) at depth 0 restarts its clock on every call.
        assert_eq!(
            run(&mut interp, 0, &event(4, "a", 0, "", 30)),
            "    20 a(4): 1     0 :0"
        );
        for tid in 100..2000 {
            run(&mut interp, 0, &event(tid, "b", 0, "", 40));
        }
        assert_eq!(interp.threads_held(), 1901);
        assert_eq!(interp.release_exited_threads(|tid| tid >= 100), 1);
        assert_eq!(
            run(&mut interp, 0, &event(4, "a", 0, "", 50)),
            "     0 a(4):0     0 :0"
        );
    }
}
