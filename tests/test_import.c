/*
 * Orders import through moat_app_import_file_with, on the caller's thread alone
 * (0 producers) and with 1..3 converting threads: the same rows, the same
 * all-or-nothing result and the same first error (in file order) every way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "moat/app.h"

#define N_LINES 700

static char dir[] = "/tmp/moat-test-import-XXXXXX";

/* Writes N_LINES orders O00001..; line bad_line (if any) gets a bad phone,
 * line unknown_line an unknown merchant, and line again_line repeats order
 * O00005 as delivered with another buyer name. */
static void write_orders(const char *path, int bad_line, int unknown_line, int again_line)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	for (int i = 1; i <= N_LINES; i++) {
		if (i % 97 == 0)
			fputs("\n", f); /* blank lines still count for line numbers */
		int line = i + i / 97;
		bool again = line == again_line;
		fprintf(f,
			"{\"order_id\":\"O%05d\",\"merchant\":\"%s\","
			"\"placed_at\":\"2026-03-01T10:00:00+08:00\",\"status\":\"%s\","
			"\"buyer\":{\"name\":\"%s\",\"phone\":\"%s\",\"address\":{"
			"\"province\":\"广东省\",\"city\":\"广州市\",\"district\":\"天河区\","
			"\"detail\":\"天河路%d号\"}},\"items\":[{\"sku\":\"S1\","
			"\"title\":\"羊毛衫 \\\"A\\\"\",\"qty\":1,\"price_cents\":%d}]}\n",
			again ? 5 : i, line == unknown_line ? "m-nobody" : "m-a",
			again ? "delivered" : "paid", again ? "李四" : "王五",
			line == bad_line ? "12345" : "13812345678", i, 100 + i);
	}
	CHECK_INT(fclose(f), 0);
}

static int64_t count_orders(moat_app_t *a)
{
	int64_t n = -1;
	moat_error_t e = {0};
	CHECK_INT(moat_store_order_count(a->store, &n, &e), MOAT_OK);
	return n;
}

static void run(int producers)
{
	char data[128], path[128];
	snprintf(data, sizeof data, "%s/data%d", dir, producers);
	snprintf(path, sizeof path, "%s/orders%d.jsonl", dir, producers);
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	CHECK_MSG(moat_app_init(data, &e) == MOAT_OK, "%s", e.msg);
	CHECK_MSG(moat_app_open(data, MOAT_APP_NO_LEDGER, &a, &e) == MOAT_OK, "%s", e.msg);
	if (!a)
		return;
	moat_party_t m = {"m-a", MOAT_PARTY_MERCHANT, "A"};
	CHECK_INT(moat_store_party_put(a->store, &m, &e), MOAT_OK);
	size_t n = 0;

	/* errors: the first in file order wins, whichever stage or thread met it */
	write_orders(path, 650, 300, 0);
	CHECK_INT(moat_app_import_file_with(a, MOAT_IMPORT_ORDERS, path, producers, &n, &e),
		  MOAT_EINVAL);
	CHECK_INT(e.line, 300);
	CHECK_STR(e.field, "merchant");
	write_orders(path, 300, 650, 0);
	CHECK_INT(moat_app_import_file_with(a, MOAT_IMPORT_ORDERS, path, producers, &n, &e),
		  MOAT_EINVAL);
	CHECK_INT(e.line, 300);
	CHECK_STR(e.field, "buyer.phone");
	write_orders(path, 0, 703, 0); /* in the last batch */
	CHECK_INT(moat_app_import_file_with(a, MOAT_IMPORT_ORDERS, path, producers, &n, &e),
		  MOAT_EINVAL);
	CHECK_INT(e.line, 703);
	CHECK_INT(count_orders(a), 0); /* all or nothing */

	/* a later line for the same order id wins; rows decrypt */
	write_orders(path, 0, 0, 600);
	CHECK_INT(moat_app_import_file_with(a, MOAT_IMPORT_ORDERS, path, producers, &n, &e),
		  MOAT_OK);
	CHECK_INT(n, N_LINES);
	CHECK_INT(count_orders(a), N_LINES - 1);
	moat_order_row_t row;
	CHECK_INT(moat_store_order_get(a->store, "O00005", &row, &e), MOAT_OK);
	CHECK_INT(row.status, MOAT_STATUS_DELIVERED);
	moat_pii_t pii = {0};
	CHECK_INT(moat_app_order_pii(a, &row, &pii, &e), MOAT_OK);
	CHECK(pii.name && strcmp(pii.name, "李四") == 0);
	moat_pii_clear(&pii);
	moat_order_row_clear(&row);
	CHECK_INT(moat_store_order_get(a->store, "O00700", &row, &e), MOAT_OK);
	CHECK_STR(
	    row.items_json,
	    "[{\"price_cents\":800,\"qty\":1,\"sku\":\"S1\",\"title\":\"羊毛衫 \\\"A\\\"\"}]");
	CHECK_INT(moat_app_order_pii(a, &row, &pii, &e), MOAT_OK);
	CHECK(pii.address_detail && strcmp(pii.address_detail, "天河路700号") == 0);
	CHECK(pii.phone && strcmp(pii.phone, "13812345678") == 0);
	moat_pii_clear(&pii);
	moat_order_row_clear(&row);

	/* re-import: updates, no duplicates */
	CHECK_INT(moat_app_import_file_with(a, MOAT_IMPORT_ORDERS, path, producers, &n, &e),
		  MOAT_OK);
	CHECK_INT(count_orders(a), N_LINES - 1);

	/* an empty file imports nothing, successfully */
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	CHECK_INT(moat_app_import_file_with(a, MOAT_IMPORT_ORDERS, path, producers, &n, &e),
		  MOAT_OK);
	CHECK_INT(n, 0);
	moat_app_close(a);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	for (int producers = 0; producers <= 3; producers++)
		run(producers);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return check_done();
}
