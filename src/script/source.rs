//! Script text in a map of source files, byte spans into them, and the
//! `FILE:LINE:COL: error:` rendering of diagnostics, one or several.

/// Which file of a [`SourceMap`] a span is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileId(u32);

/// A half-open byte range `[start, end)` into one file's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        Span { file, start, end }
    }

    /// The smallest span covering both, which must be in the same file.
    pub fn to(self, other: Span) -> Span {
        Span::new(
            self.file,
            self.start.min(other.start),
            self.end.max(other.end),
        )
    }
}

/// Every file a script is made of: the script itself first, then what it brings in (rstap's
/// tapsets, `-I` directories). Spans name their file, so an error anywhere shows its own
/// file's name, line and column.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
    /// What each file is: the script's, or a tapset, whose declarations a script gets
    /// only by using them.
    origins: Vec<Origin>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Script,
    Library,
    /// A tapset rstap made for the running kernel, whose aliases a written tapset's of
    /// the same name hide.
    Generated,
}

impl SourceMap {
    /// A map of the script alone.
    pub fn of_script(script: SourceFile) -> Self {
        SourceMap {
            files: vec![script],
            origins: vec![Origin::Script],
        }
    }

    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.add_as(file, Origin::Script)
    }

    /// Adds a tapset: its aliases, functions and globals join the script only if the
    /// script uses them (and its probes then with them).
    pub fn add_library(&mut self, file: SourceFile) -> FileId {
        self.add_as(file, Origin::Library)
    }

    /// Adds a tapset made for the running kernel, as [`SourceMap::add_library`]; an alias
    /// in it is hidden by one of the same name in a written tapset.
    pub fn add_generated(&mut self, file: SourceFile) -> FileId {
        self.add_as(file, Origin::Generated)
    }

    fn add_as(&mut self, file: SourceFile, origin: Origin) -> FileId {
        self.files.push(file);
        self.origins.push(origin);
        FileId((self.files.len() - 1) as u32)
    }

    pub fn is_library(&self, id: FileId) -> bool {
        self.origin(id) != Origin::Script
    }

    pub fn is_generated(&self, id: FileId) -> bool {
        self.origin(id) == Origin::Generated
    }

    fn origin(&self, id: FileId) -> Origin {
        self.origins
            .get(id.0 as usize)
            .copied()
            .unwrap_or(Origin::Script)
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        (0u32..).map(FileId).zip(&self.files)
    }

    /// The script the user gave, the map's first file.
    pub fn script(&self) -> &SourceFile {
        &self.files[0]
    }

    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// The text a span covers.
    pub fn slice(&self, span: Span) -> &str {
        let text = self.file(span.file).text();
        let end = span.end.min(text.len());
        text.get(span.start.min(end)..end).unwrap_or_default()
    }

    /// The token at a span's start and where it is, as SystemTap names the place of a
    /// run-time error: `operator '/' at t.stp:3:9`, `identifier 'y' at ...`, `keyword at ...`.
    pub fn near(&self, span: Span) -> String {
        self.file(span.file).near(span)
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
    fn location(&self, span: Span) -> String {
        let at = self.line_col(span.start);
        format!("{}:{}:{}", self.name, at.line, at.column)
    }

    /// See [`SourceMap::near`]; a span longer than one token is taken for its first.
    fn near(&self, span: Span) -> String {
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
            Some('$') => ("identifier", format!("${}", word(&text[1..]))),
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
    /// Where the error is, for showing several in the order of the script.
    place: Option<(FileId, usize)>,
}

impl ScriptError {
    /// An error about `span`; also for problems found after checking, such as a probe
    /// point that matches no kernel function.
    pub fn at(map: &SourceMap, span: Span, message: impl Into<String>) -> Self {
        let message = message.into();
        ScriptError {
            rendered: render(map, span, "error", &message),
            message,
            place: Some((span.file, span.start)),
        }
    }

    /// The error with a note for each probe point it was expanded from, innermost first,
    /// when it is in an alias's code rather than in `written`, the body the script wrote,
    /// or in the script's point (the last of `from`).
    pub fn expanded_from(mut self, map: &SourceMap, from: &[Span], written: Span) -> Self {
        let within = |span: &Span| {
            self.place
                .is_some_and(|(file, at)| file == span.file && (span.start..span.end).contains(&at))
        };
        if !within(&written) && !from.last().is_some_and(within) {
            for span in from {
                self.rendered.push('\n');
                self.rendered.push_str(&render(
                    map,
                    *span,
                    "note",
                    "expanded from this probe point",
                ));
            }
        }
        self
    }

    /// Several errors as one, in the order found, each shown in full, and a count after
    /// them; `message` is the first's. `None` if there are none.
    pub fn several(mut errors: Vec<ScriptError>) -> Option<ScriptError> {
        if errors.len() <= 1 {
            return errors.pop();
        }
        // Errors without a place (a bad -G value) first, then in the order of the script.
        errors.sort_by_key(|error| error.place);
        let count = errors.len();
        let shown = errors.len().min(MAX_ERRORS_SHOWN);
        let mut rendered: Vec<&str> = errors[..shown]
            .iter()
            .map(|e| e.rendered.as_str())
            .collect();
        let summary = if count > shown {
            format!("rstap: {count} errors in the script, the first {shown} shown")
        } else {
            format!("rstap: {count} errors in the script")
        };
        rendered.push(&summary);
        Some(ScriptError {
            rendered: rendered.join("\n\n"),
            place: errors[0].place,
            message: errors.swap_remove(0).message,
        })
    }

    /// The message alone, without location or source excerpt.
    /// An error that has no place in the script, such as a bad `-G` value.
    pub fn without_place(message: impl Into<String>) -> Self {
        let message = message.into();
        ScriptError {
            rendered: format!("rstap: error: {message}"),
            message,
            place: None,
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

/// `FILE:LINE:COL: KIND: MESSAGE`, the source line, and a caret line under the span.
fn render(map: &SourceMap, span: Span, kind: &str, message: &str) -> String {
    let source = map.file(span.file);
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
    format!(
        "{file}:{l}:{c}: {kind}: {message}\n{pad} |\n{gutter} | {line}\n{pad} | {indent}{marks}",
        file = source.name(),
        l = start.line,
        c = start.column,
        indent = caret_indent(&line, column),
        marks = "^".repeat(carets),
    )
}

/// Past this many errors, the rest of a script's are counted, not shown.
const MAX_ERRORS_SHOWN: usize = 20;

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

    fn span(start: usize, end: usize) -> Span {
        Span::new(FileId::default(), start, end)
    }

    #[test]
    fn an_error_among_trailing_carriage_returns_is_shown_past_the_line() {
        let long = format!("probe begin {{ printf(\"{}\", #x\r\r\r", "a".repeat(200));
        let source = SourceFile::new("t.stp", long.clone());
        let error = ScriptError::at(
            &SourceMap::of_script(source),
            span(long.len(), long.len()),
            "at the end",
        );
        assert!(error.to_string().ends_with("...^") || error.to_string().ends_with('^'));
        let short = "x = #\r\r";
        let source = SourceFile::new("t.stp", short);
        let error = ScriptError::at(
            &SourceMap::of_script(source),
            span(short.len(), short.len()),
            "here",
        );
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
        let err = ScriptError::at(
            &SourceMap::of_script(src),
            span(16, 19),
            "unknown function 'foo'",
        );
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
        let err = ScriptError::at(
            &SourceMap::of_script(src),
            span(start, start + 3),
            "unknown function 'foo'",
        );
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
        let err = ScriptError::at(
            &SourceMap::of_script(src),
            span(1, 1),
            "unexpected end of input",
        );
        assert!(err.to_string().ends_with("1 | x\n  |  ^"), "{err}");
    }

    #[test]
    fn spans_name_their_file_and_several_errors_show_in_script_order() {
        let mut map = SourceMap::of_script(SourceFile::new("script.stp", "probe begin {}\n"));
        let tapset = map.add(SourceFile::new("tapset/tcp.stp", "\n  probe tcp.x = y\n"));
        let in_tapset = Span::new(tapset, 9, 14);
        assert_eq!(map.slice(in_tapset), "tcp.x");
        assert_eq!(
            map.near(in_tapset),
            "identifier 'tcp' at tapset/tcp.stp:2:9"
        );
        let errors = ScriptError::several(vec![
            ScriptError::at(&map, in_tapset, "second"),
            ScriptError::at(&map, span(6, 11), "first"),
            ScriptError::without_place("no place"),
        ])
        .unwrap();
        assert_eq!(errors.message(), "no place");
        let shown = errors.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[0], "rstap: error: no place");
        assert_eq!(lines[2], "script.stp:1:7: error: first");
        assert_eq!(lines[7], "tapset/tcp.stp:2:9: error: second");
        assert_eq!(lines.last(), Some(&"rstap: 3 errors in the script"));
        assert!(ScriptError::several(Vec::new()).is_none());
    }

    #[test]
    fn location_is_file_line_column() {
        let src = SourceFile::new("a.stp", "\n\n  1/0");
        assert_eq!(src.location(span(5, 6)), "a.stp:3:4");
    }
}
