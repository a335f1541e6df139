#!/usr/bin/env bash
# Prints the benchmark's table (markdown) from the raw results bench/run.sh keeps, one
# directory per kernel: medians over the runs of each configuration, and ratios to the
# untraced runs' median.
#
# usage: bench/report.sh RESULTS_DIR...
set -euo pipefail

(($# > 0)) || {
    echo "usage: $0 RESULTS_DIR..." >&2
    exit 2
}

echo "| kernel | tracer | workload s | × untraced | events | events/s | lost | first probe live s | attach ms | peak RSS MiB |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for dir in "$@"; do
    [[ -s $dir/runs ]] || {
        echo "$dir: no runs recorded" >&2
        exit 1
    }
    # runs: CONFIG RUN SECONDS EVENTS LOST RSS_KIB ATTACH_MS; startup: TRACER RUN SECONDS RSS_KIB.
    awk -v kernel="$(cat "$dir/release" 2>/dev/null || basename "$dir")" '
        function median(list,   v, n, i, j, t) {
            n = split(list, v, " ")
            if (n == 0) return "-"
            for (i = 2; i <= n; i++)
                for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
            return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        }
        function add(key, value) { if (value != "-") values[key] = values[key] " " value }
        FILENAME ~ /runs$/ {
            if (!($1 in seen)) { seen[$1] = 1; order[++configs] = $1 }
            add($1 " time", $3)
            if ($4 != "-") { add($1 " events", $4); add($1 " rate", $4 / $3) }
            add($1 " lost", $5)
            if ($6 != "-") add($1 " rss", $6 / 1024)
            add($1 " attach", $7)
            next
        }
        { add($1 " live", $3) }
        function show(key, format,   m) {
            m = median(values[key])
            return m == "-" ? "-" : sprintf(format, m)
        }
        END {
            base = median(values["untraced time"])
            for (i = 1; i <= configs; i++) {
                c = order[i]
                t = median(values[c " time"])
                printf "| %s | %s | %.3f | %.2f | %s | %s | %s | %s | %s | %s |\n", kernel, c, t,
                    t / base, show(c " events", "%d"), show(c " rate", "%.0f"), show(c " lost", "%d"),
                    show(c " live", "%.3f"), show(c " attach", "%d"), show(c " rss", "%.1f")
            }
        }' "$dir/runs" "$dir/startup"
done
