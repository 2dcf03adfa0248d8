#!/usr/bin/env bash
# End-to-end tests of the detector's commands: rules check/default, alerts list,
# resolve, actions and lift against a real data directory.
set -u
MOAT=${MOAT_BIN:?MOAT_BIN must point at the moat binary}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
D="$T/data"
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() {
	local want=$1 what=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"
	local got=$?
	if [ "$got" -eq "$want" ]; then ok; else bad "$what: exit $got, expected $want; stderr: $(head -c 400 "$T/err")"; fi
}
contains() { if grep -qE -- "$2" "$1"; then ok; else bad "$3: '$2' not in $(head -c 400 "$1")"; fi; }

expect 0 "init" "$MOAT" init --data "$D"
expect 0 "installed rules are valid" "$MOAT" rules check "$D/rules.conf"
contains "$T/out" "takeover +temporal +critical +suspend" "takeover rule listed"
expect 0 "rules default" "$MOAT" rules default
cp "$T/out" "$T/default.conf"
expect 0 "default equals installed" cmp "$T/default.conf" "$D/rules.conf"
expect 0 "rules check --json" "$MOAT" rules check --json "$D/rules.conf"
contains "$T/out" '^\{"rule":"no_reason_burst","type":"value_count"' "json rules"
printf '[rule a]\ntype = event_count\nfilter = kind=access\ntimespan = 10 minutes\n' >"$T/bad.conf"
expect 1 "bad rule file" "$MOAT" rules check "$T/bad.conf"
contains "$T/err" "bad.conf:4: timespan: bad duration" "error names line and key"
expect 1 "missing rule file" "$MOAT" rules check "$T/nope.conf"
expect 2 "rules without subcommand" "$MOAT" rules
expect 2 "rules unknown subcommand" "$MOAT" rules frob

expect 0 "no alerts yet" "$MOAT" alerts --data "$D"
contains "$T/out" "no open alerts" "empty list"
expect 0 "alerts --json" "$MOAT" alerts --json --status all --data "$D"
contains "$T/out" '^\{"alerts":\[\]\}$' "empty json"
expect 2 "bad status" "$MOAT" alerts --status maybe --data "$D"
expect 2 "resolve without reason" "$MOAT" alerts resolve x@1 --data "$D"
expect 1 "resolve unknown" "$MOAT" alerts resolve x@1 --reason "test" --data "$D"
contains "$T/err" "no alert x@1" "unknown alert named"
expect 2 "lift non-numeric" "$MOAT" alerts lift abc --reason r --data "$D"
expect 1 "lift unknown" "$MOAT" alerts lift 7 --reason r --data "$D"
expect 0 "actions" "$MOAT" alerts actions --data "$D"
contains "$T/out" "no active actions" "no actions"

# A stored alert and action (as the detector writes them), then resolve and lift.
sqlite3 "$D/moat.db" "INSERT INTO detect_alerts (id, rule, title, severity, action, principal,
  group_by, key, time, trigger_index, value, threshold, count, evidence, ledger_index)
  VALUES ('takeover@42', 'takeover', 'Account takeover', 4, 3, 'adm-1', 'ip', '203.0.113.9',
  1772380800000, 42, 2, 0, 2, '40 41 42', 43);
  INSERT INTO detect_actions (principal, action, alert_id, applied_at, ledger_index)
  VALUES ('adm-1', 3, 'takeover@42', 1772380800000, 44);"
expect 0 "list" "$MOAT" alerts --data "$D"
contains "$T/out" "takeover@42 +critical +suspend +adm-1" "alert row"
expect 0 "list json" "$MOAT" alerts --json --data "$D"
contains "$T/out" '"evidence":\[40,41,42\],"ledger_index":43,"status":"open"' "alert json"
expect 0 "actions" "$MOAT" alerts actions --data "$D"
contains "$T/out" "adm-1 +suspend +takeover@42" "action row"
expect 0 "resolve" "$MOAT" alerts resolve takeover@42 --reason "confirmed; password reset" --data "$D"
expect 1 "resolve twice" "$MOAT" alerts resolve takeover@42 --reason "again" --data "$D"
expect 0 "no open alerts" "$MOAT" alerts --data "$D"
contains "$T/out" "no open alerts" "resolved alert gone from open list"
expect 0 "resolved listed" "$MOAT" alerts --status resolved --json --data "$D"
contains "$T/out" '"resolution":"confirmed; password reset"' "resolution kept"
expect 0 "lift" "$MOAT" alerts lift 1 --reason "account secured" --data "$D"
expect 1 "lift twice" "$MOAT" alerts lift 1 --reason "again" --data "$D"
expect 0 "actions after lift" "$MOAT" alerts actions --data "$D"
contains "$T/out" "no active actions" "lifted action inactive"
expect 0 "all actions" "$MOAT" alerts actions --all --json --data "$D"
contains "$T/out" '"active":false' "lifted action listed with --all"

# ---- the whole loop on a simulated world: import runs the detector ----
S="$T/sim"
D2="$T/data2"
expect 0 "simulate" "$MOAT" simulate --scenario credential_stuffing,cs_insider --seed 5 --scale small --out "$S"
expect 0 "init 2" "$MOAT" init --data "$D2"
for k in parties principals relations orders; do
	expect 0 "import $k" "$MOAT" import $k "$S/$k.jsonl" --data "$D2"
done
expect 0 "import events" env MOAT_LOG_LEVEL=warn "$MOAT" import events "$S/events.jsonl" --data "$D2"
contains "$T/out" "detector: [1-9][0-9]* new alerts, [1-9][0-9]* actions" "import ran the detector"
takeover_user=$(python3 -c "import json,sys; t=json.load(open(sys.argv[1])); print([a['principal'] for a in t['attacks'] if a['kind']=='credential_stuffing'][0])" "$S/truth.json")
insider=$(python3 -c "import json,sys; t=json.load(open(sys.argv[1])); print([a['principal'] for a in t['attacks'] if a['kind']=='cs_insider'][0])" "$S/truth.json")
expect 0 "alerts after import" "$MOAT" alerts --data "$D2"
contains "$T/out" "^takeover@[0-9]+ +critical +suspend +$takeover_user " "takeover of the stuffed account"
contains "$T/out" "^no_reason_burst@[0-9]+ +high +suspend +$insider " "bulk insider"
expect 0 "scan again finds nothing new" "$MOAT" alerts scan --data "$D2"
contains "$T/out" "0 new alerts" "idempotent scan"
expect 0 "alerts json" "$MOAT" alerts --json --data "$D2"
idx=$(python3 -c "import json,sys; a=[x for x in json.load(open(sys.argv[1]))['alerts'] if x['rule']=='takeover'][0]; print(a['ledger_index'])" "$T/out")
expect 0 "ALERT entry on the ledger" "$MOAT" ledger show "$idx" --data "$D2"
contains "$T/out" '"kind":"alert"' "ledger entry is an alert"
contains "$T/out" "takeover@" "ledger entry names the alert"
expect 0 "actions in force" "$MOAT" alerts actions --json --data "$D2"
aid=$(grep "\"principal\":\"$takeover_user\"" "$T/out" | head -1 | sed 's/^{"id":\([0-9]*\).*/\1/')
expect 0 "lift takeover suspension" "$MOAT" alerts lift "$aid" --reason "password reset, sessions revoked" --data "$D2"
expect 0 "ledger verifies" "$MOAT" ledger verify --data "$D2"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
