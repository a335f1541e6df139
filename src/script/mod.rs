//! The SystemTap script front end: source text to a checked script that the kernel side can
//! attach and the [`runtime`](crate::runtime) can run.
//!
//! [`compile`] lexes and parses the text ([`lexer`], [`parser`]), then runs the
//! [`passes`]: names, types and arities checked, printf formats parsed, every variable
//! resolved to a slot and every builtin ([`builtins`]) and probe point ([`points`]) to its
//! answer, giving the [`ir`] that running a probe body needs no lookup by name for.

mod ast;
mod builtins;
mod ir;
mod lexer;
mod limits;
mod parser;
mod passes;
mod points;
mod preprocess;
mod source;

pub use ast::{CastBase, TargetStep};
pub use ir::{
    syscall_entry_event, BacktraceFormat, CheckedProbe, CheckedScript, FunctionVariant, HistKind,
    IntContext, LateRead, Library, ProbePoint, ProbePointKind, ProcfsAccess, ReadKind, SampleEvery,
    StatsShape, StrContext, TargetExpr, TargetRead, Ty, SYSCALL_ENTER, SYSCALL_EXIT,
    SYSCALL_SYSTEM,
};
pub(crate) use ir::{
    ArithOp, ArrayInfo, Call, CheckedFunction, CmpOp, Deletion, ElementRef, ForeachLoop, Histogram,
    IntExpr, KeySlice, LateValue, LibraryCall, Place, PrintCall, Shown, Slot, StatOp, Stmt,
    StrExpr, Value,
};
pub use limits::Limits;
pub use parser::{is_keyword, MAX_NESTING};
pub use passes::MAX_PRINT_ARGS;
pub use source::{FileId, LineCol, ScriptError, SourceFile, SourceMap, Span};

/// What the command line gives a script besides its text.
#[derive(Debug, Clone, Default)]
pub struct ScriptInput {
    /// `$1`, `@1`, ...: the arguments after the script.
    pub args: Vec<String>,
    /// `-G NAME=VALUE`: initial values of globals, overriding the script's.
    pub globals: Vec<(String, String)>,
    /// `-D NAME=VALUE`: SystemTap's limits.
    pub limits: Limits,
    /// For `-l` and `-L`: aliases keep every variable they assign, read or not, for
    /// `-L` to list.
    pub listing: bool,
}

/// Parses the text only: stap's pass 1.
pub fn parse(source: &SourceMap, input: &ScriptInput) -> Result<(), ScriptError> {
    parser::parse(source, &input.args).map(drop)
}

/// Parses and checks a script with rstap's tapsets, one that takes nothing from the
/// command line.
pub fn compile(script: &SourceFile) -> Result<CheckedScript, ScriptError> {
    let mut source = SourceMap::of_script(script.clone());
    crate::tapset::add_built_in(&mut source);
    compile_with(&source, &ScriptInput::default())
}

/// Parses and checks every file of a script, with its command-line arguments and `-G`
/// values.
pub fn compile_with(source: &SourceMap, input: &ScriptInput) -> Result<CheckedScript, ScriptError> {
    let script = parser::parse(source, &input.args)?;
    passes::check(source, script, input)
}
