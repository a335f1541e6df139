//! SystemTap's own example scripts (Debian's systemtap-doc, fetched into a cache by
//! scripts/fetch-stap-examples.sh) through rstap's front end, `rstap -p 2`: each one is
//! accepted, or refused with an error that names what rstap does not take. A generic parse
//! error ("expected ..., found ...") fails the test: it would tell a SystemTap user nothing.
//! Each runs with the arguments its `.meta` file's `test_check` line gives it; the libraries
//! under `tapset/` directories are not scripts and are left out. The counts per directory
//! are printed for the README.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// How one example fared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Accepted,
    /// Refused with an error that names the construct or point rstap lacks.
    Refused(String),
    /// Refused with an error that says what was expected, not what is missing.
    Generic(String),
}

/// The message of rstap's first error line, without `FILE:LINE:COL: error: ` or `rstap: error: `.
fn first_error(stderr: &str) -> &str {
    let line = stderr.lines().next().unwrap_or_default();
    line.split_once("error: ")
        .map_or(line, |(_, message)| message)
}

fn classify(status_ok: bool, stderr: &str) -> Outcome {
    if status_ok {
        return Outcome::Accepted;
    }
    let message = first_error(stderr);
    if message.starts_with("expected ")
        || message.starts_with("unexpected ")
        || message.contains("is not supported here")
    {
        Outcome::Generic(message.to_string())
    } else {
        Outcome::Refused(message.to_string())
    }
}

/// What a refusal is about, for the summary: the construct in `not supported yet: ...`,
/// else the message up to its first quote or colon.
fn refusal_kind(message: &str) -> String {
    let kind = message
        .strip_prefix("not supported yet: ")
        .unwrap_or(message);
    let end = kind.find(['(', '\'', '"', ':', ';']).unwrap_or(kind.len());
    kind[..end].trim().to_string()
}

fn examples_dir() -> Option<PathBuf> {
    let output = Command::new(Path::new(REPO).join("scripts/fetch-stap-examples.sh"))
        .output()
        .expect("cannot run scripts/fetch-stap-examples.sh");
    if output.status.success() {
        return Some(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        ));
    }
    let why = String::from_utf8_lossy(&output.stderr);
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("cannot fetch SystemTap's examples: {why}");
    }
    eprintln!("skipped: cannot fetch SystemTap's examples here: {why}");
    None
}

/// Splits a command line as a shell would, for the quotes the `.meta` files use.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// The arguments the example's `.meta` file runs it with (`test_check: stap -p4 NAME.stp
/// ARG...`), up to the first option after the script.
fn meta_arguments(script: &Path) -> Vec<String> {
    let meta = std::fs::read_to_string(script.with_extension("meta")).unwrap_or_default();
    let Some(line) = meta.lines().find_map(|l| l.strip_prefix("test_check:")) else {
        return Vec::new();
    };
    let name = script.file_name().unwrap_or_default().to_string_lossy();
    let words = shell_words(line);
    let Some(at) = words.iter().position(|w| w.ends_with(name.as_ref())) else {
        return Vec::new();
    };
    words[at + 1..]
        .iter()
        .take_while(|w| !w.starts_with('-'))
        .cloned()
        .collect()
}

fn scripts_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() && path.file_name().is_some_and(|name| name == "tapset") {
            continue;
        }
        if path.is_dir() {
            scripts_under(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "stp") {
            found.push(path);
        }
    }
}

#[test]
fn meta_lines_give_arguments() {
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
}

#[test]
fn every_example_is_accepted_or_refused_by_name() {
    let Some(examples) = examples_dir() else {
        return;
    };
    let mut scripts = Vec::new();
    scripts_under(&examples, &mut scripts);
    scripts.sort();
    assert!(scripts.len() > 150, "only {} examples found", scripts.len());

    let mut by_directory: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut kinds: BTreeMap<String, u32> = BTreeMap::new();
    let mut generic = Vec::new();
    for script in &scripts {
        let output = Command::new(env!("CARGO_BIN_EXE_rstap"))
            .arg("-p")
            .arg("2")
            .arg(script)
            .args(meta_arguments(script))
            .output()
            .expect("cannot run rstap");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let relative = script.strip_prefix(&examples).unwrap_or(script);
        let directory = relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let counts = by_directory.entry(directory).or_default();
        match classify(output.status.success(), &stderr) {
            Outcome::Accepted => counts.0 += 1,
            Outcome::Refused(message) => {
                counts.1 += 1;
                *kinds.entry(refusal_kind(&message)).or_default() += 1;
            }
            Outcome::Generic(message) => {
                counts.1 += 1;
                generic.push(format!("{}: {message}", relative.display()));
            }
        }
    }

    let (accepted, refused) = by_directory
        .values()
        .fold((0, 0), |(a, r), (da, dr)| (a + da, r + dr));
    println!("SystemTap examples through `rstap -p 2`: {accepted} accepted, {refused} refused");
    println!("| directory | accepted | refused |\n| --- | ---: | ---: |");
    for (directory, (a, r)) in &by_directory {
        println!("| {directory} | {a} | {r} |");
    }
    let mut kinds: Vec<(String, u32)> = kinds.into_iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!("first refusal, by what it names:");
    for (kind, count) in &kinds {
        println!("{count:5} {kind}");
    }
    assert!(
        generic.is_empty(),
        "refused with a generic error, naming nothing:\n{}",
        generic.join("\n")
    );
}

#[test]
fn refusals_are_told_from_generic_errors() {
    assert_eq!(classify(true, ""), Outcome::Accepted);
    let named = "t.stp:1:2: error: not supported yet: associative arrays (`name[key]`)\n";
    assert_eq!(
        classify(false, named),
        Outcome::Refused("not supported yet: associative arrays (`name[key]`)".into())
    );
    assert_eq!(
        refusal_kind("not supported yet: associative arrays (`name[key]`)"),
        "associative arrays"
    );
    assert_eq!(
        refusal_kind("unknown probe point 'syscall.open'; supported: begin"),
        "unknown probe point"
    );
    let generic = "t.stp:3:1: error: expected '{', found 'if'\n";
    assert!(matches!(classify(false, generic), Outcome::Generic(_)));
    assert!(matches!(
        classify(false, "rstap: error: unexpected character '#'"),
        Outcome::Generic(_)
    ));
}
