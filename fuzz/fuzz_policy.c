/* Policy text (src/policy/policy.c), the file `moat policy check` lints and the
 * gateway reloads on SIGHUP. A policy that parses must decide every request
 * the way the header promises: a deny hides every field; an allow names a real
 * rule and grants each field only a view that field may have (DESIGN.md's
 * field table), whatever the text said; the decision is the same twice; lint
 * and explain work on it. */
#include <string.h>

#include "fuzz.h"
#include "moat/policy.h"

static void check_decision(const moat_policy_t *p, const moat_policy_request_t *rq)
{
	moat_policy_decision_t d, again;
	moat_policy_decide(p, rq, &d);
	moat_policy_decide(p, rq, &again);
	FUZZ_CHECK(d.allow == again.allow && d.rule_index == again.rule_index &&
		   memcmp(d.views, again.views, sizeof d.views) == 0 && d.quota == again.quota);
	if (!d.allow) {
		for (int f = 0; f < MOAT_FIELD_COUNT; f++)
			FUZZ_CHECK(d.views[f] == MOAT_VIEW_HIDDEN);
		return;
	}
	FUZZ_CHECK(d.rule_index >= 0 && (size_t)d.rule_index < moat_policy_rule_count(p));
	FUZZ_CHECK(d.rule && strcmp(d.rule, moat_policy_rule_id(p, (size_t)d.rule_index)) == 0);
	FUZZ_CHECK(d.quota == MOAT_QUOTA_UNLIMITED || d.quota >= 0);
	for (int f = 0; f < MOAT_FIELD_COUNT; f++)
		FUZZ_CHECK(d.views[f] < MOAT_VIEW_COUNT &&
			   (d.views[f] == MOAT_VIEW_HIDDEN ||
			    moat_policy_view_allowed((moat_field_t)f, (moat_view_t)d.views[f])));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	moat_policy_t *p = NULL;
	moat_error_t err;
	if (moat_policy_parse((const char *)data, size, &p, &err) != MOAT_OK)
		return 0;
	moat_buf_t b;
	moat_buf_init(&b, 1u << 20);
	moat_policy_lint(p, &b);
	FUZZ_CHECK(moat_policy_hash(p) && strlen(moat_policy_hash(p)) == 64);
	static const char *const shifts[] = {NULL, "09:00-18:00", "22:00-06:00"};
	const moat_time_t base = 1764547200000; /* 2025-12-01T00:00Z */
	for (int role = 0; role < MOAT_ROLE_COUNT; role++)
		for (int purpose = 0; purpose < MOAT_PURPOSE_COUNT; purpose++)
			for (int st = 0; st < MOAT_STATUS_COUNT; st++) {
				moat_policy_request_t rq = {
				    .role = (moat_role_t)role,
				    .purpose = (moat_purpose_t)purpose,
				    .relations = (unsigned)(role + purpose + st) & 7u,
				    .own_merchant = (role + st) & 1,
				    .status = (moat_order_status_t)st,
				    .placed_at = base - 5 * 86400000LL,
				    .shipped_at = st >= MOAT_STATUS_SHIPPED ? base - 3 * 86400000LL
									    : MOAT_TIME_NONE,
				    .delivered_at = st >= MOAT_STATUS_DELIVERED
							? base - 86400000LL * (purpose + 1) * 5
							: MOAT_TIME_NONE,
				    .now = base + 3600000LL * ((role * 7 + purpose) % 24),
				    .shift = shifts[(role + purpose) % 3],
				};
				check_decision(p, &rq);
				if (role == purpose) {
					moat_buf_reset(&b);
					FUZZ_CHECK(moat_policy_explain(p, &rq, &b) == MOAT_OK);
				}
			}
	moat_buf_free(&b);
	moat_policy_free(p);
	return 0;
}
