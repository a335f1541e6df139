//! Prints `kernel.function("NAME@FILE:LINE")` for each out-of-line match, with its address.
//!
//! `cargo run --release --example list_source_functions -- VMLINUX FUNCTION_GLOB FILE_GLOB`

use anyhow::Context;
use rstap::resolve::index_cache::{FunctionIndex, SourcePattern};
use rstap::resolve::vmlinux::Vmlinux;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, function, file] = &args[..] else {
        anyhow::bail!("usage: list_source_functions VMLINUX FUNCTION_GLOB FILE_GLOB");
    };
    let vmlinux = Vmlinux::open(path.as_ref())?;
    let mut index = FunctionIndex::open(&vmlinux, None)?;
    let pattern = SourcePattern::new(function, file).context("bad pattern")?;
    for f in index.resolve(&vmlinux, &pattern)? {
        let address = f
            .entry_address
            .map_or("inline".to_string(), |a| format!("{a:#x}"));
        let parameters: Vec<String> = f
            .parameters
            .iter()
            .map(|p| format!("${}:{}", p.name, p.type_name))
            .collect();
        println!(
            "{address} kernel.function(\"{}@{}:{}\") {}",
            f.name,
            f.decl_file,
            f.decl_line,
            parameters.join(" ")
        );
    }
    Ok(())
}
