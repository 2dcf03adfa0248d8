/* Unit tests of src/detect: rule file, statistics, features and each rule kind on
 * hand-made entry sequences with known answers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "moat/detect.h"

#define MIN (60 * 1000LL)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
/* 2026-03-02T00:00:00+08:00 = 2026-03-01T16:00:00Z */
#define T0 1772380800000LL

/* ---- principals table for the lookup callback ------------------------------------ */

typedef struct prin {
	const char *id;
	moat_role_t role;
	const char *party;
	const char *shift;
} prin_t;

static const prin_t prins[] = {
    {"cs-1", MOAT_ROLE_CS_AGENT, "m-a", "09:00-18:00"},
    {"cs-2", MOAT_ROLE_CS_AGENT, "m-a", "09:00-18:00"},
    {"cs-3", MOAT_ROLE_CS_AGENT, "m-a", "09:00-18:00"},
    {"cs-4", MOAT_ROLE_CS_AGENT, "m-a", "09:00-18:00"},
    {"cs-5", MOAT_ROLE_CS_AGENT, "m-a", "09:00-18:00"},
    {"night", MOAT_ROLE_WAREHOUSE, "w-1", "22:00-06:00"},
    {"adm", MOAT_ROLE_MERCHANT_ADMIN, "m-a", NULL},
    {"isv", MOAT_ROLE_ISV_APP, "i-1", NULL},
};

static int lookup(void *ctx, const char *id, moat_detect_principal_t *out)
{
	(void)ctx;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(prins); i++) {
		if (strcmp(prins[i].id, id) != 0)
			continue;
		out->role = prins[i].role;
		snprintf(out->party, sizeof out->party, "%s", prins[i].party);
		out->shift_start = out->shift_end = -1;
		if (prins[i].shift)
			moat_detect_shift_parse(prins[i].shift, &out->shift_start, &out->shift_end);
		return 1;
	}
	return 0;
}

/* ---- alert collector -------------------------------------------------------------- */

typedef struct got {
	size_t n;
	moat_detect_alert_t a[256];
} got_t;

static int collect(void *ctx, const moat_detect_alert_t *a)
{
	got_t *g = ctx;
	if (g->n < MOAT_ARRAY_LEN(g->a)) {
		g->a[g->n] = *a;
		/* Borrowed strings: keep only what the tests compare, via static copies. */
		static char keys[256][64], prs[256][64], rules[256][64];
		snprintf(keys[g->n], 64, "%s", a->key ? a->key : "");
		snprintf(prs[g->n], 64, "%s", a->principal ? a->principal : "");
		snprintf(rules[g->n], 64, "%s", a->rule);
		g->a[g->n].key = keys[g->n];
		g->a[g->n].principal = prs[g->n];
		g->a[g->n].rule = rules[g->n];
		g->a[g->n].title = NULL;
	}
	g->n++;
	return 0;
}

static size_t count_rule(const got_t *g, const char *rule)
{
	size_t n = 0;
	for (size_t i = 0; i < g->n && i < MOAT_ARRAY_LEN(g->a); i++)
		n += strcmp(g->a[i].rule, rule) == 0;
	return n;
}

static const moat_detect_alert_t *find_rule(const got_t *g, const char *rule)
{
	for (size_t i = 0; i < g->n && i < MOAT_ARRAY_LEN(g->a); i++)
		if (strcmp(g->a[i].rule, rule) == 0)
			return &g->a[i];
	return NULL;
}

/* ---- building entries ------------------------------------------------------------- */

static moat_entry_t access_e(moat_time_t t, const char *who, const char *order, unsigned rel)
{
	moat_entry_t e;
	memset(&e, 0, sizeof e);
	e.kind = MOAT_ENTRY_ACCESS;
	e.time = t;
	e.principal = who;
	e.order_id = order;
	e.purpose = MOAT_PURPOSE_CUSTOMER_CARE;
	e.has_purpose = true;
	e.views[MOAT_FIELD_NAME] = MOAT_VIEW_MASK;
	e.views[MOAT_FIELD_PHONE] = MOAT_VIEW_VIRTUAL;
	e.relations = (uint8_t)rel;
	e.ip = "10.0.0.1";
	e.device = "d-1";
	return e;
}

static moat_entry_t login_e(moat_time_t t, const char *who, const char *ip, bool ok)
{
	moat_entry_t e;
	memset(&e, 0, sizeof e);
	e.kind = MOAT_ENTRY_LOGIN;
	e.time = t;
	e.principal = who;
	e.ip = ip;
	e.result = ok ? MOAT_RESULT_SUCCESS : MOAT_RESULT_FAILURE;
	return e;
}

typedef struct run {
	moat_detect_rules_t *rules;
	moat_detect_t *d;
	got_t got;
	uint64_t next;
} run_t;

static void run_open(run_t *r, const char *text)
{
	memset(r, 0, sizeof *r);
	moat_error_t err = {0};
	moat_err_t rc = moat_detect_rules_parse(text, strlen(text), &r->rules, &err);
	CHECK_MSG(rc == MOAT_OK, "rules: line %ld %s: %s", err.line, err.field, err.msg);
	if (rc != MOAT_OK)
		exit(1);
	rc = moat_detect_new(r->rules, lookup, NULL, collect, &r->got, &r->d, &err);
	CHECK(rc == MOAT_OK);
}

static void run_close(run_t *r)
{
	moat_detect_free(r->d);
	moat_detect_rules_free(r->rules);
}

static void feed(run_t *r, moat_entry_t e)
{
	moat_error_t err = {0};
	moat_err_t rc = moat_detect_feed(r->d, r->next++, &e, &err);
	CHECK_MSG(rc == MOAT_OK, "feed: %s", err.msg);
}

/* ---- tests ------------------------------------------------------------------------ */

static void expect_rules_error(const char *text, long line, const char *field)
{
	moat_detect_rules_t *rs = NULL;
	moat_error_t err = {0};
	moat_err_t rc = moat_detect_rules_parse(text, strlen(text), &rs, &err);
	CHECK_MSG(rc == MOAT_EINVAL, "accepted: %s", text);
	CHECK_MSG(err.line == line, "line %ld, expected %ld (%s)", err.line, line, err.msg);
	if (field)
		CHECK_STR(err.field, field);
	CHECK(rs == NULL);
}

static void test_rules(void)
{
	const char *def = moat_detect_rules_default_text();
	moat_detect_rules_t *rs = NULL;
	moat_error_t err = {0};
	CHECK(moat_detect_rules_parse(def, strlen(def), &rs, &err) == MOAT_OK);
	CHECK(rs && moat_detect_rules_count(rs) >= 10);
	bool has_takeover = false;
	for (size_t i = 0; rs && i < moat_detect_rules_count(rs); i++)
		if (strcmp(moat_detect_rules_name(rs, i), "takeover") == 0) {
			has_takeover = true;
			CHECK_STR(moat_detect_rules_type(rs, i), "temporal");
			CHECK(moat_detect_rules_action(rs, i) == MOAT_ACTION_SUSPEND);
			CHECK(moat_detect_rules_severity(rs, i) == MOAT_SEVERITY_CRITICAL);
		}
	CHECK(has_takeover);
	moat_detect_rules_free(rs);

	expect_rules_error("[rule a]\ntype = event_count\nfilter = kind=access\ntimespan = 1h\n"
			   "condition = gte 3\ncolour = red\n",
			   6, "colour");
	expect_rules_error("[rule a]\nfilter = kind=access\n", 1, "type");
	expect_rules_error("[rule a]\ntype = event_count\nfilter = kind=access\ntimespan = 1 hour\n", 4,
			   "timespan");
	expect_rules_error("[rule a]\ntype = event_count\nfilter = kind=access\ncondition = gte 3\n", 1,
			   "timespan");
	expect_rules_error("[rule a]\ntype = temporal\nrules = x y\n", 3, "rules");
	expect_rules_error("[rule a]\ntype = event_count\nfilter = kind=login\ngroup-by = ip\n"
			   "timespan = 1h\ncondition = gte 3\naction = suspend\n",
			   1, "action");
	expect_rules_error("[rule a]\ntype = event_count\nfilter = kind=acess\n", 3, "filter");
	expect_rules_error("[rule a]\ntype = event_count\ntype = match\n", 3, "type");
	expect_rules_error("key = 1\n", 1, NULL);
	expect_rules_error("[rule a b]\n", 1, NULL);
	expect_rules_error("[rule a]\ntype = match\nfilter = kind=access\n[rule a]\n", 4, NULL);
	expect_rules_error("[rule a]\ntype = ratio\nfilter = kind=access\nnumerator = relation=none\n"
			   "timespan = 1h\ncondition = gte 2\n",
			   1, "condition");
	/* Comments and blank lines are fine; inline comments after " #". */
	const char *commented = "# c\n; c\n\n[rule a] # x\ntype = match # y\nfilter = kind=login\n";
	CHECK(moat_detect_rules_parse(commented, strlen(commented), &rs, &err) == MOAT_OK);
	moat_detect_rules_free(rs);

	int s, e;
	CHECK(moat_detect_shift_parse("09:00-18:00", &s, &e) && s == 540 && e == 1080);
	CHECK(moat_detect_shift_parse("22:30-06:00", &s, &e) && s == 1350 && e == 360);
	CHECK(!moat_detect_shift_parse("9:00-18:00", &s, &e));
	CHECK(!moat_detect_shift_parse("09:60-18:00", &s, &e));
}

static void test_stats(void)
{
	double v[] = {1, 2, 3, 4, 100};
	double med, mad;
	moat_detect_median_mad(v, 5, &med, &mad);
	CHECK(med == 3 && mad == 1);
	double w[] = {4, 1, 3, 2};
	moat_detect_median_mad(w, 4, &med, &mad);
	CHECK(med == 2.5 && mad == 1);
	moat_detect_median_mad(w, 0, &med, &mad);
	CHECK(med == 0 && mad == 0);
	/* Against a sort on random data with ties, odd and even sizes. */
	uint64_t seed = 7;
	for (int round = 0; round < 200; round++) {
		double a[64], sorted[64], dev[64];
		size_t n = 1 + (size_t)(round % 64);
		for (size_t i = 0; i < n; i++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			a[i] = sorted[i] = (double)((seed >> 33) % 20);
		}
		for (size_t i = 1; i < n; i++)
			for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
				double t = sorted[j];
				sorted[j] = sorted[j - 1];
				sorted[j - 1] = t;
			}
		double m = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
		for (size_t i = 0; i < n; i++)
			dev[i] = fabs(sorted[i] - m);
		for (size_t i = 1; i < n; i++)
			for (size_t j = i; j > 0 && dev[j - 1] > dev[j]; j--) {
				double t = dev[j];
				dev[j] = dev[j - 1];
				dev[j - 1] = t;
			}
		double md = n % 2 ? dev[n / 2] : (dev[n / 2 - 1] + dev[n / 2]) / 2;
		moat_detect_median_mad(a, n, &med, &mad);
		CHECK_MSG(med == m && mad == md, "n=%zu med %g/%g mad %g/%g", n, med, m, mad, md);
	}
	/* P(X >= 3 | 1) = 1 - e^-1 (1 + 1 + 1/2) */
	double p = moat_detect_poisson_tail(3, 1.0);
	CHECK_MSG(fabs(p - (1 - exp(-1) * 2.5)) < 1e-12, "p = %g", p);
	CHECK(moat_detect_poisson_tail(0, 5.0) == 1.0);
	/* Far tail: P(X >= 40 | 2) ~ e^-2 2^40 / 40! (first term dominates) */
	p = moat_detect_poisson_tail(40, 2.0);
	double first = exp(-2 + 40 * log(2.0) - lgamma(41));
	CHECK_MSG(p >= first && p < first * 1.06, "p = %g first = %g", p, first);
	/* Around the mean the two branches agree. */
	double a = moat_detect_poisson_tail(10, 10.0), b = moat_detect_poisson_tail(10, 9.999999);
	CHECK_MSG(fabs(a - b) < 1e-5, "a = %g b = %g", a, b);
}

static void test_features(void)
{
	run_t r;
	run_open(&r, "[rule m]\ntype = match\nfilter = kind=access\nalert = no\n");
	/* cs-1 works 09:00-18:00 local (+08:00): T0 is local midnight. */
	moat_time_t day = T0 + 10 * HOUR; /* 10:00 local */
	for (int i = 0; i < 25; i++) {
		char o[16];
		snprintf(o, sizeof o, "O%d", i % 10);
		feed(&r, access_e(day + i * MIN, "cs-1", o, i < 20 ? 1u << MOAT_REL_TICKET : 0));
	}
	/* Two off-shift reads at 23:00 local from a new ip and device. */
	moat_entry_t e = access_e(T0 + 23 * HOUR, "cs-1", "O99", 0);
	e.ip = "198.51.100.7";
	e.device = "d-evil";
	e.views[MOAT_FIELD_PHONE] = MOAT_VIEW_MASK;
	feed(&r, e);
	feed(&r, e);
	moat_entry_t dn = access_e(T0 + 23 * HOUR, "cs-1", "O98", 0);
	dn.kind = MOAT_ENTRY_DENY;
	feed(&r, dn);
	moat_entry_t ex = access_e(T0 + 23 * HOUR, "cs-1", NULL, 0);
	ex.kind = MOAT_ENTRY_EXPORT;
	ex.rows = 1200;
	feed(&r, ex);
	moat_entry_t ex2 = ex;
	ex2.order_id = "O5";
	feed(&r, ex2);
	feed(&r, login_e(T0 + 23 * HOUR, "cs-1", "10.0.0.1", false));

	moat_detect_features_t f;
	CHECK(moat_detect_features(r.d, "cs-1", T0 + 23 * HOUR, &f) == MOAT_OK);
	CHECK_INT(f.reads, 27);
	CHECK_INT(f.distinct_orders, 11);
	CHECK_INT(f.plaintext, 25); /* the two night reads show only masks */
	CHECK_INT(f.no_relation, 7);
	CHECK_INT(f.off_shift, 2);
	CHECK_INT(f.new_ip, 1);
	CHECK_INT(f.new_device, 1);
	CHECK_INT(f.denials, 1);
	CHECK_INT(f.export_rows, 1201);
	CHECK_INT(f.login_failures, 1);
	CHECK(fabs(f.no_relation_share - 7.0 / 27) < 1e-12);
	CHECK(fabs(f.off_shift_share - 2.0 / 27) < 1e-12);
	/* A day and a half later everything has left the 24-hour window. */
	CHECK(moat_detect_features(r.d, "cs-1", T0 + 60 * HOUR, &f) == MOAT_OK);
	CHECK_INT(f.reads, 0);
	CHECK_INT(f.distinct_orders, 0);
	CHECK(moat_detect_features(r.d, "nobody", T0, &f) == MOAT_ENOTFOUND);

	/* A night-shift principal (22:00-06:00) is on shift at 23:00 and 03:00. */
	feed(&r, access_e(T0 + 23 * HOUR, "night", "O1", 1));
	feed(&r, access_e(T0 + 27 * HOUR, "night", "O2", 1));
	feed(&r, access_e(T0 + 36 * HOUR, "night", "O3", 1)); /* 12:00 local: off */
	CHECK(moat_detect_features(r.d, "night", T0 + 36 * HOUR, &f) == MOAT_OK);
	CHECK_INT(f.off_shift, 1);
	/* Indexes must increase. */
	moat_error_t err = {0};
	moat_entry_t back = access_e(T0, "cs-1", "O1", 0);
	CHECK(moat_detect_feed(r.d, 3, &back, &err) == MOAT_EINVAL);
	run_close(&r);
}

static void test_event_count(void)
{
	run_t r;
	run_open(&r, "[rule denials]\ntype = event_count\nfilter = kind=deny\ngroup-by = principal\n"
		     "timespan = 16m\ncondition = gte 5\nseverity = high\naction = throttle\n");
	moat_time_t t = T0 + 10 * HOUR;
	for (int i = 0; i < 4; i++) {
		moat_entry_t e = access_e(t + i * MIN, "cs-1", "O1", 0);
		e.kind = MOAT_ENTRY_DENY;
		feed(&r, e);
	}
	feed(&r, access_e(t + 4 * MIN, "cs-1", "O1", 0)); /* an access: not counted */
	CHECK_INT(r.got.n, 0);
	moat_entry_t e = access_e(t + 5 * MIN, "cs-1", "O1", 0);
	e.kind = MOAT_ENTRY_DENY;
	feed(&r, e); /* 5th denial within 16 minutes */
	CHECK_INT(r.got.n, 1);
	const moat_detect_alert_t *a = find_rule(&r.got, "denials");
	CHECK(a != NULL);
	if (a) {
		CHECK_STR(a->principal, "cs-1");
		CHECK_STR(a->key, "cs-1");
		CHECK_INT(a->trigger, 5);
		CHECK_INT(a->count, 5);
		CHECK(a->action == MOAT_ACTION_THROTTLE);
		CHECK(a->severity == MOAT_SEVERITY_HIGH);
		CHECK_INT(a->n_evidence, 5);
		CHECK(a->n_evidence == 5 && a->evidence[0] == 0 && a->evidence[3] == 3 &&
		      a->evidence[4] == 5);
		CHECK_STR(a->id, "denials@5");
	}
	/* Suppressed for one timespan. */
	feed(&r, e);
	CHECK_INT(r.got.n, 1);
	/* Another principal is counted separately. */
	for (int i = 0; i < 4; i++) {
		moat_entry_t o = access_e(t + 6 * MIN, "cs-2", "O1", 0);
		o.kind = MOAT_ENTRY_DENY;
		feed(&r, o);
	}
	CHECK_INT(r.got.n, 1);
	/* 40 minutes later the window is empty again: 4 more do not fire. */
	for (int i = 0; i < 4; i++) {
		moat_entry_t o = access_e(t + 46 * MIN + i, "cs-1", "O1", 0);
		o.kind = MOAT_ENTRY_DENY;
		feed(&r, o);
	}
	CHECK_INT(r.got.n, 1);
	run_close(&r);

	/* sum = rows: exports are counted by rows. */
	run_open(&r, "[rule ex]\ntype = event_count\nfilter = kind=export\nsum = rows\n"
		     "group-by = principal\ntimespan = 1d\ncondition = gte 1000\naction = suspend\n");
	moat_entry_t x = access_e(t, "adm", NULL, 0);
	x.kind = MOAT_ENTRY_EXPORT;
	x.rows = 600;
	feed(&r, x);
	CHECK_INT(r.got.n, 0);
	x.time += HOUR;
	feed(&r, x);
	CHECK_INT(r.got.n, 1);
	CHECK(r.got.n && r.got.a[0].count == 1200);
	run_close(&r);
}

static void test_value_count(void)
{
	run_t r;
	run_open(&r, "[rule nr]\ntype = value_count\nfilter = kind=access relation=none role=cs_agent\n"
		     "group-by = principal\nfield = order_id\ntimespan = 1h\ncondition = gte 10\n"
		     "action = suspend\n");
	moat_time_t t = T0 + 10 * HOUR;
	/* 9 distinct orders read 3 times each: 27 reads, 9 distinct. */
	for (int rep = 0; rep < 3; rep++)
		for (int i = 0; i < 9; i++) {
			char o[16];
			snprintf(o, sizeof o, "O%d", i);
			feed(&r, access_e(t + rep * MIN, "cs-1", o, 0));
		}
	/* Reads with a ticket and reads by a merchant admin do not count. */
	feed(&r, access_e(t + 4 * MIN, "cs-1", "OT", 1u << MOAT_REL_TICKET));
	feed(&r, access_e(t + 4 * MIN, "adm", "OA", 0));
	CHECK_INT(r.got.n, 0);
	feed(&r, access_e(t + 5 * MIN, "cs-1", "O10", 0));
	CHECK_INT(r.got.n, 1);
	CHECK(r.got.n && r.got.a[0].count == 10 && r.got.a[0].action == MOAT_ACTION_SUSPEND);
	run_close(&r);

	/* Distinct accounts per source, and values expiring from the window. */
	run_open(&r, "[rule st]\ntype = value_count\nfilter = kind=login result=failure\n"
		     "group-by = ip\nfield = principal\ntimespan = 16m\ncondition = gte 3\n");
	feed(&r, login_e(t, "a", "203.0.113.9", false));
	feed(&r, login_e(t + MIN, "b", "203.0.113.9", false));
	feed(&r, login_e(t + 30 * MIN, "c", "203.0.113.9", false)); /* a, b expired */
	feed(&r, login_e(t + 31 * MIN, "c", "203.0.113.9", false));
	feed(&r, login_e(t + 31 * MIN, "d", "198.51.100.1", false)); /* other source */
	CHECK_INT(r.got.n, 0);
	feed(&r, login_e(t + 32 * MIN, "a", "203.0.113.9", false));
	feed(&r, login_e(t + 33 * MIN, "b", "203.0.113.9", false));
	CHECK_INT(r.got.n, 1);
	CHECK(r.got.n && strcmp(r.got.a[0].key, "203.0.113.9") == 0 && r.got.a[0].count == 3);
	run_close(&r);
}

/* full=yes counts entries that showed a personal field in full (not virtual). */
static void test_full_filter(void)
{
	run_t r;
	run_open(&r, "[rule f]\ntype = event_count\nfilter = kind=access full=yes\n"
		     "group-by = principal\ntimespan = 1h\ncondition = gte 2\n");
	moat_time_t t = T0 + 10 * HOUR;
	feed(&r, access_e(t, "cs-1", "O1", 2)); /* phone virtual: plaintext, not full */
	feed(&r, access_e(t + 1, "cs-1", "O2", 2));
	CHECK_INT(r.got.n, 0);
	moat_entry_t e = access_e(t + 2, "cs-1", "O3", 2);
	e.views[MOAT_FIELD_ADDRESS] = MOAT_VIEW_FULL;
	feed(&r, e);
	e.views[MOAT_FIELD_ADDRESS] = MOAT_VIEW_COARSE;
	e.views[MOAT_FIELD_ITEMS] = MOAT_VIEW_FULL; /* items are not a personal field here */
	feed(&r, e);
	CHECK_INT(r.got.n, 0);
	e.views[MOAT_FIELD_NAME] = MOAT_VIEW_FULL;
	feed(&r, e);
	CHECK_INT(r.got.n, 1);
	run_close(&r);
}

static void test_ratio(void)
{
	run_t r;
	run_open(&r, "[rule share]\ntype = ratio\nfilter = kind=access\nnumerator = relation=none\n"
		     "group-by = principal\ntimespan = 1d\nmin = 10\ncondition = gte 0.5\n");
	moat_time_t t = T0 + 10 * HOUR;
	/* 4 without relation out of 8: ratio .5 but below min 10. */
	for (int i = 0; i < 8; i++)
		feed(&r, access_e(t + i * MIN, "cs-1", "O1", i % 2 ? 0 : 1));
	CHECK_INT(r.got.n, 0);
	feed(&r, access_e(t + 9 * MIN, "cs-1", "O1", 1)); /* 4/9 */
	feed(&r, access_e(t + 10 * MIN, "cs-1", "O1", 1)); /* 4/10 */
	CHECK_INT(r.got.n, 0);
	feed(&r, access_e(t + 11 * MIN, "cs-1", "O1", 0)); /* 5/11 */
	feed(&r, access_e(t + 12 * MIN, "cs-1", "O1", 0)); /* 6/12 = .5 */
	CHECK_INT(r.got.n, 1);
	CHECK(r.got.n && fabs(r.got.a[0].value - 0.5) < 1e-12 && r.got.a[0].count == 12);
	run_close(&r);
}

static void test_peer(void)
{
	run_t r;
	run_open(&r, "[rule pv]\ntype = peer\nfilter = kind=access\nperiod = 1h\nmin = 40\n"
		     "min-peers = 3\ncondition = gte 10\naction = throttle\n");
	moat_time_t t = T0 + 10 * HOUR;
	/* Four peers read 10, 12, 14, 16 times this hour: median 13, MAD 2 → scale
	 * 2.9652; z(40) = 9.1 (no alert), z(48) = 11.8 (alert). The check runs at 40
	 * and then every 5 reads. */
	const char *peers[] = {"cs-2", "cs-3", "cs-4", "cs-5"};
	for (int p = 0; p < 4; p++)
		for (int i = 0; i < 10 + 2 * p; i++)
			feed(&r, access_e(t + i * 1000, peers[p], "O1", 1));
	for (int i = 0; i < 44; i++)
		feed(&r, access_e(t + MIN + i * 1000, "cs-1", "O1", 1));
	CHECK_INT(r.got.n, 0);
	feed(&r, access_e(t + 2 * MIN, "cs-1", "O1", 1)); /* 45: z = 10.79 */
	CHECK_INT(r.got.n, 1);
	if (r.got.n) {
		CHECK(fabs(r.got.a[0].value - (45 - 13) / (1.4826 * 2)) < 1e-9);
		CHECK_INT(r.got.a[0].count, 45);
		CHECK_STR(r.got.a[0].principal, "cs-1");
	}
	/* Next hour: counts restart, peers at zero; 40 reads against a median of 0 and
	 * MAD floor 1 give z = 40 → alert (after suppression of 1 hour). */
	for (int i = 0; i < 40; i++)
		feed(&r, access_e(t + HOUR + 3 * MIN + i, "cs-1", "O1", 1));
	CHECK_INT(r.got.n, 2);
	/* A principal without enough peers is never scored. */
	for (int i = 0; i < 100; i++)
		feed(&r, access_e(t + 2 * HOUR + i, "isv", "O1", 4));
	CHECK_INT(r.got.n, 2);
	run_close(&r);
}

/* Every scored entry of a peer rule against the score computed the slow way
 * (moat_detect_median_mad over the other members' counts in the principal's
 * period), on a random stream whose event time sometimes jumps back an hour:
 * members then count in a period older than their group's latest, which the
 * engine scores from a different array than the current period. */
typedef struct peer_seen {
	size_t n;
	double value[4096];
	char who[4096][8];
} peer_seen_t;

static int peer_collect(void *ctx, const moat_detect_alert_t *a)
{
	peer_seen_t *s = ctx;
	if (s->n < MOAT_ARRAY_LEN(s->value)) {
		s->value[s->n] = a->value;
		snprintf(s->who[s->n], sizeof s->who[0], "%s", a->principal ? a->principal : "");
	}
	s->n++;
	return 0;
}

static void test_peer_exact(void)
{
	for (int variant = 0; variant < 2; variant++) {
		/* lte: every scored entry alerts with its score; gte 2: the prechecks
		 * that skip hopeless scores must not skip one that reaches 2. */
		const char *text =
		    variant == 0
			? "[rule pz]\ntype = peer\nfilter = kind=access\nperiod = 1h\nmin = 1\n"
			  "min-peers = 2\ncondition = lte 1000000\nsuppress = 1s\n"
			: "[rule pz]\ntype = peer\nfilter = kind=access\nperiod = 1h\nmin = 1\n"
			  "min-peers = 2\ncondition = gte 2\nsuppress = 1s\n";
		moat_detect_rules_t *rules = NULL;
		moat_error_t err = {0};
		CHECK(moat_detect_rules_parse(text, strlen(text), &rules, &err) == MOAT_OK);
		static peer_seen_t seen;
		memset(&seen, 0, sizeof seen);
		moat_detect_t *d = NULL;
		CHECK(moat_detect_new(rules, lookup, NULL, peer_collect, &seen, &d, &err) == MOAT_OK);
		if (!d) {
			moat_detect_rules_free(rules);
			return;
		}
		const char *who[] = {"cs-1", "cs-2", "cs-3", "cs-4", "cs-5"};
		int64_t per[5];
		uint64_t cnt[5] = {0};
		bool known[5] = {false};
		size_t n_known = 0, expected = 0, mismatches = 0, backs = 0;
		uint64_t rng = 12345 + (uint64_t)variant;
		moat_time_t t = T0;
		for (int i = 0; i < 3000; i++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			t += 2000 + (moat_time_t)(rng % 3000);
			moat_time_t at = t;
			if (rng % 97 == 0) {
				at = t - HOUR; /* late entry */
				backs++;
			}
			/* Skewed: cs-1 reads most, so some scores are high. */
			size_t m = (size_t)((rng >> 20) % 8);
			m = m < 4 ? 0 : m - 3;
			if (m > 4)
				m = 4;
			if (!known[m]) {
				known[m] = true;
				per[m] = INT64_MIN;
				n_known++;
			}
			moat_entry_t e = access_e(at, who[m], "O1", 1);
			CHECK(moat_detect_feed(d, (uint64_t)i, &e, &err) == MOAT_OK);
			int64_t pidx = (int64_t)(at / HOUR);
			if (per[m] == INT64_MIN || pidx > per[m]) {
				per[m] = pidx;
				cnt[m] = 0;
			}
			if (pidx < per[m])
				continue; /* late entry for a closed period: not counted */
			cnt[m]++;
			if (n_known - 1 < 2)
				continue;
			double v[5];
			size_t n = 0;
			for (size_t o = 0; o < 5; o++)
				if (o != m && known[o])
					v[n++] = per[o] == per[m] ? (double)cnt[o] : 0;
			double med, mad;
			moat_detect_median_mad(v, n, &med, &mad);
			double scale = 1.4826 * mad;
			double z = ((double)cnt[m] - med) / (scale < 1 ? 1 : scale);
			if (variant == 1 && !(z >= 2))
				continue;
			if (expected < seen.n && expected < MOAT_ARRAY_LEN(seen.value) &&
			    (seen.value[expected] != z || strcmp(seen.who[expected], who[m]) != 0))
				mismatches++;
			expected++;
		}
		CHECK(backs > 10);
		CHECK(expected > (variant == 0 ? 2000u : 20u));
		CHECK_INT(seen.n, expected);
		CHECK_INT(mismatches, 0);
		moat_detect_free(d);
		moat_detect_rules_free(rules);
	}
}

static void test_self(void)
{
	run_t r;
	run_open(&r, "[rule sz]\ntype = self\nfilter = kind=access\nperiod = 1d\nhistory = 7\n"
		     "min-history = 5\nmin = 8\ncondition = gte 6\n"
		     "[rule sp]\ntype = self\nfilter = kind=access\nperiod = 1d\nhistory = 7\n"
		     "min-history = 5\nmin = 8\nscore = poisson\ncondition = lte 1e-6\n");
	/* Days 0..5: 10, 12, 8, 10, 11, 9 reads (median 10, MAD 1 → scale 1.4826). */
	int per_day[] = {10, 12, 8, 10, 11, 9};
	for (int day = 0; day < 6; day++)
		for (int i = 0; i < per_day[day]; i++)
			feed(&r, access_e(T0 + day * DAY + 10 * HOUR + i * MIN, "adm", "O1", 0));
	/* Day 5 has history of 5 days: 9 reads give z = (9-10)/1.48 < 6. */
	CHECK_INT(r.got.n, 0);
	/* Day 6: z >= 6 needs x >= 10 + 6 * 1.4826 = 18.9 → 19th read. */
	for (int i = 0; i < 18; i++)
		feed(&r, access_e(T0 + 6 * DAY + 10 * HOUR + i * MIN, "adm", "O1", 0));
	CHECK_INT(count_rule(&r.got, "sz"), 0);
	feed(&r, access_e(T0 + 6 * DAY + 11 * HOUR, "adm", "O1", 0));
	CHECK_INT(count_rule(&r.got, "sz"), 1);
	/* Poisson: lambda = mean of the 6 days (60/6 = 10); P(X >= k | 10) <= 1e-6
	 * first holds at k = 29. */
	uint64_t k = 1;
	while (moat_detect_poisson_tail(k, 10.0) > 1e-6)
		k++;
	CHECK_INT(k, 29);
	for (int i = 19; i < 28; i++)
		feed(&r, access_e(T0 + 6 * DAY + 12 * HOUR + i * MIN, "adm", "O1", 0));
	CHECK_INT(count_rule(&r.got, "sp"), 0);
	feed(&r, access_e(T0 + 6 * DAY + 13 * HOUR, "adm", "O1", 0));
	CHECK_INT(count_rule(&r.got, "sp"), 1);
	run_close(&r);
}

static void test_takeover(void)
{
	run_t r;
	run_open(&r, moat_detect_rules_default_text());
	moat_time_t t = T0 + 10 * HOUR;
	/* Legitimate typos: two failures then success from the user's own ip. */
	feed(&r, login_e(t, "cs-2", "10.1.1.1", false));
	feed(&r, login_e(t + 1000, "cs-2", "10.1.1.1", false));
	feed(&r, login_e(t + 2000, "cs-2", "10.1.1.1", true));
	CHECK_INT(r.got.n, 0);
	/* Stuffing from one source: 6 accounts fail, then adm succeeds. */
	const char *victims[] = {"u1", "u2", "u3", "u4", "u5", "adm"};
	for (int i = 0; i < 6; i++)
		feed(&r, login_e(t + MIN + i * 1000, victims[i], "203.0.113.66", false));
	CHECK_INT(count_rule(&r.got, "stuffing_source"), 1);
	CHECK(count_rule(&r.got, "stuffing_source") && find_rule(&r.got, "stuffing_source")->action ==
							      MOAT_ACTION_NONE);
	uint64_t success_at = r.next;
	feed(&r, login_e(t + 2 * MIN, "adm", "203.0.113.66", true));
	const moat_detect_alert_t *a = find_rule(&r.got, "takeover");
	CHECK(a != NULL);
	if (a) {
		CHECK_STR(a->principal, "adm");
		CHECK_STR(a->key, "203.0.113.66");
		CHECK(a->action == MOAT_ACTION_SUSPEND);
		CHECK_INT(a->trigger, success_at);
		CHECK(a->n_evidence >= 2 && a->evidence[a->n_evidence - 1] == success_at);
	}
	CHECK_INT(count_rule(&r.got, "takeover_pull"), 0);
	/* The taken-over account exports: takeover_pull. */
	moat_entry_t x = access_e(t + 5 * MIN, "adm", "O1", 0);
	x.kind = MOAT_ENTRY_EXPORT;
	x.rows = 3;
	x.ref = "X1";
	feed(&r, x);
	a = find_rule(&r.got, "takeover_pull");
	CHECK(a != NULL);
	if (a) {
		CHECK_STR(a->principal, "adm");
		CHECK(a->n_evidence >= 2 && a->evidence[a->n_evidence - 1] == success_at + 1);
	}
	/* Another account exporting is not affected. */
	size_t before = count_rule(&r.got, "takeover_pull");
	x.principal = "cs-3";
	feed(&r, x);
	CHECK_INT(count_rule(&r.got, "takeover_pull"), before);
	/* A success from the stuffing source more than 2 hours later is no takeover. */
	feed(&r, login_e(t + 5 * HOUR, "u1", "203.0.113.66", true));
	CHECK_INT(count_rule(&r.got, "takeover"), 1);
	run_close(&r);
}

/* Replaying a stream with a quiet mark reproduces exactly the alerts at or after
 * the mark as new, and the earlier ones as replays: the basis of exactly-once
 * alerts across restarts. */
static void test_replay(void)
{
	enum { N = 3000 };
	static moat_entry_t es[N];
	static char orders[N][16];
	const char *who[] = {"cs-1", "cs-2", "cs-3", "cs-4", "cs-5", "isv", "adm"};
	uint64_t seed = 42;
	for (int i = 0; i < N; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		unsigned r = (unsigned)(seed >> 33);
		snprintf(orders[i], 16, "O%u", r % 400);
		const char *p = who[r % 7];
		bool bulk = i > 1500 && i < 1900 && r % 3 == 0;
		if (bulk)
			p = "cs-1";
		es[i] = access_e(T0 + 8 * HOUR + i * 20000LL, p, orders[i], bulk || r % 17 == 0 ? 0 : 2);
		if (r % 50 == 0) {
			es[i] = login_e(es[i].time, r % 2 ? "u9" : "cs-2", "203.0.113.1", r % 100 == 0);
		}
	}
	run_t full;
	run_open(&full, moat_detect_rules_default_text());
	for (int i = 0; i < N; i++)
		feed(&full, es[i]);
	CHECK(full.got.n > 0);
	for (uint64_t mark = 0; mark <= N; mark += 750) {
		run_t re;
		run_open(&re, moat_detect_rules_default_text());
		moat_detect_set_quiet(re.d, mark);
		for (int i = 0; i < N; i++)
			feed(&re, es[i]);
		CHECK_INT(re.got.n, full.got.n);
		for (size_t j = 0; j < re.got.n && j < full.got.n; j++) {
			CHECK_STR(re.got.a[j].id, full.got.a[j].id);
			CHECK(re.got.a[j].replay == (re.got.a[j].trigger < mark));
		}
		run_close(&re);
	}
	run_close(&full);
}

/* ---- quota use ---------------------------------------------------------------------- */

static int64_t quota_fn(void *ctx, const char *rule)
{
	(void)ctx;
	if (strcmp(rule, "cs-ticket") == 0)
		return 5;
	if (strcmp(rule, "analytics") == 0)
		return -1; /* unlimited */
	return 0;
}

static moat_entry_t quota_read(moat_time_t t, const char *rule, bool plaintext)
{
	moat_entry_t e = access_e(t, "cs-1", "O1", 2);
	e.rule = rule;
	if (!plaintext)
		e.views[MOAT_FIELD_PHONE] = MOAT_VIEW_MASK;
	return e;
}

static moat_entry_t deny_e(moat_time_t t, const char *detail)
{
	moat_entry_t e = access_e(t, "cs-1", "O1", 2);
	e.kind = MOAT_ENTRY_DENY;
	memset(e.views, 0, sizeof e.views);
	e.rule = "cs-ticket";
	e.detail = detail;
	return e;
}

static void test_quota(void)
{
	expect_rules_error("[rule a]\ntype = match\nfilter = kind=access quota-share>=0\n", 3,
			   "filter");
	expect_rules_error("[rule a]\ntype = match\nfilter = kind=access quota-share=0.5\n", 3,
			   "filter");
	expect_rules_error("[rule a]\ntype = match\nfilter = kind>=access\n", 3, "filter");
	expect_rules_error("[rule a]\ntype = match\nfilter = kind=deny refusal=late\n", 3,
			   "filter");
	run_t r;
	run_open(&r, "[rule qref]\ntype = event_count\nfilter = kind=deny refusal=quota\n"
		     "timespan = 1h\ncondition = gte 2\n"
		     "[rule qhigh]\ntype = event_count\nfilter = kind=access quota-share>=0.8\n"
		     "timespan = 1d\ncondition = gte 2\n"
		     "[rule pdeny]\ntype = match\nfilter = kind=deny refusal=policy\n");
	moat_detect_set_quota(r.d, quota_fn, NULL);
	moat_time_t t = T0 + 10 * HOUR; /* 10:00 local on day D */
	moat_detect_features_t f;
	/* Quota 5 under cs-ticket: three plaintext reads charge 3 (share 0.6); a
	 * read under an unlimited rule, a masked read and a read under a rule
	 * without a quota charge nothing. */
	for (int i = 0; i < 3; i++)
		feed(&r, quota_read(t + i * MIN, "cs-ticket", true));
	feed(&r, quota_read(t + 4 * MIN, "analytics", true));
	feed(&r, quota_read(t + 5 * MIN, "cs-ticket", false));
	feed(&r, quota_read(t + 6 * MIN, "merchant-after-sales", true));
	CHECK(moat_detect_features(r.d, "cs-1", t + 7 * MIN, &f) == MOAT_OK);
	CHECK_INT(f.quota_used, 3);
	CHECK(fabs(f.quota_share - 0.6) < 1e-12);
	CHECK_INT(f.quota_refusals, 0);
	CHECK_INT(r.got.n, 0);
	/* The 4th charged read reaches 0.8 (qhigh counts 1), the 5th 1.0 (qhigh
	 * counts 2: alert at index 7). */
	feed(&r, quota_read(t + 8 * MIN, "cs-ticket", true));
	CHECK_INT(r.got.n, 0);
	feed(&r, quota_read(t + 9 * MIN, "cs-ticket", true));
	CHECK_INT(count_rule(&r.got, "qhigh"), 1);
	const moat_detect_alert_t *a = find_rule(&r.got, "qhigh");
	CHECK(a && a->trigger == 7 && a->count == 2);
	/* Refusals: a policy denial (no detail) is not a quota refusal; two 429s
	 * raise qref at the second. */
	feed(&r, deny_e(t + 10 * MIN, NULL));
	CHECK_INT(count_rule(&r.got, "pdeny"), 1);
	feed(&r, deny_e(t + 11 * MIN, "quota"));
	CHECK_INT(count_rule(&r.got, "qref"), 0);
	feed(&r, deny_e(t + 12 * MIN, "quota"));
	CHECK_INT(count_rule(&r.got, "qref"), 1);
	CHECK_INT(count_rule(&r.got, "pdeny"), 1);
	CHECK(moat_detect_features(r.d, "cs-1", t + 13 * MIN, &f) == MOAT_OK);
	CHECK_INT(f.quota_used, 5);
	CHECK(fabs(f.quota_share - 1.0) < 1e-12);
	CHECK_INT(f.quota_refusals, 2);
	CHECK_INT(f.denials, 3);
	/* The local day ends at 24:00 +08:00 (16:00 UTC): the next day starts at 0. */
	moat_time_t next_day = T0 + DAY;
	CHECK(moat_detect_features(r.d, "cs-1", next_day - 1, &f) == MOAT_OK);
	CHECK_INT(f.quota_used, 5);
	CHECK(moat_detect_features(r.d, "cs-1", next_day, &f) == MOAT_OK);
	CHECK_INT(f.quota_used, 0);
	CHECK(f.quota_share == 0);
	feed(&r, quota_read(next_day + HOUR, "cs-ticket", true));
	/* A late read of day D after day D+1 began charges neither day. */
	feed(&r, quota_read(next_day - HOUR, "cs-ticket", true));
	CHECK(moat_detect_features(r.d, "cs-1", next_day + 2 * HOUR, &f) == MOAT_OK);
	CHECK_INT(f.quota_used, 1);
	CHECK(fabs(f.quota_share - 0.2) < 1e-12);
	CHECK_INT(f.quota_refusals, 2); /* still within 24 hours */
	run_close(&r);

	/* Without a quota function every plaintext read counts and shares are 0. */
	run_open(&r, "[rule m]\ntype = match\nfilter = kind=access quota-share>=0.1\n");
	feed(&r, quota_read(t, "analytics", true));
	feed(&r, quota_read(t + MIN, NULL, true));
	feed(&r, quota_read(t + 2 * MIN, "cs-ticket", false));
	CHECK(moat_detect_features(r.d, "cs-1", t + 3 * MIN, &f) == MOAT_OK);
	CHECK_INT(f.quota_used, 2);
	CHECK(f.quota_share == 0);
	CHECK_INT(r.got.n, 0);
	run_close(&r);
}

/* Shifts and the quota day follow the policy's timezone (here Z, UTC). */
static void test_local_offset(void)
{
	run_t r;
	run_open(&r, "[rule pdeny]\ntype = match\nfilter = kind=deny refusal=policy\n");
	moat_detect_set_quota(r.d, quota_fn, NULL);
	moat_detect_set_local_offset(r.d, 0);
	/* T0 is midnight +08:00 = 16:00Z. cs-1 works 09:00-18:00 local (UTC now):
	 * 10:00Z on shift, 20:00Z off, 02:00Z of the next day off. */
	feed(&r, quota_read(T0 - 6 * HOUR, "cs-ticket", true)); /* 10:00Z */
	feed(&r, quota_read(T0 + 4 * HOUR, "cs-ticket", true)); /* 20:00Z */
	moat_detect_features_t f;
	CHECK(moat_detect_features(r.d, "cs-1", T0 + 4 * HOUR, &f) == MOAT_OK);
	CHECK_INT(f.off_shift, 1);
	/* Both charged the same UTC day, which +08:00 would have split at T0. */
	CHECK_INT(f.quota_used, 2);
	/* The UTC day ends at T0 + 8 h. */
	CHECK(moat_detect_features(r.d, "cs-1", T0 + 8 * HOUR - 1, &f) == MOAT_OK);
	CHECK_INT(f.quota_used, 2);
	CHECK(moat_detect_features(r.d, "cs-1", T0 + 8 * HOUR, &f) == MOAT_OK);
	CHECK_INT(f.quota_used, 0);
	feed(&r, quota_read(T0 + 10 * HOUR, "cs-ticket", true)); /* 02:00Z: off shift */
	CHECK(moat_detect_features(r.d, "cs-1", T0 + 10 * HOUR, &f) == MOAT_OK);
	CHECK_INT(f.quota_used, 1);
	CHECK_INT(f.off_shift, 2);
	run_close(&r);

	/* The default is +08:00: the same reads split at T0, 10:00Z is 18:00 local
	 * (off shift), 20:00Z is 04:00 local (off), 02:00Z is 10:00 local (on). */
	run_open(&r, "[rule pdeny]\ntype = match\nfilter = kind=deny refusal=policy\n");
	moat_detect_set_quota(r.d, quota_fn, NULL);
	feed(&r, quota_read(T0 - 6 * HOUR, "cs-ticket", true));
	feed(&r, quota_read(T0 + 4 * HOUR, "cs-ticket", true));
	feed(&r, quota_read(T0 + 10 * HOUR, "cs-ticket", true));
	CHECK(moat_detect_features(r.d, "cs-1", T0 + 10 * HOUR, &f) == MOAT_OK);
	CHECK_INT(f.quota_used, 2);
	CHECK_INT(f.off_shift, 2);
	run_close(&r);
}

int main(void)
{
	test_rules();
	test_stats();
	test_features();
	test_event_count();
	test_value_count();
	test_ratio();
	test_full_filter();
	test_peer();
	test_peer_exact();
	test_self();
	test_takeover();
	test_quota();
	test_local_offset();
	test_replay();
	return check_done();
}
