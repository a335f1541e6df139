#!/usr/bin/env bash
# Benchmarks rstap against the kernel's ftrace function_graph tracer and bpftrace: boots
# each kernel once under qemu (TCG) and, in that boot, runs the socket workload untraced
# and under each tracer REPEAT times, then measures each tracer's time to its first live
# probe (bench/guest/bench.sh). Kernels boot one after the other, never side by side, so
# that they do not compete for the host's cores. Prints the table bench/report.sh makes.
#
# usage: bench/run.sh [--kernel 6.1|6.12] [--rounds N] [--repeat K] [--out DIR]
#   --kernel   one kernel only (default: 6.1, then 6.12)
#   --rounds   socket-workload rounds per run (default 4000: a few seconds untraced)
#   --repeat   runs per configuration; the table shows medians (default 5)
#   --out      where the raw results go (default: target/bench under the repository)
set -euo pipefail

usage() {
    sed -n 's/^# \{0,1\}//; 8,13p' "$0" >&2
    exit 2
}

bench=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$bench")
kernels=(6.1 6.12)
rounds=4000
repeat=5
out=""
while (($# > 0)); do
    case $1 in
    --kernel) kernels=("${2:?--kernel needs 6.1 or 6.12}") && shift 2 ;;
    --rounds) rounds=${2:?--rounds needs a number} && shift 2 ;;
    --repeat) repeat=${2:?--repeat needs a number} && shift 2 ;;
    --out) out=${2:?--out needs a directory} && shift 2 ;;
    *) usage ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ && $repeat =~ ^[1-9][0-9]*$ ]] || usage

"$repo/scripts/install-deps.sh"
"$bench/install-peers.sh"

target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
out=${out:-$target_dir/bench}
echo "bench: building rstap, socket-workload and tracer-bench (release)" >&2
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p rstap -p socket-workload
cargo build --release --quiet --manifest-path "$bench/tracer-bench/Cargo.toml" \
    --target-dir "$target_dir/tracer-bench"
release=$target_dir/release

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'ROUNDS=%s\nREPEAT=%s\n' "$rounds" "$repeat" >"$work/config"

image=(
    -a "$release/rstap:/usr/local/bin/rstap"
    -a "$release/socket-workload:/usr/local/bin/socket-workload"
    -a "$target_dir/tracer-bench/release/tracer-bench:/bench/tracer-bench"
    -a "$bench/guest/ftrace-graph.sh:/bench/ftrace-graph.sh"
    -a "$bench/socket-trace-globs.stp:/bench/socket-trace-globs.stp"
    -a "$work/config:/bench/config"
)
# bpftrace and its libraries (LLVM and clang among them, ~150 MB) go in uncompressed:
# gzip, and gunzip under TCG, would add minutes to every run.
bpftrace=$(command -v bpftrace)
image+=(-r "$bpftrace:/usr/local/bin/bpftrace")
while read -r library; do
    image+=(-r "$library:$library")
done < <(ldd "$bpftrace" | grep -o '/[^ ]*' | sort -u)

for kernel in "${kernels[@]}"; do
    kernel_dir=$("$repo/vm/fetch-kernel.sh" "$kernel")
    results=$out/$kernel
    rm -rf "$results"
    echo "bench: kernel $(cat "$kernel_dir/release"): $repeat runs of each configuration, $rounds rounds each" >&2
    "$repo/vm/build-initramfs.sh" -o "$work/initrd-$kernel" -s "$bench/guest/bench.sh" "${image[@]}"
    "$repo/vm/boot.sh" "$kernel_dir" "$work/initrd-$kernel" "$results" "$work/console-$kernel.log" 7200 3072 || {
        cp "$work/console-$kernel.log" "$out/console-$kernel.log" 2>/dev/null || true
        exit 1
    }
    cat "$kernel_dir/release" >"$results/release"
    cp "$work/console-$kernel.log" "$results/console.log"
done

"$bench/report.sh" "${kernels[@]/#/$out/}"
