#!/usr/bin/env bash
# matrix.sh: the issue #7 benchmark matrix against `ambit serve` on loopback.
#
#   bench/scripts/matrix.sh [OUTDIR]          run the matrix, then summarize
#   bench/scripts/matrix.sh --summary OUTDIR  only (re)write OUTDIR/summary.md
#
# For each workload and size: LOAD_REPS fresh servers (own data dir,
# plaintext, preshared key), each loaded with `ambit bench load` (bulk-import
# rate) and its VmRSS/VmHWM read from /proc right after loading; the last one
# then serves REPS rounds of
#
#   check -c 16, check -c 64, checkbulk -c C, lookup-resources -c C_LOOKUP,
#   lookup-subjects -c C_LOOKUP, mixed -c C          (each -d DUR --warmup WARMUP)
#
# and its RSS is read again after the rounds. Every run writes its --json
# result to OUTDIR/<workload>-<size>-<op>-c<N>-r<round>.json; runs.tsv records
# per run the load average before and after, the server's CPU time (utime +
# stime from /proc/PID/stat, warm-up included) and the client's (GNU time),
# and the exit status (1: errors or wrong answers). summary.md holds medians
# over the rounds, the spread of ok/s, and the error and mismatch totals.
#
# Environment (defaults): AMBIT (/tmp/ambit-matrix), WORKLOADS (collab deep
# wide caveats), SIZES (small medium), REPS (3), LOAD_REPS (3), DUR (5s),
# WARMUP (1s), C (16), C_LOOKUP (4), PORT_BASE (61200), KEY (matrixkey),
# TREE (a label for machine.txt, e.g. the commit hash), WORK (a new
# /tmp/matrix-run.XXXXXX, removed at the end).
#
# Lookups run at C_LOOKUP = 4 because a run only ends when its in-flight
# requests do: a collab-medium LookupSubjects takes seconds to tens of
# seconds at -c 16, which alone would blow the matrix's time budget.
#
# Ports default above 61000, outside Linux's ephemeral range (32768-60999):
# a client socket in TIME-WAIT on a port in that range (curl, the harness)
# makes the server's bind of the same port fail for a minute.
set -uo pipefail

summarize() {
	python3 - "$1" <<'PY'
import glob, json, os, re, statistics as st, sys

out = sys.argv[1]
runs = {}  # file -> row of runs.tsv
tsv = os.path.join(out, "runs.tsv")
if os.path.exists(tsv):
    with open(tsv) as f:
        hdr = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(hdr, line.rstrip("\n").split("\t")))
            runs[r["file"]] = r

def med(xs):
    xs = [x for x in xs if x is not None]
    return st.median(xs) if xs else None

def ms(us):
    if us is None:
        return "—"
    if us >= 1e6:
        return f"{us/1e6:.2f} s"
    if us >= 1e4:
        return f"{us/1e3:.0f} ms"
    if us >= 1e3:
        return f"{us/1e3:.1f} ms"
    return f"{us/1e3:.2f} ms"

def rate(x):
    if x is None:
        return "—"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"

pat = re.compile(r"^(?P<wl>[a-z]+)-(?P<size>[a-z]+)-(?P<op>[a-z-]+)-c(?P<c>\d+)-r(?P<r>\d+)\.json$")
groups = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    m = pat.match(os.path.basename(path))
    if not m:
        continue
    try:
        with open(path) as f:
            d = json.load(f)
    except Exception:
        d = None
    key = (m["size"], m["wl"], m["op"], int(m["c"]))
    groups.setdefault(key, []).append((os.path.basename(path), d))

wls = ["collab", "deep", "wide", "caveats"]
ops = ["check", "checkbulk", "lookup-resources", "lookup-subjects", "mixed"]
order = lambda k: (k[0] != "small", wls.index(k[1]) if k[1] in wls else 9, ops.index(k[2]) if k[2] in ops else 9, k[3])

lines = []
for size in ("small", "medium", "large"):
    keys = sorted([k for k in groups if k[0] == size], key=order)
    if not keys:
        continue
    lines += [f"### {size}", "",
              "| workload | op | c | ok/s median (min–max) | p50 | p95 | p99 | p99.9 | errors | mismatches | allowed | rounds | load avg |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for k in keys:
        rs = groups[k]
        ds = [d for _, d in rs if d]
        lat = lambda q: med([d["latency"][q] for d in ds if d["latency"]["count"]])
        ps = [d["ok_requests_per_second"] for d in ds]
        err = sum(d["errors"] for d in ds)
        mis = sum(d["mismatches"] for d in ds)
        failed = len(rs) - len(ds)
        allowed = med([d["allowed_fraction"] for d in ds if d["checks"]])
        unit = ""
        if k[2] == "checkbulk" and ds:
            per = med([d["checks"] / max(d["requests"], 1) for d in ds])
            unit = f" = {rate(med(ps)*per)} checks/s"
        la = []
        for name, _ in rs:
            r = runs.get(name)
            if r:
                la += [float(r["load1_before"]), float(r["load1_after"])]
        lav = f"{min(la):.1f}–{max(la):.1f}" if la else "—"
        errs = f"{err}" + (f" (+{failed} runs without JSON)" if failed else "")
        lines.append(f"| {k[1]} | {k[2]} | {k[3]} | {rate(med(ps))} ({rate(min(ps)) if ps else '—'}–{rate(max(ps)) if ps else '—'}){unit} | "
                     f"{ms(lat('p50_us'))} | {ms(lat('p95_us'))} | {ms(lat('p99_us'))} | {ms(lat('p999_us'))} | {errs} | {mis} | "
                     f"{'—' if allowed is None else f'{allowed*100:.1f} %'} | {len(rs)} | {lav} |")
    lines.append("")

# load rates and RSS
lpat = re.compile(r"^(?P<wl>[a-z]+)-(?P<size>[a-z]+)-load-r(?P<r>\d+)\.json$")
loads = {}
for path in sorted(glob.glob(os.path.join(out, "*-load-r*.json"))):
    m = lpat.match(os.path.basename(path))
    if not m:
        continue
    try:
        with open(path) as f:
            d = json.load(f)
        d = d[0] if isinstance(d, list) else d
    except Exception:
        d = None
    loads.setdefault((m["size"], m["wl"]), []).append(d)
rss = {}
rpath = os.path.join(out, "rss.tsv")
if os.path.exists(rpath):
    with open(rpath) as f:
        hdr = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(hdr, line.rstrip("\n").split("\t")))
            rss.setdefault((r["size"], r["workload"], r["phase"].startswith("load")), []).append(r)
if loads:
    lines += ["### load (ImportBulkRelationships) and server memory", "",
              "| size | workload | relationships | rels/s median (min–max) | RSS after load, median (min–max) | peak RSS (VmHWM) at load | RSS after the rounds | peak RSS after the rounds |",
              "|---|---|---|---|---|---|---|---|"]
    mib = lambda kb: f"{kb/1024:.0f} MiB"
    for (size, wl) in sorted(loads, key=lambda k: (k[0] != "small", wls.index(k[1]) if k[1] in wls else 9)):
        ds = [d for d in loads[(size, wl)] if d]
        ps = [d["relationships_per_second"] for d in ds]
        n = ds[0]["relationships"] if ds else 0
        rl = [float(r["vmrss_kb"]) for r in rss.get((size, wl, True), [])]
        hl = [float(r["vmhwm_kb"]) for r in rss.get((size, wl, True), [])]
        ra = [float(r["vmrss_kb"]) for r in rss.get((size, wl, False), [])]
        ha = [float(r["vmhwm_kb"]) for r in rss.get((size, wl, False), [])]
        lines.append(f"| {size} | {wl} | {n:,} | {rate(med(ps))} ({rate(min(ps)) if ps else '—'}–{rate(max(ps)) if ps else '—'}) | "
                     f"{mib(med(rl)) if rl else '—'} ({mib(min(rl)) if rl else '—'}–{mib(max(rl)) if rl else '—'}) | "
                     f"{mib(med(hl)) if hl else '—'} | {mib(med(ra)) if ra else '—'} | {mib(med(ha)) if ha else '—'} |")
    lines.append("")
text = "\n".join(lines)
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(text)
print(text)
PY
}

if [[ "${1:-}" == "--summary" ]]; then
	summarize "${2:?usage: matrix.sh --summary OUTDIR}"
	exit
fi

AMBIT=${AMBIT:-/tmp/ambit-matrix}
WORKLOADS=${WORKLOADS:-"collab deep wide caveats"}
SIZES=${SIZES:-"small medium"}
REPS=${REPS:-3}
LOAD_REPS=${LOAD_REPS:-3}
DUR=${DUR:-5s}
WARMUP=${WARMUP:-1s}
C=${C:-16}
C_LOOKUP=${C_LOOKUP:-4}
PORT_BASE=${PORT_BASE:-61200}
KEY=${KEY:-matrixkey}
OUT=${1:-/tmp/matrix-out-$(date -u +%Y%m%dT%H%M%SZ)}
WORK=${WORK:-$(mktemp -d /tmp/matrix-run.XXXXXX)}
mkdir -p "$OUT" "$WORK"
TICK=$(getconf CLK_TCK)

SERVER_PID=""
cleanup() {
	if [[ -n "$SERVER_PID" ]]; then
		kill "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/matrix.log" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }
# cpu_ticks PID: utime + stime in clock ticks (fields 14 and 15 of /proc/PID/stat;
# the command name, field 2, has no spaces for ambit).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
mem_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null; }

# start_server NAME GRPC RAFT HTTP: a fresh single-node server; sets SERVER_PID.
start_server() {
	local name=$1 grpc=$2 raft=$3 http=$4
	rm -rf "$WORK/$name"
	"$AMBIT" serve --data-dir "$WORK/$name" --grpc-addr "$grpc" --raft-addr "$raft" --http-addr "$http" \
		--preshared-key "$KEY" --node-id "$name" >"$OUT/server-$name.log" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 1 150); do
		if curl -sf "http://$http/readyz" >/dev/null 2>&1; then
			return 0
		fi
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			log "server $name exited; see $OUT/server-$name.log"
			SERVER_PID=""
			return 1
		fi
		sleep 0.2
	done
	log "server $name not ready after 30 s"
	return 1
}

stop_server() {
	if [[ -n "$SERVER_PID" ]]; then
		kill "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
		SERVER_PID=""
	fi
	rm -rf "$WORK/$1"
}

echo -e "size\tworkload\tphase\tvmrss_kb\tvmhwm_kb\tload1" >"$OUT/rss.tsv"
echo -e "file\tstart_utc\tload1_before\tload1_after\tserver_cpu_s\tclient_user_s\tclient_sys_s\twall_s\trc" >"$OUT/runs.tsv"
record_rss() { # size workload phase
	echo -e "$1\t$2\t$3\t$(mem_kb "$SERVER_PID" VmRSS)\t$(mem_kb "$SERVER_PID" VmHWM)\t$(load1)" >>"$OUT/rss.tsv"
}

# run FILE ARGS...: one bench run with --json into OUT/FILE, recorded in runs.tsv.
run() {
	local file=$1
	shift
	local start lb la t0 t1 rc=0
	start=$(date -u +%H:%M:%S)
	lb=$(load1)
	t0=$(cpu_ticks "$SERVER_PID")
	/usr/bin/time -f '%U %S %e' -o "$WORK/time" "$AMBIT" bench "$@" --json >"$OUT/$file" 2>"$OUT/$file.err" || rc=$?
	t1=$(cpu_ticks "$SERVER_PID")
	la=$(load1)
	read -r cu cs wall <"$WORK/time" || true
	echo -e "$file\t$start\t$lb\t$la\t$(awk -v a="$t0" -v b="$t1" -v t="$TICK" 'BEGIN{printf "%.2f", (b-a)/t}')\t$cu\t$cs\t$wall\t$rc" >>"$OUT/runs.tsv"
	if [[ $rc -ne 0 ]]; then
		log "  $file: exit status $rc (errors or wrong answers; see $file and $file.err)"
	fi
}

{
	echo "ambit: $AMBIT (sha256 $(sha256sum "$AMBIT" | cut -c1-16), tree ${TREE:-unknown})"
	echo "started: $(date -u +%FT%TZ)"
	echo "uname: $(uname -srm)"
	echo "nproc: $(nproc)"
	grep -m1 'model name' /proc/cpuinfo
	grep MemTotal /proc/meminfo
	echo "uptime: $(uptime)"
	echo "WORKLOADS=$WORKLOADS SIZES=$SIZES REPS=$REPS LOAD_REPS=$LOAD_REPS DUR=$DUR WARMUP=$WARMUP C=$C C_LOOKUP=$C_LOOKUP"
} >"$OUT/machine.txt"

i=0
for size in $SIZES; do
	for wl in $WORKLOADS; do
		p=$((PORT_BASE + 10 * i))
		i=$((i + 1))
		grpc=127.0.0.1:$((p + 1)) raft=127.0.0.1:$((p + 2)) http=127.0.0.1:$((p + 3))
		B=(--endpoint "$grpc" --insecure --token "$KEY" --workload "$wl" --size "$size")
		for l in $(seq 1 "$LOAD_REPS"); do
			name=$wl-$size-$l
			log "$wl $size: load $l/$LOAD_REPS (load average $(load1))"
			start_server "$name" "$grpc" "$raft" "$http" || continue 2
			run "$wl-$size-load-r$l.json" load "${B[@]}"
			record_rss "$size" "$wl" "load-r$l"
			if [[ $l -lt $LOAD_REPS ]]; then
				stop_server "$name"
			fi
		done
		for r in $(seq 1 "$REPS"); do
			log "$wl $size: round $r/$REPS (load average $(load1))"
			T=(-d "$DUR" --warmup "$WARMUP")
			run "$wl-$size-check-c16-r$r.json" check "${B[@]}" -c 16 "${T[@]}"
			run "$wl-$size-check-c64-r$r.json" check "${B[@]}" -c 64 "${T[@]}"
			run "$wl-$size-checkbulk-c$C-r$r.json" checkbulk "${B[@]}" -c "$C" "${T[@]}"
			run "$wl-$size-lookup-resources-c$C_LOOKUP-r$r.json" lookup-resources "${B[@]}" -c "$C_LOOKUP" "${T[@]}"
			run "$wl-$size-lookup-subjects-c$C_LOOKUP-r$r.json" lookup-subjects "${B[@]}" -c "$C_LOOKUP" "${T[@]}"
			run "$wl-$size-mixed-c$C-r$r.json" mixed "${B[@]}" -c "$C" "${T[@]}"
		done
		record_rss "$size" "$wl" "after-rounds"
		stop_server "$wl-$size-$LOAD_REPS"
	done
done
echo "finished: $(date -u +%FT%TZ); uptime: $(uptime)" >>"$OUT/machine.txt"
log "done: $OUT"
summarize "$OUT"
