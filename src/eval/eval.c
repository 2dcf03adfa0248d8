/*
 * moat eval: the detector's alerts and the tracer's suspects against truth.json.
 * Definitions are in include/moat/eval.h; the output keys in docs/simulator.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval_internal.h"
#include "moat/detect.h"
#include "moat/eval.h"
#include "moat/json.h"
#include "moat/ledger.h"
#include "moat/trace.h"

/* Alert times and truth times are both event times to the millisecond; a second
 * of slack either side of a window absorbs rounding in either. */
#define WINDOW_SLACK_MS 1000
/* The trace output of one case is parsed whole; a bigger one is refused. */
#define TRACE_OUT_MAX ((size_t)1 << 30)

/* ---- JSON building -------------------------------------------------------------- */

/* Sets key to v (a new reference, stolen; NULL = out of memory, remembered). */
static void put(json_t *o, const char *key, json_t *v, bool *oom)
{
	if (!v || json_object_set_new(o, key, v) != 0)
		*oom = true;
}

static void push(json_t *arr, json_t *v, bool *oom)
{
	if (!v || json_array_append_new(arr, v) != 0)
		*oom = true;
}

static json_t *jstr_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

/* A ratio, or null when the denominator is 0 (undefined, not zero). */
static json_t *jratio(double num, double den)
{
	return den > 0 ? json_real(num / den) : json_null();
}

static json_t *jtime(moat_time_t t)
{
	char s[32];
	moat_time_format(t, s);
	return json_string(s);
}

/* ---- detector ------------------------------------------------------------------- */

typedef struct ev_alert {
	char id[MOAT_DETECT_RULE_NAME_MAX + 24];
	char rule[MOAT_DETECT_RULE_NAME_MAX + 1];
	char principal[MOAT_ID_MAX + 1];
	char key[MOAT_TEXT_MAX + 1];
	moat_detect_action_t action;
	moat_time_t time;
	size_t n_evidence;
	uint64_t evidence[MOAT_DETECT_EVIDENCE_MAX];
	long attack; /* index of the attack it is on; -1: a false alert */
	long keyed;  /* an attack whose keys it names, outside the window; -1 none */
} ev_alert_t;

typedef struct alert_vec {
	ev_alert_t *v;
	size_t n, cap;
	bool oom;
} alert_vec_t;

static int collect_alert(void *ctx, const moat_alert_row_t *r)
{
	alert_vec_t *av = ctx;
	if (av->n == av->cap) {
		size_t cap = av->cap ? 2 * av->cap : 256;
		ev_alert_t *v = realloc(av->v, cap * sizeof *v);
		if (!v) {
			av->oom = true;
			return 1;
		}
		av->v = v;
		av->cap = cap;
	}
	ev_alert_t *a = &av->v[av->n++];
	snprintf(a->id, sizeof a->id, "%s", r->id);
	snprintf(a->rule, sizeof a->rule, "%s", r->rule);
	snprintf(a->principal, sizeof a->principal, "%s", r->principal);
	snprintf(a->key, sizeof a->key, "%s", r->key);
	a->action = r->action;
	a->time = r->time;
	a->n_evidence =
	    r->n_evidence < MOAT_DETECT_EVIDENCE_MAX ? r->n_evidence : MOAT_DETECT_EVIDENCE_MAX;
	memcpy(a->evidence, r->evidence, a->n_evidence * sizeof *a->evidence);
	a->attack = a->keyed = -1;
	return 0;
}

static int cmp_alert_time(const void *x, const void *y)
{
	const ev_alert_t *a = x, *b = y;
	if (a->time != b->time)
		return a->time < b->time ? -1 : 1;
	return strcmp(a->id, b->id);
}

static bool names(const ev_alert_t *al, const char *k)
{
	return strcmp(al->principal, k) == 0 || strcmp(al->key, k) == 0;
}

static bool names_attack(const ev_alert_t *al, const eval_attack_t *at)
{
	if (names(al, at->principal))
		return true;
	for (size_t i = 0; i < at->n_ips; i++)
		if (names(al, at->ips[i]))
			return true;
	return false;
}

static bool in_window(moat_time_t t, const eval_attack_t *at)
{
	return t >= at->from - WINDOW_SLACK_MS && t <= at->until + WINDOW_SLACK_MS;
}

/* *yes = some evidence entry of the alert (read from the ledger) lies in the
 * attack's window: an alert whose trigger came after the attack ended, on a
 * window that still held the attack's reads, is still about the attack. */
static moat_err_t evidence_in_window(moat_ledger_t *l, const ev_alert_t *al,
				     const eval_attack_t *at, moat_buf_t *scratch, char *text,
				     bool *yes, moat_error_t *err)
{
	*yes = false;
	for (size_t i = 0; i < al->n_evidence && !*yes; i++) {
		moat_buf_reset(scratch);
		moat_err_t rc = moat_ledger_read(l, al->evidence[i], scratch, err);
		if (rc == MOAT_ENOTFOUND)
			continue; /* not yet integrated: judged by its time alone */
		if (rc != MOAT_OK)
			return rc;
		moat_entry_t e;
		if ((rc = moat_entry_decode((const uint8_t *)scratch->data, scratch->len, &e, text,
					    MOAT_ENTRY_MAX + 64, err)) != MOAT_OK)
			return rc;
		*yes = in_window(e.time, at);
	}
	return MOAT_OK;
}

/* What the attack's events pulled: one (order, time) per order an event read. */
typedef struct pull {
	const char *order; /* arena */
	moat_time_t time;
	uint8_t ledger; /* PULL_ALLOWED | PULL_DENIED: what the ledger says moat did */
} pull_t;

enum { PULL_ALLOWED = 1, PULL_DENIED = 2 };

typedef struct pulls {
	pull_t *v;
	size_t n, cap;
} pulls_t;

static int cmp_pull(const void *x, const void *y)
{
	const pull_t *a = x, *b = y;
	int c = strcmp(a->order, b->order);
	if (c)
		return c;
	return a->time < b->time ? -1 : a->time > b->time;
}

static moat_err_t pull_add(pulls_t *p, moat_arena_t *arena, const char *order, moat_time_t t,
			   moat_error_t *err)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 64;
		pull_t *v = realloc(p->v, cap * sizeof *v);
		if (!v)
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		p->v = v;
		p->cap = cap;
	}
	const char *o = moat_arena_strdup(arena, order);
	if (!o)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	p->v[p->n++] = (pull_t){o, t, 0};
	return MOAT_OK;
}

/* One wanted line of events.jsonl and the attack it belongs to. */
typedef struct want_line {
	uint64_t line;
	size_t attack;
} want_line_t;

static int cmp_want(const void *x, const void *y)
{
	const want_line_t *a = x, *b = y;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	return a->attack < b->attack ? -1 : a->attack > b->attack;
}

/* Reads the attack's lines of events.jsonl into pulls[attack]. Only listed lines
 * are parsed, so a large world costs one pass of line splitting. */
static moat_err_t read_pulls(const char *path, const eval_truth_t *t, pulls_t *pulls,
			     moat_arena_t *arena, moat_error_t *err)
{
	size_t n = 0;
	for (size_t i = 0; i < t->n_attacks; i++)
		n += t->attacks[i].n_events;
	if (n == 0)
		return MOAT_OK;
	moat_err_t rc = MOAT_OK;
	FILE *f = NULL;
	char *line = NULL;
	want_line_t *w = malloc(n * sizeof *w);
	if (!w)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < t->n_attacks; i++)
		for (size_t j = 0; j < t->attacks[i].n_events; j++)
			w[k++] = (want_line_t){t->attacks[i].events[j], i};
	qsort(w, n, sizeof *w, cmp_want);
	const size_t cap = MOAT_JSON_MAX_LINE + 2;
	line = malloc(cap);
	f = fopen(path, "r");
	if (!line) {
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		goto done;
	}
	if (!f) {
		rc = moat_error_set(err, MOAT_ENOTFOUND, NULL,
				    "%s: cannot open (%s): the world's events are needed for the "
				    "served share",
				    path, strerror(errno));
		goto done;
	}
	uint64_t lineno = 0;
	k = 0;
	while (k < n && fgets(line, (int)cap, f)) {
		size_t len = strlen(line);
		if (len == cap - 1 && line[len - 1] != '\n') {
			rc = moat_error_set(err, MOAT_ELIMIT, NULL,
					    "%s: line %llu is longer than %u bytes", path,
					    (unsigned long long)lineno + 1, MOAT_JSON_MAX_LINE);
			goto done;
		}
		if (w[k].line != lineno) {
			lineno++;
			continue;
		}
		json_error_t je;
		json_t *o = json_loadb(line, len, 0, &je);
		moat_time_t time = MOAT_TIME_NONE;
		const char *ts = o ? json_string_value(json_object_get(o, "time")) : NULL;
		if (!ts || !moat_time_parse(ts, &time)) {
			json_decref(o);
			rc = moat_error_set(
			    err, MOAT_EINVAL, "time",
			    "%s: line %llu (an event of attack %s) has no valid time", path,
			    (unsigned long long)lineno + 1, t->attacks[w[k].attack].id);
			goto done;
		}
		for (; k < n && w[k].line == lineno; k++) {
			pulls_t *p = &pulls[w[k].attack];
			const char *one = json_string_value(json_object_get(o, "order_id"));
			json_t *many = json_object_get(o, "order_ids");
			if (one && (rc = pull_add(p, arena, one, time, err)) != MOAT_OK)
				break;
			size_t i;
			json_t *v;
			json_array_foreach(many, i, v)
			{
				if (json_is_string(v) &&
				    (rc = pull_add(p, arena, json_string_value(v), time, err)) !=
					MOAT_OK)
					break;
			}
			if (rc != MOAT_OK)
				break;
		}
		json_decref(o);
		if (rc != MOAT_OK)
			goto done;
		lineno++;
	}
	if (k < n && ferror(f)) {
		rc = moat_error_set(err, MOAT_EIO, NULL, "%s: read error", path);
	} else if (k < n) {
		rc = moat_error_set(
		    err, MOAT_EINVAL, "event_indexes",
		    "%s has %llu lines, but truth.json lists line %llu for attack %s: "
		    "the events file is not this world's",
		    path, (unsigned long long)lineno, (unsigned long long)w[k].line,
		    t->attacks[w[k].attack].id);
	}
done:
	if (f)
		fclose(f);
	free(line);
	free(w);
	return rc;
}

/* Marks, from the ledger, which attempted orders moat allowed (an ACCESS entry
 * of the attacker for the order) and which it refused (DENY entries only): with
 * moat's gateway in front (a replayed world) a refused read served nothing. In a
 * world imported from logs every attempt is an allowed ACCESS entry. */
static moat_err_t mark_refused(moat_ledger_t *l, const eval_truth_t *t, pulls_t *pulls,
			       char *text, moat_error_t *err)
{
	for (size_t j = 0; j < t->n_attacks; j++)
		if (pulls[j].n)
			qsort(pulls[j].v, pulls[j].n, sizeof *pulls[j].v, cmp_pull);
	moat_ledger_iter_t *it = NULL;
	moat_err_t rc = moat_ledger_iter_new(l, 0, &it, err);
	if (rc != MOAT_OK)
		return rc;
	uint64_t index;
	const uint8_t *data;
	size_t len;
	while ((rc = moat_ledger_iter_next(it, &index, &data, &len, err)) == MOAT_OK) {
		moat_entry_t e;
		if (moat_entry_decode(data, len, &e, text, MOAT_ENTRY_MAX + 64, NULL) != MOAT_OK)
			continue;
		if ((e.kind != MOAT_ENTRY_ACCESS && e.kind != MOAT_ENTRY_DENY) || !e.principal ||
		    !e.order_id)
			continue;
		for (size_t j = 0; j < t->n_attacks; j++) {
			pulls_t *p = &pulls[j];
			if (!p->n || strcmp(t->attacks[j].principal, e.principal) != 0)
				continue;
			size_t lo = 0, hi = p->n; /* first pull of the order */
			while (lo < hi) {
				size_t mid = (lo + hi) / 2;
				if (strcmp(p->v[mid].order, e.order_id) < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			for (size_t i = lo; i < p->n && strcmp(p->v[i].order, e.order_id) == 0; i++)
				p->v[i].ledger |= e.kind == MOAT_ENTRY_ACCESS ? PULL_ALLOWED : PULL_DENIED;
		}
	}
	moat_ledger_iter_free(it);
	return rc == MOAT_ENOTFOUND ? MOAT_OK : rc;
}

/* Distinct orders pulled, those of them moat served (all but the ones the
 * ledger shows only refusals for), and those first pulled at or before `by`
 * (all if NONE) and served. */
static void served(pulls_t *p, moat_time_t by, uint64_t *attempted, uint64_t *before,
		   uint64_t *refused)
{
	*attempted = *before = *refused = 0;
	qsort(p->v, p->n, sizeof *p->v, cmp_pull);
	for (size_t i = 0; i < p->n; i++) {
		if (i > 0 && strcmp(p->v[i].order, p->v[i - 1].order) == 0)
			continue;
		(*attempted)++;
		uint8_t seen = 0;
		for (size_t k = i; k < p->n && strcmp(p->v[k].order, p->v[i].order) == 0; k++)
			seen |= p->v[k].ledger;
		if (seen == PULL_DENIED) {
			(*refused)++;
			continue;
		}
		/* sorted by time within an order: v[i] is its first pull */
		if (by == MOAT_TIME_NONE || p->v[i].time <= by)
			(*before)++;
	}
}

static moat_err_t score_detector(moat_app_t *a, const char *world_dir, const eval_truth_t *t,
				 json_t *out, moat_error_t *err)
{
	alert_vec_t av = {0};
	moat_buf_t scratch;
	moat_buf_init(&scratch, MOAT_ENTRY_MAX + 64);
	char *text = malloc(MOAT_ENTRY_MAX + 64); /* decoded entry strings */
	pulls_t *pulls = calloc(t->n_attacks + 1, sizeof *pulls);
	moat_arena_t *arena = moat_arena_new(1 << 16);
	json_t *attacks = json_array(), *kinds = json_array(), *fp_rules = json_object();
	bool oom = !text || !pulls || !arena || !attacks || !kinds || !fp_rules;
	moat_err_t rc = MOAT_OK;
	if (oom)
		goto done;
	rc = moat_store_alert_list(a->store, -1, 0, collect_alert, &av, err);
	if (rc != MOAT_OK || (oom = av.oom))
		goto done;
	if (av.n)
		qsort(av.v, av.n, sizeof *av.v, cmp_alert_time);
	char path[4096];
	if ((rc = moat_path_join(path, sizeof path, world_dir, "events.jsonl")) != MOAT_OK) {
		moat_error_set(err, rc, NULL, "world directory path too long");
		goto done;
	}
	if ((rc = read_pulls(path, t, pulls, arena, err)) != MOAT_OK)
		goto done;
	if ((rc = mark_refused(a->ledger, t, pulls, text, err)) != MOAT_OK)
		goto done;

	/* Attribute every alert to the first attack it is on. */
	size_t true_alerts = 0, keyed = 0;
	for (size_t i = 0; i < av.n; i++) {
		ev_alert_t *al = &av.v[i];
		for (size_t j = 0; j < t->n_attacks && al->attack < 0; j++) {
			const eval_attack_t *at = &t->attacks[j];
			if (!names_attack(al, at))
				continue;
			bool late = false;
			if (!in_window(al->time, at) &&
			    (rc = evidence_in_window(a->ledger, al, at, &scratch, text, &late,
						     err)) != MOAT_OK)
				goto done;
			if (in_window(al->time, at) || late)
				al->attack = (long)j;
			else if (al->keyed < 0)
				al->keyed = (long)j;
		}
		if (al->attack >= 0) {
			true_alerts++;
			continue;
		}
		keyed += al->keyed >= 0;
		json_t *c = json_object_get(fp_rules, al->rule);
		put(fp_rules, al->rule, json_integer(c ? json_integer_value(c) + 1 : 1), &oom);
	}

	size_t detectable = 0, detected = 0;
	for (size_t j = 0; j < t->n_attacks; j++) {
		const eval_attack_t *at = &t->attacks[j];
		const ev_alert_t *first = NULL, *act = NULL;
		size_t n_on = 0, n_outside = 0;
		json_t *rules = json_array(), *row = json_object();
		if (!rules || !row) {
			json_decref(rules);
			json_decref(row);
			oom = true;
			goto done;
		}
		for (size_t i = 0; i < av.n; i++) {
			const ev_alert_t *al = &av.v[i];
			if (al->keyed == (long)j)
				n_outside++;
			if (al->attack != (long)j)
				continue;
			n_on++;
			if (!first)
				first = al;
			if (!act && al->action != MOAT_ACTION_NONE &&
			    strcmp(al->principal, at->principal) == 0)
				act = al;
			bool seen = false;
			size_t k;
			json_t *r;
			json_array_foreach(rules, k, r) seen =
			    seen || strcmp(json_string_value(r), al->rule) == 0;
			if (!seen)
				push(rules, json_string(al->rule), &oom);
		}
		put(row, "attack", json_string(at->id), &oom);
		put(row, "kind", json_string(at->kind), &oom);
		put(row, "principal", json_string(at->principal), &oom);
		put(row, "party", json_string(at->party), &oom);
		put(row, "detectable", json_boolean(at->abnormal), &oom);
		put(row, "alerts", json_integer((json_int_t)n_on), &oom);
		put(row, "alerts_outside_window", json_integer((json_int_t)n_outside), &oom);
		put(row, "rules", rules, &oom);
		if (at->abnormal) {
			detectable++;
			detected += first != NULL;
			put(row, "detected", json_boolean(first != NULL), &oom);
			put(row, "first_alert",
			    first ? json_pack("{s:s, s:s, s:o}", "id", first->id, "rule",
					      first->rule, "time", jtime(first->time))
				  : json_null(),
			    &oom);
			double tta = first ? (double)(first->time - at->first) / 1000.0 : 0;
			put(row, "time_to_detect_s",
			    first ? json_real(tta < 0 ? 0 : tta) : json_null(), &oom);
			put(row, "first_action",
			    act ? json_pack("{s:s, s:s, s:s, s:o}", "id", act->id, "rule",
					    act->rule, "action",
					    moat_detect_action_name(act->action), "time",
					    jtime(act->time))
				: json_null(),
			    &oom);
			double tta2 = act ? (double)(act->time - at->first) / 1000.0 : 0;
			put(row, "time_to_action_s",
			    act ? json_real(tta2 < 0 ? 0 : tta2) : json_null(), &oom);
			uint64_t attempted, before, refused;
			served(&pulls[j], act ? act->time : MOAT_TIME_NONE, &attempted, &before,
			       &refused);
			put(row, "attempted_orders", json_integer((json_int_t)attempted), &oom);
			put(row, "refused_by_policy", json_integer((json_int_t)refused), &oom);
			put(row, "served_before_action", json_integer((json_int_t)before), &oom);
			/* Nothing pulled (an attack of logins only): nothing was served. */
			put(row, "served_share",
			    attempted ? json_real((double)before / (double)attempted)
				      : json_real(0),
			    &oom);
		} else {
			/* Nothing abnormal to see (a courier passing on what it may read): the
			 * tracer's job. Alerts on it still count as true for precision. */
			put(row, "detected", json_null(), &oom);
			put(row, "first_alert", json_null(), &oom);
			put(row, "time_to_detect_s", json_null(), &oom);
			put(row, "first_action", json_null(), &oom);
			put(row, "time_to_action_s", json_null(), &oom);
			put(row, "attempted_orders", json_integer(at->attempted_orders), &oom);
			put(row, "served_before_action", json_null(), &oom);
			put(row, "served_share", json_null(), &oom);
		}
		push(attacks, row, &oom);
	}

	/* Recall per attack kind, in the order kinds first appear. */
	for (size_t j = 0; j < t->n_attacks; j++) {
		const char *kind = t->attacks[j].kind;
		bool done_before = false;
		for (size_t i = 0; i < j; i++)
			done_before = done_before || strcmp(t->attacks[i].kind, kind) == 0;
		if (done_before)
			continue;
		size_t n = 0, det = 0, ok = 0;
		size_t i;
		json_t *row;
		json_array_foreach(attacks, i, row)
		{
			if (strcmp(json_string_value(json_object_get(row, "kind")), kind) != 0)
				continue;
			n++;
			det += json_is_true(json_object_get(row, "detectable"));
			ok += json_is_true(json_object_get(row, "detected"));
		}
		push(kinds,
		     json_pack("{s:s, s:I, s:I, s:I, s:o}", "kind", kind, "attacks", (json_int_t)n,
			       "detectable", (json_int_t)det, "detected", (json_int_t)ok, "recall",
			       jratio((double)ok, (double)det)),
		     &oom);
	}

	size_t false_alerts = av.n - true_alerts;
	put(out, "alerts", json_integer((json_int_t)av.n), &oom);
	put(out, "true_alerts", json_integer((json_int_t)true_alerts), &oom);
	put(out, "false_alerts", json_integer((json_int_t)false_alerts), &oom);
	put(out, "false_alerts_on_attackers", json_integer((json_int_t)keyed), &oom);
	put(out, "precision", jratio((double)true_alerts, (double)av.n), &oom);
	put(out, "principal_days", json_integer(t->principal_days), &oom);
	put(out, "false_per_1k_principal_days",
	    jratio(1000.0 * (double)false_alerts, (double)t->principal_days), &oom);
	put(out, "detectable", json_integer((json_int_t)detectable), &oom);
	put(out, "detected", json_integer((json_int_t)detected), &oom);
	put(out, "recall", jratio((double)detected, (double)detectable), &oom);
	put(out, "by_kind", kinds, &oom);
	put(out, "false_alert_rules", fp_rules, &oom);
	put(out, "attacks", attacks, &oom);
	kinds = fp_rules = attacks = NULL;
done:
	json_decref(attacks);
	json_decref(kinds);
	json_decref(fp_rules);
	for (size_t j = 0; pulls && j < t->n_attacks; j++)
		free(pulls[j].v);
	free(pulls);
	moat_arena_free(arena);
	moat_buf_free(&scratch);
	free(text);
	free(av.v);
	if (rc == MOAT_OK && oom)
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	return rc;
}

/* ---- tracer --------------------------------------------------------------------- */

/* A true leaker with genuine reports in the case being scored. */
typedef struct leaker {
	const eval_attack_t *attack;
	const char *principal; /* the reports' leaker */
	size_t reports;
	json_t *suspect; /* its principal-level suspect (borrowed), NULL if not ranked */
	size_t rank, party_rank;
} leaker_t;

typedef struct case_reports {
	const eval_truth_t *t;
	size_t total, genuine, false_, unrelated, unlabelled;
	leaker_t *leakers; /* one per attack, n_attacks of them */
} case_reports_t;

static int count_report(void *ctx, const moat_report_row_t *r)
{
	case_reports_t *c = ctx;
	const eval_report_t *tr = eval_truth_report(c->t, r->report_id);
	c->total++;
	if (!tr) {
		c->unlabelled++;
		return 0;
	}
	if (strcmp(tr->label, "false") == 0) {
		c->false_++;
	} else if (strcmp(tr->label, "unrelated") == 0) {
		c->unrelated++;
	} else {
		c->genuine++;
		const eval_attack_t *at = eval_truth_attack(c->t, tr->attack);
		leaker_t *l = &c->leakers[at - c->t->attacks];
		l->attack = at;
		l->principal = tr->leaker;
		l->reports++;
	}
	return 0;
}

static bool is_attacker(const eval_truth_t *t, const char *principal)
{
	for (size_t i = 0; principal && i < t->n_attacks; i++)
		if (strcmp(t->attacks[i].principal, principal) == 0)
			return true;
	return false;
}

static bool is_attacker_party(const eval_truth_t *t, const char *party)
{
	for (size_t i = 0; party && i < t->n_attacks; i++)
		if (strcmp(t->attacks[i].party, party) == 0)
			return true;
	return false;
}

static json_t *jnum_or_null(json_t *v)
{
	return json_is_number(v) ? json_real(json_number_value(v)) : json_null();
}

/* Scores one case; appends its row to cases and adds to the totals. */
static moat_err_t score_case(moat_app_t *a, const eval_truth_t *t, const char *case_id,
			     const moat_eval_opts_t *opts, json_t *cases, json_t *warnings,
			     size_t totals[4], moat_error_t *err)
{
	case_reports_t cr = {.t = t};
	json_t *res = NULL, *row = json_object(), *leakers = json_array(),
	       *false_acc = json_array();
	moat_buf_t buf;
	moat_buf_init(&buf, TRACE_OUT_MAX);
	moat_err_t rc = MOAT_OK;
	bool oom = !row || !leakers || !false_acc;
	cr.leakers = calloc(t->n_attacks + 1, sizeof *cr.leakers);
	if (oom || !cr.leakers) {
		oom = true;
		goto done;
	}
	if ((rc = moat_trace_case_reports(a, case_id, count_report, &cr, err)) != MOAT_OK)
		goto done;
	if (cr.unlabelled) {
		char w[256];
		snprintf(w, sizeof w,
			 "case %s: %zu of %zu reports are not in truth.json (scored as unlabelled)",
			 case_id, cr.unlabelled, cr.total);
		push(warnings, json_string(w), &oom);
	}
	json_t *suspects = NULL;
	if (cr.total) {
		moat_trace_opts_t to = {.alpha = opts->alpha,
					.max_evidence = 1,
					.no_priors = opts->no_priors,
					.prior_share = opts->prior_share};
		if ((rc = moat_trace_case_run(a, case_id, &to, &buf, err)) != MOAT_OK)
			goto done;
		json_error_t je;
		res = json_loadb(buf.data, buf.len, 0, &je);
		if (!res) {
			rc = moat_error_set(err, MOAT_ECORRUPT, NULL,
					    "the trace of case %s is not valid JSON: %s", case_id,
					    je.text);
			goto done;
		}
		suspects = json_object_get(res, "suspects");
	}

	/* Ranks: principal-level and party-level suspects are ranked apart, each in
	 * the tracer's order (direct evidence first, then by corrected p). */
	size_t prank = 0, qrank = 0, i;
	json_t *s;
	json_array_foreach(suspects, i, s)
	{
		const char *level = json_string_value(json_object_get(s, "level"));
		const char *p = json_string_value(json_object_get(s, "principal"));
		const char *party = json_string_value(json_object_get(s, "party"));
		bool is_party = (level && strcmp(level, "party") == 0) || !p;
		size_t rank = is_party ? ++qrank : ++prank;
		for (size_t j = 0; j < t->n_attacks; j++) {
			leaker_t *l = &cr.leakers[j];
			if (!l->reports)
				continue;
			if (!is_party && !l->rank && strcmp(l->principal, p) == 0) {
				l->rank = rank;
				l->suspect = s;
			}
			if (is_party && !l->party_rank && party &&
			    strcmp(l->attack->party, party) == 0)
				l->party_rank = rank;
		}
		if (!json_is_true(json_object_get(s, "significant")))
			continue;
		if (is_party ? is_attacker_party(t, party) : is_attacker(t, p))
			continue;
		push(false_acc,
		     json_pack("{s:o, s:o, s:s, s:I, s:o, s:o}", "principal", jstr_or_null(p),
			       "party", jstr_or_null(party), "level",
			       is_party ? "party" : "principal", "rank", (json_int_t)rank,
			       "p_value", jnum_or_null(json_object_get(s, "p_value")), "how",
			       jstr_or_null(json_string_value(json_object_get(s, "how")))),
		     &oom);
	}

	size_t n_leakers = 0, n_sig = 0, n_top = 0;
	for (size_t j = 0; j < t->n_attacks; j++) {
		leaker_t *l = &cr.leakers[j];
		if (!l->reports)
			continue;
		n_leakers++;
		bool sig = l->suspect && json_is_true(json_object_get(l->suspect, "significant"));
		n_sig += sig;
		n_top += l->rank == 1;
		push(leakers,
		     json_pack(
			 "{s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:o, s:o, s:b, s:b}", "principal",
			 l->principal, "party", l->attack->party, "attack", l->attack->id, "kind",
			 l->attack->kind, "reports", (json_int_t)l->reports, "rank",
			 l->rank ? json_integer((json_int_t)l->rank) : json_null(), "party_rank",
			 l->party_rank ? json_integer((json_int_t)l->party_rank) : json_null(),
			 "p_value",
			 l->suspect ? jnum_or_null(json_object_get(l->suspect, "p_value"))
				    : json_null(),
			 "p_value_raw",
			 l->suspect ? jnum_or_null(json_object_get(l->suspect, "p_value_raw"))
				    : json_null(),
			 "significant", sig, "direct",
			 l->suspect && json_is_true(json_object_get(l->suspect, "direct"))),
		     &oom);
	}
	size_t n_false = json_array_size(false_acc);
	put(row, "case", json_string(case_id), &oom);
	put(row, "reports", json_integer((json_int_t)cr.total), &oom);
	put(row, "genuine", json_integer((json_int_t)cr.genuine), &oom);
	put(row, "false", json_integer((json_int_t)cr.false_), &oom);
	put(row, "unrelated", json_integer((json_int_t)cr.unrelated), &oom);
	put(row, "unlabelled", json_integer((json_int_t)cr.unlabelled), &oom);
	put(row, "suspects", json_integer((json_int_t)json_array_size(suspects)), &oom);
	put(row, "hypotheses",
	    res ? json_integer(json_integer_value(json_object_get(res, "hypotheses")))
		: json_integer(0),
	    &oom);
	put(row, "alpha", res ? jnum_or_null(json_object_get(res, "alpha")) : json_null(), &oom);
	put(row, "leakers_found", json_integer((json_int_t)n_sig), &oom);
	put(row, "leakers_rank1", json_integer((json_int_t)n_top), &oom);
	put(row, "leakers", leakers, &oom);
	put(row, "false_accusations", false_acc, &oom);
	leakers = false_acc = NULL;
	push(cases, row, &oom);
	row = NULL;
	totals[0] += n_leakers;
	totals[1] += n_sig;
	totals[2] += n_top;
	totals[3] += n_false;
done:
	json_decref(row);
	json_decref(leakers);
	json_decref(false_acc);
	json_decref(res);
	free(cr.leakers);
	moat_buf_free(&buf);
	if (rc == MOAT_OK && oom)
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	return rc;
}

typedef struct case_ids {
	char (*id)[MOAT_ID_MAX + 1];
	size_t n, cap;
	bool oom;
} case_ids_t;

static int collect_case_id(void *ctx, const moat_case_row_t *c)
{
	case_ids_t *ids = ctx;
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? 2 * ids->cap : 16;
		char(*v)[MOAT_ID_MAX + 1] = realloc(ids->id, cap * sizeof *v);
		if (!v) {
			ids->oom = true;
			return 1;
		}
		ids->id = v;
		ids->cap = cap;
	}
	snprintf(ids->id[ids->n++], MOAT_ID_MAX + 1, "%s", c->case_id);
	return 0;
}

static moat_err_t score_tracer(moat_app_t *a, const eval_truth_t *t, const moat_eval_opts_t *opts,
			       json_t *out, json_t *warnings, moat_error_t *err)
{
	case_ids_t ids = {0};
	json_t *cases = json_array();
	size_t totals[4] = {0};
	moat_err_t rc = MOAT_OK;
	bool oom = !cases;
	if (oom)
		goto done;
	if (opts->case_id) {
		if (strcmp(opts->case_id, MOAT_CASE_DEFAULT) != 0) {
			moat_case_row_t c;
			if ((rc = moat_store_trace_case_get(a->store, opts->case_id, &c, err)) !=
			    MOAT_OK) {
				if (rc == MOAT_ENOTFOUND)
					moat_error_set(
					    err, rc, "case",
					    "no case %s in the data directory (see `moat case "
					    "list`)",
					    opts->case_id);
				goto done;
			}
		}
		rc = score_case(a, t, opts->case_id, opts, cases, warnings, totals, err);
		goto done;
	}
	if ((rc = moat_store_trace_case_list(a->store, collect_case_id, &ids, err)) != MOAT_OK)
		goto done;
	if ((oom = ids.oom))
		goto done;
	if ((rc = score_case(a, t, MOAT_CASE_DEFAULT, opts, cases, warnings, totals, err)) !=
	    MOAT_OK)
		goto done;
	for (size_t i = 0; i < ids.n; i++)
		if ((rc = score_case(a, t, ids.id[i], opts, cases, warnings, totals, err)) !=
		    MOAT_OK)
			goto done;
done:
	if (rc == MOAT_OK && !oom) {
		put(out, "leakers", json_integer((json_int_t)totals[0]), &oom);
		put(out, "leakers_found", json_integer((json_int_t)totals[1]), &oom);
		put(out, "leakers_rank1", json_integer((json_int_t)totals[2]), &oom);
		put(out, "false_accusations", json_integer((json_int_t)totals[3]), &oom);
		put(out, "cases", cases, &oom);
		cases = NULL;
	}
	json_decref(cases);
	free(ids.id);
	if (rc == MOAT_OK && oom)
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	return rc;
}

/* ---- the whole run ---------------------------------------------------------------- */

/* Warnings that the data directory may not hold this world. */
static void check_world(moat_app_t *a, const eval_truth_t *t, json_t *warnings, bool *oom)
{
	char w[512];
	if (moat_ledger_size(a->ledger) == 0)
		push(warnings,
		     json_string(
			 "the ledger is empty: import the world's events (moat import events "
			 "DIR/events.jsonl) before scoring"),
		     oom);
	for (size_t i = 0; i < t->n_attacks; i++) {
		moat_principal_row_t p;
		moat_error_t e = {0};
		if (moat_store_principal_get(a->store, t->attacks[i].principal, &p, &e) ==
		    MOAT_ENOTFOUND) {
			snprintf(
			    w, sizeof w,
			    "attack %s's principal %s is not in the data directory: was this world "
			    "imported here?",
			    t->attacks[i].id, t->attacks[i].principal);
			push(warnings, json_string(w), oom);
		}
	}
}

moat_err_t moat_eval_run(moat_app_t *a, const char *world_dir, const moat_eval_opts_t *opts,
			 json_t **out, moat_error_t *err)
{
	*out = NULL;
	moat_eval_opts_t o = {0};
	if (opts)
		o = *opts;
	if (!a->ledger)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL,
				      "eval needs the data directory's ledger");
	char path[4096];
	if (moat_path_join(path, sizeof path, world_dir, "truth.json") != MOAT_OK)
		return moat_error_set(err, MOAT_EINVAL, NULL, "world directory path too long");
	eval_truth_t t;
	moat_err_t rc = eval_truth_load(path, &t, err);
	if (rc != MOAT_OK)
		return rc;
	json_t *res = json_object(), *world = json_object(), *det = json_object(),
	       *trc = json_object(), *warnings = json_array();
	bool oom = !res || !world || !det || !trc || !warnings;
	if (oom)
		goto done;
	put(world, "dir", json_string(world_dir), &oom);
	put(world, "seed", json_integer(t.seed), &oom);
	put(world, "scale", jstr_or_null(t.scale), &oom);
	put(world, "scenarios", t.scenarios ? json_deep_copy(t.scenarios) : json_array(), &oom);
	put(world, "attacks", json_integer((json_int_t)t.n_attacks), &oom);
	put(world, "reports", json_integer((json_int_t)t.n_reports), &oom);
	put(world, "principal_days", json_integer(t.principal_days), &oom);
	check_world(a, &t, warnings, &oom);
	if ((rc = score_detector(a, world_dir, &t, det, err)) != MOAT_OK)
		goto done;
	if ((rc = score_tracer(a, &t, &o, trc, warnings, err)) != MOAT_OK)
		goto done;
	put(res, "world", world, &oom);
	put(res, "detector", det, &oom);
	put(res, "tracer", trc, &oom);
	put(res, "warnings", warnings, &oom);
	world = det = trc = warnings = NULL;
	if (!oom) {
		*out = res;
		res = NULL;
	}
done:
	json_decref(res);
	json_decref(world);
	json_decref(det);
	json_decref(trc);
	json_decref(warnings);
	eval_truth_clear(&t);
	if (rc == MOAT_OK && oom)
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	return rc;
}
