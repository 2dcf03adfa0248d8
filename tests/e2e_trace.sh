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
# ---- moat import calls ----
# The sim's virtual numbers were never issued by moat: logged as unknown, not errors.
$M import calls "$T/sim/calls.jsonl" --json --data "$D" > "$T/calls.json" 2>/dev/null || fail "import calls"
python3 -c 'import json,sys;r=json.load(open(sys.argv[1]));assert r["imported"]>0 and r["unknown"]==r["imported"] and r["bindings"]==0,r' "$T/calls.json" \
	|| fail "sim calls: $(cat "$T/calls.json")"
printf '%s\n' '{"time":"2026-10-20T10:00:00+08:00","from":"+86 176 0000 0002","to":"+86 170 1111 2222"}' \
	'{"time":"2026-10-20T10:00:00+08:00","from":"not a number","to":"+86 170 1111 2222"}' > "$T/badcalls.jsonl"
before=$($M ledger checkpoint --json --data "$D" | python3 -c 'import json,sys;print(json.load(sys.stdin)["size"])')
if $M import calls "$T/badcalls.jsonl" --data "$D" 2>"$T/err" >/dev/null; then fail "bad calls accepted"; fi
grep -q "line 2" "$T/err" && grep -q "from" "$T/err" || fail "calls error names line and field: $(cat "$T/err")"
after=$($M ledger checkpoint --json --data "$D" | python3 -c 'import json,sys;print(json.load(sys.stdin)["size"])')
[ "$before" = "$after" ] || fail "a rejected calls file left entries behind"

# ---- reports and cases over HTTP, and a call through a binding ----
key() { $M principal key "$1" --data "$D" --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["api_key"])'; }
OPS=$(key ops-001); AUD=$(key aud-01); SVC=$(key svc-risk); CR=$(key cr-zt-00003)
MOAT_LOG_LEVEL=warn $M serve --data "$D" --listen 127.0.0.1:0 --no-detect 2>"$T/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$T"' EXIT
PORT=
for _ in $(seq 1 100); do
	PORT=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$T/serve.log" | head -1)
	[ -n "$PORT" ] && break
	sleep 0.1
done
[ -n "$PORT" ] || fail "serve did not start: $(cat "$T/serve.log")"
U="http://127.0.0.1:$PORT"
post() { # KEY TYPE BODY -> status, body in $T/resp
	curl -s -o "$T/resp" -w '%{http_code}' -H "Authorization: Bearer $1" -H "Content-Type: $2" --data-binary "$3" "$U/v1/reports"
}
get() { curl -s -o "$T/resp" -w '%{http_code}' -H "Authorization: Bearer $1" "$U$2"; }
O1=$(sed -n 1p "$T/sim/orders.jsonl" | python3 -c 'import json,sys;print(json.load(sys.stdin)["order_id"])')
O2=$(sed -n 2p "$T/sim/orders.jsonl" | python3 -c 'import json,sys;print(json.load(sys.stdin)["order_id"])')
rep() { echo '{"report_id":"'"$1"'","order_id":"'"$2"'","contact_time":"2026-10-21T10:00:00+08:00","channel":"call","quoted_fields":'"$3"',"scammer_contact":"+86 176 0000 0009"}'; }
[ "$(post "$OPS" application/json "$(rep HR1 "$O1" '["name"]')")" = 201 ] || fail "POST one report: $(cat "$T/resp")"
grep -q '"imported":1' "$T/resp" || fail "POST one report body: $(cat "$T/resp")"
[ "$(post "$SVC" application/x-ndjson "$(rep HR2 "$O1" '["name"]')
$(rep HR3 "$O2" '["address"]')")" = 201 ] || fail "POST NDJSON batch: $(cat "$T/resp")"
grep -q '"imported":2' "$T/resp" || fail "batch count"
# All-or-nothing: a bad second report rejects the batch, naming the field.
[ "$(post "$OPS" application/x-ndjson "$(rep HR4 "$O1" '["name"]')
$(rep HR5 "$O2" '["nose"]')")" = 422 ] || fail "bad batch not refused: $(cat "$T/resp")"
grep -q '"field":"quoted_fields"' "$T/resp" || fail "422 does not name the field: $(cat "$T/resp")"
[ "$(post "$OPS" application/json "$(rep HR4 O-none '["name"]')")" = 422 ] || fail "unknown order"
grep -q '"field":"order_id"' "$T/resp" || fail "unknown order field: $(cat "$T/resp")"
[ "$(post "$OPS" application/json '{"report_id":"HR6"')" = 422 ] || fail "broken JSON"
[ "$(post "$OPS" application/json "$(rep HR1 "$O1" '["name"]')")" = 409 ] || fail "duplicate report id"
[ "$(post "$CR" application/json "$(rep HR7 "$O1" '["name"]')")" = 403 ] || fail "a courier may not file reports"
[ "$(post "$AUD" application/json "$(rep HR7 "$O1" '["name"]')")" = 403 ] || fail "an auditor may not file reports"
[ "$(get "$OPS" /v1/cases)" = 200 ] || fail "GET /v1/cases"
python3 -c 'import json,sys;c={x["case"]:x for x in json.load(open(sys.argv[1]))};assert "default" in c and sys.argv[2] in c,c' "$T/resp" "$C" \
	|| fail "case list: $(cat "$T/resp")"
[ "$(get "$AUD" "/v1/cases/$C")" = 200 ] || fail "GET /v1/cases/C: $(cat "$T/resp")"
python3 - "$T/resp" "$LEAKER" <<'PY' || fail "case over HTTP"
import json, sys
r = json.load(open(sys.argv[1]))
# the window case also holds the honey report filed above: direct evidence first
stat = [x for x in r["suspects"] if not x["direct"]]
s = stat[0]
assert s["principal"] == sys.argv[2] and s["significant"] and s["p_value"] < 0.01, s
for k in ("principal", "party", "p_value", "significant", "lift", "coverage", "how"):
    assert k in s, k
assert not any(x["significant"] for x in stat[1:]), "second accusation"
assert all(x["principal"] == "cr-zt-00002" for x in r["suspects"] if x["direct"])
PY
[ "$(get "$AUD" "/v1/cases/$C?priors=off")" = 200 ] || fail "priors=off: $(cat "$T/resp")"
python3 -c 'import json,sys;r=json.load(open(sys.argv[1]));assert r["priors"]["tested"]==0,r["priors"]' "$T/resp" || fail "priors=off kept priors"
[ "$(get "$AUD" "/v1/cases/$C?priors=maybe")" = 422 ] || fail "priors=maybe: $(cat "$T/resp")"
grep -q '"priors"' "$T/resp" || fail "priors error does not name the field: $(cat "$T/resp")"
[ "$(get "$AUD" "/v1/cases/$C?since=1")" = 422 ] || fail "unknown query key on a case: $(cat "$T/resp")"
[ "$(get "$OPS" /v1/cases/no-such-case)" = 404 ] || fail "unknown case: $(cat "$T/resp")"
[ "$(get "$OPS" '/v1/cases/bad%20id')" = 422 ] || fail "bad case id: $(cat "$T/resp")"
[ "$(get "$CR" "/v1/cases/$C")" = 403 ] || fail "a courier may not read cases"
[ "$(get "$SVC" /v1/cases)" = 403 ] || fail "a service may not read cases"
code=$(curl -s -o "$T/resp" -w '%{http_code}' -X DELETE -H "Authorization: Bearer $OPS" "$U/v1/cases")
[ "$code" = 405 ] || fail "DELETE /v1/cases: $code"
# A shipped order assigned to a courier: its read gets the phone as a virtual number
# bound to it.
MER=$(sed -n 1p "$T/sim/orders.jsonl" | python3 -c 'import json,sys;print(json.load(sys.stdin)["merchant"])')
FROM=$(date -u -d '-1 day' +%Y-%m-%dT%H:%M:%SZ); UNTIL=$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)
ingest() { curl -s -o "$T/resp" -w '%{http_code}' -H "Authorization: Bearer $SVC" -H "Content-Type: application/json" --data-binary "$2" "$U/v1/$1"; }
[ "$(ingest orders '{"order_id":"OV1","merchant":"'"$MER"'","placed_at":"'"$FROM"'","status":"shipped","buyer":{"name":"王芳","phone":"13700001111","address":{"province":"广东省","city":"深圳市","district":"南山区","detail":"科技路1号"}},"items":[{"sku":"S1","title":"毛衣","qty":1,"price_cents":19900}],"shipping":{"carrier":"l-zt","waybill":"ZT1","shipped_at":"'"$FROM"'"}}')" = 201 ] \
	|| fail "POST order: $(cat "$T/resp")"
[ "$(ingest relations '{"kind":"assign","order_id":"OV1","principal":"cr-zt-00003","from":"'"$FROM"'","until":"'"$UNTIL"'"}')" = 201 ] \
	|| fail "POST relation: $(cat "$T/resp")"
[ "$(get "$CR" "/v1/orders/OV1?purpose=deliver")" = 200 ] || fail "courier read: $(cat "$T/resp")"
VNUM=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["buyer"]["phone"])' "$T/resp" 2>/dev/null) \
	|| fail "no virtual number in $(cat "$T/resp")"
kill "$SERVER"; wait "$SERVER" 2>/dev/null; SERVER=
trap 'rm -rf "$T"' EXIT
# A scam call through that binding (reported by a buyer of another order) names it.
printf '%s\n' '{"time":"2026-10-22T10:00:00+08:00","from":"+86 176 0000 0042","to":"'"$VNUM"'","extension":"0001"}' \
	'{"time":"2026-10-22T11:00:00+08:00","from":"+86 176 0000 0043","to":"+86 199 0000 0000"}' > "$T/calls2.jsonl"
$M import calls "$T/calls2.jsonl" --json --data "$D" > "$T/c2.json" 2>/dev/null || fail "import calls 2"
python3 -c 'import json,sys;r=json.load(open(sys.argv[1]));assert r["bindings"]==1 and r["unknown"]==1,r' "$T/c2.json" || fail "binding call: $(cat "$T/c2.json")"
echo '{"report_id":"HR9","order_id":"'"$O2"'","contact_time":"2026-10-22T10:00:00+08:00","channel":"call","quoted_fields":["name"],"scammer_contact":"+86 176 0000 0042"}' > "$T/h9.jsonl"
$M import reports "$T/h9.jsonl" --data "$D" >/dev/null 2>&1 || fail "report HR9"
C9=$($M case create --report HR9 --json --data "$D" 2>/dev/null | python3 -c 'import json,sys;print(json.load(sys.stdin)["case"])') || fail "case HR9"
$M trace "$C9" --json --data "$D" 2>/dev/null | python3 -c '
import json,sys
r=json.load(sys.stdin); s=r["suspects"][0]
assert s["principal"]=="cr-zt-00003" and s["direct"] and s["how"].startswith("virtual_number"), s' || fail "call through a binding is not direct evidence"

# ---- detector alerts as priors ----
# An over-pulling ISV app the detector alerts on, and only four of its victims'
# reports (the test picks them from truth.json; the tracer never reads it): the
# same test weighs more with the alert as a prior than without.
D2=$T/data2
$M init --data "$D2" >/dev/null
$M simulate --scenario isv_overpull --seed 11 --scale small --out "$T/isv" --quiet
for k in parties principals relations orders events; do
	$M import $k "$T/isv/$k.jsonl" --data "$D2" >/dev/null 2>&1 || fail "isv import $k"
done
ISV=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["attacks"][0]["principal"])' "$T/isv/truth.json")
$M alerts --json --data "$D2" | python3 -c 'import json,sys;a=json.load(sys.stdin)["alerts"];assert any(x["principal"]==sys.argv[1] for x in a),a' "$ISV" \
	|| fail "the detector did not alert on $ISV"
python3 - "$T/isv" > "$T/isv4.jsonl" <<'PY'
import json, sys
d = sys.argv[1]
mine = {r["report_id"] for r in json.load(open(d + "/truth.json"))["reports"] if r["label"] == "genuine"}
out = [l for l in open(d + "/reports.jsonl") if json.loads(l)["report_id"] in mine][:4]
assert len(out) == 4
sys.stdout.write("".join(out))
PY
$M import reports "$T/isv4.jsonl" --data "$D2" >/dev/null 2>&1 || fail "isv reports"
$M trace default --json --data "$D2" > "$T/pri.json" 2>/dev/null || fail "trace with priors"
$M trace default --no-priors --json --data "$D2" > "$T/nopri.json" 2>/dev/null || fail "trace --no-priors"
python3 - "$T/pri.json" "$T/nopri.json" "$ISV" <<'PY' || fail "priors"
import json, sys
a, b, isv = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
assert a["priors"]["tested"] >= 1 and a["priors"]["share"] == 0.5, a["priors"]
assert b["priors"]["tested"] == 0, b["priors"]
sa = next(s for s in a["suspects"] if s["principal"] == isv)
sb = next(s for s in b["suspects"] if s["principal"] == isv)
assert sa["prior"] and not sb["prior"]
assert sa["p_value_raw"] == sb["p_value_raw"]
# weight share * m / k instead of 1: the corrected p shrinks by m * share / k
m, k = a["hypotheses"], a["priors"]["tested"]
assert sa["p_value"] < sb["p_value"] or sb["p_value"] == 1, (sa, sb)
assert sa["p_value"] <= sa["p_value_raw"] * k / 0.5 * 1.0001, (sa, k)
assert not any(s["significant"] for s in a["suspects"] if s["principal"] not in (isv, None)), a["suspects"][:3]
PY
if $M trace default --prior-share 1.5 --data "$D2" 2>"$T/err"; then fail "--prior-share 1.5 accepted"; fi
grep -q -- "--prior-share" "$T/err" || fail "bad --prior-share message: $(cat "$T/err")"
echo "e2e_trace: ok"
