#!/usr/bin/env bash
# End to end: `moat eval` scores simulated worlds against their truth.json — a
# cs_insider world (detected, leaker ranked first and significant), a clean world
# (no false accusation), a truth whose window is moved away from the attack (the
# same alerts become false ones), and the runtime and usage errors.
set -euo pipefail
M=${MOAT_BIN:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

world() { # world NAME SCENARIO SEED: simulate, init, import everything
	$M simulate --scenario "$2" --seed "$3" --scale small --out "$T/$1" --quiet
	$M init --data "$T/$1.data" >/dev/null
	for k in parties principals relations orders events reports; do
		$M import $k "$T/$1/$k.jsonl" --data "$T/$1.data" >/dev/null 2>&1 || fail "$1: import $k"
	done
}
world cs cs_insider 11
world clean clean 11

# cs_insider: detected, leaker first and significant, nothing else accused.
$M eval "$T/cs" --data "$T/cs.data" --json > "$T/cs.json" || fail "eval cs_insider"
$M alerts --json --status all --data "$T/cs.data" > "$T/cs-alerts.json"
python3 - "$T/cs.json" "$T/cs/truth.json" "$T/cs-alerts.json" <<'PY' || fail "cs_insider scores"
import json, sys
r = json.load(open(sys.argv[1])); truth = json.load(open(sys.argv[2]))
alerts = json.load(open(sys.argv[3]))["alerts"]
for k in ("world", "detector", "tracer", "warnings"):
    assert k in r, k
assert r["warnings"] == [], r["warnings"]
d = r["detector"]
attacker = truth["attacks"][0]["principal"]
assert d["alerts"] == len(alerts), (d["alerts"], len(alerts))
assert d["recall"] == 1.0 and d["detected"] == 1 and d["detectable"] == 1, d
assert d["by_kind"] == [{"kind": "cs_insider", "attacks": 1, "detectable": 1, "detected": 1,
                         "recall": 1.0}], d["by_kind"]
on_attacker = sum(1 for a in alerts if a["principal"] == attacker)
assert d["true_alerts"] <= on_attacker and d["true_alerts"] > 0, (d, on_attacker)
assert d["true_alerts"] + d["false_alerts"] == d["alerts"]
assert abs(d["precision"] - d["true_alerts"] / d["alerts"]) < 1e-9
a = d["attacks"][0]
assert a["principal"] == attacker and a["detected"] is True, a
assert 0 <= a["time_to_detect_s"] <= a["time_to_action_s"], a
assert a["first_action"]["action"] in ("throttle", "force_mask", "suspend"), a
# the pull is the distinct orders of the attack's events; the action stops most of it
assert a["attempted_orders"] == truth["attacks"][0]["attempted_orders"], a
assert 0 <= a["served_before_action"] < a["attempted_orders"] and a["served_share"] < 0.5, a
t = r["tracer"]
assert t["false_accusations"] == 0, t
case = t["cases"][0]
assert case["case"] == "default", case
genuine = sum(1 for x in truth["reports"] if x["label"] == "genuine")
assert case["genuine"] == genuine and case["reports"] == len(truth["reports"]), case
[l] = case["leakers"]
assert l["principal"] == attacker and l["rank"] == 1 and l["significant"] is True, l
assert 0 < l["p_value"] < case["alpha"] and l["p_value_raw"] <= l["p_value"], l
assert l["reports"] == genuine, l
PY

# The text form is for people: both tables, the leaker's row.
$M eval "$T/cs" --data "$T/cs.data" > "$T/cs.txt" || fail "eval text"
grep -q '^DETECTOR' "$T/cs.txt" && grep -q '^TRACER' "$T/cs.txt" || fail "text: $(cat "$T/cs.txt")"
grep -q "cs_insider .* yes" "$T/cs.txt" || fail "text lacks the detected attack"

# Clean world: no attack, no leaker, nobody accused.
$M eval "$T/clean" --data "$T/clean.data" --json > "$T/clean.json" || fail "eval clean"
python3 - "$T/clean.json" <<'PY' || fail "clean scores"
import json, sys
r = json.load(open(sys.argv[1]))
d, t = r["detector"], r["tracer"]
assert d["attacks"] == [] and d["detectable"] == 0 and d["recall"] is None, d
assert d["false_alerts"] == d["alerts"] and d["true_alerts"] == 0, d
assert d["false_per_1k_principal_days"] == 1000.0 * d["alerts"] / r["world"]["principal_days"], d
assert t["leakers"] == 0 and t["false_accusations"] == 0, t
for c in t["cases"]:
    assert c["false_accusations"] == [] and c["genuine"] == 0 and c["reports"] > 0, c
PY

# Move the attack's window a month back: its alerts no longer fall in it (nor does
# their evidence), so it goes undetected and every alert on it is a false one.
mkdir "$T/moved"
cp "$T/cs/events.jsonl" "$T/moved/"
python3 - "$T/cs/truth.json" "$T/moved/truth.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
a = t["attacks"][0]
a["window"] = {"from": "2026-08-01T00:00:00+08:00", "until": "2026-08-02T00:00:00+08:00"}
a["first_event_time"] = "2026-08-01T00:00:00+08:00"
json.dump(t, open(sys.argv[2], "w"))
PY
$M eval "$T/moved" --data "$T/cs.data" --json > "$T/moved.json" || fail "eval moved"
python3 - "$T/moved.json" <<'PY' || fail "moved window"
import json, sys
d = json.load(open(sys.argv[1]))["detector"]
a = d["attacks"][0]
assert a["detected"] is False and a["alerts"] == 0 and a["first_action"] is None, a
assert a["alerts_outside_window"] == d["alerts"] == d["false_alerts_on_attackers"] > 0, d
assert d["precision"] == 0.0 and d["recall"] == 0.0, d
assert a["served_share"] == 1.0, a
PY

# Runtime errors: exit 1 with a message naming the problem.
expect_fail() { # expect_fail PATTERN ARGS...
	local pat=$1
	shift
	set +e
	$M eval "$@" >/dev/null 2>"$T/err"
	local rc=$?
	set -e
	[ "$rc" -eq 1 ] || fail "moat eval $*: exit $rc, want 1"
	grep -q -- "$pat" "$T/err" || fail "moat eval $*: message lacks '$pat': $(cat "$T/err")"
}
mkdir "$T/broken"
cp "$T/cs/events.jsonl" "$T/broken/"
python3 -c '
import json, sys
t = json.load(open(sys.argv[1])); del t["attacks"][0]["window"]
json.dump(t, open(sys.argv[2], "w"))' "$T/cs/truth.json" "$T/broken/truth.json"
expect_fail 'attacks\[0\].window: required field is missing' "$T/broken" --data "$T/cs.data"
head -c 200 "$T/cs/truth.json" > "$T/broken/truth.json"
expect_fail 'truth.json: not valid JSON (line' "$T/broken" --data "$T/cs.data"
python3 -c '
import json, sys
t = json.load(open(sys.argv[1])); t["reports"][0]["label"] = "perhaps"
json.dump(t, open(sys.argv[2], "w"))' "$T/cs/truth.json" "$T/broken/truth.json"
expect_fail 'reports\[0\].label: must be one of' "$T/broken" --data "$T/cs.data"
rm "$T/broken/truth.json"
expect_fail 'truth.json does not exist' "$T/broken" --data "$T/cs.data"
expect_fail 'not a moat data directory' "$T/cs" --data "$T/cs"
expect_fail 'no case C42' "$T/cs" --case C42 --data "$T/cs.data"

# Usage errors: exit 2.
expect_usage() {
	set +e
	$M eval "$@" >/dev/null 2>&1
	local rc=$?
	set -e
	[ "$rc" -eq 2 ] || fail "moat eval $*: exit $rc, want 2"
}
expect_usage --data "$T/cs.data"
expect_usage "$T/cs" "$T/clean" --data "$T/cs.data"
expect_usage "$T/cs" --alpha 2 --data "$T/cs.data"
expect_usage "$T/cs" --nope --data "$T/cs.data"
$M help eval | grep -q 'moat eval DIR' || fail "help"
echo "e2e_eval: ok"
