/*
 * bench/detect: entries per second through the detector's features and the
 * default rules on one core, next to a baseline over the same entries in the same
 * run, and the engine's memory per principal.
 *
 * Entries are encoded once (the ledger's encoding); the baseline decodes them all,
 * the detection passes decode and feed each, so both include the same decoding.
 * The first detection pass feeds one entry per call, the second BATCH entries
 * per moat_detect_feed_batch call; both print the digest of their alerts.
 *
 * The stream is synthetic but shaped like a day of a mid-sized platform: 20,000
 * principals in 8 roles over 400 parties, 99.5% of reads with a workflow relation,
 * logins with typos, a few exports, one stuffing source; event time advances
 * 50 ms per entry on average (a day every ~1.7 M entries).
 *
 * usage: bench_detect [ENTRIES [PRINCIPALS [single|batch]]]
 *   (default 4,000,000 and 20,000, both passes)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moat/detect.h"
#include "moat/ledger.h"
#include "moat/entry.h"

#define T0 1772380800000LL
#define BATCH 16 /* entries decoded ahead for moat_detect_feed_batch */

typedef struct prin {
	char id[16];
	moat_role_t role;
	char party[16];
} prin_t;

static prin_t *prins;
static size_t n_prins = 20000;

static int lookup(void *ctx, const char *id, moat_detect_principal_t *out)
{
	(void)ctx;
	if (id[0] != 'p')
		return 0;
	size_t i = (size_t)strtoul(id + 1, NULL, 10);
	if (i >= n_prins)
		return 0;
	out->role = prins[i].role;
	snprintf(out->party, sizeof out->party, "%s", prins[i].party);
	out->shift_start = out->role == MOAT_ROLE_CS_AGENT ? 540 : -1;
	out->shift_end = out->role == MOAT_ROLE_CS_AGENT ? 1080 : -1;
	return 1;
}

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Alerts raised, and a digest of their ids and contents: two builds of the
 * engine must print the same digest on the same stream. */
static uint64_t alerts, digest = 0xcbf29ce484222325ULL;
static void digest_bytes(const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		digest ^= ((const unsigned char *)p)[i];
		digest *= 0x100000001b3ULL;
	}
}
static int on_alert(void *ctx, const moat_detect_alert_t *a)
{
	(void)ctx;
	alerts++;
	digest_bytes(a->id, strlen(a->id));
	if (a->principal)
		digest_bytes(a->principal, strlen(a->principal));
	digest_bytes(a->key, strlen(a->key));
	digest_bytes(&a->time, sizeof a->time);
	digest_bytes(&a->value, sizeof a->value);
	digest_bytes(&a->count, sizeof a->count);
	digest_bytes(a->evidence, a->n_evidence * sizeof a->evidence[0]);
	return 0;
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 4000000;
	if (argc > 2)
		n_prins = (size_t)strtoull(argv[2], NULL, 10);
	int first_pass = argc > 3 && !strcmp(argv[3], "batch") ? 1 : 0;
	int last_pass = argc > 3 && !strcmp(argv[3], "single") ? 0 : 1;
	if (n == 0 || n_prins < 8)
		return 2;
	prins = calloc(n_prins, sizeof *prins);
	moat_entry_t *es = calloc(n, sizeof *es);
	char(*orders)[12] = calloc(n, sizeof *orders);
	static const char *ips[64];
	static char ipbuf[64][20];
	if (!prins || !es || !orders)
		return 1;
	for (int i = 0; i < 64; i++) {
		snprintf(ipbuf[i], sizeof ipbuf[i], "10.0.%d.%d", i / 8, i % 8);
		ips[i] = ipbuf[i];
	}
	for (size_t i = 0; i < n_prins; i++) {
		snprintf(prins[i].id, sizeof prins[i].id, "p%u", (unsigned)i);
		prins[i].role = (moat_role_t)(i % MOAT_ROLE_COUNT);
		snprintf(prins[i].party, sizeof prins[i].party, "party%u", (unsigned)(i % 400));
	}
	moat_time_t t = T0;
	for (size_t i = 0; i < n; i++) {
		uint64_t r = next_rand();
		moat_entry_t *e = &es[i];
		t += (moat_time_t)(r % 100);
		e->time = t;
		size_t p = (size_t)((r >> 8) % n_prins);
		e->principal = prins[p].id;
		e->ip = ips[(p + (r >> 40 ? 0 : 1)) % 64];
		e->device = prins[p].id;
		unsigned k = (unsigned)((r >> 20) % 1000);
		if (k < 20) {
			e->kind = MOAT_ENTRY_LOGIN;
			e->result = k < 3 ? MOAT_RESULT_FAILURE : MOAT_RESULT_SUCCESS;
			if (k == 0) {
				e->ip = "203.0.113.66";
				e->principal = prins[(r >> 30) % n_prins].id;
			}
		} else {
			snprintf(orders[i], sizeof orders[i], "O%u",
				 (unsigned)((r >> 24) % 5000000));
			e->order_id = orders[i];
			e->kind = k < 25   ? MOAT_ENTRY_EXPORT
				  : k < 30 ? MOAT_ENTRY_DENY
					   : MOAT_ENTRY_ACCESS;
			e->has_purpose = true;
			e->purpose = MOAT_PURPOSE_SHIP;
			e->views[MOAT_FIELD_NAME] = MOAT_VIEW_MASK;
			e->views[MOAT_FIELD_PHONE] = k % 3 ? MOAT_VIEW_VIRTUAL : MOAT_VIEW_MASK;
			e->views[MOAT_FIELD_ADDRESS] = MOAT_VIEW_FULL;
			e->relations = k < 35 ? 0 : (uint8_t)(1u << (k % 3));
			e->rows = 1;
			e->ref = e->kind == MOAT_ENTRY_EXPORT ? "X1" : NULL;
		}
	}

	/* The entries as the ledger holds them: encoded once, then decoded in the
	 * baseline (decode only) and in the detection pass (decode + features + rules),
	 * so the difference is the detector's own cost. */
	moat_buf_t enc;
	moat_buf_init(&enc, (size_t)8 << 30);
	size_t *off = calloc(n + 1, sizeof *off);
	moat_error_t err = {0};
	if (!off)
		return 1;
	for (size_t i = 0; i < n; i++) {
		off[i] = enc.len;
		if (moat_entry_encode(&es[i], &enc, &err) != MOAT_OK) {
			fprintf(stderr, "bench_detect: encode: %s\n", err.msg);
			return 1;
		}
	}
	off[n] = enc.len;
	static char scratch[MOAT_ENTRY_MAX + 64];
	uint64_t t0 = moat_mono_ns(), sum = 0;
	double c0 = cpu_s();
	for (size_t i = 0; i < n; i++) {
		moat_entry_t e;
		if (moat_entry_decode((const uint8_t *)enc.data + off[i], off[i + 1] - off[i], &e,
				      scratch, sizeof scratch, &err) != MOAT_OK) {
			fprintf(stderr, "bench_detect: decode: %s\n", err.msg);
			return 1;
		}
		sum += (uint64_t)e.time + e.kind + e.relations;
	}
	double base_s = (double)(moat_mono_ns() - t0) / 1e9, base_cpu = cpu_s() - c0;

	moat_detect_rules_t *rules = NULL;
	const char *text = moat_detect_rules_default_text();
	if (moat_detect_rules_parse(text, strlen(text), &rules, &err) != MOAT_OK) {
		fprintf(stderr, "bench_detect: %s\n", err.msg);
		return 1;
	}
	printf("bench_detect: %zu entries, %zu principals, %zu rules (default set), %.1f days of "
	       "event time\n",
	       n, n_prins, moat_detect_rules_count(rules), (double)(t - T0) / 86400000.0);
	printf("  baseline: decode            wall %7.3f s %11.0f entries/s   cpu %7.3f s %11.0f "
	       "entries/s  (checksum %llu)\n",
	       base_s, (double)n / base_s, base_cpu, (double)n / base_cpu,
	       (unsigned long long)(sum & 0xffff));
	/* Two passes over the same entries, each with a fresh engine: one entry per
	 * moat_detect_feed call, then BATCH entries decoded ahead (each into its own
	 * scratch) per moat_detect_feed_batch call. Both must raise the same alerts. */
	static char bscratch[BATCH][MOAT_ENTRY_MAX + 64];
	for (int pass = first_pass; pass <= last_pass; pass++) {
		moat_detect_t *d = NULL;
		if (moat_detect_new(rules, lookup, NULL, on_alert, NULL, &d, &err) != MOAT_OK) {
			fprintf(stderr, "bench_detect: %s\n", err.msg);
			return 1;
		}
		alerts = 0;
		digest = 0xcbf29ce484222325ULL;
		t0 = moat_mono_ns();
		c0 = cpu_s();
		size_t step = pass == 0 ? 1 : BATCH;
		for (size_t i = 0; i < n; i += step) {
			size_t m = n - i < step ? n - i : step;
			moat_entry_t e[BATCH];
			uint64_t idx[BATCH];
			for (size_t j = 0; j < m; j++) {
				idx[j] = i + j;
				if (moat_entry_decode((const uint8_t *)enc.data + off[i + j],
						      off[i + j + 1] - off[i + j], &e[j],
						      bscratch[j], sizeof bscratch[j],
						      &err) != MOAT_OK) {
					fprintf(stderr, "bench_detect: %s\n", err.msg);
					return 1;
				}
			}
			moat_err_t rc = pass == 0 ? moat_detect_feed(d, idx[0], &e[0], &err)
						  : moat_detect_feed_batch(d, idx, e, m, &err);
			if (rc != MOAT_OK) {
				fprintf(stderr, "bench_detect: %s\n", err.msg);
				return 1;
			}
		}
		double det_s = (double)(moat_mono_ns() - t0) / 1e9, det_cpu = cpu_s() - c0;
		size_t mem = moat_detect_memory(d), np = moat_detect_principals(d);
		printf("  decode + detect%-13s wall %7.3f s %11.0f entries/s   cpu %7.3f s %11.0f "
		       "entries/s  (%llu alerts, digest %016llx)\n",
		       pass == 0 ? "" : ", batched", det_s, (double)n / det_s, det_cpu,
		       (double)n / det_cpu, (unsigned long long)alerts, (unsigned long long)digest);
		printf(
		    "  memory: %.1f MiB engine state, %zu principals, %.0f bytes per principal\n",
		    (double)mem / (1024.0 * 1024.0), np, np ? (double)mem / (double)np : 0.0);
		double per = det_cpu / (double)n - base_cpu / (double)n;
		printf("  detector alone (cpu, decode subtracted): %.0f entries/s\n",
		       per > 0 ? 1.0 / per : 0.0);
		moat_detect_free(d);
	}
	moat_detect_rules_free(rules);
	moat_buf_free(&enc);
	free(off);
	free(es);
	free(orders);
	free(prins);
	return 0;
}
