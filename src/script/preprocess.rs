//! SystemTap's preprocessor: `%( CONDITION %? KEPT %: SKIPPED %)` over the tokens, before
//! parsing. A condition is one or more comparisons joined by `&&` and `||` (`&&` binding
//! tighter), each of a fact about the system (`kernel_v`, `kernel_vr`, `arch`, `runtime`,
//! `systemtap_v`, `systemtap_privilege`, `guru_mode`, `CONFIG_...`) or of two literals
//! (as `$#` and `@#` become). What a skipped branch holds is never parsed, so it may hold
//! what rstap refuses elsewhere. Also macros: `@define NAME(a, b) %( BODY %)`, then
//! `@NAME(x, y)` anywhere after it stands for BODY with `@a` and `@b` replaced.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::lexer::{Conditional, Op, Token, TokenKind};
use super::source::{ScriptError, SourceMap, Span};
use crate::resolve::glob::Glob;

/// The SystemTap release whose language rstap follows, as `systemtap_v` compares.
pub const SYSTEMTAP_VERSION: &str = "4.8";

/// What conditions ask about the system the script runs on.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `uname -r`, e.g. `6.12.118+deb13-cloud-amd64`.
    pub kernel_release: String,
    pub arch: String,
    /// The kernel's build configuration as a test gives it; else the running kernel's,
    /// read when a condition first asks.
    config: Option<HashMap<String, String>>,
}

impl Facts {
    /// The running system's.
    pub fn of_this_system() -> Facts {
        Facts {
            kernel_release: crate::system::kernel_release(),
            arch: std::env::consts::ARCH.to_string(),
            config: None,
        }
    }

    /// Given facts, for tests; `config` holds `CONFIG_...=VALUE` lines.
    #[cfg(test)]
    pub fn new(kernel_release: &str, arch: &str, config: &str) -> Facts {
        Facts {
            kernel_release: kernel_release.to_string(),
            arch: arch.to_string(),
            config: Some(crate::system::parse_config(config)),
        }
    }

    /// `kernel_v`: the release up to its first `-` or `+`, e.g. `6.12.118`.
    fn kernel_version(&self) -> &str {
        let end = self
            .kernel_release
            .find(['-', '+'])
            .unwrap_or(self.kernel_release.len());
        &self.kernel_release[..end]
    }

    fn config(&self) -> &HashMap<String, String> {
        self.config
            .as_ref()
            .unwrap_or_else(|| crate::system::kernel_config())
    }
}

/// How many macro expansions one script may make: more is taken for runaway recursion.
const MAX_EXPANSIONS: usize = 10_000;

/// A macro: `@define NAME(PARAM, ...) %( BODY %)`.
#[derive(Clone)]
struct Macro {
    params: Vec<String>,
    body: Vec<Token>,
}

/// The macros of the tapset library's macro files (`*.stpm`), which every file sees; a
/// macro a file defines is its own.
#[derive(Clone, Default)]
pub struct LibraryMacros(HashMap<String, Macro>);

impl LibraryMacros {
    /// Adds the definitions of a macro file, whose tokens must be `@define`s and nothing
    /// else.
    pub fn add_file(
        &mut self,
        source: &SourceMap,
        tokens: Vec<Token>,
        facts: &Facts,
    ) -> Result<(), ScriptError> {
        let mut preprocessor = Preprocessor::new(source, tokens, facts, self);
        let left = preprocessor.run()?;
        if let Some(token) = left.iter().find(|t| t.kind != TokenKind::Eof) {
            return Err(ScriptError::at(
                source,
                token.span,
                "a macro file (.stpm) holds only macro definitions (`@define NAME %( ... %)`)",
            ));
        }
        self.0 = preprocessor.macros;
        Ok(())
    }
}

/// The tokens with every conditional resolved (the kept branches' tokens in place of each
/// `%( ... %)`) and every macro expanded, the library's and the file's own. A `@NAME` that
/// names no macro is left to the parser as the refusal of SystemTap's `@` operator of that
/// name.
pub fn preprocess(
    source: &SourceMap,
    tokens: Vec<Token>,
    facts: &Facts,
    library: &LibraryMacros,
) -> Result<Vec<Token>, ScriptError> {
    Preprocessor::new(source, tokens, facts, library).run()
}

struct Preprocessor<'a> {
    source: &'a SourceMap,
    facts: &'a Facts,
    /// What is still to read, last token first: an expansion is pushed back onto it.
    input: Vec<Token>,
    macros: HashMap<String, Macro>,
    expansions: usize,
}

impl<'a> Preprocessor<'a> {
    fn new(
        source: &'a SourceMap,
        tokens: Vec<Token>,
        facts: &'a Facts,
        library: &LibraryMacros,
    ) -> Self {
        let mut input = tokens;
        input.reverse();
        Preprocessor {
            source,
            facts,
            input,
            macros: library.0.clone(),
            expansions: 0,
        }
    }

    fn error(&self, span: Span, message: impl Into<String>) -> ScriptError {
        ScriptError::at(self.source, span, message)
    }

    fn next(&mut self) -> Option<Token> {
        self.input.pop()
    }

    fn run(&mut self) -> Result<Vec<Token>, ScriptError> {
        let mut out = Vec::with_capacity(self.input.len());
        // One entry per open conditional: where it opened, whether its current branch is
        // kept, and whether `%:` was seen.
        let mut open: Vec<(Span, bool, bool)> = Vec::new();
        while let Some(token) = self.next() {
            let kept = open.iter().all(|&(_, kept, _)| kept);
            match token.kind {
                TokenKind::Conditional(Conditional::Open) => {
                    if !kept {
                        // Inside a skipped branch nothing is evaluated; the nesting counts.
                        open.push((token.span, false, false));
                        self.skip_condition();
                        continue;
                    }
                    let result = condition(self.source, &mut self.input, token.span, self.facts)?;
                    open.push((token.span, result, false));
                }
                TokenKind::Conditional(Conditional::Then) => {
                    return Err(self.error(token.span, "incomplete conditional - missing '%('"));
                }
                TokenKind::Conditional(Conditional::Else) => {
                    let Some((_, kept, seen_else)) = open.last_mut() else {
                        return Err(self.error(token.span, "incomplete conditional - missing '%('"));
                    };
                    if *seen_else {
                        return Err(self.error(token.span, "invalid conditional - duplicate '%:'"));
                    }
                    // An enclosing skipped branch keeps this one skipped either way (`kept`
                    // is computed over every level).
                    *kept = !*kept;
                    *seen_else = true;
                }
                // The guard closes the innermost conditional, if there is one.
                TokenKind::Conditional(Conditional::Close) if open.pop().is_none() => {
                    return Err(self.error(token.span, "incomplete conditional - missing '%('"));
                }
                TokenKind::Conditional(Conditional::Close) => {}
                TokenKind::Eof => {
                    if let Some(&(span, ..)) = open.last() {
                        return Err(self.error(span, "incomplete conditional at end of file"));
                    }
                    out.push(token);
                }
                _ if !kept => {}
                TokenKind::Macro(ref name) if name == "define" => self.define(token.span)?,
                TokenKind::Macro(ref name) if self.macros.contains_key(name) => {
                    let name = name.clone();
                    self.expand(&name, token.span)?;
                }
                // SystemTap's `@` operators rstap has: left for the parser.
                TokenKind::Macro(ref name) if PARSED_OPERATORS.contains(&name.as_str()) => {
                    out.push(token)
                }
                TokenKind::Macro(name) => out.push(Token {
                    kind: TokenKind::Refused(format!(
                        "not supported yet: `@{name}`{}",
                        refusal_reason(&name)
                    )),
                    span: token.span,
                }),
                _ => out.push(token),
            }
        }
        Ok(out)
    }

    /// Skips a skipped conditional's condition, up to its `%?`.
    fn skip_condition(&mut self) {
        while let Some(token) = self.next() {
            if matches!(
                token.kind,
                TokenKind::Conditional(Conditional::Then) | TokenKind::Eof
            ) {
                return;
            }
        }
    }

    /// `@define NAME [(PARAM, ...)] %( BODY %)`, after the `@define`.
    fn define(&mut self, at: Span) -> Result<(), ScriptError> {
        let incomplete = |this: &Self| {
            this.error(
                at,
                "incomplete macro definition: expected `@define NAME(PARAM, ...) %( BODY %)`",
            )
        };
        let Some(Token {
            kind: TokenKind::Ident(name),
            ..
        }) = self.next()
        else {
            return Err(incomplete(self));
        };
        let mut params = Vec::new();
        let mut token = self.next().ok_or_else(|| incomplete(self))?;
        if token.kind == TokenKind::Op(Op::LParen) {
            loop {
                match self.next().map(|t| t.kind) {
                    Some(TokenKind::Ident(param)) => params.push(param),
                    Some(TokenKind::Op(Op::RParen)) if params.is_empty() => break,
                    _ => return Err(incomplete(self)),
                }
                match self.next().map(|t| t.kind) {
                    Some(TokenKind::Op(Op::Comma)) => {}
                    Some(TokenKind::Op(Op::RParen)) => break,
                    _ => return Err(incomplete(self)),
                }
            }
            token = self.next().ok_or_else(|| incomplete(self))?;
        }
        if token.kind != TokenKind::Conditional(Conditional::Open) {
            return Err(incomplete(self));
        }
        let mut body = Vec::new();
        let mut depth = 0;
        loop {
            let token = self.next().ok_or_else(|| incomplete(self))?;
            match token.kind {
                TokenKind::Eof => return Err(incomplete(self)),
                TokenKind::Conditional(Conditional::Open) => depth += 1,
                TokenKind::Conditional(Conditional::Close) if depth == 0 => break,
                TokenKind::Conditional(Conditional::Close) => depth -= 1,
                _ => {}
            }
            body.push(token);
        }
        self.macros.insert(name, Macro { params, body });
        Ok(())
    }

    /// Replaces `@NAME` or `@NAME(ARG, ...)` with the macro's body, parameters replaced by
    /// the arguments' tokens.
    fn expand(&mut self, name: &str, at: Span) -> Result<(), ScriptError> {
        self.expansions += 1;
        if self.expansions > MAX_EXPANSIONS {
            return Err(self.error(
                at,
                format!(
                    "more than {MAX_EXPANSIONS} macro expansions: does @{name} expand to itself?"
                ),
            ));
        }
        let wanted = self.macros[name].params.len();
        let args = if wanted > 0 {
            self.arguments(name, at, wanted)?
        } else {
            Vec::new()
        };
        let definition = &self.macros[name];
        let mut expansion = Vec::with_capacity(definition.body.len());
        for token in &definition.body {
            match &token.kind {
                TokenKind::Macro(word) => match definition.params.iter().position(|p| p == word) {
                    Some(i) => expansion.extend(args[i].iter().cloned()),
                    None => expansion.push(token.clone()),
                },
                _ => expansion.push(token.clone()),
            }
        }
        self.input.extend(expansion.into_iter().rev());
        Ok(())
    }

    /// A macro call's `(ARG, ...)`: each argument's tokens, split at commas outside
    /// parentheses and brackets.
    fn arguments(
        &mut self,
        name: &str,
        at: Span,
        wanted: usize,
    ) -> Result<Vec<Vec<Token>>, ScriptError> {
        if self.next().map(|t| t.kind) != Some(TokenKind::Op(Op::LParen)) {
            return Err(self.error(
                at,
                format!("@{name} takes {wanted} arguments in parentheses"),
            ));
        }
        let mut args = Vec::new();
        let mut current = Vec::new();
        let mut depth = 0;
        loop {
            let token = self
                .next()
                .filter(|t| t.kind != TokenKind::Eof)
                .ok_or_else(|| {
                    self.error(at, format!("the arguments of @{name} are never closed"))
                })?;
            match token.kind {
                TokenKind::Op(Op::LParen | Op::LBracket) => depth += 1,
                TokenKind::Op(Op::RParen) if depth == 0 => break,
                TokenKind::Op(Op::RParen | Op::RBracket) => depth -= 1,
                TokenKind::Op(Op::Comma) if depth == 0 => {
                    args.push(std::mem::take(&mut current));
                    continue;
                }
                _ => {}
            }
            current.push(token);
        }
        args.push(current);
        if args.len() != wanted {
            return Err(self.error(
                at,
                format!("@{name} takes {wanted} arguments, given {}", args.len()),
            ));
        }
        Ok(args)
    }
}

/// The `@` operators the parser takes (`@entry(expr)`, `@defined($var)`).
const PARSED_OPERATORS: &[&str] = &[
    "entry",
    "defined",
    "choose_defined",
    "cast",
    "cast_sizeof",
    "cast_module_sizeof",
];

/// Why an `@` operator rstap refuses is missing, where that says more than its name.
fn refusal_reason(name: &str) -> &'static str {
    match name {
        "defined" => ": it asks whether a target variable ($var) exists, and rstap does not read the kernel's variables yet",
        "var" => ": it reads the kernel's data through a variable name, which rstap does not look up yet",
        _ => "",
    }
}

/// Evaluates the condition after `%(` and consumes its `%?`.
fn condition(
    source: &SourceMap,
    input: &mut Vec<Token>,
    open: Span,
    facts: &Facts,
) -> Result<bool, ScriptError> {
    let mut any = false;
    let mut all = true;
    loop {
        let mut next = || {
            input
                .pop()
                .filter(|t| t.kind != TokenKind::Eof)
                .ok_or_else(|| ScriptError::at(source, open, "incomplete condition after '%('"))
        };
        let left = next()?;
        if let TokenKind::Macro(name) = &left.kind {
            return Err(ScriptError::at(
                source,
                left.span,
                format!(
                    "not supported yet: `@{name}` in a preprocessor condition{}",
                    refusal_reason(name)
                ),
            ));
        }
        let (op, right) = (next()?, next()?);
        all &= comparison(source, &left, &op, &right, facts)?;
        match next()?.kind {
            TokenKind::Op(Op::AndAnd) => {}
            TokenKind::Op(Op::OrOr) => {
                any |= all;
                all = true;
            }
            TokenKind::Conditional(Conditional::Then) => return Ok(any || all),
            _ => {
                return Err(ScriptError::at(
                    source,
                    open,
                    "expected '%?' marker for conditional",
                ))
            }
        }
    }
}

fn comparison(
    source: &SourceMap,
    left: &Token,
    op: &Token,
    right: &Token,
    facts: &Facts,
) -> Result<bool, ScriptError> {
    let error = |token: &Token, message: &str| ScriptError::at(source, token.span, message);
    let TokenKind::Op(op_kind) = op.kind else {
        return Err(error(op, "expected comparison operator"));
    };
    let ordering_holds = |ordering: Ordering| -> Result<bool, ScriptError> {
        Ok(match op_kind {
            Op::Eq => ordering == Ordering::Equal,
            Op::Ne => ordering != Ordering::Equal,
            Op::Lt => ordering == Ordering::Less,
            Op::Le => ordering != Ordering::Greater,
            Op::Gt => ordering == Ordering::Greater,
            Op::Ge => ordering != Ordering::Less,
            _ => return Err(error(op, "expected comparison operator")),
        })
    };
    let string = |token: &Token| match &token.kind {
        TokenKind::Str(lit) => Ok(String::from_utf8_lossy(&lit.value).into_owned()),
        _ => Err(error(token, "expected string literal")),
    };
    // `==` and `!=` against a pattern with wildcards match it as a glob.
    let matches = |fact: &str, pattern: &str| -> Result<bool, ScriptError> {
        let equal = Glob::new(pattern)
            .map_err(|e| error(right, &e.to_string()))?
            .matches(fact);
        match op_kind {
            Op::Eq => Ok(equal),
            Op::Ne => Ok(!equal),
            _ => Err(error(op, "expected '==' or '!='")),
        }
    };
    match &left.kind {
        TokenKind::Ident(name)
            if ["kernel_v", "kernel_vr", "systemtap_v"].contains(&name.as_str()) =>
        {
            let fact = match name.as_str() {
                "kernel_v" => facts.kernel_version(),
                "kernel_vr" => facts.kernel_release.as_str(),
                _ => SYSTEMTAP_VERSION,
            };
            let query = string(right)?;
            if query.contains(['*', '?', '[']) {
                if !matches!(op_kind, Op::Eq | Op::Ne) {
                    return Err(error(
                        op,
                        "wildcard not allowed with order comparison operators",
                    ));
                }
                return matches(fact, &query);
            }
            ordering_holds(compare_versions(fact, &query))
        }
        TokenKind::Ident(name) if name == "arch" => matches(&facts.arch, &string(right)?),
        // rstap is an eBPF runtime, as stap's own `--runtime=bpf` is.
        TokenKind::Ident(name) if name == "runtime" => matches("bpf", &string(right)?),
        // rstap runs as root, with every privilege stap's stapdev group has.
        TokenKind::Ident(name) if name == "systemtap_privilege" => {
            matches("stapdev", &string(right)?)
        }
        TokenKind::Ident(name) if name == "guru_mode" => match right.kind {
            TokenKind::Number(n @ (0 | 1)) => ordering_holds(0.cmp(&n)).and_then(|holds| {
                if matches!(op_kind, Op::Eq | Op::Ne) {
                    Ok(holds)
                } else {
                    Err(error(op, "expected '==' or '!='"))
                }
            }),
            _ => Err(error(right, "expected 0 or 1")),
        },
        TokenKind::Ident(name) if name.starts_with("CONFIG_") => {
            let value = facts.config().get(name).map_or("", String::as_str);
            match &right.kind {
                TokenKind::Str(_) => matches(value, &string(right)?),
                TokenKind::Number(n) => {
                    let Ok(value) = value.parse::<i64>() else {
                        return Err(error(left, "Config option value not a number"));
                    };
                    ordering_holds(value.cmp(n))
                }
                _ => Err(error(
                    right,
                    "expected string, number literal or other CONFIG_... as right side operand",
                )),
            }
        }
        TokenKind::Str(_) => ordering_holds(string(left)?.cmp(&string(right)?)),
        TokenKind::Number(a) => match right.kind {
            TokenKind::Number(b) => ordering_holds(a.cmp(&b)),
            _ => Err(error(right, "expected number literal as right value")),
        },
        _ => Err(error(
            left,
            "expected 'arch', 'kernel_v', 'kernel_vr', 'systemtap_v', 'runtime', \
             'systemtap_privilege', 'CONFIG_...', or a comparison between strings or integers",
        )),
    }
}

/// Compares versions as GNU's strverscmp does for ordinary version strings: runs of digits
/// as numbers, everything else byte by byte (`2.6.9` < `2.6.24`).
fn compare_versions(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (n, m) = (digits(a), digits(b));
                let number = |s: &[u8]| {
                    let s = &s[s.iter().take_while(|&&c| c == b'0').count()..];
                    s.to_vec()
                };
                let (x, y) = (number(&a[..n]), number(&b[..m]));
                let ordering = x.len().cmp(&y.len()).then_with(|| x.cmp(&y));
                if ordering != Ordering::Equal {
                    return ordering;
                }
                (a, b) = (&a[n..], &b[m..]);
            }
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => (a, b) = (&a[1..], &b[1..]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::lexer::tokenize;

    fn kept(text: &str, args: &[&str]) -> Result<String, String> {
        let source = SourceMap::of_script(crate::script::SourceFile::new("t.stp", text));
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let facts = Facts::new(
            "6.12.118+deb13-cloud-amd64",
            "x86_64",
            "CONFIG_64BIT=y\nCONFIG_HZ=250\n",
        );
        let tokens = tokenize(&source, Default::default(), &args).map_err(|e| e.to_string())?;
        let kept = preprocess(&source, tokens, &facts, &LibraryMacros::default())
            .map_err(|e| e.to_string())?;
        Ok(kept
            .iter()
            .filter(|t| t.kind != TokenKind::Eof)
            .map(|t| source.slice(t.span).to_string())
            .collect::<Vec<_>>()
            .join(" "))
    }

    #[test]
    fn conditions_pick_a_branch() {
        for (text, expected) in [
            ("%( kernel_v >= \"2.6.30\" %? a %: b %)", "a"),
            ("%( kernel_v < \"6.9\" %? a %: b %)", "b"),
            ("%( kernel_vr == \"6.12*\" %? a %)", "a"),
            (
                "%( arch == \"x86_64\" && runtime == \"bpf\" %? a %: b %)",
                "a",
            ),
            (
                "%( arch == \"i386\" || CONFIG_64BIT == \"y\" %? a %: b %)",
                "a",
            ),
            (
                "%( CONFIG_HZ > 100 && CONFIG_NOPE == \"y\" %? a %: b %)",
                "b",
            ),
            ("%( systemtap_v >= \"4.0\" %? a %: b %)", "a"),
            ("%( $# > 1 %? two %: %( $# == 1 %? one %: none %) %)", "one"),
            (
                "x %( 1 == 2 %? %( 1 == 1 %? in %: out %) %: else %) y",
                "x else y",
            ),
            ("%( @# == \"1\" %? $1 %)", "$1"),
        ] {
            assert_eq!(kept(text, &["7"]).as_deref(), Ok(expected), "{text}");
        }
        assert_eq!(compare_versions("2.6.9", "2.6.24"), Ordering::Less);
        assert_eq!(compare_versions("6.12.118", "6.12"), Ordering::Greater);
    }

    #[test]
    fn skipped_branches_may_hold_what_rstap_refuses() {
        assert_eq!(
            kept("%( $# > 5 %? $fd %{ int x; %} $9 %: 1 %)", &[]).as_deref(),
            Ok("1")
        );
    }

    #[test]
    fn malformed_conditionals_are_errors() {
        for (text, message) in [
            ("%( arch == \"x\" a %)", "expected '%?' marker"),
            ("%( arch \"x\" %? %)", "expected comparison operator"),
            ("%( 1 == 1 %? a", "incomplete conditional at end of file"),
            ("a %)", "missing '%('"),
            ("%( 1 == 1 %? a %: b %: c %)", "duplicate '%:'"),
            ("%( kernel_v > \"2.*\" %? a %)", "wildcard not allowed"),
            ("%( foo == 1 %? a %)", "expected 'arch', 'kernel_v'"),
        ] {
            let error = kept(text, &[]).unwrap_err();
            assert!(error.contains(message), "{text}: {error}");
        }
    }
}
