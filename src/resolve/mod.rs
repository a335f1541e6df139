pub mod denylist;
pub mod ftrace;
pub mod glob;
pub mod kallsyms;
pub mod plan;
