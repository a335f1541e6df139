//! One run of rstap, from the command line to the exit status: compile the script,
//! resolve its probe points, attach, run the event loop, report.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libbpf_rs::RingBufferBuilder;

use crate::cli::Cli;
use crate::kernel::memory::{KernelMemory, LateReader};
use crate::kernel::{
    libbpf_log, KernelProbes, ProbeConfig, ProbeTarget, ProgramStorage, SampleTarget,
    TracepointAttach, TracepointTarget,
};
use crate::output::{Sink, StapText};
use crate::process::{self, HeldCommand};
use crate::resolve::code::KernelCode;
use crate::resolve::denylist::DenyList;
use crate::resolve::dwarf::Parameter;
use crate::resolve::index_cache::default_cache_dir;
use crate::resolve::kallsyms::KernelSymbols;
use crate::resolve::plan::{
    self, KernelFunctions, PlanError, PlannedTracepoint, ProbePlan, SamplePeriod, SessionProbe,
};
use crate::resolve::source::{DebugInfoOptions, KernelSources};
use crate::resolve::symbol_cache;
use crate::resolve::targets;
use crate::resolve::tracepoints::{KernelTracepoints, TracepointAccess};
use crate::runtime::dispatch::{Dispatcher, SessionContext, WallClock};
use crate::runtime::interp::{Flow, Interpreter, RuntimeError};
use crate::runtime::procfs::{ProcfsFiles, PROCFS_ROOT};
use crate::runtime::timers::Timers;
use crate::script::{self, CheckedScript, SourceFile, SourceMap, Ty};
use crate::types::{self, KernelTypes};

const KALLSYMS: &str = "/proc/kallsyms";
/// How long to wait for events before looking again: until the next timer is due, and
/// never longer than [`POLL_INTERVAL`].
fn wait_for(timers: &Timers) -> Duration {
    timers.next_deadline().map_or(POLL_INTERVAL, |next| {
        next.saturating_duration_since(Instant::now())
            .min(POLL_INTERVAL)
    })
}

/// Runs the timer probes that are due; returns how the session ends if one ends it.
fn run_due_timers(
    timers: &mut Timers,
    target: i64,
    symbols: &KernelSymbols,
    mut run: impl FnMut(usize, &SessionContext) -> Result<Flow, RuntimeError>,
) -> Option<LoopEnd> {
    for (probe, point) in timers.due(Instant::now()) {
        if let Some(end) = LoopEnd::after(run(probe, &SessionContext::new(&point, target, symbols)))
        {
            return Some(end);
        }
    }
    None
}

/// Serves the procfs files' waiting readers and writers; returns how the session ends if
/// one of their probes ends it.
fn serve_procfs(
    files: &mut Option<ProcfsFiles>,
    target: i64,
    symbols: &KernelSymbols,
    interpreter: &mut Interpreter,
    out: &mut dyn Sink,
) -> Option<LoopEnd> {
    let files = files.as_mut()?;
    let served = files.serve(|hit| {
        let context = SessionContext::new(hit.point, target, symbols).with_written(hit.written);
        let flow = interpreter.run_probe(hit.probe, &context, out)?;
        let value = hit
            .value
            .map_or_else(Vec::new, |slot| interpreter.str_local(slot).to_vec());
        Ok((flow, value))
    });
    for warning in files.take_warnings() {
        out.warning(&warning);
    }
    LoopEnd::after(served)
}

/// How long one wait for events lasts; stop conditions are checked this often.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Runs rstap as the command line asks and returns the process exit status.
pub fn run(cli: &Cli) -> Result<i32> {
    libbpf_log::install(cli.verbose >= 2);
    let mut source = SourceMap::of_script(load_source(cli)?);
    crate::tapset::add_library(&mut source, &cli.include_dirs)?;
    let input = cli.script_input().map_err(anyhow::Error::msg)?;
    if cli.stop_after() == Some(1) {
        script::parse(&source, &input)?;
        return Ok(0);
    }
    // The aliases of this kernel's system calls come from its tracepoints, read only for
    // a script that may name them, itself or through its arguments (`probe $1`).
    let names_syscalls = source
        .files()
        .filter(|(id, _)| !source.is_library(*id))
        .map(|(_, file)| file.text())
        .chain(input.args.iter().map(String::as_str))
        .any(|text| text.contains("syscall"));
    if names_syscalls {
        let mut tracepoints = KernelTracepoints::new(None);
        source.add_generated(crate::tapset::syscalls::this_kernel(&mut tracepoints)?);
    }
    let script = script::compile_with(&source, &input)?;
    if script.probes.is_empty() {
        bail!(
            "{}: no probes: a script needs at least one probe",
            source.script().name()
        );
    }
    // Before the kernel's symbols: without privileges their addresses read as zeros, and
    // the user would be told about a symptom instead of the cause.
    if cli.listed_point().is_none() && cli.stop_after().is_none() {
        crate::privileges::check()?;
    }
    // Until the trace starts rstap has only notes to give; the output (the -o file, which
    // -p and -l must not create) is opened for the trace.
    let mut notes = StapText::new(Box::new(io::sink()), Box::new(io::stderr()));
    let tables = symbol_cache::load(Path::new(KALLSYMS), default_cache_dir().as_deref())?;
    if cli.verbose > 0 {
        notes.note(if tables.cached {
            "kernel symbols from the cache for this kernel build"
        } else {
            "kernel symbols read from the kernel"
        });
    }
    let (symbols, traceable) = (tables.symbols, tables.traceable);
    let deny = DenyList::default();
    let kernel = KernelFunctions {
        symbols: &symbols,
        traceable: traceable.as_ref(),
        deny: &deny,
        init_text: symbols.init_text(),
    };
    let debug_info = DebugInfoOptions {
        vmlinux: cli.vmlinux.clone(),
    };
    let mut sources = KernelSources::new(debug_info, &symbols);
    let reads_kernel_data = !script.late_reads.is_empty()
        || script.probes.iter().any(|probe| {
            !(probe.targets.is_empty()
                && probe.entry_targets.is_empty()
                && probe.defined.is_empty())
        });
    let listing = cli.listed_point().is_some();
    // Tracepoints need the kernel's BTF to be reached as raw tracepoints; without it they
    // are read as trace records. Target variables cannot do without it.
    let types = if reads_kernel_data || listing || script.has_tracepoints() {
        match KernelTypes::load_vmlinux() {
            Ok(types) => Some(types),
            Err(err) if reads_kernel_data => return Err(err.into()),
            Err(_) => None,
        }
    } else {
        None
    };
    let mut tracepoints = KernelTracepoints::new(types.as_ref());
    let mut plan =
        plan::plan(&script, &source, &kernel, &mut sources, &mut tracepoints).map_err(|err| {
            match err {
                PlanError::Script(err) => anyhow::Error::new(err),
                PlanError::Source(err) => anyhow::Error::new(err),
                PlanError::Tracepoint(err) => anyhow::Error::new(err),
            }
        })?;
    // Unmounts tracefs, if rstap mounted it to find the tracepoints.
    drop(tracepoints);
    report_plan(cli, &plan, traceable.is_some(), &mut notes);
    if listing {
        let with_parameters = cli.list_with_variables.is_some();
        if let Some(types) = types.as_ref().filter(|_| with_parameters) {
            parameters_from_btf(&mut plan, types);
        }
        return Ok(list(&script, &plan, types.as_ref(), with_parameters));
    }
    if let Some(types) = types.as_ref().filter(|_| reads_kernel_data) {
        plan.fetches = targets::compile(&script, &mut plan, types)?;
    }
    plan.late_reads = targets::compile_late(&script, types.as_ref())?;
    if cli.stop_after().is_some() {
        return Ok(0);
    }
    Tracer::new(cli, &script, &plan, &symbols, open_sink(cli)?)?.run()
}

fn load_source(cli: &Cli) -> Result<SourceFile> {
    if let Some(point) = cli.listed_point() {
        return Ok(SourceFile::new(
            "<probe point>",
            format!("probe {point} {{}}"),
        ));
    }
    if let Some(text) = &cli.script_text {
        return Ok(SourceFile::new("<input>", text.clone()));
    }
    let Some(path) = cli.script_file().map(Path::new) else {
        bail!("no script given: name a script file, or use -e SCRIPT");
    };
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read script {}", path.display()))?;
    let name = path.display().to_string();
    match String::from_utf8(bytes) {
        Ok(text) => Ok(SourceFile::new(name, text)),
        Err(err) => {
            // Shown with the bad byte replaced, which leaves everything before it as it is.
            let at = err.utf8_error().valid_up_to();
            let byte = err.as_bytes()[at];
            let shown = SourceMap::of_script(SourceFile::new(
                name,
                String::from_utf8_lossy(err.as_bytes()),
            ));
            let span = script::Span::new(
                script::FileId::default(),
                at,
                at + char::REPLACEMENT_CHARACTER.len_utf8(),
            );
            Err(script::ScriptError::at(
                &shown,
                span,
                format!("byte {byte:#04x} is not UTF-8: a script must be UTF-8 text"),
            )
            .into())
        }
    }
}

/// Fills in, from the kernel's BTF, the parameters of the functions debug info did not
/// describe (those found by name), for `-L`.
fn parameters_from_btf(plan: &mut ProbePlan, types: &KernelTypes) {
    for function in plan
        .functions
        .iter_mut()
        .filter(|f| f.parameters.is_empty())
    {
        let Ok(parameters) = types.parameters(&function.name) else {
            continue;
        };
        function.parameters = listed_parameters(types, parameters);
    }
}

/// Named parameters as `-L` lists them.
fn listed_parameters(types: &KernelTypes, parameters: Vec<types::Parameter>) -> Vec<Parameter> {
    parameters
        .into_iter()
        .filter(|parameter| !parameter.name.is_empty())
        .map(|parameter| Parameter {
            name: parameter.name,
            // SystemTap writes pointers as `struct sock*`.
            type_name: types.type_name(parameter.ty).replace(" *", "*"),
        })
        .collect()
}

/// A tracepoint's variables as `-L` lists them: its arguments, or its record's fields.
fn tracepoint_variables(
    tracepoint: &PlannedTracepoint,
    types: Option<&KernelTypes>,
) -> Vec<Parameter> {
    match &tracepoint.access {
        TracepointAccess::Raw(parameters) => types
            .map(|types| listed_parameters(types, parameters.clone()))
            .unwrap_or_default(),
        TracepointAccess::Record { fields, .. } => fields
            .iter()
            .map(|field| Parameter {
                name: field.name.clone(),
                type_name: field.c_type.replace(" *", "*"),
            })
            .collect(),
    }
}

/// Prints the resolved probe points, sorted and once each, with their parameters if
/// asked; succeeds only if any matched. A point on an alias is listed by the alias's
/// name, with the variables the alias gives.
fn list(
    script: &CheckedScript,
    plan: &ProbePlan,
    types: Option<&KernelTypes>,
    with_parameters: bool,
) -> i32 {
    let line = |probe: usize, point: &str, parameters: &[Parameter]| {
        let probe = &script.probes[probe];
        if let Some(expansion) = &probe.expansion {
            let mut line = expansion.name.clone();
            if with_parameters {
                for (name, ty) in &probe.alias_variables {
                    let ty = if *ty == Ty::Str { "string" } else { "long" };
                    line.push_str(&format!(" {name}:{ty}"));
                }
            }
            return line;
        }
        let mut line = point.to_string();
        if with_parameters {
            for parameter in parameters {
                line.push_str(&format!(" ${}:{}", parameter.name, parameter.type_name));
            }
        }
        line
    };
    let mut points: Vec<String> = plan
        .functions
        .iter()
        .flat_map(|function| {
            function
                .on_entry
                .iter()
                .chain(&function.on_return)
                .map(|h| line(h.probe, &h.probe_point, &function.parameters))
        })
        .collect();
    for sample in &plan.samples {
        points.extend(
            sample
                .handlers
                .iter()
                .map(|handler| handler.probe_point.clone()),
        );
    }
    // begin, end, error, timer and procfs probes, which read no kernel data.
    let session_probes = plan.begin.iter().chain(&plan.end).chain(&plan.error);
    let others = session_probes
        .map(|p| (p.probe, &p.point))
        .chain(plan.timers.iter().map(|t| (t.probe, &t.point)))
        .chain(plan.procfs.iter().map(|file| (file.probe, &file.point)));
    for (probe, point) in others {
        points.push(line(probe, point, &[]));
    }
    for tracepoint in &plan.tracepoints {
        let variables = if with_parameters {
            tracepoint_variables(tracepoint, types)
        } else {
            Vec::new()
        };
        points.extend(
            tracepoint
                .handlers
                .iter()
                .map(|h| line(h.probe, &h.probe_point, &variables)),
        );
    }
    points.sort_unstable();
    points.dedup();
    let mut stdout = io::stdout().lock();
    for point in &points {
        if writeln!(stdout, "{point}").is_err() {
            break;
        }
    }
    if points.is_empty() {
        1
    } else {
        0
    }
}

/// Whether a write failed because the reader of the output has gone away; other write
/// errors are errors.
fn output_closed(result: io::Result<()>) -> Result<bool> {
    match result {
        Ok(()) => Ok(false),
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(true),
        Err(err) => Err(err).context("cannot write the script's output"),
    }
}

/// The sink the run's output goes to: SystemTap's text, on stdout or in the `-o` file.
fn open_sink(cli: &Cli) -> Result<StapText> {
    let output: Box<dyn Write> = match &cli.output {
        Some(path) => Box::new(
            File::create(path)
                .with_context(|| format!("cannot open output file {}", path.display()))?,
        ),
        None => Box::new(io::stdout()),
    };
    Ok(StapText::new(output, Box::new(io::stderr())))
}

fn report_plan(cli: &Cli, plan: &ProbePlan, traceable_known: bool, sink: &mut dyn Sink) {
    if cli.verbose == 0 {
        return;
    }
    sink.note(&format!(
        "{} kernel functions to probe, {} matched but skipped; {} tracepoints",
        plan.functions.len(),
        plan.skipped.len(),
        plan.tracepoints.len()
    ));
    for sample in &plan.samples {
        let rate = match sample.period {
            SamplePeriod::Events(count) => format!("every {count} events"),
            SamplePeriod::PerSecond(hz) => format!("{hz} times a second"),
        };
        sink.note(&format!(
            "sampling perf event type {} config {} on every CPU, {rate}",
            sample.perf_type, sample.config
        ));
    }
    for tracepoint in &plan.tracepoints {
        let how = match tracepoint.access {
            TracepointAccess::Raw(_) => "a raw tracepoint, its arguments typed by BTF",
            TracepointAccess::Record { .. } => "its trace record, as tracefs describes it",
        };
        sink.note(&format!(
            "tracepoint {}: read through {how}",
            tracepoint.name
        ));
    }
    if !traceable_known {
        sink.note("cannot read ftrace's available_filter_functions; the kernel will refuse what it cannot patch");
    }
    for skipped in &plan.skipped {
        sink.note(&format!("skipped {}: {}", skipped.name, skipped.reason));
    }
}

/// Everything a trace needs once the probe points are resolved.
struct Tracer<'a> {
    cli: &'a Cli,
    script: &'a CheckedScript,
    plan: &'a ProbePlan,
    symbols: &'a KernelSymbols,
    output: StapText,
    command: Option<HeldCommand>,
    target_pid: Option<u32>,
    stop: Arc<AtomicBool>,
}

/// How the event loop ended.
enum LoopEnd {
    Stopped,
    ScriptExit,
    /// `abort()`: no end probes, no display of unread globals.
    ScriptAbort,
    CommandExited(i32),
    Failed(RuntimeError),
}

impl LoopEnd {
    /// How the session ends after a probe ran this way, if it ends.
    fn after(ran: Result<Flow, RuntimeError>) -> Option<LoopEnd> {
        match ran {
            Ok(Flow::Continue) => None,
            Ok(Flow::Exit) => Some(LoopEnd::ScriptExit),
            Ok(Flow::Abort) => Some(LoopEnd::ScriptAbort),
            Err(err) => Some(LoopEnd::Failed(err)),
        }
    }
}

impl<'a> Tracer<'a> {
    fn new(
        cli: &'a Cli,
        script: &'a CheckedScript,
        plan: &'a ProbePlan,
        symbols: &'a KernelSymbols,
        output: StapText,
    ) -> Result<Self> {
        if let Some(pid) = cli.pid {
            process::check_exists(pid)?;
        }
        let command = cli.command.as_deref().map(HeldCommand::spawn).transpose()?;
        let target_pid = command.as_ref().map(HeldCommand::pid).or(cli.pid);
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            // A second signal ends rstap at once, for a user who does not want to wait.
            signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))?;
            signal_hook::flag::register(signal, Arc::clone(&stop))?;
        }
        Ok(Tracer {
            cli,
            script,
            plan,
            symbols,
            output,
            command,
            target_pid,
            stop,
        })
    }

    fn run(mut self) -> Result<i32> {
        let ring_buffer_bytes = self
            .cli
            .bufsize
            .checked_mul(1024)
            .filter(|bytes| bytes.is_power_of_two() && *bytes >= 4096)
            .with_context(|| {
                format!(
                    "--bufsize {} KiB: the ring buffer must be a power of two of at least 4 KiB",
                    self.cli.bufsize
                )
            })?;
        let config = ProbeConfig {
            target_tgid: self.target_pid,
            rstap_tgid: std::process::id(),
            ring_buffer_bytes,
            fetches: self.plan.fetches.clone(),
        };
        let targets: Vec<ProbeTarget> = self
            .plan
            .functions
            .iter()
            .map(|function| ProbeTarget {
                name: function.name.clone(),
                address: function.address,
                name_is_unique: function.name_is_unique,
                entry: function.probes_entry(),
                ret: !function.on_return.is_empty(),
            })
            .collect();

        let mut interpreter = Interpreter::new(self.script);
        if !self.plan.late_reads.is_empty() {
            let reader = LateReader::new(KernelMemory::load()?, self.plan.late_reads.clone());
            interpreter.set_late_memory(Box::new(reader));
        }
        let target = i64::from(self.target_pid.unwrap_or(0));
        let started = Instant::now();
        let mut storage = ProgramStorage::default();
        let tracepoints: Vec<TracepointTarget> = self
            .plan
            .tracepoints
            .iter()
            .map(|tracepoint| TracepointTarget {
                display: tracepoint.name.to_string(),
                attach: match &tracepoint.access {
                    TracepointAccess::Raw(_) => {
                        TracepointAttach::Raw(tracepoint.name.event.clone())
                    }
                    TracepointAccess::Record { id, .. } => TracepointAttach::Record(*id),
                },
            })
            .collect();
        let samples: Vec<SampleTarget> = self
            .plan
            .samples
            .iter()
            .map(|sample| {
                let (period, frequency) = match sample.period {
                    SamplePeriod::Events(count) => (count, false),
                    SamplePeriod::PerSecond(hz) => (hz, true),
                };
                SampleTarget {
                    display: sample
                        .handlers
                        .first()
                        .map_or_else(String::new, |handler| handler.probe_point.clone()),
                    perf_type: sample.perf_type,
                    config: sample.config,
                    period,
                    frequency,
                }
            })
            .collect();
        let probes = if targets.is_empty() && tracepoints.is_empty() && samples.is_empty() {
            None
        } else {
            Some(KernelProbes::attach(
                &mut storage,
                &targets,
                (&tracepoints, &samples),
                &config,
                self.cli.attach.into(),
            )?)
        };
        if let Some(probes) = &probes {
            self.report_attach(probes, &targets, started.elapsed());
        }

        let module = self
            .cli
            .module
            .clone()
            .unwrap_or_else(|| format!("stap_{}", std::process::id()));
        let mut procfs = ProcfsFiles::create(
            Path::new(PROCFS_ROOT),
            &module,
            &self.plan.procfs,
            self.script.max_string_len,
        )?;
        if let Some(files) = &procfs {
            // SystemTap's are in /proc/systemtap/MODULE/, which only a kernel module can
            // make: say where they are instead.
            self.output.note(&format!(
                "the procfs probes' files are FIFOs in {}/",
                files.dir().display()
            ));
        }

        let mut end = self.run_session_probes(&mut interpreter, &self.plan.begin, target);
        if end.is_none() && self.flush_output()? {
            end = Some(LoopEnd::Stopped);
        }
        if end.is_none() {
            if let Some(command) = &mut self.command {
                command.release().context("cannot start the command")?;
            }
            let mut timers = Timers::new(&self.plan.timers, Instant::now());
            end = Some(match &probes {
                Some(probes) => {
                    self.event_loop(probes, &mut interpreter, (&mut timers, &mut procfs), target)?
                }
                None => {
                    self.wait_without_probes(&mut interpreter, (&mut timers, &mut procfs), target)?
                }
            });
        }
        let lost = probes.as_ref().map_or(0, KernelProbes::lost_events);
        let missed = probes.as_ref().map_or(0, KernelProbes::recursion_misses);
        if let Some(probes) = probes
            .as_ref()
            .filter(|_| missed > 0 && self.cli.verbose > 0)
        {
            self.report_misses(probes, &targets, missed);
        }
        let had_probes = probes.is_some();
        let detach_started = Instant::now();
        drop(probes);
        if had_probes && self.cli.verbose > 0 {
            let took = detach_started.elapsed().as_millis();
            self.output.note(&format!("detached in {took} ms"));
        }

        let mut end = end.unwrap_or(LoopEnd::Stopped);
        match end {
            LoopEnd::Failed(_) => {
                // SystemTap runs its error probes, and then stops: no end probes. What they
                // do cannot make the run end otherwise, so their own outcome is dropped.
                let _ = self.run_session_probes(&mut interpreter, &self.plan.error, target);
            }
            LoopEnd::ScriptAbort => {}
            _ => {
                if let Some(failure) =
                    self.run_session_probes(&mut interpreter, &self.plan.end, target)
                {
                    end = failure;
                }
            }
        }
        // After the end probes, unless one failed: SystemTap's display of unread globals.
        if !matches!(end, LoopEnd::Failed(_) | LoopEnd::ScriptAbort) {
            if let Err(err) = interpreter.show_unread_globals(&mut self.output) {
                end = LoopEnd::Failed(err);
            }
        }
        self.flush_output()?;
        if self.cli.verbose > 0 {
            let threads = interpreter.threads_held();
            self.output.note(&format!(
                "thread_indent state held for {threads} threads at exit"
            ));
            let unseen = interpreter.returns_without_entry();
            if unseen > 0 {
                self.output.note(&format!(
                    "{unseen} returns ran no .return probe that keeps values from the entry: \
                     their entry was not seen (rstap attached inside the call)"
                ));
            }
        }
        Ok(self.report_end(end, lost, missed))
    }

    /// Runs `begin` or `end` probes; returns how the session ends if one of them ends it.
    fn run_session_probes(
        &mut self,
        interpreter: &mut Interpreter,
        probes: &[SessionProbe],
        target: i64,
    ) -> Option<LoopEnd> {
        for probe in probes {
            let context = SessionContext::new(&probe.point, target, self.symbols);
            let ran = interpreter.run_probe(probe.probe, &context, &mut self.output);
            if let Some(end) = LoopEnd::after(ran) {
                return Some(end);
            }
        }
        None
    }

    fn event_loop(
        &mut self,
        probes: &KernelProbes<'_>,
        interpreter: &mut Interpreter,
        (timers, procfs): (&mut Timers, &mut Option<ProcfsFiles>),
        target: i64,
    ) -> Result<LoopEnd> {
        let code = KernelCode::read(self.symbols);
        let dispatcher = RefCell::new(Dispatcher::new(
            interpreter,
            self.plan,
            self.symbols,
            &code,
            WallClock::now(),
            target,
        ));
        let outcome: RefCell<Option<LoopEnd>> = RefCell::new(None);
        let output = RefCell::new(&mut self.output);
        let mut builder = RingBufferBuilder::new();
        builder.add(probes.events(), |record| {
            let result = dispatcher
                .borrow_mut()
                .dispatch(record, &mut **output.borrow_mut());
            match LoopEnd::after(result) {
                None => 0,
                end => {
                    outcome.replace(end);
                    -1
                }
            }
        })?;
        let ring = builder.build().context("cannot read the ring buffer")?;
        let deadline = self
            .cli
            .timeout
            .map(|seconds| Instant::now() + Duration::from_secs_f64(seconds.max(0.0)));

        loop {
            // Errors here are a signal interrupting the wait or a handler asking to stop;
            // both are looked at below. The programs wake this wait only when the buffer
            // fills (see event.bpf.h): what came in quietly is taken after the wait.
            let _ = ring.poll(wait_for(timers));
            if outcome.borrow().is_none() {
                let _ = ring.consume();
            }
            if outcome.borrow().is_none() {
                let mut dispatcher = dispatcher.borrow_mut();
                let ended = run_due_timers(timers, target, self.symbols, |probe, context| {
                    dispatcher
                        .interpreter()
                        .run_probe(probe, context, &mut **output.borrow_mut())
                })
                .or_else(|| {
                    serve_procfs(
                        procfs,
                        target,
                        self.symbols,
                        dispatcher.interpreter(),
                        &mut **output.borrow_mut(),
                    )
                });
                outcome.replace(ended);
            }
            if let Some(end) = outcome.borrow_mut().take() {
                return Ok(end);
            }
            if output_closed(output.borrow_mut().flush())? {
                return Ok(LoopEnd::Stopped);
            }
            let exited = match &mut self.command {
                Some(command) => command.try_wait().context("cannot wait for the command")?,
                None => None,
            };
            if let Some(status) = exited {
                // Its last events are already in the buffer: take them before stopping.
                let _ = ring.consume();
                return Ok(outcome
                    .borrow_mut()
                    .take()
                    .unwrap_or(LoopEnd::CommandExited(status)));
            }
            if self.stop.load(Ordering::Relaxed)
                || deadline.is_some_and(|deadline| Instant::now() >= deadline)
            {
                let _ = ring.consume();
                return Ok(outcome.borrow_mut().take().unwrap_or(LoopEnd::Stopped));
            }
        }
    }

    /// Writes out what the probes printed; true if the reader has gone away.
    fn flush_output(&mut self) -> Result<bool> {
        output_closed(self.output.flush())
    }

    /// A script with only begin, end, timer and procfs probes runs until stopped, like
    /// stap's.
    fn wait_without_probes(
        &mut self,
        interpreter: &mut Interpreter,
        (timers, procfs): (&mut Timers, &mut Option<ProcfsFiles>),
        target: i64,
    ) -> Result<LoopEnd> {
        let deadline = self
            .cli
            .timeout
            .map(|seconds| Instant::now() + Duration::from_secs_f64(seconds.max(0.0)));
        loop {
            if let Some(command) = &mut self.command {
                if let Some(status) = command.try_wait().context("cannot wait for the command")? {
                    return Ok(LoopEnd::CommandExited(status));
                }
            }
            if self.stop.load(Ordering::Relaxed)
                || deadline.is_some_and(|deadline| Instant::now() >= deadline)
            {
                return Ok(LoopEnd::Stopped);
            }
            std::thread::sleep(wait_for(timers));
            let output = &mut self.output;
            if let Some(end) = run_due_timers(timers, target, self.symbols, |probe, context| {
                interpreter.run_probe(probe, context, output)
            })
            .or_else(|| serve_procfs(procfs, target, self.symbols, interpreter, output))
            {
                return Ok(end);
            }
            if self.flush_output()? {
                return Ok(LoopEnd::Stopped);
            }
        }
    }

    /// With -v: the mechanisms that serve the functions and those refused before them,
    /// the counts, the time taken, and each function skipped and why. Without: only a
    /// warning if functions were skipped.
    fn report_attach(
        &mut self,
        probes: &KernelProbes<'_>,
        targets: &[ProbeTarget],
        elapsed: Duration,
    ) {
        let skipped = probes.skipped();
        let sink = &mut self.output;
        if self.cli.verbose > 0 {
            for refusal in probes.refusals() {
                sink.note(&format!(
                    "attach: {} refused: {}",
                    refusal.mechanism, refusal.reason
                ));
            }
            let mut by_mechanism = std::collections::BTreeMap::new();
            for index in 0..targets.len() {
                if let Some(mechanism) = probes.mechanism(index) {
                    *by_mechanism.entry(mechanism).or_insert(0) += 1;
                }
            }
            let counts: Vec<String> = by_mechanism
                .iter()
                .map(|(m, n)| format!("{m}: {n}"))
                .collect();
            let tracepoints = match self.plan.tracepoints.len() {
                0 => String::new(),
                count => format!(" and {count} tracepoints"),
            };
            sink.note(&format!(
                "attached {} functions ({}){tracepoints}, skipped {}, in {} ms",
                probes.attached_count(),
                counts.join(", "),
                skipped.len(),
                elapsed.as_millis()
            ));
            for skip in skipped {
                sink.note(&format!(
                    "could not probe {}: {}",
                    targets[skip.target].name, skip.reason
                ));
            }
        } else if !skipped.is_empty() {
            sink.warning(&format!(
                "{} of {} functions could not be probed (-v lists them and why)",
                skipped.len(),
                targets.len()
            ));
        }
    }

    /// With -v: where the `missed` hits were, as far as the kernel tells.
    fn report_misses(&mut self, probes: &KernelProbes<'_>, targets: &[ProbeTarget], missed: u64) {
        let by_target = probes.misses_by_target();
        let nesting = probes.nesting_drops();
        let sink = &mut self.output;
        if nesting > 0 {
            sink.note(&format!(
                "missed {nesting} hits that rstap's programs would have run inside \
                 themselves (nested deeper than a CPU's contexts)"
            ));
        }
        for (target, count) in &by_target {
            sink.note(&format!("missed {count} hits of {}", targets[*target].name));
        }
        let counted = nesting + by_target.iter().map(|(_, count)| count).sum::<u64>();
        let unattributed = missed.saturating_sub(counted);
        if unattributed > 0 {
            sink.note(&format!(
                "missed {unattributed} hits of functions served by one shared program \
                 (the kernel counts them per program, not per function)"
            ));
        }
    }

    /// Prints what went wrong or was lost, SystemTap style, and picks the exit status.
    fn report_end(&mut self, end: LoopEnd, lost: u64, missed: u64) -> i32 {
        let sink = &mut self.output;
        let mut status = 0;
        match end {
            // The reader went away (`rstap ... | head`): it asked for no more, as ^C would.
            LoopEnd::Failed(RuntimeError::Output(err))
                if err.kind() == io::ErrorKind::BrokenPipe => {}
            LoopEnd::Failed(err) => {
                sink.error(&err.to_string());
                sink.warning("Number of errors: 1, skipped probes: 0");
                status = 1;
            }
            LoopEnd::CommandExited(code) => status = code,
            LoopEnd::Stopped | LoopEnd::ScriptExit | LoopEnd::ScriptAbort => {}
        }
        // Like SystemTap's transport failures and reentrancy skips, these are warnings:
        // the run did what it was asked, and the exit status says how it ended.
        if lost > 0 {
            sink.warning(&format!(
                "{lost} events lost: the ring buffer was full (raise --bufsize)"
            ));
        }
        if missed > 0 {
            sink.warning(&format!(
                "{missed} probe hits missed: another BPF program was running on the same CPU"
            ));
        }
        status
    }
}
