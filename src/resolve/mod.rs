//! Probe resolution: which kernel functions a script's probe points name, from the
//! running kernel's symbols (kallsyms, ftrace's list) and, for source-file points, the
//! kernel's DWARF debug info.

pub mod build_id;
pub mod code;
pub mod debuginfo;
pub mod debuginfod;
pub mod denylist;
pub mod dwarf;
pub mod ftrace;
pub mod glob;
pub mod index_cache;
pub mod kallsyms;
pub mod plan;
pub mod source;
pub mod symbol_cache;
pub mod targets;
pub mod tracepoints;
pub mod vmlinux;
