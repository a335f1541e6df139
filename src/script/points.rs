//! Probe-point providers as data: each names the components it starts with and builds the
//! probe point from what follows them. Adding a kind of probe point is one more entry.

use super::ast::{PointArg, PointComponent, PointSyntax};
use super::ir::{FunctionVariant, ProbePoint, ProbePointKind, ProcfsAccess, SampleEvery};
use super::source::{SourceMap, Span};
use crate::resolve::glob::Glob;

/// A provider's failure: where, and what to say.
pub(super) type PointError = (Span, String);

struct Provider {
    /// The leading component names, e.g. `["kernel", "function"]`.
    path: &'static [&'static str],
    /// How the point is written, for the list of supported points.
    usage: &'static str,
    /// Builds the point from all its components (the first `path.len()` match `path`).
    build: fn(&[PointComponent]) -> Result<ProbePointKind, PointError>,
}

const PROVIDERS: &[Provider] = &[
    Provider {
        path: &["begin"],
        usage: "begin[(PRIORITY)]",
        build: |c| prioritised(c).map(|priority| ProbePointKind::Begin { priority }),
    },
    Provider {
        path: &["end"],
        usage: "end[(PRIORITY)]",
        build: |c| prioritised(c).map(|priority| ProbePointKind::End { priority }),
    },
    Provider {
        path: &["error"],
        usage: "error[(PRIORITY)]",
        build: |c| prioritised(c).map(|priority| ProbePointKind::Error { priority }),
    },
    Provider {
        path: &["never"],
        usage: "never",
        build: |c| {
            prioritised(c).and_then(|priority| match priority {
                0 => Ok(ProbePointKind::Never),
                _ => Err((c[0].span, "'never' takes no argument".to_string())),
            })
        },
    },
    Provider {
        path: &["timer"],
        usage: "timer.{s,ms,us,ns,hz,jiffies}(N)[.randomize(M)], timer.profile",
        build: timer,
    },
    Provider {
        path: &["procfs"],
        usage: "procfs[(\"PATH\")][.umask(UMASK)].read[.maxsize(N)], procfs[(\"PATH\")][.umask(UMASK)].write",
        build: procfs,
    },
    Provider {
        path: &["perf"],
        usage: "perf.type(N).config(M)[.sample(N)|.hz(N)]",
        build: perf,
    },
    Provider {
        path: &["kernel", "function"],
        usage: "kernel.function(\"PATTERN\")[.call|.return|.inline]",
        build: kernel_function,
    },
    Provider {
        path: &["kprobe", "function"],
        usage: "kprobe.function(\"NAME\")[.return]",
        build: kprobe_function,
    },
    Provider {
        path: &["kernel", "trace"],
        usage: "kernel.trace(\"[SYSTEM:]EVENT\")",
        build: kernel_trace,
    },
];

/// Resolves a probe point as written to the providers that take it: one, or, for a point
/// with wildcards in its names (`ti*.s(1)`), every one whose names they match, each as
/// its own point named as it matched.
pub(super) fn resolve(
    point: &PointSyntax,
    source: &SourceMap,
) -> Result<Vec<ProbePoint>, PointError> {
    let c = &point.components;
    let takes = |provider: &&Provider| {
        c.len() >= provider.path.len()
            && provider
                .path
                .iter()
                .zip(c)
                .enumerate()
                .all(|(i, (name, comp))| {
                    // Only the last component of the path may take an argument.
                    wildcard_matches(&comp.name, name)
                        && (comp.argument.is_none() || i + 1 == provider.path.len())
                })
    };
    let providers: Vec<&Provider> = PROVIDERS.iter().filter(takes).collect();
    if providers.is_empty() {
        return Err(no_provider(point, &point.text(source)));
    }
    if let Some(wild) = c
        .iter()
        .skip(providers.iter().map(|p| p.path.len()).min().unwrap_or(0))
        .find(|comp| comp.name.contains('*'))
    {
        return Err((
            wild.span,
            format!(
                "not supported yet: a wildcard in '{}' after a probe point's name: rstap \
                 matches wildcards against names of probe points, not against their suffixes",
                wild.name
            ),
        ));
    }
    providers
        .into_iter()
        .map(|provider| {
            let mut matched = point.clone();
            for (component, name) in matched.components.iter_mut().zip(provider.path) {
                if component.name != *name {
                    component.name = name.to_string();
                    // Named as matched, not as written.
                    matched.grouped = true;
                }
            }
            Ok(ProbePoint {
                kind: (provider.build)(&matched.components)?,
                text: matched.text(source),
                span: point.span,
                optional: point.optional,
                sufficient: point.sufficient,
            })
        })
        .collect()
}

/// Whether a component's name as written (`*` standing for any run of characters, the
/// only wildcard the parser lets into a name) matches a provider's.
pub(super) fn wildcard_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    Glob::new(pattern).is_ok_and(|glob| glob.matches(name))
}

/// The error for a point no provider takes: the construct named, if it is one rstap does
/// not have yet, else the list of points it has.
fn no_provider(point: &PointSyntax, text: &str) -> PointError {
    let c = &point.components;
    if let Some(numbered) = c
        .iter()
        .position(|comp| matches!(comp.argument, Some(PointArg::Number(_))))
    {
        let names: Vec<&str> = c[..=numbered]
            .iter()
            .map(|comp| comp.name.as_str())
            .collect();
        return (
            c[0].span.to(c[numbered].span),
            format!(
                "not supported yet: the probe point `{}(NUMBER)`",
                names.join(".")
            ),
        );
    }
    let usages: Vec<&str> = PROVIDERS.iter().map(|p| p.usage).collect();
    (
        point.span,
        format!(
            "unknown probe point '{text}' (SystemTap's tapset probe points are not in rstap \
             yet); supported: {}",
            usages.join(", ")
        ),
    )
}

/// `begin` or `begin(N)`: one component, whose number is the priority.
fn prioritised(c: &[PointComponent]) -> Result<i64, PointError> {
    if let Some(extra) = c.get(1) {
        return Err((
            extra.span,
            format!("unknown probe point suffix '.{}'", extra.name),
        ));
    }
    match &c[0].argument {
        None => Ok(0),
        Some(PointArg::Number(priority)) => Ok(*priority),
        Some(PointArg::Str(_)) => Err((
            c[0].span,
            format!("the priority of '{}' is a number", c[0].name),
        )),
    }
}

/// `timer.ms(100)`, `timer.s(1).randomize(1)`, `timer.hz(10)`, ...
fn timer(c: &[PointComponent]) -> Result<ProbePointKind, PointError> {
    let number = |comp: &PointComponent| match comp.argument {
        Some(PointArg::Number(n)) if n > 0 => Ok(n as u64),
        _ => Err((
            comp.span,
            format!(
                "timer.{} needs a positive number, e.g. timer.{}(10)",
                comp.name, comp.name
            ),
        )),
    };
    let Some(unit) = c.get(1) else {
        return Err((
            c[0].span,
            "a timer needs its interval, e.g. timer.ms(100) or timer.s(1)".to_string(),
        ));
    };
    if unit.name == "profile" {
        return timer_profile(c);
    }
    let scale = match unit.name.as_str() {
        "s" | "sec" => 1_000_000_000,
        "ms" | "msec" => 1_000_000,
        "us" | "usec" => 1_000,
        "ns" | "nsec" => 1,
        // One of the kernel's ticks.
        "jiffies" => match crate::system::kernel_hz() {
            Ok(hz) => 1_000_000_000 / hz as u64,
            Err(why) => return Err((unit.span, format!("timer.jiffies: {why}"))),
        },
        "hz" => 0,
        other => {
            return Err((
                unit.span,
                format!("unknown timer unit '{other}'; expected s, ms, us, ns, hz or jiffies"),
            ))
        }
    };
    let n = number(unit)?;
    let period_ns = if scale == 0 {
        1_000_000_000 / n
    } else {
        n.saturating_mul(scale)
    };
    let randomize_ns = match c.get(2) {
        None => 0,
        Some(r) if r.name == "randomize" && unit.name != "hz" => {
            let spread = number(r)?.saturating_mul(scale);
            if spread >= period_ns {
                return Err((
                    r.span,
                    "a timer's randomization must be less than its interval".to_string(),
                ));
            }
            spread
        }
        Some(other) => {
            return Err((
                other.span,
                format!("unknown probe point suffix '.{}' of a timer", other.name),
            ))
        }
    };
    if let Some(extra) = c.get(3) {
        return Err((
            extra.span,
            format!("unknown probe point suffix '.{}'", extra.name),
        ));
    }
    Ok(ProbePointKind::Timer {
        period_ns,
        randomize_ns,
    })
}

/// The file of a `procfs` point without a path, as in SystemTap.
const DEFAULT_PROCFS_FILE: &str = "command";

/// `procfs("PATH").read`, `procfs.write`, with `.umask(UMASK)` before the access and
/// `.maxsize(N)` after a read: a file that runs the probe when it is read or written.
fn procfs(c: &[PointComponent]) -> Result<ProbePointKind, PointError> {
    let path = match &c[0].argument {
        None => DEFAULT_PROCFS_FILE.to_string(),
        Some(PointArg::Str(path)) => {
            procfs_path(&String::from_utf8_lossy(&path.value)).map_err(|why| (c[0].span, why))?
        }
        Some(PointArg::Number(_)) => {
            return Err((
                c[0].span,
                "procfs takes a file name, as in procfs(\"stats\")".to_string(),
            ))
        }
    };
    let number = |comp: &PointComponent| match comp.argument {
        Some(PointArg::Number(n)) if n >= 0 => Ok(n as u64),
        _ => Err((
            comp.span,
            format!(
                "procfs's .{} needs a number, e.g. .{}(0022)",
                comp.name, comp.name
            ),
        )),
    };
    let mut rest = c[1..].iter().peekable();
    let umask = match rest.next_if(|comp| comp.name == "umask") {
        Some(comp) => {
            let umask = number(comp)?;
            if umask > 0o777 {
                return Err((comp.span, "a umask is at most 0777".to_string()));
            }
            Some(umask as u32)
        }
        None => None,
    };
    let access = match rest.next() {
        Some(comp) if comp.argument.is_none() && comp.name == "read" => ProcfsAccess::Read,
        Some(comp) if comp.argument.is_none() && comp.name == "write" => ProcfsAccess::Write,
        other => {
            let at = other.unwrap_or(&c[c.len() - 1]);
            return Err((
                at.span,
                "a procfs probe point ends in .read or .write, as in procfs(\"stats\").read"
                    .to_string(),
            ));
        }
    };
    let maxsize = match rest.next() {
        None => None,
        Some(comp) if comp.name == "maxsize" && access == ProcfsAccess::Read => Some(number(comp)?),
        Some(other) => {
            return Err((
                other.span,
                format!(
                    "unknown probe point suffix '.{}' of a procfs point",
                    other.name
                ),
            ))
        }
    };
    if let Some(extra) = rest.next() {
        return Err((
            extra.span,
            format!("unknown probe point suffix '.{}'", extra.name),
        ));
    }
    Ok(ProbePointKind::Procfs {
        path,
        access,
        umask,
        maxsize,
    })
}

/// A procfs file's path, checked: relative, in names of letters, digits, `_`, `-` and `.`,
/// none of them `.` or `..`, so that it stays in the directory rstap serves.
fn procfs_path(path: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("procfs path \"{path}\" {why}"));
    if path.is_empty() {
        return bad("is empty");
    }
    for name in path.split('/') {
        if name.is_empty() || name == "." || name == ".." {
            return bad("must be a relative path without empty, `.` or `..` components");
        }
        if !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'))
        {
            return bad("may hold only letters, digits, `_`, `-`, `.` and `/`");
        }
    }
    Ok(path.to_string())
}

/// `timer.profile` (or `timer.profile.tick`): every CPU, at each of the kernel's ticks,
/// sampled through the CPU clock as perf does.
fn timer_profile(c: &[PointComponent]) -> Result<ProbePointKind, PointError> {
    if let Some(arg) = c[1].argument.as_ref().map(|_| &c[1]) {
        return Err((arg.span, "timer.profile takes no argument".to_string()));
    }
    if let Some(extra) = c
        .get(2)
        .filter(|s| s.name != "tick" || s.argument.is_some())
    {
        return Err((
            extra.span,
            format!(
                "unknown probe point suffix '.{}' of timer.profile",
                extra.name
            ),
        ));
    }
    if let Some(extra) = c.get(3) {
        return Err((
            extra.span,
            format!("unknown probe point suffix '.{}'", extra.name),
        ));
    }
    Ok(ProbePointKind::Sample {
        perf_type: PERF_TYPE_SOFTWARE,
        config: PERF_COUNT_SW_CPU_CLOCK,
        every: SampleEvery::Tick,
    })
}

/// perf's `PERF_TYPE_SOFTWARE` and its `PERF_COUNT_SW_CPU_CLOCK`.
const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
/// SystemTap's period for a perf point without `.sample` or `.hz`.
const DEFAULT_SAMPLE_PERIOD: u64 = 1_000_000;

/// `perf.type(T).config(C)`, then `.sample(N)` (every N events) or `.hz(F)` (F times a
/// second): a perf event sampled on every CPU.
fn perf(c: &[PointComponent]) -> Result<ProbePointKind, PointError> {
    let number = |index: usize, name: &str| -> Result<u64, PointError> {
        let comp = c
            .get(index)
            .filter(|comp| comp.name == name)
            .ok_or_else(|| {
                let at = c.get(index).unwrap_or(&c[c.len() - 1]);
                (
                    at.span,
                    format!("a perf probe point is perf.type(N).config(M): expected .{name}(N)"),
                )
            })?;
        match comp.argument {
            Some(PointArg::Number(n)) if n >= 0 => Ok(n as u64),
            _ => Err((
                comp.span,
                format!("perf.{name} needs a number, e.g. {name}(0)"),
            )),
        }
    };
    if c[0].argument.is_some() {
        return Err((
            c[0].span,
            "perf takes no argument; write perf.type(N)".into(),
        ));
    }
    let perf_type = u32::try_from(number(1, "type")?)
        .map_err(|_| (c[1].span, "perf.type is a 32-bit number".to_string()))?;
    let config = number(2, "config")?;
    let every = match c.get(3) {
        None => SampleEvery::Events(DEFAULT_SAMPLE_PERIOD),
        Some(comp) if comp.name == "sample" => SampleEvery::Events(number(3, "sample")?.max(1)),
        Some(comp) if comp.name == "hz" => SampleEvery::PerSecond(number(3, "hz")?.max(1)),
        Some(comp) if comp.name == "process" || comp.name == "counter" => {
            return Err((
                comp.span,
                format!(
                    "not supported yet: perf .{}: rstap samples perf events on every CPU",
                    comp.name
                ),
            ))
        }
        Some(comp) => {
            return Err((
                comp.span,
                format!(
                    "unknown probe point suffix '.{}'; expected .sample(N) or .hz(N)",
                    comp.name
                ),
            ))
        }
    };
    if let Some(extra) = c.get(4) {
        return Err((
            extra.span,
            format!("unknown probe point suffix '.{}'", extra.name),
        ));
    }
    Ok(ProbePointKind::Sample {
        perf_type,
        config,
        every,
    })
}

fn kernel_function(c: &[PointComponent]) -> Result<ProbePointKind, PointError> {
    let function = &c[1];
    let Some(PointArg::Str(pattern)) = &function.argument else {
        return Err((
            function.span,
            "kernel.function needs a pattern in quotes, e.g. function(\"sock_*\")".to_string(),
        ));
    };
    let suffix = |name: &str| {
        c.get(2)
            .is_some_and(|s| s.name == name && s.argument.is_none())
    };
    let variant = match c.get(2) {
        None => FunctionVariant::Entry,
        Some(_) if suffix("call") => FunctionVariant::Call,
        Some(_) if suffix("return") => FunctionVariant::Return,
        Some(_) if suffix("inline") => FunctionVariant::Inline,
        Some(other) => {
            return Err((
                other.span,
                format!(
                    "unknown probe point suffix '.{}'; expected .call, .return or .inline",
                    other.name
                ),
            ))
        }
    };
    if let Some(extra) = c.get(3) {
        return Err((
            extra.span,
            format!("unknown probe point suffix '.{}'", extra.name),
        ));
    }
    let Ok(pattern) = std::str::from_utf8(&pattern.value) else {
        return Err((
            function.span,
            "a probe point pattern must be valid UTF-8".into(),
        ));
    };
    let (name, file) = split_pattern(pattern, function.span)?;
    Ok(ProbePointKind::KernelFunction {
        function: name,
        file,
        variant,
    })
}

/// `kprobe.function("vfs_read")[.return]`: SystemTap's probe on a function without its
/// debug information, which rstap's function probes never need (parameters come from BTF):
/// the same as `kernel.function` on a name.
fn kprobe_function(c: &[PointComponent]) -> Result<ProbePointKind, PointError> {
    if let Some(Some(PointArg::Str(pattern))) = c.get(1).map(|f| &f.argument) {
        if pattern.value.contains(&b'@') {
            return Err((
                c[1].span,
                "kprobe.function takes a function's name, without @FILE".into(),
            ));
        }
    }
    if let Some(suffix) = c.get(2).filter(|s| s.name != "return") {
        return Err((
            suffix.span,
            format!(
                "unknown probe point suffix '.{}'; expected .return",
                suffix.name
            ),
        ));
    }
    kernel_function(c)
}

/// `kernel.trace("sched:sched_switch")`, `kernel.trace("sock_*")`: globs over the
/// tracepoint's system (optional) and event.
fn kernel_trace(c: &[PointComponent]) -> Result<ProbePointKind, PointError> {
    let trace = &c[1];
    let Some(PointArg::Str(pattern)) = &trace.argument else {
        return Err((
            trace.span,
            "kernel.trace needs a tracepoint in quotes, e.g. trace(\"sched:sched_switch\")"
                .to_string(),
        ));
    };
    if let Some(extra) = c.get(2) {
        return Err((
            extra.span,
            format!(
                "unknown probe point suffix '.{}': a tracepoint has no suffixes",
                extra.name
            ),
        ));
    }
    let Ok(pattern) = std::str::from_utf8(&pattern.value) else {
        return Err((
            trace.span,
            "a probe point pattern must be valid UTF-8".into(),
        ));
    };
    let (system, event) = match pattern.split_once(':') {
        Some((system, event)) => (Some(system), event),
        None => (None, pattern),
    };
    if event.is_empty() || system.is_some_and(str::is_empty) {
        return Err((
            trace.span,
            format!("\"{pattern}\" is not a tracepoint: write EVENT or SYSTEM:EVENT"),
        ));
    }
    for glob in system.into_iter().chain([event]) {
        Glob::new(glob).map_err(|err| (trace.span, err.to_string()))?;
    }
    Ok(ProbePointKind::Tracepoint {
        system: system.map(str::to_string),
        event: event.to_string(),
    })
}

/// Splits `FUNC@FILE` into its globs.
fn split_pattern(pattern: &str, span: Span) -> Result<(String, Option<String>), PointError> {
    let (function, file) = match pattern.split_once('@') {
        Some((function, file)) => (function, Some(file)),
        None => (pattern, None),
    };
    if function.is_empty() {
        return Err((span, "the function pattern before '@' is empty".into()));
    }
    match file {
        Some("") => Err((span, "the file pattern after '@' is empty".into())),
        Some(file) if file.contains(':') => Err((
            span,
            "line numbers in probe points ('@FILE:LINE') are not supported".into(),
        )),
        _ => Ok((function.to_string(), file.map(str::to_string))),
    }
}
