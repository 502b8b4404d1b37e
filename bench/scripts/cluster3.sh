#!/usr/bin/env bash
# cluster3.sh: replicated write rate on a local 3-node ambit cluster.
#
#   bench/scripts/cluster3.sh [OUTDIR]          run, then summarize
#   bench/scripts/cluster3.sh --summary OUTDIR  only (re)write OUTDIR/cluster-summary.md
#
# Starts n1 with --bootstrap, then n2 and n3 with --join to n1's gRPC address
# (and n1's cluster id), each with its own data dir, raft log and store on
# this machine's disk; waits until `ambit cluster status` lists 3 voters and a
# leader; loads the workload's schema and relationships through the leader
# (`ambit bench load`: a replicated bulk import); then, REPS rounds of
# `ambit bench write` (BATCH TOUCHes per WriteRelationships) at each of CONCS
# against the leader and against a follower (which forwards to the leader),
# alternating which goes first; then stops all three.
#
# Each run writes its --json result to OUTDIR/cluster-write-<target>-c<N>-r<round>.json;
# cluster-runs.tsv records the load average before and after, the three
# servers' CPU time (utime + stime from /proc/PID/stat, warm-up included) and
# the exit status. cluster-status-*.txt are `ambit cluster status` before and
# after the runs (the leader must not change in between).
#
# Environment (defaults): AMBIT (/tmp/ambit-matrix), WORKLOAD (collab), SIZE
# (small), REPS (3), DUR (5s), WARMUP (1s), BATCH (1: relationships per
# WriteRelationships, `ambit bench write --batch`), CONCS ("16 64": the
# client concurrencies), PORT_BASE (61600; n1 uses
# PORT_BASE+1..3, n2 +21..23, n3 +31..33; above Linux's ephemeral port range),
# KEY (matrixkey), WORK (a new /tmp/matrix-cluster.XXXXXX, removed at the end).
set -uo pipefail

summarize() {
	python3 - "$1" <<'PY'
import glob, json, os, re, statistics as st, sys

out = sys.argv[1]
runs = {}
tsv = os.path.join(out, "cluster-runs.tsv")
if os.path.exists(tsv):
    with open(tsv) as f:
        hdr = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(hdr, line.rstrip("\n").split("\t")))
            runs[r["file"]] = r
med = lambda xs: st.median(xs) if xs else None
def ms(us):
    return "—" if us is None else (f"{us/1e3:.0f} ms" if us >= 1e4 else f"{us/1e3:.1f} ms")
pat = re.compile(r"^cluster-write-(?P<t>[a-z]+)-c(?P<c>\d+)-r(?P<r>\d+)\.json$")
groups = {}
for path in sorted(glob.glob(os.path.join(out, "cluster-write-*.json"))):
    m = pat.match(os.path.basename(path))
    if not m:
        continue
    try:
        with open(path) as f:
            d = json.load(f)
    except Exception:
        d = None
    groups.setdefault((m["t"], int(m["c"])), []).append((os.path.basename(path), d))
lines = ["| target | c | writes/s median (min–max) | relationships/s median | p50 | p95 | p99 | p99.9 | errors | rounds | cluster CPU per write | load avg |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
for k in sorted(groups, key=lambda k: (k[0] != "leader", k[1])):
    rs = groups[k]
    ds = [d for _, d in rs if d]
    ps = [d["ok_requests_per_second"] for d in ds]
    rs_ = [d.get("relationships_written_per_second", d["ok_requests_per_second"]) for d in ds]
    lat = lambda q: med([d["latency"][q] for d in ds if d["latency"]["count"]])
    la, cpu = [], []
    for name, d in rs:
        r = runs.get(name)
        if r:
            la += [float(r["load1_before"]), float(r["load1_after"])]
            # CPU of the three servers over the whole run (warm-up included) per
            # write of the measured phase, scaled by (warm-up + measured) / measured.
            if d and d["requests"]:
                span = float(r["warmup_s"]) + d["seconds"]
                cpu.append(float(r["servers_cpu_s"]) / (d["requests"] * span / d["seconds"]))
    err = sum(d["errors"] for d in ds)
    failed = len(rs) - len(ds)
    lines.append(f"| {k[0]} | {k[1]} | {med(ps):,.0f} ({min(ps):,.0f}–{max(ps):,.0f}) | {med(rs_):,.0f} | {ms(lat('p50_us'))} | {ms(lat('p95_us'))} | "
                 f"{ms(lat('p99_us'))} | {ms(lat('p999_us'))} | {err}{f' (+{failed} runs without JSON)' if failed else ''} | {len(rs)} | "
                 f"{'—' if not cpu else f'{med(cpu)*1e3:.2f} ms'} | {f'{min(la):.1f}–{max(la):.1f}' if la else '—'} |")
lp = os.path.join(out, "cluster-load.json")
if os.path.exists(lp):
    try:
        with open(lp) as f:
            d = json.load(f)
        d = d[0] if isinstance(d, list) else d
        lines += ["", f"Replicated load through the leader: {d['relationships']:,} relationships at {d['relationships_per_second']:,.0f} rels/s."]
    except Exception as e:
        lines += ["", f"cluster-load.json unreadable: {e}"]
text = "\n".join(lines) + "\n"
with open(os.path.join(out, "cluster-summary.md"), "w") as f:
    f.write(text)
print(text)
PY
}

if [[ "${1:-}" == "--summary" ]]; then
	summarize "${2:?usage: cluster3.sh --summary OUTDIR}"
	exit
fi

AMBIT=${AMBIT:-/tmp/ambit-matrix}
WORKLOAD=${WORKLOAD:-collab}
SIZE=${SIZE:-small}
REPS=${REPS:-3}
DUR=${DUR:-5s}
WARMUP=${WARMUP:-1s}
BATCH=${BATCH:-1}
CONCS=${CONCS:-16 64}
PORT_BASE=${PORT_BASE:-61600}
KEY=${KEY:-matrixkey}
OUT=${1:-/tmp/matrix-cluster-out-$(date -u +%Y%m%dT%H%M%SZ)}
WORK=${WORK:-$(mktemp -d /tmp/matrix-cluster.XXXXXX)}
mkdir -p "$OUT" "$WORK"

declare -A PID GRPC
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/cluster.log" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
all_ticks() {
	local s=0 n
	for n in n1 n2 n3; do
		s=$((s + $(cpu_ticks "${PID[$n]}")))
	done
	echo "$s"
}

# start NODE OFFSET ARGS...: one server on PORT_BASE+OFFSET+{1,2,3}.
start() {
	local n=$1 o=$2
	shift 2
	local p=$((PORT_BASE + o))
	GRPC[$n]=127.0.0.1:$((p + 1))
	"$AMBIT" serve --data-dir "$WORK/$n" --node-id "$n" --grpc-addr "${GRPC[$n]}" --raft-addr 127.0.0.1:$((p + 2)) \
		--http-addr 127.0.0.1:$((p + 3)) --preshared-key "$KEY" "$@" >"$OUT/server-$n.log" 2>&1 &
	PID[$n]=$!
	PIDS+=("$!")
}

status() { "$AMBIT" cluster status --endpoint "$1" --token "$KEY" 2>&1; }

start n1 0 --bootstrap
for _ in $(seq 1 100); do
	[[ -s "$WORK/n1/cluster-id" ]] && curl -sf "http://127.0.0.1:$((PORT_BASE + 3))/readyz" >/dev/null 2>&1 && break
	sleep 0.2
done
CID=$(cat "$WORK/n1/cluster-id") || { log "n1 did not start; see $OUT/server-n1.log"; exit 1; }
start n2 20 --join "${GRPC[n1]}" --cluster-id "$CID"
start n3 30 --join "${GRPC[n1]}" --cluster-id "$CID"
members=0
for _ in $(seq 1 150); do
	st=$(status "${GRPC[n1]}")
	members=$(grep -c 'voter=true' <<<"$st")
	if [[ $members -eq 3 ]] && grep -q $'\tleader\t' <<<"$st"; then
		break
	fi
	sleep 0.2
done
echo "$st" | tee "$OUT/cluster-status-before.txt"
if [[ $members -ne 3 ]]; then
	log "only $members members after 30 s; see $OUT/server-n*.log"
	exit 1
fi
leader=$(awk -F'\t' '$2 == "leader" {print $1}' <<<"$st")
follower=$(awk -F'\t' '$2 == "follower" {print $1; exit}' <<<"$st")
log "3 members; leader $leader (${GRPC[$leader]}), follower $follower (${GRPC[$follower]}); load average $(load1)"
{
	echo "started: $(date -u +%FT%TZ); uptime: $(uptime)"
	echo "ambit: $AMBIT (sha256 $(sha256sum "$AMBIT" | cut -c1-16), tree ${TREE:-unknown})"
	echo "WORKLOAD=$WORKLOAD SIZE=$SIZE REPS=$REPS DUR=$DUR WARMUP=$WARMUP BATCH=$BATCH CONCS=$CONCS leader=$leader follower=$follower"
} >"$OUT/cluster-machine.txt"

B=(--insecure --token "$KEY" --workload "$WORKLOAD" --size "$SIZE")
"$AMBIT" bench load --endpoint "${GRPC[$leader]}" "${B[@]}" --json >"$OUT/cluster-load.json" 2>"$OUT/cluster-load.err" ||
	log "load exit status $? (see cluster-load.err)"

warm=$(python3 -c "import re,sys; m=re.fullmatch(r'([0-9.]+)(ms|s|m)', sys.argv[1]); print(float(m[1])*{'ms':1e-3,'s':1,'m':60}[m[2]])" "$WARMUP")
echo -e "file\tstart_utc\tload1_before\tload1_after\tservers_cpu_s\twarmup_s\trc" >"$OUT/cluster-runs.tsv"
run() { # TARGET C ROUND
	local t=$1 c=$2 r=$3 node file lb t0 rc=0
	[[ $t == leader ]] && node=$leader || node=$follower
	file=cluster-write-$t-c$c-r$r.json
	lb=$(load1)
	t0=$(all_ticks)
	local start
	start=$(date -u +%H:%M:%S)
	"$AMBIT" bench write --endpoint "${GRPC[$node]}" "${B[@]}" -c "$c" --batch "$BATCH" -d "$DUR" --warmup "$WARMUP" --json \
		>"$OUT/$file" 2>"$OUT/$file.err" || rc=$?
	echo -e "$file\t$start\t$lb\t$(load1)\t$(awk -v a="$t0" -v b="$(all_ticks)" -v t="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/t}')\t$warm\t$rc" >>"$OUT/cluster-runs.tsv"
	[[ $rc -eq 0 ]] || log "  $file: exit status $rc (errors; see $file and $file.err)"
}
for r in $(seq 1 "$REPS"); do
	log "round $r/$REPS (load average $(load1))"
	if ((r % 2)); then order="leader follower"; else order="follower leader"; fi
	for t in $order; do
		for c in $CONCS; do
			run "$t" "$c" "$r"
		done
	done
done
status "${GRPC[n1]}" | tee "$OUT/cluster-status-after.txt"
echo "finished: $(date -u +%FT%TZ); uptime: $(uptime)" >>"$OUT/cluster-machine.txt"
log "done: $OUT"
summarize "$OUT"
