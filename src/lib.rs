//! rstap: run SystemTap scripts on eBPF.
