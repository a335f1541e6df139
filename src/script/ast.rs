//! The parsed script, before names and types are checked. Every node keeps its span.

use super::lexer::{Op, StringLit};
use super::source::{ScriptError, SourceMap, Span};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub globals: Vec<GlobalDecl>,
    pub probes: Vec<Probe>,
    pub functions: Vec<Function>,
    /// Probe aliases, which the alias pass expands into the probes that use them.
    pub aliases: Vec<Alias>,
}

/// `function NAME[:TYPE] (PARAM[:TYPE], ...) { BODY }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub name: Name,
    pub returns: Option<TypeName>,
    pub params: Vec<(Name, Option<TypeName>)>,
    pub body: Block,
}

/// A type as written in a declaration: `long` or `string`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeName {
    Long,
    Str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalDecl {
    pub name: String,
    pub span: Span,
    pub init: Option<Expr>,
    /// `global a[N]`: an array of at most N elements; `global a%[N]` (`wraps`) drops the
    /// oldest element to make room.
    pub array: Option<ArrayDecl>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArrayDecl {
    pub size: Option<i64>,
    pub wraps: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub points: Vec<PointSyntax>,
    pub body: Block,
    /// Set for a probe the alias pass made from a use of an alias.
    pub expansion: Option<Expansion>,
}

/// Where an expanded probe came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    /// `pn()`: the point as the script wrote it, its wildcards replaced by the alias's
    /// names, e.g. `syscall.read` for `syscall.*`.
    pub name: String,
    /// The points it was expanded from, outermost last: the script's point, and before it
    /// the point in each alias that named a further alias.
    pub from: Vec<Span>,
    /// The body the script wrote, which errors in it are shown in without notes.
    pub written: Span,
    /// The locals the aliases' code assigns, in order, as `-L` lists them.
    pub variables: Vec<String>,
}

impl Expansion {
    /// The error with notes on where the probe was expanded from, if it is in an alias's
    /// code.
    pub fn annotate(&self, map: &SourceMap, error: ScriptError) -> ScriptError {
        error.expanded_from(map, &self.from, self.written)
    }
}

/// `probe NAME = POINT, ... { PROLOGUE }`, `probe NAME += POINT, ... { EPILOGUE }`, or
/// `probe NAME = POINT, ... { PROLOGUE }, { EPILOGUE }`; several names may be given
/// (`probe A = B = POINT ...`). A probe on NAME runs on the alias's points, the prologue
/// before its body and the epilogue after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub names: Vec<PointSyntax>,
    pub points: Vec<PointSyntax>,
    pub prologue: Option<Block>,
    pub epilogue: Option<Block>,
}

/// A probe point as written: dotted components, each with an optional literal argument,
/// e.g. `kernel` . `function("sock_*")` . `call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointSyntax {
    pub components: Vec<PointComponent>,
    pub span: Span,
    /// Followed by `?` (or `!`).
    pub optional: bool,
    /// Followed by `!`.
    pub sufficient: bool,
    /// Spelled out of a group (`kernel.{function("a"), function("b")}`), whose text at
    /// `span` is the group's rather than this point's.
    pub grouped: bool,
}

impl PointSyntax {
    /// The point as `pp()` names it: as written, or spelled out if it came from a group.
    pub fn text(&self, source: &SourceMap) -> String {
        if !self.grouped {
            return source.slice(self.span).to_string();
        }
        let components: Vec<String> = self
            .components
            .iter()
            .map(|component| match &component.argument {
                None => component.name.clone(),
                Some(PointArg::Number(n)) => format!("{}({n})", component.name),
                Some(PointArg::Str(lit)) => {
                    let text = String::from_utf8_lossy(&lit.value)
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"");
                    format!("{}(\"{text}\")", component.name)
                }
            })
            .collect();
        components.join(".")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointComponent {
    pub name: String,
    pub argument: Option<PointArg>,
    pub span: Span,
}

/// A probe point component's argument: `function("sock_*")`, `begin(-1)`, `timer.s(5)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointArg {
    Str(StringLit),
    Number(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub statements: Vec<Stmt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    Block(Block),
    Expr(Expr),
    If {
        condition: Expr,
        then: Box<Stmt>,
        otherwise: Option<Box<Stmt>>,
        span: Span,
    },
    While {
        condition: Expr,
        body: Box<Stmt>,
        span: Span,
    },
    /// `for (init; condition; step) body`, each of the three optional.
    For {
        init: Option<Expr>,
        condition: Option<Expr>,
        step: Option<Expr>,
        body: Box<Stmt>,
        span: Span,
    },
    Foreach(Box<Foreach>),
    /// `delete a[k]`, `delete a` or `delete x`.
    Delete(Expr),
    /// `return` or `return EXPR`, in a function.
    Return(Option<Expr>, Span),
    /// `try { ... } catch [(VAR)] { ... }`.
    Try {
        body: Block,
        message: Option<Name>,
        handler: Block,
        span: Span,
    },
    Break(Span),
    Continue(Span),
    Next(Span),
    Empty(Span),
}

/// A statement or expression directly inside a statement.
pub enum Part<'a> {
    Stmt(&'a Stmt),
    Expr(&'a Expr),
}

impl Stmt {
    /// What the statement holds, in source order, for passes that walk the tree and treat
    /// most statements alike.
    pub fn parts(&self) -> Vec<Part<'_>> {
        match self {
            Stmt::Block(block) => block.statements.iter().map(Part::Stmt).collect(),
            Stmt::Expr(e) | Stmt::Delete(e) | Stmt::Return(Some(e), _) => vec![Part::Expr(e)],
            Stmt::If {
                condition,
                then,
                otherwise,
                ..
            } => std::iter::once(Part::Expr(condition))
                .chain(std::iter::once(Part::Stmt(then)))
                .chain(otherwise.as_deref().map(Part::Stmt))
                .collect(),
            Stmt::While {
                condition, body, ..
            } => vec![Part::Expr(condition), Part::Stmt(body)],
            Stmt::Try { body, handler, .. } => body
                .statements
                .iter()
                .chain(&handler.statements)
                .map(Part::Stmt)
                .collect(),
            Stmt::For {
                init,
                condition,
                step,
                body,
                ..
            } => [init, condition, step]
                .into_iter()
                .flatten()
                .map(Part::Expr)
                .chain(std::iter::once(Part::Stmt(body)))
                .collect(),
            Stmt::Foreach(foreach) => foreach
                .slice
                .iter()
                .flatten()
                .chain(&foreach.limit)
                .map(Part::Expr)
                .chain(std::iter::once(Part::Stmt(&foreach.body)))
                .collect(),
            Stmt::Return(None, _)
            | Stmt::Break(_)
            | Stmt::Continue(_)
            | Stmt::Next(_)
            | Stmt::Empty(_) => Vec::new(),
        }
    }

    /// Calls `f` on each expression directly inside this statement or inside the
    /// statements it holds, in source order, to change it.
    pub fn for_each_expr_mut(&mut self, f: &mut dyn FnMut(&mut Expr)) {
        match self {
            Stmt::Block(block) => block
                .statements
                .iter_mut()
                .for_each(|stmt| stmt.for_each_expr_mut(f)),
            Stmt::Expr(e) | Stmt::Delete(e) | Stmt::Return(Some(e), _) => f(e),
            Stmt::If {
                condition,
                then,
                otherwise,
                ..
            } => {
                f(condition);
                then.for_each_expr_mut(f);
                if let Some(otherwise) = otherwise {
                    otherwise.for_each_expr_mut(f);
                }
            }
            Stmt::While {
                condition, body, ..
            } => {
                f(condition);
                body.for_each_expr_mut(f);
            }
            Stmt::Try { body, handler, .. } => body
                .statements
                .iter_mut()
                .chain(&mut handler.statements)
                .for_each(|stmt| stmt.for_each_expr_mut(f)),
            Stmt::For {
                init,
                condition,
                step,
                body,
                ..
            } => {
                [init, condition, step]
                    .into_iter()
                    .flatten()
                    .for_each(&mut *f);
                body.for_each_expr_mut(f);
            }
            Stmt::Foreach(foreach) => {
                let foreach = &mut **foreach;
                foreach
                    .slice
                    .iter_mut()
                    .flatten()
                    .chain(&mut foreach.limit)
                    .for_each(&mut *f);
                foreach.body.for_each_expr_mut(f);
            }
            Stmt::Return(None, _)
            | Stmt::Break(_)
            | Stmt::Continue(_)
            | Stmt::Next(_)
            | Stmt::Empty(_) => {}
        }
    }

    pub fn span(&self) -> Span {
        match self {
            Stmt::Block(block) => block.span,
            Stmt::Expr(e) | Stmt::Delete(e) => e.span,
            Stmt::If { span, .. }
            | Stmt::While { span, .. }
            | Stmt::For { span, .. }
            | Stmt::Try { span, .. } => *span,
            Stmt::Foreach(foreach) => foreach.span,
            Stmt::Return(_, span)
            | Stmt::Break(span)
            | Stmt::Continue(span)
            | Stmt::Next(span)
            | Stmt::Empty(span) => *span,
        }
    }
}

/// `foreach (value = [k1, k2] in array sort limit N) body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreach {
    /// The variable that receives each element's value, if any.
    pub value: Option<Name>,
    pub keys: Vec<Name>,
    pub array: Name,
    /// `in a[k, *]`: the keys elements must have, [`ExprKind::AnyKey`] for any.
    pub slice: Option<Vec<Expr>>,
    /// `in a @sum-`: for an array of aggregates, which figure sorts by value.
    pub sort_figure: Option<Name>,
    pub sort: Option<Sort>,
    pub limit: Option<Expr>,
    pub body: Stmt,
    pub span: Span,
}

/// A variable or array name where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub name: String,
    pub span: Span,
}

/// A `+` or `-` after the array (by value) or after one key variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub by: SortBy,
    pub descending: bool,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    Value,
    /// The key at this position.
    Key(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

/// The target variable a procfs probe's body reads and sets as the file's text.
pub const PROCFS_VALUE: &str = "value";

/// A target variable and the path through the kernel's data from it:
/// `$sk->__sk_common->skc_family`, `$argv[1]`, `$return`, or `&` of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetExpr {
    /// Without the `$`: a parameter's name, or `return`; `@cast` for a cast, spanning it.
    pub name: Name,
    pub steps: Vec<TargetStep>,
    /// `&$var->member`: the member's address rather than its value.
    pub address_of: bool,
    /// `@cast(BASE, "TYPE")`, which the steps start from.
    pub cast: Option<Box<TargetCast>>,
}

impl TargetExpr {
    /// Whether this is text SystemTap makes of the kernel's data: `$$parms`, `$$vars`,
    /// `$$return` (named `$parms`, ...), a tracepoint's `$$name` and `$$system`.
    pub fn is_text(&self) -> bool {
        self.name.name.starts_with('$') && self.cast.is_none()
    }

    /// Whether this is a plain `$value`, which in a procfs probe is the file's text.
    pub fn is_procfs_value(&self) -> bool {
        self.name.name == PROCFS_VALUE
            && self.steps.is_empty()
            && !self.address_of
            && self.cast.is_none()
    }

    /// Why an assignment to this is refused, for the parser and for lowering (which sees
    /// the `$value` the parser let through, in a probe that is not a procfs probe).
    pub fn assignment_refusal(&self) -> String {
        if self.is_procfs_value() {
            return "$value is the text of a procfs file: only procfs(\"PATH\").read and \
                    .write probes have it"
                .to_string();
        }
        format!(
            "rstap does not write the kernel's data: assigning to ${} needs SystemTap's guru \
             mode (-g), which rstap does not have",
            self.name.name
        )
    }

    /// The target variable the expression starts from, through casts: `return`, a
    /// parameter's name, or `task_current` for a cast of the current task.
    pub fn root(&self) -> &Name {
        match self.cast.as_deref() {
            Some(TargetCast { base, .. }) => base.root(),
            None => &self.name,
        }
    }

    /// Calls `f` on each value the script computes for the expression's casts to start from.
    fn for_each_computed<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        fn of_base<'a>(base: &'a CastBase, f: &mut impl FnMut(&'a Expr)) {
            match base {
                CastBase::Computed(_, value) => f(value),
                CastBase::Target(target) => target.for_each_computed(f),
                CastBase::Sum { left, right, .. } => {
                    of_base(left, f);
                    of_base(right, f);
                }
                CastBase::CurrentTask(_) | CastBase::Constant(..) | CastBase::Variable(_) => {}
            }
        }
        if let Some(cast) = self.cast.as_deref() {
            of_base(&cast.base, f);
        }
    }

    /// [`Self::for_each_computed`], to change them.
    fn for_each_computed_mut(&mut self, f: &mut impl FnMut(&mut Expr)) {
        fn of_base(base: &mut CastBase, f: &mut impl FnMut(&mut Expr)) {
            match base {
                CastBase::Computed(_, value) => f(value),
                CastBase::Target(target) => target.for_each_computed_mut(f),
                CastBase::Sum { left, right, .. } => {
                    of_base(left, f);
                    of_base(right, f);
                }
                CastBase::CurrentTask(_) | CastBase::Constant(..) | CastBase::Variable(_) => {}
            }
        }
        if let Some(cast) = self.cast.as_deref_mut() {
            of_base(&mut cast.base, f);
        }
    }

    /// The script variables the expression's casts start from, through casts and sums.
    pub fn cast_variables(&self) -> Vec<&Name> {
        fn of_base<'a>(base: &'a CastBase, into: &mut Vec<&'a Name>) {
            match base {
                CastBase::Variable(name) => into.push(name),
                CastBase::Target(target) => into.extend(target.cast_variables()),
                CastBase::Sum { left, right, .. } => {
                    of_base(left, into);
                    of_base(right, into);
                }
                CastBase::CurrentTask(_) | CastBase::Constant(..) | CastBase::Computed(..) => {}
            }
        }
        let mut names = Vec::new();
        if let Some(cast) = self.cast.as_deref() {
            of_base(&cast.base, &mut names);
        }
        names
    }
}

/// `@cast(BASE, "TYPE"[, "MODULE"])`: BASE's value as a pointer to the kernel type TYPE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetCast {
    pub base: CastBase,
    /// The struct or union, without `struct ` or `union `, and where the script names it.
    pub type_name: Name,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CastBase {
    /// A target expression: `@cast($ptr, ...)`, `@cast($skb->sk, ...)`.
    Target(Box<TargetExpr>),
    /// `task_current()`, the `task_struct` of the task the event happened in.
    CurrentTask(Name),
    /// A script variable, which may stand for a target expression (see
    /// `passes::lower::bindings`).
    Variable(Name),
    /// A number, named by where it is written: `&@cast(0, "sock")->member` is the
    /// member's offset.
    Constant(i64, Name),
    /// `A + B` or `A - B` (`minus`) of bases: `@cast($skb->head + $skb->network_header,
    /// "iphdr")`, `@cast($t - OFFSET, "sock")` (SystemTap's `@container_of`).
    Sum {
        left: Box<CastBase>,
        minus: bool,
        right: Box<CastBase>,
    },
    /// Anything else, which the script computes: read after the event (see
    /// `kernel::memory`), named by where it is.
    Computed(Name, Box<Expr>),
}

impl CastBase {
    /// The target variable the base starts from (the left one of a sum), or the name of
    /// what it is.
    pub fn root(&self) -> &Name {
        match self {
            CastBase::Target(target) => target.root(),
            CastBase::Sum { left, .. } => left.root(),
            CastBase::CurrentTask(name)
            | CastBase::Variable(name)
            | CastBase::Constant(_, name)
            | CastBase::Computed(name, _) => name,
        }
    }

    /// What `@cast(BASE, ...)` starts from, by the form of BASE.
    pub fn of(base: Expr) -> CastBase {
        let computed = |base: Expr| {
            CastBase::Computed(
                Name {
                    name: "@cast".into(),
                    span: base.span,
                },
                Box::new(base),
            )
        };
        let whole = base.clone();
        match base.kind {
            ExprKind::Number(value) => CastBase::Constant(
                value,
                Name {
                    name: value.to_string(),
                    span: base.span,
                },
            ),
            ExprKind::Binary {
                op: op @ (Op::Plus | Op::Minus),
                left,
                right,
                ..
            } => {
                let (left, right) = (CastBase::of(*left), CastBase::of(*right));
                if [&left, &right]
                    .iter()
                    .any(|side| matches!(side, CastBase::Computed(..)))
                {
                    return computed(whole);
                }
                CastBase::Sum {
                    left: Box::new(left),
                    minus: op == Op::Minus,
                    right: Box::new(right),
                }
            }
            ExprKind::Target(target) => CastBase::Target(Box::new(target)),
            ExprKind::Call { name, args, .. } if name == "task_current" && args.is_empty() => {
                CastBase::CurrentTask(Name {
                    name,
                    span: base.span,
                })
            }
            ExprKind::Var(name) => CastBase::Variable(Name {
                name,
                span: base.span,
            }),
            _ => computed(whole),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetStep {
    /// `->member`, through a pointer or of a struct or union held by value, as SystemTap
    /// writes both.
    Member(Name),
    /// `[index]`: an element of an array, or of what a pointer points to.
    Index { index: i64, span: Span },
}

/// The expressions directly inside an expression's kind, each given to `$f`: one body
/// for both the shared and the mutable walk.
macro_rules! each_child {
    ($kind:expr, $f:ident, $iter:ident) => {
        match $kind {
            ExprKind::Number(_)
            | ExprKind::Str(_)
            | ExprKind::Var(_)
            | ExprKind::Target(_)
            | ExprKind::AnyKey => {}
            ExprKind::Index { keys, .. } | ExprKind::In { keys, .. } => keys.$iter().for_each($f),
            ExprKind::Call { args, .. } => args.$iter().for_each($f),
            ExprKind::Unary { operand, .. }
            | ExprKind::Entry(operand)
            | ExprKind::Defined(operand)
            | ExprKind::Increment {
                target: operand, ..
            } => $f(operand),
            ExprKind::Binary { left, right, .. }
            | ExprKind::Assign {
                target: left,
                value: right,
                ..
            }
            | ExprKind::Aggregate {
                target: left,
                value: right,
            } => {
                $f(left);
                $f(right);
            }
            ExprKind::Ternary {
                condition,
                then,
                otherwise,
            } => {
                $f(condition);
                $f(then);
                $f(otherwise);
            }
            ExprKind::Stat { operand, args, .. } => {
                $f(operand);
                args.$iter().for_each($f);
            }
        }
    };
}

impl Expr {
    /// Calls `f` on each expression directly inside this one, in order.
    pub fn for_each_child<'a>(&'a self, mut f: impl FnMut(&'a Expr)) {
        if let ExprKind::Target(target) = &self.kind {
            target.for_each_computed(&mut f);
        }
        each_child!(&self.kind, f, iter)
    }

    /// Calls `f` on each expression directly inside this one, in order, to change it.
    pub fn for_each_child_mut(&mut self, mut f: impl FnMut(&mut Expr)) {
        if let ExprKind::Target(target) = &mut self.kind {
            target.for_each_computed_mut(&mut f);
        }
        each_child!(&mut self.kind, f, iter_mut)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprKind {
    Number(i64),
    Target(TargetExpr),
    /// `@entry(expr)`: `expr` evaluated at the function's entry, in a `.return` probe.
    Entry(Box<Expr>),
    /// `@defined(expr)`: whether the target expression `expr` can be read in the probed
    /// function (1) or not (0).
    Defined(Box<Expr>),
    Str(StringLit),
    Var(String),
    /// `array[key, ...]`.
    Index {
        array: Name,
        keys: Vec<Expr>,
    },
    /// `*` in a list of keys: any key at that position, which makes the element an array
    /// slice (`delete a[pid(), *]`, `[*, 2] in a`, `foreach (k in a[*, 2])`).
    AnyKey,
    /// `key in array` or `[key, ...] in array`.
    In {
        keys: Vec<Expr>,
        array: Name,
    },
    Call {
        name: String,
        name_span: Span,
        args: Vec<Expr>,
    },
    Unary {
        op: Op,
        operand: Box<Expr>,
    },
    /// Arithmetic, comparison, logical and concatenation operators; `op_span` is where
    /// run-time errors such as division by zero point.
    Binary {
        op: Op,
        op_span: Span,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Ternary {
        condition: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    /// `=` or a compound assignment (`+=`, `.=`, ...) to a variable or array element.
    Assign {
        op: Op,
        target: Box<Expr>,
        value: Box<Expr>,
    },
    /// `++` or `--` (`delta` 1 or -1) before or after a variable or array element.
    Increment {
        target: Box<Expr>,
        delta: i64,
        postfix: bool,
    },
    /// `target <<< value`: adds a value to a statistics aggregate.
    Aggregate {
        target: Box<Expr>,
        value: Box<Expr>,
    },
    /// `@count(x)`, `@hist_linear(a[k], 0, 100, 10)`, ...: `operand` is the aggregate,
    /// `args` the histogram's parameters.
    Stat {
        op: String,
        op_span: Span,
        operand: Box<Expr>,
        args: Vec<Expr>,
    },
}

/// Calls `f` on every expression in the statements, at any depth, each before those
/// inside it.
pub fn visit_exprs<'a>(statements: &'a [Stmt], f: &mut dyn FnMut(&'a Expr)) {
    for stmt in statements {
        visit_stmt(stmt, f);
    }
}

fn visit_stmt<'a>(stmt: &'a Stmt, f: &mut dyn FnMut(&'a Expr)) {
    for part in stmt.parts() {
        match part {
            Part::Stmt(inner) => visit_stmt(inner, f),
            Part::Expr(expr) => visit_expr(expr, f),
        }
    }
}

/// Calls `f` on the expression and every one inside it, each before those inside it.
pub fn visit_expr<'a>(expr: &'a Expr, f: &mut dyn FnMut(&'a Expr)) {
    f(expr);
    expr.for_each_child(|child| visit_expr(child, f));
}
