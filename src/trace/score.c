/*
 * Scoring a case against the exposure index.
 *
 * Candidates are every principal and every party. For candidate c, E_c is the
 * set of population orders for which c had received in plaintext every field
 * the case's reports all quote, before the last contact; K_c = |E_c|. A victim
 * is covered by c when c had received every field *its* report quotes before
 * *its* first contact; k_c counts those. Under the null hypothesis that the
 * victims are a random draw of n orders out of N, k_c is hypergeometric, so the
 * p-value is P(X >= k_c). A party is one candidate whose receipts are the union
 * of its principals' (two staff who each saw half the fields make the party see
 * all of them).
 *
 * Several leakers: the best candidate (smallest Holm-corrected p) is confirmed
 * if significant; its covered victims are then removed from both the victims
 * and the population and everything is rescored, so a second leaker stands out
 * once the first one's victims no longer dominate, and the first leaker's party
 * is not confirmed again for the same victims.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "moat/trace.h"
#include "trace/trace_internal.h"

void moat_score_params_default(moat_score_params_t *p)
{
	memset(p, 0, sizeof *p);
	p->alpha = 0.01;
	p->max_rounds = 5;
	p->max_suspects = 20;
	p->min_victims = 3;
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

/* Candidate numbering: principals 0..P-1, parties P..P+Q-1. */
typedef struct cand {
	uint64_t K;
	uint32_t k_all;    /* victims covered in total */
	uint32_t cov_off;  /* into the coverage list */
	uint32_t k;        /* covered among the still-active victims (per round) */
	uint32_t k_removed;
	double log_p, log_adj;
	int round;         /* its candidate was confirmed in this round (1-based), 0 = not */
	double first_log_p, first_log_adj; /* the test reported: first round, or the
					     round that confirmed it */
	uint32_t first_k;
	uint64_t tN, tn, tK; /* population, victims and exposure of that test */
	bool confirmed;      /* this hypothesis confirmed its candidate */
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
	int64_t order;     /* index order id, -1 if never accessed */
	moat_time_t contact;
	unsigned quoted;
	size_t input;      /* first input index */
	bool honey;
} vict_t;

/* Walks one order's rows grouping by principal; calls back with the fields each
 * principal had by `at`, and returns the party unions through acc/nacc. */
static size_t order_receipts(const moat_exposure_t *x, uint32_t o, moat_time_t at,
			     uint32_t *pr, unsigned *pf, size_t cap, party_acc_t *acc,
			     size_t *nacc)
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

/* Pass 2 over a range of orders: population count and K counters. */
typedef struct pass2 {
	const moat_exposure_t *x;
	uint32_t lo, hi;
	moat_time_t last;
	unsigned family;
	const unsigned *fam;
	size_t nf;
	uint32_t C, P;
	const uint8_t *hot, *isc;
	uint32_t *Kc;
	uint64_t N;
	moat_err_t rc;
} pass2_t;

static void *pass2_run(void *arg)
{
	pass2_t *t = arg;
	const moat_exposure_t *x = t->x;
	size_t cap = 4096;
	uint32_t *pr = malloc(cap * sizeof *pr);
	unsigned *pf = malloc(cap * sizeof *pf);
	party_acc_t *acc = malloc(cap * sizeof *acc);
	if (!pr || !pf || !acc) {
		t->rc = MOAT_ENOMEM;
		goto out;
	}
	for (uint32_t o = t->lo; o < t->hi; o++) {
		if ((x->order_flags[o] & TRACE_ORDER_HONEY) ||
		    (int64_t)x->order_first[o] * 1000 > t->last + 999)
			continue;
		t->N++;
		bool any = false;
		for (uint32_t i = x->off[o]; i < x->off[o + 1]; i++)
			if (t->hot[x->rpm[i] >> 8] && (x->rpm[i] & t->family)) {
				any = true;
				break;
			}
		if (!any)
			continue;
		size_t nacc;
		size_t np = order_receipts(x, o, t->last, pr, pf, cap, acc, &nacc);
		for (size_t a = 0; a < np + nacc; a++) {
			unsigned got = (a < np ? pf[a] : acc[a - np].fields) & t->family;
			uint32_t c = a < np ? pr[a] : t->P + acc[a - np].party;
			for (size_t fi = 0; got && fi < t->nf; fi++)
				if ((got & t->fam[fi]) && t->isc[fi * t->C + c])
					t->Kc[fi * t->C + c]++;
		}
	}
out:
	free(pr);
	free(pf);
	free(acc);
	return NULL;
}

static bool better(const cand_t *a, uint32_t ia, const cand_t *b, uint32_t ib, uint32_t P)
{
	if (a->log_adj != b->log_adj)
		return a->log_adj < b->log_adj;
	if (a->log_p != b->log_p)
		return a->log_p < b->log_p;
	bool pa = ia < P, pb = ib < P;
	if (pa != pb)
		return pa; /* the narrower accusation first */
	if (a->k != b->k)
		return a->k > b->k;
	return a->K < b->K;
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
		return moat_error_set(err, MOAT_EINVAL, "victims", "a case needs at least one report");
	moat_err_t rc = trace_compact(x);
	if (rc != MOAT_OK)
		return moat_error_set(err, rc, NULL, "exposure index: out of memory while compacting");

	uint32_t P = x->principals.n, Q = x->parties.n, C = P + Q;
	vict_t *vs = calloc(n_victims, sizeof *vs);
	cand_t *cs = NULL;
	pair_t *pairs = NULL;
	size_t npairs = 0, pairs_cap = 0;
	uint32_t *pr = NULL, *cov = NULL, *ids = NULL, *Kc = NULL;
	unsigned *pf = NULL;
	party_acc_t *acc = NULL;
	double *lp = NULL, *la = NULL;
	bool *active = NULL;
	uint8_t *hot = NULL, *isc = NULL;
	size_t cap = 4096, *vslot = NULL;
	pr = malloc(cap * sizeof *pr);
	pf = malloc(cap * sizeof *pf);
	acc = malloc(cap * sizeof *acc);
	if (!vs || !pr || !pf || !acc)
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
			rc = moat_error_set(err, MOAT_EINVAL, "quoted_fields",
					    "victim %zu: an order and at least one quoted field are needed",
					    i + 1);
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
		if (j < nv) {
			if (v->contact < vs[j].contact)
				vs[j].contact = v->contact;
			if (vs[j].quoted & q)
				vs[j].quoted &= q;
			continue;
		}
		vs[nv] = (vict_t){o, v->contact, q, i, o >= 0 && (x->order_flags[o] & TRACE_ORDER_HONEY)};
		nv++;
	}

	/*
	 * Hypotheses are (candidate, family of fields). Victim v counts for (c, F)
	 * when it quoted a field of F and c had every field v quoted before v's
	 * contact; the draw is the n_F victims that quoted a field of F; E is the
	 * orders for which c had a field of F before the last contact. Every covered
	 * victim is then inside E, the consistency the exact test needs.
	 */
	unsigned fam[MOAT_FIELD_COUNT]; /* field mask of each hypothesis family */
	uint64_t n_f[MOAT_FIELD_COUNT] = {0}, rem_f[MOAT_FIELD_COUNT] = {0};
	size_t nf = 0;
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
	}
	/* One family: "c is the source of these reports", E_c = orders for which c
	 * had any quoted field. (Per-field families were tried: they split the
	 * victims and multiply the hypotheses, and lost power on the simulator.) */
	if (family)
		fam[nf++] = family;
	for (size_t j = 0; j < nv; j++)
		for (size_t a = 0; !vs[j].honey && a < nf; a++)
			if (vs[j].quoted & fam[a])
				n_f[a]++;
	out->quoted = family;
	size_t H = (size_t)C * nf;
	cs = calloc(H ? H : 1, sizeof *cs);
	if (!cs)
		goto nomem;

	/* Pass 1: which hypotheses cover which victims. */
	for (size_t j = 0; j < nv; j++) {
		if (vs[j].honey || vs[j].order < 0)
			continue;
		size_t nacc;
		size_t np = order_receipts(x, (uint32_t)vs[j].order, vs[j].contact, pr, pf, cap, acc,
					   &nacc);
		for (size_t a = 0; a < np + nacc; a++) {
			uint32_t c;
			unsigned got = a < np ? pf[a] : acc[a - np].fields;
			if ((got & vs[j].quoted) != vs[j].quoted)
				continue;
			c = a < np ? pr[a] : P + acc[a - np].party;
			for (size_t fi = 0; fi < nf; fi++) {
				if (!(vs[j].quoted & fam[fi]))
					continue;
				if (npairs == pairs_cap) {
					size_t ncap = pairs_cap ? pairs_cap * 2 : 1024;
					pair_t *np2 = realloc(pairs, ncap * sizeof *np2);
					if (!np2)
						goto nomem;
					pairs = np2;
					pairs_cap = ncap;
				}
				pairs[npairs++] = (pair_t){(uint32_t)(fi * C + c), (uint32_t)j};
			}
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

	/* Pass 2: the population and K of every hypothesis that covers a victim.
	 * Byte flags (one per principal, one per hypothesis) keep the scan over all
	 * rows in cache; rows of principals that matter to no hypothesis are skipped. */
	hot = calloc(P ? P : 1, 1);
	isc = calloc(H ? H : 1, 1);
	Kc = calloc(H ? H : 1, sizeof *Kc);
	if (!hot || !isc || !Kc)
		goto nomem;
	for (size_t h = 0; h < H; h++)
		isc[h] = cs[h].k_all != 0;
	for (uint32_t p = 0; p < P; p++) {
		uint32_t q = x->principal_party[p];
		for (size_t fi = 0; fi < nf; fi++)
			if (isc[fi * C + p] || (q != TRACE_NO_PARTY && isc[fi * C + P + q]))
				hot[p] = 1;
	}
	/* The scan is split over two threads (each with its own counters) when the
	 * index is large; the second thread is an optimisation, never required. */
	pass2_t half[2] = {{x, 0, x->off_orders, last, family, fam, nf, C, P, hot, isc, Kc, 0, MOAT_OK},
			   {x, 0, 0, last, family, fam, nf, C, P, hot, isc, NULL, 0, MOAT_OK}};
	pthread_t th;
	bool threaded = false;
	if (x->nrec > (1u << 20)) {
		half[1].Kc = calloc(H ? H : 1, sizeof *Kc);
		if (half[1].Kc) {
			half[1].lo = half[0].hi = x->off_orders / 2;
			half[1].hi = x->off_orders;
			threaded = pthread_create(&th, NULL, pass2_run, &half[1]) == 0;
			if (!threaded) {
				half[0].hi = x->off_orders;
				free(half[1].Kc);
				half[1].Kc = NULL;
			}
		}
	}
	pass2_run(&half[0]);
	if (threaded) {
		pthread_join(th, NULL);
		for (size_t h = 0; h < H; h++)
			Kc[h] += half[1].Kc[h];
	}
	free(half[1].Kc);
	if (half[0].rc != MOAT_OK || (threaded && half[1].rc != MOAT_OK))
		goto nomem;
	uint64_t N = half[0].N + (threaded ? half[1].N : 0);
	for (size_t h = 0; h < H; h++)
		cs[h].K = Kc[h];
	N += unknown;
	if (prm.population)
		N = prm.population;
	if (N < n)
		N = n;
	for (size_t h = 0; h < H; h++) {
		if (cs[h].K < cs[h].k_all)
			cs[h].K = cs[h].k_all;
		if (cs[h].K > N)
			cs[h].K = N;
	}
	out->N = N;
	out->n = n;

	/*
	 * The number of hypotheses the correction counts. A (candidate, field) that
	 * never received the field has p = 1 whatever the victims are, can never be
	 * rejected and so costs nothing (the Bonferroni bound sums over hypotheses
	 * that can be rejected); a party with a single principal is the same
	 * hypothesis as that principal and is counted once.
	 */
	{
		uint8_t *seen = calloc((size_t)C + 1, 1);
		uint32_t *members = calloc((size_t)Q + 1, sizeof *members);
		if (!seen || !members) {
			free(seen);
			free(members);
			goto nomem;
		}
		for (size_t i = 0; i < x->nrec; i++)
			seen[x->rpm[i] >> 8] |= (uint8_t)(x->rpm[i] & family);
		for (uint32_t p = 0; p < P; p++) {
			uint32_t q = x->principal_party[p];
			if (q != TRACE_NO_PARTY) {
				seen[P + q] |= seen[p];
				if (seen[p])
					members[q]++;
			}
		}
		size_t m = 0;
		for (uint32_t c = 0; c < C; c++)
			if (c < P || members[c - P] > 1)
				for (size_t fi = 0; fi < nf; fi++)
					m += (seen[c] & fam[fi]) != 0;
		free(seen);
		free(members);
		out->tested = m > nf ? m : nf;
	}

	/* Explain-away rounds over the hypotheses that cover anything. */
	ids = malloc((H ? H : 1) * sizeof *ids);
	size_t nc = 0;
	if (!ids)
		goto nomem;
	for (size_t h = 0; h < H; h++)
		if (cs[h].k_all)
			ids[nc++] = (uint32_t)h;
	lp = malloc((nc ? nc : 1) * sizeof *lp);
	la = malloc((nc ? nc : 1) * sizeof *la);
	active = malloc((nv ? nv : 1) * sizeof *active);
	if (!lp || !la || !active)
		goto nomem;
	for (size_t j = 0; j < nv; j++)
		active[j] = !vs[j].honey && vs[j].order >= 0;
	uint64_t removed = 0;
	double log_alpha = log(prm.alpha), log_m = log((double)out->tested);

	/* Round one: every hypothesis on all victims, Holm-corrected. */
	for (size_t i = 0; i < nc; i++) {
		cand_t *c = &cs[ids[i]];
		c->k = c->k_all;
		lp[i] = moat_stats_log_hypergeom_tail(N, c->K, n_f[ids[i] / C], c->k);
		if (isnan(lp[i]))
			lp[i] = 0.0;
	}
	if (moat_stats_holm(lp, nc, out->tested, la) != MOAT_OK)
		goto nomem;
	for (size_t i = 0; i < nc; i++) {
		cand_t *c = &cs[ids[i]];
		c->log_p = c->first_log_p = lp[i];
		c->log_adj = c->first_log_adj = la[i];
		c->first_k = c->k;
		c->tN = N;
		c->tn = n_f[ids[i] / C];
		c->tK = c->K;
	}

	/*
	 * Which of the significant candidates explain the victims? Greedy explaining
	 * away in p order lets a broad candidate (a merchant admin who sees all of a
	 * shop's orders) swallow the victims of two narrower real leakers inside it
	 * (a CS agent of that shop and a courier). So first fit a mixture by EM:
	 * each victim comes from one source s with probability pi_s / K_s if s
	 * covers it, or from the background with pi_0 / N. A narrow source that
	 * covers the same victims explains them with higher likelihood and takes
	 * them over. The candidates are then tested in order of the victims the
	 * mixture gives them, each on the victims not yet explained (Bonferroni over
	 * all hypotheses, so every test stands on its own), and confirmed if still
	 * significant; their victims are removed before the next test.
	 */
	size_t npool = 0;
	uint32_t *pool = malloc((nc ? nc : 1) * sizeof *pool);
	double *pi = malloc((nc + 1) * sizeof *pi), *share = malloc((nc + 1) * sizeof *share);
	double *lv = malloc((nv ? nv : 1) * sizeof *lv);
	if (!pool || !pi || !share || !lv) {
		free(pool);
		free(pi);
		free(share);
		free(lv);
		goto nomem;
	}
	/* The pool: the significant hypotheses, best first, at most 64 (more sources
	 * than that in one case is not a leak pattern the mixture needs to untangle). */
	for (size_t i = 0; i < nc; i++)
		if (la[i] < log_alpha)
			pool[npool++] = (uint32_t)i;
	for (size_t i = 1; i < npool; i++) {
		uint32_t v = pool[i];
		size_t j = i;
		while (j > 0 && la[pool[j - 1]] > la[v]) {
			pool[j] = pool[j - 1];
			j--;
		}
		pool[j] = v;
	}
	if (npool > 64)
		npool = 64;
	double nlive = 0;
	for (size_t j = 0; j < nv; j++)
		nlive += active[j];
	for (size_t s2 = 0; s2 <= npool; s2++)
		pi[s2] = 1.0 / (double)(npool + 1);
	for (int iter = 0; iter < 200 && npool && nlive > 0; iter++) {
		for (size_t j = 0; j < nv; j++)
			lv[j] = pi[npool] / (double)N;
		for (size_t s2 = 0; s2 < npool; s2++) {
			const cand_t *c = &cs[ids[pool[s2]]];
			for (uint32_t t = 0; t < c->k_all; t++)
				lv[cov[c->cov_off + t]] += pi[s2] / (double)c->K;
		}
		double bg = 0;
		for (size_t j = 0; j < nv; j++)
			if (active[j])
				bg += (pi[npool] / (double)N) / lv[j];
		for (size_t s2 = 0; s2 < npool; s2++) {
			const cand_t *c = &cs[ids[pool[s2]]];
			double r = 0;
			for (uint32_t t = 0; t < c->k_all; t++) {
				uint32_t v = cov[c->cov_off + t];
				if (active[v])
					r += (pi[s2] / (double)c->K) / lv[v];
			}
			share[s2] = r;
		}
		double moved = fabs(pi[npool] - bg / nlive);
		for (size_t s2 = 0; s2 < npool; s2++) {
			double np2 = share[s2] / nlive;
			moved = fmax(moved, fabs(np2 - pi[s2]));
			pi[s2] = np2;
		}
		pi[npool] = bg / nlive;
		if (moved < 1e-7)
			break;
	}
	/* Order: most victims explained first; ties by p, then principal first. */
	for (size_t i = 1; i < npool; i++) {
		uint32_t v = pool[i];
		double sv = pi[i];
		size_t j = i;
		while (j > 0) {
			const cand_t *pa = &cs[ids[pool[j - 1]]], *pb = &cs[ids[v]];
			bool first = sv > pi[j - 1] + 1e-12 ||
				     (fabs(sv - pi[j - 1]) <= 1e-12 &&
				      better(pb, ids[v] % C, pa, ids[pool[j - 1]] % C, P));
			if (!first)
				break;
			pool[j] = pool[j - 1];
			pi[j] = pi[j - 1];
			j--;
		}
		pool[j] = v;
		pi[j] = sv;
	}
	size_t round = 0;
	for (size_t q = 0; q < npool && round < prm.max_rounds; q++) {
		if (n - removed < prm.min_victims)
			break;
		uint32_t h = ids[pool[q]], cb = h % C;
		size_t fb = h / C;
		cand_t *b = &cs[h];
		if (b->round)
			continue;
		b->k = b->k_removed = 0;
		for (uint32_t t = 0; t < b->k_all; t++) {
			if (active[cov[b->cov_off + t]])
				b->k++;
			else
				b->k_removed++;
		}
		/* Removed victims may lie in E without being covered: clamp. */
		uint64_t Nr = N - removed, nr = n_f[fb] - rem_f[fb];
		uint64_t Kr = b->K - b->k_removed;
		if (Kr > Nr)
			Kr = Nr;
		if (nr > Nr)
			nr = Nr;
		double l = b->k ? moat_stats_log_hypergeom_tail(Nr, Kr, nr, b->k) : 0.0;
		if (isnan(l))
			l = 0.0;
		double adj = l + log_m > 0.0 ? 0.0 : l + log_m;
		if (round == 0)
			adj = b->first_log_adj; /* the first test is round one's Holm step */
		if (!(adj < log_alpha))
			continue;
		round++;
		b->first_log_p = round == 1 ? b->first_log_p : l;
		b->first_log_adj = adj;
		b->first_k = b->k;
		b->tN = Nr;
		b->tn = nr;
		b->tK = Kr;
		b->confirmed = true;
		for (size_t fi = 0; fi < nf; fi++) {
			cand_t *c = &cs[fi * C + cb];
			if (!c->round)
				c->round = (int)round;
		}
		for (size_t fi = 0; fi < nf; fi++) {
			cand_t *c = &cs[fi * C + cb];
			for (uint32_t t = 0; t < c->k_all; t++) {
				uint32_t v = cov[c->cov_off + t];
				if (!active[v])
					continue;
				active[v] = false;
				removed++;
				for (size_t a2 = 0; a2 < nf; a2++)
					if (vs[v].quoted & fam[a2])
						rem_f[a2]++;
			}
		}
	}
	free(pool);
	free(pi);
	free(share);
	free(lv);

	/* Then, while victims remain unexplained, the best remaining candidate on
	 * them: a second leaker may only stand out once the first one's victims are
	 * gone. */
	while (round < prm.max_rounds && n - removed >= prm.min_victims) {
		size_t best = SIZE_MAX;
		double best_l = 0.0;
		for (size_t i = 0; i < nc; i++) {
			cand_t *c = &cs[ids[i]];
			if (c->round)
				continue;
			size_t fi = ids[i] / C;
			c->k = c->k_removed = 0;
			for (uint32_t t = 0; t < c->k_all; t++) {
				if (active[cov[c->cov_off + t]])
					c->k++;
				else
					c->k_removed++;
			}
			if (!c->k)
				continue;
			uint64_t Nr = N - removed, nr = n_f[fi] - rem_f[fi], Kr = c->K - c->k_removed;
			if (Kr > Nr)
				Kr = Nr;
			if (nr > Nr)
				nr = Nr;
			double l = moat_stats_log_hypergeom_tail(Nr, Kr, nr, c->k);
			if (isnan(l))
				l = 0.0;
			c->log_p = l;
			c->tK = Kr;
			if (best == SIZE_MAX || l < best_l ||
			    (l == best_l && better(c, ids[i] % C, &cs[ids[best]], ids[best] % C, P))) {
				best = i;
				best_l = l;
			}
		}
		if (best == SIZE_MAX || !(best_l + log_m < log_alpha))
			break;
		uint32_t h = ids[best], cb = h % C;
		size_t fb = h / C;
		cand_t *b = &cs[h];
		round++;
		b->first_log_p = best_l;
		b->first_log_adj = best_l + log_m;
		b->first_k = b->k;
		b->tN = N - removed;
		b->tn = n_f[fb] - rem_f[fb];
		b->confirmed = true;
		for (size_t fi = 0; fi < nf; fi++) {
			cand_t *c = &cs[fi * C + cb];
			if (!c->round)
				c->round = (int)round;
			for (uint32_t t = 0; t < c->k_all; t++) {
				uint32_t v = cov[c->cov_off + t];
				if (!active[v])
					continue;
				active[v] = false;
				removed++;
				for (size_t a2 = 0; a2 < nf; a2++)
					if (vs[v].quoted & fam[a2])
						rem_f[a2]++;
			}
		}
	}

	/* One row per candidate: its confirming hypothesis, else its best one. */
	size_t rows = 0;
	for (size_t i = 0; i < nc; i++) {
		uint32_t c = ids[i] % C;
		const cand_t *h = &cs[ids[i]];
		/* keep the hypothesis that confirmed c, or the best first-round one */
		bool keep = true;
		for (size_t fi = 0; fi < nf; fi++) {
			uint32_t other = (uint32_t)(fi * C + c);
			const cand_t *o = &cs[other];
			if (other == ids[i] || !o->k_all)
				continue;
			if (o->confirmed != h->confirmed) {
				if (o->confirmed)
					keep = false;
			} else if (o->first_log_adj < h->first_log_adj ||
				   (o->first_log_adj == h->first_log_adj && other < ids[i])) {
				keep = false;
			}
		}
		if (keep)
			ids[rows++] = ids[i];
	}
	nc = rows;
	size_t want = 0;
	for (size_t i = 0; i < nc; i++)
		if (cs[ids[i]].confirmed)
			want++;
	if (want < prm.max_suspects)
		want = prm.max_suspects;
	if (want > nc)
		want = nc;
	out->suspects = calloc(want ? want : 1, sizeof *out->suspects);
	if (!out->suspects)
		goto nomem;
	/* Confirmed first (by round), then by first-round corrected p. */
	for (size_t i = 1; i < nc; i++) {
		uint32_t v = ids[i];
		size_t j = i;
		while (j > 0) {
			const cand_t *a = &cs[ids[j - 1]], *b = &cs[v];
			int ra = a->confirmed ? a->round : 0, rb = b->confirmed ? b->round : 0;
			bool b_first;
			if (ra && rb)
				b_first = rb < ra;
			else if (ra || rb)
				b_first = rb != 0;
			else if (a->first_log_adj != b->first_log_adj)
				b_first = b->first_log_adj < a->first_log_adj;
			else if (a->first_log_p != b->first_log_p)
				b_first = b->first_log_p < a->first_log_p;
			else
				b_first = (v % C < P) && ids[j - 1] % C >= P;
			if (!b_first)
				break;
			ids[j] = ids[j - 1];
			j--;
		}
		ids[j] = v;
	}
	for (size_t r = 0; r < want; r++) {
		uint32_t h = ids[r], id = h % C;
		size_t fi = h / C;
		cand_t *c = &cs[h];
		moat_suspect_t *s = &out->suspects[out->n_suspects];
		if (id < P) {
			snprintf(s->principal, sizeof s->principal, "%s", trace_dict_str(&x->principals, id));
			uint32_t q = x->principal_party[id];
			if (q != TRACE_NO_PARTY)
				snprintf(s->party, sizeof s->party, "%s", trace_dict_str(&x->parties, q));
		} else {
			s->is_party = true;
			snprintf(s->party, sizeof s->party, "%s", trace_dict_str(&x->parties, id - P));
		}
		s->fields = fam[fi];
		s->N = c->tN;
		s->n = c->tn;
		s->K = c->tK;
		s->k = c->first_k;
		s->log_p = c->first_log_p;
		s->log_p_adj = c->first_log_adj;
		s->round = c->confirmed ? c->round : 0;
		s->significant = c->confirmed;
		s->lift = moat_stats_lift(s->k, s->n, s->K, s->N);
		s->coverage = moat_stats_coverage(s->k, s->n);
		/* Victims it explains: the union over its fields. */
		size_t tot = 0;
		for (size_t a = 0; a < nf; a++)
			tot += cs[a * C + id].k_all;
		s->covered = malloc((tot ? tot : 1) * sizeof *s->covered);
		if (!s->covered)
			goto nomem;
		for (size_t a = 0; a < nf; a++) {
			const cand_t *o = &cs[a * C + id];
			for (uint32_t t = 0; t < o->k_all; t++) {
				size_t in = vs[cov[o->cov_off + t]].input, z = 0;
				while (z < s->n_covered && s->covered[z] != in)
					z++;
				if (z == s->n_covered)
					s->covered[s->n_covered++] = in;
			}
		}
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
	free(vs);
	free(cs);
	free(pairs);
	free(cov);
	free(ids);
	free(pr);
	free(pf);
	free(acc);
	free(lp);
	free(la);
	free(active);
	free(hot);
	free(isc);
	free(Kc);
	return rc;
}
