/*
 * moat store: persistence of parties, principals, relations, orders and small
 * state, behind one interface with an SQLite backend (embedded default). The
 * interface carries no SQLite types so a PostgreSQL backend can implement it.
 *
 * A store handle is used by one thread at a time; threads open their own handle
 * (SQLite in WAL mode lets readers and one writer proceed together).
 * Every multi-row change happens inside begin/commit; on any error the caller
 * rolls back and nothing is half-written.
 *
 * Buyer PII never reaches the store in plaintext: orders carry an encrypted blob
 * (see crypto.h) and a keyed hash of the phone.
 */
#ifndef MOAT_STORE_H
#define MOAT_STORE_H

#include "moat/base.h"
#include "moat/model.h"

typedef struct moat_store moat_store_t;

/* Opens (create=true: creates) the SQLite database at path, applies pending schema
 * migrations, enables WAL. Refuses a file that is not a moat database. */
moat_err_t moat_store_open_sqlite(const char *path, bool create, moat_store_t **out,
				  moat_error_t *err) MOAT_MUST_CHECK;
void moat_store_close(moat_store_t *s);
/* Schema version after migrations. */
int moat_store_schema_version(moat_store_t *s);

moat_err_t moat_store_begin(moat_store_t *s, moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_commit(moat_store_t *s, moat_error_t *err) MOAT_MUST_CHECK;
void moat_store_rollback(moat_store_t *s);
/* As begin, for one large write (a file import): until commit or rollback the
 * handle keeps a small page cache, so written pages go to the WAL as they pile up
 * instead of all at commit. Same all-or-nothing transaction; commit and rollback
 * give the handle its usual cache back. */
moat_err_t moat_store_begin_bulk(moat_store_t *s, moat_error_t *err) MOAT_MUST_CHECK;
/* Groups the reads that follow, up to read_end, into one snapshot: SQLite then
 * takes its WAL read lock once instead of once per statement, which is most of
 * the cost of a short lookup. Nothing may be written between the two (a write
 * on a stale snapshot would fail with busy); read_end is a no-op when no
 * transaction is open, so it may be called on every path. */
moat_err_t moat_store_read_begin(moat_store_t *s, moat_error_t *err) MOAT_MUST_CHECK;
void moat_store_read_end(moat_store_t *s);
/* read_begin unless a transaction is already open: consecutive callers share
 * one snapshot (and one WAL read lock) until someone calls read_end. */
moat_err_t moat_store_read_keep(moat_store_t *s, moat_error_t *err) MOAT_MUST_CHECK;

/* Small key/value state (cursors, settings). Values up to 4 KiB. get: ENOTFOUND if absent. */
moat_err_t moat_store_meta_get(moat_store_t *s, const char *key, char *out, size_t cap,
			       moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_meta_set(moat_store_t *s, const char *key, const char *value,
			       moat_error_t *err) MOAT_MUST_CHECK;

/* ---- parties and principals ---- */

typedef struct moat_party_row {
	char party[MOAT_ID_MAX + 1];
	moat_party_kind_t kind;
	char name[4 * MOAT_NAME_MAX + 1];
} moat_party_row_t;

moat_err_t moat_store_party_put(moat_store_t *s, const moat_party_t *p, moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_party_get(moat_store_t *s, const char *id, moat_party_row_t *out,
				moat_error_t *err) MOAT_MUST_CHECK;

typedef struct moat_principal_row {
	char principal[MOAT_ID_MAX + 1];
	char party[MOAT_ID_MAX + 1];
	moat_role_t role;
	char name[4 * MOAT_NAME_MAX + 1];
	char shift[12]; /* "" if none */
	moat_principal_status_t status;
	bool has_key;      /* an API key hash is set */
	bool has_password; /* a password hash is set */
	moat_time_t created_at;
} moat_principal_row_t;

/* Insert or update (party, role, name, shift); status and credentials are kept.
 * The party must exist (MOAT_ENOTFOUND naming "party" otherwise). */
moat_err_t moat_store_principal_put(moat_store_t *s, const moat_principal_t *p,
				    moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_principal_get(moat_store_t *s, const char *id, moat_principal_row_t *out,
				    moat_error_t *err) MOAT_MUST_CHECK;
/* Calls fn for each principal ordered by id; fn returning non-zero stops. */
moat_err_t moat_store_principal_list(moat_store_t *s,
				     int (*fn)(void *ctx, const moat_principal_row_t *row), void *ctx,
				     moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_principal_set_status(moat_store_t *s, const char *id,
					   moat_principal_status_t st, moat_error_t *err) MOAT_MUST_CHECK;
/* Replaces the API key hash (revoking the previous key). */
moat_err_t moat_store_principal_set_key(moat_store_t *s, const char *id, const uint8_t hash[32],
					moat_error_t *err) MOAT_MUST_CHECK;
/* Finds the principal whose key hash equals hash (the final comparison is
 * constant-time). MOAT_EDENIED if none. */
moat_err_t moat_store_principal_by_key(moat_store_t *s, const uint8_t hash[32],
				       moat_principal_row_t *out, moat_error_t *err) MOAT_MUST_CHECK;
/* Password hash in PHC string form (argon2id), set and get (cap >= 256). */
moat_err_t moat_store_principal_set_password(moat_store_t *s, const char *id, const char *phc,
					     moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_principal_get_password(moat_store_t *s, const char *id, char *phc,
					     size_t cap, moat_error_t *err) MOAT_MUST_CHECK;

/* ---- relations ---- */

/* Adds a relation; re-adding the same (kind, order/merchant, principal, ticket)
 * updates its window instead of duplicating it. */
moat_err_t moat_store_relation_put(moat_store_t *s, const moat_relation_t *r,
				   moat_error_t *err) MOAT_MUST_CHECK;

/* The window of principal's latest assign relation on an order, whenever it
 * holds (the virtual number's validity follows it). */
typedef struct moat_assign_window {
	bool found;
	moat_time_t from, until; /* MOAT_TIME_NONE: open */
} moat_assign_window_t;

/* Bits of MOAT_REL_* (1u << kind) that hold for principal on this order at time
 * `at`: an assign or ticket on the order whose window contains at, or an
 * authorize of the order's merchant whose window contains at. With assign not
 * NULL, also the latest assign's window (found false if none), from the same
 * look-up. */
moat_err_t moat_store_relation_check(moat_store_t *s, const char *principal, const char *order_id,
				     const char *merchant, moat_time_t at, unsigned *mask,
				     moat_assign_window_t *assign,
				     moat_error_t *err) MOAT_MUST_CHECK;

/* ---- orders ---- */

/* An order as stored: general fields in clear, PII as one encrypted blob. */
typedef struct moat_order_row {
	char order_id[MOAT_ID_MAX + 1];
	char merchant[MOAT_ID_MAX + 1];
	moat_time_t placed_at;
	moat_order_status_t status;
	char province[129], city[129], district[129];
	char *items_json; /* JSON array of items (malloc'd) */
	char carrier[MOAT_ID_MAX + 1];
	char waybill[MOAT_ID_MAX + 1];
	moat_time_t shipped_at, delivered_at;
	bool honey;
	char key_id[16];
	uint8_t *pii;    /* encrypted blob (malloc'd) */
	size_t pii_len;
	uint8_t phone_hash[32];
	moat_time_t updated_at;
} moat_order_row_t;

/* Frees the malloc'd members; the row itself is caller's. */
void moat_order_row_clear(moat_order_row_t *r);

/* Insert, or update an existing order id (status, shipping, PII, items) without
 * duplicating it. The merchant must exist as a party. */
moat_err_t moat_store_order_put(moat_store_t *s, const moat_order_row_t *r,
				moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_order_get(moat_store_t *s, const char *id, moat_order_row_t *out,
				moat_error_t *err) MOAT_MUST_CHECK;

typedef struct moat_order_filter {
	const char *merchant; /* NULL = any */
	int status;           /* -1 = any */
	moat_time_t since;    /* placed_at >= since; MOAT_TIME_NONE = any */
	const char *after_id; /* cursor: order ids > after_id; NULL = from start */
	size_t limit;
} moat_order_filter_t;

/* Calls fn for each matching order ordered by id; fn returning non-zero stops. */
moat_err_t moat_store_order_list(moat_store_t *s, const moat_order_filter_t *f,
				 int (*fn)(void *ctx, const moat_order_row_t *row), void *ctx,
				 moat_error_t *err) MOAT_MUST_CHECK;
/* Orders whose phone hash equals hash (ids into fn). */
moat_err_t moat_store_order_by_phone(moat_store_t *s, const uint8_t hash[32],
				     int (*fn)(void *ctx, const char *order_id), void *ctx,
				     moat_error_t *err) MOAT_MUST_CHECK;
/* Up to limit orders whose key_id differs from key_id (for rotation). */
moat_err_t moat_store_order_list_stale_key(moat_store_t *s, const char *key_id, size_t limit,
					   int (*fn)(void *ctx, const moat_order_row_t *row),
					   void *ctx, moat_error_t *err) MOAT_MUST_CHECK;
/* Replaces one order's PII blob and key id only if its key id is still old_key_id
 * (a concurrent update wins). */
moat_err_t moat_store_order_rekey(moat_store_t *s, const char *order_id, const char *old_key_id,
				  const char *new_key_id, const uint8_t *pii, size_t pii_len,
				  moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_store_order_count(moat_store_t *s, int64_t *n, moat_error_t *err) MOAT_MUST_CHECK;
/* The merchant of an order (cheap: no PII is read). ENOTFOUND if unknown. */
moat_err_t moat_store_order_merchant(moat_store_t *s, const char *id, char *out, size_t cap,
				     moat_error_t *err) MOAT_MUST_CHECK;

/* ---- gateway state: virtual numbers and quotas (src/store/sqlite_gateway.c) ---- */

/* A virtual phone number bound to (order, recipient principal). Bindings are never
 * deleted or re-used: a call to an expired number still names its recipient. */
typedef struct moat_vnum_row {
	int64_t id;
	char number[24];
	char order_id[MOAT_ID_MAX + 1];
	char principal[MOAT_ID_MAX + 1];
	moat_time_t valid_from, valid_until, created_at;
} moat_vnum_row_t;

/* Returns the binding of (order_id, principal), creating it with a number drawn
 * at random from the pool [pool_lo, pool_hi] that no binding ever had. An existing
 * binding keeps its number; its window is widened to cover [from, until] (an
 * extension of the end by less than an hour is skipped, saving a write).
 * MOAT_ELIMIT if no free number was found (pool exhausted). */
moat_err_t moat_store_vnum_bind(moat_store_t *s, const char *order_id, const char *principal,
				uint64_t pool_lo, uint64_t pool_hi, moat_time_t from,
				moat_time_t until, moat_time_t now, moat_vnum_row_t *out,
				moat_error_t *err) MOAT_MUST_CHECK;
/* The binding of (order_id, principal) if it exists and already covers what
 * moat_store_vnum_bind would make it cover for [from, until] (a read only, for
 * use inside a read snapshot and without the writers' lock); MOAT_ENOTFOUND if
 * there is none or it would be widened: call moat_store_vnum_bind then. */
moat_err_t moat_store_vnum_covering(moat_store_t *s, const char *order_id, const char *principal,
				    moat_time_t from, moat_time_t until, moat_vnum_row_t *out,
				    moat_error_t *err) MOAT_MUST_CHECK;
/* The binding that owns number; MOAT_ENOTFOUND if none ever did. */
moat_err_t moat_store_vnum_find(moat_store_t *s, const char *number, moat_vnum_row_t *out,
				moat_error_t *err) MOAT_MUST_CHECK;

/* Counts one plaintext read of principal on day (a policy day number) if fewer
 * than limit were counted so far: *used gets the new count. At the limit nothing
 * is counted and MOAT_ELIMIT is returned with *used = limit. Atomic across
 * handles. */
moat_err_t moat_store_quota_take(moat_store_t *s, const char *principal, int64_t day,
				 int64_t limit, int64_t *used, moat_error_t *err) MOAT_MUST_CHECK;
/* Plaintext reads counted for principal on day (0 if none). */
moat_err_t moat_store_quota_used(moat_store_t *s, const char *principal, int64_t day,
				 int64_t *used, moat_error_t *err) MOAT_MUST_CHECK;

#endif
