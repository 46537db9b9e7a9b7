#!/usr/bin/env bash
# bench-cluster.sh: distributed runs against local ones, on this machine (`make bench`
# runs it after bench.sh; `make bench-cluster` alone). An embedded broker and the
# workers run on loopback.
#
#   1. N_TRUE `cmd: [true]` tasks on 2 workers × 4 slots vs a local -j 8 of the same
#      file, alternated ROUNDS times in one sitting; prints the medians, the ratio and
#      the broker's overhead per task.
#   2. N_SLEEP `sleep 0.05` tasks on 4 workers × 4 slots vs 1 worker × 1 slot.
#
# Knobs: N_TRUE=5000 N_SLEEP=1000 ROUNDS=3; QUICK=1 for a smoke run (N_TRUE=500
# N_SLEEP=100 ROUNDS=1); GORUN=/path/to/gorun measures that binary instead of a build
# of this checkout; DIST_GOMAXPROCS=N runs the broker, the workers and the distributed
# submitter with GOMAXPROCS=N (the local runs keep Go's default). Binaries and stores
# go to a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${QUICK:-}" == 1 ]]; then
	N_TRUE=${N_TRUE:-500}
	N_SLEEP=${N_SLEEP:-100}
	ROUNDS=${ROUNDS:-1}
fi
N_TRUE=${N_TRUE:-5000}
N_SLEEP=${N_SLEEP:-1000}
ROUNDS=${ROUNDS:-3}

# shellcheck source=scripts/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
bench_tmpdir bench-cluster

# "${dist[@]}" CMD...: a process of the distributed side (env execs it: $! stays its pid)
dist=(env)
[[ -n "${DIST_GOMAXPROCS:-}" ]] && dist+=("GOMAXPROCS=$DIST_GOMAXPROCS")

if [[ -n "${GORUN:-}" ]]; then
	G=$GORUN
else
	echo "building gorun..." >&2
	CGO_ENABLED=0 go build -o "$TMP/gorun" ./cmd/gorun # as make build does
	G=$TMP/gorun
fi

"${dist[@]}" "$G" broker --store "$TMP/store" --listen 127.0.0.1:0 >"$TMP/url" &
broker=$!
pids+=($!)
for _ in $(seq 100); do [[ -s "$TMP/url" ]] && break; sleep 0.05; done
URL=$(head -1 "$TMP/url")
[[ "$URL" == nats://* ]] || { echo "bench-cluster: the broker did not start" >&2; exit 1; }

# start_workers COUNT SLOTS: starts them and waits until the broker lists their slots.
workers=()
start_workers() {
	local i
	for ((i = 0; i < $1; i++)); do
		"${dist[@]}" "$G" worker --broker "$URL" -j "$2" 2>/dev/null &
		workers+=($!)
		pids+=($!)
	done
	# a run with no -j uses the live slots: wait until a dry probe sees them all
	local want=$(($1 * $2)) got=0
	for _ in $(seq 200); do
		got=$(probe_slots)
		((got >= want)) && return 0
		sleep 0.05
	done
	echo "bench-cluster: workers did not announce $want slots (saw $got)" >&2
	exit 1
}
probe_slots() { # the --workers a broker run would get, from its -v log
	echo true | "$G" exec - --broker "$URL" -v -o none 2>&1 | sed -n 's/.*run started.* workers=\([0-9]*\).*/\1/p' | head -1
}
stop_workers() {
	local p
	for p in "${workers[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	workers=()
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# cpu: the CPU clock ticks so far of this script's finished commands, of the broker,
# of the workers themselves and of their finished tasks (/proc/PID/stat: utime, stime,
# cutime, cstime), on one line
cpu() {
	local s p own=0 kids=0
	local -a f
	s=$(</proc/$$/stat) && read -ra f <<<"${s##*) }"
	printf '%d ' $((f[13] + f[14]))
	s=$(</proc/$broker/stat) && read -ra f <<<"${s##*) }"
	printf '%d ' $((f[11] + f[12] + f[13] + f[14]))
	for p in "${workers[@]}"; do
		s=$(</proc/"$p"/stat) && read -ra f <<<"${s##*) }"
		own=$((own + f[11] + f[12])) kids=$((kids + f[13] + f[14]))
	done
	echo "$own $kids"
}

echo "gorun ${GORUN:-$(git describe --always --dirty 2>/dev/null || echo "?")}, $(nproc) CPUs, $(uname -sr), load $(cut -d" " -f1-3 /proc/loadavg)${DIST_GOMAXPROCS:+, distributed side at GOMAXPROCS=$DIST_GOMAXPROCS}"

# --- 1: per-task overhead ----------------------------------------------------------------
for ((i = 0; i < N_TRUE; i++)); do echo '{"cmd": ["true"]}'; done >"$TMP/true.jsonl"
start_workers 2 4
: >"$TMP/local" && : >"$TMP/remote" && : >"$TMP/cpu"
for ((r = 0; r < ROUNDS; r++)); do
	c0=$(cpu)
	bench_secs "$G" exec "$TMP/true.jsonl" -j 8 -o none >>"$TMP/local"
	c1=$(cpu)
	bench_secs "${dist[@]}" "$G" exec "$TMP/true.jsonl" --broker "$URL" -o none >>"$TMP/remote"
	echo "$c0 $c1 $(cpu)" >>"$TMP/cpu"
done
stop_workers
lm=$(median <"$TMP/local")
rm_=$(median <"$TMP/remote")
awk -v n="$N_TRUE" -v l="$lm" -v r="$rm_" 'BEGIN {
	printf "%d x cmd [true]: local -j 8 %.2fs, 2 workers x 4 slots %.2fs: %.2fx; broker overhead %.3f ms/task\n", n, l, r, r / l, (r - l) * 1000 / n
}'
# where the CPU goes: each line is the ticks before the local run, before the
# distributed run and after it (4 numbers each: see cpu)
awk -v hz="$(getconf CLK_TCK)" '{
	local += $5 - $1; sub_ += $9 - $5; brk += $10 - $6; own += $11 - $7; kids += $12 - $8; n++
} END {
	l = local / hz / n; s = sub_ / hz / n; b = brk / hz / n; o = own / hz / n; k = kids / hz / n
	printf "CPU per run (means of %d): local %.2fs (its tasks included); distributed %.2fs: submitter %.2fs, broker %.2fs, workers %.2fs, their tasks %.2fs: %.2fx the CPU\n", n, l, s + b + o + k, s, b, o, k, (s + b + o + k) / l
}' "$TMP/cpu"

# --- 2: scaling ------------------------------------------------------------------------
for ((i = 0; i < N_SLEEP; i++)); do echo '{"cmd": ["sleep", "0.05"]}'; done >"$TMP/sleep.jsonl"
start_workers 1 1
one=$(bench_secs "${dist[@]}" "$G" exec "$TMP/sleep.jsonl" --broker "$URL" -o none)
stop_workers
start_workers 4 4
many=$(bench_secs "${dist[@]}" "$G" exec "$TMP/sleep.jsonl" --broker "$URL" -o none)
stop_workers
awk -v n="$N_SLEEP" -v a="$one" -v b="$many" 'BEGIN {
	printf "%d x sleep 0.05: 1 worker x 1 slot %.2fs, 4 workers x 4 slots %.2fs: %.1fx\n", n, a, b, a / b
}'
