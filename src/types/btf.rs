//! The kernel's types from its BTF (/sys/kernel/btf/vmlinux), read through libbpf-rs.
//!
//! libbpf-rs hands out types that borrow the loaded BTF; this module turns them into the
//! plain [`TypeRef`]/[`Shape`]/[`Member`] values of the parent module, so nothing outside
//! depends on libbpf-rs. A few of libbpf-rs's helpers `unwrap()` on dangling type ids
//! (`skip_mods_and_typedefs`, `referenced_type`) or panic on names with NUL bytes
//! (`type_by_name`); this module avoids them, so malformed BTF or odd script input gives an
//! error rather than a panic.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use libbpf_rs::btf::types::{
    Array, Composite, Enum, Enum64, Func, FuncProto, Fwd, FwdKind, Int, IntEncoding, MemberAttr,
    Ptr,
};
use libbpf_rs::btf::{Btf, BtfKind, BtfType, HasSize, ReferencesType, TypeId};

use super::{Member, Parameter, Shape, TypeError, TypeRef};

/// Where the running kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// How many typedefs, qualifiers or nested anonymous members to follow before deciding the
/// BTF loops: real kernel chains are a handful long, and a cycle would otherwise hang.
const MAX_CHAIN: usize = 64;

/// The kernel's types, from BTF.
///
/// Not `Send`: libbpf's BTF object is used through a raw pointer.
pub struct KernelTypes {
    btf: Btf<'static>,
    path: PathBuf,
    /// Built on the first name lookup: one pass over the ~150k types, which runs that never
    /// look a function up (no target variables) shouldn't pay for.
    index: OnceCell<Index>,
}

/// Names to type ids. BTF has no index of its own, and `btf__find_by_name` returns the
/// first type of any kind with the name (a function and a struct can share one).
#[derive(Default)]
struct Index {
    /// The first FUNC of each name: static functions can appear several times.
    functions: HashMap<String, u32>,
    /// The first complete struct / union of each tag name, for resolving forward
    /// declarations.
    structs: HashMap<String, u32>,
    unions: HashMap<String, u32>,
    /// Each tracepoint's `btf_trace_EVENT` typedef (of a pointer to the prototype its
    /// probes are called with), by event name.
    tracepoints: HashMap<String, u32>,
    /// The first plain integer type of each size and signedness.
    integers: HashMap<(u8, bool), u32>,
}

/// The prefix of the typedef each tracepoint has in BTF: `btf_trace_sched_switch`.
const TRACEPOINT_TYPEDEF: &str = "btf_trace_";
/// The prefix of the function that calls a tracepoint class's BPF programs, whose
/// parameters have the names the tracepoint's author gave them.
const TRACEPOINT_CALLER: &str = "__bpf_trace_";

impl fmt::Debug for KernelTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelTypes")
            .field("path", &self.path)
            .field("types", &self.btf.len())
            .finish()
    }
}

impl KernelTypes {
    /// The running kernel's types, from [`VMLINUX_BTF`].
    pub fn load_vmlinux() -> Result<Self, TypeError> {
        Self::from_path(Path::new(VMLINUX_BTF))
    }

    /// Types from a BTF file: raw BTF (as in /sys/kernel/btf/) or an ELF file with a
    /// `.BTF` section. Not a module's split BTF, which needs vmlinux's as its base.
    pub fn from_path(path: &Path) -> Result<Self, TypeError> {
        let display = path.display().to_string();
        // Checked first so a missing file gets the "needs CONFIG_DEBUG_INFO_BTF" message
        // rather than libbpf's generic parse failure.
        std::fs::metadata(path).map_err(|source| TypeError::Missing {
            path: display.clone(),
            source,
        })?;
        let btf = Btf::from_path(path).map_err(|source| TypeError::Load {
            path: display,
            source,
        })?;
        Ok(KernelTypes {
            btf,
            path: path.to_path_buf(),
            index: OnceCell::new(),
        })
    }

    /// A function's parameters in order (name, type), from its BTF FUNC / FUNC_PROTO. A
    /// variadic function's `...` is left out.
    pub fn parameters(&self, function: &str) -> Result<Vec<Parameter>, TypeError> {
        let proto = self.prototype(function)?;
        let mut parameters = Vec::with_capacity(proto.len());
        for index in 0..proto.len() {
            let Some(parameter) = proto.get(index) else {
                break;
            };
            // BTF marks `...` as a last parameter of type void with no name.
            if u32::from(parameter.ty) == 0 {
                break;
            }
            parameters.push(Parameter {
                name: parameter
                    .name
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                ty: TypeRef(parameter.ty.into()),
            });
        }
        Ok(parameters)
    }

    /// What a tracepoint passes its probes (its `TP_PROTO`), with the names its author gave
    /// them; `None` if the kernel's BTF has no such tracepoint (it is not one BPF programs
    /// can attach to, such as a syscall event made by ftrace).
    ///
    /// The prototype is the `btf_trace_EVENT` typedef's, after the `void *__data` every
    /// tracepoint callback gets. Its parameters have no names in BTF; they are taken from
    /// the `__bpf_trace_CLASS` function of the event's class (events defined from a class
    /// share its function), found by the same parameter types, the class named most like
    /// the event preferred.
    pub fn tracepoint_parameters(&self, event: &str) -> Option<Vec<Parameter>> {
        let &typedef = self.index().tracepoints.get(event)?;
        let proto = self
            .ty(typedef)
            .and_then(|t| t.next_type())
            .and_then(|t| Ptr::try_from(t).ok())
            .and_then(|p| self.ty(p.referenced_type_id().into()))
            .and_then(|t| FuncProto::try_from(t).ok())?;
        let types: Vec<u32> = (1..proto.len())
            .filter_map(|i| proto.get(i))
            .map(|p| u32::from(p.ty))
            .collect();
        let names = self
            .tracepoint_caller_names(event, &types)
            .unwrap_or_default();
        Some(
            types
                .iter()
                .enumerate()
                .map(|(i, &ty)| Parameter {
                    name: names.get(i).cloned().unwrap_or_default(),
                    ty: TypeRef(ty),
                })
                .collect(),
        )
    }

    /// The parameter names of the `__bpf_trace_*` function whose parameters after the
    /// first have exactly `types`, the one named most like `event` (its own when it is a
    /// class by itself).
    fn tracepoint_caller_names(&self, event: &str, types: &[u32]) -> Option<Vec<String>> {
        let named = |function: &str| -> Option<Vec<String>> {
            let proto = self.prototype(function).ok()?;
            let parameters: Vec<_> = (1..proto.len()).filter_map(|i| proto.get(i)).collect();
            let same = parameters.len() == types.len()
                && parameters
                    .iter()
                    .zip(types)
                    .all(|(p, &ty)| u32::from(p.ty) == ty);
            same.then(|| {
                parameters
                    .iter()
                    .map(|p| {
                        p.name
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    })
                    .collect()
            })
        };
        if let Some(names) = named(&format!("{TRACEPOINT_CALLER}{event}")) {
            return Some(names);
        }
        let common_prefix = |class: &str| {
            class
                .bytes()
                .zip(event.bytes())
                .take_while(|(a, b)| a == b)
                .count()
        };
        let mut classes: Vec<(&str, &str)> = self
            .index()
            .functions
            .keys()
            .filter_map(|name| Some((name.as_str(), name.strip_prefix(TRACEPOINT_CALLER)?)))
            .collect();
        // Most alike first; by name among equals, so that the choice does not depend on
        // the order of a hash map.
        classes.sort_by(|a, b| {
            common_prefix(b.1)
                .cmp(&common_prefix(a.1))
                .then_with(|| a.1.cmp(b.1))
        });
        classes
            .into_iter()
            .find_map(|(function, _)| named(function))
    }

    /// A plain integer type of `bytes` bytes, signed or not: the type of a tracepoint's
    /// record field, which tracefs describes by size and signedness.
    pub fn integer_type(&self, bytes: u8, signed: bool) -> Option<TypeRef> {
        self.index()
            .integers
            .get(&(bytes, signed))
            .map(|&id| TypeRef(id))
    }

    /// Its return type; `None` for void.
    pub fn return_type(&self, function: &str) -> Result<Option<TypeRef>, TypeError> {
        let proto = self.prototype(function)?;
        let id = u32::from(proto.referenced_type_id());
        Ok((id != 0).then_some(TypeRef(id)))
    }

    /// A struct or union by its tag name (`sock` for `struct sock`), preferring a struct;
    /// for casts, whose type is named in the script.
    pub fn struct_type(&self, name: &str) -> Option<TypeRef> {
        let index = self.index();
        index
            .structs
            .get(name)
            .or_else(|| index.unions.get(name))
            .map(|&id| TypeRef(id))
    }

    /// The struct and union names closest to `name`, for an unknown one.
    pub fn close_struct_names(&self, name: &str) -> Vec<String> {
        let index = self.index();
        let names = index.structs.keys().chain(index.unions.keys()).cloned();
        crate::suggest::close_names(name, names)
    }

    /// The type with typedefs, const/volatile/restrict/type_tag stripped, classified. A
    /// forward declaration gives the full struct or union of that name when the BTF has
    /// one; a pointer to (qualified) void has target [`TypeRef::VOID`].
    pub fn shape(&self, ty: TypeRef) -> Shape {
        let t = match self.resolve(ty) {
            Ok(t) => t,
            Err(problem) => return Shape::Other(problem),
        };
        let name = name_of(&t);
        match t.kind() {
            BtfKind::Void => Shape::Void,
            BtfKind::Int => match Int::try_from(t) {
                Ok(int) => Shape::Int {
                    bytes: clamp_u8(int.size()),
                    // `char` is unsigned in the kernel (built with -funsigned-char since
                    // 6.2), and BTF says so: only SIGNED means signed.
                    signed: matches!(int.encoding, IntEncoding::Signed),
                },
                Err(_) => Shape::Other(format!("malformed integer type `{name}`")),
            },
            BtfKind::Enum => match Enum::try_from(t) {
                Ok(e) => Shape::Enum {
                    bytes: clamp_u8(e.size()),
                    signed: e.is_signed(),
                },
                Err(_) => Shape::Other(format!("malformed enum `{name}`")),
            },
            BtfKind::Enum64 => match Enum64::try_from(t) {
                Ok(e) => Shape::Enum {
                    bytes: clamp_u8(e.size()),
                    signed: e.is_signed(),
                },
                Err(_) => Shape::Other(format!("malformed enum `{name}`")),
            },
            BtfKind::Ptr => match Ptr::try_from(t) {
                Ok(p) => {
                    let target = TypeRef(p.referenced_type_id().into());
                    // `const void *` too is a pointer to nothing readable; one test for
                    // callers instead of one per qualifier.
                    let is_void = self
                        .resolve(target)
                        .is_ok_and(|t| t.kind() == BtfKind::Void);
                    Shape::Pointer {
                        target: if is_void { TypeRef::VOID } else { target },
                    }
                }
                Err(_) => Shape::Other("malformed pointer type".into()),
            },
            BtfKind::Array => match Array::try_from(t) {
                Ok(a) => Shape::Array {
                    element: TypeRef(a.ty().into()),
                    count: u32::try_from(a.capacity()).unwrap_or(u32::MAX),
                },
                Err(_) => Shape::Other("malformed array type".into()),
            },
            BtfKind::Struct | BtfKind::Union => match Composite::try_from(t) {
                Ok(c) => {
                    let bytes = u32::try_from(c.size()).unwrap_or(u32::MAX);
                    let name = name.to_string();
                    if c.is_struct {
                        Shape::Struct { name, bytes }
                    } else {
                        Shape::Union { name, bytes }
                    }
                }
                Err(_) => Shape::Other(format!("malformed struct `{name}`")),
            },
            BtfKind::FuncProto => Shape::Function,
            // resolve() found no definition for it.
            BtfKind::Fwd => Shape::Other(format!(
                "`{}` is declared but not defined in the kernel's BTF",
                self.type_name(TypeRef(t.type_id().into()))
            )),
            BtfKind::Float => Shape::Other(format!("floating-point type `{name}`")),
            kind => Shape::Other(format!("BTF {kind:?} `{name}`, not a value's type")),
        }
    }

    /// A member of a struct or union (`ty` may be a typedef of one), searching members of
    /// anonymous struct/union members too (their offsets added), as C does. The error for
    /// an unknown name lists close member names.
    pub fn member(&self, ty: TypeRef, name: &str) -> Result<Member, TypeError> {
        let composite = match self.resolve(ty) {
            Ok(t) if t.kind() == BtfKind::Fwd => {
                return Err(TypeError::Incomplete {
                    ty: self.type_name(ty),
                    member: name.into(),
                })
            }
            Ok(t) => Composite::try_from(t).ok(),
            Err(_) => None,
        };
        let Some(composite) = composite else {
            return Err(TypeError::NotComposite {
                ty: self.type_name(ty),
                member: name.into(),
            });
        };
        if let Some(member) = self.find_member(&composite, name, 0, 0) {
            return Ok(member);
        }
        let mut names = Vec::new();
        self.member_names(&composite, &mut names, 0);
        Err(TypeError::NoMember {
            ty: self.type_name(ty),
            member: name.into(),
            suggestions: crate::suggest::close_names(name, names),
        })
    }

    /// How many bytes a value of the type takes; `None` for void, functions and types
    /// rstap can't size (incomplete structs, ...).
    pub fn size_of(&self, ty: TypeRef) -> Option<usize> {
        self.size_of_bounded(ty, 0)
    }

    /// C spelling for messages: "struct sock *", "size_t", "int", "char *",
    /// "unsigned char[16]". Typedef names are kept, as the kernel source spells them.
    pub fn type_name(&self, ty: TypeRef) -> String {
        self.spell(ty.0, String::new(), 0)
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let mut index = Index::default();
            for id in 1..self.btf.len() {
                let Ok(id) = u32::try_from(id) else { break };
                let Some(t) = self.ty(id) else { continue };
                let Some(name) = t.name().and_then(|name| name.to_str()) else {
                    continue;
                };
                let map = match t.kind() {
                    BtfKind::Typedef if name.starts_with(TRACEPOINT_TYPEDEF) => {
                        let event = &name[TRACEPOINT_TYPEDEF.len()..];
                        index.tracepoints.entry(event.to_string()).or_insert(id);
                        continue;
                    }
                    BtfKind::Int => {
                        if let Ok(int) = Int::try_from(t) {
                            let signed = matches!(int.encoding, IntEncoding::Signed);
                            let bits_whole = usize::from(int.bits) == int.size() * 8;
                            if bits_whole && !matches!(int.encoding, IntEncoding::Bool) {
                                let key = (clamp_u8(int.size()), signed);
                                index.integers.entry(key).or_insert(id);
                            }
                        }
                        continue;
                    }
                    BtfKind::Func => &mut index.functions,
                    BtfKind::Struct => &mut index.structs,
                    BtfKind::Union => &mut index.unions,
                    _ => continue,
                };
                map.entry(name.to_string()).or_insert(id);
            }
            index
        })
    }

    fn ty(&self, id: u32) -> Option<BtfType<'_>> {
        self.btf.type_by_id(TypeId::from(id))
    }

    fn prototype(&self, function: &str) -> Result<FuncProto<'_>, TypeError> {
        let unknown = || TypeError::UnknownFunction {
            function: function.into(),
        };
        let &id = self.index().functions.get(function).ok_or_else(unknown)?;
        let func: Func<'_> = self.btf.type_by_id(TypeId::from(id)).ok_or_else(unknown)?;
        self.btf
            .type_by_id(func.referenced_type_id())
            .ok_or_else(|| TypeError::Malformed {
                function: function.into(),
                problem: format!(
                    "its type (id {}) is not a function prototype",
                    func.referenced_type_id()
                ),
            })
    }

    /// The type behind typedefs and qualifiers, with a forward declaration replaced by its
    /// definition when there is one. The error describes broken BTF, for [`Shape::Other`].
    fn resolve(&self, ty: TypeRef) -> Result<BtfType<'_>, String> {
        let mut id = ty.0;
        for _ in 0..MAX_CHAIN {
            let t = self
                .ty(id)
                .ok_or_else(|| format!("unknown BTF type id {id}"))?;
            match t.kind() {
                BtfKind::Typedef
                | BtfKind::Const
                | BtfKind::Volatile
                | BtfKind::Restrict
                | BtfKind::TypeTag => {
                    // next_type() gives None for a dangling id instead of panicking.
                    let next = t
                        .next_type()
                        .ok_or_else(|| format!("BTF type id {id} refers to a missing type"))?;
                    id = next.type_id().into();
                }
                BtfKind::Fwd => return Ok(self.definition(t).unwrap_or(t)),
                _ => return Ok(t),
            }
        }
        Err(format!("BTF type id {} is a loop of typedefs", ty.0))
    }

    /// The full struct or union a forward declaration names, if the BTF has it (a type
    /// declared in one compilation unit and defined in another).
    fn definition<'a>(&'a self, fwd: BtfType<'a>) -> Option<BtfType<'a>> {
        let name = fwd.name()?.to_str()?;
        let index = self.index();
        let map = match Fwd::try_from(fwd).ok()?.kind() {
            FwdKind::Struct => &index.structs,
            FwdKind::Union => &index.unions,
        };
        self.ty(*map.get(name)?)
    }

    /// `name` among `composite`'s members, looking into anonymous members; `base_bits` is
    /// where `composite` starts within the outermost struct.
    fn find_member(
        &self,
        composite: &Composite<'_>,
        name: &str,
        base_bits: u32,
        depth: usize,
    ) -> Option<Member> {
        if depth > MAX_CHAIN {
            return None;
        }
        for index in 0..composite.len() {
            let member = composite.get(index)?;
            let (offset, bitfield_size) = match member.attr {
                MemberAttr::Normal { offset } => (offset, self.int_bitfield_size(member.ty)),
                MemberAttr::BitField { size, offset } => (offset, size),
            };
            let bits = base_bits.saturating_add(offset);
            match member.name {
                Some(member_name) if member_name == name => {
                    let bitfield = bitfield_size != 0;
                    return Some(Member {
                        name: name.into(),
                        ty: TypeRef(member.ty.into()),
                        offset_bytes: bits / 8,
                        bit_offset: if bitfield { (bits % 8) as u8 } else { 0 },
                        bit_size: bitfield_size,
                    });
                }
                Some(_) => {}
                None => {
                    let inner = self.resolve(TypeRef(member.ty.into())).ok();
                    if let Some(inner) = inner.and_then(|t| Composite::try_from(t).ok()) {
                        if let Some(found) = self.find_member(&inner, name, bits, depth + 1) {
                            return Some(found);
                        }
                    }
                }
            }
        }
        None
    }

    /// A bitfield's width in a struct without BTF's kind_flag, where the member's INT type
    /// carries it (older pahole output): an int narrower than its storage. 0 otherwise.
    fn int_bitfield_size(&self, ty: TypeId) -> u8 {
        let int = self
            .resolve(TypeRef(ty.into()))
            .ok()
            .and_then(|t| Int::try_from(t).ok());
        match int {
            Some(int) if usize::from(int.bits) < int.size().saturating_mul(8) => int.bits,
            _ => 0,
        }
    }

    /// Every name `member()` could find in `composite`, for suggestions.
    fn member_names(&self, composite: &Composite<'_>, names: &mut Vec<String>, depth: usize) {
        if depth > MAX_CHAIN {
            return;
        }
        for index in 0..composite.len() {
            let Some(member) = composite.get(index) else {
                return;
            };
            match member.name {
                Some(name) => names.push(name.to_string_lossy().into_owned()),
                None => {
                    let inner = self.resolve(TypeRef(member.ty.into())).ok();
                    if let Some(inner) = inner.and_then(|t| Composite::try_from(t).ok()) {
                        self.member_names(&inner, names, depth + 1);
                    }
                }
            }
        }
    }

    fn size_of_bounded(&self, ty: TypeRef, depth: usize) -> Option<usize> {
        if depth > MAX_CHAIN {
            return None;
        }
        match self.shape(ty) {
            Shape::Int { bytes, .. } | Shape::Enum { bytes, .. } => Some(bytes.into()),
            Shape::Pointer { .. } => Some(
                self.btf
                    .ptr_size()
                    .map(|size| size.get())
                    // The BTF is the running kernel's, whose pointers are rstap's.
                    .unwrap_or(std::mem::size_of::<usize>()),
            ),
            Shape::Struct { bytes, .. } | Shape::Union { bytes, .. } => usize::try_from(bytes).ok(),
            Shape::Array { element, count } => self
                .size_of_bounded(element, depth + 1)?
                .checked_mul(usize::try_from(count).ok()?),
            Shape::Void | Shape::Function | Shape::Other(_) => None,
        }
    }

    /// C's inside-out declarator spelling: `declarator` is what has been built around the
    /// type so far (`*`, `[16]`, `(*)`), and the base type's name goes on its left.
    fn spell(&self, id: u32, declarator: String, depth: usize) -> String {
        if depth > MAX_CHAIN {
            return with_declarator("...", &declarator);
        }
        let Some(t) = self.ty(id) else {
            return with_declarator(&format!("<unknown type {id}>"), &declarator);
        };
        let name = name_of(&t);
        let next = |t: &BtfType<'_>| t.next_type().map(|n| u32::from(n.type_id()));
        match t.kind() {
            BtfKind::Void => with_declarator("void", &declarator),
            BtfKind::Int => with_declarator(c_int_name(name), &declarator),
            BtfKind::Float | BtfKind::Typedef => with_declarator(name, &declarator),
            BtfKind::Struct => with_declarator(&tagged("struct", name), &declarator),
            BtfKind::Union => with_declarator(&tagged("union", name), &declarator),
            BtfKind::Enum | BtfKind::Enum64 => with_declarator(&tagged("enum", name), &declarator),
            BtfKind::Fwd => {
                let tag = match Fwd::try_from(t).map(|f| f.kind()) {
                    Ok(FwdKind::Union) => "union",
                    _ => "struct",
                };
                with_declarator(&tagged(tag, name), &declarator)
            }
            BtfKind::Ptr => {
                let Some(target) = next(&t) else {
                    return with_declarator("<broken pointer>", &declarator);
                };
                // A pointer to an array or function needs parentheses: `char (*)[16]`.
                let binds_tighter = self
                    .resolve_qualifiers(target)
                    .is_some_and(|k| matches!(k, BtfKind::Array | BtfKind::FuncProto));
                let declarator = if binds_tighter {
                    format!("(*{declarator})")
                } else {
                    format!("*{declarator}")
                };
                self.spell(target, declarator, depth + 1)
            }
            BtfKind::Const | BtfKind::Volatile => {
                let qualifier = if t.kind() == BtfKind::Const {
                    "const"
                } else {
                    "volatile"
                };
                let Some(target) = next(&t) else {
                    return with_declarator(qualifier, &declarator);
                };
                // A qualified pointer puts the qualifier after the star (`char *const`);
                // anything else before the type (`const char`).
                if self.ty(target).is_some_and(|t| t.kind() == BtfKind::Ptr) {
                    let declarator = if declarator.is_empty() {
                        qualifier.to_string()
                    } else {
                        format!("{qualifier} {declarator}")
                    };
                    self.spell(target, declarator, depth + 1)
                } else {
                    format!("{qualifier} {}", self.spell(target, declarator, depth + 1))
                }
            }
            // Noise in messages: restrict says nothing about the value, type tags
            // (`__user`, `__rcu`) are annotations.
            BtfKind::Restrict | BtfKind::TypeTag | BtfKind::DeclTag | BtfKind::Var => {
                match next(&t) {
                    Some(target) => self.spell(target, declarator, depth + 1),
                    None => with_declarator(name, &declarator),
                }
            }
            BtfKind::Array => match Array::try_from(t) {
                Ok(array) => {
                    let count = match array.capacity() {
                        0 => String::new(),
                        n => n.to_string(),
                    };
                    self.spell(
                        array.ty().into(),
                        format!("{declarator}[{count}]"),
                        depth + 1,
                    )
                }
                Err(_) => with_declarator("<broken array>", &declarator),
            },
            BtfKind::FuncProto => match FuncProto::try_from(t) {
                Ok(proto) => {
                    let mut parameters = Vec::new();
                    for index in 0..proto.len() {
                        let Some(parameter) = proto.get(index) else {
                            break;
                        };
                        parameters.push(match u32::from(parameter.ty) {
                            0 => "...".to_string(),
                            ty => self.spell(ty, String::new(), depth + 1),
                        });
                    }
                    let parameters = if parameters.is_empty() {
                        "void".to_string()
                    } else {
                        parameters.join(", ")
                    };
                    self.spell(
                        proto.referenced_type_id().into(),
                        format!("{declarator}({parameters})"),
                        depth + 1,
                    )
                }
                Err(_) => with_declarator("<broken function type>", &declarator),
            },
            BtfKind::Func | BtfKind::DataSec => with_declarator(name, &declarator),
        }
    }

    /// The kind behind const/volatile/restrict/type tags (not typedefs: a pointer to a
    /// typedef of an array is spelled with the typedef's name, no parentheses).
    fn resolve_qualifiers(&self, mut id: u32) -> Option<BtfKind> {
        for _ in 0..MAX_CHAIN {
            let t = self.ty(id)?;
            if !t.is_mod() {
                return Some(t.kind());
            }
            id = t.next_type()?.type_id().into();
        }
        None
    }
}

fn name_of<'a>(t: &BtfType<'a>) -> &'a str {
    t.name().and_then(|name| name.to_str()).unwrap_or("")
}

/// The usual C spelling of an integer type: BTF from a GCC-built kernel keeps DWARF's
/// names, which put the modifiers last ("short unsigned int").
fn c_int_name(name: &str) -> &str {
    match name {
        "short int" => "short",
        "short unsigned int" => "unsigned short",
        "long int" => "long",
        "long unsigned int" => "unsigned long",
        "long long int" => "long long",
        "long long unsigned int" => "unsigned long long",
        "__int128 unsigned" => "unsigned __int128",
        other => other,
    }
}

fn tagged(tag: &str, name: &str) -> String {
    if name.is_empty() {
        format!("{tag} {{...}}")
    } else {
        format!("{tag} {name}")
    }
}

/// `base` followed by a declarator: `struct sock *`, `char **`, but `char[16]`.
fn with_declarator(base: &str, declarator: &str) -> String {
    if declarator.is_empty() {
        base.to_string()
    } else if declarator.starts_with('[') {
        format!("{base}{declarator}")
    } else {
        format!("{base} {declarator}")
    }
}

fn clamp_u8(size: usize) -> u8 {
    u8::try_from(size).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel() -> KernelTypes {
        match KernelTypes::load_vmlinux() {
            Ok(types) => types,
            Err(error) => panic!("these tests read the host kernel's BTF: {error}"),
        }
    }

    fn pointee(types: &KernelTypes, ty: TypeRef) -> TypeRef {
        match types.shape(ty) {
            Shape::Pointer { target } => target,
            other => panic!("{} is {other:?}, not a pointer", types.type_name(ty)),
        }
    }

    fn struct_named(types: &KernelTypes, name: &str) -> TypeRef {
        types
            .struct_type(name)
            .unwrap_or_else(|| panic!("no struct {name} in the kernel's BTF"))
    }

    /// `$name:type` of each parameter, as `-L` shows them.
    fn described(types: &KernelTypes, parameters: &[Parameter]) -> Vec<String> {
        parameters
            .iter()
            .map(|p| format!("{}:{}", p.name, types.type_name(p.ty)))
            .collect()
    }

    #[test]
    fn a_tracepoint_has_its_prototypes_arguments_with_their_authors_names() {
        let types = kernel();
        let switch = types.tracepoint_parameters("sched_switch").unwrap();
        assert_eq!(
            described(&types, &switch),
            [
                "preempt:bool",
                "prev:struct task_struct *",
                "next:struct task_struct *",
                "prev_state:unsigned int"
            ]
        );
        // An event of a class: named by the class's function, __bpf_trace_sched_wakeup_template.
        let wakeup = types.tracepoint_parameters("sched_wakeup").unwrap();
        assert_eq!(described(&types, &wakeup), ["p:struct task_struct *"]);
        // ftrace's syscall events are no raw tracepoints.
        assert_eq!(types.tracepoint_parameters("sys_enter_connect"), None);
    }

    #[test]
    fn integer_types_are_found_by_size_and_sign() {
        let types = kernel();
        for (bytes, signed) in [
            (1, false),
            (2, false),
            (4, true),
            (4, false),
            (8, true),
            (8, false),
        ] {
            let ty = types.integer_type(bytes, signed).unwrap();
            assert_eq!(types.shape(ty), Shape::Int { bytes, signed });
        }
    }

    #[test]
    fn tcp_sendmsg_parameters_and_return() {
        let types = kernel();
        let parameters = types.parameters("tcp_sendmsg").unwrap();
        let described: Vec<(&str, String)> = parameters
            .iter()
            .map(|p| (p.name.as_str(), types.type_name(p.ty)))
            .collect();
        assert_eq!(
            described,
            [
                ("sk", "struct sock *".to_string()),
                ("msg", "struct msghdr *".to_string()),
                ("size", "size_t".to_string()),
            ]
        );
        let sk = pointee(&types, parameters[0].ty);
        assert!(matches!(types.shape(sk), Shape::Struct { ref name, .. } if name == "sock"));
        assert_eq!(
            types.shape(parameters[2].ty),
            Shape::Int {
                bytes: 8,
                signed: false
            }
        );
        assert_eq!(types.size_of(parameters[0].ty), Some(8));

        let returns = types.return_type("tcp_sendmsg").unwrap().unwrap();
        assert_eq!(types.type_name(returns), "int");
        assert_eq!(
            types.shape(returns),
            Shape::Int {
                bytes: 4,
                signed: true
            }
        );
    }

    #[test]
    fn void_function_has_no_return_type() {
        let types = kernel();
        // void kfree(const void *objp)
        assert_eq!(types.return_type("kfree").unwrap(), None);
        let parameters = types.parameters("kfree").unwrap();
        assert_eq!(parameters.len(), 1);
        assert_eq!(types.type_name(parameters[0].ty), "const void *");
        assert_eq!(
            types.shape(parameters[0].ty),
            Shape::Pointer {
                target: TypeRef::VOID
            }
        );
    }

    #[test]
    fn unknown_function_is_an_error() {
        let types = kernel();
        let error = types.parameters("no_such_function_rstap").unwrap_err();
        assert!(matches!(error, TypeError::UnknownFunction { .. }));
        assert!(error
            .to_string()
            .starts_with("no BTF for function `no_such_function_rstap`"));
        // A NUL byte would make libbpf-rs's type_by_name panic.
        assert!(types.return_type("tcp\0sendmsg").is_err());
    }

    #[test]
    fn nested_member_through_sock_common() {
        let types = kernel();
        let sock = struct_named(&types, "sock");
        let common = types.member(sock, "__sk_common").unwrap();
        // sock_common is sock's first member.
        assert_eq!(common.offset_bytes, 0);
        assert_eq!(types.type_name(common.ty), "struct sock_common");
        let family = types.member(common.ty, "skc_family").unwrap();
        assert_eq!(types.type_name(family.ty), "unsigned short");
        assert_eq!(types.size_of(family.ty), Some(2));
        assert!(!family.is_bitfield());
        // After the addrpair (8 bytes) and the hash union (4) and portpair (4): 16 on
        // every 6.x kernel.
        assert_eq!(family.offset_bytes, 16);
    }

    #[test]
    fn members_of_anonymous_unions() {
        let types = kernel();
        let common = struct_named(&types, "sock_common");
        // skc_daddr lives in `union { __addrpair skc_addrpair; struct { __be32 skc_daddr;
        // __be32 skc_rcv_saddr; }; }` at the start of the struct.
        let daddr = types.member(common, "skc_daddr").unwrap();
        let saddr = types.member(common, "skc_rcv_saddr").unwrap();
        assert_eq!(types.type_name(daddr.ty), "__be32");
        assert_eq!(
            types.shape(daddr.ty),
            Shape::Int {
                bytes: 4,
                signed: false
            }
        );
        assert_eq!((daddr.offset_bytes, saddr.offset_bytes), (0, 4));
        // The ports sit in the second anonymous union, after the 4-byte hash union.
        let dport = types.member(common, "skc_dport").unwrap();
        let num = types.member(common, "skc_num").unwrap();
        assert_eq!((dport.offset_bytes, num.offset_bytes), (12, 14));
        // Reached through sock as well: sock_common is its first member.
        let sock = struct_named(&types, "sock");
        let through = types.member(sock, "__sk_common").unwrap();
        assert_eq!(types.member(through.ty, "skc_dport").unwrap(), dport);
    }

    #[test]
    fn bitfield_member() {
        let types = kernel();
        let skb = struct_named(&types, "sk_buff");
        // `__u8 pkt_type:3;` shares a byte with other bitfields.
        let pkt_type = types.member(skb, "pkt_type").unwrap();
        assert!(pkt_type.is_bitfield());
        assert_eq!(pkt_type.bit_size, 3);
        assert!(pkt_type.bit_offset + pkt_type.bit_size <= 8);
        assert_eq!(types.size_of(pkt_type.ty), Some(1));
        // The whole-byte members around it are byte-aligned, not bitfields.
        let len = types.member(skb, "len").unwrap();
        assert_eq!((len.bit_offset, len.bit_size), (0, 0));
        // cloned:1 is the first bit of the byte holding the cloned/nohdr/fclone/... flags,
        // which sits before pkt_type's byte.
        let cloned = types.member(skb, "cloned").unwrap();
        assert_eq!((cloned.bit_size, cloned.bit_offset), (1, 0));
        assert!(cloned.offset_bytes < pkt_type.offset_bytes);
    }

    #[test]
    fn unknown_member_suggests_close_names() {
        let types = kernel();
        let common = struct_named(&types, "sock_common");
        let error = types.member(common, "skc_famly").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`struct sock_common` has no member `skc_famly`; did you mean skc_family?"
        );
        // Names inside anonymous members are suggested too.
        let error = types.member(common, "skc_dadr").unwrap_err();
        assert!(
            matches!(&error, TypeError::NoMember { suggestions, .. }
                if suggestions.first().map(String::as_str) == Some("skc_daddr")),
            "{error}"
        );
    }

    #[test]
    fn member_of_a_non_struct_is_an_error() {
        let types = kernel();
        let parameters = types.parameters("tcp_sendmsg").unwrap();
        let error = types.member(parameters[2].ty, "x").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`size_t` is not a struct or union, so it has no member `x`"
        );
        // A pointer too: dereferencing is the caller's step.
        assert!(matches!(
            types.member(parameters[0].ty, "__sk_common"),
            Err(TypeError::NotComposite { .. })
        ));
    }

    #[test]
    fn task_comm_is_a_char_array() {
        let types = kernel();
        let task = struct_named(&types, "task_struct");
        let comm = types.member(task, "comm").unwrap();
        assert_eq!(types.type_name(comm.ty), "char[16]");
        let Shape::Array { element, count } = types.shape(comm.ty) else {
            panic!("comm is {:?}", types.shape(comm.ty));
        };
        assert_eq!(count, 16);
        // The kernel is built with -funsigned-char (6.2+), and its BTF says so.
        assert_eq!(
            types.shape(element),
            Shape::Int {
                bytes: 1,
                signed: false
            }
        );
        assert_eq!(types.size_of(comm.ty), Some(16));
        let Shape::Struct { bytes, .. } = types.shape(task) else {
            panic!("task_struct is not a struct");
        };
        assert_eq!(types.size_of(task), Some(bytes as usize));
    }

    #[test]
    fn msghdr_iter_count() {
        let types = kernel();
        let parameters = types.parameters("tcp_sendmsg").unwrap();
        let msghdr = pointee(&types, parameters[1].ty);
        let iter = types.member(msghdr, "msg_iter").unwrap();
        assert_eq!(types.type_name(iter.ty), "struct iov_iter");
        let count = types.member(iter.ty, "count").unwrap();
        assert_eq!(types.type_name(count.ty), "size_t");
    }

    #[test]
    fn spelling_of_declarators() {
        let types = kernel();
        // Found by looking through the BTF rather than hard-coding ids.
        let ids = 1..u32::try_from(types.btf.len()).unwrap();
        let find = |wanted: &str| {
            ids.clone()
                .map(TypeRef)
                .find(|&ty| types.type_name(ty) == wanted)
        };
        assert!(find("char **").is_some());
        assert!(find("const char *").is_some());
        assert!(find("unsigned char[16]").is_some());
        assert!(find("void (*)(struct callback_head *)").is_some());
    }

    #[test]
    fn missing_btf_file() {
        let error = KernelTypes::from_path(Path::new("/nonexistent/vmlinux")).unwrap_err();
        assert!(matches!(error, TypeError::Missing { .. }));
        assert!(error.to_string().contains("CONFIG_DEBUG_INFO_BTF"));
    }

    #[test]
    fn malformed_btf_file() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), b"not btf").unwrap();
        let result = KernelTypes::from_path(file.path());
        assert!(matches!(result, Err(TypeError::Load { .. })));
    }

    #[test]
    fn forward_declarations_resolve_to_definitions() {
        let types = kernel();
        let mut forwards = 0;
        for id in 1..u32::try_from(types.btf.len()).unwrap() {
            let Some(t) = types.ty(id) else { continue };
            if t.kind() != BtfKind::Fwd {
                continue;
            }
            forwards += 1;
            let name = name_of(&t).to_string();
            match types.shape(TypeRef(id)) {
                Shape::Struct { name: found, .. } | Shape::Union { name: found, .. } => {
                    assert_eq!(found, name)
                }
                Shape::Other(message) => {
                    assert!(message.ends_with("declared but not defined in the kernel's BTF"))
                }
                other => panic!("forward declaration {name} gave {other:?}"),
            }
        }
        eprintln!("{forwards} forward declarations");
    }
}
