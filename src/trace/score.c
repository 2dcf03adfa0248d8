/*
 * Scoring a case against the exposure index.
 *
 * Candidates are every principal and every party (a party's receipts are the
 * union of its principals': two staff who each saw half the fields make the
 * party see all of them). A victim is covered by candidate c when c had
 * received in plaintext every field its report quotes before its first contact.
 *
 * The null hypothesis for c: c is not the source, so each victim's order is a
 * random order of the population, whatever its report quotes. Then victim v is
 * covered with probability at most p_v = K_c(Q_v) / N, where Q_v is the set of
 * fields v quoted and K_c(Q) counts the population orders for which c had every
 * field of Q before the last contact. Using each victim's own Q matters: a
 * report quoting the buyer's phone can never be explained by a principal that
 * only ever got virtual numbers, and must not dilute its test.
 *
 * Scam crews: reports that share a normalised scammer contact (the same calling
 * number, link or chat account) were worked by one crew, and one crew buys its
 * data from one source. Such reports form a group (union-find over identical
 * contacts; built from the reports alone, never from exposure, so the grouping
 * cannot bias the test). The statistic for c is X_c = the number of victims in
 * groups c covers entirely, ungrouped victims counting one by one. Under the
 * null each group is covered entirely with probability prod p_v; groups are
 * treated as independent (the draw of distinct orders is negatively dependent,
 * which makes that conservative) and ungrouped victims with the same Q are one
 * hypergeometric draw, exact. The tail P(X >= X_c) is a convolution over
 * groups in log space. With no shared contact and one quoted set the test is
 * the plain hypergeometric tail of DESIGN.md.
 *
 * Several leakers: a crew of one leaker makes its victims stand out even when
 * the other leakers' victims dilute the whole case. Each round tests every
 * candidate (Bonferroni over every hypothesis that could be rejected); among
 * the significant ones a mixture fitted by EM over the groups (em_explain)
 * decides who explains the victims, and those it gives at least min_victims
 * victims are confirmed (an innocent who merely saw the same orders as the
 * leaker is significant too, but explains nothing the leaker does not explain
 * better). Then the case is conditioned on them: every order they had received
 * is taken out of the population and every victim on such an order out of the
 * victims, so the next test asks whether c explains the victims the confirmed
 * leakers could not have, among the orders they never saw. Under the null that
 * those remaining victims are background, that conditional test is exact again
 * (sequential rejection: each round is a valid test given that the earlier
 * confirmations were right; with no leaker at all the first round is the only
 * chance to accuse and its error is at most alpha).
 *
 * Detector alerts as priors: a principal the detector alerted on (from the
 * access stream alone, never from the reports) is a likelier source, so the
 * correction may spend more of alpha on it. The weights are those of a weighted
 * Bonferroni / Holm (Holm 1979; Genovese, Roeder & Wasserman 2006): the k
 * alerted hypotheses get weight share * m / k each, the m - k others
 * (1 - share) * m / (m - k), summing to m; c is rejected when p_c * m / w_c <
 * alpha. Since the weights do not depend on the victims, the family-wise error
 * stays at most alpha whichever principals were alerted; what a wrong prior
 * costs is power for the others (a factor 1 / (1 - share) on their p).
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "moat/trace.h"
#include "trace/trace_internal.h"

void moat_score_params_default(moat_score_params_t *p)
{
	memset(p, 0, sizeof *p);
	p->alpha = 0.01;
	p->max_rounds = 8;
	p->max_suspects = 20;
	p->min_victims = 3;
	p->prior_share = 0.5;
}

void moat_score_result_clear(moat_score_result_t *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_suspects; i++)
		free(r->suspects[i].covered);
	free(r->suspects);
	memset(r, 0, sizeof *r);
}

/* Quoted-field sets the victims use: a test needs K_c(Q) for each. */
#define MAX_PATTERNS 128

/* Candidate numbering: principals 0..P-1, parties P..P+Q-1. Only candidates that
 * cover a victim get a slot (ids[slot] = candidate). */
typedef struct cand {
	uint32_t k_all;	  /* victims covered in total */
	uint32_t cov_off; /* into the coverage list */
	uint64_t Kfam;	  /* orders with any quoted field (current population) */
	double log_p;	  /* this round's test */
	uint64_t x;	  /* this round's statistic */
	unsigned groups;  /* groups covered entirely in this round */
	double expect;	  /* expected covered victims under the null (pool members only) */
	int round;	  /* confirmed in this round (1-based), 0 = not */
	bool live;	  /* still tested: not confirmed, covers an active victim */
	/* the test reported: round one's, or the confirming round's */
	double r_log_p, r_log_adj, r_expect;
	uint64_t r_x, r_N, r_n, r_K;
	unsigned r_groups, r_ngroups;
} cand_t;

typedef struct pair {
	uint32_t cand, victim;
} pair_t;

/* A small per-order accumulator of party receipts. */
typedef struct party_acc {
	uint32_t party;
	unsigned fields;
} party_acc_t;

static int cmp_pair(const void *a, const void *b)
{
	const pair_t *x = a, *y = b;
	if (x->cand != y->cand)
		return x->cand < y->cand ? -1 : 1;
	return (x->victim > y->victim) - (x->victim < y->victim);
}

/* Victims after merging duplicate reports of one order. */
typedef struct vict {
	int64_t order; /* index order id, -1 if never accessed */
	moat_time_t contact;
	unsigned quoted;
	size_t input; /* first input index */
	bool honey;
	uint32_t pat; /* index of its quoted set */
	uint32_t grp; /* scam-contact group (dense id) */
} vict_t;

/* Walks one order's rows grouping by principal; returns the fields each
 * principal had by `at` and the party unions through acc/nacc. */
static size_t order_receipts(const moat_exposure_t *x, uint32_t o, moat_time_t at, uint32_t *pr,
			     unsigned *pf, size_t cap, party_acc_t *acc, size_t *nacc)
{
	size_t np = 0;
	*nacc = 0;
	uint32_t i = x->off[o], end = x->off[o + 1];
	while (i < end) {
		uint32_t p = x->rpm[i] >> 8;
		unsigned f = 0;
		for (; i < end && (x->rpm[i] >> 8) == p; i++)
			if (trace_rec_time(x, o, i) * 1000 <= at)
				f |= x->rpm[i] & 0xffu;
		f &= MOAT_EXPOSURE_FIELDS_ALL;
		if (!f || np == cap)
			continue;
		pr[np] = p;
		pf[np] = f;
		np++;
		uint32_t q = x->principal_party[p];
		if (q == TRACE_NO_PARTY)
			continue;
		size_t j = 0;
		while (j < *nacc && acc[j].party != q)
			j++;
		if (j == *nacc)
			acc[(*nacc)++] = (party_acc_t){q, 0};
		acc[j].fields |= f;
	}
	return np;
}

static bool in_population(const moat_exposure_t *x, uint32_t o, moat_time_t last)
{
	return !(x->order_flags[o] & TRACE_ORDER_HONEY) &&
	       (int64_t)x->order_first[o] * 1000 <= last + 999;
}

/*
 * The population scan. K_c(Q) for every candidate c and quoted set Q would be
 * one count per (c, Q) per order; instead each order adds one to a histogram
 * cell per candidate, indexed by the fields of the family (the union of the
 * quoted sets) c had by the last contact, packed into |family| bits. K_c(Q) is
 * then the sum of c's cells over the supersets of Q (tally_derive), and K_c(any
 * quoted field) the sum of every cell but the empty one. The scan runs once per
 * case: conditioning on a confirmed leaker takes its orders out by subtracting
 * their cells again (tally_order with add = -1), which gives exactly the counts
 * a fresh scan of the smaller population would.
 */
/* Where a principal's receipts count: the first cell of its own slot's row and
 * its party's slot; a principal without one points at a sink row, a party
 * without a slot (or none) at a sink party (chosen by the principal's number,
 * so that consecutive records seldom hit one cell). */
typedef struct tally_who {
	uint32_t cell, party;
} tally_who_t;

/* Sink rows after the slots' rows and sink parties after the slots: where a
 * principal that counts only through its party adds its own count, and one
 * whose party has no slot (or that has none) its party's, rather than
 * branching on it. Nobody reads a sink. */
#define TALLY_SINKS 8u

/* Principals whose orders the scan lists as it goes (the likeliest to be
 * confirmed: those covering the most victims), so that conditioning on them
 * need not read the index again. */
#define TALLY_TRACKED 16u

/* The orders a tracked principal had a family field of by the last contact, in
 * the population, as one thread of the scan found them; lost when memory ran
 * out. */
typedef struct tally_list {
	uint32_t *o;
	uint32_t n, cap;
	bool lost;
} tally_list_t;

typedef struct tally {
	const moat_exposure_t *x;
	moat_time_t last;
	unsigned family;
	const uint8_t *col; /* field bits (FIELDS_ALL) -> histogram column */
	uint32_t W;	    /* columns: 2^|family| */
	uint32_t nslot;
	const tally_who_t *who; /* per principal */
	const uint8_t *counts;	/* per principal: 1 if it has a slot or its party has */
	const uint32_t *row;	/* per slot: the slot whose cells hold its counts */
	uint32_t *hist;		/* (nslot + TALLY_SINKS) * W cells */
	unsigned *pfields;	/* nslot + TALLY_SINKS: per party slot, its principals'
				 * fields in this order (kept 0 for the slots) */
	uint32_t *ptouched;	/* nslot + TALLY_SINKS scratch: party slots with pfields
				 * != 0 (tally_order_into), the scan's tags (tally_range) */
	const uint8_t *track;	/* per principal: 1 + its tracked list, or 0 */
	tally_list_t *lists;	/* 2 * TALLY_TRACKED: per scan thread, per tracked one */
} tally_t;

static void tally_list_add(tally_list_t *l, uint32_t o)
{
	if (l->n == l->cap && !l->lost) {
		uint32_t cap = l->cap ? 2 * l->cap : 1024;
		uint32_t *no = cap > l->cap ? realloc(l->o, (size_t)cap * sizeof *no) : NULL;
		if (!no) {
			l->lost = true;
			return;
		}
		l->o = no;
		l->cap = cap;
	}
	if (!l->lost)
		l->o[l->n++] = o;
}

/* How many minute offsets (rdt) of order o's records lie at or before `at`:
 * a record with rdt < the result is on time; one with a larger rdt is not,
 * unless it overflowed (TRACE_DT_OVERFLOW), which tally_overflow_on_time checks. */
static uint32_t tally_minutes(const moat_exposure_t *x, uint32_t o, moat_time_t at)
{
	int64_t lim = at - (int64_t)x->order_first[o] * 1000;
	if (lim < 0)
		return 0;
	return lim / 60000 + 1 < TRACE_DT_OVERFLOW ? (uint32_t)(lim / 60000 + 1)
						   : TRACE_DT_OVERFLOW;
}

static bool tally_overflow_on_time(const moat_exposure_t *x, size_t i, moat_time_t at)
{
	return x->rdt[i] == TRACE_DT_OVERFLOW && (int64_t)trace_ovf_time(x, i) * 1000 <= at;
}

/*
 * One record of the scan. f = the family fields its principal had on time in
 * the order so far (its earlier records' included); same = the next record is
 * the same principal's. The principal's cell gets `add` once its last record
 * is in: column col[f], or column 0 (never read: every K sums columns of
 * non-empty field sets) while more are to come or when it had none. Its party
 * collects f. Returns what the next record carries.
 */
static inline __attribute__((always_inline)) unsigned
tally_rec(uint32_t *restrict hist, unsigned *restrict pfields, uint32_t *restrict ptouched,
	  uint32_t *nt, tally_who_t w, const uint8_t *restrict col, uint32_t nslot, unsigned f,
	  bool same, uint32_t add)
{
	hist[w.cell + col[same ? 0u : f]] += add;
	unsigned was = pfields[w.party];
	pfields[w.party] = was | f;
	ptouched[*nt] = w.party;
	*nt += (was == 0) & (f != 0) & (w.party < nslot);
	return same ? f : 0u;
}

/*
 * Adds `add` (1, or UINT32_MAX to take the order out again) to the cell of
 * every candidate with a slot that had a family field of order o by the last
 * contact: principals as their records end (the rows are sorted by principal),
 * parties once the whole order is seen.
 *
 * The scan's inner loop, written without a branch per record: every record
 * costs the same few loads and two increments, sinks taking those of the
 * principals that count nowhere.
 */
static inline __attribute__((always_inline)) void
tally_order_into(const tally_t *t, uint32_t *restrict hist, unsigned *restrict pfields,
		 uint32_t *restrict ptouched, uint32_t o, uint32_t add)
{
	const moat_exposure_t *x = t->x;
	const uint32_t *restrict rpm = x->rpm;
	const uint16_t *restrict rdt = x->rdt;
	const tally_who_t *restrict who = t->who;
	const uint8_t *restrict col = t->col;
	const unsigned family = t->family;
	const uint32_t nslot = t->nslot, W = t->W;
	const moat_time_t last = t->last;
	uint32_t i = x->off[o], end = x->off[o + 1], nt = 0;
	if (i == end)
		return;
	uint32_t lim = tally_minutes(x, o, last);
	unsigned acc = 0;
	for (;; i++) {
		uint32_t r = rpm[i], p = r >> 8, d = rdt[i];
		bool on = d < lim;
		if (__builtin_expect(d == TRACE_DT_OVERFLOW, 0))
			on = tally_overflow_on_time(x, i, last);
		unsigned f = acc | (r & family & (0u - (unsigned)on));
		if (i + 1 == end) {
			tally_rec(hist, pfields, ptouched, &nt, who[p], col, nslot, f, false, add);
			break;
		}
		acc = tally_rec(hist, pfields, ptouched, &nt, who[p], col, nslot, f,
				rpm[i + 1] >> 8 == p, add);
	}
	for (uint32_t j = 0; j < nt; j++) {
		uint32_t q = ptouched[j];
		hist[(size_t)q * W + col[pfields[q]]] += add;
		pfields[q] = 0;
	}
}

static void tally_order(tally_t *t, uint32_t o, uint32_t add)
{
	tally_order_into(t, t->hist, t->pfields, t->ptouched, o, add);
}

/* Records the scan filters at a time. */
#define TALLY_BATCH 2048u

/*
 * Adds one to the cells of orders lo..hi-1 that are in the population (what
 * tally_order_into(.., 1) would do for each), returning how many are. pfields
 * must be 0 and is left so; ptag (nslot + TALLY_SINKS) is scratch.
 *
 * Most records are by principals that count nowhere (only candidates that
 * cover a victim have a slot), spread among the others so that no predictor
 * could guess a branch on it; and a loop over each order's few records would
 * mispredict its exit once per order. So nothing here branches per record or
 * per order. A first pass over a batch of records keeps the index and order of
 * those whose principal counts (the order by a running count of the orders
 * begun so far). The second adds them up: a principal's records in an order
 * are adjacent, and its cell gets the order once the next kept record is
 * another's; a party's fields in the order it is collecting gather under a
 * tag naming that order, and go to its cell when a record of a later order
 * arrives. Cells are chosen rather than skipped: column 0 (no family field;
 * never read, since every K sums columns of non-empty field sets) takes what
 * is not yet, or never, to be counted.
 */
static uint64_t tally_range(const tally_t *t, uint32_t *restrict hist, unsigned *restrict pfields,
			    uint32_t *restrict ptag, tally_list_t *lists, uint32_t lo, uint32_t hi)
{
	const moat_exposure_t *x = t->x;
	const uint32_t *restrict rpm = x->rpm;
	const uint16_t *restrict rdt = x->rdt;
	const uint32_t *restrict off = x->off;
	const uint32_t *restrict first = x->order_first;
	const uint8_t *restrict flags = x->order_flags;
	const uint8_t *restrict counts = t->counts;
	const uint8_t *restrict track = t->track;
	const tally_who_t *restrict who = t->who;
	const uint8_t *restrict col = t->col;
	const unsigned family = t->family;
	const uint32_t nparty = t->nslot + TALLY_SINKS, W = t->W;
	const moat_time_t last = t->last;
	uint64_t N = 0;
	for (uint32_t q = 0; q < nparty; q++)
		ptag[q] = UINT32_MAX;
	uint32_t kept[TALLY_BATCH], kept_o[TALLY_BATCH], begun[TALLY_BATCH] = {0};
	/* cur: the order of the record being filtered (lo - 1 before the first);
	 * next: the first order not yet begun */
	uint32_t cur = lo - 1, next = lo;
	/* the principal whose fields are gathering (p, its order, its cell, its
	 * list, acc) */
	uint32_t pp = UINT32_MAX, po = UINT32_MAX, pcell = t->nslot * W, ptrack = 0;
	unsigned acc = 0;
	for (uint32_t a = off[lo], stop = off[hi]; a < stop;) {
		uint32_t b = stop - a > TALLY_BATCH ? a + TALLY_BATCH : stop, n = 0;
		for (; next < hi && off[next] < b; next++) {
			begun[off[next] - a]++;
			N += in_population(x, next, last);
		}
		for (uint32_t i = a; i < b; i++) {
			cur += begun[i - a];
			begun[i - a] = 0;
			kept[n] = i;
			kept_o[n] = cur;
			n += counts[rpm[i] >> 8];
		}
		a = b;
		for (uint32_t k = 0; k < n; k++) {
			uint32_t i = kept[k], o = kept_o[k];
			uint32_t r = rpm[i], p = r >> 8, d = rdt[i];
			/* in_population, and d < tally_minutes(x, o, last) put as
			 * "the record's time is at or before the last contact" */
			int64_t base = (int64_t)first[o] * 1000;
			bool pop = !(flags[o] & TRACE_ORDER_HONEY) & (base <= last + 999);
			bool on = pop & (base + (int64_t)d * 60000 <= last);
			if (__builtin_expect(d == TRACE_DT_OVERFLOW, 0))
				on = pop && tally_overflow_on_time(x, i, last);
			unsigned f = r & family & (0u - (unsigned)on);
			tally_who_t w = who[p];
			/* masks rather than conditions, which the compiler would turn
			 * into branches that mispredict */
			unsigned same = 0u - (unsigned)(((p ^ pp) | (o ^ po)) == 0);
			hist[pcell + col[acc & ~same]] += 1;
			if (__builtin_expect(ptrack != 0, 0) && !same && acc)
				tally_list_add(&lists[ptrack - 1], po);
			acc = (acc & same) | f;
			pp = p;
			po = o;
			pcell = w.cell;
			ptrack = track[p];
			unsigned was = pfields[w.party];
			unsigned fresh = 0u - (unsigned)(ptag[w.party] != o);
			hist[(size_t)w.party * W + col[was & fresh]] += 1;
			pfields[w.party] = (was & ~fresh) | f;
			ptag[w.party] = o;
		}
	}
	for (; next < hi; next++) /* orders without records after the last record */
		N += in_population(x, next, last);
	hist[pcell + col[acc]] += 1;
	if (ptrack && acc)
		tally_list_add(&lists[ptrack - 1], po);
	for (uint32_t q = 0; q < nparty; q++) {
		hist[(size_t)q * W + col[pfields[q]]] += 1;
		pfields[q] = 0;
	}
	return N;
}

/* One thread's share of the scan: it takes chunks of orders from *next until
 * none is left, counting into its own cells. */
typedef struct tally_part {
	const tally_t *t;
	uint32_t *hist;
	unsigned *pfields;
	uint32_t *ptouched;
	tally_list_t *lists; /* TALLY_TRACKED */
	atomic_uint *next;
	uint32_t chunk;
	uint64_t N; /* population orders it scanned */
} tally_part_t;

static void *tally_run(void *arg)
{
	tally_part_t *pt = arg;
	uint32_t norders = pt->t->x->off_orders;
	uint64_t N = 0;
	for (;;) {
		uint64_t lo =
		    (uint64_t)atomic_fetch_add_explicit(pt->next, 1, memory_order_relaxed) *
		    pt->chunk;
		if (lo >= norders)
			break;
		uint32_t hi = lo + pt->chunk < norders ? (uint32_t)lo + pt->chunk : norders;
		N += tally_range(pt->t, pt->hist, pt->pfields, pt->ptouched, pt->lists,
				 (uint32_t)lo, hi);
	}
	pt->N = N;
	return NULL;
}

/* Scans every order into t->hist (zeroed by the caller), on two threads when
 * the index is large and this process may use two CPUs (the second thread is
 * an optimisation, never required: without its memory the scan runs on one).
 * The orders go in chunks to whichever thread is free, so that a thread whose
 * CPU is shared with another process does less. *N = population orders. */
static void tally_scan(const tally_t *t, uint64_t *N)
{
	const moat_exposure_t *x = t->x;
	size_t cells = ((size_t)t->nslot + TALLY_SINKS) * t->W;
	atomic_uint next = 0;
	tally_part_t one = {t, t->hist, t->pfields, t->ptouched, t->lists, &next, x->off_orders, 0};
	tally_part_t two = one;
	two.lists = t->lists + TALLY_TRACKED;
	two.hist = NULL;
	two.pfields = NULL;
	two.ptouched = NULL;
	pthread_t th;
	bool threaded = false;
	cpu_set_t cpus;
	CPU_ZERO(&cpus);
	bool two_cpus = sched_getaffinity(0, sizeof cpus, &cpus) != 0 || CPU_COUNT(&cpus) > 1;
	if (x->nrec > (1u << 20) && two_cpus) {
		two.hist = calloc(cells, sizeof *two.hist);
		two.pfields = calloc((size_t)t->nslot + TALLY_SINKS, sizeof *two.pfields);
		two.ptouched = malloc(((size_t)t->nslot + TALLY_SINKS) * sizeof *two.ptouched);
		if (two.hist && two.pfields && two.ptouched) {
			one.chunk = two.chunk = x->off_orders / 64 + 1;
			threaded = pthread_create(&th, NULL, tally_run, &two) == 0;
			if (!threaded)
				one.chunk = two.chunk = x->off_orders;
		}
	}
	if (!one.chunk)
		one.chunk = 1;
	tally_run(&one);
	if (threaded) {
		pthread_join(th, NULL);
		for (size_t i = 0; i < cells; i++)
			t->hist[i] += two.hist[i];
	}
	free(two.hist);
	free(two.pfields);
	free(two.ptouched);
	*N = one.N + (threaded ? two.N : 0);
}

/* Four record words, for the exclusion's comparisons (a GCC / Clang vector
 * extension: the target's vectors, or scalar code on a target without). */
typedef uint32_t tally_v4 __attribute__((vector_size(16)));

/* The flagged principals the exclusion compares records with directly; with
 * more it looks each record's principal up. */
#define TALLY_FEW 4

/* Whether any of the four records in a is by one of the principals in c. */
static inline tally_v4 tally_hits(tally_v4 a, const tally_v4 *c)
{
	a >>= 8;
	return (tally_v4)((a == c[0]) | (a == c[1]) | (a == c[2]) | (a == c[3]));
}

/* The first record from i on (or nrec) that may be by a flagged principal:
 * sixteen records at a time. With few flagged principals (a confirmed leaker
 * or two) each record's principal is compared with theirs, lane by lane;
 * otherwise it is looked up in conf, one branch per eight records. */
static uint32_t tally_skip(const uint32_t *rpm, uint32_t i, uint32_t nrec, const uint8_t *conf,
			   const tally_v4 *few, bool by_few)
{
	if (by_few) {
		for (; nrec - i >= 16; i += 16) {
			tally_v4 v[4];
			memcpy(v, rpm + i, sizeof v);
			tally_v4 h = tally_hits(v[0], few) | tally_hits(v[1], few) |
				     tally_hits(v[2], few) | tally_hits(v[3], few);
			uint64_t w[2];
			memcpy(w, &h, sizeof w);
			if (w[0] | w[1])
				break;
		}
		return i;
	}
	while (nrec - i >= 8 &&
	       !(conf[rpm[i] >> 8] | conf[rpm[i + 1] >> 8] | conf[rpm[i + 2] >> 8] |
		 conf[rpm[i + 3] >> 8] | conf[rpm[i + 4] >> 8] | conf[rpm[i + 5] >> 8] |
		 conf[rpm[i + 6] >> 8] | conf[rpm[i + 7] >> 8]))
		i += 8;
	return i;
}

/* What tally_exclude does, from the scan's lists when every flagged principal
 * is tracked and none of its lists was lost (else false, having done nothing):
 * the lists hold exactly the orders to take out, but for those already out. */
static bool tally_exclude_listed(tally_t *t, const uint8_t *conf, uint32_t P, uint8_t *excl,
				 uint64_t *N)
{
	const moat_exposure_t *x = t->x;
	for (uint32_t p = 0; p < P; p++)
		if (conf[p] && (!t->track[p] || t->lists[t->track[p] - 1].lost ||
				t->lists[TALLY_TRACKED + t->track[p] - 1].lost))
			return false;
	for (uint32_t p = 0; p < P; p++) {
		for (unsigned h = 0; conf[p] && h < 2; h++) {
			const tally_list_t *l = &t->lists[h * TALLY_TRACKED + t->track[p] - 1];
			for (uint32_t k = 0; k < l->n; k++) {
				/* The orders lie far apart: fetch ahead what each will
				 * read, its offsets first, then its records. */
				if (k + 16 < l->n) {
					__builtin_prefetch(&x->off[l->o[k + 16]]);
					__builtin_prefetch(&x->order_first[l->o[k + 16]]);
					__builtin_prefetch(&excl[l->o[k + 16]]);
				}
				if (k + 8 < l->n) {
					__builtin_prefetch(&x->rpm[x->off[l->o[k + 8]]]);
					__builtin_prefetch(&x->rdt[x->off[l->o[k + 8]]]);
				}
				if (excl[l->o[k]])
					continue;
				excl[l->o[k]] = 1;
				tally_order(t, l->o[k], UINT32_MAX);
				(*N)--;
			}
		}
	}
	return true;
}

/*
 * Takes out of the population (excl, the counts, *N) every order in it that a
 * principal flagged in conf (P entries) had received a family field of by the
 * last contact. Walks the records alone, finding a flagged one's order only
 * when one turns up: a confirmed leaker's orders are few next to the index.
 */
static void tally_exclude(tally_t *t, const uint8_t *conf, uint32_t P, uint8_t *excl, uint64_t *N)
{
	const moat_exposure_t *x = t->x;
	const uint32_t *rpm = x->rpm;
	uint32_t norders = x->off_orders, nrec = x->off[norders], o = 0;
	uint32_t flagged[TALLY_FEW];
	unsigned nflag = 0;
	for (uint32_t p = 0; p < P && nflag <= TALLY_FEW; p++)
		if (conf[p]) {
			if (nflag < TALLY_FEW)
				flagged[nflag] = p;
			nflag++;
		}
	if (nflag == 0)
		return;
	if (tally_exclude_listed(t, conf, P, excl, N))
		return;
	tally_v4 few[TALLY_FEW]; /* each flagged principal in every lane, repeated to fill */
	for (unsigned k = 0; k < TALLY_FEW; k++)
		few[k] = (tally_v4){0} + flagged[k % (nflag < TALLY_FEW ? nflag : TALLY_FEW)];
	/* A batch of hits (records by a flagged principal, with a family field)
	 * at a time, with their orders: the look-ups into each hit's order land
	 * far apart, and gathered they miss the cache together, not in turn. */
	uint32_t hit[TALLY_BATCH], hit_o[TALLY_BATCH];
	for (uint32_t i = 0; i < nrec;) {
		uint32_t n = 0;
		for (; i < nrec && n < TALLY_BATCH; i++) {
			i = tally_skip(rpm, i, nrec, conf, few, nflag <= TALLY_FEW);
			if (i >= nrec)
				break;
			if (!conf[rpm[i] >> 8] || !(rpm[i] & t->family))
				continue;
			/* the order holding record i: the last o with off[o] <= i,
			 * walking forward from the previous one (the records come in
			 * order); a walk streams through the offsets where a search
			 * would miss the cache at every probe */
			while (o + 1 < norders && x->off[o + 1] <= i)
				o++;
			hit[n] = i;
			hit_o[n++] = o;
			__builtin_prefetch(&excl[o]);
			__builtin_prefetch(&x->order_flags[o]);
			__builtin_prefetch(&x->order_first[o]);
			__builtin_prefetch(&x->rdt[i]);
			i = x->off[o + 1] - 1; /* one hit per order: the first */
		}
		for (uint32_t k = 0; k < n; k++) {
			uint32_t ho = hit_o[k];
			if (excl[ho] || !in_population(x, ho, t->last))
				continue;
			uint32_t lim = tally_minutes(x, ho, t->last);
			for (uint32_t j = hit[k]; j < x->off[ho + 1]; j++)
				if (conf[x->rpm[j] >> 8] && (x->rpm[j] & t->family) &&
				    (x->rdt[j] < lim || tally_overflow_on_time(x, j, t->last))) {
					excl[ho] = 1;
					tally_order(t, ho, UINT32_MAX);
					(*N)--;
					break;
				}
		}
	}
}

/* K_c(Q) and K_c(any quoted field) of every slot from its histogram (its row's):
 * Kq[q * nslot + s] = the cells of s over the supersets of pats[q]. sum is W
 * scratch cells. */
static void tally_derive(const tally_t *t, size_t nslot, const unsigned *pats, size_t npat,
			 uint32_t *Kq, uint32_t *Kf, uint32_t *sum)
{
	uint32_t W = t->W;
	for (size_t s = 0; s < nslot; s++) {
		const uint32_t *h = &t->hist[(size_t)t->row[s] * W];
		uint32_t all = 0;
		for (uint32_t c = 0; c < W; c++) {
			sum[c] = h[c];
			all += h[c];
		}
		Kf[s] = all - h[0];
		for (uint32_t b = 1; b < W; b <<= 1)
			for (uint32_t c = 0; c < W; c++)
				if (!(c & b))
					sum[c] += sum[c | b];
		for (size_t q = 0; q < npat; q++)
			Kq[q * nslot + s] = sum[t->col[pats[q]]];
	}
}

/* ln(e^a + e^b). The tails' convolutions add mostly terms far below the sum
 * so far; those are returned without exp and log1p when that gives the very
 * double the full formula would: for hi <= -1 a neighbour of hi lies at least
 * 2^-54 away, and log1p(e^d) < 5e-18 for d < -40, so hi + it rounds to hi; for
 * d < -746, e^d is 0 and hi + log1p(0) is hi (hi != 0, which would lose -0's
 * sign). */
static double lse(double a, double b)
{
	if (a == -INFINITY)
		return b;
	if (b == -INFINITY)
		return a;
	double hi = a > b ? a : b, d = a > b ? b - a : a - b;
	if ((d < -40.0 && hi <= -1.0) || (d < -746.0 && hi != 0.0))
		return hi;
	return hi + log1p(exp(d));
}

/* Union-find over victims. */
static uint32_t uf_find(uint32_t *up, uint32_t i)
{
	while (up[i] != i) {
		up[i] = up[up[i]];
		i = up[i];
	}
	return i;
}

typedef struct contact_ref {
	const char *norm; /* normalised contact */
	uint32_t victim;  /* merged victim */
} contact_ref_t;

static int cmp_contact_ref(const void *a, const void *b)
{
	const contact_ref_t *x = a, *y = b;
	int c = strcmp(x->norm, y->norm);
	return c ? c : (x->victim > y->victim) - (x->victim < y->victim);
}

/* Working memory of one round's test of one candidate. */
typedef struct tester {
	size_t nv, ngrp, npat;
	const vict_t *vs;
	const bool *active;
	const uint32_t *gsize;	  /* active victims per group */
	const uint32_t *gmembers; /* victims sorted by group */
	const uint32_t *goff;	  /* ngrp + 1 offsets into gmembers */
	const uint32_t *single_n; /* per pattern: active victims alone in their group */
	uint32_t *gcov;		  /* per group: covered active victims (scratch, kept 0) */
	uint32_t *touched;
	double *dp, *tmp, *lpmf, *suf;
	unsigned multi_groups; /* groups of >= 2 active victims */
} tester_t;

/*
 * ln P(X >= x) for one candidate: ungrouped victims of pattern q are one
 * hypergeometric draw Hyp(N, Kq[q], single_n[q]), each group g of >= 2 victims
 * adds its size with probability prod over members of Kq[pat]/N.
 */
static double grouped_tail(tester_t *t, uint64_t N, const uint64_t *Kq, uint64_t x)
{
	if (x == 0)
		return 0.0;
	size_t nsingle_pats = 0, only = 0;
	for (size_t q = 0; q < t->npat; q++)
		if (t->single_n[q]) {
			nsingle_pats++;
			only = q;
		}
	if (t->multi_groups == 0 && nsingle_pats == 1) {
		uint64_t K = Kq[only], n = t->single_n[only];
		if (K > N)
			K = N;
		double l = moat_stats_log_hypergeom_tail(N, K, n > N ? N : n, x);
		return isnan(l) ? 0.0 : l;
	}
	/* dp[s] = ln P(sum so far = s), dp[x] = ln P(sum >= x) */
	double *dp = t->dp, *tmp = t->tmp, *lpmf = t->lpmf, *suf = t->suf;
	for (uint64_t s = 0; s <= x; s++)
		dp[s] = -INFINITY;
	dp[0] = 0.0;
	/* The last draw convolved, when no group follows it: only its dp[x] is
	 * ever read, so the sums below x are not formed (dp[x] does not depend on
	 * them; it comes out the same). */
	size_t last_q = t->multi_groups == 0 ? only : SIZE_MAX;
	for (size_t q = 0; q < t->npat; q++) {
		uint64_t n = t->single_n[q], K = Kq[q] > N ? N : Kq[q];
		if (!n)
			continue;
		if (n > N)
			n = N;
		/* lpmf[j] = ln P(S = j) for j < x; suf[j] = ln P(S >= j) for j <= x */
		uint64_t hi = K < n ? K : n;
		double tl = moat_stats_log_hypergeom_tail(N, K, n, x);
		suf[x] = isnan(tl) ? -INFINITY : tl;
		for (uint64_t j = x; j-- > 0;) {
			lpmf[j] = j <= hi ? moat_stats_log_hypergeom_pmf(N, K, n, j) : -INFINITY;
			suf[j] = lse(lpmf[j], suf[j + 1]);
		}
		for (uint64_t s = 0; s <= x; s++)
			tmp[s] = -INFINITY;
		for (uint64_t s = 0; s <= x; s++) {
			if (dp[s] == -INFINITY)
				continue;
			/* j < x - s lands on s + j; j >= x - s lands on x */
			for (uint64_t j = 0; q != last_q && j < x - s && j <= hi; j++)
				tmp[s + j] = lse(tmp[s + j], dp[s] + lpmf[j]);
			tmp[x] = lse(tmp[x], dp[s] + suf[x - s]);
		}
		double *sw = dp;
		dp = tmp;
		tmp = sw;
	}
	for (size_t g = 0; g < t->ngrp; g++) {
		uint32_t w = t->gsize[g];
		if (w < 2)
			continue;
		double lq = 0.0;
		for (uint32_t i = t->goff[g]; i < t->goff[g + 1]; i++) {
			const vict_t *v = &t->vs[t->gmembers[i]];
			if (!t->active[t->gmembers[i]])
				continue;
			uint64_t K = Kq[v->pat];
			lq += K ? log((double)(K > N ? N : K) / (double)N) : -INFINITY;
		}
		if (lq == -INFINITY)
			continue;
		double l1q = lq > -1e-12 ? -INFINITY : log1p(-exp(lq));
		for (uint64_t s = x + 1; s-- > 0;) {
			if (dp[s] == -INFINITY)
				continue;
			if (s == x)
				continue; /* absorbed */
			uint64_t to = s + w < x ? s + w : x;
			dp[to] = lse(dp[to], dp[s] + lq);
			dp[s] += l1q;
		}
	}
	return dp[x] > 0.0 ? 0.0 : dp[x];
}

/* At most this many significant candidates enter one round's mixture. */
#define EM_POOL 64

/*
 * Which of a round's significant candidates explain the victims? Several can be
 * significant for the same victims: the leaker, and whoever saw the same orders
 * (the merchant admin over a CS insider, the merchant staff of the shops an ISV
 * app over-pulled). A mixture decides, by EM over the scam-contact groups: each
 * group comes from one source s, with likelihood pi_s * prod over its victims of
 * 1 / K_s(Q_v) if s covers every victim of the group, or from the background
 * with pi_0 * N^-size. A narrow source that covers the same groups explains them
 * with higher likelihood and takes them over; a broad one keeps what only it
 * covers. em[k] = the victims the fit gives pool member k.
 */
static moat_err_t em_explain(tester_t *t, const cand_t *cs, const uint32_t *ids,
			     const uint32_t *cov, const uint32_t *pool, size_t npool,
			     const uint32_t *Kq32, size_t nc, uint64_t N, size_t ngrp, double *em)
{
	for (size_t k = 0; k < npool; k++)
		em[k] = 0.0;
	if (npool == 0)
		return MOAT_OK;
	typedef struct gl {
		uint32_t k, g;
		double l;
	} gl_t;
	size_t n = 0, cap = 64;
	gl_t *ls = malloc(cap * sizeof *ls);
	double *pi = malloc((npool + 1) * sizeof *pi), *acc = malloc((npool + 1) * sizeof *acc);
	double *lpi = malloc((npool + 1) * sizeof *lpi); /* ln pi, once per iteration */
	double *den = malloc((ngrp + 1) * sizeof *den), *l0 = malloc((ngrp + 1) * sizeof *l0);
	if (!ls || !pi || !acc || !lpi || !den || !l0)
		goto nomem;
	size_t G = 0;
	for (size_t g = 0; g < ngrp; g++) {
		l0[g] = -(double)t->gsize[g] * log((double)N);
		G += t->gsize[g] != 0;
	}
	for (size_t k = 0; k < npool; k++) {
		const cand_t *c = &cs[ids[pool[k]]];
		size_t nt = 0;
		for (uint32_t i = 0; i < c->k_all; i++) {
			uint32_t v = cov[c->cov_off + i];
			if (!t->active[v])
				continue;
			if (t->gcov[t->vs[v].grp]++ == 0)
				t->touched[nt++] = t->vs[v].grp;
		}
		for (size_t i = 0; i < nt; i++) {
			uint32_t g = t->touched[i];
			if (t->gcov[g] == t->gsize[g]) {
				double l = 0.0;
				for (uint32_t m = t->goff[g]; m < t->goff[g + 1]; m++) {
					uint32_t v = t->gmembers[m];
					if (!t->active[v])
						continue;
					uint32_t K = Kq32[t->vs[v].pat * nc + pool[k]];
					l -= log((double)(K ? K : 1));
				}
				if (n == cap) {
					cap *= 2;
					gl_t *nl = realloc(ls, cap * sizeof *nl);
					if (!nl) {
						for (size_t j = i; j < nt; j++)
							t->gcov[t->touched[j]] = 0;
						goto nomem;
					}
					ls = nl;
				}
				ls[n++] = (gl_t){(uint32_t)k, g, l};
			}
			t->gcov[g] = 0;
		}
	}
	for (size_t k = 0; k <= npool; k++)
		pi[k] = 1.0 / (double)(npool + 1);
	for (int iter = 0; iter < 200 && G; iter++) {
		/* den[g] = ln sum_s pi_s L_gs, background included */
		for (size_t k = 0; k <= npool; k++)
			lpi[k] = log(pi[k]);
		for (size_t g = 0; g < ngrp; g++)
			den[g] = lpi[npool] + l0[g];
		for (size_t i = 0; i < n; i++)
			den[ls[i].g] = lse(den[ls[i].g], lpi[ls[i].k] + ls[i].l);
		for (size_t k = 0; k <= npool; k++)
			acc[k] = 0.0;
		for (size_t g = 0; g < ngrp; g++)
			if (t->gsize[g])
				acc[npool] += exp(lpi[npool] + l0[g] - den[g]);
		for (size_t i = 0; i < n; i++)
			acc[ls[i].k] += exp(lpi[ls[i].k] + ls[i].l - den[ls[i].g]);
		double moved = 0.0;
		for (size_t k = 0; k <= npool; k++) {
			double np = acc[k] / (double)G;
			moved = fmax(moved, fabs(np - pi[k]));
			pi[k] = np > 1e-300 ? np : 1e-300;
		}
		if (moved < 1e-9)
			break;
	}
	/* victims explained: responsibilities times group sizes */
	for (size_t k = 0; k <= npool; k++)
		lpi[k] = log(pi[k]);
	for (size_t g = 0; g < ngrp; g++)
		den[g] = lpi[npool] + l0[g];
	for (size_t i = 0; i < n; i++)
		den[ls[i].g] = lse(den[ls[i].g], lpi[ls[i].k] + ls[i].l);
	for (size_t i = 0; i < n; i++)
		em[ls[i].k] +=
		    exp(lpi[ls[i].k] + ls[i].l - den[ls[i].g]) * (double)t->gsize[ls[i].g];
	free(ls);
	free(pi);
	free(acc);
	free(lpi);
	free(den);
	free(l0);
	return MOAT_OK;
nomem:
	free(ls);
	free(pi);
	free(acc);
	free(lpi);
	free(den);
	free(l0);
	return MOAT_ENOMEM;
}

/* Expected covered victims under the null for slot i: the sum over the active
 * victims, in their order, of K_i(Q_v) / N. Only reported candidates need it,
 * so it is computed for them alone rather than for every candidate each round. */
static double expect_of(const vict_t *vs, size_t nv, const bool *active, const uint32_t *Kq32,
			size_t nc, size_t i, uint64_t N)
{
	double expect = 0.0;
	for (size_t j = 0; j < nv; j++)
		if (active[j]) {
			uint64_t K = Kq32[vs[j].pat * nc + i];
			expect += (double)(K > N ? N : K) / (double)N;
		}
	return expect;
}

moat_err_t moat_exposure_score(moat_exposure_t *x, const moat_victim_t *victims, size_t n_victims,
			       const moat_score_params_t *params, moat_score_result_t *out,
			       moat_error_t *err)
{
	moat_score_params_t prm;
	if (params)
		prm = *params;
	else
		moat_score_params_default(&prm);
	memset(out, 0, sizeof *out);
	if (n_victims == 0)
		return moat_error_set(err, MOAT_EINVAL, "victims",
				      "a case needs at least one report");
	moat_err_t rc = trace_compact(x);
	if (rc != MOAT_OK)
		return moat_error_set(err, rc, NULL,
				      "exposure index: out of memory while compacting");

	uint32_t P = x->principals.n, Q = x->parties.n, C = P + Q;
	vict_t *vs = calloc(n_victims, sizeof *vs);
	cand_t *cs = NULL;
	pair_t *pairs = NULL;
	size_t npairs = 0, pairs_cap = 0;
	uint32_t *pr = NULL, *cov = NULL, *ids = NULL, *slot = NULL, *Kq32 = NULL, *Kf32 = NULL;
	uint32_t *up = NULL, *gsize = NULL, *gmembers = NULL, *goff = NULL, *gcov = NULL;
	uint32_t *touched = NULL, *single_n = NULL, *pool = NULL, *Kq32_r1 = NULL;
	uint32_t *tail_round = NULL; /* per slot: the round + 1 of its last grouped_tail */
	bool *active_r1 = NULL;
	double *em = NULL;
	unsigned *pf = NULL;
	party_acc_t *acc = NULL;
	double *lp = NULL, *la = NULL, *dp = NULL, *tmp = NULL, *lpmf = NULL, *suf = NULL;
	double *pen = NULL, *lw = NULL; /* per slot: ln(m / w), ln w */
	uint8_t *pri = NULL;  /* per candidate: 1 weighted up by a prior, 2 same as a principal */
	uint8_t *dups = NULL; /* per slot: pri & 2 */
	uint64_t *Kq = NULL;
	bool *active = NULL;
	uint8_t *seen = NULL, *excl = NULL, *conf = NULL;
	uint32_t *hist = NULL, *hsum = NULL, *ptouched = NULL;
	unsigned *pfields = NULL;
	tally_who_t *who = NULL;
	uint8_t *counts = NULL, *track = NULL;
	tally_list_t *lists = NULL;
	uint32_t *row = NULL, *psize = NULL;
	char(*norm)[MOAT_CONTACT_NORM_MAX] = NULL;
	contact_ref_t *refs = NULL;
	size_t nrefs = 0, cap = 4096, *vslot = NULL, *vref = NULL;
	size_t *vmap = calloc(n_victims, sizeof *vmap); /* input -> merged victim */
	pr = malloc(cap * sizeof *pr);
	pf = malloc(cap * sizeof *pf);
	acc = malloc(cap * sizeof *acc);
	if (!vs || !pr || !pf || !acc || !vmap)
		goto nomem;

	/* Merge reports of the same order: earliest contact, fields quoted by both. */
	size_t nv = 0, vmask = 1;
	while (vmask < 2 * n_victims)
		vmask <<= 1;
	vslot = malloc(vmask * sizeof *vslot);
	if (!vslot)
		goto nomem;
	for (size_t i = 0; i < vmask; i++)
		vslot[i] = SIZE_MAX;
	vmask--;
	for (size_t i = 0; i < n_victims; i++) {
		const moat_victim_t *v = &victims[i];
		unsigned q = v->quoted & MOAT_EXPOSURE_FIELDS_ALL;
		if (!v->order_id || !q) {
			rc = moat_error_set(
			    err, MOAT_EINVAL, "quoted_fields",
			    "victim %zu: an order and at least one quoted field are needed", i + 1);
			goto fail;
		}
		int64_t o = trace_dict_find(&x->orders, v->order_id);
		size_t j = nv;
		if (o >= 0) {
			/* open addressing on the order number: reports are many, orders few */
			size_t hsh = (size_t)((uint64_t)o * 0x9E3779B97F4A7C15ull >> 20) & vmask;
			while (vslot[hsh] != SIZE_MAX && vs[vslot[hsh]].order != o)
				hsh = (hsh + 1) & vmask;
			if (vslot[hsh] != SIZE_MAX)
				j = vslot[hsh];
			else
				vslot[hsh] = nv;
		} else {
			for (j = 0; j < nv; j++)
				if (vs[j].order < 0 &&
				    strcmp(victims[vs[j].input].order_id, v->order_id) == 0)
					break;
		}
		vmap[i] = j;
		if (j < nv) {
			if (v->contact < vs[j].contact)
				vs[j].contact = v->contact;
			if (vs[j].quoted & q)
				vs[j].quoted &= q;
			continue;
		}
		vs[nv] = (vict_t){
		    o, v->contact, q, i, o >= 0 && (x->order_flags[o] & TRACE_ORDER_HONEY), 0, 0};
		nv++;
	}

	/* Scam-contact groups: union-find over identical normalised contacts. An
	 * order reported by two crews (different contacts) was most likely sold
	 * twice, by two sources: it takes the contact of its earliest report and
	 * does not join the two crews' groups, which would make a leaker who read
	 * it after that first contact look as if it missed its own crew. */
	up = malloc((nv ? nv : 1) * sizeof *up);
	norm = malloc(n_victims * sizeof *norm);
	refs = malloc(n_victims * sizeof *refs);
	vref = malloc((nv ? nv : 1) * sizeof *vref);
	if (!up || !norm || !refs || !vref)
		goto nomem;
	for (size_t j = 0; j < nv; j++)
		up[j] = (uint32_t)j;
	for (size_t j = 0; j < nv; j++)
		vref[j] = SIZE_MAX;
	for (size_t i = 0; i < n_victims; i++) {
		const char *c = victims[i].scammer_contact;
		if (!c || !*c || vs[vmap[i]].honey)
			continue;
		moat_trace_contact_normalise(c, norm[i], sizeof norm[i]);
		size_t *r = &vref[vmap[i]];
		if (norm[i][0] && (*r == SIZE_MAX || victims[i].contact < victims[*r].contact))
			*r = i;
	}
	for (size_t j = 0; j < nv; j++)
		if (vref[j] != SIZE_MAX)
			refs[nrefs++] = (contact_ref_t){norm[vref[j]], (uint32_t)j};
	if (nrefs)
		qsort(refs, nrefs, sizeof *refs, cmp_contact_ref);
	for (size_t i = 1; i < nrefs; i++)
		if (strcmp(refs[i].norm, refs[i - 1].norm) == 0) {
			uint32_t a = uf_find(up, refs[i].victim),
				 b = uf_find(up, refs[i - 1].victim);
			if (a != b)
				up[a < b ? b : a] = a < b ? a : b;
		}
	size_t ngrp = 0;
	for (size_t j = 0; j < nv; j++) {
		uint32_t r = uf_find(up, (uint32_t)j);
		vs[j].grp = r == j ? (uint32_t)ngrp++ : vs[r].grp; /* roots come first */
	}

	/* The quoted sets, and the draw. */
	unsigned pats[MAX_PATTERNS];
	size_t npat = 0;
	moat_time_t last = MOAT_TIME_NONE;
	uint64_t n = 0, unknown = 0;
	unsigned family = 0;
	for (size_t j = 0; j < nv; j++) {
		if (vs[j].honey)
			continue; /* direct evidence, handled by the case; not a statistical draw */
		n++;
		if (vs[j].order < 0)
			unknown++;
		family |= vs[j].quoted;
		if (last == MOAT_TIME_NONE || vs[j].contact > last)
			last = vs[j].contact;
		size_t q = 0;
		while (q < npat && pats[q] != vs[j].quoted)
			q++;
		if (q == npat)
			pats[npat++] = vs[j].quoted; /* at most 2^7 - 1 non-empty sets */
		vs[j].pat = (uint32_t)q;
	}
	out->quoted = family;
	cs = calloc(C ? C : 1, sizeof *cs);
	if (!cs)
		goto nomem;

	/* Pass 1: which candidates cover which victims. */
	for (size_t j = 0; j < nv; j++) {
		if (vs[j].honey || vs[j].order < 0)
			continue;
		size_t nacc;
		size_t np = order_receipts(x, (uint32_t)vs[j].order, vs[j].contact, pr, pf, cap,
					   acc, &nacc);
		for (size_t a = 0; a < np + nacc; a++) {
			unsigned got = a < np ? pf[a] : acc[a - np].fields;
			if ((got & vs[j].quoted) != vs[j].quoted)
				continue;
			uint32_t c = a < np ? pr[a] : P + acc[a - np].party;
			if (npairs == pairs_cap) {
				size_t ncap = pairs_cap ? pairs_cap * 2 : 1024;
				pair_t *np2 = realloc(pairs, ncap * sizeof *np2);
				if (!np2)
					goto nomem;
				pairs = np2;
				pairs_cap = ncap;
			}
			pairs[npairs++] = (pair_t){c, (uint32_t)j};
		}
	}
	if (npairs)
		qsort(pairs, npairs, sizeof *pairs, cmp_pair);
	cov = malloc((npairs ? npairs : 1) * sizeof *cov);
	if (!cov)
		goto nomem;
	for (size_t i = 0; i < npairs; i++) {
		cov[i] = pairs[i].victim;
		if (i == 0 || pairs[i].cand != pairs[i - 1].cand)
			cs[pairs[i].cand].cov_off = (uint32_t)i;
		cs[pairs[i].cand].k_all++;
	}

	/* Slots: the candidates that cover anything; only they can be rejected with a
	 * victim behind them, so only they need K. */
	slot = malloc((C ? C : 1) * sizeof *slot);
	ids = malloc((C ? C : 1) * sizeof *ids);
	if (!slot || !ids)
		goto nomem;
	size_t nc = 0;
	for (uint32_t c = 0; c < C; c++) {
		slot[c] = UINT32_MAX;
		if (cs[c].k_all) {
			slot[c] = (uint32_t)nc;
			ids[nc++] = c;
			cs[c].live = true;
		}
	}
	/* Histogram columns: the family's bits packed into |family| bits. */
	uint8_t col[MOAT_EXPOSURE_FIELDS_ALL + 1];
	uint32_t W = 1;
	for (unsigned f = 0; f <= MOAT_EXPOSURE_FIELDS_ALL; f++) {
		unsigned c = 0, w = 0;
		for (unsigned b = 0; b < MOAT_FIELD_COUNT; b++)
			if (family & (1u << b)) {
				c |= (f >> b & 1u) << w;
				w++;
			}
		col[f] = (uint8_t)c;
		W = 1u << w;
	}
	seen = calloc((size_t)C + 1, 1);
	excl = calloc(x->off_orders ? x->off_orders : 1, 1);
	Kq32 = calloc(npat * nc + 1, sizeof *Kq32);
	Kf32 = calloc(nc ? nc : 1, sizeof *Kf32);
	Kq = calloc(npat ? npat : 1, sizeof *Kq);
	hist = calloc((nc + TALLY_SINKS) * W, sizeof *hist);
	hsum = malloc(W * sizeof *hsum);
	pfields = calloc(nc + TALLY_SINKS, sizeof *pfields);
	ptouched = malloc((nc + TALLY_SINKS) * sizeof *ptouched);
	who = malloc((P + 1) * sizeof *who);
	counts = calloc(P + 1, 1);
	track = calloc(P + 1, 1);
	lists = calloc(2 * TALLY_TRACKED, sizeof *lists);
	row = malloc((nc ? nc : 1) * sizeof *row);
	psize = calloc((size_t)Q + 1, sizeof *psize);
	conf = calloc(P + 1, 1);
	if (!seen || !excl || !Kq32 || !Kf32 || !Kq || !hist || !hsum || !pfields || !ptouched ||
	    !conf || !who || !counts || !track || !lists || !row || !psize)
		goto nomem;
	for (size_t i = 0; i < nc; i++)
		row[i] = (uint32_t)i;
	for (uint32_t p = 0; p < P; p++)
		if (x->principal_party[p] != TRACE_NO_PARTY)
			psize[x->principal_party[p]]++;
	for (uint32_t p = 0; p < P; p++) {
		uint32_t q = x->principal_party[p];
		uint32_t self = slot[p], party = q == TRACE_NO_PARTY ? UINT32_MAX : slot[P + q];
		/* A party of one principal received in every order exactly what its
		 * principal did: its counts are the principal's, not tallied twice. */
		if (self != UINT32_MAX && party != UINT32_MAX && psize[q] == 1) {
			row[party] = self;
			party = UINT32_MAX;
		}
		counts[p] = self != UINT32_MAX || party != UINT32_MAX;
		uint32_t sink = (uint32_t)nc + (p & (TALLY_SINKS - 1));
		who[p] = (tally_who_t){(self != UINT32_MAX ? self : sink) * W,
				       party != UINT32_MAX ? party : sink};
	}
	/* The tracked: the principals covering the most victims, themselves or
	 * through their party. */
	{
		uint32_t tp[TALLY_TRACKED], tk[TALLY_TRACKED];
		unsigned ntr = 0;
		for (uint32_t p = 0; p < P; p++) {
			uint32_t q = x->principal_party[p], key = cs[p].k_all;
			if (q != TRACE_NO_PARTY && cs[P + q].k_all > key)
				key = cs[P + q].k_all;
			if (!counts[p] || (ntr == TALLY_TRACKED && key <= tk[ntr - 1]))
				continue;
			unsigned k = ntr < TALLY_TRACKED ? ntr++ : ntr - 1;
			for (; k > 0 && tk[k - 1] < key; k--) {
				tk[k] = tk[k - 1];
				tp[k] = tp[k - 1];
			}
			tk[k] = key;
			tp[k] = p;
		}
		for (unsigned k = 0; k < ntr; k++)
			track[tp[k]] = (uint8_t)(k + 1);
	}
	tally_t tl = {x,      last, family, col,     W,	       (uint32_t)nc, who,
		      counts, row,  hist,   pfields, ptouched, track,	     lists};
	uint64_t N = 0, Npop = 0;
	tally_scan(&tl, &Npop);
	/* The hypotheses: principals that ever received a family field (of any
	 * order, whenever). */
	for (uint32_t p = 0; p < P && p < x->principal_fields_n; p++)
		seen[p] = (x->principal_fields[p] & family) != 0;
	tally_derive(&tl, nc, pats, npat, Kq32, Kf32, hsum);
	N = Npop;
	N += unknown;
	if (prm.population)
		N = prm.population;
	if (N < n)
		N = n;
	out->N = N;
	out->n = n;

	/*
	 * The number of hypotheses the correction counts. A candidate that never
	 * received a quoted field has p = 1 whatever the victims are, can never be
	 * rejected and so costs nothing (the Bonferroni bound sums over hypotheses
	 * that can be rejected); a party with a single principal is the same
	 * hypothesis as that principal and is counted once.
	 */
	{
		uint32_t *members = calloc((size_t)Q + 1, sizeof *members);
		if (!members)
			goto nomem;
		for (uint32_t p = 0; p < P; p++) {
			uint32_t q = x->principal_party[p];
			if (q != TRACE_NO_PARTY && seen[p]) {
				seen[P + q] = 1;
				members[q]++;
			}
		}
		size_t m = 0;
		for (uint32_t c = 0; c < C; c++)
			if (c < P || members[c - P] > 1)
				m += seen[c];
		out->tested = m ? m : 1;

		/* Priors: the alerted principals that are hypotheses, and the parties
		 * that are the same hypothesis as one of them. */
		pri = calloc((size_t)C + 1, 1);
		if (!pri) {
			free(members);
			goto nomem;
		}
		size_t k = 0;
		for (size_t i = 0; prm.prior_share > 0.0 && i < prm.n_prior; i++) {
			int64_t p = prm.prior && prm.prior[i]
					? trace_dict_find(&x->principals, prm.prior[i])
					: -1;
			if (p < 0 || pri[p] || !seen[p])
				continue;
			pri[p] = 1;
			k++;
			uint32_t q = x->principal_party[p];
			if (q != TRACE_NO_PARTY && members[q] == 1)
				pri[P + q] = 1;
		}
		if (k == 0 || k >= out->tested || !(prm.prior_share < 1.0)) {
			memset(pri, 0, (size_t)C + 1);
			k = 0;
		}
		for (uint32_t q = 0; q < Q; q++)
			if (members[q] == 1)
				pri[P + q] |= 2;
		free(members);
		out->prior_tested = k;
		out->prior_share = k ? prm.prior_share : 0.0;
	}

	/* Groups: members sorted by group, per-round sizes. */
	gsize = calloc(ngrp + 1, sizeof *gsize);
	goff = calloc(ngrp + 2, sizeof *goff);
	gmembers = malloc((nv ? nv : 1) * sizeof *gmembers);
	gcov = calloc(ngrp + 1, sizeof *gcov);
	touched = malloc((nv ? nv : 1) * sizeof *touched);
	single_n = calloc(npat ? npat : 1, sizeof *single_n);
	active = malloc((nv ? nv : 1) * sizeof *active);
	dp = malloc((n + 2) * sizeof *dp);
	tmp = malloc((n + 2) * sizeof *tmp);
	lpmf = malloc((n + 2) * sizeof *lpmf);
	suf = malloc((n + 2) * sizeof *suf);
	lp = malloc((nc ? nc : 1) * sizeof *lp);
	tail_round = calloc(nc ? nc : 1, sizeof *tail_round);
	pool = malloc(EM_POOL * sizeof *pool);
	em = malloc(EM_POOL * sizeof *em);
	la = malloc((nc ? nc : 1) * sizeof *la);
	pen = malloc((nc ? nc : 1) * sizeof *pen);
	lw = malloc((nc ? nc : 1) * sizeof *lw);
	dups = malloc(nc ? nc : 1);
	if (!pen || !lw || !dups || !tail_round)
		goto nomem;
	if (!gsize || !goff || !gmembers || !gcov || !touched || !single_n || !active || !dp ||
	    !tmp || !lpmf || !suf || !pool || !em || !lp || !la)
		goto nomem;
	for (size_t j = 0; j < nv; j++)
		goff[vs[j].grp + 1]++;
	for (size_t g = 0; g < ngrp; g++)
		goff[g + 1] += goff[g];
	{
		uint32_t *fill = calloc(ngrp + 1, sizeof *fill);
		if (!fill)
			goto nomem;
		for (size_t j = 0; j < nv; j++)
			gmembers[goff[vs[j].grp] + fill[vs[j].grp]++] = (uint32_t)j;
		free(fill);
	}
	for (size_t j = 0; j < nv; j++)
		active[j] = !vs[j].honey;
	tester_t tt = {nv,	 ngrp, npat,	vs, active, gsize, gmembers, goff,
		       single_n, gcov, touched, dp, tmp,    lpmf,  suf,	     0};

	Kq32_r1 = malloc((npat * nc + 1) * sizeof *Kq32_r1);
	active_r1 = malloc((nv ? nv : 1) * sizeof *active_r1);
	if (!Kq32_r1 || !active_r1)
		goto nomem;
	uint64_t N_r1 = N;
	double log_alpha = log(prm.alpha), log_m = log((double)out->tested);
	{
		/* Weights summing to m over the hypotheses: the k alerted share
		 * prior_share of it, the others the rest; pen = ln(m / w) is what a
		 * weighted Bonferroni adds to ln p (ln m for everyone without priors). */
		double m = (double)out->tested, k = (double)out->prior_tested;
		double lw_a = k ? log(prm.prior_share * m / k) : 0.0;
		double lw_o = k ? log((1.0 - prm.prior_share) * m / (m - k)) : 0.0;
		for (size_t i = 0; i < nc; i++) {
			lw[i] = pri[ids[i]] & 1 ? lw_a : lw_o;
			dups[i] = pri[ids[i]] >> 1;
			pen[i] = log_m - lw[i];
		}
	}
	size_t round = 0;
	uint64_t Nr = N;
	for (;;) {
		/* This round's draw: active victims, their groups. */
		uint64_t nr = 0;
		memset(gsize, 0, ngrp * sizeof *gsize);
		for (size_t j = 0; j < nv; j++)
			if (active[j]) {
				nr++;
				gsize[vs[j].grp]++;
			}
		memset(single_n, 0, npat * sizeof *single_n);
		tt.multi_groups = 0;
		for (size_t g = 0; g < ngrp; g++)
			tt.multi_groups += gsize[g] >= 2;
		for (size_t j = 0; j < nv; j++)
			if (active[j] && gsize[vs[j].grp] == 1)
				single_n[vs[j].pat]++;

		/* Every live candidate's test. */
		size_t best = SIZE_MAX;
		for (size_t i = 0; i < nc; i++) {
			cand_t *c = &cs[ids[i]];
			lp[i] = 0.0;
			if (!c->live)
				continue;
			size_t nt = 0;
			uint64_t xs = 0;
			for (uint32_t t = 0; t < c->k_all; t++) {
				uint32_t v = cov[c->cov_off + t];
				if (!active[v])
					continue;
				if (gsize[vs[v].grp] == 1) {
					xs++;
					continue;
				}
				if (gcov[vs[v].grp]++ == 0)
					touched[nt++] = vs[v].grp;
			}
			unsigned full = 0;
			for (size_t t = 0; t < nt; t++) {
				uint32_t g = touched[t];
				if (gcov[g] == gsize[g]) {
					xs += gsize[g];
					full++;
				}
				gcov[g] = 0;
			}
			for (size_t q = 0; q < npat; q++) {
				Kq[q] = Kq32[q * nc + i];
				if (Kq[q] > Nr)
					Kq[q] = Nr;
			}
			c->x = xs;
			c->groups = full;
			c->Kfam = Kf32[i] > Nr ? Nr : Kf32[i];
			if (nr == 0 || !xs) {
				c->log_p = 0.0;
				c->live = nr != 0 && c->live;
			} else if (row[i] != i && tail_round[row[i]] == round + 1 &&
				   cs[ids[row[i]]].x == xs) {
				/* a party of one principal: the principal's test, whose
				 * inputs (its counts, its victims) are this one's */
				c->log_p = cs[ids[row[i]]].log_p;
			} else {
				tail_round[i] = (uint32_t)round + 1;
				c->log_p = grouped_tail(&tt, Nr, Kq, xs);
			}
			lp[i] = c->log_p;
			if (best == SIZE_MAX || c->log_p + pen[i] < cs[ids[best]].log_p + pen[best])
				best = i;
		}
		if (round == 0) {
			/* Round one is reported for everyone, Holm-corrected. */
			if ((out->prior_tested
				 ? moat_stats_holm_weighted(lp, lw, dups, nc, (double)out->tested,
							    la)
				 : moat_stats_holm(lp, nc, out->tested, la)) != MOAT_OK)
				goto nomem;
			for (size_t i = 0; i < nc; i++) {
				cand_t *c = &cs[ids[i]];
				c->r_log_p = lp[i];
				c->r_log_adj = la[i];
				c->r_x = c->x;
				c->r_N = Nr;
				c->r_n = nr;
				c->r_K = c->Kfam;
				c->r_groups = c->groups;
				c->r_ngroups = tt.multi_groups;
			}
			/* what expect_of needs for round one's expectation, at the end */
			memcpy(Kq32_r1, Kq32, npat * nc * sizeof *Kq32);
			memcpy(active_r1, active, nv * sizeof *active);
			N_r1 = Nr;
		}
		if (best == SIZE_MAX || round >= prm.max_rounds || nr < prm.min_victims)
			break;
		double adj = cs[ids[best]].log_p + pen[best];
		if (!(adj < log_alpha))
			break;
		size_t npool = 0;
		for (size_t i = 0; i < nc; i++) {
			if (!cs[ids[i]].live || !(cs[ids[i]].log_p + pen[i] < log_alpha))
				continue;
			if (npool < EM_POOL) {
				pool[npool++] = (uint32_t)i;
				continue;
			}
			size_t worst = 0; /* keep the EM_POOL smallest weighted p */
			for (size_t k = 1; k < npool; k++)
				if (cs[ids[pool[k]]].log_p + pen[pool[k]] >
				    cs[ids[pool[worst]]].log_p + pen[pool[worst]])
					worst = k;
			if (cs[ids[i]].log_p + pen[i] <
			    cs[ids[pool[worst]]].log_p + pen[pool[worst]])
				pool[worst] = (uint32_t)i;
		}
		if (em_explain(&tt, cs, ids, cov, pool, npool, Kq32, nc, Nr, ngrp, em) != MOAT_OK)
			goto nomem;
		for (size_t k = 0; k < npool; k++)
			cs[ids[pool[k]]].expect = expect_of(vs, nv, active, Kq32, nc, pool[k], Nr);
		/* Confirm every significant candidate the mixture gives at least
		 * min_victims victims (or, if none, the one it gives most). */
		size_t top = 0, confirmed = 0;
		for (size_t k = 1; k < npool; k++)
			if (em[k] > em[top])
				top = k;
		round++;
		/* Principals first; a party is not confirmed in the round that confirms one
		 * of its principals (the narrower accusation explains it). */
		bool any_enough = em[top] >= (double)prm.min_victims;
		for (size_t kk = 0; kk < 2 * npool; kk++) {
			size_t k = kk % npool;
			bool party = ids[pool[k]] >= P;
			if (party != (kk >= npool))
				continue;
			if (!(em[k] >= (double)prm.min_victims || (k == top && !any_enough)))
				continue;
			if (party) {
				bool member = false;
				for (size_t j = 0; j < npool && !member; j++)
					member =
					    ids[pool[j]] < P &&
					    cs[ids[pool[j]]].round == (int)round &&
					    x->principal_party[ids[pool[j]]] == ids[pool[k]] - P;
				if (member)
					continue;
			}
			cand_t *b = &cs[ids[pool[k]]];
			double badj = b->log_p + pen[pool[k]];
			if (badj > 0.0)
				badj = 0.0;
			confirmed++;
			b->round = (int)round;
			b->live = false;
			b->r_log_p = b->log_p;
			b->r_log_adj = badj;
			b->r_x = b->x;
			b->r_N = Nr;
			b->r_n = nr;
			b->r_K = b->Kfam;
			b->r_groups = b->groups;
			b->r_ngroups = tt.multi_groups;
			b->r_expect = b->expect;
			for (uint32_t t = 0; t < b->k_all; t++)
				active[cov[b->cov_off + t]] = false;
		}
		/* Condition on this round's confirmed: out go the orders they had received
		 * (any quoted field by the last contact), taken off the counts, and the
		 * victims on them. */
		for (uint32_t p = 0; p < P; p++) {
			uint32_t q = x->principal_party[p];
			conf[p] = cs[p].round == (int)round ||
				  (q != TRACE_NO_PARTY && cs[P + q].round == (int)round);
		}
		tally_exclude(&tl, conf, P, excl, &Npop);
		for (size_t j = 0; j < nv; j++)
			if (active[j] && vs[j].order >= 0 && excl[vs[j].order])
				active[j] = false;
		/* Only candidates that still cover an active victim stay in the test. */
		for (size_t i = 0; i < nc; i++) {
			cand_t *c = &cs[ids[i]];
			bool any = false;
			for (uint32_t t = 0; c->live && !any && t < c->k_all; t++)
				any = active[cov[c->cov_off + t]];
			c->live = any;
		}
		tally_derive(&tl, nc, pats, npat, Kq32, Kf32, hsum);
		Nr = Npop;
		Nr += unknown;
		if (Nr < 1)
			Nr = 1;
	}

	/* Rows: confirmed first (by round), then by round one's corrected p. */
	size_t want = round > prm.max_suspects ? round : prm.max_suspects;
	if (want > nc)
		want = nc;
	for (size_t i = 1; i < nc; i++) {
		uint32_t v = ids[i];
		size_t j = i;
		while (j > 0) {
			const cand_t *a = &cs[ids[j - 1]], *bb = &cs[v];
			bool b_first;
			if (a->round && bb->round && a->round != bb->round)
				b_first = bb->round < a->round;
			else if (a->round && bb->round && a->r_log_adj != bb->r_log_adj)
				b_first = bb->r_log_adj < a->r_log_adj;
			else if (a->round && bb->round)
				b_first = bb->r_log_p < a->r_log_p;
			else if (a->round || bb->round)
				b_first = bb->round != 0;
			else if (a->r_log_adj != bb->r_log_adj)
				b_first = bb->r_log_adj < a->r_log_adj;
			else if (a->r_log_p != bb->r_log_p)
				b_first = bb->r_log_p < a->r_log_p;
			else
				b_first = v < P && ids[j - 1] >= P;
			if (!b_first)
				break;
			ids[j] = ids[j - 1];
			j--;
		}
		ids[j] = v;
	}
	out->suspects = calloc(want ? want : 1, sizeof *out->suspects);
	if (!out->suspects)
		goto nomem;
	for (size_t r = 0; r < want; r++) {
		uint32_t id = ids[r];
		cand_t *c = &cs[id];
		moat_suspect_t *s = &out->suspects[out->n_suspects];
		if (id < P) {
			snprintf(s->principal, sizeof s->principal, "%s",
				 trace_dict_str(&x->principals, id));
			uint32_t q = x->principal_party[id];
			if (q != TRACE_NO_PARTY)
				snprintf(s->party, sizeof s->party, "%s",
					 trace_dict_str(&x->parties, q));
		} else {
			s->is_party = true;
			snprintf(s->party, sizeof s->party, "%s",
				 trace_dict_str(&x->parties, id - P));
		}
		if (!c->round) /* round one's test */
			c->r_expect = expect_of(vs, nv, active_r1, Kq32_r1, nc, slot[id], N_r1);
		s->fields = family;
		s->N = c->r_N;
		s->n = c->r_n;
		s->K = c->r_K;
		s->k = c->r_x;
		s->groups = c->r_groups;
		s->n_groups = c->r_ngroups;
		s->log_p = c->r_log_p;
		s->log_p_adj = c->r_log_adj;
		s->round = c->round;
		s->significant = c->round != 0;
		s->prior = pri[id] & 1;
		/* observed over expected under the null */
		s->lift = c->r_expect > 0 ? (double)s->k / c->r_expect : 0.0;
		s->coverage = moat_stats_coverage(s->k, s->n);
		s->covered = malloc((c->k_all ? c->k_all : 1) * sizeof *s->covered);
		if (!s->covered)
			goto nomem;
		for (uint32_t t = 0; t < c->k_all; t++)
			s->covered[s->n_covered++] = vs[cov[c->cov_off + t]].input;
		out->n_suspects++;
	}
	rc = MOAT_OK;
	goto done;
nomem:
	rc = moat_error_set(err, MOAT_ENOMEM, NULL, "scoring: out of memory");
fail:
	moat_score_result_clear(out);
done:
	free(vslot);
	free(vref);
	free(vmap);
	free(vs);
	free(cs);
	free(pairs);
	free(cov);
	free(ids);
	free(slot);
	free(pr);
	free(pf);
	free(acc);
	free(lp);
	free(tail_round);
	free(la);
	free(pen);
	free(lw);
	free(pri);
	free(dups);
	free(active);
	free(seen);
	free(conf);
	free(hist);
	free(hsum);
	free(pfields);
	free(ptouched);
	free(who);
	free(counts);
	free(track);
	for (unsigned k = 0; lists && k < 2 * TALLY_TRACKED; k++)
		free(lists[k].o);
	free(lists);
	free(row);
	free(psize);
	free(excl);
	free(Kq32);
	free(Kq32_r1);
	free(active_r1);
	free(Kf32);
	free(Kq);
	free(up);
	free(norm);
	free(refs);
	free(gsize);
	free(goff);
	free(gmembers);
	free(gcov);
	free(touched);
	free(single_n);
	free(dp);
	free(tmp);
	free(lpmf);
	free(suf);
	free(pool);
	free(em);
	return rc;
}
