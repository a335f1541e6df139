#!/bin/sh
# ftrace's function_graph tracer on a list of functions, for the benchmark (busybox sh).
#
#   ftrace-graph.sh setup FUNCS   filter to FUNCS (one name a line), show each task's name
#                                 and pid, follow forks; the tracer itself stays off
#   ftrace-graph.sh live FUNCS    setup, switch function_graph on for every task, and
#                                 become `cat trace_pipe`
#   ftrace-graph.sh lost          events the ring buffer dropped (overruns, all CPUs)
#   ftrace-graph.sh reset         tracer off, filters and buffer cleared
set -eu
tracing=/sys/kernel/tracing

reset() {
    echo 0 >"$tracing/tracing_on"
    echo nop >"$tracing/current_tracer"
    : >"$tracing/set_ftrace_filter"
    : >"$tracing/set_ftrace_pid"
    echo 1 >"$tracing/tracing_on"
}

# Writes the functions' line numbers in available_filter_functions to set_ftrace_filter:
# the kernel then needs no name comparisons, which take seconds under TCG.
setup() {
    reset
    awk 'NR == FNR { wanted[$1] = 1; next } $1 in wanted { print FNR }' \
        "$1" "$tracing/available_filter_functions" | tr '\n' ' ' >"$tracing/set_ftrace_filter"
    echo 1 >"$tracing/options/function-fork"
    echo 1 >"$tracing/options/funcgraph-proc"
}

case ${1:-} in
setup) setup "$2" ;;
live)
    setup "$2"
    echo function_graph >"$tracing/current_tracer"
    exec cat "$tracing/trace_pipe"
    ;;
lost) cat "$tracing"/per_cpu/cpu*/stats | awk '/^overrun:/ { n += $2 } END { print n + 0 }' ;;
reset) reset ;;
*)
    echo "usage: $0 setup FUNCS | live FUNCS | lost | reset" >&2
    exit 2
    ;;
esac
