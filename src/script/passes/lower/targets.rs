//! Lowering of target variables (`$name`, `$name->member`, `$return`) and of the calls that
//! read kernel memory at a target's address (`kernel_string($p)`, `kernel_long($p)`): each
//! becomes a numbered [`TargetRead`] of the probe, which the kernel side does at the event,
//! and an expression that takes its value from the event.
//!
//! In a `.return` probe, a parameter and `@entry(expr)` are evaluated at the function's
//! entry and kept for the return (SystemTap gives parameters there as they were at entry).
//!
//! Which reads a body may make depends on its probe points alone, so it is checked here;
//! whether the kernel's types allow them (a member that exists, `->` through a pointer) is
//! checked per probed function when the points are resolved.

use super::*;
use crate::script::builtins::UserFault;
use crate::script::ir::{ReadKind, TargetRead, UserLateRead};

/// How many locals deep a cast may look through (`b = @cast(a, ...)->x; @cast(b, ...)`);
/// deeper is taken for locals that stand for each other.
const MAX_BINDINGS: usize = 16;

/// The highest argument `int_arg(n)` and the like name: x86-64 passes six in registers.
const MAX_ARGUMENT: i64 = 6;

/// `uid()`, `ppid()` and the other facts of a task, in a probe on kernel events: the
/// event's task's, read from its `task_struct` (where rstap's own process answers them in
/// `begin`, `end` and timer probes).
pub(super) fn event_task_fact(function: Library, span: Span) -> Expr {
    let (path, text): (&[&str], bool) = match function {
        Library::Uid => (&["cred", "uid", "val"], false),
        Library::Gid => (&["cred", "gid", "val"], false),
        Library::Euid => (&["cred", "euid", "val"], false),
        Library::Egid => (&["cred", "egid", "val"], false),
        Library::Ppid => (&["real_parent", "tgid"], false),
        _ => (&["real_parent", "comm"], true),
    };
    let mut target = bindings::current_task(span);
    target.address_of = false;
    target.steps = path
        .iter()
        .map(|member| {
            ast::TargetStep::Member(Name {
                name: member.to_string(),
                span,
            })
        })
        .collect();
    let read = Expr {
        kind: ExprKind::Target(target),
        span,
    };
    if !text {
        return read;
    }
    Expr {
        kind: ExprKind::Call {
            name: "kernel_string".into(),
            name_span: span,
            args: vec![read],
        },
        span,
    }
}

/// The kind of events a body runs on, as far as target variables care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TargetSite {
    /// A script function's body: it has no event of its own.
    Function,
    /// A probe with a point that is not a kernel function (`begin`, `timer.s(1)`...),
    /// named as written.
    NoKernelData(&'static str),
    /// Kernel function entries (`.call`, `.function`, `.inline`).
    Entry,
    /// Kernel function returns.
    Return,
    /// Entries and returns both.
    EntryAndReturn,
    /// Tracepoints alone: their arguments, no return value.
    Tracepoint,
    /// Perf events sampled on every CPU (`timer.profile`): a kernel stack, no variables.
    Sample,
}

impl TargetSite {
    /// Whether the body runs on kernel events, which happen in a task it can read.
    pub(super) fn has_event_task(self) -> bool {
        !matches!(self, TargetSite::Function | TargetSite::NoKernelData(_))
    }

    pub(super) fn of(points: &[ProbePoint]) -> TargetSite {
        let mut entry = false;
        let mut ret = false;
        let mut tracepoint = false;
        for point in points {
            match &point.kind {
                ProbePointKind::Tracepoint { .. } => tracepoint = true,
                ProbePointKind::Sample { .. } => return TargetSite::Sample,
                ProbePointKind::KernelFunction { variant, .. } => match variant {
                    FunctionVariant::Return => ret = true,
                    _ => entry = true,
                },
                ProbePointKind::Begin { .. } => return TargetSite::NoKernelData("begin"),
                ProbePointKind::End { .. } => return TargetSite::NoKernelData("end"),
                ProbePointKind::Error { .. } => return TargetSite::NoKernelData("error"),
                ProbePointKind::Never => return TargetSite::NoKernelData("never"),
                ProbePointKind::Timer { .. } => return TargetSite::NoKernelData("timer"),
                ProbePointKind::Procfs { .. } => return TargetSite::NoKernelData("procfs"),
            }
        }
        // A tracepoint's arguments are read as a function entry's are.
        match (entry || tracepoint, ret) {
            (true, true) => TargetSite::EntryAndReturn,
            (false, true) => TargetSite::Return,
            _ if tracepoint && !entry => TargetSite::Tracepoint,
            _ => TargetSite::Entry,
        }
    }
}

/// Whether a target variable's name is the return value's: `$return`, or `$$return`.
fn is_return_value(name: &str) -> bool {
    matches!(name, "return" | "$return")
}

impl Lowering<'_> {
    /// `$name...` as a long.
    pub(super) fn target_value(
        &mut self,
        target: &ast::TargetExpr,
        span: Span,
    ) -> Result<Value, ScriptError> {
        self.read_value(target, ReadKind::Value, span)
    }

    /// `int_arg(n)` and the like: the site's argument `n` (a number written in the call,
    /// as the read is planned with the probe point), cut to `bytes`.
    pub(super) fn argument(
        &mut self,
        name: &str,
        bytes: u8,
        signed: bool,
        index: &Expr,
        span: Span,
    ) -> Result<Value, ScriptError> {
        let number = match index.kind {
            ExprKind::Number(n) if (1..=MAX_ARGUMENT).contains(&n) => n,
            _ => {
                return Err(self.error(
                    index.span,
                    format!(
                        "{name}() takes the argument's number, 1 to {MAX_ARGUMENT}, written in \
                         the call: rstap plans each read with the probe point"
                    ),
                ))
            }
        };
        let raw = Expr {
            kind: ExprKind::Target(bindings::argument(number, span)),
            span,
        };
        let binary = |op, left, right: i64| Expr {
            kind: ExprKind::Binary {
                op,
                op_span: span,
                left: Box::new(left),
                right: Box::new(Expr {
                    kind: ExprKind::Number(right),
                    span,
                }),
            },
            span,
        };
        // A register's low half, as integers.stp's __int32 and __uint32 take it.
        let cut = match (bytes, signed) {
            (4, true) => binary(
                Op::Minus,
                binary(Op::Caret, binary(Op::Amp, raw, 0xffff_ffff), 0x8000_0000),
                0x8000_0000,
            ),
            (4, false) => binary(Op::Amp, raw, 0xffff_ffff),
            _ => raw,
        };
        self.value(&cut)
    }

    /// `@defined($var...)`: answered per probed function, when the kernel's types are known;
    /// 0 where the probe has no kernel function to ask about, as in SystemTap.
    pub(super) fn defined(&mut self, inner: &Expr, span: Span) -> Result<IntExpr, ScriptError> {
        // `@defined(@entry($var))`: whether the entry has it, which is whether the function
        // has it at all.
        let inner = match &inner.kind {
            ExprKind::Entry(at_entry) => at_entry.as_ref(),
            _ => inner,
        };
        let ExprKind::Target(target) = &inner.kind else {
            return Err(self.error(
                span,
                "not supported yet: @defined of something other than a target variable \
                 ($var, $var->member)",
            ));
        };
        let answerable = match self.target_site {
            TargetSite::Function | TargetSite::NoKernelData(_) | TargetSite::Sample => false,
            TargetSite::Entry | TargetSite::Tracepoint => !is_return_value(&target.name.name),
            TargetSite::Return | TargetSite::EntryAndReturn => true,
        };
        if !answerable {
            return Ok(IntExpr::Const(0));
        }
        // A cast of an address the body computes is defined if the kernel's types have its
        // path, which the placeholder's compilation answers.
        let target = match target.cast.as_deref() {
            Some(cast) if !self.readable_at_event(&cast.base, 0) => with_placeholder_base(target),
            _ => self.through_bindings(target, 0)?,
        };
        self.defined.push(target);
        Ok(IntExpr::Defined(self.defined.len() - 1))
    }

    /// `@entry(expr)` in a `.return` probe: `expr` lowered as the entry event will evaluate
    /// it, and the value that reads its result back at the return.
    pub(super) fn entry_value(&mut self, inner: &Expr, span: Span) -> Result<Value, ScriptError> {
        if self.at_entry {
            return Err(self.error(
                span,
                "@entry inside @entry: the inner one is at entry already",
            ));
        }
        let entry_site = match self.target_site {
            TargetSite::Return => TargetSite::Entry,
            TargetSite::Tracepoint if self.returns_from_syscalls => TargetSite::Tracepoint,
            _ => {
                return Err(self.error(
                    span,
                    "@entry is for .return probes: it gives a value as it was at the entry \
                     of the function (or system call) the probe returns from",
                ))
            }
        };
        self.at_entry = true;
        let value = self.at_entry_event(entry_site, |lowering| lowering.value(inner));
        self.at_entry = false;
        Ok(self.keep_for_return(value?))
    }

    /// Runs `lower` as the entry event's lowering, on `site`: entry reads, which the entry
    /// collects.
    fn at_entry_event<T>(&mut self, site: TargetSite, lower: impl FnOnce(&mut Self) -> T) -> T {
        let return_site = std::mem::replace(&mut self.target_site, site);
        std::mem::swap(&mut self.targets, &mut self.entry_targets);
        let lowered = lower(self);
        std::mem::swap(&mut self.targets, &mut self.entry_targets);
        self.target_site = return_site;
        lowered
    }

    /// Keeps `value`, lowered for the entry event, for the return to read back.
    fn keep_for_return(&mut self, value: Value) -> Value {
        let index = self.entry_values.len();
        let read_back = match &value {
            Value::Str(_) => Value::Str(StrExpr::Entry(index)),
            _ => Value::Int(IntExpr::Entry(index)),
        };
        self.entry_values.push(value);
        read_back
    }

    /// A read of `target`: at this event, or, for a parameter in a `.return` probe, at the
    /// entry (as SystemTap gives parameters there).
    fn read_value(
        &mut self,
        target: &ast::TargetExpr,
        kind: ReadKind,
        span: Span,
    ) -> Result<Value, ScriptError> {
        if let Some(cast) = target.cast.as_deref() {
            // A cast of a number alone reads no event: in a body without one, it is read
            // when the body runs.
            let without_event = matches!(
                self.target_site,
                TargetSite::Function | TargetSite::NoKernelData(_)
            ) && matches!(cast.base, ast::CastBase::Constant(..));
            if without_event || !self.readable_at_event(&cast.base, 0) {
                return self.late_cast(target, kind, span);
            }
        }
        let target = &self.through_bindings(target, 0)?;
        let root = &target.root().name;
        // The return value and the current task are read at the return itself.
        let at_return = is_return_value(root) || root == "task_current";
        if self.target_site == TargetSite::Return && !at_return {
            let read = self.at_entry_event(TargetSite::Entry, |lowering| {
                lowering.read_value(target, kind, span)
            });
            return Ok(self.keep_for_return(read?));
        }
        let kind = if target.name.name.starts_with('$') {
            if !target.steps.is_empty() || target.address_of || kind != ReadKind::Value {
                return Err(self.error(
                    span,
                    format!(
                        "${} is text: it has no members, address or memory to read",
                        target.name.name
                    ),
                ));
            }
            ReadKind::Text
        } else {
            kind
        };
        let index = self.target_read(target, kind, span)?;
        Ok(match kind {
            ReadKind::String { .. } | ReadKind::Text => Value::Str(StrExpr::Target(index, span)),
            _ => Value::Int(IntExpr::Target(index, span)),
        })
    }

    /// `kernel_string($p)`, `kernel_long($p)` and the like, `kind` as the builtin table
    /// gives it.
    pub(super) fn kernel_read(
        &mut self,
        name: &str,
        kind: ReadKind,
        span: Span,
        args: &[Expr],
    ) -> Result<Value, ScriptError> {
        if let ReadKind::Backtrace(_) = kind {
            return self.backtrace(name, kind, span, args);
        }
        // After the address, as the call's form has them: a string's length bound (a long)
        // and the text for a faulting copy (a string: `user_string(p, "-")`).
        let params = builtins::lookup_by_arity(name, args.len()).map_or(&[][..], |b| b.params);
        let after_address = |ty: Ty| {
            args.iter()
                .zip(params)
                .skip(1)
                .find(|(_, param)| **param == ty)
                .map(|(arg, _)| arg)
        };
        let bound = after_address(Ty::Long);
        let fallback = match after_address(Ty::Str) {
            None => None,
            Some(Expr {
                kind: ExprKind::Str(text),
                ..
            }) => Some(text.value.clone()),
            Some(other) => {
                return Err(self.error(
                    other.span,
                    format!(
                        "not supported yet: {name}() with a fallback that is not a literal \
                         string"
                    ),
                ))
            }
        };
        let kind = match kind {
            ReadKind::String { user, .. } => {
                // SystemTap's strings hold at most MAXSTRINGLEN - 1 bytes.
                let longest = self.limits.string_len.saturating_sub(1);
                let max = match bound {
                    None => longest,
                    Some(bound) => match bound.kind {
                        ExprKind::Number(n) if n >= 0 => (n as usize).min(longest),
                        _ => {
                            return Err(self.error(
                                bound.span,
                                format!(
                                    "not supported yet: {name}() with a length that is not a \
                                     number: the kernel side copies the string at the event"
                                ),
                            ))
                        }
                    },
                };
                ReadKind::String { max, user }
            }
            other => other,
        };
        let target = args.first().and_then(|first| match &first.kind {
            ExprKind::Var(name) => self.bindings.get(name).cloned(),
            _ => bindings::target_of(first),
        });
        let Some(target) = target else {
            let Some(address) = args.first() else {
                return Err(self.error(span, format!("{name}() needs an address to read")));
            };
            if fallback.is_some() {
                return Err(self.error(
                    span,
                    format!(
                        "not supported yet: {name}() with a fallback text, of an address the \
                         script computes"
                    ),
                ));
            }
            return self.late_address(kind, address, span);
        };
        let mut read = self.read_value(&target, kind, span)?;
        let Some(fallback) = fallback else {
            return Ok(read);
        };
        let or_fallback = |read: &mut Value| {
            if let Value::Str(StrExpr::Target(index, _)) = read {
                *read = Value::Str(StrExpr::TargetOr(*index, fallback.clone()));
            }
        };
        match &read {
            // Kept from the entry: the entry's read is the one that may fault.
            Value::Str(StrExpr::Entry(index)) => or_fallback(&mut self.entry_values[*index]),
            _ => or_fallback(&mut read),
        }
        Ok(read)
    }

    /// `user_short(p)` and the other numbers of user memory: read at the event from a
    /// target's address, else from the event's process when the body runs; a fault gives
    /// 0 (with a warning) unless the form is `_error`'s.
    pub(super) fn user_number(
        &mut self,
        name: &str,
        kind: ReadKind,
        on_fault: UserFault,
        span: Span,
        args: &[Expr],
    ) -> Result<Value, ScriptError> {
        self.arity(name, span, args, 1)?;
        let target = match &args[0].kind {
            ExprKind::Var(name) => self.bindings.get(name).cloned(),
            _ => bindings::target_of(&args[0]),
        };
        let value = match target {
            Some(target) => self.read_value(&target, kind, span)?,
            None => self.late_address(kind, &args[0], span)?,
        };
        let Value::Int(value) = value else {
            return Err(self.error(span, format!("{name}() gives a number")));
        };
        Ok(Value::Int(match on_fault {
            UserFault::Error => value,
            UserFault::Zero | UserFault::WarnAndZero => IntExpr::FaultGivesZero {
                value: Box::new(value),
                warn: on_fault == UserFault::WarnAndZero,
            },
        }))
    }

    /// `user_string_quoted($p)`: the string read at the event as `user_string($p)` reads
    /// it, quoted when the value is used; its address for the text of a faulting copy.
    pub(super) fn quoted_string(
        &mut self,
        name: &str,
        user: bool,
        span: Span,
        args: &[Expr],
    ) -> Result<Value, ScriptError> {
        let read = self.kernel_read(name, ReadKind::String { max: 0, user }, span, args)?;
        let Value::Str(StrExpr::Target(index, _)) = read else {
            return Err(self.error(
                span,
                format!(
                    "not supported yet: {name}() of a value kept from the function's entry; \
                     read it in the entry probe"
                ),
            ));
        };
        let address = self.int(&args[0])?;
        Ok(Value::Str(StrExpr::TargetQuoted(index, Box::new(address))))
    }

    /// `task_current()`: the event's task, as `&@cast(task_current(), "task_struct")`.
    pub(super) fn current_task(&mut self, span: Span) -> Result<Value, ScriptError> {
        if self.target_site == TargetSite::Function {
            // The calling probe reads it at its event (see `CheckedProbe::current_task`).
            return Ok(Value::Int(IntExpr::CurrentTask(span)));
        }
        self.read_value(&bindings::current_task(span), ReadKind::Value, span)
    }

    /// The read that gives this probe's event task to the functions it calls, if it has
    /// events with tasks.
    pub(super) fn current_task_for_functions(&mut self, span: Span) -> Option<usize> {
        let with_task = matches!(
            self.target_site,
            TargetSite::Entry
                | TargetSite::Return
                | TargetSite::EntryAndReturn
                | TargetSite::Tracepoint
                | TargetSite::Sample
        );
        match self.current_task(span) {
            Ok(Value::Int(IntExpr::Target(index, _))) if with_task => Some(index),
            _ => None,
        }
    }

    /// `returnval()`, which SystemTap gives from the return register: `$return`.
    pub(super) fn return_value(&mut self, span: Span) -> Result<Value, ScriptError> {
        let target = ast::TargetExpr {
            name: ast::Name {
                name: "return".to_string(),
                span,
            },
            steps: Vec::new(),
            address_of: false,
            cast: None,
        };
        self.read_value(&target, ReadKind::Value, span)
    }

    /// `target` with every `@cast` of a local that stands for a target expression made a
    /// `@cast` of that expression (see [`bindings`]).
    fn through_bindings(
        &self,
        target: &ast::TargetExpr,
        depth: usize,
    ) -> Result<ast::TargetExpr, ScriptError> {
        let Some(cast) = target.cast.as_deref() else {
            return Ok(target.clone());
        };
        let base = self.base_through_bindings(&cast.base, depth)?;
        let mut resolved = target.clone();
        resolved.cast = Some(Box::new(ast::TargetCast {
            base,
            type_name: cast.type_name.clone(),
        }));
        Ok(resolved)
    }

    /// A cast's base with every local that stands for a target expression replaced by it.
    fn base_through_bindings(
        &self,
        base: &ast::CastBase,
        depth: usize,
    ) -> Result<ast::CastBase, ScriptError> {
        Ok(match base {
            ast::CastBase::Variable(variable) => {
                let bound = self
                    .bindings
                    .get(&variable.name)
                    .filter(|_| depth < MAX_BINDINGS);
                let Some(bound) = bound else {
                    return Err(self.error(
                        variable.span,
                        format!(
                            "not supported yet: @cast of `{}`, which this probe does not assign \
                             once from a target expression: rstap reads kernel memory only while \
                             the probe fires, so cast a target variable ($ptr, $p->member), \
                             task_current(), or a local assigned once from one",
                            variable.name
                        ),
                    ));
                };
                ast::CastBase::Target(Box::new(self.through_bindings(bound, depth + 1)?))
            }
            ast::CastBase::Target(inner) => {
                ast::CastBase::Target(Box::new(self.through_bindings(inner, depth + 1)?))
            }
            ast::CastBase::Sum { left, minus, right } => ast::CastBase::Sum {
                left: Box::new(self.base_through_bindings(left, depth + 1)?),
                minus: *minus,
                right: Box::new(self.base_through_bindings(right, depth + 1)?),
            },
            other => other.clone(),
        })
    }

    /// Whether a cast's base can be read at the event: it starts from target variables,
    /// `task_current()`, numbers and locals that stand for them, with nothing the script
    /// computes.
    fn readable_at_event(&self, base: &ast::CastBase, depth: usize) -> bool {
        let of_target = |target: &ast::TargetExpr| {
            target
                .cast
                .as_deref()
                .is_none_or(|cast| self.readable_at_event(&cast.base, depth + 1))
        };
        match base {
            ast::CastBase::Target(target) => of_target(target),
            // In a function, the task is the caller's, known when the body runs.
            ast::CastBase::CurrentTask(_) => self.target_site != TargetSite::Function,
            ast::CastBase::Constant(..) => true,
            ast::CastBase::Variable(name) => {
                depth < MAX_BINDINGS && self.bindings.get(&name.name).is_some_and(of_target)
            }
            ast::CastBase::Computed(..) => false,
            ast::CastBase::Sum { left, right, .. } => {
                self.readable_at_event(left, depth + 1) && self.readable_at_event(right, depth + 1)
            }
        }
    }

    /// A cast of an address the body computes: read when the body runs (see
    /// [`LateRead`]), its path compiled against the kernel's types from a placeholder base.
    fn late_cast(
        &mut self,
        target: &ast::TargetExpr,
        kind: ReadKind,
        span: Span,
    ) -> Result<Value, ScriptError> {
        let cast = target.cast.as_deref().expect("late_cast is given casts");
        let address = self.late_base(&cast.base, span)?;
        if let ReadKind::Deref { user: true, .. } = kind {
            // The kernel's reader would read rstap's own memory: the cast's path is read
            // first, and the number at its end from the event's process.
            let Value::Int(address) = self.late_cast(target, ReadKind::Value, span)? else {
                return Err(self.error(span, "a cast's address is a number"));
            };
            return Ok(user_late(kind, address, span));
        }
        let read = LateRead::Cast(TargetRead {
            target: with_placeholder_base(target),
            kind,
            span,
        });
        self.late(read, kind, address, span)
    }

    /// `kernel_long(addr)`, `kernel_string(addr)` of an address the body computes.
    fn late_address(
        &mut self,
        kind: ReadKind,
        address: &Expr,
        span: Span,
    ) -> Result<Value, ScriptError> {
        let address = self.int(address)?;
        if let ReadKind::Deref { user: true, .. } = kind {
            return Ok(user_late(kind, address, span));
        }
        self.late(LateRead::Address(kind), kind, address, span)
    }

    fn late(
        &mut self,
        read: LateRead,
        kind: ReadKind,
        address: IntExpr,
        span: Span,
    ) -> Result<Value, ScriptError> {
        if let ReadKind::String { user: true, .. } = kind {
            return Err(self.error(
                span,
                "not supported yet: user memory at an address the script computes: rstap \
                 reads a task's memory only while the probe fires, and this address is known \
                 only after it; pass a target variable ($buf) to user_string()",
            ));
        }
        self.wide.late_reads.push(read);
        let value = LateValue {
            read: self.wide.late_reads.len() - 1,
            address: Box::new(address),
            span,
        };
        Ok(match kind {
            ReadKind::String { .. } => Value::Str(StrExpr::Late(value)),
            _ => Value::Int(IntExpr::Late(value)),
        })
    }

    /// The address a late cast starts from, as the body computes it.
    fn late_base(&mut self, base: &ast::CastBase, span: Span) -> Result<IntExpr, ScriptError> {
        Ok(match base {
            ast::CastBase::Target(target) => {
                match self.read_value(target, ReadKind::Value, target.name.span)? {
                    Value::Int(address) => address,
                    _ => return Err(self.error(target.name.span, "a cast's address is a number")),
                }
            }
            ast::CastBase::CurrentTask(name) => match self.current_task(name.span)? {
                Value::Int(address) => address,
                _ => return Err(self.error(name.span, "a cast's address is a number")),
            },
            ast::CastBase::Variable(name) => self.int(&Expr {
                kind: ExprKind::Var(name.name.clone()),
                span: name.span,
            })?,
            ast::CastBase::Constant(value, _) => IntExpr::Const(*value),
            ast::CastBase::Computed(_, value) => self.int(value)?,
            ast::CastBase::Sum { left, minus, right } => IntExpr::Arith(
                if *minus { ArithOp::Sub } else { ArithOp::Add },
                Box::new(self.late_base(left, span)?),
                Box::new(self.late_base(right, span)?),
                span,
            ),
        })
    }

    /// `backtrace()` and friends: the kernel stack at a function's entry.
    fn backtrace(
        &mut self,
        name: &str,
        kind: ReadKind,
        span: Span,
        args: &[Expr],
    ) -> Result<Value, ScriptError> {
        self.arity(name, span, args, 0)?;
        let refusal = match self.target_site {
            TargetSite::Entry | TargetSite::Sample => None,
            TargetSite::Tracepoint => Some(format!(
                "not supported yet: {name}() in a tracepoint probe; call it in a probe on a \
                 kernel function"
            )),
            TargetSite::Return | TargetSite::EntryAndReturn => Some(format!(
                "not supported yet: {name}() in a .return probe; call it in a .call probe"
            )),
            TargetSite::Function => Some(format!(
                "{name}() in a function: the kernel stack belongs to a probe's event; call \
                 it in the probe"
            )),
            TargetSite::NoKernelData(point) => Some(format!(
                "{name}() in a {point} probe: only probes on kernel functions have a kernel \
                 stack to show"
            )),
        };
        if let Some(message) = refusal {
            return Err(self.error(span, message));
        }
        let stack = ast::TargetExpr {
            name: ast::Name {
                name: name.to_string(),
                span,
            },
            steps: Vec::new(),
            address_of: false,
            cast: None,
        };
        self.targets.push(TargetRead {
            target: stack,
            kind,
            span,
        });
        Ok(Value::Str(StrExpr::Target(self.targets.len() - 1, span)))
    }

    /// Records a read of `target`, checked against the probe's points, and gives its number.
    fn target_read(
        &mut self,
        target: &ast::TargetExpr,
        kind: ReadKind,
        span: Span,
    ) -> Result<usize, ScriptError> {
        let name = target.root();
        let is_return = is_return_value(&name.name);
        let is_current_task = name.name == "task_current";
        let refusal = match self.target_site {
            TargetSite::Function if is_current_task => Some(
                "task_current() in a function: the task belongs to a probe's event; call it \
                 in the probe and pass its value as an argument"
                    .to_string(),
            ),
            TargetSite::NoKernelData(point) if is_current_task => Some(format!(
                "task_current() in a {point} probe: only probes on kernel events know the \
                 task they happened in"
            )),
            TargetSite::Function => Some(format!(
                "target variable ${} in a function: target variables belong to a probe's \
                 event; read it in the probe and pass its value as an argument",
                name.name
            )),
            TargetSite::Sample if !is_current_task => Some(format!(
                "target variable ${} in a sampling probe (timer.profile, perf): a sample \
                 interrupts a task wherever it is, and has no variables",
                name.name
            )),
            TargetSite::NoKernelData(point) => Some(format!(
                "target variable ${} in a {point} probe: only probes on kernel functions \
                 and tracepoints have target variables",
                name.name
            )),
            _ if is_current_task => None,
            TargetSite::Tracepoint if is_return => {
                Some("$return in a tracepoint probe: a tracepoint has no return value".to_string())
            }
            TargetSite::Entry | TargetSite::EntryAndReturn if is_return => Some(
                "$return in a probe on function entries: the return value exists only in \
                 .return probes"
                    .to_string(),
            ),
            TargetSite::EntryAndReturn if !is_return => Some(format!(
                "not supported yet: the parameter ${} in a probe on both entries and \
                 returns: split the probe into a .call and a .return probe",
                name.name
            )),
            _ => None,
        };
        if let Some(message) = refusal {
            return Err(self.error(name.span, message));
        }
        if name.name == "return"
            && target.address_of
            && target.steps.is_empty()
            && target.cast.is_none()
        {
            return Err(self.error(
                span,
                "$return is a value, not a variable: it has no address",
            ));
        }
        self.targets.push(TargetRead {
            target: target.clone(),
            kind,
            span,
        });
        Ok(self.targets.len() - 1)
    }
}

/// A cast with its base replaced by the constant 0, which a late read's program replaces
/// with the address.
/// `user_short(addr)` and the like of an address the body computes: the event's process's
/// memory, read when the body runs.
fn user_late(kind: ReadKind, address: IntExpr, span: Span) -> Value {
    let ReadKind::Deref {
        bytes,
        signed,
        function,
        ..
    } = kind
    else {
        unreachable!("user numbers are Deref reads")
    };
    Value::Int(IntExpr::UserLate(Box::new(UserLateRead {
        address,
        bytes,
        signed,
        function,
        span,
    })))
}

fn with_placeholder_base(target: &ast::TargetExpr) -> ast::TargetExpr {
    let mut placeholder = target.clone();
    if let Some(cast) = placeholder.cast.as_deref_mut() {
        cast.base = ast::CastBase::Constant(0, cast.base.root().clone());
    }
    placeholder
}
