#!/usr/bin/env bash
# replicas.sh: read replicas (issue 27) on this machine: one voter (n1, the
# leader) and one read replica (r1), two `ambit serve` processes on loopback.
#
#   bench/scripts/replicas.sh [OUTDIR]
#
# 1. load WORKLOAD/SIZE through n1 (`ambit bench load`);
# 2. lag: `ambit bench write --batch BATCH -c WC` on n1 for DUR while
#    bench/cmd/replicalag samples r1's lag (revisions) every 10 ms and probes
#    read-your-write (write on n1, at_least_as_fresh check on r1) every 50 ms;
# 3. CPU: REPS rounds of writes on n1 (same load) with `ambit bench check -c
#    RC` sent to r1 or to n1, alternating; each server's CPU (utime+stime of
#    /proc/PID/stat) before and after;
# 4. alone: checks on r1 without writes; writes on n1 without checks;
# 5. sizes: du of each data dir (store/, raft/), VmRSS and Go heap in use.
# Every result is a file in OUTDIR; runs.tsv has the CPU figures.
#
# Environment (defaults): WORKLOAD (collab), SIZE (small), DUR (15s), REPS
# (2), BATCH (100), WC (4), RC (8), PORT_BASE (62600), KEY (replkey).
set -uo pipefail
OUT=${1:-/tmp/replicas-bench}
mkdir -p "$OUT"
WORKLOAD=${WORKLOAD:-collab} SIZE=${SIZE:-small} DUR=${DUR:-15s} REPS=${REPS:-2}
BATCH=${BATCH:-100} WC=${WC:-4} RC=${RC:-8} P=${PORT_BASE:-62600} KEY=${KEY:-replkey}
BIN=$(mktemp -d /tmp/replicas-bin.XXXXXX)
go build -o "$BIN/ambit" ./cmd/ambit && go build -o "$BIN/replicalag" ./bench/cmd/replicalag || exit 1
WORK=$(mktemp -d /tmp/replicas-work.XXXXXX)
SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
N1=127.0.0.1:$((P + 1)) R1=127.0.0.1:$((P + 11))
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait; rm -rf "$WORK" "$BIN"; }
trap cleanup EXIT

serve() { # name grpc http raft extra...
	local name=$1 g=$2 h=$3 r=$4
	shift 4
	"$BIN/ambit" serve --data-dir "$WORK/$name" --node-id "$name" --grpc-addr "$g" --http-addr "$h" --raft-addr "$r" \
		--preshared-key "$KEY" --cluster-secret "$SECRET" --log-level warn "$@" 2>"$OUT/$name.log" &
	pids+=($!)
	for _ in $(seq 300); do
		curl -sf "http://$h/readyz" >/dev/null && return 0
		sleep 0.2
	done
	echo "$name not ready" >&2
	exit 1
}
serve n1 "$N1" 127.0.0.1:$((P + 2)) 127.0.0.1:$((P + 3))
N1PID=${pids[0]}
serve r1 "$R1" 127.0.0.1:$((P + 12)) 127.0.0.1:$((P + 13)) --read-replica --join "$N1"
R1PID=${pids[1]}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
bench() { "$BIN/ambit" bench "$@" --insecure --token "$KEY" --workload "$WORKLOAD" --size "$SIZE" --warmup 0s --json; }

bench load --endpoint "$N1" >"$OUT/load.json" || exit 1
"$BIN/ambit" cluster status --endpoint "$R1" --token "$KEY" >"$OUT/status.txt"

# 2. lag under writes
"$BIN/replicalag" -leader "$N1" -replica "$R1" -token "$KEY" -d "$DUR" >"$OUT/lag.json" &
lagpid=$!
bench write --endpoint "$N1" --batch "$BATCH" -c "$WC" -d "$DUR" >"$OUT/lag-write.json"
wait $lagpid

# 3. leader CPU per write, reads on the replica vs on the leader
printf 'run\tload1\tn1_cpu_ticks\tr1_cpu_ticks\twrite_json\tcheck_json\n' >"$OUT/runs.tsv"
record() { # run n1_before r1_before write_json check_json
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$(cut -d' ' -f1 /proc/loadavg)" "$(($(cpu $N1PID) - $2))" "$(($(cpu $R1PID) - $3))" "$4" "$5" >>"$OUT/runs.tsv"
}
for rep in $(seq "$REPS"); do
	order="replica leader"
	[ $((rep % 2)) = 0 ] && order="leader replica"
	for target in $order; do
		ep=$R1
		[ "$target" = leader ] && ep=$N1
		a=$(cpu $N1PID) b=$(cpu $R1PID)
		bench check --endpoint "$ep" -c "$RC" -d "$DUR" >"$OUT/reads-$target-r$rep-check.json" &
		cp=$!
		bench write --endpoint "$N1" --batch "$BATCH" -c "$WC" -d "$DUR" >"$OUT/reads-$target-r$rep-write.json"
		wait $cp
		record "reads-on-$target-r$rep" "$a" "$b" "reads-$target-r$rep-write.json" "reads-$target-r$rep-check.json"
	done
done

# 4. alone
a=$(cpu $N1PID) b=$(cpu $R1PID)
bench check --endpoint "$R1" -c "$RC" -d "$DUR" >"$OUT/alone-check.json"
record checks-alone-on-replica "$a" "$b" - alone-check.json
a=$(cpu $N1PID) b=$(cpu $R1PID)
bench write --endpoint "$N1" --batch "$BATCH" -c "$WC" -d "$DUR" >"$OUT/alone-write.json"
sleep 1
record writes-alone "$a" "$b" alone-write.json -

# 5. sizes
"$BIN/ambit" export --endpoint "$R1" --token "$KEY" | wc -l >"$OUT/relationships.txt"
for n in n1 r1; do
	du -sk "$WORK/$n/store" "$WORK/$n/raft" >"$OUT/du-$n.txt" # allocated KiB (badger and raft-wal preallocate sparse files)
done
grep VmRSS "/proc/$N1PID/status" >"$OUT/rss-n1.txt"
grep VmRSS "/proc/$R1PID/status" >"$OUT/rss-r1.txt"
curl -s "http://127.0.0.1:$((P + 2))/metrics" | grep -E '^go_memstats_heap_inuse_bytes|^ambit_replication' >"$OUT/metrics-n1.txt"
curl -s "http://127.0.0.1:$((P + 12))/metrics" | grep -E '^go_memstats_heap_inuse_bytes|^ambit_replication' >"$OUT/metrics-r1.txt"
echo "results in $OUT"
