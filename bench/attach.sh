#!/usr/bin/env bash
# Attach benchmark (not a test): boots each kernel once under qemu and, in that boot, times
# how long rstap takes to attach and to detach 10, 100 and 1,000+ kernel functions (entry
# and return) with each attach strategy the kernel has. Prints one table per kernel.
# TCG is many times slower than hardware: compare strategies within one boot, by ratio.
#
# usage: bench/attach.sh [KERNEL...]     (default: 6.1 6.12)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
vm=$repo/vm
kernels=("$@")
((${#kernels[@]} > 0)) || kernels=(6.1 6.12)

echo "bench: building rstap" >&2
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p rstap
release_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The guest side: for each size, a script probing the first N functions (sorted, so every
# strategy gets the same ones) of the socket and IP layers, run with -T 0 so that rstap
# attaches, stops at once and detaches; its -v lines carry both times.
cat >"$work/guest.sh" <<'GUEST'
#!/bin/sh
cd /tmp
grep -E '^(tcp_|inet_|sock_|__sys_|ip_|udp_|skb_)' /sys/kernel/tracing/available_filter_functions |
    cut -d' ' -f1 | sort -u >all
total=$(wc -l <all)
for size in 10 100 $total; do
    head -n "$size" all | awk '
        { points = points sep "kernel.function(\"" $1 "\").call, kernel.function(\"" $1 "\").return"; sep = ",\n  " }
        END { print "probe " points " {}" }' >"probes-$size.stp"
    for strategy in session multi fentry kprobe; do
        if rstap -v --attach "$strategy" -T 0 "probes-$size.stp" >/dev/null 2>err; then
            attached=$(sed -n 's/^rstap: attached \([0-9]*\) functions.*, skipped \([0-9]*\), in \([0-9]*\) ms$/\1 \2 \3/p' err)
            detach=$(sed -n 's/^rstap: detached in \([0-9]*\) ms$/\1/p' err)
            echo "$size $strategy $attached $detach" >>"$RESULTS/times"
        else
            echo "$size $strategy refused: $(tail -n 1 err)" >>"$RESULTS/times"
        fi
    done
done
GUEST

run_kernel() {
    local kernel=$1 dir=$work/$1 kernel_dir
    mkdir -p "$dir"
    kernel_dir=$("$vm/fetch-kernel.sh" "$kernel")
    "$vm/build-initramfs.sh" -o "$dir/initrd" -s "$work/guest.sh" \
        -a "$release_dir/rstap:/usr/local/bin/rstap" >/dev/null
    "$vm/boot.sh" "$kernel_dir" "$dir/initrd" "$dir/results" "$dir/console.log" 3600
    {
        echo "kernel $(cat "$kernel_dir/release"): attach and detach times under TCG"
        printf '%9s  %-8s %9s %8s %10s %10s\n' functions strategy attached skipped attach_ms detach_ms
        awk '$3 == "refused:" { printf "%9s  %-8s refused: %s\n", $1, $2, substr($0, index($0, $4)); next }
             { printf "%9s  %-8s %9s %8s %10s %10s\n", $1, $2, $3, $4, $5, $6 }' "$dir/results/times"
    } >"$dir/table"
}

for kernel in "${kernels[@]}"; do
    echo "bench: booting $kernel" >&2
    run_kernel "$kernel" &
done
wait
for kernel in "${kernels[@]}"; do
    cat "$work/$kernel/table"
    echo
done
