//! The command line, modelled on stap's.

use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

use crate::kernel::{AttachPolicy, Mechanism};
use crate::script::{Limits, ScriptInput};

const EXAMPLES: &str = "\
Examples:
  sudo rstap socket-trace.stp
      Trace every call and return in the kernel's socket code, system-wide.
  sudo rstap -c 'curl -s example.com' -e 'probe kernel.function(\"__sys_*\").call {
        printf(\"%s -> %s\\n\", thread_indent(1), probefunc()) }'
      Trace one command's socket system calls, and stop when it exits.
  sudo rstap -l 'kernel.function(\"sock_*\").return'
      List the probe points a pattern matches.
  sudo rstap -L 'kernel.function(\"*@net/socket.c\")'
      List every function declared in net/socket.c, with its parameters.
  vm/rstap-vm --kernel 6.12 -- -c socket-workload examples/socket-calls.stp
      Run rstap in a throwaway VM, on a machine whose kernel cannot trace.";

#[derive(Debug, Parser)]
#[command(
    name = "rstap",
    version,
    about = "Run SystemTap scripts on eBPF: no kernel module, no compiler, no kernel headers",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// The script to run, then the script's arguments ($1, @1, ...); with -e, only
    /// arguments. Options may come among them, as with stap; `--` ends the options.
    #[arg(
        value_name = "SCRIPT [ARG]...",
        required_unless_present_any = ["script_text", "list", "list_with_variables"]
    )]
    pub operands: Vec<String>,

    /// Run SCRIPT given on the command line instead of a file.
    #[arg(short = 'e', value_name = "SCRIPT")]
    pub script_text: Option<String>,

    /// Set SystemTap's limit NAME (MAXMAPENTRIES, MAXACTION, MAXNESTING) to VALUE
    /// (repeatable).
    #[arg(short = 'D', value_name = "NAME=VALUE", value_parser = parse_assignment)]
    pub defines: Vec<(String, String)>,

    /// Set global NAME to VALUE before the script starts (repeatable).
    #[arg(short = 'G', value_name = "NAME=VALUE", value_parser = parse_assignment)]
    pub global_values: Vec<(String, String)>,

    /// Add the tapsets (`*.stp` files) in DIR and below it to rstap's own (repeatable).
    #[arg(short = 'I', value_name = "DIR")]
    pub include_dirs: Vec<PathBuf>,

    /// List the probe points PROBE matches, sorted, one per line, and exit.
    #[arg(short = 'l', value_name = "PROBE", conflicts_with_all = ["operands", "script_text"])]
    pub list: Option<String>,

    /// Like -l, and show each point's parameters as $name:type (for FUNCTION@FILE points).
    #[arg(
        short = 'L',
        value_name = "PROBE",
        conflicts_with_all = ["operands", "script_text", "list"]
    )]
    pub list_with_variables: Option<String>,

    /// Trace only process PID (sets target()).
    #[arg(short = 'x', value_name = "PID", conflicts_with = "command")]
    pub pid: Option<u32>,

    /// Run CMD, trace only it and its threads (sets target()), and exit when it exits.
    #[arg(short = 'c', value_name = "CMD")]
    pub command: Option<String>,

    /// Write the script's output to FILE instead of standard output.
    #[arg(short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Name the run NAME, as stap names its module: procfs probes' files are in
    /// /run/rstap/NAME/ (default: stap_PID).
    #[arg(short = 'm', value_name = "NAME")]
    pub module: Option<String>,

    /// Stop after SECONDS.
    #[arg(short = 'T', value_name = "SECONDS")]
    pub timeout: Option<f64>,

    /// Say more about what rstap does (repeat for more).
    #[arg(short = 'v', action = ArgAction::Count)]
    pub verbose: u8,

    /// How to attach to kernel functions.
    #[arg(long, value_enum, default_value_t = AttachArg::Auto)]
    pub attach: AttachArg,

    /// The running kernel's vmlinux with DWARF debug info, for FUNCTION@FILE probe points
    /// (default: the usual debug info locations, then $DEBUGINFOD_URLS).
    #[arg(long, value_name = "PATH")]
    pub vmlinux: Option<PathBuf>,

    /// Ring buffer size in KiB (a power of two, at least 4).
    #[arg(long, value_name = "KIB", default_value_t = 8 * 1024)]
    pub bufsize: u32,

    /// Stop after pass PASS, as stap does: 1 parses the script, 2 also checks it and
    /// resolves its probe points against the running kernel; rstap has no translate or
    /// compile pass, so 3 and 4 stop where 2 does, and 5 (the default) runs it.
    #[arg(short = 'p', value_name = "PASS", value_parser = clap::value_parser!(u8).range(1..=5))]
    pub last_pass: Option<u8>,

    /// stap's guru mode, which lets embedded C write kernel memory: refused, since rstap
    /// runs no C in the kernel.
    #[arg(short = 'g', long = "guru-mode", hide = true)]
    pub guru_mode: bool,
}

fn parse_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, found {text:?}")),
    }
}

impl Cli {
    /// The script file, unless the script is given with -e.
    pub fn script_file(&self) -> Option<&str> {
        match self.script_text {
            Some(_) => None,
            None => self.operands.first().map(String::as_str),
        }
    }

    /// What the command line gives the script: the operands after it, -G values and -D
    /// limits; an error says which -D cannot be.
    pub fn script_input(&self) -> Result<ScriptInput, String> {
        if self.guru_mode {
            return Err(
                "guru mode (-g) is not supported: rstap runs no C in the kernel and \
                        writes no kernel memory; without -g, scripts keep to what BPF allows"
                    .to_string(),
            );
        }
        let skip = usize::from(self.script_text.is_none());
        let mut limits = Limits::default();
        for (name, value) in &self.defines {
            limits.set(name, value)?;
        }
        Ok(ScriptInput {
            args: self.operands.iter().skip(skip).cloned().collect(),
            globals: self.global_values.clone(),
            limits,
            listing: self.listed_point().is_some(),
        })
    }

    /// The pass `-p` asks to stop after: 1 (parse) or 2 (elaborate), since passes 3 and 4
    /// have nothing to do in rstap; `None` to run the script.
    pub fn stop_after(&self) -> Option<u8> {
        self.last_pass
            .filter(|&last| last < 5)
            .map(|last| last.min(2))
    }

    /// The probe point `-l` or `-L` asks to list, if either was given.
    pub fn listed_point(&self) -> Option<&str> {
        self.list.as_deref().or(self.list_with_variables.as_deref())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttachArg {
    /// The cheapest mechanism the kernel takes (session, multi, fentry, kprobe, in that
    /// order); each later one serves what the earlier ones refused.
    Auto,
    /// kprobe.session only: one link for entries and returns (Linux 6.10+).
    Session,
    /// kprobe.multi and kretprobe.multi only: one link per side (needs fprobe).
    Multi,
    /// BPF trampolines only: one fentry/fexit program and link per function and side.
    Fentry,
    /// kprobes and kretprobes only: one per function and side.
    Kprobe,
}

impl From<AttachArg> for AttachPolicy {
    fn from(arg: AttachArg) -> Self {
        match arg {
            AttachArg::Auto => AttachPolicy::Auto,
            AttachArg::Session => AttachPolicy::Only(Mechanism::Session),
            AttachArg::Multi => AttachPolicy::Only(Mechanism::Multi),
            AttachArg::Fentry => AttachPolicy::Only(Mechanism::Fentry),
            AttachArg::Kprobe => AttachPolicy::Only(Mechanism::Kprobe),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn script_file_or_e_or_l_is_required() {
        assert!(Cli::try_parse_from(["rstap"]).is_err());
        assert!(Cli::try_parse_from(["rstap", "x.stp"]).is_ok());
        assert!(Cli::try_parse_from(["rstap", "-e", "probe begin {}"]).is_ok());
        assert!(Cli::try_parse_from(["rstap", "-l", "kernel.function(\"x\")"]).is_ok());
        assert!(Cli::try_parse_from(["rstap", "-L", "kernel.function(\"x@y.c\")"]).is_ok());
        assert!(Cli::try_parse_from(["rstap", "-l", "x", "x.stp"]).is_err());
    }

    #[test]
    fn operands_are_the_script_then_its_arguments() {
        let cli = Cli::try_parse_from(["rstap", "x.stp", "-v", "1", "--", "-two", "-G", "a=b"]);
        let cli = cli.unwrap();
        assert_eq!(cli.script_file(), Some("x.stp"));
        assert_eq!(cli.script_input().unwrap().args, ["1", "-two", "-G", "a=b"]);
        let cli = Cli::try_parse_from(["rstap", "-e", "probe begin {}", "-G", "n=0x10", "a"]);
        let cli = cli.unwrap();
        assert_eq!(cli.script_file(), None);
        let input = cli.script_input().unwrap();
        assert_eq!(input.args, ["a"]);
        assert_eq!(input.globals, [("n".to_string(), "0x10".to_string())]);
        assert!(Cli::try_parse_from(["rstap", "-e", "x", "-G", "novalue"]).is_err());
    }

    #[test]
    fn attach_names_every_mechanism() {
        let policy = |name| {
            let cli = Cli::try_parse_from(["rstap", "x.stp", "--attach", name]).unwrap();
            AttachPolicy::from(cli.attach)
        };
        assert_eq!(policy("auto"), AttachPolicy::Auto);
        assert_eq!(policy("session"), AttachPolicy::Only(Mechanism::Session));
        assert_eq!(policy("multi"), AttachPolicy::Only(Mechanism::Multi));
        assert_eq!(policy("fentry"), AttachPolicy::Only(Mechanism::Fentry));
        assert_eq!(policy("kprobe"), AttachPolicy::Only(Mechanism::Kprobe));
        assert!(Cli::try_parse_from(["rstap", "x.stp", "--attach", "uprobe"]).is_err());
    }

    #[test]
    fn passes_stop_where_stap_would() {
        let stop = |pass: &str| {
            Cli::try_parse_from(["rstap", "x.stp", "-p", pass])
                .unwrap()
                .stop_after()
        };
        assert_eq!(stop("1"), Some(1));
        assert_eq!(stop("2"), Some(2));
        assert_eq!(stop("4"), Some(2));
        assert_eq!(stop("5"), None);
        assert_eq!(
            Cli::try_parse_from(["rstap", "x.stp"])
                .unwrap()
                .stop_after(),
            None
        );
        assert!(Cli::try_parse_from(["rstap", "x.stp", "-p", "6"]).is_err());
        assert!(Cli::try_parse_from(["rstap", "x.stp", "-p", "0"]).is_err());
    }

    #[test]
    fn x_and_c_exclude_each_other() {
        assert!(Cli::try_parse_from(["rstap", "x.stp", "-x", "1", "-c", "true"]).is_err());
    }
}
