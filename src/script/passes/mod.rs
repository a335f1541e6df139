//! The front end's passes over a parsed script, run in a fixed order, each leaving its
//! result for the next: [`aliases`] expands probes on aliases and joins the tapsets the
//! script uses; [`procfs`] makes procfs probes' `$value` a local; [`infer`] declares the globals and infers every variable's and
//! array's types; [`display`] finds the globals to print at exit; [`lower`] checks the
//! script against the types and produces the [`ir`](super::ir) the runtime runs.

mod aliases;
mod display;
mod infer;
mod lower;
mod procfs;

pub use lower::MAX_PRINT_ARGS;
pub(crate) use procfs::WRITTEN as PROCFS_WRITTEN;

use super::ast;
use super::ir::CheckedScript;
use super::source::{ScriptError, SourceMap};
use super::ScriptInput;

/// `global_values` are `-G NAME=VALUE` settings, overriding the script's initial values.
pub(super) fn check(
    source: &SourceMap,
    script: ast::Script,
    input: &ScriptInput,
) -> Result<CheckedScript, ScriptError> {
    let (global_values, limits) = (&input.globals, &input.limits);
    let mut script = aliases::expand(source, script, !input.listing)?;
    procfs::bind_values(&mut script);
    let script = &script;
    let symbols = infer::infer(source, script)?;
    let shown_at_exit = display::unread_globals(source, script);
    let mut checked = lower::lower(source, script, &symbols, &shown_at_exit, limits)?;
    lower::set_globals(&mut checked, script, &symbols, global_values, limits)?;
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::ir::{FunctionVariant, ProbePointKind};
    use crate::script::{compile, SourceFile};

    fn compile_text(text: &str) -> Result<CheckedScript, ScriptError> {
        compile(&SourceFile::new("t.stp", text))
    }

    fn error_of(text: &str) -> String {
        compile_text(text).unwrap_err().to_string()
    }

    #[test]
    fn seed_probe_points() {
        let script = compile_text(include_str!("../../../tests/golden/socket-trace.stp")).unwrap();
        let points: Vec<_> = script.probes.iter().map(|p| p.points[0].clone()).collect();
        assert_eq!(
            points[0].kind,
            ProbePointKind::KernelFunction {
                function: "*".into(),
                file: Some("net/socket.c".into()),
                variant: FunctionVariant::Call
            }
        );
        assert_eq!(points[1].text, "kernel.function(\"*@net/socket.c\").return");
        assert_eq!(script.source().slice(points[1].span), points[1].text);
    }

    #[test]
    fn other_probe_points() {
        let script = compile_text(
            "probe begin, end, kernel.function(\"sock_*\"), kernel.function(\"f\").inline {}",
        )
        .unwrap();
        let kinds: Vec<_> = script.probes[0]
            .points
            .iter()
            .map(|p| p.kind.clone())
            .collect();
        assert_eq!(kinds[0], ProbePointKind::Begin { priority: 0 });
        assert_eq!(kinds[1], ProbePointKind::End { priority: 0 });
        assert_eq!(
            kinds[2],
            ProbePointKind::KernelFunction {
                function: "sock_*".into(),
                file: None,
                variant: FunctionVariant::Entry
            }
        );
        assert!(matches!(
            kinds[3],
            ProbePointKind::KernelFunction {
                variant: FunctionVariant::Inline,
                ..
            }
        ));
    }

    #[test]
    fn tracepoints_take_an_optional_system() {
        let script = compile_text(
            "probe kernel.trace(\"sched:sched_*\"), kernel.trace(\"inet_sock_set_state\") {}",
        )
        .unwrap();
        let kinds: Vec<_> = script.probes[0].points.iter().map(|p| &p.kind).collect();
        assert_eq!(
            kinds,
            [
                &ProbePointKind::Tracepoint {
                    system: Some("sched".into()),
                    event: "sched_*".into()
                },
                &ProbePointKind::Tracepoint {
                    system: None,
                    event: "inet_sock_set_state".into()
                },
            ]
        );
        assert!(script.has_tracepoints());
        assert!(error_of("probe kernel.trace {}").contains("needs a tracepoint in quotes"));
        assert!(error_of("probe kernel.trace(\":x\") {}").contains("is not a tracepoint"));
    }

    #[test]
    fn sampling_points_name_their_perf_event_and_rate() {
        use crate::script::ir::SampleEvery;
        let script = compile_text(
            "probe timer.profile, timer.profile.tick, perf.type(1).config(0).sample(100000), \
             perf.type(0).config(1).hz(99), perf.type(0).config(0) {}",
        )
        .unwrap();
        let kinds: Vec<_> = script.probes[0].points.iter().map(|p| &p.kind).collect();
        let sample = |perf_type, config, every| ProbePointKind::Sample {
            perf_type,
            config,
            every,
        };
        assert_eq!(
            kinds,
            [
                &sample(1, 0, SampleEvery::Tick),
                &sample(1, 0, SampleEvery::Tick),
                &sample(1, 0, SampleEvery::Events(100_000)),
                &sample(0, 1, SampleEvery::PerSecond(99)),
                &sample(0, 0, SampleEvery::Events(1_000_000)),
            ]
        );
        assert!(error_of("probe perf.type(1) {}").contains("expected .config(N)"));
        assert!(error_of("probe perf.type(1).config(0).process(\"x\") {}")
            .contains("not supported yet: perf .process"));
        assert!(error_of("probe timer.profile.tock {}").contains("suffix '.tock'"));
        assert!(error_of("probe timer.profile { print($x) }").contains("in a sampling probe"));
    }

    #[test]
    fn bad_probe_points_are_errors_with_spans() {
        assert!(error_of("probe syscall.open(\"x\") {}")
            .starts_with("t.stp:1:7: error: unknown probe point 'syscall.open(\"x\")'"));
        assert!(error_of("probe kernel.function(\"x\").entry {}")
            .contains("unknown probe point suffix '.entry'"));
        assert!(error_of("probe kernel.function {}").contains("needs a pattern"));
        assert!(error_of("probe kernel.function(\"@a.c\") {}")
            .contains("function pattern before '@' is empty"));
        assert!(error_of("probe kernel.function(\"f@a.c:12\") {}").contains("line numbers"));
    }

    #[test]
    fn unknown_functions_and_wrong_arity() {
        assert!(error_of("probe begin { foo() }")
            .starts_with("t.stp:1:15: error: unknown function 'foo'"));
        assert!(error_of("probe begin { x = tid(1) }").contains("tid() takes 0 arguments, given 1"));
        assert!(error_of("probe begin { x = thread_indent() }")
            .contains("thread_indent() takes 1 argument, given 0"));
        assert!(error_of("probe begin { exit(1) }").contains("exit() takes 0 arguments"));
        assert!(error_of("probe begin { x = printf(\"a\") }").contains("has no value"));
        assert!(error_of("probe begin { print() }").contains("at least one argument"));
    }

    #[test]
    fn type_errors() {
        assert!(
            error_of("probe begin { x = 1 + \"a\" }").contains("expected a long, found a string")
        );
        assert!(
            error_of("probe begin { x = \"a\" . 1 }").contains("expected a string, found a long")
        );
        assert!(error_of("probe begin { x = 1; x = \"s\" }")
            .contains("expected a long, found a string"));
        assert!(error_of("probe begin { s = \"a\"; s += 1 }")
            .contains("'+=' cannot be applied to 's', a string"));
        assert!(error_of("probe begin { if (execname()) next }").contains("expected a long"));
        assert!(error_of("probe begin { print(y) }").contains("cannot tell the type of 'y'"));
        assert!(
            error_of("probe begin { x = 1 < \"a\" }").contains("expected a long, found a string")
        );
    }

    #[test]
    fn printf_formats_are_checked() {
        assert!(
            error_of("probe begin { printf(\"%d %s\", 1) }").contains("wants 2 arguments, given 1")
        );
        assert!(error_of("probe begin { printf(\"%d\", \"x\") }")
            .contains("t.stp:1:28: error: the format wants a long here"));
        assert!(error_of("probe begin { printf(\"%s\", pid()) }")
            .contains("the format wants a string here"));
        assert!(error_of("probe begin { printf(\"%y\", 1) }")
            .contains("invalid or missing conversion specifier"));
        assert!(error_of("probe begin { printf(\"%5\") }").contains("ends inside a conversion"));
        assert!(error_of("probe begin { f = \"%d\"; printf(f, 1) }")
            .contains("must be a literal string"));
        assert!(
            error_of("probe begin { printf(\"%d\", nope()) }").contains("unknown function 'nope'")
        );
        compile_text(
            "probe begin { printf(\"%*d %-*s %c %p %%\\n\", 4, 1, 2, \"x\", 65, addr()) }",
        )
        .unwrap();
    }

    #[test]
    fn types_flow_from_later_assignments_and_other_probes() {
        let script = compile_text(
            "global total, name\nprobe end { printf(\"%d %s\\n\", total, name) }\nprobe begin { total += 2; name = execname(); late = 1; if (late) x = y; y = 3 }",
        )
        .unwrap();
        assert_eq!(script.globals.ints, vec![0]);
        assert_eq!(script.globals.strs, vec![Vec::<u8>::new()]);
        assert_eq!(script.probes[1].int_locals, 3);
    }

    #[test]
    fn global_initialisers_and_duplicates() {
        let script = compile_text("global a = -5, b = \"hi\\0there\"").unwrap();
        assert_eq!(script.globals.ints, vec![-5]);
        assert_eq!(script.globals.strs, vec![b"hi".to_vec()]);
        assert!(error_of("global a, a").contains("declared twice"));
    }

    #[test]
    fn arrays_aggregates_and_functions_are_checked() {
        for (text, message) in [
            (
                "global a; probe begin { a[1] = 1; a[1, 2] = 3 }",
                "array 'a' has 1 key elsewhere, 2 here",
            ),
            ("probe begin { b[1] = 1 }", "array 'b' is not declared"),
            (
                "global a; probe begin { a[1] = 1; x = a }",
                "'a' is an array",
            ),
            (
                "global s; probe begin { s <<< 1; x = s + 1 }",
                "read with @count",
            ),
            (
                "global s; probe begin { s <<< 1; s = 2 }",
                "takes values with '<<<'",
            ),
            (
                "global n; probe begin { n = 1; n <<< 2 }",
                "'<<<' adds to a statistics aggregate",
            ),
            (
                "probe begin { x = @count(1) }",
                "expected a variable or an array element",
            ),
            (
                "global s; probe begin { s <<< 1; printf(\"%s\", @hist_log(s)) }",
                "printed with print or println",
            ),
            (
                "global s; probe begin { s <<< 1; print(@hist_linear(s, 0, 10, 0)) }",
                "step must be positive",
            ),
            (
                "global s; probe begin { s <<< 1; print(@hist_linear(s, 0, 1500, 2)) }",
                "must be between 1 and 126",
            ),
            (
                "function f(a) { return a } probe begin { f(1, 2) }",
                "f() takes 1 argument, given 2",
            ),
            (
                "function g() { } probe begin { x = g() }",
                "g() returns no value",
            ),
            (
                "probe begin { return 1 }",
                "cannot 'return' outside a function",
            ),
            (
                "function f() { } function f() { }",
                "function 'f' is defined twice",
            ),
            (
                "global a; probe begin { a[1] = 1; foreach (k in a) delete a }",
                "modified during 'foreach'",
            ),
            (
                "global a; probe begin { a[\"x\"] = 1; foreach (v = k in a) x = v . \"s\" }",
                "expected a string",
            ),
            (
                "probe begin { x++; x .= \"s\" }",
                "cannot be applied to 'x', a long",
            ),
            ("probe timer.ms(0) { }", "needs a positive number"),
            (
                "probe timer.s(1).randomize(2) { }",
                "less than its interval",
            ),
        ] {
            let error = error_of(text);
            assert!(error.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn too_many_print_arguments() {
        let args = ", 1".repeat(MAX_PRINT_ARGS + 1);
        let format = "%d".repeat(MAX_PRINT_ARGS + 1);
        assert!(
            error_of(&format!("probe begin {{ printf(\"{format}\"{args}) }}"))
                .contains("too many arguments")
        );
    }
}
