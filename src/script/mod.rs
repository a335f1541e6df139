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
mod parser;
mod passes;
mod points;
mod source;

pub(crate) use ir::{
    ArithOp, ArrayInfo, CmpOp, Deletion, ElementRef, ForeachLoop, Histogram, IntExpr, Place,
    PrintCall, Shown, Slot, StatOp, Stmt, StrExpr, Value,
};
pub use ir::{
    CheckedProbe, CheckedScript, FunctionVariant, HistKind, IntContext, ProbePoint, ProbePointKind,
    StrContext, Ty,
};
pub use parser::MAX_NESTING;
pub use passes::MAX_PRINT_ARGS;
pub use source::{LineCol, ScriptError, SourceFile, Span};

/// Parses the text only: stap's pass 1.
pub fn parse(source: &SourceFile) -> Result<(), ScriptError> {
    parser::parse(source).map(drop)
}

/// Parses and checks a whole script.
pub fn compile(source: &SourceFile) -> Result<CheckedScript, ScriptError> {
    let script = parser::parse(source)?;
    passes::check(source, &script)
}
