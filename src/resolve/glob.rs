//! Shell-style wildcard patterns as SystemTap matches them (fnmatch without flags): `*` and `?`
//! also match `/`, `[...]` classes with ranges and `!`/`^` negation, `\` quotes the next
//! character.
//!
//! Matching is the classic two-cursor algorithm that only ever resumes from the most recent
//! `*`, so a pattern like `*a*a*a*b` against a long string costs O(pattern × text), never an
//! exponential number of retries.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GlobError {
    #[error("invalid pattern `{pattern}`: `[` at offset {offset} has no closing `]`")]
    UnterminatedClass { pattern: String, offset: usize },
    #[error("invalid pattern `{pattern}`: it ends with a lone `\\`")]
    TrailingBackslash { pattern: String },
    #[error("invalid pattern `{pattern}`: range `{low}-{high}` is reversed")]
    ReversedRange {
        pattern: String,
        low: char,
        high: char,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `*`: any run of characters, possibly empty.
    Star,
    /// Exactly one character accepted by the matcher.
    One(CharMatcher),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CharMatcher {
    Literal(char),
    Any,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl CharMatcher {
    fn accepts(&self, c: char) -> bool {
        match self {
            CharMatcher::Literal(l) => *l == c,
            CharMatcher::Any => true,
            CharMatcher::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

/// A compiled wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    tokens: Vec<Token>,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    // Consecutive stars are one star; keeping one keeps matching linear.
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::One(CharMatcher::Any));
                    i += 1;
                }
                '\\' => {
                    let quoted = *chars
                        .get(i + 1)
                        .ok_or_else(|| GlobError::TrailingBackslash {
                            pattern: pattern.to_string(),
                        })?;
                    tokens.push(Token::One(CharMatcher::Literal(quoted)));
                    i += 2;
                }
                '[' => {
                    let (token, next) = parse_class(pattern, &chars, i)?;
                    tokens.push(token);
                    i = next;
                }
                c => {
                    tokens.push(Token::One(CharMatcher::Literal(c)));
                    i += 1;
                }
            }
        }
        Ok(Glob {
            pattern: pattern.to_string(),
            tokens,
        })
    }

    /// True when the pattern has no wildcard, so it matches exactly one string.
    pub fn is_literal(&self) -> bool {
        self.tokens
            .iter()
            .all(|t| matches!(t, Token::One(CharMatcher::Literal(_))))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, text: &str) -> bool {
        let tokens = &self.tokens;
        let mut t = 0; // token cursor
        let mut s = 0; // byte cursor into text
                       // Where to resume after a mismatch: the token after the last `*`, and the text
                       // position that `*` currently extends to.
        let mut resume: Option<(usize, usize)> = None;
        loop {
            let next_char = text[s..].chars().next();
            match (tokens.get(t), next_char) {
                (Some(Token::Star), _) => {
                    t += 1;
                    resume = Some((t, s));
                    continue;
                }
                (Some(Token::One(matcher)), Some(c)) if matcher.accepts(c) => {
                    t += 1;
                    s += c.len_utf8();
                    continue;
                }
                (None, None) => return true,
                _ => {}
            }
            // Mismatch: let the last `*` swallow one more character, or fail.
            match resume {
                Some((after_star, star_end)) => match text[star_end..].chars().next() {
                    Some(c) => {
                        let star_end = star_end + c.len_utf8();
                        resume = Some((after_star, star_end));
                        t = after_star;
                        s = star_end;
                    }
                    None => return false,
                },
                None => return false,
            }
        }
    }
}

impl std::fmt::Display for Glob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.pattern)
    }
}

/// Parses the class starting at `chars[open] == '['`; returns it and the index after `]`.
fn parse_class(pattern: &str, chars: &[char], open: usize) -> Result<(Token, usize), GlobError> {
    let unterminated = || GlobError::UnterminatedClass {
        pattern: pattern.to_string(),
        offset: open,
    };
    let mut i = open + 1;
    let negated = matches!(chars.get(i), Some('!') | Some('^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i).ok_or_else(unterminated)?;
        // A `]` right after the opening (or after the negation) is a member, not the end.
        if c == ']' && !first {
            return Ok((Token::One(CharMatcher::Class { negated, ranges }), i + 1));
        }
        first = false;
        let (low, after_low) = class_char(chars, i).ok_or_else(unterminated)?;
        i = after_low;
        let is_range = chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&n| n != ']');
        if is_range {
            let (high, after_high) = class_char(chars, i + 1).ok_or_else(unterminated)?;
            if high < low {
                return Err(GlobError::ReversedRange {
                    pattern: pattern.to_string(),
                    low,
                    high,
                });
            }
            ranges.push((low, high));
            i = after_high;
        } else {
            ranges.push((low, low));
        }
    }
}

/// One member character inside a class, honouring `\` quoting.
fn class_char(chars: &[char], i: usize) -> Option<(char, usize)> {
    match chars.get(i)? {
        '\\' => chars.get(i + 1).map(|&c| (c, i + 2)),
        &c => Some((c, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).unwrap().matches(text)
    }

    #[test]
    fn literal_matches_only_itself() {
        assert!(m("sock_poll", "sock_poll"));
        assert!(!m("sock_poll", "sock_pol"));
        assert!(!m("sock_poll", "sock_polls"));
        assert!(m("", ""));
        assert!(!m("", "x"));
    }

    #[test]
    fn star_matches_any_run_including_slash() {
        assert!(m("*", ""));
        assert!(m("*", "net/socket.c"));
        assert!(m("sock_*", "sock_"));
        assert!(m("sock_*", "sock_sendmsg"));
        assert!(!m("sock_*", "__sock_sendmsg"));
        assert!(m("*/socket.c", "net/socket.c"));
        assert!(m("*socket.c", "net/socket.c"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("*sys_*", "__sys_connect"));
    }

    #[test]
    fn star_backtracks_to_later_occurrence() {
        assert!(m("*.c", "a.c.c"));
        assert!(m("*ab", "aab"));
        assert!(m("a*ab", "aaab"));
        assert!(!m("*ab", "aba"));
    }

    #[test]
    fn question_mark_matches_exactly_one_char() {
        assert!(m("sock_?ead", "sock_read"));
        assert!(!m("sock_?ead", "sock_ead"));
        assert!(m("??", "é/"));
        assert!(!m("?", ""));
    }

    #[test]
    fn classes_sets_ranges_and_negation() {
        assert!(m("[abc]x", "bx"));
        assert!(!m("[abc]x", "dx"));
        assert!(m("v[0-9]", "v7"));
        assert!(!m("v[0-9]", "va"));
        assert!(m("[!x]", "y"));
        assert!(!m("[!x]", "x"));
        assert!(m("[^x]", "y"));
        assert!(!m("[^a-c]", "b"));
        assert!(m("[a-cx-z]", "y"));
        assert!(!m("[a-cx-z]", "m"));
    }

    #[test]
    fn class_special_positions() {
        assert!(m("[]a]", "]"));
        assert!(m("[!]a]", "b"));
        assert!(!m("[!]a]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("[-a]", "-"));
        assert!(m("[\\]]", "]"));
        assert!(m("[*?]", "*"));
        assert!(!m("[*?]", "x"));
    }

    #[test]
    fn backslash_quotes_metacharacters() {
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("\\?", "?"));
        assert!(!m("\\?", "x"));
        assert!(m("\\[x]", "[x]"));
    }

    #[test]
    fn is_literal_and_as_str() {
        assert!(Glob::new("sock_poll").unwrap().is_literal());
        assert!(Glob::new("a\\*b").unwrap().is_literal());
        assert!(!Glob::new("sock_*").unwrap().is_literal());
        assert!(!Glob::new("a?").unwrap().is_literal());
        assert!(!Glob::new("[ab]").unwrap().is_literal());
        assert_eq!(Glob::new("a\\*b").unwrap().as_str(), "a\\*b");
        assert_eq!(Glob::new("*@x").unwrap().to_string(), "*@x");
    }

    #[test]
    fn malformed_patterns_are_errors() {
        assert!(matches!(
            Glob::new("ab[cd"),
            Err(GlobError::UnterminatedClass { offset: 2, .. })
        ));
        assert!(matches!(
            Glob::new("[]"),
            Err(GlobError::UnterminatedClass { .. })
        ));
        assert!(matches!(
            Glob::new("ab\\"),
            Err(GlobError::TrailingBackslash { .. })
        ));
        assert!(matches!(
            Glob::new("[z-a]"),
            Err(GlobError::ReversedRange {
                low: 'z',
                high: 'a',
                ..
            })
        ));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let text = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(50));
        let start = std::time::Instant::now();
        assert!(!m(&pattern, &text));
        assert!(m(&format!("{}*", "*a".repeat(50)), &text));
        // Exponential backtracking would not finish within minutes; linear-per-star is ~ms.
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }
}
