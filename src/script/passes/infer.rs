//! Declares the globals and infers types as SystemTap does: from every assignment and use
//! that determines one (`x = "s"`, `x++`, `a[k] <<< v`, `k in a`, `foreach`), repeated
//! until nothing changes, so that a variable may be read above the line that assigns it.
//! Names not declared `global` are local to their probe or function; a function's
//! parameters take the types of the arguments it is called with, its result the type of
//! what it returns. Conflicts are left for lowering
//! to report, where each use is checked against the types found here.

use std::collections::HashMap;

use crate::script::ast::{self, ArrayDecl, Expr, ExprKind, Part, Stmt, TypeName};
use crate::script::builtins;
use crate::script::ir::Ty;
use crate::script::lexer::Op;
use crate::script::source::{ScriptError, SourceMap};

/// What inference learned about the script's names.
#[derive(Debug, Default)]
pub(super) struct Symbols {
    pub(super) globals: HashMap<String, Global>,
    /// One map of locals per body: the probes', then the functions'.
    pub(super) locals: Vec<HashMap<String, Option<Ty>>>,
    /// Each body's parameters, in order (none for probes); they hide globals.
    pub(super) params: Vec<Vec<String>>,
    pub(super) functions: HashMap<String, FunctionSym>,
}

/// A script function: its place in the script, its body's number and its result type.
#[derive(Debug, Clone)]
pub(super) struct FunctionSym {
    pub(super) index: usize,
    pub(super) body: usize,
    pub(super) returns: Option<Ty>,
    /// For a function expanded at its calls, what it expands into (see
    /// [`lower::inline`](super::lower)).
    pub(super) expanded: Option<Expr>,
}

pub(super) fn declared_type(name: TypeName) -> Ty {
    match name {
        TypeName::Long => Ty::Long,
        TypeName::Str => Ty::Str,
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct Global {
    /// A scalar's type, or an array's value type.
    pub(super) ty: Option<Ty>,
    /// Set when the global is declared or used as an array.
    pub(super) array: Option<ArrayShape>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct ArrayShape {
    pub(super) declared: Option<ArrayDecl>,
    /// Key types by position, as far as known; the length is the first use's key count.
    pub(super) keys: Vec<Option<Ty>>,
}

pub(super) fn infer(source: &SourceMap, script: &ast::Script) -> Result<Symbols, ScriptError> {
    let mut symbols = Symbols {
        globals: HashMap::new(),
        locals: vec![HashMap::new(); script.probes.len() + script.functions.len()],
        params: vec![Vec::new(); script.probes.len() + script.functions.len()],
        functions: HashMap::new(),
    };
    for (index, function) in script.functions.iter().enumerate() {
        let body = script.probes.len() + index;
        if symbols.functions.contains_key(&function.name.name) {
            return Err(ScriptError::at(
                source,
                function.name.span,
                format!("function '{}' is defined twice", function.name.name),
            ));
        }
        for (param, ty) in &function.params {
            if symbols.locals[body].contains_key(&param.name) {
                return Err(ScriptError::at(
                    source,
                    param.span,
                    format!("parameter '{}' is named twice", param.name),
                ));
            }
            symbols.locals[body].insert(param.name.clone(), ty.map(declared_type));
            symbols.params[body].push(param.name.clone());
        }
        symbols.functions.insert(
            function.name.name.clone(),
            FunctionSym {
                index,
                body,
                returns: function.returns.map(declared_type),
                expanded: super::lower::expanded_body(function),
            },
        );
    }
    for decl in &script.globals {
        if symbols.globals.contains_key(&decl.name) {
            return Err(ScriptError::at(
                source,
                decl.span,
                format!("global '{}' is declared twice", decl.name),
            ));
        }
        let ty = decl.init.as_ref().map(|init| match init.kind {
            ExprKind::Str(_) => Ty::Str,
            _ => Ty::Long,
        });
        let array = decl.array.map(|declared| ArrayShape {
            declared: Some(declared),
            keys: Vec::new(),
        });
        symbols
            .globals
            .insert(decl.name.clone(), Global { ty, array });
    }
    loop {
        let mut pass = Pass {
            symbols: &mut symbols,
            body: 0,
            function: None,
            changed: false,
        };
        for (probe, p) in script.probes.iter().enumerate() {
            pass.body = probe;
            for stmt in &p.body.statements {
                pass.stmt(stmt);
            }
        }
        for (index, function) in script.functions.iter().enumerate() {
            pass.body = script.probes.len() + index;
            pass.function = Some(function.name.name.clone());
            for stmt in &function.body.statements {
                pass.stmt(stmt);
            }
        }
        if !pass.changed {
            return Ok(symbols);
        }
    }
}

impl Symbols {
    /// A variable's type as far as known, global or local to `body`. A function's
    /// parameters and locals hide globals of their names.
    pub(super) fn var(&self, body: usize, name: &str) -> Option<Ty> {
        match self.global(body, name) {
            Some(global) => global.ty,
            None => self.locals[body].get(name).copied().flatten(),
        }
    }

    /// The global `name` means in `body`, unless a parameter hides it.
    pub(super) fn global(&self, body: usize, name: &str) -> Option<&Global> {
        if self.params[body].iter().any(|param| param == name) {
            return None;
        }
        self.globals.get(name)
    }
}

/// One walk over every probe and function body.
struct Pass<'a> {
    symbols: &'a mut Symbols,
    body: usize,
    /// The function whose body this is, for its `return`s.
    function: Option<String>,
    changed: bool,
}

/// Fills in `slot` if still unknown, noting that something changed.
fn learn(slot: &mut Option<Ty>, ty: Option<Ty>, changed: &mut bool) {
    if slot.is_none() && ty.is_some() {
        *slot = ty;
        *changed = true;
    }
}

impl Pass<'_> {
    fn set_var(&mut self, name: &str, ty: Option<Ty>) {
        let is_global = self.symbols.global(self.body, name).is_some();
        let slot = match self.symbols.globals.get_mut(name).filter(|_| is_global) {
            Some(global) => &mut global.ty,
            None => self.symbols.locals[self.body]
                .entry(name.to_string())
                .or_insert(None),
        };
        learn(slot, ty, &mut self.changed);
    }

    /// The shape of global array `name`, making it one on first use; `None` if `name` is
    /// not a global (lowering says so).
    fn array(&mut self, name: &str, key_count: usize) -> Option<&mut Global> {
        let global = self.symbols.globals.get_mut(name)?;
        let shape = global.array.get_or_insert_with(ArrayShape::default);
        if shape.keys.is_empty() {
            shape.keys = vec![None; key_count];
        }
        Some(global)
    }

    fn set_keys(&mut self, name: &str, keys: &[Expr]) {
        let types: Vec<Option<Ty>> = keys.iter().map(|k| self.expr(k)).collect();
        let mut changed = false;
        if let Some(shape) = self
            .array(name, types.len())
            .and_then(|global| global.array.as_mut())
        {
            for (slot, ty) in shape.keys.iter_mut().zip(types) {
                learn(slot, ty, &mut changed);
            }
        }
        self.changed |= changed;
    }

    /// Gives the variable or element `target` the type `ty`.
    fn set_target(&mut self, target: &Expr, ty: Option<Ty>) {
        match &target.kind {
            ExprKind::Var(name) => self.set_var(name, ty),
            ExprKind::Index { array, keys } => {
                self.set_keys(&array.name, keys);
                let mut changed = false;
                if let Some(global) = self.array(&array.name, keys.len()) {
                    learn(&mut global.ty, ty, &mut changed);
                }
                self.changed |= changed;
            }
            _ => {}
        }
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::Try {
                message: Some(name),
                ..
            } => {
                self.set_var(&name.name, Some(Ty::Str));
                self.parts(stmt);
            }
            Stmt::Return(Some(value), _) => {
                let ty = self.expr(value);
                let mut changed = false;
                if let Some(function) = self
                    .function
                    .as_ref()
                    .and_then(|name| self.symbols.functions.get_mut(name))
                {
                    learn(&mut function.returns, ty, &mut changed);
                }
                self.changed |= changed;
            }
            Stmt::Foreach(foreach) => {
                let key_count = foreach.keys.len();
                let (keys, value) = match self.array(&foreach.array.name, key_count) {
                    Some(global) => (
                        global
                            .array
                            .as_ref()
                            .map(|a| a.keys.clone())
                            .unwrap_or_default(),
                        global.ty,
                    ),
                    None => (Vec::new(), None),
                };
                for (name, ty) in foreach.keys.iter().zip(keys) {
                    self.set_var(&name.name, ty);
                }
                if let Some(name) = &foreach.value {
                    self.set_var(&name.name, value);
                }
                self.parts(stmt);
            }
            _ => self.parts(stmt),
        }
    }

    fn parts(&mut self, stmt: &Stmt) {
        for part in stmt.parts() {
            match part {
                Part::Stmt(s) => self.stmt(s),
                Part::Expr(e) => {
                    self.expr(e);
                }
            }
        }
    }

    /// The expression's type if already known.
    fn expr(&mut self, e: &Expr) -> Option<Ty> {
        match &e.kind {
            ExprKind::Target(target) if target.is_text() => Some(Ty::Str),
            ExprKind::Number(_) | ExprKind::Target(_) => Some(Ty::Long),
            ExprKind::Str(_) => Some(Ty::Str),
            ExprKind::AnyKey => None,
            ExprKind::Var(name) => self.symbols.var(self.body, name),
            ExprKind::Index { array, keys } => {
                self.set_keys(&array.name, keys);
                self.symbols.globals.get(&array.name).and_then(|g| g.ty)
            }
            ExprKind::In { keys, array } => {
                self.set_keys(&array.name, keys);
                Some(Ty::Long)
            }
            ExprKind::Call { name, args, .. } => {
                let types: Vec<Option<Ty>> = args.iter().map(|arg| self.expr(arg)).collect();
                let Some(function) = self.symbols.functions.get(name).cloned() else {
                    return builtins::lookup(name).and_then(|builtin| builtin.returns);
                };
                let Symbols { locals, params, .. } = &mut *self.symbols;
                let mut changed = false;
                for (param, ty) in params[function.body].iter().zip(types) {
                    let slot = locals[function.body].entry(param.clone()).or_insert(None);
                    learn(slot, ty, &mut changed);
                }
                self.changed |= changed;
                function.returns
            }
            ExprKind::Unary { operand, .. } => {
                self.expr(operand);
                Some(Ty::Long)
            }
            ExprKind::Entry(inner) => self.expr(inner),
            ExprKind::Defined(_) => Some(Ty::Long),
            ExprKind::Binary {
                op, left, right, ..
            } => {
                self.expr(left);
                self.expr(right);
                Some(if *op == Op::Dot { Ty::Str } else { Ty::Long })
            }
            ExprKind::Ternary {
                condition,
                then,
                otherwise,
            } => {
                self.expr(condition);
                let then = self.expr(then);
                let otherwise = self.expr(otherwise);
                then.or(otherwise)
            }
            ExprKind::Assign {
                op, target, value, ..
            } => {
                let value = self.expr(value);
                let ty = match op {
                    Op::Assign => value,
                    Op::DotAssign => Some(Ty::Str),
                    _ => Some(Ty::Long),
                };
                self.set_target(target, ty);
                self.expr(target)
            }
            ExprKind::Increment { target, .. } => {
                self.set_target(target, Some(Ty::Long));
                Some(Ty::Long)
            }
            ExprKind::Aggregate { target, value } => {
                self.expr(value);
                self.set_target(target, Some(Ty::Stats));
                None
            }
            ExprKind::Stat { operand, args, .. } => {
                for arg in args {
                    self.expr(arg);
                }
                self.set_target(operand, Some(Ty::Stats));
                Some(Ty::Long)
            }
        }
    }
}
