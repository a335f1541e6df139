//! The probe-body interpreter: runs the typed statements of a [`CheckedScript`] against one
//! event's [`ProbeContext`], writing output to the caller's writer.
//!
//! Variables live in slots numbered at check time; string temporaries come from a pool of
//! buffers that is reused from event to event, so a steady stream of events allocates
//! nothing unless the script uses arrays, whose keys are built per access.

use std::io::Write;
use std::rc::Rc;

use super::array::{Array, Element, Full, Key, KeyPart};
use super::context::ProbeContext;
use super::indent::{IndentState, ReturnOf};
use super::library::{self, Answer, Failure, LibraryState};
use super::stats::Stats;
use crate::output::printf::{Arg, PRINT_LIMIT};
use crate::output::Sink;
use crate::script::{
    ArithOp, Call, CheckedFunction, CmpOp, Deletion, ElementRef, ForeachLoop, Histogram, IntExpr,
    Library, LibraryCall, Place, PrintCall, Shown, Slot, StatOp, Stmt, StrExpr, Ty, Value,
    MAX_PRINT_ARGS,
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
            other => other.to_string(),
        }
    }
}

pub struct Interpreter {
    probes: Vec<CheckedProbe>,
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
    exit_requested: bool,
}

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
                exit_requested: false,
            },
        }
    }

    /// Runs the body of probe `probe_index` (an index into `CheckedScript::probes`).
    pub fn run_probe(
        &mut self,
        probe_index: usize,
        ctx: &dyn ProbeContext,
        out: &mut dyn Sink,
    ) -> Result<Flow, RuntimeError> {
        let probe = self
            .probes
            .get(probe_index)
            .ok_or(RuntimeError::NoSuchProbe(probe_index))?;
        let m = &mut self.machine;
        m.iterations_left = m.max_actions;
        // Locals start as 0 and "" on every hit.
        m.int_locals.clear();
        m.int_locals.resize(probe.int_locals, 0);
        m.str_locals.truncate(probe.str_locals);
        m.str_locals.iter_mut().for_each(Vec::clear);
        m.str_locals.resize_with(probe.str_locals, Vec::new);
        let ran = m.block(&probe.body, ctx, out);
        // What the body printed is kept, even if it then failed, as SystemTap keeps it.
        let written = out.write_all(&m.output);
        m.output.clear();
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
    pub fn release_exited_threads(&mut self, alive: impl FnMut(i64) -> bool) -> usize {
        self.machine.indent.release_exited_threads(alive)
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

impl Machine {
    /// Runs statements, printing to `out`. What functions called from expressions print
    /// waits in `self.output` until the statement that called them prints or ends.
    fn block(
        &mut self,
        body: &[Stmt],
        ctx: &dyn ProbeContext,
        out: &mut dyn Write,
    ) -> Result<(), Stop> {
        for stmt in body {
            self.statement(stmt, ctx, out)?;
            if !self.output.is_empty() {
                self.flush_pending(out)?;
            }
        }
        Ok(())
    }

    /// Prints what functions called from expressions printed.
    fn flush_pending(&mut self, out: &mut dyn Write) -> Result<(), Stop> {
        let written = out.write_all(&self.output);
        self.output.clear();
        written.map_err(|e| Stop::Error(e.into()))
    }

    fn statement(
        &mut self,
        stmt: &Stmt,
        ctx: &dyn ProbeContext,
        out: &mut dyn Write,
    ) -> Result<(), Stop> {
        match stmt {
            Stmt::Eval(Value::Int(e)) => {
                self.int(e, ctx)?;
            }
            Stmt::Eval(Value::Str(e)) => {
                let mut scratch = self.take_buffer();
                let result = self.str(e, ctx, &mut scratch);
                self.pool.push(scratch);
                result?;
            }
            Stmt::Eval(Value::Hist(_)) => {}
            Stmt::Print(call) => {
                let mut line = self.take_buffer();
                let result = self
                    .format(call, ctx, &mut line, PRINT_LIMIT)
                    .and_then(|()| {
                        if !self.output.is_empty() {
                            self.flush_pending(out)?;
                        }
                        out.write_all(&line).map_err(|e| Stop::Error(e.into()))
                    });
                self.pool.push(line);
                result?;
            }
            Stmt::Exit => self.exit_requested = true,
            Stmt::Abort => return Err(Stop::Abort),
            Stmt::Next => return Err(Stop::Next),
            Stmt::Break => return Err(Stop::Break),
            Stmt::Continue => return Err(Stop::Continue),
            Stmt::If(condition, then, otherwise) => {
                if self.int(condition, ctx)? != 0 {
                    self.block(then, ctx, out)?;
                } else {
                    self.block(otherwise, ctx, out)?;
                }
            }
            Stmt::Loop {
                condition,
                body,
                step,
                body_span,
            } => loop {
                self.iteration(*body_span)?;
                if let Some(condition) = condition {
                    if self.int(condition, ctx)? == 0 {
                        break;
                    }
                }
                match self.block(body, ctx, out) {
                    Ok(()) | Err(Stop::Continue) => {}
                    Err(Stop::Break) => break,
                    Err(other) => return Err(other),
                }
                self.block(step, ctx, out)?;
            },
            Stmt::Foreach(foreach) => self.foreach(foreach, ctx, out)?,
            Stmt::Delete(deletion) => self.delete(deletion, ctx)?,
            Stmt::Aggregate(place, value) => {
                let value = self.int(value, ctx)?;
                self.stats_entry(place, ctx)?.add(value);
            }
            Stmt::Call(call) => self.call(call, ctx, out)?,
            Stmt::Try {
                body,
                message,
                handler,
            } => match self.block(body, ctx, out) {
                Err(Stop::Error(error)) if error.catchable() => {
                    if let Some(slot) = message {
                        self.set_str(*slot, error.words().as_bytes());
                    }
                    self.block(handler, ctx, out)?;
                }
                other => other?,
            },
            Stmt::Library(call) => {
                let mut said = self.take_buffer();
                let result = self.library(call, ctx, &mut said);
                if result.is_ok() && call.function == Library::Warn {
                    self.warnings
                        .push(String::from_utf8_lossy(&said).into_owned());
                } else if call.function.prints() {
                    self.output.extend_from_slice(&said);
                    self.flush_pending(out)?;
                }
                self.pool.push(said);
                result?;
            }
            Stmt::Return(value) => {
                match value {
                    Some(Value::Int(e)) => self.returned_int = self.int(e, ctx)?,
                    Some(Value::Str(e)) => {
                        let mut text = self.take_buffer();
                        let result = self.str(e, ctx, &mut text);
                        std::mem::swap(&mut self.returned_str, &mut text);
                        self.pool.push(text);
                        result?;
                    }
                    Some(Value::Hist(_)) | None => {}
                }
                return Err(Stop::Return);
            }
        }
        Ok(())
    }

    fn foreach(
        &mut self,
        foreach: &ForeachLoop,
        ctx: &dyn ProbeContext,
        out: &mut dyn Write,
    ) -> Result<(), Stop> {
        let limit = match &foreach.limit {
            Some(limit) => usize::try_from(self.int(limit, ctx)?).unwrap_or(0),
            None => usize::MAX,
        };
        let slice = match &foreach.slice {
            Some(slice) => {
                let mut wanted = Vec::with_capacity(slice.len());
                for key in slice {
                    wanted.push(match key {
                        Some(key) => Some(self.key_part(key, ctx)?),
                        None => None,
                    });
                }
                Some(wanted)
            }
            None => None,
        };
        // The body cannot change the array (lowering refuses it), so a snapshot of the
        // elements in their order is what the loop walks.
        let array = &self.arrays[foreach.array];
        let in_slice = |key: &Key| match &slice {
            Some(wanted) => key
                .iter()
                .zip(wanted)
                .all(|(part, wanted)| wanted.as_ref().is_none_or(|w| w == part)),
            None => true,
        };
        let mut elements: Vec<(&Key, &Element)> =
            array.iter().filter(|(key, _)| in_slice(key)).collect();
        if let Some(order) = foreach.sort {
            elements.sort_by(|a, b| {
                let ordering = match order.key {
                    Some(i) => a.0[i].cmp(&b.0[i]),
                    None => compare_elements(a.1, b.1, order.figure),
                };
                if order.descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            });
        }
        let snapshot: Vec<(Key, Option<Element>)> = elements
            .into_iter()
            .take(limit)
            .map(|(key, element)| {
                let value = foreach.value.map(|_| element.clone());
                (key.clone(), value)
            })
            .collect();
        for (key, value) in snapshot {
            self.iteration(foreach.body_span)?;
            for ((ty, slot), part) in foreach.keys.iter().zip(key) {
                match (ty, part) {
                    (Ty::Str, KeyPart::Str(s)) => self.set_str(*slot, &s),
                    (_, KeyPart::Int(n)) => *self.int_slot(*slot) = n,
                    (_, KeyPart::Str(_)) => {}
                }
            }
            if let (Some((_, slot)), Some(element)) = (foreach.value, value) {
                match element {
                    Element::Int(n) => *self.int_slot(slot) = n,
                    Element::Str(s) => self.set_str(slot, &s),
                    Element::Stats(_) => {}
                }
            }
            match self.block(&foreach.body, ctx, out) {
                Ok(()) | Err(Stop::Continue) => {}
                Err(Stop::Break) => break,
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    fn delete(&mut self, deletion: &Deletion, ctx: &dyn ProbeContext) -> Result<(), Stop> {
        match deletion {
            Deletion::Element(element) => {
                let key = self.key(element, ctx)?;
                self.arrays[element.array].remove(&key);
            }
            Deletion::Array(array) => self.arrays[*array].clear(),
            Deletion::Var(Ty::Long, slot) => *self.int_slot(*slot) = 0,
            Deletion::Var(Ty::Str, slot) => self.set_str(*slot, b""),
            Deletion::Var(Ty::Stats, Slot::Global(i) | Slot::Local(i)) => {
                self.stats_globals[*i].clear();
            }
        }
        Ok(())
    }

    /// Runs a script function: its arguments are evaluated in the caller's frame, its body
    /// in a frame of its own; the result is left in the return slots.
    fn call(
        &mut self,
        call: &Call,
        ctx: &dyn ProbeContext,
        out: &mut dyn Write,
    ) -> Result<(), Stop> {
        let functions = Rc::clone(&self.functions);
        let function = &functions[call.function];
        let mut ints = vec![0; function.int_locals];
        let mut strs = vec![Vec::new(); function.str_locals];
        for (arg, &(_, slot)) in call.args.iter().zip(&function.params) {
            let (Slot::Local(index) | Slot::Global(index)) = slot;
            match arg {
                Value::Str(e) => self.str(e, ctx, &mut strs[index])?,
                Value::Int(e) => ints[index] = self.int(e, ctx)?,
                Value::Hist(_) => {}
            }
        }
        if self.nesting + 1 > self.max_nesting {
            return Err(Stop::Error(RuntimeError::NestingLimit {
                near: self.source.near(function.name_span),
            }));
        }
        std::mem::swap(&mut self.int_locals, &mut ints);
        std::mem::swap(&mut self.str_locals, &mut strs);
        self.nesting += 1;
        self.returned_int = 0;
        self.returned_str.clear();
        let result = self.block(&function.body, ctx, out);
        self.nesting -= 1;
        std::mem::swap(&mut self.int_locals, &mut ints);
        std::mem::swap(&mut self.str_locals, &mut strs);
        match result {
            Ok(()) | Err(Stop::Return) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Runs a library function: its arguments first, then the function, whose string
    /// result (if any) goes to `dst`.
    fn library(
        &mut self,
        call: &LibraryCall,
        ctx: &dyn ProbeContext,
        dst: &mut Vec<u8>,
    ) -> Result<Answer, Stop> {
        let mut ints = Vec::with_capacity(call.args.len());
        let mut texts: Vec<Vec<u8>> = Vec::with_capacity(call.args.len());
        for arg in &call.args {
            match arg {
                Value::Str(e) => {
                    let mut text = self.take_buffer();
                    let result = self.str(e, ctx, &mut text);
                    texts.push(text);
                    if let Err(stop) = result {
                        self.pool.extend(texts);
                        return Err(stop);
                    }
                }
                Value::Int(e) => ints.push(self.int(e, ctx)?),
                Value::Hist(_) => ints.push(0),
            }
        }
        let (mut next_int, mut next_text) = (ints.iter(), texts.iter());
        let args: Vec<library::Arg<'_>> = call
            .args
            .iter()
            .map(|arg| match arg {
                Value::Str(_) => library::Arg::Str(next_text.next().map_or(&[][..], Vec::as_slice)),
                _ => library::Arg::Int(next_int.next().copied().unwrap_or(0)),
            })
            .collect();
        let result = library::call(call.function, &args, &mut self.library, dst);
        drop(args);
        self.pool.extend(texts);
        result.map_err(|Failure(message)| {
            Stop::Error(RuntimeError::Library {
                message,
                near: (call.function != Library::Error).then(|| self.source.near(call.span)),
            })
        })
    }

    /// A call whose value an expression uses: what it prints waits in `self.output`.
    fn call_in_expression(&mut self, call: &Call, ctx: &dyn ProbeContext) -> Result<(), Stop> {
        let mut printed = self.take_buffer();
        let result = self.call(call, ctx, &mut printed);
        self.output.extend_from_slice(&printed);
        self.pool.push(printed);
        result
    }

    /// Charges one loop iteration against the probe's budget.
    fn iteration(&mut self, body: Span) -> Result<(), Stop> {
        match self.iterations_left.checked_sub(1) {
            Some(left) => {
                self.iterations_left = left;
                Ok(())
            }
            None => Err(Stop::Error(RuntimeError::ActionLimit {
                near: self.source.near(body),
            })),
        }
    }

    fn int_slot(&mut self, slot: Slot) -> &mut i64 {
        match slot {
            Slot::Local(i) => &mut self.int_locals[i],
            Slot::Global(i) => &mut self.int_globals[i],
        }
    }

    fn str_slot(&mut self, slot: Slot) -> &mut Vec<u8> {
        match slot {
            Slot::Local(i) => &mut self.str_locals[i],
            Slot::Global(i) => &mut self.str_globals[i],
        }
    }

    fn set_str(&mut self, slot: Slot, value: &[u8]) {
        let target = self.str_slot(slot);
        target.clear();
        target.extend_from_slice(value);
    }

    /// Evaluates an element's keys.
    fn key(&mut self, element: &ElementRef, ctx: &dyn ProbeContext) -> Result<Key, Stop> {
        let mut key = Vec::with_capacity(element.keys.len());
        for part in &element.keys {
            key.push(self.key_part(part, ctx)?);
        }
        Ok(key)
    }

    fn key_part(&mut self, part: &Value, ctx: &dyn ProbeContext) -> Result<KeyPart, Stop> {
        Ok(match part {
            Value::Str(e) => {
                let mut text = self.take_buffer();
                let result = self.str(e, ctx, &mut text);
                let part = KeyPart::Str(text.as_slice().into());
                self.pool.push(text);
                result?;
                part
            }
            Value::Int(e) => KeyPart::Int(self.int(e, ctx)?),
            Value::Hist(_) => KeyPart::Int(0),
        })
    }

    /// The element `element` names, made if new.
    fn entry(
        &mut self,
        element: &ElementRef,
        ctx: &dyn ProbeContext,
    ) -> Result<&mut Element, Stop> {
        let key = self.key(element, ctx)?;
        let Machine { arrays, source, .. } = self;
        let array = &mut arrays[element.array];
        let limit = array.limit_name();
        array.entry(key).map_err(|Full| {
            Stop::Error(RuntimeError::ArrayFull {
                limit,
                near: source.near(element.span),
            })
        })
    }

    /// The aggregate `place` names, made if it is a new array element.
    fn stats_entry(&mut self, place: &Place, ctx: &dyn ProbeContext) -> Result<&mut Stats, Stop> {
        match place {
            Place::Var(Slot::Global(i) | Slot::Local(i)) => Ok(&mut self.stats_globals[*i]),
            Place::Element(element) => Ok(self.entry(element, ctx)?.stats_mut()),
        }
    }

    /// Reads an aggregate without making it: `f` gets `None` for an absent element.
    fn with_stats<T>(
        &mut self,
        place: &Place,
        ctx: &dyn ProbeContext,
        f: impl FnOnce(Option<&Stats>) -> T,
    ) -> Result<T, Stop> {
        Ok(match place {
            Place::Var(Slot::Global(i) | Slot::Local(i)) => f(Some(&self.stats_globals[*i])),
            Place::Element(element) => {
                let key = self.key(element, ctx)?;
                match self.arrays[element.array].get(&key) {
                    Some(Element::Stats(stats)) => f(Some(stats)),
                    _ => f(None),
                }
            }
        })
    }

    fn stat(
        &mut self,
        op: StatOp,
        place: &Place,
        span: Span,
        ctx: &dyn ProbeContext,
    ) -> Result<i64, Stop> {
        let value = self.with_stats(place, ctx, |stats| {
            let Some(stats) = stats else {
                return match op {
                    StatOp::Count | StatOp::Sum => Some(0),
                    _ => None,
                };
            };
            match op {
                StatOp::Count => Some(stats.count()),
                StatOp::Sum => Some(stats.sum()),
                StatOp::Min => stats.min(),
                StatOp::Max => stats.max(),
                StatOp::Avg => stats.avg(),
                StatOp::Variance => stats.variance(matches!(place, Place::Var(_))),
            }
        })?;
        value.ok_or_else(|| {
            Stop::Error(RuntimeError::EmptyAggregate {
                near: self.source.near(span),
            })
        })
    }

    fn histogram(
        &mut self,
        histogram: &Histogram,
        ctx: &dyn ProbeContext,
        dst: &mut Vec<u8>,
    ) -> Result<(), Stop> {
        let drawn = self.with_stats(&histogram.place, ctx, |stats| match stats {
            Some(stats) if stats.count() > 0 => {
                stats.write_histogram(histogram.kind, dst);
                true
            }
            _ => false,
        })?;
        if drawn {
            Ok(())
        } else {
            Err(Stop::Error(RuntimeError::EmptyAggregate {
                near: self.source.near(histogram.print_span),
            }))
        }
    }

    fn take_buffer(&mut self) -> Vec<u8> {
        let mut buffer = self.pool.pop().unwrap_or_default();
        buffer.clear();
        buffer
    }

    /// Evaluates the arguments, then formats them into `dst`.
    fn format(
        &mut self,
        call: &PrintCall,
        ctx: &dyn ProbeContext,
        dst: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), Stop> {
        let mut ints = [0i64; MAX_PRINT_ARGS + 1];
        let mut strings = self.take_buffer();
        let mut ends = [0usize; MAX_PRINT_ARGS + 1];
        let mut result = Ok(());
        for (i, arg) in call.args.iter().enumerate() {
            let evaluated = match arg {
                Value::Int(e) => self.int(e, ctx).map(|n| ints[i] = n),
                Value::Str(e) => self.str(e, ctx, &mut strings),
                Value::Hist(histogram) => self.histogram(histogram, ctx, &mut strings),
            };
            if let Err(e) = evaluated {
                result = Err(e);
                break;
            }
            ends[i] = strings.len();
        }
        if result.is_ok() {
            let mut args = [Arg::Int(0); MAX_PRINT_ARGS + 1];
            let mut start = 0;
            for (i, arg) in call.args.iter().enumerate() {
                args[i] = match arg {
                    Value::Int(_) => Arg::Int(ints[i]),
                    Value::Str(_) | Value::Hist(_) => Arg::Str(&strings[start..ends[i]]),
                };
                start = ends[i];
            }
            call.format.write(&args[..call.args.len()], dst, limit);
        }
        self.pool.push(strings);
        result
    }

    fn int(&mut self, e: &IntExpr, ctx: &dyn ProbeContext) -> Result<i64, Stop> {
        Ok(match e {
            IntExpr::Const(n) => *n,
            IntExpr::Var(Slot::Local(i)) => self.int_locals[*i],
            IntExpr::Var(Slot::Global(i)) => self.int_globals[*i],
            IntExpr::Neg(x) => self.int(x, ctx)?.wrapping_neg(),
            IntExpr::Not(x) => i64::from(self.int(x, ctx)? == 0),
            IntExpr::BitNot(x) => !self.int(x, ctx)?,
            IntExpr::Arith(op, l, r, span) => {
                let (a, b) = (self.int(l, ctx)?, self.int(r, ctx)?);
                arith(*op, a, b).ok_or_else(|| self.division_by_zero(*span))?
            }
            IntExpr::Compare(op, l, r) => {
                let (a, b) = (self.int(l, ctx)?, self.int(r, ctx)?);
                i64::from(compare(*op, &a, &b))
            }
            IntExpr::StrCompare(op, l, r) => {
                let mut a = self.take_buffer();
                let mut b = self.take_buffer();
                let result = self
                    .str(l, ctx, &mut a)
                    .and_then(|()| self.str(r, ctx, &mut b))
                    .map(|()| i64::from(compare(*op, a.as_slice(), b.as_slice())));
                self.pool.push(a);
                self.pool.push(b);
                result?
            }
            IntExpr::And(l, r) => i64::from(self.int(l, ctx)? != 0 && self.int(r, ctx)? != 0),
            IntExpr::Or(l, r) => i64::from(self.int(l, ctx)? != 0 || self.int(r, ctx)? != 0),
            IntExpr::Cond(c, t, f) => {
                if self.int(c, ctx)? != 0 {
                    self.int(t, ctx)?
                } else {
                    self.int(f, ctx)?
                }
            }
            IntExpr::Element(element) => {
                let key = self.key(element, ctx)?;
                match self.arrays[element.array].get(&key) {
                    Some(Element::Int(n)) => *n,
                    _ => 0,
                }
            }
            IntExpr::Matches {
                subject,
                regex,
                negate,
            } => {
                let mut text = std::mem::take(&mut self.match_subject);
                text.clear();
                let result = self.str(subject, ctx, &mut text);
                self.match_groups.clear();
                self.matched = false;
                if result.is_ok() {
                    if let Some(captures) = regex.captures(&text) {
                        self.matched = true;
                        self.match_groups.extend(
                            captures
                                .iter()
                                .map(|group| group.map(|g| (g.start(), g.end()))),
                        );
                    }
                }
                self.match_subject = text;
                result?;
                i64::from(self.matched != *negate)
            }
            IntExpr::Contains(element) => {
                let key = self.key(element, ctx)?;
                i64::from(self.arrays[element.array].contains(&key))
            }
            IntExpr::Assign(place, op, value, span) => {
                let value = self.int(value, ctx)?;
                let current = self.int_place(place, ctx)?;
                let new = match op {
                    Some(op) => arith(*op, *current, value),
                    None => Some(value),
                };
                match new {
                    Some(new) => *current = new,
                    None => return Err(self.division_by_zero(*span)),
                }
                *current
            }
            IntExpr::Increment {
                place,
                delta,
                postfix,
            } => {
                let current = self.int_place(place, ctx)?;
                let old = *current;
                *current = old.wrapping_add(*delta);
                if *postfix {
                    old
                } else {
                    *current
                }
            }
            IntExpr::Stat(op, place, span) => self.stat(*op, place, *span, ctx)?,
            IntExpr::Call(call) => {
                self.call_in_expression(call, ctx)?;
                self.returned_int
            }
            IntExpr::Library(call) => {
                let mut unused = self.take_buffer();
                let answer = self.library(call, ctx, &mut unused);
                self.pool.push(unused);
                match answer? {
                    Answer::Int(n) => n,
                    Answer::Done => 0,
                }
            }
            IntExpr::Context(what) => match what {
                IntContext::Tid => ctx.tid(),
                IntContext::Pid => ctx.pid(),
                IntContext::Cpu => ctx.cpu(),
                IntContext::Addr => ctx.addr() as i64,
                IntContext::Target => ctx.target(),
                IntContext::TimeNs => ctx.gettimeofday_ns(),
                IntContext::TimeUs => ctx.gettimeofday_us(),
                IntContext::TimeMs => ctx.gettimeofday_us() / 1000,
                IntContext::TimeS => ctx.gettimeofday_us() / 1_000_000,
                IntContext::LocalClockNs => ctx.monotonic_ns(),
                IntContext::LocalClockUs => ctx.monotonic_ns() / 1_000,
                IntContext::LocalClockMs => ctx.monotonic_ns() / 1_000_000,
                IntContext::LocalClockS => ctx.monotonic_ns() / 1_000_000_000,
                IntContext::Jiffies => {
                    self.library
                        .jiffies(ctx.monotonic_ns())
                        .map_err(|Failure(message)| RuntimeError::Library {
                            message,
                            near: None,
                        })?
                }
            },
            IntExpr::IndentDepth { thread, delta } => {
                let delta = self.int(delta, ctx)?;
                if *thread {
                    self.indent.thread_indent_depth(ctx.tid(), delta)
                } else {
                    self.indent.indent_depth(delta)
                }
            }
        })
    }

    fn division_by_zero(&self, span: Span) -> Stop {
        Stop::Error(RuntimeError::DivisionByZero {
            near: self.source.near(span),
        })
    }

    /// The long `place` names, made if it is a new array element.
    fn int_place(&mut self, place: &Place, ctx: &dyn ProbeContext) -> Result<&mut i64, Stop> {
        match place {
            Place::Var(slot) => Ok(self.int_slot(*slot)),
            Place::Element(element) => Ok(self.entry(element, ctx)?.long_mut()),
        }
    }

    /// The string `place` names, made if it is a new array element.
    fn str_place(&mut self, place: &Place, ctx: &dyn ProbeContext) -> Result<&mut Vec<u8>, Stop> {
        match place {
            Place::Var(slot) => Ok(self.str_slot(*slot)),
            Place::Element(element) => Ok(self.entry(element, ctx)?.str_mut()),
        }
    }

    /// Appends the string value of `e` to `dst`.
    fn str(&mut self, e: &StrExpr, ctx: &dyn ProbeContext, dst: &mut Vec<u8>) -> Result<(), Stop> {
        match e {
            StrExpr::Const(s) => dst.extend_from_slice(s),
            StrExpr::Var(Slot::Local(i)) => dst.extend_from_slice(&self.str_locals[*i]),
            StrExpr::Var(Slot::Global(i)) => dst.extend_from_slice(&self.str_globals[*i]),
            StrExpr::Element(element) => {
                let key = self.key(element, ctx)?;
                if let Some(Element::Str(s)) = self.arrays[element.array].get(&key) {
                    dst.extend_from_slice(s);
                }
            }
            StrExpr::Concat(l, r) => {
                let mut joined = self.take_buffer();
                let result = self.str(l, ctx, &mut joined).and_then(|()| {
                    let mut right = self.take_buffer();
                    let result = self.str(r, ctx, &mut right);
                    append_limited(&mut joined, &right, self.max_string_len);
                    self.pool.push(right);
                    result
                });
                dst.extend_from_slice(&joined);
                self.pool.push(joined);
                result?
            }
            StrExpr::Cond(c, t, f) => {
                if self.int(c, ctx)? != 0 {
                    self.str(t, ctx, dst)?
                } else {
                    self.str(f, ctx, dst)?
                }
            }
            StrExpr::Assign(place, append, value) => {
                let mut new = self.take_buffer();
                let max_string_len = self.max_string_len;
                let result = self.str(value, ctx, &mut new).and_then(|()| {
                    let target = self.str_place(place, ctx)?;
                    if !append {
                        target.clear();
                    }
                    append_limited(target, &new, max_string_len);
                    dst.extend_from_slice(target);
                    Ok(())
                });
                self.pool.push(new);
                result?
            }
            StrExpr::Context(what) => dst.extend_from_slice(
                match what {
                    StrContext::Execname => ctx.execname(),
                    StrContext::Probefunc => ctx.probefunc(),
                    StrContext::Ppfunc => ctx.ppfunc(),
                    StrContext::Pp => ctx.pp(),
                }
                .as_bytes(),
            ),
            StrExpr::Indent { thread, delta } => {
                let delta = self.int(delta, ctx)?;
                let now = ctx.gettimeofday_us();
                if *thread {
                    self.indent.thread_indent(
                        ctx.tid(),
                        ctx.execname().as_bytes(),
                        delta,
                        now,
                        dst,
                    );
                } else {
                    self.indent.indent(delta, now, dst);
                }
            }
            StrExpr::Call(call) => {
                self.call_in_expression(call, ctx)?;
                dst.extend_from_slice(&self.returned_str);
            }
            StrExpr::Matched(group, span) => {
                let group = self.int(group, ctx)?;
                let failure = |message: String| {
                    Stop::Error(RuntimeError::Library {
                        message,
                        near: Some(self.source.near(*span)),
                    })
                };
                if !self.matched {
                    return Err(failure(format!(
                        "Attempted to get subexpression {group} from failed match"
                    )));
                }
                match usize::try_from(group)
                    .ok()
                    .and_then(|g| self.match_groups.get(g))
                {
                    Some(Some((start, end))) => {
                        dst.extend_from_slice(&self.match_subject[*start..*end])
                    }
                    // A group the match left out (`a|(b)` matching "a") is "".
                    Some(None) => {}
                    None => {
                        return Err(failure(format!(
                            "Attempted to get nonexistent subexpression {group}"
                        )))
                    }
                }
            }
            StrExpr::Library(call) => {
                // A string result is a string value: within the length limit.
                let start = dst.len();
                self.library(call, ctx, dst)?;
                dst.truncate(start + (dst.len() - start).min(self.max_string_len - 1));
            }
            StrExpr::Sprintf(call) => {
                let start = dst.len();
                self.format(call, ctx, dst, self.max_string_len)?;
                // The result is a C string of at most MAXSTRINGLEN - 1 bytes.
                let end = dst[start..]
                    .iter()
                    .position(|&b| b == 0)
                    .map_or(dst.len(), |n| start + n);
                dst.truncate(end.min(start + self.max_string_len - 1));
            }
        }
        Ok(())
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
        let mut interp = interpreter(include_str!("../../tests/golden/socket-trace.stp"));
        let call = event(1, "init", 0xffffffff81431450, "sock_poll", 1_000_000);
        let ret = event(1, "init", 0xffffffff81197f42, "do_select", 1_000_015);
        assert_eq!(run(&mut interp, 0, &call), "     0 init(1): -> sock_poll\n");
        assert_eq!(run(&mut interp, 1, &ret), "    15 init(1): <- do_select\n");
    }

    #[test]
    fn addr_variant_prints_pointers() {
        let mut interp = interpreter(include_str!("../../tests/golden/socket-trace-addr.stp"));
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
