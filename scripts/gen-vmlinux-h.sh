#!/usr/bin/env bash
# Regenerates src/kernel/vmlinux.h, the kernel type definitions the BPF programs compile
# against, from a kernel's BTF (default: the running kernel's). Needs bpftool. The file is
# committed so that building rstap needs neither bpftool nor a particular kernel.
set -euo pipefail
btf=${1:-/sys/kernel/btf/vmlinux}
out=$(dirname "$0")/../src/kernel/vmlinux.h
bpftool btf dump file "$btf" format c > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out from $btf" >&2
