//! Running checked probe bodies in user space, event by event.

pub mod abi_tables;
pub mod array;
pub mod backtrace;
pub mod context;
pub mod dispatch;
pub mod indent;
pub mod interp;
pub mod kept;
pub mod library;
pub mod procfs;
pub mod stats;
pub mod symbol_names;
pub mod timers;

pub use context::{Kept, ProbeContext, ReadFault, TargetValue};
pub use indent::IndentState;
pub use interp::{Flow, Interpreter, RuntimeError};
