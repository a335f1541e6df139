//! The running kernel's function symbols, from /proc/kallsyms: which functions exist and
//! where, and which function an address lies in.

use std::cell::OnceCell;
use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum SymbolError {
    #[error("cannot read kernel symbols from {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "kernel symbol addresses in {path} are hidden (all zero): run rstap as root, \
         or lower /proc/sys/kernel/kptr_restrict"
    )]
    AddressesHidden { path: String },
    #[error("{path} line {line} is malformed: {text:?}")]
    Malformed {
        path: String,
        line: usize,
        text: String,
    },
}

/// A function symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionSymbol<'a> {
    pub address: u64,
    pub name: &'a str,
    /// The module the function belongs to; `None` for the kernel image itself.
    pub module: Option<&'a str>,
}

/// One symbol, its strings kept in [`KernelSymbols::names`]: a kernel has hundreds of
/// thousands of symbols, and a `String` each would double rstap's memory.
#[derive(Debug, Clone, Copy)]
struct Entry {
    address: u64,
    name_start: u32,
    name_len: u32,
    /// Index into `modules` plus one; 0 for the kernel image.
    module: u32,
}

/// Every function symbol of the kernel and its loaded modules, ordered by address.
#[derive(Debug, Default)]
pub struct KernelSymbols {
    entries: Vec<Entry>,
    names: String,
    modules: Vec<String>,
    /// When `entries` hold the kernel image's functions alone (from the cache, see
    /// symbol_cache.rs): where the modules lie, and their symbols, read from kallsyms the
    /// first time an address in a module is looked up.
    modules_later: Option<Box<LazyModules>>,
}

#[derive(Debug)]
struct LazyModules {
    kallsyms: PathBuf,
    ranges: Vec<Range<u64>>,
    symbols: OnceCell<KernelSymbols>,
}

/// The kernel image's function symbols as offsets from one of them, for the cache: the
/// image moves as a whole from boot to boot (KASLR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSymbols {
    /// Each function's offset from the anchor, its name's start and length in `names`.
    pub functions: Vec<(i64, u32, u32)>,
    pub names: String,
}

impl KernelSymbols {
    pub fn read(path: &Path) -> Result<Self, SymbolError> {
        let read_error = |source| SymbolError::Read {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        Self::parse_lines(BufReader::new(file), &path.display().to_string())
    }

    /// Parses kallsyms text: `ADDRESS TYPE NAME [MODULE]` per line.
    pub fn parse(text: &str, path: &str) -> Result<Self, SymbolError> {
        Self::parse_lines(text.as_bytes(), path)
    }

    fn parse_lines(mut reader: impl BufRead, path: &str) -> Result<Self, SymbolError> {
        let mut symbols = KernelSymbols::default();
        let mut any_line = false;
        let mut any_address = false;
        let mut line = String::new();
        let mut number = 0;
        loop {
            line.clear();
            let read = reader
                .read_line(&mut line)
                .map_err(|source| SymbolError::Read {
                    path: path.to_string(),
                    source,
                })?;
            if read == 0 {
                break;
            }
            number += 1;
            any_line = true;
            let malformed = || SymbolError::Malformed {
                path: path.to_string(),
                line: number,
                text: line.trim_end().to_string(),
            };
            let mut fields = line.split_ascii_whitespace();
            let (Some(address), Some(kind), Some(name)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(malformed());
            };
            let address = u64::from_str_radix(address, 16).map_err(|_| malformed())?;
            any_address |= address != 0;
            if matches!(kind, "t" | "T" | "w" | "W") {
                let module = fields
                    .next()
                    .map(|module| module.trim_start_matches('[').trim_end_matches(']'));
                symbols.push(address, name, module);
            }
        }
        if any_line && !any_address {
            return Err(SymbolError::AddressesHidden {
                path: path.to_string(),
            });
        }
        symbols.entries.sort_by_key(|entry| entry.address);
        symbols.names.shrink_to_fit();
        symbols.entries.shrink_to_fit();
        Ok(symbols)
    }

    fn push(&mut self, address: u64, name: &str, module: Option<&str>) {
        let module = match module {
            None => 0,
            Some(module) => match self.modules.iter().position(|known| known == module) {
                Some(index) => index + 1,
                None => {
                    self.modules.push(module.to_string());
                    self.modules.len()
                }
            },
        };
        self.entries.push(Entry {
            address,
            name_start: self.names.len() as u32,
            name_len: name.len() as u32,
            module: module as u32,
        });
        self.names.push_str(name);
    }

    fn symbol(&self, entry: &Entry) -> FunctionSymbol<'_> {
        let start = entry.name_start as usize;
        FunctionSymbol {
            address: entry.address,
            name: &self.names[start..start + entry.name_len as usize],
            module: entry
                .module
                .checked_sub(1)
                .map(|index| self.modules[index as usize].as_str()),
        }
    }

    /// The kernel image's functions as offsets from `anchor`, for the cache.
    pub fn image_symbols(&self, anchor: u64) -> ImageSymbols {
        let mut image = ImageSymbols {
            functions: Vec::new(),
            names: String::new(),
        };
        for function in self.kernel_functions() {
            image.functions.push((
                function.address.wrapping_sub(anchor) as i64,
                image.names.len() as u32,
                function.name.len() as u32,
            ));
            image.names.push_str(function.name);
        }
        image
    }

    /// The kernel image's functions from the cache, placed at `anchor`; the symbols of the
    /// modules in `module_ranges` are read from `kallsyms` when first needed. `None` if the
    /// cached names do not fit their string.
    pub fn from_image(
        image: ImageSymbols,
        anchor: u64,
        kallsyms: &Path,
        module_ranges: Vec<Range<u64>>,
    ) -> Option<Self> {
        let mut entries = Vec::with_capacity(image.functions.len());
        for (offset, name_start, name_len) in image.functions {
            let end = name_start.checked_add(name_len)? as usize;
            image.names.get(name_start as usize..end)?;
            entries.push(Entry {
                address: anchor.wrapping_add(offset as u64),
                name_start,
                name_len,
                module: 0,
            });
        }
        entries.sort_by_key(|entry| entry.address);
        Some(KernelSymbols {
            entries,
            names: image.names,
            modules: Vec::new(),
            modules_later: (!module_ranges.is_empty()).then(|| {
                Box::new(LazyModules {
                    kallsyms: kallsyms.to_path_buf(),
                    ranges: module_ranges,
                    symbols: OnceCell::new(),
                })
            }),
        })
    }

    /// Functions of the kernel image (not of modules), in address order.
    pub fn kernel_functions(&self) -> impl Iterator<Item = FunctionSymbol<'_>> {
        self.entries
            .iter()
            .filter(|entry| entry.module == 0)
            .map(|entry| self.symbol(entry))
    }

    /// The function `address` lies in: the nearest function symbol at or below it.
    pub fn function_containing(&self, address: u64) -> Option<FunctionSymbol<'_>> {
        if let Some(modules) = &self.modules_later {
            if modules.ranges.iter().any(|range| range.contains(&address)) {
                // Unreadable now, the symbols were readable at start: name nothing rather
                // than stop the trace.
                return modules
                    .symbols
                    .get_or_init(|| Self::read(&modules.kallsyms).unwrap_or_default())
                    .function_containing(address);
            }
        }
        let after = self
            .entries
            .partition_point(|entry| entry.address <= address);
        after
            .checked_sub(1)
            .map(|index| self.symbol(&self.entries[index]))
    }

    /// The function containing `address` and its size, as the kernel's own kallsyms lookup
    /// gives it: up to the next symbol's address.
    pub fn function_with_size(&self, address: u64) -> Option<(FunctionSymbol<'_>, u64)> {
        let function = self.function_containing(address)?;
        let next = self
            .entries
            .partition_point(|entry| entry.address <= function.address);
        let size = self
            .entries
            .get(next)
            .map_or(0, |entry| entry.address - function.address);
        Some((function, size))
    }

    /// The kernel image's function that starts exactly at `address`.
    pub fn kernel_function_at(&self, address: u64) -> Option<FunctionSymbol<'_>> {
        let first = self
            .entries
            .partition_point(|entry| entry.address < address);
        self.entries[first..]
            .iter()
            .take_while(|entry| entry.address == address)
            .map(|entry| self.symbol(entry))
            .find(|function| function.module.is_none() && !function.name.starts_with("__pfx_"))
    }

    /// The kernel image's init text (`_sinittext` to `_einittext`), if kallsyms shows it.
    pub fn init_text(&self) -> Option<Range<u64>> {
        let start = self.address_of("_sinittext")?;
        let end = self.address_of("_einittext")?;
        Some(start..end)
    }

    /// The kernel image's address of `name`, for symbols such as `_text`.
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.kernel_functions()
            .find(|function| function.name == name)
            .map(|function| function.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ffffffff81000000 T _text
ffffffff81431450 t sock_poll
ffffffff81431440 t __pfx_sock_poll
ffffffff81431500 T __sys_connect
ffffffff82000000 D some_data
ffffffffc0001000 t helper_fn\t[virtio_net]
ffffffff81431600 W weak_function
";

    fn symbols() -> KernelSymbols {
        KernelSymbols::parse(SAMPLE, "kallsyms").unwrap()
    }

    #[test]
    fn keeps_text_symbols_in_address_order() {
        let symbols = symbols();
        let names: Vec<_> = symbols
            .entries
            .iter()
            .map(|e| symbols.symbol(e).name)
            .collect();
        assert_eq!(
            names,
            [
                "_text",
                "__pfx_sock_poll",
                "sock_poll",
                "__sys_connect",
                "weak_function",
                "helper_fn"
            ]
        );
    }

    #[test]
    fn module_functions_are_not_kernel_functions() {
        let symbols = symbols();
        assert!(symbols.kernel_functions().all(|f| f.name != "helper_fn"));
        let helper = symbols.function_containing(0xffffffffc0001010).unwrap();
        assert_eq!(helper.module, Some("virtio_net"));
    }

    #[test]
    fn an_address_inside_a_function_names_it() {
        let symbols = symbols();
        assert_eq!(
            symbols
                .function_containing(0xffffffff81431450)
                .unwrap()
                .name,
            "sock_poll"
        );
        assert_eq!(
            symbols
                .function_containing(0xffffffff814314ff)
                .unwrap()
                .name,
            "sock_poll"
        );
        assert_eq!(
            symbols
                .function_containing(0xffffffff81431500)
                .unwrap()
                .name,
            "__sys_connect"
        );
        assert!(symbols.function_containing(0x1000).is_none());
    }

    #[test]
    fn function_at_an_exact_address() {
        let symbols = symbols();
        assert_eq!(
            symbols.kernel_function_at(0xffffffff81431450).unwrap().name,
            "sock_poll"
        );
        assert!(symbols.kernel_function_at(0xffffffff81431451).is_none());
        assert!(
            symbols.kernel_function_at(0xffffffffc0001000).is_none(),
            "a module function"
        );
    }

    #[test]
    fn address_of_finds_kernel_symbols() {
        assert_eq!(symbols().address_of("_text"), Some(0xffffffff81000000));
        assert_eq!(symbols().address_of("helper_fn"), None);
    }

    #[test]
    fn image_symbols_move_with_their_anchor_and_modules_are_read_when_needed() {
        let original = symbols();
        let image = original.image_symbols(0xffffffff81000000);
        assert_eq!(image.functions.len(), 5, "{image:?}");
        let dir = tempfile::tempdir().unwrap();
        let kallsyms = dir.path().join("kallsyms");
        std::fs::write(&kallsyms, SAMPLE).unwrap();
        // The same image 16 MiB higher, and the module where it was.
        let module = 0xffffffffc0000000..0xffffffffc0002000;
        let moved =
            KernelSymbols::from_image(image, 0xffffffff82000000, &kallsyms, Vec::from([module]))
                .unwrap();
        assert_eq!(moved.address_of("sock_poll"), Some(0xffffffff82431450));
        assert_eq!(
            moved.kernel_function_at(0xffffffff82431500).unwrap().name,
            "__sys_connect"
        );
        let helper = moved.function_containing(0xffffffffc0001010).unwrap();
        assert_eq!(
            (helper.name, helper.module),
            ("helper_fn", Some("virtio_net"))
        );
    }

    #[test]
    fn hidden_addresses_are_an_error() {
        let hidden = "0000000000000000 T _text\n0000000000000000 t sock_poll\n";
        assert!(matches!(
            KernelSymbols::parse(hidden, "k"),
            Err(SymbolError::AddressesHidden { .. })
        ));
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let err = KernelSymbols::parse("ffffffff81000000 T _text\nnonsense\n", "k").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
