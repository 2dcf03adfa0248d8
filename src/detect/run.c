/*
 * Running the engine over a log exactly once, and rendering stored alerts.
 *
 * The engine's state is not persisted: it is a pure function of the log, so a run
 * rebuilds it by replaying the log from index 0 with the persisted cursor as the
 * quiet mark (alerts below it were stored by an earlier run). Replaying is cheap
 * next to everything else moat does with an entry (the engine judges well over a
 * million entries per second on one core); a state snapshot would make it
 * incremental when logs grow to billions of entries.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect/detect_internal.h"
#include "detect/runner.h"

/* ---- known alert ids on the log past the cursor ------------------------------------- */

typedef struct known {
	char (*ids)[MOAT_DETECT_RULE_NAME_MAX + 24];
	uint64_t *index;
	size_t n, cap;
} known_t;

static bool known_add(known_t *k, const char *id, uint64_t index)
{
	if (k->n == k->cap) {
		size_t ncap = k->cap ? k->cap * 2 : 16;
		void *ni = realloc(k->ids, ncap * sizeof *k->ids);
		if (!ni)
			return false;
		k->ids = ni;
		uint64_t *nx = realloc(k->index, ncap * sizeof *nx);
		if (!nx)
			return false;
		k->index = nx;
		k->cap = ncap;
	}
	snprintf(k->ids[k->n], sizeof k->ids[k->n], "%s", id);
	k->index[k->n++] = index;
	return true;
}

/* The few ALERT entries a crashed run left past the cursor: a linear scan is fine. */
static bool known_find(const known_t *k, const char *id, uint64_t *index)
{
	for (size_t i = 0; i < k->n; i++)
		if (strcmp(k->ids[i], id) == 0) {
			*index = k->index[i];
			return true;
		}
	return false;
}

/* ---- pending alerts ----------------------------------------------------------------- */

typedef struct pending_alert {
	moat_detect_alert_t a;
	char rule[MOAT_DETECT_RULE_NAME_MAX + 1];
	char title[MOAT_TEXT_MAX + 1];
	char principal[MOAT_ID_MAX + 1];
	char group_by[16];
	char key[MOAT_TEXT_MAX + 1];
} pending_alert_t;

typedef struct run_ctx {
	pending_alert_t *p;
	size_t n, cap;
	bool oom;
} run_ctx_t;

static int on_alert(void *ctx, const moat_detect_alert_t *a)
{
	run_ctx_t *r = ctx;
	if (a->replay)
		return 0;
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 16;
		pending_alert_t *np = realloc(r->p, ncap * sizeof *np);
		if (!np) {
			r->oom = true;
			return -1;
		}
		r->p = np;
		r->cap = ncap;
	}
	pending_alert_t *p = &r->p[r->n++];
	p->a = *a;
	snprintf(p->rule, sizeof p->rule, "%s", a->rule);
	snprintf(p->title, sizeof p->title, "%s", a->title ? a->title : a->rule);
	snprintf(p->principal, sizeof p->principal, "%s", a->principal ? a->principal : "");
	snprintf(p->group_by, sizeof p->group_by, "%s", a->group_by ? a->group_by : "");
	snprintf(p->key, sizeof p->key, "%s", a->key ? a->key : "");
	return 0;
}

/* Points the alert's strings at the copies (after the array last moved). */
static void pending_fix(pending_alert_t *p)
{
	p->a.rule = p->rule;
	p->a.title = p->title;
	p->a.principal = p->principal[0] ? p->principal : NULL;
	p->a.group_by = p->group_by;
	p->a.key = p->key;
}

void moat_detect_alert_entry(const moat_detect_alert_t *a, moat_time_t now, char *detail,
			     moat_entry_t *out)
{
	memset(out, 0, sizeof *out);
	out->kind = MOAT_ENTRY_ALERT;
	out->time = now;
	out->principal = a->principal && *a->principal ? a->principal : NULL;
	out->rule = a->rule;
	out->ref = a->id;
	out->rows = a->count;
	/* "high suspend value=45 threshold=10 at=<trigger> evidence=1,2,3" — ids and
	 * numbers only, never PII; evidence is cut to what fits. */
	int n = snprintf(detail, MOAT_TEXT_MAX + 1, "%s %s value=%.6g threshold=%.6g trigger=%" PRIu64
						    " evidence=",
			 moat_detect_severity_name(a->severity), moat_detect_action_name(a->action),
			 a->value, a->threshold, a->trigger);
	for (size_t i = 0; i < a->n_evidence && n > 0 && n < MOAT_TEXT_MAX - 24; i++)
		n += snprintf(detail + n, (size_t)(MOAT_TEXT_MAX + 1 - n), "%s%" PRIu64, i ? "," : "",
			      a->evidence[i]);
	out->detail = detail;
}

/* Appends the ALERT/ACTION entries of the pending alerts that are not on the log
 * yet, then stores alerts, actions and the cursor in one transaction. */
static moat_err_t flush(moat_store_t *s, const moat_detect_log_t *log, run_ctx_t *r,
			const known_t *known, uint64_t cursor, moat_detect_stats_t *st,
			moat_error_t *err)
{
	moat_time_t now = moat_now();
	size_t n = r->n;
	for (size_t i = 0; i < n; i++)
		pending_fix(&r->p[i]);
	moat_entry_t *es = NULL;
	char (*details)[MOAT_TEXT_MAX + 1] = NULL;
	int64_t *alert_idx = NULL, *action_idx = NULL;
	moat_err_t rc = MOAT_OK;
	if (n) {
		es = calloc(2 * n, sizeof *es);
		details = calloc(n, sizeof *details);
		alert_idx = calloc(n, sizeof *alert_idx);
		action_idx = calloc(n, sizeof *action_idx);
		if (!es || !details || !alert_idx || !action_idx) {
			rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
			goto out;
		}
	}
	size_t m = 0;
	size_t *pos_alert = (size_t *)calloc(n ? n : 1, sizeof(size_t));
	size_t *pos_action = (size_t *)calloc(n ? n : 1, sizeof(size_t));
	if (!pos_alert || !pos_action) {
		free(pos_alert);
		free(pos_action);
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const moat_detect_alert_t *a = &r->p[i].a;
		uint64_t at;
		alert_idx[i] = action_idx[i] = -1;
		if (known_find(known, a->id, &at)) {
			alert_idx[i] = (int64_t)at;
			pos_alert[i] = pos_action[i] = SIZE_MAX;
			continue;
		}
		moat_detect_alert_entry(a, now, details[i], &es[m]);
		pos_alert[i] = m++;
		pos_action[i] = SIZE_MAX;
		if (a->action != MOAT_ACTION_NONE && a->principal) {
			moat_entry_t *x = &es[m];
			x->kind = MOAT_ENTRY_ACTION;
			x->time = now;
			x->principal = a->principal;
			x->ref = moat_detect_action_name(a->action);
			x->rule = a->id;
			x->detail = "apply";
			pos_action[i] = m++;
		}
	}
	if (m && log->append) {
		uint64_t first;
		rc = log->append(log->ctx, es, m, &first, err);
		if (rc != MOAT_OK)
			goto out2;
		for (size_t i = 0; i < n; i++) {
			if (pos_alert[i] != SIZE_MAX)
				alert_idx[i] = (int64_t)(first + pos_alert[i]);
			if (pos_action[i] != SIZE_MAX)
				action_idx[i] = (int64_t)(first + pos_action[i]);
		}
	}
	if ((rc = moat_store_begin(s, err)) != MOAT_OK)
		goto out2;
	for (size_t i = 0; i < n; i++) {
		const moat_detect_alert_t *a = &r->p[i].a;
		bool inserted;
		rc = moat_store_alert_put(s, a, alert_idx[i], &inserted, err);
		if (rc != MOAT_OK)
			goto rollback;
		if (!inserted)
			continue;
		st->alerts++;
		if (a->action != MOAT_ACTION_NONE && a->principal) {
			rc = moat_store_action_put(s, a->principal, a->action, a->id, now, action_idx[i],
						   NULL, err);
			if (rc != MOAT_OK)
				goto rollback;
			st->actions++;
		}
	}
	char cur[32];
	snprintf(cur, sizeof cur, "%" PRIu64, cursor);
	if ((rc = moat_store_meta_set(s, MOAT_DETECT_CURSOR_KEY, cur, err)) != MOAT_OK)
		goto rollback;
	if ((rc = moat_store_commit(s, err)) != MOAT_OK)
		goto rollback;
	st->cursor = cursor;
	r->n = 0;
	goto out2;
rollback:
	moat_store_rollback(s);
out2:
	free(pos_alert);
	free(pos_action);
out:
	free(es);
	free(details);
	free(alert_idx);
	free(action_idx);
	return rc;
}

/* ---- entries read ahead ------------------------------------------------------------ */

/* Entries read from the log and not yet fed: moat_detect_feed_batch judges a
 * few at a time so that their principals' cache misses overlap. The log lends
 * an entry's strings only until its next read, so each entry read ahead gets a
 * copy of its strings here. */
#define AHEAD_MAX 16
#define AHEAD_BYTES (16u * 1024u)

typedef struct ahead {
	moat_entry_t e[AHEAD_MAX];
	uint64_t index[AHEAD_MAX];
	size_t n, used;
	char buf[AHEAD_BYTES];
} ahead_t;

/* Adds entry e at index with copies of its strings; false if they do not fit
 * in what the buffer has left (feed what it holds first). */
static bool ahead_put(ahead_t *a, uint64_t index, const moat_entry_t *e)
{
	moat_entry_t c = *e;
	const char **str[] = {&c.principal, &c.order_id, &c.rule, &c.ip, &c.device, &c.ref,
			      &c.detail};
	size_t used = a->used;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(str); i++) {
		if (!*str[i])
			continue;
		size_t len = strlen(*str[i]) + 1;
		if (len > AHEAD_BYTES - used)
			return false;
		memcpy(a->buf + used, *str[i], len);
		*str[i] = a->buf + used;
		used += len;
	}
	a->e[a->n] = c;
	a->index[a->n++] = index;
	a->used = used;
	return true;
}

struct moat_detect_runner {
	moat_store_t *s;
	const moat_detect_rules_t *rules;
	moat_detect_lookup_fn lookup;
	void *lookup_ctx;
	moat_detect_log_t log;
	size_t batch;
	moat_detect_t *d; /* NULL until the first step (or after a failed one) */
	run_ctx_t r;
	known_t known;
	ahead_t *ahead;   /* allocated at the first step */
	uint64_t cursor;  /* persisted: entries below are judged and stored */
	uint64_t judged;  /* entries below are judged (>= cursor; see cursor_ms) */
	uint64_t cursor_ms;	/* 0: persist the cursor every step; else see below */
	uint64_t cursor_at_ns;	/* moat_mono_ns() of the last persist */
	/* Owned by a runner opened over a data directory (catchup.c). */
	moat_detect_rules_t *own_rules;
	void (*free_log)(void *ctx);
	moat_detect_quota_fn quota_fn;
	void *quota_ctx;
	int local_off_min;
	void (*free_quota)(void *ctx);
	bool has_inputs;
	uint8_t inputs[32]; /* moat_detect_runner_inputs */
	size_t budget;	    /* entries a step reads at most (0: no limit) */
	bool cut;	    /* the last step stopped at the budget */
	uint64_t fed;	    /* the index after the last entry fed to the engine */
};

moat_err_t moat_detect_runner_new(moat_store_t *s, const moat_detect_rules_t *rules,
				  moat_detect_lookup_fn lookup, void *lookup_ctx,
				  const moat_detect_log_t *log, size_t batch,
				  moat_detect_runner_t **out, moat_error_t *err)
{
	*out = calloc(1, sizeof **out);
	if (!*out)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	moat_detect_runner_t *x = *out;
	x->s = s;
	x->rules = rules;
	x->lookup = lookup;
	x->lookup_ctx = lookup_ctx;
	x->log = *log;
	x->batch = batch ? batch : 4096;
	x->local_off_min = 480; /* +08:00 until the policy says otherwise */
	return MOAT_OK;
}

/* Drops the engine: the next step rebuilds it from the stored cursor. */
static void runner_reset(moat_detect_runner_t *x)
{
	moat_detect_free(x->d);
	x->d = NULL;
	x->r.n = 0;
	x->r.oom = false;
	x->known.n = 0;
}

void moat_detect_runner_free(moat_detect_runner_t *x)
{
	if (!x)
		return;
	runner_reset(x);
	free(x->r.p);
	free(x->known.ids);
	free(x->known.index);
	free(x->ahead);
	if (x->free_log)
		x->free_log(x->log.ctx);
	moat_detect_rules_free(x->own_rules);
	if (x->free_quota)
		x->free_quota(x->quota_ctx);
	free(x);
}

void moat_detect_runner_inputs(moat_detect_runner_t *x, const uint8_t digest[32])
{
	memcpy(x->inputs, digest, sizeof x->inputs);
	x->has_inputs = true;
}

bool moat_detect_runner_same_inputs(const moat_detect_runner_t *a, const moat_detect_runner_t *b)
{
	return a && b && a->has_inputs && b->has_inputs &&
	       memcmp(a->inputs, b->inputs, sizeof a->inputs) == 0;
}

void moat_detect_runner_own(moat_detect_runner_t *x, moat_detect_rules_t *rules,
			    void (*free_log)(void *ctx))
{
	x->own_rules = rules;
	x->free_log = free_log;
}

void moat_detect_runner_quota(moat_detect_runner_t *x, moat_detect_quota_fn fn, void *ctx,
			      void (*free_ctx)(void *ctx))
{
	x->quota_fn = fn;
	x->quota_ctx = ctx;
	x->free_quota = free_ctx;
}

void moat_detect_runner_local_offset(moat_detect_runner_t *x, int minutes)
{
	x->local_off_min = minutes;
}

void moat_detect_runner_cursor_interval(moat_detect_runner_t *x, unsigned ms)
{
	x->cursor_ms = ms;
}

void moat_detect_runner_budget(moat_detect_runner_t *x, size_t entries)
{
	x->budget = entries;
}

/* Whether what was judged since the last flush must be committed now: always
 * with alerts pending; with none, only the cursor would change, at most every
 * cursor_ms. Skipping that commit is what a crash before it would leave, which
 * the next start repairs by judging those entries again: none of them raised an
 * alert (an alert is flushed at once, with the cursor past it). */
static bool flush_due(const moat_detect_runner_t *x)
{
	return x->r.n || !x->cursor_ms ||
	       moat_mono_ns() - x->cursor_at_ns >= x->cursor_ms * UINT64_C(1000000);
}

/* Stores the pending alerts and cursor (flush) and remembers it as stored. */
static moat_err_t commit(moat_detect_runner_t *x, uint64_t cursor, moat_detect_stats_t *st,
			 moat_error_t *err)
{
	moat_err_t rc = flush(x->s, &x->log, &x->r, &x->known, cursor, st, err);
	if (rc == MOAT_OK) {
		x->cursor = cursor;
		x->cursor_at_ns = moat_mono_ns();
	}
	return rc;
}

moat_err_t moat_detect_runner_sync(moat_detect_runner_t *x, moat_error_t *err)
{
	if (!x || !x->d || x->judged <= x->cursor)
		return MOAT_OK;
	moat_detect_stats_t st = {0};
	return commit(x, x->judged, &st, err);
}

/* First step: the stored cursor, leftovers of a crashed run, the engine rebuilt
 * by replaying the log from index 0 up to the cursor. */
static moat_err_t runner_start(moat_detect_runner_t *x, moat_error_t *err)
{
	uint64_t cursor = 0;
	char buf[64];
	moat_err_t rc = moat_store_meta_get(x->s, MOAT_DETECT_CURSOR_KEY, buf, sizeof buf, err);
	if (rc == MOAT_OK) {
		char *end;
		cursor = strtoull(buf, &end, 10);
		if (end == buf || *end)
			return moat_error_set(err, MOAT_ECORRUPT, MOAT_DETECT_CURSOR_KEY,
					      "stored detector cursor \"%s\" is not a number", buf);
	} else if (rc != MOAT_ENOTFOUND) {
		return rc;
	}
	moat_error_clear(err);
	x->cursor = x->judged = cursor;
	x->cursor_at_ns = moat_mono_ns();
	/* ALERT entries past the cursor were appended by a run that crashed before it
	 * could store them. */
	uint64_t index;
	moat_entry_t e;
	if ((rc = x->log.seek(x->log.ctx, cursor, err)) != MOAT_OK)
		return rc;
	while ((rc = x->log.next(x->log.ctx, &index, &e, err)) == MOAT_OK)
		if (e.kind == MOAT_ENTRY_ALERT && e.ref && !known_add(&x->known, e.ref, index))
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	if (rc != MOAT_ENOTFOUND)
		return rc;
	moat_error_clear(err);
	if ((rc = moat_detect_new(x->rules, x->lookup, x->lookup_ctx, on_alert, &x->r, &x->d, err)) !=
	    MOAT_OK)
		return rc;
	moat_detect_set_quiet(x->d, cursor);
	x->fed = 0;
	moat_detect_set_quota(x->d, x->quota_fn, x->quota_ctx);
	moat_detect_set_local_offset(x->d, x->local_off_min);
	return x->log.seek(x->log.ctx, 0, err);
}

moat_err_t moat_detect_runner_step(moat_detect_runner_t *x, moat_detect_stats_t *stats,
				   moat_error_t *err)
{
	moat_detect_stats_t st = {0};
	moat_err_t rc = MOAT_OK;
	/* After a step cut by its budget the log still holds what it read past:
	 * refresh it (integrate, sign) only once that is read. */
	if (x->log.refresh && !x->cut && (rc = x->log.refresh(x->log.ctx, err)) != MOAT_OK)
		goto out;
	if (!x->d && (rc = runner_start(x, err)) != MOAT_OK)
		goto fail;
	st.cursor = x->cursor;
	if (!x->ahead && !(x->ahead = malloc(sizeof *x->ahead))) {
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		goto fail;
	}
	ahead_t *a = x->ahead;
	uint64_t index, next_cursor = x->judged, since_flush = 0;
	moat_entry_t e;
	moat_err_t nrc = MOAT_OK; /* of the last read */
	while (nrc == MOAT_OK) {
		/* Read up to AHEAD_MAX entries, stopping at the entry that completes a
		 * store batch: its alerts must be flushed before the next is judged,
		 * as when entries were fed one by one. */
		a->n = a->used = 0;
		uint64_t to_flush = x->batch - since_flush;
		bool alone = false;
		while (a->n < AHEAD_MAX && to_flush) {
			nrc = x->log.next(x->log.ctx, &index, &e, err);
			if (nrc != MOAT_OK)
				break;
			if (index >= x->cursor)
				to_flush--;
			if (!ahead_put(a, index, &e)) {
				/* Its strings do not fit next to the others': feed those
				 * and then it alone, while its own strings are still lent. */
				alone = true;
				break;
			}
		}
		for (size_t k = 0; k <= (alone ? 1u : 0u); k++) {
			moat_err_t frc = MOAT_OK;
			size_t n_fed = k == 0 ? a->n : 1;
			if (k == 0 && a->n)
				frc = moat_detect_feed_batch(x->d, a->index, a->e, a->n, err);
			else if (k == 1)
				frc = moat_detect_feed(x->d, index, &e, err);
			if (frc != MOAT_OK) {
				rc = frc;
				if (x->r.oom)
					rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
				goto fail;
			}
			for (size_t j = 0; j < n_fed; j++) {
				uint64_t ix = k == 0 ? a->index[j] : index;
				st.entries++;
				x->fed = ix + 1;
				if (ix < x->cursor)
					continue;
				st.processed++;
				next_cursor = ix + 1;
				since_flush++;
			}
		}
		if (since_flush >= x->batch) {
			if (flush_due(x) && (rc = commit(x, next_cursor, &st, err)) != MOAT_OK)
				goto fail;
			x->judged = next_cursor;
			since_flush = 0;
		}
		if (nrc == MOAT_OK && x->budget && st.entries >= x->budget) {
			st.more = true; /* the rest next step, from where the log stands */
			break;
		}
	}
	if (!st.more && nrc != MOAT_ENOTFOUND) {
		rc = nrc;
		goto fail;
	}
	moat_error_clear(err);
	rc = MOAT_OK;
	if ((since_flush || x->r.n || x->judged > x->cursor) && flush_due(x) &&
	    (rc = commit(x, next_cursor, &st, err)) != MOAT_OK)
		goto fail;
	x->judged = next_cursor;
	/* Crash leftovers can only precede the end of the log as the first step
	 * found it (a step cut by its budget has not passed them all yet). */
	if (!st.more)
		x->known.n = 0;
	goto out;
fail:
	/* The engine may be ahead of what the store holds: rebuild it next time. */
	runner_reset(x);
out:
	x->cut = st.more;
	st.judged = x->judged;
	st.replay_left = x->d && x->fed < x->cursor ? x->cursor - x->fed : 0;
	if (stats)
		*stats = st;
	return rc;
}

moat_err_t moat_detect_run(moat_store_t *s, const moat_detect_rules_t *rules,
			   moat_detect_lookup_fn lookup, void *lookup_ctx, const moat_detect_log_t *log,
			   size_t batch, moat_detect_stats_t *stats, moat_error_t *err)
{
	moat_detect_runner_t *x = NULL;
	moat_err_t rc = moat_detect_runner_new(s, rules, lookup, lookup_ctx, log, batch, &x, err);
	if (rc == MOAT_OK)
		rc = moat_detect_runner_step(x, stats, err);
	else if (stats)
		memset(stats, 0, sizeof *stats);
	moat_detect_runner_free(x);
	return rc;
}

int moat_detect_store_lookup(void *ctx, const char *id, moat_detect_principal_t *out)
{
	moat_store_t *s = ctx;
	moat_principal_row_t row;
	moat_error_t err = {0};
	moat_err_t rc = moat_store_principal_get(s, id, &row, &err);
	if (rc == MOAT_ENOTFOUND)
		return 0;
	if (rc != MOAT_OK)
		return -1;
	memset(out, 0, sizeof *out);
	out->role = row.role;
	snprintf(out->party, sizeof out->party, "%s", row.party);
	out->shift_start = out->shift_end = -1;
	if (row.shift[0] && !moat_detect_shift_parse(row.shift, &out->shift_start, &out->shift_end))
		out->shift_start = out->shift_end = -1;
	return 1;
}

/* ---- JSON --------------------------------------------------------------------------- */

moat_err_t moat_detect_alert_row_json(const moat_alert_row_t *r, moat_buf_t *b)
{
	char t[32];
	moat_err_t rc = MOAT_OK;
#define PUT(x)                                 \
	do {                                   \
		if ((rc = (x)) != MOAT_OK)     \
			return rc;             \
	} while (0)
	PUT(moat_buf_puts(b, "{\"id\":"));
	PUT(moat_buf_json_str(b, r->id));
	PUT(moat_buf_puts(b, ",\"rule\":"));
	PUT(moat_buf_json_str(b, r->rule));
	PUT(moat_buf_puts(b, ",\"title\":"));
	PUT(moat_buf_json_str(b, r->title));
	PUT(moat_buf_printf(b, ",\"severity\":\"%s\",\"action\":\"%s\",\"principal\":",
			    moat_detect_severity_name(r->severity), moat_detect_action_name(r->action)));
	if (r->principal[0])
		PUT(moat_buf_json_str(b, r->principal));
	else
		PUT(moat_buf_puts(b, "null"));
	PUT(moat_buf_puts(b, ",\"group_by\":"));
	PUT(moat_buf_json_str(b, r->group_by));
	PUT(moat_buf_puts(b, ",\"key\":"));
	PUT(moat_buf_json_str(b, r->key));
	moat_time_format(r->time, t);
	PUT(moat_buf_printf(b, ",\"time\":\"%s\",\"trigger\":%" PRIu64 ",\"value\":%.6g,"
			       "\"threshold\":%.6g,\"count\":%" PRIu64 ",\"evidence\":[",
			    t, r->trigger, r->value, r->threshold, r->count));
	for (size_t i = 0; i < r->n_evidence; i++)
		PUT(moat_buf_printf(b, "%s%" PRIu64, i ? "," : "", r->evidence[i]));
	PUT(moat_buf_puts(b, "],\"ledger_index\":"));
	if (r->ledger_index >= 0)
		PUT(moat_buf_printf(b, "%" PRId64, r->ledger_index));
	else
		PUT(moat_buf_puts(b, "null"));
	PUT(moat_buf_printf(b, ",\"status\":\"%s\"",
			    r->status == MOAT_ALERT_RESOLVED ? "resolved" : "open"));
	if (r->status == MOAT_ALERT_RESOLVED) {
		moat_time_format(r->resolved_at, t);
		PUT(moat_buf_printf(b, ",\"resolved_at\":\"%s\",\"resolution\":", t));
		PUT(moat_buf_json_str(b, r->resolution));
	}
	PUT(moat_buf_putc(b, '}'));
#undef PUT
	return MOAT_OK;
}

typedef struct json_ctx {
	moat_buf_t *b;
	bool first;
	moat_err_t rc;
} json_ctx_t;

static int json_row(void *ctx, const moat_alert_row_t *row)
{
	json_ctx_t *j = ctx;
	if (!j->first && (j->rc = moat_buf_putc(j->b, ',')) != MOAT_OK)
		return 1;
	j->first = false;
	j->rc = moat_detect_alert_row_json(row, j->b);
	return j->rc != MOAT_OK;
}

moat_err_t moat_detect_alerts_json(moat_store_t *s, int status, size_t limit, moat_buf_t *out,
				   moat_error_t *err)
{
	json_ctx_t j = {.b = out, .first = true, .rc = MOAT_OK};
	moat_err_t rc = moat_buf_puts(out, "{\"alerts\":[");
	if (rc == MOAT_OK)
		rc = moat_store_alert_list(s, status, limit, json_row, &j, err);
	if (rc == MOAT_OK)
		rc = j.rc;
	if (rc == MOAT_OK)
		rc = moat_buf_puts(out, "]}");
	if (rc == MOAT_ELIMIT)
		moat_error_set(err, rc, NULL, "alert list exceeds the response size limit");
	return rc;
}
