//! SystemTap's own example scripts (Debian's systemtap-doc, fetched into a cache outside the
//! repository by scripts/fetch-stap-examples.sh): where they are, how their `.meta` files
//! run them, and what rstap's first error refuses. Shared by tests/corpus.rs, which checks
//! each with `rstap -p 2`, and tests/vm/examples.rs, which runs each in a VM.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The examples directory, fetched into the cache the first time; an error says why not.
pub fn fetch_examples() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-stap-examples.sh");
    let output = Command::new(&script)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if output.status.success() {
        Ok(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        ))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The examples directory, or None (with a note on stderr) when it cannot be fetched here
/// and `CI` is not `true`.
pub fn examples_dir() -> Option<PathBuf> {
    match fetch_examples() {
        Ok(dir) => Some(dir),
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("cannot fetch SystemTap's examples: {why}")
        }
        Err(why) => {
            eprintln!("skipped: cannot fetch SystemTap's examples here: {why}");
            None
        }
    }
}

/// Every example script under `examples`, sorted; the libraries under `tapset/`
/// directories are not scripts and are left out.
pub fn scripts(examples: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() && path.file_name().is_some_and(|name| name == "tapset") {
                continue;
            }
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "stp") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(examples, &mut found);
    found.sort();
    found
}

/// The directory (subject) an example is in: `process` for `process/pstree.stp`.
pub fn directory(examples: &Path, script: &Path) -> String {
    script
        .strip_prefix(examples)
        .unwrap_or(script)
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One word of a `.meta` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The word with its quotes removed and nothing expanded.
    pub literal: String,
    /// The word for a POSIX shell that expands what the original line's shell would:
    /// `$$` and backquoted commands outside single quotes; everything else quoted.
    pub shell: String,
    /// Whether any of it was quoted (so that `'<x>'` is no redirection).
    pub quoted: bool,
}

/// Builds a [`Word`] as the tokenizer reads it.
#[derive(Default)]
struct WordBuilder {
    literal: String,
    shell: String,
    /// Characters for `shell` not yet written, to be single-quoted.
    pending: String,
    /// Whether the word has quotes, so that even an empty one is a word (`''`).
    quoted: bool,
}

impl WordBuilder {
    fn push(&mut self, c: char) {
        self.literal.push(c);
        self.pending.push(c);
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.shell
                .push_str(&format!("'{}'", self.pending.replace('\'', r"'\''")));
            self.pending.clear();
        }
    }

    /// `$$`, expanded by the shell that runs the word.
    fn push_pid(&mut self) {
        self.literal.push_str("$$");
        self.flush();
        self.shell.push_str("\"$$\"");
    }

    /// A backquoted command, run by the shell that runs the word.
    fn push_command(&mut self, command: &str) {
        self.literal.push_str(&format!("`{command}`"));
        self.flush();
        self.shell.push_str(&format!("\"$({command})\""));
    }

    fn finish(mut self) -> Word {
        self.flush();
        if self.shell.is_empty() {
            self.shell.push_str("''");
        }
        Word {
            literal: self.literal,
            shell: self.shell,
            quoted: self.quoted,
        }
    }
}

/// Splits a command line as a shell would, for what the `.meta` files use: single and
/// double quotes, backslashes, `$$` and backquoted commands.
pub fn words(line: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut word: Option<WordBuilder> = None;
    let mut quote = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let current = word.get_or_insert_with(WordBuilder::default);
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), c) => current.push(c),
            (Some('"'), '"') => quote = None,
            (None, '\'' | '"') => {
                quote = Some(c);
                current.quoted = true;
            }
            (_, '\\') => match chars.next() {
                Some(next) if quote.is_none() || matches!(next, '"' | '\\' | '$' | '`') => {
                    current.push(next)
                }
                Some(next) => {
                    current.push('\\');
                    current.push(next);
                }
                None => current.push('\\'),
            },
            (_, '$') if chars.peek() == Some(&'$') => {
                chars.next();
                current.push_pid();
            }
            (_, '`') => {
                let command: String = chars.by_ref().take_while(|&c| c != '`').collect();
                current.push_command(&command);
            }
            (None, c) if c.is_whitespace() => {
                if let Some(done) = word.take().filter(|w| !w.literal.is_empty() || w.quoted) {
                    words.push(done.finish());
                }
            }
            (_, c) => current.push(c),
        }
    }
    words.extend(
        word.filter(|w| !w.literal.is_empty() || w.quoted)
            .map(WordBuilder::finish),
    );
    words
}

/// The words of a command line, literally.
pub fn shell_words(line: &str) -> Vec<String> {
    words(line).into_iter().map(|w| w.literal).collect()
}

/// How a `.meta` line runs an example with stap, as rstap's arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// The options rstap takes too, each option and its value as separate words: `-c CMD`,
    /// `-x PID`, `-g` (which rstap refuses, naming guru mode), `-G NAME=VALUE`,
    /// `-D NAME=VALUE` and `-I DIR`. Left out: `-T` (the test sets its own time), `-p`,
    /// `-o`, `-d`, `-m` and the other options of stap's own (`-w`, `-v`, `--ldd`, ...).
    pub options: Vec<Word>,
    /// The script's arguments.
    pub operands: Vec<Word>,
    /// The command `-c` runs, literally.
    pub command: Option<String>,
}

/// stap's short options that take a value (from its getopt string).
const STAP_VALUE_OPTIONS: &str = "pIeEoRramcxDsldLSBJWGTC";
/// The options with a value that rstap takes as stap does.
const KEPT_VALUE_OPTIONS: &str = "cxGDI";

impl Invocation {
    /// The example's first `test_installcheck` line that runs it with stap, else its
    /// `test_check` line's; the default (no arguments) without either.
    pub fn from_meta(script: &Path) -> Invocation {
        let meta = std::fs::read_to_string(script.with_extension("meta")).unwrap_or_default();
        ["test_installcheck:", "test_check:"]
            .iter()
            .find_map(|key| {
                meta.lines()
                    .filter_map(|line| line.strip_prefix(key))
                    .find_map(|line| Invocation::parse(line, script))
            })
            .unwrap_or_default()
    }

    /// The invocation a `test_check` line alone gives (what `rstap -p 2` is checked with).
    pub fn from_check_line(script: &Path) -> Invocation {
        let meta = std::fs::read_to_string(script.with_extension("meta")).unwrap_or_default();
        meta.lines()
            .filter_map(|line| line.strip_prefix("test_check:"))
            .find_map(|line| Invocation::parse(line, script))
            .unwrap_or_default()
    }

    /// The invocation in `line` if it runs `stap` on `script`: stap's options are read as
    /// getopt does (`-gp4` is `-g -p 4`), up to the first shell operator.
    pub fn parse(line: &str, script: &Path) -> Option<Invocation> {
        let name = script.file_name()?.to_string_lossy().into_owned();
        let words = words(line);
        let stap = words
            .iter()
            .position(|w| w.literal == "stap" || w.literal.ends_with("/stap"))?;
        let mut invocation = Invocation::default();
        let mut seen_script = false;
        let mut rest = words[stap + 1..].iter();
        while let Some(word) = rest.next() {
            let text = word.literal.as_str();
            let operator = matches!(text, "||" | "|" | "&&" | ";" | "&")
                || text.starts_with(['>', '<'])
                || text.ends_with(['>', '<']);
            if operator && !word.quoted {
                break;
            }
            if text.starts_with("--") {
                continue;
            }
            if let Some(cluster) = text.strip_prefix('-').filter(|c| !c.is_empty()) {
                for (at, option) in cluster.char_indices() {
                    if !STAP_VALUE_OPTIONS.contains(option) {
                        if option == 'g' {
                            invocation.options.push(plain("-g"));
                        }
                        continue;
                    }
                    let attached = &cluster[at + option.len_utf8()..];
                    let value = if attached.is_empty() {
                        rest.next().cloned()
                    } else {
                        // The value's expansions, if any, are in the word's shell form;
                        // the .meta files attach only plain values.
                        Some(plain(attached))
                    };
                    if let Some(value) = value.filter(|_| KEPT_VALUE_OPTIONS.contains(option)) {
                        if option == 'c' {
                            invocation.command = Some(value.literal.clone());
                        }
                        invocation.options.push(plain(&format!("-{option}")));
                        invocation.options.push(value);
                    }
                    break;
                }
                continue;
            }
            if !seen_script && (text == name || text.ends_with(&format!("/{name}"))) {
                seen_script = true;
            } else if seen_script {
                invocation.operands.push(word.clone());
            }
        }
        seen_script.then_some(invocation)
    }

    /// The operands, literally.
    pub fn arguments(&self) -> Vec<String> {
        self.operands.iter().map(|w| w.literal.clone()).collect()
    }
}

/// A word with nothing to expand.
fn plain(text: &str) -> Word {
    let mut word = WordBuilder::default();
    text.chars().for_each(|c| word.push(c));
    word.finish()
}

/// The message of rstap's first error: the first line with `error: ` (from
/// `FILE:LINE:COL: error: ` or `rstap: error: `) or starting with `ERROR: ` (an error the
/// running script met), without that prefix; None without one.
pub fn first_error(stderr: &str) -> Option<&str> {
    stderr.lines().find_map(|line| {
        line.strip_prefix("ERROR: ")
            .or_else(|| line.split_once("error: ").map(|(_, message)| message))
    })
}

/// What a refusal is about, for the summary: the construct in `not supported yet: ...`,
/// else the message up to its first parenthesis, quote, colon or semicolon; a message that
/// starts with a quoted name (`'private' is a keyword ...`) has the name left out.
pub fn refusal_kind(message: &str) -> String {
    let kind = message
        .strip_prefix("not supported yet: ")
        .unwrap_or(message);
    let cut = |text: &str| {
        let end = text.find(['(', '\'', '"', ':', ';']).unwrap_or(text.len());
        text[..end].trim().to_string()
    };
    let quote = kind.chars().next().filter(|c| matches!(c, '\'' | '"'));
    match quote.and_then(|q| kind[1..].find(q)) {
        Some(end) => format!("'...' {}", cut(&kind[end + 2..])),
        None => cut(kind),
    }
}

/// What an example needs that rstap will not have, which leaves it out of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Excluded {
    EmbeddedC,
    GuruMode,
    UserSpaceProbes,
}

impl std::fmt::Display for Excluded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Excluded::EmbeddedC => "embedded C",
            Excluded::GuruMode => "guru mode",
            Excluded::UserSpaceProbes => "user-space probes",
        })
    }
}

/// The group an error message puts its example in, if it is about embedded C, guru mode
/// or a user-space probe point (`process(...)`, `process.begin`, ...).
pub fn excluded_by_message(message: &str) -> Option<Excluded> {
    if message.contains("embedded C") {
        Some(Excluded::EmbeddedC)
    } else if message.contains("guru mode") {
        Some(Excluded::GuruMode)
    } else if message.contains("user-space")
        || message.contains("user space")
        // A type from a user program's header: `@cast(p, "FILE", "</usr/include/stdio.h>")`.
        || message.contains("@cast to a type of \"</usr/")
    {
        Some(Excluded::UserSpaceProbes)
    } else {
        let point = message.strip_prefix("unknown probe point ")?;
        is_user_space_point(point.trim_start_matches(['\'', '"']))
            .then_some(Excluded::UserSpaceProbes)
    }
}

/// Whether a probe point is on a process: `process("PATH")...`, `process.begin`, or the
/// tapsets SystemTap builds on them for Java and Python (`java("...")`, `python3.function`)
/// and on the static markers of glib, qemu and stap itself (`glib.mem_alloc`,
/// `qemu.kvm.cpu_in`, `stap.pass0`).
fn is_user_space_point(point: &str) -> bool {
    [
        "process", "java", "python2", "python3", "glib", "qemu", "stap",
    ]
    .iter()
    .any(|name| {
        point
            .strip_prefix(name)
            .is_some_and(|rest| rest.trim_start().starts_with(['(', '.']))
    })
}

/// The group a script's source puts it in, for an example refused for something else
/// first: embedded C (`%{ ... %}`) or a probe point on a process (`process("PATH")...`,
/// `process.begin`), outside comments and strings.
pub fn excluded_by_source(source: &str) -> Option<Excluded> {
    let code = strip_comments_and_strings(source);
    let shebang = source.lines().next().filter(|line| line.starts_with("#!"));
    if shebang.is_some_and(|line| line.split_whitespace().any(|word| word == "-g")) {
        // A template run as `stap -g` (security-bandaid-template.stp).
        Some(Excluded::GuruMode)
    } else if code.contains("%{") {
        Some(Excluded::EmbeddedC)
    } else if has_process_point(&code) {
        Some(Excluded::UserSpaceProbes)
    } else {
        None
    }
}

/// Whether `code` has a word on which [`is_user_space_point`] holds (SystemTap has no
/// function or variable named `process`).
fn has_process_point(code: &str) -> bool {
    let bytes = code.as_bytes();
    (0..code.len()).any(|at| {
        let boundary = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        boundary && code.is_char_boundary(at) && is_user_space_point(&code[at..])
    })
}

/// The script without its comments (`#`, `//`, `/* */`) and with its string literals
/// emptied.
fn strip_comments_and_strings(source: &str) -> String {
    let mut code = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                chars.by_ref().take_while(|&c| c != '\n').for_each(drop);
                code.push('\n');
            }
            '/' if chars.peek() == Some(&'/') => {
                chars.by_ref().take_while(|&c| c != '\n').for_each(drop);
                code.push('\n');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                code.push(' ');
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                code.push_str("\"\"");
            }
            c => code.push(c),
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_lines_give_words() {
        assert_eq!(
            shell_words(r#" stap -p4 a.stp 'kernel.function("x")' "b c" d -T 1"#),
            [
                "stap",
                "-p4",
                "a.stp",
                "kernel.function(\"x\")",
                "b c",
                "d",
                "-T",
                "1"
            ]
        );
        assert_eq!(
            shell_words(r#"stap -c "find -name \"l*\" -printf \"%h\n\"""#),
            ["stap", "-c", r#"find -name "l*" -printf "%h\n""#]
        );
    }

    #[test]
    fn words_keep_what_the_shell_expands() {
        let words = words(r#"x $$ '$$vars' 0x`grep a /f | awk '{print $1}'` "p.$$""#);
        let shell: Vec<&str> = words.iter().map(|w| w.shell.as_str()).collect();
        assert_eq!(
            shell,
            [
                "'x'",
                "\"$$\"",
                "'$$vars'",
                "'0x'\"$(grep a /f | awk '{print $1}')\"",
                "'p.'\"$$\""
            ]
        );
        assert_eq!(words[2].literal, "$$vars");
    }

    #[test]
    fn invocations_keep_the_options_rstap_takes() {
        let script = Path::new("/x/psig.stp");
        let line = " stap -DMAXACTION=10000 -gp4 psig.stp -x $$ -T 1 --ldd -d /bin/x a";
        let invocation = Invocation::parse(line, script).unwrap();
        let options: Vec<&str> = invocation
            .options
            .iter()
            .map(|w| w.literal.as_str())
            .collect();
        assert_eq!(options, ["-D", "MAXACTION=10000", "-g", "-x", "$$"]);
        assert_eq!(invocation.arguments(), ["a"]);
        let line = r#" stap ltrace.stp -c "ls -l" x || echo PR14738"#;
        let invocation = Invocation::parse(line, Path::new("ltrace.stp")).unwrap();
        assert_eq!(invocation.command.as_deref(), Some("ls -l"));
        assert_eq!(invocation.arguments(), ["x"]);
        assert_eq!(
            Invocation::parse(" ./socktop -c 1", Path::new("socktop.stp")),
            None
        );
    }

    #[test]
    fn refusals_are_summed_up_by_kind() {
        assert_eq!(
            refusal_kind("not supported yet: associative arrays (`name[key]`)"),
            "associative arrays"
        );
        assert_eq!(
            refusal_kind("unknown probe point 'syscall.open'; supported: begin"),
            "unknown probe point"
        );
        assert_eq!(
            refusal_kind("'private' is a keyword and cannot be used here"),
            "'...' is a keyword and cannot be used here"
        );
    }

    #[test]
    fn exclusions_come_from_messages_and_sources() {
        assert_eq!(
            excluded_by_message("rstap does not support embedded C (`%{ ... %}`)"),
            Some(Excluded::EmbeddedC)
        );
        assert_eq!(
            excluded_by_message("guru mode (-g) is not supported"),
            Some(Excluded::GuruMode)
        );
        assert_eq!(
            excluded_by_message("unknown probe point 'process(\"php\").mark(\"x\")'; supported"),
            Some(Excluded::UserSpaceProbes)
        );
        assert_eq!(
            excluded_by_message("unknown probe point 'process.begin' (SystemTap's...)"),
            Some(Excluded::UserSpaceProbes)
        );
        assert_eq!(
            excluded_by_message("unknown probe point 'signal.send'"),
            None
        );
        assert_eq!(
            excluded_by_source("# process(\"x\")\nprobe begin { printf(\"process(%d)\") }"),
            None
        );
        assert_eq!(
            excluded_by_source("probe process(\"/bin/ls\").function(\"main\") {}"),
            Some(Excluded::UserSpaceProbes)
        );
        assert_eq!(
            excluded_by_source("%{ #include <x.h> %}"),
            Some(Excluded::EmbeddedC)
        );
        assert_eq!(
            excluded_by_source("#! /usr/bin/stap -g -m CVE\nprobe X.Y.Z {}"),
            Some(Excluded::GuruMode)
        );
        assert_eq!(
            excluded_by_message("unknown probe point 'glib.mem_alloc' (SystemTap's...)"),
            Some(Excluded::UserSpaceProbes)
        );
    }
}
