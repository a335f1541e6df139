#!/usr/bin/env bash
# Compares the cost of the current rstap with that of an earlier revision on the seed
# script's bodies (bench/socket-trace-globs.stp): boots one kernel once under qemu (TCG)
# and, in that boot, runs the socket workload untraced, under the base revision's rstap
# and under the current one, taking turns, REPEAT times each (bench/guest/compare.sh).
# Prints each configuration's median, the medians over the untraced one, and the median
# per round of the current rstap's time over the base's: a ratio taken within one round
# cancels most of the drift in the host's speed.
#
# usage: bench/compare.sh BASE_REV [--kernel 6.1|6.12] [--rounds N] [--repeat K] [--out DIR]
#   BASE_REV   the revision to compare with (built in a git worktree of its own)
#   --kernel   the kernel to boot (default 6.12)
#   --rounds   socket-workload rounds per run (default 1000)
#   --repeat   runs per configuration (default 7)
#   --out      where the raw results go (default: target/bench-compare)
set -euo pipefail

usage() {
    sed -n 's/^# \{0,1\}//; 10,15p' "$0" >&2
    exit 2
}

bench=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$bench")
[[ $# -gt 0 && $1 != -* ]] || usage
base_rev=$1
shift
kernel=6.12 rounds=1000 repeat=7 out=""
while (($# > 0)); do
    case $1 in
    --kernel) kernel=${2:?--kernel needs 6.1 or 6.12} && shift 2 ;;
    --rounds) rounds=${2:?--rounds needs a number} && shift 2 ;;
    --repeat) repeat=${2:?--repeat needs a number} && shift 2 ;;
    --out) out=${2:?--out needs a directory} && shift 2 ;;
    *) usage ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ && $repeat =~ ^[1-9][0-9]*$ ]] || usage

"$repo/scripts/install-deps.sh"
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
out=${out:-$target_dir/bench-compare}
work=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$work/base" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "compare: building the current rstap, socket-workload and tracer-bench (release)" >&2
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p rstap -p socket-workload
cargo build --release --quiet --manifest-path "$bench/tracer-bench/Cargo.toml" \
    --target-dir "$target_dir/tracer-bench"
echo "compare: building rstap at $base_rev (release)" >&2
git -C "$repo" worktree add --quiet --detach "$work/base" "$base_rev"
cargo build --release --quiet --manifest-path "$work/base/Cargo.toml" -p rstap \
    --target-dir "$target_dir/bench-compare-base"

printf 'ROUNDS=%s\nREPEAT=%s\n' "$rounds" "$repeat" >"$work/config"
kernel_dir=$("$repo/vm/fetch-kernel.sh" "$kernel")
release=$target_dir/release
"$repo/vm/build-initramfs.sh" -o "$work/initrd" -s "$bench/guest/compare.sh" \
    -a "$release/rstap:/usr/local/bin/rstap" \
    -a "$target_dir/bench-compare-base/release/rstap:/usr/local/bin/rstap-base" \
    -a "$release/socket-workload:/usr/local/bin/socket-workload" \
    -a "$target_dir/tracer-bench/release/tracer-bench:/bench/tracer-bench" \
    -a "$bench/socket-trace-globs.stp:/bench/socket-trace-globs.stp" \
    -a "$work/config:/bench/config"
rm -rf "$out"
echo "compare: kernel $(cat "$kernel_dir/release"): $repeat runs of each, $rounds rounds each" >&2
"$repo/vm/boot.sh" "$kernel_dir" "$work/initrd" "$out" "$work/console.log" 3600 2048 || {
    cp "$work/console.log" "$out/console.log" 2>/dev/null || true
    exit 1
}
echo "$base_rev $(git -C "$repo" rev-parse --short "$base_rev")" >"$out/base"

awk -v base="$base_rev" '
    function median(values, n,    i, j, t) {
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && values[j - 1] > values[j]; j--) {
                t = values[j]; values[j] = values[j - 1]; values[j - 1] = t
            }
        return n % 2 ? values[(n + 1) / 2] : (values[n / 2] + values[n / 2 + 1]) / 2
    }
    { seconds[$1, $2] = $3; count[$1]++; events[$1] = $4 }
    END {
        for (config in count) {
            n = 0
            for (key in seconds) {
                split(key, part, SUBSEP)
                if (part[1] == config) values[++n] = seconds[key]
            }
            med[config] = median(values, n)
            delete values
        }
        n = 0
        for (key in seconds) {
            split(key, part, SUBSEP)
            if (part[1] == "current" && (("base", part[2]) in seconds))
                ratios[++n] = seconds[key] / seconds["base", part[2]]
        }
        printf "| configuration | workload s (median) | × untraced | events |\n"
        printf "| --- | ---: | ---: | ---: |\n"
        printf "| untraced | %.3f | 1.00 | - |\n", med["untraced"]
        printf "| rstap at %s | %.3f | %.2f | %s |\n", base, med["base"], med["base"] / med["untraced"], events["base"]
        printf "| rstap now | %.3f | %.2f | %s |\n", med["current"], med["current"] / med["untraced"], events["current"]
        printf "\ncurrent / base, per round: median %.3f over %d rounds\n", median(ratios, n), n
    }' "$out/runs"
