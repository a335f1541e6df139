//! Locals that name kernel data: a local a probe assigns exactly once, from a target
//! expression (`sk = $sk`, `tty = @cast(task_current(), "task_struct")->signal->tty`) or
//! `task_current()`, stands for that expression where `@cast` reads through it. Kernel
//! memory can be read only while the probe fires, so `@cast(sk, "sock")->sk_type` is read
//! as `@cast($sk, "sock")->sk_type`, at the event, as SystemTap reads it through the value.

use std::collections::HashMap;

use crate::script::ast::{Block, CastBase, Expr, ExprKind, Name, Stmt, TargetCast, TargetExpr};
use crate::script::builtins::{self, Answer};
use crate::script::lexer::Op;

/// The locals of `body` (those `is_local` says are locals) that stand for a target
/// expression.
pub(super) fn of(body: &Block, is_local: impl Fn(&str) -> bool) -> HashMap<String, TargetExpr> {
    let mut walk = Assignments::default();
    walk.block(body);
    walk.bound
        .into_iter()
        .filter(|(name, _)| walk.counts.get(name) == Some(&1) && is_local(name))
        .collect()
}

/// `task_current()` as the target expression it is: the task's address.
pub(super) fn current_task(span: crate::script::Span) -> TargetExpr {
    let name = |name: &str| Name {
        name: name.to_string(),
        span,
    };
    TargetExpr {
        name: name("@cast"),
        steps: Vec::new(),
        address_of: true,
        cast: Some(Box::new(TargetCast {
            base: CastBase::CurrentTask(name("task_current")),
            type_name: name("task_struct"),
        })),
    }
}

/// Argument `number` of the probed function, as `int_arg(number)` and the like read it: a
/// target variable only rstap can name (`$1` is a script argument), which
/// `resolve::targets` finds by its place among the site's arguments.
pub(super) fn argument(number: i64, span: crate::script::Span) -> TargetExpr {
    TargetExpr {
        name: Name {
            name: number.to_string(),
            span,
        },
        steps: Vec::new(),
        address_of: false,
        cast: None,
    }
}

/// How often each variable is written, and what the plain assignments of a target
/// expression assign.
#[derive(Default)]
struct Assignments {
    counts: HashMap<String, usize>,
    bound: HashMap<String, TargetExpr>,
}

impl Assignments {
    fn written(&mut self, name: &str) {
        *self.counts.entry(name.to_string()).or_default() += 1;
    }

    fn block(&mut self, block: &Block) {
        block.statements.iter().for_each(|stmt| self.stmt(stmt));
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::Block(block) => self.block(block),
            Stmt::Expr(expr) | Stmt::Delete(expr) => self.expr(expr),
            Stmt::If {
                condition,
                then,
                otherwise,
                ..
            } => {
                self.expr(condition);
                self.stmt(then);
                if let Some(otherwise) = otherwise {
                    self.stmt(otherwise);
                }
            }
            Stmt::While {
                condition, body, ..
            } => {
                self.expr(condition);
                self.stmt(body);
            }
            Stmt::For {
                init,
                condition,
                step,
                body,
                ..
            } => {
                for expr in [init, condition, step].into_iter().flatten() {
                    self.expr(expr);
                }
                self.stmt(body);
            }
            Stmt::Foreach(foreach) => {
                // Written at every iteration: never one assignment.
                for name in foreach.value.iter().chain(&foreach.keys) {
                    self.written(&name.name);
                    self.written(&name.name);
                }
                if let Some(limit) = &foreach.limit {
                    self.expr(limit);
                }
                for key in foreach.slice.iter().flatten() {
                    self.expr(key);
                }
                self.stmt(&foreach.body);
            }
            Stmt::Return(value, _) => {
                if let Some(value) = value {
                    self.expr(value);
                }
            }
            Stmt::Try {
                body,
                message,
                handler,
                ..
            } => {
                self.block(body);
                if let Some(message) = message {
                    self.written(&message.name);
                }
                self.block(handler);
            }
            Stmt::Break(_) | Stmt::Continue(_) | Stmt::Next(_) | Stmt::Empty(_) => {}
        }
    }

    fn expr(&mut self, expr: &Expr) {
        match &expr.kind {
            ExprKind::Assign { op, target, value } => {
                if let ExprKind::Var(name) = &target.kind {
                    self.written(name);
                    if let Some(bound) = target_of(value).filter(|_| *op == Op::Assign) {
                        self.bound.insert(name.clone(), bound);
                    }
                } else {
                    self.expr(target);
                }
                self.expr(value);
            }
            ExprKind::Increment { target, .. } => match &target.kind {
                ExprKind::Var(name) => self.written(name),
                _ => self.expr(target),
            },
            _ => expr.for_each_child(|child| self.expr(child)),
        }
    }
}

/// The target expression `value` is: a target expression, `task_current()`, a whole
/// argument, or `@entry` of one of those (in a `.return` probe, where parameters are read
/// at the entry anyway).
pub(super) fn target_of(value: &Expr) -> Option<TargetExpr> {
    match &value.kind {
        ExprKind::Target(target) => Some(target.clone()),
        ExprKind::Entry(inner) => target_of(inner),
        ExprKind::Call { name, args, .. } if name == "task_current" && args.is_empty() => {
            Some(current_task(value.span))
        }
        // A whole-register read (`pointer_arg(1)`) gives the argument unchanged: a pointer
        // kept in a local can be cast.
        ExprKind::Call { name, args, .. } if reads_whole_argument(name) => match args.as_slice() {
            [Expr {
                kind: ExprKind::Number(number),
                ..
            }] => Some(argument(*number, value.span)),
            _ => None,
        },
        _ => None,
    }
}

/// Whether builtin `name` reads a whole 8-byte argument, as `pointer_arg` does.
fn reads_whole_argument(name: &str) -> bool {
    builtins::lookup(name)
        .is_some_and(|builtin| matches!(builtin.answer, Answer::Argument { bytes: 8, .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{SourceFile, SourceMap};

    fn bound(body: &str) -> Vec<String> {
        let source = SourceMap::of_script(SourceFile::new(
            "t.stp",
            format!("probe begin {{ {body} }}"),
        ));
        let script = crate::script::parser::parse(&source, &[]).expect("parses");
        let mut names: Vec<String> = of(&script.probes[0].body, |name| name != "g")
            .into_keys()
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_local_assigned_once_from_a_target_expression_stands_for_it() {
        assert_eq!(
            bound("sk = $sk; t = task_current(); n = 1; g = $sk; x = $a; x = $b; y = $c; y++"),
            ["sk", "t"]
        );
        assert_eq!(bound("z += $a; foreach (k in a) w = $k"), ["w"]);
        assert!(bound("foreach (k in a) { k2 = k }").is_empty());
    }
}
