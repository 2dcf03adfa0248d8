#!/usr/bin/env bash
# The README's first command runs `moat demo` (scripts/demo.sh compiled into
# the binary): it must run to the end on a fresh data directory and show each part of moat's job. A demo that breaks
# (a renamed key, a missing command) fails here, not on a user's machine.
set -euo pipefail
M=${MOAT_BIN:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; tail -30 "$T/out" >&2 || true; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir "$T/tmp"
TMPDIR="$T/tmp" "$M" demo --data "$T/data" --port "$port" >"$T/out" 2>&1 || fail "demo exited non-zero"
[ -z "$(ls -A "$T/tmp")" ] || fail "moat demo left its temporary script behind"
grep -q 'plaintext PII appears nowhere' "$T/out" || fail "no at-rest check"
grep -q '"rule": "courier-deliver"' "$T/out" || fail "courier read not shown"
grep -q 'policy denies this read' "$T/out" || fail "unassigned read not denied"
grep -Eq 'suspended cs-live after [0-9]+ of 40' "$T/out" || fail "bulk pull not reported"
served=$(sed -nE 's/.*suspended cs-live after ([0-9]+) of 40.*/\1/p' "$T/out")
[ "$served" -lt 40 ] || fail "bulk pull was never stopped"
grep -q '^ok: .* entries, every tile matches' "$T/out" || fail "ledger verify missing"
grep -q '^ok: entry .* is included' "$T/out" || fail "offline proof missing"
grep -q 'suspects (most likely first)' "$T/out" || fail "trace section missing"
grep -q '^demo finished' "$T/out" || fail "demo did not finish"
# A directory that is not moat's is never deleted by the demo.
mkdir "$T/precious" && touch "$T/precious/keep"
if "$M" demo --data "$T/precious" --port "$port" >/dev/null 2>&1; then fail "demo ran over a foreign directory"; fi
[ -f "$T/precious/keep" ] || fail "demo deleted a foreign directory"
"$M" demo --help | grep -q 'usage: moat demo' || fail "moat demo --help"
if "$M" demo --port 0 >/dev/null 2>&1; then fail "port 0 accepted"; fi
if "$M" demo extra >/dev/null 2>&1; then fail "extra argument accepted"; fi
echo "e2e_demo: 16 passed, 0 failed"
