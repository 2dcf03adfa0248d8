/*
 * Simulator generation speed: orders/s, events/s and MB/s for a medium-sized run,
 * next to a baseline that writes the same number of bytes of already formatted
 * lines (taken from the run's own events.jsonl) through the same 1 MiB fwrite
 * path. The ratio is what generating the world costs over merely writing it.
 *
 * usage: bench_sim [ORDERS [DAYS [DIR]]]   (default 300000 orders over 30 days
 * in $TMPDIR; the output is removed afterwards)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moat/sim.h"

static double now_s(void)
{
	return (double)moat_mono_ns() / 1e9;
}

static int baseline(const char *dir, uint64_t bytes, double *secs)
{
	char src[600], dst[600];
	snprintf(src, sizeof src, "%s/events.jsonl", dir);
	snprintf(dst, sizeof dst, "%s/baseline.jsonl", dir);
	FILE *in = fopen(src, "rb");
	if (!in)
		return -1;
	size_t cap = 1u << 20;
	char *chunk = malloc(cap);
	size_t n = chunk ? fread(chunk, 1, cap, in) : 0;
	fclose(in);
	while (n > 0 && chunk[n - 1] != '\n') /* whole lines only */
		n--;
	if (n == 0) {
		free(chunk);
		return -1;
	}
	double t0 = now_s();
	FILE *out = fopen(dst, "wb");
	if (!out) {
		free(chunk);
		return -1;
	}
	uint64_t done = 0;
	int rc = 0;
	while (done < bytes) {
		size_t k = bytes - done < n ? (size_t)(bytes - done) : n;
		if (fwrite(chunk, 1, k, out) != k) {
			rc = -1;
			break;
		}
		done += k;
	}
	if (fclose(out) != 0)
		rc = -1;
	*secs = now_s() - t0;
	unlink(dst);
	free(chunk);
	return rc;
}

int main(int argc, char **argv)
{
	uint64_t orders = argc > 1 ? strtoull(argv[1], NULL, 10) : 300000;
	int days = argc > 2 ? atoi(argv[2]) : 30;
	char dir[512];
	bool own_dir = argc <= 3;
	if (own_dir) {
		const char *tmp = getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%s/moat-bench-sim-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(dir)) {
			perror("mkdtemp");
			return 1;
		}
	} else {
		snprintf(dir, sizeof dir, "%s", argv[3]);
	}
	moat_sim_config_t cfg = {.seed = 20261128,
				 .scale = MOAT_SIM_MEDIUM,
				 .scenarios = 1u << MOAT_SIM_MIXED,
				 .out_dir = dir,
				 .orders = orders,
				 .days = days};
	moat_sim_stats_t st;
	moat_error_t err = {0};
	double t0 = now_s();
	if (moat_sim_run(&cfg, &st, &err) != MOAT_OK) {
		fprintf(stderr, "bench_sim: %s\n", err.msg);
		return 1;
	}
	double gen = now_s() - t0;
	double base = 0;
	if (baseline(dir, st.bytes, &base) != 0) {
		fprintf(stderr, "bench_sim: baseline write failed\n");
		return 1;
	}
	uint64_t events = st.access_events + st.login_events + st.export_events;
	double mb = (double)st.bytes / 1e6;
	printf("bench_sim: %" PRIu64 " orders, %" PRIu64 " events (%" PRIu64 " access), %.1f MB, "
	       "scenario mixed, %d days\n",
	       st.orders, events, st.access_events, mb, days);
	printf("  generate  %7.2f s  %10.0f orders/s  %11.0f events/s  %7.1f MB/s\n", gen,
	       (double)st.orders / gen, (double)events / gen, mb / gen);
	printf("  baseline  %7.2f s  (fwrite of the same bytes, pre-formatted)     %7.1f MB/s\n",
	       base, mb / base);
	printf("  ratio     %7.2f x  generation time / write-only time\n", gen / base);
	if (own_dir) {
		static const char *const files[] = {
		    "parties.jsonl", "principals.jsonl", "relations.jsonl", "orders.jsonl",
		    "events.jsonl",  "reports.jsonl",	 "calls.jsonl",	    "truth.json"};
		char path[600];
		for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
			snprintf(path, sizeof path, "%s/%s", dir, files[i]);
			unlink(path);
		}
		rmdir(dir);
	}
	return 0;
}
