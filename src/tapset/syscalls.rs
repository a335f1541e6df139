//! `syscall.NAME` and `syscall.NAME.return` for every system call of the running kernel,
//! made from its syscall tracepoints (`syscalls:sys_enter_NAME` and `sys_exit_NAME`),
//! whose record fields are the call's arguments. Each gives SystemTap's `name`, `argstr`,
//! `retval` and `retstr`, and each argument by the kernel's name for it; `argstr` shows
//! pointers in hex and numbers in decimal. The hand-written aliases of `syscalls.stp`,
//! with SystemTap's own variable names and formats, hide these (see
//! `script::passes::aliases`). `nd_syscall.NAME` is the same as `syscall.NAME`, as
//! rstap has one way to reach each call.

use std::fmt::Write;

use crate::resolve::tracepoints::{
    RecordField, TracepointAccess, TracepointError, Tracepoints, SYSCALL_NUMBER_FIELD,
};
use crate::script::{SourceFile, SYSCALL_ENTER as ENTER, SYSCALL_EXIT, SYSCALL_SYSTEM};

/// The name errors in the generated aliases show.
pub const FILE_NAME: &str = "<rstap>/tapset/syscalls of this kernel";

/// The aliases of every system call with tracepoints on this kernel.
pub fn this_kernel(tracepoints: &mut dyn Tracepoints) -> Result<SourceFile, TracepointError> {
    let calls: Vec<String> = tracepoints
        .names()?
        .iter()
        .filter(|name| name.system == SYSCALL_SYSTEM)
        .filter_map(|name| name.event.strip_prefix(ENTER))
        .map(str::to_string)
        .collect();
    let mut text = String::new();
    for call in calls {
        let name = crate::resolve::tracepoints::TracepointName {
            system: SYSCALL_SYSTEM.into(),
            event: format!("{ENTER}{call}"),
        };
        let fields = match tracepoints.access(&name)? {
            TracepointAccess::Record { fields, .. } => fields,
            TracepointAccess::Raw(_) => continue,
        };
        write_aliases(&mut text, &call, &fields);
    }
    Ok(SourceFile::new(FILE_NAME, text))
}

/// The variables every alias gives, which an argument of the same name does not replace
/// (it stays readable as `$NAME`); and the globals of argv.stp, which every file sees, so
/// that execve's `argv` is only `$argv`.
const ALIAS_VARIABLES: &[&str] = &["name", "argstr", "retval", "retstr", "argc", "argv"];

/// The aliases of one call, whose entry record has `fields`.
fn write_aliases(text: &mut String, call: &str, fields: &[RecordField]) {
    let arguments: Vec<&RecordField> = fields
        .iter()
        .filter(|field| field.is_scalar() && field.name != SYSCALL_NUMBER_FIELD)
        .filter(|field| {
            !crate::script::is_keyword(&field.name)
                && !ALIAS_VARIABLES.contains(&field.name.as_str())
        })
        .collect();
    let _ = writeln!(
        text,
        "probe syscall.{call} = kernel.trace(\"syscalls:{ENTER}{call}\")\n{{\n\tname = \"{call}\""
    );
    for argument in &arguments {
        // An int reaches the record as a whole register: its upper half means nothing.
        let (open, close) = if is_path(argument) {
            ("user_string_quoted(", ")")
        } else if is_int(argument) {
            ("__int32(", ")")
        } else {
            ("", "")
        };
        let _ = writeln!(text, "\t{0} = {open}${0}{close}", argument.name);
    }
    let format: Vec<&str> = arguments.iter().map(|a| conversion(a)).collect();
    let names: String = arguments.iter().map(|a| format!(", {}", a.name)).collect();
    let _ = writeln!(
        text,
        "\targstr = sprintf(\"{}\"{names})\n}}",
        format.join(", ")
    );
    let _ = writeln!(
        text,
        "probe syscall.{call}.return = kernel.trace(\"syscalls:{SYSCALL_EXIT}{call}\")\n{{\n\
         \tname = \"{call}\"\n\tretval = $ret\n\tretstr = return_str(1, retval)\n}}"
    );
    let _ = writeln!(
        text,
        "probe nd_syscall.{call} = syscall.{call} {{}}\n\
         probe nd_syscall.{call}.return = syscall.{call}.return {{}}"
    );
}

/// Whether the argument is a C int, which the record holds as a whole register.
fn is_int(field: &RecordField) -> bool {
    matches!(field.c_type.as_str(), "int" | "pid_t")
}

/// The names the kernel gives arguments that are file names and other text, which
/// SystemTap's aliases give as quoted strings (`filename = user_string_quoted($filename)`).
/// Other `char *` arguments (`write`'s `buf`) are buffers, not strings.
const PATH_ARGUMENTS: &[&str] = &[
    "filename",
    "pathname",
    "oldname",
    "newname",
    "path",
    "dev_name",
    "dir_name",
    "type",
    "specialfile",
    "library",
    "name_user",
];

/// Whether the argument is text that the alias reads as a quoted string.
fn is_path(field: &RecordField) -> bool {
    field.c_type.contains("char *") && PATH_ARGUMENTS.contains(&field.name.as_str())
}

/// How `argstr` shows an argument: text as the quoted string it was read as, pointers in
/// hex, numbers in decimal by their sign.
fn conversion(field: &RecordField) -> &'static str {
    if is_path(field) {
        "%s"
    } else if field.c_type.contains('*') {
        "%p"
    } else if field.signed || is_int(field) {
        "%d"
    } else {
        "%u"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, c_type: &str, signed: bool) -> RecordField {
        RecordField {
            name: name.into(),
            c_type: c_type.into(),
            offset: 16,
            size: 8,
            signed,
        }
    }

    #[test]
    fn an_alias_gives_each_argument_and_shows_it_by_its_type() {
        let mut text = String::new();
        let fields = [
            field("__syscall_nr", "int", true),
            field("fd", "int", false),
            field("buff", "void *", false),
            field("len", "size_t", false),
        ];
        write_aliases(&mut text, "sendto", &fields);
        assert!(
            text.starts_with(
                "probe syscall.sendto = kernel.trace(\"syscalls:sys_enter_sendto\")\n{\n\
             \tname = \"sendto\"\n\tfd = __int32($fd)\n\tbuff = $buff\n\tlen = $len\n\
             \targstr = sprintf(\"%d, %p, %u\", fd, buff, len)\n}\n"
            ),
            "{text}"
        );
        assert!(text.contains("probe nd_syscall.sendto.return = syscall.sendto.return {}"));
    }

    #[test]
    fn file_names_are_quoted_strings_and_buffers_are_pointers() {
        let mut text = String::new();
        let fields = [
            field("dfd", "int", false),
            field("filename", "const char *", false),
            field("buf", "const char *", false),
        ];
        write_aliases(&mut text, "openat", &fields);
        assert!(
            text.contains(
                "\tfilename = user_string_quoted($filename)\n\tbuf = $buf\n\
                 \targstr = sprintf(\"%d, %s, %p\", dfd, filename, buf)\n"
            ),
            "{text}"
        );
    }
}
