//! rstap: run SystemTap scripts on eBPF.

pub mod kernel;
