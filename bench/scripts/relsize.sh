#!/usr/bin/env bash
# relsize.sh: bytes per relationship on disk and in memory, for README
# "Scaling". Starts one `ambit serve`, records its RSS and Go heap in use
# (after a GC: /debug/pprof is not needed, go_memstats_heap_inuse_bytes
# after 10 s idle), loads WORKLOAD/SIZE through the API (`ambit bench
# load`), waits 10 s, and records them again with the data dir's size:
# allocated (du -sk) and apparent (du -sk --apparent-size), store/ and raft/
# apart.
#
#   bench/scripts/relsize.sh [OUTDIR]     environment: WORKLOAD (collab), SIZE (medium), PORT (62700)
set -uo pipefail
OUT=${1:-/tmp/relsize}
mkdir -p "$OUT"
WORKLOAD=${WORKLOAD:-collab} SIZE=${SIZE:-medium} P=${PORT:-62700} KEY=sizekey
BIN=$(mktemp -d /tmp/relsize-bin.XXXXXX)
go build -o "$BIN/ambit" ./cmd/ambit || exit 1
WORK=$(mktemp -d /tmp/relsize-work.XXXXXX)
"$BIN/ambit" serve --data-dir "$WORK/d" --grpc-addr 127.0.0.1:$((P + 1)) --http-addr 127.0.0.1:$((P + 2)) --raft-addr 127.0.0.1:$((P + 3)) \
	--preshared-key "$KEY" --log-level warn 2>"$OUT/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait; rm -rf "$WORK" "$BIN"' EXIT
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$((P + 2))/readyz" >/dev/null && break; sleep 0.2; done
snap() { # label
	sleep 10
	{
		echo "== $1"
		grep VmRSS "/proc/$pid/status"
		curl -s "http://127.0.0.1:$((P + 2))/metrics" | grep -E '^go_memstats_heap_inuse_bytes|^ambit_applied_revision'
		du -sk "$WORK/d/store" "$WORK/d/raft"
		du -sk --apparent-size "$WORK/d/store" "$WORK/d/raft"
	} >>"$OUT/sizes.txt"
}
: >"$OUT/sizes.txt"
snap empty
"$BIN/ambit" bench load --endpoint 127.0.0.1:$((P + 1)) --insecure --token "$KEY" --workload "$WORKLOAD" --size "$SIZE" --json >"$OUT/load.json" || exit 1
snap loaded
cat "$OUT/sizes.txt" "$OUT/load.json"
