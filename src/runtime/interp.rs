//! The probe-body interpreter: runs the typed statements of a [`CheckedScript`] against one
//! event's [`ProbeContext`], writing output to the caller's writer.
//!
//! Variables live in slots numbered at check time; string temporaries come from a pool of
//! buffers that is reused from event to event, so a steady stream of events allocates nothing.

use std::io::Write;

use super::context::ProbeContext;
use super::indent::{IndentState, ReturnOf};
use crate::output::printf::{Arg, MAX_STRING_LEN, PRINT_LIMIT};
use crate::script::{
    ArithOp, CmpOp, IntExpr, PrintCall, Slot, Stmt, StrExpr, Value, MAX_PRINT_ARGS,
};
use crate::script::{CheckedProbe, CheckedScript, IntContext, SourceFile, Span, StrContext};

/// What the caller should do after a probe body ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The script called `exit()`: run the end probes and stop.
    Exit,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Displayed as SystemTap words it, after its `ERROR: ` prefix.
    #[error("division by zero near operator '{operator}' at {location}")]
    DivisionByZero {
        operator: &'static str,
        location: String,
    },
    #[error("writing script output: {0}")]
    Output(#[from] std::io::Error),
    #[error("no probe number {0} in this script")]
    NoSuchProbe(usize),
}

pub struct Interpreter {
    probes: Vec<CheckedProbe>,
    machine: Machine,
}

/// Everything a body can change, apart from the body itself.
struct Machine {
    source: SourceFile,
    int_globals: Vec<i64>,
    str_globals: Vec<Vec<u8>>,
    int_locals: Vec<i64>,
    str_locals: Vec<Vec<u8>>,
    indent: IndentState,
    pool: Vec<Vec<u8>>,
    exit_requested: bool,
}

/// Why a body stopped early.
enum Stop {
    Next,
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
            machine: Machine {
                source: script.source.clone(),
                int_globals: script.globals.ints.clone(),
                str_globals: script.globals.strs.clone(),
                int_locals: Vec::new(),
                str_locals: Vec::new(),
                indent: IndentState::new(),
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
        out: &mut dyn Write,
    ) -> Result<Flow, RuntimeError> {
        let probe = self
            .probes
            .get(probe_index)
            .ok_or(RuntimeError::NoSuchProbe(probe_index))?;
        let m = &mut self.machine;
        // Locals start as 0 and "" on every hit.
        m.int_locals.clear();
        m.int_locals.resize(probe.int_locals, 0);
        m.str_locals.truncate(probe.str_locals);
        m.str_locals.iter_mut().for_each(Vec::clear);
        m.str_locals.resize_with(probe.str_locals, Vec::new);
        match m.block(&probe.body, ctx, out) {
            Ok(()) | Err(Stop::Next) => {}
            Err(Stop::Error(e)) => return Err(e),
        }
        Ok(if m.exit_requested {
            Flow::Exit
        } else {
            Flow::Continue
        })
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
fn append_limited(dst: &mut Vec<u8>, extra: &[u8]) {
    let room = (MAX_STRING_LEN - 1).saturating_sub(dst.len());
    dst.extend_from_slice(&extra[..extra.len().min(room)]);
}

impl Machine {
    fn block(
        &mut self,
        body: &[Stmt],
        ctx: &dyn ProbeContext,
        out: &mut dyn Write,
    ) -> Result<(), Stop> {
        for stmt in body {
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
                Stmt::Print(call) => {
                    let mut line = self.take_buffer();
                    let result = self.format(call, ctx, &mut line, PRINT_LIMIT);
                    let written =
                        result.and_then(|()| out.write_all(&line).map_err(RuntimeError::from));
                    self.pool.push(line);
                    written?;
                }
                Stmt::Exit => self.exit_requested = true,
                Stmt::Next => return Err(Stop::Next),
                Stmt::If(condition, then, otherwise) => {
                    if self.int(condition, ctx)? != 0 {
                        self.block(then, ctx, out)?;
                    } else {
                        self.block(otherwise, ctx, out)?;
                    }
                }
            }
        }
        Ok(())
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
    ) -> Result<(), RuntimeError> {
        let mut ints = [0i64; MAX_PRINT_ARGS + 1];
        let mut strings = self.take_buffer();
        let mut ends = [0usize; MAX_PRINT_ARGS + 1];
        let mut result = Ok(());
        for (i, arg) in call.args.iter().enumerate() {
            let evaluated = match arg {
                Value::Int(e) => self.int(e, ctx).map(|n| ints[i] = n),
                Value::Str(e) => self.str(e, ctx, &mut strings),
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
                    Value::Str(_) => Arg::Str(&strings[start..ends[i]]),
                };
                start = ends[i];
            }
            call.format.write(&args[..call.args.len()], dst, limit);
        }
        self.pool.push(strings);
        result
    }

    fn int(&mut self, e: &IntExpr, ctx: &dyn ProbeContext) -> Result<i64, RuntimeError> {
        Ok(match e {
            IntExpr::Const(n) => *n,
            IntExpr::Var(Slot::Local(i)) => self.int_locals[*i],
            IntExpr::Var(Slot::Global(i)) => self.int_globals[*i],
            IntExpr::Neg(x) => self.int(x, ctx)?.wrapping_neg(),
            IntExpr::Not(x) => i64::from(self.int(x, ctx)? == 0),
            IntExpr::BitNot(x) => !self.int(x, ctx)?,
            IntExpr::Arith(op, l, r, span) => {
                let (a, b) = (self.int(l, ctx)?, self.int(r, ctx)?);
                self.arith(*op, a, b, *span)?
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
            IntExpr::Assign(slot, op, value) => {
                let value = self.int(value, ctx)?;
                let target = match slot {
                    Slot::Local(i) => &mut self.int_locals[*i],
                    Slot::Global(i) => &mut self.int_globals[*i],
                };
                *target = match op {
                    Some(ArithOp::Sub) => target.wrapping_sub(value),
                    Some(_) => target.wrapping_add(value),
                    None => value,
                };
                *target
            }
            IntExpr::Context(what) => match what {
                IntContext::Tid => ctx.tid(),
                IntContext::Pid => ctx.pid(),
                IntContext::Cpu => ctx.cpu(),
                IntContext::Addr => ctx.addr() as i64,
                IntContext::Target => ctx.target(),
                IntContext::TimeUs => ctx.gettimeofday_us(),
                IntContext::TimeMs => ctx.gettimeofday_us() / 1000,
                IntContext::TimeS => ctx.gettimeofday_us() / 1_000_000,
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

    fn arith(&self, op: ArithOp, a: i64, b: i64, span: Span) -> Result<i64, RuntimeError> {
        Ok(match op {
            ArithOp::Add => a.wrapping_add(b),
            ArithOp::Sub => a.wrapping_sub(b),
            ArithOp::Mul => a.wrapping_mul(b),
            ArithOp::Div | ArithOp::Mod if b == 0 => {
                return Err(RuntimeError::DivisionByZero {
                    operator: if op == ArithOp::Div { "/" } else { "%" },
                    location: self.source.location(span),
                })
            }
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

    /// Appends the string value of `e` to `dst`.
    fn str(
        &mut self,
        e: &StrExpr,
        ctx: &dyn ProbeContext,
        dst: &mut Vec<u8>,
    ) -> Result<(), RuntimeError> {
        match e {
            StrExpr::Const(s) => dst.extend_from_slice(s),
            StrExpr::Var(Slot::Local(i)) => dst.extend_from_slice(&self.str_locals[*i]),
            StrExpr::Var(Slot::Global(i)) => dst.extend_from_slice(&self.str_globals[*i]),
            StrExpr::Concat(l, r) => {
                let mut joined = self.take_buffer();
                let result = self.str(l, ctx, &mut joined).and_then(|()| {
                    let mut right = self.take_buffer();
                    let result = self.str(r, ctx, &mut right);
                    append_limited(&mut joined, &right);
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
            StrExpr::Assign(slot, append, value) => {
                let mut new = self.take_buffer();
                let result = self.str(value, ctx, &mut new);
                if result.is_ok() {
                    let target = match slot {
                        Slot::Local(i) => &mut self.str_locals[*i],
                        Slot::Global(i) => &mut self.str_globals[*i],
                    };
                    if !append {
                        target.clear();
                    }
                    append_limited(target, &new);
                    dst.extend_from_slice(target);
                }
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
            StrExpr::Sprintf(call) => {
                let start = dst.len();
                self.format(call, ctx, dst, MAX_STRING_LEN)?;
                // The result is a C string of at most MAXSTRINGLEN - 1 bytes.
                let end = dst[start..]
                    .iter()
                    .position(|&b| b == 0)
                    .map_or(dst.len(), |n| start + n);
                dst.truncate(end.min(start + MAX_STRING_LEN - 1));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::compile;

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
        let mut out = Vec::new();
        interp.run_probe(probe, ev, &mut out).unwrap();
        String::from_utf8(out).unwrap()
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
        let mut out = Vec::new();
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
        assert_eq!(out, b"oneother!");
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
            .run_probe(0, &event(1, "a", 0, "", 0), &mut Vec::new())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "division by zero near operator '%' at t.stp:3:9"
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
        let mut interp = interpreter("probe begin { print(1) }");
        let err = interp
            .run_probe(0, &event(1, "a", 0, "", 0), &mut Broken)
            .unwrap_err();
        assert!(matches!(err, RuntimeError::Output(_)));
        assert!(matches!(
            interp.run_probe(5, &event(1, "a", 0, "", 0), &mut Vec::new()),
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
