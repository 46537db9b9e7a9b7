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
# of this checkout. Binaries and stores go to a temporary directory.
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

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gorun-bench-cluster.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n "${GORUN:-}" ]]; then
	G=$GORUN
else
	echo "building gorun..." >&2
	go build -o "$TMP/gorun" ./cmd/gorun
	G=$TMP/gorun
fi

"$G" broker --store "$TMP/store" --listen 127.0.0.1:0 >"$TMP/url" &
pids+=($!)
for _ in $(seq 100); do [[ -s "$TMP/url" ]] && break; sleep 0.05; done
URL=$(head -1 "$TMP/url")
[[ "$URL" == nats://* ]] || { echo "bench-cluster: the broker did not start" >&2; exit 1; }

# start_workers COUNT SLOTS: starts them and waits until the broker lists their slots.
workers=()
start_workers() {
	local i
	for ((i = 0; i < $1; i++)); do
		"$G" worker --broker "$URL" -j "$2" 2>/dev/null &
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

secs() { # secs CMD...: wall seconds of a command, which must succeed
	local s e
	s=$(date +%s.%N)
	"$@" >/dev/null 2>"$TMP/err" || { echo "bench-cluster: failed: $*" >&2; cat "$TMP/err" >&2; exit 1; }
	e=$(date +%s.%N)
	echo "$e - $s" | bc
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "gorun ${GORUN:-$(git describe --always --dirty 2>/dev/null || echo "?")}, $(nproc) CPUs, $(uname -sr), load $(cut -d" " -f1-3 /proc/loadavg)"

# --- 1: per-task overhead ----------------------------------------------------------------
for ((i = 0; i < N_TRUE; i++)); do echo '{"cmd": ["true"]}'; done >"$TMP/true.jsonl"
start_workers 2 4
: >"$TMP/local" && : >"$TMP/remote"
for ((r = 0; r < ROUNDS; r++)); do
	secs "$G" exec "$TMP/true.jsonl" -j 8 -o none >>"$TMP/local"
	secs "$G" exec "$TMP/true.jsonl" --broker "$URL" -o none >>"$TMP/remote"
done
stop_workers
lm=$(median <"$TMP/local")
rm_=$(median <"$TMP/remote")
awk -v n="$N_TRUE" -v l="$lm" -v r="$rm_" 'BEGIN {
	printf "%d x cmd [true]: local -j 8 %.2fs, 2 workers x 4 slots %.2fs: %.2fx; broker overhead %.3f ms/task\n", n, l, r, r / l, (r - l) * 1000 / n
}'

# --- 2: scaling ------------------------------------------------------------------------
for ((i = 0; i < N_SLEEP; i++)); do echo '{"cmd": ["sleep", "0.05"]}'; done >"$TMP/sleep.jsonl"
start_workers 1 1
one=$(secs "$G" exec "$TMP/sleep.jsonl" --broker "$URL" -o none)
stop_workers
start_workers 4 4
many=$(secs "$G" exec "$TMP/sleep.jsonl" --broker "$URL" -o none)
stop_workers
awk -v n="$N_SLEEP" -v a="$one" -v b="$many" 'BEGIN {
	printf "%d x sleep 0.05: 1 worker x 1 slot %.2fs, 4 workers x 4 slots %.2fs: %.1fx\n", n, a, b, a / b
}'
