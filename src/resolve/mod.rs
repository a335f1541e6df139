pub mod glob;
