//! The running kernel's function symbols, from /proc/kallsyms: which functions exist and
//! where, and which function an address lies in.

use std::path::Path;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSymbol {
    pub address: u64,
    pub name: String,
    /// The module the function belongs to; `None` for the kernel image itself.
    pub module: Option<String>,
}

/// Every function symbol of the kernel and its loaded modules, ordered by address.
#[derive(Debug, Default)]
pub struct KernelSymbols {
    functions: Vec<FunctionSymbol>,
}

impl KernelSymbols {
    pub fn read(path: &Path) -> Result<Self, SymbolError> {
        let text = std::fs::read_to_string(path).map_err(|source| SymbolError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses kallsyms text: `ADDRESS TYPE NAME [MODULE]` per line.
    pub fn parse(text: &str, path: &str) -> Result<Self, SymbolError> {
        let mut functions = Vec::new();
        let mut any_address = false;
        for (index, line) in text.lines().enumerate() {
            let mut fields = line.split_ascii_whitespace();
            let (Some(address), Some(kind), Some(name)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(SymbolError::Malformed {
                    path: path.to_string(),
                    line: index + 1,
                    text: line.to_string(),
                });
            };
            let address = u64::from_str_radix(address, 16).map_err(|_| SymbolError::Malformed {
                path: path.to_string(),
                line: index + 1,
                text: line.to_string(),
            })?;
            any_address |= address != 0;
            if !matches!(kind, "t" | "T" | "w" | "W") {
                continue;
            }
            let module = fields.next().map(|module| {
                module
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string()
            });
            functions.push(FunctionSymbol {
                address,
                name: name.to_string(),
                module,
            });
        }
        if !any_address && !text.is_empty() {
            return Err(SymbolError::AddressesHidden {
                path: path.to_string(),
            });
        }
        functions.sort_by_key(|function| function.address);
        Ok(KernelSymbols { functions })
    }

    /// Functions of the kernel image (not of modules), in address order.
    pub fn kernel_functions(&self) -> impl Iterator<Item = &FunctionSymbol> {
        self.functions
            .iter()
            .filter(|function| function.module.is_none())
    }

    /// The function `address` lies in: the nearest function symbol at or below it.
    pub fn function_containing(&self, address: u64) -> Option<&FunctionSymbol> {
        let after = self
            .functions
            .partition_point(|function| function.address <= address);
        after.checked_sub(1).map(|index| &self.functions[index])
    }

    /// The kernel image's function that starts exactly at `address`.
    pub fn kernel_function_at(&self, address: u64) -> Option<&FunctionSymbol> {
        let first = self
            .functions
            .partition_point(|function| function.address < address);
        self.functions[first..]
            .iter()
            .take_while(|function| function.address == address)
            .find(|function| function.module.is_none() && !function.name.starts_with("__pfx_"))
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
        let names: Vec<_> = symbols().functions.iter().map(|f| f.name.clone()).collect();
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
        assert_eq!(helper.module.as_deref(), Some("virtio_net"));
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
