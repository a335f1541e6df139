#!/usr/bin/env bash
# Runs every rstap test: formatting and lint checks, unit and golden tests, native
# command-line tests, and the VM tests that trace real kernels (Debian's 6.1 and 6.12
# under qemu), then a minute of fuzzing. Installs what it needs first: Debian packages, and the kernels (with 6.1's
# debug info) into a cache outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

./scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# The DWARF tests read Debian's 6.1 debug vmlinux, the one the 6.1 VM boots with.
kernel_6_1=$(vm/fetch-kernel.sh 6.1 --debuginfo)
vm/fetch-kernel.sh 6.12 >/dev/null
export RSTAP_TEST_VMLINUX="$kernel_6_1/vmlinux"

cargo test --workspace --locked

# A minute of coverage-guided fuzzing of the script front end; fails on any crash.
./fuzz/run.sh 60
