//! SystemTap's printf: format strings parsed once into segments, then formatted per event
//! into a caller-owned byte buffer.
//!
//! The behaviour is the translator's and runtime's, quirks included: a conversion takes at
//! most one flag character (`%-08d` is left-justified with width 8; `%0-8d` is an error),
//! one `l` length modifier is accepted and ignored, `%p` is `%#x` (so `0x0` for zero), `%u`,
//! `%x` and `%o` print the 64-bit two's complement of negative numbers, `%c` prints the low
//! byte of its argument, and a negative `*` width or precision counts as zero.

use std::fmt;

/// Flags of one conversion; SystemTap's parser accepts at most one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    pub left: bool,
    pub plus: bool,
    pub space: bool,
    pub special: bool,
    pub zero_pad: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Unspecified,
    Fixed(usize),
    /// Taken from the next argument, an integer.
    FromArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    Str,
    Char,
    /// `%d` and `%i`.
    Signed,
    Unsigned {
        base: u32,
        upper: bool,
    },
    Pointer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub flags: Flags,
    pub width: Amount,
    pub precision: Amount,
    pub conversion: Conversion,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(Vec<u8>),
    Spec(Spec),
}

impl Segment {
    /// Literal text as it prints: a NUL ends it, as it ends the C string SystemTap emits.
    fn literal(mut text: Vec<u8>) -> Segment {
        if let Some(nul) = text.iter().position(|&b| b == 0) {
            text.truncate(nul);
        }
        Segment::Literal(text)
    }
}

/// The type an argument of a format must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    Int,
    Str,
}

impl fmt::Display for ArgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArgKind::Int => "long",
            ArgKind::Str => "string",
        })
    }
}

/// One argument's value at formatting time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    Int(i64),
    Str(&'a [u8]),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("invalid or missing conversion specifier after '%' at byte {0} of the format")]
    BadConversion(usize),
    #[error("format string ends inside a conversion")]
    Incomplete,
}

/// The largest output of one printf call, SystemTap's `STP_BUFFER_SIZE`.
pub const PRINT_LIMIT: usize = 8192;
/// SystemTap's `MAXSTRINGLEN`: strings hold at most one byte less.
pub const MAX_STRING_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    segments: Vec<Segment>,
}

impl Format {
    /// Parses a format given as decoded bytes; `escaped[i]` marks bytes that came from an
    /// escape sequence, which SystemTap's format parser sees as text, never as `%`.
    pub fn parse(bytes: &[u8], escaped: &[bool]) -> Result<Format, FormatError> {
        let is_plain = |i: usize, c: u8| bytes.get(i) == Some(&c) && !escaped[i];
        let mut segments = Vec::new();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if !is_plain(i, b'%') {
                literal.push(bytes[i]);
                i += 1;
                continue;
            }
            // A '%' at the very end, or "%%", is a literal percent sign.
            if i + 1 == bytes.len() || is_plain(i + 1, b'%') {
                literal.push(b'%');
                i += 2;
                continue;
            }
            if !literal.is_empty() {
                segments.push(Segment::literal(std::mem::take(&mut literal)));
            }
            let start = i;
            i += 1;
            let mut flags = Flags::default();
            let flag = match bytes[i] {
                _ if escaped[i] => None,
                b'0' => Some(&mut flags.zero_pad),
                b'+' => Some(&mut flags.plus),
                b'-' => Some(&mut flags.left),
                b' ' => Some(&mut flags.space),
                b'#' => Some(&mut flags.special),
                _ => None,
            };
            if let Some(flag) = flag {
                *flag = true;
                i += 1;
            }
            let width = parse_amount(bytes, escaped, &mut i);
            let precision = if is_plain(i, b'.') {
                i += 1;
                parse_amount(bytes, escaped, &mut i)
            } else {
                Amount::Unspecified
            };
            if is_plain(i, b'l') {
                i += 1;
            }
            if i >= bytes.len() {
                return Err(FormatError::Incomplete);
            }
            let conversion = match bytes[i] {
                _ if escaped[i] => return Err(FormatError::BadConversion(start)),
                b's' => Conversion::Str,
                b'c' => Conversion::Char,
                b'd' | b'i' => Conversion::Signed,
                b'u' => Conversion::Unsigned {
                    base: 10,
                    upper: false,
                },
                b'o' => Conversion::Unsigned {
                    base: 8,
                    upper: false,
                },
                b'x' => Conversion::Unsigned {
                    base: 16,
                    upper: false,
                },
                b'X' => Conversion::Unsigned {
                    base: 16,
                    upper: true,
                },
                b'p' => Conversion::Pointer,
                _ => return Err(FormatError::BadConversion(start)),
            };
            i += 1;
            segments.push(Segment::Spec(Spec {
                flags,
                width,
                precision,
                conversion,
            }));
        }
        if !literal.is_empty() {
            segments.push(Segment::literal(literal));
        }
        Ok(Format { segments })
    }

    /// A format printing `kinds` one after the other, as `print` and `println` do.
    pub fn for_values(kinds: &[ArgKind], newline: bool) -> Format {
        Format::delimited(kinds, b"", newline)
    }

    /// The format of `printd(delimiter, ...)` and `printdln`: each value as print shows
    /// it, `delimiter` between them.
    pub fn delimited(kinds: &[ArgKind], delimiter: &[u8], newline: bool) -> Format {
        let mut segments = Vec::new();
        for (index, kind) in kinds.iter().enumerate() {
            if index > 0 && !delimiter.is_empty() {
                segments.push(Segment::Literal(delimiter.to_vec()));
            }
            segments.push(Segment::Spec(Spec {
                flags: Flags::default(),
                width: Amount::Unspecified,
                precision: Amount::Unspecified,
                conversion: match kind {
                    ArgKind::Int => Conversion::Signed,
                    ArgKind::Str => Conversion::Str,
                },
            }));
        }
        if newline {
            segments.push(Segment::Literal(b"\n".to_vec()));
        }
        Format { segments }
    }

    /// The arguments the format consumes, in order (`*` amounts included).
    pub fn arg_kinds(&self) -> Vec<ArgKind> {
        let mut kinds = Vec::new();
        for segment in &self.segments {
            let Segment::Spec(spec) = segment else {
                continue;
            };
            for amount in [spec.width, spec.precision] {
                if amount == Amount::FromArg {
                    kinds.push(ArgKind::Int);
                }
            }
            kinds.push(match spec.conversion {
                Conversion::Str => ArgKind::Str,
                _ => ArgKind::Int,
            });
        }
        kinds
    }

    /// Appends the formatted text to `out`, writing at most `limit` bytes. The caller has
    /// checked the arguments against [`arg_kinds`](Self::arg_kinds); a mismatched or missing
    /// argument prints as an empty string or zero.
    pub fn write(&self, args: &[Arg<'_>], out: &mut Vec<u8>, limit: usize) {
        let start = out.len();
        let mut args = args.iter();
        let next_int = |args: &mut std::slice::Iter<'_, Arg<'_>>| match args.next() {
            Some(Arg::Int(n)) => *n,
            _ => 0,
        };
        for segment in &self.segments {
            let room = limit.saturating_sub(out.len() - start);
            match segment {
                Segment::Literal(text) => out.extend_from_slice(text),
                Segment::Spec(spec) => {
                    let mut amount = |amount: Amount| match amount {
                        Amount::Unspecified => None,
                        Amount::Fixed(n) => Some(n.min(room)),
                        // SystemTap clamps the C int it gets to [0, room].
                        Amount::FromArg => {
                            Some((next_int(&mut args) as i32).clamp(0, i32::MAX) as usize)
                                .map(|n| n.min(room))
                        }
                    };
                    let width = amount(spec.width);
                    let precision = amount(spec.precision);
                    match spec.conversion {
                        Conversion::Str => {
                            let text = match args.next() {
                                Some(Arg::Str(s)) => *s,
                                _ => b"",
                            };
                            write_str(out, text, width, precision, spec.flags);
                        }
                        Conversion::Char => {
                            let byte = next_int(&mut args) as u8;
                            write_char(out, byte, width, spec.flags);
                        }
                        Conversion::Signed => {
                            let n = next_int(&mut args);
                            write_number(
                                out, n as u64, 10, false, true, width, precision, spec.flags,
                            );
                        }
                        Conversion::Unsigned { base, upper } => {
                            let n = next_int(&mut args);
                            write_number(
                                out, n as u64, base, upper, false, width, precision, spec.flags,
                            );
                        }
                        Conversion::Pointer => {
                            let flags = Flags {
                                special: true,
                                ..spec.flags
                            };
                            let n = next_int(&mut args);
                            write_number(out, n as u64, 16, false, false, width, precision, flags);
                        }
                    }
                }
            }
        }
        out.truncate(start + limit.min(out.len() - start));
    }
}

fn parse_amount(bytes: &[u8], escaped: &[bool], i: &mut usize) -> Amount {
    let plain_digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit) && !escaped[i];
    if bytes.get(*i) == Some(&b'*') && !escaped[*i] {
        *i += 1;
        return Amount::FromArg;
    }
    if !plain_digit(*i) {
        return Amount::Unspecified;
    }
    let mut n: usize = 0;
    while plain_digit(*i) {
        n = n
            .saturating_mul(10)
            .saturating_add(usize::from(bytes[*i] - b'0'));
        *i += 1;
    }
    Amount::Fixed(n)
}

fn pad(out: &mut Vec<u8>, byte: u8, count: usize) {
    out.resize(out.len() + count, byte);
}

/// `%s`: at most `precision` bytes, space-padded to `width`. With the `0` flag SystemTap
/// appends a NUL byte after the field.
fn write_str(
    out: &mut Vec<u8>,
    text: &[u8],
    width: Option<usize>,
    precision: Option<usize>,
    flags: Flags,
) {
    let text = &text[..precision.unwrap_or(usize::MAX).min(text.len())];
    let fill = width.unwrap_or(0).saturating_sub(text.len());
    if !flags.left {
        pad(out, b' ', fill);
    }
    out.extend_from_slice(text);
    if flags.left {
        pad(out, b' ', fill);
    }
    if flags.zero_pad {
        out.push(0);
    }
}

/// `%c`: the byte itself, or with `#` a C escape for unprintable bytes, quotes and backslash.
fn write_char(out: &mut Vec<u8>, byte: u8, width: Option<usize>, flags: Flags) {
    let mut field = [0u8; 4];
    let escape = match byte {
        0x07 => Some(b'a'),
        0x08 => Some(b'b'),
        0x0c => Some(b'f'),
        b'\n' => Some(b'n'),
        b'\r' => Some(b'r'),
        b'\t' => Some(b't'),
        0x0b => Some(b'v'),
        b'\'' => Some(b'\''),
        b'\\' => Some(b'\\'),
        _ => None,
    };
    let needs_escape = flags.special && (!(0x20..0x7f).contains(&byte) || escape.is_some());
    let len = match (needs_escape, escape) {
        (false, _) => {
            field[0] = byte;
            1
        }
        (true, Some(letter)) => {
            field[..2].copy_from_slice(&[b'\\', letter]);
            2
        }
        (true, None) => {
            field = [
                b'\\',
                b'0' + (byte >> 6),
                b'0' + ((byte >> 3) & 7),
                b'0' + (byte & 7),
            ];
            4
        }
    };
    let fill = width.unwrap_or(0).saturating_sub(len);
    if !flags.left {
        pad(out, b' ', fill);
    }
    out.extend_from_slice(&field[..len]);
    if flags.left {
        pad(out, b' ', fill);
    }
}

/// Writes `num`'s digits right-aligned into `digits`; returns how many there are.
fn digits_in_base<const BASE: u64>(mut num: u64, upper: bool, digits: &mut [u8; 64]) -> usize {
    let mut count = 0;
    loop {
        let d = (num % BASE) as u8;
        digits[63 - count] = match d {
            0..=9 => b'0' + d,
            _ if upper => b'A' + d - 10,
            _ => b'a' + d - 10,
        };
        count += 1;
        num /= BASE;
        if num == 0 {
            return count;
        }
    }
}

/// `%*d`: `n` in decimal, right-aligned in `width` columns.
pub fn write_decimal(out: &mut Vec<u8>, n: i64, width: usize) {
    write_number(
        out,
        n as u64,
        10,
        false,
        true,
        Some(width),
        None,
        Flags::default(),
    );
}

/// The runtime's `number()`: sign or `0x`/`0` prefix, zero or space padding to `width`, and
/// at least `precision` digits (zero still prints one digit when precision is 0).
#[allow(clippy::too_many_arguments)]
fn write_number(
    out: &mut Vec<u8>,
    mut num: u64,
    base: u32,
    upper: bool,
    signed: bool,
    width: Option<usize>,
    precision: Option<usize>,
    flags: Flags,
) {
    let mut size = width.map_or(-1, |w| w as i64);
    let zero_pad = flags.zero_pad && !flags.left;
    let mut sign = None;
    if signed {
        if (num as i64) < 0 {
            sign = Some(b'-');
            num = (num as i64).wrapping_neg() as u64;
        } else if flags.plus {
            sign = Some(b'+');
        } else if flags.space {
            sign = Some(b' ');
        }
        if sign.is_some() {
            size -= 1;
        }
    }
    let prefix: &[u8] = match (flags.special, base, upper) {
        (true, 16, false) => b"0x",
        (true, 16, true) => b"0X",
        (true, 8, _) => b"0",
        _ => b"",
    };
    size -= prefix.len() as i64;
    let mut digits = [0u8; 64];
    // A constant base lets the compiler turn each division into a multiplication.
    let count = match base {
        8 => digits_in_base::<8>(num, upper, &mut digits),
        16 => digits_in_base::<16>(num, upper, &mut digits),
        _ => digits_in_base::<10>(num, upper, &mut digits),
    };
    let precision = precision.unwrap_or(0).max(count);
    size -= precision as i64;
    let fill = size.max(0) as usize;
    if !zero_pad && !flags.left {
        pad(out, b' ', fill);
    }
    out.extend(sign);
    out.extend_from_slice(prefix);
    if zero_pad {
        pad(out, b'0', fill);
    }
    pad(out, b'0', precision - count);
    out.extend_from_slice(&digits[64 - count..]);
    if flags.left {
        pad(out, b' ', fill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(fmt: &str, args: &[Arg<'_>]) -> String {
        let escaped = vec![false; fmt.len()];
        let parsed = Format::parse(fmt.as_bytes(), &escaped).unwrap();
        let mut out = Vec::new();
        parsed.write(args, &mut out, PRINT_LIMIT);
        String::from_utf8(out).unwrap()
    }

    fn int(fmt: &str, n: i64) -> String {
        format(fmt, &[Arg::Int(n)])
    }

    #[test]
    fn pointer_is_hash_x() {
        assert_eq!(
            int("%p", 0xffffffff81431450_u64 as i64),
            "0xffffffff81431450"
        );
        assert_eq!(int("%p", 0), "0x0");
        assert_eq!(int("%p", 255), "0xff");
        assert_eq!(int("[%10p]", 255), "[      0xff]");
        assert_eq!(int("[%-10p]", 255), "[0xff      ]");
        assert_eq!(int("[%010p]", 255), "[0x000000ff]");
        assert_eq!(int("%p", -1), "0xffffffffffffffff");
    }

    #[test]
    fn negative_numbers_in_unsigned_conversions_are_64_bit() {
        assert_eq!(int("%u", -1), "18446744073709551615");
        assert_eq!(int("%x", -2), "fffffffffffffffe");
        assert_eq!(int("%X", -2), "FFFFFFFFFFFFFFFE");
        assert_eq!(int("%o", -1), "1777777777777777777777");
        assert_eq!(int("%d", i64::MIN), "-9223372036854775808");
    }

    #[test]
    fn flags_width_and_precision() {
        assert_eq!(int("[%6d]", 42), "[    42]");
        assert_eq!(int("[%-6d]", 42), "[42    ]");
        assert_eq!(int("[%06d]", -42), "[-00042]");
        assert_eq!(int("[%+d]", 42), "[+42]");
        assert_eq!(int("[% d]", 42), "[ 42]");
        assert_eq!(int("[%+u]", 42), "[42]");
        assert_eq!(int("[%.4d]", 42), "[0042]");
        assert_eq!(int("[%8.4x]", 42), "[    002a]");
        assert_eq!(int("[%#o]", 8), "[010]");
        assert_eq!(int("[%#X]", 255), "[0XFF]");
        assert_eq!(int("[%.0d]", 0), "[0]");
        assert_eq!(int("[%ld]", 7), "[7]");
    }

    #[test]
    fn only_one_flag_is_taken_as_in_systemtap() {
        // The '0' after '-' is read as the start of the width.
        assert_eq!(int("[%-08d]", 5), "[5       ]");
        let escaped = [false; 5];
        assert_eq!(
            Format::parse(b"%0-8d", &escaped),
            Err(FormatError::BadConversion(0))
        );
    }

    #[test]
    fn strings_and_dynamic_amounts() {
        let s = Arg::Str(b"hello");
        assert_eq!(format("[%s]", &[s]), "[hello]");
        assert_eq!(format("[%8s]", &[s]), "[   hello]");
        assert_eq!(format("[%-8s]", &[s]), "[hello   ]");
        assert_eq!(format("[%.2s]", &[s]), "[he]");
        assert_eq!(format("[%.0s]", &[s]), "[]");
        assert_eq!(format("[%*s]", &[Arg::Int(7), s]), "[  hello]");
        assert_eq!(format("[%-*s]", &[Arg::Int(3), Arg::Str(b"")]), "[   ]");
        // A negative dynamic width is clamped to zero, not taken as '-'.
        assert_eq!(format("[%*s]", &[Arg::Int(-7), s]), "[hello]");
        assert_eq!(format("[%.*s]", &[Arg::Int(-1), s]), "[]");
        assert_eq!(format("[%*d]", &[Arg::Int(5), Arg::Int(-3)]), "[   -3]");
    }

    #[test]
    fn zero_flag_on_a_string_appends_nul() {
        let fmt = Format::parse(b"%05s|", &[false; 5]).unwrap();
        let mut out = Vec::new();
        fmt.write(&[Arg::Str(b"ab")], &mut out, PRINT_LIMIT);
        assert_eq!(out, b"   ab\0|");
    }

    #[test]
    fn chars() {
        assert_eq!(int("[%c]", 65), "[A]");
        assert_eq!(int("[%c]", 0x141), "[A]");
        assert_eq!(int("[%3c]", 65), "[  A]");
        assert_eq!(int("[%-3c]", 65), "[A  ]");
        assert_eq!(int("[%#c]", 10), "[\\n]");
        assert_eq!(int("[%#c]", 1), "[\\001]");
        assert_eq!(int("[%#c]", 39), "[\\']");
        assert_eq!(int("[%#5c]", 200), "[ \\310]");
        assert_eq!(int("[%#c]", 65), "[A]");
    }

    #[test]
    fn percent_signs() {
        assert_eq!(format("100%%", &[]), "100%");
        assert_eq!(format("100%", &[]), "100%");
        assert_eq!(
            Format::parse(b"%5", &[false; 2]),
            Err(FormatError::Incomplete)
        );
        assert_eq!(
            Format::parse(b"a %q", &[false; 4]),
            Err(FormatError::BadConversion(2))
        );
    }

    #[test]
    fn escaped_percent_is_text() {
        let fmt = Format::parse(b"%d%", &[true, false, false]).unwrap();
        assert_eq!(fmt.arg_kinds(), vec![]);
        let mut out = Vec::new();
        fmt.write(&[], &mut out, PRINT_LIMIT);
        assert_eq!(out, b"%d%");
    }

    #[test]
    fn argument_kinds_include_star_amounts() {
        let fmt = Format::parse(b"%*.*s %c %p %d", &[false; 14]).unwrap();
        use ArgKind::{Int, Str};
        assert_eq!(fmt.arg_kinds(), vec![Int, Int, Str, Int, Int, Int]);
    }

    #[test]
    fn output_is_limited_and_widths_clamped() {
        let fmt = Format::parse(b"ab%1000000d", &[false; 11]).unwrap();
        let mut out = b"keep".to_vec();
        fmt.write(&[Arg::Int(1)], &mut out, 10);
        // The width is clamped to the 8 bytes left, so the digit still fits.
        assert_eq!(out, b"keepab       1");
    }

    #[test]
    fn nul_ends_a_literal_segment() {
        let fmt = Format::parse(b"a\0b%dc", &[false, true, false, false, false, false]).unwrap();
        let mut out = Vec::new();
        fmt.write(&[Arg::Int(5)], &mut out, PRINT_LIMIT);
        assert_eq!(out, b"a5c");
    }

    #[test]
    fn print_formats_values_plainly() {
        let fmt = Format::for_values(&[ArgKind::Str, ArgKind::Int], true);
        let mut out = Vec::new();
        fmt.write(&[Arg::Str(b"x"), Arg::Int(-3)], &mut out, PRINT_LIMIT);
        assert_eq!(out, b"x-3\n");
    }
}
