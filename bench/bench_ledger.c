/*
 * bench_ledger: durable appends per second of 256-byte entries with group commit,
 * next to
 *  (a) the SHA-256 bound measured in the same run: the same OpenSSL hashing of the
 *      same leaf and node bytes (one leaf hash and one node hash per entry, which
 *      is what the tree costs), single thread, no I/O;
 *  (b) SQLite in WAL mode (synchronous=FULL, so each commit is durable) inserting
 *      the same entries in the same batch sizes from the same number of threads.
 *
 * usage: bench_ledger [-t THREADS] [-s SECONDS] [-r RUNS] [-b B1,B2,…] [-d DIR]
 * Prints the median of RUNS runs for each batch size and the ratios.
 */
#include <getopt.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledger/ledger_int.h"

#define ENTRY_LEN 256

typedef struct cfg {
	int threads;
	double seconds;
	int runs;
	const char *dir;
} cfg_t;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void fill_entry(uint8_t *e, uint64_t i)
{
	for (int k = 0; k < ENTRY_LEN; k++)
		e[k] = (uint8_t)(i * 131 + (uint64_t)k * 7);
	memcpy(e, &i, sizeof i);
}

/* (a) hashing bound: entries/s for one leaf hash + one node hash each. */
static double hash_bound(double seconds)
{
	lhash_t h;
	if (lhash_init(&h) != MOAT_OK)
		return 0;
	uint8_t e[ENTRY_LEN], leaf[32], acc[32] = {0};
	uint64_t n = 0, t0 = moat_mono_ns(), deadline = t0 + (uint64_t)(seconds * 1e9);
	while (moat_mono_ns() < deadline) {
		for (int k = 0; k < 4096; k++, n++) {
			fill_entry(e, n);
			lhash_leaf(&h, e, ENTRY_LEN, leaf);
			lhash_node(&h, acc, leaf, acc);
		}
	}
	double rate = (double)n / ((double)(moat_mono_ns() - t0) / 1e9);
	lhash_free(&h);
	return rate;
}

/* Decodes of a typical access entry per second (the detector's read path). */
static double decode_rate(double seconds)
{
	moat_entry_t e;
	memset(&e, 0, sizeof e);
	e.kind = MOAT_ENTRY_ACCESS;
	e.time = 1767225600000;
	e.principal = "cs-agent-007";
	e.order_id = "order-20260101-1234567";
	e.has_purpose = true;
	e.purpose = MOAT_PURPOSE_CUSTOMER_CARE;
	e.views[MOAT_FIELD_PHONE] = MOAT_VIEW_MASK;
	e.views[MOAT_FIELD_ADDRESS] = MOAT_VIEW_COARSE;
	e.rule = "cs-mask";
	e.ip = "10.0.0.7";
	e.device = "dev-42";
	moat_buf_t b;
	moat_buf_init(&b, MOAT_ENTRY_MAX);
	moat_error_t err;
	static char scratch[MOAT_ENTRY_MAX + 64];
	if (moat_entry_encode(&e, &b, &err) != MOAT_OK)
		return 0;
	uint64_t n = 0, t0 = moat_mono_ns(), deadline = t0 + (uint64_t)(seconds * 1e9);
	while (moat_mono_ns() < deadline)
		for (int k = 0; k < 4096; k++, n++)
			if (moat_entry_decode((const uint8_t *)b.data, b.len, &e, scratch,
					      sizeof scratch, &err) != MOAT_OK)
				return 0;
	moat_buf_free(&b);
	return (double)n / ((double)(moat_mono_ns() - t0) / 1e9);
}

/* ---- ledger ---------------------------------------------------------------------- */

typedef struct lctx {
	moat_ledger_t *l;
	int batch;
	uint64_t deadline;
	atomic_uint_fast64_t *total;
	int id;
	bool failed;
} lctx_t;

static void *ledger_thread(void *arg)
{
	lctx_t *c = arg;
	uint8_t(*buf)[ENTRY_LEN] = malloc((size_t)c->batch * ENTRY_LEN);
	const uint8_t **ptrs = malloc((size_t)c->batch * sizeof *ptrs);
	size_t *lens = malloc((size_t)c->batch * sizeof *lens);
	uint64_t seq = (uint64_t)c->id << 40;
	while (moat_mono_ns() < c->deadline) {
		for (int k = 0; k < c->batch; k++) {
			fill_entry(buf[k], seq++);
			ptrs[k] = buf[k];
			lens[k] = ENTRY_LEN;
		}
		moat_error_t err;
		if (moat_ledger_append_raw(c->l, ptrs, lens, (size_t)c->batch, NULL, &err) !=
		    MOAT_OK) {
			fprintf(stderr, "append: %s\n", err.msg);
			c->failed = true;
			break;
		}
		atomic_fetch_add(c->total, (uint64_t)c->batch);
	}
	free(buf);
	free(ptrs);
	free(lens);
	return NULL;
}

static double ledger_run(const cfg_t *cfg, int batch, double *integrate_s)
{
	char dir[1024];
	snprintf(dir, sizeof dir, "%s/bench-ledger-%d", cfg->dir, (int)getpid());
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 0;
	moat_error_t err;
	moat_ledger_t *l;
	if (moat_ledger_create(dir, "bench.local/ledger", &err) != MOAT_OK ||
	    moat_ledger_open(dir, NULL, &l, &err) != MOAT_OK) {
		fprintf(stderr, "ledger: %s\n", err.msg);
		return 0;
	}
	atomic_uint_fast64_t total = 0;
	pthread_t th[256];
	lctx_t c[256];
	uint64_t t0 = moat_mono_ns();
	for (int t = 0; t < cfg->threads; t++) {
		c[t] = (lctx_t){.l = l,
				.batch = batch,
				.total = &total,
				.id = t,
				.deadline = t0 + (uint64_t)(cfg->seconds * 1e9)};
		pthread_create(&th[t], NULL, ledger_thread, &c[t]);
	}
	for (int t = 0; t < cfg->threads; t++)
		pthread_join(th[t], NULL);
	double secs = (double)(moat_mono_ns() - t0) / 1e9;
	/* Time to bring tiles and the checkpoint up to date after the load stops. */
	uint64_t t1 = moat_mono_ns();
	if (moat_ledger_sync(l, &err) != MOAT_OK)
		fprintf(stderr, "sync: %s\n", err.msg);
	*integrate_s = (double)(moat_mono_ns() - t1) / 1e9;
	moat_ledger_close(l);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return (double)atomic_load(&total) / secs;
}

/* ---- SQLite WAL -------------------------------------------------------------------- */

typedef struct sctx {
	const char *path;
	int batch;
	uint64_t deadline;
	atomic_uint_fast64_t *total;
	int id;
} sctx_t;

static void *sqlite_thread(void *arg)
{
	sctx_t *c = arg;
	sqlite3 *db;
	if (sqlite3_open(c->path, &db) != SQLITE_OK)
		return NULL;
	sqlite3_busy_timeout(db, 60000);
	sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
	sqlite3_stmt *ins;
	sqlite3_prepare_v2(db, "INSERT INTO log(entry) VALUES (?)", -1, &ins, NULL);
	uint8_t e[ENTRY_LEN];
	uint64_t seq = (uint64_t)c->id << 40;
	while (moat_mono_ns() < c->deadline) {
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			continue;
		for (int k = 0; k < c->batch; k++) {
			fill_entry(e, seq++);
			sqlite3_bind_blob(ins, 1, e, ENTRY_LEN, SQLITE_STATIC);
			sqlite3_step(ins);
			sqlite3_reset(ins);
		}
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
			atomic_fetch_add(c->total, (uint64_t)c->batch);
		else
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	sqlite3_finalize(ins);
	sqlite3_close(db);
	return NULL;
}

static double sqlite_run(const cfg_t *cfg, int batch)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/bench-sqlite-%d.db", cfg->dir, (int)getpid());
	char cmd[3200];
	snprintf(cmd, sizeof cmd, "rm -f '%s' '%s-wal' '%s-shm'", path, path, path);
	if (system(cmd) != 0)
		return 0;
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return 0;
	sqlite3_exec(db,
		     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
		     "CREATE TABLE log(id INTEGER PRIMARY KEY, entry BLOB NOT NULL)",
		     NULL, NULL, NULL);
	atomic_uint_fast64_t total = 0;
	pthread_t th[256];
	sctx_t c[256];
	uint64_t t0 = moat_mono_ns();
	for (int t = 0; t < cfg->threads; t++) {
		c[t] = (sctx_t){.path = path,
				.batch = batch,
				.total = &total,
				.id = t,
				.deadline = t0 + (uint64_t)(cfg->seconds * 1e9)};
		pthread_create(&th[t], NULL, sqlite_thread, &c[t]);
	}
	for (int t = 0; t < cfg->threads; t++)
		pthread_join(th[t], NULL);
	double secs = (double)(moat_mono_ns() - t0) / 1e9;
	sqlite3_close(db);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", path);
	return (double)atomic_load(&total) / secs;
}

int main(int argc, char **argv)
{
	cfg_t cfg = {.threads = 16, .seconds = 2.0, .runs = 3, .dir = "."};
	char batches_arg[256] = "1,16,256";
	int opt;
	while ((opt = getopt(argc, argv, "t:s:r:b:d:h")) != -1) {
		switch (opt) {
		case 't':
			cfg.threads = atoi(optarg);
			break;
		case 's':
			cfg.seconds = atof(optarg);
			break;
		case 'r':
			cfg.runs = atoi(optarg);
			break;
		case 'b':
			snprintf(batches_arg, sizeof batches_arg, "%s", optarg);
			break;
		case 'd':
			cfg.dir = optarg;
			break;
		default:
			fprintf(stderr, "usage: bench_ledger [-t THREADS] [-s SECONDS] [-r RUNS] "
					"[-b B1,B2,...] [-d DIR]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (cfg.threads < 1 || cfg.threads > 256 || cfg.runs < 1 || cfg.runs > 50 ||
	    cfg.seconds <= 0) {
		fprintf(stderr, "bench_ledger: bad arguments\n");
		return 2;
	}
	int batches[16], nb = 0;
	for (char *save = NULL, *tok = strtok_r(batches_arg, ",", &save); tok && nb < 16;
	     tok = strtok_r(NULL, ",", &save))
		batches[nb++] = atoi(tok);

	double hb[50];
	for (int r = 0; r < cfg.runs; r++)
		hb[r] = hash_bound(cfg.seconds / 2);
	double bound = median(hb, cfg.runs);
	printf("ledger bench: %d-byte entries, %d appending threads, %.1f s per run, median of %d "
	       "runs, dir %s\n",
	       ENTRY_LEN, cfg.threads, cfg.seconds, cfg.runs, cfg.dir);
	printf("SHA-256 bound (leaf+node hash per entry, 1 thread, no I/O): %.0f entries/s\n",
	       bound);
	printf("entry decode (typical access entry, 1 thread): %.0f entries/s\n\n",
	       decode_rate(0.5));
	printf("%6s %16s %12s %16s %10s %10s\n", "batch", "ledger/s", "catch-up s", "sqlite-wal/s",
	       "vs hash", "vs sqlite");
	for (int b = 0; b < nb; b++) {
		double lr[50], sr[50], cu[50];
		for (int r = 0; r < cfg.runs; r++) {
			lr[r] = ledger_run(&cfg, batches[b], &cu[r]);
			sr[r] = sqlite_run(&cfg, batches[b]);
		}
		double lm = median(lr, cfg.runs), sm = median(sr, cfg.runs),
		       cm = median(cu, cfg.runs);
		printf("%6d %16.0f %12.3f %16.0f %9.2fx %9.1fx\n", batches[b], lm, cm, sm,
		       lm / bound, sm > 0 ? lm / sm : 0);
		fflush(stdout);
	}
	return 0;
}
