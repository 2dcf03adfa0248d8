/*
 * Unit tests of the exposure index's encodings: the front-coded order-id
 * dictionary (round trip, renumbering, limits, damaged blocks), record times
 * (rounding at minute boundaries, the overflow past 65,534 minutes), the file
 * format version, and the principal limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "moat/crypto.h"
#include "moat/trace.h"
#include "trace/trace_internal.h"

#define T0 ((moat_time_t)1767225600000) /* 2026-01-01T00:00:00Z, ms */
#define MIN ((moat_time_t)60000)

static uint64_t lcg = 12345;
static uint32_t rnd(void)
{
	lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(lcg >> 33);
}

/* Ids of many shapes: prefix + digits of several widths (carries like 0999 ->
 * 1000 and 9 -> 10), digit runs longer than 19, no digits, bytes >= 0x80, the
 * longest id allowed, a one-byte id. */
static void make_id(int i, char *out)
{
	switch (i % 9) {
	case 0:
		sprintf(out, "O%08d", i);
		break;
	case 1:
		sprintf(out, "TB%d", i / 9);
		break;
	case 2:
		sprintf(out, "JD-2026-%04d", i % 1500);
		sprintf(out + strlen(out), "x%d", i);
		break;
	case 3:
		sprintf(out, "%025d%d", 7, i); /* a 26+ digit run */
		break;
	case 4:
		sprintf(out, "order-%c%c-%d", 'a' + i % 26, 'a' + (i / 26) % 26, i);
		break;
	case 5:
		sprintf(out, "\xe8\xae\xa2\xe5\x8d\x95%d", i); /* UTF-8 "订单" */
		break;
	case 6:
		memset(out, 'z', TRACE_OID_LEN_MAX);
		sprintf(out + TRACE_OID_LEN_MAX - 10, "%010d", i);
		break;
	case 7:
		sprintf(out, "%c", 'A' + (i / 9) % 26);
		break;
	default:
		sprintf(out, "18446744073709551615%d", i); /* digits past u64 */
		break;
	}
}

static void test_dictionary(void)
{
	enum { N = 20000 };
	static char ids[N][TRACE_OID_LEN_MAX + 1];
	static uint32_t no[N];
	trace_odict_t d;
	trace_odict_init(&d);
	int n = 0;
	for (int i = 0; i < N; i++) {
		make_id(i, ids[n]);
		bool added;
		moat_err_t rc = trace_odict_intern(&d, ids[n], UINT32_MAX, &no[n], &added);
		CHECK(rc == MOAT_OK);
		if (rc == MOAT_OK && added)
			n++;
	}
	CHECK(d.n == (uint32_t)n);
	/* Fold in several rounds, interning again in between, in shuffled order. */
	for (int round = 0; round < 4; round++) {
		trace_odict_plan_t plan;
		CHECK(trace_odict_plan(&d, &plan) == MOAT_OK);
		if (plan.map)
			for (int i = 0; i < n; i++)
				no[i] = plan.map[no[i]];
		trace_odict_commit(&d, &plan);
		CHECK(d.recent.n == 0 && d.nsorted == (uint32_t)n);
		char buf[TRACE_OID_LEN_MAX + 1];
		int bad = 0;
		for (int i = 0; i < n; i++) {
			if (trace_dict_find(&d, ids[i]) != (int64_t)no[i] ||
			    strcmp(trace_odict_str(&d, no[i], buf), ids[i]) != 0)
				bad++;
		}
		CHECK_MSG(bad == 0, "round %d: %d ids wrong", round, bad);
		/* Numbers are ranks in byte order. */
		for (int i = 1; i < n && i < 500; i++)
			CHECK((strcmp(ids[i - 1], ids[i]) < 0) == (no[i - 1] < no[i]));
		CHECK(trace_dict_find(&d, "no-such-order") == -1);
		CHECK(trace_dict_find(&d, "O000000001") == -1); /* a prefix of real ids */
		CHECK(trace_dict_find(&d, "") == -1);
		/* New ids land between old ones; the next plan renumbers. */
		for (int k = 0; k < 50 && n < N; k++) {
			sprintf(ids[n], "O%08d-%d-%u", k * 97, round, rnd() % 1000);
			bool added;
			CHECK(trace_odict_intern(&d, ids[n], UINT32_MAX, &no[n], &added) ==
			      MOAT_OK);
			CHECK(added);
			CHECK(trace_dict_find(&d, ids[n]) == (int64_t)no[n]);
			n++;
		}
	}
	CHECK(trace_odict_bytes(&d) > 0);

	/* Limits: empty, one byte past the longest, the count limit. */
	char longest[TRACE_OID_LEN_MAX + 2];
	memset(longest, 'q', sizeof longest);
	longest[TRACE_OID_LEN_MAX + 1] = '\0';
	uint32_t id;
	bool added;
	CHECK(trace_odict_intern(&d, longest, UINT32_MAX, &id, &added) == MOAT_ELIMIT);
	CHECK(trace_odict_intern(&d, "", UINT32_MAX, &id, &added) == MOAT_ELIMIT);
	CHECK(trace_odict_intern(&d, "fresh", d.n, &id, &added) == MOAT_ELIMIT);
	CHECK(trace_odict_intern(&d, ids[0], d.n, &id, &added) == MOAT_OK && !added);
	longest[TRACE_OID_LEN_MAX] = '\0';
	CHECK(trace_odict_intern(&d, longest, UINT32_MAX, &id, &added) == MOAT_OK && added);
	trace_odict_free(&d);
}

/* Blocks from a file are checked before use: out of order, a digit delta that
 * would carry past its width, a length past the limit, trailing bytes. */
static void test_damaged_blocks(void)
{
	struct {
		const uint8_t *b;
		size_t len;
		uint32_t n;
		bool ok;
	} cases[] = {
	    {(const uint8_t *)"\x02"
			      "A1"
			      "\x01",
	     4, 2, true}, /* A1, A2 */
	    {(const uint8_t *)"\x02"
			      "A9"
			      "\x01",
	     4, 2, false}, /* A9 + 1 carries */
	    {(const uint8_t *)"\x02"
			      "A1"
			      "\x04\x00",
	     5, 2, false}, /* A1 again */
	    {(const uint8_t *)"\x02"
			      "A2"
			      "\x00\x01"
			      "1",
	     6, 2, false}, /* "1" < "A2" */
	    {(const uint8_t *)"\x02"
			      "A1"
			      "\x01"
			      "x",
	     5, 2, false}, /* trailing byte */
	    {(const uint8_t *)"\x80\x02"
			      "A1",
	     4, 1, false}, /* length 256 */
	    {(const uint8_t *)"\x02"
			      "A",
	     3, 1, false},			    /* runs off */
	    {(const uint8_t *)"\x00", 1, 1, false}, /* empty id */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		trace_odict_t d;
		trace_odict_init(&d);
		uint8_t *fc = malloc(cases[i].len);
		uint64_t *blk = malloc(2 * sizeof *blk);
		memcpy(fc, cases[i].b, cases[i].len);
		blk[0] = 0;
		blk[1] = cases[i].len;
		bool ok = trace_odict_adopt(&d, fc, cases[i].len, blk, cases[i].n);
		CHECK_MSG(ok == cases[i].ok, "case %zu", i);
		if (!ok) {
			free(fc);
			free(blk);
		}
		trace_odict_free(&d);
	}
}

static uint64_t next_index;

static void feed(moat_exposure_t *x, const char *principal, const char *order, moat_time_t t,
		 moat_view_t name)
{
	moat_entry_t e = {0};
	e.kind = MOAT_ENTRY_ACCESS;
	e.time = t;
	e.principal = principal;
	e.order_id = order;
	e.views[MOAT_FIELD_NAME] = (uint8_t)name;
	moat_error_t err;
	CHECK(moat_exposure_add(x, next_index++, &e, &err) == MOAT_OK);
}

static unsigned got(moat_exposure_t *x, const char *p, const char *o, moat_time_t at)
{
	unsigned f = 99;
	moat_error_t err;
	CHECK(moat_exposure_received(x, p, o, at, &f, &err) == MOAT_OK);
	return f;
}

/* Times are kept as minutes after the order's first sighting, rounded up: a
 * record is never placed before it happened and at most 59.999 s after. */
static void test_time_rounding(void)
{
	moat_exposure_t *x = moat_exposure_new();
	next_index = 0;
	feed(x, "base", "R1", T0, MOAT_VIEW_MASK);			/* base T0 */
	feed(x, "on", "R1", T0 + MIN, MOAT_VIEW_FULL);			/* exactly 1 min */
	feed(x, "over", "R1", T0 + MIN + 1, MOAT_VIEW_FULL);		/* 1 ms past: 2 min */
	feed(x, "early", "R1", T0 - 5 * MIN, MOAT_VIEW_FULL);		/* before the base */
	feed(x, "far", "R1", T0 + 65534 * MIN, MOAT_VIEW_FULL);		/* largest in a record */
	feed(x, "farther", "R1", T0 + 65535 * MIN + 1, MOAT_VIEW_FULL); /* exact seconds */
	const unsigned N = 1u << MOAT_FIELD_NAME;
	CHECK(got(x, "on", "R1", T0 + MIN) == N);
	CHECK(got(x, "on", "R1", T0 + MIN - 1) == 0);
	CHECK(got(x, "over", "R1", T0 + MIN + 1) == 0);
	CHECK(got(x, "over", "R1", T0 + 2 * MIN - 1) == 0);
	CHECK(got(x, "over", "R1", T0 + 2 * MIN) == N);
	CHECK(got(x, "early", "R1", T0 - 1) == 0); /* placed at the base, never earlier */
	CHECK(got(x, "early", "R1", T0) == N);
	CHECK(got(x, "far", "R1", T0 + 65534 * MIN - 1) == 0);
	CHECK(got(x, "far", "R1", T0 + 65534 * MIN) == N);
	CHECK(got(x, "farther", "R1", T0 + 65535 * MIN + 1) == 0); /* rounded up to the second */
	CHECK(got(x, "farther", "R1", T0 + 65535 * MIN + 1000) == N);
	CHECK(trace_dt_minutes(100, 100) == 0 && trace_dt_minutes(100, 101) == 1 &&
	      trace_dt_minutes(100, 160) == 1 && trace_dt_minutes(100, 161) == 2 &&
	      trace_dt_minutes(0, UINT32_MAX) == TRACE_DT_OVERFLOW);

	/* A honey order planted before anyone read it takes its base from the read. */
	moat_error_t err;
	CHECK(moat_exposure_set_honey(x, "H1", &err) == MOAT_OK);
	feed(x, "cr-9", "H1", T0 + 3 * MIN, MOAT_VIEW_FULL);
	CHECK(got(x, "cr-9", "H1", T0 + 3 * MIN) == N);
	CHECK(moat_exposure_is_honey(x, "H1"));
	CHECK(!moat_exposure_is_honey(x, "R1"));

	/* Order ids past the limit are refused with a message, nothing is added. */
	char longid[TRACE_OID_LEN_MAX + 2];
	memset(longid, '7', sizeof longid - 1);
	longid[sizeof longid - 1] = '\0';
	moat_entry_t e = {.kind = MOAT_ENTRY_ACCESS, .principal = "p", .order_id = longid};
	e.views[MOAT_FIELD_NAME] = MOAT_VIEW_FULL;
	CHECK(moat_exposure_add(x, next_index, &e, &err) == MOAT_ELIMIT);
	CHECK(strstr(err.msg, "255") != NULL);
	moat_exposure_free(x);
}

/* Orders renumbered at compaction keep their answers, also across save/load;
 * a file of format version 1 is refused with a message naming the fix. */
static void test_renumber_and_file(void)
{
	moat_exposure_t *x = moat_exposure_new();
	next_index = 0;
	char o[32], p[32];
	/* Ids arrive out of order, in three compactions. */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 300; i++) {
			int k = (i * 7919 + round * 131) % 1000;
			snprintf(o, sizeof o, "Z%d-%d", k, round);
			snprintf(p, sizeof p, "p%d", k % 17);
			feed(x, p, o, T0 + (moat_time_t)k * MIN, MOAT_VIEW_FULL);
		}
		moat_error_t err;
		CHECK(moat_exposure_compact(x, &err) == MOAT_OK);
	}
	int bad = 0;
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 300; i++) {
			int k = (i * 7919 + round * 131) % 1000;
			snprintf(o, sizeof o, "Z%d-%d", k, round);
			snprintf(p, sizeof p, "p%d", k % 17);
			if (got(x, p, o, T0 + (moat_time_t)k * MIN) != 1u ||
			    got(x, p, o, T0 + (moat_time_t)k * MIN - 1) != 0)
				bad++;
		}
	CHECK_MSG(bad == 0, "%d wrong after renumbering", bad);

	char path[] = "/tmp/moat-exposure-v2-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	moat_error_t err;
	CHECK(moat_exposure_save(x, path, &err) == MOAT_OK);
	moat_exposure_t *y = NULL;
	CHECK(moat_exposure_load(path, &y, &err) == MOAT_OK);
	if (y) {
		CHECK(got(y, "p3", "Z3-0", T0 + 3 * MIN) == 1u);
		moat_exposure_stats_t a, b;
		moat_exposure_stats(x, &a);
		moat_exposure_stats(y, &b);
		CHECK(a.orders == b.orders && a.records == b.records);
	}
	moat_exposure_free(y);

	/* A version-1 file (same layout up to the magic, checksum valid). */
	FILE *fp = fopen(path, "rb");
	char *data = NULL;
	long len = 0;
	if (fp && fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) > 40) {
		data = malloc((size_t)len);
		rewind(fp);
		CHECK(fread(data, 1, (size_t)len, fp) == (size_t)len);
	}
	if (fp)
		fclose(fp);
	CHECK(data != NULL);
	if (data) {
		data[7] = '1';
		moat_sha256(data, (size_t)len - 32, (uint8_t *)data + len - 32);
		fp = fopen(path, "wb");
		CHECK(fp && fwrite(data, 1, (size_t)len, fp) == (size_t)len);
		if (fp)
			fclose(fp);
		y = NULL;
		CHECK(moat_exposure_load(path, &y, &err) == MOAT_ECONFLICT);
		CHECK(y == NULL);
		CHECK(strstr(err.msg, "moat trace reindex") != NULL);
		free(data);
	}
	unlink(path);
	moat_exposure_free(x);
}

/* Principal numbers are 24 bits: the dictionary refuses the id past its limit
 * (the index passes MOAT_EXPOSURE_MAX_PRINCIPALS = 2^24; shown here with 3). */
static void test_principal_limit(void)
{
	trace_dict_t d = {0};
	uint32_t id;
	bool added;
	CHECK(trace_dict_intern(&d, "a", 3, &id, &added) == MOAT_OK);
	CHECK(trace_dict_intern(&d, "b", 3, &id, &added) == MOAT_OK);
	CHECK(trace_dict_intern(&d, "c", 3, &id, &added) == MOAT_OK && id == 2);
	CHECK(trace_dict_intern(&d, "d", 3, &id, &added) == MOAT_ELIMIT);
	CHECK(trace_dict_intern(&d, "a", 3, &id, &added) == MOAT_OK && id == 0 && !added);
	trace_dict_free(&d);
	CHECK(MOAT_EXPOSURE_MAX_PRINCIPALS == (1u << 24));
}

int main(void)
{
	test_dictionary();
	test_damaged_blocks();
	test_time_rounding();
	test_renumber_and_file();
	test_principal_limit();
	return check_done();
}
