/*
 * Internals of the SQLite store shared by the files of src/store/ (sqlite.c and
 * the per-module table files). Not a public header.
 */
#ifndef MOAT_STORE_SQLITE_INTERNAL_H
#define MOAT_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>

#include "moat/store.h"

/* Cached statement slots. Modules with their own tables take ids from their own
 * range below so files never collide. */
enum {
	STMT_BEGIN = 0,
	STMT_COMMIT,
	STMT_META_GET,
	STMT_META_SET,
	STMT_PARTY_PUT,
	STMT_PARTY_GET,
	STMT_PRINCIPAL_PUT,
	STMT_PRINCIPAL_GET,
	STMT_PRINCIPAL_LIST,
	STMT_PRINCIPAL_STATUS,
	STMT_PRINCIPAL_KEY,
	STMT_PRINCIPAL_BY_KEY,
	STMT_PRINCIPAL_SETPW,
	STMT_PRINCIPAL_GETPW,
	STMT_RELATION_PUT,
	STMT_RELATION_CHECK,
	STMT_ORDER_PUT,
	STMT_ORDER_UPDATE,
	STMT_ORDER_GET,
	STMT_ORDER_LIST,
	STMT_ORDER_BY_PHONE,
	STMT_ORDER_STALE,
	STMT_ORDER_REKEY,
	STMT_ORDER_COUNT,
	STMT_ORDER_MERCHANT,
	STMT_READ_BEGIN,
	STMT_READ_END,
	STMT_CORE_END,
	STMT_GATEWAY_BASE = 40, /* src/store/sqlite_gateway.c: 40..79 */
	STMT_DETECT_BASE = 80,  /* src/store/sqlite_detect.c: 80..119 */
	STMT_TRACE_BASE = 120,  /* src/store/sqlite_trace.c: 120..159 */
	MOAT_SQLITE_MAX_STMTS = 160
};

struct moat_store {
	sqlite3 *db;
	int schema_version;
	sqlite3_stmt *stmts[MOAT_SQLITE_MAX_STMTS];
	/* Last party id known to exist: bulk imports name the same merchant row after
	 * row, and parties are never deleted, so one look-up serves the whole run. */
	char known_party[MOAT_ID_MAX + 1];
	bool bulk; /* in a transaction begun by moat_store_begin_bulk: small cache */
};

/* Returns the cached statement for id (preparing sql on first use), reset and
 * with bindings cleared; NULL with err set on failure. */
sqlite3_stmt *moat_sqlite_stmt(moat_store_t *s, int id, const char *sql, moat_error_t *err);
/* Steps a statement expected to finish without rows and resets it. */
moat_err_t moat_sqlite_step_done(moat_store_t *s, sqlite3_stmt *st, moat_error_t *err) MOAT_MUST_CHECK;

/* The columns principal rows are read from (moat_sqlite_principal_by_key). */
#define PRINCIPAL_COLS                                                                     \
	"principal, party, role, name, shift, status, key_hash IS NOT NULL, password IS NOT NULL," \
	" created_at, key_hash"
/* The principal holding API key hash, through statement id: sql selects
 * PRINCIPAL_COLS from principals by key_hash = ?1, then optionally one integer
 * column, stored in *extra (-1 when NULL; extra may be NULL). MOAT_EDENIED if no
 * principal holds the key (compared in constant time). */
moat_err_t moat_sqlite_principal_by_key(moat_store_t *s, int id, const char *sql,
					const uint8_t hash[32], moat_principal_row_t *out,
					int *extra, moat_error_t *err) MOAT_MUST_CHECK;
/* Copies a text column into dst (cap bytes, NUL-terminated, cut if longer; ""
 * for NULL). */
void moat_sqlite_text(sqlite3_stmt *st, int col, char *dst, size_t cap);

#endif
