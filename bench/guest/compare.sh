#!/bin/sh
# compare.sh's guest side (busybox sh, as root): in one boot, runs the socket workload
# untraced, under the rstap of the base revision (rstap-base) and under the current one
# (rstap), REPEAT times each, taking turns, with the seed script's bodies. Raw figures go
# to $RESULTS/runs: CONFIG RUN WORKLOAD_SECONDS EVENTS (- untraced). Settings come from
# /bench/config.
set -u
# shellcheck source=/dev/null
. /bench/config
export PATH="/bench:$PATH"
: >"$RESULTS/runs"
workload="socket-workload --rounds $ROUNDS"
stp=/bench/socket-trace-globs.stp
lifetime=/tmp/lifetime
out=/tmp/trace

$workload >/dev/null
run=1
while [ $run -le "$REPEAT" ]; do
    for config in untraced base current; do
        rm -f "$lifetime" "$out"
        timed="tracer-bench lifetime $lifetime -- $workload"
        events=-
        case $config in
        untraced) $timed >/dev/null ;;
        base) rstap-base -o "$out" -c "$timed" "$stp" 2>>"$RESULTS/stderr-base" ;;
        current) rstap -o "$out" -c "$timed" "$stp" 2>>"$RESULTS/stderr-current" ;;
        esac
        [ "$config" = untraced ] || events=$(wc -l <"$out")
        # The watcher that writes the lifetime may finish just after the workload.
        tries=0
        while [ ! -s "$lifetime" ] && [ $tries -lt 100 ]; do
            sleep 0.1
            tries=$((tries + 1))
        done
        echo "$config $run $(cat "$lifetime") $events" >>"$RESULTS/runs"
        echo "compare: round $run: $config $(cat "$lifetime") s" >&2
    done
    run=$((run + 1))
done
