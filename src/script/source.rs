//! Script text, byte spans into it, and the `FILE:LINE:COL: error:` rendering of diagnostics.

/// A half-open byte range `[start, end)` into a [`SourceFile`]'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A script as the user gave it: a name for messages (a path, or `<input>` for `-e`) and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    name: String,
    text: String,
    /// Byte offset of the first character of every line, so lookups are a binary search.
    line_starts: Vec<usize>,
}

/// A 1-based line and a 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            name: name.into(),
            text,
            line_starts,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Where a byte offset lies; offsets past the end (or inside a character) are clamped.
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = self.floor_char_boundary(offset.min(self.text.len()));
        let line_index = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let line_start = self.line_starts[line_index];
        LineCol {
            line: line_index + 1,
            column: self.text[line_start..offset].chars().count() + 1,
        }
    }

    /// `FILE:LINE:COL` of a span's start, the form SystemTap uses in run-time errors.
    pub fn location(&self, span: Span) -> String {
        let at = self.line_col(span.start);
        format!("{}:{}:{}", self.name, at.line, at.column)
    }

    /// The token at a span's start and where it is, as SystemTap names the place of a
    /// run-time error: `operator '/' at t.stp:3:9`, `identifier 'y' at ...`, `keyword at ...`.
    /// A span longer than one token is taken for its first.
    pub fn near(&self, span: Span) -> String {
        let text = &self.text[self.floor_char_boundary(span.start.min(self.text.len()))..];
        let word = |text: &str| {
            let end = text
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(text.len());
            text[..end].to_string()
        };
        let (kind, content) = match text.chars().next() {
            Some(c) if c.is_ascii_digit() => ("number", word(text)),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => ("identifier", word(text)),
            Some('"') => {
                let body = &text[1..];
                (
                    "string",
                    body[..body.find('"').unwrap_or(body.len())].to_string(),
                )
            }
            Some('@') => ("operator", format!("@{}", word(&text[1..]))),
            _ => (
                "operator",
                super::lexer::operator_at(text)
                    .map_or_else(|| text.chars().take(1).collect(), str::to_string),
            ),
        };
        if kind == "identifier" && super::parser::KEYWORDS.contains(&content.as_str()) {
            return format!("keyword at {}", self.location(span));
        }
        format!("{kind} '{content}' at {}", self.location(span))
    }

    fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&next| next - 1);
        self.text[start..end].trim_end_matches('\r')
    }

    fn floor_char_boundary(&self, mut offset: usize) -> usize {
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }
}

/// An error in a script, already rendered against its source so it can outlive the text.
///
/// The first line is `FILE:LINE:COL: error: MESSAGE`; then the source line and a caret line
/// under the offending span.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rendered}")]
pub struct ScriptError {
    message: String,
    rendered: String,
}

impl ScriptError {
    /// An error about `span` of `source`; also for problems found after checking, such as a
    /// probe point that matches no kernel function.
    pub fn at(source: &SourceFile, span: Span, message: impl Into<String>) -> Self {
        let message = message.into();
        let start = source.line_col(span.start);
        let line = source.line_text(start.line);
        // The quoted line leaves out the carriage returns that end it: a span on them is
        // shown just past the line's end.
        let past_end = line.chars().count() + 1;
        let column = start.column.min(past_end);
        // A span running past its first line is underlined to that line's end.
        let end_column = if source.line_col(span.end).line == start.line {
            source.line_col(span.end).column.min(past_end)
        } else {
            past_end
        };
        let carets = end_column.saturating_sub(column).max(1);
        let (line, column, carets) = excerpt(line, column, carets);
        let gutter = start.line.to_string();
        let pad = " ".repeat(gutter.len());
        let rendered = format!(
            "{file}:{l}:{c}: error: {message}\n{pad} |\n{gutter} | {line}\n{pad} | {indent}{marks}",
            file = source.name(),
            l = start.line,
            c = start.column,
            indent = caret_indent(&line, column),
            marks = "^".repeat(carets),
        );
        ScriptError { message, rendered }
    }

    /// The message alone, without location or source excerpt.
    /// An error that has no place in the script, such as a bad `-G` value.
    pub fn without_place(message: impl Into<String>) -> Self {
        let message = message.into();
        ScriptError {
            rendered: format!("rstap: error: {message}"),
            message,
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

/// How much of a long source line an error quotes: a window around the error.
const EXCERPT_CHARS: usize = 160;
const ELLIPSIS: &str = "...";

/// The part of `line` an error quotes, with the error's column and caret count in it: the
/// whole line when short, else a window of it around `column`, its cut ends marked.
fn excerpt(line: &str, column: usize, carets: usize) -> (String, usize, usize) {
    let length = line.chars().count();
    if length <= EXCERPT_CHARS {
        return (line.to_string(), column, carets);
    }
    let first = column.saturating_sub(1 + EXCERPT_CHARS / 2);
    let last = (first + EXCERPT_CHARS).min(length);
    let mut text: String = line.chars().skip(first).take(last - first).collect();
    let mut column = column - first;
    if first > 0 {
        text.insert_str(0, ELLIPSIS);
        column += ELLIPSIS.len();
    }
    // The underline stops where the quoted part of the line does.
    let carets = carets.min(text.chars().count() + 1 - column).max(1);
    if last < length {
        text.push_str(ELLIPSIS);
    }
    (text, column, carets)
}

/// Spaces up to `column`, keeping tabs so the caret lines up in a terminal.
fn caret_indent(line: &str, column: usize) -> String {
    line.chars()
        .take(column - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_among_trailing_carriage_returns_is_shown_past_the_line() {
        let long = format!("probe begin {{ printf(\"{}\", #x\r\r\r", "a".repeat(200));
        let source = SourceFile::new("t.stp", long.clone());
        let error = ScriptError::at(&source, Span::new(long.len(), long.len()), "at the end");
        assert!(error.to_string().ends_with("...^") || error.to_string().ends_with('^'));
        let short = "x = #\r\r";
        let source = SourceFile::new("t.stp", short);
        let error = ScriptError::at(&source, Span::new(short.len(), short.len()), "here");
        assert_eq!(
            error.to_string(),
            "t.stp:1:8: error: here\n  |\n1 | x = #\n  |      ^",
            "the column counts the carriage returns, the caret stops past the quoted line"
        );
    }

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let src = SourceFile::new("t.stp", "ab\nçé x\n");
        assert_eq!(src.line_col(0), LineCol { line: 1, column: 1 });
        assert_eq!(src.line_col(3), LineCol { line: 2, column: 1 });
        // 'x' follows two two-byte characters and a space.
        assert_eq!(src.line_col(8), LineCol { line: 2, column: 4 });
        assert_eq!(src.line_col(100), LineCol { line: 3, column: 1 });
    }

    #[test]
    fn error_shows_location_line_and_carets() {
        let src = SourceFile::new("s.stp", "probe begin {\n  foo(1)\n}\n");
        let err = ScriptError::at(&src, Span::new(16, 19), "unknown function 'foo'");
        assert_eq!(
            err.to_string(),
            "s.stp:2:3: error: unknown function 'foo'\n  |\n2 |   foo(1)\n  |   ^^^"
        );
        assert_eq!(err.message(), "unknown function 'foo'");
    }

    #[test]
    fn a_long_line_is_quoted_around_the_error_only() {
        let text = format!("probe begin {{ {}foo(1) }}", "x = 1; ".repeat(10_000));
        let src = SourceFile::new("s.stp", text.clone());
        let start = text.find("foo").unwrap();
        let err = ScriptError::at(&src, Span::new(start, start + 3), "unknown function 'foo'");
        let rendered = err.to_string();
        assert!(rendered.len() < 600, "{} bytes", rendered.len());
        let lines: Vec<&str> = rendered.lines().collect();
        assert!(lines[0].starts_with(&format!("s.stp:1:{}: error:", start + 1)));
        let quoted = lines[2].trim_start_matches("1 | ");
        let caret = lines[3].find('^').unwrap() - "  | ".len();
        assert!(quoted.starts_with("..."), "{quoted}");
        assert_eq!(&quoted[caret..caret + 3], "foo", "{rendered}");
        assert!(lines[3].ends_with("^^^"));
    }

    #[test]
    fn empty_span_still_gets_one_caret() {
        let src = SourceFile::new("s.stp", "x");
        let err = ScriptError::at(&src, Span::new(1, 1), "unexpected end of input");
        assert!(err.to_string().ends_with("1 | x\n  |  ^"), "{err}");
    }

    #[test]
    fn location_is_file_line_column() {
        let src = SourceFile::new("a.stp", "\n\n  1/0");
        assert_eq!(src.location(Span::new(5, 6)), "a.stp:3:4");
    }
}
