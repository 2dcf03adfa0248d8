/*
 * `moat import calls`: call logs of the telephony side (DESIGN.md "calls"), as
 * POST /v1/calls would have recorded them. Each call becomes one CALL ledger
 * entry marked imported; a call to a virtual number moat issued names the
 * binding's recipient and order (valid or expired: a scam call through an
 * expired binding still names who received the number), a call to a honey
 * order's monitored number is picked up by the index's catch-up, and a call to
 * any other number is recorded as unknown. The exposure index is brought up to
 * date before returning, so the calls are direct evidence in `moat trace`.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/app.h"
#include "moat/ledger.h"
#include "moat/trace.h"

#define MAX_CALLS 1000000

typedef struct call_in {
	moat_time_t time;
	char from[24], to[24];
	char detail[40];
	moat_vnum_row_t b;
	bool known, honey;
} call_in_t;

typedef struct honey_probe {
	const char *number;
	bool hit;
} honey_probe_t;

static int is_honey(void *ctx, const moat_honey_row_t *h)
{
	honey_probe_t *p = ctx;
	if (strcmp(h->phone, p->number) == 0) {
		p->hit = true;
		return 1;
	}
	return 0;
}

/* Digits of a phone number, without a leading 86 country code on 13 digits;
 * false if it holds anything but digits, spaces, + - ( ), or too few digits. */
static bool phone_digits(const char *in, char out[24])
{
	size_t n = 0;
	for (const char *p = in; *p; p++) {
		if (isdigit((unsigned char)*p)) {
			if (n == 20)
				return false;
			out[n++] = *p;
		} else if (!strchr(" +-()", *p)) {
			return false;
		}
	}
	out[n] = '\0';
	if (n == 13 && out[0] == '8' && out[1] == '6')
		memmove(out, out + 2, 12);
	return strlen(out) >= 5;
}

static moat_err_t parse_call(moat_app_t *a, json_t *obj, call_in_t *c, moat_error_t *err)
{
	static const char *const keys[] = {"time", "from", "to", "extension", NULL};
	const char *from = NULL, *to = NULL, *ext = NULL;
	moat_err_t rc;
	memset(c, 0, sizeof *c);
	if ((rc = moat_json_only_keys(obj, keys, "", err)) != MOAT_OK ||
	    (rc = moat_json_get_time(obj, "time", "time", true, &c->time, err)) != MOAT_OK ||
	    (rc = moat_json_get_str(obj, "from", "from", true, 32, &from, err)) != MOAT_OK ||
	    (rc = moat_json_get_str(obj, "to", "to", true, 32, &to, err)) != MOAT_OK ||
	    (rc = moat_json_get_str(obj, "extension", "extension", false, 8, &ext, err)) != MOAT_OK)
		return rc;
	if (!phone_digits(from, c->from))
		return moat_error_set(err, MOAT_EINVAL, "from", "not a phone number");
	if (!phone_digits(to, c->to))
		return moat_error_set(err, MOAT_EINVAL, "to", "not a phone number");
	snprintf(c->detail, sizeof c->detail, "from %s", c->from);
	rc = moat_store_vnum_find(a->store, c->to, &c->b, err);
	if (rc == MOAT_OK) {
		c->known = true;
		return MOAT_OK;
	}
	if (rc != MOAT_ENOTFOUND)
		return rc;
	honey_probe_t hp = {c->to, false};
	rc = moat_store_trace_honey_list(a->store, is_honey, &hp, err);
	c->honey = hp.hit;
	return rc;
}

moat_err_t moat_trace_import_calls(moat_app_t *a, const char *path, moat_calls_stats_t *st,
				   moat_error_t *err)
{
	memset(st, 0, sizeof *st);
	if (!a->ledger)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL,
				      "importing calls needs the ledger open");
	moat_jsonl_t *r = NULL;
	moat_err_t rc = moat_jsonl_open(path, &r, err);
	if (rc != MOAT_OK)
		return rc;
	call_in_t *cs = NULL;
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
		if (n == MAX_CALLS) {
			json_decref(obj);
			rc = moat_error_set(err, MOAT_ELIMIT, NULL, "at most %d calls per file",
					    MAX_CALLS);
			break;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			call_in_t *np = realloc(cs, nc * sizeof *np);
			if (!np) {
				json_decref(obj);
				rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
				break;
			}
			cs = np;
			cap = nc;
		}
		rc = parse_call(a, obj, &cs[n], err);
		json_decref(obj);
		if (rc != MOAT_OK)
			break;
		n++;
	}
	if (rc != MOAT_OK && err && err->line == 0)
		err->line = moat_jsonl_line(r);
	moat_jsonl_close(r);

	/* Every line is valid: now the ledger. */
	moat_entry_t *es = rc == MOAT_OK && n ? calloc(n, sizeof *es) : NULL;
	if (rc == MOAT_OK && n && !es)
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	for (size_t i = 0; rc == MOAT_OK && i < n; i++) {
		call_in_t *c = &cs[i];
		moat_entry_t *e = &es[i];
		bool valid = c->known && c->time >= c->b.valid_from && c->time <= c->b.valid_until;
		e->kind = MOAT_ENTRY_CALL;
		e->imported = true;
		e->time = c->time;
		e->principal = c->known ? c->b.principal : NULL;
		e->order_id = c->known ? c->b.order_id : NULL;
		e->result = valid ? MOAT_RESULT_SUCCESS : MOAT_RESULT_FAILURE;
		e->ref = c->to;
		e->detail = c->detail;
		st->bindings += c->known;
		st->honey += c->honey;
		st->unknown += !c->known && !c->honey;
	}
	for (size_t off = 0; rc == MOAT_OK && off < n; off += MOAT_LEDGER_BATCH_MAX) {
		size_t m = n - off < MOAT_LEDGER_BATCH_MAX ? n - off : MOAT_LEDGER_BATCH_MAX;
		uint64_t f = 0;
		rc = moat_ledger_append(a->ledger, es + off, m, &f, err);
		if (rc == MOAT_OK && off == 0)
			st->first_index = f;
		if (rc == MOAT_OK)
			st->calls += m;
	}
	free(es);
	free(cs);
	if (rc != MOAT_OK)
		return rc;
	/* The catch-up records the calls that reached a binding or a honey number. */
	moat_exposure_t *x = NULL;
	rc = moat_trace_index_open(a, &x, err);
	moat_exposure_free(x);
	moat_log(MOAT_LOG_INFO, "trace.import_calls",
		 "imported %zu calls (%zu to bindings, %zu to honey numbers, %zu unknown)",
		 st->calls, st->bindings, st->honey, st->unknown);
	return rc;
}
