//! Checks every use against the types [`infer`](super::infer) found and lowers the syntax
//! tree to the [`ir`](crate::script::ir): globals, arrays and locals get slot numbers,
//! builtins their answers, printf formats are parsed, and loops and `delete` are checked
//! for what SystemTap refuses (a `break` outside a loop, changing an array inside a
//! `foreach` over it).

mod bindings;
mod calls;
mod expressions;
mod inline;
mod statements;
mod targets;

use expressions::is_slice;
pub(super) use inline::expanded_body;
use targets::TargetSite;

use std::collections::HashMap;

use super::infer::{FunctionSym, Symbols};
use super::procfs::VALUE_LOCAL as PROCFS_VALUE_LOCAL;
use crate::output::printf::{ArgKind, Format, FormatError};
use crate::script::ast::{self, Expr, ExprKind, Name, SortBy};
use crate::script::builtins::{self, Answer, PrintKind};
use crate::script::ir::{
    ArithOp, ArrayInfo, Call, CheckedFunction, CheckedProbe, CheckedScript, CmpOp, Deletion,
    ElementRef, ForeachLoop, FunctionVariant, Globals, HistKind, Histogram, IntExpr, KeySlice,
    LateRead, LateValue, Library, LibraryCall, Place, PrintCall, ProbePoint, ProbePointKind,
    ReadKind, Shown, Slot, SortOrder, StatOp, StatsShape, Stmt, StrExpr, TargetRead, Ty, Value,
};
use crate::script::lexer::Op;
use crate::script::limits::Limits;
use crate::script::points;
use crate::script::source::{ScriptError, SourceMap, Span};

/// SystemTap refuses print calls with more arguments than this.
pub const MAX_PRINT_ARGS: usize = 32;

/// Where each global lives.
struct GlobalLayout {
    scalars: HashMap<String, (Ty, usize)>,
    arrays: HashMap<String, usize>,
    globals: Globals,
}

pub(super) fn lower(
    source: &SourceMap,
    script: &ast::Script,
    symbols: &Symbols,
    shown_at_exit: &[String],
    limits: &Limits,
) -> Result<CheckedScript, ScriptError> {
    let mut layout = layout_globals(script, symbols, limits);
    layout.globals.shown_at_exit = shown_at_exit
        .iter()
        .map(|name| match layout.arrays.get(name) {
            Some(&array) => Shown::Array(array),
            None => {
                let (ty, index) = layout.scalars[name];
                Shown::Scalar {
                    name: name.clone(),
                    ty,
                    index,
                }
            }
        })
        .collect();
    let mut wide = ScriptWide::default();
    let functions_read_current_task = reads_current_task(&script.functions);
    let mut probes = Vec::new();
    // The functions each body calls, bodies numbered as in `Symbols`.
    let mut calls: Vec<Vec<usize>> = Vec::new();
    // Each body's first error, and each probe point's: the bodies are lowered all the same,
    // so that one run shows them all.
    let mut errors = Vec::new();
    for (index, probe) in script.probes.iter().enumerate() {
        let annotate = |error: ScriptError| match &probe.expansion {
            Some(expansion) => expansion.annotate(source, error),
            None => error,
        };
        let mut points = Vec::with_capacity(probe.points.len());
        let mut left_out = 0;
        for point in &probe.points {
            match points::resolve(point, source) {
                Ok(resolved) => points.extend(resolved),
                // An optional point of a kind rstap does not know is left out, as SystemTap
                // leaves out an optional point it cannot resolve.
                Err(_) if point.optional => left_out += 1,
                Err((span, message)) => {
                    errors.push(annotate(ScriptError::at(source, span, message)))
                }
            }
        }
        if left_out > 0 && left_out == probe.points.len() {
            // Nothing is left of the probe: as SystemTap drops it before it elaborates the
            // body, its body is not checked (`probe netdev.get_stats ? { ... dev_name ... }`
            // names variables only the missing alias would have set). It still counted
            // for the types of the globals it uses.
            calls.push(Vec::new());
            probes.push(CheckedProbe::dropped(probe.expansion.clone()));
            continue;
        }
        let mut lowering = Lowering::new(source, symbols, &layout, limits, index, &mut wide);
        lowering.target_site = TargetSite::of(&points);
        lowering.returns_from_syscalls = points.iter().all(|point| point.is_syscall_exit());
        lowering.expansion = probe.expansion.as_ref();
        let locals = symbols.locals.get(index);
        lowering.bindings = bindings::of(&probe.body, |name| {
            locals.is_some_and(|locals| locals.contains_key(name))
        });
        let body = lowering
            .block(&probe.body.statements)
            .unwrap_or_else(|error| {
                errors.push(annotate(error));
                Vec::new()
            });
        let current_task = match probe.points.first() {
            Some(point) if functions_read_current_task => {
                lowering.current_task_for_functions(point.span)
            }
            _ => None,
        };
        calls.push(lowering.callees);
        probes.push(CheckedProbe {
            points,
            expansion: probe.expansion.clone(),
            alias_variables: probe
                .expansion
                .iter()
                .flat_map(|e| &e.variables)
                .map(|name| (name.clone(), symbols.var(index, name).unwrap_or(Ty::Long)))
                .collect(),
            targets: lowering.targets,
            entry_values: lowering.entry_values,
            entry_targets: lowering.entry_targets,
            defined: lowering.defined,
            body,
            int_locals: lowering.int_locals,
            str_locals: lowering.str_locals,
            procfs_value: match lowering.local_slots.get(PROCFS_VALUE_LOCAL) {
                Some(&(Ty::Str, slot)) => Some(slot),
                _ => None,
            },
            current_task,
        });
    }
    let mut functions = Vec::new();
    for (index, function) in script.functions.iter().enumerate() {
        let body = script.probes.len() + index;
        if symbols.functions[&function.name.name].expanded.is_some() {
            // Expanded at every call, never called.
            calls.push(Vec::new());
            functions.push(CheckedFunction {
                name_span: function.name.span,
                params: Vec::new(),
                body: Vec::new(),
                int_locals: 0,
                str_locals: 0,
            });
            continue;
        }
        let mut lowering = Lowering::new(source, symbols, &layout, limits, body, &mut wide);
        lowering.function = symbols.functions.get(&function.name.name);
        let mut params = Vec::with_capacity(function.params.len());
        let mut lowered = Ok(());
        for (param, _) in &function.params {
            // A parameter no call or use gives a type is a long, as an unused local is.
            let ty = symbols.var(body, &param.name).unwrap_or(Ty::Long);
            match lowering.local(&param.name, ty, param.span) {
                Ok(slot) => params.push((ty, slot)),
                Err(error) => lowered = Err(error),
            }
        }
        let statements = lowered
            .and_then(|()| lowering.block(&function.body.statements))
            .unwrap_or_else(|error| {
                errors.push(error);
                Vec::new()
            });
        calls.push(lowering.callees);
        functions.push(CheckedFunction {
            name_span: function.name.span,
            params,
            body: statements,
            int_locals: lowering.int_locals,
            str_locals: lowering.str_locals,
        });
    }
    if let Some(errors) = ScriptError::several(errors) {
        return Err(errors);
    }
    let max_nesting = limits
        .nesting
        .unwrap_or_else(|| max_nesting(&calls, script.probes.len()));
    let mut globals = layout.globals;
    for (owner, shape) in wide.shapes {
        match owner {
            Aggregates::Global(i) => globals.stats[i] = shape,
            Aggregates::Array(i) => globals.arrays[i].stats = shape,
        }
    }
    Ok(CheckedScript {
        probes,
        functions,
        max_nesting,
        max_actions: limits.actions,
        max_string_len: limits.string_len,
        source: source.clone(),
        globals,
        late_reads: wide.late_reads,
    })
}

/// Whether a function body reads `task_current()` or a fact of the task (`uid()`...),
/// which then come from the calling probe's event.
fn reads_current_task(functions: &[ast::Function]) -> bool {
    let mut reads = false;
    for function in functions {
        ast::visit_exprs(&function.body.statements, &mut |expr| {
            match &expr.kind {
            ExprKind::Call { name, args, .. } => {
                reads |= name == "task_current"
                    || builtins::lookup_by_arity(name, args.len()).is_some_and(|builtin| {
                        matches!(builtin.answer, Answer::Library(f) if f.is_own_process_fact())
                    })
            }
            ExprKind::Target(target) => reads |= target.root().name == "task_current",
            _ => {}
        }
        });
    }
    reads
}

/// SystemTap's MAXNESTING: one more than the longest chain of calls from a probe, a call
/// back into a function already on the chain counting as one more, and ten more if there
/// is such a call (a recursive `fib` gets 13).
fn max_nesting(calls: &[Vec<usize>], probes: usize) -> usize {
    fn depth(
        function: usize,
        calls: &[Vec<usize>],
        probes: usize,
        path: &mut Vec<usize>,
        recursive: &mut bool,
    ) -> usize {
        if path.contains(&function) {
            *recursive = true;
            return 1;
        }
        path.push(function);
        let deepest = calls[probes + function]
            .iter()
            .map(|&callee| depth(callee, calls, probes, path, recursive))
            .max()
            .unwrap_or(0);
        path.pop();
        1 + deepest
    }
    let mut recursive = false;
    let deepest = (0..probes)
        .flat_map(|probe| calls[probe].iter())
        .map(|&callee| depth(callee, calls, probes, &mut Vec::new(), &mut recursive))
        .max()
        .unwrap_or(0);
    deepest + 1 + if recursive { 10 } else { 0 }
}

/// Applies `-G NAME=VALUE` settings to the globals' initial values.
pub(super) fn set_globals(
    checked: &mut CheckedScript,
    script: &ast::Script,
    symbols: &Symbols,
    values: &[(String, String)],
    limits: &Limits,
) -> Result<(), ScriptError> {
    let layout = layout_globals(script, symbols, limits);
    for (name, value) in values {
        let refuse = |why: &str| ScriptError::without_place(format!("-G {name}={value}: {why}"));
        match layout.scalars.get(name) {
            Some(&(Ty::Long, index)) => {
                checked.globals.ints[index] = parse_long(value)
                    .ok_or_else(|| refuse("the global is a long; give a number"))?;
            }
            Some(&(Ty::Str, index)) => {
                checked.globals.strs[index] = string_value(value.as_bytes(), limits)
            }
            Some(&(Ty::Stats, _)) => return Err(refuse("a statistics aggregate takes no value")),
            None if layout.arrays.contains_key(name) => {
                return Err(refuse("an array takes no value"))
            }
            None => return Err(refuse("the script declares no such global")),
        }
    }
    Ok(())
}

/// A number as the script language writes one, possibly negative: decimal, `0x` hex or
/// `0` octal.
fn parse_long(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let magnitude = if let Some(hex) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<u64>().ok()?
    };
    // Two's complement, as the lexer reads literals up to 2^64-1.
    let value = magnitude as i64;
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// Numbers the globals per type in declaration order; a type never learned is long.
fn layout_globals(script: &ast::Script, symbols: &Symbols, limits: &Limits) -> GlobalLayout {
    let mut layout = GlobalLayout {
        scalars: HashMap::new(),
        arrays: HashMap::new(),
        globals: Globals::default(),
    };
    for decl in &script.globals {
        let global = &symbols.globals[&decl.name];
        let ty = global.ty.unwrap_or(Ty::Long);
        if let Some(shape) = &global.array {
            let declared = shape.declared.unwrap_or_default();
            let keys = if shape.keys.is_empty() {
                vec![Ty::Long]
            } else {
                shape.keys.iter().map(|k| k.unwrap_or(Ty::Long)).collect()
            };
            layout
                .arrays
                .insert(decl.name.clone(), layout.globals.arrays.len());
            layout.globals.arrays.push(ArrayInfo {
                name: decl.name.clone(),
                keys,
                value: ty,
                max_entries: declared
                    .size
                    .map_or(limits.map_entries, |size| size as usize),
                declared_size: declared.size.is_some(),
                wraps: declared.wraps,
                stats: StatsShape::default(),
            });
            continue;
        }
        let globals = &mut layout.globals;
        let index = match ty {
            Ty::Long => {
                globals
                    .ints
                    .push(match decl.init.as_ref().map(|e| &e.kind) {
                        Some(ExprKind::Number(n)) => *n,
                        _ => 0,
                    });
                globals.ints.len() - 1
            }
            Ty::Str => {
                globals
                    .strs
                    .push(match decl.init.as_ref().map(|e| &e.kind) {
                        Some(ExprKind::Str(lit)) => string_value(&lit.value, limits),
                        _ => Vec::new(),
                    });
                globals.strs.len() - 1
            }
            Ty::Stats => {
                globals.stats.push(StatsShape::default());
                globals.stats.len() - 1
            }
        };
        layout.scalars.insert(decl.name.clone(), (ty, index));
    }
    layout
}

/// A string as SystemTap stores it: up to the first NUL, at most `MAXSTRINGLEN - 1` bytes.
fn string_value(bytes: &[u8], limits: &Limits) -> Vec<u8> {
    let bytes = bytes.split(|&b| b == 0).next().unwrap_or_default();
    bytes[..bytes.len().min(limits.string_len - 1)].to_vec()
}

fn compound_op(op: Op) -> Option<ArithOp> {
    Some(match op {
        Op::AddAssign => ArithOp::Add,
        Op::SubAssign => ArithOp::Sub,
        Op::MulAssign => ArithOp::Mul,
        Op::DivAssign => ArithOp::Div,
        Op::ModAssign => ArithOp::Mod,
        Op::ShlAssign => ArithOp::Shl,
        Op::ShrAssign => ArithOp::Shr,
        Op::AndAssign => ArithOp::And,
        Op::OrAssign => ArithOp::Or,
        Op::XorAssign => ArithOp::Xor,
        _ => return None,
    })
}

fn arith_op(op: Op) -> Option<ArithOp> {
    Some(match op {
        Op::Plus => ArithOp::Add,
        Op::Minus => ArithOp::Sub,
        Op::Star => ArithOp::Mul,
        Op::Slash => ArithOp::Div,
        Op::Percent => ArithOp::Mod,
        Op::Shl => ArithOp::Shl,
        Op::Shr => ArithOp::Shr,
        Op::Amp => ArithOp::And,
        Op::Pipe => ArithOp::Or,
        Op::Caret => ArithOp::Xor,
        _ => return None,
    })
}

fn compare_op(op: Op) -> Option<CmpOp> {
    Some(match op {
        Op::Eq => CmpOp::Eq,
        Op::Ne => CmpOp::Ne,
        Op::Lt => CmpOp::Lt,
        Op::Le => CmpOp::Le,
        Op::Gt => CmpOp::Gt,
        Op::Ge => CmpOp::Ge,
        _ => return None,
    })
}

fn stat_op(name: &str) -> Option<StatOp> {
    Some(match name {
        "count" => StatOp::Count,
        "sum" => StatOp::Sum,
        "min" => StatOp::Min,
        "max" => StatOp::Max,
        "avg" => StatOp::Avg,
        "variance" => StatOp::Variance,
        _ => return None,
    })
}

/// Lowers one probe's or function's body, giving its locals slot numbers.
/// What the lowering of every body adds to.
#[derive(Default)]
struct ScriptWide {
    /// How the aggregates the script reads must be kept: the linear histograms it prints
    /// (their buckets are counted as values arrive), the bit shift of their variance.
    shapes: HashMap<Aggregates, StatsShape>,
    /// The reads of kernel memory bodies make after their events.
    late_reads: Vec<LateRead>,
}

struct Lowering<'a> {
    source: &'a SourceMap,
    symbols: &'a Symbols,
    layout: &'a GlobalLayout,
    limits: &'a Limits,
    /// The body's number, as in `Symbols`.
    body: usize,
    /// The function whose body this is.
    function: Option<&'a FunctionSym>,
    /// The functions this body calls.
    callees: Vec<usize>,
    local_slots: HashMap<String, (Ty, usize)>,
    int_locals: usize,
    str_locals: usize,
    /// How many loops enclose the statement being lowered.
    loops: usize,
    /// The arrays of the enclosing `foreach` loops, which their bodies may not change.
    iterating: Vec<usize>,
    /// What every body adds to.
    wide: &'a mut ScriptWide,
    /// What events the body runs on, which decides the target variables it may read.
    target_site: TargetSite,
    /// The kernel data the body reads, in the order `IntExpr::Target` numbers them.
    targets: Vec<TargetRead>,
    /// What a `.return` probe's body has evaluated at entry, and the reads those make.
    entry_values: Vec<Value>,
    entry_targets: Vec<TargetRead>,
    /// Whether the expression being lowered is inside `@entry(...)`.
    at_entry: bool,
    /// Whether the probe is on syscall exit tracepoints, whose `@entry` the call's entry
    /// tracepoint evaluates.
    returns_from_syscalls: bool,
    /// The target expressions `@defined` asks about.
    defined: Vec<ast::TargetExpr>,
    /// The locals that stand for a target expression, for `@cast` (see [`bindings`]).
    bindings: HashMap<String, ast::TargetExpr>,
    /// For a probe on an alias, where it came from, for errors that name its variables.
    expansion: Option<&'a ast::Expansion>,
}

/// A call of a script function, with the type of its value (`None`: it has none).
type FunctionCall = (Option<Ty>, Box<Call>);

/// A global aggregate, or the aggregates of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Aggregates {
    Global(usize),
    Array(usize),
}

impl Aggregates {
    fn of(place: &Place) -> Self {
        match place {
            Place::Var(Slot::Global(i) | Slot::Local(i)) => Aggregates::Global(*i),
            Place::Element(element) => Aggregates::Array(element.array),
        }
    }
}

/// SystemTap's largest `@variance` bit shift.
const MAX_VARIANCE_SHIFT: i64 = 62;

impl<'a> Lowering<'a> {
    fn new(
        source: &'a SourceMap,
        symbols: &'a Symbols,
        layout: &'a GlobalLayout,
        limits: &'a Limits,
        body: usize,
        wide: &'a mut ScriptWide,
    ) -> Self {
        Lowering {
            source,
            symbols,
            layout,
            limits,
            body,
            function: None,
            callees: Vec::new(),
            local_slots: HashMap::new(),
            int_locals: 0,
            str_locals: 0,
            loops: 0,
            iterating: Vec::new(),
            wide,
            target_site: TargetSite::Function,
            targets: Vec::new(),
            entry_values: Vec::new(),
            entry_targets: Vec::new(),
            at_entry: false,
            returns_from_syscalls: false,
            defined: Vec::new(),
            bindings: HashMap::new(),
            expansion: None,
        }
    }

    fn error(&self, span: Span, message: impl Into<String>) -> ScriptError {
        ScriptError::at(self.source, span, message)
    }

    fn mismatch(&self, span: Span, wanted: Ty, found: Ty) -> ScriptError {
        self.error(
            span,
            format!(
                "type mismatch: expected a {}, found a {}",
                wanted.name(),
                found.name()
            ),
        )
    }
}

fn value_type(value: &Value) -> Ty {
    match value {
        Value::Int(_) => Ty::Long,
        Value::Str(_) => Ty::Str,
        Value::Hist(_) => Ty::Stats,
    }
}
