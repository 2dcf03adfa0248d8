/*
 * `moat import events`: access, login and export logs from existing systems
 * become ledger entries marked imported, so moat can watch a shop's logs before
 * any gateway stands in front of its data.
 *
 * Two passes keep a large file from being held in memory and keep a bad line
 * from leaving half a file in an append-only log: pass 1 validates every line;
 * pass 2 re-reads the file and appends in batches. Standard input is spooled to
 * a temporary file first so it can be read twice. Only a disk failure during
 * pass 2 can leave a prefix of the file appended; the error says how much.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app_internal.h"
#include "moat/entry.h"
#include "moat/ledger.h"

#define EVENT_BATCH 4096
#define EXPORT_MAX_ORDERS 10000

static const char *const event_kinds[] = {"access", "login", "export", NULL};
static const char *const decisions[] = {"allow", "deny", NULL};
static const char *const results[] = {"success", "failure", NULL};

/* One event may expand to many entries (an export lists its orders). */
typedef struct ev_out {
	moat_entry_t *e;
	size_t n, cap;
} ev_out_t;

static moat_entry_t *ev_push(ev_out_t *o)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		moat_entry_t *p = realloc(o->e, cap * sizeof *p);
		if (!p)
			return NULL;
		o->e = p;
		o->cap = cap;
	}
	moat_entry_t *e = &o->e[o->n++];
	memset(e, 0, sizeof *e);
	e->imported = true;
	return e;
}

static moat_err_t get_fields(json_t *obj, moat_entry_t *e, moat_error_t *err)
{
	json_t *f = NULL;
	moat_err_t rc = moat_json_get_obj(obj, "fields", "fields", true, &f, err);
	if (rc != MOAT_OK)
		return rc;
	const char *k;
	json_t *v;
	json_object_foreach(f, k, v)
	{
		char field[96];
		snprintf(field, sizeof field, "fields.%.40s", k);
		int fi = moat_field_parse(k);
		if (fi < 0)
			return moat_error_set(err, MOAT_EINVAL, field,
					      "unknown field (name, phone, address, id_number, items, amounts, waybill)");
		int vi = json_is_string(v) ? moat_view_parse(json_string_value(v)) : -1;
		if (vi <= 0)
			return moat_error_set(err, MOAT_EINVAL, field,
					      "must be a view: full, virtual, mask, coarse, category, hidden");
		e->views[fi] = (uint8_t)vi;
	}
	return MOAT_OK;
}

static moat_err_t get_id_field(json_t *obj, const char *key, bool required, const char **out,
			       moat_error_t *err)
{
	moat_err_t rc = moat_json_get_str(obj, key, key, required, MOAT_ID_MAX, out, err);
	if (rc == MOAT_OK && *out && !moat_id_valid(*out))
		rc = moat_error_set(err, MOAT_EINVAL, key, "must be 1-64 characters of letters, digits and . _ : -");
	return rc;
}

/* Relations that held between principal and order at the event's time. */
static moat_err_t relations_of(moat_app_t *a, moat_entry_t *e, moat_error_t *err)
{
	char merchant[MOAT_ID_MAX + 1];
	e->relations = 0;
	if (!e->principal || !e->order_id)
		return MOAT_OK;
	moat_err_t rc = moat_store_order_merchant(a->store, e->order_id, merchant, sizeof merchant, err);
	if (rc == MOAT_ENOTFOUND)
		return MOAT_OK; /* an order moat never saw: no relation can be shown */
	unsigned mask = 0;
	if (rc == MOAT_OK)
		rc = moat_store_relation_check(a->store, e->principal, e->order_id, merchant, e->time, &mask, NULL, err);
	e->relations = (uint8_t)mask;
	return rc;
}

/* Parses one event object into entries appended to out. */
static moat_err_t parse_event(moat_app_t *a, json_t *obj, ev_out_t *out, moat_error_t *err)
{
	static const char *const access_keys[] = {"time", "kind", "principal", "order_id", "purpose", "fields",
						  "decision", "ip", "device", "rule", NULL};
	static const char *const login_keys[] = {"time", "kind", "username", "ip", "result", "device", NULL};
	static const char *const export_keys[] = {"time", "kind", "principal", "rows", "fields", "purpose",
						  "order_ids", "ip", "device", "export_id", NULL};
	int kind = 0;
	moat_err_t rc = moat_json_get_enum(obj, "kind", "kind", true, event_kinds, &kind, err);
	if (rc != MOAT_OK)
		return rc;
	rc = moat_json_only_keys(obj, kind == 0 ? access_keys : kind == 1 ? login_keys : export_keys, "", err);
	if (rc != MOAT_OK)
		return rc;
	moat_entry_t base = {.imported = true};
	rc = moat_json_get_time(obj, "time", "time", true, &base.time, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_str(obj, "ip", "ip", false, 64, &base.ip, err);
	if (rc == MOAT_OK)
		rc = get_id_field(obj, "device", false, &base.device, err);
	if (rc != MOAT_OK)
		return rc;
	if (kind == 1) { /* login */
		int res = 0;
		base.kind = MOAT_ENTRY_LOGIN;
		rc = get_id_field(obj, "username", true, &base.principal, err);
		if (rc == MOAT_OK)
			rc = moat_json_get_enum(obj, "result", "result", true, results, &res, err);
		base.result = res == 0 ? MOAT_RESULT_SUCCESS : MOAT_RESULT_FAILURE;
		moat_entry_t *e = rc == MOAT_OK ? ev_push(out) : NULL;
		if (rc == MOAT_OK && !e)
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		if (e)
			*e = base;
		return rc;
	}
	int purpose = 0;
	rc = get_id_field(obj, "principal", true, &base.principal, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_enum(obj, "purpose", "purpose", true, moat_purpose_names, &purpose, err);
	if (rc == MOAT_OK)
		rc = get_fields(obj, &base, err);
	if (rc != MOAT_OK)
		return rc;
	base.purpose = (moat_purpose_t)purpose;
	base.has_purpose = true;
	if (kind == 0) { /* access */
		int dec = 0;
		rc = get_id_field(obj, "order_id", true, &base.order_id, err);
		if (rc == MOAT_OK)
			rc = moat_json_get_enum(obj, "decision", "decision", true, decisions, &dec, err);
		if (rc == MOAT_OK)
			rc = get_id_field(obj, "rule", false, &base.rule, err);
		if (rc != MOAT_OK)
			return rc;
		base.kind = dec == 0 ? MOAT_ENTRY_ACCESS : MOAT_ENTRY_DENY;
		if (base.kind == MOAT_ENTRY_DENY) /* a denied read revealed nothing */
			memset(base.views, 0, sizeof base.views);
		rc = relations_of(a, &base, err);
		moat_entry_t *e = rc == MOAT_OK ? ev_push(out) : NULL;
		if (rc == MOAT_OK && !e)
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		if (e)
			*e = base;
		return rc;
	}
	/* export */
	int64_t rows = 0;
	json_t *ids = NULL;
	base.kind = MOAT_ENTRY_EXPORT;
	rc = moat_json_get_int(obj, "rows", "rows", true, 0, INT64_C(100000000), &rows, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_arr(obj, "order_ids", "order_ids", false, EXPORT_MAX_ORDERS, &ids, err);
	if (rc == MOAT_OK)
		rc = get_id_field(obj, "export_id", false, &base.ref, err);
	if (rc != MOAT_OK)
		return rc;
	base.rows = (uint64_t)rows;
	size_t n = ids ? json_array_size(ids) : 0;
	if (n == 0) {
		moat_entry_t *e = ev_push(out);
		if (!e)
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		*e = base;
		return MOAT_OK;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(ids, i);
		char field[48];
		snprintf(field, sizeof field, "order_ids[%zu]", i);
		if (!json_is_string(v) || !moat_id_valid(json_string_value(v)))
			return moat_error_set(err, MOAT_EINVAL, field, "must be an order id string");
		moat_entry_t *e = ev_push(out);
		if (!e)
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		*e = base;
		e->order_id = json_string_value(v);
		if ((rc = relations_of(a, e, err)) != MOAT_OK)
			return rc;
	}
	return MOAT_OK;
}

/* Copies stdin to an unlinked temporary file so it can be read twice. */
static moat_err_t spool_stdin(char *path, size_t cap, moat_error_t *err)
{
	snprintf(path, cap, "%s/moat-events-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0)
		return moat_error_set(err, MOAT_EIO, NULL, "cannot create a temporary file: %s", strerror(errno));
	char buf[65536];
	ssize_t n;
	while ((n = read(STDIN_FILENO, buf, sizeof buf)) > 0) {
		if (write(fd, buf, (size_t)n) != n) {
			close(fd);
			unlink(path);
			return moat_error_set(err, MOAT_EIO, NULL, "cannot spool standard input: %s", strerror(errno));
		}
	}
	close(fd);
	return MOAT_OK;
}

/* Runs one pass over the file. append=false only validates. */
static moat_err_t events_pass(moat_app_t *a, const char *path, bool append, size_t *events,
			      size_t *entries, uint64_t *first, moat_error_t *err)
{
	moat_jsonl_t *r = NULL;
	moat_err_t rc = moat_jsonl_open(path, &r, err);
	if (rc != MOAT_OK)
		return rc;
	ev_out_t out = {0};
	/* Parsed objects stay alive until their entries are appended. */
	json_t **held = calloc(EVENT_BATCH, sizeof *held);
	size_t nheld = 0;
	*events = *entries = 0;
	bool have_first = false;
	if (!held) {
		moat_jsonl_close(r);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	for (;;) {
		json_t *obj = NULL;
		rc = moat_jsonl_next(r, &obj, err);
		bool end = rc == MOAT_ENOTFOUND;
		if (end)
			rc = MOAT_OK;
		if (rc != MOAT_OK)
			break;
		if (obj) {
			rc = parse_event(a, obj, &out, err);
			held[nheld++] = obj;
			if (rc != MOAT_OK) {
				if (err)
					err->line = moat_jsonl_line(r);
				break;
			}
			(*events)++;
		}
		if (nheld == EVENT_BATCH || out.n >= EVENT_BATCH || (end && out.n)) {
			if (append && out.n) {
				uint64_t idx = 0;
				for (size_t off = 0; off < out.n && rc == MOAT_OK; off += MOAT_LEDGER_BATCH_MAX) {
					size_t k = out.n - off < MOAT_LEDGER_BATCH_MAX ? out.n - off : MOAT_LEDGER_BATCH_MAX;
					rc = moat_ledger_append(a->ledger, out.e + off, k, &idx, err);
					if (rc == MOAT_OK && !have_first) {
						*first = idx;
						have_first = true;
					}
				}
				if (rc != MOAT_OK)
					break;
			}
			*entries += out.n;
			out.n = 0;
			for (size_t i = 0; i < nheld; i++)
				json_decref(held[i]);
			nheld = 0;
		}
		if (end)
			break;
	}
	for (size_t i = 0; i < nheld; i++)
		json_decref(held[i]);
	free(held);
	free(out.e);
	moat_jsonl_close(r);
	return rc;
}

moat_err_t moat_app_import_events(moat_app_t *a, const char *path, size_t *events, size_t *entries,
				  uint64_t *first_index, moat_error_t *err)
{
	*events = *entries = 0;
	*first_index = 0;
	if (!a->ledger)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL, "the ledger is not open");
	char spooled[512] = "";
	moat_err_t rc = MOAT_OK;
	if (strcmp(path, "-") == 0) {
		rc = spool_stdin(spooled, sizeof spooled, err);
		if (rc != MOAT_OK)
			return rc;
		path = spooled;
	}
	size_t ev = 0, en = 0;
	rc = events_pass(a, path, false, &ev, &en, first_index, err);
	if (rc == MOAT_OK) {
		rc = events_pass(a, path, true, events, entries, first_index, err);
		if (rc != MOAT_OK && *entries > 0 && err) {
			char msg[sizeof err->msg];
			snprintf(msg, sizeof msg, "%.200s (the first %zu entries are already in the ledger)", err->msg,
				 *entries);
			snprintf(err->msg, sizeof err->msg, "%s", msg);
		}
	}
	if (spooled[0])
		unlink(spooled);
	if (rc == MOAT_OK)
		moat_log(MOAT_LOG_INFO, "import.events", "events=%zu entries=%zu first_index=%llu", *events,
			 *entries, (unsigned long long)*first_index);
	return rc;
}
