//! Parsing statements: blocks, `if`, the loops (`foreach` with its sort marks and
//! slices), and the rest.

use super::*;

impl Parser<'_> {
    pub(super) fn block(&mut self) -> Result<Block, ScriptError> {
        let open = self.expect_op(Op::LBrace)?;
        self.nest(open)?;
        let mut statements = Vec::new();
        while !self.peek_op(Op::RBrace) {
            if self.peek().kind == TokenKind::Eof {
                return Err(self.error(open, "this '{' is never closed"));
            }
            statements.push(self.statement()?);
        }
        let close = self.advance().span;
        self.depth -= 1;
        Ok(Block {
            statements,
            span: open.to(close),
        })
    }

    pub(super) fn statement(&mut self) -> Result<Stmt, ScriptError> {
        let start = self.peek().span;
        if self.peek_op(Op::LBrace) {
            return Ok(Stmt::Block(self.block()?));
        }
        if self.eat_op(Op::Semi) {
            return Ok(Stmt::Empty(start));
        }
        if self.peek_keyword("next") {
            self.advance();
            return Ok(Stmt::Next(start));
        }
        if self.peek_keyword("if") {
            return self.if_statement();
        }
        for (word, simple) in [
            ("break", Stmt::Break as fn(Span) -> Stmt),
            ("continue", Stmt::Continue),
        ] {
            if self.peek_keyword(word) {
                self.advance();
                return Ok(simple(start));
            }
        }
        if self.peek_keyword("while") {
            return self.while_statement();
        }
        if self.peek_keyword("for") {
            return self.for_statement();
        }
        if self.peek_keyword("foreach") {
            return self.foreach_statement();
        }
        if self.peek_keyword("delete") {
            self.advance();
            return Ok(Stmt::Delete(self.expression()?));
        }
        if self.peek_keyword("try") {
            self.advance();
            let body = self.block()?;
            if !self.peek_keyword("catch") {
                return Err(self.unexpected("'catch' after a try block"));
            }
            self.advance();
            let message = if self.eat_op(Op::LParen) {
                let name = self.name("a variable for the error message")?;
                self.expect_op(Op::RParen)?;
                Some(name)
            } else {
                None
            };
            let handler = self.block()?;
            return Ok(Stmt::Try {
                body,
                message,
                handler,
                span: self.end_of(start),
            });
        }
        if self.peek_keyword("return") {
            self.advance();
            // A value follows unless the statement ends here.
            let ends = self.peek_op(Op::Semi)
                || self.peek_op(Op::RBrace)
                || self.peek().kind == TokenKind::Eof;
            let value = if ends { None } else { Some(self.expression()?) };
            return Ok(Stmt::Return(value, self.end_of(start)));
        }
        if let TokenKind::Ident(word) = &self.peek().kind {
            if KEYWORDS.contains(&word.as_str()) {
                return Err(self.error(start, format!("'{word}' is not supported here")));
            }
        }
        Ok(Stmt::Expr(self.expression()?))
    }

    pub(super) fn if_statement(&mut self) -> Result<Stmt, ScriptError> {
        let start = self.advance().span;
        self.nest(start)?;
        self.expect_op(Op::LParen)?;
        let condition = self.expression()?;
        self.expect_op(Op::RParen)?;
        let then = Box::new(self.statement()?);
        // `if (c) f(); else g()`: SystemTap takes the `;` that ends the statement.
        let else_after_semicolon = matches!(
            self.tokens.get(self.pos + 1).map(|t| &t.kind),
            Some(TokenKind::Ident(word)) if word == "else"
        );
        if self.peek_op(Op::Semi) && else_after_semicolon {
            self.advance();
        }
        let otherwise = if self.peek_keyword("else") {
            self.advance();
            Some(Box::new(self.statement()?))
        } else {
            None
        };
        self.depth -= 1;
        let end = self.tokens[self.pos.saturating_sub(1)].span;
        Ok(Stmt::If {
            condition,
            then,
            otherwise,
            span: start.to(end),
        })
    }

    /// The body of a loop, one nesting level down.
    pub(super) fn nested_statement(&mut self, at: Span) -> Result<Box<Stmt>, ScriptError> {
        self.nest(at)?;
        let body = self.statement();
        self.depth -= 1;
        Ok(Box::new(body?))
    }

    pub(super) fn end_of(&self, start: Span) -> Span {
        start.to(self.tokens[self.pos.saturating_sub(1)].span)
    }

    pub(super) fn while_statement(&mut self) -> Result<Stmt, ScriptError> {
        let start = self.advance().span;
        self.expect_op(Op::LParen)?;
        let condition = self.expression()?;
        self.expect_op(Op::RParen)?;
        let body = self.nested_statement(start)?;
        Ok(Stmt::While {
            condition,
            body,
            span: self.end_of(start),
        })
    }

    pub(super) fn for_statement(&mut self) -> Result<Stmt, ScriptError> {
        let start = self.advance().span;
        self.expect_op(Op::LParen)?;
        let clause = |parser: &mut Self, end: Op| -> Result<Option<Expr>, ScriptError> {
            let expr = if parser.peek_op(end) {
                None
            } else {
                Some(parser.expression()?)
            };
            parser.expect_op(end)?;
            Ok(expr)
        };
        let init = clause(self, Op::Semi)?;
        let condition = clause(self, Op::Semi)?;
        let step = clause(self, Op::RParen)?;
        let body = self.nested_statement(start)?;
        Ok(Stmt::For {
            init,
            condition,
            step,
            body,
            span: self.end_of(start),
        })
    }

    /// `foreach ([v =] KEYS in ARRAY [+|-] [limit N]) BODY`, KEYS being one name or
    /// `[k1, k2, ...]`, any of which (or the array) may carry the sort order.
    pub(super) fn foreach_statement(&mut self) -> Result<Stmt, ScriptError> {
        let start = self.advance().span;
        self.expect_op(Op::LParen)?;
        let mut sort = None;
        let mut value = None;
        let mut keys = Vec::new();
        let bracketed = |parser: &Self| parser.peek_op(Op::LBracket);
        if !bracketed(self) {
            let first = self.name("a key variable")?;
            if self.eat_op(Op::Assign) {
                value = Some(first);
            } else {
                keys.push(first);
                self.sort_mark(SortBy::Key(0), &mut sort)?;
            }
        }
        if keys.is_empty() {
            if self.eat_op(Op::LBracket) {
                loop {
                    keys.push(self.name("a key variable")?);
                    self.sort_mark(SortBy::Key(keys.len() - 1), &mut sort)?;
                    if !self.eat_op(Op::Comma) {
                        break;
                    }
                }
                self.expect_op(Op::RBracket)?;
            } else {
                keys.push(self.name("a key variable")?);
                self.sort_mark(SortBy::Key(0), &mut sort)?;
            }
        }
        if !self.peek_keyword("in") {
            return Err(self.unexpected("'in'"));
        }
        self.advance();
        let array = self.name("an array name")?;
        // `in a[k, *]`: only the elements whose keys match those given.
        let slice = if self.eat_op(Op::LBracket) {
            Some(self.keys(Op::RBracket)?.0)
        } else {
            None
        };
        let sort_figure = match &self.peek().kind {
            TokenKind::Stat(op) => {
                let name = op.clone();
                let span = self.advance().span;
                Some(Name { name, span })
            }
            _ => None,
        };
        self.sort_mark(SortBy::Value, &mut sort)?;
        let limit = if self.peek_keyword("limit") {
            self.advance();
            Some(self.expression()?)
        } else {
            None
        };
        self.expect_op(Op::RParen)?;
        let body = *self.nested_statement(start)?;
        Ok(Stmt::Foreach(Box::new(Foreach {
            value,
            keys,
            array,
            slice,
            sort_figure,
            sort,
            limit,
            body,
            span: self.end_of(start),
        })))
    }

    /// A `+` or `-` giving foreach's order; SystemTap allows one per loop.
    pub(super) fn sort_mark(
        &mut self,
        by: SortBy,
        sort: &mut Option<Sort>,
    ) -> Result<(), ScriptError> {
        let span = self.peek().span;
        let descending = match self.peek().kind {
            TokenKind::Op(Op::Plus) => false,
            TokenKind::Op(Op::Minus) => true,
            _ => return Ok(()),
        };
        self.advance();
        if sort.is_some() {
            return Err(self.error(span, "a foreach loop can be sorted by one thing only"));
        }
        *sort = Some(Sort {
            by,
            descending,
            span,
        });
        Ok(())
    }

    pub(super) fn name(&mut self, what: &str) -> Result<Name, ScriptError> {
        let (name, span) = self.expect_ident(what)?;
        self.check_not_keyword(&name, span)?;
        Ok(Name { name, span })
    }
}
