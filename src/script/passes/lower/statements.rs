//! Lowering of statements: blocks, loops, `foreach`, `delete`, and expressions used as
//! statements.

use super::*;

impl Lowering<'_> {
    pub(super) fn block(&mut self, statements: &[ast::Stmt]) -> Result<Vec<Stmt>, ScriptError> {
        let mut out = Vec::with_capacity(statements.len());
        for stmt in statements {
            self.statement(stmt, &mut out)?;
        }
        Ok(out)
    }

    pub(super) fn body(&mut self, stmt: &ast::Stmt) -> Result<Vec<Stmt>, ScriptError> {
        let mut out = Vec::new();
        self.statement(stmt, &mut out)?;
        Ok(out)
    }

    /// The body of a loop, where `break` and `continue` may appear.
    pub(super) fn loop_body(&mut self, stmt: &ast::Stmt) -> Result<Vec<Stmt>, ScriptError> {
        self.loops += 1;
        let body = self.body(stmt);
        self.loops -= 1;
        body
    }

    pub(super) fn statement(
        &mut self,
        stmt: &ast::Stmt,
        out: &mut Vec<Stmt>,
    ) -> Result<(), ScriptError> {
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

    /// Whether `e` is a call that gives no value (`exit()`, a function that returns
    /// nothing), or `&&` or `||` ending in one.
    fn gives_no_value(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Call { name, args, .. } => match self.symbols.functions.get(name) {
                Some(function) => function.returns.is_none(),
                None => builtins::lookup_by_arity(name, args.len())
                    .is_some_and(|builtin| builtin.returns.is_none()),
            },
            ExprKind::Binary {
                op: Op::AndAnd | Op::OrOr,
                right,
                ..
            } => self.gives_no_value(right),
            ExprKind::Ternary {
                then, otherwise, ..
            } => self.gives_no_value(then) || self.gives_no_value(otherwise),
            _ => false,
        }
    }

    pub(super) fn foreach(&mut self, foreach: &ast::Foreach) -> Result<Stmt, ScriptError> {
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
            Some(keys) => Some(self.key_slice(&foreach.array, keys)?),
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
    pub(super) fn typed_slot(&mut self, name: &Name, ty: Ty) -> Result<Slot, ScriptError> {
        let (found, slot) = self.slot(&name.name, name.span)?;
        if found != ty {
            return Err(self.mismatch(name.span, ty, found));
        }
        Ok(slot)
    }

    pub(super) fn deletion(&mut self, target: &Expr) -> Result<Deletion, ScriptError> {
        match &target.kind {
            ExprKind::Index { array, keys } if is_slice(keys) => {
                let slice = self.key_slice(array, keys)?;
                self.check_unchanged(slice.array, target.span)?;
                Ok(Deletion::Slice(slice))
            }
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

    pub(super) fn expression_statement(&mut self, e: &Expr) -> Result<Stmt, ScriptError> {
        if let ExprKind::Binary {
            op: op @ (Op::AndAnd | Op::OrOr),
            left,
            right,
            ..
        } = &e.kind
        {
            if self.gives_no_value(right) {
                // SystemTap takes `count && ++n == count && exit()` as a statement: the
                // call runs when the condition lets it.
                let condition = self.int(left)?;
                let then = vec![self.expression_statement(right)?];
                return Ok(if *op == Op::AndAnd {
                    Stmt::If(condition, then, Vec::new())
                } else {
                    Stmt::If(condition, Vec::new(), then)
                });
            }
        }
        if let ExprKind::Ternary {
            condition,
            then,
            otherwise,
        } = &e.kind
        {
            // `local ? printf(a) : printf(b)` as a statement: one call or the other runs.
            if self.gives_no_value(e) {
                let condition = self.int(condition)?;
                let then = vec![self.expression_statement(then)?];
                let otherwise = vec![self.expression_statement(otherwise)?];
                return Ok(Stmt::If(condition, then, otherwise));
            }
        }
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
                Some(Answer::KernelRead(kind @ ReadKind::Backtrace(_)))
                    if name == "print_backtrace" =>
                {
                    let Value::Str(text) = self.kernel_read(name, kind, e.span, args)? else {
                        unreachable!("a backtrace is text")
                    };
                    let format = Format::parse(b"%s", &[false, false])
                        .map_err(|err| self.error(e.span, err.to_string()))?;
                    return Ok(Stmt::Print(PrintCall {
                        format,
                        args: vec![Value::Str(text)],
                    }));
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
}
