#!/usr/bin/env bash
# The simulator's small world imports cleanly into a fresh data directory, and
# `moat simulate` rejects bad arguments with exit 2.
set -euo pipefail
MOAT=${MOAT_BIN:?MOAT_BIN must point at the moat binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$MOAT" simulate --scenario mixed --seed 5 --scale small --out "$tmp/world" --quiet
"$MOAT" init --data "$tmp/data" >/dev/null
for kind in parties principals relations orders; do
	out=$("$MOAT" import "$kind" "$tmp/world/$kind.jsonl" --data "$tmp/data" --json)
	want=$(grep -c . "$tmp/world/$kind.jsonl")
	echo "$out" | grep -q "\"imported\":$want" || { echo "import $kind: $out (want $want)"; exit 1; }
done
# events, once the importer takes them (the detector issue adds the kind)
if "$MOAT" import --help | grep -q events; then
	"$MOAT" import events "$tmp/world/events.jsonl" --data "$tmp/data" >/dev/null
fi

expect_usage() {
	set +e
	"$MOAT" simulate "$@" >/dev/null 2>&1
	rc=$?
	set -e
	[ "$rc" -eq 2 ] || { echo "moat simulate $*: exit $rc, want 2"; exit 1; }
}
expect_usage --scenario nope --out "$tmp/x"
expect_usage --scale huge --out "$tmp/x"
expect_usage --seed -3 --out "$tmp/x"
expect_usage --scenario cs_insider
expect_usage --days 3 --out "$tmp/x"
"$MOAT" simulate --list | grep -q courier_leak
echo ok
