//! Mistaken and hostile input, run against the built binary. Every case must end with one
//! error in rstap's words on stderr, nothing on stdout and exit status 1, before any probe
//! is attached: none of these needs a kernel that can trace.
//!
//! Cases are files under tests/bad_input/: `scripts/NAME.stp` is run as `rstap NAME.stp`,
//! `cli/NAME.args` holds one command-line argument per line. `NAME.stderr` beside each is the
//! exact error expected; `RSTAP_BLESS=1 cargo test --test bad_input` rewrites them from what
//! rstap prints, for review in the diff.

#[path = "support/run.rs"]
mod run;
#[path = "bad_input/signals.rs"]
mod signals;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use run::run_rstap;

fn case_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bad_input")
        .join(kind)
}

/// Every case of one kind, as (name, arguments).
fn cases(kind: &str, extension: &str) -> Vec<(String, Vec<String>)> {
    let mut cases: Vec<(String, Vec<String>)> = fs::read_dir(case_dir(kind))
        .expect("cannot list the cases")
        .map(|entry| entry.expect("cannot list the cases").path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let args = if extension == "args" {
                let text = fs::read_to_string(&path).expect("cannot read the arguments");
                text.lines().map(str::to_string).collect()
            } else {
                vec![format!("tests/bad_input/{kind}/{name}.{extension}")]
            };
            (name, args)
        })
        .collect();
    cases.sort();
    cases
}

/// Runs every case of `kind` and reports all mismatches at once.
fn check_cases(kind: &str, extension: &str) {
    let bless = std::env::var_os("RSTAP_BLESS").is_some();
    let cases = cases(kind, extension);
    assert!(cases.len() >= 5, "too few {kind} cases: {}", cases.len());
    let mut failures = Vec::new();
    for (name, args) in &cases {
        let output = run_rstap(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let expected_path = case_dir(kind).join(format!("{name}.stderr"));
        if bless {
            fs::write(&expected_path, stderr.as_bytes()).expect("cannot bless");
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        let mut problems = Vec::new();
        if output.status.code() != Some(1) {
            problems.push(format!("exit status {:?}, not 1", output.status));
        }
        if !output.stdout.is_empty() {
            problems.push(format!(
                "stdout is not empty: {:?}",
                String::from_utf8_lossy(&output.stdout)
            ));
        }
        if stderr != expected {
            problems.push(format!(
                "stderr differs\n--- expected ({})\n{expected}--- got\n{stderr}",
                expected_path.display()
            ));
        }
        if stderr.matches("error:").count() != 1 {
            problems.push(format!("not exactly one error:\n{stderr}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{kind}/{name} {args:?}:\n  {}",
                problems.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn bad_scripts_give_one_error_and_status_1() {
    check_cases("scripts", "stp");
}

#[test]
fn bad_command_lines_give_one_error_and_status_1() {
    check_cases("cli", "args");
}

#[test]
fn missing_command_is_never_started() {
    // Had rstap forked the shell, the shell's own "not found" would be on stderr.
    let output = run_rstap(&[
        "-c".into(),
        "rstap-no-such-command".into(),
        "-e".into(),
        "probe begin { printf(\"begun\\n\") }".into(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("sh:"), "{stderr}");
    assert!(output.stdout.is_empty(), "begin probes ran");
}

/// A script of `statements` copies of `statement` in one begin probe that then exits.
fn flat_script(statement: &str, statements: usize) -> String {
    let mut script = String::from("probe begin {\n");
    for _ in 0..statements {
        script.push_str(statement);
        script.push('\n');
    }
    script.push_str("exit()\n}\n");
    script
}

fn run_script_text(script: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.stp");
    fs::write(&path, script).unwrap();
    run_rstap(&[path.display().to_string()])
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let depth = 100_000;
    let nested = |open: &str, inner: &str, close: &str| {
        format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
    };
    for script in [
        format!("probe begin {{ x = {} }}", nested("(", "1", ")")),
        // Spaced: `--` is the decrement operator.
        format!("probe begin {{ x = {} }}", nested("- ", "1", "")),
        format!("probe begin {{ x = {} }}", nested("!", "1", "")),
        format!("probe begin {}", nested("{", "", "}")),
        format!("probe begin {{ {} }}", nested("if (1) ", "next", "")),
        format!("probe begin {{ x = 1{} }}", " + 1".repeat(depth)),
        format!("probe begin {{ x = {} }}", nested("1 ? 2 : ", "3", "")),
    ] {
        let output = run_script_text(&script);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{}: {stderr}", &script[..40]);
        assert!(
            stderr.contains("nesting is deeper than"),
            "{}: {stderr}",
            &script[..40]
        );
    }
}

#[test]
fn huge_flat_scripts_run() {
    // 200 000 statements, a 1 MiB string literal, 20 000 probes: big, but nothing in them
    // nests, so they must compile and run rather than overflow or crawl.
    let long_string = format!("x = \"{}\"", "a".repeat(1 << 20));
    let many_probes = "probe end { x = 1 }\n".repeat(20_000) + "probe begin { exit() }\n";
    for script in [
        flat_script("x = x + 1", 200_000),
        flat_script(&long_string, 1),
        many_probes,
    ] {
        let output = run_script_text(&script);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
