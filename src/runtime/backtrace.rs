//! Kernel backtraces as SystemTap writes them: `print_backtrace()`'s
//! ` 0xffffffff81a2b3c0 : sock_sendmsg+0x0/0x60 [kernel]` lines, `sprint_backtrace()`'s
//! `sock_sendmsg+0x0 [kernel]` lines, `backtrace()`'s hex addresses.

use std::fmt::Write;

use crate::resolve::kallsyms::KernelSymbols;
use crate::script::BacktraceFormat;

/// The frames of a function's entry, as SystemTap shows them: the probed function first,
/// then its callers. The raw stack may start inside the probe machinery (a BPF program, a
/// trampoline) and reach the function at a return address just past its entry; what comes
/// before the function is dropped, and the function is shown at its entry address.
pub fn at_entry(raw: &[u64], function: u64, function_size: u64) -> Vec<u64> {
    let inside = |address: u64| address >= function && address - function < function_size.max(1);
    let mut frames = vec![function];
    match raw.iter().position(|&address| inside(address)) {
        Some(first) => frames.extend_from_slice(&raw[first + 1..]),
        None => frames.extend_from_slice(raw),
    }
    frames
}

/// Appends `frames` to `out` in `format`.
pub fn write(frames: &[u64], format: BacktraceFormat, symbols: &KernelSymbols, out: &mut String) {
    for &address in frames {
        let symbol = symbols.function_with_size(address);
        // The kernel image's functions belong to the module SystemTap calls "kernel".
        let named = symbol.map(|(function, size)| {
            (
                function.name.trim_start_matches('.'),
                address - function.address,
                size,
                function.module.unwrap_or("kernel"),
            )
        });
        // SystemTap's runtime writes addresses with `%p`, which is `%#x` since stap 1.3 (no
        // padding), as rstap's printf does. Writing to a String cannot fail.
        let _ = match (format, named) {
            (BacktraceFormat::Hex, _) => write!(out, "{address:#x} "),
            (BacktraceFormat::Full, Some((name, offset, size, module))) => writeln!(
                out,
                " {address:#x} : {name}+{offset:#x}/{size:#x} [{module}]"
            ),
            (BacktraceFormat::Simple, Some((name, offset, _, module))) => {
                writeln!(out, "{name}+{offset:#x} [{module}]")
            }
            (BacktraceFormat::Full, None) => writeln!(out, " {address:#x}"),
            (BacktraceFormat::Simple, None) => writeln!(out, "{address:#x}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shape_is_systemtaps() {
        let symbols = KernelSymbols::parse(
            "ffffffff81e5ba30 T tcp_sendmsg\n\
             ffffffff81e5ba70 T tcp_splice_eof\n\
             ffffffffc0001000 t nf_hook_x\t[nf_tables]\n\
             ffffffffc0002000 t nf_next\t[nf_tables]\n",
            "kallsyms",
        )
        .unwrap();
        let frames = [0xffff_ffff_81e5_ba30, 0xffff_ffff_c000_1010, 0x1234];
        let shape = |format| {
            let mut text = String::new();
            write(&frames, format, &symbols, &mut text);
            text
        };
        assert_eq!(
            shape(BacktraceFormat::Full),
            " 0xffffffff81e5ba30 : tcp_sendmsg+0x0/0x40 [kernel]\n \
             0xffffffffc0001010 : nf_hook_x+0x10/0x1000 [nf_tables]\n \
             0x1234\n"
        );
        assert_eq!(
            shape(BacktraceFormat::Simple),
            "tcp_sendmsg+0x0 [kernel]\nnf_hook_x+0x10 [nf_tables]\n0x1234\n"
        );
        assert_eq!(
            shape(BacktraceFormat::Hex),
            "0xffffffff81e5ba30 0xffffffffc0001010 0x1234 "
        );
    }

    #[test]
    fn the_entry_shows_the_function_then_its_callers() {
        let function = 0xffff_ffff_8100_1000;
        // A BPF program and a trampoline, the return address into the function just past
        // its patched entry, then the callers.
        let raw = [
            0xffff_ffff_c000_0100,
            0xffff_ffff_c000_2000,
            function + 5,
            0x10,
            0x20,
        ];
        assert_eq!(at_entry(&raw, function, 0x60), [function, 0x10, 0x20]);
        // A kprobe's stack starts at the function itself.
        assert_eq!(
            at_entry(&[function, 0x10], function, 0x60),
            [function, 0x10]
        );
        // Nothing inside the function: everything is kept after it.
        assert_eq!(
            at_entry(&[0x10, 0x20], function, 0x60),
            [function, 0x10, 0x20]
        );
    }
}
