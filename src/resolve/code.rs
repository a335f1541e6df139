//! Where the kernel's own code lies: the kernel image's text and each loaded module.
//! Anything else that executes (BPF programs, BPF and ftrace trampolines, kprobe
//! instruction slots) is generated at run time and is never a function a user called.

use std::ops::Range;
use std::path::Path;

use super::kallsyms::KernelSymbols;

pub const PROC_MODULES: &str = "/proc/modules";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KernelCode {
    ranges: Vec<Range<u64>>,
}

impl KernelCode {
    /// The kernel image's text (`_stext` to `_etext`) and the modules listed in
    /// /proc/modules; a missing piece leaves its range out.
    pub fn read(symbols: &KernelSymbols) -> Self {
        let modules = std::fs::read_to_string(Path::new(PROC_MODULES)).unwrap_or_default();
        Self::from_parts(symbols, &modules)
    }

    pub fn from_parts(symbols: &KernelSymbols, proc_modules: &str) -> Self {
        let image = symbols
            .address_of("_stext")
            .zip(symbols.address_of("_etext"))
            .map(|(start, end)| start..end);
        KernelCode {
            ranges: image
                .into_iter()
                .chain(module_ranges(proc_modules))
                .collect(),
        }
    }

    pub fn contains(&self, address: u64) -> bool {
        self.ranges.iter().any(|range| range.contains(&address))
    }
}

/// Where each module listed in /proc/modules text lies; modules whose address is hidden
/// (0) are left out.
pub fn module_ranges(proc_modules: &str) -> Vec<Range<u64>> {
    proc_modules
        .lines()
        .filter_map(|line| {
            // NAME SIZE REFCOUNT DEPENDENCIES STATE ADDRESS
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let size: u64 = fields.get(1)?.parse().ok()?;
            let start = u64::from_str_radix(fields.get(5)?.trim_start_matches("0x"), 16).ok()?;
            (start != 0).then(|| start..start + size)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_text_and_modules_are_code_trampolines_are_not() {
        let symbols = KernelSymbols::parse(
            "ffffffff81000000 T _stext\nffffffff81431450 t sock_poll\nffffffff82000000 T _etext\n",
            "kallsyms",
        )
        .unwrap();
        let code = KernelCode::from_parts(
            &symbols,
            "virtio_net 61440 0 - Live 0xffffffffc0123000\nhidden 4096 0 - Live 0x0000000000000000\n",
        );
        assert!(code.contains(0xffffffff81431460));
        assert!(code.contains(0xffffffffc0123010));
        assert!(!code.contains(0xffffffffc0133000), "past the module's end");
        assert!(!code.contains(0xffffffffc0092944), "a BPF trampoline");
        assert!(!code.contains(0xffffffff82000000));
    }
}
