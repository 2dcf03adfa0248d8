#!/usr/bin/env bash
# moat's main job, end to end, on the embedded default (SQLite + files in one data
# directory, no configuration):
#   1. a labelled e-commerce world from the simulator (four leakers at once)
#   2. moat in front: the world replayed through `moat serve` over HTTP; every
#      read decided by policy and views and logged durably; the detector stops
#      pulls while they run; virtual numbers and scam calls name the courier
#   3. moat on logs alone: the same world's history imported; the detector
#      judges it as it happened; scam reports traced to their leakers
#   4. the score against the simulator's ground truth (`moat eval`)
#   5. a live gateway on the real clock: a courier's read, a denial, a bulk
#      pull suspended while it runs
#   6. the ledger verified, an inclusion proof checked offline
# usage: scripts/demo.sh MOAT_BIN [DATA_DIR]   (compiled into moat: `moat demo`)
set -euo pipefail
MOAT=$(realpath "$1")
DATA=${2:-moat-data}
SEED=${DEMO_SEED:-20261128}
PORT=${DEMO_PORT:-18080}
start=$(date +%s)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
if [ -d "$DATA" ]; then
	if [ -f "$DATA/MOAT" ]; then
		rm -rf "$DATA"
	else
		echo "demo: $DATA exists and is not a moat data directory; refusing to touch it" >&2
		exit 1
	fi
fi
WORLD="$DATA.world"
rm -rf "$WORLD" "$DATA.evidence"
export MOAT_LOG_LEVEL=${MOAT_LOG_LEVEL:-warn}

say "1. a simulated world: moat simulate --scenario mixed --seed $SEED --scale small"
"$MOAT" simulate --scenario mixed --seed "$SEED" --scale small --out "$WORLD"
python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))
print("   the leakers moat must find (truth.json; moat itself never reads it):")
for a in t["attacks"]:
    print("   - %-20s %-13s %s" % (a["kind"], a["principal"], "" if a["abnormal_activity"] else "(reads only what it was assigned)"))
' "$WORLD/truth.json"

say "2. moat in front: the world replayed through the gateway (moat serve + moat replay)"
"$MOAT" init --data "$DATA"
"$MOAT" serve --data "$DATA" --listen "127.0.0.1:$PORT" --threads 16 --replay-clock \
	--detect-interval 100 2>"$DATA.serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
"$MOAT" replay "$WORLD" --url "http://127.0.0.1:$PORT" --data "$DATA" --concurrency 16
kill -TERM $SERVER && wait $SERVER 2>/dev/null || true
trap - EXIT
one=$(head -1 "$WORLD/orders.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["order_id"])')
echo "-- an order as the operator sees it (moat order show $one):"
"$MOAT" order show "$one" --data "$DATA"
if grep -q "$(head -1 "$WORLD/orders.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["buyer"]["phone"])')" "$DATA/moat.db"; then
	echo "!! plaintext phone found in the database" >&2
	exit 1
fi
echo "-- plaintext PII appears nowhere in $DATA/moat.db (AES-256-GCM, keys 0600)"
echo "-- detected and stopped while it happened (moat alerts):"
"$MOAT" alerts --data "$DATA" >"$WORLD/alerts.txt"
head -8 "$WORLD/alerts.txt"
echo "   ($(($(wc -l <"$WORLD/alerts.txt") - 1)) alerts in all)"
echo "-- the scam reports traced against what the gateway really served (moat trace default):"
"$MOAT" trace default --data "$DATA" --out "$DATA.evidence" >"$WORLD/trace-gateway.txt"
head -12 "$WORLD/trace-gateway.txt"
echo "   (evidence bundle, notification.csv and regulator_report.json in $DATA.evidence)"

say "3. moat on logs alone: the same history imported, detected as it happened, traced"
LOGS="$DATA.logs"
if [ -d "$LOGS" ] && [ ! -f "$LOGS/MOAT" ]; then
	echo "demo: $LOGS exists and is not a moat data directory; refusing to touch it" >&2
	exit 1
fi
rm -rf "$LOGS" "$LOGS.evidence"
"$MOAT" init --data "$LOGS" >/dev/null
for kind in parties principals relations orders events reports; do
	"$MOAT" import "$kind" "$WORLD/$kind.jsonl" --data "$LOGS"
done
"$MOAT" trace default --data "$LOGS" --out "$LOGS.evidence" >"$WORLD/trace-logs.txt"
head -14 "$WORLD/trace-logs.txt"

say "4. the score against the simulator's ground truth (moat eval)"
echo "-- moat in front:"
"$MOAT" eval "$WORLD" --data "$DATA"
echo
echo "-- moat on logs alone:"
"$MOAT" eval "$WORLD" --data "$LOGS"

say "5. the gateway live, on the real clock: moat serve on 127.0.0.1:$PORT"
now=$(date +%s)
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
cat >"$WORLD/live-parties.jsonl" <<EOF
{"party":"m-live","kind":"merchant","name":"演示小店"}
{"party":"l-live","kind":"logistics","name":"演示快递"}
EOF
cat >"$WORLD/live-principals.jsonl" <<EOF
{"principal":"cr-live","party":"l-live","role":"courier","name":"快递员","shift":"00:00-24:00"}
{"principal":"cs-live","party":"m-live","role":"cs_agent","name":"客服","shift":"00:00-24:00"}
EOF
python3 - "$WORLD" "$now" <<'EOF'
import json, sys, datetime
world, now = sys.argv[1], int(sys.argv[2])
iso = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
names = ["刘丽", "王伟", "陈静", "张敏", "李强", "赵磊", "黄娜", "周洋"]
with open(f"{world}/live-orders.jsonl", "w") as o, open(f"{world}/live-relations.jsonl", "w") as r:
    for i in range(1, 41):
        oid = f"L{i:03d}"
        o.write(json.dumps({"order_id": oid, "merchant": "m-live", "placed_at": iso(now - 86400), "status": "shipped",
            "buyer": {"name": names[i % 8], "phone": f"139{i:08d}", "address": {"province": "广东省", "city": "广州市",
            "district": "天河区", "detail": f"天河路{i}号{i % 9 + 1}栋{100 + i}室"}},
            "items": [{"sku": "S1", "title": "羊毛衫", "qty": 1, "price_cents": 29900}],
            "shipping": {"carrier": "l-live", "waybill": f"LV{i:010d}", "shipped_at": iso(now - 3600)}}, ensure_ascii=False) + "\n")
        if i <= 5:
            r.write(json.dumps({"kind": "assign", "order_id": oid, "principal": "cr-live", "from": iso(now - 3600)}) + "\n")
    r.write(json.dumps({"kind": "ticket", "order_id": "L001", "principal": "cs-live", "ticket": "T1", "opened": iso(now - 600)}) + "\n")
EOF
for kind in parties principals orders relations; do
	"$MOAT" import "$kind" "$WORLD/live-$kind.jsonl" --data "$DATA" >/dev/null
done
CR=$("$MOAT" principal key cr-live --data "$DATA" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
CS=$("$MOAT" principal key cs-live --data "$DATA" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
"$MOAT" serve --data "$DATA" --listen "127.0.0.1:$PORT" 2>"$DATA.serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
get() { curl -sS -H "Authorization: Bearer $1" "http://127.0.0.1:$PORT$2"; }
echo "-- courier cr-live reads its assigned order L001 to deliver it:"
get "$CR" "/v1/orders/L001?purpose=deliver" >"$WORLD/L001.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("receipt",None); print(json.dumps(d, ensure_ascii=False, indent=2))' "$WORLD/L001.json"
echo "-- the same courier asks for L020, which it was never assigned:"
get "$CR" "/v1/orders/L020?purpose=deliver"; echo
echo "-- customer service cs-live reads L001 (open ticket) for customer_care:"
get "$CS" "/v1/orders/L001?purpose=customer_care" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({k: d.get(k) for k in ("buyer","views")}, ensure_ascii=False))'
echo "-- cs-live reads L020 (no ticket): the policy still answers, but shows no plaintext:"
get "$CS" "/v1/orders/L020?purpose=customer_care" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({k: d.get(k) for k in ("buyer","views","rule")}, ensure_ascii=False))' || true
echo "-- cs-live now pulls all 40 orders, one after another, with no tickets:"
codes=""
for i in $(seq 1 40); do
	c=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $CS" "http://127.0.0.1:$PORT/v1/orders/L$(printf %03d "$i")?purpose=customer_care")
	codes="$codes $c"
done
echo "   HTTP statuses:$codes"
served=$(tr ' ' '\n' <<<"$codes" | grep -c '^200$' || true)
echo "   the detector running inside moat serve suspended cs-live after $served of 40 reads (403 from then on)"
"$MOAT" alerts --data "$DATA" --json 2>/dev/null | python3 -c '
import json, sys
for a in json.load(sys.stdin)["alerts"]:
    if a.get("principal") == "cs-live":
        print("   alert %s: %s -> %s (evidence: ledger entries %s)" % (a["id"], a["title"], a["action"], a["evidence"][:6]))' || true
curl -s "http://127.0.0.1:$PORT/metrics" >"$WORLD/metrics.txt" || true
grep -E '^moat_(decisions|ledger_size|quota)' "$WORLD/metrics.txt" | head -12 || true
kill -TERM $SERVER && wait $SERVER 2>/dev/null || true
trap - EXIT

say "6. the ledger: verified from the entry bundles, and one inclusion proof checked offline"
"$MOAT" ledger verify --data "$DATA"
size=$("$MOAT" ledger checkpoint --json --data "$DATA" | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')
"$MOAT" ledger checkpoint --data "$DATA" >"$WORLD/checkpoint.txt"
"$MOAT" ledger key --data "$DATA" >"$WORLD/vkey.txt"
head -3 "$WORLD/checkpoint.txt"
echo "   verifier key: $(cat "$WORLD/vkey.txt")"
idx=$((size - 1))
"$MOAT" ledger proof inclusion "$idx" --data "$DATA" >"$WORLD/proof.txt"
echo "-- offline, with only the verifier key, the signed checkpoint and the proof file:"
"$MOAT" ledger verify-proof --vkey-file "$WORLD/vkey.txt" --checkpoint "$WORLD/checkpoint.txt" "$WORLD/proof.txt"

echo
echo "demo finished in $(( $(date +%s) - start )) s; data in $DATA (gateway) and $LOGS (logs alone); world and truth in $WORLD"
