//! rstap: run SystemTap scripts on eBPF.
//!
//! The pipeline, one module each: `script` (lexer, parser, checks) turns the script into
//! probes; `resolve` finds the kernel functions its probe points name; `kernel` attaches
//! BPF programs to them; `runtime` runs the probe bodies on the events they report;
//! `output` formats what the bodies print; `session` drives one run; `tapset` is the
//! library of probe aliases and functions scripts may use, written in their language.
//! `types` describes the kernel's C types (from its BTF), for reading target variables
//! such as `$size`.

pub mod cli;
pub mod kernel;
pub mod output;
pub mod privileges;
pub mod process;
pub mod resolve;
pub mod runtime;
pub mod script;
pub mod session;
pub mod suggest;
pub mod system;
pub mod tapset;
pub mod types;
