//! Times `kernel.function("PATTERN@FILE")` resolution on a vmlinux, cold and from the cache.
//!
//! `cargo run --release --example resolve_bench -- VMLINUX [FUNCTION_GLOB] [FILE_GLOB]`
//! (defaults: `*` and `net/socket.c`). The cold run uses a fresh temporary cache directory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use rstap::resolve::index_cache::{FunctionIndex, SourcePattern};
use rstap::resolve::vmlinux::Vmlinux;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let vmlinux_path = PathBuf::from(
        args.next()
            .context("usage: resolve_bench VMLINUX [FUNCTION] [FILE]")?,
    );
    let function = args.next().unwrap_or_else(|| "*".to_string());
    let file = args.next().unwrap_or_else(|| "net/socket.c".to_string());
    let pattern = SourcePattern::new(&function, &file)?;
    let cache = std::env::temp_dir().join(format!("rstap-bench-{}", std::process::id()));

    let mut count = 0;
    for label in ["cold", "cached"] {
        let start = Instant::now();
        let vmlinux = Vmlinux::open(&vmlinux_path)?;
        let mut index = FunctionIndex::open(&vmlinux, Some(&cache))?;
        let functions = index.resolve(&vmlinux, &pattern)?;
        let elapsed = start.elapsed();
        count = functions.len();
        println!(
            "{label:>6}: {:8.1} ms  ({count} functions for {function}@{file})",
            elapsed.as_secs_f64() * 1e3
        );
    }
    std::fs::remove_dir_all(&cache).with_context(|| format!("removing {}", cache.display()))?;
    anyhow::ensure!(count > 0, "no function matched");
    Ok(())
}
