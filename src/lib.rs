//! rstap: run SystemTap scripts on eBPF.

pub mod resolve;
