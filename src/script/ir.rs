//! The checked program: what the front end's passes produce, and what the runtime runs and
//! the kernel side attaches. Owned by neither: every name is resolved to a slot, an array
//! number or an enum, and every type is known, so running a body needs no lookup by name.

use super::ast::Expansion;
pub use super::ast::TargetExpr;
use super::source::{SourceMap, Span};
use crate::output::printf::Format;

/// A value's type. Statistics aggregates live only in globals and array elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Long,
    Str,
    Stats,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Long => "long",
            Ty::Str => "string",
            Ty::Stats => "statistics aggregate",
        }
    }
}

/// Where a scalar variable lives: its index among the slots of its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Local(usize),
    Global(usize),
}

/// Integer-valued facts about the event being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntContext {
    Tid,
    Pid,
    Cpu,
    Addr,
    Target,
    TimeNs,
    TimeUs,
    TimeMs,
    TimeS,
    /// `local_clock_*()`: CLOCK_MONOTONIC at the event, in these units.
    LocalClockNs,
    LocalClockUs,
    LocalClockMs,
    LocalClockS,
    Jiffies,
    /// `user_mode()`: whether the event interrupted the task in user space.
    UserMode,
}

/// String-valued facts about the event being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrContext {
    Execname,
    Probefunc,
    Ppfunc,
    Pp,
    /// `pn()`: the point as the script named it, through aliases.
    Pn,
    /// The text written to a procfs file, which a `.write` probe's `$value` starts as.
    ProcfsWritten,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Shl,
    Shr,
    And,
    Or,
    Xor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One element of an array: which array, and its keys in order.
#[derive(Debug, Clone)]
pub(crate) struct ElementRef {
    pub(crate) array: usize,
    pub(crate) keys: Vec<Value>,
    /// The element's place in the script, for run-time errors such as a full array.
    pub(crate) span: Span,
}

/// A read of kernel memory the body makes when it runs, after its event, from an address
/// it computes: `@cast(ptr, "task_struct")->pid` of a pointer kept in an array,
/// `kernel_string(addr)` of an address read before. The kernel runs it on demand (see
/// `kernel::memory`); the memory may have changed since the event.
#[derive(Debug, Clone)]
pub enum LateRead {
    /// A cast's path: its base is a placeholder constant that the address replaces.
    Cast(TargetRead),
    /// The memory at the address itself: `kernel_long()` ([`ReadKind::Deref`]) or
    /// `kernel_string()` ([`ReadKind::String`]).
    Address(ReadKind),
}

/// A read of a process's memory the body makes when it runs: the number of `bytes` at
/// `address` in the event's process, sign- or zero-extended.
#[derive(Debug, Clone)]
pub(crate) struct UserLateRead {
    pub(crate) address: IntExpr,
    pub(crate) bytes: u8,
    pub(crate) signed: bool,
    /// The read's name in its fault ("user short").
    pub(crate) function: &'static str,
    pub(crate) span: Span,
}

/// Where a late read's value comes from.
#[derive(Debug, Clone)]
pub(crate) struct LateValue {
    /// Its number in [`CheckedScript::late_reads`].
    pub(crate) read: usize,
    pub(crate) address: Box<IntExpr>,
    /// For run-time errors: a read that faulted.
    pub(crate) span: Span,
}

/// The elements of an array whose keys match those given, `None` matching any key: what
/// `a[k, *]` names in `delete`, `in` and `foreach`.
#[derive(Debug, Clone)]
pub(crate) struct KeySlice {
    pub(crate) array: usize,
    pub(crate) keys: Vec<Option<Value>>,
}

/// Something a value can be stored in: a scalar variable or an array element. For a
/// statistics aggregate, a `Var` is always a global.
#[derive(Debug, Clone)]
pub(crate) enum Place {
    Var(Slot),
    Element(ElementRef),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatOp {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    Variance,
}

#[derive(Debug, Clone)]
pub(crate) enum IntExpr {
    Const(i64),
    Var(Slot),
    /// An array element's value, 0 if it has none.
    Element(ElementRef),
    Neg(Box<IntExpr>),
    Not(Box<IntExpr>),
    BitNot(Box<IntExpr>),
    /// `span` locates the operator for run-time errors.
    Arith(ArithOp, Box<IntExpr>, Box<IntExpr>, Span),
    Compare(CmpOp, Box<IntExpr>, Box<IntExpr>),
    StrCompare(CmpOp, Box<StrExpr>, Box<StrExpr>),
    And(Box<IntExpr>, Box<IntExpr>),
    Or(Box<IntExpr>, Box<IntExpr>),
    Cond(Box<IntExpr>, Box<IntExpr>, Box<IntExpr>),
    /// `place = value`, or `place op= value`; `span` is the value's, where SystemTap
    /// places a division by zero in `/=`.
    Assign(Place, Option<ArithOp>, Box<IntExpr>, Span),
    /// `++`/`--` (`delta` 1 or -1), giving the old value when `postfix`.
    Increment {
        place: Place,
        delta: i64,
        postfix: bool,
    },
    /// `[keys] in array`.
    Contains(ElementRef),
    /// `[k, *] in array`: whether any element matches.
    ContainsSlice(KeySlice),
    /// `subject =~ "regex"` (or `!~` when `negate`); a match's groups are kept for
    /// `matched()`.
    Matches {
        subject: Box<StrExpr>,
        regex: Box<regex::bytes::Regex>,
        negate: bool,
    },
    /// `@count(x)` and friends; `span` locates the operator for errors on empty aggregates.
    Stat(StatOp, Place, Span),
    Call(Box<Call>),
    Library(Box<LibraryCall>),
    Context(IntContext),
    /// The value of the probe's target read number `.0` (see [`TargetRead`]), carried by
    /// the event; `.1` locates it for run-time errors (a read that faulted).
    Target(usize, Span),
    /// The script's late read number `read` (see [`LateRead`]) from `address`.
    Late(LateValue),
    /// `user_short(addr)` and the like of an address the body computes: read from the
    /// event's process when the body runs.
    UserLate(Box<UserLateRead>),
    /// `user_short(p)` and `user_short_warn(p)`: the value, or 0 where its read faults
    /// (with a warning when `warn`), as SystemTap's non-erroring user reads give.
    FaultGivesZero {
        value: Box<IntExpr>,
        warn: bool,
    },
    /// `task_current()` in a function: the task of the event whose probe called it (see
    /// `CheckedProbe::current_task`).
    CurrentTask(Span),
    /// `uid()` and the other facts of a task, in a function: `event` (the task of the
    /// calling probe's event) when the probe has one, `own` (rstap's process) otherwise.
    ByCaller {
        event: Box<IntExpr>,
        own: Box<IntExpr>,
    },
    /// In a `.return` probe, the value of the probe's entry value number `.0` (see
    /// `CheckedProbe::entry_values`), as it was at the function's entry.
    Entry(usize),
    /// `@defined`: whether the probe's check number `.0` (see `CheckedProbe::defined`)
    /// resolved in the probed function.
    Defined(usize),
    /// `thread_indent_depth` (thread) or `indent_depth`.
    IndentDepth {
        thread: bool,
        delta: Box<IntExpr>,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum StrExpr {
    Const(Vec<u8>),
    Var(Slot),
    /// An array element's value, "" if it has none.
    Element(ElementRef),
    Concat(Box<StrExpr>, Box<StrExpr>),
    Cond(Box<IntExpr>, Box<StrExpr>, Box<StrExpr>),
    /// `place = value`, or `place .= value` when `append`.
    Assign(Place, bool, Box<StrExpr>),
    Context(StrContext),
    /// A string the probe's target read number `.0` copied from the kernel at the event.
    Target(usize, Span),
    /// A string the script's late read copies from kernel memory when the body runs.
    Late(LateValue),
    /// `pexecname()` in a function, as [`IntExpr::ByCaller`].
    ByCaller {
        event: Box<StrExpr>,
        own: Box<StrExpr>,
    },
    /// The same, or, where the copy faulted, the text `.1`: `user_string(p, "-")`.
    TargetOr(usize, Vec<u8>),
    /// The same escaped and in double quotes, or, where the copy faulted, the address `.1`
    /// in hex: `user_string_quoted(p)`.
    TargetQuoted(usize, Box<IntExpr>),
    /// In a `.return` probe, the string the probe's entry value number `.0` had at entry.
    Entry(usize),
    Call(Box<Call>),
    Library(Box<LibraryCall>),
    /// `matched(n)`: group `n` of the last successful `=~`; `span` is the call's.
    Matched(Box<IntExpr>, Span),
    /// `thread_indent` (thread) or `indent`.
    Indent {
        thread: bool,
        delta: Box<IntExpr>,
    },
    Sprintf(Box<PrintCall>),
}

/// A function of rstap's library, answered in the runtime from its arguments alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Library {
    Strlen,
    Substr,
    Isinstr,
    StrReplace,
    Strtol,
    Stringat,
    TextStr,
    TextStrn,
    /// `tokenize(input, delimiters)`: the next token, `""` input going on with the last.
    Tokenize,
    /// `system(command)`: runs the command with `sh -c`, without waiting for it.
    System,
    Ctime,
    Randint,
    Hz,
    /// `syscall_name(nr)` and `syscall_num(name)`: x86-64 system call numbers; `""` and
    /// -1 for those that have none.
    SyscallName,
    SyscallNum,
    /// `errno_str(err)`: `ENOENT` for 2 or -2, `E#N` for a number without a name.
    ErrnoStr,
    /// `signal_str(num)`: the signal's name, such as "SIGKILL".
    SignalStr,
    /// `return_str(format, ret)`: a return value in decimal (format 1), hex (2) or octal
    /// (3), or `-2 (ENOENT)` for an error.
    ReturnStr,
    /// `tz_gmtoff()`, `tz_name()`, `tz_ctime(s)`: the local time zone, as rstap found it
    /// when it started.
    TzGmtoff,
    TzName,
    TzCtime,
    /// rstap's own process, where `begin`, `end` and timer probes run: `uid()`, `gid()`,
    /// `euid()`, `egid()`, `ppid()`, `pexecname()`.
    Uid,
    Gid,
    Euid,
    Egid,
    Ppid,
    Pexecname,
    /// `proc_mem_size(pid)`, `proc_mem_rss(pid)`, `proc_mem_shr(pid)`: a process's pages
    /// (all, resident, shared), as /proc says when the body runs; 0 once it is gone.
    ProcMemSize,
    ProcMemRss,
    ProcMemShr,
    /// `__rstap_cmdline(pid)`, behind `cmdline_str()`: the process's arguments, separated
    /// by spaces, as /proc says when the body runs.
    Cmdline,
    /// `__rstap_open_files(pid)`, behind `task_open_file_handles()`: the process's open
    /// file descriptors, counted in /proc when the body runs.
    OpenFiles,
    /// `error(msg)`: fails the probe with `msg`.
    Error,
    /// `warn(msg)`: `WARNING: msg` on stderr, and the probe goes on.
    Warn,
    /// The `ansi_*` functions, which print terminal escape sequences.
    AnsiClearScreen,
    AnsiSetColor,
    AnsiSetColors,
    AnsiSetColorsAndAttribute,
    AnsiResetColor,
    AnsiNewLine,
    AnsiCursorMove,
    AnsiCursorHide,
    AnsiCursorShow,
    AnsiCursorSave,
    AnsiCursorRestore,
    /// Kernel addresses named through the kernel's symbols: `symname(addr)`,
    /// `symdata(addr)`, `modname(addr)`, and `print_syms(callers)`, `sprint_syms(callers)`
    /// for a string of hex addresses such as `backtrace()` gives.
    Symname,
    Symdata,
    Modname,
    PrintSyms,
    SprintSyms,
}

impl Library {
    /// Whether it answers for rstap's own process, which only probes that run in it
    /// (begin, end, timers) are in.
    pub fn is_own_process_fact(self) -> bool {
        use Library::*;
        matches!(self, Uid | Gid | Euid | Egid | Ppid | Pexecname)
    }

    /// Whether what it gives is printed, as the print functions print.
    pub fn prints(self) -> bool {
        use Library::*;
        matches!(
            self,
            AnsiClearScreen
                | AnsiSetColor
                | AnsiSetColors
                | AnsiSetColorsAndAttribute
                | AnsiResetColor
                | AnsiNewLine
                | AnsiCursorMove
                | AnsiCursorHide
                | AnsiCursorShow
                | AnsiCursorSave
                | AnsiCursorRestore
                | PrintSyms
        )
    }
}

/// A call of a library function; `span` is the call's, for its errors.
#[derive(Debug, Clone)]
pub(crate) struct LibraryCall {
    pub(crate) function: Library,
    pub(crate) args: Vec<Value>,
    pub(crate) span: Span,
}

/// A call of a script function with its arguments, one per parameter.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) function: usize,
    pub(crate) args: Vec<Value>,
}

/// A histogram of an aggregate, as `print` shows it.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    pub(crate) place: Place,
    pub(crate) kind: HistKind,
    /// The print call's name: SystemTap's error for an empty aggregate points there.
    pub(crate) print_span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistKind {
    Log,
    /// Buckets of `step` from `low` up to `high`, with one more below and one above.
    Linear {
        low: i64,
        high: i64,
        step: i64,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Int(IntExpr),
    Str(StrExpr),
    Hist(Box<Histogram>),
}

/// A printf, print, println or sprintf with its format parsed and arguments checked.
#[derive(Debug, Clone)]
pub(crate) struct PrintCall {
    pub(crate) format: Format,
    pub(crate) args: Vec<Value>,
}

/// What `delete` empties.
#[derive(Debug, Clone)]
pub(crate) enum Deletion {
    Element(ElementRef),
    Slice(KeySlice),
    Array(usize),
    /// A scalar, back to 0, "" or an empty aggregate.
    Var(Ty, Slot),
}

/// A `foreach` over an array, its order and limit.
#[derive(Debug, Clone)]
pub(crate) struct ForeachLoop {
    pub(crate) array: usize,
    /// `in a[k, *]`: only the elements that match.
    pub(crate) slice: Option<KeySlice>,
    /// The variables that receive each key, with their types.
    pub(crate) keys: Vec<(Ty, Slot)>,
    pub(crate) value: Option<(Ty, Slot)>,
    pub(crate) sort: Option<SortOrder>,
    pub(crate) limit: Option<IntExpr>,
    pub(crate) body: Vec<Stmt>,
    pub(crate) body_span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SortOrder {
    /// `None` sorts by value; `Some(i)` by the key at position `i`.
    pub(crate) key: Option<usize>,
    /// The figure an aggregate's value sorts by: `@count` unless the loop names another.
    pub(crate) figure: StatOp,
    pub(crate) descending: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Stmt {
    Eval(Value),
    Print(PrintCall),
    Exit,
    /// `abort()`: the probe stops here, and the script with it, skipping end probes.
    Abort,
    Next,
    Break,
    Continue,
    If(IntExpr, Vec<Stmt>, Vec<Stmt>),
    /// `while` and `for`: `step` runs after the body and after `continue`. `body_span`
    /// is where running out of MAXACTION is reported.
    Loop {
        condition: Option<IntExpr>,
        body: Vec<Stmt>,
        step: Vec<Stmt>,
        body_span: Span,
    },
    Foreach(Box<ForeachLoop>),
    Delete(Deletion),
    /// `place <<< value`.
    Aggregate(Place, IntExpr),
    /// A call of a function that returns nothing.
    Call(Box<Call>),
    Library(Box<LibraryCall>),
    Return(Option<Value>),
    /// `try { body } catch (message) { handler }`: `message` gets the error's own words.
    Try {
        body: Vec<Stmt>,
        message: Option<Slot>,
        handler: Vec<Stmt>,
    },
}

/// A script that parsed and type-checked, ready to attach and run.
#[derive(Debug, Clone)]
pub struct CheckedScript {
    pub probes: Vec<CheckedProbe>,
    pub(crate) functions: Vec<CheckedFunction>,
    /// How deep function calls may nest: SystemTap's MAXNESTING, from the call graph.
    pub(crate) max_nesting: usize,
    /// Loop iterations one probe run may make (SystemTap's MAXACTION budget).
    pub(crate) max_actions: u32,
    /// MAXSTRINGLEN: strings hold at most one byte less.
    pub(crate) max_string_len: usize,
    pub(crate) source: SourceMap,
    pub(crate) globals: Globals,
    /// What bodies read of kernel memory after their events, numbered as
    /// [`IntExpr::Late`] and [`StrExpr::Late`] name them.
    pub late_reads: Vec<LateRead>,
}

/// A script function, its parameters first among its locals.
#[derive(Debug, Clone)]
pub(crate) struct CheckedFunction {
    /// Where the function is named in its declaration, where MAXNESTING errors point.
    pub(crate) name_span: Span,
    pub(crate) params: Vec<(Ty, Slot)>,
    pub(crate) body: Vec<Stmt>,
    pub(crate) int_locals: usize,
    pub(crate) str_locals: usize,
}

impl CheckedScript {
    /// The script's text and name, for reporting errors against probe point spans.
    pub fn source(&self) -> &SourceMap {
        &self.source
    }

    /// Whether any probe point is a tracepoint.
    pub fn has_tracepoints(&self) -> bool {
        self.probes.iter().any(|probe| {
            probe
                .points
                .iter()
                .any(|point| matches!(point.kind, ProbePointKind::Tracepoint { .. }))
        })
    }
}

/// The script's global variables, their initial values, and its arrays.
#[derive(Debug, Clone, Default)]
pub(crate) struct Globals {
    pub(crate) ints: Vec<i64>,
    pub(crate) strs: Vec<Vec<u8>>,
    /// The global aggregates, each kept as the script reads it.
    pub(crate) stats: Vec<StatsShape>,
    pub(crate) arrays: Vec<ArrayInfo>,
    /// What SystemTap prints when the script ends: the globals written but never read.
    pub(crate) shown_at_exit: Vec<Shown>,
}

/// A global printed at exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shown {
    Scalar { name: String, ty: Ty, index: usize },
    Array(usize),
}

/// An array's shape, as declared and inferred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArrayInfo {
    pub(crate) name: String,
    pub(crate) keys: Vec<Ty>,
    pub(crate) value: Ty,
    /// At most this many elements (SystemTap's MAXMAPENTRIES unless declared).
    pub(crate) max_entries: usize,
    /// Whether the declaration gave the size (`global a[N]`).
    pub(crate) declared_size: bool,
    /// `global a%`: a full array drops its oldest element instead of failing.
    pub(crate) wraps: bool,
    /// For an array of aggregates, how each element is kept.
    pub(crate) stats: StatsShape,
}

/// How an aggregate is kept: the linear histograms the script prints of it, and the bit
/// shift its `@variance(x, N)` is computed with (SystemTap allows one per aggregate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsShape {
    pub linear: Vec<HistKind>,
    pub variance_shift: u32,
}

/// A read of the kernel's data that a probe body makes. Kernel memory can be read only while
/// the probe fires, so each read is planned with the probe point, done by the kernel side
/// at the event, and carried to the body with the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRead {
    /// The target variable and the path through the kernel's data from it.
    pub target: TargetExpr,
    pub kind: ReadKind,
    /// The whole expression, for errors.
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// The value as a long: integers and enums widened by their signedness, pointers as
    /// addresses, arrays and `&$var` as the address of their first byte.
    Value,
    /// `kernel_long(p)` / `_int` / `_short` / `_char`, `user_short(p)` and the like:
    /// `bytes` read at the address the target's value gives (from the task's memory when
    /// `user`), sign- or zero-extended; `function` names the read in its fault ("kernel
    /// long").
    Deref {
        bytes: u8,
        signed: bool,
        user: bool,
        function: &'static str,
    },
    /// `kernel_string(p)`, `kernel_string_n(p, n)`, `user_string(p)`: the NUL-terminated
    /// string at the address the target's value gives, up to `max` bytes.
    String { max: usize, user: bool },
    /// `$$parms` (the target is named `$parms`) and `$$return` (`$return`): the function's
    /// parameters, or its return value, as SystemTap's `name=0x1f` text.
    Text,
    /// `print_backtrace()`, `sprint_backtrace()`, `backtrace()`: the kernel stack at the
    /// event, as text in one of SystemTap's shapes.
    Backtrace(BacktraceFormat),
}

/// How a backtrace is written, as SystemTap's runtime writes each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BacktraceFormat {
    /// `print_backtrace()`: ` 0xffffffff81a2b3c0 : sock_sendmsg+0x0/0x60 [kernel]` lines.
    Full,
    /// `sprint_backtrace()`: `sock_sendmsg+0x0 [kernel]` lines.
    Simple,
    /// `backtrace()`: `0xffffffff81a2b3c0 ` for each frame.
    Hex,
}

#[derive(Debug, Clone)]
pub struct CheckedProbe {
    pub points: Vec<ProbePoint>,
    /// For a probe on an alias: `pn()`, and where it was expanded from.
    pub expansion: Option<Expansion>,
    /// The variables its aliases assign, with their types, as `-L` lists them.
    pub alias_variables: Vec<(String, Ty)>,
    /// The kernel data the body reads, numbered as `IntExpr::Target` and
    /// `StrExpr::Target` name them.
    pub targets: Vec<TargetRead>,
    /// In a `.return` probe, what is evaluated at the function's entry for it to read:
    /// `@entry(expr)`, and the parameters it names (SystemTap gives their values at
    /// entry). Numbered as `IntExpr::Entry` and `StrExpr::Entry` name them.
    pub(crate) entry_values: Vec<Value>,
    /// The kernel data those read, at the entry event.
    pub entry_targets: Vec<TargetRead>,
    /// The target expressions `@defined` asks about. A read of one of them that does not
    /// resolve in a function is not an error there: the script guards it.
    pub defined: Vec<TargetExpr>,
    pub(crate) body: Vec<Stmt>,
    pub(crate) int_locals: usize,
    pub(crate) str_locals: usize,
    /// In a procfs probe, the string local that holds `$value`.
    pub procfs_value: Option<usize>,
    /// When the script's functions call `task_current()`: the target read that gives the
    /// event's task to the functions this probe calls.
    pub current_task: Option<usize>,
}

impl CheckedProbe {
    /// The string local that may outgrow MAXSTRINGLEN (`max_string_len`), with its limit:
    /// the `$value` of a procfs read with a `.maxsize` larger than that.
    pub(crate) fn long_value(&self, max_string_len: usize) -> Option<(usize, usize)> {
        let maxsize = self
            .points
            .iter()
            .filter_map(|point| match point.kind {
                ProbePointKind::Procfs {
                    access: ProcfsAccess::Read,
                    maxsize: Some(maxsize),
                    ..
                } => usize::try_from(maxsize).ok(),
                _ => None,
            })
            .max()?;
        // Strings hold one byte less than their limit.
        let limit = maxsize.saturating_add(1);
        (limit > max_string_len).then_some((self.procfs_value?, limit))
    }

    /// A probe all of whose points were optional and of kinds nothing provides: it has no
    /// points and no body, and it never runs.
    pub(crate) fn dropped(expansion: Option<Expansion>) -> Self {
        CheckedProbe {
            points: Vec::new(),
            expansion,
            alias_variables: Vec::new(),
            targets: Vec::new(),
            entry_values: Vec::new(),
            entry_targets: Vec::new(),
            defined: Vec::new(),
            body: Vec::new(),
            int_locals: 0,
            str_locals: 0,
            procfs_value: None,
            current_task: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePoint {
    pub kind: ProbePointKind,
    /// As written in the script, e.g. `kernel.function("sock_*").call`.
    pub text: String,
    pub span: Span,
    /// `POINT?` or `POINT!`: if it matches nothing, it is left out rather than an error.
    pub optional: bool,
    /// `POINT!`: if it matches, the probe's later points are left out.
    pub sufficient: bool,
}

/// The system of the system calls' tracepoints.
pub const SYSCALL_SYSTEM: &str = "syscalls";
/// How the names of a system call's entry and exit tracepoints begin.
pub const SYSCALL_ENTER: &str = "sys_enter_";
pub const SYSCALL_EXIT: &str = "sys_exit_";

/// The entry tracepoint of the system call whose exit tracepoint is `event`.
pub fn syscall_entry_event(event: &str) -> Option<String> {
    event
        .strip_prefix(SYSCALL_EXIT)
        .map(|call| format!("{SYSCALL_ENTER}{call}"))
}

impl ProbePoint {
    /// Whether the point is the exit of system calls (`syscalls:sys_exit_NAME`), which
    /// pairs with their entry as a function's return does.
    pub fn is_syscall_exit(&self) -> bool {
        match &self.kind {
            ProbePointKind::Tracepoint { system, event } => {
                system
                    .as_deref()
                    .is_none_or(|system| system == SYSCALL_SYSTEM)
                    && event.starts_with(SYSCALL_EXIT)
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbePointKind {
    /// Begin and end probes run in order of priority (`begin(-1)` before `begin`), then
    /// of appearance.
    Begin {
        priority: i64,
    },
    End {
        priority: i64,
    },
    /// Runs when a probe fails with a run-time error, before rstap stops.
    Error {
        priority: i64,
    },
    /// Never runs: for a script's probes to be checked without running.
    Never,
    /// Every `period_ns`, give or take up to `randomize_ns`.
    Timer {
        period_ns: u64,
        randomize_ns: u64,
    },
    KernelFunction {
        /// A glob over function names.
        function: String,
        /// The glob after `@`, over the source file a function is declared in.
        file: Option<String>,
        variant: FunctionVariant,
    },
    /// `kernel.trace("SYSTEM:EVENT")`: globs over tracepoints, the system optional.
    Tracepoint {
        system: Option<String>,
        event: String,
    },
    /// `procfs("PATH").read` or `.write`: a file rstap serves, whose reads and writes run
    /// the probe; `$value` is what a read gives or what was written.
    Procfs {
        /// Relative to the run's procfs directory.
        path: String,
        access: ProcfsAccess,
        /// `.umask(UMASK)`: the file's permissions are the access's `0444` or `0222` less
        /// this; without it only root may read or write the file.
        umask: Option<u32>,
        /// `.maxsize(N)`: at most this many bytes of `$value` are given to a reader.
        maxsize: Option<u64>,
    },
    /// `timer.profile`, `perf.type(T).config(C)...`: a perf event of this type and config,
    /// sampled on every CPU.
    Sample {
        perf_type: u32,
        config: u64,
        every: SampleEvery,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcfsAccess {
    Read,
    Write,
}

/// How often a sampled perf event fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleEvery {
    /// Once per this many of its events (`perf...sample(N)`).
    Events(u64),
    /// This many times a second (`perf...hz(N)`).
    PerSecond(u64),
    /// At each of the kernel's ticks (`timer.profile`), HZ times a second.
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionVariant {
    /// Plain `.function`: out-of-line functions and inlined instances, at entry.
    Entry,
    Call,
    Return,
    Inline,
}
