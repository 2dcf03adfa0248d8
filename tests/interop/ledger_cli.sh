#!/usr/bin/env bash
# Drives `moat ledger …` end to end: key, checkpoint, show, proofs (text and JSON),
# offline verify-proof (good and forged), verify, and tampering caught by verify.
set -euo pipefail
: "${MOAT_BIN:?}" "${LEDGER_FILL:?}"
T=$(mktemp -d "${TMPDIR:-/tmp}/moat-ledger-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
moat() { "$MOAT_BIN" "$@"; }

mkdir -p "$T/data"
"$LEDGER_FILL" "$T/data/ledger" moat.test/cli 300 1000
export MOAT_DATA="$T/data"

moat ledger --help | grep -q "verify-proof" || fail "help"
moat ledger key > "$T/vkey"
grep -Eq '^moat\.test/cli\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}$' "$T/vkey" || fail "vkey format: $(cat "$T/vkey")"
moat ledger key --json | grep -q '"vkey"' || fail "key --json"
moat ledger checkpoint > "$T/cp"
[ "$(sed -n 2p "$T/cp")" = 1000 ] || fail "checkpoint size"
moat ledger checkpoint --json | grep -q '"size":1000' || fail "checkpoint --json"
moat ledger show 7 | grep -q '"order_id":"order-7"' || fail "show"
moat ledger show 7 --json | grep -q '"index":7' || fail "show --json"
set +e
moat ledger show 1000 >/dev/null 2>&1; [ $? = 1 ] || fail "show past the end must exit 1"
moat ledger show x >/dev/null 2>&1; [ $? = 2 ] || fail "bad index must exit 2"
moat ledger frobnicate >/dev/null 2>&1; [ $? = 2 ] || fail "unknown subcommand must exit 2"
moat ledger --data "$T/nope" key >/dev/null 2>&1; [ $? = 1 ] || fail "missing ledger must exit 1"
set -e

# Inclusion, text and JSON, verified offline with only the key and the checkpoint.
moat ledger proof inclusion 123 > "$T/incl.txt"
moat ledger proof inclusion 123 --json > "$T/incl.json"
moat ledger verify-proof --vkey "$(cat "$T/vkey")" --checkpoint "$T/cp" "$T/incl.txt"
moat ledger verify-proof --vkey-file "$T/vkey" --checkpoint "$T/cp" "$T/incl.json"
# Against an older signed checkpoint at size 300.
moat ledger proof inclusion 299 --size 300 > "$T/incl300.txt"
moat ledger verify-proof --vkey-file "$T/vkey" --checkpoint "$T/data/checkpoint.300" "$T/incl300.txt"
# Consistency between the two signed checkpoints.
moat ledger proof consistency 300 1000 > "$T/cons.txt"
moat ledger verify-proof --vkey-file "$T/vkey" --old-checkpoint "$T/data/checkpoint.300" \
	--checkpoint "$T/cp" "$T/cons.txt"
moat ledger proof consistency 300 1000 --json > "$T/cons.json"
moat ledger verify-proof --vkey-file "$T/vkey" --old-checkpoint "$T/data/checkpoint.300" \
	--checkpoint "$T/cp" "$T/cons.json"

# Forgeries are rejected (exit 1): wrong index, altered hash, wrong key, altered checkpoint.
set +e
sed 's/^index 123$/index 124/' "$T/incl.txt" > "$T/bad1"
moat ledger verify-proof --vkey-file "$T/vkey" --checkpoint "$T/cp" "$T/bad1" 2>/dev/null
[ $? = 1 ] || fail "wrong index accepted"
awk '/^hash /&&!d{print "hash AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";d=1;next}{print}' "$T/incl.txt" > "$T/bad2"
moat ledger verify-proof --vkey-file "$T/vkey" --checkpoint "$T/cp" "$T/bad2" 2>/dev/null
[ $? = 1 ] || fail "altered hash accepted"
moat ledger verify-proof --vkey "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k" \
	--checkpoint "$T/cp" "$T/incl.txt" 2>/dev/null
[ $? = 1 ] || fail "foreign key accepted"
sed '2s/1000/1001/' "$T/cp" > "$T/badcp"
moat ledger verify-proof --vkey-file "$T/vkey" --checkpoint "$T/badcp" "$T/incl.txt" 2>/dev/null
[ $? = 1 ] || fail "altered checkpoint accepted"
moat ledger verify-proof --vkey-file "$T/vkey" --old-checkpoint "$T/cp" \
	--checkpoint "$T/cp" "$T/cons.txt" 2>/dev/null
[ $? = 1 ] || fail "mismatched consistency accepted"
set -e

moat ledger verify | grep -q "^ok: 1000 entries" || fail "verify"
moat ledger verify --json | grep -q '"ok":true' || fail "verify --json"

# Tampering: flip one byte, verify names the first bad index, exit 1; then restore.
flip() { # file offset
	python3 - "$1" "$2" <<'PY'
import sys
p, off = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, 'rb').read()); b[off] ^= 1; open(p, 'wb').write(b)
PY
}
L="$T/data/ledger"
check_tamper() { # file offset expected-index-or-word
	flip "$1" "$2"
	set +e
	out=$(moat ledger verify 2>&1); rc=$?
	set -e
	flip "$1" "$2"
	[ $rc = 1 ] || fail "tampering $1 not detected"
	echo "$out" | grep -q "$3" || fail "tampering $1: expected '$3' in: $out"
	echo "caught: $out"
}
check_tamper "$L/tile/entries/002" 40 "entry 512"
check_tamper "$L/tile/0/001" $((32*9+1)) "entry 265"
check_tamper "$L/tile/1/000.p/3" 33 "entry 256"
check_tamper "$L/checkpoint" 3 "checkpoint"
check_tamper "$L/checkpoint" 100 "checkpoint"
moat ledger verify >/dev/null || fail "verify after restore"
echo "ledger CLI: all checks passed"
