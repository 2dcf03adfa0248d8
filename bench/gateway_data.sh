# Sourced by bench/gateway.sh and bench/gateway_instr.sh: the data directory
# both measure. Needs MOAT (the binary), T (a scratch directory), D (the data
# directory to create) and ORDERS; sets KEY (courier-1's API key) and writes
# $T/reads.lua, a wrk script reading the orders in turn for purpose deliver.
# ORDERS shipped orders B1.., each assigned to courier-1, read under the
# default policy with its quotas lifted.
export MOAT_LOG_LEVEL=warn
"$MOAT" init --data "$D" >/dev/null
# The default policy with quotas lifted, so the run measures reads, not refusals.
"$MOAT" policy default | sed 's/^  quota .*/  quota unlimited/' >"$D/policy.conf"

now=$(date -u +%s)
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
placed=$(iso $((now - 3 * 86400))); shipped=$(iso $((now - 86400))); from=$(iso $((now - 2 * 86400)))
printf '{"party":"m-1","kind":"merchant","name":"M"}\n{"party":"l-1","kind":"logistics","name":"L"}\n' >"$T/parties.jsonl"
printf '{"principal":"courier-1","party":"l-1","role":"courier"}\n' >"$T/principals.jsonl"
: >"$T/orders.jsonl"; : >"$T/relations.jsonl"
for i in $(seq 1 "$ORDERS"); do
	printf '{"order_id":"B%d","merchant":"m-1","placed_at":"%s","status":"shipped","buyer":{"name":"刘丽","phone":"138%08d","address":{"province":"广东省","city":"广州市","district":"天河区","detail":"天河路%d号"}},"items":[{"sku":"S1","title":"羊毛衫","qty":1,"price_cents":29900}],"shipping":{"carrier":"l-1","waybill":"SF%d","shipped_at":"%s"}}\n' \
		"$i" "$placed" "$i" "$i" "$i" "$shipped" >>"$T/orders.jsonl"
	printf '{"kind":"assign","order_id":"B%d","principal":"courier-1","from":"%s"}\n' "$i" "$from" >>"$T/relations.jsonl"
done
for k in parties principals orders relations; do "$MOAT" import "$k" "$T/$k.jsonl" --data "$D" >/dev/null; done
KEY=$("$MOAT" principal key courier-1 --data "$D" --json | sed 's/.*"api_key":"\([^"]*\)".*/\1/')

cat >"$T/reads.lua" <<LUA
local n = $ORDERS
local i = 0
request = function()
  i = i % n + 1
  return wrk.format("GET", "/v1/orders/B" .. i .. "?purpose=deliver")
end
LUA
