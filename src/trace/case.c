/*
 * Tracing inside a data directory: the exposure index kept up with the ledger,
 * reports and cases in the store, and `moat trace CASE` — suspects, evidence with
 * inclusion proofs, the notification list and the regulator report.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moat/app.h"
#include "moat/detect.h"
#include "moat/ledger.h"
#include "moat/trace.h"

#define INDEX_FILE "trace/exposure.idx"
#define PERSONAL_FIELDS                                                                            \
	((1u << MOAT_FIELD_NAME) | (1u << MOAT_FIELD_PHONE) | (1u << MOAT_FIELD_ADDRESS) |         \
	 (1u << MOAT_FIELD_ID_NUMBER) | (1u << MOAT_FIELD_ITEMS))
#define MAX_CASE_REPORTS 100000

static moat_err_t data_path(moat_app_t *a, const char *name, char *out, size_t cap,
			    moat_error_t *err)
{
	if (moat_path_join(out, cap, a->data_dir, name) != MOAT_OK)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "data directory path is too long");
	return MOAT_OK;
}

static moat_err_t need_ledger(moat_app_t *a, moat_error_t *err)
{
	if (!a->ledger)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL, "tracing needs the ledger open");
	return MOAT_OK;
}

/* ---- index -------------------------------------------------------------------------- */

typedef struct fill_ctx {
	moat_exposure_t *x;
	moat_err_t rc;
	moat_error_t *err;
} fill_ctx_t;

static int fill_party(void *ctx, const moat_principal_row_t *row)
{
	fill_ctx_t *f = ctx;
	f->rc = moat_exposure_set_party(f->x, row->principal, row->party, f->err);
	return f->rc != MOAT_OK;
}

static int fill_honey(void *ctx, const moat_honey_row_t *h)
{
	fill_ctx_t *f = ctx;
	f->rc = moat_exposure_set_honey(f->x, h->order_id, f->err);
	return f->rc != MOAT_OK;
}

static int is_honey_number(void *ctx, const moat_honey_row_t *h)
{
	const char **num = ctx;
	if (*num && strcmp(h->phone, *num) == 0) {
		*num = NULL; /* found */
		return 1;
	}
	return 0;
}

/* Feeds ledger entries from the index's cursor on; CALL entries that reached a
 * binding or a honey number go to the call table. */
static moat_err_t catch_up(moat_app_t *a, moat_exposure_t *x, uint64_t *read, moat_error_t *err)
{
	moat_ledger_iter_t *it = NULL;
	moat_err_t rc = moat_ledger_sync(a->ledger, err);
	if (rc != MOAT_OK && rc != MOAT_EUNAVAIL)
		return rc;
	rc = moat_ledger_iter_new(a->ledger, moat_exposure_cursor(x), &it, err);
	if (rc != MOAT_OK)
		return rc;
	char *scratch = malloc(MOAT_ENTRY_MAX + 64);
	if (!scratch) {
		moat_ledger_iter_free(it);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	bool in_tx = false;
	uint64_t n = 0;
	for (;;) {
		uint64_t index;
		const uint8_t *data;
		size_t len;
		rc = moat_ledger_iter_next(it, &index, &data, &len, err);
		if (rc == MOAT_ENOTFOUND) {
			rc = MOAT_OK;
			break;
		}
		if (rc != MOAT_OK)
			break;
		moat_entry_t e;
		rc = moat_entry_decode(data, len, &e, scratch, MOAT_ENTRY_MAX + 64, err);
		if (rc == MOAT_OK)
			rc = moat_exposure_add(x, index, &e, err);
		if (rc == MOAT_OK && e.kind == MOAT_ENTRY_CALL && e.ref) {
			moat_call_row_t c = {0};
			c.ledger_index = index;
			c.time = e.time;
			snprintf(c.principal, sizeof c.principal, "%s",
				 e.principal ? e.principal : "");
			snprintf(c.order_id, sizeof c.order_id, "%s", e.order_id ? e.order_id : "");
			snprintf(c.number, sizeof c.number, "%s", e.ref);
			if (e.detail && strncmp(e.detail, "from ", 5) == 0)
				snprintf(c.caller, sizeof c.caller, "%s", e.detail + 5);
			const char *probe = c.number;
			if (!c.principal[0])
				rc = moat_store_trace_honey_list(a->store, is_honey_number, &probe,
								 err);
			if (rc == MOAT_OK && (c.principal[0] || probe == NULL)) {
				if (!in_tx && (rc = moat_store_begin(a->store, err)) == MOAT_OK)
					in_tx = true;
				if (rc == MOAT_OK)
					rc = moat_store_trace_call_put(a->store, &c, err);
			}
		}
		if (rc != MOAT_OK)
			break;
		n++;
	}
	free(scratch);
	moat_ledger_iter_free(it);
	if (in_tx) {
		if (rc == MOAT_OK)
			rc = moat_store_commit(a->store, err);
		else
			moat_store_rollback(a->store);
	}
	if (read)
		*read = n;
	return rc;
}

static moat_err_t learn_store(moat_app_t *a, moat_exposure_t *x, moat_error_t *err)
{
	fill_ctx_t f = {x, MOAT_OK, err};
	moat_err_t rc = moat_store_principal_list(a->store, fill_party, &f, err);
	if (rc == MOAT_OK)
		rc = f.rc;
	if (rc == MOAT_OK)
		rc = moat_store_trace_honey_list(a->store, fill_honey, &f, err);
	if (rc == MOAT_OK)
		rc = f.rc;
	return rc;
}

static moat_err_t save_index(moat_app_t *a, moat_exposure_t *x, moat_error_t *err)
{
	char dir[1200], path[1200];
	moat_err_t rc = data_path(a, "trace", dir, sizeof dir, err);
	if (rc == MOAT_OK)
		rc = moat_mkdirs(dir, 0700, err);
	if (rc == MOAT_OK)
		rc = data_path(a, INDEX_FILE, path, sizeof path, err);
	if (rc == MOAT_OK)
		rc = moat_exposure_save(x, path, err);
	return rc;
}

moat_err_t moat_trace_index_open(moat_app_t *a, moat_exposure_t **out, moat_error_t *err)
{
	*out = NULL;
	moat_err_t rc = need_ledger(a, err);
	if (rc != MOAT_OK)
		return rc;
	char path[1200];
	if ((rc = data_path(a, INDEX_FILE, path, sizeof path, err)) != MOAT_OK)
		return rc;
	moat_exposure_t *x = NULL;
	rc = moat_exposure_load(path, &x, err);
	if (rc == MOAT_ENOTFOUND) {
		x = moat_exposure_new();
		rc = x ? MOAT_OK : moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	if (rc != MOAT_OK)
		return rc;
	uint64_t before = moat_exposure_cursor(x), n = 0;
	rc = learn_store(a, x, err);
	if (rc == MOAT_OK)
		rc = catch_up(a, x, &n, err);
	if (rc == MOAT_OK && (n || before == 0))
		rc = save_index(a, x, err);
	if (rc != MOAT_OK) {
		moat_exposure_free(x);
		return rc;
	}
	*out = x;
	return MOAT_OK;
}

moat_err_t moat_trace_reindex(moat_app_t *a, uint64_t *entries, moat_error_t *err)
{
	moat_err_t rc = need_ledger(a, err);
	if (rc != MOAT_OK)
		return rc;
	moat_exposure_t *x = moat_exposure_new();
	if (!x)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	rc = moat_store_trace_calls_clear(a->store, err);
	if (rc == MOAT_OK)
		rc = learn_store(a, x, err);
	if (rc == MOAT_OK)
		rc = catch_up(a, x, entries, err);
	if (rc == MOAT_OK)
		rc = save_index(a, x, err);
	moat_exposure_free(x);
	return rc;
}

/* ---- reports ------------------------------------------------------------------------ */

static void quoted_text(unsigned q, char *out, size_t cap)
{
	size_t n = 0;
	out[0] = 0;
	for (int f = 0; f < MOAT_FIELD_COUNT; f++)
		if (q & (1u << f))
			n += (size_t)snprintf(out + n, cap > n ? cap - n : 0, "%s%s", n ? "," : "",
					      moat_field_name((moat_field_t)f));
}

typedef struct pending {
	moat_report_row_t row;
	char detail[128];
} pending_t;

/* Validates one parsed report against the store and fills p. */
static moat_err_t check_report(moat_app_t *a, json_t *obj, pending_t *p, moat_error_t *err)
{
	moat_report_t r;
	moat_err_t rc = moat_report_from_json(obj, &r, err);
	if (rc != MOAT_OK)
		return rc;
	char merchant[MOAT_ID_MAX + 1];
	rc = moat_store_order_merchant(a->store, r.order_id, merchant, sizeof merchant, err);
	if (rc == MOAT_ENOTFOUND)
		return moat_error_set(err, MOAT_ENOTFOUND, "order_id",
				      "no order %s (import the order first)", r.order_id);
	if (rc != MOAT_OK)
		return rc;
	moat_report_row_t old;
	moat_error_t ignore;
	if (moat_store_trace_report_get(a->store, r.report_id, &old, &ignore) == MOAT_OK)
		return moat_error_set(err, MOAT_EEXIST, "report_id",
				      "report %s was already imported", r.report_id);
	memset(p, 0, sizeof *p);
	snprintf(p->row.report_id, sizeof p->row.report_id, "%s", r.report_id);
	snprintf(p->row.order_id, sizeof p->row.order_id, "%s", r.order_id);
	p->row.contact_time = r.contact_time;
	snprintf(p->row.channel, sizeof p->row.channel, "%s", r.channel);
	p->row.quoted = r.quoted;
	snprintf(p->row.scammer_contact, sizeof p->row.scammer_contact, "%s", r.scammer_contact);
	p->row.loss_cents = r.loss_cents;
	p->row.created_at = moat_now();
	char q[96];
	quoted_text(r.quoted, q, sizeof q);
	snprintf(p->detail, sizeof p->detail, "channel=%s quoted=%s", r.channel, q);
	return MOAT_OK;
}

typedef struct honey_hit {
	const char *order_id;
	char principal[MOAT_ID_MAX + 1];
} honey_hit_t;

static int find_honey_order(void *ctx, const moat_honey_row_t *h)
{
	honey_hit_t *hh = ctx;
	if (strcmp(h->order_id, hh->order_id) == 0) {
		snprintf(hh->principal, sizeof hh->principal, "%s", h->principal);
		return 1;
	}
	return 0;
}

/* Appends the REPORT entries and stores rows, in one store transaction. */
static moat_err_t commit_reports(moat_app_t *a, pending_t *ps, size_t n, uint64_t *first,
				 moat_error_t *err)
{
	moat_entry_t *es = calloc(n ? n : 1, sizeof *es);
	if (!es)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		es[i].kind = MOAT_ENTRY_REPORT;
		es[i].time = ps[i].row.contact_time;
		es[i].order_id = ps[i].row.order_id;
		es[i].ref = ps[i].row.report_id;
		es[i].detail = ps[i].detail;
		es[i].rows = (uint64_t)(ps[i].row.loss_cents > 0 ? ps[i].row.loss_cents : 0);
	}
	/* The ledger first: a report is on the record before anything refers to it. */
	uint64_t idx = 0;
	moat_err_t rc = MOAT_OK;
	for (size_t off = 0; off < n && rc == MOAT_OK; off += MOAT_LEDGER_BATCH_MAX) {
		size_t m = n - off < MOAT_LEDGER_BATCH_MAX ? n - off : MOAT_LEDGER_BATCH_MAX;
		uint64_t f = 0;
		rc = moat_ledger_append(a->ledger, es + off, m, &f, err);
		if (off == 0)
			idx = f;
		for (size_t i = 0; rc == MOAT_OK && i < m; i++)
			ps[off + i].row.ledger_index = f + i;
	}
	free(es);
	if (rc != MOAT_OK)
		return rc;
	if (first)
		*first = idx;
	rc = moat_store_begin(a->store, err);
	for (size_t i = 0; rc == MOAT_OK && i < n; i++) {
		rc = moat_store_trace_report_put(a->store, &ps[i].row, err);
		/* A report on a honey order opens a case naming its recipient. */
		honey_hit_t hh = {ps[i].row.order_id, ""};
		if (rc == MOAT_OK)
			rc = moat_store_trace_honey_list(a->store, find_honey_order, &hh, err);
		if (rc == MOAT_OK && hh.principal[0]) {
			moat_case_row_t c = {0};
			snprintf(c.case_id, sizeof c.case_id, "honey-%.50s", ps[i].row.order_id);
			snprintf(c.title, sizeof c.title,
				 "honey order %.64s (planted for %.64s) was contacted",
				 ps[i].row.order_id, hh.principal);
			c.from = c.until = MOAT_TIME_NONE;
			c.explicit_members = true;
			c.created_at = moat_now();
			rc = moat_store_trace_case_put(a->store, &c, err);
			if (rc == MOAT_OK)
				rc = moat_store_trace_case_add(a->store, c.case_id,
							       ps[i].row.report_id, err);
			moat_log(MOAT_LOG_WARN, "trace.honey_hit", "report %s on honey order of %s",
				 ps[i].row.report_id, hh.principal);
		}
	}
	if (rc == MOAT_OK)
		rc = moat_store_commit(a->store, err);
	else
		moat_store_rollback(a->store);
	return rc;
}

moat_err_t moat_trace_import_reports(moat_app_t *a, const char *path, size_t *count,
				     moat_error_t *err)
{
	*count = 0;
	moat_err_t rc = need_ledger(a, err);
	if (rc != MOAT_OK)
		return rc;
	moat_jsonl_t *r = NULL;
	if ((rc = moat_jsonl_open(path, &r, err)) != MOAT_OK)
		return rc;
	pending_t *ps = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		json_t *obj = NULL;
		rc = moat_jsonl_next(r, &obj, err);
		if (rc == MOAT_ENOTFOUND) {
			rc = MOAT_OK;
			break;
		}
		if (rc != MOAT_OK)
			break;
		if (n == MAX_CASE_REPORTS) {
			json_decref(obj);
			rc = moat_error_set(err, MOAT_ELIMIT, NULL, "at most %d reports per file",
					    MAX_CASE_REPORTS);
			break;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			pending_t *np = realloc(ps, nc * sizeof *np);
			if (!np) {
				json_decref(obj);
				rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
				break;
			}
			ps = np;
			cap = nc;
		}
		rc = check_report(a, obj, &ps[n], err);
		json_decref(obj);
		/* Duplicates inside the file. */
		for (size_t i = 0; rc == MOAT_OK && i < n; i++)
			if (strcmp(ps[i].row.report_id, ps[n].row.report_id) == 0)
				rc = moat_error_set(err, MOAT_EEXIST, "report_id",
						    "report %s appears twice in the file",
						    ps[n].row.report_id);
		if (rc != MOAT_OK)
			break;
		n++;
	}
	if (rc != MOAT_OK && err && err->line == 0)
		err->line = moat_jsonl_line(r);
	moat_jsonl_close(r);
	if (rc == MOAT_OK && n)
		rc = commit_reports(a, ps, n, NULL, err);
	free(ps);
	if (rc != MOAT_OK)
		return rc;
	*count = n;
	/* Bring the index up to date before returning, as the issue asks. */
	moat_exposure_t *x = NULL;
	rc = moat_trace_index_open(a, &x, err);
	moat_exposure_free(x);
	moat_log(MOAT_LOG_INFO, "trace.import_reports", "imported %zu reports", n);
	return rc;
}

moat_err_t moat_trace_report_add(moat_app_t *a, json_t *obj, uint64_t *ledger_index,
				 moat_error_t *err)
{
	size_t n = 0;
	return moat_trace_reports_add(a, &obj, 1, &n, ledger_index, err);
}

moat_err_t moat_trace_reports_add(moat_app_t *a, json_t *const *objs, size_t n, size_t *count,
				  uint64_t *first_index, moat_error_t *err)
{
	*count = 0;
	moat_err_t rc = need_ledger(a, err);
	if (rc != MOAT_OK)
		return rc;
	if (n == 0)
		return moat_error_set(err, MOAT_EINVAL, NULL, "no reports");
	if (n > MAX_CASE_REPORTS)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "at most %d reports at once",
				      MAX_CASE_REPORTS);
	pending_t *ps = calloc(n, sizeof *ps);
	if (!ps)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	for (size_t i = 0; i < n && rc == MOAT_OK; i++) {
		rc = json_is_object(objs[i])
			 ? check_report(a, objs[i], &ps[i], err)
			 : moat_error_set(err, MOAT_EINVAL, NULL, "a report must be a JSON object");
		for (size_t j = 0; rc == MOAT_OK && j < i; j++)
			if (strcmp(ps[j].row.report_id, ps[i].row.report_id) == 0)
				rc = moat_error_set(err, MOAT_EEXIST, "report_id",
						    "report %s appears twice in the batch",
						    ps[i].row.report_id);
		if (rc != MOAT_OK && err)
			err->line = (long)i + 1;
	}
	if (rc == MOAT_OK)
		rc = commit_reports(a, ps, n, first_index, err);
	free(ps);
	if (rc != MOAT_OK)
		return rc;
	*count = n;
	moat_exposure_t *x = NULL;
	rc = moat_trace_index_open(a, &x, err);
	moat_exposure_free(x);
	moat_log(MOAT_LOG_INFO, "trace.reports_add", "added %zu reports", n);
	return rc;
}

/* ---- cases -------------------------------------------------------------------------- */

static int latest_contact(void *ctx, const moat_report_row_t *r)
{
	moat_time_t *t = ctx;
	if (*t == MOAT_TIME_NONE || r->contact_time > *t)
		*t = r->contact_time;
	return 0;
}

/* The default case's window: case_window_days back from the latest contact. */
static moat_err_t default_window(moat_app_t *a, moat_time_t *from, moat_time_t *until,
				 moat_error_t *err)
{
	moat_time_t last = MOAT_TIME_NONE;
	moat_err_t rc = moat_store_trace_report_list(a->store, MOAT_TIME_NONE, MOAT_TIME_NONE,
						     latest_contact, &last, err);
	if (rc != MOAT_OK)
		return rc;
	int days = a->config.case_window_days > 0 ? a->config.case_window_days : 30;
	*until = last;
	*from = last == MOAT_TIME_NONE ? MOAT_TIME_NONE : last - (moat_time_t)days * 86400000;
	return MOAT_OK;
}

moat_err_t moat_trace_case_reports(moat_app_t *a, const char *case_id,
				   int (*fn)(void *ctx, const moat_report_row_t *r), void *ctx,
				   moat_error_t *err)
{
	if (strcmp(case_id, MOAT_CASE_DEFAULT) == 0) {
		moat_time_t from, until;
		moat_err_t rc = default_window(a, &from, &until, err);
		if (rc != MOAT_OK || until == MOAT_TIME_NONE)
			return rc;
		return moat_store_trace_report_list(a->store, from, until, fn, ctx, err);
	}
	moat_case_row_t c;
	moat_err_t rc = moat_store_trace_case_get(a->store, case_id, &c, err);
	if (rc != MOAT_OK)
		return rc;
	if (c.explicit_members)
		return moat_store_trace_case_reports(a->store, case_id, fn, ctx, err);
	return moat_store_trace_report_list(a->store, c.from, c.until, fn, ctx, err);
}

typedef struct count_ctx {
	size_t n;
} count_ctx_t;

static int count_case(void *ctx, const moat_case_row_t *c)
{
	(void)c;
	((count_ctx_t *)ctx)->n++;
	return 0;
}

moat_err_t moat_trace_case_create(moat_app_t *a, const char *title, moat_time_t from,
				  moat_time_t until, const char *const *report_ids,
				  size_t n_reports, char out_id[MOAT_ID_MAX + 1], moat_error_t *err)
{
	count_ctx_t cc = {0};
	moat_err_t rc = moat_store_trace_case_list(a->store, count_case, &cc, err);
	if (rc != MOAT_OK)
		return rc;
	moat_case_row_t c = {0};
	for (size_t k = cc.n + 1;; k++) {
		snprintf(c.case_id, sizeof c.case_id, "C%zu", k);
		moat_case_row_t old;
		moat_error_t ignore;
		if (moat_store_trace_case_get(a->store, c.case_id, &old, &ignore) == MOAT_ENOTFOUND)
			break;
	}
	snprintf(c.title, sizeof c.title, "%s", title && *title ? title : "case");
	c.from = from;
	c.until = until;
	c.explicit_members = n_reports > 0;
	c.created_at = moat_now();
	rc = moat_store_begin(a->store, err);
	if (rc == MOAT_OK)
		rc = moat_store_trace_case_put(a->store, &c, err);
	for (size_t i = 0; rc == MOAT_OK && i < n_reports; i++) {
		moat_report_row_t r;
		rc = moat_store_trace_report_get(a->store, report_ids[i], &r, err);
		if (rc == MOAT_OK)
			rc = moat_store_trace_case_add(a->store, c.case_id, report_ids[i], err);
	}
	if (rc == MOAT_OK)
		rc = moat_store_commit(a->store, err);
	else
		moat_store_rollback(a->store);
	if (rc == MOAT_OK)
		snprintf(out_id, MOAT_ID_MAX + 1, "%s", c.case_id);
	return rc;
}

typedef struct list_ctx {
	moat_app_t *a;
	moat_buf_t *out;
	moat_err_t rc;
	moat_error_t *err;
	bool first;
} list_ctx_t;

typedef struct collect {
	moat_report_row_t *r;
	size_t n, cap;
	bool oom;
} collect_t;

static int collect_report(void *ctx, const moat_report_row_t *r)
{
	collect_t *c = ctx;
	if (c->n == MAX_CASE_REPORTS)
		return 1;
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 64;
		moat_report_row_t *nr = realloc(c->r, nc * sizeof *nr);
		if (!nr) {
			c->oom = true;
			return 1;
		}
		c->r = nr;
		c->cap = nc;
	}
	c->r[c->n++] = *r;
	return 0;
}

static moat_err_t collect_case(moat_app_t *a, const char *case_id, collect_t *c, moat_error_t *err)
{
	memset(c, 0, sizeof *c);
	moat_err_t rc = moat_trace_case_reports(a, case_id, collect_report, c, err);
	if (rc == MOAT_OK && c->oom)
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	return rc;
}

static moat_err_t put_time(moat_buf_t *b, const char *key, moat_time_t t)
{
	if (t == MOAT_TIME_NONE)
		return moat_buf_printf(b, ",\"%s\":null", key);
	char s[32];
	moat_time_format(t, s);
	return moat_buf_printf(b, ",\"%s\":\"%s\"", key, s);
}

static moat_err_t list_one(list_ctx_t *l, const char *id, const char *title, moat_time_t from,
			   moat_time_t until)
{
	collect_t c;
	moat_err_t rc = collect_case(l->a, id, &c, l->err);
	if (rc != MOAT_OK)
		return rc;
	rc = moat_buf_puts(l->out, l->first ? "{\"case\":" : ",{\"case\":");
	l->first = false;
	if (rc == MOAT_OK)
		rc = moat_buf_json_str(l->out, id);
	if (rc == MOAT_OK)
		rc = moat_buf_puts(l->out, ",\"title\":");
	if (rc == MOAT_OK)
		rc = moat_buf_json_str(l->out, title);
	if (rc == MOAT_OK)
		rc = moat_buf_printf(l->out, ",\"reports\":%zu", c.n);
	if (rc == MOAT_OK)
		rc = put_time(l->out, "from", from);
	if (rc == MOAT_OK)
		rc = put_time(l->out, "until", until);
	if (rc == MOAT_OK)
		rc = moat_buf_putc(l->out, '}');
	free(c.r);
	return rc;
}

static int list_case(void *ctx, const moat_case_row_t *c)
{
	list_ctx_t *l = ctx;
	l->rc = list_one(l, c->case_id, c->title, c->from, c->until);
	return l->rc != MOAT_OK;
}

moat_err_t moat_trace_case_list_json(moat_app_t *a, moat_buf_t *out, moat_error_t *err)
{
	list_ctx_t l = {a, out, MOAT_OK, err, true};
	moat_time_t from, until;
	moat_err_t rc = default_window(a, &from, &until, err);
	if (rc == MOAT_OK)
		rc = moat_buf_putc(out, '[');
	if (rc == MOAT_OK)
		rc = list_one(&l, MOAT_CASE_DEFAULT, "all open reports of the window", from, until);
	if (rc == MOAT_OK)
		rc = moat_store_trace_case_list(a->store, list_case, &l, err);
	if (rc == MOAT_OK)
		rc = l.rc;
	if (rc == MOAT_OK)
		rc = moat_buf_putc(out, ']');
	return rc;
}

/* ---- tracing a case ------------------------------------------------------------------ */

typedef struct direct {
	char principal[MOAT_ID_MAX + 1];
	char how[512];
	uint64_t ledger_index; /* the call or report that names them */
} direct_t;

typedef struct trace_ctx {
	moat_app_t *a;
	moat_exposure_t *x;
	collect_t reports;
	direct_t direct[64];
	size_t n_direct;
	char (*contacts)[MOAT_CONTACT_NORM_MAX]; /* normalised scammer contacts */
} trace_ctx_t;

static void add_direct(trace_ctx_t *t, const char *principal, uint64_t index, const char *how)
{
	for (size_t i = 0; i < t->n_direct; i++)
		if (strcmp(t->direct[i].principal, principal) == 0)
			return;
	if (t->n_direct == MOAT_ARRAY_LEN(t->direct))
		return;
	direct_t *d = &t->direct[t->n_direct++];
	snprintf(d->principal, sizeof d->principal, "%s", principal);
	snprintf(d->how, sizeof d->how, "%s", how);
	d->ledger_index = index;
}

/* A call that reached a binding or honey number: does it belong to this case? */
static int scan_call(void *ctx, const moat_call_row_t *c)
{
	trace_ctx_t *t = ctx;
	for (size_t i = 0; i < t->reports.n; i++) {
		const moat_report_row_t *r = &t->reports.r[i];
		bool same_order = c->order_id[0] && strcmp(c->order_id, r->order_id) == 0;
		bool same_caller = c->caller[0] && strcmp(c->caller, t->contacts[i]) == 0;
		if (!same_order && !same_caller)
			continue;
		char how[512];
		if (c->principal[0]) {
			snprintf(
			    how, sizeof how,
			    "virtual_number: the scam call of report %s came through %s, bound to "
			    "this principal for order %s (ledger entry %" PRIu64 ")",
			    r->report_id, c->number, c->order_id, c->ledger_index);
			add_direct(t, c->principal, c->ledger_index, how);
		}
		return 0;
	}
	return 0;
}

static int scan_honey(void *ctx, const moat_honey_row_t *h)
{
	trace_ctx_t *t = ctx;
	for (size_t i = 0; i < t->reports.n; i++)
		if (strcmp(t->reports.r[i].order_id, h->order_id) == 0) {
			char how[512];
			snprintf(
			    how, sizeof how,
			    "honey: report %s concerns honey order %s, planted for and visible "
			    "only to this principal",
			    t->reports.r[i].report_id, h->order_id);
			add_direct(t, h->principal, t->reports.r[i].ledger_index, how);
		}
	return 0;
}

typedef struct honey_call_ctx {
	trace_ctx_t *t;
	const moat_call_row_t *c;
} honey_call_ctx_t;

static int honey_for_call(void *ctx, const moat_honey_row_t *h)
{
	honey_call_ctx_t *hc = ctx;
	if (strcmp(h->phone, hc->c->number) != 0)
		return 0;
	char how[512];
	snprintf(how, sizeof how,
		 "honey: a call from %s reached the monitored number of honey order %s, planted "
		 "for this principal (ledger entry %" PRIu64 ")",
		 hc->c->caller, h->order_id, hc->c->ledger_index);
	add_direct(hc->t, h->principal, hc->c->ledger_index, how);
	return 1;
}

typedef struct honey_case_ctx {
	trace_ctx_t *t;
	const char *order_id; /* honey order of a honey case */
	moat_app_t *a;
	moat_err_t rc;
	moat_error_t *err;
} honey_case_ctx_t;

static int scan_honey_calls(void *ctx, const moat_call_row_t *c)
{
	honey_case_ctx_t *hc = ctx;
	if (c->principal[0])
		return 0;
	bool ours = false;
	for (size_t i = 0; i < hc->t->reports.n; i++)
		if (c->caller[0] && strcmp(c->caller, hc->t->contacts[i]) == 0)
			ours = true;
	if (!ours && !hc->order_id)
		return 0;
	honey_call_ctx_t hcc = {hc->t, c};
	hc->rc = moat_store_trace_honey_list(hc->a->store, honey_for_call, &hcc, hc->err);
	return hc->rc != MOAT_OK;
}

/* Evidence: ledger entries by which `who` received covered victims' fields. */
typedef struct evidence {
	uint64_t *idx;
	size_t n, cap;
} evidence_t;

static bool ev_add(evidence_t *e, uint64_t i)
{
	for (size_t k = 0; k < e->n; k++)
		if (e->idx[k] == i)
			return true;
	if (e->n == e->cap) {
		size_t nc = e->cap ? e->cap * 2 : 64;
		uint64_t *ni = realloc(e->idx, nc * sizeof *ni);
		if (!ni)
			return false;
		e->idx = ni;
		e->cap = nc;
	}
	e->idx[e->n++] = i;
	return true;
}

typedef struct want {
	const char *principal; /* NULL: any member of party */
	const char *party;
	const moat_report_row_t *r;
	size_t left; /* evidence still wanted */
} want_t;

/* One pass over the ledger collecting the access entries that back each
 * confirmed suspect's covered victims. */
static moat_err_t find_evidence(moat_app_t *a, moat_exposure_t *x, want_t *w, size_t nw,
				evidence_t *ev, moat_error_t *err)
{
	if (!nw)
		return MOAT_OK;
	moat_ledger_iter_t *it = NULL;
	moat_err_t rc = moat_ledger_iter_new(a->ledger, 0, &it, err);
	if (rc != MOAT_OK)
		return rc;
	char *scratch = malloc(MOAT_ENTRY_MAX + 64);
	if (!scratch) {
		moat_ledger_iter_free(it);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	for (;;) {
		uint64_t index;
		const uint8_t *data;
		size_t len;
		rc = moat_ledger_iter_next(it, &index, &data, &len, err);
		if (rc == MOAT_ENOTFOUND) {
			rc = MOAT_OK;
			break;
		}
		if (rc != MOAT_OK)
			break;
		moat_entry_t e;
		if ((rc = moat_entry_decode(data, len, &e, scratch, MOAT_ENTRY_MAX + 64, err)) !=
		    MOAT_OK)
			break;
		if ((e.kind != MOAT_ENTRY_ACCESS && e.kind != MOAT_ENTRY_EXPORT) || !e.order_id ||
		    !e.principal)
			continue;
		for (size_t i = 0; i < nw; i++) {
			if (!w[i].left || e.time > w[i].r->contact_time ||
			    strcmp(e.order_id, w[i].r->order_id) != 0)
				continue;
			if (w[i].principal && strcmp(e.principal, w[i].principal) != 0)
				continue;
			if (!w[i].principal) {
				unsigned f;
				moat_error_t ig;
				(void)f;
				(void)ig;
				/* party: the entry's principal must belong to it */
				bool member = false;
				int64_t p = -1;
				(void)p;
				char party[MOAT_ID_MAX + 1] = "";
				moat_principal_row_t pr;
				if (moat_store_principal_get(a->store, e.principal, &pr, &ig) ==
				    MOAT_OK)
					snprintf(party, sizeof party, "%s", pr.party);
				member = strcmp(party, w[i].party) == 0;
				if (!member)
					continue;
			}
			bool revealed = false;
			for (int f = 0; f < MOAT_FIELD_COUNT; f++)
				if ((w[i].r->quoted & (1u << f)) && e.views[f] == MOAT_VIEW_FULL)
					revealed = true;
			if (!revealed)
				continue;
			if (!ev_add(ev, index)) {
				rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
				break;
			}
			w[i].left--;
		}
		if (rc != MOAT_OK)
			break;
	}
	(void)x;
	free(scratch);
	moat_ledger_iter_free(it);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Writes the evidence bundle: entries, proofs, checkpoint, vkey, VERIFY. */
static moat_err_t write_bundle(moat_app_t *a, const char *dir, evidence_t *ev, moat_buf_t *out,
			       moat_error_t *err)
{
	moat_buf_t cp, tmp;
	moat_buf_init(&cp, MOAT_LEDGER_NOTE_MAX);
	moat_buf_init(&tmp, 1 << 20);
	char path[1400], edir[1300];
	uint8_t(*proof)[MOAT_HASH_LEN] = malloc(MOAT_LEDGER_PROOF_MAX * MOAT_HASH_LEN);
	moat_err_t rc = proof ? moat_ledger_sync(a->ledger, err) : MOAT_ENOMEM;
	if (rc == MOAT_ENOMEM)
		moat_error_set(err, rc, NULL, "out of memory");
	if (rc == MOAT_OK)
		rc = moat_ledger_checkpoint(a->ledger, &cp, err);
	uint64_t size = moat_ledger_checkpoint_size(a->ledger);
	if (dir) {
		if (rc == MOAT_OK && moat_path_join(edir, sizeof edir, dir, "evidence") != MOAT_OK)
			rc = moat_error_set(err, MOAT_ELIMIT, NULL, "output path too long");
		if (rc == MOAT_OK)
			rc = moat_mkdirs(edir, 0700, err);
		if (rc == MOAT_OK &&
		    moat_path_join(path, sizeof path, dir, "checkpoint") == MOAT_OK)
			rc = moat_file_write_atomic(path, cp.data, cp.len, 0644, err);
		const char *vk = moat_ledger_verifier_key(a->ledger);
		if (rc == MOAT_OK && moat_path_join(path, sizeof path, dir, "vkey") == MOAT_OK)
			rc = moat_file_write_atomic(path, vk, strlen(vk), 0644, err);
	}
	if (rc == MOAT_OK)
		rc = moat_buf_printf(
		    out, ",\"evidence\":{\"checkpoint_size\":%" PRIu64 ",\"verifier_key\":", size);
	if (rc == MOAT_OK)
		rc = moat_buf_json_str(out, moat_ledger_verifier_key(a->ledger));
	if (rc == MOAT_OK)
		rc = moat_buf_puts(out, ",\"checkpoint\":");
	if (rc == MOAT_OK)
		rc = moat_buf_json_str(out, cp.data);
	if (rc == MOAT_OK)
		rc = moat_buf_puts(out, ",\"entries\":[");
	moat_buf_t verify;
	moat_buf_init(&verify, 1 << 22);
	if (ev->n) /* ev->idx is NULL when no suspect was confirmed */
		qsort(ev->idx, ev->n, sizeof *ev->idx, cmp_u64);
	for (size_t i = 0; rc == MOAT_OK && i < ev->n; i++) {
		uint64_t index = ev->idx[i];
		if (index >= size)
			continue;
		uint8_t leaf[MOAT_HASH_LEN];
		size_t n = 0;
		moat_buf_reset(&tmp);
		rc = moat_ledger_read(a->ledger, index, &tmp, err);
		if (rc == MOAT_OK)
			rc = moat_ledger_prove_inclusion(a->ledger, index, size, leaf, proof, &n,
							 err);
		char b64[64];
		moat_b64_encode(leaf, MOAT_HASH_LEN, b64);
		moat_buf_t pj;
		moat_buf_init(&pj, 1 << 16);
		if (rc == MOAT_OK)
			rc = moat_buf_printf(&pj,
					     "{\"type\":\"inclusion\",\"index\":%" PRIu64
					     ",\"size\":%" PRIu64
					     ",\"leaf_hash\":\"%s\",\"proof\":[",
					     index, size, b64);
		for (size_t k = 0; rc == MOAT_OK && k < n; k++) {
			moat_b64_encode(proof[k], MOAT_HASH_LEN, b64);
			rc = moat_buf_printf(&pj, "%s\"%s\"", k ? "," : "", b64);
		}
		if (rc == MOAT_OK)
			rc = moat_buf_puts(&pj, "]}");
		/* the entry itself, decoded, for the reader */
		char *scratch = malloc(MOAT_ENTRY_MAX + 64);
		moat_entry_t e;
		moat_buf_t ej;
		moat_buf_init(&ej, 1 << 16);
		if (rc == MOAT_OK && !scratch)
			rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		if (rc == MOAT_OK)
			rc = moat_entry_decode((const uint8_t *)tmp.data, tmp.len, &e, scratch,
					       MOAT_ENTRY_MAX + 64, err);
		if (rc == MOAT_OK)
			rc = moat_entry_to_json(&e, &ej);
		if (rc == MOAT_OK)
			rc = moat_buf_printf(out,
					     "%s{\"index\":%" PRIu64 ",\"entry\":%s,\"proof\":%s}",
					     i ? "," : "", index, ej.data, pj.data);
		if (rc == MOAT_OK && dir) {
			char name[64];
			snprintf(name, sizeof name, "%" PRIu64 ".entry", index);
			if (moat_path_join(path, sizeof path, edir, name) == MOAT_OK)
				rc = moat_file_write_atomic(path, tmp.data, tmp.len, 0644, err);
			snprintf(name, sizeof name, "%" PRIu64 ".proof.json", index);
			if (rc == MOAT_OK &&
			    moat_path_join(path, sizeof path, edir, name) == MOAT_OK)
				rc = moat_file_write_atomic(path, pj.data, pj.len, 0644, err);
			if (rc == MOAT_OK)
				rc = moat_buf_printf(
				    &verify,
				    "moat ledger verify-proof --vkey-file vkey "
				    "--checkpoint checkpoint --entry evidence/%" PRIu64
				    ".entry evidence/%" PRIu64 ".proof.json\n",
				    index, index);
		}
		free(scratch);
		moat_buf_free(&ej);
		moat_buf_free(&pj);
	}
	if (rc == MOAT_OK)
		rc = moat_buf_puts(out, "]}");
	if (rc == MOAT_OK && dir && moat_path_join(path, sizeof path, dir, "VERIFY") == MOAT_OK)
		rc = moat_file_write_atomic(path, verify.data, verify.len, 0644, err);
	moat_buf_free(&verify);
	moat_buf_free(&cp);
	moat_buf_free(&tmp);
	free(proof);
	return rc;
}

/* Notification list: every order a confirmed leaker received in plaintext. */
typedef struct notify_ctx {
	moat_app_t *a;
	FILE *f;
	const char *leaker;
	size_t n;
	moat_err_t rc;
	moat_error_t *err;
	char (*seen)[MOAT_ID_MAX + 1];
	size_t nseen, capseen;
} notify_ctx_t;

static void csv_field(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static int notify_order(void *ctx, const char *order_id)
{
	notify_ctx_t *nc = ctx;
	nc->n++;
	if (!nc->f)
		return 0;
	moat_order_row_t row;
	memset(&row, 0, sizeof row);
	moat_pii_t pii = {0};
	moat_err_t rc = moat_store_order_get(nc->a->store, order_id, &row, nc->err);
	if (rc == MOAT_ENOTFOUND) {
		fprintf(nc->f, "%s,,,,%s\n", order_id, nc->leaker);
		return 0;
	}
	if (rc == MOAT_OK && row.honey) {
		moat_order_row_clear(&row);
		nc->n--;
		return 0;
	}
	if (rc == MOAT_OK)
		rc = moat_app_order_pii(nc->a, &row, &pii, nc->err);
	if (rc == MOAT_OK) {
		fprintf(nc->f, "%s,%s,", row.order_id, row.merchant);
		csv_field(nc->f, pii.name);
		fputc(',', nc->f);
		csv_field(nc->f, pii.phone);
		fprintf(nc->f, ",%s\n", nc->leaker);
	}
	moat_pii_clear(&pii);
	moat_order_row_clear(&row);
	nc->rc = rc;
	return rc != MOAT_OK;
}

/* The principals the detector alerted on, each once, for the tracer's priors. */
typedef struct alerted {
	char (*id)[MOAT_ID_MAX + 1];
	const char **ptr;
	size_t n, cap;
	bool nomem;
} alerted_t;

static int cmp_alerted(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Sorts the ids and drops repeats. */
static void alerted_unique(alerted_t *al)
{
	if (al->n < 2)
		return;
	qsort(al->id, al->n, sizeof *al->id, cmp_alerted);
	size_t k = 1;
	for (size_t i = 1; i < al->n; i++)
		if (strcmp(al->id[i], al->id[k - 1]) != 0)
			memcpy(al->id[k++], al->id[i], sizeof *al->id);
	al->n = k;
}

static int collect_alerted(void *ctx, const moat_alert_row_t *row)
{
	alerted_t *al = ctx;
	if (!row->principal[0])
		return 0;
	if (row->status == MOAT_ALERT_RESOLVED && strcasestr(row->resolution, "false positive"))
		return 0;
	/* a principal's alerts tend to come together: skip the repeat of the last one */
	if (al->n && strcmp(al->id[al->n - 1], row->principal) == 0)
		return 0;
	if (al->n == al->cap) {
		/* full: drop repeats first, and grow unless that freed more than half */
		alerted_unique(al);
		if (al->n * 2 >= al->cap) {
			size_t cap = al->cap ? al->cap * 2 : 64;
			void *id = realloc(al->id, cap * sizeof *al->id);
			if (!id) {
				al->nomem = true;
				return 1;
			}
			al->id = id;
			al->cap = cap;
		}
	}
	snprintf(al->id[al->n++], sizeof *al->id, "%s", row->principal);
	return 0;
}

static double p_of(double lp)
{
	return exp(lp);
}

moat_err_t moat_trace_case_run(moat_app_t *a, const char *case_id, const moat_trace_opts_t *opts,
			       moat_buf_t *out, moat_error_t *err)
{
	moat_trace_opts_t o = {0};
	if (opts)
		o = *opts;
	if (o.alpha <= 0)
		o.alpha = 0.01;
	if (!o.max_evidence)
		o.max_evidence = 50;
	moat_err_t rc = need_ledger(a, err);
	if (rc != MOAT_OK)
		return rc;
	trace_ctx_t t;
	memset(&t, 0, sizeof t);
	t.a = a;
	moat_victim_t *vs = NULL;
	moat_score_result_t res = {0};
	evidence_t ev = {0};
	alerted_t al = {0};
	want_t *w = NULL;
	FILE *csv = NULL;
	rc = collect_case(a, case_id, &t.reports, err);
	if (rc == MOAT_OK && t.reports.n == 0 && strncmp(case_id, "honey-", 6) != 0)
		rc = moat_error_set(err, MOAT_ENOTFOUND, "case", "case %s has no reports", case_id);
	if (rc == MOAT_OK)
		rc = moat_trace_index_open(a, &t.x, err);
	if (rc != MOAT_OK)
		goto done;
	t.contacts = calloc(t.reports.n + 1, sizeof *t.contacts);
	vs = calloc(t.reports.n + 1, sizeof *vs);
	if (!t.contacts || !vs) {
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < t.reports.n; i++) {
		moat_trace_contact_normalise(t.reports.r[i].scammer_contact, t.contacts[i],
					     sizeof t.contacts[i]);
		vs[i] = (moat_victim_t){t.reports.r[i].order_id, t.reports.r[i].contact_time,
					t.reports.r[i].quoted, t.reports.r[i].scammer_contact};
	}

	/* Direct evidence first. */
	if ((rc = moat_store_trace_call_list(a->store, scan_call, &t, err)) != MOAT_OK ||
	    (rc = moat_store_trace_honey_list(a->store, scan_honey, &t, err)) != MOAT_OK)
		goto done;
	{
		const char *honey_order = strncmp(case_id, "honey-", 6) == 0 ? case_id + 6 : NULL;
		honey_case_ctx_t hc = {&t, honey_order, a, MOAT_OK, err};
		rc = moat_store_trace_call_list(a->store, scan_honey_calls, &hc, err);
		if (rc == MOAT_OK)
			rc = hc.rc;
		if (rc != MOAT_OK)
			goto done;
		if (honey_order) {
			honey_hit_t hh = {honey_order, ""};
			rc = moat_store_trace_honey_list(a->store, find_honey_order, &hh, err);
			if (rc != MOAT_OK)
				goto done;
			if (hh.principal[0])
				add_direct(
				    &t, hh.principal, 0,
				    "honey: this case was opened by a contact to a honey order "
				    "planted for this principal");
		}
	}

	/* Statistics. */
	moat_score_params_t prm;
	moat_score_params_default(&prm);
	prm.alpha = o.alpha;
	if (o.prior_share > 0)
		prm.prior_share = o.prior_share;
	if (!o.no_priors && t.reports.n) {
		rc = moat_store_alert_list(a->store, -1, 0, collect_alerted, &al, err);
		alerted_unique(&al);
		if (rc == MOAT_OK && al.nomem)
			rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		if (rc == MOAT_OK && al.n && !(al.ptr = malloc(al.n * sizeof *al.ptr)))
			rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		if (rc != MOAT_OK)
			goto done;
		for (size_t i = 0; i < al.n; i++)
			al.ptr[i] = al.id[i];
		prm.prior = al.ptr;
		prm.n_prior = al.n;
	}
	if (t.reports.n) {
		rc = moat_exposure_score(t.x, vs, t.reports.n, &prm, &res, err);
		if (rc != MOAT_OK)
			goto done;
	}

	/* Output. */
	rc = moat_buf_puts(out, "{\"case\":");
	if (rc == MOAT_OK)
		rc = moat_buf_json_str(out, case_id);
	if (rc == MOAT_OK)
		rc = moat_buf_printf(out,
				     ",\"reports\":%zu,\"population\":%" PRIu64
				     ",\"hypotheses\":%zu,\"alpha\":%g,\"priors\":{\"alerted\":%zu,"
				     "\"tested\":%zu,\"share\":%g},\"suspects\":[",
				     t.reports.n, res.N, res.tested, o.alpha, al.n, res.prior_tested,
				     res.prior_share);
	size_t rows = 0;
	for (size_t i = 0; rc == MOAT_OK && i < t.n_direct; i++) {
		const direct_t *d = &t.direct[i];
		const moat_suspect_t *st = NULL;
		for (size_t k = 0; k < res.n_suspects; k++)
			if (!res.suspects[k].is_party &&
			    strcmp(res.suspects[k].principal, d->principal) == 0)
				st = &res.suspects[k];
		moat_principal_row_t pr;
		moat_error_t ig;
		const char *party = "";
		if (moat_store_principal_get(a->store, d->principal, &pr, &ig) == MOAT_OK)
			party = pr.party;
		rc = moat_buf_printf(out, "%s{\"principal\":", rows++ ? "," : "");
		if (rc == MOAT_OK)
			rc = moat_buf_json_str(out, d->principal);
		if (rc == MOAT_OK)
			rc = moat_buf_puts(out, ",\"party\":");
		if (rc == MOAT_OK)
			rc = moat_buf_json_str(out, party);
		if (rc == MOAT_OK)
			rc = moat_buf_printf(out,
					     ",\"p_value\":%.6g,\"p_value_raw\":%.6g,\"ln_p\":%.4f,"
					     "\"significant\":true,\"lift\":%.4g,\"coverage\":%.4g,"
					     "\"direct\":true,\"how\":",
					     st ? p_of(st->log_p_adj) : 0.0,
					     st ? p_of(st->log_p) : 0.0, st ? st->log_p_adj : 0.0,
					     st ? st->lift : 0.0, st ? st->coverage : 0.0);
		if (rc == MOAT_OK)
			rc = moat_buf_json_str(out, d->how);
		if (rc == MOAT_OK)
			rc = moat_buf_putc(out, '}');
	}
	for (size_t k = 0; rc == MOAT_OK && k < res.n_suspects; k++) {
		const moat_suspect_t *s = &res.suspects[k];
		bool dup = false;
		for (size_t i = 0; i < t.n_direct; i++)
			if (!s->is_party && strcmp(t.direct[i].principal, s->principal) == 0)
				dup = true;
		if (dup)
			continue;
		char how[400], groups[96] = "";
		if (s->n_groups)
			snprintf(
			    groups, sizeof groups,
			    ", including every report of %u of the %u scam contacts used more than "
			    "once",
			    s->groups, s->n_groups);
		if (s->significant)
			snprintf(how, sizeof how,
				 "statistics: received in plaintext the quoted fields of %" PRIu64
				 " of %" PRIu64
				 " victims before the scam contact%s, while it received "
				 "%" PRIu64 " of %" PRIu64 " orders (explain-away round %d)",
				 s->k, s->n, groups, s->K, s->N, s->round);
		else
			snprintf(how, sizeof how,
				 "statistics: %" PRIu64 " of %" PRIu64 " victims%s against %" PRIu64
				 " of %" PRIu64 " orders; not significant after correction%s",
				 s->k, s->n, groups, s->K, s->N,
				 res.n_suspects && res.suspects[0].significant
				     ? " or explained by a "
				       "confirmed suspect"
				     : "");
		rc = moat_buf_printf(out, "%s{\"principal\":", rows++ ? "," : "");
		if (rc == MOAT_OK)
			rc = s->is_party ? moat_buf_puts(out, "null")
					 : moat_buf_json_str(out, s->principal);
		if (rc == MOAT_OK)
			rc = moat_buf_puts(out, ",\"party\":");
		if (rc == MOAT_OK)
			rc = moat_buf_json_str(out, s->party);
		if (rc == MOAT_OK)
			rc = moat_buf_printf(
			    out,
			    ",\"level\":\"%s\",\"p_value\":%.6g,\"p_value_raw\":%.6g,"
			    "\"ln_p\":%.4f,\"significant\":%s,\"lift\":%.4g,"
			    "\"coverage\":%.4g,\"k\":%" PRIu64 ",\"n\":%" PRIu64 ",\"K\":%" PRIu64
			    ",\"N\":%" PRIu64 ",\"prior\":%s,\"direct\":false,\"how\":",
			    s->is_party ? "party" : "principal", p_of(s->log_p_adj), p_of(s->log_p),
			    s->log_p_adj, s->significant ? "true" : "false", s->lift, s->coverage,
			    s->k, s->n, s->K, s->N, s->prior ? "true" : "false");
		if (rc == MOAT_OK)
			rc = moat_buf_json_str(out, how);
		if (rc == MOAT_OK)
			rc = moat_buf_puts(out, ",\"reports\":[");
		for (size_t v = 0; rc == MOAT_OK && v < s->n_covered; v++) {
			rc = moat_buf_puts(out, v ? "," : "");
			if (rc == MOAT_OK)
				rc = moat_buf_json_str(out, t.reports.r[s->covered[v]].report_id);
		}
		if (rc == MOAT_OK)
			rc = moat_buf_puts(out, "]}");
	}
	if (rc == MOAT_OK)
		rc = moat_buf_putc(out, ']');
	if (rc != MOAT_OK)
		goto done;

	/* Evidence: the calls/reports that name direct suspects, and the reads that
	 * gave each confirmed suspect the quoted fields of the victims it explains. */
	size_t nw = 0, capw = 0;
	for (size_t i = 0; i < t.n_direct; i++)
		if (t.direct[i].ledger_index && !ev_add(&ev, t.direct[i].ledger_index)) {
			rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
			goto done;
		}
	for (size_t k = 0; k < res.n_suspects; k++)
		if (res.suspects[k].significant)
			capw += res.suspects[k].n_covered;
	for (size_t i = 0; i < t.n_direct; i++)
		for (size_t r = 0; r < t.reports.n; r++)
			capw++;
	w = calloc(capw + 1, sizeof *w);
	if (!w) {
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		goto done;
	}
	for (size_t k = 0; k < res.n_suspects; k++) {
		const moat_suspect_t *s = &res.suspects[k];
		if (!s->significant)
			continue;
		size_t per = o.max_evidence / (s->n_covered ? s->n_covered : 1);
		for (size_t v = 0; v < s->n_covered && v < o.max_evidence; v++) {
			const moat_report_row_t *r = &t.reports.r[s->covered[v]];
			w[nw++] =
			    (want_t){s->is_party ? NULL : s->principal, s->party, r, per ? per : 1};
			if (!ev_add(&ev, r->ledger_index)) {
				rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
				goto done;
			}
		}
	}
	for (size_t i = 0; i < t.n_direct; i++)
		for (size_t r = 0; r < t.reports.n; r++)
			w[nw++] = (want_t){t.direct[i].principal, "", &t.reports.r[r], 2};
	rc = find_evidence(a, t.x, w, nw, &ev, err);
	if (rc == MOAT_OK)
		rc = write_bundle(a, o.out_dir, &ev, out, err);
	if (rc != MOAT_OK)
		goto done;

	/* Notification list. */
	char csv_path[1400] = "";
	if (o.out_dir &&
	    moat_path_join(csv_path, sizeof csv_path, o.out_dir, "notification.csv") == MOAT_OK) {
		/* Plaintext buyer data: owner-only from the first byte. */
		int fd = open(csv_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		csv = fd >= 0 ? fdopen(fd, "w") : NULL;
		if (!csv && fd >= 0)
			close(fd);
		if (!csv) {
			rc = moat_error_set(err, MOAT_EIO, NULL, "cannot write %s", csv_path);
			goto done;
		}
		fprintf(csv, "order_id,merchant,buyer_name,buyer_phone,leaker\n");
	}
	notify_ctx_t nctx = {a, csv, NULL, 0, MOAT_OK, err, NULL, 0, 0};
	size_t confirmed = 0;
	int64_t loss = 0;
	for (size_t r = 0; r < t.reports.n; r++)
		loss += t.reports.r[r].loss_cents;
	for (size_t i = 0; rc == MOAT_OK && i < t.n_direct; i++) {
		nctx.leaker = t.direct[i].principal;
		rc = moat_exposure_orders_of(t.x, t.direct[i].principal, false, PERSONAL_FIELDS,
					     INT64_MAX, notify_order, &nctx, err);
		confirmed++;
	}
	for (size_t k = 0; rc == MOAT_OK && k < res.n_suspects; k++) {
		const moat_suspect_t *s = &res.suspects[k];
		if (!s->significant)
			continue;
		bool dup = false;
		for (size_t i = 0; i < t.n_direct; i++)
			if (!s->is_party && strcmp(t.direct[i].principal, s->principal) == 0)
				dup = true;
		if (dup)
			continue;
		nctx.leaker = s->is_party ? s->party : s->principal;
		rc = moat_exposure_orders_of(t.x, nctx.leaker, s->is_party, PERSONAL_FIELDS,
					     INT64_MAX, notify_order, &nctx, err);
		confirmed++;
	}
	if (rc == MOAT_OK)
		rc = nctx.rc;
	if (csv) {
		if (fclose(csv) != 0 && rc == MOAT_OK)
			rc = moat_error_set(err, MOAT_EIO, NULL, "cannot write %s", csv_path);
		csv = NULL;
	}
	if (rc == MOAT_OK)
		rc = moat_buf_printf(out, ",\"notification\":{\"buyers\":%zu,\"file\":", nctx.n);
	if (rc == MOAT_OK)
		rc = csv_path[0] ? moat_buf_json_str(out, csv_path) : moat_buf_puts(out, "null");
	if (rc == MOAT_OK)
		rc = moat_buf_putc(out, '}');

	/* Regulator report (PIPL Art. 57). */
	unsigned quoted = 0;
	for (size_t r = 0; r < t.reports.n; r++)
		quoted |= t.reports.r[r].quoted;
	char qt[128];
	quoted_text(quoted, qt, sizeof qt);
	moat_buf_t reg;
	moat_buf_init(&reg, 1 << 20);
	if (rc == MOAT_OK)
		rc = moat_buf_printf(
		    &reg,
		    "{\"law\":\"PIPL Art. 57\",\"case\":\"%s\",\"what\":{\"categories\":\"%s\","
		    "\"buyers_affected\":%zu,\"reports\":%zu},"
		    "\"cause\":{\"confirmed_sources\":%zu,\"method\":\"exposure analysis of the "
		    "access ledger (hypergeometric test, Holm-corrected at %g) and direct evidence "
		    "(virtual numbers, honey orders); see suspects and evidence\"},"
		    "\"possible_harm\":\"scam calls and messages quoting order details (fake "
		    "refunds, "
		    "loan apps, requests for verification codes); reported losses %" PRId64
		    " cents\","
		    "\"remedies\":[\"the confirmed sources' access can be suspended (moat "
		    "principal "
		    "suspend) and their plaintext views masked by policy\",\"phones are shown to "
		    "couriers and agents only as expiring virtual numbers\",\"honey orders monitor "
		    "the remaining recipients\"],"
		    "\"what_buyers_can_do\":[\"ignore calls or messages offering refunds or "
		    "compensation outside the platform\",\"never share SMS verification codes or "
		    "install apps at a caller's request\",\"check orders only in the official "
		    "app\","
		    "\"report suspicious contacts to customer service\"],"
		    "\"contact\":\"the platform's personal-information protection officer\"}",
		    case_id, qt, nctx.n, t.reports.n, confirmed, o.alpha, loss);
	if (rc == MOAT_OK)
		rc = moat_buf_printf(out, ",\"regulator_report\":%s}", reg.data);
	if (rc == MOAT_OK && o.out_dir) {
		char rp[1400];
		if (moat_path_join(rp, sizeof rp, o.out_dir, "regulator_report.json") == MOAT_OK)
			rc = moat_file_write_atomic(rp, reg.data, reg.len, 0644, err);
	}
	moat_buf_free(&reg);
done:
	if (csv)
		fclose(csv);
	free(w);
	free(ev.idx);
	moat_score_result_clear(&res);
	free(al.id);
	free(al.ptr);
	free(vs);
	free(t.contacts);
	free(t.reports.r);
	moat_exposure_free(t.x);
	return rc;
}

/* ---- honey orders ----------------------------------------------------------------------- */

moat_err_t moat_trace_honey_plant(moat_app_t *a, const char *principal, size_t count,
				  moat_buf_t *out, moat_error_t *err)
{
	if (count == 0 || count > 1000)
		return moat_error_set(err, MOAT_EINVAL, "count", "count must be 1..1000");
	moat_principal_row_t pr;
	moat_err_t rc = moat_store_principal_get(a->store, principal, &pr, err);
	if (rc != MOAT_OK)
		return rc;
	/* The order's merchant: the principal's own party if it is a merchant, else
	 * the platform-side synthetic merchant "honey" (created on first use). */
	moat_party_row_t party;
	moat_error_t ig;
	const char *merchant = pr.party;
	if (moat_store_party_get(a->store, pr.party, &party, &ig) != MOAT_OK ||
	    party.kind != MOAT_PARTY_MERCHANT)
		merchant = "m-honey";
	moat_arena_t *arena = moat_arena_new(1 << 14);
	if (!arena)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	static const char *const surnames[] = {"王", "李", "张", "刘", "陈", "杨", "赵", "黄"};
	static const char *const given[] = {"静", "伟", "芳", "磊", "洋", "婷", "军", "敏"};
	rc = moat_store_begin(a->store, err);
	if (rc == MOAT_OK && strcmp(merchant, "m-honey") == 0) {
		moat_party_t p = {"m-honey", MOAT_PARTY_MERCHANT, "monitored orders"};
		rc = moat_store_party_put(a->store, &p, err);
	}
	if (rc == MOAT_OK)
		rc = moat_buf_putc(out, '[');
	moat_time_t now = moat_now();
	for (size_t i = 0; rc == MOAT_OK && i < count; i++) {
		uint8_t rnd[8];
		if ((rc = moat_random(rnd, sizeof rnd)) != MOAT_OK)
			break;
		uint64_t r = 0;
		for (int k = 0; k < 8; k++)
			r = r << 8 | rnd[k];
		char id[40], phone[16], json[1200];
		snprintf(id, sizeof id, "H%012" PRIu64, (uint64_t)(r % UINT64_C(1000000000000)));
		/* Monitored numbers come from the 170 block, one per honey order. */
		snprintf(phone, sizeof phone, "170%08" PRIu64,
			 (uint64_t)((r / 7) % UINT64_C(100000000)));
		char placed[32];
		moat_time_format(now, placed);
		snprintf(
		    json, sizeof json,
		    "{\"order_id\":\"%s\",\"merchant\":\"%s\",\"placed_at\":\"%s\","
		    "\"status\":\"paid\",\"buyer\":{\"name\":\"%s%s\",\"phone\":\"%s\","
		    "\"address\":{\"province\":\"浙江省\",\"city\":\"杭州市\",\"district\":"
		    "\"西湖区\",\"detail\":\"文三路%d号%d栋%d室\"}},\"items\":[{\"sku\":\"S-H\","
		    "\"title\":\"羊毛围巾\",\"qty\":1,\"price_cents\":%d}]}",
		    id, merchant, placed, surnames[r % 8], given[(r >> 8) % 8], phone,
		    (int)(r % 300) + 1, (int)(r % 20) + 1, (int)(r % 900) + 101,
		    9900 + (int)(r % 20000));
		json_t *obj = json_loads(json, 0, NULL);
		if (!obj) {
			rc = moat_error_set(err, MOAT_EINVAL, NULL, "cannot build a honey order");
			break;
		}
		rc = moat_app_import_one(a, MOAT_IMPORT_ORDERS, obj, arena, err);
		json_decref(obj);
		moat_relation_t rel = {0};
		rel.kind = MOAT_REL_ASSIGN;
		rel.order_id = id;
		rel.principal = principal;
		rel.from = now;
		rel.until = now + (moat_time_t)90 * 86400000;
		if (rc == MOAT_OK)
			rc = moat_store_relation_put(a->store, &rel, err);
		moat_honey_row_t h = {0};
		snprintf(h.order_id, sizeof h.order_id, "%s", id);
		snprintf(h.principal, sizeof h.principal, "%s", principal);
		snprintf(h.phone, sizeof h.phone, "%s", phone);
		h.created_at = now;
		if (rc == MOAT_OK)
			rc = moat_store_trace_honey_put(a->store, &h, err);
		if (rc == MOAT_OK)
			rc = moat_buf_printf(out, "%s\"%s\"", i ? "," : "", id);
	}
	if (rc == MOAT_OK)
		rc = moat_buf_putc(out, ']');
	if (rc == MOAT_OK)
		rc = moat_store_commit(a->store, err);
	else
		moat_store_rollback(a->store);
	moat_arena_free(arena);
	return rc;
}
