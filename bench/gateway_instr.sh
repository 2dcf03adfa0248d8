#!/usr/bin/env bash
# bench/gateway_instr: user-space instructions per request, counted by valgrind's
# callgrind, for the authorised order read of bench/gateway.sh (auth, policy,
# views, virtual number, decrypt, ledger append, render) next to the same
# hello-world libmicrohttpd server, in the same invocation.
# usage: bench/gateway_instr.sh [BUILD_DIR]   (needs valgrind and wrk)
#
# Why: requests per second on the 2-vCPU development machines move by 20 % and
# more between runs of one binary, which hides the effect of most software
# changes. An instruction count is the same from run to run, so it says whether
# a change made the read path cheaper. It is not the target figure: it leaves
# out the kernel (sockets, epoll, the fsync) and the disk, and callgrind counts
# a `rep stosb` once per byte, so the connection memory libmicrohttpd clears per
# request (16 KiB in both servers) weighs in at about 16k – 25k instructions
# there, which take well under a microsecond in fact. The gateway runs one
# event loop here (callgrind runs one thread at a time anyway) with the data on
# disk, and without the work its timers start (the detector's ticks, the
# ledger's integration once a second), whose share per read would depend on how
# many reads the run fits in; each server serves BENCH_INSTR_SECONDS (5) of
# requests from 4 connections after a warm-up, with the counters zeroed in
# between.
set -eu
BUILD=${1:-build}
MOAT="$BUILD/moat"
HELLO="$BUILD/bench/bench_hello"
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_RUN=${BENCH_INSTR_SECONDS:-5}
ORDERS=${BENCH_ORDERS:-400}
for c in valgrind callgrind_control callgrind_annotate wrk; do
	command -v "$c" >/dev/null ||
		{ echo "bench/gateway_instr: $c not installed (apt-get install valgrind wrk)" >&2; exit 1; }
done
[ -x "$MOAT" ] && [ -x "$HELLO" ] || { echo "bench/gateway_instr: build first ($MOAT, $HELLO)" >&2; exit 1; }
T=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$T"; }
trap cleanup EXIT
D="$T/data"
. "$SRC/bench/gateway_data.sh"

# count NAME PORT PATH_FOR_READY [wrk args...] -- SERVER [args...]: starts the
# server under callgrind, warms it up (every order read once: the first read of
# an order makes its virtual-number binding, a write), zeroes the counters,
# serves the measured run and prints "instructions requests".
count() {
	local name=$1 port=$2 ready=$3; shift 3
	local wargs=()
	while [ "$1" != "--" ]; do wargs+=("$1"); shift; done
	shift
	valgrind --tool=callgrind --callgrind-out-file="$T/cg-$name.%p" "$@" \
		>"$T/$name.log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	for _ in $(seq 1 300); do
		curl -s -o /dev/null "http://127.0.0.1:$port/$ready" && break
		sleep 0.1
	done
	wrk -t1 -c4 -d"$((ORDERS / 100 + 2))s" "${wargs[@]}" "http://127.0.0.1:$port/" >/dev/null
	callgrind_control -z "$pid" >/dev/null 2>&1
	wrk -t1 -c4 -d"${SECONDS_RUN}s" "${wargs[@]}" "http://127.0.0.1:$port/" >"$T/wrk-$name.txt"
	callgrind_control -d "$pid" >/dev/null 2>&1
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	local n ir
	n=$(awk '/requests in/ {print $1}' "$T/wrk-$name.txt")
	ir=$(callgrind_annotate "$T/cg-$name.$pid.1" 2>/dev/null |
		awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
	non2xx=$(awk '/Non-2xx/ {print $4}' "$T/wrk-$name.txt")
	[ -z "$non2xx" ] || { echo "bench/gateway_instr: $name answered $non2xx non-2xx" >&2; exit 1; }
	echo "$ir $n"
}

h=$(count hello 18793 "" -- "$HELLO" 18793 1)
g=$(MOAT_CHECKPOINT_MS=3600000 count gateway 18794 healthz -H "Authorization: Bearer $KEY" \
	-s "$T/reads.lua" -- "$MOAT" serve --data "$D" --listen 127.0.0.1:18794 --threads 1 --no-detect)
set -- $h $g
awk -v hi="$1" -v hn="$2" -v gi="$3" -v gn="$4" 'BEGIN {
	h = hi / hn; g = gi / gn
	printf "%-22s %-16s %s\n", "server", "requests", "instructions per request (user space)"
	printf "%-22s %-16d %.0f\n", "hello-world (MHD)", hn, h
	printf "%-22s %-16d %.0f\n", "gateway order read", gn, g
	printf "ratio hello/gateway: %.3f (the share of a read'"'"'s user-space work that any MHD server does;\n", h / g
	printf "  deterministic, unlike requests/s: compare it between builds; not the throughput target)\n"
}'
