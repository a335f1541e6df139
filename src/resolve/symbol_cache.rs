//! The kernel image's function symbols and ftrace's list of patchable functions, kept on
//! disk per kernel build. Under emulation the kernel takes most of a second to print
//! /proc/kallsyms and available_filter_functions, and for one build neither changes but
//! for where KASLR puts the image at boot.
//!
//! With the cache, start-up reads only the head of /proc/kallsyms, up to the image's first
//! function (whose address places the whole image for this boot), and /proc/modules;
//! module symbols are read from kallsyms the first time an address in a module is looked
//! up. Without it (first run, another build, a cache that cannot be read), both lists are
//! read whole and the cache is written for the next run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::build_id::{running_kernel_build_id, BuildId};
use super::code::{module_ranges, PROC_MODULES};
use super::ftrace::TraceableFunctions;
use super::index_cache::{prepare_cache_dir, write_atomically};
use super::kallsyms::{ImageSymbols, KernelSymbols, SymbolError};

/// Bumped whenever the layout or the meaning of cached data changes.
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct CachedTables {
    format: u32,
    build_id: BuildId,
    /// The image's first function in kallsyms order, which the offsets are from.
    anchor: String,
    image: ImageSymbols,
    traceable: Option<TraceableFunctions>,
}

/// What rstap knows of the running kernel's functions.
pub struct KernelTables {
    pub symbols: KernelSymbols,
    /// ftrace's list, when it could be read.
    pub traceable: Option<TraceableFunctions>,
    /// Whether both came from the cache rather than from the kernel.
    pub cached: bool,
}

/// Reads the kernel's tables from the cache in `cache_dir` if it holds this build's, or
/// from the kernel (then writing the cache, best effort).
pub fn load(kallsyms: &Path, cache_dir: Option<&Path>) -> Result<KernelTables, SymbolError> {
    let cache = cache_dir
        .filter(|dir| prepare_cache_dir(dir).is_ok())
        .zip(running_kernel_build_id().ok())
        .map(|(dir, build_id)| (cache_file(dir, &build_id), build_id));
    let anchor = first_image_function(kallsyms).filter(|(_, address)| *address != 0);
    if let (Some((file, build_id)), Some((name, address))) = (&cache, &anchor) {
        if let Some(tables) = read_cache(file, build_id, name, *address, kallsyms) {
            return Ok(tables);
        }
    }
    let symbols = KernelSymbols::read(kallsyms)?;
    let traceable = TraceableFunctions::read();
    if let (Some((file, build_id)), Some((name, address))) = (cache, anchor) {
        let cached = CachedTables {
            format: FORMAT_VERSION,
            build_id,
            image: symbols.image_symbols(address),
            anchor: name,
            traceable: traceable.clone(),
        };
        // A cache that cannot be written costs the next run time, not this one its trace.
        if let Ok(bytes) = postcard::to_allocvec(&cached) {
            let _ = write_atomically(&file, &bytes);
        }
    }
    Ok(KernelTables {
        symbols,
        traceable,
        cached: false,
    })
}

fn cache_file(dir: &Path, build_id: &BuildId) -> PathBuf {
    dir.join(format!("kernel-{}.tables", build_id.to_hex()))
}

/// This build's tables from `file`, placed where `anchor` is this boot; `None` for a file
/// that is missing, unreadable, of another format, build or anchor, or inconsistent.
fn read_cache(
    file: &Path,
    build_id: &BuildId,
    anchor: &str,
    address: u64,
    kallsyms: &Path,
) -> Option<KernelTables> {
    let bytes = std::fs::read(file).ok()?;
    let cached: CachedTables = postcard::from_bytes(&bytes).ok()?;
    if cached.format != FORMAT_VERSION || &cached.build_id != build_id || cached.anchor != anchor {
        return None;
    }
    let traceable = match cached.traceable {
        Some(traceable) if traceable.is_consistent() => Some(traceable),
        Some(_) => return None,
        // Unreadable when the cache was written; perhaps not now.
        None => TraceableFunctions::read(),
    };
    let modules = std::fs::read_to_string(PROC_MODULES).unwrap_or_default();
    let symbols =
        KernelSymbols::from_image(cached.image, address, kallsyms, module_ranges(&modules))?;
    Some(KernelTables {
        symbols,
        traceable,
        cached: true,
    })
}

/// The name and address of the kernel image's first function in kallsyms, read from the
/// head of the file only: the per-CPU variables come first.
fn first_image_function(kallsyms: &Path) -> Option<(String, u64)> {
    let file = std::fs::File::open(kallsyms).ok()?;
    first_image_function_in(BufReader::new(file))
}

fn first_image_function_in(reader: impl BufRead) -> Option<(String, u64)> {
    reader.lines().map_while(Result::ok).find_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let (address, kind, name) = (fields.next()?, fields.next()?, fields.next()?);
        let in_image = fields.next().is_none();
        (in_image && matches!(kind, "t" | "T"))
            .then(|| Some((name.to_string(), u64::from_str_radix(address, 16).ok()?)))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS: &str = "\
0000000000000000 A fixed_percpu_data
0000000000001000 D cpu_number
ffffffff81000000 T startup_64
ffffffff81000000 T _text
ffffffff81431450 t sock_poll
ffffffffc0001000 t helper_fn\t[virtio_net]
";

    #[test]
    fn the_first_image_function_follows_the_per_cpu_variables() {
        assert_eq!(
            first_image_function_in(KALLSYMS.as_bytes()),
            Some(("startup_64".to_string(), 0xffffffff81000000))
        );
        assert_eq!(first_image_function_in("x\n".as_bytes()), None);
    }

    fn tables_file(dir: &Path, kallsyms: &str) -> (PathBuf, BuildId) {
        let symbols = KernelSymbols::parse(kallsyms, "kallsyms").unwrap();
        let build_id = BuildId::new(vec![0xab; 20]);
        let cached = CachedTables {
            format: FORMAT_VERSION,
            build_id: build_id.clone(),
            anchor: "startup_64".into(),
            image: symbols.image_symbols(0xffffffff81000000),
            traceable: Some(TraceableFunctions::parse("sock_poll\n".into())),
        };
        let file = cache_file(dir, &build_id);
        std::fs::write(&file, postcard::to_allocvec(&cached).unwrap()).unwrap();
        (file, build_id)
    }

    #[test]
    fn a_cached_build_is_placed_where_its_anchor_is_this_boot() {
        let dir = tempfile::tempdir().unwrap();
        let (file, build_id) = tables_file(dir.path(), KALLSYMS);
        let kallsyms = dir.path().join("kallsyms");
        let tables = read_cache(
            &file,
            &build_id,
            "startup_64",
            0xffffffff9c000000,
            &kallsyms,
        )
        .unwrap();
        assert!(tables.cached);
        assert_eq!(
            tables.symbols.address_of("sock_poll"),
            Some(0xffffffff9c431450)
        );
        assert!(tables.traceable.unwrap().contains("sock_poll"));
    }

    #[test]
    fn another_build_anchor_or_format_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let (file, build_id) = tables_file(dir.path(), KALLSYMS);
        let kallsyms = dir.path().join("kallsyms");
        let other = BuildId::new(vec![0xcd; 20]);
        assert!(read_cache(&file, &other, "startup_64", 1, &kallsyms).is_none());
        assert!(read_cache(&file, &build_id, "_stext", 1, &kallsyms).is_none());
        std::fs::write(&file, b"not postcard").unwrap();
        assert!(read_cache(&file, &build_id, "startup_64", 1, &kallsyms).is_none());
    }
}
