#!/usr/bin/env bash
# Compares the Debian-packaged JSON libraries on one order line, side by side:
# throughput (median of 5) relative to jansson, and strictness probes.
# usage: bench/json_libs.sh BUILD_DIR [N]
set -euo pipefail
B=${1:-build}/bench
N=${2:-200000}
base=
for lib in jansson yajl moat jsonc cjson; do
	[ -x "$B/bench_json_$lib" ] || { echo "bench_json_$lib not built (install its -dev package)"; continue; }
	out=$("$B/bench_json_$lib" "$N")
	rate=$(sed -E 's/.*lines_per_s=([0-9]+).*/\1/' <<<"$out")
	[ -n "$base" ] || base=$rate
	awk -v o="$out" -v r="$rate" -v b="$base" 'BEGIN { printf "%s  ratio_vs_jansson=%.2f\n", o, r / b }'
done
