#!/usr/bin/env bash
# loadmem.sh: the memory of a bulk load. A fresh `ambit serve` (loopback,
# data dir under /tmp) loads one workload with `ambit bench load`; the script
# prints the load rate, the server's peak RSS (VmHWM) and its RSS 10 s after
# the load, with the load average, and leaves the server running (its pid
# in DIR/pid) for the check and lookup runs that usually follow:
#
#   bench/scripts/loadmem.sh BINARY DIR PORTBASE [SIZE [WORKLOAD]]
#
# PORTBASE+1 is gRPC, +2 HTTP (with --pprof), +3 raft; the preshared key is
# $KEY (default loadmem-key-0123456789). Runs comparing two binaries
# alternate them, each in its own DIR and ports. Stop a server with
# `kill $(cat DIR/pid)` and wait for it to exit before reusing its ports.
set -euo pipefail
BIN=$1 DIR=$2 P=$3 SIZE=${4:-medium} WL=${5:-collab}
KEY=${KEY:-loadmem-key-0123456789}
rm -rf "$DIR"
mkdir -p "$DIR"
"$BIN" serve --data-dir "$DIR/data" --grpc-addr 127.0.0.1:$((P + 1)) --http-addr 127.0.0.1:$((P + 2)) \
	--raft-addr 127.0.0.1:$((P + 3)) --bootstrap --preshared-key "$KEY" --pprof >"$DIR/serve.log" 2>&1 &
PID=$!
echo $PID >"$DIR/pid"
for _ in $(seq 1 100); do
	grep -q "leader ready" "$DIR/serve.log" && break
	sleep 0.2
done
echo "load start $(date -u +%T), load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" bench load --endpoint 127.0.0.1:$((P + 1)) --insecure --token "$KEY" --workload "$WL" --size "$SIZE" | tail -1
echo "load end $(date -u +%T), load average $(cut -d' ' -f1-3 /proc/loadavg); $(grep VmHWM /proc/$PID/status | tr -s ' \t' ' ')"
sleep 10
echo "10 s after: $(grep -E 'VmRSS|VmHWM' /proc/$PID/status | tr -s ' \t\n' ' ') load average $(cut -d' ' -f1 /proc/loadavg)"
echo "data dir: $(du -sh "$DIR/data" | cut -f1)"
