//! Formatting of script output.

pub mod printf;
