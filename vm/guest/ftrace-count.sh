#!/bin/sh
# The test oracle that needs nothing of rstap: runs CMD under the kernel's ftrace function
# tracer, restricted to the functions named in FUNCS_FILE (one per line) and to CMD's own
# process and its children, and prints "FUNCTION COUNT" for each traced function, zeros
# included, sorted by name. CMD's output goes to stderr so stdout holds only the counts.
# Exits with CMD's status, or 3 if ftrace dropped events (the counts would be wrong).
# Runs in the guest (busybox sh), as root.
#
# By default a call counts when it happens on one of CMD's tasks, as a tracer filtering by
# pid sees it, including softirqs that run on top of the task. Whether a packet is handled
# in such a softirq or in ksoftirqd varies from run to run; --task-only counts only calls
# made in the task's own context, which repeat exactly for a deterministic CMD.
#
# --after-exec NAME counts only the calls of processes that exec a program named NAME, from
# the start of their first execve on (a shell that then becomes NAME counts from the shell's
# execve), their threads' included: when CMD is a tracer that forks a child, attaches, and
# only then lets it exec, the calls the tracer could have seen. (Before that, the child can
# take a timer's softirq while the tracer is still attaching; during the execve it can take
# one that the tracer sees.)
#
# usage: ftrace-count.sh [--task-only] [--after-exec NAME] FUNCS_FILE -- CMD [ARGS...]
set -eu

usage() {
    echo "usage: $0 [--task-only] [--after-exec NAME] FUNCS_FILE -- CMD [ARGS...]" >&2
    exit 2
}
task_only=0
after_exec=""
while [ $# -gt 0 ]; do
    case $1 in
    --task-only) task_only=1 && shift ;;
    --after-exec) [ $# -ge 2 ] || usage; after_exec=$2 && shift 2 ;;
    *) break ;;
    esac
done
if [ $# -lt 3 ] || [ "$2" != -- ]; then
    usage
fi
funcs_file=$1
shift 2
tracing=/sys/kernel/tracing
work=$(mktemp -d)

reset() {
    echo 0 >"$tracing/tracing_on"
    echo nop >"$tracing/current_tracer"
    : >"$tracing/set_ftrace_filter"
    : >"$tracing/set_ftrace_pid"
    echo 0 >"$tracing/events/sched/sched_process_exec/enable"
    echo 0 >"$tracing/events/syscalls/sys_enter_execve/enable" 2>/dev/null || true
    echo 0 >"$tracing/options/record-tgid"
}
reset

# Select functions by their line number in available_filter_functions: matching by name
# compares every name against every function, which takes seconds under TCG. Module
# functions are listed as "name [module]": the first field is the name.
awk -v notes=/dev/stderr '
    NR == FNR { wanted[$1] = 1; next }
    $1 in wanted && !($1 in seen) { seen[$1] = 1; print FNR, $1 }
    END {
        for (name in wanted)
            if (!(name in seen))
                print "ftrace-count: " name " is not in available_filter_functions: left out" >notes
    }
' "$funcs_file" "$tracing/available_filter_functions" >"$work/selected"
[ -s "$work/selected" ] || {
    echo "ftrace-count: none of the functions in $funcs_file can be traced" >&2
    exit 1
}
cut -d' ' -f1 "$work/selected" | tr '\n' ' ' >"$tracing/set_ftrace_filter"
cut -d' ' -f2 "$work/selected" | sort >"$work/traced"
cut -d' ' -f1 "$tracing/set_ftrace_filter" | sort >"$work/filter"
cmp -s "$work/traced" "$work/filter" || {
    echo "ftrace-count: set_ftrace_filter does not hold the selected functions" >&2
    exit 1
}

echo 1 >"$tracing/options/function-fork"
if [ -n "$after_exec" ]; then
    # Each line then names its thread group, and execs are in the trace between the calls.
    echo 1 >"$tracing/options/record-tgid"
    echo 1 >"$tracing/events/sched/sched_process_exec/enable"
    # Without syscall events, counting starts at the exec's end instead of its start.
    echo 1 >"$tracing/events/syscalls/sys_enter_execve/enable" 2>/dev/null || true
fi
echo 8192 >"$tracing/buffer_size_kb"
echo 1 >"$tracing/tracing_on"

# The child shell puts itself in set_ftrace_pid before it turns the tracer on, then becomes
# CMD, so tracing covers exactly CMD and what it forks.
status=0
sh -c 'echo $$ >"$0/set_ftrace_pid" && echo function >"$0/current_tracer" && exec "$@"' \
    "$tracing" "$@" 1>&2 || status=$?
echo 0 >"$tracing/tracing_on"

overruns=$(cat "$tracing"/per_cpu/cpu*/stats | awk '/^overrun:/ { n += $2 } END { print n + 0 }')

# A trace line is "COMM-PID [CPU] FLAGS TIMESTAMP: FUNCTION <-CALLER", with "(TGID)"
# after COMM-PID under record-tgid; the third flag is h, s, H, z or Z in hard or soft
# interrupt or NMI context, "." in the task's own. An exec is
# "COMM-PID (TGID) [CPU] FLAGS TIMESTAMP: sched_process_exec: filename=PATH pid=...",
# the start of an execve "...: sys_execve(filename: ...)".
# With --after-exec, a first pass over the trace finds the processes that exec NAME.
cp "$tracing/trace" "$work/events"
passes="$work/events"
[ -z "$after_exec" ] || passes="$work/events $work/events"
# $passes is one or two file names: split on purpose.
# shellcheck disable=SC2086
awk -v task_only=$task_only -v after_exec="$after_exec" '
    function tgid(    group) {
        if (!match($0, /\( *[0-9]+\)/)) return ""
        group = substr($0, RSTART + 1, RLENGTH - 2)
        sub(/^ */, "", group)
        return group
    }
    function exec_program(    i, program) {
        for (i = 1; i <= NF && $i !~ /^filename=/; i++) {}
        program = substr($i, length("filename=") + 1)
        sub(/.*\//, "", program)
        return program
    }
    after_exec != "" && FNR == NR {
        if (/sched_process_exec: filename=/ && exec_program() == after_exec) runs[tgid()] = 1
        next
    }
    after_exec != "" && (/sched_process_exec: filename=/ || /: sys_execve\(/) {
        if (tgid() in runs) started[tgid()] = 1
        next
    }
    /^#/ || NF < 2 || $NF !~ /^<-/ { next }
    after_exec != "" && !(tgid() in started) { next }
    task_only {
        for (i = 1; i < NF && $i !~ /^\[[0-9]+\]$/; i++) {}
        if (substr($(i + 1), 3, 1) != ".") next
    }
    { print $(NF - 1) }
' $passes |
    sort | uniq -c | awk '{ print $2, $1 }' >"$work/counts"
reset

awk 'NR == FNR { count[$1] = $2; next } { print $1, ($1 in count) ? count[$1] : 0 }' \
    "$work/counts" "$work/traced"
rm -rf "$work"

if [ "$overruns" -ne 0 ]; then
    echo "ftrace-count: the trace buffer overran ($overruns events lost): counts are incomplete" >&2
    exit 3
fi
exit "$status"
