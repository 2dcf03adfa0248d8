/*
 * SQLite tables of the tracer: scam reports, cases, calls seen on the ledger and
 * honey orders (declared in include/moat/trace.h; created by migration 4 in
 * sqlite.c). A report's scammer contact lives only here, never on the ledger.
 */
#include <stdio.h>
#include <string.h>

#include "moat/trace.h"
#include "store/sqlite_internal.h"

enum {
	STMT_REPORT_PUT = STMT_TRACE_BASE,
	STMT_REPORT_LIST,
	STMT_REPORT_GET,
	STMT_CASE_PUT,
	STMT_CASE_GET,
	STMT_CASE_LIST,
	STMT_CASE_ADD,
	STMT_CASE_REMOVE,
	STMT_CASE_REPORTS,
	STMT_CALL_PUT,
	STMT_CALL_LIST,
	STMT_CALL_CLEAR,
	STMT_HONEY_PUT,
	STMT_HONEY_MARK,
	STMT_HONEY_LIST,
	STMT_TRACE_END
};
_Static_assert((int)STMT_TRACE_END <= (int)MOAT_SQLITE_MAX_STMTS, "tracer statement ids overflow");

#define REPORT_COLS                                                                          \
	"r.report_id, r.order_id, r.contact_time, r.channel, r.quoted, r.scammer_contact,"   \
	" r.loss_cents, r.ledger_index, r.created_at"

static moat_err_t db_err(moat_store_t *s, moat_error_t *err, const char *what)
{
	return moat_error_set(err, MOAT_EDB, NULL, "database error (%s): %s", what, sqlite3_errmsg(s->db));
}

static void col_text(sqlite3_stmt *st, int i, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(out, cap, "%s", t ? (const char *)t : "");
}

static void bind_time(sqlite3_stmt *st, int i, moat_time_t t)
{
	if (t == MOAT_TIME_NONE)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_int64(st, i, t);
}

static moat_time_t col_time(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? MOAT_TIME_NONE : sqlite3_column_int64(st, i);
}

static void report_from(sqlite3_stmt *st, moat_report_row_t *r)
{
	memset(r, 0, sizeof *r);
	col_text(st, 0, r->report_id, sizeof r->report_id);
	col_text(st, 1, r->order_id, sizeof r->order_id);
	r->contact_time = sqlite3_column_int64(st, 2);
	col_text(st, 3, r->channel, sizeof r->channel);
	r->quoted = (unsigned)sqlite3_column_int(st, 4);
	col_text(st, 5, r->scammer_contact, sizeof r->scammer_contact);
	r->loss_cents = sqlite3_column_int64(st, 6);
	r->ledger_index = (uint64_t)sqlite3_column_int64(st, 7);
	r->created_at = sqlite3_column_int64(st, 8);
}

/* Steps st, calling emit for each row until fn asks to stop. */
static moat_err_t each_row(moat_store_t *s, sqlite3_stmt *st, int (*emit)(sqlite3_stmt *, void *),
			   void *ctx, moat_error_t *err)
{
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		if (emit(st, ctx))
			break;
	moat_err_t rc = (r == SQLITE_ROW || r == SQLITE_DONE) ? MOAT_OK : db_err(s, err, "read");
	sqlite3_reset(st);
	return rc;
}

moat_err_t moat_store_trace_report_put(moat_store_t *s, const moat_report_row_t *r,
				       moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_REPORT_PUT,
	    "INSERT INTO trace_reports (report_id, order_id, contact_time, channel, quoted,"
	    " scammer_contact, loss_cents, ledger_index, created_at) VALUES (?,?,?,?,?,?,?,?,?)"
	    " ON CONFLICT (report_id) DO NOTHING",
	    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, r->report_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->order_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, r->contact_time);
	sqlite3_bind_text(st, 4, r->channel, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, (int)r->quoted);
	sqlite3_bind_text(st, 6, r->scammer_contact, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, r->loss_cents);
	sqlite3_bind_int64(st, 8, (int64_t)r->ledger_index);
	sqlite3_bind_int64(st, 9, r->created_at);
	moat_err_t rc = moat_sqlite_step_done(s, st, err);
	if (rc == MOAT_OK && sqlite3_changes(s->db) == 0)
		return moat_error_set(err, MOAT_EEXIST, "report_id", "report %s was already imported",
				      r->report_id);
	return rc;
}

typedef struct report_cb {
	int (*fn)(void *ctx, const moat_report_row_t *r);
	void *ctx;
} report_cb_t;

static int emit_report(sqlite3_stmt *st, void *ctx)
{
	report_cb_t *cb = ctx;
	moat_report_row_t r;
	report_from(st, &r);
	return cb->fn(cb->ctx, &r);
}

moat_err_t moat_store_trace_report_list(moat_store_t *s, moat_time_t from, moat_time_t until,
					int (*fn)(void *ctx, const moat_report_row_t *r), void *ctx,
					moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_REPORT_LIST,
	    "SELECT " REPORT_COLS " FROM trace_reports r WHERE r.contact_time >= ?"
	    " AND r.contact_time <= ? ORDER BY r.contact_time, r.report_id",
	    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_int64(st, 1, from == MOAT_TIME_NONE ? INT64_MIN : from);
	sqlite3_bind_int64(st, 2, until == MOAT_TIME_NONE ? INT64_MAX : until);
	report_cb_t cb = {fn, ctx};
	return each_row(s, st, emit_report, &cb, err);
}

moat_err_t moat_store_trace_report_get(moat_store_t *s, const char *id, moat_report_row_t *out,
				       moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_REPORT_GET, "SELECT " REPORT_COLS " FROM trace_reports r WHERE r.report_id = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	moat_err_t rc = MOAT_OK;
	if (r == SQLITE_ROW)
		report_from(st, out);
	else if (r == SQLITE_DONE)
		rc = moat_error_set(err, MOAT_ENOTFOUND, "report_id", "no report %s", id);
	else
		rc = db_err(s, err, "report get");
	sqlite3_reset(st);
	return rc;
}

static void case_from(sqlite3_stmt *st, moat_case_row_t *c)
{
	memset(c, 0, sizeof *c);
	col_text(st, 0, c->case_id, sizeof c->case_id);
	col_text(st, 1, c->title, sizeof c->title);
	c->from = col_time(st, 2);
	c->until = col_time(st, 3);
	c->explicit_members = sqlite3_column_int(st, 4) != 0;
	c->created_at = sqlite3_column_int64(st, 5);
}

moat_err_t moat_store_trace_case_put(moat_store_t *s, const moat_case_row_t *c, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_CASE_PUT,
	    "INSERT INTO trace_cases (case_id, title, window_from, window_until, explicit, created_at)"
	    " VALUES (?,?,?,?,?,?) ON CONFLICT (case_id) DO UPDATE SET title = excluded.title,"
	    " window_from = excluded.window_from, window_until = excluded.window_until,"
	    " explicit = excluded.explicit",
	    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, c->case_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, c->title, -1, SQLITE_STATIC);
	bind_time(st, 3, c->from);
	bind_time(st, 4, c->until);
	sqlite3_bind_int(st, 5, c->explicit_members ? 1 : 0);
	sqlite3_bind_int64(st, 6, c->created_at);
	return moat_sqlite_step_done(s, st, err);
}

moat_err_t moat_store_trace_case_get(moat_store_t *s, const char *id, moat_case_row_t *out,
				     moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_CASE_GET,
	    "SELECT case_id, title, window_from, window_until, explicit, created_at FROM trace_cases"
	    " WHERE case_id = ?",
	    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	moat_err_t rc = MOAT_OK;
	if (r == SQLITE_ROW)
		case_from(st, out);
	else if (r == SQLITE_DONE)
		rc = moat_error_set(err, MOAT_ENOTFOUND, "case", "no case %s (see `moat case list`)", id);
	else
		rc = db_err(s, err, "case get");
	sqlite3_reset(st);
	return rc;
}

typedef struct case_cb {
	int (*fn)(void *ctx, const moat_case_row_t *c);
	void *ctx;
} case_cb_t;

static int emit_case(sqlite3_stmt *st, void *ctx)
{
	case_cb_t *cb = ctx;
	moat_case_row_t c;
	case_from(st, &c);
	return cb->fn(cb->ctx, &c);
}

moat_err_t moat_store_trace_case_list(moat_store_t *s,
				      int (*fn)(void *ctx, const moat_case_row_t *c), void *ctx,
				      moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_CASE_LIST,
	    "SELECT case_id, title, window_from, window_until, explicit, created_at FROM trace_cases"
	    " ORDER BY created_at, case_id",
	    err);
	if (!st)
		return MOAT_EDB;
	case_cb_t cb = {fn, ctx};
	return each_row(s, st, emit_case, &cb, err);
}

moat_err_t moat_store_trace_case_add(moat_store_t *s, const char *case_id, const char *report_id,
				     moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_CASE_ADD,
	    "INSERT INTO trace_case_reports (case_id, report_id) VALUES (?,?) ON CONFLICT DO NOTHING",
	    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, report_id, -1, SQLITE_STATIC);
	return moat_sqlite_step_done(s, st, err);
}

moat_err_t moat_store_trace_case_remove(moat_store_t *s, const char *case_id,
					const char *report_id, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_CASE_REMOVE, "DELETE FROM trace_case_reports WHERE case_id = ? AND report_id = ?",
	    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, report_id, -1, SQLITE_STATIC);
	moat_err_t rc = moat_sqlite_step_done(s, st, err);
	if (rc == MOAT_OK && sqlite3_changes(s->db) == 0)
		return moat_error_set(err, MOAT_ENOTFOUND, "report_id", "report %s is not in case %s",
				      report_id, case_id);
	return rc;
}

moat_err_t moat_store_trace_case_reports(moat_store_t *s, const char *case_id,
					 int (*fn)(void *ctx, const moat_report_row_t *r),
					 void *ctx, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_CASE_REPORTS,
	    "SELECT " REPORT_COLS " FROM trace_case_reports m JOIN trace_reports r USING (report_id)"
	    " WHERE m.case_id = ? ORDER BY r.contact_time, r.report_id",
	    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
	report_cb_t cb = {fn, ctx};
	return each_row(s, st, emit_report, &cb, err);
}

moat_err_t moat_store_trace_call_put(moat_store_t *s, const moat_call_row_t *c, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_CALL_PUT,
	    "INSERT INTO trace_calls (ledger_index, time, principal, order_id, number, caller)"
	    " VALUES (?,?,?,?,?,?) ON CONFLICT (ledger_index) DO NOTHING",
	    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_int64(st, 1, (int64_t)c->ledger_index);
	sqlite3_bind_int64(st, 2, c->time);
	sqlite3_bind_text(st, 3, c->principal, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, c->order_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, c->number, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, c->caller, -1, SQLITE_STATIC);
	return moat_sqlite_step_done(s, st, err);
}

typedef struct call_cb {
	int (*fn)(void *ctx, const moat_call_row_t *c);
	void *ctx;
} call_cb_t;

static int emit_call(sqlite3_stmt *st, void *ctx)
{
	call_cb_t *cb = ctx;
	moat_call_row_t c;
	memset(&c, 0, sizeof c);
	c.ledger_index = (uint64_t)sqlite3_column_int64(st, 0);
	c.time = sqlite3_column_int64(st, 1);
	col_text(st, 2, c.principal, sizeof c.principal);
	col_text(st, 3, c.order_id, sizeof c.order_id);
	col_text(st, 4, c.number, sizeof c.number);
	col_text(st, 5, c.caller, sizeof c.caller);
	return cb->fn(cb->ctx, &c);
}

moat_err_t moat_store_trace_call_list(moat_store_t *s,
				      int (*fn)(void *ctx, const moat_call_row_t *c), void *ctx,
				      moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_CALL_LIST,
	    "SELECT ledger_index, time, principal, order_id, number, caller FROM trace_calls"
	    " ORDER BY ledger_index",
	    err);
	if (!st)
		return MOAT_EDB;
	call_cb_t cb = {fn, ctx};
	return each_row(s, st, emit_call, &cb, err);
}

moat_err_t moat_store_trace_calls_clear(moat_store_t *s, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_CALL_CLEAR, "DELETE FROM trace_calls", err);
	if (!st)
		return MOAT_EDB;
	return moat_sqlite_step_done(s, st, err);
}

moat_err_t moat_store_trace_honey_put(moat_store_t *s, const moat_honey_row_t *h, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_HONEY_PUT,
	    "INSERT INTO trace_honey (order_id, principal, phone, created_at) VALUES (?,?,?,?)", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, h->order_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, h->principal, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, h->phone, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, h->created_at);
	moat_err_t rc = moat_sqlite_step_done(s, st, err);
	if (rc != MOAT_OK)
		return rc;
	st = moat_sqlite_stmt(s, STMT_HONEY_MARK, "UPDATE orders SET honey = 1 WHERE order_id = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, h->order_id, -1, SQLITE_STATIC);
	rc = moat_sqlite_step_done(s, st, err);
	if (rc == MOAT_OK && sqlite3_changes(s->db) == 0)
		return moat_error_set(err, MOAT_ENOTFOUND, "order_id", "no order %s to mark as honey",
				      h->order_id);
	return rc;
}

typedef struct honey_cb {
	int (*fn)(void *ctx, const moat_honey_row_t *h);
	void *ctx;
} honey_cb_t;

static int emit_honey(sqlite3_stmt *st, void *ctx)
{
	honey_cb_t *cb = ctx;
	moat_honey_row_t h;
	memset(&h, 0, sizeof h);
	col_text(st, 0, h.order_id, sizeof h.order_id);
	col_text(st, 1, h.principal, sizeof h.principal);
	col_text(st, 2, h.phone, sizeof h.phone);
	h.created_at = sqlite3_column_int64(st, 3);
	return cb->fn(cb->ctx, &h);
}

moat_err_t moat_store_trace_honey_list(moat_store_t *s,
				       int (*fn)(void *ctx, const moat_honey_row_t *h), void *ctx,
				       moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_HONEY_LIST,
	    "SELECT order_id, principal, phone, created_at FROM trace_honey ORDER BY order_id", err);
	if (!st)
		return MOAT_EDB;
	honey_cb_t cb = {fn, ctx};
	return each_row(s, st, emit_honey, &cb, err);
}
