#!/usr/bin/env bash
# tokens.sh: issue #21's overhead benchmark on collab small over gRPC.
# Two fresh `ambit serve` on loopback, both loaded with collab small: A as
# usual, B with --decision-log at 100 % sampling. Then ROUNDS interleaved
# rounds of `ambit bench check -c C -d DUR` against
#
#   A with the preshared key, A with a managed token (scope check),
#   B with the preshared key (every decision written to the decision log)
#
# and the median ok/s of each. Interleaving spreads the shared machine's
# load changes over the three alike.
#
#   bench/scripts/tokens.sh [OUTDIR]
#
# Environment (defaults): ROUNDS (5), DUR (5s), WARMUP (1s), C (16),
# PORT_BASE (61400), KEY (tokenbenchkey).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-$(mktemp -d /tmp/ambit-tokens.XXXXXX)}
ROUNDS=${ROUNDS:-5} DUR=${DUR:-5s} WARMUP=${WARMUP:-1s} C=${C:-16} PORT_BASE=${PORT_BASE:-61400} KEY=${KEY:-tokenbenchkey}
mkdir -p "$OUT"
BIN="$OUT/ambit"
go build -trimpath -o "$BIN" ./cmd/ambit
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done' EXIT

start() { # name port extra...
	local name=$1 p=$2
	shift 2
	"$BIN" serve --data-dir "$OUT/$name" --grpc-addr "127.0.0.1:$((p + 1))" --raft-addr "127.0.0.1:$((p + 2))" \
		--http-addr "127.0.0.1:$((p + 3))" --preshared-key "$KEY" --node-id "$name" "$@" >"$OUT/server-$name.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 150); do
		curl -sf "http://127.0.0.1:$((p + 3))/readyz" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "server $name not ready" >&2
	return 1
}
A=$PORT_BASE B=$((PORT_BASE + 10))
start a "$A"
start b "$B" --decision-log "$OUT/decisions.jsonl" --decision-sample 1
for p in "$A" "$B"; do
	"$BIN" bench load --endpoint "127.0.0.1:$((p + 1))" --insecure --token "$KEY" --workload collab --size small >/dev/null
done
TOKEN=$("$BIN" token create --endpoint "127.0.0.1:$((A + 1))" --token "$KEY" --name bench --scope check 2>/dev/null)
echo "tree $(git rev-parse --short HEAD), $(date -u +%FT%TZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/summary.txt"
bench() { # file port credential
	"$BIN" bench check --endpoint "127.0.0.1:$(($2 + 1))" --insecure --token "$3" --workload collab --size small \
		-c "$C" -d "$DUR" --warmup "$WARMUP" --json >"$OUT/$1.json"
}
for r in $(seq 1 "$ROUNDS"); do
	bench "key-r$r" "$A" "$KEY"
	bench "token-r$r" "$A" "$TOKEN"
	bench "decisions-r$r" "$B" "$KEY"
	echo "round $r done, load average $(cut -d' ' -f1 /proc/loadavg)" >&2
done
python3 - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import glob, json, os, statistics as st, sys
out = sys.argv[1]
med = {}
for kind in ("key", "token", "decisions"):
    xs = [json.load(open(p))["ok_requests_per_second"] for p in sorted(glob.glob(os.path.join(out, kind + "-r*.json")))]
    errs = sum(json.load(open(p))["errors"] + json.load(open(p))["mismatches"] for p in glob.glob(os.path.join(out, kind + "-r*.json")))
    med[kind] = st.median(xs)
    print(f"{kind:10s} median {med[kind]:8,.0f} ok/s  runs {', '.join(f'{x:,.0f}' for x in xs)}  errors+mismatches {errs}")
print(f"token / key      = {med['token'] / med['key'] * 100:.1f} %  (issue: >= 98 %)")
print(f"decisions / key  = {med['decisions'] / med['key'] * 100:.1f} %  (issue: >= 90 %)")
PY
wc -l <"$OUT/decisions.jsonl" | sed 's/^/decision log lines: /' | tee -a "$OUT/summary.txt"
