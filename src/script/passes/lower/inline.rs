//! Functions that read kernel memory through a parameter, such as `task_pid(task)`, which
//! casts `task` to a `task_struct`: rstap reads kernel memory while the probe fires, so
//! such a function cannot run afterwards as other functions do. Each call of one is
//! expanded where it is instead, its parameters replaced by the call's arguments, so that
//! its reads start from what the probe passes: a target variable, `task_current()`, a
//! local assigned from one, or another such call.

use crate::script::ast::{self, CastBase, Expr, ExprKind, Stmt, TargetExpr};

/// The expression a function is expanded into at its calls, if it is one to expand: its
/// body is `return EXPR`, and EXPR casts a parameter.
pub(in crate::script::passes) fn expanded_body(function: &ast::Function) -> Option<Expr> {
    let [Stmt::Return(Some(returned), _)] = &function.body.statements[..] else {
        return None;
    };
    let params: Vec<&str> = function
        .params
        .iter()
        .map(|(p, _)| p.name.as_str())
        .collect();
    let mut casts_a_parameter = false;
    ast::visit_expr(returned, &mut |expr| {
        if let ExprKind::Target(target) = &expr.kind {
            casts_a_parameter |= target
                .cast_variables()
                .iter()
                .any(|name| params.contains(&name.name.as_str()));
        }
    });
    casts_a_parameter.then(|| returned.clone())
}

/// A function to expand: its parameters and the expression it expands into.
pub(super) type Expansion<'a> = (&'a [String], &'a Expr);

/// Past this depth of expansions within expansions, a function is taken to call itself.
const MAX_DEPTH: usize = 32;

/// The expansion of a call of a function to expand: its body with each parameter replaced
/// by the argument in its place, the calls to expand in the arguments and in the body
/// expanded too. `None` if expansions nest past [`MAX_DEPTH`].
pub(super) fn expand_call<'a>(
    (params, body): Expansion<'a>,
    args: &[Expr],
    lookup: &dyn Fn(&str) -> Option<Expansion<'a>>,
) -> Option<Expr> {
    expand_at(params, body, args, lookup, 0)
}

fn expand_at<'a>(
    params: &[String],
    body: &Expr,
    args: &[Expr],
    lookup: &dyn Fn(&str) -> Option<Expansion<'a>>,
    depth: usize,
) -> Option<Expr> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut args = args.to_vec();
    for arg in &mut args {
        expand_calls_in(arg, lookup, depth + 1)?;
    }
    let mut expanded = body.clone();
    replace(&mut expanded, params, &args);
    expand_calls_in(&mut expanded, lookup, depth + 1)?;
    Some(expanded)
}

/// Expands, in place, the calls to expand anywhere in `expr`.
fn expand_calls_in<'a>(
    expr: &mut Expr,
    lookup: &dyn Fn(&str) -> Option<Expansion<'a>>,
    depth: usize,
) -> Option<()> {
    if let ExprKind::Call { name, args, .. } = &expr.kind {
        if let Some((params, body)) = lookup(name).filter(|(params, _)| params.len() == args.len())
        {
            *expr = expand_at(params, body, args, lookup, depth)?;
        }
    }
    let mut complete = Some(());
    expr.for_each_child_mut(|child| {
        if complete.is_some() {
            complete = expand_calls_in(child, lookup, depth + 1);
        }
    });
    complete
}

fn replace(expr: &mut Expr, params: &[String], args: &[Expr]) {
    if let ExprKind::Var(name) = &expr.kind {
        if let Some(at) = params.iter().position(|param| param == name) {
            *expr = args[at].clone();
            return;
        }
    }
    if let ExprKind::Target(target) = &mut expr.kind {
        replace_in_cast(target, params, args);
    }
    expr.for_each_child_mut(|child| replace(child, params, args));
}

fn replace_in_cast(target: &mut TargetExpr, params: &[String], args: &[Expr]) {
    if let Some(cast) = target.cast.as_deref_mut() {
        replace_in_base(&mut cast.base, params, args);
    }
}

fn replace_in_base(base: &mut CastBase, params: &[String], args: &[Expr]) {
    match base {
        CastBase::Variable(name) => {
            if let Some(at) = params.iter().position(|param| *param == name.name) {
                *base = CastBase::of(args[at].clone());
            }
        }
        CastBase::Target(inner) => replace_in_cast(inner, params, args),
        CastBase::Sum { left, right, .. } => {
            replace_in_base(left, params, args);
            replace_in_base(right, params, args);
        }
        CastBase::Computed(_, value) => replace(value, params, args),
        CastBase::CurrentTask(_) | CastBase::Constant(..) => {}
    }
}
