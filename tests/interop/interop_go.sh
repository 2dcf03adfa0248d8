#!/usr/bin/env bash
# Interop: an independent Go verifier (golang.org/x/mod sumdb/note + sumdb/tlog,
# from Debian's golang-golang-x-mod-dev sources, GOPATH mode, no network) checks a
# ledger written by moat: checkpoint signature, tiles, entries, proofs.
set -euo pipefail
: "${MOAT_BIN:?}" "${LEDGER_FILL:?}" "${MOAT_SRC:?}"
if ! command -v go >/dev/null 2>&1; then
	echo "SKIP: go is not installed (apt-get install golang-go golang-golang-x-mod-dev)"
	exit 77
fi
GOSRC=/usr/share/gocode
[ -d "$GOSRC/src/golang.org/x/mod/sumdb/tlog" ] || {
	echo "FAIL: go is installed but golang-golang-x-mod-dev is not ($GOSRC)" >&2
	exit 1
}
T=$(mktemp -d "${TMPDIR:-/tmp}/moat-interop-XXXXXX")
trap 'rm -rf "$T"' EXIT

mkdir -p "$T/gopath/src/moatverify"
cp "$MOAT_SRC/tests/interop/verify.go" "$T/gopath/src/moatverify/main.go"
( cd "$T/gopath/src/moatverify" &&
  GO111MODULE=off GOPATH="$T/gopath:$GOSRC" GOCACHE="$T/gocache" GOPROXY=off GOFLAGS= \
	go build -o "$T/verify" . )

# Sizes chosen to exercise full and partial tiles on levels 0 and 1 (and 2 via
# the level-1 tile at 65,536 entries).
N1=4099 N2=66000
mkdir -p "$T/data"
"$LEDGER_FILL" "$T/data/ledger" moat.test/interop $N1 $N2
export MOAT_DATA="$T/data"
vkey=$("$MOAT_BIN" ledger key)
i=0
for idx in 0 1 255 256 4098 65535 65536 $((N2 - 1)); do
	"$MOAT_BIN" ledger proof inclusion $idx --json > "$T/p$i.json"; i=$((i + 1))
done
"$MOAT_BIN" ledger proof consistency $N1 $N2 --json > "$T/c.json"
"$T/verify" -dir "$T/data/ledger" -vkey "$vkey" -old "$T/data/checkpoint.$N1" "$T"/p*.json "$T/c.json"

# And the verifier must notice tampering (a flipped byte in a full tile).
python3 - "$T/data/ledger/tile/0/005" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[100] ^= 1; open(p, 'wb').write(b)
PY
if "$T/verify" -dir "$T/data/ledger" -vkey "$vkey" 2>/dev/null; then
	echo "FAIL: the Go verifier accepted a tampered tile" >&2
	exit 1
fi
echo "interop: Go verifier accepts moat's ledger and rejects a tampered copy"
