//! The kernel's C types, for compiling target-variable expressions (`$sk->__sk_common->skc_family`,
//! `$size`, `$return`) into memory reads: a function's parameters and return type, and the
//! layout of the structs they point to.
//!
//! The types come from the running kernel's BTF ([`btf::KernelTypes`]). The plain data here
//! ([`TypeRef`], [`Shape`], [`Member`]) carries no borrow of the BTF, so the compiler can keep
//! it in its own structures and ask [`KernelTypes`] again when it needs more.

pub mod btf;

pub use btf::KernelTypes;

/// A type in the kernel's BTF, by its type id; id 0 is `void`.
///
/// Only meaningful with the [`KernelTypes`] it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TypeRef(u32);

impl TypeRef {
    /// `void`.
    pub const VOID: TypeRef = TypeRef(0);

    /// The BTF type id.
    pub fn id(self) -> u32 {
        self.0
    }
}

/// One parameter of a function, in declaration order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parameter {
    /// Empty when the BTF gives no name (then no `$name` can refer to it, but it still
    /// takes its place in the argument order).
    pub name: String,
    pub ty: TypeRef,
}

/// A member of a struct or union, with its offset from the start of the outermost
/// struct it was looked up in (anonymous struct/union members in between included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// The declared type; for a bitfield, the type the bits are read as.
    pub ty: TypeRef,
    /// The byte offset; for a bitfield, of the byte holding its first (least significant) bit.
    pub offset_bytes: u32,
    /// For a bitfield, the first bit's position within the byte at `offset_bytes` (0-7,
    /// counting from the least significant bit, as on little-endian kernels); 0 otherwise.
    /// A bitfield may continue into the following bytes: it spans
    /// `(bit_offset + bit_size).div_ceil(8)` bytes.
    pub bit_offset: u8,
    /// The bitfield's width in bits; 0 when the member is not a bitfield.
    pub bit_size: u8,
}

impl Member {
    /// Whether the member is a bitfield (and so must be read, shifted and masked).
    pub fn is_bitfield(&self) -> bool {
        self.bit_size != 0
    }
}

/// What a type is once typedefs and qualifiers (const, volatile, restrict, type tags) are
/// looked through: what the compiler needs to know to read or dereference a value of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    Void,
    /// Integers, including `char` and `_Bool` (unsigned, 1 byte).
    Int {
        bytes: u8,
        signed: bool,
    },
    /// ENUM and ENUM64.
    Enum {
        bytes: u8,
        signed: bool,
    },
    /// A pointer; `target` is [`TypeRef::VOID`] for `void *` (and `const void *`).
    Pointer {
        target: TypeRef,
    },
    /// `name` is empty for an anonymous struct.
    Struct {
        name: String,
        bytes: u32,
    },
    /// `name` is empty for an anonymous union.
    Union {
        name: String,
        bytes: u32,
    },
    /// `count` is 0 for a flexible array member (`char data[]`).
    Array {
        element: TypeRef,
        count: u32,
    },
    /// A function prototype: what a function pointer points to.
    Function,
    /// Anything a target variable can't be read as (floats, incomplete structs, ...), with
    /// a description for messages.
    Other(String),
}

/// Why a type question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum TypeError {
    #[error(
        "kernel BTF not found at {path}: {source}; rstap needs a kernel built with \
         CONFIG_DEBUG_INFO_BTF to read target variables"
    )]
    Missing {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot load kernel BTF from {path}: {source}")]
    Load {
        path: String,
        source: libbpf_rs::Error,
    },
    #[error(
        "no BTF for function `{function}`: the kernel's BTF doesn't describe it (it may be \
         in a module, a compiler-made copy such as `{function}.isra.0`, or not exist), so \
         its parameters and return value can't be read"
    )]
    UnknownFunction { function: String },
    #[error("the kernel's BTF for function `{function}` is malformed: {problem}")]
    Malformed { function: String, problem: String },
    #[error("`{ty}` is not a struct or union, so it has no member `{member}`")]
    NotComposite { ty: String, member: String },
    #[error(
        "`{ty}` is declared but not defined in the kernel's BTF, so its member `{member}` \
         can't be found"
    )]
    Incomplete { ty: String, member: String },
    #[error("`{ty}` has no member `{member}`{}", did_you_mean(.suggestions))]
    NoMember {
        ty: String,
        member: String,
        /// Close member names, best first; may be empty.
        suggestions: Vec<String>,
    },
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_member_message_suggests_close_names() {
        let error = TypeError::NoMember {
            ty: "struct sock".into(),
            member: "skc_famly".into(),
            suggestions: vec!["skc_family".into()],
        };
        assert_eq!(
            error.to_string(),
            "`struct sock` has no member `skc_famly`; did you mean skc_family?"
        );
        let error = TypeError::NoMember {
            ty: "struct sock".into(),
            member: "zzz".into(),
            suggestions: vec![],
        };
        assert_eq!(error.to_string(), "`struct sock` has no member `zzz`");
    }
}
