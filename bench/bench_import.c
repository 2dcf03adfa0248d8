/*
 * bench/import: orders imported per second from a 100k-order JSON Lines file
 * through `moat_app_import_file` (parse, validate, AES-256-GCM PII, look-up HMAC,
 * upsert, one transaction), next to a baseline in the same run: plain SQLite
 * inserts of the same rows (plaintext columns, one prepared statement, one
 * transaction, same WAL settings). Prints both rates and the ratio.
 *
 * moat's import converts orders (parse, validate, encrypt) on
 * MOAT_IMPORT_PRODUCERS threads while the calling thread writes them; the
 * baseline runs on one thread. So the same import is also timed with everything
 * on one thread, and both ratios are printed.
 *
 * usage: bench_import [N_ORDERS] [RUNS]   (defaults 100000, 3; medians printed)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "moat/app.h"

static const char *const surnames[] = {"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"};
static const char *const given[] = {"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋"};

typedef struct row {
	char id[32], name[16], phone[32], detail[96];
	long price;
} row_t;

static void make_row(row_t *r, long i)
{
	snprintf(r->id, sizeof r->id, "B%07ld", i % 100000000);
	snprintf(r->name, sizeof r->name, "%s%s", surnames[i % 10], given[(i / 10) % 10]);
	snprintf(r->phone, sizeof r->phone, "138%08ld", (i * 7919) % 100000000);
	snprintf(r->detail, sizeof r->detail, "天河路%ld号%ld栋%ld室", i % 500 + 1, i % 30 + 1, i % 900 + 101);
	r->price = 1000 + (i * 37) % 90000;
}

static int write_file(const char *path, long n)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	for (long i = 0; i < n; i++) {
		row_t r;
		make_row(&r, i);
		fprintf(f,
			"{\"order_id\":\"%s\",\"merchant\":\"m-bench\",\"placed_at\":\"2026-03-01T10:00:00+08:00\","
			"\"status\":\"paid\",\"buyer\":{\"name\":\"%s\",\"phone\":\"%s\",\"address\":{\"province\":"
			"\"广东省\",\"city\":\"广州市\",\"district\":\"天河区\",\"detail\":\"%s\"}},\"items\":[{\"sku\":"
			"\"S1\",\"title\":\"羊毛衫\",\"qty\":1,\"price_cents\":%ld}]}\n",
			r.id, r.name, r.phone, r.detail, r.price);
	}
	return fclose(f);
}

static double run_moat(const char *dir, const char *file, long n, int producers)
{
	char data[1200];
	snprintf(data, sizeof data, "%s/data", dir);
	char cmd[1300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", data);
	if (system(cmd) != 0)
		return -1;
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	if (moat_app_init(data, &e) != MOAT_OK || moat_app_open(data, MOAT_APP_NO_LEDGER, &a, &e) != MOAT_OK) {
		fprintf(stderr, "bench_import: %s\n", e.msg);
		return -1;
	}
	moat_party_t p = {"m-bench", MOAT_PARTY_MERCHANT, "bench"};
	if (moat_store_party_put(a->store, &p, &e) != MOAT_OK)
		return -1;
	size_t count = 0;
	uint64_t t0 = moat_mono_ns();
	moat_err_t rc =
	    moat_app_import_file_with(a, MOAT_IMPORT_ORDERS, file, producers, &count, &e);
	uint64_t t1 = moat_mono_ns();
	moat_app_close(a);
	if (rc != MOAT_OK || (long)count != n) {
		fprintf(stderr, "bench_import: import failed: line %ld %s %s\n", e.line, e.field, e.msg);
		return -1;
	}
	return (double)n / ((double)(t1 - t0) / 1e9);
}

static double run_sqlite(const char *dir, long n)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/plain.db", dir);
	unlink(path);
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return -1;
	sqlite3_exec(db,
		     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
		     "CREATE TABLE orders (order_id TEXT PRIMARY KEY, merchant TEXT, placed_at INTEGER,"
		     " status INTEGER, province TEXT, city TEXT, district TEXT, items TEXT, name TEXT,"
		     " phone TEXT, detail TEXT, updated_at INTEGER)",
		     NULL, NULL, NULL);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", -1, &st, NULL);
	uint64_t t0 = moat_mono_ns();
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	for (long i = 0; i < n; i++) {
		row_t r;
		char items[128];
		make_row(&r, i);
		snprintf(items, sizeof items, "[{\"price_cents\":%ld,\"qty\":1,\"sku\":\"S1\",\"title\":\"羊毛衫\"}]",
			 r.price);
		sqlite3_bind_text(st, 1, r.id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, "m-bench", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, 1772330400000);
		sqlite3_bind_int(st, 4, 0);
		sqlite3_bind_text(st, 5, "广东省", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, "广州市", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, "天河区", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, items, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 9, r.name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 10, r.phone, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 11, r.detail, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 12, moat_now());
		if (sqlite3_step(st) != SQLITE_DONE)
			return -1;
		sqlite3_reset(st);
	}
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	uint64_t t1 = moat_mono_ns();
	sqlite3_finalize(st);
	sqlite3_close(db);
	return (double)n / ((double)(t1 - t0) / 1e9);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	int runs = argc > 2 ? atoi(argv[2]) : 3;
	if (n < 1 || runs < 1 || runs > 20)
		return 2;
	char dir[] = "/tmp/moat-bench-import-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	char file[1200];
	snprintf(file, sizeof file, "%s/orders.jsonl", dir);
	if (write_file(file, n) != 0)
		return 1;
	double m[20], m1[20], s[20], ratio[20], ratio1[20];
	for (int i = 0; i < runs; i++) {
		s[i] = run_sqlite(dir, n);
		m[i] = run_moat(dir, file, n, MOAT_IMPORT_PRODUCERS);
		m1[i] = run_moat(dir, file, n, 0);
		if (m[i] < 0 || m1[i] < 0 || s[i] < 0)
			return 1;
		ratio[i] = s[i] / m[i];
		ratio1[i] = s[i] / m1[i];
		printf("run %d: moat import %.0f orders/s (%d converting threads + writer),"
		       " %.0f orders/s (one thread); plain sqlite %.0f rows/s;"
		       " slowdown %.2fx, one thread %.2fx\n",
		       i + 1, m[i], MOAT_IMPORT_PRODUCERS, m1[i], s[i], ratio[i], ratio1[i]);
	}
	qsort(m, (size_t)runs, sizeof m[0], cmp);
	qsort(m1, (size_t)runs, sizeof m1[0], cmp);
	qsort(s, (size_t)runs, sizeof s[0], cmp);
	qsort(ratio, (size_t)runs, sizeof ratio[0], cmp);
	qsort(ratio1, (size_t)runs, sizeof ratio1[0], cmp);
	printf("bench_import: %ld orders, median of %d runs\n", n, runs);
	printf("  moat import (parse+validate+AES-GCM+HMAC+upsert),\n");
	printf("    %d converting threads + 1 writer thread:       %10.0f orders/s\n",
	       MOAT_IMPORT_PRODUCERS, m[runs / 2]);
	printf("    all on one thread:                              %10.0f orders/s\n",
	       m1[runs / 2]);
	printf("  baseline plain SQLite inserts of the same rows:   %10.0f rows/s (one thread)\n",
	       s[runs / 2]);
	printf("  slowdown (baseline/moat), median:                 %10.2fx  (target <= 2x)\n",
	       ratio[runs / 2]);
	printf("  slowdown with moat on one thread, median:         %10.2fx\n", ratio1[runs / 2]);
	char cmd[1300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : 1;
}
