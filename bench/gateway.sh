#!/usr/bin/env bash
# bench/gateway: wrk against authorised single-order reads through the gateway
# (auth, policy, views, virtual number, durable ledger append) next to a
# hello-world libmicrohttpd server with the same daemon flags, at 32 connections.
# usage: bench/gateway.sh [BUILD_DIR]   (default ./build; needs wrk)
# Prints throughput of both, the ratio, and p50/p99 latency, as medians over
# BENCH_ROUNDS (3) alternating rounds of BENCH_DURATION (8s) each, with their
# range; targets (on the medians): ratio >= 0.5 and gateway p99 < 2 ms. A
# second gateway run serves a copy of the same data directory from /dev/shm
# (tmpfs: fsync is nearly free), printed on its own line, so the software's cost
# shows apart from the disk's; the targets are judged on the disk run.
set -eu
BUILD=${1:-build}
MOAT="$BUILD/moat"
HELLO="$BUILD/bench/bench_hello"
SRC=$(cd "$(dirname "$0")/.." && pwd)
DUR=${BENCH_DURATION:-8s}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}          # wrk threads and hello-world server threads
GW_THREADS=${BENCH_GW_THREADS:-4}     # gateway event loops, fixed so runs compare (2, 4
                                      # and 8 read alike on 2 CPUs, docs/config.md)
ORDERS=${BENCH_ORDERS:-2000}
command -v wrk >/dev/null || { echo "bench/gateway: wrk not installed (apt-get install wrk)" >&2; exit 1; }
[ -x "$MOAT" ] && [ -x "$HELLO" ] || { echo "bench/gateway: build first ($MOAT, $HELLO)" >&2; exit 1; }
T=$(mktemp -d)
SHM=""
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$T" ${SHM:+"$SHM"}; }
trap cleanup EXIT
D="$T/data"
# The data directory $D, the courier's key $KEY and the wrk script $T/reads.lua.
. "$SRC/bench/gateway_data.sh"

wait_port() { for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$1/$2" && return 0; sleep 0.1; done; return 1; }
# CPU time (utime + stime, clock ticks) the process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# run NAME PID URL [args...]: prints "rps p50_ms p99_ms non2xx cpu_us_per_request"
# (the server's CPU per request: steadier than requests/s on a shared machine)
run() {
	local out="$T/wrk-$1.txt" pid=$2; shift 2
	local t0 t1
	t0=$(cpu_ticks "$pid")
	wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency "$@" >"$out"
	t1=$(cpu_ticks "$pid")
	local rps p50 p99 non2xx n cpu
	rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
	p50=$(awk '$1 == "50%" {print $2}' "$out")
	p99=$(awk '$1 == "99%" {print $2}' "$out")
	non2xx=$(awk '/Non-2xx/ {print $4}' "$out")
	n=$(awk '/requests in/ {print $1}' "$out")
	cpu=$(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.1f", (n > 0 ? (b - a) * 1e6 / hz / n : 0) }')
	echo "$rps $(to_ms "$p50") $(to_ms "$p99") ${non2xx:-0} $cpu"
}
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) printf "%.3f", v / 1000; else if (v ~ /ms$/) printf "%.3f", v + 0; else if (v ~ /s$/) printf "%.3f", v * 1000; else print v }'; }

# median and range of the numbers on stdin: "median (min - max)", or the one value
spread() { sort -g | awk -v f="${1:-%s}" '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
	if (NR == 1) printf f, v[1]; else printf f " (" f " - " f ")", m, v[1], v[NR] }'; }
med() { spread | awk '{ printf "%s", $1 }'; }  # the median alone
col() { awk -v c="$1" '{ print $c }' "$2"; }

"$HELLO" 18790 "$THREADS" & HPID=$!; PIDS+=($HPID)
wait_port 18790 ""
"$MOAT" serve --data "$D" --listen 127.0.0.1:18791 --threads "$GW_THREADS" ${BENCH_SERVE_FLAGS:-} 2>"$T/serve.log" & GPID=$!; PIDS+=($GPID)
wait_port 18791 healthz
# warm up: the first read of each order makes its virtual-number binding (a write)
wrk -t"$THREADS" -c"$CONNS" -d"${BENCH_WARMUP:-6s}" -H "Authorization: Bearer $KEY" -s "$T/reads.lua" http://127.0.0.1:18791 >/dev/null
# Rounds alternate hello-world and the gateway, so both see the same machine
# (runs of one server differ by 15 % and more here); each round's ratio pairs
# the two runs of that round.
: >"$T/hello.txt"; : >"$T/gw.txt"; : >"$T/ratio.txt"
for r in $(seq 1 "$ROUNDS"); do
	run hello "$HPID" "http://127.0.0.1:18790/" >>"$T/hello.txt"
	run gateway "$GPID" -H "Authorization: Bearer $KEY" -s "$T/reads.lua" http://127.0.0.1:18791 >>"$T/gw.txt"
	paste "$T/hello.txt" "$T/gw.txt" | tail -n 1 | awk '{ printf "%.3f\n", $6 / $1 }' >>"$T/ratio.txt"
done
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
size=$(metric 18791 moat_ledger_size)
# entries per group commit (one fdatasync each), over warm-up and runs
per_group() {
	local gr en
	gr=$(metric "$1" moat_ledger_commit_groups_total); en=$(metric "$1" moat_ledger_commit_entries_total)
	[ -n "$gr" ] && [ "$gr" != 0 ] && awk -v e="$en" -v g="$gr" 'BEGIN { printf "%.1f", e / g }' || echo "?"
}
g_group=$(per_group 18791)
g_bad=$(col 4 "$T/gw.txt" | awk '{ s += $1 } END { print s + 0 }')

# The same reads with the data directory on tmpfs (skipped without /dev/shm).
: >"$T/shm.txt"
s_group=""
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	SHM=$(mktemp -d -p /dev/shm moat-bench.XXXXXX)
	kill "$GPID" 2>/dev/null || true
	wait "$GPID" 2>/dev/null || true
	cp -a "$D" "$SHM/data"
	"$MOAT" serve --data "$SHM/data" --listen 127.0.0.1:18792 --threads "$GW_THREADS" ${BENCH_SERVE_FLAGS:-} 2>"$T/serve-shm.log" & SPID=$!; PIDS+=($SPID)
	wait_port 18792 healthz
	wrk -t"$THREADS" -c"$CONNS" -d"${BENCH_WARMUP:-6s}" -H "Authorization: Bearer $KEY" -s "$T/reads.lua" http://127.0.0.1:18792 >/dev/null
	for r in $(seq 1 "$ROUNDS"); do
		run gateway-shm "$SPID" -H "Authorization: Bearer $KEY" -s "$T/reads.lua" http://127.0.0.1:18792 >>"$T/shm.txt"
	done
	s_group=$(per_group 18792)
fi

echo "$ROUNDS round(s) of $DUR each; figures are medians (range over rounds)"
row() { printf '%-22s %-26s %-22s %-22s %s\n' "$1" "$(col 1 "$2" | spread %.0f)" "$(col 2 "$2" | spread)" "$(col 3 "$2" | spread)" "$(col 5 "$2" | spread)"; }
printf '%-22s %-26s %-22s %-22s %s\n' "server" "requests/s" "p50 ms" "p99 ms" "CPU us/req"
row "hello-world (MHD)" "$T/hello.txt"
row "gateway order read" "$T/gw.txt"
if [ -s "$T/shm.txt" ]; then
	row "gateway read, tmpfs" "$T/shm.txt"
	s_ratio=$(awk -v g="$(col 1 "$T/shm.txt" | med)" -v h="$(col 1 "$T/hello.txt" | med)" 'BEGIN { printf "%.3f", g / h }')
	echo "  (tmpfs: data on /dev/shm, fsync ~free: the software's cost alone; median ratio to hello-world $s_ratio; not the target run)"
fi
ratio=$(med <"$T/ratio.txt")
g_p99=$(col 3 "$T/gw.txt" | med)
echo "CPU us/req: the server process's CPU time (user + system) per request answered"
echo "ratio gateway/hello: $(spread <"$T/ratio.txt") (target >= 0.5); gateway p99 $(col 3 "$T/gw.txt" | spread) ms (target < 2); non-2xx: $g_bad; ledger entries: $size"
echo "hello-world's own p99: $(col 3 "$T/hello.txt" | spread) ms"
echo "entries per group commit (fdatasync): disk $g_group, tmpfs ${s_group:-?}; gateway threads: $GW_THREADS"
awk -v r="$ratio" -v p="$g_p99" 'BEGIN { exit !(r >= 0.5 && p < 2) }' && echo "targets: met" || echo "targets: NOT met"
# Whether this machine can show the targets at all: a p99 under 2 ms needs a
# baseline that has one, and the ratio on disk is bounded by what the same
# software does with the fsync free.
h_p99=$(col 3 "$T/hello.txt" | med)
awk -v h="$h_p99" 'BEGIN { exit !(h >= 2) }' &&
	echo "  note: hello-world's own median p99 is $h_p99 ms: no server reaches a p99 under 2 ms at 32 connections here"
[ -n "${s_ratio:-}" ] && awk -v s="$s_ratio" -v r="$ratio" 'BEGIN { exit !(s >= 0.5 && r < 0.5) }' &&
	echo "  note: the software alone (tmpfs) reaches $s_ratio of hello-world; the disk run's gap is the cost of a durable append (fdatasync) on this machine"
true
