//! Running checked probe bodies in user space, event by event.

pub mod context;
pub mod dispatch;
pub mod indent;
pub mod interp;

pub use context::ProbeContext;
pub use indent::IndentState;
pub use interp::{Flow, Interpreter, RuntimeError};
