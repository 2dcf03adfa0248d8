/*
 * bench/trace: tracing one case of 1,000 victims over 10 million access events,
 * 1 million orders and 10,000 principals, with the exposure index, next to the
 * same question answered in the same run by SQLite over an indexed events table.
 *
 * The world is synthetic and deterministic: every order gets ten reads — its
 * merchant's staff (name, address, items in full), its courier (address in full,
 * phone virtual), the ISV app of 70% of merchants (name, address, items in full,
 * phone virtual), a platform CS agent for 30% of orders (items only), and
 * platform services filling up to ten (masked). One ISV app over-pulls phones in
 * full; 800 of the victims are its orders, 200 are random. Victims quote name,
 * phone and items or name and items, and are contacted ten days after the order.
 *
 * The question, both ways: for every principal and party, k = victims whose
 * quoted fields it had in full before the contact, and for each candidate K =
 * orders it had those fields for before the last contact; then the hypergeometric
 * tail and the ranking. The SQLite side gets integer columns (no strings), the
 * data already loaded, and covering indexes for both access paths; its load and
 * index build are timed separately and not counted. The two sides run side by
 * side, one moat trace and one SQLite query per round after a warm-up of each;
 * the report gives the medians and says whether both ran on one core (run it
 * under `taskset -c 0` for that: moat's scan otherwise uses two threads).
 *
 * usage: bench_trace [EVENTS_MILLIONS] [DB_PATH]   (defaults 10, /tmp/moat-bench-trace.db)
 */
#include <inttypes.h>
#include <sched.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "moat/trace.h"

#define N_PRINCIPALS 10000
#define N_MERCHANTS 1000
#define N_COURIERS 5000
#define N_ISV 100
#define N_SVC 20
#define P_STAFF N_SVC
#define P_COURIER (P_STAFF + 3 * N_MERCHANTS)
#define P_ISV (P_COURIER + N_COURIERS)
#define P_CS (P_ISV + N_ISV)
#define LEAKER (P_ISV + 3)
#define N_VICTIMS 1000
#define T0 ((int64_t)1767225600) /* 2026-01-01, seconds */
#define DAY 86400

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static char pname[N_PRINCIPALS][16];
static char party_of[N_PRINCIPALS][16];

enum { B_NAME = 1u << MOAT_FIELD_NAME, B_PHONE = 1u << MOAT_FIELD_PHONE,
       B_ADDR = 1u << MOAT_FIELD_ADDRESS, B_ITEMS = 1u << MOAT_FIELD_ITEMS };

typedef struct ev {
	uint32_t principal;
	uint8_t views[MOAT_FIELD_COUNT];
	int64_t t; /* seconds */
} ev_t;

static void views_set(uint8_t *v, moat_view_t name, moat_view_t phone, moat_view_t addr,
		      moat_view_t items)
{
	memset(v, MOAT_VIEW_HIDDEN, MOAT_FIELD_COUNT);
	v[MOAT_FIELD_NAME] = (uint8_t)name;
	v[MOAT_FIELD_PHONE] = (uint8_t)phone;
	v[MOAT_FIELD_ADDRESS] = (uint8_t)addr;
	v[MOAT_FIELD_ITEMS] = (uint8_t)items;
}

static unsigned full_bits(const uint8_t *v)
{
	unsigned m = 0;
	for (int f = 0; f < MOAT_FIELD_COUNT; f++)
		if (v[f] == MOAT_VIEW_FULL)
			m |= 1u << f;
	return m;
}

/* The ten reads of order o (placed at `placed`). */
static int order_events(uint32_t o, int64_t placed, ev_t *ev)
{
	uint32_t merchant = (uint32_t)(rnd() % N_MERCHANTS);
	int n = 0;
	for (int i = 0; i < 3; i++) {
		ev[n].principal = P_STAFF + merchant * 3 + (uint32_t)(rnd() % 3);
		views_set(ev[n].views, MOAT_VIEW_FULL, MOAT_VIEW_MASK, MOAT_VIEW_FULL, MOAT_VIEW_FULL);
		ev[n++].t = placed + 600 + i * 3600;
	}
	uint32_t courier = P_COURIER + (uint32_t)(rnd() % N_COURIERS);
	for (int i = 0; i < 3; i++) {
		ev[n].principal = courier;
		views_set(ev[n].views, MOAT_VIEW_MASK, MOAT_VIEW_VIRTUAL, MOAT_VIEW_FULL, MOAT_VIEW_HIDDEN);
		ev[n++].t = placed + DAY + i * 7200;
	}
	if (merchant % 10 < 7) {
		uint32_t isv = P_ISV + merchant % N_ISV;
		for (int i = 0; i < 2; i++) {
			ev[n].principal = isv;
			views_set(ev[n].views, MOAT_VIEW_FULL,
				  isv == LEAKER ? MOAT_VIEW_FULL : MOAT_VIEW_VIRTUAL, MOAT_VIEW_FULL,
				  MOAT_VIEW_FULL);
			ev[n++].t = placed + 300 + i * DAY;
		}
	}
	if (rnd() % 10 < 3) {
		ev[n].principal = P_CS + (uint32_t)(rnd() % (N_PRINCIPALS - P_CS));
		views_set(ev[n].views, MOAT_VIEW_MASK, MOAT_VIEW_VIRTUAL, MOAT_VIEW_COARSE,
			  MOAT_VIEW_FULL);
		ev[n++].t = placed + 2 * DAY;
	}
	while (n < 10) {
		ev[n].principal = (uint32_t)(rnd() % N_SVC);
		views_set(ev[n].views, MOAT_VIEW_MASK, MOAT_VIEW_MASK, MOAT_VIEW_COARSE,
			  MOAT_VIEW_CATEGORY);
		ev[n].t = placed + 60 * n;
		n++;
	}
	(void)o;
	return n;
}

/* Rounds of the side-by-side comparison (odd: the median is one run). */
#define RUNS 5

static void sort_doubles(double *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
}

/* CPUs this process may run on (sched affinity, e.g. set by taskset). */
static int cpus_allowed(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		return -1;
	return CPU_COUNT(&set);
}

static double now_s(void)
{
	return (double)moat_mono_ns() / 1e9;
}

static void die_sql(sqlite3 *db, const char *what)
{
	fprintf(stderr, "bench_trace: sqlite %s: %s\n", what, sqlite3_errmsg(db));
	exit(1);
}

static void exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "bench_trace: sqlite: %s\n  in: %s\n", msg, sql);
		exit(1);
	}
}

typedef struct cand_row {
	int64_t id;
	int is_party;
	int64_t k, K;
	double log_p;
} cand_row_t;

static int cmp_cand(const void *a, const void *b)
{
	const cand_row_t *x = a, *y = b;
	return (x->log_p > y->log_p) - (x->log_p < y->log_p);
}

int main(int argc, char **argv)
{
	long millions = argc > 1 ? atol(argv[1]) : 10;
	const char *dbpath = argc > 2 ? argv[2] : "/tmp/moat-bench-trace.db";
	if (millions < 1 || millions > 1000) {
		fprintf(stderr, "usage: bench_trace [EVENTS_MILLIONS] [DB_PATH]\n");
		return 2;
	}
	uint32_t n_orders = (uint32_t)(millions * 100000); /* ten events per order */
	for (int p = 0; p < N_PRINCIPALS; p++) {
		if (p < P_STAFF) {
			snprintf(pname[p], sizeof pname[p], "svc-%d", p);
			snprintf(party_of[p], sizeof party_of[p], "platform");
		} else if (p < P_COURIER) {
			snprintf(pname[p], sizeof pname[p], "ms-%d", p - P_STAFF);
			snprintf(party_of[p], sizeof party_of[p], "m-%d", (p - P_STAFF) / 3);
		} else if (p < P_ISV) {
			snprintf(pname[p], sizeof pname[p], "cr-%d", p - P_COURIER);
			snprintf(party_of[p], sizeof party_of[p], "l-%d", (p - P_COURIER) % 10);
		} else if (p < P_CS) {
			snprintf(pname[p], sizeof pname[p], "isv-%d", p - P_ISV);
			snprintf(party_of[p], sizeof party_of[p], "isv-%d", p - P_ISV);
		} else {
			snprintf(pname[p], sizeof pname[p], "cs-%d", p - P_CS);
			snprintf(party_of[p], sizeof party_of[p], "platform");
		}
	}

	/* Victims: 800 orders the leaker read, 200 random ones. */
	uint32_t *vorder = malloc(N_VICTIMS * sizeof *vorder);
	uint8_t *is_victim = calloc(n_orders, 1);
	uint8_t *leaked = calloc(n_orders, 1);
	if (!vorder || !is_victim || !leaked)
		return 1;

	moat_exposure_t *x = moat_exposure_new();
	moat_error_t err;
	for (int p = 0; p < N_PRINCIPALS; p++)
		if (moat_exposure_set_party(x, pname[p], party_of[p], &err) != MOAT_OK)
			return 1;
	unlink(dbpath);
	sqlite3 *db;
	if (sqlite3_open(dbpath, &db) != SQLITE_OK)
		die_sql(db, "open");
	exec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-1000000;"
		 "CREATE TABLE events(principal INTEGER, order_no INTEGER, fields INTEGER, t INTEGER);"
		 "CREATE TABLE principals(principal INTEGER PRIMARY KEY, party INTEGER);"
		 "CREATE TABLE victims(order_no INTEGER PRIMARY KEY, contact INTEGER, quoted INTEGER);"
		 "BEGIN");
	sqlite3_stmt *ins;
	if (sqlite3_prepare_v2(db, "INSERT INTO events VALUES(?,?,?,?)", -1, &ins, NULL) != SQLITE_OK)
		die_sql(db, "prepare");

	/* Generate and feed both. */
	double t_build = 0, t_load = 0;
	uint64_t n_events = 0;
	char oid[16];
	ev_t ev[16];
	moat_entry_t e = {0};
	e.kind = MOAT_ENTRY_ACCESS;
	e.imported = true;
	e.order_id = oid;
	for (uint32_t o = 0; o < n_orders; o++) {
		int64_t placed = T0 + (int64_t)o * 90 * DAY / n_orders;
		int n = order_events(o, placed, ev);
		snprintf(oid, sizeof oid, "O%08u", o);
		double a = now_s();
		for (int i = 0; i < n; i++) {
			e.principal = pname[ev[i].principal];
			e.time = ev[i].t * 1000;
			memcpy(e.views, ev[i].views, MOAT_FIELD_COUNT);
			if (moat_exposure_add(x, n_events + (uint64_t)i, &e, &err) != MOAT_OK) {
				fprintf(stderr, "bench_trace: %s\n", err.msg);
				return 1;
			}
			if (ev[i].principal == LEAKER)
				leaked[o] = 1;
		}
		double b = now_s();
		for (int i = 0; i < n; i++) {
			sqlite3_bind_int64(ins, 1, ev[i].principal);
			sqlite3_bind_int64(ins, 2, o);
			sqlite3_bind_int64(ins, 3, full_bits(ev[i].views));
			sqlite3_bind_int64(ins, 4, ev[i].t);
			if (sqlite3_step(ins) != SQLITE_DONE)
				die_sql(db, "insert");
			sqlite3_reset(ins);
		}
		double c = now_s();
		t_build += b - a;
		t_load += c - b;
		n_events += (uint64_t)n;
	}
	sqlite3_finalize(ins);
	double a = now_s();
	exec(db, "COMMIT");
	exec(db, "CREATE INDEX ev_order ON events(order_no, principal, t, fields);"
		 "CREATE INDEX ev_principal ON events(principal, fields, t, order_no);");
	t_load += now_s() - a;
	a = now_s();
	moat_exposure_stats_t st;
	if (moat_exposure_compact(x, &err) != MOAT_OK)
		return 1;
	t_build += now_s() - a;
	moat_exposure_stats(x, &st);

	/* The case. */
	/* Half the victims quote name, phone and items, half name and items (the
	 * scammer calls the phone anyway): K is then over name and items, which
	 * merchant staff and ISV apps all see, so thousands of candidates compete. */
	unsigned quoted = B_NAME | B_PHONE | B_ITEMS, quoted_short = B_NAME | B_ITEMS;
	moat_victim_t *vs = calloc(N_VICTIMS, sizeof *vs);
	char (*vid)[16] = calloc(N_VICTIMS, 16);
	int nv = 0;
	while (nv < 800) {
		uint32_t o = (uint32_t)(rnd() % n_orders);
		if (leaked[o] && !is_victim[o]) {
			is_victim[o] = 1;
			vorder[nv++] = o;
		}
	}
	while (nv < N_VICTIMS) {
		uint32_t o = (uint32_t)(rnd() % n_orders);
		if (!is_victim[o]) {
			is_victim[o] = 1;
			vorder[nv++] = o;
		}
	}
	int64_t last = 0;
	for (int i = 0; i < N_VICTIMS; i++) {
		uint32_t o = vorder[i];
		snprintf(vid[i], 16, "O%08u", o);
		int64_t contact = T0 + (int64_t)o * 90 * DAY / n_orders + 10 * DAY;
		vs[i] = (moat_victim_t){vid[i], contact * 1000, i % 2 ? quoted : quoted_short, NULL};
		if (contact > last)
			last = contact;
	}

	/* SQLite: the same question. */
	exec(db, "BEGIN");
	sqlite3_stmt *st1;
	if (sqlite3_prepare_v2(db, "INSERT INTO victims VALUES(?,?,?)", -1, &st1, NULL) != SQLITE_OK)
		die_sql(db, "prepare");
	for (int i = 0; i < N_VICTIMS; i++) {
		sqlite3_bind_int64(st1, 1, vorder[i]);
		sqlite3_bind_int64(st1, 2, vs[i].contact / 1000);
		sqlite3_bind_int64(st1, 3, vs[i].quoted);
		if (sqlite3_step(st1) != SQLITE_DONE)
			die_sql(db, "victims");
		sqlite3_reset(st1);
	}
	sqlite3_finalize(st1);
	if (sqlite3_prepare_v2(db, "INSERT INTO principals VALUES(?,?)", -1, &st1, NULL) != SQLITE_OK)
		die_sql(db, "prepare");
	for (int p = 0; p < N_PRINCIPALS; p++) {
		int64_t party = p < P_STAFF || p >= P_CS ? 0
				: p < P_COURIER		 ? 1 + (p - P_STAFF) / 3
				: p < P_ISV		 ? 1 + N_MERCHANTS + (p - P_COURIER) % 10
						 : 11 + N_MERCHANTS + (p - P_ISV);
		sqlite3_bind_int64(st1, 1, p);
		sqlite3_bind_int64(st1, 2, party);
		if (sqlite3_step(st1) != SQLITE_DONE)
			die_sql(db, "principals");
		sqlite3_reset(st1);
	}
	sqlite3_finalize(st1);
	exec(db, "COMMIT; ANALYZE");

	char sql[2048];
	snprintf(sql, sizeof sql,
		 /* k per principal and per party (a party covers a victim when one of its
		  * principals had the quoted fields in one read, which is the same here) */
		 "WITH hits AS (SELECT DISTINCT e.principal, e.order_no FROM victims v JOIN events e"
		 "  ON e.order_no = v.order_no AND e.t <= v.contact AND (e.fields & v.quoted) = v.quoted),"
		 " kp AS (SELECT principal AS id, 0 AS is_party, COUNT(*) AS k FROM hits GROUP BY principal),"
		 " kq AS (SELECT p.party AS id, 1 AS is_party, COUNT(DISTINCT h.order_no) AS k FROM hits h"
		 "  JOIN principals p USING(principal) GROUP BY p.party),"
		 " xp AS (SELECT e.principal AS id, COUNT(DISTINCT e.order_no) AS K FROM events e"
		 "  WHERE e.principal IN (SELECT id FROM kp) AND (e.fields & %u) = %u AND e.t <= %" PRId64
		 "  GROUP BY e.principal),"
		 " xq AS (SELECT p.party AS id, COUNT(DISTINCT e.order_no) AS K FROM principals p"
		 "  JOIN events e ON e.principal = p.principal WHERE p.party IN (SELECT id FROM kq)"
		 "  AND (e.fields & %u) = %u AND e.t <= %" PRId64 " GROUP BY p.party)"
		 " SELECT kp.id, 0, kp.k, xp.K FROM kp JOIN xp USING(id)"
		 " UNION ALL SELECT kq.id, 1, kq.k, xq.K FROM kq JOIN xq USING(id)",
		 quoted_short, quoted_short, last, quoted_short, quoted_short, last);
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
		die_sql(db, "prepare query");
	size_t ncand = 0, cap = 1024;
	cand_row_t *cr = malloc(cap * sizeof *cr);
	moat_score_result_t r = {0};
	moat_score_params_t prm;
	moat_score_params_default(&prm);
	/* Side by side: one warm-up of each (SQLite's page cache, moat's first
	 * touch of the index), then RUNS rounds of one moat trace and one SQLite
	 * query each, so that a burst of load on a shared machine hits both sides
	 * alike; medians of each side and of the per-round ratios. */
	double times[RUNS], sql_times[RUNS], ratios[RUNS];
	for (int run = -1; run < RUNS; run++) {
		moat_score_result_clear(&r);
		a = now_s();
		if (moat_exposure_score(x, vs, N_VICTIMS, &prm, &r, &err) != MOAT_OK) {
			fprintf(stderr, "bench_trace: %s\n", err.msg);
			return 1;
		}
		double t_m = now_s() - a;
		ncand = 0;
		sqlite3_reset(q);
		a = now_s();
		int rc;
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			if (ncand == cap) {
				cap *= 2;
				cr = realloc(cr, cap * sizeof *cr);
			}
			cand_row_t *c = &cr[ncand++];
			c->id = sqlite3_column_int64(q, 0);
			c->is_party = sqlite3_column_int(q, 1);
			c->k = sqlite3_column_int64(q, 2);
			c->K = sqlite3_column_int64(q, 3);
			c->log_p = moat_stats_log_hypergeom_tail(n_orders, (uint64_t)c->K,
								 N_VICTIMS, (uint64_t)c->k);
		}
		if (rc != SQLITE_DONE)
			die_sql(db, "query");
		qsort(cr, ncand, sizeof *cr, cmp_cand);
		double t_s = now_s() - a;
		if (run >= 0) {
			times[run] = t_m;
			sql_times[run] = t_s;
			ratios[run] = t_s / t_m;
		}
	}
	sort_doubles(times, RUNS);
	sort_doubles(sql_times, RUNS);
	sort_doubles(ratios, RUNS);
	double t_moat = times[RUNS / 2], t_sql = sql_times[RUNS / 2];
	sqlite3_finalize(q);
	sqlite3_close(db);
	unlink(dbpath);

	/* Report. */
	printf("bench/trace: %" PRIu64 " access events, %u orders, %d principals, %d victims\n",
	       n_events, n_orders, N_PRINCIPALS, N_VICTIMS);
	printf("  index build            %.2f s (%" PRIu64 " records kept of %" PRIu64
	       " plaintext reads)\n",
	       t_build, st.records, st.exposures);
	printf("  index memory           %.1f MB records = %.2f B/event; + %.1f MB id dictionaries = "
	       "%.2f B/event in all\n",
	       st.bytes_records / 1e6, (double)st.bytes_records / (double)n_events,
	       st.bytes_dictionary / 1e6,
	       (double)(st.bytes_records + st.bytes_dictionary) / (double)n_events);
	printf("  sqlite load + indexes  %.2f s (not counted)\n", t_load);
	printf("  trace (moat index)     %.3f s  (median of %d; runs %.3f..%.3f)\n", t_moat, RUNS,
	       times[0], times[RUNS - 1]);
	printf("  trace (sqlite)         %.3f s  (median of %d; runs %.3f..%.3f)\n", t_sql, RUNS,
	       sql_times[0], sql_times[RUNS - 1]);
	int ncpu = cpus_allowed();
	if (ncpu == 1)
		printf("  cores                  both sides ran on one core (this process may use "
		       "1 CPU)\n");
	else
		printf(
		    "  cores                  NOT one core each: this process may use %d CPUs,\n"
		    "                         moat's scan 2 threads, SQLite 1 (use taskset -c 0)\n",
		    ncpu);
	printf("  speed-up               %.1fx (ratio of medians; median of per-round ratios "
	       "%.1fx, range %.1fx..%.1fx)\n",
	       t_sql / t_moat, ratios[RUNS / 2], ratios[0], ratios[RUNS - 1]);
	if (r.n_suspects) {
		moat_suspect_t *s = &r.suspects[0];
		printf("  moat top suspect       %s (%s) k=%" PRIu64 " K=%" PRIu64 " p=%.3g (ln p %.1f) %s\n",
		       s->is_party ? s->party : s->principal, s->is_party ? "party" : s->party, s->k, s->K,
		       exp(s->log_p), s->log_p, s->significant ? "significant" : "");
	}
	if (ncand)
		printf("  sqlite top candidate   %s%s k=%" PRId64 " K=%" PRId64 " ln p %.1f\n",
		       cr[0].is_party ? "party #" : "", cr[0].is_party ? "" : pname[cr[0].id],
		       cr[0].k, cr[0].K, cr[0].log_p);
	int agree = r.n_suspects && ncand && !cr[0].is_party && !r.suspects[0].is_party &&
		    strcmp(pname[cr[0].id], r.suspects[0].principal) == 0 &&
		    (uint64_t)cr[0].k == r.suspects[0].k && (uint64_t)cr[0].K == r.suspects[0].K;
	printf("  answers agree          %s\n", agree ? "yes" : "NO");
	moat_score_result_clear(&r);
	moat_exposure_free(x);
	free(cr);
	free(vs);
	free(vid);
	free(vorder);
	free(is_victim);
	free(leaked);
	return agree ? 0 : 1;
}
