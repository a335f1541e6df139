//! tracer-bench: the guest-side measurements of rstap's benchmark (bench/run.sh), made the
//! same way for every tracer so that the figures compare.
//!
//! - `lifetime OUT -- CMD...` becomes CMD (same pid, so a tracer filtering on it sees it)
//!   and writes how long CMD lived, in seconds, to OUT.
//! - `peak-rss OUT -- CMD...` runs CMD and writes its peak resident set in KiB to OUT.
//! - `first-live --watch FILE --out OUT -- CMD...` starts a tracer and measures how long
//!   it takes until the tracer's output shows a probe hit (see `first_live.rs`).

mod clock;
mod first_live;
mod lifetime;
mod peak_rss;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: tracer-bench lifetime OUT -- CMD [ARGS...]
       tracer-bench peak-rss OUT -- CMD [ARGS...]
       tracer-bench first-live --watch FILE --out OUT [--interval-ms MS] [--timeout-s S] -- CMD [ARGS...]";

#[derive(Debug, PartialEq, Eq)]
enum Request {
    Lifetime {
        out: PathBuf,
        command: Vec<OsString>,
    },
    PeakRss {
        out: PathBuf,
        command: Vec<OsString>,
    },
    FirstLive(first_live::Options),
}

/// Splits `ARGS... -- CMD...` into the options and a non-empty command.
fn split_command(args: Vec<OsString>) -> Result<(Vec<OsString>, Vec<OsString>), String> {
    let dashes = args
        .iter()
        .position(|arg| arg == "--")
        .ok_or("missing -- before the command")?;
    let mut options = args;
    let command = options.split_off(dashes + 1);
    options.pop();
    if command.is_empty() {
        return Err("no command after --".into());
    }
    Ok((options, command))
}

fn single_path(options: Vec<OsString>) -> Result<PathBuf, String> {
    match <[OsString; 1]>::try_from(options) {
        Ok([out]) => Ok(PathBuf::from(out)),
        Err(_) => Err("wanted exactly one output file before --".into()),
    }
}

fn number(flag: &str, value: Option<OsString>) -> Result<u64, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    value
        .to_str()
        .and_then(|text| text.parse::<u64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{flag} wants a positive integer, not {value:?}"))
}

fn parse_first_live(
    options: Vec<OsString>,
    command: Vec<OsString>,
) -> Result<first_live::Options, String> {
    let mut watch = None;
    let mut out = None;
    let mut interval = Duration::from_millis(5);
    let mut timeout = Duration::from_secs(120);
    let mut options = options.into_iter();
    while let Some(option) = options.next() {
        match option.to_str() {
            Some("--watch") => watch = options.next().map(PathBuf::from),
            Some("--out") => out = options.next().map(PathBuf::from),
            Some("--interval-ms") => {
                interval = Duration::from_millis(number("--interval-ms", options.next())?)
            }
            Some("--timeout-s") => {
                timeout = Duration::from_secs(number("--timeout-s", options.next())?)
            }
            _ => return Err(format!("unknown option {option:?}")),
        }
    }
    Ok(first_live::Options {
        watch: watch.ok_or("first-live needs --watch FILE")?,
        out: out.ok_or("first-live needs --out OUT")?,
        interval,
        timeout,
        command,
    })
}

fn parse_args(mut args: impl Iterator<Item = OsString>) -> Result<Request, String> {
    let mode = args.next().ok_or(USAGE)?;
    let (options, command) = split_command(args.collect())?;
    match mode.to_str() {
        Some("lifetime") => Ok(Request::Lifetime {
            out: single_path(options)?,
            command,
        }),
        Some("peak-rss") => Ok(Request::PeakRss {
            out: single_path(options)?,
            command,
        }),
        Some("first-live") => parse_first_live(options, command).map(Request::FirstLive),
        _ => Err(USAGE.into()),
    }
}

fn run(request: Request) -> Result<u8, String> {
    match request {
        Request::Lifetime { out, command } => lifetime::become_timed(&out, &command),
        Request::PeakRss { out, command } => peak_rss::run(&out, &command),
        Request::FirstLive(options) => first_live::run(&options),
    }
}

fn main() -> ExitCode {
    match parse_args(std::env::args_os().skip(1)).and_then(run) {
        Ok(status) => ExitCode::from(status),
        Err(message) => {
            eprintln!("tracer-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Request, String> {
        parse_args(args.iter().map(OsString::from))
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn lifetime_takes_one_file_and_the_command() {
        assert_eq!(
            parse(&[
                "lifetime",
                "/tmp/t",
                "--",
                "socket-workload",
                "--rounds",
                "3"
            ])
            .unwrap(),
            Request::Lifetime {
                out: "/tmp/t".into(),
                command: os(&["socket-workload", "--rounds", "3"]),
            }
        );
    }

    #[test]
    fn only_the_first_double_dash_separates() {
        let Request::PeakRss { command, .. } =
            parse(&["peak-rss", "o", "--", "a", "--", "b"]).unwrap()
        else {
            panic!("not peak-rss");
        };
        assert_eq!(command, os(&["a", "--", "b"]));
    }

    #[test]
    fn first_live_reads_its_options_and_defaults() {
        let Request::FirstLive(options) = parse(&[
            "first-live",
            "--watch",
            "w",
            "--out",
            "o",
            "--timeout-s",
            "30",
            "--",
            "rstap",
        ])
        .unwrap() else {
            panic!("not first-live");
        };
        assert_eq!(options.watch, PathBuf::from("w"));
        assert_eq!(options.out, PathBuf::from("o"));
        assert_eq!(options.interval, Duration::from_millis(5));
        assert_eq!(options.timeout, Duration::from_secs(30));
        assert_eq!(options.command, os(&["rstap"]));
    }

    #[test]
    fn rejects_missing_pieces() {
        assert!(parse(&["lifetime", "o", "cmd"])
            .unwrap_err()
            .contains("missing --"));
        assert!(parse(&["lifetime", "o", "--"])
            .unwrap_err()
            .contains("no command"));
        assert!(parse(&["peak-rss", "--", "cmd"])
            .unwrap_err()
            .contains("exactly one"));
        assert!(parse(&["first-live", "--out", "o", "--", "x"])
            .unwrap_err()
            .contains("--watch"));
        assert!(parse(&[
            "first-live",
            "--watch",
            "w",
            "--out",
            "o",
            "--interval-ms",
            "0",
            "--",
            "x"
        ])
        .unwrap_err()
        .contains("positive"));
        assert!(parse(&["time", "--", "x"]).unwrap_err().contains("usage"));
    }
}
