//! From a checked script's probe points to the kernel functions to probe and the
//! handlers each function's entry and return run.

use std::collections::{BTreeMap, HashMap};

use super::denylist::DenyList;
use super::ftrace::TraceableFunctions;
use super::glob::Glob;
use super::kallsyms::{FunctionSymbol, KernelSymbols};
use crate::script::{
    CheckedScript, FunctionVariant, ProbePoint, ProbePointKind, ScriptError, SourceFile,
};

/// How many close names a "matches nothing" error suggests.
const SUGGESTIONS: usize = 3;

/// A probe body to run for an event, and the probe point that brought it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    pub probe: usize,
    /// `pp()`: the probe point resolved to this function.
    pub probe_point: String,
}

/// A kernel function to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFunction {
    pub name: String,
    pub address: u64,
    pub name_is_unique: bool,
    pub on_entry: Vec<Handler>,
    pub on_return: Vec<Handler>,
}

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
    /// Probes to run once before tracing starts, and once after it ends.
    pub begin: Vec<usize>,
    pub end: Vec<usize>,
}

/// What the running kernel offers to probe.
pub struct KernelFunctions<'a> {
    pub symbols: &'a KernelSymbols,
    /// ftrace's list of patchable functions, when it could be read.
    pub traceable: Option<&'a TraceableFunctions>,
    pub deny: &'a DenyList,
}

impl KernelFunctions<'_> {
    /// Why rstap will not probe `function`, if it will not.
    fn exclusion(&self, function: &FunctionSymbol) -> Option<String> {
        let name = function.name.as_str();
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
            .traceable
            .is_some_and(|traceable| !traceable.contains(name))
        {
            return Some("ftrace cannot patch it (not in available_filter_functions)".into());
        }
        None
    }
}

/// Resolves every kernel probe point of `script`. A point that matches no function is
/// an error, with close names suggested.
pub fn plan(
    script: &CheckedScript,
    source: &SourceFile,
    kernel: &KernelFunctions<'_>,
) -> Result<ProbePlan, ScriptError> {
    let mut plan = ProbePlan::default();
    let mut by_address: BTreeMap<u64, PlannedFunction> = BTreeMap::new();
    let mut skipped: BTreeMap<String, String> = BTreeMap::new();
    let name_counts = count_names(kernel.symbols);

    for (probe, checked) in script.probes.iter().enumerate() {
        for point in &checked.points {
            let (pattern, variant) = match &point.kind {
                ProbePointKind::Begin => {
                    plan.begin.push(probe);
                    continue;
                }
                ProbePointKind::End => {
                    plan.end.push(probe);
                    continue;
                }
                ProbePointKind::KernelFunction { file: Some(_), .. } => {
                    return Err(ScriptError::at(
                        source,
                        point.span,
                        "probe points by source file (FUNCTION@FILE) are not supported yet; \
                         name the functions instead, e.g. kernel.function(\"sock_*\")",
                    ))
                }
                ProbePointKind::KernelFunction {
                    function,
                    file: None,
                    variant,
                } => (function, *variant),
            };
            if variant == FunctionVariant::Inline {
                return Err(ScriptError::at(
                    source,
                    point.span,
                    ".inline probe points are not supported: no attach mechanism rstap has \
                     can probe inlined code",
                ));
            }
            let glob = Glob::new(pattern)
                .map_err(|err| ScriptError::at(source, point.span, err.to_string()))?;
            let mut matched = 0;
            for function in kernel.symbols.kernel_functions() {
                if !glob.matches(&function.name) {
                    continue;
                }
                matched += 1;
                if let Some(reason) = kernel.exclusion(function) {
                    skipped.entry(function.name.clone()).or_insert(reason);
                    continue;
                }
                let planned =
                    by_address
                        .entry(function.address)
                        .or_insert_with(|| PlannedFunction {
                            name: function.name.clone(),
                            address: function.address,
                            name_is_unique: name_counts.get(function.name.as_str()) == Some(&1),
                            on_entry: Vec::new(),
                            on_return: Vec::new(),
                        });
                let handler = Handler {
                    probe,
                    probe_point: resolved_point(&planned.name, variant),
                };
                match variant {
                    FunctionVariant::Return => planned.on_return.push(handler),
                    _ => planned.on_entry.push(handler),
                }
            }
            if matched == 0 {
                return Err(no_match_error(source, point, pattern, kernel.symbols));
            }
        }
    }

    plan.functions = by_address.into_values().collect();
    let probed: std::collections::HashSet<&str> = plan
        .functions
        .iter()
        .map(|function| function.name.as_str())
        .collect();
    plan.skipped = skipped
        .into_iter()
        .filter(|(name, _)| !probed.contains(name.as_str()))
        .map(|(name, reason)| SkippedFunction { name, reason })
        .collect();
    Ok(plan)
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

fn count_names(symbols: &KernelSymbols) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for function in symbols.kernel_functions() {
        *counts.entry(function.name.as_str()).or_insert(0) += 1;
    }
    counts
}

fn no_match_error(
    source: &SourceFile,
    point: &ProbePoint,
    pattern: &str,
    symbols: &KernelSymbols,
) -> ScriptError {
    let wanted: String = pattern
        .chars()
        .filter(|c| !"*?[]!\\".contains(*c))
        .collect();
    let mut scored: Vec<(usize, &str)> = symbols
        .kernel_functions()
        .map(|function| {
            (
                strsim::levenshtein(&wanted, &function.name),
                function.name.as_str(),
            )
        })
        .filter(|&(distance, _)| distance <= wanted.len().max(6) / 3)
        .collect();
    scored.sort_unstable();
    scored.dedup_by_key(|&mut (_, name)| name);
    let close: Vec<&str> = scored
        .iter()
        .take(SUGGESTIONS)
        .map(|&(_, name)| name)
        .collect();
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
