//! Running checked probe bodies in user space, event by event.

pub mod array;
pub mod context;
pub mod dispatch;
pub mod indent;
pub mod interp;
pub mod library;
pub mod stats;
pub mod timers;

pub use context::{ProbeContext, ReadFault, TargetValue};
pub use indent::IndentState;
pub use interp::{Flow, Interpreter, RuntimeError};
