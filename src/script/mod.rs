//! The SystemTap script front end: source text to a checked script that the kernel side can
//! attach and the [`runtime`](crate::runtime) can run.
//!
//! [`compile`] lexes and parses the text, checks names, arities and types, parses printf
//! formats, and resolves every variable to a slot and every builtin to an enum, so that
//! running a probe body needs no lookup by name.

mod ast;
mod check;
mod lexer;
mod parser;
mod source;

pub(crate) use check::{
    ArithOp, CmpOp, IntExpr, PrintCall, Slot, Stmt, StrExpr, Value, MAX_PRINT_ARGS,
};
pub use check::{IntContext, StrContext};
pub use parser::MAX_NESTING;
pub use source::{LineCol, ScriptError, SourceFile, Span};

/// A script that parsed and type-checked, ready to attach and run.
#[derive(Debug, Clone)]
pub struct CheckedScript {
    pub probes: Vec<CheckedProbe>,
    pub(crate) source: SourceFile,
    pub(crate) globals: Globals,
}

/// The script's global variables and their initial values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Globals {
    pub(crate) ints: Vec<i64>,
    pub(crate) strs: Vec<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct CheckedProbe {
    pub points: Vec<ProbePoint>,
    pub(crate) body: Vec<Stmt>,
    pub(crate) int_locals: usize,
    pub(crate) str_locals: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePoint {
    pub kind: ProbePointKind,
    /// As written in the script, e.g. `kernel.function("sock_*").call`.
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbePointKind {
    Begin,
    End,
    KernelFunction {
        /// A glob over function names.
        function: String,
        /// The glob after `@`, over the source file a function is declared in.
        file: Option<String>,
        variant: FunctionVariant,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionVariant {
    /// Plain `.function`: out-of-line functions and inlined instances, at entry.
    Entry,
    Call,
    Return,
    Inline,
}

impl CheckedScript {
    /// The script's text and name, for reporting errors against probe point spans.
    pub fn source(&self) -> &SourceFile {
        &self.source
    }
}

/// Parses and checks a whole script.
/// Parses the text only: stap's pass 1.
pub fn parse(source: &SourceFile) -> Result<(), ScriptError> {
    parser::parse(source).map(drop)
}

pub fn compile(source: &SourceFile) -> Result<CheckedScript, ScriptError> {
    let script = parser::parse(source)?;
    check::check(source, &script)
}
