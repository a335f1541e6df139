//! Semantic checks, and lowering of the syntax tree to the typed form the interpreter runs.
//!
//! Variable types are inferred as SystemTap does: from every assignment in the script,
//! repeated until nothing changes, so a variable may be read above the line that assigns
//! it. Names not declared `global` are local to their probe and start as 0 or "" on each hit.

use std::collections::HashMap;

use super::ast::{self, Expr, ExprKind, PointSyntax};
use super::lexer::{Op, StringLit};
use super::source::{ScriptError, SourceFile, Span};
use super::{CheckedProbe, CheckedScript, FunctionVariant, Globals, ProbePoint, ProbePointKind};
use crate::output::printf::{ArgKind, Format, FormatError, MAX_STRING_LEN};

/// SystemTap refuses print calls with more arguments than this.
pub const MAX_PRINT_ARGS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Int,
    Str,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Int => "long",
            Ty::Str => "string",
        }
    }
}

/// Where a variable lives; its type says whether in the integer or the string slots.
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
    TimeUs,
    TimeMs,
    TimeS,
}

/// String-valued facts about the event being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrContext {
    Execname,
    Probefunc,
    Ppfunc,
    Pp,
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

#[derive(Debug, Clone)]
pub(crate) enum IntExpr {
    Const(i64),
    Var(Slot),
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
    /// `slot = value`, or `slot op= value` with `op` Add or Sub.
    Assign(Slot, Option<ArithOp>, Box<IntExpr>),
    Context(IntContext),
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
    Concat(Box<StrExpr>, Box<StrExpr>),
    Cond(Box<IntExpr>, Box<StrExpr>, Box<StrExpr>),
    /// `slot = value`, or `slot .= value` when `append`.
    Assign(Slot, bool, Box<StrExpr>),
    Context(StrContext),
    /// `thread_indent` (thread) or `indent`.
    Indent {
        thread: bool,
        delta: Box<IntExpr>,
    },
    Sprintf(Box<PrintCall>),
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Int(IntExpr),
    Str(StrExpr),
}

/// A printf, print, println or sprintf with its format parsed and arguments checked.
#[derive(Debug, Clone)]
pub(crate) struct PrintCall {
    pub(crate) format: Format,
    pub(crate) args: Vec<Value>,
}

#[derive(Debug, Clone)]
pub(crate) enum Stmt {
    Eval(Value),
    Print(PrintCall),
    Exit,
    Next,
    If(IntExpr, Vec<Stmt>, Vec<Stmt>),
}

/// What a builtin takes and gives.
#[derive(Debug, Clone, Copy)]
enum Builtin {
    Int(IntContext),
    Str(StrContext),
    Indent { thread: bool },
    IndentDepth { thread: bool },
    Exit,
}

fn builtin(name: &str) -> Option<Builtin> {
    use Builtin::*;
    Some(match name {
        "tid" => Int(IntContext::Tid),
        "pid" => Int(IntContext::Pid),
        "cpu" => Int(IntContext::Cpu),
        "addr" => Int(IntContext::Addr),
        "target" => Int(IntContext::Target),
        "gettimeofday_us" => Int(IntContext::TimeUs),
        "gettimeofday_ms" => Int(IntContext::TimeMs),
        "gettimeofday_s" => Int(IntContext::TimeS),
        "execname" => Str(StrContext::Execname),
        "probefunc" => Str(StrContext::Probefunc),
        "ppfunc" => Str(StrContext::Ppfunc),
        "pp" => Str(StrContext::Pp),
        "thread_indent" => Indent { thread: true },
        "indent" => Indent { thread: false },
        "thread_indent_depth" => IndentDepth { thread: true },
        "indent_depth" => IndentDepth { thread: false },
        "exit" => Exit,
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrintKind {
    Printf,
    Sprintf,
    Print,
    Println,
}

fn print_kind(name: &str) -> Option<PrintKind> {
    Some(match name {
        "printf" => PrintKind::Printf,
        "sprintf" => PrintKind::Sprintf,
        "print" => PrintKind::Print,
        "println" => PrintKind::Println,
        _ => return None,
    })
}

/// A variable known to the checker, with its type once inferred.
#[derive(Debug, Clone, Copy)]
struct Var {
    ty: Option<Ty>,
}

struct Checker<'a> {
    source: &'a SourceFile,
    /// Globals, then one map of locals per probe, all by name.
    globals: HashMap<String, Var>,
    locals: Vec<HashMap<String, Var>>,
}

pub(super) fn check(
    source: &SourceFile,
    script: &ast::Script,
) -> Result<CheckedScript, ScriptError> {
    let mut checker = Checker {
        source,
        globals: HashMap::new(),
        locals: vec![HashMap::new(); script.probes.len()],
    };
    for global in &script.globals {
        if checker.globals.contains_key(&global.name) {
            return Err(checker.error(
                global.span,
                format!("global '{}' is declared twice", global.name),
            ));
        }
        let ty = global.init.as_ref().map(|init| match init.kind {
            ExprKind::Str(_) => Ty::Str,
            _ => Ty::Int,
        });
        checker.globals.insert(global.name.clone(), Var { ty });
    }
    checker.infer_types(script);

    // Slots are numbered per type, globals in declaration order, locals in order of first use.
    let mut globals = Globals::default();
    let mut global_slots = HashMap::new();
    for decl in &script.globals {
        let ty = checker.globals[&decl.name].ty.unwrap_or(Ty::Int);
        let index = match ty {
            Ty::Int => {
                let init = match decl.init.as_ref().map(|e| &e.kind) {
                    Some(ExprKind::Number(n)) => *n,
                    _ => 0,
                };
                globals.ints.push(init);
                globals.ints.len() - 1
            }
            Ty::Str => {
                let init = match decl.init.as_ref().map(|e| &e.kind) {
                    Some(ExprKind::Str(lit)) => string_value(&lit.value),
                    _ => Vec::new(),
                };
                globals.strs.push(init);
                globals.strs.len() - 1
            }
        };
        global_slots.insert(decl.name.clone(), (ty, index));
    }

    let mut probes = Vec::new();
    for (index, probe) in script.probes.iter().enumerate() {
        let points = probe
            .points
            .iter()
            .map(|p| checker.probe_point(p))
            .collect::<Result<_, _>>()?;
        let mut lowering = Lowering {
            checker: &checker,
            probe: index,
            global_slots: &global_slots,
            local_slots: HashMap::new(),
            int_locals: 0,
            str_locals: 0,
        };
        let body = lowering.block(&probe.body.statements)?;
        probes.push(CheckedProbe {
            points,
            body,
            int_locals: lowering.int_locals,
            str_locals: lowering.str_locals,
        });
    }
    Ok(CheckedScript {
        probes,
        source: source.clone(),
        globals,
    })
}

/// A string as SystemTap stores it: up to the first NUL, at most `MAXSTRINGLEN - 1` bytes.
fn string_value(bytes: &[u8]) -> Vec<u8> {
    let bytes = bytes.split(|&b| b == 0).next().unwrap_or_default();
    bytes[..bytes.len().min(MAX_STRING_LEN - 1)].to_vec()
}

impl Checker<'_> {
    fn error(&self, span: Span, message: impl Into<String>) -> ScriptError {
        ScriptError::at(self.source, span, message)
    }

    fn var(&self, probe: usize, name: &str) -> Option<Var> {
        self.globals
            .get(name)
            .or_else(|| self.locals[probe].get(name))
            .copied()
    }

    fn set_type(&mut self, probe: usize, name: &str, ty: Ty) -> bool {
        let var = match self.globals.get_mut(name) {
            Some(var) => var,
            None => self.locals[probe]
                .entry(name.to_string())
                .or_insert(Var { ty: None }),
        };
        let changed = var.ty.is_none();
        if changed {
            var.ty = Some(ty);
        }
        changed
    }

    /// Gives each variable the type of the first assignment that determines one, repeating
    /// until a pass learns nothing new. Conflicts are reported later, during lowering.
    fn infer_types(&mut self, script: &ast::Script) {
        loop {
            let mut changed = false;
            for (probe, p) in script.probes.iter().enumerate() {
                for stmt in &p.body.statements {
                    changed |= self.infer_stmt(probe, stmt);
                }
            }
            if !changed {
                return;
            }
        }
    }

    fn infer_stmt(&mut self, probe: usize, stmt: &ast::Stmt) -> bool {
        match stmt {
            ast::Stmt::Block(block) => block
                .statements
                .iter()
                .fold(false, |changed, s| self.infer_stmt(probe, s) | changed),
            ast::Stmt::Expr(e) => self.infer_expr(probe, e).1,
            ast::Stmt::If {
                condition,
                then,
                otherwise,
                ..
            } => {
                let mut changed = self.infer_expr(probe, condition).1;
                changed |= self.infer_stmt(probe, then);
                if let Some(otherwise) = otherwise {
                    changed |= self.infer_stmt(probe, otherwise);
                }
                changed
            }
            ast::Stmt::Next(_) | ast::Stmt::Empty(_) => false,
        }
    }

    /// The expression's type if already known, and whether a variable got a type.
    fn infer_expr(&mut self, probe: usize, e: &Expr) -> (Option<Ty>, bool) {
        match &e.kind {
            ExprKind::Number(_) => (Some(Ty::Int), false),
            ExprKind::Str(_) => (Some(Ty::Str), false),
            ExprKind::Var(name) => (self.var(probe, name).and_then(|v| v.ty), false),
            ExprKind::Call { name, args, .. } => {
                let changed = args
                    .iter()
                    .fold(false, |changed, a| self.infer_expr(probe, a).1 | changed);
                let ty = match (builtin(name), print_kind(name)) {
                    (Some(Builtin::Int(_) | Builtin::IndentDepth { .. }), _) => Some(Ty::Int),
                    (Some(Builtin::Str(_) | Builtin::Indent { .. }), _) => Some(Ty::Str),
                    (_, Some(PrintKind::Sprintf)) => Some(Ty::Str),
                    _ => None,
                };
                (ty, changed)
            }
            ExprKind::Unary { operand, .. } => (Some(Ty::Int), self.infer_expr(probe, operand).1),
            ExprKind::Binary {
                op, left, right, ..
            } => {
                let changed = self.infer_expr(probe, left).1 | self.infer_expr(probe, right).1;
                let ty = if *op == Op::Dot { Ty::Str } else { Ty::Int };
                (Some(ty), changed)
            }
            ExprKind::Ternary {
                condition,
                then,
                otherwise,
            } => {
                let mut changed = self.infer_expr(probe, condition).1;
                let (then_ty, c1) = self.infer_expr(probe, then);
                let (else_ty, c2) = self.infer_expr(probe, otherwise);
                changed |= c1 | c2;
                (then_ty.or(else_ty), changed)
            }
            ExprKind::Assign {
                op, target, value, ..
            } => {
                let (value_ty, mut changed) = self.infer_expr(probe, value);
                let ty = match op {
                    Op::AddAssign | Op::SubAssign => Some(Ty::Int),
                    Op::DotAssign => Some(Ty::Str),
                    _ => value_ty,
                };
                if let Some(ty) = ty {
                    changed |= self.set_type(probe, target, ty);
                }
                (self.var(probe, target).and_then(|v| v.ty), changed)
            }
        }
    }

    fn probe_point(&self, point: &PointSyntax) -> Result<ProbePoint, ScriptError> {
        let text = self.source.text()[point.span.start..point.span.end].to_string();
        let c = &point.components;
        let plain = |i: usize, name: &str| {
            c.get(i)
                .is_some_and(|comp| comp.name == name && comp.argument.is_none())
        };
        let kind = if c.len() == 1 && plain(0, "begin") {
            ProbePointKind::Begin
        } else if c.len() == 1 && plain(0, "end") {
            ProbePointKind::End
        } else if c.len() >= 2 && plain(0, "kernel") && c[1].name == "function" && c.len() <= 3 {
            let Some(pattern) = &c[1].argument else {
                return Err(self.error(
                    c[1].span,
                    "kernel.function needs a pattern in quotes, e.g. function(\"sock_*\")",
                ));
            };
            let variant = match c.get(2) {
                None => FunctionVariant::Entry,
                Some(_) if plain(2, "call") => FunctionVariant::Call,
                Some(_) if plain(2, "return") => FunctionVariant::Return,
                Some(_) if plain(2, "inline") => FunctionVariant::Inline,
                Some(other) => {
                    return Err(self.error(
                        other.span,
                        format!(
                            "unknown probe point suffix '.{}'; expected .call, .return or .inline",
                            other.name
                        ),
                    ))
                }
            };
            let (function, file) = self.split_pattern(pattern, c[1].span)?;
            ProbePointKind::KernelFunction {
                function,
                file,
                variant,
            }
        } else {
            return Err(self.error(
                point.span,
                format!("unknown probe point '{text}'; supported: begin, end, kernel.function(\"PATTERN\")[.call|.return|.inline]"),
            ));
        };
        Ok(ProbePoint {
            kind,
            text,
            span: point.span,
        })
    }

    /// Splits `FUNC@FILE` into its globs.
    fn split_pattern(
        &self,
        pattern: &StringLit,
        span: Span,
    ) -> Result<(String, Option<String>), ScriptError> {
        let Ok(pattern) = std::str::from_utf8(&pattern.value) else {
            return Err(self.error(span, "a probe point pattern must be valid UTF-8"));
        };
        let (function, file) = match pattern.split_once('@') {
            Some((function, file)) => (function, Some(file)),
            None => (pattern, None),
        };
        if function.is_empty() {
            return Err(self.error(span, "the function pattern before '@' is empty"));
        }
        match file {
            Some("") => Err(self.error(span, "the file pattern after '@' is empty")),
            Some(file) if file.contains(':') => Err(self.error(
                span,
                "line numbers in probe points ('@FILE:LINE') are not supported",
            )),
            _ => Ok((function.to_string(), file.map(str::to_string))),
        }
    }
}

/// Lowers one probe's body, giving its locals slot numbers.
struct Lowering<'a> {
    checker: &'a Checker<'a>,
    probe: usize,
    global_slots: &'a HashMap<String, (Ty, usize)>,
    local_slots: HashMap<String, (Ty, usize)>,
    int_locals: usize,
    str_locals: usize,
}

impl Lowering<'_> {
    fn error(&self, span: Span, message: impl Into<String>) -> ScriptError {
        self.checker.error(span, message)
    }

    fn block(&mut self, statements: &[ast::Stmt]) -> Result<Vec<Stmt>, ScriptError> {
        let mut out = Vec::with_capacity(statements.len());
        for stmt in statements {
            self.statement(stmt, &mut out)?;
        }
        Ok(out)
    }

    fn statement(&mut self, stmt: &ast::Stmt, out: &mut Vec<Stmt>) -> Result<(), ScriptError> {
        match stmt {
            ast::Stmt::Block(block) => out.extend(self.block(&block.statements)?),
            ast::Stmt::Empty(_) => {}
            ast::Stmt::Next(_) => out.push(Stmt::Next),
            ast::Stmt::If {
                condition,
                then,
                otherwise,
                ..
            } => {
                let condition = self.int(condition)?;
                let mut then_body = Vec::new();
                self.statement(then, &mut then_body)?;
                let mut else_body = Vec::new();
                if let Some(otherwise) = otherwise {
                    self.statement(otherwise, &mut else_body)?;
                }
                out.push(Stmt::If(condition, then_body, else_body));
            }
            ast::Stmt::Expr(e) => out.push(self.expression_statement(e)?),
        }
        Ok(())
    }

    fn expression_statement(&mut self, e: &Expr) -> Result<Stmt, ScriptError> {
        if let ExprKind::Call {
            name,
            name_span,
            args,
        } = &e.kind
        {
            match print_kind(name) {
                Some(PrintKind::Sprintf) | None => {}
                Some(kind) => return Ok(Stmt::Print(self.print_call(kind, *name_span, args)?)),
            }
            if let Some(Builtin::Exit) = builtin(name) {
                self.arity(name, *name_span, args, 0)?;
                return Ok(Stmt::Exit);
            }
        }
        Ok(Stmt::Eval(self.value(e)?))
    }

    fn int(&mut self, e: &Expr) -> Result<IntExpr, ScriptError> {
        match self.value(e)? {
            Value::Int(v) => Ok(v),
            Value::Str(_) => Err(self.mismatch(e.span, Ty::Int, Ty::Str)),
        }
    }

    fn str(&mut self, e: &Expr) -> Result<StrExpr, ScriptError> {
        match self.value(e)? {
            Value::Str(v) => Ok(v),
            Value::Int(_) => Err(self.mismatch(e.span, Ty::Str, Ty::Int)),
        }
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

    fn slot(&mut self, name: &str, span: Span) -> Result<(Ty, Slot), ScriptError> {
        if let Some(&(ty, index)) = self.global_slots.get(name) {
            return Ok((ty, Slot::Global(index)));
        }
        if let Some(&(ty, index)) = self.local_slots.get(name) {
            return Ok((ty, Slot::Local(index)));
        }
        let ty = self
            .checker
            .var(self.probe, name)
            .and_then(|v| v.ty)
            .ok_or_else(|| {
                self.error(
                    span,
                    format!("cannot tell the type of '{name}': it is never assigned a value"),
                )
            })?;
        let counter = match ty {
            Ty::Int => &mut self.int_locals,
            Ty::Str => &mut self.str_locals,
        };
        let index = *counter;
        *counter += 1;
        self.local_slots.insert(name.to_string(), (ty, index));
        Ok((ty, Slot::Local(index)))
    }

    fn value(&mut self, e: &Expr) -> Result<Value, ScriptError> {
        Ok(match &e.kind {
            ExprKind::Number(n) => Value::Int(IntExpr::Const(*n)),
            ExprKind::Str(lit) => Value::Str(StrExpr::Const(string_value(&lit.value))),
            ExprKind::Var(name) => match self.slot(name, e.span)? {
                (Ty::Int, slot) => Value::Int(IntExpr::Var(slot)),
                (Ty::Str, slot) => Value::Str(StrExpr::Var(slot)),
            },
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
                    Value::Int(then) => Value::Int(IntExpr::Cond(
                        condition,
                        Box::new(then),
                        Box::new(self.int(otherwise)?),
                    )),
                    Value::Str(then) => Value::Str(StrExpr::Cond(
                        condition,
                        Box::new(then),
                        Box::new(self.str(otherwise)?),
                    )),
                }
            }
            ExprKind::Assign {
                op,
                target,
                target_span,
                value,
            } => {
                let value = self.value(value)?;
                let (ty, slot) = self.slot(target, *target_span)?;
                match (ty, op, value) {
                    (Ty::Int, Op::Assign, Value::Int(v)) => {
                        Value::Int(IntExpr::Assign(slot, None, Box::new(v)))
                    }
                    (Ty::Int, Op::AddAssign, Value::Int(v)) => {
                        Value::Int(IntExpr::Assign(slot, Some(ArithOp::Add), Box::new(v)))
                    }
                    (Ty::Int, Op::SubAssign, Value::Int(v)) => {
                        Value::Int(IntExpr::Assign(slot, Some(ArithOp::Sub), Box::new(v)))
                    }
                    (Ty::Str, Op::Assign, Value::Str(v)) => {
                        Value::Str(StrExpr::Assign(slot, false, Box::new(v)))
                    }
                    (Ty::Str, Op::DotAssign, Value::Str(v)) => {
                        Value::Str(StrExpr::Assign(slot, true, Box::new(v)))
                    }
                    (Ty::Int, Op::Assign | Op::AddAssign | Op::SubAssign, Value::Str(_)) => {
                        return Err(self.mismatch(e.span, Ty::Int, Ty::Str))
                    }
                    (Ty::Str, Op::Assign | Op::DotAssign, Value::Int(_)) => {
                        return Err(self.mismatch(e.span, Ty::Str, Ty::Int))
                    }
                    (ty, op, _) => {
                        return Err(self.error(
                            *target_span,
                            format!(
                                "'{}' cannot be applied to '{target}', a {}",
                                op.text(),
                                ty.name()
                            ),
                        ))
                    }
                }
            }
        })
    }

    fn binary(
        &mut self,
        op: Op,
        op_span: Span,
        left: &Expr,
        right: &Expr,
    ) -> Result<Value, ScriptError> {
        let arith = match op {
            Op::Plus => Some(ArithOp::Add),
            Op::Minus => Some(ArithOp::Sub),
            Op::Star => Some(ArithOp::Mul),
            Op::Slash => Some(ArithOp::Div),
            Op::Percent => Some(ArithOp::Mod),
            Op::Shl => Some(ArithOp::Shl),
            Op::Shr => Some(ArithOp::Shr),
            Op::Amp => Some(ArithOp::And),
            Op::Pipe => Some(ArithOp::Or),
            Op::Caret => Some(ArithOp::Xor),
            _ => None,
        };
        if let Some(arith) = arith {
            let (l, r) = (self.int(left)?, self.int(right)?);
            return Ok(Value::Int(IntExpr::Arith(
                arith,
                Box::new(l),
                Box::new(r),
                op_span,
            )));
        }
        let cmp = match op {
            Op::Eq => Some(CmpOp::Eq),
            Op::Ne => Some(CmpOp::Ne),
            Op::Lt => Some(CmpOp::Lt),
            Op::Le => Some(CmpOp::Le),
            Op::Gt => Some(CmpOp::Gt),
            Op::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(cmp) = cmp {
            return Ok(Value::Int(match self.value(left)? {
                Value::Int(l) => IntExpr::Compare(cmp, Box::new(l), Box::new(self.int(right)?)),
                Value::Str(l) => IntExpr::StrCompare(cmp, Box::new(l), Box::new(self.str(right)?)),
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

    fn call(&mut self, name: &str, span: Span, args: &[Expr]) -> Result<Value, ScriptError> {
        if let Some(kind) = print_kind(name) {
            if kind != PrintKind::Sprintf {
                return Err(self.error(span, format!("{name}() prints and has no value to use")));
            }
            return Ok(Value::Str(StrExpr::Sprintf(Box::new(
                self.print_call(kind, span, args)?,
            ))));
        }
        let Some(builtin) = builtin(name) else {
            return Err(self.error(span, format!("unknown function '{name}'")));
        };
        Ok(match builtin {
            Builtin::Int(what) => {
                self.arity(name, span, args, 0)?;
                Value::Int(IntExpr::Context(what))
            }
            Builtin::Str(what) => {
                self.arity(name, span, args, 0)?;
                Value::Str(StrExpr::Context(what))
            }
            Builtin::Indent { thread } => {
                self.arity(name, span, args, 1)?;
                Value::Str(StrExpr::Indent {
                    thread,
                    delta: Box::new(self.int(&args[0])?),
                })
            }
            Builtin::IndentDepth { thread } => {
                self.arity(name, span, args, 1)?;
                Value::Int(IntExpr::IndentDepth {
                    thread,
                    delta: Box::new(self.int(&args[0])?),
                })
            }
            Builtin::Exit => return Err(self.error(span, "exit() has no value to use")),
        })
    }

    fn print_call(
        &mut self,
        kind: PrintKind,
        span: Span,
        args: &[Expr],
    ) -> Result<PrintCall, ScriptError> {
        let name = match kind {
            PrintKind::Printf => "printf",
            PrintKind::Sprintf => "sprintf",
            PrintKind::Print => "print",
            PrintKind::Println => "println",
        };
        if args.len() > MAX_PRINT_ARGS + 1 {
            return Err(self.error(
                span,
                format!("too many arguments to {name}() (at most {MAX_PRINT_ARGS})"),
            ));
        }
        if kind == PrintKind::Print && args.is_empty() {
            return Err(self.error(span, "print() needs at least one argument"));
        }
        if matches!(kind, PrintKind::Print | PrintKind::Println) {
            let values = args
                .iter()
                .map(|a| self.value(a))
                .collect::<Result<Vec<_>, _>>()?;
            let kinds: Vec<_> = values
                .iter()
                .map(|v| match v {
                    Value::Int(_) => ArgKind::Int,
                    Value::Str(_) => ArgKind::Str,
                })
                .collect();
            return Ok(PrintCall {
                format: Format::for_values(&kinds, kind == PrintKind::Println),
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
        for (arg, kind) in rest.iter().zip(expected) {
            values.push(match kind {
                ArgKind::Int => {
                    Value::Int(self.int(arg).map_err(|_| self.format_mismatch(arg, kind))?)
                }
                ArgKind::Str => {
                    Value::Str(self.str(arg).map_err(|_| self.format_mismatch(arg, kind))?)
                }
            });
        }
        Ok(PrintCall {
            format,
            args: values,
        })
    }

    fn format_mismatch(&mut self, arg: &Expr, wanted: ArgKind) -> ScriptError {
        // Re-lower to tell a type mismatch from a real error inside the argument.
        match self.value(arg) {
            Err(e) => e,
            Ok(_) => self.error(arg.span, format!("the format wants a {wanted} here")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::compile;

    fn compile_text(text: &str) -> Result<CheckedScript, ScriptError> {
        compile(&SourceFile::new("t.stp", text))
    }

    fn error_of(text: &str) -> String {
        compile_text(text).unwrap_err().to_string()
    }

    #[test]
    fn seed_probe_points() {
        let script = compile_text(include_str!("../../tests/golden/socket-trace.stp")).unwrap();
        let points: Vec<_> = script.probes.iter().map(|p| p.points[0].clone()).collect();
        assert_eq!(
            points[0].kind,
            ProbePointKind::KernelFunction {
                function: "*".into(),
                file: Some("net/socket.c".into()),
                variant: FunctionVariant::Call
            }
        );
        assert_eq!(points[1].text, "kernel.function(\"*@net/socket.c\").return");
        assert_eq!(
            &script.source().text()[points[1].span.start..points[1].span.end],
            points[1].text
        );
    }

    #[test]
    fn other_probe_points() {
        let script = compile_text(
            "probe begin, end, kernel.function(\"sock_*\"), kernel.function(\"f\").inline {}",
        )
        .unwrap();
        let kinds: Vec<_> = script.probes[0]
            .points
            .iter()
            .map(|p| p.kind.clone())
            .collect();
        assert_eq!(kinds[0], ProbePointKind::Begin);
        assert_eq!(kinds[1], ProbePointKind::End);
        assert_eq!(
            kinds[2],
            ProbePointKind::KernelFunction {
                function: "sock_*".into(),
                file: None,
                variant: FunctionVariant::Entry
            }
        );
        assert!(matches!(
            kinds[3],
            ProbePointKind::KernelFunction {
                variant: FunctionVariant::Inline,
                ..
            }
        ));
    }

    #[test]
    fn bad_probe_points_are_errors_with_spans() {
        assert!(error_of("probe syscall.open(\"x\") {}")
            .starts_with("t.stp:1:7: error: unknown probe point 'syscall.open(\"x\")'"));
        assert!(error_of("probe kernel.function(\"x\").entry {}")
            .contains("unknown probe point suffix '.entry'"));
        assert!(error_of("probe kernel.function {}").contains("needs a pattern"));
        assert!(error_of("probe kernel.function(\"@a.c\") {}")
            .contains("function pattern before '@' is empty"));
        assert!(error_of("probe kernel.function(\"f@a.c:12\") {}").contains("line numbers"));
    }

    #[test]
    fn unknown_functions_and_wrong_arity() {
        assert!(error_of("probe begin { foo() }")
            .starts_with("t.stp:1:15: error: unknown function 'foo'"));
        assert!(error_of("probe begin { x = tid(1) }").contains("tid() takes 0 arguments, given 1"));
        assert!(error_of("probe begin { x = thread_indent() }")
            .contains("thread_indent() takes 1 argument, given 0"));
        assert!(error_of("probe begin { exit(1) }").contains("exit() takes 0 arguments"));
        assert!(error_of("probe begin { x = printf(\"a\") }").contains("has no value"));
        assert!(error_of("probe begin { print() }").contains("at least one argument"));
    }

    #[test]
    fn type_errors() {
        assert!(
            error_of("probe begin { x = 1 + \"a\" }").contains("expected a long, found a string")
        );
        assert!(
            error_of("probe begin { x = \"a\" . 1 }").contains("expected a string, found a long")
        );
        assert!(error_of("probe begin { x = 1; x = \"s\" }")
            .contains("expected a long, found a string"));
        assert!(error_of("probe begin { s = \"a\"; s += 1 }")
            .contains("'+=' cannot be applied to 's', a string"));
        assert!(error_of("probe begin { if (execname()) next }").contains("expected a long"));
        assert!(error_of("probe begin { print(y) }").contains("cannot tell the type of 'y'"));
        assert!(
            error_of("probe begin { x = 1 < \"a\" }").contains("expected a long, found a string")
        );
    }

    #[test]
    fn printf_formats_are_checked() {
        assert!(
            error_of("probe begin { printf(\"%d %s\", 1) }").contains("wants 2 arguments, given 1")
        );
        assert!(error_of("probe begin { printf(\"%d\", \"x\") }")
            .contains("t.stp:1:28: error: the format wants a long here"));
        assert!(error_of("probe begin { printf(\"%s\", pid()) }")
            .contains("the format wants a string here"));
        assert!(error_of("probe begin { printf(\"%y\", 1) }")
            .contains("invalid or missing conversion specifier"));
        assert!(error_of("probe begin { printf(\"%5\") }").contains("ends inside a conversion"));
        assert!(error_of("probe begin { f = \"%d\"; printf(f, 1) }")
            .contains("must be a literal string"));
        assert!(
            error_of("probe begin { printf(\"%d\", nope()) }").contains("unknown function 'nope'")
        );
        compile_text(
            "probe begin { printf(\"%*d %-*s %c %p %%\\n\", 4, 1, 2, \"x\", 65, addr()) }",
        )
        .unwrap();
    }

    #[test]
    fn types_flow_from_later_assignments_and_other_probes() {
        let script = compile_text(
            "global total, name\nprobe end { printf(\"%d %s\\n\", total, name) }\nprobe begin { total += 2; name = execname(); late = 1; if (late) x = y; y = 3 }",
        )
        .unwrap();
        assert_eq!(script.globals.ints, vec![0]);
        assert_eq!(script.globals.strs, vec![Vec::<u8>::new()]);
        assert_eq!(script.probes[1].int_locals, 3);
    }

    #[test]
    fn global_initialisers_and_duplicates() {
        let script = compile_text("global a = -5, b = \"hi\\0there\"").unwrap();
        assert_eq!(script.globals.ints, vec![-5]);
        assert_eq!(script.globals.strs, vec![b"hi".to_vec()]);
        assert!(error_of("global a, a").contains("declared twice"));
    }

    #[test]
    fn too_many_print_arguments() {
        let args = ", 1".repeat(MAX_PRINT_ARGS + 1);
        let format = "%d".repeat(MAX_PRINT_ARGS + 1);
        assert!(
            error_of(&format!("probe begin {{ printf(\"{format}\"{args}) }}"))
                .contains("too many arguments")
        );
    }
}
