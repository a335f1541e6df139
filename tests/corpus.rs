//! SystemTap's own example scripts (Debian's systemtap-doc, fetched into a cache by
//! scripts/fetch-stap-examples.sh) through rstap's front end, `rstap -p 2`: each one is
//! accepted, or refused with an error that names what rstap does not take. A generic parse
//! error ("expected ..., found ...") fails the test: it would tell a SystemTap user nothing.
//! Each runs with the arguments its `.meta` file's `test_check` line gives it; the libraries
//! under `tapset/` directories are not scripts and are left out. The counts per directory
//! are printed for the README.

// Shared with the VM test that runs the examples, which uses more of it.
#[allow(dead_code)]
#[path = "support/examples.rs"]
mod examples;

use std::collections::BTreeMap;
use std::process::Command;

use examples::{examples_dir, first_error, refusal_kind, scripts, Invocation};

/// How one example fared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Accepted,
    /// Refused with an error that names the construct or point rstap lacks.
    Refused(String),
    /// Refused with an error that says what was expected, not what is missing.
    Generic(String),
}

fn classify(status_ok: bool, stderr: &str) -> Outcome {
    if status_ok {
        return Outcome::Accepted;
    }
    let message = first_error(stderr).unwrap_or(stderr.lines().next().unwrap_or_default());
    if message.starts_with("expected ")
        || message.starts_with("unexpected ")
        || message.contains("is not supported here")
    {
        Outcome::Generic(message.to_string())
    } else {
        Outcome::Refused(message.to_string())
    }
}

#[test]
fn every_example_is_accepted_or_refused_by_name() {
    let Some(examples) = examples_dir() else {
        return;
    };
    let scripts = scripts(&examples);
    assert!(scripts.len() > 150, "only {} examples found", scripts.len());

    let mut by_directory: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut kinds: BTreeMap<String, u32> = BTreeMap::new();
    let mut generic = Vec::new();
    for script in &scripts {
        let output = Command::new(env!("CARGO_BIN_EXE_rstap"))
            .arg("-p")
            .arg("2")
            .arg(script)
            .args(Invocation::from_check_line(script).arguments())
            .output()
            .expect("cannot run rstap");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let relative = script.strip_prefix(&examples).unwrap_or(script);
        let counts = by_directory
            .entry(examples::directory(&examples, script))
            .or_default();
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
    let generic = "t.stp:3:1: error: expected '{', found 'if'\n";
    assert!(matches!(classify(false, generic), Outcome::Generic(_)));
    assert!(matches!(
        classify(false, "rstap: error: unexpected character '#'"),
        Outcome::Generic(_)
    ));
}
