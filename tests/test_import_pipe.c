/*
 * The orders pipeline's writer loop (src/app/app.c, included to reach its static
 * functions) with no producer threads at all: every batch is then converted by
 * the writer while it waits (pipe_help), so that path is checked deterministically
 * for the same rows, the first error in file order, and all-or-nothing. And the
 * writer never takes a batch whose ring slot is not free yet.
 */
#include "app/app.c"

#include <unistd.h>

#include "check.h"

#define N_LINES 300 /* five batches */

static char dir[] = "/tmp/moat-test-import-pipe-XXXXXX";

/* Orders O00001..; line bad_line (if any) gets a bad phone. */
static void write_orders(const char *path, int n, int bad_line)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	for (int i = 1; i <= n; i++)
		fprintf(f,
			"{\"order_id\":\"O%05d\",\"merchant\":\"m-a\","
			"\"placed_at\":\"2026-03-01T10:00:00+08:00\",\"status\":\"paid\","
			"\"buyer\":{\"name\":\"王五\",\"phone\":\"%s\",\"address\":{"
			"\"province\":\"广东省\",\"city\":\"广州市\",\"district\":\"天河区\","
			"\"detail\":\"天河路%d号\"}},\"items\":[{\"sku\":\"S1\","
			"\"title\":\"羊毛衫\",\"qty\":1,\"price_cents\":%d}]}\n",
			i, i == bad_line ? "12345" : "13812345678", i, 100 + i);
	CHECK_INT(fclose(f), 0);
}

typedef struct alone {
	pipe_t p;
	producer_t me;
} alone_t;

static void alone_init(alone_t *x, moat_app_t *a, moat_jsonl_t *r)
{
	memset(x, 0, sizeof *x);
	x->p.app = a;
	x->p.reader = r;
	pthread_mutex_init(&x->p.read_lock, NULL);
	pthread_mutex_init(&x->p.lock, NULL);
	pthread_cond_init(&x->p.changed, NULL);
	x->me.pipe = &x->p;
	moat_error_t e = {0};
	CHECK_INT(moat_sealer_new(a->keys, &x->me.sealer, &e), MOAT_OK);
	moat_buf_init(&x->me.scratch, MOAT_JSON_MAX_LINE);
	x->me.json_mem = moat_json_arena_new(PIPE_JSON_ARENA);
}

static void alone_free(alone_t *x)
{
	for (size_t i = 0; i < PIPE_DEPTH; i++)
		pipe_batch_free(x->p.ring[i]);
	while (x->p.n_spare)
		pipe_batch_free(x->p.spare[--x->p.n_spare]);
	moat_sealer_free(x->me.sealer);
	moat_buf_free(&x->me.scratch);
	moat_json_arena_free(x->me.json_mem);
	pthread_mutex_destroy(&x->p.read_lock);
	pthread_mutex_destroy(&x->p.lock);
	pthread_cond_destroy(&x->p.changed);
}

/* Imports path with the writer alone, as one transaction. */
static moat_err_t import_alone(moat_app_t *a, const char *path, size_t *n, moat_error_t *e)
{
	moat_jsonl_t *r = NULL;
	moat_err_t rc = moat_jsonl_open(path, &r, e);
	if (rc != MOAT_OK)
		return rc;
	alone_t x;
	alone_init(&x, a, r);
	*n = 0;
	rc = moat_store_begin_bulk(a->store, e);
	if (rc == MOAT_OK)
		rc = pipe_drain(&x.p, &x.me, n, e);
	if (rc == MOAT_OK)
		rc = moat_store_commit(a->store, e);
	else
		moat_store_rollback(a->store);
	alone_free(&x);
	moat_jsonl_close(r);
	return rc;
}

static int64_t count_orders(moat_app_t *a)
{
	int64_t n = -1;
	moat_error_t e = {0};
	CHECK_INT(moat_store_order_count(a->store, &n, &e), MOAT_OK);
	return n;
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	char data[128], path[128];
	snprintf(data, sizeof data, "%s/data", dir);
	snprintf(path, sizeof path, "%s/orders.jsonl", dir);
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	CHECK_MSG(moat_app_init(data, &e) == MOAT_OK, "%s", e.msg);
	CHECK_MSG(moat_app_open(data, MOAT_APP_NO_LEDGER, &a, &e) == MOAT_OK, "%s", e.msg);
	if (!a)
		return check_done();
	moat_party_t m = {"m-a", MOAT_PARTY_MERCHANT, "A"};
	CHECK_INT(moat_store_party_put(a->store, &m, &e), MOAT_OK);
	size_t n = 0;

	/* errors in the middle and in the last batch: named, nothing written */
	write_orders(path, N_LINES, 150);
	CHECK_INT(import_alone(a, path, &n, &e), MOAT_EINVAL);
	CHECK_INT(e.line, 150);
	CHECK_STR(e.field, "buyer.phone");
	write_orders(path, N_LINES, N_LINES);
	CHECK_INT(import_alone(a, path, &n, &e), MOAT_EINVAL);
	CHECK_INT(e.line, N_LINES);
	CHECK_INT(count_orders(a), 0);

	/* every row, in order, readable */
	write_orders(path, N_LINES, 0);
	CHECK_INT(import_alone(a, path, &n, &e), MOAT_OK);
	CHECK_INT(n, N_LINES);
	CHECK_INT(count_orders(a), N_LINES);
	moat_order_row_t row;
	CHECK_INT(moat_store_order_get(a->store, "O00300", &row, &e), MOAT_OK);
	moat_pii_t pii = {0};
	CHECK_INT(moat_app_order_pii(a, &row, &pii, &e), MOAT_OK);
	CHECK(pii.address_detail && strcmp(pii.address_detail, "天河路300号") == 0);
	moat_pii_clear(&pii);
	moat_order_row_clear(&row);

	/* an empty file: one empty last batch */
	write_orders(path, 0, 0);
	CHECK_INT(import_alone(a, path, &n, &e), MOAT_OK);
	CHECK_INT(n, 0);

	/* the ring is full ahead of the writer (producers took batches 0..7 and the
	 * writer is waiting for batch 0): the writer reads nothing */
	write_orders(path, N_LINES, 0);
	moat_jsonl_t *r = NULL;
	CHECK_INT(moat_jsonl_open(path, &r, &e), MOAT_OK);
	if (r) {
		alone_t x;
		alone_init(&x, a, r);
		x.p.next_seq = PIPE_DEPTH;
		CHECK(!pipe_help(&x.me));
		CHECK_INT(moat_jsonl_line(r), 0);
		x.p.next_seq = PIPE_DEPTH - 1; /* one slot free: taken, queued in it */
		CHECK(pipe_help(&x.me));
		CHECK(x.p.ring[(PIPE_DEPTH - 1) % PIPE_DEPTH] != NULL);
		CHECK_INT(x.p.ring[(PIPE_DEPTH - 1) % PIPE_DEPTH]->n, PIPE_BATCH);
		CHECK(!pipe_help(&x.me));
		alone_free(&x);
		moat_jsonl_close(r);
	}

	moat_app_close(a);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return check_done();
}
