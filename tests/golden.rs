//! Golden tests: recorded event streams run through the seed scripts' bodies, without any
//! kernel, and compared line by line with the output SystemTap prints for them.
//!
//! Each `tests/golden/NAME.events` names its script in a `# script:` line and lists events
//! as `TIME_US TID COMM call|return ADDR FUNCTION`; `NAME.expected` is the exact output.

use std::path::{Path, PathBuf};

use rstap::output::Captured;
use rstap::runtime::{Flow, Interpreter, ProbeContext};
use rstap::script::{compile, FunctionVariant, ProbePointKind, SourceFile};

struct Event {
    time_us: i64,
    tid: i64,
    comm: String,
    is_return: bool,
    addr: u64,
    function: String,
}

impl ProbeContext for Event {
    fn tid(&self) -> i64 {
        self.tid
    }
    fn pid(&self) -> i64 {
        self.tid
    }
    fn cpu(&self) -> i64 {
        0
    }
    fn execname(&self) -> &str {
        &self.comm
    }
    fn addr(&self) -> u64 {
        self.addr
    }
    fn probefunc(&self) -> &str {
        &self.function
    }
    fn ppfunc(&self) -> &str {
        &self.function
    }
    fn pp(&self) -> &str {
        ""
    }
    fn gettimeofday_us(&self) -> i64 {
        self.time_us
    }
    fn target(&self) -> i64 {
        0
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn parse_event(line: &str) -> Event {
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 6, "bad event line: {line}");
    Event {
        time_us: fields[0].parse().unwrap(),
        tid: fields[1].parse().unwrap(),
        comm: fields[2].to_string(),
        is_return: match fields[3] {
            "call" => false,
            "return" => true,
            other => panic!("bad event kind {other}"),
        },
        addr: u64::from_str_radix(fields[4].trim_start_matches("0x"), 16).unwrap(),
        function: fields[5].to_string(),
    }
}

/// Runs one case and returns its output.
fn run_case(name: &str) -> String {
    let events_text = std::fs::read_to_string(golden_dir().join(format!("{name}.events"))).unwrap();
    let script_name = events_text
        .lines()
        .find_map(|l| l.strip_prefix("# script:"))
        .unwrap_or_else(|| panic!("{name}.events names no script"))
        .trim();
    let script_text = std::fs::read_to_string(golden_dir().join(script_name)).unwrap();
    let script = compile(&SourceFile::new(script_name, script_text)).unwrap();
    let probe_for = |want_return: bool| {
        script
            .probes
            .iter()
            .position(|p| {
                p.points.iter().any(|point| {
                    matches!(point.kind, ProbePointKind::KernelFunction { variant, .. }
                        if (variant == FunctionVariant::Return) == want_return)
                })
            })
            .unwrap()
    };
    let (call_probe, return_probe) = (probe_for(false), probe_for(true));
    let mut interp = Interpreter::new(&script);
    let mut out = Captured::default();
    for line in events_text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let event = parse_event(line);
        let probe = if event.is_return {
            return_probe
        } else {
            call_probe
        };
        assert_eq!(
            interp.run_probe(probe, &event, &mut out).unwrap(),
            Flow::Continue
        );
    }
    assert!(out.reports.is_empty(), "{:?}", out.reports);
    String::from_utf8(out.output).unwrap()
}

fn check(name: &str) {
    let expected = std::fs::read_to_string(golden_dir().join(format!("{name}.expected"))).unwrap();
    let actual = run_case(name);
    for (number, (want, got)) in expected.lines().zip(actual.lines()).enumerate() {
        assert_eq!(got, want, "{name}: line {} differs", number + 1);
    }
    assert_eq!(
        actual.lines().count(),
        expected.lines().count(),
        "{name}: line count differs"
    );
    assert!(actual.ends_with('\n'));
}

#[test]
fn blog_interleaved_threads() {
    check("blog-interleaved");
}

#[test]
fn blog_addr_variant() {
    check("blog-addr");
}

#[test]
fn nested_calls_and_unmatched_returns() {
    check("nested-and-unmatched");
}

#[test]
fn long_comm_and_wide_time_column() {
    check("long-comm-wide-time");
}
