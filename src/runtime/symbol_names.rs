//! The library functions that name kernel addresses through the kernel's symbols:
//! `symname`, `symdata`, `modname`, `print_syms`, `sprint_syms`, as SystemTap's tapset
//! reference describes them. Unlike the backtrace reads, their addresses are values the
//! script holds (a key kept from `addr()` or `backtrace()`), so they are named when the
//! function runs, in any probe.

use std::fmt::Write;

use super::backtrace;
use super::library::{Answer, Arg, Failure};
use crate::resolve::kallsyms::{FunctionSymbol, KernelSymbols};
use crate::script::{BacktraceFormat, Library};

/// Runs `symname`, `symdata`, `modname`, `print_syms` or `sprint_syms`; a string result is
/// appended to `dst`. Without symbols (a context that has none) every address is unknown.
pub fn call(
    function: Library,
    args: &[Arg<'_>],
    symbols: Option<&KernelSymbols>,
    dst: &mut Vec<u8>,
) -> Result<Answer, Failure> {
    let none = KernelSymbols::default();
    let symbols = symbols.unwrap_or(&none);
    let mut out = String::new();
    match (function, args.first()) {
        (Library::PrintSyms | Library::SprintSyms, Some(Arg::Str(callers))) => {
            let format = if function == Library::PrintSyms {
                BacktraceFormat::Full
            } else {
                BacktraceFormat::Simple
            };
            let frames = addresses(&String::from_utf8_lossy(callers));
            backtrace::write(&frames, format, symbols, &mut out);
        }
        (_, Some(&Arg::Int(address))) => {
            let address = address as u64;
            match (function, known(symbols, address)) {
                (Library::Symname, Some((symbol, _))) => out.push_str(symbol.name),
                (Library::Symdata, Some((symbol, size))) => {
                    let _ = write!(
                        out,
                        "{}+{:#x}/{size:#x} [{}]",
                        symbol.name,
                        address - symbol.address,
                        symbol.module.unwrap_or("kernel")
                    );
                }
                (Library::Modname, Some((symbol, _))) => {
                    out.push_str(symbol.module.unwrap_or("kernel"))
                }
                (Library::Modname, None) => {
                    return Err(Failure(format!("No module found for address {address:#x}")))
                }
                // SystemTap shows an address it cannot name in hex.
                (_, None) => {
                    let _ = write!(out, "{address:#x}");
                }
                (other, Some(_)) => unreachable!("{other:?} does not name an address"),
            }
        }
        (other, _) => unreachable!("{other:?} with arguments its signature does not give"),
    }
    dst.extend_from_slice(out.as_bytes());
    Ok(Answer::Done)
}

/// The function `address` lies in and its size, if it lies inside one: past the last
/// symbol nothing is known.
fn known(symbols: &KernelSymbols, address: u64) -> Option<(FunctionSymbol<'_>, u64)> {
    symbols
        .function_with_size(address)
        .filter(|(symbol, size)| address - symbol.address < (*size).max(1))
}

/// The hex addresses in `callers`, such as `backtrace()` gives: `0xffffffff81a2b3c0
/// 0xffffffff81a2b000`; words that are not hex are skipped.
fn addresses(callers: &str) -> Vec<u64> {
    callers
        .split_whitespace()
        .filter_map(|word| {
            let digits = word.strip_prefix("0x").unwrap_or(word);
            u64::from_str_radix(digits, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols() -> KernelSymbols {
        KernelSymbols::parse(
            "ffffffff81000000 T _text\n\
             ffffffff81a2b3c0 T sock_sendmsg\n\
             ffffffff81a2b420 T sock_recvmsg\n\
             ffffffffc0001000 t veth_xmit\t[veth]\n\
             ffffffffc0001100 t veth_open\t[veth]\n",
            "test",
        )
        .unwrap()
    }

    fn string(function: Library, args: &[Arg<'_>]) -> Result<String, Failure> {
        let mut out = Vec::new();
        call(function, args, Some(&symbols()), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn addresses_are_named_as_systemtap_names_them() {
        let inside = Arg::Int(0xffffffff81a2b3c4u64 as i64);
        assert_eq!(
            string(Library::Symname, &[Arg::Int(0xffffffff81a2b3c4u64 as i64)]).unwrap(),
            "sock_sendmsg"
        );
        assert_eq!(
            string(Library::Symdata, &[inside]).unwrap(),
            "sock_sendmsg+0x4/0x60 [kernel]"
        );
        let module = Arg::Int(0xffffffffc0001010u64 as i64);
        assert_eq!(string(Library::Modname, &[module]).unwrap(), "veth");
        assert_eq!(
            string(Library::Symname, &[Arg::Int(0x1234)]).unwrap(),
            "0x1234"
        );
        assert_eq!(
            string(Library::Modname, &[Arg::Int(0x1234)]).unwrap_err(),
            Failure("No module found for address 0x1234".into())
        );
        let callers = Arg::Str(b"0xffffffff81a2b3c0 0xffffffff81a2b424 junk 0x10");
        assert_eq!(
            string(Library::PrintSyms, &[callers]).unwrap(),
            " 0xffffffff81a2b3c0 : sock_sendmsg+0x0/0x60 [kernel]\n \
             0xffffffff81a2b424 : sock_recvmsg+0x4/0x3e5d5be0 [kernel]\n 0x10\n"
        );
    }
}
