#!/usr/bin/env bash
# short.sh: the short version of bench/RESULTS.md, for `make bench` (about
# 3 minutes on 2 cores):
#
#   1. in-process benchmarks: tuple, store and engine at -benchtime BENCHTIME
#      (300ms), then raft's FSM apply and 3-node replicated writes of 100
#      relationships (raft-wal, 16 proposers) at 2s;
#   2. the gRPC matrix for collab small, one round: a fresh `ambit serve`
#      (embedded store, loopback), bulk load (rate, RSS), check at c=16 and
#      c=64, checkbulk, LookupResources, LookupSubjects and mixed, 5 s each
#      (matrix.sh with REPS=1 LOAD_REPS=1).
#
#   bench/scripts/short.sh [OUTDIR]     default: a new /tmp/ambit-bench.XXXXXX
#
# OUTDIR gets the binary, go-bench.txt and matrix/ (summary.md, one JSON file
# per run, runs.tsv with load averages and CPU times). The figures are one
# round on a shared machine: compare medians of several runs, as
# bench/RESULTS.md does, before drawing conclusions.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
OUT=${1:-$(mktemp -d /tmp/ambit-bench.XXXXXX)}
mkdir -p "$OUT"
BIN="$OUT/ambit"
"$GO" build -trimpath -o "$BIN" ./cmd/ambit

echo "== in-process benchmarks ($(date -u +%T), load average $(cut -d' ' -f1 /proc/loadavg))"
"$GO" test -run '^$' -bench . -benchtime "${BENCHTIME:-300ms}" -count 1 ./tuple ./store ./engine | tee "$OUT/go-bench.txt"
"$GO" test -run '^$' -bench 'FSMApplyBatch/rels=(1|100)$/|ReplicatedWrite100Proposers/tcp/store-nosync/proposers=8xprocs/log=wal' \
	-benchtime 2s -count 1 ./raft | tee -a "$OUT/go-bench.txt"

echo "== gRPC, collab small ($(date -u +%T), load average $(cut -d' ' -f1 /proc/loadavg))"
AMBIT="$BIN" WORKLOADS=collab SIZES=small REPS=1 LOAD_REPS=1 TREE="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	bench/scripts/matrix.sh "$OUT/matrix" >/dev/null
cat "$OUT/matrix/summary.md"
echo "results in $OUT"
