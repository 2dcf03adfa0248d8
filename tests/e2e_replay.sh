#!/usr/bin/env bash
# End-to-end test of `moat replay`: a simulated cs_insider world replayed through a
# real `moat serve --replay-clock` over HTTP. The reads must be first-hand ledger
# entries (not imported) flagged replayed, the detector must act on the insider
# while it is still pulling (403s during the replay), the ledger must verify, and
# a server without --replay-clock must ignore Moat-Replay-Time.
set -u
MOAT=${MOAT_BIN:?MOAT_BIN must point at the moat binary}
T=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$T"' EXIT
D="$T/data"
W="$T/world"
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }
export MOAT_LOG_LEVEL=warn

# start_server LOG [ARGS…]: starts moat serve on a free port; sets SERVER and U.
start_server() {
	local log=$1
	shift
	"$MOAT" serve --data "$D" --listen 127.0.0.1:0 "$@" 2>"$log" &
	SERVER=$!
	local port=
	for _ in $(seq 1 100); do
		port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$log" | head -1)
		[ -n "$port" ] && break
		sleep 0.1
	done
	U="http://127.0.0.1:$port"
	[ -n "$port" ]
}
stop_server() {
	kill -TERM "$SERVER"
	wait "$SERVER"
	SERVER=
}
jq_py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); $2" "$1"; }

"$MOAT" simulate --scenario cs_insider --seed 7 --scale small --out "$W" >/dev/null || bad "simulate"
"$MOAT" init --data "$D" >/dev/null || bad "init"
insider=$(jq_py "$W/truth.json" "print([a['principal'] for a in d['attacks'] if a['kind']=='cs_insider'][0])")
until=$(jq_py "$W/truth.json" "print([a['window']['until'] for a in d['attacks'] if a['kind']=='cs_insider'][0])")

# ---- usage and setup errors ----
"$MOAT" replay "$W" --data "$D" >/dev/null 2>&1
check "no --url is a usage error" '[ $? -eq 2 ]'
"$MOAT" replay "$W" --url http://127.0.0.1:9 --data "$D" --concurrency 0 >/dev/null 2>&1
check "bad --concurrency is a usage error" '[ $? -eq 2 ]'
"$MOAT" replay "$T/nowhere" --url http://127.0.0.1:9 --data "$D" >/dev/null 2>"$T/err"
check "bad DIR: exit 1 with a message" '[ $? -eq 1 ] && grep -q "not a directory" "$T/err"'
"$MOAT" replay "$W" --url http://127.0.0.1:9 --data "$D" >/dev/null 2>"$T/err"
check "unreachable server: exit 1 with a message" '[ $? -eq 1 ] && grep -q "cannot reach" "$T/err"'

# ---- the replay ----
start_server "$T/serve.log" --threads 8 --replay-clock --detect-interval 100
check "server with --replay-clock started" '[ -n "$SERVER" ] && grep -q "replay clock on" "$T/serve.log"'
"$MOAT" replay "$W" --url "$U" --data "$D" --concurrency 8 --json >"$T/replay.json" 2>"$T/replay.err"
check "replay succeeds ($(head -c 300 "$T/replay.err"))" '[ $? -eq 0 ]'
check "every access event was sent" \
	'[ "$(jq_py "$T/replay.json" "print(d[\"requests_by_kind\"][\"access\"])")" = \
	   "$(jq_py "$W/truth.json" "print(d[\"stats\"][\"access_events\"])")" ]'
check "orders were served with views" \
	'jq_py "$T/replay.json" "sys.exit(0 if d[\"orders_served\"] > 1000 and d[\"views\"][\"phone\"].get(\"virtual\",0) > 0 else 1)"'
check "logins went through sessions" \
	'jq_py "$T/replay.json" "sys.exit(0 if d[\"logins\"][\"ok\"] > 100 and d[\"status\"].get(\"201\",0) > 100 else 1)"'
check "the insider got 403s during the replay, inside its attack window" \
	'jq_py "$T/replay.json" "
from datetime import datetime
s = [x for x in d[\"suspended\"] if x[\"principal\"] == \"$insider\"]
p = lambda t: datetime.fromisoformat(t.replace(\"Z\", \"+00:00\"))
sys.exit(0 if s and s[0][\"refused\"] > 0 and p(s[0][\"first_403\"]) < p(\"$until\") else 1)"'
code=$(curl -s -o "$T/bad" -w '%{http_code}' -H "Moat-Replay-Time: yesterday" "$U/v1/orders/O1?purpose=ship")
check "a malformed Moat-Replay-Time is a 422 under the replay clock" \
	'[ "$code" = 422 ] && grep -q "Moat-Replay-Time" "$T/bad"'
curl -s "$U/metrics" >"$T/metrics"
check "the server counted replayed requests" \
	'grep -q "^moat_replayed_requests_total [1-9]" "$T/metrics"'
stop_server

# ---- what the ledger and the detector hold ----
"$MOAT" ledger verify --data "$D" >"$T/verify" 2>&1
check "ledger verifies after the replay" '[ $? -eq 0 ]'
for i in $(seq 1 50 2000); do "$MOAT" ledger show "$i" --data "$D" --json; done >"$T/entries" 2>/dev/null
check "first-hand access entries flagged replayed, at world time" \
	'python3 -c "
import json, sys
es = [json.loads(l)[\"entry\"] for l in open(sys.argv[1])]
a = [e for e in es if e[\"kind\"] == \"access\" and not e[\"imported\"] and e.get(\"replayed\")]
sys.exit(0 if len(a) >= 5 and all(e[\"time\"].startswith(\"2026-0\") for e in a) else 1)" "$T/entries"'
"$MOAT" alerts --data "$D" --json >"$T/alerts"
check "an alert on the insider with suspend or force_mask" \
	'jq_py "$T/alerts" "sys.exit(0 if any(a.get(\"principal\") == \"$insider\" and a.get(\"action\") in (\"suspend\", \"force_mask\") for a in d[\"alerts\"]) else 1)"'

# ---- without --replay-clock the header is ignored ----
# (a key is issued while no server holds the ledger: it is a PRINCIPAL entry)
aud=$(grep -o '"principal":"aud-[^"]*"' "$W/principals.jsonl" | head -1 | cut -d'"' -f4)
key=$("$MOAT" principal key "$aud" --data "$D" --json | sed 's/.*"api_key":"\([^"]*\)".*/\1/')
start_server "$T/serve2.log" --threads 2
check "server without --replay-clock started" '[ -n "$SERVER" ]'
"$MOAT" replay "$W" --url "$U" --data "$D" >/dev/null 2>"$T/err"
check "replay refuses a server without --replay-clock" \
	'[ $? -eq 1 ] && grep -q -- "--replay-clock" "$T/err"'
order=$(head -1 "$W/orders.jsonl" | sed 's/.*"order_id":"\([^"]*\)".*/\1/')
before=$(date -u +%s)
curl -s -D "$T/h" -o "$T/r" -H "Authorization: Bearer $key" \
	-H "Moat-Replay-Time: 2000-01-01T00:00:00+08:00" -H "Moat-Replay-Client-IP: 192.0.2.99" \
	"$U/v1/orders/$order?purpose=audit"
idx=$(sed -n 's/^Moat-Ledger-Index: \([0-9]*\).*/\1/ip' "$T/h" | tr -d '\r')
check "auditor read served" '[ -n "$idx" ]'
stop_server
"$MOAT" ledger show "$idx" --data "$D" --json >"$T/e" 2>&1
check "the header is ignored: judged at real now, not replayed, socket address" \
	'python3 -c "
import json, sys
from datetime import datetime
e = json.load(open(sys.argv[1]))[\"entry\"]
t = datetime.fromisoformat(e[\"time\"].replace(\"Z\", \"+00:00\")).timestamp()
sys.exit(0 if t >= $before - 5 and not e.get(\"replayed\") and e.get(\"ip\") == \"127.0.0.1\" else 1)" "$T/e"'

echo "e2e_replay: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
