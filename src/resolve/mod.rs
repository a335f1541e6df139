pub mod denylist;
pub mod ftrace;
pub mod glob;
pub mod kallsyms;
