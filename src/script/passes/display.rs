//! Finds the globals SystemTap prints when a script ends: those a probe or function writes
//! (`=`, `++`, `<<<`, `delete`, ...) but nothing reads, in the order the script first
//! names them.

use std::collections::HashMap;

use crate::script::ast::{self, Expr, ExprKind, Part, Stmt};
use crate::script::source::SourceMap;

#[derive(Debug, Default, Clone, Copy)]
struct Use {
    written: bool,
    read: bool,
}

/// The names of the globals to print at exit: the script's own, not its tapsets'.
pub(super) fn unread_globals(source: &SourceMap, script: &ast::Script) -> Vec<String> {
    let mut walk = Walk {
        globals: script
            .globals
            .iter()
            .filter(|g| !source.is_library(g.span.file))
            .map(|g| (g.name.as_str(), None))
            .collect(),
        order: Vec::new(),
    };
    // SystemTap names globals as it resolves them: the probes in order, then the
    // functions by name.
    let mut functions: Vec<_> = script.functions.iter().collect();
    functions.sort_by(|a, b| a.name.name.cmp(&b.name.name));
    let bodies = script
        .probes
        .iter()
        .map(|probe| &probe.body)
        .chain(functions.into_iter().map(|function| &function.body));
    for body in bodies {
        for stmt in &body.statements {
            walk.stmt(stmt);
        }
    }
    walk.order
        .into_iter()
        .filter(|name| walk.globals[name].is_some_and(|u: Use| u.written && !u.read))
        .map(str::to_string)
        .collect()
}

struct Walk<'a> {
    /// Each global's use so far, `None` until first named.
    globals: HashMap<&'a str, Option<Use>>,
    order: Vec<&'a str>,
}

impl<'a> Walk<'a> {
    fn note(&mut self, name: &'a str, written: bool) {
        let Some(entry) = self.globals.get_mut(name) else {
            return;
        };
        let usage = entry.get_or_insert_with(|| {
            self.order.push(name);
            Use::default()
        });
        if written {
            usage.written = true;
        } else {
            usage.read = true;
        }
    }

    fn stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::Delete(target) => self.target(target),
            Stmt::Try {
                message: Some(name),
                ..
            } => {
                self.note(&name.name, true);
                self.parts(stmt);
            }
            Stmt::Foreach(foreach) => {
                for name in foreach.value.iter().chain(&foreach.keys) {
                    self.note(&name.name, true);
                }
                self.note(&foreach.array.name, false);
                self.parts(stmt);
            }
            _ => self.parts(stmt),
        }
    }

    fn parts(&mut self, stmt: &'a Stmt) {
        for part in stmt.parts() {
            match part {
                Part::Stmt(s) => self.stmt(s),
                Part::Expr(e) => self.expr(e),
            }
        }
    }

    /// A variable or element being written; an element's keys are read.
    fn target(&mut self, target: &'a Expr) {
        match &target.kind {
            ExprKind::Var(name) => self.note(name, true),
            ExprKind::Index { array, keys } => {
                self.note(&array.name, true);
                keys.iter().for_each(|k| self.expr(k));
            }
            _ => self.expr(target),
        }
    }

    fn expr(&mut self, e: &'a Expr) {
        match &e.kind {
            ExprKind::Number(_) | ExprKind::Str(_) | ExprKind::Target(_) | ExprKind::AnyKey => {}
            ExprKind::Var(name) => self.note(name, false),
            ExprKind::Index { array, keys } | ExprKind::In { keys, array } => {
                self.note(&array.name, false);
                keys.iter().for_each(|k| self.expr(k));
            }
            ExprKind::Call { args, .. } => args.iter().for_each(|a| self.expr(a)),
            ExprKind::Unary { operand, .. } | ExprKind::Entry(operand) => self.expr(operand),
            ExprKind::Defined(_) => {}
            ExprKind::Binary { left, right, .. } => {
                self.expr(left);
                self.expr(right);
            }
            ExprKind::Ternary {
                condition,
                then,
                otherwise,
            } => {
                self.expr(condition);
                self.expr(then);
                self.expr(otherwise);
            }
            ExprKind::Assign { target, value, .. } => {
                self.target(target);
                self.expr(value);
            }
            ExprKind::Increment { target, .. } => self.target(target),
            ExprKind::Aggregate { target, value } => {
                self.target(target);
                self.expr(value);
            }
            ExprKind::Stat { operand, args, .. } => {
                self.expr(operand);
                args.iter().for_each(|a| self.expr(a));
            }
        }
    }
}
