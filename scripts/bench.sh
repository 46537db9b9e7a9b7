#!/usr/bin/env bash
# bench.sh: the script behind `make bench`. Times gorun against the per-task floor
# (spawnlimit, from ../shared/bench) and against xargs, rush and GNU parallel, running
# N trivial tasks (`true`) at a few concurrency levels, in three forms: command lines
# through sh -c, gorun's simple-command lines started without a shell, and an argv
# started directly. Then the spawn cost of one process on this machine, measured in the
# same sitting, and the time and peak RSS of `gorun validate` on large task files.
#
# Knobs (environment):
#   N=10000      tasks per run
#   JOBS="2 8"   concurrency levels (-j / -P)
#   ROUNDS=3     runs of each runner per level; the table shows medians
#   QUICK=1      smoke run: N=1000 ROUNDS=1
#   PARALLEL_N=N/5  tasks per GNU parallel run (it runs at ~50 tasks/s); its wall
#                time is scaled to N for the table
#   RUNNERS="…"  which runners (default: all found): spawnlimit gorun-shell gorun
#                xargs rush parallel spawnlimit-direct gorun-direct xargs-direct.
#                gorun reads lines of `true` and starts them without a shell (a
#                simple command); gorun-shell hands each to sh -c (--shell always),
#                like spawnlimit -stdin, xargs, rush and parallel. The -direct ones exec
#                /bin/true
#                without a shell and without arguments: gorun reads JSON Lines tasks
#                {"cmd": ["/bin/true"]}; a template would add the item as an argument,
#                and GNU true with an argument loads its locale, which costs more
#                than gorun itself); gorun-progress (gorun with --progress always:
#                the bar's cost; only with RUNNERS, as it is not in the default set)
#   FILE_N=100000  tasks in the YAML and JSON files `gorun validate` reads (0: skip)
#   FILE_JSON_N=1000000  tasks in the JSON file that `gorun validate` reads and `gorun
#                  exec` streams, timed to its first task (0: skip)
#   SCALE=1      also print gorun's peak RSS for 100000 and 1000000 tasks at -j 8
#                (slow: about an hour on 2 CPUs at ~300 tasks/s)
#
# Each row also gives CPU per task: user + system time of the runner and every process
# it waited for (/usr/bin/time), which other sessions' load on a shared machine disturbs
# far less than wall time; gorun's own cost shows best as its CPU against the floor's.
# Quote results as the ratio to spawnlimit measured in the same run: the machine's
# speed drifts between runs. Peak RSS is the largest single process in the runner's
# tree (getrusage), which for gorun is gorun itself, not the sum over its children.
# Binaries go to a temporary directory, never into the repository.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ "${QUICK:-}" == 1 ]]; then
	N=1000
	ROUNDS=1
fi
N=${N:-10000}
JOBS=${JOBS:-"2 8"}
ROUNDS=${ROUNDS:-3}
PARALLEL_N=${PARALLEL_N:-$((N / 5 > 0 ? N / 5 : 1))}
if [[ "${QUICK:-}" == 1 ]]; then
	FILE_N=${FILE_N:-10000}
	FILE_JSON_N=${FILE_JSON_N:-100000}
fi
FILE_N=${FILE_N:-100000}
FILE_JSON_N=${FILE_JSON_N:-1000000}

die() { echo "bench: $*" >&2; exit 2; }
[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
for j in $JOBS; do
	[[ "$j" =~ ^[1-9][0-9]*$ ]] || die "JOBS must be positive integers, got '$j'"
done
[[ -n "${JOBS// /}" ]] || die "JOBS is empty"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gorun-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build -----------------------------------------------------------------------------

echo "building gorun..." >&2
CGO_ENABLED=0 go build -o "$TMP/gorun" ./cmd/gorun # as make build does

have_spawnlimit=0
if [[ -d ../shared/bench/spawnlimit ]]; then
	echo "building spawnlimit..." >&2
	if go build -C ../shared/bench/spawnlimit -o "$TMP/spawnlimit" .; then
		have_spawnlimit=1
	else
		echo "bench: spawnlimit failed to build; skipping it" >&2
	fi
else
	echo "bench: ../shared/bench/spawnlimit not found; skipping it" >&2
fi

# Flags that may not exist yet in this checkout of gorun.
gorun_help=$("$TMP/gorun" exec --help 2>&1 || true)
gorun_flags=()
if grep -q -e '--progress' <<<"$gorun_help"; then
	gorun_flags+=(--progress never)
fi
shell_flags=()
if grep -q -e '--shell' <<<"$gorun_help"; then
	shell_flags+=(--shell always)
fi

have_rush=0
command -v rush >/dev/null 2>&1 && have_rush=1

have_parallel=0
parallel_version=$(parallel --version </dev/null 2>/dev/null || true)
if grep -q 'GNU parallel' <<<"$parallel_version"; then
	have_parallel=1
fi

have_time=0
[[ -x /usr/bin/time ]] && have_time=1

# gorun reads settings from GORUN_* variables, ./gorun.yaml and
# $XDG_CONFIG_HOME/gorun/config.yaml: run it with none of them, so only the flags
# below apply.
mkdir -p "$TMP/xdg" "$TMP/cwd"
while IFS= read -r v; do
	unset "$v"
done < <(compgen -e | grep '^GORUN_' || true)

# --- input -----------------------------------------------------------------------------

gen_input() { # gen_input COUNT FILE
	awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) print "true" }' >"$2"
}
INPUT=$TMP/input
gen_input "$N" "$INPUT"
INPUT_JSONL=$TMP/input.jsonl
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) print "{\"cmd\": [\"/bin/true\"]}" }' >"$INPUT_JSONL"
INPUT_PARALLEL=$TMP/input.parallel
gen_input "$PARALLEL_N" "$INPUT_PARALLEL"

runners=()
((have_spawnlimit)) && runners+=(spawnlimit)
runners+=(gorun-shell gorun xargs)
((have_rush)) && runners+=(rush)
((have_parallel)) && runners+=(parallel)
((have_spawnlimit)) && runners+=(spawnlimit-direct)
runners+=(gorun-direct xargs-direct gorun-progress)
if [[ -z "${RUNNERS:-}" ]]; then
	RUNNERS="${runners[*]/gorun-progress/}"
fi
if [[ -n "${RUNNERS:-}" ]]; then
	wanted=()
	for r in "${runners[@]}"; do
		[[ " $RUNNERS " == *" $r "* ]] && wanted+=("$r")
	done
	runners=("${wanted[@]}")
	((${#runners[@]})) || die "RUNNERS names none of the runners found"
fi

# --- running ---------------------------------------------------------------------------

# runner_cmd RUNNER J: sets cmd to the runner's command line.
runner_cmd() {
	local r=$1 j=$2
	case $r in
	gorun) cmd=(env XDG_CONFIG_HOME="$TMP/xdg" "$TMP/gorun" exec -j "$j" ${gorun_flags[@]+"${gorun_flags[@]}"} -o none) ;;
	gorun-shell) cmd=(env XDG_CONFIG_HOME="$TMP/xdg" "$TMP/gorun" exec -j "$j" ${gorun_flags[@]+"${gorun_flags[@]}"} ${shell_flags[@]+"${shell_flags[@]}"} -o none) ;;
	gorun-progress) cmd=(env XDG_CONFIG_HOME="$TMP/xdg" "$TMP/gorun" exec -j "$j" --progress always -o none) ;;
	gorun-direct) cmd=(env XDG_CONFIG_HOME="$TMP/xdg" "$TMP/gorun" exec -j "$j" ${gorun_flags[@]+"${gorun_flags[@]}"} -o none --format jsonl) ;;
	spawnlimit) cmd=("$TMP/spawnlimit" -p "$j" -capture -stdin -q) ;;
	spawnlimit-direct) cmd=("$TMP/spawnlimit" -n "$N" -p "$j" -capture -q) ;;
	xargs) cmd=(xargs -P "$j" -I{} sh -c {}) ;;
	xargs-direct) cmd=(xargs -P "$j" -I{} /bin/true) ;;
	rush) cmd=(rush -j "$j") ;;
	parallel) cmd=(parallel --will-cite -j "$j") ;;
	*) die "unknown runner $r" ;;
	esac
}

# measure RUNNER J INPUT: runs the runner once with stdin from INPUT, its output
# discarded, in an empty directory. Prints "WALL_S RSS_KIB CPU_S", CPU being user +
# system time of the runner and every process it waited for (RSS and CPU "n/a"
# without /usr/bin/time); returns non-zero if the runner failed.
measure() {
	local r=$1 j=$2 in=$3 rc=0 out cmd
	runner_cmd "$r" "$j"
	if ((have_time)); then
		(cd "$TMP/cwd" && exec /usr/bin/time -f '%e %M %U %S' -o "$TMP/time.out" "${cmd[@]}") \
			<"$in" >/dev/null 2>/dev/null || rc=$?
		# On failure time(1) writes a "Command exited with non-zero status" line first.
		out=$(tail -n 1 "$TMP/time.out" | awk '{ printf "%s %s %.2f", $1, $2, $3 + $4 }')
	else
		local TIMEFORMAT='%R'
		# The redirections stay inside the subshell (on `time` itself they would swallow
		# its report too), and the subshell must not exec (that loses the report).
		{ time (cd "$TMP/cwd" && "${cmd[@]}" <"$in" >/dev/null 2>/dev/null); } 2>"$TMP/time.out" || rc=$?
		out="$(tail -n 1 "$TMP/time.out") n/a n/a"
	fi
	[[ "$out" =~ ^[0-9.]+\ ([0-9]+\ [0-9.]+|n/a\ n/a)$ ]] || { echo "bench: cannot read the time of $r: '$out'" >&2; return 1; }
	echo "$out"
	return "$rc"
}

# median of the numbers on stdin (mean of the two middle ones for an even count);
# "n/a" if there are none.
median() {
	sort -g | awk '{ v[NR] = $1 }
		END {
			if (NR == 0) { print "n/a"; exit }
			if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2
		}'
}

# spawn_cost: milliseconds per process of `spawnlimit -n N -p 1` (/bin/true exec'd
# directly, one at a time, output not captured): what starting a process costs here.
spawn_cost() {
	((have_spawnlimit)) || { echo n/a; return; }
	local n=$((N < 2000 ? N : 2000)) s e
	s=$(date +%s%N)
	"$TMP/spawnlimit" -n "$n" -p 1 -q >/dev/null 2>&1 || { echo n/a; return; }
	e=$(date +%s%N)
	awk -v d=$((e - s)) -v n="$n" 'BEGIN { printf "%.3f", d / n / 1e6 }'
}

echo "gorun $(git describe --always --dirty 2>/dev/null || echo '?'), $(go version | awk '{ print $3 }'), $(nproc) CPUs, $(uname -sr)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a); spawn cost at start: $(spawn_cost) ms a process"
echo "gorun flags: exec -j J ${gorun_flags[*]+${gorun_flags[*]} }-o none"
((have_parallel)) && echo "$(head -n 1 <<<"$parallel_version")"
((have_time)) || echo "no /usr/bin/time: wall clock from bash, no peak RSS"
echo

any_failed=0
for j in $JOBS; do
	declare -A walls=() rsss=() cpus=() fails=()
	for r in "${runners[@]}"; do
		walls[$r]="" rsss[$r]="" cpus[$r]="" fails[$r]=0
	done
	for ((round = 1; round <= ROUNDS; round++)); do
		# Odd rounds run the runners in order, even rounds in reverse, so drift in the
		# machine's speed lands on all of them alike.
		order=("${runners[@]}")
		if ((round % 2 == 0)); then
			order=()
			for ((i = ${#runners[@]} - 1; i >= 0; i--)); do order+=("${runners[i]}"); done
		fi
		for r in "${order[@]}"; do
			printf '  -j %s round %d/%d: %-10s ' "$j" "$round" "$ROUNDS" "$r" >&2
			in=$INPUT
			[[ $r == gorun-direct ]] && in=$INPUT_JSONL
			[[ $r == parallel ]] && in=$INPUT_PARALLEL
			if res=$(measure "$r" "$j" "$in"); then
				read -r wall rss cpu <<<"$res"
				# GNU parallel ran PARALLEL_N tasks: scale its times to N.
				if [[ $r == parallel ]]; then
					wall=$(awk -v w="$wall" -v n="$N" -v p="$PARALLEL_N" 'BEGIN { printf "%.2f", w * n / p }')
					[[ "$cpu" != n/a ]] && cpu=$(awk -v w="$cpu" -v n="$N" -v p="$PARALLEL_N" 'BEGIN { printf "%.2f", w * n / p }')
				fi
				walls[$r]+="$wall"$'\n'
				[[ "$rss" != n/a ]] && rsss[$r]+="$rss"$'\n'
				[[ "$cpu" != n/a ]] && cpus[$r]+="$cpu"$'\n'
				echo "${wall}s ${rss}KiB ${cpu}s CPU" >&2
			else
				fails[$r]=$((fails[$r] + 1))
				any_failed=1
				echo "FAILED" >&2
			fi
		done
	done

	# Medians first: every row's ratio needs spawnlimit's.
	declare -A mwall=() mrss=() mcpu=()
	for r in "${runners[@]}"; do
		mwall[$r]=$(printf '%s' "${walls[$r]}" | sed '/^$/d' | median)
		mrss[$r]=$(printf '%s' "${rsss[$r]}" | sed '/^$/d' | median)
		mcpu[$r]=$(printf '%s' "${cpus[$r]}" | sed '/^$/d' | median)
	done
	# A shell runner compares with spawnlimit, a -direct one with spawnlimit-direct.
	declare -A base=([shell]=- [direct]=-) cbase=([shell]=- [direct]=-)
	for kind in shell direct; do
		s=spawnlimit
		[[ $kind == direct ]] && s=spawnlimit-direct
		if [[ -n "${fails[$s]+x}" ]] && ((fails[$s] == 0)); then
			base[$kind]=${mwall[$s]}
			[[ "${mcpu[$s]}" != n/a ]] && cbase[$kind]=${mcpu[$s]}
		fi
	done

	echo "N=$N tasks of \`true\`, -j $j, $ROUNDS round(s) (median), load average now $(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo n/a)"
	echo "  shell: each line through sh -c; gorun: simple command, no shell; -direct: /bin/true exec'd; parallel: $PARALLEL_N tasks, scaled to N"
	echo "  cpu: user + system time of the runner and its processes, which other load on the machine disturbs less than wall time"
	printf '%-18s %8s %9s %13s %11s %13s %12s %10s %10s\n' runner wall_s tasks/s peak_rss_MiB vs_sh_floor vs_exec_floor cpu_ms/task cpu_vs_sh cpu_vs_exec
	for r in "${runners[@]}"; do
		if ((fails[$r] > 0)); then
			printf '%-18s %8s %9s %13s %11s %13s %12s %10s %10s\n' "$r" FAILED "(${fails[$r]}/$ROUNDS)" - - - - - -
			continue
		fi
		awk -v r="$r" -v n="$N" -v w="${mwall[$r]}" -v m="${mrss[$r]}" -v c="${mcpu[$r]}" \
			-v bs="${base[shell]}" -v bd="${base[direct]}" -v cs="${cbase[shell]}" -v cd="${cbase[direct]}" 'BEGIN {
			tps = (w > 0) ? sprintf("%.1f", n / w) : "inf"
			rss = (m == "n/a") ? "n/a" : sprintf("%.1f", m / 1024)
			rs = (bs == "-" || bs <= 0) ? "-" : sprintf("%.2f", w / bs)
			rd = (bd == "-" || bd <= 0) ? "-" : sprintf("%.2f", w / bd)
			cpt = (c == "n/a") ? "n/a" : sprintf("%.3f", c * 1000 / n)
			crs = (c == "n/a" || cs == "-" || cs <= 0) ? "-" : sprintf("%.2f", c / cs)
			crd = (c == "n/a" || cd == "-" || cd <= 0) ? "-" : sprintf("%.2f", c / cd)
			printf "%-18s %8.2f %9s %13s %11s %13s %12s %10s %10s\n", r, w, tps, rss, rs, rd, cpt, crs, crd
		}'
	done
	echo
	unset walls rsss cpus fails mwall mrss mcpu base cbase
done

echo "spawn cost at the end: $(spawn_cost) ms a process; load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
echo

# --- task files: gorun validate on large files -------------------------------------------

if ((FILE_N > 0)); then
	echo "  generating task files of $FILE_N tasks..." >&2
	awk -v n="$FILE_N" 'BEGIN { print "version: 1"; print "tasks:"; for (i = 0; i < n; i++) printf "  - id: t%d\n    run: echo %d\n", i, i }' >"$TMP/tasks.yaml"
	awk -v n="$FILE_N" 'BEGIN { print "{\"version\": 1, \"tasks\": ["; for (i = 0; i < n; i++) printf "  {\"id\": \"t%d\", \"run\": \"echo %d\"}%s\n", i, i, (i < n - 1 ? "," : ""); print "]}" }' >"$TMP/tasks.json"
	echo "gorun validate on task files of $FILE_N tasks (one run each)"
	printf '%-12s %8s %13s %14s\n' file wall_s peak_rss_MiB bytes_per_task
	for f in tasks.yaml tasks.json; do
		if ((have_time)) && (cd "$TMP/cwd" && exec /usr/bin/time -f '%e %M' -o "$TMP/time.out" env XDG_CONFIG_HOME="$TMP/xdg" "$TMP/gorun" validate "$TMP/$f") >/dev/null 2>&1; then
			read -r wall rss <"$TMP/time.out"
			awk -v f="$f" -v w="$wall" -v m="$rss" -v n="$FILE_N" 'BEGIN { printf "%-12s %8.2f %13.1f %14.0f\n", f, w, m / 1024, m * 1024 / n }'
		else
			printf '%-12s %8s\n' "$f" "FAILED or no /usr/bin/time"
		fi
	done
	rm -f "$TMP/tasks.yaml" "$TMP/tasks.json"
	echo
fi

# --- a million-task JSON file: validate, and exec's first start ------------------------

if ((FILE_JSON_N > 0)); then
	echo "  generating a JSON task file of $FILE_JSON_N tasks..." >&2
	awk -v n="$FILE_JSON_N" -v first="$TMP/first" 'BEGIN { print "{\"version\": 1, \"tasks\": ["; printf "  {\"id\": \"t0\", \"cmd\": [\"touch\", \"%s\"]}", first; for (i = 1; i < n; i++) printf ",\n  {\"id\": \"t%d\", \"cmd\": [\"sleep\", \"60\"]}", i; print "\n]}" }' >"$TMP/big.json"
	echo "a JSON task file of $FILE_JSON_N tasks (one run each)"
	if ((have_time)) && (cd "$TMP/cwd" && exec /usr/bin/time -f '%e %M' -o "$TMP/time.out" env XDG_CONFIG_HOME="$TMP/xdg" "$TMP/gorun" validate "$TMP/big.json") >/dev/null 2>&1; then
		read -r wall rss <"$TMP/time.out"
		awk -v w="$wall" -v m="$rss" -v n="$FILE_JSON_N" 'BEGIN { printf "validate: %.2f s, peak RSS %.1f MiB (%.0f bytes a task)\n", w, m / 1024, m * 1024 / n }'
	else
		echo "validate: FAILED or no /usr/bin/time"
	fi
	# exec streams the file: the time from its start to its first task's file.
	rm -f "$TMP/first"
	start=$(date +%s%N)
	(cd "$TMP/cwd" && exec env XDG_CONFIG_HOME="$TMP/xdg" "$TMP/gorun" exec -j 2 -o none "$TMP/big.json") >/dev/null 2>&1 &
	pid=$!
	for ((k = 0; k < 3000; k++)); do
		[[ -e $TMP/first ]] && break
		sleep 0.01
	done
	end=$(date +%s%N)
	kill -INT "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	if [[ -e $TMP/first ]]; then
		awk -v ns="$((end - start))" 'BEGIN { printf "exec: first task started after %.2f s (polled every 10 ms)\n", ns / 1e9 }'
	else
		echo "exec: the first task did not start within 30 s"
	fi
	rm -f "$TMP/big.json" "$TMP/first"
	echo
fi

# --- optional: gorun's memory as the input grows ----------------------------------------

if [[ "${SCALE:-}" == 1 ]]; then
	echo "gorun peak RSS by input size, -j 8 (one run each)"
	printf '%-10s %8s %9s %13s\n' tasks wall_s tasks/s peak_rss_MiB
	for n in 100000 1000000; do
		echo "  generating $n lines, running gorun..." >&2
		gen_input "$n" "$TMP/input.scale"
		if res=$(measure gorun 8 "$TMP/input.scale"); then
			read -r wall rss <<<"$res"
			awk -v n="$n" -v w="$wall" -v m="$rss" 'BEGIN {
				tps = (w > 0) ? sprintf("%.1f", n / w) : "inf"
				rss = (m == "n/a") ? "n/a" : sprintf("%.1f", m / 1024)
				printf "%-10s %8.2f %9s %13s\n", n, w, tps, rss
			}'
		else
			any_failed=1
			printf '%-10s %8s\n' "$n" FAILED
		fi
		rm -f "$TMP/input.scale"
	done
	echo
fi

if ((any_failed)); then
	echo "bench: some runs FAILED (see above)" >&2
	exit 1
fi
