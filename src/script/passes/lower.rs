//! Checks every use against the types [`infer`](super::infer) found and lowers the syntax
//! tree to the [`ir`](crate::script::ir): globals, arrays and locals get slot numbers,
//! builtins their answers, printf formats are parsed, and loops and `delete` are checked
//! for what SystemTap refuses (a `break` outside a loop, changing an array inside a
//! `foreach` over it).

use std::collections::HashMap;

use super::infer::{FunctionSym, Symbols};
use crate::output::printf::{ArgKind, Format, FormatError};
use crate::script::ast::{self, Expr, ExprKind, Name, SortBy};
use crate::script::builtins::{self, Answer, PrintKind};
use crate::script::ir::{
    ArithOp, ArrayInfo, Call, CheckedFunction, CheckedProbe, CheckedScript, CmpOp, Deletion,
    ElementRef, ForeachLoop, Globals, HistKind, Histogram, IntExpr, Library, LibraryCall, Place,
    PrintCall, ProbePointKind, Shown, Slot, SortOrder, StatOp, StatsShape, Stmt, StrExpr, Ty,
    Value,
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
    let mut shapes = HashMap::new();
    let mut probes = Vec::new();
    // The functions each body calls, bodies numbered as in `Symbols`, and the first fact
    // of rstap's own process each asks for.
    let mut calls: Vec<Vec<usize>> = Vec::new();
    let mut own_process_facts: Vec<Option<(&'static str, Span)>> = Vec::new();
    // Each body's first error, and each probe point's: the bodies are lowered all the same,
    // so that one run shows them all.
    let mut errors = Vec::new();
    for (index, probe) in script.probes.iter().enumerate() {
        let mut points = Vec::with_capacity(probe.points.len());
        for point in &probe.points {
            match points::resolve(point, source) {
                Ok(resolved) => points.extend(resolved),
                // An optional point of a kind rstap does not know is left out, as SystemTap
                // leaves out an optional point it cannot resolve.
                Err(_) if point.optional => {}
                Err((span, message)) => errors.push(ScriptError::at(source, span, message)),
            }
        }
        let mut lowering = Lowering::new(source, symbols, &layout, limits, index, &mut shapes);
        let body = lowering
            .block(&probe.body.statements)
            .unwrap_or_else(|error| {
                errors.push(error);
                Vec::new()
            });
        calls.push(lowering.callees);
        own_process_facts.push(lowering.own_process_fact);
        probes.push(CheckedProbe {
            points,
            body,
            int_locals: lowering.int_locals,
            str_locals: lowering.str_locals,
        });
    }
    let mut functions = Vec::new();
    for (index, function) in script.functions.iter().enumerate() {
        let body = script.probes.len() + index;
        let mut lowering = Lowering::new(source, symbols, &layout, limits, body, &mut shapes);
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
        own_process_facts.push(lowering.own_process_fact);
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
    refuse_own_process_facts_in_kernel_probes(source, &probes, &calls, &own_process_facts)?;
    let max_nesting = limits
        .nesting
        .unwrap_or_else(|| max_nesting(&calls, script.probes.len()));
    let mut globals = layout.globals;
    for (owner, shape) in shapes {
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
    })
}

/// Refuses `uid()` and the other facts of rstap's own process in a probe on kernel events,
/// where SystemTap answers with the event's task: rstap's events do not carry them yet.
fn refuse_own_process_facts_in_kernel_probes(
    source: &SourceMap,
    probes: &[CheckedProbe],
    calls: &[Vec<usize>],
    facts: &[Option<(&'static str, Span)>],
) -> Result<(), ScriptError> {
    for (index, probe) in probes.iter().enumerate() {
        let on_kernel_events = probe
            .points
            .iter()
            .any(|point| matches!(point.kind, ProbePointKind::KernelFunction { .. }));
        if !on_kernel_events {
            continue;
        }
        // The probe's body and every function it reaches, the probe's body first.
        let mut seen = vec![false; calls.len()];
        let mut pending = vec![index];
        while let Some(body) = pending.pop() {
            if std::mem::replace(&mut seen[body], true) {
                continue;
            }
            if let Some((name, span)) = facts[body] {
                return Err(ScriptError::at(
                    source,
                    span,
                    format!(
                        "not supported yet: {name}() in a probe on kernel functions: rstap's \
                         kernel events do not carry the task's credentials or parent; {name}() \
                         answers in begin, end and timer probes, for rstap's own process"
                    ),
                ));
            }
            pending.extend(calls[body].iter().map(|&function| probes.len() + function));
        }
    }
    Ok(())
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
    /// The first fact of rstap's own process the body asks for (`uid()`...).
    own_process_fact: Option<(&'static str, Span)>,
    local_slots: HashMap<String, (Ty, usize)>,
    int_locals: usize,
    str_locals: usize,
    /// How many loops enclose the statement being lowered.
    loops: usize,
    /// The arrays of the enclosing `foreach` loops, which their bodies may not change.
    iterating: Vec<usize>,
    /// How the aggregates the script reads must be kept: the linear histograms it prints
    /// (their buckets are counted as values arrive), the bit shift of their variance.
    shapes: &'a mut HashMap<Aggregates, StatsShape>,
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
        shapes: &'a mut HashMap<Aggregates, StatsShape>,
    ) -> Self {
        Lowering {
            source,
            symbols,
            layout,
            limits,
            body,
            function: None,
            callees: Vec::new(),
            own_process_fact: None,
            local_slots: HashMap::new(),
            int_locals: 0,
            str_locals: 0,
            loops: 0,
            iterating: Vec::new(),
            shapes,
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

    fn block(&mut self, statements: &[ast::Stmt]) -> Result<Vec<Stmt>, ScriptError> {
        let mut out = Vec::with_capacity(statements.len());
        for stmt in statements {
            self.statement(stmt, &mut out)?;
        }
        Ok(out)
    }

    fn body(&mut self, stmt: &ast::Stmt) -> Result<Vec<Stmt>, ScriptError> {
        let mut out = Vec::new();
        self.statement(stmt, &mut out)?;
        Ok(out)
    }

    /// The body of a loop, where `break` and `continue` may appear.
    fn loop_body(&mut self, stmt: &ast::Stmt) -> Result<Vec<Stmt>, ScriptError> {
        self.loops += 1;
        let body = self.body(stmt);
        self.loops -= 1;
        body
    }

    fn statement(&mut self, stmt: &ast::Stmt, out: &mut Vec<Stmt>) -> Result<(), ScriptError> {
        match stmt {
            ast::Stmt::Block(block) => out.extend(self.block(&block.statements)?),
            ast::Stmt::Empty(_) => {}
            ast::Stmt::Next(_) => out.push(Stmt::Next),
            ast::Stmt::Break(span) | ast::Stmt::Continue(span) => {
                let is_break = matches!(stmt, ast::Stmt::Break(_));
                if self.loops == 0 {
                    let word = if is_break { "break" } else { "continue" };
                    return Err(self.error(*span, format!("cannot '{word}' outside loop")));
                }
                out.push(if is_break {
                    Stmt::Break
                } else {
                    Stmt::Continue
                });
            }
            ast::Stmt::If {
                condition,
                then,
                otherwise,
                ..
            } => {
                let condition = self.int(condition)?;
                let then = self.body(then)?;
                let otherwise = match otherwise {
                    Some(otherwise) => self.body(otherwise)?,
                    None => Vec::new(),
                };
                out.push(Stmt::If(condition, then, otherwise));
            }
            ast::Stmt::While {
                condition, body, ..
            } => {
                let condition = Some(self.int(condition)?);
                let body_span = body.span();
                let body = self.loop_body(body)?;
                out.push(Stmt::Loop {
                    condition,
                    body,
                    step: Vec::new(),
                    body_span,
                });
            }
            ast::Stmt::For {
                init,
                condition,
                step,
                body,
                ..
            } => {
                if let Some(init) = init {
                    out.push(Stmt::Eval(self.value(init)?));
                }
                let condition = condition.as_ref().map(|c| self.int(c)).transpose()?;
                let step = match step {
                    Some(step) => vec![Stmt::Eval(self.value(step)?)],
                    None => Vec::new(),
                };
                let body_span = body.span();
                let body = self.loop_body(body)?;
                out.push(Stmt::Loop {
                    condition,
                    body,
                    step,
                    body_span,
                });
            }
            ast::Stmt::Foreach(foreach) => out.push(self.foreach(foreach)?),
            ast::Stmt::Try {
                body,
                message,
                handler,
                ..
            } => {
                let body = self.block(&body.statements)?;
                let message = match message {
                    Some(name) => Some(self.typed_slot(name, Ty::Str)?),
                    None => None,
                };
                let handler = self.block(&handler.statements)?;
                out.push(Stmt::Try {
                    body,
                    message,
                    handler,
                });
            }
            ast::Stmt::Return(value, span) => {
                let Some(function) = self.function else {
                    return Err(self.error(*span, "cannot 'return' outside a function"));
                };
                let value = match (value, function.returns) {
                    (None, _) => None,
                    (Some(value), Some(Ty::Str)) => Some(Value::Str(self.str(value)?)),
                    (Some(value), _) => Some(Value::Int(self.int(value)?)),
                };
                out.push(Stmt::Return(value));
            }
            ast::Stmt::Delete(target) => out.push(Stmt::Delete(self.deletion(target)?)),
            ast::Stmt::Expr(e) => out.push(self.expression_statement(e)?),
        }
        Ok(())
    }

    fn foreach(&mut self, foreach: &ast::Foreach) -> Result<Stmt, ScriptError> {
        let array = self.array(&foreach.array)?;
        let info = &self.layout.globals.arrays[array];
        let (key_types, value_type) = (info.keys.clone(), info.value);
        if foreach.keys.len() != key_types.len() {
            return Err(self.key_count(&foreach.array, foreach.keys.len(), key_types.len()));
        }
        let mut keys = Vec::with_capacity(key_types.len());
        for (name, &ty) in foreach.keys.iter().zip(&key_types) {
            keys.push((ty, self.typed_slot(name, ty)?));
        }
        let value = match &foreach.value {
            Some(name) if value_type == Ty::Stats => {
                return Err(self.error(
                    name.span,
                    format!(
                    "'{}' holds statistics aggregates: read them with @count({}[...]) and friends",
                    foreach.array.name, foreach.array.name
                ),
                ))
            }
            Some(name) => Some((value_type, self.typed_slot(name, value_type)?)),
            None => None,
        };
        let figure = match &foreach.sort_figure {
            None => StatOp::Count,
            Some(figure) if value_type != Ty::Stats => {
                return Err(self.error(
                    figure.span,
                    format!(
                        "@{} sorts an array of aggregates; '{}' holds {}s",
                        figure.name,
                        foreach.array.name,
                        value_type.name()
                    ),
                ))
            }
            // SystemTap sorts by @count when asked for @variance.
            Some(figure) => match stat_op(&figure.name) {
                Some(StatOp::Variance) => StatOp::Count,
                Some(op) => op,
                None => {
                    return Err(self.error(
                        figure.span,
                        "a foreach sorts by @count, @sum, @min, @max or @avg",
                    ))
                }
            },
        };
        let sort = foreach.sort.map(|sort| SortOrder {
            key: match sort.by {
                SortBy::Value => None,
                SortBy::Key(i) => Some(i),
            },
            figure,
            descending: sort.descending,
        });
        let limit = foreach.limit.as_ref().map(|l| self.int(l)).transpose()?;
        let slice = match &foreach.slice {
            Some(slice) if slice.len() != key_types.len() => {
                return Err(self.key_count(&foreach.array, slice.len(), key_types.len()))
            }
            Some(slice) => {
                let mut wanted = Vec::with_capacity(slice.len());
                for (key, ty) in slice.iter().zip(&key_types) {
                    wanted.push(match (key, ty) {
                        (None, _) => None,
                        (Some(key), Ty::Str) => Some(Value::Str(self.str(key)?)),
                        (Some(key), _) => Some(Value::Int(self.int(key)?)),
                    });
                }
                Some(wanted)
            }
            None => None,
        };
        self.iterating.push(array);
        let body = self.loop_body(&foreach.body);
        self.iterating.pop();
        Ok(Stmt::Foreach(Box::new(ForeachLoop {
            array,
            slice,
            keys,
            value,
            sort,
            limit,
            body: body?,
            body_span: foreach.body.span(),
        })))
    }

    /// A slot for `name` that must hold `ty`.
    fn typed_slot(&mut self, name: &Name, ty: Ty) -> Result<Slot, ScriptError> {
        let (found, slot) = self.slot(&name.name, name.span)?;
        if found != ty {
            return Err(self.mismatch(name.span, ty, found));
        }
        Ok(slot)
    }

    fn deletion(&mut self, target: &Expr) -> Result<Deletion, ScriptError> {
        match &target.kind {
            ExprKind::Index { array, keys } => {
                let (_, element) = self.element(array, keys, target.span)?;
                self.check_unchanged(element.array, target.span)?;
                Ok(Deletion::Element(element))
            }
            ExprKind::Var(name) if self.layout.arrays.contains_key(name) => {
                let array = self.layout.arrays[name];
                self.check_unchanged(array, target.span)?;
                Ok(Deletion::Array(array))
            }
            ExprKind::Var(name) => {
                let (ty, slot) = self.slot(name, target.span)?;
                Ok(Deletion::Var(ty, slot))
            }
            _ => Err(self.error(
                target.span,
                "delete takes a variable, an array or an array element",
            )),
        }
    }

    fn expression_statement(&mut self, e: &Expr) -> Result<Stmt, ScriptError> {
        match &e.kind {
            ExprKind::Call {
                name,
                name_span,
                args,
            } if self.symbols.functions.contains_key(name) => {
                if let Some((None, call)) = self.function_call(name, *name_span, args)? {
                    return Ok(Stmt::Call(call));
                }
            }
            ExprKind::Call {
                name,
                name_span,
                args,
            } => match builtins::lookup(name).map(|b| b.answer) {
                Some(Answer::Print(kind)) if !kind.gives_string() => {
                    return Ok(Stmt::Print(self.print_call(name, kind, *name_span, args)?))
                }
                Some(Answer::Exit) => {
                    self.arity(name, *name_span, args, 0)?;
                    return Ok(Stmt::Exit);
                }
                Some(Answer::Abort) => {
                    self.arity(name, *name_span, args, 0)?;
                    return Ok(Stmt::Abort);
                }
                Some(Answer::Library(_))
                    if builtins::lookup(name).and_then(|b| b.returns).is_none() =>
                {
                    // Overloaded by arity, as ansi_set_color is.
                    let form = builtins::lookup_by_arity(name, args.len()).map(|b| b.answer);
                    if let Some(Answer::Library(function)) = form {
                        return Ok(Stmt::Library(
                            self.library_call(name, function, e.span, args)?,
                        ));
                    }
                }
                _ => {}
            },
            ExprKind::Aggregate { target, value } => {
                let (ty, place) = self.place(target)?;
                if ty != Ty::Stats {
                    return Err(self.error(
                        target.span,
                        format!("'<<<' adds to a statistics aggregate, not a {}", ty.name()),
                    ));
                }
                return Ok(Stmt::Aggregate(place, self.int(value)?));
            }
            _ => {}
        }
        Ok(Stmt::Eval(self.value(e)?))
    }

    fn int(&mut self, e: &Expr) -> Result<IntExpr, ScriptError> {
        match self.value(e)? {
            Value::Int(v) => Ok(v),
            Value::Str(_) => Err(self.mismatch(e.span, Ty::Long, Ty::Str)),
            Value::Hist(_) => Err(self.mismatch(e.span, Ty::Long, Ty::Stats)),
        }
    }

    fn str(&mut self, e: &Expr) -> Result<StrExpr, ScriptError> {
        match self.value(e)? {
            Value::Str(v) => Ok(v),
            Value::Int(_) => Err(self.mismatch(e.span, Ty::Str, Ty::Long)),
            Value::Hist(_) => Err(self.mismatch(e.span, Ty::Str, Ty::Stats)),
        }
    }

    fn slot(&mut self, name: &str, span: Span) -> Result<(Ty, Slot), ScriptError> {
        if let Some(&(ty, index)) = self.local_slots.get(name) {
            return Ok((ty, Slot::Local(index)));
        }
        if self.symbols.global(self.body, name).is_some() {
            if let Some(&(ty, index)) = self.layout.scalars.get(name) {
                return Ok((ty, Slot::Global(index)));
            }
            return Err(self.error(
                span,
                format!("'{name}' is an array: name an element, as in {name}[key]"),
            ));
        }
        let ty = self.symbols.var(self.body, name).ok_or_else(|| {
            self.error(
                span,
                format!("cannot tell the type of '{name}': it is never assigned a value"),
            )
        })?;
        Ok((ty, self.local(name, ty, span)?))
    }

    /// A new local of type `ty`.
    fn local(&mut self, name: &str, ty: Ty, span: Span) -> Result<Slot, ScriptError> {
        let counter = match ty {
            Ty::Long => &mut self.int_locals,
            Ty::Str => &mut self.str_locals,
            Ty::Stats => {
                return Err(self.error(
                    span,
                    format!("statistics aggregate '{name}' must be declared global"),
                ))
            }
        };
        let index = *counter;
        *counter += 1;
        self.local_slots.insert(name.to_string(), (ty, index));
        Ok(Slot::Local(index))
    }

    fn array(&self, name: &Name) -> Result<usize, ScriptError> {
        if let Some(&array) = self.layout.arrays.get(&name.name) {
            return Ok(array);
        }
        let message = if self.layout.scalars.contains_key(&name.name) {
            format!("'{}' is not an array", name.name)
        } else {
            format!(
                "array '{}' is not declared: arrays are global, add `global {}`",
                name.name, name.name
            )
        };
        Err(self.error(name.span, message))
    }

    fn key_count(&self, array: &Name, given: usize, wanted: usize) -> ScriptError {
        self.error(
            array.span,
            format!(
                "array '{}' has {wanted} key{} elsewhere, {given} here",
                array.name,
                if wanted == 1 { "" } else { "s" }
            ),
        )
    }

    /// `array[keys]`, with each key checked against the array's key types; also the
    /// element's value type.
    fn element(
        &mut self,
        array: &Name,
        keys: &[Expr],
        span: Span,
    ) -> Result<(Ty, ElementRef), ScriptError> {
        let index = self.array(array)?;
        let info = &self.layout.globals.arrays[index];
        let (key_types, value) = (info.keys.clone(), info.value);
        if keys.len() != key_types.len() {
            return Err(self.key_count(array, keys.len(), key_types.len()));
        }
        let mut lowered = Vec::with_capacity(keys.len());
        for (key, ty) in keys.iter().zip(key_types) {
            lowered.push(match ty {
                Ty::Str => Value::Str(self.str(key)?),
                _ => Value::Int(self.int(key)?),
            });
        }
        Ok((
            value,
            ElementRef {
                array: index,
                keys: lowered,
                span,
            },
        ))
    }

    /// A variable or array element that can be assigned to, with its type.
    fn place(&mut self, target: &Expr) -> Result<(Ty, Place), ScriptError> {
        match &target.kind {
            ExprKind::Var(name) => {
                let (ty, slot) = self.slot(name, target.span)?;
                Ok((ty, Place::Var(slot)))
            }
            ExprKind::Index { array, keys } => {
                let (ty, element) = self.element(array, keys, target.span)?;
                Ok((ty, Place::Element(element)))
            }
            _ => Err(self.error(target.span, "expected a variable or an array element")),
        }
    }

    /// A place that is about to change: not an element of an array being iterated.
    fn changing_place(&mut self, target: &Expr) -> Result<(Ty, Place), ScriptError> {
        let (ty, place) = self.place(target)?;
        if let Place::Element(element) = &place {
            self.check_unchanged(element.array, target.span)?;
        }
        Ok((ty, place))
    }

    fn check_unchanged(&self, array: usize, span: Span) -> Result<(), ScriptError> {
        if self.iterating.contains(&array) {
            let name = &self.layout.globals.arrays[array].name;
            return Err(self.error(
                span,
                format!("variable '{name}' modified during 'foreach' iteration"),
            ));
        }
        Ok(())
    }

    fn aggregate_read(&self, ty: Ty, span: Span) -> Result<(), ScriptError> {
        if ty == Ty::Stats {
            return Err(self.error(
                span,
                "a statistics aggregate is read with @count, @sum, @min, @max, @avg, @variance or a histogram",
            ));
        }
        Ok(())
    }

    fn value(&mut self, e: &Expr) -> Result<Value, ScriptError> {
        Ok(match &e.kind {
            ExprKind::Number(n) => Value::Int(IntExpr::Const(*n)),
            ExprKind::Str(lit) => Value::Str(StrExpr::Const(string_value(&lit.value, self.limits))),
            ExprKind::Var(name) => {
                let (ty, slot) = self.slot(name, e.span)?;
                self.aggregate_read(ty, e.span)?;
                match ty {
                    Ty::Str => Value::Str(StrExpr::Var(slot)),
                    _ => Value::Int(IntExpr::Var(slot)),
                }
            }
            ExprKind::Index { array, keys } => {
                let (ty, element) = self.element(array, keys, e.span)?;
                self.aggregate_read(ty, e.span)?;
                match ty {
                    Ty::Str => Value::Str(StrExpr::Element(element)),
                    _ => Value::Int(IntExpr::Element(element)),
                }
            }
            ExprKind::In { keys, array } => {
                let (_, element) = self.element(array, keys, e.span)?;
                Value::Int(IntExpr::Contains(element))
            }
            ExprKind::Call {
                name,
                name_span,
                args,
            } => self.call(name, *name_span, args)?,
            ExprKind::Unary { op, operand } => {
                let operand = Box::new(self.int(operand)?);
                Value::Int(match op {
                    Op::Minus => IntExpr::Neg(operand),
                    Op::Bang => IntExpr::Not(operand),
                    Op::Tilde => IntExpr::BitNot(operand),
                    _ => *operand,
                })
            }
            ExprKind::Binary {
                op,
                op_span,
                left,
                right,
            } => self.binary(*op, *op_span, left, right)?,
            ExprKind::Ternary {
                condition,
                then,
                otherwise,
            } => {
                let condition = Box::new(self.int(condition)?);
                match self.value(then)? {
                    Value::Str(then) => Value::Str(StrExpr::Cond(
                        condition,
                        Box::new(then),
                        Box::new(self.str(otherwise)?),
                    )),
                    Value::Int(then) => Value::Int(IntExpr::Cond(
                        condition,
                        Box::new(then),
                        Box::new(self.int(otherwise)?),
                    )),
                    Value::Hist(_) => return Err(self.mismatch(then.span, Ty::Long, Ty::Stats)),
                }
            }
            ExprKind::Assign {
                op, target, value, ..
            } => self.assignment(e.span, *op, target, value)?,
            ExprKind::Increment {
                target,
                delta,
                postfix,
            } => {
                let (ty, place) = self.changing_place(target)?;
                if ty != Ty::Long {
                    return Err(self.error(
                        e.span,
                        format!(
                            "'{}' applies to a long, not a {}",
                            if *delta > 0 { "++" } else { "--" },
                            ty.name()
                        ),
                    ));
                }
                Value::Int(IntExpr::Increment {
                    place,
                    delta: *delta,
                    postfix: *postfix,
                })
            }
            ExprKind::Aggregate { .. } => {
                return Err(self.error(e.span, "'<<<' is a statement and has no value to use"))
            }
            ExprKind::Stat {
                op,
                op_span,
                operand,
                args,
            } => {
                let Some(what) = stat_op(op) else {
                    return Err(self.error(
                        *op_span,
                        format!("@{op} can only be printed, as in print(@{op}(x))"),
                    ));
                };
                let shift = match (what, args.as_slice()) {
                    (StatOp::Variance, []) => Some(0),
                    (_, []) => None,
                    (StatOp::Variance, [shift]) => match shift.kind {
                        ExprKind::Number(n @ 0..=MAX_VARIANCE_SHIFT) => Some(n as u32),
                        _ => {
                            return Err(self.error(
                                shift.span,
                                format!(
                                    "@variance's bit shift must be a literal number from 0 \
                                     to {MAX_VARIANCE_SHIFT}"
                                ),
                            ))
                        }
                    },
                    (StatOp::Variance, _) => {
                        return Err(self.error(
                            *op_span,
                            "@variance takes the aggregate and, optionally, a bit shift",
                        ))
                    }
                    _ => {
                        return Err(self.error(*op_span, format!("@{op} takes only the aggregate")))
                    }
                };
                let place = self.aggregate(operand)?;
                if let Some(shift) = shift {
                    let shape = self.shapes.entry(Aggregates::of(&place)).or_default();
                    // SystemTap keeps one shift per aggregate; 0 is its "none given".
                    let previous = shape.variance_shift;
                    if previous != 0 && previous != shift {
                        return Err(self.error(
                            *op_span,
                            format!("conflicting bit shifts declared (previously {previous})"),
                        ));
                    }
                    shape.variance_shift = shift;
                }
                Value::Int(IntExpr::Stat(what, place, *op_span))
            }
        })
    }

    /// The aggregate a statistics operator reads.
    fn aggregate(&mut self, operand: &Expr) -> Result<Place, ScriptError> {
        let (ty, place) = self.place(operand)?;
        if ty != Ty::Stats {
            return Err(self.error(
                operand.span,
                format!(
                    "expected a statistics aggregate (filled with '<<<'), found a {}",
                    ty.name()
                ),
            ));
        }
        Ok(place)
    }

    fn assignment(
        &mut self,
        span: Span,
        op: Op,
        target: &Expr,
        value: &Expr,
    ) -> Result<Value, ScriptError> {
        let value_span = value.span;
        let value = self.value(value)?;
        let (ty, place) = self.changing_place(target)?;
        let refused = |lowering: &Self| {
            lowering.error(
                target.span,
                format!(
                    "'{}' cannot be applied to '{}', a {}",
                    op.text(),
                    lowering.source.slice(target.span),
                    ty.name()
                ),
            )
        };
        Ok(match (ty, value) {
            (Ty::Stats, _) => {
                return Err(self.error(
                    target.span,
                    "a statistics aggregate takes values with '<<<', not an assignment",
                ))
            }
            (Ty::Long, _) if op == Op::DotAssign => return Err(refused(self)),
            (Ty::Long, Value::Int(v)) => Value::Int(IntExpr::Assign(
                place,
                compound_op(op),
                Box::new(v),
                value_span,
            )),
            (Ty::Str, _) if !matches!(op, Op::Assign | Op::DotAssign) => return Err(refused(self)),
            (Ty::Str, Value::Str(v)) => {
                Value::Str(StrExpr::Assign(place, op == Op::DotAssign, Box::new(v)))
            }
            (ty, found) => return Err(self.mismatch(span, ty, value_type(&found))),
        })
    }

    fn binary(
        &mut self,
        op: Op,
        op_span: Span,
        left: &Expr,
        right: &Expr,
    ) -> Result<Value, ScriptError> {
        if let Some(arith) = arith_op(op) {
            let (l, r) = (self.int(left)?, self.int(right)?);
            return Ok(Value::Int(IntExpr::Arith(
                arith,
                Box::new(l),
                Box::new(r),
                op_span,
            )));
        }
        if matches!(op, Op::Match | Op::NotMatch) {
            let subject = Box::new(self.str(left)?);
            let ExprKind::Str(pattern) = &right.kind else {
                return Err(self.error(right.span, "a regular expression must be a literal string"));
            };
            let text = String::from_utf8_lossy(&pattern.value);
            let regex = regex::bytes::Regex::new(&text)
                .map_err(|e| self.error(right.span, format!("invalid regular expression: {e}")))?;
            return Ok(Value::Int(IntExpr::Matches {
                subject,
                regex: Box::new(regex),
                negate: op == Op::NotMatch,
            }));
        }
        if let Some(cmp) = compare_op(op) {
            return Ok(Value::Int(match self.value(left)? {
                Value::Str(l) => IntExpr::StrCompare(cmp, Box::new(l), Box::new(self.str(right)?)),
                Value::Int(l) => IntExpr::Compare(cmp, Box::new(l), Box::new(self.int(right)?)),
                Value::Hist(_) => return Err(self.mismatch(left.span, Ty::Long, Ty::Stats)),
            }));
        }
        Ok(match op {
            Op::Dot => Value::Str(StrExpr::Concat(
                Box::new(self.str(left)?),
                Box::new(self.str(right)?),
            )),
            Op::AndAnd => Value::Int(IntExpr::And(
                Box::new(self.int(left)?),
                Box::new(self.int(right)?),
            )),
            _ => Value::Int(IntExpr::Or(
                Box::new(self.int(left)?),
                Box::new(self.int(right)?),
            )),
        })
    }

    fn arity(
        &self,
        name: &str,
        span: Span,
        args: &[Expr],
        wanted: usize,
    ) -> Result<(), ScriptError> {
        if args.len() == wanted {
            Ok(())
        } else {
            Err(self.error(
                span,
                format!(
                    "{name}() takes {wanted} argument{}, given {}",
                    if wanted == 1 { "" } else { "s" },
                    args.len()
                ),
            ))
        }
    }

    /// A call of the script's own function `name`, if it has one: its value (`None` for a
    /// function that returns nothing) and the call.
    fn function_call(
        &mut self,
        name: &str,
        span: Span,
        args: &[Expr],
    ) -> Result<Option<FunctionCall>, ScriptError> {
        let Some(function) = self.symbols.functions.get(name) else {
            return Ok(None);
        };
        let params = &self.symbols.params[function.body];
        self.arity(name, span, args, params.len())?;
        let mut values = Vec::with_capacity(args.len());
        for (arg, param) in args.iter().zip(params) {
            let ty = self.symbols.var(function.body, param).unwrap_or(Ty::Long);
            values.push(match ty {
                Ty::Str => Value::Str(self.str(arg)?),
                _ => Value::Int(self.int(arg)?),
            });
        }
        self.callees.push(function.index);
        Ok(Some((
            function.returns,
            Box::new(Call {
                function: function.index,
                args: values,
            }),
        )))
    }

    fn call(&mut self, name: &str, span: Span, args: &[Expr]) -> Result<Value, ScriptError> {
        if let Some((returns, call)) = self.function_call(name, span, args)? {
            return match returns {
                Some(Ty::Str) => Ok(Value::Str(StrExpr::Call(call))),
                Some(_) => Ok(Value::Int(IntExpr::Call(call))),
                None => Err(self.error(span, format!("{name}() returns no value to use"))),
            };
        }
        let Some(builtin) = builtins::lookup_by_arity(name, args.len()) else {
            return Err(self.error(span, format!("unknown function '{name}'")));
        };
        if let Answer::Print(kind) = builtin.answer {
            if !kind.gives_string() {
                return Err(self.error(span, format!("{name}() prints and has no value to use")));
            }
            return Ok(Value::Str(StrExpr::Sprintf(Box::new(
                self.print_call(name, kind, span, args)?,
            ))));
        }
        self.arity(name, span, args, builtin.params.len())?;
        Ok(match builtin.answer {
            Answer::IntFact(what) => Value::Int(IntExpr::Context(what)),
            Answer::StrFact(what) => Value::Str(StrExpr::Context(what)),
            Answer::Indent { thread } => Value::Str(StrExpr::Indent {
                thread,
                delta: Box::new(self.int(&args[0])?),
            }),
            Answer::IndentDepth { thread } => Value::Int(IntExpr::IndentDepth {
                thread,
                delta: Box::new(self.int(&args[0])?),
            }),
            Answer::Matched => {
                let group = match args.first() {
                    Some(arg) => self.int(arg)?,
                    None => IntExpr::Const(0),
                };
                Value::Str(StrExpr::Matched(Box::new(group), span))
            }
            Answer::Library(function) => {
                if function.is_own_process_fact() && self.own_process_fact.is_none() {
                    self.own_process_fact = Some((builtin.name, span));
                }
                let call = self.library_call(name, function, span, args)?;
                match builtin.returns {
                    Some(Ty::Str) => Value::Str(StrExpr::Library(call)),
                    Some(_) => Value::Int(IntExpr::Library(call)),
                    None => return Err(self.error(span, format!("{name}() has no value to use"))),
                }
            }
            Answer::Exit | Answer::Abort | Answer::Print(_) => {
                return Err(self.error(span, format!("{name}() has no value to use")))
            }
        })
    }

    /// A library call's arguments, each of its parameter's type.
    fn library_call(
        &mut self,
        name: &str,
        function: Library,
        span: Span,
        args: &[Expr],
    ) -> Result<Box<LibraryCall>, ScriptError> {
        let params = builtins::lookup_by_arity(name, args.len()).map_or(&[][..], |b| b.params);
        self.arity(name, span, args, params.len())?;
        let mut values = Vec::with_capacity(args.len());
        for (arg, ty) in args.iter().zip(params) {
            values.push(match ty {
                Ty::Str => Value::Str(self.str(arg)?),
                _ => Value::Int(self.int(arg)?),
            });
        }
        Ok(Box::new(LibraryCall {
            function,
            args: values,
            span,
        }))
    }

    /// `print(@hist_log(x))`: a histogram, which SystemTap prints only on its own.
    fn histogram(
        &mut self,
        name: &str,
        print_span: Span,
        arg: &Expr,
        others: usize,
    ) -> Result<Option<Value>, ScriptError> {
        let ExprKind::Stat {
            op,
            op_span,
            operand,
            args,
        } = &arg.kind
        else {
            return Ok(None);
        };
        if stat_op(op).is_some() {
            return Ok(None);
        }
        if others > 0 {
            return Err(self.error(
                *op_span,
                format!("a histogram is printed on its own, as in {name}(@{op}(x))"),
            ));
        }
        let kind = match (op.as_str(), args.as_slice()) {
            ("hist_log", []) => HistKind::Log,
            ("hist_linear", [low, high, step]) => {
                let [low, high, step] = [low, high, step].map(|e| match e.kind {
                    ExprKind::Number(n) => Ok(n),
                    ExprKind::Unary {
                        op: Op::Minus,
                        ref operand,
                    } => match operand.kind {
                        ExprKind::Number(n) => Ok(n.wrapping_neg()),
                        _ => Err(e.span),
                    },
                    _ => Err(e.span),
                });
                let literal = |n: Result<i64, Span>| {
                    n.map_err(|span| {
                        self.error(
                            span,
                            "@hist_linear's bounds and step must be literal numbers",
                        )
                    })
                };
                let (low, high, step) = (literal(low)?, literal(high)?, literal(step)?);
                if step <= 0 {
                    return Err(self.error(arg.span, "@hist_linear's step must be positive"));
                }
                if high <= low {
                    return Err(self.error(
                        arg.span,
                        "@hist_linear's upper bound must be above its lower bound",
                    ));
                }
                // SystemTap's limit, which it checks as the script starts.
                let buckets = (i128::from(high) - i128::from(low)) / i128::from(step);
                if buckets > 125 {
                    return Err(self.error(
                        arg.span,
                        format!(
                            "@hist_linear would have {buckets} buckets: the number of buckets \
                             ((high - low) / step) must be between 1 and 126"
                        ),
                    ));
                }
                HistKind::Linear { low, high, step }
            }
            ("hist_log", _) => {
                return Err(self.error(*op_span, "@hist_log takes only the aggregate"))
            }
            _ => {
                return Err(self.error(
                    *op_span,
                    "@hist_linear takes the aggregate, a low bound, a high bound and a step",
                ))
            }
        };
        let place = self.aggregate(operand)?;
        if let HistKind::Linear { .. } = kind {
            let shape = self.shapes.entry(Aggregates::of(&place)).or_default();
            if !shape.linear.contains(&kind) {
                shape.linear.push(kind);
            }
        }
        Ok(Some(Value::Hist(Box::new(Histogram {
            place,
            kind,
            print_span,
        }))))
    }

    fn print_call(
        &mut self,
        name: &str,
        kind: PrintKind,
        span: Span,
        args: &[Expr],
    ) -> Result<PrintCall, ScriptError> {
        if args.len() > MAX_PRINT_ARGS + 1 {
            return Err(self.error(
                span,
                format!("too many arguments to {name}() (at most {MAX_PRINT_ARGS})"),
            ));
        }
        if matches!(kind, PrintKind::Print | PrintKind::Sprint) && args.is_empty() {
            return Err(self.error(span, format!("{name}() needs at least one argument")));
        }
        if kind != PrintKind::Printf && kind != PrintKind::Sprintf {
            let first_histogram = match args.first() {
                Some(first) => self.histogram(name, span, first, args.len() - 1)?,
                None => None,
            };
            if let Some(histogram) = first_histogram {
                // Without the newline println would add: a histogram ends with a blank line.
                return Ok(PrintCall {
                    format: Format::for_values(&[ArgKind::Str], false),
                    args: vec![histogram],
                });
            }
            let values = args
                .iter()
                .map(|a| self.value(a))
                .collect::<Result<Vec<_>, _>>()?;
            let kinds: Vec<_> = values
                .iter()
                .map(|v| match v {
                    Value::Int(_) => ArgKind::Int,
                    Value::Str(_) | Value::Hist(_) => ArgKind::Str,
                })
                .collect();
            return Ok(PrintCall {
                format: Format::for_values(
                    &kinds,
                    matches!(kind, PrintKind::Println | PrintKind::Sprintln),
                ),
                args: values,
            });
        }
        let Some((format_arg, rest)) = args.split_first() else {
            return Err(self.error(span, format!("{name}() needs a format string")));
        };
        let ExprKind::Str(lit) = &format_arg.kind else {
            return Err(self.error(
                format_arg.span,
                format!("the format of {name}() must be a literal string"),
            ));
        };
        let format = Format::parse(&lit.value, &lit.escaped).map_err(|e| {
            let message = match e {
                FormatError::BadConversion(_) => {
                    "invalid or missing conversion specifier in format".to_string()
                }
                FormatError::Incomplete => e.to_string(),
            };
            self.error(format_arg.span, message)
        })?;
        let expected = format.arg_kinds();
        if expected.len() != rest.len() {
            return Err(self.error(
                span,
                format!(
                    "the format of {name}() wants {} argument{}, given {}",
                    expected.len(),
                    if expected.len() == 1 { "" } else { "s" },
                    rest.len()
                ),
            ));
        }
        let mut values = Vec::with_capacity(rest.len());
        for (arg, wanted) in rest.iter().zip(expected) {
            if let ExprKind::Stat { op, op_span, .. } = &arg.kind {
                if stat_op(op).is_none() {
                    return Err(self.error(
                        *op_span,
                        format!(
                            "a histogram is printed with print or println, as in print(@{op}(x))"
                        ),
                    ));
                }
            }
            let value = self.value(arg)?;
            let fits = matches!(
                (&value, wanted),
                (Value::Int(_), ArgKind::Int) | (Value::Str(_), ArgKind::Str)
            );
            if !fits {
                return Err(self.error(arg.span, format!("the format wants a {wanted} here")));
            }
            values.push(value);
        }
        Ok(PrintCall {
            format,
            args: values,
        })
    }
}

fn value_type(value: &Value) -> Ty {
    match value {
        Value::Int(_) => Ty::Long,
        Value::Str(_) => Ty::Str,
        Value::Hist(_) => Ty::Stats,
    }
}
