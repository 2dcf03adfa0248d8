#!/usr/bin/env bash
# End to end: a simulated courier leak through import, reports, cases and
# `moat trace` (suspect, evidence that `moat ledger verify-proof` accepts,
# notification list, regulator report), and a honey order naming its recipient.
set -euo pipefail
M=${MOAT_BIN:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
D=$T/data
fail() { echo "FAIL: $*" >&2; exit 1; }

$M init --data "$D" >/dev/null
$M simulate --scenario courier_leak --seed 7 --scale small --out "$T/sim" --quiet
for k in parties principals relations orders events; do
	$M import $k "$T/sim/$k.jsonl" --data "$D" >/dev/null 2>&1 || fail "import $k"
done
# A bad report file is refused whole, naming line and field.
head -2 "$T/sim/reports.jsonl" > "$T/bad.jsonl"
echo '{"report_id":"X1","order_id":"O-none","contact_time":"2026-09-20T10:00:00+08:00","channel":"call","quoted_fields":["name"]}' >> "$T/bad.jsonl"
if $M import reports "$T/bad.jsonl" --data "$D" 2>"$T/err"; then fail "bad reports accepted"; fi
grep -q "line 3" "$T/err" || fail "error does not name the line: $(cat "$T/err")"
grep -q "order_id" "$T/err" || fail "error does not name the field"
[ "$($M case show default --json --data "$D" | python3 -c 'import json,sys;print(len(json.load(sys.stdin)["reports"]))')" = 0 ] \
	|| fail "a rejected file left reports behind"

$M import reports "$T/sim/reports.jsonl" --data "$D" >/dev/null 2>&1 || fail "import reports"
$M case list --data "$D" | grep -q '^default' || fail "no default case"
C=$($M case create --from 2026-09-01T00:00:00+08:00 --until 2026-12-31T00:00:00+08:00 --json --data "$D" \
	| python3 -c 'import json,sys;print(json.load(sys.stdin)["case"])')
$M trace "$C" --json --out "$T/out" --data "$D" > "$T/trace.json" 2>/dev/null || fail "trace"
LEAKER=$(python3 -c 'import json;print(json.load(open("'"$T"'/sim/truth.json"))["attacks"][0]["principal"])')
python3 - "$T/trace.json" "$LEAKER" <<'PY' || fail "trace result"
import json, sys
r = json.load(open(sys.argv[1])); leaker = sys.argv[2]
s = r["suspects"][0]
assert s["principal"] == leaker, (s, leaker)
assert s["significant"] and s["p_value"] < 0.01, s
for k in ("principal", "party", "p_value", "significant", "lift", "coverage", "how"):
    assert k in s, k
assert not any(x["significant"] for x in r["suspects"][1:] if x["principal"] != leaker), "second accusation"
assert r["evidence"]["entries"], "no evidence"
assert r["notification"]["buyers"] > 0
assert "possible_harm" in r["regulator_report"]
PY
[ "$(stat -c %a "$T/out/notification.csv")" = 600 ] || fail "notification.csv is not 0600"
grep -q "$LEAKER" "$T/out/notification.csv" || fail "notification list"
n=0
while read -r cmd; do
	(cd "$T/out" && eval "${cmd/#moat/$M}") >/dev/null || fail "proof does not verify: $cmd"
	n=$((n + 1))
done < "$T/out/VERIFY"
[ $n -gt 0 ] || fail "no proofs"
# Tampering with an entry is caught.
f=$(head -1 "$T/out/VERIFY" | sed 's/.*--entry \([^ ]*\).*/\1/')
printf 'x' >> "$T/out/$f"
if (cd "$T/out" && eval "$(head -1 VERIFY | sed "s|^moat|$M|")") >/dev/null 2>&1; then fail "tampered entry verified"; fi

# reindex gives the same answer
$M trace reindex --data "$D" >/dev/null || fail "reindex"
$M trace "$C" --json --data "$D" 2>/dev/null | python3 -c 'import json,sys;r=json.load(sys.stdin);assert r["suspects"][0]["principal"]=="'"$LEAKER"'"' \
	|| fail "after reindex"

# Honey: planted for one courier, then reported: a case opens naming it.
H=$($M honey plant --principal cr-zt-00002 --count 2 --json --data "$D" | python3 -c 'import json,sys;print(json.load(sys.stdin)["orders"][0])')
echo '{"report_id":"RH1","order_id":"'"$H"'","contact_time":"2026-10-20T10:00:00+08:00","channel":"call","quoted_fields":["name","phone"],"scammer_contact":"+86 176 0000 0001"}' > "$T/h.jsonl"
$M import reports "$T/h.jsonl" --data "$D" >/dev/null 2>&1 || fail "honey report"
$M case list --data "$D" | grep -q "honey-$H" || fail "no honey case"
$M trace "honey-$H" --json --data "$D" 2>/dev/null | python3 -c '
import json,sys
r=json.load(sys.stdin); s=r["suspects"][0]
assert s["principal"]=="cr-zt-00002" and s["significant"] and s["how"].startswith("honey"), s' || fail "honey trace"
echo "e2e_trace: ok"
