//! rstap's library of string, number and time functions (`strlen`, `substr`, `ctime`, ...),
//! written to SystemTap's tapset documentation: what each takes, gives, and refuses.

use std::cell::OnceCell;

use super::abi_tables::{ERRNOS, SIGNALS_X86_64, SYSCALLS_X86_64};
use super::dispatch::clock_ns;
use super::symbol_names;
use crate::resolve::kallsyms::KernelSymbols;
use crate::script::Library;
use crate::system::{self, OwnProcess, TickSample};

/// An argument's value.
pub enum Arg<'a> {
    Int(i64),
    Str(&'a [u8]),
}

/// What a call gives: a long, or nothing (its string result, if any, is in the output
/// buffer it was given).
pub enum Answer {
    Int(i64),
    Done,
}

/// A call that SystemTap fails with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

/// The state some functions keep between calls, and the facts they read once.
#[derive(Debug)]
pub struct LibraryState {
    /// MAXSTRINGLEN, which `text_strn` cuts at.
    max_string_len: usize,
    /// xorshift64 state for `randint`; 0 until first used.
    random: u64,
    /// What `tokenize` has yet to split.
    untokenized: Vec<u8>,
    ticks: OnceCell<Result<TickSample, String>>,
    time_zone: OnceCell<(i64, String)>,
    process: OnceCell<OwnProcess>,
}

impl LibraryState {
    pub fn new(max_string_len: usize) -> Self {
        LibraryState {
            max_string_len,
            random: 0,
            untokenized: Vec::new(),
            ticks: OnceCell::new(),
            time_zone: OnceCell::new(),
            process: OnceCell::new(),
        }
    }

    /// `jiffies()` at a CLOCK_MONOTONIC time: the kernel's count at one moment, read once,
    /// carried forward at HZ.
    pub fn jiffies(&self, monotonic_ns: i64) -> Result<i64, Failure> {
        let hz = system::kernel_hz().map_err(Failure)?;
        let sample = self
            .ticks
            .get_or_init(system::tick_sample)
            .clone()
            .map_err(Failure)?;
        let elapsed = i128::from(monotonic_ns - sample.monotonic_ns);
        Ok(sample.jiffies + (elapsed * i128::from(hz) / 1_000_000_000) as i64)
    }

    fn time_zone(&self) -> &(i64, String) {
        self.time_zone.get_or_init(system::local_time_zone)
    }

    fn process(&self) -> &OwnProcess {
        self.process.get_or_init(system::own_process)
    }
}

/// The name a table of the kernel's ABI gives a number.
fn name_of(table: &[(i64, &'static str)], number: i64) -> Option<&'static str> {
    let at = table.binary_search_by_key(&number, |&(n, _)| n).ok()?;
    Some(table[at].1)
}

/// Runs `function` on `args` (as many and of the types its signature says); a string
/// result is appended to `dst`. `symbols` name kernel addresses.
pub fn call(
    function: Library,
    args: &[Arg<'_>],
    state: &mut LibraryState,
    symbols: Option<&KernelSymbols>,
    dst: &mut Vec<u8>,
) -> Result<Answer, Failure> {
    let int = |i: usize| match args.get(i) {
        Some(Arg::Int(n)) => *n,
        _ => 0,
    };
    let text = |i: usize| match args.get(i) {
        Some(Arg::Str(s)) => *s,
        _ => &[][..],
    };
    Ok(match function {
        Library::Symname
        | Library::Symdata
        | Library::Modname
        | Library::PrintSyms
        | Library::SprintSyms => return symbol_names::call(function, args, symbols, dst),
        Library::Strlen => Answer::Int(text(0).len() as i64),
        Library::Substr => {
            let (s, start, length) = (text(0), int(1), int(2));
            if (0..s.len() as i64).contains(&start) && length > 0 {
                let start = start as usize;
                let end = start.saturating_add(length as usize).min(s.len());
                dst.extend_from_slice(&s[start..end]);
            }
            Answer::Done
        }
        Library::Isinstr => Answer::Int(i64::from(find(text(0), text(1)).is_some())),
        Library::StrReplace => {
            let (mut s, pattern, replacement) = (text(0), text(1), text(2));
            if pattern.is_empty() {
                dst.extend_from_slice(s);
            } else {
                while let Some(at) = find(s, pattern) {
                    dst.extend_from_slice(&s[..at]);
                    dst.extend_from_slice(replacement);
                    s = &s[at + pattern.len()..];
                }
                dst.extend_from_slice(s);
            }
            Answer::Done
        }
        Library::Strtol => Answer::Int(strtol(text(0), int(1))?),
        Library::Stringat => {
            let (s, index) = (text(0), int(1));
            match usize::try_from(index).ok().and_then(|i| s.get(i)) {
                Some(&byte) => Answer::Int(i64::from(byte)),
                None => return Err(Failure(format!("invalid string index {index}"))),
            }
        }
        Library::System => {
            let command = String::from_utf8_lossy(text(0)).into_owned();
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(&command)
                .stdin(std::process::Stdio::null())
                .spawn()
                .map_err(|err| Failure(format!("system: cannot run `{command}`: {err}")))?;
            // As SystemTap's, the command runs beside the script, which does not wait for
            // it; a thread reaps it when it ends.
            std::thread::spawn(move || child.wait());
            Answer::Done
        }
        Library::TextStr => {
            escape(text(0), dst);
            Answer::Done
        }
        Library::Tokenize => {
            let (input, delimiters) = (text(0), text(1));
            if !input.is_empty() {
                state.untokenized = input.to_vec();
            }
            let rest = std::mem::take(&mut state.untokenized);
            let is_delimiter = |byte: &u8| delimiters.contains(byte);
            let start = rest
                .iter()
                .position(|b| !is_delimiter(b))
                .unwrap_or(rest.len());
            let end = rest[start..]
                .iter()
                .position(is_delimiter)
                .map_or(rest.len(), |n| start + n);
            dst.extend_from_slice(&rest[start..end]);
            state.untokenized = rest[end..].to_vec();
            Answer::Done
        }
        Library::TextStrn => {
            text_strn(text(0), int(1), int(2) != 0, state.max_string_len, dst);
            Answer::Done
        }
        Library::Ctime => {
            ctime(int(0), dst);
            Answer::Done
        }
        Library::Randint => {
            let range = int(0);
            if range <= 0 || range > 1 << 20 {
                return Err(Failure(format!(
                    "randint: range {range} must be between 1 and 1048576"
                )));
            }
            Answer::Int((next_random(state) % range as u64) as i64)
        }
        Library::Hz => Answer::Int(system::kernel_hz().map_err(Failure)?),
        Library::SyscallName => {
            dst.extend_from_slice(name_of(SYSCALLS_X86_64, int(0)).unwrap_or("").as_bytes());
            Answer::Done
        }
        Library::ErrnoStr => match name_of(ERRNOS, int(0).wrapping_abs()) {
            Some(name) => print(dst, name),
            None => print(dst, &format!("E#{}", int(0).wrapping_abs())),
        },
        Library::SignalStr => {
            let number = int(0);
            match name_of(SIGNALS_X86_64, number) {
                Some(name) => print(dst, name),
                // The real-time signals, numbered from the kernel's SIGRTMIN (32).
                None if number == 32 => print(dst, "SIGRTMIN"),
                None if (33..=64).contains(&number) => {
                    print(dst, &format!("SIGRTMIN+{}", number - 32))
                }
                None => print(dst, &format!("SIG#{number}")),
            }
        }
        Library::ReturnStr => {
            let (format, value) = (int(0), int(1));
            match name_of(ERRNOS, value.wrapping_neg()).filter(|_| value < 0) {
                Some(name) => print(dst, &format!("{value} ({name})")),
                None if format == 2 => print(dst, &format!("0x{value:x}")),
                // C's `%#lo`: a leading 0, except for 0 itself.
                None if format == 3 && value != 0 => print(dst, &format!("0{value:o}")),
                None => print(dst, &value.to_string()),
            }
        }
        Library::SyscallNum => Answer::Int(
            SYSCALLS_X86_64
                .iter()
                .find(|(_, name)| name.as_bytes() == text(0))
                .map_or(-1, |&(number, _)| number),
        ),
        Library::TzGmtoff => Answer::Int(state.time_zone().0),
        Library::TzName => print(dst, &state.time_zone().1),
        Library::TzCtime => {
            let (west, name) = state.time_zone();
            ctime(int(0).wrapping_sub(*west), dst);
            print(dst, &format!(" {name}"))
        }
        Library::Uid => Answer::Int(state.process().uid),
        Library::Gid => Answer::Int(state.process().gid),
        Library::Euid => Answer::Int(state.process().euid),
        Library::Egid => Answer::Int(state.process().egid),
        Library::Ppid => Answer::Int(state.process().ppid),
        Library::Pexecname => print(dst, &state.process().parent_name),
        Library::ProcMemSize => Answer::Int(system::process_pages(int(0)).size),
        Library::ProcMemRss => Answer::Int(system::process_pages(int(0)).resident),
        Library::ProcMemShr => Answer::Int(system::process_pages(int(0)).shared),
        Library::Cmdline => print(dst, &system::process_arguments(int(0))),
        Library::OpenFiles => Answer::Int(system::open_files(int(0))),
        Library::Error => {
            return Err(Failure(String::from_utf8_lossy(text(0)).into_owned()));
        }
        Library::Warn => {
            dst.extend_from_slice(text(0));
            Answer::Done
        }
        Library::AnsiClearScreen => print(dst, "\x1b[1;1H\x1b[J"),
        Library::AnsiSetColor => print(dst, &format!("\x1b[{}m", int(0))),
        Library::AnsiSetColors => print(dst, &format!("\x1b[{};{}m", int(1), int(0))),
        Library::AnsiSetColorsAndAttribute => {
            let attribute = match int(2) {
                0 => String::new(),
                attribute => format!(";{attribute}"),
            };
            print(dst, &format!("\x1b[{};{}{attribute}m", int(1), int(0)))
        }
        Library::AnsiResetColor => print(dst, "\x1b[0;0m"),
        Library::AnsiNewLine => print(dst, "\n"),
        Library::AnsiCursorMove => print(dst, &format!("\x1b[{};{}H", int(1), int(0))),
        Library::AnsiCursorHide => print(dst, "\x1b[>5I"),
        Library::AnsiCursorShow => print(dst, "\x1b[>5h"),
        Library::AnsiCursorSave => print(dst, "\x1b[s"),
        Library::AnsiCursorRestore => print(dst, "\x1b[u"),
    })
}

/// What a printing function prints, appended to its output.
fn print(dst: &mut Vec<u8>, text: &str) -> Answer {
    dst.extend_from_slice(text.as_bytes());
    Answer::Done
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn next_random(state: &mut LibraryState) -> u64 {
    if state.random == 0 {
        state.random = (clock_ns(libc::CLOCK_MONOTONIC) as u64) | 1;
    }
    state.random ^= state.random << 13;
    state.random ^= state.random >> 7;
    state.random ^= state.random << 17;
    state.random
}

/// C's strtol: blanks, a sign, `0x` for base 16 (or base 0, which also takes `0` for
/// octal), then as many digits of the base as there are; values beyond a long saturate.
fn strtol(text: &[u8], base: i64) -> Result<i64, Failure> {
    if base != 0 && !(2..=36).contains(&base) {
        return Err(Failure(format!("strtol: invalid base {base}")));
    }
    let mut rest = text.trim_ascii_start();
    let negative = rest.first() == Some(&b'-');
    if matches!(rest.first(), Some(b'-' | b'+')) {
        rest = &rest[1..];
    }
    let hex_prefix = rest.len() > 2 && rest[0] == b'0' && matches!(rest[1], b'x' | b'X');
    let base = match base {
        0 if hex_prefix => 16,
        0 if rest.first() == Some(&b'0') => 8,
        0 => 10,
        base => base as u32,
    };
    if base == 16 && hex_prefix {
        rest = &rest[2..];
    }
    let mut value: i128 = 0;
    for &byte in rest {
        let Some(digit) = (byte as char).to_digit(base) else {
            break;
        };
        value = (value * i128::from(base) + i128::from(digit)).min(i128::from(u64::MAX));
    }
    let value = if negative { -value } else { value };
    Ok(value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// Escapes a string as C would write it: `\n`, `\"`, `\\`, and `\ooo` for other bytes that
/// are not printable.
fn escape(text: &[u8], dst: &mut Vec<u8>) {
    for &byte in text {
        push_escaped(byte, dst);
    }
}

fn push_escaped(byte: u8, dst: &mut Vec<u8>) {
    let simple = match byte {
        b'\n' => Some(b'n'),
        b'\t' => Some(b't'),
        0x0b => Some(b'v'),
        0x08 => Some(b'b'),
        b'\r' => Some(b'r'),
        0x0c => Some(b'f'),
        0x07 => Some(b'a'),
        b'\\' => Some(b'\\'),
        b'"' => Some(b'"'),
        b'\'' => Some(b'\''),
        _ => None,
    };
    match simple {
        Some(letter) => dst.extend_from_slice(&[b'\\', letter]),
        None if (0x20..0x7f).contains(&byte) => dst.push(byte),
        None => dst.extend_from_slice(format!("\\{byte:03o}").as_bytes()),
    }
}

/// What `user_string_quoted(p)` and `kernel_string_quoted(p)` make of the string they
/// read: escaped as by `text_str`, in double quotes, cut to the string length limit.
pub(crate) fn quote(text: &[u8], max_string_len: usize, dst: &mut Vec<u8>) {
    text_strn(text, 0, true, max_string_len, dst)
}

/// `text_strn(s, len, quoted)`: escaped as by `text_str`, at most `len` bytes of it (0 for
/// the string length limit), in double quotes if `quoted`, with `...` after when cut.
fn text_strn(text: &[u8], len: i64, quoted: bool, max_string_len: usize, dst: &mut Vec<u8>) {
    let limit = match usize::try_from(len) {
        Ok(0) | Err(_) => max_string_len - 1,
        Ok(len) => len.min(max_string_len - 1),
    };
    if quoted {
        dst.push(b'"');
    }
    let start = dst.len();
    let mut cut = false;
    let mut one = Vec::with_capacity(4);
    for &byte in text {
        one.clear();
        push_escaped(byte, &mut one);
        if dst.len() - start + one.len() > limit {
            cut = true;
            break;
        }
        dst.extend_from_slice(&one);
    }
    if quoted {
        dst.push(b'"');
    }
    if cut {
        dst.extend_from_slice(b"...");
    }
}

/// `ctime(seconds)`: the UTC time as C's ctime writes it, without its newline:
/// `Wed Jun 30 21:49:08 1993`.
fn ctime(seconds: i64, dst: &mut Vec<u8>) {
    // SystemTap's range: dates within what a 32-bit time_t holds.
    if !(0..=i64::from(i32::MAX)).contains(&seconds) {
        dst.extend_from_slice(b"<invalid time>");
        return;
    }
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, secs) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's days-to-civil, for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    dst.extend_from_slice(
        format!(
            "{} {} {day:2} {:02}:{:02}:{:02} {year}",
            DAYS[(days % 7) as usize],
            MONTHS[(month - 1) as usize],
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
        .as_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::printf::MAX_STRING_LEN;

    fn string(function: Library, args: &[Arg<'_>]) -> String {
        let mut out = Vec::new();
        call(
            function,
            args,
            &mut LibraryState::new(MAX_STRING_LEN),
            None,
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn long(function: Library, args: &[Arg<'_>]) -> i64 {
        match call(
            function,
            args,
            &mut LibraryState::new(MAX_STRING_LEN),
            None,
            &mut Vec::new(),
        ) {
            Ok(Answer::Int(n)) => n,
            _ => panic!("no long"),
        }
    }

    #[test]
    fn strings() {
        use Arg::{Int, Str};
        assert_eq!(long(Library::Strlen, &[Str(b"hello")]), 5);
        assert_eq!(string(Library::SyscallName, &[Int(42)]), "connect");
        assert_eq!(string(Library::SyscallName, &[Int(400)]), "");
        assert_eq!(long(Library::SyscallNum, &[Str(b"sendto")]), 44);
        assert_eq!(long(Library::SyscallNum, &[Str(b"nope")]), -1);
        assert_eq!(string(Library::ErrnoStr, &[Int(-111)]), "ECONNREFUSED");
        assert_eq!(string(Library::ErrnoStr, &[Int(2)]), "ENOENT");
        assert_eq!(string(Library::ErrnoStr, &[Int(3333)]), "E#3333");
        assert_eq!(string(Library::SignalStr, &[Int(9)]), "SIGKILL");
        assert_eq!(string(Library::SignalStr, &[Int(34)]), "SIGRTMIN+2");
        assert_eq!(string(Library::SignalStr, &[Int(99)]), "SIG#99");
        assert_eq!(
            string(Library::ReturnStr, &[Int(1), Int(-11)]),
            "-11 (EAGAIN)"
        );
        assert_eq!(string(Library::ReturnStr, &[Int(1), Int(16)]), "16");
        assert_eq!(string(Library::ReturnStr, &[Int(2), Int(255)]), "0xff");
        assert_eq!(string(Library::ReturnStr, &[Int(3), Int(8)]), "010");
        assert_eq!(string(Library::ReturnStr, &[Int(1), Int(-3333)]), "-3333");
        assert_eq!(
            string(Library::Substr, &[Str(b"hello"), Int(1), Int(3)]),
            "ell"
        );
        assert_eq!(
            string(Library::Substr, &[Str(b"hello"), Int(3), Int(99)]),
            "lo"
        );
        assert_eq!(
            string(Library::Substr, &[Str(b"hello"), Int(9), Int(1)]),
            ""
        );
        assert_eq!(long(Library::Isinstr, &[Str(b"hello"), Str(b"ll")]), 1);
        assert_eq!(long(Library::Isinstr, &[Str(b"hello"), Str(b"z")]), 0);
        assert_eq!(
            string(Library::StrReplace, &[Str(b"a-b-c"), Str(b"-"), Str(b"+=")]),
            "a+=b+=c"
        );
        assert_eq!(long(Library::Stringat, &[Str(b"AB"), Int(1)]), 66);
        assert_eq!(
            call(
                Library::Stringat,
                &[Str(b"AB"), Int(2)],
                &mut LibraryState::new(MAX_STRING_LEN),
                None,
                &mut Vec::new()
            )
            .err(),
            Some(Failure("invalid string index 2".into()))
        );
        assert_eq!(
            string(Library::TextStr, &[Str(b"a\n\"b\x01")]),
            "a\\n\\\"b\\001"
        );
        assert_eq!(
            string(Library::TextStrn, &[Str(b"abcdef"), Int(3), Int(1)]),
            "\"abc\"..."
        );
        assert_eq!(
            string(Library::TextStrn, &[Str(b"ab"), Int(0), Int(0)]),
            "ab"
        );
    }

    #[test]
    fn numbers_and_times() {
        use Arg::{Int, Str};
        assert_eq!(long(Library::Strtol, &[Str(b" 0x1f"), Int(0)]), 31);
        assert_eq!(long(Library::Strtol, &[Str(b"-017"), Int(0)]), -15);
        assert_eq!(long(Library::Strtol, &[Str(b"12ab"), Int(10)]), 12);
        assert_eq!(long(Library::Strtol, &[Str(b"zz"), Int(36)]), 1295);
        assert_eq!(
            string(Library::Ctime, &[Int(0)]),
            "Thu Jan  1 00:00:00 1970"
        );
        assert_eq!(
            string(Library::Ctime, &[Int(741_476_948)]),
            "Wed Jun 30 21:49:08 1993"
        );
        assert_eq!(string(Library::Ctime, &[Int(-1)]), "<invalid time>");
        let mut state = LibraryState::new(MAX_STRING_LEN);
        for _ in 0..100 {
            let Ok(Answer::Int(n)) = call(
                Library::Randint,
                &[Int(6)],
                &mut state,
                None,
                &mut Vec::new(),
            ) else {
                panic!("no long");
            };
            assert!((0..6).contains(&n));
        }
    }
}
