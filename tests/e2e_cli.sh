#!/usr/bin/env bash
# End-to-end tests of the moat CLI against a real data directory: the happy path
# over examples/, and every bad-input case of the foundation issue (each refused
# with the line and field named, exit 1, and nothing of the batch written).
set -u
MOAT=${MOAT_BIN:?MOAT_BIN must point at the moat binary}
SRC=${MOAT_SRC:?MOAT_SRC must point at the source tree}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
D="$T/data"
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# expect CODE "description" cmd... : checks the exit code.
expect() {
	local want=$1 what=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"
	local got=$?
	if [ "$got" -eq "$want" ]; then ok; else bad "$what: exit $got, expected $want; stderr: $(head -c 400 "$T/err")"; fi
}
# contains FILE PATTERN "description"
contains() { if grep -qE -- "$2" "$1"; then ok; else bad "$3: '$2' not in $(head -c 400 "$1")"; fi; }
count_orders() { sqlite3 "$D/moat.db" "SELECT count(*) FROM orders"; }

# ---- usage ----
expect 2 "no command" "$MOAT"
expect 0 "help" "$MOAT" help
expect 2 "unknown command" "$MOAT" frobnicate
expect 0 "import --help" "$MOAT" import --help
contains "$T/out" "all-or-nothing" "import help text"
expect 2 "import without args" "$MOAT" import --data "$D"
expect 2 "import bad kind" "$MOAT" import widgets x --data "$D"
expect 2 "unknown option" "$MOAT" init --bogus

# ---- data directory ----
expect 1 "open missing data dir" "$MOAT" principal list --data "$D"
contains "$T/err" "moat init" "missing data dir hint"
expect 0 "init" "$MOAT" init --data "$D"
for f in moat.db moat.conf keys/dek-k1.key keys/lookup.key; do
	[ "$(stat -c %a "$D/$f")" = 600 ] && ok || bad "$f is not 0600"
done
expect 1 "init twice refused" "$MOAT" init --data "$D"
contains "$T/err" "refusing" "init twice message"
mkdir -p "$T/foreign" && echo hello >"$T/foreign/file"
expect 1 "init over foreign dir" "$MOAT" init --data "$T/foreign"
[ "$(cat "$T/foreign/file")" = hello ] && ok || bad "foreign dir was modified"
expect 1 "open foreign dir" "$MOAT" principal list --data "$T/foreign"
contains "$T/err" "not a moat data directory" "foreign dir message"
# a corrupt database is refused, never overwritten
cp -r "$D" "$T/corrupt" && printf 'garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage' >"$T/corrupt/moat.db"
expect 1 "corrupt database" "$MOAT" principal list --data "$T/corrupt"
contains "$T/err" "not a database|corrupt|foreign" "corrupt db message"
contains "$T/corrupt/moat.db" "^garbage" "corrupt db untouched"
# a foreign SQLite file
cp -r "$D" "$T/foreigndb" && rm "$T/foreigndb/moat.db" && sqlite3 "$T/foreigndb/moat.db" "CREATE TABLE x(a)"
expect 1 "foreign sqlite db" "$MOAT" principal list --data "$T/foreigndb"
contains "$T/err" "not a moat database" "foreign db message"

# ---- happy path over the examples (options after positionals too) ----
for k in parties principals relations orders; do
	expect 0 "import $k" "$MOAT" import "$k" "$SRC/examples/$k.jsonl" --data "$D"
done
[ "$(count_orders)" = 3 ] && ok || bad "expected 3 orders"
expect 0 "order show" "$MOAT" order show O1 --data "$D"
contains "$T/out" "刘\\*" "masked name"
contains "$T/out" "138\\*\\*\\*\\*5678" "masked phone"
if grep -q "13812345678\|天河路1号" "$T/out"; then bad "order show leaked plaintext"; else ok; fi
"$MOAT" order show --json O2 --data "$D" >"$T/out" 2>&1
contains "$T/out" '"id_number":"110105\*\*\*\*\*\*\*\*002X"' "masked id number in JSON"
expect 1 "order show unknown" "$MOAT" order show NOPE --data "$D"
contains "$T/err" "unknown order" "unknown order message"

# PII is encrypted at rest: the plaintext appears nowhere in the database files
if grep -rq "13812345678\|天河路1号\|刘丽" "$D/moat.db"*; then bad "plaintext PII in database"; else ok; fi

# re-import the same order id updates it (status) without duplicating
sed 's/"status": "shipped"/"status": "delivered"/' "$SRC/examples/orders.jsonl" >"$T/orders2.jsonl"
expect 0 "re-import orders" "$MOAT" import orders "$T/orders2.jsonl" --data "$D"
[ "$(count_orders)" = 3 ] && ok || bad "re-import duplicated orders"
[ "$(sqlite3 "$D/moat.db" "SELECT status FROM orders WHERE order_id='O2'")" = 2 ] && ok || bad "status not updated"
# stdin
head -1 "$SRC/examples/parties.jsonl" | "$MOAT" import parties - --data "$D" >/dev/null 2>&1 && ok || bad "import from stdin"

# ---- bad input: each refused with line and field, exit 1, nothing written ----
good='{"order_id":"N1","merchant":"m-zara","placed_at":"2026-03-01T10:00:00+08:00","status":"paid","buyer":{"name":"李四","phone":"13912345678","address":{"province":"广东省","city":"深圳市","district":"南山区","detail":"科技园1号"}},"items":[{"sku":"S1","title":"T恤","qty":1,"price_cents":100}]}'
bad_case() { # name, line-2 content, expected field/pattern
	local name=$1 line=$2 pat=$3
	printf '%s\n%s\n' "$good" "$line" >"$T/bad.jsonl"
	local before; before=$(count_orders)
	expect 1 "bad input: $name" "$MOAT" import orders "$T/bad.jsonl" --data "$D"
	contains "$T/err" "line 2" "$name names the line"
	contains "$T/err" "$pat" "$name names the problem"
	[ "$(count_orders)" = "$before" ] && ok || bad "$name: batch was partly written"
}
mk() { python3 -c "import json,sys; o=json.loads(sys.argv[1]); exec(sys.argv[2]); print(json.dumps(o,ensure_ascii=False))" "$good" "$1"; }
bad_case "malformed JSON" '{"order_id":"N2",' "malformed JSON"
bad_case "invalid UTF-8" "$(printf '{"order_id":"N2","merchant":"\xff\xfe"}')" "UTF-8"
bad_case "wrong type" "$(mk 'o["order_id"]="N2"; o["placed_at"]=5')" "field placed_at: must be a string"
bad_case "unknown key" "$(mk 'o["order_id"]="N2"; o["colour"]="red"')" "field colour: unknown key"
bad_case "unknown nested key" "$(mk 'o["order_id"]="N2"; o["buyer"]["email"]="x@y"')" "field buyer.email"
bad_case "missing field" "$(mk 'o["order_id"]="N2"; del o["buyer"]["phone"]')" "field buyer.phone: required"
bad_case "bad phone" "$(mk 'o["order_id"]="N2"; o["buyer"]["phone"]="12345678901"')" "field buyer.phone: must be an 11-digit"
bad_case "bad id number" "$(mk 'o["order_id"]="N2"; o["buyer"]["id_number"]="110105194912310021"')" "field buyer.id_number"
bad_case "over-long field" "$(mk 'o["order_id"]="N2"; o["buyer"]["address"]["detail"]="x"*300')" "field buyer.address.detail: longer than"
bad_case "duplicated key" '{"order_id":"N2","order_id":"N3"}' "duplicate"
bad_case "bad time" "$(mk 'o["order_id"]="N2"; o["placed_at"]="2026-03-01 10:00"')" "field placed_at: must be an RFC 3339"
bad_case "unknown merchant" "$(mk 'o["order_id"]="N2"; o["merchant"]="m-nobody"')" "field merchant: unknown party"
bad_case "deep nesting" "{\"order_id\":$(printf '[%.0s' $(seq 40))1$(printf ']%.0s' $(seq 40))}" "nested deeper"
# a 1 GiB line: streamed past, never buffered, refused with its line number
{ echo "$good"; head -c 1073741824 /dev/zero | tr '\0' 'a'; echo; } >"$T/huge.jsonl"
before=$(count_orders)
expect 1 "1 GiB line" "$MOAT" import orders "$T/huge.jsonl" --data "$D"
contains "$T/err" "line 2: line is longer than" "1 GiB line message"
[ "$(count_orders)" = "$before" ] && ok || bad "1 GiB line: batch partly written"
rm -f "$T/huge.jsonl"
# errors deep in a large file (orders are parsed and encrypted on a second
# thread while rows are written): still nothing written, still the right line
python3 - "$T" "$good" <<'PYEOF'
import json, sys
t, good = sys.argv[1], json.loads(sys.argv[2])
def world(bad_line, change):
    with open(f"{t}/big.jsonl", "w") as f:
        for i in range(1, 3001):
            o = json.loads(json.dumps(good)); o["order_id"] = f"BIG{i:05d}"
            if i == bad_line: change(o)
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
def phone(o): o["buyer"]["phone"] = "12345"
world(2777, phone)
import os; os.rename(f"{t}/big.jsonl", f"{t}/big1.jsonl")
def merchant(o): o["merchant"] = "m-nobody"
world(2900, merchant)
PYEOF
before=$(count_orders)
expect 1 "bad phone at line 2777" "$MOAT" import orders "$T/big1.jsonl" --data "$D"
contains "$T/err" "line 2777, field buyer.phone" "late parse error names its line"
expect 1 "unknown merchant at line 2900" "$MOAT" import orders "$T/big.jsonl" --data "$D"
contains "$T/err" "line 2900, field merchant: unknown party" "late store error names its line"
[ "$(count_orders)" = "$before" ] && ok || bad "late errors: batch partly written"
rm -f "$T/big.jsonl" "$T/big1.jsonl"
# several producer threads convert batches out of order: the first error in file
# order is the one reported, whichever thread met it, and a later line for the
# same order id wins over an earlier one in another batch
python3 - "$T" "$good" <<'PYEOF'
import json, sys
t, good = sys.argv[1], json.loads(sys.argv[2])
def world(name, changes):
    with open(f"{t}/{name}", "w") as f:
        for i in range(1, 3001):
            o = json.loads(json.dumps(good)); o["order_id"] = f"MP{i:05d}"
            if i in changes: changes[i](o)
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
def phone(o): o["buyer"]["phone"] = "12345"
def merchant(o): o["merchant"] = "m-nobody"
def again(o): o["order_id"] = "MP00010"; o["status"] = "delivered"
world("two1.jsonl", {1500: merchant, 2777: phone})
world("two2.jsonl", {1500: phone, 2900: merchant})
world("two3.jsonl", {700: phone, 701: phone, 2000: phone})
world("again.jsonl", {2990: again})
PYEOF
expect 1 "store error before a parse error" "$MOAT" import orders "$T/two1.jsonl" --data "$D"
contains "$T/err" "line 1500, field merchant: unknown party" "first error in file order (store)"
expect 1 "parse error before a store error" "$MOAT" import orders "$T/two2.jsonl" --data "$D"
contains "$T/err" "line 1500, field buyer.phone" "first error in file order (parse)"
expect 1 "three parse errors" "$MOAT" import orders "$T/two3.jsonl" --data "$D"
contains "$T/err" "line 700, field buyer.phone" "first of several parse errors"
[ "$(count_orders)" = "$before" ] && ok || bad "two errors: batch partly written"
# (in a data directory of its own: later checks count this one's orders)
expect 0 "init second data dir" "$MOAT" init --data "$T/data2"
expect 0 "parties in second data dir" "$MOAT" import parties "$SRC/examples/parties.jsonl" --data "$T/data2"
expect 0 "same order id twice, far apart" "$MOAT" import orders "$T/again.jsonl" --data "$T/data2"
[ "$(sqlite3 "$T/data2/moat.db" "SELECT count(*) FROM orders")" = 2999 ] && ok ||
	bad "order id twice: wrong count"
[ "$(sqlite3 "$T/data2/moat.db" "SELECT status FROM orders WHERE order_id='MP00010'")" = 2 ] && ok ||
	bad "order id twice: the later line did not win"
rm -rf "$T/data2"
rm -f "$T/two1.jsonl" "$T/two2.jsonl" "$T/two3.jsonl" "$T/again.jsonl"
# wrong kinds in other files
printf '{"party":"x","kind":"bank","name":"n"}\n' >"$T/p.jsonl"
expect 1 "bad party kind" "$MOAT" import parties "$T/p.jsonl" --data "$D"
contains "$T/err" "field kind: must be one of" "party kind message"
printf '{"principal":"u1","party":"m-zara","role":"cs_agent","shift":"9-18"}\n' >"$T/p.jsonl"
expect 1 "bad shift" "$MOAT" import principals "$T/p.jsonl" --data "$D"
contains "$T/err" "field shift" "shift message"
printf '{"kind":"ticket","order_id":"O1","principal":"cs-017"}\n' >"$T/r.jsonl"
expect 1 "ticket without ticket id" "$MOAT" import relations "$T/r.jsonl" --data "$D"
contains "$T/err" "field ticket" "relation message"
expect 1 "missing file" "$MOAT" import orders "$T/nope.jsonl" --data "$D"

# ---- events onto the ledger ----
ledger_size() { "$MOAT" ledger checkpoint --data "$D" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])'; }
expect 0 "import events" "$MOAT" import events "$SRC/examples/events.jsonl" --data "$D"
contains "$T/out" "imported 4 events as ledger entries 0..4" "events become 5 entries (export lists 2 orders)"
"$MOAT" ledger show 0 --data "$D" --json >"$T/out"
contains "$T/out" '"imported":true' "imported mark"
contains "$T/out" '"relations":\["ticket"\]' "relation computed at event time"
size0=$(ledger_size)
printf '%s\n%s\n' "$(head -1 "$SRC/examples/events.jsonl")" '{"time":"2026-03-04T10:05:00+08:00","kind":"access","principal":"cs-017","order_id":"O1","purpose":"customer_care","fields":{"name":"x-ray"},"decision":"allow"}' >"$T/ev.jsonl"
expect 1 "event with bad view" "$MOAT" import events "$T/ev.jsonl" --data "$D"
contains "$T/err" "line 2, field fields.name: must be a view" "bad view names line and field"
printf '%s\n' '{"time":"2026-03-04T10:05:00+08:00","kind":"login","username":"x","ip":"1.2.3.4","result":"success","password":"hunter2"}' >"$T/ev.jsonl"
expect 1 "event with unknown key" "$MOAT" import events "$T/ev.jsonl" --data "$D"
contains "$T/err" "field password: unknown key" "unknown event key"
printf '%s\n' '{"time":"2026-03-04T10:05:00+08:00","kind":"export","principal":"admin-zara","rows":1,"fields":{"name":"full"},"purpose":"launder"}' >"$T/ev.jsonl"
expect 1 "event with unknown purpose" "$MOAT" import events "$T/ev.jsonl" --data "$D"
contains "$T/err" "field purpose: must be one of" "unknown purpose"
[ "$(ledger_size)" = "$size0" ] && ok || bad "rejected event files appended to the ledger"
expect 0 "ledger verify" "$MOAT" ledger verify --data "$D"

# ---- principals ----
expect 0 "principal add" "$MOAT" principal add u-new --party m-zara --role cs_agent --shift 09:00-18:00 --data "$D"
key=$(grep -o 'moat_[0-9a-f]*' "$T/out")
[ ${#key} -eq 69 ] && ok || bad "api key has 256 bits"
if sqlite3 "$D/moat.db" "SELECT hex(key_hash) FROM principals" | grep -qi "${key#moat_}"; then bad "raw key stored"; else ok; fi
expect 1 "principal add twice" "$MOAT" principal add u-new --party m-zara --role cs_agent --data "$D"
expect 2 "principal add bad role" "$MOAT" principal add u2 --party m-zara --role king --data "$D"
expect 1 "principal add unknown party" "$MOAT" principal add u2 --party nobody --role cs_agent --data "$D"
expect 0 "suspend" "$MOAT" principal suspend u-new --data "$D"
"$MOAT" principal list --json --data "$D" >"$T/out"
contains "$T/out" '"principal":"u-new".*"status":"suspended"' "suspended in list"
expect 0 "resume" "$MOAT" principal resume u-new --data "$D"
expect 1 "suspend unknown" "$MOAT" principal suspend ghost --data "$D"

# ---- key rotation ----
expect 0 "key rotate" "$MOAT" key rotate --batch 1 --json --data "$D"
contains "$T/out" '"current_key":"k2","reencrypted":3' "rotation re-encrypted all orders"
[ "$(sqlite3 "$D/moat.db" "SELECT count(*) FROM orders WHERE key_id<>'k2'")" = 0 ] && ok || bad "stale keys remain"
expect 0 "order show after rotation" "$MOAT" order show O1 --data "$D"
contains "$T/out" "138\\*\\*\\*\\*5678" "decrypts after rotation"
chmod 644 "$D/keys/dek-k1.key"
expect 1 "world-readable key refused" "$MOAT" order show O1 --data "$D"
contains "$T/err" "chmod 600" "key permission message"
chmod 600 "$D/keys/dek-k1.key"

# ---- config ----
echo "[server]" >>"$D/moat.conf"; echo "colour = red" >>"$D/moat.conf"
expect 1 "unknown config key" "$MOAT" principal list --data "$D"
contains "$T/err" "server.colour" "config error names the key"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
