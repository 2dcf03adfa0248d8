/*
 * SQLite backend of the store interface (include/moat/store.h).
 *
 * Every statement is prepared once per handle and cached (prepared statements
 * only; values are always bound, never spliced into SQL). Schema changes are a
 * list of migrations applied in order inside one transaction each; PRAGMA
 * user_version records how many have run and PRAGMA application_id marks the
 * file as moat's so a foreign database is refused rather than altered.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "moat/crypto.h"
#include "store/sqlite_internal.h"

#define MOAT_APPLICATION_ID 0x6d6f6174 /* "moat" */

/* Page cache of a handle, in KiB (negative: SQLite's unit for KiB). */
#define CACHE_KIB "-65536"
/* Page cache during a bulk write (moat_store_begin_bulk): SQLite keeps every page
 * a transaction dirties in the cache until the cache is full, so a 100k-order
 * import held some 40 MB of fresh pages (each one a page fault) and wrote them
 * all at commit. A small cache spills dirty pages to the WAL as they pile up and
 * reuses the memory: about a quarter less time in the writer per order (100k-order
 * import, writer alone, same run as a plain-SQLite baseline). Spilled frames
 * carry no commit mark, so the batch stays all-or-nothing. */
#define BULK_CACHE_KIB "-2048"

/*
 * Migrations: append only, never edit a released one. Modules that keep their own
 * tables (gateway, detector, tracer) append their CREATE TABLEs here as new
 * entries.
 */
static const char *const migrations[] = {
    /* 1: core objects */
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE parties (party TEXT PRIMARY KEY, kind INTEGER NOT NULL, name TEXT NOT NULL)"
    "  WITHOUT ROWID;"
    "CREATE TABLE principals (principal TEXT PRIMARY KEY, party TEXT NOT NULL REFERENCES parties,"
    "  role INTEGER NOT NULL, name TEXT NOT NULL DEFAULT '', shift TEXT NOT NULL DEFAULT '',"
    "  status INTEGER NOT NULL DEFAULT 0, key_hash BLOB UNIQUE, password TEXT,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE relations (id INTEGER PRIMARY KEY, kind INTEGER NOT NULL,"
    "  order_id TEXT NOT NULL, merchant TEXT NOT NULL, principal TEXT NOT NULL,"
    "  ticket TEXT NOT NULL, from_ms INTEGER, until_ms INTEGER,"
    "  UNIQUE (kind, order_id, merchant, principal, ticket));"
    "CREATE INDEX relations_by_order ON relations (principal, order_id);"
    "CREATE INDEX relations_by_merchant ON relations (principal, merchant) WHERE kind = 2;"
    "CREATE TABLE orders (order_id TEXT PRIMARY KEY, merchant TEXT NOT NULL REFERENCES parties,"
    "  placed_at INTEGER NOT NULL, status INTEGER NOT NULL, province TEXT NOT NULL,"
    "  city TEXT NOT NULL, district TEXT NOT NULL, items TEXT NOT NULL,"
    "  carrier TEXT NOT NULL DEFAULT '', waybill TEXT NOT NULL DEFAULT '',"
    "  shipped_at INTEGER, delivered_at INTEGER, honey INTEGER NOT NULL DEFAULT 0,"
    "  key_id TEXT NOT NULL, pii BLOB NOT NULL, phone_hash BLOB NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX orders_by_phone ON orders (phone_hash);"
    "CREATE INDEX orders_by_merchant ON orders (merchant, order_id);",
    /* 2: detector alerts and actions (src/store/sqlite_detect.c) */
    "CREATE TABLE detect_alerts (id TEXT PRIMARY KEY, rule TEXT NOT NULL, title TEXT NOT NULL,"
    "  severity INTEGER NOT NULL, action INTEGER NOT NULL, principal TEXT NOT NULL,"
    "  group_by TEXT NOT NULL, key TEXT NOT NULL, time INTEGER NOT NULL,"
    "  trigger_index INTEGER NOT NULL, value REAL NOT NULL, threshold REAL NOT NULL,"
    "  count INTEGER NOT NULL, evidence TEXT NOT NULL, ledger_index INTEGER NOT NULL,"
    "  status INTEGER NOT NULL DEFAULT 0, resolved_at INTEGER,"
    "  resolution TEXT NOT NULL DEFAULT '') WITHOUT ROWID;"
    "CREATE INDEX detect_alerts_by_trigger ON detect_alerts (trigger_index);"
    "CREATE TABLE detect_actions (id INTEGER PRIMARY KEY, principal TEXT NOT NULL,"
    "  action INTEGER NOT NULL, alert_id TEXT NOT NULL, applied_at INTEGER NOT NULL,"
    "  lifted_at INTEGER, lift_reason TEXT NOT NULL DEFAULT '', ledger_index INTEGER NOT NULL);"
    "CREATE INDEX detect_actions_active ON detect_actions (principal) WHERE lifted_at IS NULL;",
    /* 3: gateway: virtual-number bindings (kept after expiry) and daily quotas */
    "CREATE TABLE vnum_bindings (id INTEGER PRIMARY KEY, order_id TEXT NOT NULL,"
    "  principal TEXT NOT NULL, number TEXT NOT NULL UNIQUE, valid_from INTEGER NOT NULL,"
    "  valid_until INTEGER NOT NULL, created_at INTEGER NOT NULL,"
    "  UNIQUE (order_id, principal));"
    "CREATE TABLE quota_use (principal TEXT NOT NULL, day INTEGER NOT NULL,"
    "  used INTEGER NOT NULL, PRIMARY KEY (principal, day)) WITHOUT ROWID;",
    /* 4: tracer: scam reports, cases, calls seen on the ledger, honey orders
     * (src/store/sqlite_trace.c) */
    "CREATE TABLE trace_reports (report_id TEXT PRIMARY KEY, order_id TEXT NOT NULL,"
    "  contact_time INTEGER NOT NULL, channel TEXT NOT NULL, quoted INTEGER NOT NULL,"
    "  scammer_contact TEXT NOT NULL, loss_cents INTEGER NOT NULL,"
    "  ledger_index INTEGER NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX trace_reports_by_time ON trace_reports (contact_time);"
    "CREATE TABLE trace_cases (case_id TEXT PRIMARY KEY, title TEXT NOT NULL,"
    "  window_from INTEGER, window_until INTEGER, explicit INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE trace_case_reports (case_id TEXT NOT NULL, report_id TEXT NOT NULL,"
    "  PRIMARY KEY (case_id, report_id)) WITHOUT ROWID;"
    "CREATE TABLE trace_calls (ledger_index INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
    "  principal TEXT NOT NULL, order_id TEXT NOT NULL, number TEXT NOT NULL,"
    "  caller TEXT NOT NULL);"
    "CREATE INDEX trace_calls_by_number ON trace_calls (number);"
    "CREATE TABLE trace_honey (order_id TEXT PRIMARY KEY, principal TEXT NOT NULL,"
    "  phone TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL) WITHOUT ROWID;",
    /* 5: cheaper order indexes for bulk import. Every imported order costs one
     * random insert into the phone index: index the first 8 bytes of the HMAC
     * (half the entry, a shorter compare) and compare all 32 on look-up (see
     * moat_store_order_by_phone). orders_by_merchant served no query (order
     * listing walks the primary key) yet cost an index insert per order. */
    "DROP INDEX orders_by_phone;"
    "DROP INDEX orders_by_merchant;"
    "CREATE INDEX orders_by_phone_prefix ON orders (substr(phone_hash, 1, 8));",
};

static moat_err_t db_error(moat_store_t *s, moat_error_t *err, const char *what)
{
	return moat_error_set(err, MOAT_EDB, NULL, "database error (%s): %s", what, sqlite3_errmsg(s->db));
}

sqlite3_stmt *moat_sqlite_stmt(moat_store_t *s, int id, const char *sql, moat_error_t *err)
{
	if (id < 0 || id >= MOAT_SQLITE_MAX_STMTS) {
		moat_error_set(err, MOAT_EDB, NULL, "statement id out of range");
		return NULL;
	}
	sqlite3_stmt *st = s->stmts[id];
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return st;
	}
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		db_error(s, err, "prepare");
		return NULL;
	}
	s->stmts[id] = st;
	return st;
}

moat_err_t moat_sqlite_step_done(moat_store_t *s, sqlite3_stmt *st, moat_error_t *err)
{
	int r = sqlite3_step(st);
	sqlite3_reset(st);
	if (r == SQLITE_DONE)
		return MOAT_OK;
	if (r == SQLITE_CONSTRAINT)
		return moat_error_set(err, MOAT_ECONFLICT, NULL, "constraint violated: %s",
				      sqlite3_errmsg(s->db));
	if (r == SQLITE_BUSY)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL, "database is busy");
	return db_error(s, err, "step");
}

static moat_err_t exec(moat_store_t *s, const char *sql, moat_error_t *err)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		moat_err_t rc = moat_error_set(err, MOAT_EDB, NULL, "database error: %s", msg ? msg : "?");
		sqlite3_free(msg);
		return rc;
	}
	return MOAT_OK;
}

static int pragma_int(moat_store_t *s, const char *sql)
{
	sqlite3_stmt *st;
	int v = -1;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static moat_err_t migrate(moat_store_t *s, moat_error_t *err)
{
	int appid = pragma_int(s, "PRAGMA application_id");
	int version = pragma_int(s, "PRAGMA user_version");
	int tables = pragma_int(s, "SELECT count(*) FROM sqlite_master");
	if (appid != MOAT_APPLICATION_ID && (appid != 0 || version != 0 || tables != 0))
		return moat_error_set(err, MOAT_ECORRUPT, NULL,
				      "%s is not a moat database (foreign SQLite file); refusing to use it",
				      sqlite3_db_filename(s->db, "main"));
	int n = (int)MOAT_ARRAY_LEN(migrations);
	if (version > n)
		return moat_error_set(err, MOAT_ECORRUPT, NULL,
				      "database schema version %d is newer than this moat (%d); upgrade moat",
				      version, n);
	for (int v = version; v < n; v++) {
		char pragma[96];
		moat_err_t rc = exec(s, "BEGIN IMMEDIATE", err);
		if (rc != MOAT_OK)
			return rc;
		snprintf(pragma, sizeof pragma, "PRAGMA application_id=%d; PRAGMA user_version=%d;",
			 MOAT_APPLICATION_ID, v + 1);
		rc = exec(s, migrations[v], err);
		if (rc == MOAT_OK)
			rc = exec(s, pragma, err);
		if (rc == MOAT_OK)
			rc = exec(s, "COMMIT", err);
		if (rc != MOAT_OK) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
	}
	s->schema_version = n;
	return MOAT_OK;
}

/* SQLite's allocation statistics take a process-wide mutex on every malloc and
 * free; with a store handle per server thread that mutex was contended on every
 * statement. Nothing reads the statistics. Must run before sqlite3_initialize. */
static void sqlite_global_config(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

moat_err_t moat_store_open_sqlite(const char *path, bool create, moat_store_t **out, moat_error_t *err)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, sqlite_global_config);
	*out = NULL;
	struct stat st;
	if (!create && stat(path, &st) != 0)
		return moat_error_set(err, MOAT_ENOTFOUND, NULL, "database %s does not exist", path);
	moat_store_t *s = calloc(1, sizeof *s);
	if (!s)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
	moat_err_t rc = MOAT_OK;
	if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
		rc = moat_error_set(err, MOAT_EDB, NULL, "cannot open database %s: %s", path,
				    s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 0);
	sqlite3_busy_timeout(s->db, 5000);
	/* A file that is not SQLite at all fails on the first read. */
	if (pragma_int(s, "PRAGMA schema_version") < 0) {
		rc = moat_error_set(err, MOAT_ECORRUPT, NULL, "%s is not a database (corrupt or foreign file)",
				    path);
		goto fail;
	}
	rc = exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
			  " PRAGMA cache_size=" CACHE_KIB "; PRAGMA temp_store=MEMORY;", err);
	if (rc == MOAT_OK)
		rc = migrate(s, err);
	if (rc != MOAT_OK)
		goto fail;
	if (create)
		chmod(path, 0600);
	*out = s;
	return MOAT_OK;
fail:
	moat_store_close(s);
	return rc;
}

void moat_store_close(moat_store_t *s)
{
	if (!s)
		return;
	for (int i = 0; i < MOAT_SQLITE_MAX_STMTS; i++)
		sqlite3_finalize(s->stmts[i]);
	sqlite3_close(s->db);
	free(s);
}

int moat_store_schema_version(moat_store_t *s) { return s->schema_version; }

moat_err_t moat_store_begin(moat_store_t *s, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_BEGIN, "BEGIN IMMEDIATE", err);
	return st ? moat_sqlite_step_done(s, st, err) : MOAT_EDB;
}

moat_err_t moat_store_begin_bulk(moat_store_t *s, moat_error_t *err)
{
	moat_err_t rc = moat_store_begin(s, err);
	if (rc != MOAT_OK)
		return rc;
	rc = exec(s, "PRAGMA cache_size=" BULK_CACHE_KIB, err);
	if (rc != MOAT_OK) {
		moat_store_rollback(s);
		return rc;
	}
	s->bulk = true;
	return MOAT_OK;
}

/* Gives a handle that ran a bulk write its usual cache back. The pages the bulk
 * write evicted are read again on demand. */
static void end_bulk(moat_store_t *s)
{
	if (!s->bulk)
		return;
	s->bulk = false;
	(void)sqlite3_exec(s->db, "PRAGMA cache_size=" CACHE_KIB, NULL, NULL, NULL);
}

moat_err_t moat_store_commit(moat_store_t *s, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_COMMIT, "COMMIT", err);
	moat_err_t rc = st ? moat_sqlite_step_done(s, st, err) : MOAT_EDB;
	if (rc == MOAT_OK)
		end_bulk(s);
	return rc;
}

void moat_store_rollback(moat_store_t *s)
{
	s->known_party[0] = '\0'; /* the party may have been inserted by the rolled-back batch */
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	end_bulk(s);
}

moat_err_t moat_store_read_begin(moat_store_t *s, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_READ_BEGIN, "BEGIN DEFERRED", err);
	return st ? moat_sqlite_step_done(s, st, err) : MOAT_EDB;
}

moat_err_t moat_store_read_keep(moat_store_t *s, moat_error_t *err)
{
	return sqlite3_get_autocommit(s->db) ? moat_store_read_begin(s, err) : MOAT_OK;
}

void moat_store_read_end(moat_store_t *s)
{
	if (sqlite3_get_autocommit(s->db))
		return;
	moat_error_t e;
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_READ_END, "COMMIT", &e);
	if (!st || moat_sqlite_step_done(s, st, &e) != MOAT_OK)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- meta ---- */

moat_err_t moat_store_meta_get(moat_store_t *s, const char *key, char *out, size_t cap, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_META_GET, "SELECT value FROM meta WHERE key = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		moat_sqlite_text(st, 0, out, cap);
		sqlite3_reset(st);
		return MOAT_OK;
	}
	sqlite3_reset(st);
	return r == SQLITE_DONE ? MOAT_ENOTFOUND : db_error(s, err, "meta");
}

moat_err_t moat_store_meta_set(moat_store_t *s, const char *key, const char *value, moat_error_t *err)
{
	if (strlen(value) > 4096)
		return moat_error_set(err, MOAT_ELIMIT, key, "meta value longer than 4096 bytes");
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_META_SET,
					    "INSERT INTO meta (key, value) VALUES (?, ?)"
					    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
					    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	return moat_sqlite_step_done(s, st, err);
}

/* ---- parties ---- */

moat_err_t moat_store_party_put(moat_store_t *s, const moat_party_t *p, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_PARTY_PUT,
					    "INSERT INTO parties (party, kind, name) VALUES (?, ?, ?)"
					    " ON CONFLICT (party) DO UPDATE SET kind = excluded.kind,"
					    " name = excluded.name",
					    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, p->party, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, (int)p->kind);
	sqlite3_bind_text(st, 3, p->name, -1, SQLITE_STATIC);
	return moat_sqlite_step_done(s, st, err);
}

moat_err_t moat_store_party_get(moat_store_t *s, const char *id, moat_party_row_t *out, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_PARTY_GET,
					    "SELECT party, kind, name FROM parties WHERE party = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r != SQLITE_ROW) {
		sqlite3_reset(st);
		return r == SQLITE_DONE ? moat_error_set(err, MOAT_ENOTFOUND, "party", "unknown party %s", id)
					: db_error(s, err, "party");
	}
	moat_sqlite_text(st, 0, out->party, sizeof out->party);
	out->kind = (moat_party_kind_t)sqlite3_column_int(st, 1);
	moat_sqlite_text(st, 2, out->name, sizeof out->name);
	sqlite3_reset(st);
	return MOAT_OK;
}

/* ---- principals ---- */

void moat_sqlite_text(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
	if (cap == 0)
		return;
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(dst, t, n);
	dst[n] = '\0';
}

static void principal_row(sqlite3_stmt *st, moat_principal_row_t *r)
{
	/* every request's authentication reads one: no printf per column */
	moat_sqlite_text(st, 0, r->principal, sizeof r->principal);
	moat_sqlite_text(st, 1, r->party, sizeof r->party);
	r->role = (moat_role_t)sqlite3_column_int(st, 2);
	moat_sqlite_text(st, 3, r->name, sizeof r->name);
	moat_sqlite_text(st, 4, r->shift, sizeof r->shift);
	r->status = (moat_principal_status_t)sqlite3_column_int(st, 5);
	r->has_key = sqlite3_column_int(st, 6) != 0;
	r->has_password = sqlite3_column_int(st, 7) != 0;
	r->created_at = sqlite3_column_int64(st, 8);
}

static moat_err_t party_exists(moat_store_t *s, const char *party, const char *field, moat_error_t *err)
{
	if (strcmp(s->known_party, party) == 0)
		return MOAT_OK;
	moat_party_row_t row;
	moat_err_t rc = moat_store_party_get(s, party, &row, err);
	if (rc == MOAT_OK)
		snprintf(s->known_party, sizeof s->known_party, "%s", party);
	if (rc == MOAT_ENOTFOUND)
		return moat_error_set(err, MOAT_EINVAL, field,
				      "unknown party \"%s\" (import it with `moat import parties` first)", party);
	return rc;
}

moat_err_t moat_store_principal_put(moat_store_t *s, const moat_principal_t *p, moat_error_t *err)
{
	moat_err_t rc = party_exists(s, p->party, "party", err);
	if (rc != MOAT_OK)
		return rc;
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_PRINCIPAL_PUT,
	    "INSERT INTO principals (principal, party, role, name, shift, created_at)"
	    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (principal) DO UPDATE SET party = excluded.party,"
	    " role = excluded.role, name = excluded.name, shift = excluded.shift",
	    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, p->principal, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, p->party, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)p->role);
	sqlite3_bind_text(st, 4, p->name ? p->name : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, p->shift ? p->shift : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, moat_now());
	return moat_sqlite_step_done(s, st, err);
}

moat_err_t moat_store_principal_get(moat_store_t *s, const char *id, moat_principal_row_t *out,
				    moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_PRINCIPAL_GET,
					    "SELECT " PRINCIPAL_COLS " FROM principals WHERE principal = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		principal_row(st, out);
	sqlite3_reset(st);
	if (r == SQLITE_ROW)
		return MOAT_OK;
	return r == SQLITE_DONE ? moat_error_set(err, MOAT_ENOTFOUND, "principal", "unknown principal %s", id)
				: db_error(s, err, "principal");
}

moat_err_t moat_store_principal_list(moat_store_t *s, int (*fn)(void *, const moat_principal_row_t *),
				     void *ctx, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_PRINCIPAL_LIST,
					    "SELECT " PRINCIPAL_COLS " FROM principals ORDER BY principal", err);
	if (!st)
		return MOAT_EDB;
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		moat_principal_row_t row;
		principal_row(st, &row);
		if (fn(ctx, &row))
			break;
	}
	sqlite3_reset(st);
	return (r == SQLITE_ROW || r == SQLITE_DONE) ? MOAT_OK : db_error(s, err, "principal list");
}

static moat_err_t expect_one_change(moat_store_t *s, const char *id, moat_error_t *err)
{
	return sqlite3_changes(s->db) == 1
		   ? MOAT_OK
		   : moat_error_set(err, MOAT_ENOTFOUND, "principal", "unknown principal %s", id);
}

moat_err_t moat_store_principal_set_status(moat_store_t *s, const char *id, moat_principal_status_t stt,
					   moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_PRINCIPAL_STATUS,
					    "UPDATE principals SET status = ? WHERE principal = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_int(st, 1, (int)stt);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	moat_err_t rc = moat_sqlite_step_done(s, st, err);
	return rc == MOAT_OK ? expect_one_change(s, id, err) : rc;
}

moat_err_t moat_store_principal_set_key(moat_store_t *s, const char *id, const uint8_t hash[32],
					moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_PRINCIPAL_KEY,
					    "UPDATE principals SET key_hash = ? WHERE principal = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	moat_err_t rc = moat_sqlite_step_done(s, st, err);
	return rc == MOAT_OK ? expect_one_change(s, id, err) : rc;
}

moat_err_t moat_store_principal_by_key(moat_store_t *s, const uint8_t hash[32], moat_principal_row_t *out,
				       moat_error_t *err)
{
	return moat_sqlite_principal_by_key(s, STMT_PRINCIPAL_BY_KEY,
					    "SELECT " PRINCIPAL_COLS " FROM principals WHERE key_hash = ?1",
					    hash, out, NULL, err);
}

moat_err_t moat_sqlite_principal_by_key(moat_store_t *s, int id, const char *sql,
					const uint8_t hash[32], moat_principal_row_t *out,
					int *extra, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, id, sql, err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	int r = sqlite3_step(st);
	bool ok = false;
	if (r == SQLITE_ROW) {
		/* The index look-up finds the row; the final comparison is constant-time. */
		const void *stored = sqlite3_column_blob(st, 9);
		ok = stored && sqlite3_column_bytes(st, 9) == 32 && moat_ct_equal(stored, hash, 32);
		if (ok)
			principal_row(st, out);
		if (ok && extra)
			*extra = sqlite3_column_type(st, 10) == SQLITE_NULL ? -1
									    : sqlite3_column_int(st, 10);
	}
	sqlite3_reset(st);
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		return db_error(s, err, "principal key");
	return ok ? MOAT_OK : moat_error_set(err, MOAT_EDENIED, NULL, "invalid API key");
}

moat_err_t moat_store_principal_set_password(moat_store_t *s, const char *id, const char *phc,
					     moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_PRINCIPAL_SETPW,
					    "UPDATE principals SET password = ? WHERE principal = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, phc, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	moat_err_t rc = moat_sqlite_step_done(s, st, err);
	return rc == MOAT_OK ? expect_one_change(s, id, err) : rc;
}

moat_err_t moat_store_principal_get_password(moat_store_t *s, const char *id, char *phc, size_t cap,
					     moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_PRINCIPAL_GETPW,
					    "SELECT password FROM principals WHERE principal = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	moat_err_t rc;
	if (r == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT) {
		moat_sqlite_text(st, 0, phc, cap);
		rc = MOAT_OK;
	} else if (r == SQLITE_ROW || r == SQLITE_DONE) {
		rc = moat_error_set(err, MOAT_ENOTFOUND, "principal", "no password set for %s", id);
	} else {
		rc = db_error(s, err, "password");
	}
	sqlite3_reset(st);
	return rc;
}

/* ---- relations ---- */

static void bind_time(sqlite3_stmt *st, int i, moat_time_t t)
{
	if (t == MOAT_TIME_NONE)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_int64(st, i, t);
}

static moat_time_t column_time(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? MOAT_TIME_NONE : sqlite3_column_int64(st, i);
}

moat_err_t moat_store_relation_put(moat_store_t *s, const moat_relation_t *r, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_RELATION_PUT,
	    "INSERT INTO relations (kind, order_id, merchant, principal, ticket, from_ms, until_ms)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, order_id, merchant, principal, ticket)"
	    " DO UPDATE SET from_ms = excluded.from_ms, until_ms = excluded.until_ms",
	    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_int(st, 1, (int)r->kind);
	sqlite3_bind_text(st, 2, r->order_id ? r->order_id : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->merchant ? r->merchant : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, r->principal, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, r->ticket ? r->ticket : "", -1, SQLITE_STATIC);
	bind_time(st, 6, r->from);
	bind_time(st, 7, r->until);
	return moat_sqlite_step_done(s, st, err);
}

moat_err_t moat_store_relation_check(moat_store_t *s, const char *principal, const char *order_id,
				     const char *merchant, moat_time_t at, unsigned *mask,
				     moat_assign_window_t *assign, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(
	    s, STMT_RELATION_CHECK,
	    /* Two indexed lookups, not one OR: SQLite cannot use relations_by_order's
	     * order_id column under the OR, and scanned every relation the principal
	     * holds (a courier holds thousands) on each read. The order's own
	     * relations (a few) come whatever their window, which is checked below,
	     * so that the latest assign's window comes with them. */
	    "SELECT kind, from_ms, until_ms, id FROM relations"
	    " WHERE principal = ?1 AND order_id = ?2 AND kind IN (0, 1)"
	    " UNION ALL SELECT kind, from_ms, until_ms, id FROM relations"
	    " WHERE principal = ?1 AND merchant = ?3 AND kind = 2"
	    " AND (from_ms IS NULL OR from_ms <= ?4) AND (until_ms IS NULL OR until_ms >= ?4)",
	    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, order_id ? order_id : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, merchant ? merchant : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, at);
	unsigned m = 0;
	int64_t latest = -1;
	moat_assign_window_t w = {false, MOAT_TIME_NONE, MOAT_TIME_NONE};
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		int kind = sqlite3_column_int(st, 0);
		moat_time_t from = column_time(st, 1), until = column_time(st, 2);
		if ((from == MOAT_TIME_NONE || from <= at) && (until == MOAT_TIME_NONE || until >= at))
			m |= 1u << kind;
		int64_t id = sqlite3_column_int64(st, 3);
		if (kind == MOAT_REL_ASSIGN && id > latest) {
			latest = id;
			w = (moat_assign_window_t){true, from, until};
		}
	}
	sqlite3_reset(st);
	if (r != SQLITE_DONE)
		return db_error(s, err, "relation check");
	*mask = m;
	if (assign)
		*assign = w;
	return MOAT_OK;
}

/* ---- orders ---- */

#define ORDER_COLS                                                                          \
	"order_id, merchant, placed_at, status, province, city, district, items, carrier, waybill," \
	" shipped_at, delivered_at, honey, key_id, pii, phone_hash, updated_at"

void moat_order_row_clear(moat_order_row_t *r)
{
	if (!r)
		return;
	free(r->items_json);
	free(r->pii);
	r->items_json = NULL;
	r->pii = NULL;
	r->pii_len = 0;
}

static moat_err_t order_row(sqlite3_stmt *st, moat_order_row_t *r, moat_error_t *err)
{
	memset(r, 0, sizeof *r);
#define COPY(dst, i) moat_sqlite_text(st, i, dst, sizeof dst) /* every read: no printf */
	COPY(r->order_id, 0);
	COPY(r->merchant, 1);
	r->placed_at = sqlite3_column_int64(st, 2);
	r->status = (moat_order_status_t)sqlite3_column_int(st, 3);
	COPY(r->province, 4);
	COPY(r->city, 5);
	COPY(r->district, 6);
	COPY(r->carrier, 8);
	COPY(r->waybill, 9);
	COPY(r->key_id, 13);
#undef COPY
	r->items_json = strdup((const char *)sqlite3_column_text(st, 7));
	r->shipped_at = column_time(st, 10);
	r->delivered_at = column_time(st, 11);
	r->honey = sqlite3_column_int(st, 12) != 0;
	int n = sqlite3_column_bytes(st, 14);
	r->pii = malloc(n > 0 ? (size_t)n : 1);
	if (!r->items_json || !r->pii) {
		moat_order_row_clear(r);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	if (n > 0)
		memcpy(r->pii, sqlite3_column_blob(st, 14), (size_t)n);
	r->pii_len = (size_t)n;
	if (sqlite3_column_bytes(st, 15) == 32)
		memcpy(r->phone_hash, sqlite3_column_blob(st, 15), 32);
	r->updated_at = sqlite3_column_int64(st, 16);
	return MOAT_OK;
}

/* Binds the columns of r to st in ORDER_COLS order (parameters 1..17). */
static void order_bind(sqlite3_stmt *st, const moat_order_row_t *r)
{
	sqlite3_bind_text(st, 1, r->order_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->merchant, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, r->placed_at);
	sqlite3_bind_int(st, 4, (int)r->status);
	sqlite3_bind_text(st, 5, r->province, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, r->city, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, r->district, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, r->items_json ? r->items_json : "[]", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, r->carrier, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, r->waybill, -1, SQLITE_STATIC);
	bind_time(st, 11, r->shipped_at);
	bind_time(st, 12, r->delivered_at);
	sqlite3_bind_int(st, 13, r->honey ? 1 : 0);
	sqlite3_bind_text(st, 14, r->key_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 15, r->pii, (int)r->pii_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 16, r->phone_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 17, moat_now());
}

/* An insert that does nothing on an existing order id, then an update of that
 * row only if nothing was inserted. One "INSERT ... ON CONFLICT DO UPDATE" does
 * the same, but with foreign keys on SQLite's upsert path costs about 2 us more
 * per new row than a plain insert (measured on 100k-order imports), and new rows
 * are the common case of an import. */
moat_err_t moat_store_order_put(moat_store_t *s, const moat_order_row_t *r, moat_error_t *err)
{
	moat_err_t rc = party_exists(s, r->merchant, "merchant", err);
	if (rc != MOAT_OK)
		return rc;
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ORDER_PUT,
					    "INSERT INTO orders (" ORDER_COLS
					    ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
					    " ON CONFLICT (order_id) DO NOTHING",
					    err);
	if (!st)
		return MOAT_EDB;
	order_bind(st, r);
	rc = moat_sqlite_step_done(s, st, err);
	if (rc != MOAT_OK || sqlite3_changes(s->db) > 0)
		return rc;
	st = moat_sqlite_stmt(
	    s, STMT_ORDER_UPDATE,
	    "UPDATE orders SET merchant = ?2, placed_at = ?3, status = ?4, province = ?5,"
	    " city = ?6, district = ?7, items = ?8, carrier = ?9, waybill = ?10, shipped_at = ?11,"
	    " delivered_at = ?12, honey = ?13, key_id = ?14, pii = ?15, phone_hash = ?16,"
	    " updated_at = ?17 WHERE order_id = ?1",
	    err);
	if (!st)
		return MOAT_EDB;
	order_bind(st, r);
	rc = moat_sqlite_step_done(s, st, err);
	if (rc == MOAT_OK && sqlite3_changes(s->db) != 1)
		rc = moat_error_set(err, MOAT_EDB, NULL, "order %s neither inserted nor updated",
				    r->order_id);
	return rc;
}

moat_err_t moat_store_order_get(moat_store_t *s, const char *id, moat_order_row_t *out, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ORDER_GET,
					    "SELECT " ORDER_COLS " FROM orders WHERE order_id = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	moat_err_t rc;
	if (r == SQLITE_ROW)
		rc = order_row(st, out, err);
	else if (r == SQLITE_DONE)
		rc = moat_error_set(err, MOAT_ENOTFOUND, "order_id", "unknown order %s", id);
	else
		rc = db_error(s, err, "order");
	sqlite3_reset(st);
	return rc;
}

static moat_err_t each_order(moat_store_t *s, sqlite3_stmt *st, int (*fn)(void *, const moat_order_row_t *),
			     void *ctx, moat_error_t *err)
{
	int r;
	moat_err_t rc = MOAT_OK;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		moat_order_row_t row;
		rc = order_row(st, &row, err);
		if (rc != MOAT_OK)
			break;
		int stop = fn(ctx, &row);
		moat_order_row_clear(&row);
		if (stop)
			break;
	}
	sqlite3_reset(st);
	if (rc == MOAT_OK && r != SQLITE_ROW && r != SQLITE_DONE)
		rc = db_error(s, err, "order list");
	return rc;
}

moat_err_t moat_store_order_list(moat_store_t *s, const moat_order_filter_t *f,
				 int (*fn)(void *, const moat_order_row_t *), void *ctx, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ORDER_LIST,
					    "SELECT " ORDER_COLS " FROM orders WHERE"
					    " (?1 IS NULL OR merchant = ?1) AND (?2 < 0 OR status = ?2)"
					    " AND (?3 IS NULL OR placed_at >= ?3) AND order_id > ?4"
					    " ORDER BY order_id LIMIT ?5",
					    err);
	if (!st)
		return MOAT_EDB;
	if (f->merchant)
		sqlite3_bind_text(st, 1, f->merchant, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, f->status);
	bind_time(st, 3, f->since);
	sqlite3_bind_text(st, 4, f->after_id ? f->after_id : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)f->limit);
	return each_order(s, st, fn, ctx, err);
}

moat_err_t moat_store_order_by_phone(moat_store_t *s, const uint8_t hash[32],
				     int (*fn)(void *, const char *), void *ctx, moat_error_t *err)
{
	/* The prefix term must match orders_by_phone_prefix's expression word for
	 * word for SQLite to search that index; the full hash then drops the rows
	 * whose first 8 bytes merely collide. */
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ORDER_BY_PHONE,
					    "SELECT order_id FROM orders WHERE substr(phone_hash, 1, 8) ="
					    " substr(?1, 1, 8) AND phone_hash = ?1 ORDER BY order_id",
					    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		if (fn(ctx, (const char *)sqlite3_column_text(st, 0)))
			break;
	sqlite3_reset(st);
	return (r == SQLITE_ROW || r == SQLITE_DONE) ? MOAT_OK : db_error(s, err, "order by phone");
}

moat_err_t moat_store_order_list_stale_key(moat_store_t *s, const char *key_id, size_t limit,
					   int (*fn)(void *, const moat_order_row_t *), void *ctx,
					   moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ORDER_STALE,
					    "SELECT " ORDER_COLS " FROM orders WHERE key_id <> ? LIMIT ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
	return each_order(s, st, fn, ctx, err);
}

moat_err_t moat_store_order_rekey(moat_store_t *s, const char *order_id, const char *old_key_id,
				  const char *new_key_id, const uint8_t *pii, size_t pii_len, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ORDER_REKEY,
					    "UPDATE orders SET pii = ?, key_id = ? WHERE order_id = ? AND key_id = ?",
					    err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_blob(st, 1, pii, (int)pii_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, new_key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, order_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, old_key_id, -1, SQLITE_STATIC);
	return moat_sqlite_step_done(s, st, err);
}

moat_err_t moat_store_order_count(moat_store_t *s, int64_t *n, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ORDER_COUNT, "SELECT count(*) FROM orders", err);
	if (!st)
		return MOAT_EDB;
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return r == SQLITE_ROW ? MOAT_OK : db_error(s, err, "count");
}

moat_err_t moat_store_order_merchant(moat_store_t *s, const char *id, char *out, size_t cap, moat_error_t *err)
{
	sqlite3_stmt *st = moat_sqlite_stmt(s, STMT_ORDER_MERCHANT,
					    "SELECT merchant FROM orders WHERE order_id = ?", err);
	if (!st)
		return MOAT_EDB;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		moat_sqlite_text(st, 0, out, cap);
	sqlite3_reset(st);
	if (r == SQLITE_ROW)
		return MOAT_OK;
	return r == SQLITE_DONE ? MOAT_ENOTFOUND : db_error(s, err, "order merchant");
}
