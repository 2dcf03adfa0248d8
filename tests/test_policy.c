/* Unit tests for src/policy: parsing, errors with lines, decisions with known answers. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "moat/policy.h"

static moat_policy_t *parse(const char *text)
{
	moat_policy_t *p = NULL;
	moat_error_t e = {0};
	moat_err_t rc = moat_policy_parse(text, strlen(text), &p, &e);
	CHECK_MSG(rc == MOAT_OK, "line %ld: %s", e.line, e.msg);
	return p;
}

static long parse_fails(const char *text, const char *needle)
{
	moat_policy_t *p = NULL;
	moat_error_t e = {0};
	moat_err_t rc = moat_policy_parse(text, strlen(text), &p, &e);
	CHECK(rc != MOAT_OK);
	CHECK(p == NULL);
	CHECK_MSG(strstr(e.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", e.msg, needle);
	return e.line;
}

#define T(s) ((moat_time_t)(s)*1000)
#define DAY 86400

static moat_policy_request_t req(moat_role_t role, moat_purpose_t purpose, unsigned rel,
				 moat_order_status_t st)
{
	moat_policy_request_t q = {0};
	q.role = role;
	q.purpose = purpose;
	q.relations = rel;
	q.status = st;
	q.placed_at = T(1000 * DAY);
	q.shipped_at = st >= MOAT_STATUS_SHIPPED ? T(1001 * DAY) : MOAT_TIME_NONE;
	q.delivered_at = (st == MOAT_STATUS_DELIVERED || st == MOAT_STATUS_CLOSED) ? T(1002 * DAY)
										   : MOAT_TIME_NONE;
	q.now = T(1002 * DAY + 3600);
	return q;
}

static void test_default_policy(void)
{
	moat_policy_t *p = parse(moat_policy_default_text());
	if (!p)
		return;
	moat_policy_decision_t d;
	const unsigned A = 1u << MOAT_REL_ASSIGN, TK = 1u << MOAT_REL_TICKET,
		       AU = 1u << MOAT_REL_AUTHORIZE;

	/* courier, deliver, assigned, delivered an hour ago: name mask, phone virtual, address full
	 */
	moat_policy_request_t q =
	    req(MOAT_ROLE_COURIER, MOAT_PURPOSE_DELIVER, A, MOAT_STATUS_DELIVERED);
	moat_policy_decide(p, &q, &d);
	CHECK(d.allow);
	CHECK_STR(d.rule, "courier-deliver");
	CHECK_INT(d.views[MOAT_FIELD_NAME], MOAT_VIEW_MASK);
	CHECK_INT(d.views[MOAT_FIELD_PHONE], MOAT_VIEW_VIRTUAL);
	CHECK_INT(d.views[MOAT_FIELD_ADDRESS], MOAT_VIEW_FULL);
	CHECK_INT(d.views[MOAT_FIELD_ITEMS], MOAT_VIEW_HIDDEN);
	CHECK_INT(d.views[MOAT_FIELD_ID_NUMBER], MOAT_VIEW_HIDDEN);
	CHECK_INT(d.quota, 300);
	CHECK(moat_policy_is_plaintext(d.views));

	/* four days after delivery: out of the window; falls to related-masked */
	q.now = T(1006 * DAY + 1);
	moat_policy_decide(p, &q, &d);
	CHECK(d.allow);
	CHECK_STR(d.rule, "related-masked");
	CHECK_INT(d.views[MOAT_FIELD_PHONE], MOAT_VIEW_MASK);
	CHECK(!moat_policy_is_plaintext(d.views));
	/* exactly at delivered + 3 days: still inside */
	q.now = T(1005 * DAY);
	moat_policy_decide(p, &q, &d);
	CHECK_STR(d.rule, "courier-deliver");

	/* courier before shipping: not in shipped..delivered */
	q = req(MOAT_ROLE_COURIER, MOAT_PURPOSE_DELIVER, A, MOAT_STATUS_PAID);
	moat_policy_decide(p, &q, &d);
	CHECK_STR(d.rule, "related-masked");

	/* courier with no relation: denied */
	q = req(MOAT_ROLE_COURIER, MOAT_PURPOSE_DELIVER, 0, MOAT_STATUS_SHIPPED);
	moat_policy_decide(p, &q, &d);
	CHECK(!d.allow);
	CHECK_STR(d.rule, "no-match");
	CHECK_INT(d.rule_index, -1);
	for (int f = 0; f < MOAT_FIELD_COUNT; f++)
		CHECK_INT(d.views[f], MOAT_VIEW_HIDDEN);

	/* CS agent with a ticket */
	q = req(MOAT_ROLE_CS_AGENT, MOAT_PURPOSE_CUSTOMER_CARE, TK, MOAT_STATUS_SHIPPED);
	moat_policy_decide(p, &q, &d);
	CHECK_STR(d.rule, "cs-ticket");
	CHECK_INT(d.views[MOAT_FIELD_ADDRESS], MOAT_VIEW_COARSE);
	CHECK_INT(d.views[MOAT_FIELD_ITEMS], MOAT_VIEW_FULL);
	CHECK_INT(d.views[MOAT_FIELD_PHONE], MOAT_VIEW_VIRTUAL);

	/* ISV authorised, ship */
	q = req(MOAT_ROLE_ISV_APP, MOAT_PURPOSE_SHIP, AU, MOAT_STATUS_PAID);
	moat_policy_decide(p, &q, &d);
	CHECK_STR(d.rule, "isv-ship");
	CHECK_INT(d.views[MOAT_FIELD_NAME], MOAT_VIEW_FULL);

	/* merchant admin of the order's merchant */
	q = req(MOAT_ROLE_MERCHANT_ADMIN, MOAT_PURPOSE_REFUND, 0, MOAT_STATUS_DELIVERED);
	q.own_merchant = true;
	moat_policy_decide(p, &q, &d);
	CHECK_STR(d.rule, "merchant-after-sales");
	q.own_merchant = false;
	moat_policy_decide(p, &q, &d);
	CHECK(!d.allow);

	/* analytics: unrelated, never PII beyond coarse */
	q = req(MOAT_ROLE_PLATFORM_OPS, MOAT_PURPOSE_ANALYTICS, 0, MOAT_STATUS_CLOSED);
	moat_policy_decide(p, &q, &d);
	CHECK_STR(d.rule, "analytics");
	CHECK_INT(d.quota, MOAT_QUOTA_UNLIMITED);
	CHECK_INT(d.views[MOAT_FIELD_NAME], MOAT_VIEW_HIDDEN);

	moat_buf_t b;
	moat_buf_init(&b, 1 << 16);
	CHECK(moat_policy_explain(p, &q, &b) == MOAT_OK);
	CHECK(strstr(b.data, "rule courier-deliver (line") != NULL);
	CHECK(strstr(b.data, "role does not match") != NULL);
	CHECK(strstr(b.data, "decision: allow by rule analytics") != NULL);
	moat_buf_reset(&b);
	CHECK_INT(moat_policy_lint(p, &b), 0);
	CHECK_MSG(b.len == 0, "%s", b.data);
	moat_buf_free(&b);
	CHECK_INT(strlen(moat_policy_hash(p)), 64);
	CHECK_INT(moat_policy_tz_minutes(p), 480);
	moat_policy_free(p);
}

static void test_language(void)
{
	moat_policy_t *p = parse(
	    "timezone Z\n"
	    "default-quota 7\n"
	    "rule night-deny\n  role courier\n  time off-shift\n  deny\nend\n"
	    "rule c\n  role courier\n  relation none\n  state paid,shipped\n"
	    "  view phone=mask\nend\n"
	    "rule late\n  state shipped..delivered+12h\n  view waybill=full\n  quota 0\nend\n");
	if (!p)
		return;
	moat_policy_decision_t d;
	moat_policy_request_t q = req(MOAT_ROLE_COURIER, MOAT_PURPOSE_SHIP, 0, MOAT_STATUS_PAID);
	q.shift = "09:00-18:00";
	q.now = T(1000 * DAY + 10 * 3600); /* 10:00 UTC: on shift */
	moat_policy_decide(p, &q, &d);
	CHECK_STR(d.rule, "c");
	CHECK_INT(d.quota, 7);
	CHECK_INT(d.views[MOAT_FIELD_PHONE], MOAT_VIEW_MASK);
	q.now = T(1000 * DAY + 20 * 3600); /* 20:00: off shift */
	moat_policy_decide(p, &q, &d);
	CHECK_STR(d.rule, "night-deny");
	CHECK(!d.allow);
	q.shift = "22:00-06:00"; /* overnight shift: 20:00 is off, 23:00 on */
	moat_policy_decide(p, &q, &d);
	CHECK_STR(d.rule, "night-deny");
	q.now = T(1000 * DAY + 23 * 3600);
	moat_policy_decide(p, &q, &d);
	CHECK_STR(d.rule, "c");
	/* delivered 11 hours ago: inside +12h; 13 hours: outside */
	q = req(MOAT_ROLE_WAREHOUSE, MOAT_PURPOSE_SHIP, 0, MOAT_STATUS_DELIVERED);
	q.now = q.delivered_at + T(11 * 3600);
	moat_policy_decide(p, &q, &d);
	CHECK_STR(d.rule, "late");
	CHECK_INT(d.quota, 0);
	q.now = q.delivered_at + T(13 * 3600);
	moat_policy_decide(p, &q, &d);
	CHECK(!d.allow);
	CHECK_INT(moat_policy_day(p, T(DAY + 5)), 1);
	CHECK_INT(moat_policy_day(p, T(-5)), -1);
	moat_policy_free(p);

	/* an unreachable rule is a lint warning */
	p = parse(
	    "rule a\n  view amounts=full\nend\nrule b\n  role courier\n  view name=mask\nend\n");
	if (p) {
		moat_buf_t b;
		moat_buf_init(&b, 4096);
		CHECK_INT(moat_policy_lint(p, &b), 1);
		CHECK(strstr(b.data, "rule b: never applies") != NULL);
		moat_buf_free(&b);
		moat_policy_free(p);
	}
}

static void test_errors(void)
{
	CHECK_INT(parse_fails("rule a\n  role pilot\n  view name=mask\nend\n", "unknown role"), 2);
	CHECK_INT(parse_fails("rule a\n  view name=virtual\nend\n", "has no view"), 2);
	CHECK_INT(parse_fails("rule a\n  view id_number=full\nend\n", "outside the platform"), 1);
	CHECK_INT(parse_fails("rule a\n  view name=mask\n", "not closed"), 1);
	CHECK_INT(parse_fails("rule a\nend\n", "exactly one of"), 1);
	CHECK_INT(parse_fails("rule a\n deny\n view name=mask\nend\n", "exactly one of"), 1);
	CHECK_INT(parse_fails("rule a\n deny\nend\nrule a\n deny\nend\n", "already used"), 4);
	CHECK_INT(parse_fails("rule a\n state delivered..paid\n deny\nend\n", "bad state window"),
		  2);
	CHECK_INT(parse_fails("rule a\n state paid..closed+3d\n deny\nend\n", "bad state window"),
		  2);
	CHECK_INT(parse_fails("rule a\n role courier\n role cs_agent\n deny\nend\n", "twice"), 3);
	CHECK_INT(parse_fails("rule a\n colour blue\n deny\nend\n", "unknown keyword"), 2);
	CHECK_INT(parse_fails("rule a\n deny\nend\ntimezone +08:00\n", "before the first rule"), 4);
	CHECK_INT(parse_fails("timezone Mars\n", "timezone"), 1);
	CHECK_INT(parse_fails("version 2\n", "version 1"), 1);
	CHECK_INT(parse_fails("default-quota -3\n", "quota must be"), 1);
	CHECK_INT(parse_fails("rule a\n time lunch\n deny\nend\n", "shift"), 2);
	CHECK_INT(parse_fails("rule a\n relation friend\n deny\nend\n", "unknown relation"), 2);
	CHECK_INT(parse_fails("rule a\n deny\n quota 3\nend\n", "cannot have a quota"), 1);
	parse_fails("rule \xff\n", "UTF-8");
	char *big = malloc(2000);
	memset(big, 'x', 1999);
	big[1999] = '\0';
	CHECK_INT(parse_fails(big, "longer than"), 1);
	free(big);
}

/* Mutated policies (bytes flipped, lines cut, tokens duplicated) parse or fail
 * cleanly, never crash: a cheap stand-in for a fuzzer, run under ASan in CI. */
static void test_mutations(void)
{
	const char *base = moat_policy_default_text();
	size_t n = strlen(base);
	char *buf = malloc(n * 2 + 16);
	srand(7);
	int ok = 0;
	for (int i = 0; i < 3000; i++) {
		memcpy(buf, base, n);
		size_t len = n;
		int edits = 1 + rand() % 4;
		for (int k = 0; k < edits; k++) {
			size_t at = (size_t)rand() % len;
			switch (rand() % 4) {
			case 0: /* flip a byte */
				buf[at] = (char)(rand() % 256);
				break;
			case 1: /* cut the rest */
				len = at;
				break;
			case 2: /* duplicate a span */
				if (len + 32 < n * 2) {
					memmove(buf + at + 16, buf + at, len - at);
					len += 16;
				}
				break;
			default: /* delete a span */
				if (at + 8 < len) {
					memmove(buf + at, buf + at + 8, len - at - 8);
					len -= 8;
				}
			}
			if (len == 0)
				break;
		}
		moat_policy_t *p = NULL;
		moat_error_t e = {0};
		if (moat_policy_parse(buf, len, &p, &e) == MOAT_OK) {
			moat_policy_request_t q =
			    req(MOAT_ROLE_COURIER, MOAT_PURPOSE_DELIVER, 1, MOAT_STATUS_SHIPPED);
			moat_policy_decision_t d;
			moat_policy_decide(p, &q, &d);
			moat_buf_t b;
			moat_buf_init(&b, 1 << 20);
			(void)moat_policy_lint(p, &b);
			CHECK(moat_policy_explain(p, &q, &b) == MOAT_OK);
			moat_buf_free(&b);
			moat_policy_free(p);
			ok++;
		} else {
			CHECK(p == NULL && e.msg[0] != '\0');
		}
	}
	printf("mutations: %d of 3000 still parse\n", ok);
	free(buf);
}

int main(void)
{
	test_default_policy();
	test_language();
	test_errors();
	test_mutations();
	return check_done();
}
