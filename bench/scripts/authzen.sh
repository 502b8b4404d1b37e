#!/usr/bin/env bash
# authzen.sh: AuthZEN over HTTP against its gRPC twins on one fresh
# `ambit serve` (bench/RESULTS.md, "AuthZEN: the layer's cost and the
# targets"): collab small, c=16, HTTP/1.1 keep-alive, 10 s after a 2 s
# warm-up per run, ROUNDS rounds of check / authzen-evaluation, checkbulk /
# authzen-evaluations (100 items), lookup-resources / authzen-search-resource
# (c=16 and c=1). Each run records the server's CPU (utime+stime of
# /proc/PID/stat) and the harness's (/usr/bin/time), so that CPU per decision
# can be compared on a machine others are loading.
#
#   bench/scripts/authzen.sh [OUTDIR [ROUNDS]]   default: a new /tmp dir, 3 rounds
#
# OUTDIR gets the binary, one JSON file per run and cpu.tsv (run, server CPU
# ticks of 10 ms, harness CPU seconds, load average).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-$(mktemp -d /tmp/ambit-authzen.XXXXXX)}
ROUNDS=${2:-3}
mkdir -p "$OUT"
BIN="$OUT/ambit"
go build -o "$BIN" ./cmd/ambit
"$BIN" serve --data-dir "$OUT/data" --grpc-addr 127.0.0.1:47151 --http-addr 127.0.0.1:47180 \
	--raft-addr 127.0.0.1:47190 --preshared-key benchkey --log-level warn >"$OUT/server.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null || true' EXIT
A=(--endpoint 127.0.0.1:47151 --insecure --token benchkey --authzen http://127.0.0.1:47180)
for _ in $(seq 50); do "$BIN" bench load "${A[@]}" --workload collab --size small >"$OUT/load.txt" 2>&1 && break; sleep 0.2; done
cpu() { awk '{print $14+$15}' "/proc/$SPID/stat"; }
run() {
	local name=$1
	shift
	local c0
	c0=$(cpu)
	/usr/bin/time -f "%U %S" -o "$OUT/$name.time" "$BIN" bench "$@" "${A[@]}" -d 10s --warmup 2s --query-seed 7 --json >"$OUT/$name.json"
	printf '%s\t%s\t%s\t%s\n' "$name" $(($(cpu) - c0)) "$(awk '{print $1+$2}' "$OUT/$name.time")" "$(cut -d' ' -f1 /proc/loadavg)" >>"$OUT/cpu.tsv"
}
for r in $(seq "$ROUNDS"); do
	run "check-$r" check -c 16
	run "azeval-$r" authzen-evaluation -c 16
	run "bulk-$r" checkbulk --bulk 100 -c 16
	run "azevals-$r" authzen-evaluations --bulk 100 -c 16
	run "lr-$r" lookup-resources -c 16
	run "azsearch-$r" authzen-search-resource -c 16
	run "lr1-$r" lookup-resources -c 1
	run "azsearch1-$r" authzen-search-resource -c 1
done
echo "results in $OUT"
