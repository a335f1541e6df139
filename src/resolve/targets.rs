//! Compiles each probe's target reads (`$size`, `$sk->__sk_common->skc_family`,
//! `kernel_string($name)`, `$return`) against the kernel's types, once per probed function
//! and side, and once per tracepoint: into the fetch program the kernel side runs at the event, and the places in
//! the payload each handler reads the values back from.
//!
//! A probe point may match many functions; a read is checked in each, and an error names
//! the function it failed in, at the script position of the step that failed.

use super::plan::{Handler, ProbePlan, Read, TextPart};
use super::tracepoints::{TracepointAccess, TracepointName, SYSCALL_NUMBER_FIELD};
use crate::kernel::fetch::{
    FetchOp, FetchProgram, PayloadValue, SiteFetch, FAULT_MASK_BYTES, MAX_FRAMES, MAX_OPS,
    MAX_PAYLOAD, MAX_SAVED, MAX_STRING, MAX_VALUES,
};
use crate::kernel::memory::LateFetch;
use crate::kernel::EventKind;
use crate::script::{
    CastBase, CheckedScript, LateRead, ReadKind, ScriptError, Span, TargetExpr, TargetRead,
    TargetStep,
};
use crate::types::{KernelTypes, Parameter, Shape, TypeRef};

/// Arguments the probe programs pass to fetch programs: `FETCH_ARGS` in event.bpf.h.
const ARGUMENTS: usize = 6;

/// Compiles the reads of every handler in `plan` and gives the fetch programs of the sites
/// that read anything. Each handler's `reads` is filled in.
pub fn compile(
    script: &CheckedScript,
    plan: &mut ProbePlan,
    types: &KernelTypes,
) -> Result<Vec<SiteFetch>, ScriptError> {
    let mut compiler = Compiler {
        script,
        types,
        errors: Vec::new(),
        failed_reads: Vec::new(),
    };
    let mut sites = Vec::new();
    let mut add_site = |site: u64, kind: EventKind, layout: Layout| {
        if !layout.program.ops.is_empty() {
            let mut program = layout.program;
            program.payload_bytes = layout.bytes as u16;
            sites.push(SiteFetch {
                site,
                kind,
                program,
            });
        }
    };
    for function in &mut plan.functions {
        // The entry's own probes, then what return probes keep from it, in one payload.
        let entry = Signature::function(types, &function.name, EventKind::Entry);
        let mut layout = Layout::default();
        compiler.handlers(&entry, &mut function.on_entry, false, &mut layout);
        compiler.handlers(&entry, &mut function.entry_captures, true, &mut layout);
        add_site(function.address, EventKind::Entry, layout);
        let ret = Signature::function(types, &function.name, EventKind::Return);
        let mut layout = Layout::default();
        compiler.handlers(&ret, &mut function.on_return, false, &mut layout);
        add_site(function.address, EventKind::Return, layout);
    }
    for (number, tracepoint) in plan.tracepoints.iter_mut().enumerate() {
        let signature = Signature::tracepoint(types, &tracepoint.name, &tracepoint.access);
        let mut layout = Layout::default();
        compiler.handlers(&signature, &mut tracepoint.handlers, false, &mut layout);
        compiler.handlers(
            &signature,
            &mut tracepoint.entry_captures,
            true,
            &mut layout,
        );
        add_site(number as u64, EventKind::Tracepoint, layout);
    }
    for (number, sample) in plan.samples.iter_mut().enumerate() {
        let signature = Signature::sample();
        let mut layout = Layout::default();
        compiler.handlers(&signature, &mut sample.handlers, false, &mut layout);
        add_site(number as u64, EventKind::Sample, layout);
    }
    match ScriptError::several(compiler.errors) {
        Some(errors) => Err(errors),
        None => Ok(sites),
    }
}

/// Compiles the script's late reads (see [`LateRead`]): each a program whose first
/// operation loads the placeholder address, and where its value lies in the payload; or,
/// for one that does not compile in a script that asks `@defined`, why.
pub fn compile_late(
    script: &CheckedScript,
    types: Option<&KernelTypes>,
) -> Result<Vec<Result<LateFetch, String>>, ScriptError> {
    let guarded = script.probes.iter().any(|probe| !probe.defined.is_empty());
    let mut errors = Vec::new();
    let mut fetches = Vec::new();
    for read in &script.late_reads {
        let mut layout = Layout::default();
        let value = match read {
            LateRead::Address(kind) => {
                let pointer = Scalar {
                    bytes: 8,
                    signed: false,
                    shift: 0,
                    bits: 0,
                };
                Ok(store_value(
                    *kind,
                    &pointer,
                    vec![FetchOp::Const(0)],
                    &mut layout,
                ))
            }
            LateRead::Cast(read) => match types {
                Some(types) => compile_value(types, &Signature::late(), read, &mut layout),
                None => Err((
                    read.span,
                    "@cast of an address the script computes needs the kernel's types, and \
                     /sys/kernel/btf/vmlinux cannot be read"
                        .to_string(),
                )),
            },
        };
        match value {
            Ok(value) => {
                let mut program = layout.program;
                program.payload_bytes = layout.bytes as u16;
                fetches.push(Ok(LateFetch { program, value }));
            }
            // In a script that asks `@defined`, a read is an error only if a body reaches it:
            // `@defined(@cast(q, "request_queue")->limits) ? ... : ...` compiles one side.
            Err((_, message)) if guarded => fetches.push(Err(message)),
            Err((span, message)) => errors.push(ScriptError::at(script.source(), span, message)),
        }
    }
    match ScriptError::several(errors) {
        Some(errors) => Err(errors),
        None => Ok(fetches),
    }
}

/// What one probe site offers its reads: its variables and where each is, its return
/// value, its names.
struct Signature<'a> {
    /// How messages name it: `tcp_sendmsg`, `tracepoint sched:sched_switch`.
    site: String,
    /// `function` or `tracepoint`.
    what: &'static str,
    kind: EventKind,
    variables: Result<Vec<Variable>, String>,
    /// At a function's return: its return type, `None` for void.
    return_type: Result<Option<TypeRef>, String>,
    /// A tracepoint's, for `$$system` and `$$name`.
    names: Option<&'a TracepointName>,
}

/// A `$name` a site has.
struct Variable {
    name: String,
    ty: TypeRef,
    location: Location,
}

impl Variable {
    /// A function's or raw tracepoint's parameters, as its arguments in order.
    fn arguments(parameters: Vec<Parameter>) -> Vec<Variable> {
        parameters
            .into_iter()
            .enumerate()
            .map(|(index, parameter)| Variable {
                name: parameter.name,
                ty: parameter.ty,
                location: Location::Argument(index),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum Location {
    /// The site's argument of this number.
    Argument(usize),
    /// At this offset in the tracepoint's trace record.
    Record(u32),
    /// A record field rstap does not read yet, and its C type.
    Unreadable,
}

impl<'a> Signature<'a> {
    fn function(types: &KernelTypes, function: &str, kind: EventKind) -> Self {
        let variables = types
            .parameters(function)
            .map(Variable::arguments)
            .map_err(|err| err.to_string());
        Signature {
            site: function.to_string(),
            what: "function",
            kind,
            variables,
            return_type: types.return_type(function).map_err(|err| err.to_string()),
            names: None,
        }
    }

    /// A late read's: an address, which the program's placeholder stands for.
    fn late() -> Self {
        Signature {
            site: "an address the script computes".into(),
            what: "address",
            kind: EventKind::Entry,
            variables: Err("an address the script computes has no variables".into()),
            return_type: Err("an address the script computes has no return value".into()),
            names: None,
        }
    }

    /// A sampled perf event's: a kernel stack, and nothing else.
    fn sample() -> Self {
        Signature {
            site: "a sampled perf event".into(),
            what: "sample",
            kind: EventKind::Sample,
            variables: Err("a sample interrupts a task wherever it is: it has no variables".into()),
            return_type: Err("a sample has no return value".into()),
            names: None,
        }
    }

    fn tracepoint(
        types: &KernelTypes,
        name: &'a TracepointName,
        access: &TracepointAccess,
    ) -> Self {
        let variables = match access {
            TracepointAccess::Raw(parameters) => Ok(Variable::arguments(parameters.clone())),
            TracepointAccess::Record { fields, .. } => Ok(fields
                .iter()
                .map(|field| {
                    let integer = types
                        .integer_type(field.size as u8, field.signed)
                        .filter(|_| field.is_scalar());
                    Variable {
                        name: field.name.clone(),
                        ty: integer.unwrap_or(TypeRef::VOID),
                        location: match integer {
                            Some(_) => Location::Record(field.offset),
                            None => Location::Unreadable,
                        },
                    }
                })
                .collect()),
        };
        Signature {
            site: format!("tracepoint {name}"),
            what: "tracepoint",
            kind: EventKind::Tracepoint,
            variables,
            return_type: Err("a tracepoint has no return value".into()),
            names: Some(name),
        }
    }
}

/// Compiles reads and collects what fails.
struct Compiler<'a> {
    script: &'a CheckedScript,
    types: &'a KernelTypes,
    errors: Vec<ScriptError>,
    /// The reads that failed: each is reported once, for the first site it fails in.
    failed_reads: Vec<Span>,
}

impl Compiler<'_> {
    /// Compiles the reads of `handlers` at `site` into `layout`: their probes' own reads,
    /// or (`kept`) those their `.return` bodies keep from the entry.
    fn handlers(
        &mut self,
        site: &Signature<'_>,
        handlers: &mut [Handler],
        kept: bool,
        layout: &mut Layout,
    ) {
        for handler in handlers {
            let probe = &self.script.probes[handler.probe];
            let reads = if kept {
                &probe.entry_targets
            } else {
                &probe.targets
            };
            handler.reads.clear();
            // Each `@defined` check is answered by whether its expression compiles here.
            handler.defined = probe
                .defined
                .iter()
                .map(|target| {
                    let check = TargetRead {
                        target: target.clone(),
                        kind: ReadKind::Value,
                        span: target.name.span,
                    };
                    let mut scratch = Layout::default();
                    compile_value(self.types, site, &check, &mut scratch).is_ok()
                })
                .collect();
            for read in reads {
                match compile_read(self.types, site, read, layout) {
                    Ok(value) => handler.reads.push(value),
                    // In a probe that asks `@defined`, a read is an error only if the body
                    // reaches it: `@defined($irq) ? $irq : $id` reads whichever the site
                    // has, as SystemTap's folding of `@defined` leaves only that one.
                    Err((_, message)) if !probe.defined.is_empty() => {
                        handler.reads.push(Read::Unavailable(message))
                    }
                    Err((span, message)) => {
                        if !self.failed_reads.contains(&read.span) {
                            self.failed_reads.push(read.span);
                            let source = self.script.source();
                            self.errors.push(ScriptError::at(source, span, message));
                        }
                    }
                }
            }
            check_size(handler, layout, &mut self.errors);
        }
    }
}

/// The payload of one site as its handlers' reads fill it.
struct Layout {
    program: FetchProgram,
    /// Payload bytes used so far.
    bytes: usize,
    /// Values stored so far (each has a fault bit).
    values: usize,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            program: FetchProgram::default(),
            bytes: FAULT_MASK_BYTES,
            values: 0,
        }
    }
}

fn check_size(handler: &Handler, layout: &Layout, errors: &mut Vec<ScriptError>) {
    let too_big = layout.bytes > MAX_PAYLOAD
        || layout.program.ops.len() > MAX_OPS
        || layout.values > MAX_VALUES;
    if too_big && errors.is_empty() {
        errors.push(ScriptError::without_place(format!(
            "{}: the probes on it read more of the kernel's data than one event carries \
             ({} bytes in {} values and {} steps; at most {MAX_PAYLOAD} bytes, {MAX_VALUES} \
             values and {MAX_OPS} steps): read fewer target variables or shorter strings",
            handler.probe_point,
            layout.bytes,
            layout.values,
            layout.program.ops.len(),
        )));
    }
}

/// Where the path through the kernel's data has got to.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// The register holds a value of this type.
    Value(TypeRef),
    /// The register holds an address; the object of this type lies `offset` bytes past it.
    At {
        ty: TypeRef,
        offset: i64,
        bits: Option<(u8, u8)>,
    },
}

type Failure = (Span, String);

fn compile_read(
    types: &KernelTypes,
    site: &Signature<'_>,
    read: &TargetRead,
    layout: &mut Layout,
) -> Result<Read, Failure> {
    if let ReadKind::Backtrace(format) = read.kind {
        let value = PayloadValue::Stack {
            value: layout.values,
            offset: layout.bytes,
        };
        layout.program.ops.push(FetchOp::Stack {
            dest: layout.bytes as u16,
            frames: MAX_FRAMES as u16,
        });
        layout.bytes += 8 + MAX_FRAMES * 8;
        layout.values += 1;
        return Ok(Read::Backtrace(value, format));
    }
    if read.kind != ReadKind::Text {
        return compile_value(types, site, read, layout).map(Read::Value);
    }
    // `$$return` or `$$parms`: each value as `name=%#x`, as SystemTap expands them.
    let value_of = |name: &str, layout: &mut Layout| {
        let mut target = read.target.clone();
        target.name.name = name.to_string();
        let one = TargetRead {
            target,
            kind: ReadKind::Value,
            span: read.span,
        };
        compile_value(types, site, &one, layout)
    };
    let name_span = read.target.name.span;
    let mut parts = Vec::new();
    match read.target.name.name.as_str() {
        "$return" => {
            // A function returning void has no return value to show: SystemTap gives "".
            if site.return_type.as_ref().ok().copied().flatten().is_some() {
                parts.push(TextPart::value("return", value_of("return", layout)?));
            }
            return Ok(Read::Text(parts));
        }
        // A tracepoint has no locals: its variables are its parameters.
        "$vars" if site.names.is_none() => {
            return Err((
                name_span,
                format!(
                    "not supported yet: `$$vars` in a probe on a kernel function: the kernel's \
                     BTF describes a function's parameters, not its local variables; `$$parms` \
                     lists the parameters (in {})",
                    site.site
                ),
            ));
        }
        which @ ("$name" | "$system") => {
            let Some(names) = site.names else {
                return Err((
                    name_span,
                    format!(
                        "${which} is a tracepoint's {}: only kernel.trace probes have it (in {})",
                        &which[1..],
                        site.site
                    ),
                ));
            };
            let text = if which == "$name" {
                &names.event
            } else {
                &names.system
            };
            return Ok(Read::Fixed(text.clone()));
        }
        _ => {}
    }
    // A function the kernel's BTF does not describe (a compiler-made copy among those a
    // pattern matches) has no parameters to show, as `$$return` has no value there.
    let Ok(variables) = site.variables.as_ref() else {
        return Ok(Read::Text(parts));
    };
    for variable in variables {
        if variable.name.is_empty() {
            continue;
        }
        let part = match (variable.location, types.shape(variable.ty)) {
            (Location::Unreadable, _) => TextPart::fixed(&variable.name, "=?"),
            (_, Shape::Struct { .. } | Shape::Union { .. }) => {
                TextPart::fixed(&variable.name, "={...}")
            }
            (_, Shape::Array { .. }) => TextPart::fixed(&variable.name, "=[...]"),
            // Past the arguments rstap reads: SystemTap's mark for a value it cannot reach.
            (Location::Argument(index), _) if index >= ARGUMENTS => {
                TextPart::fixed(&variable.name, "=?")
            }
            _ => TextPart::value(&variable.name, value_of(&variable.name, layout)?),
        };
        parts.push(part);
    }
    Ok(Read::Text(parts))
}

/// Operations that leave a cast's base, the address it casts, in the register.
fn compile_base(
    types: &KernelTypes,
    site: &Signature<'_>,
    base: &CastBase,
    ops: &mut Vec<FetchOp>,
    pushed: usize,
) -> Result<(), Failure> {
    match base {
        CastBase::Target(base) => {
            let (place, base_path) = compile_path(types, site, base, ops)?;
            let scalar = load_scalar(types, place, base.address_of, ops, &base_path)
                .map_err(|what| (base.name.span, format!("{what} (in {})", site.site)))?;
            if scalar.bits != 0 || scalar.signed && scalar.bytes < 8 {
                // The register holds the raw bytes; user space would finish such a value.
                return Err((
                    base.name.span,
                    format!(
                        "not supported yet: {base_path} in a cast's address: rstap adds \
                         unsigned integers and pointers there, not signed or bitfield members"
                    ),
                ));
            }
        }
        CastBase::CurrentTask(_) => ops.push(FetchOp::CurrentTask),
        CastBase::Constant(value, _) => ops.push(FetchOp::Const(*value)),
        CastBase::Sum { left, minus, right } => {
            if pushed == MAX_SAVED {
                return Err((
                    base.root().span,
                    format!("a cast's address adds more than {MAX_SAVED} levels of sums"),
                ));
            }
            compile_base(types, site, left, ops, pushed)?;
            ops.push(FetchOp::Push);
            compile_base(types, site, right, ops, pushed + 1)?;
            ops.push(FetchOp::Pop { minus: *minus });
        }
        // Lowering substitutes locals, and reads other values after the event.
        CastBase::Variable(name) | CastBase::Computed(name, _) => {
            return Err((name.span, "@cast of a value the script computes".into()))
        }
    }
    Ok(())
}

/// The place a target expression's path leads to (the operations that reach it pushed
/// onto `ops`), and the path as the script writes it, for messages.
fn compile_path(
    types: &KernelTypes,
    site: &Signature<'_>,
    target: &TargetExpr,
    ops: &mut Vec<FetchOp>,
) -> Result<(Place, String), Failure> {
    let in_function = |message: String| format!("{message} (in {})", site.site);
    let name_span = target.name.span;
    let mut path = format!("${}", target.name.name);
    let mut place = if let Some(cast) = target.cast.as_deref() {
        compile_base(types, site, &cast.base, ops, 0)?;
        let name = &cast.type_name;
        let ty = types.struct_type(&name.name).ok_or_else(|| {
            let close = types.close_struct_names(&name.name);
            let hint = if close.is_empty() {
                String::new()
            } else {
                format!("; did you mean {}?", close.join(", "))
            };
            (
                name.span,
                format!(
                    "@cast: the kernel's BTF has no struct or union `{}`{hint}",
                    name.name
                ),
            )
        })?;
        path = format!("@cast(..., \"{}\")", name.name);
        Place::At {
            ty,
            offset: 0,
            bits: None,
        }
    } else if target.name.name == "return" {
        debug_assert_eq!(site.kind, EventKind::Return);
        let ty = site
            .return_type
            .clone()
            .map_err(|err| (name_span, err))?
            .ok_or_else(|| {
                (
                    name_span,
                    in_function("$return: the function returns void".into()),
                )
            })?;
        ops.push(FetchOp::ReturnValue);
        Place::Value(ty)
    } else {
        let variables = site
            .variables
            .as_ref()
            .map_err(|err| (name_span, err.clone()))?;
        let found = match target.name.name.parse::<usize>() {
            // `int_arg(n)` and the like (see `passes::lower::targets`): argument `n`,
            // which for a syscall tracepoint is its `n`th field after the call's number.
            Ok(number) => number.checked_sub(1).and_then(|index| {
                variables
                    .iter()
                    .filter(|v| v.name != SYSCALL_NUMBER_FIELD)
                    .nth(index)
            }),
            Err(_) => variables.iter().find(|v| v.name == target.name.name),
        };
        let Some(variable) = found else {
            let names: Vec<String> = variables
                .iter()
                .filter(|v| !v.name.is_empty())
                .map(|v| format!("${}", v.name))
                .collect();
            return Err((
                name_span,
                in_function(format!(
                    "no parameter ${}; the {}'s parameters are {}",
                    target.name.name,
                    site.what,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )),
            ));
        };
        match variable.location {
            Location::Argument(index) if index >= ARGUMENTS => {
                return Err((
                    name_span,
                    in_function(format!(
                        "not supported yet: ${} is argument {} of the {}; rstap reads the \
                         first {ARGUMENTS}",
                        target.name.name,
                        index + 1,
                        site.what,
                    )),
                ));
            }
            Location::Argument(index) => {
                ops.push(FetchOp::Argument(index as u8));
                Place::Value(variable.ty)
            }
            Location::Record(offset) => {
                // The record's address is such a tracepoint's one argument.
                ops.push(FetchOp::Argument(0));
                Place::At {
                    ty: variable.ty,
                    offset: i64::from(offset),
                    bits: None,
                }
            }
            Location::Unreadable => {
                return Err((
                    name_span,
                    in_function(format!(
                        "not supported yet: ${} is a field of the trace record rstap does \
                         not read (arrays and strings of the record)",
                        target.name.name
                    )),
                ));
            }
        }
    };
    for step in &target.steps {
        place = match *step {
            TargetStep::Member(ref member) => {
                let holder = pointee_or_object(types, place, ops, member.span, &path)
                    .map_err(|(span, message)| (span, in_function(message)))?;
                let Place::At { ty, offset, .. } = holder else {
                    unreachable!("pointee_or_object gives a place in memory")
                };
                let found = types
                    .member(ty, &member.name)
                    .map_err(|err| (member.span, in_function(format!("{path}: {err}"))))?;
                path = format!("{path}->{}", member.name);
                Place::At {
                    ty: found.ty,
                    offset: offset + i64::from(found.offset_bytes),
                    bits: found
                        .is_bitfield()
                        .then_some((found.bit_offset, found.bit_size)),
                }
            }
            TargetStep::Index { index, span } => {
                let element = match place {
                    Place::At { ty, offset, .. } => match types.shape(ty) {
                        Shape::Array { element, .. } => Some(Place::At {
                            ty: element,
                            offset,
                            bits: None,
                        }),
                        _ => None,
                    },
                    Place::Value(_) => None,
                };
                let (element, offset) = match element {
                    Some(Place::At { ty, offset, .. }) => (ty, offset),
                    _ => match pointee_or_object(types, place, ops, span, &path)
                        .map_err(|(span, message)| (span, in_function(message)))?
                    {
                        Place::At { ty, offset, .. } => {
                            if matches!(types.shape(ty), Shape::Void) {
                                return Err((span, in_function(format!("{path}[{index}]: `void *` points to nothing that can be indexed"))));
                            }
                            (ty, offset)
                        }
                        Place::Value(_) => {
                            unreachable!("pointee_or_object gives a place in memory")
                        }
                    },
                };
                let size = types.size_of(element).unwrap_or(0) as i64;
                path = format!("{path}[{index}]");
                Place::At {
                    ty: element,
                    offset: offset + index.wrapping_mul(size),
                    bits: None,
                }
            }
        };
    }
    Ok((place, path))
}

/// Ends a path with its value in the register: what its place holds, or (`address_of`) its
/// address. The error says why it has no such value.
fn load_scalar(
    types: &KernelTypes,
    place: Place,
    address_of: bool,
    ops: &mut Vec<FetchOp>,
    path: &str,
) -> Result<Scalar, String> {
    if !address_of {
        return value_of(types, place, ops).map_err(|what| format!("{path} {what}"));
    }
    match place {
        Place::At {
            offset, bits: None, ..
        } => {
            ops.push(FetchOp::Add(offset));
            Ok(Scalar {
                bytes: 8,
                signed: false,
                shift: 0,
                bits: 0,
            })
        }
        Place::At { bits: Some(_), .. } => Err(format!("&{path}: a bitfield has no address")),
        Place::Value(_) => Err(format!(
            "&{path}: a parameter lives in a register, and has no address rstap can give"
        )),
    }
}

fn compile_value(
    types: &KernelTypes,
    site: &Signature<'_>,
    read: &TargetRead,
    layout: &mut Layout,
) -> Result<PayloadValue, Failure> {
    let target = &read.target;
    let in_function = |message: String| format!("{message} (in {})", site.site);
    let mut ops = Vec::new();
    let (place, path) = compile_path(types, site, target, &mut ops)?;
    let span = read.span;
    let scalar = load_scalar(types, place, target.address_of, &mut ops, &path)
        .map_err(|what| (span, in_function(what)))?;
    Ok(store_value(read.kind, &scalar, ops, layout))
}

/// Ends a value whose register `ops` leave as `scalar`: stores it (or what it points to,
/// as `kind` says) into the payload `layout` is filling.
fn store_value(
    kind: ReadKind,
    scalar: &Scalar,
    mut ops: Vec<FetchOp>,
    layout: &mut Layout,
) -> PayloadValue {
    let dest = layout.bytes;
    let value = layout.values;
    let (stored, size) = match kind {
        ReadKind::Value => {
            ops.push(FetchOp::Store { dest: dest as u16 });
            (
                PayloadValue::Int {
                    value,
                    offset: dest,
                    bytes: scalar.bytes,
                    signed: scalar.signed,
                    shift: scalar.shift,
                    bits: scalar.bits,
                },
                8,
            )
        }
        ReadKind::Deref {
            bytes,
            signed,
            user,
            function,
        } => {
            ops.push(if user {
                FetchOp::UserLoad { bytes }
            } else {
                FetchOp::Load {
                    offset: 0,
                    bytes,
                    copy: true,
                }
            });
            ops.push(FetchOp::Store { dest: dest as u16 });
            (
                PayloadValue::Deref {
                    value,
                    offset: dest,
                    bytes,
                    signed,
                    function,
                },
                8,
            )
        }
        ReadKind::Text | ReadKind::Backtrace(_) => {
            unreachable!("compile_read makes text and backtraces")
        }
        ReadKind::String { max, user } => {
            let with_nul = (max + 1).min(MAX_STRING);
            ops.push(FetchOp::String {
                dest: dest as u16,
                max: with_nul as u16,
                user,
            });
            let function = if user { "user string" } else { "kernel string" };
            (
                PayloadValue::Str {
                    value,
                    offset: dest,
                    function,
                },
                // The slot holds the faulting address when the copy fails.
                with_nul.max(8).next_multiple_of(8),
            )
        }
    };
    layout.bytes += size;
    layout.values += 1;
    layout.program.ops.extend(ops);
    stored
}

/// How a scalar is read back from its 8-byte slot.
struct Scalar {
    bytes: u8,
    signed: bool,
    shift: u8,
    bits: u8,
}

/// The struct or union a member is looked up in: the place itself when it holds one, what
/// it points to when it holds a pointer (loaded first if it is in memory).
fn pointee_or_object(
    types: &KernelTypes,
    place: Place,
    ops: &mut Vec<FetchOp>,
    span: Span,
    path: &str,
) -> Result<Place, Failure> {
    let ty = match place {
        Place::Value(ty) | Place::At { ty, .. } => ty,
    };
    match (types.shape(ty), place) {
        (Shape::Struct { .. } | Shape::Union { .. }, Place::At { .. }) => Ok(place),
        (Shape::Pointer { target }, Place::Value(_)) => Ok(Place::At {
            ty: target,
            offset: 0,
            bits: None,
        }),
        (Shape::Pointer { target }, Place::At { offset, .. }) => {
            ops.push(FetchOp::Load {
                offset,
                bytes: 8,
                copy: false,
            });
            Ok(Place::At {
                ty: target,
                offset: 0,
                bits: None,
            })
        }
        (shape, _) => Err((
            span,
            format!(
                "{path} is `{}`{}, not a pointer, struct or union: it has no members",
                types.type_name(ty),
                match shape {
                    Shape::Struct { .. } | Shape::Union { .. } => " held in a register",
                    _ => "",
                }
            ),
        )),
    }
}

/// Ends the path with the value its place holds, as a long.
fn value_of(types: &KernelTypes, place: Place, ops: &mut Vec<FetchOp>) -> Result<Scalar, String> {
    let ty = match place {
        Place::Value(ty) | Place::At { ty, .. } => ty,
    };
    let whole = |bytes: u8, signed: bool| Scalar {
        bytes,
        signed,
        shift: 0,
        bits: 0,
    };
    let scalar = match types.shape(ty) {
        Shape::Int { bytes, signed } | Shape::Enum { bytes, signed } => whole(bytes, signed),
        Shape::Pointer { .. } => whole(8, false),
        Shape::Array { .. } => {
            // An array's value is its address, as in C.
            return match place {
                Place::At { offset, .. } => {
                    ops.push(FetchOp::Add(offset));
                    Ok(whole(8, false))
                }
                Place::Value(_) => Err("is an array passed in a register".to_string()),
            };
        }
        Shape::Struct { .. } | Shape::Union { .. } => {
            return Err(format!(
                "is a `{}`, not a value: name one of its members, or take its address with &",
                types.type_name(ty)
            ))
        }
        Shape::Void => return Err("is void: it has no value".to_string()),
        Shape::Function => return Err("is a function, not a value".to_string()),
        Shape::Other(what) => return Err(format!("is {what}, which rstap cannot read")),
    };
    if let Place::At { offset, bits, .. } = place {
        match bits {
            Some((shift, width)) => {
                let span = (u32::from(shift) + u32::from(width)).div_ceil(8);
                let bytes = span.next_power_of_two().min(8) as u8;
                ops.push(FetchOp::Load {
                    offset,
                    bytes,
                    copy: false,
                });
                return Ok(Scalar {
                    bytes,
                    signed: scalar.signed,
                    shift,
                    bits: width,
                });
            }
            None => ops.push(FetchOp::Load {
                offset,
                bytes: scalar.bytes,
                copy: false,
            }),
        }
    }
    Ok(scalar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::plan::PlannedFunction;
    use crate::script::SourceFile;

    /// Compiles `body` as a probe on `function`'s entry (or return) against this machine's
    /// kernel BTF, as if the point had matched that one function.
    fn compiled(
        function: &str,
        ret: bool,
        body: &str,
    ) -> Result<(Vec<SiteFetch>, Vec<Read>), String> {
        compiled_handler(function, ret, body).map(|(sites, handler)| (sites, handler.reads))
    }

    /// The same, giving the compiled handler.
    fn compiled_handler(
        function: &str,
        ret: bool,
        body: &str,
    ) -> Result<(Vec<SiteFetch>, Handler), String> {
        let suffix = if ret { ".return" } else { "" };
        let text = format!("probe kernel.function(\"{function}\"){suffix} {{ {body} }}");
        let script =
            crate::script::compile(&SourceFile::new("t.stp", text)).map_err(|e| e.to_string())?;
        let handler = Handler {
            probe: 0,
            function: function.into(),
            probe_point: String::new(),
            reads: Vec::new(),
            defined: Vec::new(),
        };
        let mut plan = ProbePlan::default();
        plan.functions.push(PlannedFunction {
            name: function.into(),
            address: 0xffff_ffff_8100_0000,
            name_is_unique: true,
            parameters: Vec::new(),
            on_entry: if ret {
                Vec::new()
            } else {
                vec![handler.clone()]
            },
            // As the planner does: a return probe that keeps values from the entry.
            entry_captures: if ret && !script.probes[0].entry_values.is_empty() {
                vec![handler.clone()]
            } else {
                Vec::new()
            },
            on_return: if ret { vec![handler] } else { Vec::new() },
        });
        let types = KernelTypes::load_vmlinux().map_err(|e| e.to_string())?;
        let sites = compile(&script, &mut plan, &types).map_err(|e| e.to_string())?;
        let function = &plan.functions[0];
        let handler = if ret {
            &function.on_return
        } else {
            &function.on_entry
        }[0]
        .clone();
        Ok((sites, handler))
    }

    /// Compiles `body` as a probe on the tracepoint `event`, reached as `access` says.
    fn compiled_tracepoint(
        event: &str,
        access: TracepointAccess,
        body: &str,
    ) -> Result<(Vec<SiteFetch>, Vec<Read>), String> {
        let text = format!("probe kernel.trace(\"{event}\") {{ {body} }}");
        let script =
            crate::script::compile(&SourceFile::new("t.stp", text)).map_err(|e| e.to_string())?;
        let mut plan = ProbePlan::default();
        let name = TracepointName {
            system: "test".into(),
            event: event.into(),
        };
        plan.tracepoints
            .push(crate::resolve::plan::PlannedTracepoint {
                name,
                access,
                entry_captures: Vec::new(),
                paired: None,
                handlers: vec![Handler {
                    probe: 0,
                    function: event.into(),
                    probe_point: String::new(),
                    reads: Vec::new(),
                    defined: Vec::new(),
                }],
            });
        let types = KernelTypes::load_vmlinux().map_err(|e| e.to_string())?;
        let sites = compile(&script, &mut plan, &types).map_err(|e| e.to_string())?;
        Ok((sites, plan.tracepoints[0].handlers[0].reads.clone()))
    }

    #[test]
    fn a_cast_reads_through_the_type_it_names() {
        let body = "print(@cast($sk, \"struct sock_common\")->skc_family, \
                    @cast(task_current(), \"task_struct\")->tgid, task_current())";
        let (sites, reads) = compiled("tcp_sendmsg", false, body).unwrap();
        assert_eq!(reads.len(), 3);
        let ops = &sites[0].program.ops;
        // $sk's value, then the family at its offset in sock_common, 2 bytes.
        assert_eq!(ops[0], FetchOp::Argument(0));
        assert!(matches!(ops[1], FetchOp::Load { bytes: 2, .. }), "{ops:?}");
        assert!(matches!(ops[2], FetchOp::Store { .. }));
        assert_eq!(ops[3], FetchOp::CurrentTask);
        assert!(matches!(ops[4], FetchOp::Load { bytes: 4, .. }), "{ops:?}");
        // task_current() is the task's address.
        assert_eq!(ops[6..8], [FetchOp::CurrentTask, FetchOp::Add(0)]);
        let error =
            compiled("tcp_sendmsg", false, "print(@cast($size, \"sock\")->nope)").unwrap_err();
        assert!(
            error.contains("`struct sock` has no member `nope`"),
            "{error}"
        );
    }

    #[test]
    fn a_raw_tracepoint_reads_its_arguments_and_names() {
        let types = KernelTypes::load_vmlinux().unwrap();
        let parameters = types.tracepoint_parameters("sched_switch").unwrap();
        let (sites, reads) = compiled_tracepoint(
            "sched_switch",
            TracepointAccess::Raw(parameters),
            "printf(\"%d %s %s\\n\", $next->pid, $$name, $$system)",
        )
        .unwrap();
        assert_eq!(sites.len(), 1);
        assert_eq!((sites[0].site, sites[0].kind), (0, EventKind::Tracepoint));
        // $next is the third argument: preempt, prev, next.
        assert_eq!(sites[0].program.ops[0], FetchOp::Argument(2));
        assert!(matches!(
            sites[0].program.ops[1],
            FetchOp::Load { bytes: 4, .. }
        ));
        assert_eq!(reads[1], Read::Fixed("sched_switch".into()));
        assert_eq!(reads[2], Read::Fixed("test".into()));
    }

    #[test]
    fn a_trace_records_fields_are_read_at_their_offsets() {
        let field =
            |name: &str, c_type: &str, offset, size| crate::resolve::tracepoints::RecordField {
                name: name.into(),
                c_type: c_type.into(),
                offset,
                size,
                signed: false,
            };
        let access = TracepointAccess::Record {
            id: 1,
            fields: vec![field("fd", "int", 16, 8), field("comm", "char[16]", 24, 16)],
        };
        let (sites, _) =
            compiled_tracepoint("sys_enter_x", access.clone(), "printf(\"%d\\n\", $fd)").unwrap();
        assert_eq!(
            sites[0].program.ops[..2],
            [
                FetchOp::Argument(0),
                FetchOp::Load {
                    offset: 16,
                    bytes: 8,
                    copy: false
                }
            ]
        );
        let error =
            compiled_tracepoint("sys_enter_x", access, "printf(\"%d\\n\", $comm)").unwrap_err();
        assert!(
            error.contains("not supported yet: $comm is a field of the trace record"),
            "{error}"
        );
    }

    #[test]
    fn parameters_and_members_become_loads() {
        let (sites, reads) = compiled(
            "tcp_sendmsg",
            false,
            "print($size, $sk->__sk_common->skc_family)",
        )
        .unwrap();
        assert_eq!(sites.len(), 1);
        let ops = &sites[0].program.ops;
        assert_eq!(ops[0], FetchOp::Argument(2));
        assert_eq!(ops[1], FetchOp::Store { dest: 16 });
        assert_eq!(ops[2], FetchOp::Argument(0));
        // skc_family: 2 bytes at offset 16 of struct sock_common, the first member of sock.
        assert_eq!(
            ops[3],
            FetchOp::Load {
                offset: 16,
                bytes: 2,
                copy: false
            }
        );
        assert_eq!(ops[4], FetchOp::Store { dest: 24 });
        assert_eq!(sites[0].program.payload_bytes, 32);
        assert_eq!(
            reads[1],
            Read::Value(PayloadValue::Int {
                value: 1,
                offset: 24,
                bytes: 2,
                signed: false,
                shift: 0,
                bits: 0
            })
        );
    }

    #[test]
    fn pointers_on_the_way_are_loaded_and_strings_copied() {
        let (sites, reads) = compiled(
            "tcp_sendmsg",
            false,
            "print(kernel_string($sk->__sk_common->skc_prot->name))",
        )
        .unwrap();
        let ops = &sites[0].program.ops;
        assert_eq!(ops[0], FetchOp::Argument(0));
        assert!(
            matches!(
                ops[1],
                FetchOp::Load {
                    bytes: 8,
                    copy: false,
                    ..
                }
            ),
            "{ops:?}"
        );
        assert!(
            matches!(ops[2], FetchOp::Add(_)),
            "the name is an array: {ops:?}"
        );
        assert_eq!(
            ops[3],
            FetchOp::String {
                dest: 16,
                max: 256,
                user: false
            }
        );
        assert!(matches!(
            reads[0],
            Read::Value(PayloadValue::Str { offset: 16, .. })
        ));
    }

    #[test]
    fn the_return_value_takes_the_functions_type() {
        let (sites, reads) = compiled("tcp_sendmsg", true, "print($return)").unwrap();
        assert_eq!(sites[0].kind, EventKind::Return);
        assert_eq!(sites[0].program.ops[0], FetchOp::ReturnValue);
        assert!(matches!(
            reads[0],
            Read::Value(PayloadValue::Int {
                bytes: 4,
                signed: true,
                ..
            })
        ));
    }

    #[test]
    fn defined_is_answered_per_function_and_guards_its_reads() {
        let body = "print(@defined($size) ? $size : -1, @choose_defined($nope->x, 2))";
        let (sites, handler) = compiled_handler("tcp_sendmsg", false, body).unwrap();
        assert_eq!(handler.defined, [true, false]);
        assert!(matches!(handler.reads[0], Read::Value(_)));
        assert!(
            matches!(&handler.reads[1], Read::Unavailable(why) if why.contains("no parameter $nope")),
            "{:?}",
            handler.reads
        );
        assert_eq!(sites[0].program.ops.len(), 2, "only $size is read");
        // The other branch of a `@defined` choice: what another site would have.
        let body = "print(@defined($irq) ? $irq : $size)";
        let (_, handler) = compiled_handler("tcp_sendmsg", false, body).unwrap();
        assert!(matches!(handler.reads[0], Read::Unavailable(_)));
        assert!(matches!(handler.reads[1], Read::Value(_)));
        // In a probe that asks no `@defined`, the same read is an error.
        assert!(compiled("tcp_sendmsg", false, "print($nope->x)").is_err());
    }

    #[test]
    fn parameters_and_the_return_value_as_text() {
        let (sites, reads) = compiled("tcp_sendmsg", false, "print($$parms)").unwrap();
        let Read::Text(parts) = &reads[0] else {
            panic!("{reads:?}")
        };
        let names: Vec<&str> = parts.iter().map(|part| part.name.as_str()).collect();
        assert_eq!(names, ["sk", "msg", "size"]);
        assert!(parts.iter().all(|part| part.value.is_ok()), "{parts:?}");
        assert_eq!(
            sites[0].program.ops.len(),
            6,
            "each argument read and stored"
        );
        let (_, reads) = compiled("tcp_close", true, "print($$return)").unwrap();
        assert_eq!(
            reads[0],
            Read::Text(Vec::new()),
            "void: SystemTap gives \"\""
        );
    }

    #[test]
    fn parameters_in_return_probes_are_read_at_the_entry() {
        let (sites, _) = compiled(
            "tcp_sendmsg",
            true,
            "print($return, $size, @entry($sk->sk_type))",
        )
        .unwrap();
        let entry = sites.iter().find(|s| s.kind == EventKind::Entry).unwrap();
        let ret = sites.iter().find(|s| s.kind == EventKind::Return).unwrap();
        assert_eq!(
            ret.program.ops,
            [FetchOp::ReturnValue, FetchOp::Store { dest: 16 }]
        );
        assert_eq!(entry.program.ops[0], FetchOp::Argument(2));
        assert_eq!(entry.program.ops[2], FetchOp::Argument(0));
        assert_eq!(entry.program.payload_bytes, 32);
    }

    #[test]
    fn type_errors_name_the_function_and_the_place() {
        let error = |body| compiled("tcp_sendmsg", false, body).unwrap_err();
        assert!(
            error("print($sk->nope)").starts_with("t.stp:1:")
                && error("print($sk->nope)").contains("`struct sock` has no member `nope`")
        );
        assert!(error("print($size->x)").contains("$size is `size_t`, not a pointer"));
        assert!(error("print($sk->__sk_common)").contains("name one of its members"));
        assert!(error("print($nope)")
            .contains("the function's parameters are $sk, $msg, $size (in tcp_sendmsg)"));
        assert!(error("print(&$size)").contains("has no address"));
        assert!(compiled("tcp_close", true, "print($return)")
            .unwrap_err()
            .contains("returns void"));
    }
}
