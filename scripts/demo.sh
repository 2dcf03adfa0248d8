#!/usr/bin/env bash
# moat's main job on the embedded default: a fresh data directory, the sample
# world from examples/, and what an operator sees. Usage: demo.sh MOAT_BIN DATA_DIR
set -euo pipefail
MOAT=$1
DATA=${2:-moat-data}
SRC=$(cd "$(dirname "$0")/.." && pwd)
if [ -d "$DATA" ]; then
	if [ -f "$DATA/MOAT" ]; then
		echo "== removing the previous demo data directory $DATA"
		rm -rf "$DATA"
	else
		echo "demo: $DATA exists and is not a moat data directory; refusing to touch it" >&2
		exit 1
	fi
fi
echo "== moat init --data $DATA"
"$MOAT" init --data "$DATA"
for kind in parties principals relations orders; do
	echo "== moat import $kind examples/$kind.jsonl"
	"$MOAT" import "$kind" "$SRC/examples/$kind.jsonl" --data "$DATA"
done
if "$MOAT" help 2>/dev/null | grep -q "^  ledger"; then
	echo "== moat import events examples/events.jsonl"
	"$MOAT" import events "$SRC/examples/events.jsonl" --data "$DATA" || true
fi
for id in O1 O2 O3; do
	echo "== moat order show $id   (operator view: masked)"
	"$MOAT" order show "$id" --data "$DATA"
done
echo "== moat principal list"
"$MOAT" principal list --data "$DATA"
echo
echo "Buyer PII is encrypted at rest in $DATA/moat.db (AES-256-GCM, key $DATA/keys/, 0600)."
