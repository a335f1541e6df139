//! The parsed script, before names and types are checked. Every node keeps its span.

use super::lexer::{Op, StringLit};
use super::source::Span;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub globals: Vec<GlobalDecl>,
    pub probes: Vec<Probe>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalDecl {
    pub name: String,
    pub span: Span,
    pub init: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub points: Vec<PointSyntax>,
    pub body: Block,
}

/// A probe point as written: dotted components, each with an optional literal argument,
/// e.g. `kernel` . `function("sock_*")` . `call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointSyntax {
    pub components: Vec<PointComponent>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointComponent {
    pub name: String,
    pub argument: Option<StringLit>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub statements: Vec<Stmt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    Block(Block),
    Expr(Expr),
    If {
        condition: Expr,
        then: Box<Stmt>,
        otherwise: Option<Box<Stmt>>,
        span: Span,
    },
    Next(Span),
    Empty(Span),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprKind {
    Number(i64),
    Str(StringLit),
    Var(String),
    Call {
        name: String,
        name_span: Span,
        args: Vec<Expr>,
    },
    Unary {
        op: Op,
        operand: Box<Expr>,
    },
    /// Arithmetic, comparison, logical and concatenation operators; `op_span` is where
    /// run-time errors such as division by zero point.
    Binary {
        op: Op,
        op_span: Span,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Ternary {
        condition: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    /// `=`, `+=`, `-=` or `.=` to a named variable.
    Assign {
        op: Op,
        target: String,
        target_span: Span,
        value: Box<Expr>,
    },
}
