//! Recursive-descent parser from tokens to the [`ast`](super::ast). Operator precedence and
//! associativity follow SystemTap's grammar; statements need no separator, and `;` is an
//! optional one, so newlines separate statements as well.

mod expressions;
mod points;
mod statements;

use super::ast::{
    Alias, ArrayDecl, Block, CastBase, Expr, ExprKind, Foreach, Function, GlobalDecl, Name,
    PointArg, PointComponent, PointSyntax, Probe, Script, Sort, SortBy, Stmt, TargetCast,
    TargetExpr, TargetStep, TypeName,
};
use super::lexer::{tokenize, Op, StringLit, Token, TokenKind};
use super::preprocess::{preprocess, Facts, LibraryMacros};
use super::source::{ScriptError, SourceMap, Span};

/// Deeper nesting of expressions or statements is refused, so that neither the parser nor
/// the passes walking the tree after it can overflow the stack on hostile input.
pub const MAX_NESTING: usize = 100;

/// Words of the language that cannot name a variable or function.
pub(super) const KEYWORDS: &[&str] = &[
    "probe", "global", "function", "if", "else", "next", "for", "foreach", "while", "in", "return",
    "break", "continue", "delete", "try", "catch", "private",
];

/// Whether `name` is a word of the language, which cannot name a variable.
pub fn is_keyword(name: &str) -> bool {
    KEYWORDS.contains(&name)
}

/// Parses every file of the map into one script, in the map's order, after the macro
/// files (`*.stpm`), whose macros every file sees. A file with a
/// construct rstap refuses stops there; otherwise every declaration that fails to parse
/// gives its error, and parsing goes on at the next.
pub fn parse(source: &SourceMap, args: &[String]) -> Result<Script, ScriptError> {
    let facts = Facts::of_this_system();
    let mut script = Script {
        globals: Vec::new(),
        probes: Vec::new(),
        functions: Vec::new(),
        aliases: Vec::new(),
    };
    // Macro files define macros for every file, so they are read first.
    let is_macro_file = |id, file: &super::source::SourceFile| {
        source.is_library(id) && file.name().ends_with(".stpm")
    };
    let mut library = LibraryMacros::default();
    for (file, _) in source.files().filter(|&(id, f)| is_macro_file(id, f)) {
        library.add_file(source, tokenize(source, file, args)?, &facts)?;
    }
    let mut errors = Vec::new();
    for (file, _) in source.files().filter(|&(id, f)| !is_macro_file(id, f)) {
        let tokens = preprocess(source, tokenize(source, file, args)?, &facts, &library)?;
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
            TokenKind::Target(name) => format!("'${name}'"),
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
            self.probe(script)?;
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
            ExprKind::AnyKey => "*".to_string(),
            ExprKind::Target(target) => {
                let mut text = format!(
                    "{}${}",
                    if target.address_of { "&" } else { "" },
                    target.name.name
                );
                for step in &target.steps {
                    match step {
                        TargetStep::Member(member) => text += &format!("->{}", member.name),
                        TargetStep::Index { index, .. } => text += &format!("[{index}]"),
                    }
                }
                text
            }
            ExprKind::Entry(inner) => format!("@entry({})", shape(inner)),
            ExprKind::Defined(inner) => format!("@defined({})", shape(inner)),
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
        let script = parse_text(include_str!("../../../tests/golden/socket-trace.stp")).unwrap();
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
    fn target_variables_take_members_indexes_and_their_address() {
        assert_eq!(
            shape(&body_expr("$sk->__sk_common->skc_family & 1")),
            "($sk->__sk_common->skc_family & 1)"
        );
        assert_eq!(
            shape(&body_expr("&$task->comm[2] + -$return")),
            "(&$task->comm[2] + (-$return))"
        );
        assert_eq!(
            shape(&body_expr("$return - @entry(gettimeofday_ns())")),
            "($return - @entry(gettimeofday_ns()))"
        );
        assert_eq!(
            shape(&body_expr("@choose_defined($a->b, 7) + @defined($c)")),
            "((@defined($a->b) ? $a->b : 7) + @defined($c))"
        );
        assert!(parse_text("probe begin { x = $a[i] }")
            .unwrap_err()
            .to_string()
            .contains("not supported yet: an index into kernel data that is not a number"));
        assert!(parse_text("probe begin { x = $a-> }")
            .unwrap_err()
            .to_string()
            .contains("expected a member name after '->'"));
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
    fn aliases_have_names_points_and_bodies() {
        let script = parse_text(
            "probe a.b = c = kernel.function(\"f\"), begin { x = 1 }\n\
             probe e += end { y = 2 }\n\
             probe f = never { x = 1 }, { y = 2 }",
        )
        .unwrap();
        assert!(script.probes.is_empty());
        let [both, epilogue, combined] = &script.aliases[..] else {
            panic!("three aliases: {:?}", script.aliases);
        };
        let names: Vec<usize> = both.names.iter().map(|n| n.components.len()).collect();
        assert_eq!(names, [2, 1]);
        assert_eq!(both.points.len(), 2);
        assert!(both.prologue.is_some() && both.epilogue.is_none());
        assert!(epilogue.prologue.is_none() && epilogue.epilogue.is_some());
        assert!(combined.prologue.is_some() && combined.epilogue.is_some());
        for (text, wanted) in [
            (
                "probe a? = begin {}",
                "t.stp:1:7: error: an alias's name cannot be optional",
            ),
            (
                "probe a.* = begin {}",
                "t.stp:1:9: error: an alias's name cannot hold a wildcard",
            ),
            (
                "probe a, b = begin {}",
                "t.stp:1:12: error: an alias defines one name",
            ),
        ] {
            let err = parse_text(text).unwrap_err().to_string();
            assert!(err.starts_with(wanted), "{text}: {err}");
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
            // `*` is any key only where a key ends; elsewhere it multiplies.
            ("x = [*, k * 2] in a", "(x = ([*,(k * 2)] in a))"),
            ("x = a[k, *] * b[*]", "(x = (a[k,*] * b[*]))"),
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
