/*
 * SQLite tables of the detector: alerts and the actions they apply (declared in
 * include/moat/detect.h). The tables are created by migration 2 in sqlite.c.
 *
 * An alert's id is deterministic ("<rule>@<trigger index>"), so storing the same
 * alert twice (a restart that re-processes entries) is a no-op, never a
 * duplicate. Evidence indexes are stored as a space-separated decimal list.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/detect.h"
#include "store/sqlite_internal.h"

enum {
	STMT_ALERT_PUT = STMT_DETECT_BASE,
	STMT_ALERT_GET,
	STMT_ALERT_LIST_ALL,
	STMT_ALERT_LIST_STATUS,
	STMT_ALERT_RESOLVE,
	STMT_ACTION_PUT,
	STMT_ACTION_LIFT,
	STMT_ACTION_GET,
	STMT_ACTION_LIST_ALL,
	STMT_ACTION_LIST_ACTIVE,
	STMT_ACTION_FOR,
	STMT_PRINCIPAL_AUTH,
	STMT_ALERT_AFTER,
	STMT_DETECT_END
};
_Static_assert((int)STMT_DETECT_END <= (int)STMT_TRACE_BASE, "detector statement ids overflow their range");

#define ALERT_COLS                                                                              \
	"id, rule, title, severity, action, principal, group_by, key, time, trigger_index, value," \
	" threshold, count, evidence, ledger_index, status, resolved_at, resolution"

static moat_err_t db_err(moat_store_t *s, moat_error_t *err, const char *what)
{
	return moat_error_set(err, MOAT_EDB, NULL, "database error (%s): %s", what, sqlite3_errmsg(s->db));
}

static void col_text(sqlite3_stmt *st, int i, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(out, cap, "%s", t ? (const char *)t : "");
}

moat_err_t moat_store_alert_put(moat_store_t *s, const moat_detect_alert_t *a, int64_t ledger_index,
				bool *inserted, moat_error_t *err)
{
	if (inserted)
		*inserted = false;
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_ALERT_PUT,
	    "INSERT INTO detect_alerts (" ALERT_COLS ") VALUES"
	    " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, '') ON CONFLICT (id) DO NOTHING",
	    err);
	if (!st)
		return MOAT_EDB;
	char ev[MOAT_DETECT_EVIDENCE_MAX * 21 + 1];
	size_t n = 0;
	ev[0] = 0;
	for (size_t i = 0; i < a->n_evidence && i < MOAT_DETECT_EVIDENCE_MAX; i++)
		n += (size_t)snprintf(ev + n, sizeof ev - n, "%s%" PRIu64, i ? " " : "", a->evidence[i]);
	sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a->rule, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, a->title ? a->title : a->rule, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, (int)a->severity);
	sqlite3_bind_int(st, 5, (int)a->action);
	sqlite3_bind_text(st, 6, a->principal ? a->principal : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, a->group_by ? a->group_by : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, a->key ? a->key : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, a->time);
	sqlite3_bind_int64(st, 10, (int64_t)a->trigger);
	sqlite3_bind_double(st, 11, a->value);
	sqlite3_bind_double(st, 12, a->threshold);
	sqlite3_bind_int64(st, 13, (int64_t)a->count);
	sqlite3_bind_text(st, 14, ev, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 15, ledger_index);
	moat_err_t rc = moat_sqlite_step_done(s, st, err);
	if (rc == MOAT_OK && inserted)
		*inserted = sqlite3_changes(s->db) > 0;
	return rc;
}

static void alert_row(sqlite3_stmt *st, moat_alert_row_t *r)
{
	memset(r, 0, sizeof *r);
	col_text(st, 0, r->id, sizeof r->id);
	col_text(st, 1, r->rule, sizeof r->rule);
	col_text(st, 2, r->title, sizeof r->title);
	r->severity = (moat_detect_severity_t)sqlite3_column_int(st, 3);
	r->action = (moat_detect_action_t)sqlite3_column_int(st, 4);
	col_text(st, 5, r->principal, sizeof r->principal);
	col_text(st, 6, r->group_by, sizeof r->group_by);
	col_text(st, 7, r->key, sizeof r->key);
	r->time = sqlite3_column_int64(st, 8);
	r->trigger = (uint64_t)sqlite3_column_int64(st, 9);
	r->value = sqlite3_column_double(st, 10);
	r->threshold = sqlite3_column_double(st, 11);
	r->count = (uint64_t)sqlite3_column_int64(st, 12);
	const char *ev = (const char *)sqlite3_column_text(st, 13);
	while (ev && *ev && r->n_evidence < MOAT_DETECT_EVIDENCE_MAX) {
		char *end;
		unsigned long long v = strtoull(ev, &end, 10);
		if (end == ev)
			break;
		r->evidence[r->n_evidence++] = v;
		ev = end;
		while (*ev == ' ')
			ev++;
	}
	r->ledger_index = sqlite3_column_int64(st, 14);
	r->status = (moat_alert_status_t)sqlite3_column_int(st, 15);
	r->resolved_at = sqlite3_column_type(st, 16) == SQLITE_NULL ? MOAT_TIME_NONE
								    : sqlite3_column_int64(st, 16);
	col_text(st, 17, r->resolution, sizeof r->resolution);
}

moat_err_t moat_store_alert_get(moat_store_t *s, const char *id, moat_alert_row_t *out,
				moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ALERT_GET,
					    "SELECT " ALERT_COLS " FROM detect_alerts WHERE id = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		alert_row(st, out);
		sqlite3_reset(st);
		return MOAT_OK;
	}
	sqlite3_reset(st);
	if (r == SQLITE_DONE)
		return moat_error_set(err, MOAT_ENOTFOUND, "id", "no alert %s", id);
	return db_err(s, err, "alert");
}

moat_err_t moat_store_alert_list(moat_store_t *s, int status, size_t limit,
				 int (*fn)(void *ctx, const moat_alert_row_t *row), void *ctx,
				 moat_error_t *err)
{
	sqlite3_stmt *st =
	    status < 0 ? moat_sqlite_stmt(s, STMT_ALERT_LIST_ALL,
					  "SELECT " ALERT_COLS " FROM detect_alerts"
					  " ORDER BY trigger_index DESC, id LIMIT ?",
					  err)
		       : moat_sqlite_stmt(s, STMT_ALERT_LIST_STATUS,
					  "SELECT " ALERT_COLS " FROM detect_alerts WHERE status = ?"
					  " ORDER BY trigger_index DESC, id LIMIT ?",
					  err);
	if (!st)
		return MOAT_EDB;
	int p = 1;
	if (status >= 0)
		sqlite3_bind_int(st, p++, status);
	sqlite3_bind_int64(st, p, limit ? (int64_t)limit : -1);
	moat_alert_row_t row;
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		alert_row(st, &row);
		if (fn(ctx, &row) != 0) {
			sqlite3_reset(st);
			return MOAT_OK;
		}
	}
	sqlite3_reset(st);
	return r == SQLITE_DONE ? MOAT_OK : db_err(s, err, "alert list");
}

moat_err_t moat_store_alert_after(moat_store_t *s, int64_t after, size_t limit,
				  int (*fn)(void *ctx, const moat_alert_row_t *row), void *ctx,
				  moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ALERT_AFTER,
					    "SELECT " ALERT_COLS " FROM detect_alerts WHERE ledger_index > ?"
					    " ORDER BY ledger_index LIMIT ?",
					    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_int64(st, 1, after);
	sqlite3_bind_int64(st, 2, limit ? (int64_t)limit : -1);
	moat_alert_row_t row;
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		alert_row(st, &row);
		if (fn(ctx, &row) != 0) {
			sqlite3_reset(st);
			return MOAT_OK;
		}
	}
	sqlite3_reset(st);
	return r == SQLITE_DONE ? MOAT_OK : db_err(s, err, "alert list");
}

moat_err_t moat_store_alert_resolve(moat_store_t *s, const char *id, const char *reason,
				    moat_time_t at, moat_error_t *err)
{
	if (!reason || !*reason || !moat_utf8_valid(reason, strlen(reason)) ||
	    moat_utf8_len(reason, strlen(reason)) > MOAT_TEXT_MAX)
		return moat_error_set(err, MOAT_EINVAL, "reason", "a reason of 1..%d characters is required",
				      MOAT_TEXT_MAX);
	moat_alert_row_t row;
	moat_err_t rc = moat_store_alert_get(s, id, &row, err);
	if (rc != MOAT_OK)
		return rc;
	if (row.status == MOAT_ALERT_RESOLVED)
		return moat_error_set(err, MOAT_ECONFLICT, "id", "alert %s is already resolved (%s)", id,
				      row.resolution);
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ALERT_RESOLVE,
					    "UPDATE detect_alerts SET status = 1, resolved_at = ?,"
					    " resolution = ? WHERE id = ? AND status = 0",
					    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_int64(st, 1, at);
	sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	return moat_sqlite_step_done(s, st, err);
}

/* ---- actions ---- */

#define ACTION_COLS "id, principal, action, alert_id, applied_at, lifted_at, lift_reason, ledger_index"

moat_err_t moat_store_action_put(moat_store_t *s, const char *principal, moat_detect_action_t action,
				 const char *alert_id, moat_time_t applied_at, int64_t ledger_index,
				 int64_t *id, moat_error_t *err)
{
	if (!principal || !*principal)
		return moat_error_set(err, MOAT_EINVAL, "principal", "an action needs a principal");
	if (action <= MOAT_ACTION_NONE || action >= MOAT_ACTION_COUNT)
		return moat_error_set(err, MOAT_EINVAL, "action", "no such action");
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ACTION_PUT,
					    "INSERT INTO detect_actions (principal, action, alert_id,"
					    " applied_at, ledger_index) VALUES (?, ?, ?, ?, ?)",
					    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, (int)action);
	sqlite3_bind_text(st, 3, alert_id ? alert_id : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, applied_at);
	sqlite3_bind_int64(st, 5, ledger_index);
	moat_err_t rc = moat_sqlite_step_done(s, st, err);
	if (rc == MOAT_OK && id)
		*id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

static void action_row(sqlite3_stmt *st, moat_action_row_t *r)
{
	memset(r, 0, sizeof *r);
	r->id = sqlite3_column_int64(st, 0);
	col_text(st, 1, r->principal, sizeof r->principal);
	r->action = (moat_detect_action_t)sqlite3_column_int(st, 2);
	col_text(st, 3, r->alert_id, sizeof r->alert_id);
	r->applied_at = sqlite3_column_int64(st, 4);
	r->lifted_at = sqlite3_column_type(st, 5) == SQLITE_NULL ? MOAT_TIME_NONE
								  : sqlite3_column_int64(st, 5);
	col_text(st, 6, r->lift_reason, sizeof r->lift_reason);
	r->ledger_index = sqlite3_column_int64(st, 7);
}

moat_err_t moat_store_action_get(moat_store_t *s, int64_t id, moat_action_row_t *out,
				 moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ACTION_GET,
					    "SELECT " ACTION_COLS " FROM detect_actions WHERE id = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_int64(st, 1, id);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		action_row(st, out);
		sqlite3_reset(st);
		return MOAT_OK;
	}
	sqlite3_reset(st);
	if (r == SQLITE_DONE)
		return moat_error_set(err, MOAT_ENOTFOUND, "id", "no action %lld", (long long)id);
	return db_err(s, err, "action");
}

moat_err_t moat_store_action_lift(moat_store_t *s, int64_t id, const char *reason, moat_time_t at,
				  moat_error_t *err)
{
	if (!reason || !*reason || !moat_utf8_valid(reason, strlen(reason)) ||
	    moat_utf8_len(reason, strlen(reason)) > MOAT_TEXT_MAX)
		return moat_error_set(err, MOAT_EINVAL, "reason", "a reason of 1..%d characters is required",
				      MOAT_TEXT_MAX);
	moat_action_row_t row;
	moat_err_t rc = moat_store_action_get(s, id, &row, err);
	if (rc != MOAT_OK)
		return rc;
	if (row.lifted_at != MOAT_TIME_NONE)
		return moat_error_set(err, MOAT_ECONFLICT, "id", "action %lld is already lifted",
				      (long long)id);
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ACTION_LIFT,
					    "UPDATE detect_actions SET lifted_at = ?, lift_reason = ?"
					    " WHERE id = ? AND lifted_at IS NULL",
					    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_int64(st, 1, at);
	sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, id);
	return moat_sqlite_step_done(s, st, err);
}

moat_err_t moat_store_action_list(moat_store_t *s, bool active_only,
				  int (*fn)(void *ctx, const moat_action_row_t *row), void *ctx,
				  moat_error_t *err)
{
	sqlite3_stmt *st =
	    active_only ? moat_sqlite_stmt(s, STMT_ACTION_LIST_ACTIVE,
					   "SELECT " ACTION_COLS " FROM detect_actions"
					   " WHERE lifted_at IS NULL ORDER BY id DESC",
					   err)
			: moat_sqlite_stmt(s, STMT_ACTION_LIST_ALL,
					   "SELECT " ACTION_COLS " FROM detect_actions ORDER BY id DESC",
					   err);
	if (!st)
		return MOAT_EDB;
	moat_action_row_t row;
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		action_row(st, &row);
		if (fn(ctx, &row) != 0) {
			sqlite3_reset(st);
			return MOAT_OK;
		}
	}
	sqlite3_reset(st);
	return r == SQLITE_DONE ? MOAT_OK : db_err(s, err, "action list");
}

moat_err_t moat_store_principal_auth(moat_store_t *s, const uint8_t hash[32],
				     moat_principal_row_t *out, moat_detect_action_t *action,
				     moat_error_t *err)
{
	int act = -1;
	moat_err_t rc = moat_sqlite_principal_by_key(
	    s, STMT_PRINCIPAL_AUTH,
	    "SELECT " PRINCIPAL_COLS ", (SELECT max(action) FROM detect_actions"
	    " WHERE principal = principals.principal AND lifted_at IS NULL)"
	    " FROM principals WHERE key_hash = ?1",
	    hash, out, &act, err);
	*action = rc == MOAT_OK && act >= 0 ? (moat_detect_action_t)act : MOAT_ACTION_NONE;
	return rc;
}

moat_err_t moat_store_action_for(moat_store_t *s, const char *principal, moat_detect_action_t *out,
				 moat_error_t *err)
{
	*out = MOAT_ACTION_NONE;
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ACTION_FOR,
					    "SELECT max(action) FROM detect_actions"
					    " WHERE principal = ? AND lifted_at IS NULL",
					    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*out = (moat_detect_action_t)sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	return (r == SQLITE_ROW || r == SQLITE_DONE) ? MOAT_OK : db_err(s, err, "action for");
}
