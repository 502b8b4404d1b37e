#!/usr/bin/env bash
# abcheck.sh: server CPU per check over gRPC, binaries compared in the same
# time window (bench/RESULTS.md, "CPU per check").
#
#   bench/scripts/abcheck.sh ROUNDS DURATION CONCURRENCY NAME=BINARY=WORKLOAD...
#
# e.g. bench/scripts/abcheck.sh 4 10s 64 base-collab=/tmp/ambit-base=collab \
#          new-collab=/tmp/ambit=collab base-deep=/tmp/ambit-base=deep new-deep=/tmp/ambit=deep
#
# One `ambit serve` per NAME (own data dir, plaintext on loopback, preshared
# key, ports from 61500 up by 10), loaded once with `ambit bench load
# --workload WORKLOAD --size small`. Then ROUNDS rounds, each running every
# server in turn: `ambit bench check -c CONCURRENCY` for 2 s unmeasured,
# then for DURATION measured. Per run it prints the load average before it,
# checks/s, the server's CPU (utime + stime from /proc/PID/stat) per check,
# and p50/p99. Compare medians over the rounds: on a shared machine one run
# says little.
set -uo pipefail
ROUNDS=$1 DUR=$2 C=$3
shift 3
KEY=abcheck
W=$(mktemp -d /tmp/abcheck.XXXXXX)
TICK=$(getconf CLK_TCK)
names=() bins=() wls=() pids=() ports=()
port=61500
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
for spec in "$@"; do
	IFS== read -r name bin wl <<<"$spec"
	"$bin" serve --data-dir "$W/$name" --grpc-addr 127.0.0.1:$port --raft-addr 127.0.0.1:$((port + 1)) \
		--http-addr 127.0.0.1:$((port + 2)) --preshared-key $KEY --node-id n1 --log-level warn >"$W/$name.log" 2>&1 &
	pid=$!
	for _ in $(seq 150); do
		curl -sf http://127.0.0.1:$((port + 2))/readyz >/dev/null && break
		sleep 0.2
	done
	"$bin" bench load --endpoint 127.0.0.1:$port --insecure --token $KEY --workload "$wl" --size small >"$W/$name.load" 2>&1
	names+=("$name") bins+=("$bin") wls+=("$wl") pids+=("$pid") ports+=("$port")
	port=$((port + 10))
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo -e "round\tserver\tworkload\tload1\tchecks_s\tcpu_us_per_check\tp50_us\tp99_us"
for r in $(seq "$ROUNDS"); do
	for i in "${!names[@]}"; do
		args=(--endpoint 127.0.0.1:${ports[$i]} --insecure --token $KEY --workload "${wls[$i]}" --size small -c "$C" --warmup 0)
		"${bins[$i]}" bench check "${args[@]}" -d 2s >/dev/null 2>&1
		l=$(cut -d' ' -f1 /proc/loadavg)
		t0=$(ticks "${pids[$i]}")
		"${bins[$i]}" bench check "${args[@]}" -d "$DUR" --json >"$W/run.json" 2>/dev/null
		t1=$(ticks "${pids[$i]}")
		python3 - "$W/run.json" "$t0" "$t1" "$TICK" "$r" "${names[$i]}" "${wls[$i]}" "$l" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
t0, t1, tick = map(float, sys.argv[2:5])
n, lat = d["checks"], d["latency"]
bad = "" if d.get("ok") else "\tNOT OK (errors or wrong answers)"
print(f"{sys.argv[5]}\t{sys.argv[6]}\t{sys.argv[7]}\t{sys.argv[8]}\t{d['ok_requests_per_second']:.0f}\t"
      f"{(t1 - t0) / tick / n * 1e6:.1f}\t{lat['p50_us']:.0f}\t{lat['p99_us']:.0f}{bad}")
PY
	done
done
