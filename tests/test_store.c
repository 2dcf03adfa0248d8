/* Unit tests for the SQLite store: migrations, upserts, relations, rollback. */
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include <sqlite3.h>

#include "check.h"
#include "moat/store.h"
#include "store/sqlite_internal.h"

static int count_cb(void *ctx, const moat_principal_row_t *r)
{
	(void)r;
	(*(int *)ctx)++;
	return 0;
}

/* Collects order ids from moat_store_order_by_phone as "id,id,". */
static int phone_cb(void *ctx, const char *order_id)
{
	char *out = ctx;
	size_t n = strlen(out);
	snprintf(out + n, 64 - n, "%s,", order_id);
	return 0;
}

/* The orders found by phone hash h, as "id,id,"; "(error)" if the look-up failed. */
static const char *by_phone(moat_store_t *s, const uint8_t *h)
{
	static char found[64];
	moat_error_t e;
	found[0] = '\0';
	if (moat_store_order_by_phone(s, h, phone_cb, found, &e) != MOAT_OK)
		return "(error)";
	return found;
}

/* Runs sql on the database file at path directly, as an older moat would have. */
static int raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open(path, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

/* Whether the schema of the database at path has an object called name. */
static int raw_has(const char *path, const char *name)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int n = -1;
	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name = ?", -1, &st, NULL) ==
		SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int(st, 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static int cache_size(moat_store_t *s)
{
	sqlite3_stmt *st = NULL;
	int v = 0;
	if (sqlite3_prepare_v2(s->db, "PRAGMA cache_size", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Puts n orders B0.. with pii_len bytes of PII each; MOAT_OK or the first error. */
static moat_err_t put_many(moat_store_t *s, int n, size_t pii_len, moat_error_t *e)
{
	static uint8_t pii[4096];
	moat_order_row_t o = {0};
	snprintf(o.merchant, sizeof o.merchant, "m-zara");
	snprintf(o.key_id, sizeof o.key_id, "k1");
	o.shipped_at = o.delivered_at = MOAT_TIME_NONE;
	o.pii = pii;
	o.pii_len = pii_len;
	for (int i = 0; i < n; i++) {
		snprintf(o.order_id, sizeof o.order_id, "B%06d", i);
		memset(pii, i, pii_len);
		memcpy(o.phone_hash, &i, sizeof i);
		moat_err_t rc = moat_store_order_put(s, &o, e);
		if (rc != MOAT_OK)
			return rc;
	}
	return MOAT_OK;
}

static int order_cb(void *ctx, const moat_order_row_t *r)
{
	(void)r;
	(*(int *)ctx)++;
	return 0;
}

int main(void)
{
	char dir[] = "/tmp/moat-test-store-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[256];
	snprintf(path, sizeof path, "%s/moat.db", dir);
	moat_error_t e = {0};
	moat_store_t *s = NULL;
	CHECK_INT(moat_store_open_sqlite(path, false, &s, &e), MOAT_ENOTFOUND);
	CHECK_INT(moat_store_open_sqlite(path, true, &s, &e), MOAT_OK);
	CHECK(moat_store_schema_version(s) >= 1);

	moat_party_t m = {"m-zara", MOAT_PARTY_MERCHANT, "ZARA"};
	CHECK_INT(moat_store_party_put(s, &m, &e), MOAT_OK);
	moat_principal_t p = {.principal = "cs-1", .party = "m-zara", .role = MOAT_ROLE_CS_AGENT,
			      .name = "A", .shift = "09:00-18:00"};
	CHECK_INT(moat_store_principal_put(s, &p, &e), MOAT_OK);
	moat_principal_t bad = p;
	bad.principal = "cs-2";
	bad.party = "nobody";
	CHECK_INT(moat_store_principal_put(s, &bad, &e), MOAT_EINVAL);
	CHECK_STR(e.field, "party");

	uint8_t h[32] = {1, 2, 3};
	CHECK_INT(moat_store_principal_set_key(s, "cs-1", h, &e), MOAT_OK);
	moat_principal_row_t row;
	CHECK_INT(moat_store_principal_by_key(s, h, &row, &e), MOAT_OK);
	CHECK_STR(row.principal, "cs-1");
	CHECK(row.has_key && !row.has_password);
	h[0] = 9;
	CHECK_INT(moat_store_principal_by_key(s, h, &row, &e), MOAT_EDENIED);
	CHECK_INT(moat_store_principal_set_status(s, "cs-1", MOAT_PRINCIPAL_SUSPENDED, &e), MOAT_OK);
	/* re-import keeps status and key */
	p.name = "B";
	CHECK_INT(moat_store_principal_put(s, &p, &e), MOAT_OK);
	CHECK_INT(moat_store_principal_get(s, "cs-1", &row, &e), MOAT_OK);
	CHECK(row.status == MOAT_PRINCIPAL_SUSPENDED && row.has_key);
	CHECK_STR(row.name, "B");
	CHECK_INT(moat_store_principal_set_status(s, "ghost", MOAT_PRINCIPAL_ACTIVE, &e), MOAT_ENOTFOUND);

	/* relations: windows and the authorize-by-merchant path */
	moat_relation_t t = {.kind = MOAT_REL_TICKET, .order_id = "O1", .principal = "cs-1",
			     .ticket = "T1", .from = 1000, .until = 2000};
	CHECK_INT(moat_store_relation_put(s, &t, &e), MOAT_OK);
	CHECK_INT(moat_store_relation_put(s, &t, &e), MOAT_OK); /* idempotent */
	moat_relation_t au = {.kind = MOAT_REL_AUTHORIZE, .merchant = "m-zara", .principal = "cs-1",
			      .from = MOAT_TIME_NONE, .until = MOAT_TIME_NONE};
	CHECK_INT(moat_store_relation_put(s, &au, &e), MOAT_OK);
	unsigned mask = 0;
	moat_assign_window_t w = {.found = true};
	CHECK_INT(moat_store_relation_check(s, "cs-1", "O1", "m-zara", 1500, &mask, &w, &e), MOAT_OK);
	CHECK_INT(mask, (1u << MOAT_REL_TICKET) | (1u << MOAT_REL_AUTHORIZE));
	CHECK(!w.found); /* a ticket is no assignment */
	CHECK_INT(moat_store_relation_check(s, "cs-1", "O1", "m-other", 2500, &mask, NULL, &e), MOAT_OK);
	CHECK_INT(mask, 0);
	/* an assignment: its bit only inside its window, its window whenever asked */
	moat_relation_t as = {.kind = MOAT_REL_ASSIGN, .order_id = "O1", .principal = "cs-1",
			      .from = 100, .until = 200};
	CHECK_INT(moat_store_relation_put(s, &as, &e), MOAT_OK);
	CHECK_INT(moat_store_relation_check(s, "cs-1", "O1", "m-other", 150, &mask, &w, &e), MOAT_OK);
	CHECK_INT(mask, 1u << MOAT_REL_ASSIGN);
	CHECK(w.found && w.from == 100 && w.until == 200);
	CHECK_INT(moat_store_relation_check(s, "cs-1", "O1", "m-zara", 1500, &mask, &w, &e), MOAT_OK);
	CHECK_INT(mask, (1u << MOAT_REL_TICKET) | (1u << MOAT_REL_AUTHORIZE));
	CHECK(w.found && w.from == 100 && w.until == 200);
	as.until = MOAT_TIME_NONE; /* re-assigned with an open end: the same relation, widened */
	CHECK_INT(moat_store_relation_put(s, &as, &e), MOAT_OK);
	CHECK_INT(moat_store_relation_check(s, "cs-1", "O1", "m-other", 1500, &mask, &w, &e), MOAT_OK);
	CHECK_INT(mask, (1u << MOAT_REL_TICKET) | (1u << MOAT_REL_ASSIGN));
	CHECK(w.found && w.from == 100 && w.until == MOAT_TIME_NONE);
	CHECK_INT(moat_store_relation_check(s, "cs-2", "O1", "m-zara", 150, &mask, &w, &e), MOAT_OK);
	CHECK(mask == 0 && !w.found);

	/* orders: upsert without duplication; rollback leaves nothing */
	moat_order_row_t o = {0};
	snprintf(o.order_id, sizeof o.order_id, "O1");
	snprintf(o.merchant, sizeof o.merchant, "m-zara");
	snprintf(o.key_id, sizeof o.key_id, "k1");
	o.shipped_at = o.delivered_at = MOAT_TIME_NONE;
	uint8_t blob[40] = {1};
	o.pii = blob;
	o.pii_len = sizeof blob;
	CHECK_INT(moat_store_order_put(s, &o, &e), MOAT_OK);
	o.status = MOAT_STATUS_SHIPPED;
	CHECK_INT(moat_store_order_put(s, &o, &e), MOAT_OK);
	int64_t n = 0;
	CHECK_INT(moat_store_order_count(s, &n, &e), MOAT_OK);
	CHECK_INT(n, 1);
	moat_order_row_t got;
	CHECK_INT(moat_store_order_get(s, "O1", &got, &e), MOAT_OK);
	CHECK_INT(got.status, MOAT_STATUS_SHIPPED);
	CHECK(got.shipped_at == MOAT_TIME_NONE && got.pii_len == sizeof blob);
	moat_order_row_clear(&got);
	/* an update replaces every column, not only the status */
	uint8_t blob2[24] = {7};
	o.pii = blob2;
	o.pii_len = sizeof blob2;
	o.phone_hash[0] = 0x5a;
	o.shipped_at = 12345;
	snprintf(o.key_id, sizeof o.key_id, "k2");
	snprintf(o.city, sizeof o.city, "Shenzhen");
	CHECK_INT(moat_store_order_put(s, &o, &e), MOAT_OK);
	CHECK_INT(moat_store_order_get(s, "O1", &got, &e), MOAT_OK);
	CHECK(got.pii_len == sizeof blob2 && got.pii[0] == 7 && got.phone_hash[0] == 0x5a);
	CHECK(got.shipped_at == 12345);
	CHECK_STR(got.key_id, "k2");
	CHECK_STR(got.city, "Shenzhen");
	moat_order_row_clear(&got);
	CHECK_INT(moat_store_order_count(s, &n, &e), MOAT_OK);
	CHECK_INT(n, 1);
	o.pii = blob;
	o.pii_len = sizeof blob;
	o.shipped_at = MOAT_TIME_NONE;
	snprintf(o.key_id, sizeof o.key_id, "k1");
	/* an unknown merchant is refused on insert and on update */
	snprintf(o.merchant, sizeof o.merchant, "m-ghost");
	CHECK_INT(moat_store_order_put(s, &o, &e), MOAT_EINVAL);
	snprintf(o.merchant, sizeof o.merchant, "m-zara");

	CHECK_INT(moat_store_begin(s, &e), MOAT_OK);
	snprintf(o.order_id, sizeof o.order_id, "O2");
	CHECK_INT(moat_store_order_put(s, &o, &e), MOAT_OK);
	moat_store_rollback(s);
	CHECK_INT(moat_store_order_count(s, &n, &e), MOAT_OK);
	CHECK_INT(n, 1);

	moat_order_filter_t f = {.merchant = "m-zara", .status = -1, .since = MOAT_TIME_NONE, .limit = 10};
	int cnt = 0;
	CHECK_INT(moat_store_order_list(s, &f, order_cb, &cnt, &e), MOAT_OK);
	CHECK_INT(cnt, 1);
	f.after_id = "O1";
	cnt = 0;
	CHECK_INT(moat_store_order_list(s, &f, order_cb, &cnt, &e), MOAT_OK);
	CHECK_INT(cnt, 0);

	/* orders by phone: the index holds 8 bytes of the hash, the look-up compares all
	 * 32, so an order whose hash shares only the first 8 bytes is not returned */
	uint8_t ph[32], ph_near[32], ph_other[32];
	for (int i = 0; i < 32; i++)
		ph[i] = (uint8_t)(0xa0 + i);
	memcpy(ph_near, ph, 32);
	ph_near[31] ^= 1;
	memcpy(ph_other, ph, 32);
	ph_other[0] ^= 1;
	const char *phone_ids[] = {"P2", "P1", "P3", "P4"};
	const uint8_t *phone_hashes[] = {ph, ph, ph_near, ph_other};
	for (int i = 0; i < 4; i++) {
		snprintf(o.order_id, sizeof o.order_id, "%s", phone_ids[i]);
		memcpy(o.phone_hash, phone_hashes[i], 32);
		CHECK_INT(moat_store_order_put(s, &o, &e), MOAT_OK);
	}
	CHECK_STR(by_phone(s, ph), "P1,P2,");
	CHECK_STR(by_phone(s, ph_near), "P3,");
	/* an update that changes the phone moves the order in the index */
	snprintf(o.order_id, sizeof o.order_id, "P2");
	memcpy(o.phone_hash, ph_other, 32);
	CHECK_INT(moat_store_order_put(s, &o, &e), MOAT_OK);
	CHECK_STR(by_phone(s, ph), "P1,");
	CHECK_STR(by_phone(s, ph_other), "P2,P4,");
	memset(o.phone_hash, 0, 32);
	o.phone_hash[0] = 0x5a;
	snprintf(o.order_id, sizeof o.order_id, "O1");

	/* a bulk write larger than its small cache spills pages to the WAL, yet a
	 * rollback still leaves nothing and a commit keeps everything; either way the
	 * handle gets its usual cache back */
	int usual_cache = cache_size(s);
	CHECK(usual_cache < -8192);
	CHECK_INT(moat_store_begin_bulk(s, &e), MOAT_OK);
	CHECK(cache_size(s) > usual_cache);
	CHECK_INT(put_many(s, 6000, 2000, &e), MOAT_OK); /* ~12 MB of pages */
	char wal[300];
	snprintf(wal, sizeof wal, "%s-wal", path);
	struct stat wst;
	CHECK(stat(wal, &wst) == 0 && wst.st_size > 4 * 1024 * 1024); /* spilled before commit */
	moat_store_rollback(s);
	CHECK_INT(cache_size(s), usual_cache);
	CHECK_INT(moat_store_order_count(s, &n, &e), MOAT_OK);
	CHECK_INT(n, 5);
	CHECK_INT(moat_store_begin_bulk(s, &e), MOAT_OK);
	CHECK_INT(put_many(s, 6000, 2000, &e), MOAT_OK);
	CHECK_INT(moat_store_commit(s, &e), MOAT_OK);
	CHECK_INT(cache_size(s), usual_cache);
	CHECK_INT(moat_store_order_count(s, &n, &e), MOAT_OK);
	CHECK_INT(n, 6005);
	CHECK_INT(moat_store_order_get(s, "B005999", &got, &e), MOAT_OK);
	CHECK(got.pii_len == 2000 && got.pii[0] == (uint8_t)5999 && got.pii[1999] == (uint8_t)5999);
	moat_order_row_clear(&got);

	char v[64];
	CHECK_INT(moat_store_meta_get(s, "cursor", v, sizeof v, &e), MOAT_ENOTFOUND);
	CHECK_INT(moat_store_meta_set(s, "cursor", "42", &e), MOAT_OK);
	CHECK_INT(moat_store_meta_get(s, "cursor", v, sizeof v, &e), MOAT_OK);
	CHECK_STR(v, "42");
	int pc = 0;
	CHECK_INT(moat_store_principal_list(s, count_cb, &pc, &e), MOAT_OK);
	CHECK_INT(pc, 1);
	moat_store_close(s);

	/* reopen: migrations are not re-run, data persists */
	CHECK_INT(moat_store_open_sqlite(path, false, &s, &e), MOAT_OK);
	CHECK_INT(moat_store_order_count(s, &n, &e), MOAT_OK);
	CHECK_INT(n, 6005);
	moat_store_close(s);
	moat_store_close(NULL);

	/* upgrade: a database left at schema 4 (orders indexed by the whole phone hash
	 * and by merchant) gets the prefix index and still finds orders by phone */
	CHECK_INT(raw_exec(path, "DROP INDEX orders_by_phone_prefix;"
				 "CREATE INDEX orders_by_phone ON orders (phone_hash);"
				 "CREATE INDEX orders_by_merchant ON orders (merchant, order_id);"
				 "PRAGMA user_version = 4;"),
		  SQLITE_OK);
	CHECK_INT(raw_has(path, "orders_by_phone_prefix"), 0);
	CHECK_INT(moat_store_open_sqlite(path, false, &s, &e), MOAT_OK);
	CHECK(moat_store_schema_version(s) >= 5);
	CHECK_STR(by_phone(s, ph), "P1,");
	CHECK_STR(by_phone(s, ph_other), "P2,P4,");
	moat_store_close(s);
	CHECK_INT(raw_has(path, "orders_by_phone_prefix"), 1);
	CHECK_INT(raw_has(path, "orders_by_phone"), 0);
	CHECK_INT(raw_has(path, "orders_by_merchant"), 0);

	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return check_done();
}
