/*
 * Statistics for the tracer: the hypergeometric upper tail in log space, multiple-
 * testing corrections (Holm, Bonferroni) on log p-values, lift and coverage.
 *
 * Everything works on natural logarithms of probabilities so that tails far below
 * the smallest double (1e-308) keep their value: a case with hundreds of victims
 * all covered by one small exposure set has p around e^-2000, and ranking such
 * suspects must still compare them correctly.
 */
#include <math.h>
#include <stdlib.h>

#include "moat/trace.h"

/* ln C(n, k) for 0 <= k <= n. lgamma has absolute error ~1e-15 * ln(n!) here,
 * i.e. ~1e-8 relative error on p for n = 1e7: far below what ranking needs. */
static double log_choose(uint64_t n, uint64_t k)
{
	return lgamma((double)n + 1.0) - lgamma((double)k + 1.0) - lgamma((double)(n - k) + 1.0);
}

double moat_stats_log_hypergeom_pmf(uint64_t N, uint64_t K, uint64_t n, uint64_t k)
{
	if (K > N || n > N || k > K || k > n || n - k > N - K)
		return -INFINITY;
	return log_choose(K, k) + log_choose(N - K, n - k) - log_choose(N, n);
}

double moat_stats_log_hypergeom_tail(uint64_t N, uint64_t K, uint64_t n, uint64_t k)
{
	if (K > N || n > N)
		return NAN;
	uint64_t lo = (n + K > N) ? n + K - N : 0; /* smallest possible X */
	uint64_t hi = K < n ? K : n;               /* largest possible X */
	if (k <= lo)
		return 0.0;
	if (k > hi)
		return -INFINITY;
	/*
	 * Exact summation, without a log or exp per term. Above the mode the terms
	 * only shrink, so the upper tail is summed from k upwards; at or below the
	 * mode the lower tail P(X <= k-1) is summed from k-1 downwards (again
	 * shrinking terms) and the result is its complement. Either way each term is
	 * the previous one times a ratio <= 1, kept relative to the first term (which
	 * comes from lgamma), so nothing over- or underflows; the sum stops once the
	 * current term times the number left cannot change a double.
	 */
	uint64_t mode = (uint64_t)(((double)n + 1.0) * ((double)K + 1.0) / ((double)N + 2.0));
	if (k > mode) {
		double first = moat_stats_log_hypergeom_pmf(N, K, n, k);
		double r = 1.0, sum = 1.0;
		for (uint64_t i = k; i < hi; i++) {
			r *= ((double)(K - i) * (double)(n - i)) /
			     ((double)(i + 1) * (double)(N - K - n + i + 1));
			sum += r;
			if (r * (double)(hi - i) < sum * 1e-17)
				break;
		}
		double v = first + log(sum);
		return v > 0.0 ? 0.0 : v;
	}
	double first = moat_stats_log_hypergeom_pmf(N, K, n, k - 1);
	double r = 1.0, sum = 1.0;
	for (uint64_t i = k - 1; i > lo; i--) {
		/* t(i-1) / t(i) */
		r *= ((double)i * (double)(N - K - n + i)) / ((double)(K - i + 1) * (double)(n - i + 1));
		sum += r;
		if (r * (double)(i - lo) < sum * 1e-17)
			break;
	}
	double lower = exp(first + log(sum));
	if (lower >= 1.0)
		return -INFINITY; /* cannot happen for k <= mode; guards rounding */
	return log1p(-lower);
}

static int cmp_idx_by_logp(const void *a, const void *b, void *ctx)
{
	const double *lp = ctx;
	double x = lp[*(const size_t *)a], y = lp[*(const size_t *)b];
	if (x < y)
		return -1;
	if (x > y)
		return 1;
	return (*(const size_t *)a > *(const size_t *)b) - (*(const size_t *)a < *(const size_t *)b);
}

void moat_stats_bonferroni(const double *log_p, size_t n, size_t m, double *log_adj)
{
	double lm = log((double)(m > 0 ? m : 1));
	for (size_t i = 0; i < n; i++) {
		double v = log_p[i] + lm;
		log_adj[i] = v > 0.0 ? 0.0 : v;
	}
}

moat_err_t moat_stats_holm(const double *log_p, size_t n, size_t m, double *log_adj)
{
	if (n == 0)
		return MOAT_OK;
	if (m < n)
		m = n;
	size_t *order = malloc(n * sizeof *order);
	if (!order)
		return MOAT_ENOMEM;
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, n, sizeof *order, cmp_idx_by_logp, (void *)log_p);
	/* Step-down: the j-th smallest p (0-based) is multiplied by m - j; adjusted
	 * values are made monotone with a running maximum and capped at 1. The
	 * hypotheses not given (m - n of them) are taken to have p = 1, which is what
	 * they would have as candidates that saw no victim. */
	double run = -INFINITY;
	for (size_t j = 0; j < n; j++) {
		double v = log_p[order[j]] + log((double)(m - j));
		if (v > 0.0)
			v = 0.0;
		if (v > run)
			run = v;
		log_adj[order[j]] = run;
	}
	free(order);
	return MOAT_OK;
}

moat_err_t moat_stats_holm_weighted(const double *log_p, const double *log_w, const uint8_t *dup,
				    size_t n, double total_w, double *log_adj)
{
	if (n == 0)
		return MOAT_OK;
	size_t *order = malloc(n * sizeof *order);
	double *key = malloc(n * sizeof *key);
	if (!order || !key) {
		free(order);
		free(key);
		return MOAT_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		order[i] = i;
		key[i] = log_p[i] - log_w[i];
	}
	qsort_r(order, n, sizeof *order, cmp_idx_by_logp, key);
	/* Step-down (Holm 1979, weighted): the j-th smallest p/w is multiplied by
	 * W_j / w, W_j the weight of the hypotheses not rejected before it (the ones
	 * not given keep theirs: total_w counts them). W_j never drops below the
	 * hypothesis's own weight, so no p is ever made smaller. */
	double run = -INFINITY, left = total_w;
	for (size_t j = 0; j < n; j++) {
		size_t i = order[j];
		double w = exp(log_w[i]);
		double v = log_p[i] + (left > w ? log(left) - log_w[i] : 0.0);
		if (v > 0.0)
			v = 0.0;
		if (v > run)
			run = v;
		log_adj[i] = run;
		if (!dup || !dup[i])
			left -= w;
	}
	free(order);
	free(key);
	return MOAT_OK;
}

double moat_stats_lift(uint64_t k, uint64_t n, uint64_t K, uint64_t N)
{
	if (n == 0 || K == 0 || N == 0)
		return 0.0;
	return ((double)k / (double)n) / ((double)K / (double)N);
}

double moat_stats_coverage(uint64_t k, uint64_t n)
{
	return n ? (double)k / (double)n : 0.0;
}
