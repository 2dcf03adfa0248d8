#!/usr/bin/env bash
# Runs every benchmark in bench/ with its defaults; each prints its figure next
# to its baseline measured in the same run. usage: scripts/bench.sh BUILD_DIR
set -euo pipefail
B=${1:-build}
SRC=$(cd "$(dirname "$0")/.." && pwd)
"$SRC/bench/json_libs.sh" "$B"
for b in "$B"/bench/bench_*; do
	case "$(basename "$b")" in bench_json_* | bench_hello) continue ;; esac  # bench_hello: baseline of gateway.sh
	[ -x "$b" ] || continue
	echo "== $(basename "$b")"
	"$b"
done
for s in "$SRC"/bench/*.sh; do
	case "$(basename "$s")" in json_libs.sh | gateway_data.sh) continue ;; esac  # gateway_data.sh: sourced by the gateway benches
	echo "== $(basename "$s")"
	bash "$s" "$B"
done
