/* Exactly-once runs of the detector over a log with a store: restart in the
 * middle of a stream, a crash between the ledger append and the store commit,
 * alerts and actions tables, JSON rendering. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "moat/app.h"
#include "moat/detect.h"
#include "moat/policy.h"

#define MIN (60 * 1000LL)
#define HOUR (60 * MIN)
#define T0 1772380800000LL

/* ---- an in-memory log ------------------------------------------------------------- */

typedef struct mlog {
	moat_entry_t *e;
	size_t n, cap;
	size_t end;  /* entries visible to readers (a "crash" hides the rest) */
	size_t pos;
	size_t appended;
} mlog_t;

static char *sdup(const char *s) { return s ? strdup(s) : NULL; }

static void mlog_push(mlog_t *l, const moat_entry_t *e)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->e = realloc(l->e, l->cap * sizeof *l->e);
	}
	moat_entry_t c = *e;
	c.principal = sdup(e->principal);
	c.order_id = sdup(e->order_id);
	c.rule = sdup(e->rule);
	c.ip = sdup(e->ip);
	c.device = sdup(e->device);
	c.ref = sdup(e->ref);
	c.detail = sdup(e->detail);
	l->e[l->n++] = c;
}

static void mlog_free(mlog_t *l)
{
	for (size_t i = 0; i < l->n; i++) {
		moat_entry_t *e = &l->e[i];
		free((char *)e->principal);
		free((char *)e->order_id);
		free((char *)e->rule);
		free((char *)e->ip);
		free((char *)e->device);
		free((char *)e->ref);
		free((char *)e->detail);
	}
	free(l->e);
}

static moat_err_t m_seek(void *ctx, uint64_t start, moat_error_t *err)
{
	(void)err;
	((mlog_t *)ctx)->pos = (size_t)start;
	return MOAT_OK;
}

static moat_err_t m_next(void *ctx, uint64_t *index, moat_entry_t *e, moat_error_t *err)
{
	(void)err;
	mlog_t *l = ctx;
	if (l->pos >= l->end)
		return MOAT_ENOTFOUND;
	*index = l->pos;
	*e = l->e[l->pos++];
	return MOAT_OK;
}

static moat_err_t m_append(void *ctx, const moat_entry_t *es, size_t n, uint64_t *first,
			   moat_error_t *err)
{
	(void)err;
	mlog_t *l = ctx;
	/* Appends go to the very end, after entries a crash may be hiding; the
	 * tests only append when nothing is hidden. */
	*first = l->n;
	for (size_t i = 0; i < n; i++)
		mlog_push(l, &es[i]);
	l->end = l->n;
	l->appended += n;
	return MOAT_OK;
}

/* Appends that succeed before the "crash". */
static int ok_appends;

static moat_err_t failing_append(void *ctx, const moat_entry_t *es, size_t n, uint64_t *first,
				 moat_error_t *err)
{
	if (ok_appends-- <= 0)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL, "disk full (test)");
	return m_append(ctx, es, n, first, err);
}

/* ---- the stream ------------------------------------------------------------------- */

static const char *const orders[] = {"O1", "O2", "O3", "O4", "O5", "O6", "O7", "O8", "O9", "O10",
				     "O11", "O12", "O13", "O14", "O15", "O16", "O17", "O18",
				     "O19", "O20", "O21", "O22", "O23", "O24", "O25", "O26",
				     "O27", "O28", "O29", "O30"};

static const char rules_text[] =
    "[rule nr]\ntitle = No-reason reads\ntype = value_count\nfilter = kind=access relation=none\n"
    "group-by = principal\nfield = order_id\ntimespan = 1h\ncondition = gte 5\n"
    "severity = high\naction = suspend\n"
    "[rule fails]\ntype = event_count\nfilter = kind=login result=failure\ngroup-by = ip\n"
    "timespan = 10m\ncondition = gte 3\nseverity = low\n";

/* 20 principals each read 30 orders without relation over 3 hours (an alert per
 * principal per hour), with login failures in between. */
static void build(mlog_t *l)
{
	char who[16];
	for (int i = 0; i < 600; i++) {
		moat_entry_t e;
		memset(&e, 0, sizeof e);
		snprintf(who, sizeof who, "p%d", i % 20);
		e.time = T0 + (moat_time_t)i * 18000;
		if (i % 7 == 3) {
			e.kind = MOAT_ENTRY_LOGIN;
			e.principal = who;
			e.ip = "203.0.113.5";
			e.result = MOAT_RESULT_FAILURE;
		} else {
			e.kind = MOAT_ENTRY_ACCESS;
			e.principal = who;
			e.order_id = orders[(i / 20) % 30];
			e.has_purpose = true;
			e.purpose = MOAT_PURPOSE_CUSTOMER_CARE;
		}
		mlog_push(l, &e);
	}
	l->end = l->n;
}

typedef struct ids {
	char id[64][200];
	size_t n;
} ids_t;

static int collect_ids(void *ctx, const moat_alert_row_t *row)
{
	ids_t *x = ctx;
	if (x->n < 64)
		snprintf(x->id[x->n++], sizeof x->id[0], "%s|%s|%lld", row->id, row->principal,
			 (long long)row->ledger_index);
	return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(a, b); }

static void list_ids(moat_store_t *s, ids_t *out, bool with_index)
{
	memset(out, 0, sizeof *out);
	moat_error_t err = {0};
	CHECK(moat_store_alert_list(s, -1, 0, collect_ids, out, &err) == MOAT_OK);
	if (!with_index)
		for (size_t i = 0; i < out->n; i++)
			*strrchr(out->id[i], '|') = 0;
	qsort(out->id, out->n, sizeof out->id[0], cmp_str);
}

static moat_store_t *open_store(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	moat_store_t *s = NULL;
	moat_error_t err = {0};
	CHECK_MSG(moat_store_open_sqlite(path, true, &s, &err) == MOAT_OK, "%s", err.msg);
	return s;
}

static int count_kind(const mlog_t *l, moat_entry_kind_t k)
{
	int n = 0;
	for (size_t i = 0; i < l->n; i++)
		n += l->e[i].kind == k;
	return n;
}

/* Writes text with from replaced by to (which must occur) as dir/name. */
static void write_variant(const char *dir, const char *name, const char *text, const char *from,
			  const char *to)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	const char *at = from ? strstr(text, from) : NULL;
	CHECK_MSG(!from || at, "\"%s\" not in the text", from);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	if (at) {
		fwrite(text, 1, (size_t)(at - text), f);
		fputs(to, f);
		fputs(at + strlen(from), f);
	} else {
		fputs(text, f);
	}
	fclose(f);
}

/* Whether a runner opened now judges like `base` (moat_detect_runner_same_inputs). */
static int same_as(moat_app_t *a, const moat_detect_runner_t *base)
{
	moat_detect_runner_t *x = NULL;
	moat_error_t err = {0};
	if (moat_detect_runner_open(a, &x, &err) != MOAT_OK) {
		CHECK_MSG(false, "runner_open: %s", err.msg);
		return -1;
	}
	int same = moat_detect_runner_same_inputs(base, x);
	CHECK(moat_detect_runner_same_inputs(x, base) == same); /* symmetric */
	moat_detect_runner_free(x);
	return same;
}

/* What a SIGHUP in `moat serve` compares before replaying the ledger into a
 * fresh engine: the rules' text, each policy rule's quota and the time zone,
 * and nothing else of the policy. */
static void test_runner_inputs(const char *tmp)
{
	char dir[512];
	snprintf(dir, sizeof dir, "%s/app", tmp);
	moat_error_t err = {0};
	CHECK(moat_app_init(dir, &err) == MOAT_OK);
	moat_app_t *a = NULL;
	CHECK_MSG(moat_app_open(dir, 0, &a, &err) == MOAT_OK, "open: %s", err.msg);
	if (!a)
		return;
	moat_detect_runner_t *base = NULL;
	CHECK(moat_detect_runner_open(a, &base, &err) == MOAT_OK);
	const char *pol = moat_policy_default_text();
	const char *rules = moat_detect_rules_default_text();
	CHECK_INT(same_as(a, base), 1); /* nothing changed */
	write_variant(dir, "policy.conf", pol,
		      "view name=mask phone=virtual address=full items=hidden waybill=full",
		      "view name=hidden phone=virtual address=coarse items=hidden waybill=full");
	CHECK_INT(same_as(a, base), 1); /* views are the gateway's business */
	write_variant(dir, "policy.conf", pol, "# Couriers see", "# Couriers (edited) see");
	CHECK_INT(same_as(a, base), 1); /* a comment */
	write_variant(dir, "policy.conf", pol, "  quota 300\n", "  quota 301\n");
	CHECK_INT(same_as(a, base), 0); /* a quota */
	write_variant(dir, "policy.conf", pol, "timezone +08:00", "timezone +09:00");
	CHECK_INT(same_as(a, base), 0); /* the local day and shifts move */
	write_variant(dir, "policy.conf", pol, "rule courier-deliver", "rule courier-deliver2");
	CHECK_INT(same_as(a, base), 0); /* entries name the rule whose quota they used */
	write_variant(dir, "policy.conf", pol, "version 1", "version one");
	CHECK_INT(same_as(a, base), 0); /* an invalid policy: no quotas at all */
	write_variant(dir, "policy.conf", pol, NULL, NULL);
	CHECK_INT(same_as(a, base), 1);
	write_variant(dir, "rules.conf", rules, NULL, NULL);
	CHECK_INT(same_as(a, base), 1);
	char path[600];
	snprintf(path, sizeof path, "%s/rules.conf", dir);
	CHECK(unlink(path) == 0);
	CHECK_INT(same_as(a, base), 1); /* no rules.conf: the default set, the same text */
	write_variant(dir, "rules.conf", rules, "[rule ", "# edited\n[rule ");
	CHECK_INT(same_as(a, base), 0); /* any edit of the rules */
	CHECK(!moat_detect_runner_same_inputs(base, NULL));
	moat_detect_runner_free(base);
	moat_app_close(a);
}

int main(void)
{
	char dir[] = "/tmp/moat-detect-run-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	moat_error_t err = {0};
	moat_detect_rules_t *rules = NULL;
	CHECK(moat_detect_rules_parse(rules_text, strlen(rules_text), &rules, &err) == MOAT_OK);

	/* Reference: one run over the whole stream. */
	mlog_t ref = {0};
	build(&ref);
	moat_store_t *s1 = open_store(dir, "ref.db");
	moat_detect_log_t log1 = {m_seek, m_next, m_append, &ref, NULL};
	moat_detect_stats_t st;
	moat_err_t rc = moat_detect_run(s1, rules, NULL, NULL, &log1, 0, &st, &err);
	CHECK_MSG(rc == MOAT_OK, "run: %s: %s", err.field, err.msg);
	CHECK_INT(st.processed, 600);
	CHECK_INT(st.cursor, 600);
	/* 20 principals x 3 hours of "nr", plus "fails" alerts per 10 minutes. */
	CHECK(st.alerts >= 60);
	CHECK_INT(st.actions, 60);
	CHECK_INT(count_kind(&ref, MOAT_ENTRY_ALERT), (int)st.alerts);
	CHECK_INT(count_kind(&ref, MOAT_ENTRY_ACTION), 60);
	ids_t want;
	list_ids(s1, &want, false);
	CHECK_INT(want.n > 0, 1);
	/* A second run finds nothing new (its own ALERT entries are not judged). */
	uint64_t alerts1 = st.alerts;
	size_t appended = ref.appended;
	CHECK(moat_detect_run(s1, rules, NULL, NULL, &log1, 0, &st, &err) == MOAT_OK);
	CHECK_INT(st.alerts, 0);
	CHECK_INT(ref.appended, appended);
	CHECK_INT(st.cursor, ref.n);

	/* Restart: the stream is judged in two runs with the log growing in between;
	 * the first run's ALERT entries land in the middle of the stream, exactly as
	 * on the ledger. */
	mlog_t grow = {0};
	build(&grow);
	moat_entry_t *all = grow.e;
	size_t all_n = grow.n;
	mlog_t live = {0};
	for (size_t i = 0; i < 300; i++)
		mlog_push(&live, &all[i]);
	live.end = live.n;
	moat_store_t *s3 = open_store(dir, "live.db");
	moat_detect_log_t log3 = {m_seek, m_next, m_append, &live, NULL};
	CHECK(moat_detect_run(s3, rules, NULL, NULL, &log3, 50, &st, &err) == MOAT_OK);
	uint64_t a3 = st.alerts;
	for (size_t i = 300; i < all_n; i++)
		mlog_push(&live, &all[i]);
	live.end = live.n;
	CHECK(moat_detect_run(s3, rules, NULL, NULL, &log3, 50, &st, &err) == MOAT_OK);
	a3 += st.alerts;
	/* Alert ids name trigger indexes, which shift by the ALERT entries the first
	 * run appended in the middle; compare counts and (rule, principal). */
	CHECK_INT(a3, alerts1);
	CHECK_INT(count_kind(&live, MOAT_ENTRY_ALERT), (int)alerts1);

	/* A resident runner: the same alerts, and later steps read only new entries. */
	mlog_t res = {0};
	for (size_t i = 0; i < 300; i++)
		mlog_push(&res, &all[i]);
	res.end = res.n;
	moat_store_t *s5 = open_store(dir, "runner.db");
	moat_detect_log_t log5 = {m_seek, m_next, m_append, &res, NULL};
	moat_detect_runner_t *runner = NULL;
	CHECK(moat_detect_runner_new(s5, rules, NULL, NULL, &log5, 50, &runner, &err) == MOAT_OK);
	CHECK(moat_detect_runner_step(runner, &st, &err) == MOAT_OK);
	uint64_t a5 = st.alerts;
	size_t before_step = res.n;
	CHECK(moat_detect_runner_step(runner, &st, &err) == MOAT_OK); /* only its own ALERT entries */
	CHECK_INT(st.alerts, 0);
	CHECK(st.entries <= before_step - 300);
	for (size_t i = 300; i < all_n; i++)
		mlog_push(&res, &all[i]);
	res.end = res.n;
	CHECK(moat_detect_runner_step(runner, &st, &err) == MOAT_OK);
	a5 += st.alerts;
	CHECK(st.entries >= 300 && st.entries < 600); /* no replay: new entries and its own ALERTs */
	CHECK_INT(a5, alerts1);
	moat_detect_runner_free(runner);
	moat_store_close(s5);
	mlog_free(&res);

	/* A runner with a step budget (as `moat serve` runs it, so signals are
	 * served during a long replay): many steps, the same alerts as one run, and
	 * after a restart a replay in steps that says how much is left and raises
	 * nothing again. */
	{
		mlog_t bl = {0};
		build(&bl);
		size_t events = bl.n;
		moat_store_t *s7 = open_store(dir, "budget.db");
		moat_detect_log_t log7 = {m_seek, m_next, m_append, &bl, NULL};
		moat_detect_runner_t *r7 = NULL;
		CHECK(moat_detect_runner_new(s7, rules, NULL, NULL, &log7, 50, &r7, &err) ==
		      MOAT_OK);
		moat_detect_runner_budget(r7, 7);
		uint64_t a7 = 0;
		int steps = 0;
		do {
			CHECK(moat_detect_runner_step(r7, &st, &err) == MOAT_OK);
			a7 += st.alerts;
			CHECK(st.entries < 7 + 16); /* the budget, plus what was read ahead (16) */
			CHECK_INT(st.replay_left, 0); /* nothing stored before: no replay */
			steps++;
		} while (st.more && steps < 10000);
		CHECK(steps > (int)(events / 80));
		CHECK_INT(a7, alerts1);
		CHECK_INT(count_kind(&bl, MOAT_ENTRY_ALERT), (int)alerts1);
		ids_t got;
		list_ids(s7, &got, false);
		CHECK_INT(got.n, want.n);
		for (size_t i = 0; i < got.n && i < want.n; i++)
			CHECK_STR(got.id[i], want.id[i]);
		CHECK(moat_detect_runner_step(r7, &st, &err) == MOAT_OK); /* its own ALERTs */
		CHECK(!st.more);
		CHECK_INT(st.judged, bl.n);
		moat_detect_runner_free(r7);
		/* restart: the replay comes in budgeted steps too */
		CHECK(moat_detect_runner_new(s7, rules, NULL, NULL, &log7, 50, &r7, &err) ==
		      MOAT_OK);
		moat_detect_runner_budget(r7, 100);
		CHECK(moat_detect_runner_step(r7, &st, &err) == MOAT_OK);
		CHECK(st.more);
		CHECK(st.replay_left > 0 && st.replay_left < bl.n);
		CHECK_INT(st.judged, bl.n); /* judged by the first runner */
		uint64_t left = st.replay_left, again = st.alerts;
		steps = 1;
		while (st.more && steps < 10000) {
			CHECK(moat_detect_runner_step(r7, &st, &err) == MOAT_OK);
			CHECK(st.replay_left < left || st.replay_left == 0);
			left = st.replay_left;
			again += st.alerts;
			steps++;
		}
		CHECK(steps >= (int)(bl.n / 164));
		CHECK_INT(st.replay_left, 0);
		CHECK_INT(again, 0);
		CHECK_INT(st.judged, bl.n);
		moat_detect_runner_free(r7);
		moat_store_close(s7);
		mlog_free(&bl);
	}

	/* A resident runner that commits a cursor-only advance at most once a minute
	 * (as `moat serve` does, every 5 s): a step that raised no alert writes
	 * nothing, one that raised alerts stores them with the cursor at once, sync
	 * stores the rest. A runner dropped without sync (a crash) leaves entries
	 * past the stored cursor; the next one judges them again and raises
	 * nothing twice. */
	{
		mlog_t lz = {0};
		moat_store_t *s6 = open_store(dir, "lazy.db");
		moat_detect_log_t log6 = {m_seek, m_next, m_append, &lz, NULL};
		moat_detect_runner_t *r6 = NULL;
		CHECK(moat_detect_runner_new(s6, rules, NULL, NULL, &log6, 50, &r6, &err) == MOAT_OK);
		moat_detect_runner_cursor_interval(r6, 60000);
		uint64_t stored = 0, a6 = 0;
		int quiet_steps = 0, alert_steps = 0;
		size_t next = 0;
		bool restarted = false;
		while (next < all_n) {
			for (size_t k = 0; k < 10 && next < all_n; k++)
				mlog_push(&lz, &all[next++]);
			lz.end = lz.n;
			size_t judged_to = lz.n;
			CHECK(moat_detect_runner_step(r6, &st, &err) == MOAT_OK);
			a6 += st.alerts;
			char buf[32] = "0";
			moat_error_t me = {0};
			moat_err_t mrc = moat_store_meta_get(s6, MOAT_DETECT_CURSOR_KEY, buf, sizeof buf, &me);
			CHECK(mrc == MOAT_OK || mrc == MOAT_ENOTFOUND);
			uint64_t now_stored = strtoull(buf, NULL, 10);
			if (st.alerts) {
				alert_steps++;
				CHECK(now_stored >= judged_to); /* past every entry it judged */
			} else {
				quiet_steps += now_stored == stored;
				CHECK(now_stored == stored); /* nothing written */
			}
			stored = now_stored;
			if (!restarted && next >= all_n / 2 && lz.n > stored + 10) {
				/* a crash: entries judged past the stored cursor are lost */
				moat_detect_runner_free(r6);
				CHECK(moat_detect_runner_new(s6, rules, NULL, NULL, &log6, 50, &r6,
							     &err) == MOAT_OK);
				moat_detect_runner_cursor_interval(r6, 60000);
				restarted = true;
			}
		}
		CHECK(restarted);
		CHECK(quiet_steps > 0 && alert_steps > 0);
		CHECK(moat_detect_runner_sync(r6, &err) == MOAT_OK);
		char buf[32] = "";
		CHECK(moat_store_meta_get(s6, MOAT_DETECT_CURSOR_KEY, buf, sizeof buf, &err) == MOAT_OK);
		CHECK_INT(strtoull(buf, NULL, 10), lz.n);
		CHECK_INT(a6, alerts1);
		CHECK_INT(count_kind(&lz, MOAT_ENTRY_ALERT), (int)alerts1);
		ids_t c6;
		list_ids(s6, &c6, false);
		CHECK_INT(c6.n, want.n);
		moat_detect_runner_free(r6);
		moat_store_close(s6);
		mlog_free(&lz);
	}

	/* A crash in the middle of a run (the third append fails after two batches
	 * were committed), then a restart: nothing lost, nothing twice. */
	mlog_t crash = {0};
	build(&crash);
	moat_store_t *s4 = open_store(dir, "crash.db");
	ok_appends = 2;
	moat_detect_log_t log4 = {m_seek, m_next, failing_append, &crash, NULL};
	CHECK(moat_detect_run(s4, rules, NULL, NULL, &log4, 40, &st, &err) == MOAT_EUNAVAIL);
	uint64_t a4 = st.alerts;
	CHECK(a4 > 0 && a4 < alerts1);
	CHECK(st.cursor > 0 && st.cursor < 600);
	log4.append = m_append;
	CHECK(moat_detect_run(s4, rules, NULL, NULL, &log4, 40, &st, &err) == MOAT_OK);
	CHECK_INT(a4 + st.alerts, alerts1);
	CHECK_INT(count_kind(&crash, MOAT_ENTRY_ALERT), (int)alerts1);
	ids_t c4;
	list_ids(s4, &c4, false);
	CHECK_INT(c4.n, want.n);
	moat_store_close(s4);
	mlog_free(&crash);

	/* A crash between the ledger append and the store commit: the ALERT entries
	 * are on the log, the store lost the batch. The next run stores the same
	 * alerts with those ledger indexes and appends nothing. */
	ids_t before, after;
	list_ids(s1, &before, true);
	char path[512];
	snprintf(path, sizeof path, "%s/ref.db", dir);
	sqlite3 *raw = NULL;
	CHECK(sqlite3_open(path, &raw) == SQLITE_OK);
	CHECK(sqlite3_exec(raw,
			   "DELETE FROM detect_alerts; DELETE FROM detect_actions;"
			   " UPDATE meta SET value = '0' WHERE key = 'detect.cursor';",
			   NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(raw);
	appended = ref.appended;
	CHECK(moat_detect_run(s1, rules, NULL, NULL, &log1, 0, &st, &err) == MOAT_OK);
	CHECK_INT(st.alerts, alerts1);
	CHECK_INT(ref.appended, appended);
	list_ids(s1, &after, true);
	CHECK_INT(after.n, before.n);
	for (size_t i = 0; i < after.n && i < before.n; i++)
		CHECK_STR(after.id[i], before.id[i]);

	/* Actions: the strongest active one wins; lifting; resolving alerts. */
	moat_detect_action_t act;
	CHECK(moat_store_action_for(s1, "p3", &act, &err) == MOAT_OK && act == MOAT_ACTION_SUSPEND);
	CHECK(moat_store_action_for(s1, "nobody", &act, &err) == MOAT_OK && act == MOAT_ACTION_NONE);
	int64_t aid;
	CHECK(moat_store_action_put(s1, "q", MOAT_ACTION_THROTTLE, "", T0, -1, &aid, &err) == MOAT_OK);
	int64_t aid2;
	CHECK(moat_store_action_put(s1, "q", MOAT_ACTION_FORCE_MASK, "", T0, -1, &aid2, &err) == MOAT_OK);
	CHECK(moat_store_action_for(s1, "q", &act, &err) == MOAT_OK && act == MOAT_ACTION_FORCE_MASK);
	/* the gateway's one look-up: principal by API key with its strongest action */
	moat_party_t qp = {"m-q", MOAT_PARTY_MERCHANT, "Q"};
	moat_principal_t qpr = {.principal = "q", .party = "m-q", .role = MOAT_ROLE_CS_AGENT};
	moat_principal_t rpr = {.principal = "r", .party = "m-q", .role = MOAT_ROLE_CS_AGENT};
	uint8_t qkey[32] = {7, 7, 7}, rkey[32] = {8, 8, 8}, nokey[32] = {9};
	CHECK(moat_store_party_put(s1, &qp, &err) == MOAT_OK);
	CHECK(moat_store_principal_put(s1, &qpr, &err) == MOAT_OK);
	CHECK(moat_store_principal_put(s1, &rpr, &err) == MOAT_OK);
	CHECK(moat_store_principal_set_key(s1, "q", qkey, &err) == MOAT_OK);
	CHECK(moat_store_principal_set_key(s1, "r", rkey, &err) == MOAT_OK);
	moat_principal_row_t prow;
	act = MOAT_ACTION_SUSPEND;
	CHECK(moat_store_principal_auth(s1, rkey, &prow, &act, &err) == MOAT_OK);
	CHECK(act == MOAT_ACTION_NONE);
	CHECK_STR(prow.principal, "r");
	CHECK(moat_store_principal_auth(s1, qkey, &prow, &act, &err) == MOAT_OK);
	CHECK(act == MOAT_ACTION_FORCE_MASK);
	CHECK_STR(prow.principal, "q");
	CHECK_STR(prow.party, "m-q");
	CHECK(moat_store_principal_auth(s1, nokey, &prow, &act, &err) == MOAT_EDENIED);
	CHECK(moat_store_action_lift(s1, aid2, "reviewed", T0 + 1, &err) == MOAT_OK);
	CHECK(moat_store_action_for(s1, "q", &act, &err) == MOAT_OK && act == MOAT_ACTION_THROTTLE);
	CHECK(moat_store_principal_auth(s1, qkey, &prow, &act, &err) == MOAT_OK);
	CHECK(act == MOAT_ACTION_THROTTLE);
	CHECK(moat_store_action_lift(s1, aid2, "again", T0 + 2, &err) == MOAT_ECONFLICT);
	CHECK(moat_store_action_lift(s1, aid, "", T0 + 2, &err) == MOAT_EINVAL);
	CHECK(moat_store_action_lift(s1, 99999, "x", T0 + 2, &err) == MOAT_ENOTFOUND);

	moat_alert_row_t row;
	ids_t now;
	list_ids(s1, &now, false);
	const char *first = now.id[0];
	char id[200];
	snprintf(id, sizeof id, "%.*s", (int)(strchr(first, '|') - first), first);
	CHECK(moat_store_alert_resolve(s1, id, "false positive: training day", T0, &err) == MOAT_OK);
	CHECK(moat_store_alert_resolve(s1, id, "again", T0, &err) == MOAT_ECONFLICT);
	CHECK(moat_store_alert_resolve(s1, "nope@1", "x", T0, &err) == MOAT_ENOTFOUND);
	CHECK(moat_store_alert_get(s1, id, &row, &err) == MOAT_OK);
	CHECK(row.status == MOAT_ALERT_RESOLVED);
	CHECK_STR(row.resolution, "false positive: training day");
	CHECK(row.n_evidence > 0 && row.ledger_index >= 600);

	moat_buf_t b;
	moat_buf_init(&b, 1 << 22);
	CHECK(moat_detect_alerts_json(s1, MOAT_ALERT_RESOLVED, 0, &b, &err) == MOAT_OK);
	CHECK(strstr(b.data, "\"status\":\"resolved\"") != NULL);
	CHECK(strstr(b.data, "training day") != NULL);
	CHECK(strncmp(b.data, "{\"alerts\":[{\"id\":", 17) == 0);
	json_t *j = json_loads(b.data, 0, NULL);
	CHECK(j && json_array_size(json_object_get(j, "alerts")) == 1);
	json_decref(j);
	moat_buf_reset(&b);
	CHECK(moat_detect_alerts_json(s1, -1, 5, &b, &err) == MOAT_OK);
	j = json_loads(b.data, 0, NULL);
	CHECK(j && json_array_size(json_object_get(j, "alerts")) == 5);
	json_decref(j);
	moat_buf_free(&b);

	moat_store_close(s1);
	moat_store_close(s3);
	mlog_free(&ref);
	mlog_free(&live);
	mlog_free(&grow);
	moat_detect_rules_free(rules);
	test_runner_inputs(dir);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return check_done();
}
