//! From a checked script's probe points to the kernel functions to probe and the
//! handlers each function's entry and return run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use super::denylist::DenyList;
use super::dwarf::{Parameter, SourceFunction};
use super::ftrace::TraceableFunctions;
use super::glob::Glob;
use super::kallsyms::{FunctionSymbol, KernelSymbols};
use super::source::{SourceError, SourceFunctions};
use super::tracepoints::{TracepointAccess, TracepointError, TracepointName, Tracepoints};
use crate::kernel::fetch::PayloadValue;
use crate::script::{
    CheckedScript, FunctionVariant, ProbePoint, ProbePointKind, ProcfsAccess, SampleEvery,
    ScriptError, SourceMap,
};

/// A probe body to run for an event, and the probe point that brought it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    pub probe: usize,
    /// `ppfunc()`: the function as the probe point names it (its DWARF name for
    /// FUNCTION@FILE points, where the symbol may carry a `.isra.0`-style suffix).
    pub function: String,
    /// `pp()`: the probe point resolved to this function.
    pub probe_point: String,
    /// Where the event's payload holds each of the probe's target reads, in their order;
    /// filled in by [`targets::compile`](super::targets::compile).
    pub reads: Vec<Read>,
    /// The answers to the probe's `@defined` checks in this function.
    pub defined: Vec<bool>,
}

/// One target read of a handler, as the payload holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Value(PayloadValue),
    /// `$$parms` or `$$return`: text made of the parts, separated by spaces.
    Text(Vec<TextPart>),
    /// A read that does not resolve in this function, which `@defined` guards: an error
    /// (this one) only if the body reaches it.
    Unavailable(String),
    /// The kernel stack, written as the format says.
    Backtrace(PayloadValue, crate::script::BacktraceFormat),
    /// Text the site fixes: a tracepoint's `$$name` or `$$system`.
    Fixed(String),
}

/// `name=0x1f` of `$$parms`: a value read from the payload, or fixed text (`={...}` for a
/// struct).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPart {
    pub name: String,
    pub value: Result<PayloadValue, &'static str>,
}

impl TextPart {
    pub fn value(name: &str, value: PayloadValue) -> Self {
        TextPart {
            name: name.to_string(),
            value: Ok(value),
        }
    }

    pub fn fixed(name: &str, text: &'static str) -> Self {
        TextPart {
            name: name.to_string(),
            value: Err(text),
        }
    }
}

/// A kernel function to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFunction {
    pub name: String,
    pub address: u64,
    pub name_is_unique: bool,
    /// Known when the function was found through debug info.
    pub parameters: Vec<Parameter>,
    pub on_entry: Vec<Handler>,
    pub on_return: Vec<Handler>,
    /// The `.return` probes that keep values from the entry (`@entry`, parameters): at
    /// each entry, each evaluates them with its own reads of the entry's payload.
    pub entry_captures: Vec<Handler>,
}

impl PlannedFunction {
    /// Whether the function's entry must be probed: for its own probes, or for what its
    /// return probes keep from it.
    pub fn probes_entry(&self) -> bool {
        !self.on_entry.is_empty() || !self.entry_captures.is_empty()
    }
}

/// A tracepoint to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTracepoint {
    pub name: TracepointName,
    pub access: TracepointAccess,
    pub handlers: Vec<Handler>,
    /// At a system call's entry: what the probes on its exit keep from it (`@entry`).
    pub entry_captures: Vec<Handler>,
    /// The number in the plan of the other side of the system call, for a call whose
    /// exit keeps values from its entry.
    pub paired: Option<usize>,
}

impl PlannedTracepoint {
    fn new(name: TracepointName, access: TracepointAccess) -> Self {
        PlannedTracepoint {
            name,
            access,
            handlers: Vec::new(),
            entry_captures: Vec::new(),
            paired: None,
        }
    }
}

/// A perf event to sample on every CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSample {
    pub perf_type: u32,
    pub config: u64,
    pub period: SamplePeriod,
    pub handlers: Vec<Handler>,
}

/// How often a sampled perf event fires, as perf_event_attr says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplePeriod {
    /// Every this many events (for the CPU clock, nanoseconds).
    Events(u64),
    /// This many times a second, perf adjusting the period.
    PerSecond(u64),
}

/// `timer.profile`'s rate where the kernel's HZ cannot be read: Debian's and Ubuntu's.
pub const DEFAULT_HZ: u64 = 250;

/// A function a probe point matched but rstap will not probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFunction {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct ProbePlan {
    /// In address order.
    pub functions: Vec<PlannedFunction>,
    pub skipped: Vec<SkippedFunction>,
    /// Probes to run once before tracing starts, and once after it ends, in order.
    pub begin: Vec<SessionProbe>,
    pub end: Vec<SessionProbe>,
    /// Probes to run when a probe fails, before rstap stops.
    pub error: Vec<SessionProbe>,
    pub timers: Vec<PlannedTimer>,
    /// The procfs files the script's probes serve, in script order.
    pub procfs: Vec<PlannedProcfs>,
    /// In name order; an event's site number is its index here.
    pub tracepoints: Vec<PlannedTracepoint>,
    /// In script order; a sample's site number is its index here.
    pub samples: Vec<PlannedSample>,
    /// What the kernel side reads at each site for the probes' target variables; filled in
    /// by [`targets::compile`](super::targets::compile).
    pub fetches: Vec<crate::kernel::fetch::SiteFetch>,
    /// The script's late reads, compiled (or why one cannot be made, where `@defined`
    /// guards it): filled in by [`targets::compile_late`](super::targets::compile_late).
    pub late_reads: Vec<Result<crate::kernel::memory::LateFetch, String>>,
}

/// A begin, end or error probe point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionProbe {
    pub probe: usize,
    /// As written, which `pp()` gives (`begin(-1)`).
    pub point: String,
}

/// A timer probe point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTimer {
    pub probe: usize,
    /// As written, which `pp()` gives.
    pub point: String,
    pub period_ns: u64,
    pub randomize_ns: u64,
}

/// A procfs probe point: a file rstap serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedProcfs {
    pub probe: usize,
    /// As written, which `pp()` gives.
    pub point: String,
    pub path: String,
    pub access: ProcfsAccess,
    pub umask: Option<u32>,
    pub maxsize: Option<u64>,
    /// The probe's string local that holds `$value`.
    pub value: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Script(#[from] ScriptError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Tracepoint(#[from] TracepointError),
}

/// What the running kernel offers to probe.
pub struct KernelFunctions<'a> {
    pub symbols: &'a KernelSymbols,
    /// ftrace's list of patchable functions, when it could be read.
    pub traceable: Option<&'a TraceableFunctions>,
    pub deny: &'a DenyList,
    /// The kernel image's init text, freed once the kernel has booted: its functions are
    /// still in kallsyms, but no longer in memory.
    pub init_text: Option<Range<u64>>,
}

impl KernelFunctions<'_> {
    /// Why rstap will not probe `function`, if it will not.
    fn exclusion(&self, function: &FunctionSymbol<'_>) -> Option<String> {
        let name = function.name;
        if name.starts_with("__pfx_") || name.starts_with("__cfi_") {
            return Some("padding before a function, not a function".into());
        }
        if name.contains(".part.") || name.ends_with(".cold") || name.contains(".cold.") {
            return Some("a split-off part of a function, not a whole function".into());
        }
        if let Some(reason) = self.deny.reason(name) {
            return Some(format!("on rstap's deny list: {reason}"));
        }
        if self
            .init_text
            .as_ref()
            .is_some_and(|init| init.contains(&function.address))
        {
            return Some("init code, which the kernel freed after booting".into());
        }
        if self
            .traceable
            .is_some_and(|traceable| !traceable.contains(name))
        {
            // BPF kprobes go through trace_kprobe, which refuses every function without
            // an ftrace location unless the kernel has CONFIG_KPROBE_EVENTS_ON_NOTRACE
            // (Debian's do not); SystemTap's own kprobes have no such limit.
            return Some(
                "ftrace cannot patch it (not in available_filter_functions), and BPF kprobes \
                 are refused such functions"
                    .into(),
            );
        }
        None
    }
}

/// A function one probe point matched, before exclusions.
struct Candidate<'s> {
    symbol: FunctionSymbol<'s>,
    /// The function's name as the probe point resolves it.
    function: String,
    /// `NAME@FILE:LINE` for source-file points, `NAME` for name points.
    resolved_name: String,
    parameters: &'s [Parameter],
}

/// Builds the plan as probe points are resolved one by one.
struct Planner<'k> {
    kernel: &'k KernelFunctions<'k>,
    by_address: BTreeMap<u64, PlannedFunction>,
    skipped: BTreeMap<String, String>,
    /// How many functions points have matched so far.
    matched: usize,
}

impl<'k> Planner<'k> {
    fn add(&mut self, probe: usize, variant: FunctionVariant, candidate: Candidate<'_>) {
        self.matched += 1;
        let symbol = candidate.symbol;
        if let Some(reason) = self.kernel.exclusion(&symbol) {
            self.skipped
                .entry(symbol.name.to_string())
                .or_insert(reason);
            return;
        }
        let planned = self
            .by_address
            .entry(symbol.address)
            .or_insert_with(|| PlannedFunction {
                name: symbol.name.to_string(),
                address: symbol.address,
                name_is_unique: true,
                parameters: Vec::new(),
                on_entry: Vec::new(),
                on_return: Vec::new(),
                entry_captures: Vec::new(),
            });
        if planned.parameters.is_empty() {
            planned.parameters = candidate.parameters.to_vec();
        }
        let handler = Handler {
            probe,
            function: candidate.function,
            probe_point: resolved_point(&candidate.resolved_name, variant),
            reads: Vec::new(),
            defined: Vec::new(),
        };
        match variant {
            FunctionVariant::Return => planned.on_return.push(handler),
            _ => planned.on_entry.push(handler),
        }
    }

    fn finish(self) -> (Vec<PlannedFunction>, Vec<SkippedFunction>) {
        let functions: Vec<PlannedFunction> = self.by_address.into_values().collect();
        let probed: HashSet<&str> = functions
            .iter()
            .map(|function| function.name.as_str())
            .collect();
        let skipped = self
            .skipped
            .into_iter()
            .filter(|(name, _)| !probed.contains(name.as_str()))
            .map(|(name, reason)| SkippedFunction { name, reason })
            .collect();
        (functions, skipped)
    }
}

/// Resolves every kernel probe point of `script`. A point that matches no function is
/// an error, with close names suggested.
pub fn plan(
    script: &CheckedScript,
    source: &SourceMap,
    kernel: &KernelFunctions<'_>,
    sources: &mut dyn SourceFunctions,
    tracepoints: &mut dyn Tracepoints,
) -> Result<ProbePlan, PlanError> {
    let mut plan = ProbePlan::default();
    let mut traced: BTreeMap<TracepointName, PlannedTracepoint> = BTreeMap::new();
    let mut planner = Planner {
        kernel,
        by_address: BTreeMap::new(),
        skipped: BTreeMap::new(),
        matched: 0,
    };
    let (mut begin, mut end, mut error) = (Vec::new(), Vec::new(), Vec::new());
    for (probe, checked) in script.probes.iter().enumerate() {
        // Set once a sufficient point (`!`) matched: the probe's later points are not
        // looked at.
        let mut satisfied = false;
        for point in &checked.points {
            if satisfied {
                break;
            }
            // Points other than kernel functions and tracepoints always resolve.
            satisfied = point.sufficient
                && !matches!(
                    point.kind,
                    ProbePointKind::KernelFunction { .. } | ProbePointKind::Tracepoint { .. }
                );
            let (function, file, variant) = match &point.kind {
                ProbePointKind::Begin { priority } => {
                    begin.push((*priority, probe, point.text.clone()));
                    continue;
                }
                ProbePointKind::End { priority } => {
                    end.push((*priority, probe, point.text.clone()));
                    continue;
                }
                ProbePointKind::Error { priority } => {
                    error.push((*priority, probe, point.text.clone()));
                    continue;
                }
                ProbePointKind::Never => continue,
                &ProbePointKind::Sample {
                    perf_type,
                    config,
                    every,
                } => {
                    plan.samples.push(PlannedSample {
                        perf_type,
                        config,
                        period: sample_period(every),
                        handlers: vec![Handler {
                            probe,
                            function: String::new(),
                            probe_point: point.text.clone(),
                            reads: Vec::new(),
                            defined: Vec::new(),
                        }],
                    });
                    continue;
                }
                ProbePointKind::Procfs {
                    path,
                    access,
                    umask,
                    maxsize,
                } => {
                    plan.procfs.push(PlannedProcfs {
                        probe,
                        point: point.text.clone(),
                        path: path.clone(),
                        access: *access,
                        umask: *umask,
                        maxsize: *maxsize,
                        value: checked.procfs_value,
                    });
                    continue;
                }
                &ProbePointKind::Timer {
                    period_ns,
                    randomize_ns,
                } => {
                    plan.timers.push(PlannedTimer {
                        probe,
                        point: point.text.clone(),
                        period_ns,
                        randomize_ns,
                    });
                    continue;
                }
                ProbePointKind::Tracepoint { system, event } => {
                    let matched = plan_tracepoints(
                        &mut traced,
                        tracepoints,
                        probe,
                        (system.as_deref(), event),
                        point,
                        source,
                    );
                    match matched {
                        Err(_) if point.optional => {}
                        Err(err) => return Err(err),
                        Ok(()) => satisfied = point.sufficient,
                    }
                    continue;
                }
                ProbePointKind::KernelFunction {
                    function,
                    file,
                    variant,
                } => (function, file, *variant),
            };
            if variant == FunctionVariant::Inline {
                return Err(ScriptError::at(
                    source,
                    point.span,
                    ".inline probe points are not supported: no attach mechanism rstap has \
                     can probe inlined code",
                )
                .into());
            }
            let before = planner.matched;
            let planned = match file {
                None => plan_by_name(&mut planner, probe, point, function, variant, source),
                Some(file) => plan_by_source(
                    &mut planner,
                    probe,
                    point,
                    (function, file),
                    variant,
                    source,
                    sources,
                ),
            };
            match planned {
                // An optional point (`?`, `!`) that cannot be resolved is left out.
                Err(_) if point.optional => {}
                Err(err) => return Err(err),
                Ok(()) => satisfied = point.sufficient && planner.matched > before,
            }
        }
    }
    // Stable: probes of one priority run in the order the script gives them.
    for (list, mut points) in [
        (&mut plan.begin, begin),
        (&mut plan.end, end),
        (&mut plan.error, error),
    ] {
        points.sort_by_key(|&(priority, ..)| priority);
        *list = points
            .into_iter()
            .map(|(_, probe, point)| SessionProbe { probe, point })
            .collect();
    }
    (plan.functions, plan.skipped) = planner.finish();
    let pairs = pair_syscall_sides(&mut traced, tracepoints, script)?;
    // The plan numbers tracepoints in the map's order.
    let number = |name: &TracepointName| traced.keys().position(|traced| traced == name);
    let pairs: Vec<(usize, usize)> = pairs
        .iter()
        .filter_map(|(exit, entry)| Some((number(exit)?, number(entry)?)))
        .collect();
    plan.tracepoints = traced.into_values().collect();
    for (exit, entry) in pairs {
        plan.tracepoints[exit].paired = Some(entry);
        plan.tracepoints[entry].paired = Some(exit);
    }
    mark_shared_names(&mut plan.functions, kernel.symbols);
    for function in &mut plan.functions {
        function.entry_captures = keeping_from_entry(script, &function.on_return);
    }
    Ok(plan)
}

/// The handlers whose probes keep values from their call's entry (`@entry`, parameters
/// read at a return).
fn keeping_from_entry(script: &CheckedScript, handlers: &[Handler]) -> Vec<Handler> {
    handlers
        .iter()
        .filter(|handler| !script.probes[handler.probe].entry_values.is_empty())
        .cloned()
        .collect()
}

fn plan_by_name(
    planner: &mut Planner<'_>,
    probe: usize,
    point: &ProbePoint,
    pattern: &str,
    variant: FunctionVariant,
    source: &SourceMap,
) -> Result<(), PlanError> {
    let glob =
        Glob::new(pattern).map_err(|err| ScriptError::at(source, point.span, err.to_string()))?;
    let symbols = planner.kernel.symbols;
    let mut matched = false;
    for symbol in symbols
        .kernel_functions()
        .filter(|symbol| glob.matches(symbol.name))
    {
        matched = true;
        let candidate = Candidate {
            symbol,
            function: symbol.name.to_string(),
            resolved_name: symbol.name.to_string(),
            parameters: &[],
        };
        planner.add(probe, variant, candidate);
    }
    if !matched {
        return Err(no_match_error(source, point, pattern, symbols).into());
    }
    Ok(())
}

fn plan_by_source(
    planner: &mut Planner<'_>,
    probe: usize,
    point: &ProbePoint,
    (function, file): (&str, &str),
    variant: FunctionVariant,
    source: &SourceMap,
    sources: &mut dyn SourceFunctions,
) -> Result<(), PlanError> {
    let found: Vec<SourceFunction> = sources.matching(function, file)?;
    let mut out_of_line = 0;
    let mut inline_only = 0;
    for function in &found {
        let Some(address) = function.entry_address else {
            inline_only += 1;
            planner
                .skipped
                .entry(function.name.clone())
                .or_insert_with(|| "only inlined: rstap cannot probe inlined code".into());
            continue;
        };
        out_of_line += 1;
        let Some(symbol) = planner.kernel.symbols.kernel_function_at(address) else {
            planner
                .skipped
                .entry(function.name.clone())
                .or_insert_with(|| format!("no kernel symbol at its address {address:#x}"));
            continue;
        };
        let candidate = Candidate {
            symbol,
            function: function.name.clone(),
            resolved_name: format!(
                "{}@{}:{}",
                function.name, function.decl_file, function.decl_line
            ),
            parameters: &function.parameters,
        };
        planner.add(probe, variant, candidate);
    }
    if out_of_line == 0 {
        let message = if inline_only > 0 {
            format!(
                "only inlined functions match \"{function}@{file}\" ({inline_only} of them): \
                 rstap cannot probe inlined code"
            )
        } else {
            format!("no function declared in a file matching \"{file}\" matches \"{function}\"")
        };
        return Err(ScriptError::at(source, point.span, message).into());
    }
    Ok(())
}

/// A sampling point's period; `timer.profile` ticks through the CPU clock, which counts
/// nanoseconds, at the kernel's HZ.
fn sample_period(every: SampleEvery) -> SamplePeriod {
    match every {
        SampleEvery::Events(count) => SamplePeriod::Events(count),
        SampleEvery::PerSecond(hz) => SamplePeriod::PerSecond(hz),
        SampleEvery::Tick => {
            let hz = crate::system::kernel_hz().map_or(DEFAULT_HZ, |hz| hz as u64);
            SamplePeriod::Events(1_000_000_000 / hz.max(1))
        }
    }
}

/// Adds a handler of `probe` to every tracepoint `(system, event)` matches.
fn plan_tracepoints(
    traced: &mut BTreeMap<TracepointName, PlannedTracepoint>,
    tracepoints: &mut dyn Tracepoints,
    probe: usize,
    (system, event): (Option<&str>, &str),
    point: &ProbePoint,
    source: &SourceMap,
) -> Result<(), PlanError> {
    let glob = |pattern: &str| {
        Glob::new(pattern).map_err(|err| ScriptError::at(source, point.span, err.to_string()))
    };
    let system_glob = system.map(glob).transpose()?;
    let event_glob = glob(event)?;
    let matched: Vec<TracepointName> = tracepoints
        .names()?
        .iter()
        .filter(|name| {
            event_glob.matches(&name.event)
                && system_glob
                    .as_ref()
                    .is_none_or(|glob| glob.matches(&name.system))
        })
        .cloned()
        .collect();
    if matched.is_empty() {
        let names = tracepoints.names()?;
        let wanted = system.map_or(event.to_string(), |system| format!("{system}:{event}"));
        let close = crate::suggest::close_names(
            &wanted,
            names.iter().map(|name| {
                if system.is_some() {
                    name.to_string()
                } else {
                    name.event.clone()
                }
            }),
        );
        let message = if close.is_empty() {
            format!("no tracepoint matches \"{wanted}\"")
        } else {
            format!(
                "no tracepoint matches \"{wanted}\"; did you mean {}?",
                close.join(", ")
            )
        };
        return Err(ScriptError::at(source, point.span, message).into());
    }
    for name in matched {
        let planned = match traced.entry(name.clone()) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                let access = tracepoints.access(&name)?;
                entry.insert(PlannedTracepoint::new(name.clone(), access))
            }
        };
        planned.handlers.push(Handler {
            probe,
            function: name.to_string(),
            probe_point: format!("kernel.trace(\"{name}\")"),
            reads: Vec::new(),
            defined: Vec::new(),
        });
    }
    Ok(())
}

/// Gives each system call exit whose probes keep values from the entry (`@entry`) its
/// entry tracepoint, probed for them if no probe is on it, with their captures; returns
/// the pairs of exit and entry.
fn pair_syscall_sides(
    traced: &mut BTreeMap<TracepointName, PlannedTracepoint>,
    tracepoints: &mut dyn Tracepoints,
    script: &CheckedScript,
) -> Result<Vec<(TracepointName, TracepointName)>, PlanError> {
    let exits: Vec<(TracepointName, TracepointName, Vec<Handler>)> = traced
        .values()
        .filter_map(|exit| {
            let event = crate::script::syscall_entry_event(&exit.name.event)?;
            let captures = keeping_from_entry(script, &exit.handlers);
            let entry = TracepointName {
                system: exit.name.system.clone(),
                event,
            };
            (!captures.is_empty()).then(|| (exit.name.clone(), entry, captures))
        })
        .collect();
    let mut pairs = Vec::with_capacity(exits.len());
    for (exit, entry, captures) in exits {
        let planned = match traced.entry(entry.clone()) {
            std::collections::btree_map::Entry::Occupied(planned) => planned.into_mut(),
            std::collections::btree_map::Entry::Vacant(vacant) => {
                let access = tracepoints.access(&entry)?;
                vacant.insert(PlannedTracepoint::new(entry.clone(), access))
            }
        };
        planned.entry_captures = captures;
        pairs.push((exit, entry));
    }
    Ok(pairs)
}

/// The probe point as `pp()` reports it for one function.
fn resolved_point(function: &str, variant: FunctionVariant) -> String {
    let suffix = match variant {
        FunctionVariant::Entry => "",
        FunctionVariant::Call => ".call",
        FunctionVariant::Return => ".return",
        FunctionVariant::Inline => ".inline",
    };
    format!("kernel.function(\"{function}\"){suffix}")
}

/// Marks the functions whose name another kernel function shares. Counts only the
/// planned names: a map of every kernel symbol would dominate rstap's memory.
fn mark_shared_names(functions: &mut [PlannedFunction], symbols: &KernelSymbols) {
    let mut counts: HashMap<&str, usize> = functions
        .iter()
        .map(|function| (function.name.as_str(), 0))
        .collect();
    for symbol in symbols.kernel_functions() {
        if let Some(count) = counts.get_mut(symbol.name) {
            *count += 1;
        }
    }
    let shared: HashSet<String> = counts
        .into_iter()
        .filter(|&(_, count)| count > 1)
        .map(|(name, _)| name.to_string())
        .collect();
    for function in functions {
        function.name_is_unique = !shared.contains(&function.name);
    }
}

fn no_match_error(
    source: &SourceMap,
    point: &ProbePoint,
    pattern: &str,
    symbols: &KernelSymbols,
) -> ScriptError {
    let close = crate::suggest::close_names(
        pattern,
        symbols
            .kernel_functions()
            .map(|function| function.name.to_string()),
    );
    let message = if close.is_empty() {
        format!("no kernel function matches \"{pattern}\"")
    } else {
        format!(
            "no kernel function matches \"{pattern}\"; did you mean {}?",
            close.join(", ")
        )
    };
    ScriptError::at(source, point.span, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::source::SourceError;
    use crate::script::SourceFile;

    /// A kernel with two tracepoints, one of them known only by its record.
    struct FakeTracepoints {
        names: Vec<TracepointName>,
        asked: Vec<String>,
    }

    impl Tracepoints for FakeTracepoints {
        fn names(&mut self) -> Result<&[TracepointName], TracepointError> {
            Ok(&self.names)
        }
        fn access(&mut self, name: &TracepointName) -> Result<TracepointAccess, TracepointError> {
            self.asked.push(name.to_string());
            Ok(match name.system.as_str() {
                "syscalls" => TracepointAccess::Record {
                    id: 7,
                    fields: Vec::new(),
                },
                _ => TracepointAccess::Raw(Vec::new()),
            })
        }
    }

    struct NoSources;

    impl SourceFunctions for NoSources {
        fn matching(&mut self, _: &str, _: &str) -> Result<Vec<SourceFunction>, SourceError> {
            Ok(Vec::new())
        }
    }

    fn planned(text: &str) -> Result<(ProbePlan, Vec<String>), String> {
        let file = SourceFile::new("t.stp", text);
        let script = crate::script::compile(&file).map_err(|e| e.to_string())?;
        let source = script.source().clone();
        let symbols = KernelSymbols::parse("ffffffff81000000 T tcp_sendmsg\n", "kallsyms")
            .map_err(|e| e.to_string())?;
        let deny = DenyList::default();
        let kernel = KernelFunctions {
            symbols: &symbols,
            traceable: None,
            deny: &deny,
            init_text: None,
        };
        let name = |system: &str, event: &str| TracepointName {
            system: system.into(),
            event: event.into(),
        };
        let mut tracepoints = FakeTracepoints {
            names: vec![
                name("sched", "sched_switch"),
                name("sched", "sched_wakeup"),
                name("syscalls", "sys_enter_connect"),
            ],
            asked: Vec::new(),
        };
        let plan = plan(&script, &source, &kernel, &mut NoSources, &mut tracepoints)
            .map_err(|e| e.to_string())?;
        Ok((plan, tracepoints.asked))
    }

    #[test]
    fn tracepoints_are_matched_once_each_in_name_order() {
        let (plan, asked) = planned(
            "probe kernel.trace(\"sys_enter_*\"), kernel.trace(\"sched:*\") {}\n\
             probe kernel.trace(\"sched_switch\") {}",
        )
        .unwrap();
        let names: Vec<String> = plan
            .tracepoints
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "sched:sched_switch",
                "sched:sched_wakeup",
                "syscalls:sys_enter_connect"
            ]
        );
        // Each tracepoint's access is found out once, however many probes name it.
        assert_eq!(asked.len(), 3);
        let switch = &plan.tracepoints[0];
        let probes: Vec<usize> = switch.handlers.iter().map(|h| h.probe).collect();
        assert_eq!(probes, [0, 1]);
        assert_eq!(
            switch.handlers[0].probe_point,
            "kernel.trace(\"sched:sched_switch\")"
        );
        assert!(matches!(
            plan.tracepoints[2].access,
            TracepointAccess::Record { id: 7, .. }
        ));
    }

    #[test]
    fn a_tracepoint_that_matches_nothing_suggests_close_names() {
        let error = planned("probe kernel.trace(\"sched:sched_swich\") {}").unwrap_err();
        assert!(
            error.contains(
                "no tracepoint matches \"sched:sched_swich\"; did you mean sched:sched_switch"
            ),
            "{error}"
        );
        let (plan, _) = planned("probe kernel.trace(\"nope\")? {}").unwrap();
        assert!(plan.tracepoints.is_empty());
    }
}
