//! rstap: run SystemTap scripts on eBPF.

pub mod output;
pub mod runtime;
pub mod script;
