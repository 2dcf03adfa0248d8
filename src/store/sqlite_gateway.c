/* SQLite tables of the gateway: virtual-number bindings and daily quotas. */
#include <stdio.h>
#include <string.h>

#include "store/sqlite_internal.h"

enum {
	STMT_VNUM_UPSERT = STMT_GATEWAY_BASE,
	STMT_VNUM_GET,
	STMT_VNUM_FIND,
	STMT_QUOTA_TAKE,
	STMT_QUOTA_USED,
};

static moat_err_t gw_db_error(moat_store_t *s, moat_error_t *err, const char *what)
{
	return moat_error_set(err, MOAT_EDB, NULL, "database error (%s): %s", what,
			      sqlite3_errmsg(s->db));
}

#define VNUM_COLS "id, number, order_id, principal, valid_from, valid_until, created_at"

static void vnum_row(sqlite3_stmt *st, moat_vnum_row_t *out)
{
	out->id = sqlite3_column_int64(st, 0);
	moat_sqlite_text(st, 1, out->number, sizeof out->number);
	moat_sqlite_text(st, 2, out->order_id, sizeof out->order_id);
	moat_sqlite_text(st, 3, out->principal, sizeof out->principal);
	out->valid_from = sqlite3_column_int64(st, 4);
	out->valid_until = sqlite3_column_int64(st, 5);
	out->created_at = sqlite3_column_int64(st, 6);
}

static moat_err_t vnum_get(moat_store_t *s, const char *order_id, const char *principal,
			   moat_vnum_row_t *out, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_VNUM_GET,
	    "SELECT " VNUM_COLS " FROM vnum_bindings WHERE order_id = ? AND principal = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, order_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, principal, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		vnum_row(st, out);
	sqlite3_reset(st);
	if (r == SQLITE_ROW)
		return MOAT_OK;
	return r == SQLITE_DONE ? MOAT_ENOTFOUND : gw_db_error(s, err, "virtual number");
}

/* Whether the binding row b needs no write for [from, until]. */
static bool vnum_covers(const moat_vnum_row_t *b, moat_time_t from, moat_time_t until)
{
	return b->valid_from <= from && b->valid_until >= until - 3600000;
}

moat_err_t moat_store_vnum_covering(moat_store_t *s, const char *order_id, const char *principal,
				    moat_time_t from, moat_time_t until, moat_vnum_row_t *out,
				    moat_error_t *err)
{
	moat_err_t rc = vnum_get(s, order_id, principal, out, err);
	if (rc == MOAT_OK && !vnum_covers(out, from, until))
		return MOAT_ENOTFOUND;
	return rc;
}

moat_err_t moat_store_vnum_bind(moat_store_t *s, const char *order_id, const char *principal,
				uint64_t pool_lo, uint64_t pool_hi, moat_time_t from,
				moat_time_t until, moat_time_t now, moat_vnum_row_t *out,
				moat_error_t *err)
{
	if (pool_lo > pool_hi || pool_hi > 99999999999999ull)
		return moat_error_set(err, MOAT_EINVAL, "virtual.pool",
				      "virtual number pool is empty");
	/* Most reads find a binding that already covers the window: answer them
	 * without a write, so concurrent readers never queue for SQLite's write
	 * lock. Widening by less than an hour is not worth a write either. */
	moat_err_t rc0 = vnum_get(s, order_id, principal, out, err);
	if (rc0 == MOAT_OK && vnum_covers(out, from, until))
		return MOAT_OK;
	if (rc0 != MOAT_OK && rc0 != MOAT_ENOTFOUND)
		return rc0;
	/* Insert with a random number; the conflict clause widens an existing
	 * binding instead. A clash on the number itself (another binding has it)
	 * fails the UNIQUE constraint and we draw again. */
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_VNUM_UPSERT,
	    "INSERT INTO vnum_bindings (order_id, principal, number, valid_from, valid_until,"
	    " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
	    " ON CONFLICT (order_id, principal) DO UPDATE SET"
	    " valid_from = min(valid_from, excluded.valid_from),"
	    " valid_until = max(valid_until, excluded.valid_until)",
	    err);
	if (!st)
		return MOAT_EDB;
	uint64_t span = pool_hi - pool_lo + 1;
	for (int attempt = 0; attempt < 32; attempt++) {
		uint64_t r;
		if (moat_random(&r, sizeof r) != MOAT_OK)
			return moat_error_set(err, MOAT_ECRYPTO, NULL,
					      "no randomness for a virtual number");
		char number[24];
		snprintf(number, sizeof number, "%llu", (unsigned long long)(pool_lo + r % span));
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		sqlite3_bind_text(st, 1, order_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, principal, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, number, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 4, from);
		sqlite3_bind_int64(st, 5, until);
		sqlite3_bind_int64(st, 6, now);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc == SQLITE_DONE)
			return vnum_get(s, order_id, principal, out, err);
		if (rc == SQLITE_BUSY)
			return moat_error_set(err, MOAT_EUNAVAIL, NULL, "database is busy");
		if (rc != SQLITE_CONSTRAINT)
			return gw_db_error(s, err, "virtual number bind");
	}
	return moat_error_set(err, MOAT_ELIMIT, "virtual.pool",
			      "virtual number pool exhausted (no free number in 32 draws)");
}

moat_err_t moat_store_vnum_find(moat_store_t *s, const char *number, moat_vnum_row_t *out,
				moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_VNUM_FIND, "SELECT " VNUM_COLS " FROM vnum_bindings WHERE number = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, number, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		vnum_row(st, out);
	sqlite3_reset(st);
	if (r == SQLITE_ROW)
		return MOAT_OK;
	if (r == SQLITE_DONE)
		return moat_error_set(err, MOAT_ENOTFOUND, "to", "no binding has this number");
	return gw_db_error(s, err, "virtual number find");
}

moat_err_t moat_store_quota_take(moat_store_t *s, const char *principal, int64_t day, int64_t limit,
				 int64_t *used, moat_error_t *err)
{
	if (limit <= 0) {
		*used = 0;
		return moat_error_set(err, MOAT_ELIMIT, "quota", "quota is 0");
	}
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_QUOTA_TAKE,
	    "INSERT INTO quota_use (principal, day, used) VALUES (?1, ?2, 1)"
	    " ON CONFLICT (principal, day) DO UPDATE SET used = used + 1 WHERE used < ?3"
	    " RETURNING used",
	    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, day);
	sqlite3_bind_int64(st, 3, limit);
	int r = sqlite3_step(st);
	int64_t v = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	if (r == SQLITE_ROW)
		r = sqlite3_step(st);
	sqlite3_reset(st);
	if (r == SQLITE_BUSY)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL, "database is busy");
	if (r != SQLITE_DONE)
		return gw_db_error(s, err, "quota");
	if (v == 0) {
		*used = limit;
		return moat_error_set(err, MOAT_ELIMIT, "quota", "daily quota of %lld reached",
				      (long long)limit);
	}
	*used = v;
	return MOAT_OK;
}

moat_err_t moat_store_quota_used(moat_store_t *s, const char *principal, int64_t day, int64_t *used,
				 moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_QUOTA_USED, "SELECT used FROM quota_use WHERE principal = ? AND day = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, day);
	int r = sqlite3_step(st);
	*used = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (r == SQLITE_ROW || r == SQLITE_DONE)
		return MOAT_OK;
	return gw_db_error(s, err, "quota used");
}
