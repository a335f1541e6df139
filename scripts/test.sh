#!/usr/bin/env bash
# Runs every rstap test: formatting and lint checks, unit and golden tests, and the VM
# tests that trace real kernels (Debian's 6.1 and 6.12 under qemu). Installs what it
# needs first: Debian packages, and the kernels into a cache outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

./scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
