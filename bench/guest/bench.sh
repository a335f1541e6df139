#!/bin/sh
# The benchmark's guest side (busybox sh, as root): in one boot, runs the socket workload
# untraced and under rstap, ftrace function_graph and bpftrace, REPEAT times each, then
# measures each tracer's time to its first live probe. Raw figures go to $RESULTS:
#   runs       CONFIG RUN WORKLOAD_SECONDS EVENTS LOST PEAK_RSS_KIB ATTACH_MS
#              (- where a figure does not apply)
#   startup    TRACER RUN FIRST_LIVE_SECONDS PEAK_RSS_KIB
#   functions  the functions traced; bpftrace-dropped: those bpftrace could not attach
#   logs/      every tracer's stderr, for when a figure looks wrong
# bench/report.sh turns them into the table. Settings come from /bench/config.
set -u
# shellcheck source=/dev/null
. /bench/config
export PATH="/bench:$PATH"
# bpftrace holds a descriptor per probe and more: busybox's default limit stops it.
# shellcheck disable=SC3045 # busybox sh has ulimit -n
ulimit -n 65536
work=/tmp/bench
logs=$RESULTS/logs
mkdir -p "$work" "$logs"
: >"$RESULTS/runs"
: >"$RESULTS/startup"
workload="socket-workload --rounds $ROUNDS"
stp=/bench/socket-trace-globs.stp

note() {
    read -r uptime _ </proc/uptime
    echo "bench: [$uptime] $*" >&2
    echo "[$uptime] $*" >>"$RESULTS/notes"
}

# Waits up to 10 s for a file that a process which has already exited writes last.
await_file() {
    tries=0
    while [ ! -s "$1" ] && [ $tries -lt 100 ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    [ -s "$1" ]
}

# The number in "WARNING: N events lost" (rstap) or "Lost N events" (bpftrace), summed.
lost_events() {
    cat "$@" 2>/dev/null | sed -n 's/.*WARNING: \([0-9]*\) events lost.*/\1/p; s/.*Lost \([0-9]*\) events.*/\1/p' |
        awk '{ n += $1 } END { print n + 0 }'
}

# rstap resolves the globs; the peers get exactly the functions it probes.
rstap -l 'kernel.function("__sys_*").call' >"$work/points" 2>>"$logs/functions"
rstap -l 'kernel.function("sock_*").call' >>"$work/points" 2>>"$logs/functions"
sed 's/^kernel\.function("\([^"@]*\).*/\1/' "$work/points" | sort -u >"$RESULTS/functions"
functions=$RESULTS/functions
note "$(wc -l <"$functions") functions traced"

# bpftrace refuses a whole script when one probe cannot attach; sock_i_uid returns a
# struct, which kretfunc cannot take. Functions dropped here are dropped on both sides, so
# indentation stays balanced; more are dropped below if bpftrace names them.
echo sock_i_uid >"$RESULTS/bpftrace-dropped"

# Writes a bpftrace script with the seed's per-thread indent (depth printed as a number,
# since bpftrace's printf has no variable width) for the functions not dropped; $1 is a
# predicate or empty.
write_bt() {
    grep -vxF -f "$RESULTS/bpftrace-dropped" "$functions" | awk -v pred="$1" '
        { names[n++] = $1 }
        function probes(kind,   i, s) {
            for (i = 0; i < n; i++) s = s (i ? ",\n" : "") kind ":vmlinux:" names[i]
            return s
        }
        END {
            print probes("kfunc") " " pred " {"
            print "  if (@depth[tid] == 0) { @start[tid] = nsecs; }"
            print "  printf(\"%6d %s(%d):%d -> %s\\n\", (nsecs - @start[tid]) / 1000, comm, tid, @depth[tid], probe);"
            print "  @depth[tid]++;"
            print "}"
            print probes("kretfunc") " " pred " {"
            print "  @depth[tid]--;"
            print "  printf(\"%6d %s(%d):%d <- %s\\n\", (nsecs - @start[tid]) / 1000, comm, tid, @depth[tid], probe);"
            print "}"
            print "END { clear(@depth); clear(@start); }"
        }'
}

# Time to first live probe, every process traced, markers made by tracer-bench.
first_live() {
    tracer=$1 run=$2
    shift 2
    watch=$work/$tracer.live
    rm -f "$watch"
    tracer-bench first-live --watch "$watch" --out "$work/live" --timeout-s 900 -- "$@" \
        2>"$logs/live-$tracer-$run" >/dev/null &&
        echo "$tracer $run $(cat "$work/live")" >>"$RESULTS/startup"
}

# bpftrace takes minutes to start under TCG, so its time to first live probe is measured
# once, and that run also finds what it can attach: it is retried without the functions
# its errors name (at most 5 tries).
bpftrace_usable=no
if command -v bpftrace >/dev/null; then
    for try in 1 2 3 4 5; do
        note "bpftrace: time to first live probe, try $try"
        write_bt "" >"$work/all.bt"
        if first_live bpftrace 1 bpftrace -o "$work/bpftrace.live" "$work/all.bt"; then
            bpftrace_usable=yes
            break
        fi
        cp "$logs/live-bpftrace-1" "$logs/bpftrace-try-$try"
        failing=$(grep -o 'k\(ret\)\{0,1\}func:vmlinux:[A-Za-z0-9_.]*' "$logs/live-bpftrace-1" |
            sed 's/.*://' | sort -u)
        [ -n "$failing" ] || break
        echo "$failing" >>"$RESULTS/bpftrace-dropped"
    done
fi
note "bpftrace usable: $bpftrace_usable; dropped: $(tr '\n' ' ' <"$RESULTS/bpftrace-dropped")"

# One run of CONFIG; appends its line to runs.
run_config() {
    config=$1 run=$2
    out=$work/$config.out
    lifetime=$work/lifetime
    rm -f "$out" "$lifetime" "$work/rss"
    timed="tracer-bench lifetime $lifetime -- $workload"
    events=- lost=- rss=- attach=-
    case $config in
    untraced)
        $timed >/dev/null
        ;;
    rstap)
        tracer-bench peak-rss "$work/rss" -- rstap -v -o "$out" -c "$timed" "$stp" 2>"$logs/rstap-$run"
        events=$(wc -l <"$out")
        lost=$(lost_events "$logs/rstap-$run")
        rss=$(cat "$work/rss")
        attach=$(sed -n 's/^rstap: attached .* in \([0-9]*\) ms$/\1/p' "$logs/rstap-$run")
        ;;
    ftrace)
        # The tracer cannot change while trace_pipe is open: switch it first, with tracing
        # off, and let the workload's own shell turn tracing on for itself.
        ftrace-graph.sh setup "$functions"
        echo 0 >/sys/kernel/tracing/tracing_on
        echo function_graph >/sys/kernel/tracing/current_tracer
        cat /sys/kernel/tracing/trace_pipe >"$out" &
        reader=$!
        # $timed is a command line: split on purpose.
        # shellcheck disable=SC2086
        sh -c 'echo $$ >/sys/kernel/tracing/set_ftrace_pid &&
               echo 1 >/sys/kernel/tracing/tracing_on && exec "$@"' \
            ftrace $timed >/dev/null 2>"$logs/ftrace-$run"
        echo 0 >/sys/kernel/tracing/tracing_on
        # trace_pipe ends by itself once tracing is off and it has been read empty, but
        # not if nothing was ever traced: stop reading once the file stops growing.
        size=-1
        while [ "$(wc -c <"$out")" != "$size" ]; do
            size=$(wc -c <"$out")
            sleep 0.5
        done
        kill "$reader" 2>/dev/null
        wait "$reader" 2>/dev/null
        lost=$(ftrace-graph.sh lost)
        ftrace-graph.sh reset
        # An entry line ends in "{", a return in "}" (maybe with a comment naming the
        # function), and a call with no traced callee is one "func();" line: two events.
        events=$(awk '/\(\);$/ { n += 2; next } /\{$/ { n++; next } /\}( \/\*.*\*\/)?$/ { n++ }
                      END { print n + 0 }' "$out")
        ;;
    bpftrace)
        timeout 900 bpftrace -o "$out" -c "$timed" "$work/filtered.bt" 2>"$logs/bpftrace-$run"
        events=$(grep -c ' -> kfunc:\| <- kretfunc:' "$out")
        lost=$(lost_events "$out" "$logs/bpftrace-$run")
        ;;
    esac
    if await_file "$lifetime"; then
        echo "$config $run $(cat "$lifetime") $events $lost $rss ${attach:--}" >>"$RESULTS/runs"
    else
        note "$config run $run: the workload did not finish"
    fi
}

configs="untraced rstap ftrace"
if [ $bpftrace_usable = yes ]; then
    configs="$configs bpftrace"
    write_bt "/pid == cpid/" >"$work/filtered.bt"
fi

# A first untraced run warms the caches; it is not counted. Configurations take turns
# within each round so that drift in the host's speed spreads over all of them.
$workload >/dev/null
run=1
while [ $run -le "$REPEAT" ]; do
    for config in $configs; do
        note "round $run: $config"
        run_config "$config" "$run"
    done
    run=$((run + 1))
done

run=1
while [ $run -le "$REPEAT" ]; do
    note "round $run: time to first live probe"
    first_live rstap "$run" rstap -o "$work/rstap.live" "$stp"
    first_live ftrace "$run" sh -c "exec ftrace-graph.sh live $functions >$work/ftrace.live"
    ftrace-graph.sh reset
    run=$((run + 1))
done
