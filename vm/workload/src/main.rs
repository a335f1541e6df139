//! socket-workload: a deterministic socket workload for tracing tests. Each round makes the
//! same socket system calls in the same order (see `round.rs`), so a tracer's per-function
//! counts for the socket path are the same on every run.

mod round;
mod sys;

use std::process::ExitCode;
use std::thread;

const USAGE: &str = "usage: socket-workload [--rounds N] [--threads T] [--report FILE] | --churn N

Runs N rounds (default 1) of loopback TCP, UDP and UNIX socketpair traffic, in one
thread, or with --threads in each of T threads. With --churn, starts N short-lived
threads instead, one after another, each opening and closing one UDP socket. With
--report, writes to FILE at exit what each call passed and got (socket's family, type and
descriptor, bind's and connect's address length, listen's backlog, the bytes each send,
sendto and sendmsg sent), one line per call, the ports of each round's TCP connection and
UDP receiver, and the CPU time it used.";

#[derive(Debug, PartialEq, Eq)]
struct Options {
    rounds: u32,
    threads: u32,
    churn: Option<u32>,
    report: Option<String>,
}

fn positive(flag: &str, value: Option<String>) -> Result<u32, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    match value.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} wants a positive integer, not {value:?}")),
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        rounds: 1,
        threads: 1,
        churn: None,
        report: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => options.rounds = positive("--rounds", args.next())?,
            "--threads" => options.threads = positive("--threads", args.next())?,
            "--churn" => options.churn = Some(positive("--churn", args.next())?),
            "--report" => {
                options.report = Some(args.next().ok_or("--report needs a file name")?);
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if options.report.is_some() && (options.threads > 1 || options.churn.is_some()) {
        return Err(
            "--report reports the calls of one thread: leave out --threads and --churn".into(),
        );
    }
    Ok(options)
}

fn run_rounds(rounds: u32) -> sys::SysResult<()> {
    (0..rounds).try_for_each(|_| round::run())
}

/// Thread after thread, each gone before the next starts: a tracer keeping per-thread state
/// sees many threads, few of them alive at once.
fn churn_threads(threads: u32) -> Result<(), String> {
    for index in 0..threads {
        let worker = thread::spawn(|| sys::socket(libc::AF_INET, libc::SOCK_DGRAM)?.close());
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("thread {index}: {e}")),
            Err(_) => return Err(format!("thread {index} panicked")),
        }
    }
    Ok(())
}

fn write_report(path: &str) -> Result<(), String> {
    let mut lines = sys::report_lines();
    lines.push(cpu_time_line());
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).map_err(|err| format!("cannot write the report to {path}: {err}"))
}

/// The CPU time the process has used, in user space and in the kernel, as the kernel
/// accounts it: what a sampling profiler should see of it.
fn cpu_time_line() -> String {
    // SAFETY: rusage is plain data that getrusage fills in; RUSAGE_SELF cannot fail.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |time: libc::timeval| time.tv_sec * 1_000_000 + time.tv_usec;
    format!(
        "cpu user_us={} system_us={}",
        micros(usage.ru_utime),
        micros(usage.ru_stime)
    )
}

fn run(options: &Options) -> Result<(), String> {
    if let Some(threads) = options.churn {
        return churn_threads(threads);
    }
    if options.threads == 1 {
        return run_rounds(options.rounds).map_err(|e| e.to_string());
    }
    let rounds = options.rounds;
    let workers: Vec<_> = (0..options.threads)
        .map(|_| thread::spawn(move || run_rounds(rounds)))
        .collect();
    let mut failures = Vec::new();
    for (index, worker) in workers.into_iter().enumerate() {
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("thread {index}: {e}")),
            Err(_) => failures.push(format!("thread {index} panicked")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

fn main() -> ExitCode {
    let result = parse_args(std::env::args().skip(1)).and_then(|options| {
        if options.report.is_some() {
            sys::start_report();
        }
        run(&options)?;
        match &options.report {
            Some(path) => write_report(path),
            None => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("socket-workload: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_to_one_round_in_one_thread() {
        assert_eq!(
            parse(&[]).unwrap(),
            Options {
                rounds: 1,
                threads: 1,
                churn: None,
                report: None
            }
        );
    }

    #[test]
    fn reads_rounds_and_threads() {
        assert_eq!(
            parse(&["--rounds", "5", "--threads", "3"]).unwrap(),
            Options {
                rounds: 5,
                threads: 3,
                churn: None,
                report: None
            }
        );
    }

    #[test]
    fn rejects_zero_missing_and_unknown_values() {
        assert!(parse(&["--rounds", "0"]).unwrap_err().contains("positive"));
        assert!(parse(&["--threads"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--fast"]).unwrap_err().contains("unknown argument"));
    }

    #[test]
    fn the_report_lists_what_each_call_passed() {
        sys::start_report();
        round::run().unwrap();
        let report = sys::report_lines();
        let lines = |prefix: &str| report.iter().filter(|l| l.starts_with(prefix)).count();
        // Per round: TCP's listener and client, UDP's receiver and sender.
        assert_eq!(lines("socket family=2 type=1 "), 2, "{report:?}");
        assert_eq!(lines("socket family=2 type=2 "), 2, "{report:?}");
        assert_eq!(lines("bind "), 2);
        assert_eq!(lines("connect "), 1);
        assert_eq!(lines("sendmsg "), 1);
        assert!(report.iter().any(|l| l.ends_with(" len=30")), "{report:?}");
    }

    #[test]
    fn threads_each_run_their_rounds() {
        run(&Options {
            rounds: 2,
            threads: 3,
            churn: None,
            report: None,
        })
        .unwrap();
    }

    #[test]
    fn churn_starts_one_thread_after_another() {
        assert_eq!(parse(&["--churn", "4"]).unwrap().churn, Some(4));
        run(&Options {
            rounds: 1,
            threads: 1,
            churn: Some(50),
            report: None,
        })
        .unwrap();
    }
}
