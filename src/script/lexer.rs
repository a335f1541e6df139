//! Turns script text into tokens: identifiers, numbers, strings (with SystemTap's escapes
//! decoded) and operators. Comments and whitespace, newlines included, separate tokens and
//! are dropped, as in SystemTap.

use super::source::{FileId, ScriptError, SourceFile, SourceMap, Span};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    Ident(String),
    /// A non-negative literal; values above `i64::MAX` wrap, as SystemTap allows up to `2^64-1`.
    Number(i64),
    Str(StringLit),
    Op(Op),
    /// A statistics operator: `@count`, `@sum`, ..., `@hist_linear`, without the `@`.
    Stat(String),
    /// `%(`, `%?`, `%:` or `%)`, for the preprocessor.
    Conditional(Conditional),
    /// `@NAME` other than a statistics operator: `@define`, a macro, a macro's parameter,
    /// or one of SystemTap's `@` operators (`@entry`, `@cast`, ...) once macros are expanded.
    Macro(String),
    /// `$name`: a target variable (a parameter of the probed function, or `return`), without
    /// the `$`.
    Target(String),
    /// Something rstap cannot take here (a construct it does not support, a missing script
    /// argument), with the message that says so. It is an error only if it survives
    /// preprocessing: a branch the preprocessor skips may hold anything.
    Refused(String),
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditional {
    Open,
    Then,
    Else,
    Close,
}

/// A decoded string literal. `escaped[i]` says whether `value[i]` came from an escape
/// sequence: a `\045` is a plain `%` to printf's format parser, never a conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringLit {
    pub value: Vec<u8>,
    pub escaped: Vec<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Semi,
    Dot,
    DotAssign,
    Assign,
    AddAssign,
    SubAssign,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Shl,
    Shr,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Amp,
    /// `->`: a member of what a target variable points to (or holds).
    Arrow,
    Pipe,
    Caret,
    Tilde,
    Bang,
    AndAnd,
    OrOr,
    Question,
    Colon,
    LBracket,
    RBracket,
    /// `<<<`, adding a value to a statistics aggregate.
    Aggregate,
    Incr,
    Decr,
    MulAssign,
    DivAssign,
    ModAssign,
    ShlAssign,
    ShrAssign,
    AndAssign,
    OrAssign,
    XorAssign,
    /// `=~` and `!~`: a string against a regular expression.
    Match,
    NotMatch,
}

impl Op {
    pub fn text(self) -> &'static str {
        OPERATORS
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(text, _)| text)
    }
}

/// Longest first, so that `<<` wins over `<` and `.=` over `.`.
const OPERATORS: &[(&str, Op)] = &[
    ("<<<", Op::Aggregate),
    ("->", Op::Arrow),
    ("=~", Op::Match),
    ("!~", Op::NotMatch),
    ("<<=", Op::ShlAssign),
    (">>=", Op::ShrAssign),
    ("++", Op::Incr),
    ("--", Op::Decr),
    ("*=", Op::MulAssign),
    ("/=", Op::DivAssign),
    ("%=", Op::ModAssign),
    ("&=", Op::AndAssign),
    ("|=", Op::OrAssign),
    ("^=", Op::XorAssign),
    ("&&", Op::AndAnd),
    ("||", Op::OrOr),
    ("==", Op::Eq),
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("<<", Op::Shl),
    (">>", Op::Shr),
    (".=", Op::DotAssign),
    ("+=", Op::AddAssign),
    ("-=", Op::SubAssign),
    ("(", Op::LParen),
    (")", Op::RParen),
    ("{", Op::LBrace),
    ("}", Op::RBrace),
    (",", Op::Comma),
    (";", Op::Semi),
    (".", Op::Dot),
    ("=", Op::Assign),
    ("<", Op::Lt),
    (">", Op::Gt),
    ("+", Op::Plus),
    ("-", Op::Minus),
    ("*", Op::Star),
    ("/", Op::Slash),
    ("%", Op::Percent),
    ("&", Op::Amp),
    ("|", Op::Pipe),
    ("^", Op::Caret),
    ("~", Op::Tilde),
    ("!", Op::Bang),
    ("?", Op::Question),
    (":", Op::Colon),
    ("[", Op::LBracket),
    ("]", Op::RBracket),
];

/// The operator at the start of `text`, if any.
pub(super) fn operator_at(text: &str) -> Option<&'static str> {
    OPERATORS
        .iter()
        .map(|(op, _)| *op)
        .find(|op| text.starts_with(op))
}

/// A string literal with no escapes in it.
fn plain_string(bytes: &[u8]) -> StringLit {
    StringLit {
        value: bytes.to_vec(),
        escaped: vec![false; bytes.len()],
    }
}

/// The `@` operators of statistics, which take an aggregate.
const STATISTICS: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "variance",
    "hist_log",
    "hist_linear",
];

/// A construct of the SystemTap language rstap does not take, at the start of `rest`: its
/// length in bytes and the refusal that names it.
fn unsupported_construct(rest: &str) -> Option<(usize, String)> {
    let sigil = rest.chars().next().filter(|c| matches!(c, '$' | '@'))?;
    let after = &rest[1..];
    let word_length = after
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '$')
        .unwrap_or(after.len());
    let word = &after[..word_length];
    let length = 1 + word_length.max(usize::from(after.starts_with('#')));
    let refusal = match (sigil, word) {
        ('$', word) if TARGET_SETS.contains(&word) => return None,
        ('$', "$locals") => format!(
            "not supported yet: `${word}`: the kernel's BTF describes a function's parameters, \
             not its local variables; `$$parms` lists the parameters"
        ),
        ('$', word) if word.ends_with('$') => {
            format!("not supported yet: `${word}` (kernel data printed as text)")
        }
        ('$', word) if word.starts_with('$') => {
            format!("not supported yet: `${word}` (target variables)")
        }
        _ => return None,
    };
    Some((length, refusal))
}

/// `$$parms` and `$$return`, without their first `$`: the parameters, or the return value,
/// as text; `$$vars`, which is `$$parms` where there are no locals (tracepoints);
/// `$$name` and `$$system`, a tracepoint's names.
const TARGET_SETS: &[&str] = &["$parms", "$vars", "$return", "$name", "$system"];

/// The name of the target variable `$name` at the start of `rest`, if one is there; `$parms`
/// and `$return` for `$$parms` and `$$return`.
fn target_variable(rest: &str) -> Option<&str> {
    let after = rest.strip_prefix('$')?;
    if let Some(set) = TARGET_SETS.iter().find(|set| {
        after.starts_with(**set)
            && !after[set.len()..]
                .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    }) {
        return Some(&after[..set.len()]);
    }
    let length = after
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .unwrap_or(after.len());
    let name = &after[..length];
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        .then_some(name)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// The whole script as tokens, ending with one `Eof` token.
/// `args` are the script's command-line arguments: `$1` stands for the tokens of the first,
/// `@1` for it as a string, `$#` and `@#` for how many there are.
pub fn tokenize(map: &SourceMap, file: FileId, args: &[String]) -> Result<Vec<Token>, ScriptError> {
    let source = map.file(file);
    Lexer {
        map,
        file,
        source,
        args,
        bytes: source.text().as_bytes(),
        pos: 0,
    }
    .run()
}

struct Lexer<'a> {
    map: &'a SourceMap,
    file: FileId,
    source: &'a SourceFile,
    args: &'a [String],
    bytes: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn run(mut self) -> Result<Vec<Token>, ScriptError> {
        let mut tokens = Vec::new();
        loop {
            self.skip_blanks_and_comments()?;
            let start = self.pos;
            let Some(&c) = self.bytes.get(start) else {
                tokens.push(Token {
                    kind: TokenKind::Eof,
                    span: self.span(start, start),
                });
                return Ok(tokens);
            };
            if let Some(expansion) = self.script_argument()? {
                let span = self.span(start, self.pos);
                tokens.extend(expansion.into_iter().map(|kind| Token { kind, span }));
                continue;
            }
            let kind = if c.is_ascii_alphabetic() || c == b'_' {
                self.identifier()
            } else if c.is_ascii_digit() {
                self.number()?
            } else if c == b'"' {
                TokenKind::Str(self.string()?)
            } else {
                self.operator()?
            };
            tokens.push(Token {
                kind,
                span: self.span(start, self.pos),
            });
        }
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, start, end)
    }

    fn error(&self, span: Span, message: impl Into<String>) -> ScriptError {
        ScriptError::at(self.map, span, message)
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn skip_blanks_and_comments(&mut self) -> Result<(), ScriptError> {
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some(c), _) if c.is_ascii_whitespace() => self.pos += 1,
                (Some(b'#'), _) | (Some(b'/'), Some(b'/')) => {
                    while self.peek(0).is_some_and(|c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                (Some(b'/'), Some(b'*')) => {
                    let start = self.pos;
                    match self.source.text()[start + 2..].find("*/") {
                        Some(end) => self.pos = start + 2 + end + 2,
                        None => {
                            return Err(self.error(
                                self.span(start, start + 2),
                                "unterminated comment: this '/*' has no matching '*/'",
                            ))
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// `$N`, `@N`, `$#` or `@#` at the current position, as the tokens it stands for.
    fn script_argument(&mut self) -> Result<Option<Vec<TokenKind>>, ScriptError> {
        let rest = &self.source.text()[self.pos..];
        let Some(sigil) = rest.chars().next().filter(|c| matches!(c, '$' | '@')) else {
            return Ok(None);
        };
        let after = &rest[1..];
        if after.starts_with('#') {
            self.pos += 2;
            let count = self.args.len();
            return Ok(Some(vec![if sigil == '$' {
                TokenKind::Number(count as i64)
            } else {
                TokenKind::Str(plain_string(count.to_string().as_bytes()))
            }]));
        }
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Ok(None);
        }
        let span = self.span(self.pos, self.pos + 1 + digits);
        let index: usize = after[..digits].parse().unwrap_or(usize::MAX);
        self.pos = span.end;
        let Some(arg) = index.checked_sub(1).and_then(|i| self.args.get(i)) else {
            return Ok(Some(vec![TokenKind::Refused(format!(
                "command line argument index {index} out of range [1-{}]: the script wants \
                 more arguments (rstap SCRIPT ARG...)",
                self.args.len()
            ))]));
        };
        if sigil == '@' {
            return Ok(Some(vec![TokenKind::Str(plain_string(arg.as_bytes()))]));
        }
        // `$N` stands for the argument's own tokens, as if written in the script.
        let text = SourceMap::of_script(SourceFile::new(
            format!("command line argument ${index}"),
            arg.clone(),
        ));
        let mut expansion: Vec<TokenKind> = tokenize(&text, FileId::default(), &[])
            .map_err(|err| {
                self.error(
                    span,
                    format!(
                        "command line argument ${index} ({arg:?}) is not valid script text: {}",
                        err.message()
                    ),
                )
            })?
            .into_iter()
            .map(|token| token.kind)
            .collect();
        expansion.pop(); // its Eof
        Ok(Some(expansion))
    }

    fn identifier(&mut self) -> TokenKind {
        let start = self.pos;
        while self
            .peek(0)
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.pos += 1;
        }
        TokenKind::Ident(self.source.text()[start..self.pos].to_string())
    }

    /// Like SystemTap, take every letter and digit that follows, then insist that the whole
    /// is a valid decimal, `0x` hex or `0` octal number no larger than `2^64-1`.
    fn number(&mut self) -> Result<TokenKind, ScriptError> {
        let start = self.pos;
        while self.peek(0).is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        let text = &self.source.text()[start..self.pos];
        let parsed = if let Some(hex) = text.strip_prefix("0x").or(text.strip_prefix("0X")) {
            u64::from_str_radix(hex, 16)
        } else if text.len() > 1 && text.starts_with('0') {
            u64::from_str_radix(&text[1..], 8)
        } else {
            text.parse::<u64>()
        };
        match parsed {
            // Two's-complement reinterpretation: 0xffffffffffffffff is -1, as in SystemTap.
            Ok(value) => Ok(TokenKind::Number(value as i64)),
            Err(_) => Err(self.error(
                self.span(start, self.pos),
                format!("number '{text}' is invalid or out of range"),
            )),
        }
    }

    fn string(&mut self) -> Result<StringLit, ScriptError> {
        let start = self.pos;
        self.pos += 1;
        let mut lit = StringLit {
            value: Vec::new(),
            escaped: Vec::new(),
        };
        loop {
            match self.peek(0) {
                None | Some(b'\n') => {
                    return Err(self.error(
                        self.span(start, self.pos),
                        "unterminated string: a string must close on the line it opens",
                    ))
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(lit);
                }
                Some(b'\\') => {
                    let byte = self.escape(start)?;
                    lit.value.push(byte);
                    lit.escaped.push(true);
                }
                Some(c) => {
                    self.pos += 1;
                    lit.value.push(c);
                    lit.escaped.push(false);
                }
            }
        }
    }

    /// Decodes one escape at `self.pos` (the backslash). The set is SystemTap's: C's
    /// single-letter escapes, up to three octal digits, `\x` with hex digits, and any other
    /// character standing for itself (`\"`, `\\`, but also `\q` for `q`).
    fn escape(&mut self, string_start: usize) -> Result<u8, ScriptError> {
        let escape_start = self.pos;
        self.pos += 1;
        let Some(c) = self.peek(0) else {
            return Err(self.error(
                self.span(string_start, self.pos),
                "unterminated string: a string must close on the line it opens",
            ));
        };
        self.pos += 1;
        let simple = match c {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b't' => Some(b'\t'),
            b'n' => Some(b'\n'),
            b'v' => Some(0x0b),
            b'f' => Some(0x0c),
            b'r' => Some(b'\r'),
            b'\n' => {
                return Err(self.error(
                    self.span(string_start, escape_start),
                    "unterminated string: a string must close on the line it opens",
                ))
            }
            b'0'..=b'7' | b'x' => None,
            other => Some(other),
        };
        if let Some(byte) = simple {
            return Ok(byte);
        }
        let (radix, max_digits, first) = if c == b'x' {
            (16, usize::MAX, self.pos)
        } else {
            (8, 3, self.pos - 1)
        };
        let mut end = first;
        while end - first < max_digits
            && self
                .bytes
                .get(end)
                .is_some_and(|d| (*d as char).is_digit(radix))
        {
            end += 1;
        }
        self.pos = end;
        let span = self.span(escape_start, end);
        if end == first {
            return Err(self.error(span, "'\\x' must be followed by hex digits"));
        }
        let digits = &self.source.text()[first..end];
        match u32::from_str_radix(digits, radix) {
            Ok(value) if value <= 0xff => Ok(value as u8),
            _ => Err(self.error(span, "escape sequence out of range (more than 255)")),
        }
    }

    fn operator(&mut self) -> Result<TokenKind, ScriptError> {
        let rest = &self.source.text()[self.pos..];
        if let Some(word) = rest.strip_prefix('@').and_then(|after| {
            STATISTICS.iter().find(|word| {
                after.starts_with(**word)
                    && !after[word.len()..]
                        .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            })
        }) {
            self.pos += 1 + word.len();
            return Ok(TokenKind::Stat(word.to_string()));
        }
        if let Some(after) = rest.strip_prefix('@') {
            let length = after
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(after.len());
            if length > 0 && !after.starts_with(|c: char| c.is_ascii_digit()) {
                self.pos += 1 + length;
                return Ok(TokenKind::Macro(after[..length].to_string()));
            }
        }
        for (text, conditional) in [
            ("%(", Conditional::Open),
            ("%?", Conditional::Then),
            ("%:", Conditional::Else),
            ("%)", Conditional::Close),
        ] {
            if rest.starts_with(text) {
                self.pos += 2;
                return Ok(TokenKind::Conditional(conditional));
            }
        }
        if rest.starts_with("%{") {
            // Embedded C, skipped whole: what it holds is C, not script.
            let length = rest.find("%}").map_or(rest.len(), |end| end + 2);
            self.pos += length;
            return Ok(TokenKind::Refused(
                "rstap does not support embedded C (`%{ ... %}`): it runs no C in the kernel"
                    .to_string(),
            ));
        }
        if let Some((length, refusal)) = unsupported_construct(rest) {
            self.pos += length;
            return Ok(TokenKind::Refused(refusal));
        }
        if let Some(name) = target_variable(rest) {
            self.pos += 1 + name.len();
            return Ok(TokenKind::Target(name.to_string()));
        }
        match OPERATORS.iter().find(|(text, _)| rest.starts_with(text)) {
            Some((text, op)) => {
                self.pos += text.len();
                Ok(TokenKind::Op(*op))
            }
            None => {
                let width = rest.chars().next().map_or(1, char::len_utf8);
                Err(self.error(
                    self.span(self.pos, self.pos + width),
                    format!(
                        "unexpected character '{}'",
                        rest.chars().next().unwrap_or(' ')
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(text: &str) -> SourceMap {
        SourceMap::of_script(SourceFile::new("t.stp", text))
    }

    fn kinds(text: &str) -> Vec<TokenKind> {
        tokenize(&script(text), FileId::default(), &[])
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn lex_error(text: &str) -> String {
        tokenize(&script(text), FileId::default(), &[])
            .unwrap_err()
            .to_string()
    }

    /// The error the first refused token makes, as the parser reports it.
    fn refused_with(text: &str, args: &[String]) -> String {
        let source = script(text);
        tokenize(&source, FileId::default(), args)
            .unwrap()
            .into_iter()
            .find_map(|token| match token.kind {
                TokenKind::Refused(message) => {
                    Some(ScriptError::at(&source, token.span, message).to_string())
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("nothing refused in {text:?}"))
    }

    fn refused(text: &str) -> String {
        refused_with(text, &[])
    }

    fn string_value(text: &str) -> Vec<u8> {
        match &kinds(text)[0] {
            TokenKind::Str(lit) => lit.value.clone(),
            other => panic!("not a string: {other:?}"),
        }
    }

    #[test]
    fn comments_of_all_three_kinds_are_skipped() {
        assert_eq!(
            kinds("#!/usr/bin/stap\na // c\n/* x\n y */ b"),
            vec![
                TokenKind::Ident("a".into()),
                TokenKind::Ident("b".into()),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn unterminated_comment_points_at_its_start() {
        let err = lex_error("a\n  /* never closed");
        assert!(
            err.starts_with("t.stp:2:3: error: unterminated comment"),
            "{err}"
        );
    }

    #[test]
    fn numbers_in_three_bases_and_full_unsigned_range() {
        assert_eq!(
            kinds("10 0x1F 017 0 18446744073709551615")[..5],
            [
                TokenKind::Number(10),
                TokenKind::Number(31),
                TokenKind::Number(15),
                TokenKind::Number(0),
                TokenKind::Number(-1)
            ]
        );
        assert!(lex_error("18446744073709551616").contains("out of range"));
        assert!(lex_error("09").contains("invalid"));
        assert!(lex_error("12abc").contains("'12abc'"));
    }

    #[test]
    fn string_escapes_follow_systemtap() {
        assert_eq!(
            string_value(r#""\a\b\f\n\r\t\v\\\"""#),
            b"\x07\x08\x0c\n\r\t\x0b\\\""
        );
        assert_eq!(string_value(r#""\101\0609\x41z\q""#), b"A09Azq");
        assert!(lex_error(r#""\x""#).contains("hex digits"));
        assert!(lex_error(r#""\777""#).contains("out of range"));
        assert!(lex_error(r#""\x100""#).contains("out of range"));
    }

    #[test]
    fn escaped_bytes_are_marked() {
        let TokenKind::Str(lit) = &kinds(r#""%\045""#)[0] else {
            panic!("expected a string")
        };
        assert_eq!(lit.value, b"%%");
        assert_eq!(lit.escaped, vec![false, true]);
    }

    #[test]
    fn unterminated_string_is_an_error() {
        assert!(lex_error("\"abc\nx\"").starts_with("t.stp:1:1: error: unterminated string"));
        assert!(lex_error("\"abc").contains("unterminated string"));
    }

    #[test]
    fn longest_operator_wins() {
        assert_eq!(
            kinds("a.=b<<c<=d.e")[..9],
            [
                TokenKind::Ident("a".into()),
                TokenKind::Op(Op::DotAssign),
                TokenKind::Ident("b".into()),
                TokenKind::Op(Op::Shl),
                TokenKind::Ident("c".into()),
                TokenKind::Op(Op::Le),
                TokenKind::Ident("d".into()),
                TokenKind::Op(Op::Dot),
                TokenKind::Ident("e".into()),
            ]
        );
        assert_eq!(Op::Shl.text(), "<<");
    }

    #[test]
    fn statistics_and_compound_operators() {
        assert_eq!(
            kinds("a[k]++ <<< @count(x) --y <<= 2 ^= 3"),
            vec![
                TokenKind::Ident("a".into()),
                TokenKind::Op(Op::LBracket),
                TokenKind::Ident("k".into()),
                TokenKind::Op(Op::RBracket),
                TokenKind::Op(Op::Incr),
                TokenKind::Op(Op::Aggregate),
                TokenKind::Stat("count".into()),
                TokenKind::Op(Op::LParen),
                TokenKind::Ident("x".into()),
                TokenKind::Op(Op::RParen),
                TokenKind::Op(Op::Decr),
                TokenKind::Ident("y".into()),
                TokenKind::Op(Op::ShlAssign),
                TokenKind::Number(2),
                TokenKind::Op(Op::XorAssign),
                TokenKind::Number(3),
                TokenKind::Eof,
            ]
        );
        // Only the statistics operators themselves are statistics.
        assert_eq!(kinds("@sum_x")[0], TokenKind::Macro("sum_x".into()));
    }

    #[test]
    fn script_arguments_stand_for_tokens_or_strings() {
        let args = ["2 + x".to_string(), "sock_*".to_string()];
        let kinds = |text: &str| -> Vec<TokenKind> {
            tokenize(&script(text), FileId::default(), &args)
                .unwrap()
                .into_iter()
                .map(|t| t.kind)
                .collect()
        };
        assert_eq!(
            kinds("$1 @2 $# @#"),
            vec![
                TokenKind::Number(2),
                TokenKind::Op(Op::Plus),
                TokenKind::Ident("x".into()),
                TokenKind::Str(plain_string(b"sock_*")),
                TokenKind::Number(2),
                TokenKind::Str(plain_string(b"2")),
                TokenKind::Eof,
            ]
        );
        assert!(refused_with("x = $3", &args)
            .starts_with("t.stp:1:5: error: command line argument index 3 out of range [1-2]"));
    }

    #[test]
    fn stray_character_is_an_error() {
        assert!(lex_error("a @ b").starts_with("t.stp:1:3: error: unexpected character '@'"));
    }

    #[test]
    fn target_variables_and_members_are_tokens() {
        assert_eq!(
            kinds("$sk->__sk_common $return-1"),
            vec![
                TokenKind::Target("sk".into()),
                TokenKind::Op(Op::Arrow),
                TokenKind::Ident("__sk_common".into()),
                TokenKind::Target("return".into()),
                TokenKind::Op(Op::Minus),
                TokenKind::Number(1),
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn constructs_not_supported_yet_are_named_where_they_stand() {
        let error = refused("x = $sk$$ . $$parms");
        assert!(
            error.starts_with(
                "t.stp:1:5: error: not supported yet: `$sk$$` (kernel data printed as text)"
            ),
            "{error}"
        );
        let error = refused("x = $$locals");
        assert!(
            error.starts_with("t.stp:1:5: error: not supported yet: `$$locals`: the kernel's BTF"),
            "{error}"
        );
        assert_eq!(
            kinds("$$parms $$return"),
            [
                TokenKind::Target("$parms".into()),
                TokenKind::Target("$return".into()),
                TokenKind::Eof
            ]
        );
        assert!(refused("%{ int x; %}").contains("rstap does not support embedded C"));
    }
}
