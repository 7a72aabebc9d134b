#!/usr/bin/env bash
# Instructions per committed 4 KiB record through the core, by callgrind.
# Runs host/examples/commit_cost for two record counts and divides the
# difference, so start-up cancels out; then splits the per-record cost into
# the embedded fletcher-4 (seal), libc memory ops and everything else.
set -euo pipefail
cd "$(dirname "$0")/.."
lo=${1:-1024}
hi=${2:-3072}
cargo build -q --release -p rzil-host --example commit_cost
bin=target/release/examples/commit_cost
out=target/bench-core
mkdir -p "$out"
report() {
batch=$1
for n in "$lo" "$hi"; do
	# glibc's memset switches to `rep stosb` above 2 KiB, and callgrind
	# counts every iteration of a rep-prefixed instruction as one
	# instruction: a 3.7 KiB zero fill would count 3,700. Raising the
	# threshold keeps memset on its vector loop, whose count reflects its
	# work (as on a CPU without ERMS).
	GLIBC_TUNABLES=glibc.cpu.x86_rep_stosb_threshold=$((1 << 40)) \
	valgrind --tool=callgrind --callgrind-out-file="$out/cg.$n" "$bin" "$n" "$batch" >/dev/null 2>&1
done
total() { callgrind_annotate --auto=no --threshold=100 "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}'; }
part() { callgrind_annotate --auto=no --threshold=100 "$1" 2>/dev/null | awk -v pat="$2" '$0 ~ pat {gsub(",","",$1); s+=$1} END {print s+0}'; }
t_lo=$(total "$out/cg.$lo"); t_hi=$(total "$out/cg.$hi")
s_lo=$(part "$out/cg.$lo" "seal_slim_block_(in|with)|fletcher"); s_hi=$(part "$out/cg.$hi" "seal_slim_block_(in|with)|fletcher")
m_lo=$(part "$out/cg.$lo" "__mem(cpy|set|move)"); m_hi=$(part "$out/cg.$hi" "__mem(cpy|set|move)")
fimpl=$(callgrind_annotate --auto=no --threshold=100 "$out/cg.$hi" 2>/dev/null | grep "fletcher_4_avx2" >/dev/null && echo "AVX2 lanes" || echo "portable")
n=$((hi - lo))
per=$(( (t_hi - t_lo) / n )); seal=$(( (s_hi - s_lo) / n )); mem=$(( (m_hi - m_lo) / n ))
echo "instructions per committed 4 KiB record, $batch record(s) per commit: $per"
echo "  embedded fletcher-4 + sealing:          $seal  ($fimpl)"
echo "  libc memcpy/memset (record copies):     $mem"
echo "  lwb pipeline (everything else):         $((per - seal - mem))"
echo "command: GLIBC_TUNABLES=glibc.cpu.x86_rep_stosb_threshold=$((1 << 40)) valgrind --tool=callgrind $bin N $batch  (N = $lo and $hi)"
}
report 1
report 16
echo "goal: <= 2000 per record (issue #2)"
