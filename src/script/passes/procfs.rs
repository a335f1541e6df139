//! Procfs probes' `$value`. In `procfs("PATH").read` the body sets it to the text a read of
//! the file gives; in `.write` it holds the text written. Either way it is a string the
//! body owns, not kernel data: this pass makes it the probe's local `$value` (a name no
//! script variable can have), first set to the text written (empty for a read), so that
//! inference and lowering treat it as any other local. What the body leaves in it is the
//! file's text.

use crate::script::ast::{self, Expr, ExprKind, Stmt};
use crate::script::lexer::Op;

/// The local that holds a procfs probe's `$value`.
pub(crate) const VALUE_LOCAL: &str = "$value";

/// The builtin that gives the text written to the file, empty in a read probe.
pub(crate) const WRITTEN: &str = "__procfs_written";

/// Rewrites `$value` in every probe whose points are all procfs points.
pub(super) fn bind_values(script: &mut ast::Script) {
    for probe in &mut script.probes {
        let procfs = !probe.points.is_empty()
            && probe
                .points
                .iter()
                .all(|point| point.components.first().is_some_and(|c| c.name == "procfs"));
        if !procfs {
            continue;
        }
        for stmt in &mut probe.body.statements {
            stmt.for_each_expr_mut(&mut rename_value);
        }
        let span = probe.body.span;
        let at = |kind| Box::new(Expr { kind, span });
        let seed = Expr {
            kind: ExprKind::Assign {
                op: Op::Assign,
                target: at(ExprKind::Var(VALUE_LOCAL.to_string())),
                value: at(ExprKind::Call {
                    name: WRITTEN.to_string(),
                    name_span: span,
                    args: Vec::new(),
                }),
            },
            span,
        };
        probe.body.statements.insert(0, Stmt::Expr(seed));
    }
}

fn rename_value(expr: &mut Expr) {
    if matches!(&expr.kind, ExprKind::Target(target) if target.is_procfs_value()) {
        expr.kind = ExprKind::Var(VALUE_LOCAL.to_string());
        return;
    }
    expr.for_each_child_mut(rename_value);
}
