#!/usr/bin/env bash
# End to end: the detector inside `moat serve` — SIGHUP rules reload, and the
# alert webhook. A real `moat serve` with [detect] webhook set,
# a real HTTP receiver (python), credential stuffing over POST /v1/sessions:
# the alert reaches the receiver signed with HMAC-SHA-256 under
# <data>/keys/webhook.key, a receiver failure is retried, a restart does not
# deliver it twice, and a bad webhook URL is refused naming the setting.
set -u
MOAT=${MOAT_BIN:?MOAT_BIN must point at the moat binary}
SRC=${MOAT_SRC:?}
T=$(mktemp -d)
SERVER= RECV=
cleanup() {
	[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
	[ -n "$RECV" ] && kill "$RECV" 2>/dev/null
	[ -n "${KEEP:-}" ] && { echo "kept $T" >&2; return; }
	rm -rf "$T"
}
trap cleanup EXIT
D="$T/data"
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }
export MOAT_LOG_LEVEL=info

"$MOAT" init --data "$D" >/dev/null || bad "init"
for k in parties principals relations orders; do
	"$MOAT" import "$k" "$SRC/examples/$k.jsonl" --data "$D" >/dev/null 2>&1 || bad "import $k"
done

# a receiver that answers 500 while $T/down exists, 200 otherwise
cat >"$T/recv.py" <<'EOF'
import http.server, json, os, sys
out, down = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = 500 if os.path.exists(down) else 200
        with open(out, "a") as f:
            f.write(json.dumps({"status": status, "path": self.path, "sig": self.headers.get("Moat-Signature"),
                                "id": self.headers.get("Moat-Alert-Id"),
                                "type": self.headers.get("Content-Type"),
                                "body": body.decode()}) + "\n")
        self.send_response(status); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
EOF
python3 "$T/recv.py" "$T/got.jsonl" "$T/down" >"$T/recv.port" &
RECV=$!
for _ in $(seq 50); do [ -s "$T/recv.port" ] && break; sleep 0.1; done
RPORT=$(cat "$T/recv.port")

# a bad URL is refused, naming the setting
MOAT_WEBHOOK="ftp://example.org/x" "$MOAT" serve --data "$D" --listen 127.0.0.1:0 >/dev/null 2>"$T/err"
check "bad webhook URL refused (exit 1)" '[ $? -eq 1 ]'
check "message names the setting" 'grep -Eq "MOAT_WEBHOOK: must be an http" "$T/err"'
printf '\n[detect]\nwebhook = http://bad host/\n' >"$T/bad.conf"
cp "$D/moat.conf" "$T/saved.conf" && cat "$T/bad.conf" >>"$D/moat.conf"
"$MOAT" serve --data "$D" --listen 127.0.0.1:0 >/dev/null 2>"$T/err"
check "bad webhook URL in moat.conf refused (exit 1)" '[ $? -eq 1 ]'
check "message names detect.webhook" 'grep -q "detect.webhook" "$T/err"'
cp "$T/saved.conf" "$D/moat.conf"

printf '\n[detect]\nwebhook = http://127.0.0.1:%s/hook\n' "$RPORT" >>"$D/moat.conf"
start() {
	"$MOAT" serve --data "$D" --listen 127.0.0.1:0 2>"$T/serve.log" &
	SERVER=$!
	PORT=
	for _ in $(seq 100); do
		PORT=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$T/serve.log" | head -1)
		[ -n "$PORT" ] && break
		sleep 0.1
	done
}
start
check "server started" '[ -n "$PORT" ]'
check "webhook key made, 0600" '[ "$(stat -c %a "$D/keys/webhook.key")" = 600 ]'

# credential stuffing: one source fails on five accounts, while the receiver is down
touch "$T/down"
for u in svc-orders ops-01 cs-017 admin-zara wh-01 cr-88; do
	curl -s -o /dev/null -H 'Content-Type: application/json' \
		-d "{\"username\":\"$u\",\"password\":\"guess-123456\"}" "http://127.0.0.1:$PORT/v1/sessions"
done
for _ in $(seq 100); do
	[ "$(cat "$T/got.jsonl" 2>/dev/null | grep -c '"status": 500')" -ge 2 ] && break
	sleep 0.1
done
check "delivery attempted and retried while the receiver fails" '[ "$(cat "$T/got.jsonl" 2>/dev/null | grep -c "\"status\": 500")" -ge 2 ]'
# /metrics follows the detector: alerts raised, and no lag once it caught up
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
for _ in $(seq 50); do [ "$(metric moat_detect_lag_entries)" = 0 ] && break; sleep 0.1; done
check "detector lag 0 on /metrics once caught up" '[ "$(metric moat_detect_lag_entries)" = 0 ]'
check "judged entries = ledger size" '[ "$(metric moat_detect_judged_entries)" = "$(metric moat_ledger_size)" ]'
check "nothing left to replay" '[ "$(metric moat_detect_replay_entries)" = 0 ]'
check "alerts counted on /metrics" '[ "$(metric moat_detect_alerts_total)" -ge 1 ]'
check "no failed detector tick" '[ "$(metric moat_detect_tick_failures_total)" = 0 ]'
# stopped before any delivery succeeded; the receiver comes back; a restart delivers
kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null; SERVER=
rm -f "$T/down"
start
for _ in $(seq 100); do
	[ "$(grep -c '"status": 200' "$T/got.jsonl")" -ge 1 ] && break
	sleep 0.1
done
check "undelivered alert delivered after a restart" '[ "$(grep -c "\"status\": 200" "$T/got.jsonl")" -ge 1 ]'
python3 - "$T/got.jsonl" "$D/keys/webhook.key" >"$T/verify" 2>&1 <<'EOF'
import hashlib, hmac, json, sys
key = bytes.fromhex(open(sys.argv[2]).read().strip())
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows:
    want = "sha256=" + hmac.new(key, r["body"].encode(), hashlib.sha256).hexdigest()
    assert r["sig"] == want, "bad signature"
    a = json.loads(r["body"])
    assert a["id"] == r["id"], "Moat-Alert-Id differs from the body"
    assert r["type"] == "application/json"
ok = [json.loads(r["body"]) for r in rows if r["status"] == 200]
assert any(a["rule"] == "stuffing_source" for a in ok), [a["rule"] for a in ok]
print("ok", len(rows))
EOF
check "signature, id header and rule check out ($(cat "$T/verify"))" 'grep -q "^ok" "$T/verify"'
check "no password in any delivery" '! grep -q "guess-123456" "$T/got.jsonl"'

# restart: nothing delivered twice
delivered=$(grep -c '"status": 200' "$T/got.jsonl")
kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null; SERVER=
start
sleep 2.5
check "restart delivers nothing twice" '[ "$(grep -c "\"status\": 200" "$T/got.jsonl")" = "$delivered" ]'

# SIGHUP with the rules and the policy's quotas unchanged keeps the running
# engine (no replay of the ledger into a fresh one)
kill -HUP "$SERVER"
for _ in $(seq 50); do grep -q '"rules_unchanged"' "$T/serve.log" && break; sleep 0.1; done
check "unchanged rules keep the engine on SIGHUP" 'grep -q "\"rules_unchanged\"" "$T/serve.log" && ! grep -q "\"rules_reloaded\"" "$T/serve.log"'
# A policy the gateway refuses leaves the detector as it is too (the quotas it
# replays are those of the policy the gateway keeps), whatever the rules say
cp "$D/policy.conf" "$T/policy.saved"
printf 'version 2\n' >"$D/policy.conf"
kill -HUP "$SERVER"
for _ in $(seq 50); do grep -q '"rules_reload_skipped"' "$T/serve.log" && break; sleep 0.1; done
check "a refused policy keeps the detector" 'grep -q "\"reload_failed\"" "$T/serve.log" && grep -q "\"rules_reload_skipped\"" "$T/serve.log" && ! grep -q "\"rules_reloaded\"" "$T/serve.log"'
cp "$T/policy.saved" "$D/policy.conf"

# SIGHUP: a broken rules file is refused and the old rules stay; a valid one
# takes effect for new events
cp "$D/rules.conf" "$T/rules.saved"
printf '[rule broken]\ntype = event_count\n' >>"$D/rules.conf"
kill -HUP "$SERVER"; sleep 1.5
check "broken rules refused on SIGHUP" 'grep -q "rules_reload_failed" "$T/serve.log"'
check "server still serving" 'curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null'
cp "$T/rules.saved" "$D/rules.conf"
printf '\n[rule any_failure]\ntitle = Any failed login\ntype = event_count\nfilter = kind=login result=failure\ngroup-by = principal\ntimespan = 1m\ncondition = gte 1\nseverity = low\n' >>"$D/rules.conf"
"$MOAT" rules check "$D/rules.conf" >/dev/null || bad "test rule file invalid"
kill -HUP "$SERVER"
for _ in $(seq 50); do grep -q '"rules_reloaded"' "$T/serve.log" && break; sleep 0.1; done
check "valid rules reloaded" 'grep -q "\"rules_reloaded\"" "$T/serve.log"'
curl -s -o /dev/null -H 'Content-Type: application/json' \
	-d '{"username":"audit-01","password":"wrong-one-here"}' "http://127.0.0.1:$PORT/v1/sessions"
for _ in $(seq 50); do grep -q any_failure "$T/got.jsonl" && break; sleep 0.1; done
check "the new rule fires on a new event (and reaches the webhook)" 'grep -q "any_failure" "$T/got.jsonl"'
check "the new rule did not fire on the history" '[ "$(grep -c any_failure "$T/got.jsonl")" = 1 ]'

# SIGHUP re-reads moat.conf too: a bad file changes nothing; a new webhook URL
# takes effect at once; settings the listener was built with need a restart
cp "$D/moat.conf" "$T/conf.saved"
printf '\n[server]\nbogus = 1\n' >>"$D/moat.conf"
kill -HUP "$SERVER"
for _ in $(seq 50); do grep -q '"config_reload_failed"' "$T/serve.log" && break; sleep 0.1; done
check "bad moat.conf refused on SIGHUP, naming the setting" 'grep "config_reload_failed" "$T/serve.log" | grep -q "server.bogus"'
check "server still serving after a bad moat.conf" 'curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null'
sed "s#/hook\$#/hook2#" "$T/conf.saved" >"$D/moat.conf"
printf '\n[server]\nthreads = 7\n' >>"$D/moat.conf"
grep -q '/hook2$' "$D/moat.conf" || bad "test config not rewritten"
kill -HUP "$SERVER"
for _ in $(seq 50); do grep -q '"webhook_reloaded"' "$T/serve.log" && break; sleep 0.1; done
check "new webhook URL taken on SIGHUP" 'grep -q "\"webhook_reloaded\"" "$T/serve.log"'
check "a listener setting is reported as needing a restart" 'grep "config_needs_restart" "$T/serve.log" | grep -q "server.threads"'
# (a principal with no failure yet: one already failing is inside its window)
curl -s -o /dev/null -H 'Content-Type: application/json' \
	-d '{"username":"isv-erp1-app","password":"wrong-again-here"}' "http://127.0.0.1:$PORT/v1/sessions"
for _ in $(seq 50); do grep -q '"/hook2"' "$T/got.jsonl" && break; sleep 0.1; done
check "the next alert goes to the new URL" 'grep "\"/hook2\"" "$T/got.jsonl" | grep -q any_failure'
cp "$T/conf.saved" "$D/moat.conf"
kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null; SERVER=

echo "e2e_serve_detect: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
