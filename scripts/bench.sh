#!/usr/bin/env bash
# Benchmark of `revoke flush` against a `revoke lab` on loopback, run by hand.
# Results go in docs/performance.md; nothing here is asserted by a test.
#
# What it does, for each lab size:
#   1. builds the release binary (unless SKIP_BUILD=1),
#   2. starts `revoke lab --servers N --latency-ms L --recycle-ms R` in the
#      background and waits for its revoke.toml and "Running until Ctrl-C",
#   3. the floor: flushes ONE server of that lab FLOOR_RUNS times and keeps
#      the slowest wall time (no flush of N servers can beat one server),
#   4. flushes all N servers RUNS times under GNU time -v: wall clock, user+sys
#      CPU and peak RSS of the revoke process, the lab's CPU over the same
#      interval (from /proc/<pid>/stat), and the slowest duration_ms in the
#      JSON report,
#   5. optional contrast runs with other --parallel values,
#   6. the alternative a user would write: a Python pywinrm fan-out
#      (scripts/bench_pywinrm.py, a ThreadPoolExecutor of PYWINRM_THREADS
#      threads, 0 = one per server) recycling the same pools on the same lab,
#   7. stops the lab (also on error or Ctrl-C, via a trap).
#
# Settings (environment):
#   SERVERS=200 LATENCY_MS=20 RECYCLE_MS=500 RUNS=3 FLOOR_RUNS=3
#   CONTRAST_PARALLEL="200 8"   extra --parallel values on the main lab, 1 run each
#   SMALL_SERVERS=50            second, smaller lab (default --parallel), RUNS runs;
#                               empty to skip
#   LARGE_SERVERS=1000          a large lab, 1 run each of revoke and pywinrm; empty to skip
#   PYWINRM_THREADS="32 0"      pywinrm fan-outs on the main lab (0: a thread per server);
#                               empty to skip
#   SKIP_BUILD=1                use the existing release binary
#   FLUSH_TIMEOUT=900           hard limit (s) on any one flush process
#   OUT_DIR=...                 where raw outputs are kept [default: a mktemp dir]
#
# Loopback only. Everything stops by itself.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
SERVERS=${SERVERS:-200}
LATENCY_MS=${LATENCY_MS:-20}
RECYCLE_MS=${RECYCLE_MS:-500}
RUNS=${RUNS:-3}
FLOOR_RUNS=${FLOOR_RUNS:-3}
CONTRAST_PARALLEL=${CONTRAST_PARALLEL-200 8}
SMALL_SERVERS=${SMALL_SERVERS-50}
LARGE_SERVERS=${LARGE_SERVERS-1000}
PYWINRM_THREADS=${PYWINRM_THREADS-32 0}
python="$root/.venv/bin/python"
FLUSH_TIMEOUT=${FLUSH_TIMEOUT:-900}
# The lab's documented default account: a lab secret, not a real one.
LAB_PASSWORD='Lab-Passw0rd!'

target_dir=${CARGO_TARGET_DIR:-$root/target}
bin="$target_dir/release/revoke"
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/revoke-bench.XXXXXX)}
mkdir -p "$OUT_DIR"

log() { printf '%s\n' "$*" >&2; }

# --- tools ---------------------------------------------------------------
if [ ! -x /usr/bin/time ]; then
    log "GNU time missing: installing it (apt-get install -y time)"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y time >/dev/null || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
    else
        log "cannot install GNU time here: install it (package 'time') and rerun"; exit 1
    fi
fi
if ! command -v jq >/dev/null; then
    log "jq missing: installing it (apt-get install -y jq)"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y jq >/dev/null || { apt-get update >/dev/null && apt-get install -y jq >/dev/null; }
    else
        log "cannot install jq here: install it and rerun"; exit 1
    fi
fi

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building the release binary (cargo build --release) ..."
    (cd "$root" && cargo build --release --quiet)
fi
[ -x "$bin" ] || { log "no release binary at $bin"; exit 1; }

clk_tck=$(getconf CLK_TCK)

# --- the lab ---------------------------------------------------------------
lab_pid=""
stop_lab() {
    [ -n "$lab_pid" ] || return 0
    if kill -0 "$lab_pid" 2>/dev/null; then
        kill -INT "$lab_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$lab_pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$lab_pid" 2>/dev/null; then
            log "lab did not stop on SIGINT within 5 s; sending SIGTERM"
            kill -TERM "$lab_pid" 2>/dev/null || true
            sleep 1
            kill -KILL "$lab_pid" 2>/dev/null || true
        fi
    fi
    wait "$lab_pid" 2>/dev/null || true
    lab_pid=""
}
trap stop_lab EXIT
trap 'exit 130' INT TERM

# start_lab N DIR [LATENCY_MS RECYCLE_MS]: starts the lab, sets lab_pid, waits
# until it is serving.
start_lab() {
    local n=$1 dir=$2 latency=${3:-$LATENCY_MS} recycle=${4:-$RECYCLE_MS}
    mkdir -p "$dir"
    "$bin" lab --servers "$n" --latency-ms "$latency" --recycle-ms "$recycle" \
        --admin-password "$LAB_PASSWORD" --write-config "$dir/revoke.toml" \
        >"$dir/lab.out" 2>"$dir/lab.err" &
    lab_pid=$!
    for _ in $(seq 600); do
        if [ -s "$dir/revoke.toml" ] && grep -q 'Running until Ctrl-C' "$dir/lab.out"; then
            return 0
        fi
        kill -0 "$lab_pid" 2>/dev/null || { log "the lab exited:"; cat "$dir/lab.err" >&2; exit 1; }
        sleep 0.1
    done
    log "the lab did not come up within 60 s"; exit 1
}

# time_fields FILE: "wall user sys maxrss_kb" from a GNU time -v report
# ("Elapsed (wall clock) time (h:mm:ss or m:ss): 0:21.85"); NA when the
# measured process was killed before time wrote it.
time_fields() {
    awk -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; w = s }
        /User time \(seconds\)/ { u = $2 }
        /System time \(seconds\)/ { y = $2 }
        /Maximum resident set size/ { r = $2 }
        END { print (w == "" ? "NA" : w), (u == "" ? "NA" : u), (y == "" ? "NA" : y), (r == "" ? "NA" : r) }' "$1" 2>/dev/null ||
        echo "NA NA NA NA"
}

# user+sys clock ticks of a process so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# --- one measured flush ------------------------------------------------------
# flush_once TAG CONFIG [extra flush args...]
# Prints one line: tag wall_s cpu_s user_s sys_s maxrss_kb lab_cpu_s slowest_ms ok servers exit
flush_once() {
    local tag=$1 config=$2; shift 2
    local json="$OUT_DIR/$tag.json" tv="$OUT_DIR/$tag.time" err="$OUT_DIR/$tag.err"
    local lab_before lab_after rc=0
    # Other work on the shared cores skews timings: keep the load next to the numbers.
    echo "$tag $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT_DIR/loadavg.txt"
    lab_before=$(cpu_ticks "$lab_pid")
    REVOKE_PASSWORD="$LAB_PASSWORD" timeout "$FLUSH_TIMEOUT" \
        /usr/bin/time -v -o "$tv" \
        "$bin" flush --config "$config" --output json --quiet "$@" >"$json" 2>"$err" || rc=$?
    lab_after=$(cpu_ticks "$lab_pid")
    local wall user sys rss
    read -r wall user sys rss < <(time_fields "$tv")
    local slowest ok servers
    slowest=$(jq '[.servers[].duration_ms] | max' "$json" 2>/dev/null || echo NA)
    ok=$(jq '.summary.ok' "$json" 2>/dev/null || echo NA)
    servers=$(jq '.summary.servers' "$json" 2>/dev/null || echo NA)
    if [ "$rc" != 0 ] || [ "$ok" != "$servers" ]; then
        log "WARNING: $tag: exit $rc, $ok/$servers servers ok (see $json, $err)"
        jq -r '.servers[] | select(.status != "ok") | "  \(.host) \(.status): \(.error)"' "$json" 2>/dev/null | head -5 >&2 || true
    fi
    awk -v t="$tag" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" \
        -v l="$(( lab_after - lab_before ))" -v hz="$clk_tck" -v m="$slowest" \
        -v ok="$ok" -v n="$servers" -v rc="$rc" \
        'BEGIN { printf "%s %.2f %.2f %.2f %.2f %d %.2f %s %s %s %s\n", t, w, u + s, u, s, r, l / hz, m, ok, n, rc }'
}

# pywinrm_once TAG CONFIG THREADS: the Python fan-out, measured like flush_once.
pywinrm_once() {
    local tag=$1 config=$2 threads=$3
    local out="$OUT_DIR/$tag.out" tv="$OUT_DIR/$tag.time" err="$OUT_DIR/$tag.err"
    local lab_before lab_after rc=0
    echo "$tag $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT_DIR/loadavg.txt"
    lab_before=$(cpu_ticks "$lab_pid")
    REVOKE_PASSWORD="$LAB_PASSWORD" timeout "$FLUSH_TIMEOUT" \
        /usr/bin/time -v -o "$tv" \
        "$python" "$root/scripts/bench_pywinrm.py" "$config" "$threads" >"$out" 2>"$err" || rc=$?
    lab_after=$(cpu_ticks "$lab_pid")
    local wall user sys rss ok servers
    read -r wall user sys rss < <(time_fields "$tv")
    ok=$(jq '.ok' "$out" 2>/dev/null || true)
    servers=$(jq '.servers' "$out" 2>/dev/null || true)
    ok=${ok:-NA} servers=${servers:-NA}
    [ "$rc" = 0 ] && [ "$ok" = "$servers" ] || log "WARNING: $tag: exit $rc, $ok/$servers ok (see $out, $err)"
    awk -v t="$tag" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" \
        -v l="$(( lab_after - lab_before ))" -v hz="$clk_tck" \
        -v ok="$ok" -v n="$servers" -v rc="$rc" \
        'BEGIN { printf "%s %.2f %.2f %.2f %.2f %d %.2f NA %s %s %s\n", t, w, u + s, u, s, r, l / hz, ok, n, rc }'
}

# median and min..max of a column of numbers on stdin
stats() { sort -n | awk '{ a[NR] = $1 } END {
    if (NR == 0) { print "NA NA NA"; exit }
    med = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
    printf "%.2f %.2f %.2f\n", med, a[1], a[NR] }'; }

results="$OUT_DIR/results.txt"
: >"$results"

# bench_lab N RUNS PYWINRM_THREADS CONTRAST...: one lab of N servers, floor,
# main runs, pywinrm fan-outs ("32 0"; empty for none), contrasts.
bench_lab() {
    local n=$1 runs=$2 pythreads=$3; shift 3
    local dir="$OUT_DIR/lab$n"
    log "== lab of $n servers, latency ${LATENCY_MS} ms, recycle ${RECYCLE_MS} ms =="
    start_lab "$n" "$dir"
    log "lab pid $lab_pid; config $dir/revoke.toml"
    local first
    first=$(grep -m1 -o '"127\.0\.0\.1:[0-9]*"' "$dir/revoke.toml" | tr -d '"')

    for i in $(seq "$FLOOR_RUNS"); do
        log "floor run $i: one server ($first)"
        echo "floor$n $(flush_once "floor$n-$i" "$dir/revoke.toml" --servers "$first")" >>"$results"
    done
    for i in $(seq "$runs"); do
        log "run $i: all $n servers, default --parallel"
        echo "main$n $(flush_once "main$n-$i" "$dir/revoke.toml")" >>"$results"
    done
    for t in $pythreads; do
        log "pywinrm fan-out: all $n servers, $t threads (0: one per server)"
        echo "pywinrm$t-$n $(pywinrm_once "pywinrm$t-$n" "$dir/revoke.toml" "$t")" >>"$results"
    done
    for p in "$@"; do
        log "contrast: all $n servers, --parallel $p"
        echo "p$p-$n $(flush_once "p$p-$n" "$dir/revoke.toml" --parallel "$p")" >>"$results"
    done
    local hwm
    hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$lab_pid/status")
    echo "labrss$n $hwm" >>"$results"
    stop_lab
}

# decompose LATENCY RECYCLE: one-server lab, FLOOR_RUNS flushes. The medians
# with latency and recycle time switched on and off separately tell how many
# round trips wait for the added latency (slope between latency L and 3L, so
# the timer's own overshoot per sleep cancels) and how many recycle waits one
# server costs.
decompose() {
    local lat=$1 rec=$2 dir="$OUT_DIR/decomp-$1-$2"
    log "== decomposition: one server, latency $lat ms, recycle $rec ms =="
    start_lab 1 "$dir" "$lat" "$rec"
    for i in $(seq "$FLOOR_RUNS"); do
        echo "decomp-$lat-$rec $(flush_once "decomp-$lat-$rec-$i" "$dir/revoke.toml")" >>"$OUT_DIR/decomp.txt"
    done
    stop_lab
}

if [ -n "$PYWINRM_THREADS" ]; then
    bash "$root/scripts/setup-test-deps.sh" >/dev/null   # pywinrm in .venv
fi
# shellcheck disable=SC2086 # CONTRAST_PARALLEL is a list
bench_lab "$SERVERS" "$RUNS" "$PYWINRM_THREADS" $CONTRAST_PARALLEL
if [ -n "$SMALL_SERVERS" ]; then
    bench_lab "$SMALL_SERVERS" "$RUNS" ""
fi
if [ -n "$LARGE_SERVERS" ]; then
    bench_lab "$LARGE_SERVERS" 1 "${PYWINRM_THREADS:+0}"
fi
if [ "${DECOMPOSE:-1}" = 1 ]; then
    : >"$OUT_DIR/decomp.txt"
    decompose 0 0
    decompose "$LATENCY_MS" 0
    decompose "$(( 3 * LATENCY_MS ))" 0
    decompose 0 "$RECYCLE_MS"
fi

# --- the table ---------------------------------------------------------------
echo
echo "revoke flush benchmark: $(nproc) cores, $(uname -r), latency ${LATENCY_MS} ms/request, recycle ${RECYCLE_MS} ms"
echo "raw outputs: $OUT_DIR (load averages before each flush: loadavg.txt)"
echo
floor_of() { awk -v g="floor$1" '$1 == g { print $3 }' "$results" | sort -n | tail -1; }
# results columns: group tag wall cpu user sys rss_kb lab_cpu slowest_ms ok servers exit
printf '%-14s %8s %8s %8s %10s %10s %8s %11s %8s\n' \
    "run" "wall s" "cpu s" "rss MiB" "lab cpu s" "slowest s" "floor s" "wall/floor" "ok"
grep -v '^labrss' "$results" | while read -r group tag wall cpu _u _s rss labcpu slowest ok n rc; do
    size=${group##*[!0-9]}
    floor=$(floor_of "$size")
    awk -v t="$tag" -v w="$wall" -v c="$cpu" -v r="$rss" -v l="$labcpu" -v m="$slowest" \
        -v f="$floor" -v ok="$ok/$n" -v rc="$rc" 'BEGIN {
        printf "%-14s %8.2f %8.2f %8.1f %10.2f %10.2f %8.2f %11.2f %8s%s\n",
            t, w, c, r / 1024, l, m / 1000, f, w / f, ok, (rc == 0 ? "" : " exit " rc) }'
done
echo
for size in "$SERVERS" ${SMALL_SERVERS:+"$SMALL_SERVERS"} ${LARGE_SERVERS:+"$LARGE_SERVERS"}; do
    floor=$(floor_of "$size")
    read -r med lo hi < <(awk -v g="main$size" '$1 == g { print $3 }' "$results" | stats)
    read -r cmed clo chi < <(awk -v g="main$size" '$1 == g { print $4 }' "$results" | stats)
    read -r lmed llo lhi < <(awk -v g="main$size" '$1 == g { print $8 }' "$results" | stats)
    read -r rmed rlo rhi < <(awk -v g="main$size" '$1 == g { print $7 / 1024 }' "$results" | stats)
    read -r smed slo shi < <(awk -v g="main$size" '$1 == g { print $9 / 1000 }' "$results" | stats)
    labrss=$(awk -v g="labrss$size" '$1 == g { printf "%.1f", $2 / 1024 }' "$results")
    runs_done=$(awk -v g="main$size" '$1 == g' "$results" | wc -l)
    awk -v n="$size" -v med="$med" -v lo="$lo" -v hi="$hi" -v f="$floor" -v runs="$runs_done" 'BEGIN {
        printf "%d servers, default --parallel, %d run(s): wall median %.2f s (min %.2f, max %.2f); floor %.2f s; wall/floor %.2f\n",
            n, runs, med, lo, hi, f, med / f }'
    echo "    slowest server in the report: median ${smed} s (${slo}..${shi})"
    echo "    revoke CPU user+sys: median ${cmed} s (${clo}..${chi}); revoke peak RSS: median ${rmed} MiB (${rlo}..${rhi})"
    echo "    lab CPU during the flush: median ${lmed} s (${llo}..${lhi}); lab peak RSS ${labrss} MiB"
done
for size in "$SERVERS" ${LARGE_SERVERS:+"$LARGE_SERVERS"}; do
    read -r rwall _ < <(awk -v g="main$size" '$1 == g { print $3 }' "$results" | stats)
    read -r rcpu _ < <(awk -v g="main$size" '$1 == g { print $4 }' "$results" | stats)
    for t in $PYWINRM_THREADS; do
        line=$(awk -v g="pywinrm$t-$size" '$1 == g { print $3, $4, $12 }' "$results" | head -1)
        [ -n "$line" ] || continue
        read -r pwall pcpu prc <<<"$line"
        if [ "$prc" != 0 ]; then
            echo "$size servers: pywinrm fan-out ($t threads; 0: a thread per server) did not finish (exit $prc; 124: stopped after FLUSH_TIMEOUT=${FLUSH_TIMEOUT} s)"
            continue
        fi
        awk -v n="$size" -v t="$t" -v rw="$rwall" -v rc="$rcpu" -v pw="$pwall" -v pc="$pcpu" 'BEGIN {
            printf "%d servers: pywinrm fan-out (%s) %.2f s wall, %.2f s CPU; revoke defaults %.2f s wall (%.1f x faster), %.2f s CPU (%.1f %% of pywinrm'"'"'s)\n",
                n, (t == 0 ? "a thread per server" : t " threads"), pw, pc, rw, pw / rw, rc, 100 * rc / pc }'
    done
done
if [ -s "$OUT_DIR/decomp.txt" ]; then
    # The report's duration_ms (column 9) is the server's own time, without
    # process start-up: the cleaner number for the decomposition.
    med_of() { awk -v g="decomp-$1-$2" '$1 == g { print $9 }' "$OUT_DIR/decomp.txt" | stats | cut -d' ' -f1; }
    base=$(med_of 0 0); withlat=$(med_of "$LATENCY_MS" 0)
    withlat3=$(med_of "$(( 3 * LATENCY_MS ))" 0); withrec=$(med_of 0 "$RECYCLE_MS")
    echo
    echo "one server, duration_ms medians of $FLOOR_RUNS: no latency/no recycle ${base} ms;" \
        "latency ${LATENCY_MS} ms only ${withlat} ms; latency $(( 3 * LATENCY_MS )) ms only ${withlat3} ms;" \
        "recycle ${RECYCLE_MS} ms only ${withrec} ms"
    awk -v b="$base" -v l="$withlat" -v l3="$withlat3" -v r="$withrec" -v L="$LATENCY_MS" -v R="$RECYCLE_MS" 'BEGIN {
        if (L > 0) {
            n = (l3 - l) / (2 * L)
            printf "    round trips that wait for the added latency: %.1f ((t(3L) - t(L)) / 2L)\n", n
            if (n > 0) printf "    timer overshoot per %d ms sleep: %.2f ms\n", L, (l - b) / n - L
        }
        if (R > 0) printf "    recycle waits: %.2f ((t(R) - t(0)) / R)\n", (r - b) / R }'
fi
