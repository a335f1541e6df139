//! The builtin functions scripts can call: one table of names, signatures and what answers
//! each, read by type inference and by lowering alike.

use super::ir::{BacktraceFormat, IntContext, Library, ReadKind, StrContext, Ty};

/// Who answers a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// A fact about the event, such as `tid()` or `execname()`.
    IntFact(IntContext),
    StrFact(StrContext),
    /// `thread_indent` (thread) or `indent`: the runtime's indentation state.
    Indent {
        thread: bool,
    },
    IndentDepth {
        thread: bool,
    },
    /// `exit()`: a statement, with no value.
    Exit,
    /// `abort()`: stops the probe and the script at once, without end probes.
    Abort,
    /// The print family, whose arguments follow their format rather than a signature.
    Print(PrintKind),
    /// A library function of the arguments (and the clock).
    Library(Library),
    /// `matched(n)`, `matched_str()`: the last regular expression match.
    Matched,
    /// `kernel_string(p)` and friends: kernel memory at a target's address, read at the
    /// event (a string's bound is filled in by lowering).
    KernelRead(ReadKind),
    /// `user_short(p)` and the other numbers of user memory: read as
    /// [`Answer::KernelRead`] reads, a fault answered as `on_fault` says.
    UserNumber {
        kind: ReadKind,
        on_fault: UserFault,
    },
    /// `user_string_quoted(p)` and `kernel_string_quoted(p)`: the string at a target's
    /// address, read at the event, escaped and in double quotes; where the copy faults, the
    /// address in hex.
    QuotedString {
        user: bool,
    },
    /// `task_current()`: the address of the event's task's `task_struct`, read at the
    /// event.
    CurrentTask,
    /// `returnval()`: the probed function's return value, `$return`.
    ReturnValue,
    /// `int_arg(n)` and the like: the probed function's argument `n` (from 1), its low
    /// `bytes` sign- or zero-extended; a syscall tracepoint's argument fields count the same
    /// way.
    Argument {
        bytes: u8,
        signed: bool,
    },
}

/// What a read of user memory gives where it faults, as SystemTap's three forms of each
/// (`user_short`, `user_short_warn`, `user_short_error`) answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UserFault {
    Zero,
    WarnAndZero,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PrintKind {
    Printf,
    Sprintf,
    Print,
    Println,
    /// `sprint` and `sprintln`: print's and println's text, as a string.
    Sprint,
    Sprintln,
    /// `printd(delimiter, ...)`, `printdln`, `sprintd`, `sprintdln`: print's values with
    /// the literal delimiter between them.
    Printd,
    Printdln,
    Sprintd,
    Sprintdln,
}

impl PrintKind {
    /// Whether the call gives its text as a string rather than printing it.
    pub(super) fn gives_string(self) -> bool {
        matches!(
            self,
            PrintKind::Sprintf
                | PrintKind::Sprint
                | PrintKind::Sprintln
                | PrintKind::Sprintd
                | PrintKind::Sprintdln
        )
    }
}

#[derive(Debug)]
pub(super) struct Builtin {
    pub(super) name: &'static str,
    /// The arguments' types; ignored by the print family.
    pub(super) params: &'static [Ty],
    /// `None` for calls that are statements only.
    pub(super) returns: Option<Ty>,
    pub(super) answer: Answer,
}

impl Builtin {
    /// Whether a call does more than give its value: prints, stops the probe or the
    /// script, or moves state that a later call sees. A call without effects whose value
    /// is unused may be left out.
    pub(super) fn has_effects(&self) -> bool {
        match self.answer {
            Answer::Exit | Answer::Abort | Answer::Indent { .. } => true,
            Answer::Print(kind) => !kind.gives_string(),
            Answer::Library(function) => {
                function.prints()
                    || matches!(
                        function,
                        Library::Error | Library::Warn | Library::Tokenize | Library::System
                    )
            }
            Answer::KernelRead(ReadKind::Backtrace(BacktraceFormat::Full)) => true,
            _ => false,
        }
    }
}

const fn fact(name: &'static str, what: IntContext) -> Builtin {
    Builtin {
        name,
        params: &[],
        returns: Some(Ty::Long),
        answer: Answer::IntFact(what),
    }
}

const fn text_fact(name: &'static str, what: StrContext) -> Builtin {
    Builtin {
        name,
        params: &[],
        returns: Some(Ty::Str),
        answer: Answer::StrFact(what),
    }
}

const fn printer(name: &'static str, kind: PrintKind, returns: Option<Ty>) -> Builtin {
    Builtin {
        name,
        params: &[],
        returns,
        answer: Answer::Print(kind),
    }
}

const fn library(
    name: &'static str,
    params: &'static [Ty],
    returns: Option<Ty>,
    function: Library,
) -> Builtin {
    Builtin {
        name,
        params,
        returns,
        answer: Answer::Library(function),
    }
}

const fn kernel_read(
    name: &'static str,
    params: &'static [Ty],
    returns: Ty,
    kind: ReadKind,
) -> Builtin {
    Builtin {
        name,
        params,
        returns: Some(returns),
        answer: Answer::KernelRead(kind),
    }
}

const fn argument(name: &'static str, bytes: u8, signed: bool) -> Builtin {
    Builtin {
        name,
        params: &[Long],
        returns: Some(Long),
        answer: Answer::Argument { bytes, signed },
    }
}

const fn deref(name: &'static str, bytes: u8, function: &'static str) -> Builtin {
    let kind = ReadKind::Deref {
        bytes,
        signed: true,
        user: false,
        function,
    };
    kernel_read(name, &[Long], Long, kind)
}

/// `user_NAME(p)` and the like: `bytes` of user memory, `function` naming the read in its
/// fault ("user short").
const fn user_number(
    name: &'static str,
    bytes: u8,
    signed: bool,
    function: &'static str,
    on_fault: UserFault,
) -> Builtin {
    let kind = ReadKind::Deref {
        bytes,
        signed,
        user: true,
        function,
    };
    Builtin {
        name,
        params: &[Ty::Long],
        returns: Some(Ty::Long),
        answer: Answer::UserNumber { kind, on_fault },
    }
}

const fn string_read(name: &'static str, params: &'static [Ty], user: bool) -> Builtin {
    kernel_read(name, params, Str, ReadKind::String { max: 0, user })
}

const fn quoted_string_read(name: &'static str, user: bool) -> Builtin {
    Builtin {
        name,
        params: &[Ty::Long],
        returns: Some(Ty::Str),
        answer: Answer::QuotedString { user },
    }
}

use Ty::{Long, Str};

const BUILTINS: &[Builtin] = &[
    fact("tid", IntContext::Tid),
    fact("pid", IntContext::Pid),
    fact("cpu", IntContext::Cpu),
    fact("addr", IntContext::Addr),
    fact("target", IntContext::Target),
    fact("gettimeofday_ns", IntContext::TimeNs),
    fact("gettimeofday_us", IntContext::TimeUs),
    fact("gettimeofday_ms", IntContext::TimeMs),
    fact("gettimeofday_s", IntContext::TimeS),
    fact("local_clock_ns", IntContext::LocalClockNs),
    fact("local_clock_us", IntContext::LocalClockUs),
    fact("local_clock_ms", IntContext::LocalClockMs),
    fact("local_clock_s", IntContext::LocalClockS),
    fact("jiffies", IntContext::Jiffies),
    fact("user_mode", IntContext::UserMode),
    text_fact("execname", StrContext::Execname),
    text_fact("probefunc", StrContext::Probefunc),
    text_fact("ppfunc", StrContext::Ppfunc),
    text_fact("pp", StrContext::Pp),
    text_fact("pn", StrContext::Pn),
    // What the procfs pass sets a procfs probe's `$value` to first.
    text_fact(
        crate::script::passes::PROCFS_WRITTEN,
        StrContext::ProcfsWritten,
    ),
    Builtin {
        name: "thread_indent",
        params: &[Ty::Long],
        returns: Some(Ty::Str),
        answer: Answer::Indent { thread: true },
    },
    Builtin {
        name: "indent",
        params: &[Ty::Long],
        returns: Some(Ty::Str),
        answer: Answer::Indent { thread: false },
    },
    Builtin {
        name: "thread_indent_depth",
        params: &[Ty::Long],
        returns: Some(Ty::Long),
        answer: Answer::IndentDepth { thread: true },
    },
    Builtin {
        name: "indent_depth",
        params: &[Ty::Long],
        returns: Some(Ty::Long),
        answer: Answer::IndentDepth { thread: false },
    },
    Builtin {
        name: "exit",
        params: &[],
        returns: None,
        answer: Answer::Exit,
    },
    Builtin {
        name: "abort",
        params: &[],
        returns: None,
        answer: Answer::Abort,
    },
    library("strlen", &[Str], Some(Long), Library::Strlen),
    library("substr", &[Str, Long, Long], Some(Str), Library::Substr),
    library("isinstr", &[Str, Str], Some(Long), Library::Isinstr),
    library(
        "str_replace",
        &[Str, Str, Str],
        Some(Str),
        Library::StrReplace,
    ),
    library("strtol", &[Str, Long], Some(Long), Library::Strtol),
    library("tokenize", &[Str, Str], Some(Str), Library::Tokenize),
    library("system", &[Str], None, Library::System),
    library("stringat", &[Str, Long], Some(Long), Library::Stringat),
    library("text_str", &[Str], Some(Str), Library::TextStr),
    library(
        "text_strn",
        &[Str, Long, Long],
        Some(Str),
        Library::TextStrn,
    ),
    library("ctime", &[Long], Some(Str), Library::Ctime),
    library("syscall_name", &[Long], Some(Str), Library::SyscallName),
    library("syscall_num", &[Str], Some(Long), Library::SyscallNum),
    library("errno_str", &[Long], Some(Str), Library::ErrnoStr),
    library("signal_str", &[Long], Some(Str), Library::SignalStr),
    library("return_str", &[Long, Long], Some(Str), Library::ReturnStr),
    library("randint", &[Long], Some(Long), Library::Randint),
    library("HZ", &[], Some(Long), Library::Hz),
    library("tz_gmtoff", &[], Some(Long), Library::TzGmtoff),
    library("tz_name", &[], Some(Str), Library::TzName),
    library("tz_ctime", &[Long], Some(Str), Library::TzCtime),
    library("uid", &[], Some(Long), Library::Uid),
    library("gid", &[], Some(Long), Library::Gid),
    library("euid", &[], Some(Long), Library::Euid),
    library("egid", &[], Some(Long), Library::Egid),
    library("ppid", &[], Some(Long), Library::Ppid),
    library("pexecname", &[], Some(Str), Library::Pexecname),
    library("proc_mem_size", &[Long], Some(Long), Library::ProcMemSize),
    library("proc_mem_rss", &[Long], Some(Long), Library::ProcMemRss),
    library("proc_mem_shr", &[Long], Some(Long), Library::ProcMemShr),
    library("__rstap_cmdline", &[Long], Some(Str), Library::Cmdline),
    library(
        "__rstap_open_files",
        &[Long],
        Some(Long),
        Library::OpenFiles,
    ),
    library("error", &[Str], None, Library::Error),
    library("warn", &[Str], None, Library::Warn),
    library("ansi_clear_screen", &[], None, Library::AnsiClearScreen),
    library("ansi_set_color", &[Long], None, Library::AnsiSetColor),
    library(
        "ansi_set_color",
        &[Long, Long],
        None,
        Library::AnsiSetColors,
    ),
    library(
        "ansi_set_color",
        &[Long, Long, Long],
        None,
        Library::AnsiSetColorsAndAttribute,
    ),
    library(
        "ansi_set_color2",
        &[Long, Long],
        None,
        Library::AnsiSetColors,
    ),
    library(
        "ansi_set_color3",
        &[Long, Long, Long],
        None,
        Library::AnsiSetColorsAndAttribute,
    ),
    library("ansi_reset_color", &[], None, Library::AnsiResetColor),
    library("ansi_new_line", &[], None, Library::AnsiNewLine),
    library(
        "ansi_cursor_move",
        &[Long, Long],
        None,
        Library::AnsiCursorMove,
    ),
    library("ansi_cursor_hide", &[], None, Library::AnsiCursorHide),
    library("ansi_cursor_show", &[], None, Library::AnsiCursorShow),
    library("ansi_cursor_save", &[], None, Library::AnsiCursorSave),
    library("ansi_cursor_restore", &[], None, Library::AnsiCursorRestore),
    library("symname", &[Long], Some(Str), Library::Symname),
    library("symdata", &[Long], Some(Str), Library::Symdata),
    library("modname", &[Long], Some(Str), Library::Modname),
    library("print_syms", &[Str], None, Library::PrintSyms),
    library("sprint_syms", &[Str], Some(Str), Library::SprintSyms),
    string_read("kernel_string", &[Long], false),
    string_read("kernel_string_n", &[Long, Long], false),
    string_read("kernel_string", &[Long, Str], false),
    string_read("kernel_string_n", &[Long, Long, Str], false),
    string_read("user_string", &[Long], true),
    string_read("user_string", &[Long, Str], true),
    string_read("user_string_n", &[Long, Long], true),
    string_read("user_string_n", &[Long, Long, Str], true),
    quoted_string_read("kernel_string_quoted", false),
    quoted_string_read("user_string_quoted", true),
    deref("kernel_long", 8, "kernel long"),
    deref("kernel_int", 4, "kernel int"),
    deref("kernel_short", 2, "kernel short"),
    deref("kernel_char", 1, "kernel char"),
    deref("kernel_pointer", 8, "kernel pointer"),
    user_number("user_char", 1, true, "user char", UserFault::Zero),
    user_number(
        "user_char_warn",
        1,
        true,
        "user char",
        UserFault::WarnAndZero,
    ),
    user_number("user_char_error", 1, true, "user char", UserFault::Error),
    user_number("user_short", 2, true, "user short", UserFault::Zero),
    user_number(
        "user_short_warn",
        2,
        true,
        "user short",
        UserFault::WarnAndZero,
    ),
    user_number("user_short_error", 2, true, "user short", UserFault::Error),
    user_number("user_ushort", 2, false, "user ushort", UserFault::Zero),
    user_number(
        "user_ushort_warn",
        2,
        false,
        "user ushort",
        UserFault::WarnAndZero,
    ),
    user_number(
        "user_ushort_error",
        2,
        false,
        "user ushort",
        UserFault::Error,
    ),
    user_number("user_int", 4, true, "user int", UserFault::Zero),
    user_number("user_int_warn", 4, true, "user int", UserFault::WarnAndZero),
    user_number("user_int_error", 4, true, "user int", UserFault::Error),
    user_number("user_long", 8, true, "user long", UserFault::Zero),
    user_number(
        "user_long_warn",
        8,
        true,
        "user long",
        UserFault::WarnAndZero,
    ),
    user_number("user_long_error", 8, true, "user long", UserFault::Error),
    user_number("user_ulong", 8, false, "user ulong", UserFault::Zero),
    user_number(
        "user_ulong_warn",
        8,
        false,
        "user ulong",
        UserFault::WarnAndZero,
    ),
    user_number("user_ulong_error", 8, false, "user ulong", UserFault::Error),
    user_number("user_int8", 1, true, "user int8", UserFault::Zero),
    user_number("user_int8_error", 1, true, "user int8", UserFault::Error),
    user_number("user_uint8", 1, false, "user uint8", UserFault::Zero),
    user_number("user_uint8_error", 1, false, "user uint8", UserFault::Error),
    user_number("user_int16", 2, true, "user int16", UserFault::Zero),
    user_number("user_int16_error", 2, true, "user int16", UserFault::Error),
    user_number("user_uint16", 2, false, "user uint16", UserFault::Zero),
    user_number(
        "user_uint16_error",
        2,
        false,
        "user uint16",
        UserFault::Error,
    ),
    user_number("user_int32", 4, true, "user int32", UserFault::Zero),
    user_number("user_int32_error", 4, true, "user int32", UserFault::Error),
    user_number("user_uint32", 4, false, "user uint32", UserFault::Zero),
    user_number(
        "user_uint32_error",
        4,
        false,
        "user uint32",
        UserFault::Error,
    ),
    user_number("user_int64", 8, true, "user int64", UserFault::Zero),
    user_number("user_int64_error", 8, true, "user int64", UserFault::Error),
    user_number("user_uint64", 8, false, "user uint64", UserFault::Zero),
    user_number(
        "user_uint64_error",
        8,
        false,
        "user uint64",
        UserFault::Error,
    ),
    kernel_read(
        "sprint_backtrace",
        &[],
        Str,
        ReadKind::Backtrace(BacktraceFormat::Simple),
    ),
    kernel_read(
        "backtrace",
        &[],
        Str,
        ReadKind::Backtrace(BacktraceFormat::Hex),
    ),
    Builtin {
        name: "task_current",
        params: &[],
        returns: Some(Long),
        answer: Answer::CurrentTask,
    },
    argument("int_arg", 4, true),
    argument("uint_arg", 4, false),
    argument("s32_arg", 4, true),
    argument("u32_arg", 4, false),
    argument("long_arg", 8, true),
    argument("ulong_arg", 8, false),
    argument("longlong_arg", 8, true),
    argument("ulonglong_arg", 8, false),
    argument("s64_arg", 8, true),
    argument("u64_arg", 8, false),
    argument("pointer_arg", 8, false),
    Builtin {
        name: "returnval",
        params: &[],
        returns: Some(Ty::Long),
        answer: Answer::ReturnValue,
    },
    Builtin {
        name: "print_backtrace",
        params: &[],
        returns: None,
        answer: Answer::KernelRead(ReadKind::Backtrace(BacktraceFormat::Full)),
    },
    Builtin {
        name: "matched",
        params: &[Long],
        returns: Some(Str),
        answer: Answer::Matched,
    },
    Builtin {
        name: "matched_str",
        params: &[],
        returns: Some(Str),
        answer: Answer::Matched,
    },
    printer("printf", PrintKind::Printf, None),
    printer("sprintf", PrintKind::Sprintf, Some(Ty::Str)),
    printer("print", PrintKind::Print, None),
    printer("println", PrintKind::Println, None),
    printer("sprint", PrintKind::Sprint, Some(Ty::Str)),
    printer("sprintln", PrintKind::Sprintln, Some(Ty::Str)),
    printer("printd", PrintKind::Printd, None),
    printer("printdln", PrintKind::Printdln, None),
    printer("sprintd", PrintKind::Sprintd, Some(Ty::Str)),
    printer("sprintdln", PrintKind::Sprintdln, Some(Ty::Str)),
];

/// Every builtin's name, once per form.
pub(super) fn names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|builtin| builtin.name)
}

/// The builtin `name`, its first form if it has several.
pub(super) fn lookup(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|builtin| builtin.name == name)
}

/// The form of builtin `name` that takes `arity` arguments, else its first form (whose
/// arity the caller then reports).
pub(super) fn lookup_by_arity(name: &str, arity: usize) -> Option<&'static Builtin> {
    BUILTINS
        .iter()
        .find(|builtin| builtin.name == name && builtin.params.len() == arity)
        .or_else(|| lookup(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_unique() {
        for (i, builtin) in BUILTINS.iter().enumerate() {
            assert!(
                BUILTINS[..i].iter().all(|other| other.name != builtin.name
                    || other.params.len() != builtin.params.len()),
                "{} is listed twice",
                builtin.name
            );
        }
        let form = |arity| lookup_by_arity("ansi_set_color", arity).map(|b| b.answer);
        assert_eq!(form(2), Some(Answer::Library(Library::AnsiSetColors)));
        assert_eq!(lookup("sprintf").and_then(|b| b.returns), Some(Ty::Str));
        assert!(lookup("nope").is_none());
    }
}
