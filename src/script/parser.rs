//! Recursive-descent parser from tokens to the [`ast`](super::ast). Operator precedence and
//! associativity follow SystemTap's grammar; statements need no separator, and `;` is an
//! optional one, so newlines separate statements as well.

use super::ast::{
    ArrayDecl, Block, Expr, ExprKind, Foreach, Function, GlobalDecl, Name, PointArg,
    PointComponent, PointSyntax, Probe, Script, Sort, SortBy, Stmt, TypeName,
};
use super::lexer::{tokenize, Op, StringLit, Token, TokenKind};
use super::preprocess::{preprocess, Facts};
use super::source::{ScriptError, SourceMap, Span};

/// Deeper nesting of expressions or statements is refused, so that neither the parser nor
/// the passes walking the tree after it can overflow the stack on hostile input.
pub const MAX_NESTING: usize = 100;

/// Words of the language that cannot name a variable or function.
pub(super) const KEYWORDS: &[&str] = &[
    "probe", "global", "function", "if", "else", "next", "for", "foreach", "while", "in", "return",
    "break", "continue", "delete", "try", "catch", "private",
];

/// Parses every file of the map into one script, in the map's order. A file with a
/// construct rstap refuses stops there; otherwise every declaration that fails to parse
/// gives its error, and parsing goes on at the next.
pub fn parse(source: &SourceMap, args: &[String]) -> Result<Script, ScriptError> {
    let facts = Facts::of_this_system();
    let mut script = Script {
        globals: Vec::new(),
        probes: Vec::new(),
        functions: Vec::new(),
    };
    let mut errors = Vec::new();
    for (file, _) in source.files() {
        let tokens = preprocess(source, tokenize(source, file, args)?, &facts)?;
        if let Some(refused) = tokens.iter().find_map(|token| match &token.kind {
            TokenKind::Refused(message) => Some(ScriptError::at(source, token.span, message)),
            _ => None,
        }) {
            return Err(refused);
        }
        let parser = Parser {
            source,
            tokens,
            pos: 0,
            depth: 0,
        };
        errors.extend(parser.declarations(&mut script));
    }
    match ScriptError::several(errors) {
        Some(errors) => Err(errors),
        None => Ok(script),
    }
}

struct Parser<'a> {
    source: &'a SourceMap,
    tokens: Vec<Token>,
    pos: usize,
    /// An upper bound on the depth of the tree being built at this point.
    depth: usize,
}

/// One probe point spelled out of a group, with the marks its members carried.
#[derive(Default)]
struct Chain {
    components: Vec<PointComponent>,
    optional: bool,
    sufficient: bool,
}

/// Binding strength of binary operators, from loosest (`||`) to tightest (`*`), as in
/// SystemTap's grammar; all are left-associative.
fn precedence(op: Op) -> Option<u8> {
    Some(match op {
        Op::OrOr => 0,
        Op::AndAnd => 1,
        Op::Pipe => 2,
        Op::Caret => 3,
        Op::Amp => 4,
        // IN_LEVEL (5): `key in array`.
        Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Match | Op::NotMatch => 6,
        Op::Shl | Op::Shr => 7,
        Op::Dot => 8,
        Op::Plus | Op::Minus => 9,
        Op::Star | Op::Slash | Op::Percent => 10,
        _ => return None,
    })
}

/// Where `in` binds: looser than comparisons, tighter than `&`.
const IN_LEVEL: u8 = 5;

/// The assignment operators, plain and compound.
const ASSIGNMENTS: &[Op] = &[
    Op::Assign,
    Op::AddAssign,
    Op::SubAssign,
    Op::MulAssign,
    Op::DivAssign,
    Op::ModAssign,
    Op::ShlAssign,
    Op::ShrAssign,
    Op::AndAssign,
    Op::OrAssign,
    Op::XorAssign,
    Op::DotAssign,
];

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.pos].clone();
        if token.kind != TokenKind::Eof {
            self.pos += 1;
        }
        token
    }

    fn peek_op(&self, op: Op) -> bool {
        self.peek().kind == TokenKind::Op(op)
    }

    fn eat_op(&mut self, op: Op) -> bool {
        let found = self.peek_op(op);
        if found {
            self.pos += 1;
        }
        found
    }

    fn peek_keyword(&self, word: &str) -> bool {
        matches!(&self.peek().kind, TokenKind::Ident(name) if name == word)
    }

    fn error(&self, span: Span, message: impl Into<String>) -> ScriptError {
        ScriptError::at(self.source, span, message)
    }

    fn unexpected(&self, wanted: &str) -> ScriptError {
        let token = self.peek();
        let found = match &token.kind {
            TokenKind::Eof => "end of input".to_string(),
            TokenKind::Ident(name) => format!("'{name}'"),
            TokenKind::Number(_) => "a number".to_string(),
            TokenKind::Str(_) => "a string".to_string(),
            TokenKind::Op(op) => format!("'{}'", op.text()),
            TokenKind::Stat(op) => format!("'@{op}'"),
            TokenKind::Conditional(_) | TokenKind::Refused(_) | TokenKind::Macro(_) => {
                self.source.slice(token.span).to_string()
            }
        };
        self.error(token.span, format!("expected {wanted}, found {found}"))
    }

    fn expect_op(&mut self, op: Op) -> Result<Span, ScriptError> {
        if self.peek_op(op) {
            Ok(self.advance().span)
        } else {
            Err(self.unexpected(&format!("'{}'", op.text())))
        }
    }

    /// A probe point component's name: a word, or words and `*` wildcards written
    /// together (`*`, `sys*`, `*execve`).
    fn point_component_name(&mut self) -> Result<(String, Span), ScriptError> {
        let start = self.peek().span;
        let mut name = String::new();
        let mut span = start;
        loop {
            let token = self.peek();
            let adjacent = name.is_empty() || token.span.start == span.end;
            match &token.kind {
                TokenKind::Ident(word) if adjacent => name.push_str(word),
                TokenKind::Op(Op::Star) if adjacent => name.push('*'),
                _ if name.is_empty() => return Err(self.unexpected("a probe point")),
                _ => return Ok((name, span)),
            }
            span = start.to(self.advance().span);
        }
    }

    fn expect_ident(&mut self, what: &str) -> Result<(String, Span), ScriptError> {
        match &self.peek().kind {
            TokenKind::Ident(name) => {
                let name = name.clone();
                Ok((name, self.advance().span))
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn nest(&mut self, at: Span) -> Result<(), ScriptError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error(
                at,
                format!("nesting is deeper than {MAX_NESTING} levels; simplify this expression or block"),
            ));
        }
        Ok(())
    }

    /// The file's declarations, added to `script`; the errors of those that fail.
    fn declarations(mut self, script: &mut Script) -> Vec<ScriptError> {
        let mut errors = Vec::new();
        loop {
            if self.peek().kind == TokenKind::Eof {
                return errors;
            }
            if self.eat_op(Op::Semi) {
                continue;
            }
            let start = self.pos;
            if let Err(error) = self.declaration(script) {
                errors.push(error);
                self.depth = 0;
                self.skip_to_next_declaration(start);
            }
        }
    }

    fn declaration(&mut self, script: &mut Script) -> Result<(), ScriptError> {
        // `private` limits a tapset's name to its file: one file here, nothing to limit.
        if self.peek_keyword("private") {
            self.advance();
        }
        if self.peek_keyword("probe") {
            self.advance();
            script.probes.push(self.probe()?);
        } else if self.peek_keyword("function") {
            self.advance();
            script.functions.push(self.function()?);
        } else if self.peek_keyword("global") {
            self.advance();
            self.globals(&mut script.globals)?;
        } else {
            return Err(self.unexpected("'probe', 'global' or 'function'"));
        }
        Ok(())
    }

    /// After a declaration that failed: on to the next word that starts one, which cannot
    /// appear inside a declaration, past the failed one's first token.
    fn skip_to_next_declaration(&mut self, failed_at: usize) {
        self.pos = self.pos.max(failed_at + 1).min(self.tokens.len() - 1);
        while self.peek().kind != TokenKind::Eof
            && !["probe", "function", "global", "private"]
                .iter()
                .any(|word| self.peek_keyword(word))
        {
            self.pos += 1;
        }
    }

    fn globals(&mut self, into: &mut Vec<GlobalDecl>) -> Result<(), ScriptError> {
        loop {
            let (name, span) = self.expect_ident("a global variable name")?;
            self.check_not_keyword(&name, span)?;
            let array = self.array_decl()?;
            let init = if array.is_none() && self.eat_op(Op::Assign) {
                Some(self.literal()?)
            } else {
                None
            };
            into.push(GlobalDecl {
                name,
                span,
                init,
                array,
            });
            if !self.eat_op(Op::Comma) {
                return Ok(());
            }
        }
    }

    fn function(&mut self) -> Result<Function, ScriptError> {
        let name = self.name("a function name")?;
        let returns = self.type_annotation()?;
        self.expect_op(Op::LParen)?;
        let mut params = Vec::new();
        if !self.peek_op(Op::RParen) {
            loop {
                let param = self.name("a parameter name")?;
                params.push((param, self.type_annotation()?));
                if !self.eat_op(Op::Comma) {
                    break;
                }
            }
        }
        self.expect_op(Op::RParen)?;
        let body = self.block()?;
        Ok(Function {
            name,
            returns,
            params,
            body,
        })
    }

    /// `:long` or `:string` after a function or parameter name.
    fn type_annotation(&mut self) -> Result<Option<TypeName>, ScriptError> {
        if !self.eat_op(Op::Colon) {
            return Ok(None);
        }
        let (word, span) = self.expect_ident("a type, long or string")?;
        match word.as_str() {
            "long" => Ok(Some(TypeName::Long)),
            "string" => Ok(Some(TypeName::Str)),
            _ => Err(self.error(
                span,
                format!("unknown type '{word}'; expected long or string"),
            )),
        }
    }

    /// After a global's name: `[N]`, `%[N]` or `%`, which make it an array.
    fn array_decl(&mut self) -> Result<Option<ArrayDecl>, ScriptError> {
        let wraps = self.eat_op(Op::Percent);
        if !self.eat_op(Op::LBracket) {
            return Ok(wraps.then_some(ArrayDecl { size: None, wraps }));
        }
        let token = self.advance();
        let TokenKind::Number(size) = token.kind else {
            return Err(self.error(token.span, "expected the array's size, a number"));
        };
        if size <= 0 {
            return Err(self.error(token.span, "an array's size must be at least 1"));
        }
        self.expect_op(Op::RBracket)?;
        Ok(Some(ArrayDecl {
            size: Some(size),
            wraps,
        }))
    }

    /// A global's initial value: a number (possibly negated) or a string.
    fn literal(&mut self) -> Result<Expr, ScriptError> {
        let start = self.peek().span;
        let negate = self.eat_op(Op::Minus);
        let token = self.advance();
        let kind = match token.kind {
            TokenKind::Number(n) if negate => ExprKind::Number(n.wrapping_neg()),
            TokenKind::Number(n) => ExprKind::Number(n),
            TokenKind::Str(s) if !negate => ExprKind::Str(self.adjacent_strings(s)),
            _ => {
                return Err(self.error(token.span, "expected a literal number or string"));
            }
        };
        Ok(Expr {
            kind,
            span: start.to(token.span),
        })
    }

    fn probe(&mut self) -> Result<Probe, ScriptError> {
        let mut points = self.probe_point()?;
        while self.eat_op(Op::Comma) {
            points.extend(self.probe_point()?);
        }
        if self.peek_keyword("if") {
            return Err(self.error(
                self.peek().span,
                "not supported yet: conditional probes (`probe POINT if (CONDITION)`)",
            ));
        }
        if self.peek_op(Op::Assign) || self.peek_op(Op::AddAssign) {
            return Err(self.error(
                self.peek().span,
                "not supported yet: probe aliases (`probe NAME = POINT { ... }`)",
            ));
        }
        let body = self.block()?;
        Ok(Probe { points, body })
    }

    /// One probe point as written, which a group (`kernel.{function("a"), function("b")}`)
    /// makes several.
    fn probe_point(&mut self) -> Result<Vec<PointSyntax>, ScriptError> {
        let start = self.peek().span;
        let (chains, grouped) = self.point_chain()?;
        let span = start.to(self.tokens[self.pos.saturating_sub(1)].span);
        let (optional, sufficient) = self.point_marks();
        Ok(chains
            .into_iter()
            .map(|chain| PointSyntax {
                components: chain.components,
                span,
                optional: optional || chain.optional,
                sufficient: sufficient || chain.sufficient,
                grouped,
            })
            .collect())
    }

    /// `!` or `?` after a point: whether it is optional, and sufficient.
    fn point_marks(&mut self) -> (bool, bool) {
        let sufficient = self.eat_op(Op::Bang);
        (sufficient || self.eat_op(Op::Question), sufficient)
    }

    /// Dotted components, each a name with an optional argument or a `{...}` group of
    /// alternatives: every chain they spell, and whether a group was among them.
    fn point_chain(&mut self) -> Result<(Vec<Chain>, bool), ScriptError> {
        let mut chains = vec![Chain::default()];
        let mut grouped = false;
        loop {
            let at = self.peek().span;
            if self.eat_op(Op::LBrace) {
                self.nest(at)?;
                grouped = true;
                let mut group = Vec::new();
                loop {
                    let (mut members, _) = self.point_chain()?;
                    // Marks on a member: `kernel.{trace("a")!, trace("b")}`.
                    let (optional, sufficient) = self.point_marks();
                    for member in &mut members {
                        member.optional |= optional;
                        member.sufficient |= sufficient;
                    }
                    group.extend(members);
                    if !self.eat_op(Op::Comma) {
                        break;
                    }
                }
                self.expect_op(Op::RBrace)?;
                self.depth -= 1;
                chains = chains
                    .iter()
                    .flat_map(|prefix| {
                        group.iter().map(move |alternative| Chain {
                            components: prefix
                                .components
                                .iter()
                                .chain(&alternative.components)
                                .cloned()
                                .collect(),
                            optional: prefix.optional || alternative.optional,
                            sufficient: prefix.sufficient || alternative.sufficient,
                        })
                    })
                    .collect();
            } else {
                let component = self.point_component()?;
                for chain in &mut chains {
                    chain.components.push(component.clone());
                }
            }
            if !self.eat_op(Op::Dot) {
                return Ok((chains, grouped));
            }
        }
    }

    fn point_component(&mut self) -> Result<PointComponent, ScriptError> {
        let (name, name_span) = self.point_component_name()?;
        let mut span = name_span;
        let argument = if self.eat_op(Op::LParen) {
            let negative = self.eat_op(Op::Minus);
            let token = self.advance();
            let argument = match token.kind {
                TokenKind::Str(lit) if !negative => PointArg::Str(self.adjacent_strings(lit)),
                TokenKind::Number(n) if negative => PointArg::Number(n.wrapping_neg()),
                TokenKind::Number(n) => PointArg::Number(n),
                _ => return Err(self.error(token.span, "expected a string in quotes or a number")),
            };
            span = span.to(self.expect_op(Op::RParen)?);
            Some(argument)
        } else {
            None
        };
        Ok(PointComponent {
            name,
            argument,
            span,
        })
    }

    fn block(&mut self) -> Result<Block, ScriptError> {
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

    fn statement(&mut self) -> Result<Stmt, ScriptError> {
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

    fn if_statement(&mut self) -> Result<Stmt, ScriptError> {
        let start = self.advance().span;
        self.nest(start)?;
        self.expect_op(Op::LParen)?;
        let condition = self.expression()?;
        self.expect_op(Op::RParen)?;
        let then = Box::new(self.statement()?);
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
    fn nested_statement(&mut self, at: Span) -> Result<Box<Stmt>, ScriptError> {
        self.nest(at)?;
        let body = self.statement();
        self.depth -= 1;
        Ok(Box::new(body?))
    }

    fn end_of(&self, start: Span) -> Span {
        start.to(self.tokens[self.pos.saturating_sub(1)].span)
    }

    fn while_statement(&mut self) -> Result<Stmt, ScriptError> {
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

    fn for_statement(&mut self) -> Result<Stmt, ScriptError> {
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
    fn foreach_statement(&mut self) -> Result<Stmt, ScriptError> {
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
            let mut slice = Vec::new();
            loop {
                slice.push(if self.eat_op(Op::Star) {
                    None
                } else {
                    Some(self.expression()?)
                });
                if !self.eat_op(Op::Comma) {
                    break;
                }
            }
            self.expect_op(Op::RBracket)?;
            Some(slice)
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
    fn sort_mark(&mut self, by: SortBy, sort: &mut Option<Sort>) -> Result<(), ScriptError> {
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

    fn name(&mut self, what: &str) -> Result<Name, ScriptError> {
        let (name, span) = self.expect_ident(what)?;
        self.check_not_keyword(&name, span)?;
        Ok(Name { name, span })
    }

    fn expression(&mut self) -> Result<Expr, ScriptError> {
        let at = self.peek().span;
        self.nest(at)?;
        let result = self.assignment();
        self.depth -= 1;
        result
    }

    fn assignment(&mut self) -> Result<Expr, ScriptError> {
        let target = self.ternary()?;
        let op = match self.peek().kind {
            TokenKind::Op(op) if ASSIGNMENTS.contains(&op) || op == Op::Aggregate => op,
            _ => return Ok(target),
        };
        let op_span = self.advance().span;
        if !matches!(target.kind, ExprKind::Var(_) | ExprKind::Index { .. }) {
            return Err(self.error(
                op_span,
                format!(
                    "the left side of '{}' must be a variable or an array element",
                    op.text()
                ),
            ));
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

    fn ternary(&mut self) -> Result<Expr, ScriptError> {
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
    fn binary(&mut self, min: u8) -> Result<Expr, ScriptError> {
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
    fn binary_operator(&self, min: u8) -> Option<(Op, u8)> {
        match self.peek().kind {
            TokenKind::Op(op) => precedence(op)
                .filter(|&level| level >= min)
                .map(|level| (op, level)),
            _ => None,
        }
    }

    fn unary(&mut self) -> Result<Expr, ScriptError> {
        let token = self.peek().clone();
        if let TokenKind::Op(op @ (Op::Incr | Op::Decr)) = token.kind {
            self.advance();
            let target = self.primary()?;
            return self.increment(token.span, target, op, false);
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

    fn primary(&mut self) -> Result<Expr, ScriptError> {
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
                    let (keys, close) = self.expression_list(Op::RBracket)?;
                    if keys.is_empty() {
                        return Err(self.error(close, "an array element needs at least one key"));
                    }
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
                let (keys, close) = self.expression_list(Op::RBracket)?;
                if keys.is_empty() {
                    return Err(self.error(close, "an array element needs at least one key"));
                }
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

    /// A string literal and those right after it, joined: `"a" "b"` is `"ab"`, as in C.
    fn adjacent_strings(&mut self, mut lit: StringLit) -> StringLit {
        while let TokenKind::Str(next) = &self.peek().kind {
            lit.value.extend_from_slice(&next.value);
            lit.escaped.extend_from_slice(&next.escaped);
            self.advance();
        }
        lit
    }

    /// `operand`, or `operand++` / `operand--`.
    fn postfix(&mut self, operand: Expr) -> Result<Expr, ScriptError> {
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
    fn increment(
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
    fn expression_list(&mut self, close: Op) -> Result<(Vec<Expr>, Span), ScriptError> {
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

    fn call(&mut self, name: String, name_span: Span) -> Result<Expr, ScriptError> {
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

    fn check_not_keyword(&self, name: &str, span: Span) -> Result<(), ScriptError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Script, ScriptError> {
        parse(
            &SourceMap::of_script(crate::script::SourceFile::new("t.stp", text)),
            &[],
        )
    }

    fn body_expr(text: &str) -> Expr {
        let script = parse_text(&format!("probe begin {{ {text} }}")).unwrap();
        match &script.probes[0].body.statements[0] {
            Stmt::Expr(e) => e.clone(),
            other => panic!("not an expression statement: {other:?}"),
        }
    }

    /// Renders the tree with full parentheses, to check precedence and associativity.
    fn shape(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Number(n) => n.to_string(),
            ExprKind::Str(s) => format!("{:?}", String::from_utf8_lossy(&s.value)),
            ExprKind::Var(v) => v.clone(),
            ExprKind::Call { name, args, .. } => format!(
                "{name}({})",
                args.iter().map(shape).collect::<Vec<_>>().join(",")
            ),
            ExprKind::Unary { op, operand } => format!("({}{})", op.text(), shape(operand)),
            ExprKind::Binary {
                op, left, right, ..
            } => format!("({} {} {})", shape(left), op.text(), shape(right)),
            ExprKind::Ternary {
                condition,
                then,
                otherwise,
            } => format!(
                "({} ? {} : {})",
                shape(condition),
                shape(then),
                shape(otherwise)
            ),
            ExprKind::Assign {
                op, target, value, ..
            } => format!("({} {} {})", shape(target), op.text(), shape(value)),
            ExprKind::Index { array, keys } => format!(
                "{}[{}]",
                array.name,
                keys.iter().map(shape).collect::<Vec<_>>().join(",")
            ),
            ExprKind::In { keys, array } => format!(
                "([{}] in {})",
                keys.iter().map(shape).collect::<Vec<_>>().join(","),
                array.name
            ),
            ExprKind::Increment {
                target,
                delta,
                postfix,
            } => {
                let op = if *delta > 0 { "++" } else { "--" };
                if *postfix {
                    format!("({}{op})", shape(target))
                } else {
                    format!("({op}{})", shape(target))
                }
            }
            ExprKind::Aggregate { target, value } => {
                format!("({} <<< {})", shape(target), shape(value))
            }
            ExprKind::Stat {
                op, operand, args, ..
            } => format!(
                "@{op}({})",
                std::iter::once(operand.as_ref())
                    .chain(args)
                    .map(shape)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }

    #[test]
    fn seed_script_parses() {
        let script = parse_text(include_str!("../../tests/golden/socket-trace.stp")).unwrap();
        assert_eq!(script.probes.len(), 2);
        let point = &script.probes[1].points[0];
        let names: Vec<_> = point.components.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["kernel", "function", "return"]);
        assert_eq!(
            match point.components[1].argument.as_ref().unwrap() {
                PointArg::Str(lit) => lit.value.clone(),
                PointArg::Number(_) => panic!("not a string"),
            },
            b"*@net/socket.c"
        );
    }

    #[test]
    fn precedence_and_associativity_follow_systemtap() {
        assert_eq!(shape(&body_expr("1 + 2 * 3 - 4")), "((1 + (2 * 3)) - 4)");
        assert_eq!(shape(&body_expr("a . b . 1 + 2")), "((a . b) . (1 + 2))");
        assert_eq!(
            shape(&body_expr("1 << 2 < 3 & 4 | 5 ^ 6")),
            "((((1 << 2) < 3) & 4) | (5 ^ 6))"
        );
        assert_eq!(shape(&body_expr("!a || b && c")), "((!a) || (b && c))");
        assert_eq!(
            shape(&body_expr("x = y += c ? 1 : -2")),
            "(x = (y += (c ? 1 : (-2))))"
        );
        assert_eq!(shape(&body_expr("f(1, (2), g())")), "f(1,2,g())");
    }

    #[test]
    fn statements_separate_by_newline_or_semicolon() {
        let script =
            parse_text("probe begin { a = 1\n b = 2; c = 3;; if (a) next else { print(a) } }")
                .unwrap();
        // Stray semicolons are empty statements.
        assert_eq!(script.probes[0].body.statements.len(), 7);
    }

    #[test]
    fn globals_and_multiple_points() {
        let script = parse_text("global a, b = -3, c = \"x\"\nprobe begin, end { }").unwrap();
        assert_eq!(script.globals.len(), 3);
        assert_eq!(
            script.globals[1].init.as_ref().unwrap().kind,
            ExprKind::Number(-3)
        );
        assert_eq!(script.probes[0].points.len(), 2);
    }

    #[test]
    fn errors_point_at_the_offending_token() {
        let err = parse_text("probe begin {\n  x = = 1\n}")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.stp:2:7: error: expected an expression, found '='"),
            "{err}"
        );
        let err = parse_text("probe begin { 1 = 2 }").unwrap_err().to_string();
        assert!(err.contains("left side of '=' must be a variable"), "{err}");
        let err = parse_text("probe begin {").unwrap_err().to_string();
        assert!(
            err.starts_with("t.stp:1:13: error: this '{' is never closed"),
            "{err}"
        );
        let err = parse_text("probe begin { foreach ([a, b+] in x-) {} }")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.stp:1:36: error: a foreach loop can be sorted by one thing only"),
            "{err}"
        );
        let err = parse_text("probe begin { 3++ }").unwrap_err().to_string();
        assert!(
            err.contains("'++' applies to a variable or an array element"),
            "{err}"
        );
        let err = parse_text("probe begin { x = [1, 2] }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected 'in' after a list of keys"), "{err}");
        let err = parse_text("print(1)").unwrap_err().to_string();
        assert!(
            err.contains("expected 'probe', 'global' or 'function'"),
            "{err}"
        );
    }

    #[test]
    fn constructs_not_supported_yet_are_named() {
        for (text, refusal) in [(
            "probe a = begin { }",
            "t.stp:1:9: error: not supported yet: probe aliases",
        )] {
            let err = parse_text(text).unwrap_err().to_string();
            assert!(err.starts_with(refusal), "{text}: {err}");
        }
    }

    #[test]
    fn point_components_may_hold_wildcards() {
        let script = parse_text("probe syscall.*, sys*.*execve, ti*.s(1) { }").unwrap();
        let names: Vec<Vec<&str>> = script.probes[0]
            .points
            .iter()
            .map(|point| point.components.iter().map(|c| c.name.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            [
                vec!["syscall", "*"],
                vec!["sys*", "*execve"],
                vec!["ti*", "s"]
            ]
        );
        // A wildcard apart from its word is not part of it.
        assert!(parse_text("probe syscall. * { }").is_ok());
        assert!(parse_text("probe sys *.x { }").is_err());
    }

    #[test]
    fn arrays_loops_and_statistics() {
        let shapes = [
            ("a[k, \"s\"]++", "(a[k,\"s\"]++)"),
            ("--a[1]", "(--a[1])"),
            (
                "x = k in a && [1, 2] in b",
                "(x = (([k] in a) && ([1,2] in b)))",
            ),
            ("x = 1 == 2 in a", "(x = ([(1 == 2)] in a))"),
            ("s[k] <<< v * 2", "(s[k] <<< (v * 2))"),
            (
                "y = @count(s[k]) + @sum(t)",
                "(y = (@count(s[k]) + @sum(t)))",
            ),
            (
                "print(@hist_linear(s, 0, 100, 10))",
                "print(@hist_linear(s,0,100,10))",
            ),
            ("x <<= y ^= 2", "(x <<= (y ^= 2))"),
        ];
        for (text, shape_text) in shapes {
            assert_eq!(shape(&body_expr(text)), shape_text, "{text}");
        }
        let script = parse_text(
            "global a%[10], b[5], c%, d\nprobe begin { foreach (v = [k1, k2-] in a limit 3) break\n\
             while (1) continue\nfor (i = 0; i < 3; i++) delete a[i] }",
        )
        .unwrap();
        let arrays: Vec<_> = script.globals.iter().map(|g| g.array).collect();
        assert_eq!(
            arrays,
            [
                Some(ArrayDecl {
                    size: Some(10),
                    wraps: true
                }),
                Some(ArrayDecl {
                    size: Some(5),
                    wraps: false
                }),
                Some(ArrayDecl {
                    size: None,
                    wraps: true
                }),
                None
            ]
        );
        let Stmt::Foreach(foreach) = &script.probes[0].body.statements[0] else {
            panic!("not a foreach");
        };
        assert_eq!(foreach.value.as_ref().map(|v| v.name.as_str()), Some("v"));
        assert_eq!(foreach.keys.len(), 2);
        assert_eq!(
            foreach.sort.map(|s| (s.by, s.descending)),
            Some((SortBy::Key(1), true))
        );
        assert!(foreach.limit.is_some());
        assert!(matches!(foreach.body, Stmt::Break(_)));
        assert!(matches!(
            script.probes[0].body.statements[1],
            Stmt::While { .. }
        ));
        assert!(matches!(
            script.probes[0].body.statements[2],
            Stmt::For { .. }
        ));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!(
            "probe begin {{ x = {}1{} }}",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        assert!(parse_text(&deep)
            .unwrap_err()
            .to_string()
            .contains("nesting is deeper"));
        let long_chain = format!("probe begin {{ x = 1{} }}", " + 1".repeat(5000));
        assert!(parse_text(&long_chain)
            .unwrap_err()
            .to_string()
            .contains("nesting is deeper"));
        // Spaced, since `--` is the decrement operator.
        let unary = format!("probe begin {{ x = {}1 }}", "- ".repeat(5000));
        assert!(parse_text(&unary)
            .unwrap_err()
            .to_string()
            .contains("nesting is deeper"));
        let blocks = format!("probe begin {}{}", "{".repeat(5000), "}".repeat(5000));
        assert!(parse_text(&blocks)
            .unwrap_err()
            .to_string()
            .contains("nesting is deeper"));
        let ifs = format!("probe begin {{ {} x = 1 }}", "if (1) ".repeat(5000));
        assert!(parse_text(&ifs)
            .unwrap_err()
            .to_string()
            .contains("nesting is deeper"));
    }

    #[test]
    fn moderate_nesting_is_fine() {
        let ok = format!(
            "probe begin {{ x = {}1{} }}",
            "(".repeat(40),
            ")".repeat(40)
        );
        parse_text(&ok).unwrap();
    }
}
