//! Parsing expressions by precedence climbing, SystemTap's operator levels, and the
//! primaries: literals, variables, array elements, calls, `@` operators.

use super::*;

impl Parser<'_> {
    pub(super) fn expression(&mut self) -> Result<Expr, ScriptError> {
        let at = self.peek().span;
        self.nest(at)?;
        let result = self.assignment();
        self.depth -= 1;
        result
    }

    pub(super) fn assignment(&mut self) -> Result<Expr, ScriptError> {
        let target = self.ternary()?;
        let op = match self.peek().kind {
            TokenKind::Op(op) if ASSIGNMENTS.contains(&op) || op == Op::Aggregate => op,
            _ => return Ok(target),
        };
        let op_span = self.advance().span;
        // `$value` of a procfs probe is the file's text, which the probe may set; the
        // procfs pass tells that from a kernel variable once the probe's points are known.
        match &target.kind {
            ExprKind::Target(written) if !written.is_procfs_value() => {
                return Err(self.error(op_span, written.assignment_refusal()))
            }
            ExprKind::Var(_) | ExprKind::Index { .. } | ExprKind::Target(_) => {}
            _ => {
                return Err(self.error(
                    op_span,
                    format!(
                        "the left side of '{}' must be a variable or an array element",
                        op.text()
                    ),
                ))
            }
        }
        let value = self.expression()?;
        let span = target.span.to(value.span);
        let (target, value) = (Box::new(target), Box::new(value));
        Ok(Expr {
            span,
            kind: if op == Op::Aggregate {
                ExprKind::Aggregate { target, value }
            } else {
                ExprKind::Assign { op, target, value }
            },
        })
    }

    pub(super) fn ternary(&mut self) -> Result<Expr, ScriptError> {
        let condition = self.binary(0)?;
        if !self.eat_op(Op::Question) {
            return Ok(condition);
        }
        let then = self.expression()?;
        self.expect_op(Op::Colon)?;
        let otherwise = self.expression()?;
        Ok(Expr {
            span: condition.span.to(otherwise.span),
            kind: ExprKind::Ternary {
                condition: Box::new(condition),
                then: Box::new(then),
                otherwise: Box::new(otherwise),
            },
        })
    }

    /// Precedence climbing: operators binding at least as tightly as `min` extend `left`.
    pub(super) fn binary(&mut self, min: u8) -> Result<Expr, ScriptError> {
        let mut left = self.unary()?;
        // Each operator in a chain deepens the left-leaning tree by one.
        let entered = self.depth;
        loop {
            if min <= IN_LEVEL && self.peek_keyword("in") {
                self.advance();
                let array = self.name("an array name")?;
                left = Expr {
                    span: left.span.to(array.span),
                    kind: ExprKind::In {
                        keys: vec![left],
                        array,
                    },
                };
                continue;
            }
            let Some((op, level)) = self.binary_operator(min) else {
                break;
            };
            let op_span = self.advance().span;
            self.nest(op_span)?;
            let right = self.binary(level + 1)?;
            left = Expr {
                span: left.span.to(right.span),
                kind: ExprKind::Binary {
                    op,
                    op_span,
                    left: Box::new(left),
                    right: Box::new(right),
                },
            };
        }
        self.depth = entered;
        Ok(left)
    }

    /// The next token if it is a binary operator binding at least as tightly as `min`.
    pub(super) fn binary_operator(&self, min: u8) -> Option<(Op, u8)> {
        match self.peek().kind {
            TokenKind::Op(op) => precedence(op)
                .filter(|&level| level >= min)
                .map(|level| (op, level)),
            _ => None,
        }
    }

    pub(super) fn unary(&mut self) -> Result<Expr, ScriptError> {
        let token = self.peek().clone();
        if let TokenKind::Op(op @ (Op::Incr | Op::Decr)) = token.kind {
            self.advance();
            let target = self.primary()?;
            return self.increment(token.span, target, op, false);
        }
        if token.kind == TokenKind::Op(Op::Amp) {
            match self.tokens.get(self.pos + 1).map(|t| &t.kind) {
                Some(TokenKind::Target(_)) => return self.address_of(),
                Some(TokenKind::Macro(name)) if name == "cast" => return self.address_of(),
                _ => {}
            }
        }
        let op = match token.kind {
            TokenKind::Op(op @ (Op::Minus | Op::Plus | Op::Bang | Op::Tilde)) => op,
            _ => {
                let operand = self.primary()?;
                return self.postfix(operand);
            }
        };
        self.advance();
        self.nest(token.span)?;
        let operand = self.unary();
        self.depth -= 1;
        let operand = operand?;
        Ok(Expr {
            span: token.span.to(operand.span),
            kind: ExprKind::Unary {
                op,
                operand: Box::new(operand),
            },
        })
    }

    pub(super) fn primary(&mut self) -> Result<Expr, ScriptError> {
        let token = self.peek().clone();
        match token.kind {
            TokenKind::Number(n) => {
                self.advance();
                Ok(Expr {
                    kind: ExprKind::Number(n),
                    span: token.span,
                })
            }
            TokenKind::Str(lit) => {
                self.advance();
                let lit = self.adjacent_strings(lit);
                Ok(Expr {
                    kind: ExprKind::Str(lit),
                    span: token.span.to(self.tokens[self.pos - 1].span),
                })
            }
            TokenKind::Op(Op::LParen) => {
                self.advance();
                let inner = self.expression()?;
                let close = self.expect_op(Op::RParen)?;
                Ok(Expr {
                    kind: inner.kind,
                    span: token.span.to(close),
                })
            }
            TokenKind::Ident(name) => {
                self.advance();
                self.check_not_keyword(&name, token.span)?;
                if self.eat_op(Op::LParen) {
                    return self.call(name, token.span);
                }
                let name = Name {
                    name,
                    span: token.span,
                };
                let target = if self.eat_op(Op::LBracket) {
                    let (keys, close) = self.keys(Op::RBracket)?;
                    Expr {
                        span: token.span.to(close),
                        kind: ExprKind::Index { array: name, keys },
                    }
                } else {
                    Expr {
                        kind: ExprKind::Var(name.name),
                        span: token.span,
                    }
                };
                Ok(target)
            }
            TokenKind::Op(Op::LBracket) => {
                self.advance();
                let (keys, _) = self.keys(Op::RBracket)?;
                if !self.peek_keyword("in") {
                    return Err(self.unexpected("'in' after a list of keys"));
                }
                self.advance();
                let array = self.name("an array name")?;
                Ok(Expr {
                    span: token.span.to(array.span),
                    kind: ExprKind::In { keys, array },
                })
            }
            TokenKind::Macro(ref name) if name == "entry" => self.entry(),
            TokenKind::Macro(ref name) if name == "cast" => self.cast(),
            TokenKind::Macro(ref name) if name == "cast_sizeof" => self.cast_sizeof(false),
            TokenKind::Macro(ref name) if name == "cast_module_sizeof" => self.cast_sizeof(true),
            TokenKind::Macro(ref name) if name == "defined" || name == "choose_defined" => {
                self.defined()
            }
            TokenKind::Target(name) => {
                self.advance();
                self.target_steps(Name {
                    name,
                    span: token.span,
                })
            }
            TokenKind::Stat(op) => {
                self.advance();
                self.expect_op(Op::LParen)?;
                let (mut args, close) = self.expression_list(Op::RParen)?;
                if args.is_empty() {
                    return Err(self.error(close, format!("@{op} needs an aggregate")));
                }
                let operand = Box::new(args.remove(0));
                Ok(Expr {
                    span: token.span.to(close),
                    kind: ExprKind::Stat {
                        op,
                        op_span: token.span,
                        operand,
                        args,
                    },
                })
            }
            _ => Err(self.unexpected("an expression")),
        }
    }

    /// `&$var...`, `&@cast(...)->member`. Out of line, as is [`Self::target_steps`], so that the frames of the
    /// recursive descent stay small and deep nesting is refused before the stack runs out.
    #[inline(never)]
    fn address_of(&mut self) -> Result<Expr, ScriptError> {
        let amp = self.advance().span;
        let mut operand = self.primary()?;
        if let ExprKind::Target(target) = &mut operand.kind {
            target.address_of = true;
        }
        operand.span = amp.to(operand.span);
        Ok(operand)
    }

    /// `@entry(expr)`.
    #[inline(never)]
    fn entry(&mut self) -> Result<Expr, ScriptError> {
        let at = self.advance().span;
        self.expect_op(Op::LParen)?;
        let inner = self.expression()?;
        let close = self.expect_op(Op::RParen)?;
        Ok(Expr {
            span: at.to(close),
            kind: ExprKind::Entry(Box::new(inner)),
        })
    }

    /// `@cast(expr, "TYPE"[, "MODULE"])` and the steps after it.
    #[inline(never)]
    fn cast(&mut self) -> Result<Expr, ScriptError> {
        let at = self.advance().span;
        self.expect_op(Op::LParen)?;
        let base = self.expression()?;
        self.expect_op(Op::Comma)?;
        let type_name = self.cast_string("the type to cast to, in quotes")?;
        if self.eat_op(Op::Comma) {
            let module = self.cast_string("the module whose types to use, in quotes")?;
            self.check_cast_module(&module)?;
        }
        let close = self.expect_op(Op::RParen)?;
        let mut span = at.to(close);
        let base = match self.computed_index()? {
            // `@cast(p, "T")[i]`: the cast of the i-th T from p, `@cast(p + i * size, "T")`.
            Some(index) => {
                span = span.to(index.span);
                let scaled = binary(Op::Star, index, type_size(&type_name, span));
                binary(Op::Plus, base, scaled)
            }
            None => base,
        };
        let cast = TargetCast {
            base: CastBase::of(base),
            type_name: bare_type_name(type_name),
        };
        let mut expr = self.target_steps(Name {
            name: "@cast".into(),
            span,
        })?;
        if let ExprKind::Target(target) = &mut expr.kind {
            target.cast = Some(Box::new(cast));
        }
        Ok(expr)
    }

    /// `@cast_sizeof("TYPE"[, "MODULE"])` or `@cast_module_sizeof("MODULE", "TYPE")`: the
    /// size of the type, which is the address of the second element of an array of it at
    /// 0 (`&@cast(0, "TYPE")[1]`), as the kernel's types give it.
    #[inline(never)]
    fn cast_sizeof(&mut self, module_first: bool) -> Result<Expr, ScriptError> {
        let at = self.advance().span;
        self.expect_op(Op::LParen)?;
        let (type_name, module) = if module_first {
            let module = self.cast_string("the module whose types to use, in quotes")?;
            self.expect_op(Op::Comma)?;
            (self.cast_string("the type, in quotes")?, Some(module))
        } else {
            let type_name = self.cast_string("the type, in quotes")?;
            let module = match self.eat_op(Op::Comma) {
                true => Some(self.cast_string("the module whose types to use, in quotes")?),
                false => None,
            };
            (type_name, module)
        };
        if let Some(module) = &module {
            self.check_cast_module(module)?;
        }
        let close = self.expect_op(Op::RParen)?;
        Ok(type_size(&type_name, at.to(close)))
    }

    /// `[expr]` right after a cast, with an index that is not a number: the index, its
    /// span the brackets'.
    fn computed_index(&mut self) -> Result<Option<Expr>, ScriptError> {
        let numbered = matches!(
            (self.tokens.get(self.pos + 1), self.tokens.get(self.pos + 2)),
            (Some(number), Some(close))
                if matches!(number.kind, TokenKind::Number(_))
                    && matches!(close.kind, TokenKind::Op(Op::RBracket))
        );
        if !self.peek_op(Op::LBracket) || numbered {
            return Ok(None);
        }
        let open = self.advance().span;
        let mut index = self.expression()?;
        let close = self.expect_op(Op::RBracket)?;
        index.span = open.to(close);
        Ok(Some(index))
    }

    /// Refuses a module other than the kernel's, whose types rstap has from its BTF:
    /// `kernel`, or `kernel<linux/sched.h>` naming the header of the type.
    fn check_cast_module(&self, module: &Name) -> Result<(), ScriptError> {
        if module.name == "kernel" || module.name.starts_with("kernel<") {
            return Ok(());
        }
        Err(self.error(
            module.span,
            format!(
                "not supported yet: @cast to a type of \"{}\": rstap knows the kernel's \
                 types (\"kernel\"), from its BTF",
                module.name
            ),
        ))
    }

    /// A string literal argument of `@cast`, as a name with its place.
    fn cast_string(&mut self, what: &str) -> Result<Name, ScriptError> {
        let token = self.peek().clone();
        let TokenKind::Str(literal) = token.kind else {
            return Err(self.unexpected(what));
        };
        self.advance();
        let literal = self.adjacent_strings(literal);
        Ok(Name {
            name: String::from_utf8_lossy(&literal.value).into_owned(),
            span: token.span,
        })
    }

    /// `@defined(expr)`, or `@choose_defined(a, b)`, which is `@defined(a) ? a : b`.
    #[inline(never)]
    fn defined(&mut self) -> Result<Expr, ScriptError> {
        let at = self.advance().span;
        let choose = matches!(&self.tokens[self.pos - 1].kind, TokenKind::Macro(name) if name == "choose_defined");
        self.expect_op(Op::LParen)?;
        let first = self.expression()?;
        let second = if choose {
            self.expect_op(Op::Comma)?;
            Some(self.expression()?)
        } else {
            None
        };
        let close = self.expect_op(Op::RParen)?;
        let span = at.to(close);
        let defined = Expr {
            span,
            kind: ExprKind::Defined(Box::new(first.clone())),
        };
        Ok(match second {
            None => defined,
            Some(otherwise) => Expr {
                span,
                kind: ExprKind::Ternary {
                    condition: Box::new(defined),
                    then: Box::new(first),
                    otherwise: Box::new(otherwise),
                },
            },
        })
    }

    /// The `->member` and `[index]` steps after the target variable `name`.
    #[inline(never)]
    fn target_steps(&mut self, name: Name) -> Result<Expr, ScriptError> {
        let mut span = name.span;
        let mut steps = Vec::new();
        loop {
            if self.eat_op(Op::Arrow) {
                // A member may be named as a keyword of the language is (`$p->next`).
                let (member, member_span) = self.expect_ident("a member name after '->'")?;
                let member = Name {
                    name: member,
                    span: member_span,
                };
                span = span.to(member.span);
                steps.push(TargetStep::Member(member));
            } else if self.peek_op(Op::LBracket) {
                let open = self.advance().span;
                let index = match self.peek().kind {
                    TokenKind::Number(index) => index,
                    _ => {
                        return Err(self.error(
                            self.peek().span,
                            "not supported yet: an index into kernel data that is not a number",
                        ))
                    }
                };
                self.advance();
                let close = self.expect_op(Op::RBracket)?;
                span = span.to(close);
                steps.push(TargetStep::Index {
                    index,
                    span: open.to(close),
                });
            } else {
                break;
            }
        }
        Ok(Expr {
            span,
            kind: ExprKind::Target(TargetExpr {
                name,
                steps,
                address_of: false,
                cast: None,
            }),
        })
    }

    /// A string literal and those right after it, joined: `"a" "b"` is `"ab"`, as in C.
    pub(super) fn adjacent_strings(&mut self, mut lit: StringLit) -> StringLit {
        while let TokenKind::Str(next) = &self.peek().kind {
            lit.value.extend_from_slice(&next.value);
            lit.escaped.extend_from_slice(&next.escaped);
            self.advance();
        }
        lit
    }

    /// The error for `->` after something other than a target variable.
    #[inline(never)]
    fn arrow_on_a_value(&self, operand: &Expr) -> ScriptError {
        let what = match &operand.kind {
            ExprKind::Var(name) => format!("the script variable '{name}'"),
            _ => "a value the script computed".to_string(),
        };
        self.error(
            self.peek().span,
            format!(
                "not supported yet: `->` on {what}: rstap reads members of target variables \
                 ($var->member), and does not carry their type into script variables as \
                 SystemTap does"
            ),
        )
    }

    /// `operand`, or `operand++` / `operand--`.
    pub(super) fn postfix(&mut self, operand: Expr) -> Result<Expr, ScriptError> {
        if self.peek_op(Op::Arrow) {
            return Err(self.arrow_on_a_value(&operand));
        }
        let TokenKind::Op(op @ (Op::Incr | Op::Decr)) = self.peek().kind else {
            return Ok(operand);
        };
        let at = self.advance().span;
        let start = operand.span;
        let mut expr = self.increment(at, operand, op, true)?;
        expr.span = start.to(at);
        Ok(expr)
    }

    /// `++` or `--` applied to `target`, which must be a variable or an array element.
    pub(super) fn increment(
        &mut self,
        at: Span,
        target: Expr,
        op: Op,
        postfix: bool,
    ) -> Result<Expr, ScriptError> {
        if !matches!(target.kind, ExprKind::Var(_) | ExprKind::Index { .. }) {
            return Err(self.error(
                at,
                format!("'{}' applies to a variable or an array element", op.text()),
            ));
        }
        Ok(Expr {
            span: at.to(target.span),
            kind: ExprKind::Increment {
                target: Box::new(target),
                delta: if op == Op::Incr { 1 } else { -1 },
                postfix,
            },
        })
    }

    /// A comma-separated list of expressions up to `close`, which is consumed.
    pub(super) fn expression_list(&mut self, close: Op) -> Result<(Vec<Expr>, Span), ScriptError> {
        let mut items = Vec::new();
        if !self.peek_op(close) {
            loop {
                items.push(self.expression()?);
                if !self.eat_op(Op::Comma) {
                    break;
                }
            }
        }
        Ok((items, self.expect_op(close)?))
    }

    /// The keys of an array element, up to `close`: at least one, each an expression or a
    /// `*` that stands for any key.
    pub(super) fn keys(&mut self, close: Op) -> Result<(Vec<Expr>, Span), ScriptError> {
        let mut keys = Vec::new();
        loop {
            let star = self.peek().span;
            let any = self.peek_op(Op::Star)
                && matches!(
                    self.tokens.get(self.pos + 1).map(|t| &t.kind),
                    Some(TokenKind::Op(op)) if *op == Op::Comma || *op == close
                );
            keys.push(if any {
                self.advance();
                Expr {
                    kind: ExprKind::AnyKey,
                    span: star,
                }
            } else if self.peek_op(close) {
                return Err(self.error(star, "an array element needs at least one key"));
            } else {
                self.expression()?
            });
            if !self.eat_op(Op::Comma) {
                break;
            }
        }
        Ok((keys, self.expect_op(close)?))
    }

    pub(super) fn call(&mut self, name: String, name_span: Span) -> Result<Expr, ScriptError> {
        let (args, close) = self.expression_list(Op::RParen)?;
        Ok(Expr {
            kind: ExprKind::Call {
                name,
                name_span,
                args,
            },
            span: name_span.to(close),
        })
    }

    pub(super) fn check_not_keyword(&self, name: &str, span: Span) -> Result<(), ScriptError> {
        if KEYWORDS.contains(&name) {
            Err(self.error(
                span,
                format!("'{name}' is a keyword and cannot be used here"),
            ))
        } else {
            Ok(())
        }
    }
}

/// The type a cast names, without the `struct ` or `union ` BTF does not need.
fn bare_type_name(type_name: Name) -> Name {
    let bare = type_name
        .name
        .strip_prefix("struct ")
        .or_else(|| type_name.name.strip_prefix("union "))
        .unwrap_or(&type_name.name)
        .trim()
        .to_string();
    Name {
        name: bare,
        span: type_name.span,
    }
}

/// The size of the kernel's type `type_name`: the address of the second element of an
/// array of it at 0 (`&@cast(0, "TYPE")[1]`).
fn type_size(type_name: &Name, span: Span) -> Expr {
    let zero = Expr {
        kind: ExprKind::Number(0),
        span,
    };
    let cast = TargetCast {
        base: CastBase::of(zero),
        type_name: bare_type_name(type_name.clone()),
    };
    Expr {
        kind: ExprKind::Target(TargetExpr {
            name: Name {
                name: "@cast".into(),
                span,
            },
            steps: vec![TargetStep::Index { index: 1, span }],
            address_of: true,
            cast: Some(Box::new(cast)),
        }),
        span,
    }
}

fn binary(op: Op, left: Expr, right: Expr) -> Expr {
    let span = left.span.to(right.span);
    Expr {
        kind: ExprKind::Binary {
            op,
            op_span: span,
            left: Box::new(left),
            right: Box::new(right),
        },
        span,
    }
}
