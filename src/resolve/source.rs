//! `kernel.function("NAME@FILE")` probe points: functions found through the kernel's
//! DWARF by the file that declares them, relocated to where the running kernel put them.
//! Debug info is located on first use only, so scripts that name functions alone never
//! need it.

use std::io::IsTerminal;
use std::path::PathBuf;

use super::build_id::{self, BuildIdError};
use super::debuginfo::{self, DebugInfoError, DebugInfoQuery};
use super::debuginfod;
use super::dwarf::SourceFunction;
use super::glob::GlobError;
use super::index_cache::{self, FunctionIndex, IndexError, SourcePattern};
use super::kallsyms::KernelSymbols;
use super::vmlinux::{Vmlinux, VmlinuxError};

/// The symbol both the vmlinux and /proc/kallsyms have, whose difference is the slide.
const RELOCATION_ANCHOR: &str = "_text";

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    DebugInfo(#[from] DebugInfoError),
    #[error("cannot tell which kernel is running: {0}")]
    BuildId(#[from] BuildIdError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Vmlinux(#[from] VmlinuxError),
    #[error(transparent)]
    Pattern(#[from] GlobError),
    #[error(
        "cannot relocate {path}: `{RELOCATION_ANCHOR}` is missing from it or from /proc/kallsyms"
    )]
    NoAnchor { path: PathBuf },
}

/// Answers source-file patterns; see [`SourceFunctions::matching`].
pub trait SourceFunctions {
    /// Functions declared in files matching `file` whose names match `function`, with
    /// `entry_address` relocated to the running kernel.
    fn matching(&mut self, function: &str, file: &str) -> Result<Vec<SourceFunction>, SourceError>;
}

/// Where to look for the running kernel's debug info.
#[derive(Debug, Clone, Default)]
pub struct DebugInfoOptions {
    /// `--vmlinux`: used alone when given.
    pub vmlinux: Option<PathBuf>,
}

/// The running kernel's DWARF, opened when first asked.
pub struct KernelSources<'a> {
    options: DebugInfoOptions,
    symbols: &'a KernelSymbols,
    opened: Option<Opened>,
}

struct Opened {
    vmlinux: Vmlinux,
    index: FunctionIndex,
    /// Run-time address minus link-time address (KASLR).
    slide: u64,
}

impl<'a> KernelSources<'a> {
    pub fn new(options: DebugInfoOptions, symbols: &'a KernelSymbols) -> Self {
        KernelSources {
            options,
            symbols,
            opened: None,
        }
    }

    fn open(&self) -> Result<Opened, SourceError> {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|release| release.trim().to_string())
            .unwrap_or_default();
        let cache_dir = index_cache::default_cache_dir();
        let query = DebugInfoQuery {
            expected_build_id: build_id::running_kernel_build_id()?,
            explicit_path: self.options.vmlinux.clone(),
            search_paths: debuginfo::default_search_paths(&release),
            debuginfod_urls: debuginfod::parse_urls(
                &std::env::var("DEBUGINFOD_URLS").unwrap_or_default(),
            ),
            cache_dir: cache_dir.clone(),
            show_progress: std::io::stderr().is_terminal(),
            release,
        };
        let vmlinux = debuginfo::locate(&query)?;
        let linked = vmlinux.symbol_address(RELOCATION_ANCHOR)?;
        let running = self.symbols.address_of(RELOCATION_ANCHOR);
        let (Some(linked), Some(running)) = (linked, running) else {
            return Err(SourceError::NoAnchor {
                path: vmlinux.path().to_path_buf(),
            });
        };
        let index = FunctionIndex::open(&vmlinux, cache_dir.as_deref())?;
        Ok(Opened {
            vmlinux,
            index,
            slide: running.wrapping_sub(linked),
        })
    }
}

impl SourceFunctions for KernelSources<'_> {
    fn matching(&mut self, function: &str, file: &str) -> Result<Vec<SourceFunction>, SourceError> {
        let pattern = SourcePattern::new(function, file)?;
        let mut opened = match self.opened.take() {
            Some(opened) => opened,
            None => self.open()?,
        };
        let resolved = opened.index.resolve(&opened.vmlinux, &pattern);
        let slide = opened.slide;
        self.opened = Some(opened);
        let mut functions = resolved?;
        for function in &mut functions {
            function.entry_address = function
                .entry_address
                .map(|address| address.wrapping_add(slide));
        }
        Ok(functions)
    }
}
