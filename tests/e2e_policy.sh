#!/usr/bin/env bash
# End-to-end tests of `moat policy`: check (valid, invalid with line, warnings),
# default, explain over the examples.
set -u
MOAT=${MOAT_BIN:?MOAT_BIN must point at the moat binary}
SRC=${MOAT_SRC:?MOAT_SRC must point at the source tree}
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
contains() { if grep -qE -- "$2" "$1"; then ok; else bad "$3: '$2' not in $(head -c 600 "$1")"; fi; }

expect 0 "init" "$MOAT" init --data "$D"
expect 0 "check installed policy" "$MOAT" policy check "$D/policy.conf"
contains "$T/out" "ok: 10 rules, 0 warnings" "check summary"
expect 0 "default" "$MOAT" policy default
if cmp -s "$T/out" "$D/policy.conf"; then ok; else bad "init installs the default policy"; fi

printf 'rule a\n  role courier\n  view name=virtual\nend\n' >"$T/bad.conf"
expect 1 "check invalid" "$MOAT" policy check "$T/bad.conf"
contains "$T/err" "bad.conf:3: field name has no view" "error names line"
printf 'rule a\n  view name=full\nend\nrule b\n  role courier\n  deny\nend\n' >"$T/warn.conf"
expect 0 "check with warnings" "$MOAT" policy check "$T/warn.conf"
contains "$T/err" "rule b: never applies" "shadowed rule warning"
contains "$T/err" "plaintext without requiring a relation" "no-relation warning"
expect 1 "check missing file" "$MOAT" policy check "$T/nope.conf"
expect 2 "check without file" "$MOAT" policy check
expect 2 "unknown subcommand" "$MOAT" policy frob

for k in parties principals relations orders; do
	expect 0 "import $k" "$MOAT" import "$k" "$SRC/examples/$k.jsonl" --data "$D"
done
expect 0 "explain allow" "$MOAT" policy explain --principal cr-88 --order O1 --purpose deliver \
	--at 2026-03-04T10:00:00+08:00 --data "$D"
contains "$T/out" "decision: allow by rule courier-deliver" "courier within window"
expect 0 "explain after window" "$MOAT" policy explain --principal cr-88 --order O1 --purpose deliver \
	--at 2026-03-20T10:00:00+08:00 --data "$D"
contains "$T/out" "courier-deliver .*skipped" "courier after window"
expect 0 "explain deny" "$MOAT" policy explain --principal cr-88 --order O3 --purpose deliver --data "$D"
contains "$T/out" "decision: deny \(no rule matched\)" "unrelated courier denied"
expect 2 "explain unknown purpose" "$MOAT" policy explain --principal cr-88 --order O1 --purpose fun --data "$D"
expect 2 "explain missing options" "$MOAT" policy explain --principal cr-88 --data "$D"
expect 1 "explain unknown order" "$MOAT" policy explain --principal cr-88 --order O99 --purpose deliver --data "$D"
expect 0 "explain with --policy" "$MOAT" policy explain --principal cr-88 --order O1 --purpose deliver --policy "$T/warn.conf" --data "$D"
contains "$T/out" "decision: allow by rule a" "explain with another file"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
