//! The language, feature by feature: each `tests/features/NAME.stp` is run as `rstap
//! NAME.stp` (followed by the lines of `NAME.args`, if there is one) and must print exactly
//! `NAME.out` on stdout and `NAME.err` on stderr (nothing, if there is no `.err`). It must exit 1 if the expected stderr holds an error, 0 if not.
//! The cases use only begin, end and timer probes, so they run on any kernel;
//! `RSTAP_BLESS=1 cargo test --test features` rewrites the expectations from what rstap
//! prints, for review in the diff. Expected outputs follow SystemTap's documented formats.

#[path = "support/root.rs"]
mod root;
#[path = "support/run.rs"]
mod run;

use std::fs;
use std::path::Path;

use root::is_root;

#[test]
fn every_feature_case_prints_what_systemtap_would() {
    if !is_root() {
        eprintln!("skipped: rstap needs root to load programs, even for begin probes");
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/features");
    let bless = std::env::var_os("RSTAP_BLESS").is_some();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("cannot list tests/features")
        .map(|entry| entry.expect("cannot list tests/features").path())
        .filter(|path| path.extension().is_some_and(|e| e == "stp"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 10, "too few feature cases: {}", names.len());
    let mut failures = Vec::new();
    for name in &names {
        let mut args = vec![format!("tests/features/{name}.stp")];
        if let Ok(extra) = fs::read_to_string(dir.join(format!("{name}.args"))) {
            args.extend(extra.lines().map(str::to_string));
        }
        let output = run::run_rstap(&args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let (out_path, err_path) = (
            dir.join(format!("{name}.out")),
            dir.join(format!("{name}.err")),
        );
        if bless {
            fs::write(&out_path, stdout.as_bytes()).expect("cannot bless");
            if stderr.is_empty() {
                let _ = fs::remove_file(&err_path);
            } else {
                fs::write(&err_path, stderr.as_bytes()).expect("cannot bless");
            }
        }
        let expected_out = fs::read_to_string(&out_path).unwrap_or_default();
        let expected_err = fs::read_to_string(&err_path).unwrap_or_default();
        let failed = expected_err.contains("ERROR: ") || expected_err.contains(": error: ");
        let mut problems = Vec::new();
        if output.status.code() != Some(i32::from(failed)) {
            problems.push(format!("exit status {:?}", output.status));
        }
        if stdout != expected_out {
            problems.push(format!(
                "stdout differs\n--- expected\n{expected_out}--- got\n{stdout}"
            ));
        }
        if stderr != expected_err {
            problems.push(format!(
                "stderr differs\n--- expected\n{expected_err}--- got\n{stderr}"
            ));
        }
        if !problems.is_empty() {
            failures.push(format!("{name}:\n  {}", problems.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
