pub mod build_id;
pub mod debuginfo;
pub mod debuginfod;
pub mod dwarf;
pub mod glob;
pub mod index_cache;
pub mod vmlinux;
