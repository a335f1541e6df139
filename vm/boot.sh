#!/usr/bin/env bash
# Boots a kernel from vm/fetch-kernel.sh with an initramfs from vm/build-initramfs.sh under
# qemu (TCG: KVM guests hang early on these hosts), and unpacks the guest's results
# directory into RESULTS_DIR. The console goes to CONSOLE_LOG. Fails, with the console's
# last lines, if the guest does not power off in time or sends no valid results.
#
# usage: vm/boot.sh KERNEL_DIR INITRD RESULTS_DIR CONSOLE_LOG [TIMEOUT_SECONDS [MEMORY_MB]]
set -euo pipefail

(($# >= 4 && $# <= 6)) || {
    echo "usage: $0 KERNEL_DIR INITRD RESULTS_DIR CONSOLE_LOG [TIMEOUT_SECONDS [MEMORY_MB]]" >&2
    exit 2
}
kernel_dir=$1
initrd=$2
results_dir=$3
console_log=$4
timeout_seconds=${5:-600}
memory_mb=${6:-2048}

command -v qemu-system-x86_64 >/dev/null || {
    echo "qemu-system-x86_64 not found: run scripts/install-deps.sh" >&2
    exit 1
}

archive=$(mktemp)
trap 'rm -f "$archive"' EXIT

fail() {
    echo "rstap-vm: $1; last console lines ($console_log):" >&2
    tail -n 20 "$console_log" >&2
    exit 1
}

# The tests' runner announces each scenario on the console ("rstap-vm: scenario NAME
# started, limit Ns", then "... ended"), and kills one that overruns its limit. One that
# has not ended STALL_GRACE seconds after its limit means the guest itself is stuck (a
# kernel still unpatching what a killed tracer left, say): the boot is stopped there, with
# the scenario named, rather than at the overall timeout.
stall_grace=${RSTAP_VM_STALL_GRACE:-180}
# What the guest kernel says when the emulator has broken it (see below).
EMULATOR_FAULTS='Oops: int3\|BUG: soft lockup'
stalled=""

# The scenario running now and for how long it may run, from the console's last marker.
watch_scenarios() {
    local qemu=$1 current="" since=0 last limit name
    while kill -0 "$qemu" 2>/dev/null; do
        sleep 2
        last=$(grep -a 'rstap-vm: scenario ' "$console_log" 2>/dev/null | tail -n 1 | tr -d '\r') || true
        if [[ $last != *" started, limit "* ]]; then
            current=""
        elif [[ $last != "$current" ]]; then
            current=$last
            since=$SECONDS
        fi
        name=${current#rstap-vm: scenario }
        name=${name%% *}
        if grep -aq "$EMULATOR_FAULTS" "$console_log" 2>/dev/null; then
            stalled="the guest kernel broke${name:+ in scenario $name}: $(grep -a -m 1 "$EMULATOR_FAULTS" "$console_log" | tr -d '\r')"
            kill "$qemu" 2>/dev/null || true
            return
        fi
        [[ -n $current ]] || continue
        limit=${current##*limit }
        limit=${limit%s}
        if ((SECONDS - since > limit + stall_grace)); then
            stalled="scenario $name had not ended $((SECONDS - since))s after it started (its limit: ${limit}s)"
            kill "$qemu" 2>/dev/null || true
            return
        fi
    done
}

# One host thread runs both vCPUs (thread=single): the guest's cross-vCPU code patching
# and interrupts then happen in one order, where multi-threaded TCG has let a vCPU run
# code another had already patched (see below). It costs nothing measurable here: on 6.1,
# attaching 1,029 functions, detaching them and 200 workload rounds took 40 s, 136 s and
# 0.66 s single-threaded, 45 s, 142 s and 0.60 s multi-threaded, and it leaves the other
# guest a host CPU of its own.
boot_guest() {
    : >"$archive"
    status=0
    timeout --kill-after=5 "$timeout_seconds" \
        qemu-system-x86_64 -accel tcg,thread=single -cpu max -m "$memory_mb" -smp 2 \
        -nographic -no-reboot -monitor none -nic none \
        -serial "file:$console_log" -serial "file:$archive" \
        -kernel "$kernel_dir/vmlinuz" -initrd "$initrd" \
        -append "console=ttyS0 quiet panic=-1" </dev/null &
    local qemu=$!
    watch_scenarios "$qemu"
    wait "$qemu" || status=$?
}

# Once in many boots, a guest under TCG has broken in ways that come from the emulator,
# in code far from anything rstap touched: a 6.12 kernel oopsed on an int3 that its own
# live patching (text_poke_bp) had placed and already finished with (a kworker in
# __schedule), and a 6.1 kernel locked up in a shell writing ftrace's files, with "timer
# wakeup didn't happen" for the other vCPU. Such a boot is tried once more, loudly; a fault
# that happens twice fails as any other.
boot_guest
if [[ ! -s $archive ]] && grep -aq "$EMULATOR_FAULTS" "$console_log"; then
    mv "$console_log" "$console_log.first"
    echo "rstap-vm: the guest kernel broke under the emulator (see $console_log.first); booting once more:" >&2
    grep -a -m 3 -A 3 "$EMULATOR_FAULTS" "$console_log.first" >&2 || true
    stalled=""
    boot_guest
fi

[[ -z $stalled ]] || fail "the guest is stuck: $stalled"
((status != 124 && status != 137)) || fail "the guest did not power off within ${timeout_seconds}s"
((status == 0)) || fail "qemu exited with status $status"
[[ -s $archive ]] || fail "the guest sent no results"
mkdir -p "$results_dir"
tar -xzf "$archive" -C "$results_dir" || fail "the guest's results archive is damaged"
