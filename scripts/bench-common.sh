# bench-common.sh: what the distributed benchmark scripts share; source it.

# bench_tmpdir NAME: makes TMP, a temporary directory, and pids, the processes the
# script starts in the background; at exit (also on Ctrl-C or SIGTERM) the processes
# are killed and waited for, and the directory removed.
bench_tmpdir() {
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/gorun-$1.XXXXXX")
	pids=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

bench_cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}

# bench_secs CMD...: the wall seconds a command takes, which must succeed (else the
# script ends, with its stderr)
bench_secs() {
	local s e
	s=$(date +%s.%N)
	"$@" >/dev/null 2>"$TMP/err" || { echo "$(basename "$0" .sh): failed: $*" >&2; cat "$TMP/err" >&2; exit 1; }
	e=$(date +%s.%N)
	echo "$e - $s" | bc
}
