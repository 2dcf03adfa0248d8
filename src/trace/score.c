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
	int round;         /* confirmed in this round (1-based), 0 = not */
	double first_log_p, first_log_adj; /* the test reported: first round, or the
					     round that confirmed it */
	uint32_t first_k;
	uint64_t tN, tn, tK; /* population, victims and exposure of that test */
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
	cand_t *cs = calloc(C ? C : 1, sizeof *cs);
	pair_t *pairs = NULL;
	size_t npairs = 0, pairs_cap = 0;
	uint32_t *pr = NULL, *cov = NULL;
	unsigned *pf = NULL;
	party_acc_t *acc = NULL;
	double *lp = NULL, *la = NULL;
	bool *active = NULL;
	size_t cap = 4096;
	pr = malloc(cap * sizeof *pr);
	pf = malloc(cap * sizeof *pf);
	acc = malloc(cap * sizeof *acc);
	if (!vs || !cs || !pr || !pf || !acc)
		goto nomem;

	/* Merge reports of the same order: earliest contact, fields quoted by all. */
	size_t nv = 0;
	unsigned quoted_all = MOAT_EXPOSURE_FIELDS_ALL;
	moat_time_t last = MOAT_TIME_NONE;
	unsigned freq[MOAT_FIELD_COUNT] = {0};
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
		size_t j = 0;
		for (; j < nv; j++)
			if (o >= 0 ? vs[j].order == o
				   : (vs[j].order < 0 &&
				      strcmp(victims[vs[j].input].order_id, v->order_id) == 0))
				break;
		if (j < nv) {
			if (v->contact < vs[j].contact)
				vs[j].contact = v->contact;
			vs[j].quoted &= q;
			if (!vs[j].quoted)
				vs[j].quoted = q;
			continue;
		}
		vs[nv] = (vict_t){o, v->contact, q, i, o >= 0 && (x->order_flags[o] & TRACE_ORDER_HONEY)};
		nv++;
	}
	for (size_t j = 0; j < nv; j++) {
		if (vs[j].honey)
			continue; /* direct evidence, handled by the case; not a statistical draw */
		quoted_all &= vs[j].quoted;
		for (int f = 0; f < MOAT_FIELD_COUNT; f++)
			if (vs[j].quoted & (1u << f))
				freq[f]++;
		if (last == MOAT_TIME_NONE || vs[j].contact > last)
			last = vs[j].contact;
	}
	if (!quoted_all) {
		/* No field common to all reports: require the one quoted most often. */
		int best = 0;
		for (int f = 1; f < MOAT_FIELD_COUNT; f++)
			if (freq[f] > freq[best])
				best = f;
		quoted_all = 1u << best;
	}
	out->quoted = quoted_all;

	/* Pass 1: which candidates cover which victims. */
	uint64_t n = 0, unknown = 0;
	for (size_t j = 0; j < nv; j++) {
		if (vs[j].honey)
			continue;
		n++;
		if (vs[j].order < 0) {
			unknown++;
			continue;
		}
		size_t nacc;
		size_t np = order_receipts(x, (uint32_t)vs[j].order, vs[j].contact, pr, pf, cap, acc,
					   &nacc);
		for (size_t a = 0; a < np + nacc; a++) {
			uint32_t c;
			if (a < np) {
				if ((pf[a] & vs[j].quoted) != vs[j].quoted)
					continue;
				c = pr[a];
			} else {
				if ((acc[a - np].fields & vs[j].quoted) != vs[j].quoted)
					continue;
				c = P + acc[a - np].party;
			}
			if (npairs == pairs_cap) {
				size_t nc = pairs_cap ? pairs_cap * 2 : 1024;
				pair_t *np2 = realloc(pairs, nc * sizeof *np2);
				if (!np2)
					goto nomem;
				pairs = np2;
				pairs_cap = nc;
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

	/* Pass 2: the population and K for every candidate that covers a victim.
	 * One byte per principal says whether it or its party is a candidate, so the
	 * scan over all rows skips the rest without touching the candidate table. */
	uint8_t *hot = calloc(P ? P : 1, 1);
	uint8_t *isc = calloc(C ? C : 1, 1);         /* candidate flags, cache-friendly */
	uint32_t *Kc = calloc(C ? C : 1, sizeof *Kc); /* K counts, likewise */
	if (!hot || !isc || !Kc) {
		free(hot);
		free(isc);
		free(Kc);
		goto nomem;
	}
	for (uint32_t c = 0; c < C; c++)
		isc[c] = cs[c].k_all != 0;
	for (uint32_t p = 0; p < P; p++) {
		uint32_t q = x->principal_party[p];
		if (isc[p] || (q != TRACE_NO_PARTY && isc[P + q]))
			hot[p] = 1;
	}
	uint64_t N = 0;
	for (uint32_t o = 0; o < x->off_orders; o++) {
		if ((x->order_flags[o] & TRACE_ORDER_HONEY) ||
		    (int64_t)x->order_first[o] * 1000 > last + 999)
			continue;
		N++;
		bool any = false;
		for (uint32_t i = x->off[o]; i < x->off[o + 1]; i++)
			if (hot[x->rpm[i] >> 8] && (x->rpm[i] & quoted_all)) {
				any = true;
				break;
			}
		if (!any)
			continue;
		size_t nacc;
		size_t np = order_receipts(x, o, last, pr, pf, cap, acc, &nacc);
		for (size_t a = 0; a < np; a++)
			if (isc[pr[a]] && (pf[a] & quoted_all) == quoted_all)
				Kc[pr[a]]++;
		for (size_t a = 0; a < nacc; a++)
			if (isc[P + acc[a].party] && (acc[a].fields & quoted_all) == quoted_all)
				Kc[P + acc[a].party]++;
	}
	for (uint32_t c = 0; c < C; c++)
		cs[c].K = Kc[c];
	free(hot);
	free(isc);
	free(Kc);
	N += unknown;
	if (prm.population)
		N = prm.population;
	if (N < n)
		N = n;
	for (uint32_t c = 0; c < C; c++) {
		if (cs[c].K < cs[c].k_all)
			cs[c].K = cs[c].k_all;
		if (cs[c].K > N)
			cs[c].K = N;
	}
	out->N = N;
	out->n = n;
	out->tested = C;

	/* Explain-away rounds over the candidates that cover anything. */
	uint32_t *ids = malloc((C ? C : 1) * sizeof *ids);
	size_t nc = 0;
	if (!ids)
		goto nomem;
	for (uint32_t c = 0; c < C; c++)
		if (cs[c].k_all)
			ids[nc++] = c;
	lp = malloc((nc ? nc : 1) * sizeof *lp);
	la = malloc((nc ? nc : 1) * sizeof *la);
	active = malloc((nv ? nv : 1) * sizeof *active);
	if (!lp || !la || !active) {
		free(ids);
		goto nomem;
	}
	for (size_t j = 0; j < nv; j++)
		active[j] = !vs[j].honey;
	uint64_t removed = 0;
	double log_alpha = log(prm.alpha);
	for (size_t round = 1; round <= prm.max_rounds + 1 && nc; round++) {
		for (size_t i = 0; i < nc; i++) {
			cand_t *c = &cs[ids[i]];
			c->k = c->k_removed = 0;
			for (uint32_t t = 0; t < c->k_all; t++) {
				if (active[cov[c->cov_off + t]])
					c->k++;
				else
					c->k_removed++;
			}
			uint64_t Kr = c->K - c->k_removed;
			lp[i] = c->round ? 0.0 : moat_stats_log_hypergeom_tail(N - removed, Kr, n - removed, c->k);
			c->log_p = lp[i];
		}
		if (moat_stats_holm(lp, nc, C, la) != MOAT_OK) {
			free(ids);
			goto nomem;
		}
		size_t best = SIZE_MAX;
		for (size_t i = 0; i < nc; i++) {
			cand_t *c = &cs[ids[i]];
			c->log_adj = la[i];
			if (round == 1) {
				c->first_log_p = c->log_p;
				c->first_log_adj = c->log_adj;
				c->first_k = c->k;
				c->tN = N;
				c->tn = n;
				c->tK = c->K;
			}
			if (!c->round && c->k &&
			    (best == SIZE_MAX || better(c, ids[i], &cs[ids[best]], ids[best], P)))
				best = i;
		}
		if (round > prm.max_rounds || best == SIZE_MAX || n - removed < prm.min_victims ||
		    !(cs[ids[best]].log_adj < log_alpha))
			break;
		cand_t *b = &cs[ids[best]];
		b->round = (int)round;
		b->first_log_p = b->log_p; /* report the test that confirmed it */
		b->first_log_adj = b->log_adj;
		b->first_k = b->k;
		b->tN = N - removed;
		b->tn = n - removed;
		b->tK = b->K - b->k_removed;
		for (uint32_t t = 0; t < b->k_all; t++) {
			uint32_t v = cov[b->cov_off + t];
			if (active[v]) {
				active[v] = false;
				removed++;
			}
		}
	}

	/* Rows: confirmed by round, then the rest by first-round corrected p. */
	size_t rows = 0;
	for (size_t i = 0; i < nc; i++)
		if (cs[ids[i]].round)
			rows++;
	size_t want = prm.max_suspects > rows ? prm.max_suspects : rows;
	if (want > nc)
		want = nc;
	out->suspects = calloc(want ? want : 1, sizeof *out->suspects);
	if (!out->suspects) {
		free(ids);
		goto nomem;
	}
	/* Sort ids: confirmed first (by round), then by first-round adjusted p. */
	for (size_t i = 1; i < nc; i++) {
		uint32_t v = ids[i];
		size_t j = i;
		while (j > 0) {
			const cand_t *a = &cs[ids[j - 1]], *b = &cs[v];
			bool b_first;
			if (a->round && b->round)
				b_first = b->round < a->round;
			else if (a->round || b->round)
				b_first = b->round != 0;
			else if (a->first_log_adj != b->first_log_adj)
				b_first = b->first_log_adj < a->first_log_adj;
			else if (a->first_log_p != b->first_log_p)
				b_first = b->first_log_p < a->first_log_p;
			else
				b_first = (v < P) && ids[j - 1] >= P;
			if (!b_first)
				break;
			ids[j] = ids[j - 1];
			j--;
		}
		ids[j] = v;
	}
	for (size_t r = 0; r < want; r++) {
		uint32_t id = ids[r];
		cand_t *c = &cs[id];
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
		s->N = c->tN;
		s->n = c->tn;
		s->K = c->tK;
		s->k = c->first_k;
		s->log_p = c->first_log_p;
		s->log_p_adj = c->first_log_adj;
		s->round = c->round;
		s->significant = c->round != 0;
		s->lift = moat_stats_lift(s->k, s->n, s->K, s->N);
		s->coverage = moat_stats_coverage(s->k, s->n);
		s->covered = malloc((c->k_all ? c->k_all : 1) * sizeof *s->covered);
		if (!s->covered) {
			free(ids);
			goto nomem;
		}
		for (uint32_t t = 0; t < c->k_all; t++)
			s->covered[s->n_covered++] = vs[cov[c->cov_off + t]].input;
		out->n_suspects++;
	}
	free(ids);
	rc = MOAT_OK;
	goto done;
nomem:
	rc = moat_error_set(err, MOAT_ENOMEM, NULL, "scoring: out of memory");
fail:
	moat_score_result_clear(out);
done:
	free(vs);
	free(cs);
	free(pairs);
	free(cov);
	free(pr);
	free(pf);
	free(acc);
	free(lp);
	free(la);
	free(active);
	return rc;
}
