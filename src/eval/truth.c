/*
 * truth.json, read for scoring. Only the keys eval uses are checked (the file has
 * more, for other readers); each of those must have the type docs/simulator.md
 * gives, and an error names it as a path ("attacks[1].window.from") so a
 * hand-edited or truncated file is easy to fix.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval_internal.h"
#include "moat/eval.h"
#include "moat/json.h"

/* Longest id or label eval accepts from truth. */
#define TRUTH_STR_MAX 256
/* Most items of any one array (event indexes of a large world's attack). */
#define TRUTH_ARRAY_MAX ((size_t)1 << 26)

/* Rewrites err's message as "<path>, field <field>: <message>" (the path first, so
 * a reader sees which file before what is wrong with it), keeping the code. */
static moat_err_t in_file(const char *path, moat_err_t rc, moat_error_t *err)
{
	if (!err)
		return rc;
	char msg[sizeof err->msg], field[sizeof err->field];
	memcpy(msg, err->msg, sizeof msg);
	memcpy(field, err->field, sizeof field);
	if (field[0])
		return moat_error_set(err, rc, NULL, "%s, field %s: %s", path, field, msg);
	return moat_error_set(err, rc, NULL, "%s: %s", path, msg);
}

static int cmp_report(const void *a, const void *b)
{
	return strcmp(((const eval_report_t *)a)->report_id, ((const eval_report_t *)b)->report_id);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static moat_err_t parse_attack(json_t *o, size_t i, eval_attack_t *at, moat_error_t *err)
{
	char f[96], g[96];
	moat_err_t rc;
#define FIELD(name) (snprintf(f, sizeof f, "attacks[%zu].%s", i, name), f)
	if (!json_is_object(o))
		return moat_error_set(err, MOAT_EINVAL,
				      (snprintf(f, sizeof f, "attacks[%zu]", i), f),
				      "must be an object");
	if ((rc = moat_json_get_str(o, "id", FIELD("id"), true, TRUTH_STR_MAX, &at->id, err)) ||
	    (rc = moat_json_get_str(o, "kind", FIELD("kind"), true, TRUTH_STR_MAX, &at->kind,
				    err)) ||
	    (rc = moat_json_get_str(o, "principal", FIELD("principal"), true, TRUTH_STR_MAX,
				    &at->principal, err)) ||
	    (rc = moat_json_get_str(o, "party", FIELD("party"), true, TRUTH_STR_MAX, &at->party,
				    err)))
		return rc;
	json_t *ab = json_object_get(o, "abnormal_activity");
	if (ab && !json_is_boolean(ab))
		return moat_error_set(err, MOAT_EINVAL, FIELD("abnormal_activity"),
				      "must be true or false");
	at->abnormal = !ab || json_is_true(ab);
	json_t *w;
	if ((rc = moat_json_get_obj(o, "window", FIELD("window"), true, &w, err)))
		return rc;
	snprintf(g, sizeof g, "attacks[%zu].window.from", i);
	if ((rc = moat_json_get_time(w, "from", g, true, &at->from, err)))
		return rc;
	snprintf(g, sizeof g, "attacks[%zu].window.until", i);
	if ((rc = moat_json_get_time(w, "until", g, true, &at->until, err)))
		return rc;
	if (at->until < at->from)
		return moat_error_set(err, MOAT_EINVAL, FIELD("window"), "until lies before from");
	at->first = MOAT_TIME_NONE;
	if ((rc = moat_json_get_time(o, "first_event_time", FIELD("first_event_time"), false,
				     &at->first, err)))
		return rc;
	if (at->abnormal && at->first == MOAT_TIME_NONE)
		return moat_error_set(err, MOAT_EINVAL, FIELD("first_event_time"),
				      "required for an attack with abnormal activity");
	at->attempted_orders = 0;
	if ((rc = moat_json_get_int(o, "attempted_orders", FIELD("attempted_orders"), false, 0,
				    INT64_MAX, &at->attempted_orders, err)))
		return rc;
	json_t *ev = NULL;
	if ((rc = moat_json_get_arr(o, "event_indexes", FIELD("event_indexes"), false,
				    TRUTH_ARRAY_MAX, &ev, err)))
		return rc;
	size_t n = ev ? json_array_size(ev) : 0;
	if (n) {
		at->events = malloc(n * sizeof *at->events);
		if (!at->events)
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		for (size_t k = 0; k < n; k++) {
			json_t *v = json_array_get(ev, k);
			if (!json_is_integer(v) || json_integer_value(v) < 0) {
				snprintf(g, sizeof g, "attacks[%zu].event_indexes[%zu]", i, k);
				return moat_error_set(err, MOAT_EINVAL, g,
						      "must be a line number (an integer >= 0)");
			}
			at->events[k] = (uint64_t)json_integer_value(v);
		}
		/* Ascending per docs; sorting costs nothing and makes the merge safe. */
		qsort(at->events, n, sizeof *at->events, cmp_u64);
		at->n_events = n;
	}
	json_t *atk = json_object_get(o, "attacker");
	if (atk && !json_is_null(atk)) {
		if (!json_is_object(atk))
			return moat_error_set(err, MOAT_EINVAL, FIELD("attacker"),
					      "must be an object");
		json_t *ips = NULL;
		snprintf(g, sizeof g, "attacks[%zu].attacker.ips", i);
		if ((rc = moat_json_get_arr(atk, "ips", g, false, 4096, &ips, err)))
			return rc;
		size_t m = ips ? json_array_size(ips) : 0;
		if (m) {
			at->ips = calloc(m, sizeof *at->ips);
			if (!at->ips)
				return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
			for (size_t k = 0; k < m; k++) {
				at->ips[k] = json_string_value(json_array_get(ips, k));
				if (!at->ips[k] || !at->ips[k][0]) {
					snprintf(g, sizeof g, "attacks[%zu].attacker.ips[%zu]", i,
						 k);
					return moat_error_set(err, MOAT_EINVAL, g,
							      "must be a non-empty string");
				}
			}
			at->n_ips = m;
		}
	}
#undef FIELD
	return MOAT_OK;
}

static moat_err_t parse_report(json_t *o, size_t i, eval_report_t *r, moat_error_t *err)
{
	char f[96];
	moat_err_t rc;
	static const char *const labels[] = {"genuine", "false", "unrelated", NULL};
#define FIELD(name) (snprintf(f, sizeof f, "reports[%zu].%s", i, name), f)
	if (!json_is_object(o))
		return moat_error_set(err, MOAT_EINVAL,
				      (snprintf(f, sizeof f, "reports[%zu]", i), f),
				      "must be an object");
	int label;
	if ((rc = moat_json_get_str(o, "report_id", FIELD("report_id"), true, TRUTH_STR_MAX,
				    &r->report_id, err)) ||
	    (rc = moat_json_get_enum(o, "label", FIELD("label"), true, labels, &label, err)) ||
	    (rc = moat_json_get_str(o, "attack", FIELD("attack"), false, TRUTH_STR_MAX, &r->attack,
				    err)) ||
	    (rc = moat_json_get_str(o, "leaker", FIELD("leaker"), false, TRUTH_STR_MAX, &r->leaker,
				    err)))
		return rc;
	r->label = labels[label];
	if (label == 0 && (!r->attack || !r->leaker))
		return moat_error_set(err, MOAT_EINVAL, FIELD("leaker"),
				      "a genuine report must name its attack and leaker");
#undef FIELD
	return MOAT_OK;
}

moat_err_t eval_truth_load(const char *path, eval_truth_t *t, moat_error_t *err)
{
	memset(t, 0, sizeof *t);
	char *text = NULL;
	size_t len = 0;
	moat_err_t rc = moat_file_read(path, MOAT_EVAL_TRUTH_MAX, &text, &len, err);
	if (rc == MOAT_ENOTFOUND)
		return moat_error_set(err, rc, NULL,
				      "%s does not exist: DIR must be a world written by `moat "
				      "simulate --out DIR`",
				      path);
	if (rc != MOAT_OK)
		return in_file(path, rc, err);
	json_error_t je;
	t->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	free(text);
	if (!t->root) {
		rc = moat_error_set(err, MOAT_EINVAL, NULL,
				    "%s: not valid JSON (line %d, column %d): %s", path, je.line,
				    je.column, je.text);
		goto fail;
	}
	rc = MOAT_EINVAL;
	if (!json_is_object(t->root)) {
		moat_error_set(err, rc, NULL, "%s: expected a JSON object", path);
		goto fail;
	}
	if ((rc = moat_json_get_int(t->root, "seed", "seed", false, 0, INT64_MAX, &t->seed, err)) ||
	    (rc = moat_json_get_str(t->root, "scale", "scale", false, TRUTH_STR_MAX, &t->scale,
				    err)) ||
	    (rc = moat_json_get_arr(t->root, "scenarios", "scenarios", false, 64, &t->scenarios,
				    err)))
		goto fail_field;
	json_t *stats = NULL;
	if ((rc = moat_json_get_obj(t->root, "stats", "stats", true, &stats, err)) ||
	    (rc = moat_json_get_int(stats, "principal_days", "stats.principal_days", false, 0,
				    INT64_MAX, &t->principal_days, err)))
		goto fail_field;
	json_t *attacks, *reports;
	if ((rc = moat_json_get_arr(t->root, "attacks", "attacks", true, TRUTH_ARRAY_MAX, &attacks,
				    err)) ||
	    (rc = moat_json_get_arr(t->root, "reports", "reports", true, TRUTH_ARRAY_MAX, &reports,
				    err)))
		goto fail_field;
	size_t na = json_array_size(attacks), nr = json_array_size(reports);
	t->attacks = calloc(na ? na : 1, sizeof *t->attacks);
	t->reports = calloc(nr ? nr : 1, sizeof *t->reports);
	if (!t->attacks || !t->reports) {
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < na; i++) {
		t->n_attacks = i + 1; /* so clear() frees what parse_attack allocated */
		if ((rc = parse_attack(json_array_get(attacks, i), i, &t->attacks[i], err)))
			goto fail_field;
		if (eval_truth_attack(t, t->attacks[i].id) != &t->attacks[i]) {
			char f[96];
			snprintf(f, sizeof f, "attacks[%zu].id", i);
			rc = moat_error_set(err, MOAT_EINVAL, f, "attack id \"%s\" appears twice",
					    t->attacks[i].id);
			goto fail_field;
		}
	}
	for (size_t i = 0; i < nr; i++)
		if ((rc = parse_report(json_array_get(reports, i), i, &t->reports[i], err)))
			goto fail_field;
	t->n_reports = nr;
	qsort(t->reports, nr, sizeof *t->reports, cmp_report);
	for (size_t i = 1; i < nr; i++)
		if (strcmp(t->reports[i - 1].report_id, t->reports[i].report_id) == 0) {
			rc = moat_error_set(err, MOAT_EINVAL, "reports",
					    "report id \"%s\" appears twice",
					    t->reports[i].report_id);
			goto fail_field;
		}
	for (size_t i = 0; i < nr; i++)
		if (t->reports[i].attack && !eval_truth_attack(t, t->reports[i].attack)) {
			rc =
			    moat_error_set(err, MOAT_EINVAL, "reports",
					   "report %s names attack \"%s\", which is not in attacks",
					   t->reports[i].report_id, t->reports[i].attack);
			goto fail_field;
		}
	return MOAT_OK;
fail_field:
	in_file(path, rc, err);
fail:
	eval_truth_clear(t);
	return rc;
}

void eval_truth_clear(eval_truth_t *t)
{
	if (!t)
		return;
	for (size_t i = 0; t->attacks && i < t->n_attacks; i++) {
		free(t->attacks[i].events);
		free(t->attacks[i].ips);
	}
	free(t->attacks);
	free(t->reports);
	json_decref(t->root);
	memset(t, 0, sizeof *t);
}

const eval_report_t *eval_truth_report(const eval_truth_t *t, const char *report_id)
{
	eval_report_t key = {.report_id = report_id};
	return t->n_reports ? bsearch(&key, t->reports, t->n_reports, sizeof key, cmp_report)
			    : NULL;
}

const eval_attack_t *eval_truth_attack(const eval_truth_t *t, const char *attack_id)
{
	for (size_t i = 0; i < t->n_attacks; i++)
		if (t->attacks[i].id && strcmp(t->attacks[i].id, attack_id) == 0)
			return &t->attacks[i];
	return NULL;
}
