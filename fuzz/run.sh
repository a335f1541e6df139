#!/usr/bin/env bash
# Fuzzes rstap's script front end (lexer, parser, checks) for SECONDS (default 60) with
# libFuzzer, on stable Rust: the coverage instrumentation cargo-fuzz would ask for is passed
# to rustc directly, and the crate is built without a sanitizer (those need nightly).
# Seeds: fuzz/seeds, the golden scripts and the project's shared seed scripts.
# Exits non-zero on a crash, a stack overflow, a hang or runaway memory; the input that did
# it is left in fuzz/artifacts/ and must become a regression test (tests/bad_input/).
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"

seconds="${1:-60}"
# clang (from the build packages) also compiles libFuzzer itself, which is C++.
../scripts/install-deps.sh
export CXX="${CXX:-clang++}"
target="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="--cfg fuzzing \
 -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers"
# With an explicit --target, RUSTFLAGS reach only the target's crates, not build scripts.
cargo build --release --locked --target "$target" --bin compile

corpus=corpus/compile
mkdir -p "$corpus" artifacts
cp seeds/*.stp ../tests/golden/*.stp "$corpus"/
if compgen -G "../../shared/seed/*.stp" >/dev/null; then
    cp ../../shared/seed/*.stp "$corpus"/
fi

# A script the parser accepts is small; larger inputs are tested by tests/bad_input.rs.
"target/$target/release/compile" "$corpus" \
    -dict=compile.dict \
    -max_total_time="$seconds" \
    -max_len=8192 \
    -timeout=10 \
    -rss_limit_mb=2048 \
    -artifact_prefix=artifacts/ \
    -print_final_stats=1
