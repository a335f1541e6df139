//! rstap: run SystemTap scripts on eBPF.

pub mod kernel;
pub mod resolve;
