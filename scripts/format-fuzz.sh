#!/usr/bin/env bash
# Run the on-disk parser's fuzz target (fuzz/fuzz_targets/parse.rs) with
# cargo-fuzz on the nightly toolchain for RUNS executions (default 10^6).
# cargo-fuzz is installed once into .cache/cargo-fuzz; new corpus entries go
# to .cache/fuzz-corpus/parse (git-ignored); fuzz/corpus/parse holds the
# small seed corpus kept in git.
set -euo pipefail
repo_root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-1000000}"
tools="$repo_root/.cache/cargo-fuzz"
log() { printf 'format-fuzz: %s\n' "$*" >&2; }

rustup run nightly rustc --version >/dev/null 2>&1 ||
    { log "error: the nightly toolchain is needed (rustup toolchain install nightly)"; exit 1; }
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
	log "cargo install cargo-fuzz into $tools"
	cargo install --locked --quiet --root "$tools" cargo-fuzz
fi
export PATH="$tools/bin:$PATH"
mkdir -p "$repo_root/.cache/fuzz-corpus/parse"
cd "$repo_root"
cargo +nightly fuzz run parse .cache/fuzz-corpus/parse fuzz/corpus/parse -- \
    -runs="$runs" -max_len=16384 -print_final_stats=1 2>&1 |
    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|==|SUMMARY|artifact)' || true
# libFuzzer exits non-zero on a crash; pipefail would hide it behind grep.
test "${PIPESTATUS[0]}" -eq 0
