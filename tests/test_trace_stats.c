/* Unit tests of the tracer's statistics against independently computed values. */
#include <math.h>

#include "check.h"
#include "moat/trace.h"

/*
 * Reference values: ln P(X >= k), X ~ Hypergeometric(N, K, n), computed exactly
 * with Python's integers and fractions (sum of comb(K,i)*comb(N-K,n-i) for i >= k
 * over comb(N,n), then ln of the exact fraction via 60-bit mantissas):
 *
 *   from fractions import Fraction; from math import comb, log
 *   t = Fraction(sum(comb(K,i)*comb(N-K,n-i) for i in range(k, min(n,K)+1)), comb(N,n))
 *   ln(t) = log(p >> sp) + sp*log(2) - log(q >> sq) - sq*log(2)   (p/q = t, shifts keep 60 bits)
 */
static const struct {
	uint64_t N, K, n, k;
	double ln_tail;
} ref[] = {
    {50, 10, 5, 2, -1.3544080917970387},
    {50, 10, 5, 0, 0.0},
    {50, 10, 5, 5, -9.0369124823523475},
    {1000, 10, 3, 3, -14.141012121932054},   /* 3 victims, party saw 1%: p = 7.2e-7 */
    {100000, 1000, 3, 3, -13.818483060718529},
    {1000000, 10000, 1000, 30, -15.415055266206764},
    {1000000, 10000, 1000, 10, -0.61108494190375495},
    {20, 7, 12, 7, -4.5837298547502225},
    {1000000, 2000, 200, 127, -665.06096267601322}, /* 1.47e-289 */
    {1000000, 2000, 200, 131, -692.55309819070658}, /* 1.69e-301: below 1e-300 */
    {1000000, 2000, 200, 134, -713.40830080537307}, /* 1.48e-310: subnormal as a double */
    {1000000, 2000, 200, 150, -828.2700835272102},  /* underflows any double */
    {1000000, 5000, 1000, 400, -1469.0592635112444},
    {1000000, 1000, 1000, 1000, -7902.8827129761439},
};

static void test_tail(void)
{
	for (size_t i = 0; i < MOAT_ARRAY_LEN(ref); i++) {
		double got = moat_stats_log_hypergeom_tail(ref[i].N, ref[i].K, ref[i].n, ref[i].k);
		double want = ref[i].ln_tail;
		double tol = 1e-9 * (fabs(want) > 1 ? fabs(want) : 1) + 1e-12;
		CHECK_MSG(isfinite(got) && fabs(got - want) <= tol, "case %zu: got %.17g want %.17g", i,
			  got, want);
	}
	/* Degenerate cases. */
	CHECK(moat_stats_log_hypergeom_tail(100000, 100000, 10, 10) == 0.0); /* saw everything */
	CHECK(isinf(moat_stats_log_hypergeom_tail(10, 3, 4, 4)));           /* k > K: p = 0 */
	CHECK(isnan(moat_stats_log_hypergeom_tail(10, 11, 4, 1)));
	CHECK(moat_stats_log_hypergeom_tail(10, 3, 9, 2) == 0.0); /* X >= 2 always */
	/* pmf: P(X = 5) for (50, 10, 5) = C(10,5)/C(50,5) = 252/2118760 */
	CHECK(fabs(moat_stats_log_hypergeom_pmf(50, 10, 5, 5) - log(252.0 / 2118760.0)) < 1e-12);
	/* The tail is monotone in k even deep down. */
	double prev = 0.0;
	for (uint64_t k = 0; k <= 200; k++) {
		double t = moat_stats_log_hypergeom_tail(1000000, 2000, 200, k);
		CHECK(t <= prev);
		prev = t;
	}
}

static void test_corrections(void)
{
	/*
	 * Holm by hand: p = {0.01, 0.04, 0.03, 0.005}, m = 4.
	 * sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04;
	 * running max: 0.02, 0.03, 0.06, 0.06. With m = 10 (six more p = 1):
	 * 0.005*10 = 0.05, 0.01*9 = 0.09, 0.03*8 = 0.24, 0.04*7 = 0.28.
	 */
	double p[4] = {log(0.01), log(0.04), log(0.03), log(0.005)};
	double adj[4];
	CHECK(moat_stats_holm(p, 4, 4, adj) == MOAT_OK);
	CHECK(fabs(exp(adj[0]) - 0.03) < 1e-12);
	CHECK(fabs(exp(adj[1]) - 0.06) < 1e-12);
	CHECK(fabs(exp(adj[2]) - 0.06) < 1e-12);
	CHECK(fabs(exp(adj[3]) - 0.02) < 1e-12);
	CHECK(moat_stats_holm(p, 4, 10, adj) == MOAT_OK);
	CHECK(fabs(exp(adj[3]) - 0.05) < 1e-12);
	CHECK(fabs(exp(adj[0]) - 0.09) < 1e-12);
	CHECK(fabs(exp(adj[2]) - 0.24) < 1e-12);
	CHECK(fabs(exp(adj[1]) - 0.28) < 1e-12);
	/* Capped at 1, and tiny values stay in log space. */
	double q[2] = {log(0.9), -2000.0};
	CHECK(moat_stats_holm(q, 2, 1000, adj) == MOAT_OK);
	CHECK(adj[0] == 0.0);
	CHECK(fabs(adj[1] - (-2000.0 + log(1000.0))) < 1e-9);
	moat_stats_bonferroni(p, 4, 10, adj);
	CHECK(fabs(exp(adj[0]) - 0.1) < 1e-12);
	CHECK(adj[1] == 0.0 || fabs(exp(adj[1]) - 0.4) < 1e-12);
	CHECK(fabs(exp(adj[1]) - 0.4) < 1e-12);
	CHECK(moat_stats_holm(p, 0, 0, adj) == MOAT_OK);
}

static void test_weighted_holm(void)
{
	/*
	 * By hand: p = {0.01, 0.04, 0.03, 0.005}, w = {2, 1, 0.5, 0.5}, total 4.
	 * p/w = 0.005, 0.04, 0.06, 0.01: order 0, 3, 1, 2.
	 * 0: 0.01 * 4/2 = 0.02 (left 2); 3: 0.005 * 2/0.5 = 0.02 (left 1.5);
	 * 1: 0.04 * 1.5/1 = 0.06 (left 0.5); 2: 0.03 * 0.5/0.5 = 0.03 -> max 0.06.
	 */
	double p[4] = {log(0.01), log(0.04), log(0.03), log(0.005)};
	double w[4] = {log(2.0), log(1.0), log(0.5), log(0.5)};
	double adj[4], hr[4];
	CHECK(moat_stats_holm_weighted(p, w, NULL, 4, 4.0, adj) == MOAT_OK);
	CHECK(fabs(exp(adj[0]) - 0.02) < 1e-12);
	CHECK(fabs(exp(adj[3]) - 0.02) < 1e-12);
	CHECK(fabs(exp(adj[1]) - 0.06) < 1e-12);
	CHECK(fabs(exp(adj[2]) - 0.06) < 1e-12);
	/* Equal weights summing to m are plain Holm, given hypotheses or not. */
	double one[4] = {0, 0, 0, 0};
	for (size_t m = 4; m <= 12; m += 4) {
		CHECK(moat_stats_holm_weighted(p, one, NULL, 4, (double)m, adj) == MOAT_OK);
		CHECK(moat_stats_holm(p, 4, m, hr) == MOAT_OK);
		for (int i = 0; i < 4; i++)
			CHECK(fabs(adj[i] - hr[i]) < 1e-12);
	}
	/* A hypothesis given twice counts its weight once:
	 * p = {0.001, 0.001, 0.02, 0.02}, w = {5, 5, 1, 1}, #1 a duplicate of #0,
	 * total 7. 0: 0.001 * 7/5 = 0.0014 (left 2); 1: same hypothesis, left stays
	 * 2; 2: 0.02 * 2 = 0.04 (left 1); 3: 0.02 -> max 0.04. */
	double q[4] = {log(0.001), log(0.001), log(0.02), log(0.02)};
	double qw[4] = {log(5.0), log(5.0), 0, 0};
	uint8_t dup[4] = {0, 1, 0, 0};
	CHECK(moat_stats_holm_weighted(q, qw, dup, 4, 7.0, adj) == MOAT_OK);
	CHECK(fabs(exp(adj[0]) - 0.0014) < 1e-12);
	CHECK(fabs(exp(adj[1]) - 0.0014) < 1e-12);
	CHECK(fabs(exp(adj[2]) - 0.04) < 1e-12);
	CHECK(fabs(exp(adj[3]) - 0.04) < 1e-12);
	/* Capped at 1 (0.9 * 1 / 0.5), tiny values in log space. */
	double t[2] = {log(0.9), -2000.0}, tw[2] = {log(0.5), log(999.0)};
	CHECK(moat_stats_holm_weighted(t, tw, NULL, 2, 1000.0, adj) == MOAT_OK);
	CHECK(adj[0] == 0.0);
	CHECK(fabs(adj[1] - (-2000.0 + log(1000.0 / 999.0))) < 1e-9);
	CHECK(moat_stats_holm_weighted(t, tw, NULL, 0, 0.0, adj) == MOAT_OK);
}

static void test_effects(void)
{
	/* 12 of 15 victims inside an exposure of 200 of 10,000 orders: lift 40. */
	CHECK(fabs(moat_stats_lift(12, 15, 200, 10000) - 40.0) < 1e-12);
	CHECK(fabs(moat_stats_coverage(12, 15) - 0.8) < 1e-12);
	CHECK(moat_stats_lift(1, 0, 1, 1) == 0.0);
	CHECK(moat_stats_coverage(0, 0) == 0.0);
}

int main(void)
{
	test_tail();
	test_corrections();
	test_weighted_holm();
	test_effects();
	return check_done();
}
