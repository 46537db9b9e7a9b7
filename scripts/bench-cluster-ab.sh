#!/usr/bin/env bash
# bench-cluster-ab.sh: several builds (or settings) of the distributed side against
# each other and against a local run, in one sitting (`make bench-cluster-ab`).
#
#   scripts/bench-cluster-ab.sh NAME=BINARY[:VAR=VALUE,...] ...
#
# Each NAME gets a cluster of its own, up throughout: an embedded broker and 2 workers
# × 4 slots of BINARY, on loopback, with the VAR=VALUE settings in the environment of
# its broker, its workers and its submitter. Each round runs N_TRUE `cmd: [true]` tasks
# locally (`-j 8`, the first BINARY) and on every cluster (`--workers 8`), in the
# reverse order every other round; it prints the medians of the wall time and of the
# CPU per run (the submitter, the broker, the workers and their tasks, from
# /proc/PID/stat), each against the local run's.
#
# Knobs: N_TRUE=5000 ROUNDS=5. Stores go to a temporary directory.
#
# Example, this checkout against another build at GOMAXPROCS=1:
#   go build -o /tmp/new ./cmd/gorun
#   scripts/bench-cluster-ab.sh new=/tmp/new old=/tmp/old old1=/tmp/old:GOMAXPROCS=1
set -euo pipefail
cd "$(dirname "$0")/.."

N_TRUE=${N_TRUE:-5000}
ROUNDS=${ROUNDS:-5}
if (($# == 0)); then
	echo "usage: $0 NAME=BINARY[:VAR=VALUE,...] ..." >&2
	exit 2
fi

# shellcheck source=scripts/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
bench_tmpdir bench-ab

names=()
declare -A bin envs url broker workers
for spec in "$@"; do
	name=${spec%%=*} rest=${spec#*=}
	[[ -n "$name" && "$name" != "$spec" && "$name" != local && "$name" =~ ^[A-Za-z0-9_-]+$ ]] ||
		{ echo "bench-cluster-ab: $spec: want NAME=BINARY[:VAR=VALUE,...], NAME of letters, digits, - and _, not local" >&2; exit 2; }
	[[ -z "${bin[$name]:-}" ]] || { echo "bench-cluster-ab: $name: named twice" >&2; exit 2; }
	bin[$name]=${rest%%:*}
	envs[$name]=""
	[[ "$rest" == *:* ]] && envs[$name]=${rest#*:}
	[[ -x "${bin[$name]}" ]] || { echo "bench-cluster-ab: $name: ${bin[$name]} is not an executable" >&2; exit 2; }
	names+=("$name")
done

# settings NAME: NAME's VAR=VALUE settings, into the array vars, for env (which execs its
# command, so that $! of `env ... &` is the command's pid)
settings() {
	vars=()
	if [[ -n "${envs[$1]}" ]]; then IFS=, read -ra vars <<<"${envs[$1]}"; fi
}
on() { # on NAME CMD...: CMD with NAME's settings, in the foreground
	settings "$1"
	env "${vars[@]}" "${@:2}"
}

for name in "${names[@]}"; do
	settings "$name"
	env "${vars[@]}" "${bin[$name]}" broker --store "$TMP/$name.store" --listen 127.0.0.1:0 >"$TMP/$name.url" &
	broker[$name]=$!
	pids+=($!)
	for _ in $(seq 100); do [[ -s "$TMP/$name.url" ]] && break; sleep 0.05; done
	url[$name]=$(head -1 "$TMP/$name.url")
	[[ "${url[$name]}" == nats://* ]] || { echo "bench-cluster-ab: $name: the broker did not start" >&2; exit 1; }
	workers[$name]=""
	for _ in 1 2; do
		env "${vars[@]}" "${bin[$name]}" worker --broker "${url[$name]}" -j 4 >/dev/null 2>&1 &
		workers[$name]+="$! "
		pids+=($!)
	done
done
# the workers announce their slots: wait until a run on each cluster would see all 8
for name in "${names[@]}"; do
	got=0
	for _ in $(seq 200); do
		got=$(echo true | "${bin[$name]}" exec - --broker "${url[$name]}" -v -o none 2>&1 | sed -n 's/.*run started.* workers=\([0-9]*\).*/\1/p' | head -1)
		((${got:-0} >= 8)) && break
		sleep 0.05
	done
	((${got:-0} >= 8)) || { echo "bench-cluster-ab: $name: the workers did not announce 8 slots (saw ${got:-0})" >&2; exit 1; }
done

ticks() { # ticks PID: the CPU clock ticks of a process and its finished children
	local s
	local -a f
	s=$(</proc/"$1"/stat) && read -ra f <<<"${s##*) }"
	echo $((f[11] + f[12] + f[13] + f[14]))
}
own() { # own PID: the CPU clock ticks of the process alone
	local s
	local -a f
	s=$(</proc/"$1"/stat) && read -ra f <<<"${s##*) }"
	echo $((f[11] + f[12]))
}
mine() { # the CPU clock ticks of this script's finished commands
	local s
	local -a f
	s=$(</proc/$$/stat) && read -ra f <<<"${s##*) }"
	echo $((f[13] + f[14]))
}
# sample NAME: the ticks so far of this script's commands, NAME's broker, its workers
# and their tasks (4 numbers)
sample() {
	local p w=0 all=0
	if [[ "$1" != local ]]; then
		for p in ${workers[$1]}; do w=$((w + $(own "$p"))) all=$((all + $(ticks "$p"))); done
		echo "$(mine) $(ticks "${broker[$1]}") $w $((all - w))"
	else
		echo "$(mine) 0 0 0"
	fi
}

for ((i = 0; i < N_TRUE; i++)); do echo '{"cmd": ["true"]}'; done >"$TMP/true.jsonl"
echo "$(nproc) CPUs, $(uname -sr), load $(cut -d" " -f1-3 /proc/loadavg); $N_TRUE x cmd [true], $ROUNDS rounds"
order=(local "${names[@]}")
for ((r = 0; r < ROUNDS; r++)); do
	line="round $((r + 1)):"
	for name in "${order[@]}"; do
		c0=$(sample "$name")
		if [[ "$name" == local ]]; then
			w=$(bench_secs "${bin[${names[0]}]}" exec "$TMP/true.jsonl" -j 8 -o none)
		else
			w=$(bench_secs on "$name" "${bin[$name]}" exec "$TMP/true.jsonl" --broker "${url[$name]}" --workers 8 -o none)
		fi
		c1=$(sample "$name")
		echo "$w $c0 $c1" >>"$TMP/$name.runs"
		line+=" $name $(printf %.2f "$w")s"
	done
	echo "$line, load $(cut -d" " -f1 /proc/loadavg)"
	for ((i = 0, j = ${#order[@]} - 1; i < j; i++, j--)); do # the next round in the reverse order
		t=${order[i]} order[i]=${order[j]} order[j]=$t
	done
done

# medians per NAME: wall, submitter, broker, workers, tasks (seconds)
for name in local "${names[@]}"; do
	awk -v hz="$(getconf CLK_TCK)" -v name="$name" '
		function median(a, n,   i, j, t) {
			for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
			return a[int((n + 1) / 2)]
		}
		{ n++; w[n] = $1; s[n] = ($6 - $2) / hz; b[n] = ($7 - $3) / hz; o[n] = ($8 - $4) / hz; k[n] = ($9 - $5) / hz; c[n] = s[n] + b[n] + o[n] + k[n] }
		END { print name, median(w, n), median(c, n), median(s, n), median(b, n), median(o, n), median(k, n) }
	' "$TMP/$name.runs"
done | awk '
	$1 == "local" { lw = $2; lc = $3; printf "local -j 8: %.2fs, CPU %.2fs (its tasks included)\n", lw, lc; next }
	{ printf "%s, 2 workers x 4 slots: %.2fs (%.2fx), CPU %.2fs (%.2fx): submitter %.2fs, broker %.2fs, workers %.2fs, their tasks %.2fs\n", $1, $2, $2 / lw, $3, $3 / lc, $4, $5, $6, $7 }'
