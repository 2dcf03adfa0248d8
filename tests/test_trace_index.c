/* Unit tests of the exposure index and case scoring on in-memory ledgers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "moat/trace.h"

#define T0 ((moat_time_t)1767225600000) /* 2026-01-01T00:00:00Z */
#define HOUR ((moat_time_t)3600000)

static uint64_t ledger_index;

static void feed(moat_exposure_t *x, const char *principal, const char *order, moat_time_t t,
		 moat_view_t name, moat_view_t phone, moat_view_t address)
{
	moat_entry_t e = {0};
	e.kind = MOAT_ENTRY_ACCESS;
	e.time = t;
	e.principal = principal;
	e.order_id = order;
	e.views[MOAT_FIELD_NAME] = (uint8_t)name;
	e.views[MOAT_FIELD_PHONE] = (uint8_t)phone;
	e.views[MOAT_FIELD_ADDRESS] = (uint8_t)address;
	e.views[MOAT_FIELD_ITEMS] = MOAT_VIEW_HIDDEN;
	moat_error_t err;
	CHECK(moat_exposure_add(x, ledger_index++, &e, &err) == MOAT_OK);
}

static const char *oid(int i)
{
	static char buf[32][16];
	static int k;
	k = (k + 1) % 32;
	snprintf(buf[k], sizeof buf[k], "O%05d", i);
	return buf[k];
}

/* 2,000 orders; a platform service sees every name and phone; 20 CS agents of
 * merchant m1 see names; 10 couriers of l-sf see name, phone (virtual) and address
 * of 200 orders each; courier cr-3 also reads phones in full (the leaker). */
static moat_exposure_t *world(void)
{
	moat_exposure_t *x = moat_exposure_new();
	moat_error_t err;
	char p[32];
	CHECK(moat_exposure_set_party(x, "svc", "platform", &err) == MOAT_OK);
	for (int i = 0; i < 20; i++) {
		snprintf(p, sizeof p, "cs-%d", i);
		CHECK(moat_exposure_set_party(x, p, "m1", &err) == MOAT_OK);
	}
	for (int i = 0; i < 10; i++) {
		snprintf(p, sizeof p, "cr-%d", i);
		CHECK(moat_exposure_set_party(x, p, i < 5 ? "l-sf" : "l-zto", &err) == MOAT_OK);
	}
	ledger_index = 0;
	for (int i = 0; i < 2000; i++) {
		moat_time_t t = T0 + i * 60000;
		feed(x, "svc", oid(i), t, MOAT_VIEW_FULL, MOAT_VIEW_FULL, MOAT_VIEW_COARSE);
		snprintf(p, sizeof p, "cs-%d", i % 20);
		feed(x, p, oid(i), t + HOUR, MOAT_VIEW_FULL, MOAT_VIEW_VIRTUAL, MOAT_VIEW_COARSE);
		snprintf(p, sizeof p, "cr-%d", i % 10);
		moat_view_t ph = (i % 10 == 3) ? MOAT_VIEW_FULL : MOAT_VIEW_VIRTUAL;
		feed(x, p, oid(i), t + 2 * HOUR, MOAT_VIEW_MASK, ph, MOAT_VIEW_FULL);
		/* Repeats add nothing. */
		feed(x, p, oid(i), t + 3 * HOUR, MOAT_VIEW_MASK, ph, MOAT_VIEW_FULL);
		/* A later full name: the courier has every field from then on. */
		feed(x, p, oid(i), t + 4 * HOUR, MOAT_VIEW_FULL, MOAT_VIEW_MASK, MOAT_VIEW_HIDDEN);
	}
	return x;
}

static void test_index(void)
{
	moat_exposure_t *x = world();
	moat_error_t err;
	unsigned f;
	CHECK(moat_exposure_cursor(x) == 10000);
	moat_exposure_stats_t st;
	moat_exposure_stats(x, &st);
	CHECK(st.entries == 10000);
	CHECK(st.orders == 2000);
	CHECK(st.principals == 31);
	CHECK(moat_exposure_received(x, "cr-3", oid(13), T0 + 13 * 60000 + 2 * HOUR, &f, &err) ==
	      MOAT_OK);
	CHECK(f == ((1u << MOAT_FIELD_PHONE) | (1u << MOAT_FIELD_ADDRESS)));
	CHECK(moat_exposure_received(x, "cr-3", oid(13), T0 + 13 * 60000 + 2 * HOUR - 1000, &f,
				     &err) == MOAT_OK);
	CHECK(f == 0);
	CHECK(moat_exposure_received(x, "cr-4", oid(14), T0 + 10 * 24 * HOUR, &f, &err) == MOAT_OK);
	CHECK(f == ((1u << MOAT_FIELD_NAME) | (1u << MOAT_FIELD_ADDRESS) |
		    MOAT_EXPOSURE_VIRTUAL_PHONE));
	moat_exposure_stats(x, &st);
	/* svc, cs, courier(first), courier(name later) = 4 records per order. */
	CHECK(st.records == 8000);
	/* Replaying an applied index is a no-op. */
	moat_entry_t e = {.kind = MOAT_ENTRY_ACCESS, .principal = "zz", .order_id = "O00001"};
	e.views[MOAT_FIELD_NAME] = MOAT_VIEW_FULL;
	CHECK(moat_exposure_add(x, 5, &e, &err) == MOAT_OK);
	CHECK(moat_exposure_received(x, "zz", "O00001", T0 + 1000 * HOUR, &f, &err) == MOAT_OK);
	CHECK(f == 0);

	/* A record far (60 days) past the order's first sighting keeps its exact time. */
	feed(x, "late", oid(5), T0 + 60 * 24 * HOUR + 1000, MOAT_VIEW_FULL, MOAT_VIEW_MASK,
	     MOAT_VIEW_MASK);
	CHECK(moat_exposure_received(x, "late", oid(5), T0 + 60 * 24 * HOUR + 1000, &f, &err) ==
	      MOAT_OK);
	CHECK(f == 1u);
	CHECK(moat_exposure_received(x, "late", oid(5), T0 + 60 * 24 * HOUR, &f, &err) == MOAT_OK);
	CHECK(f == 0);
	ledger_index = moat_exposure_cursor(x);

	/* Save, load, same answers; a flipped byte is caught. */
	char path[] = "/tmp/moat-exposure-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	CHECK(moat_exposure_save(x, path, &err) == MOAT_OK);
	moat_exposure_t *y = NULL;
	CHECK(moat_exposure_load(path, &y, &err) == MOAT_OK);
	if (y) {
		CHECK(moat_exposure_cursor(y) == 10001);
		CHECK(moat_exposure_received(y, "late", oid(5), T0 + 60 * 24 * HOUR + 1000, &f,
					     &err) == MOAT_OK);
		CHECK(f == 1u);
		CHECK(moat_exposure_received(y, "cr-4", oid(14), T0 + 10 * 24 * HOUR, &f, &err) ==
		      MOAT_OK);
		CHECK(f == ((1u << MOAT_FIELD_NAME) | (1u << MOAT_FIELD_ADDRESS) |
			    MOAT_EXPOSURE_VIRTUAL_PHONE));
		moat_entry_t e2 = e;
		e2.principal = "cr-1";
		e2.order_id = "O09999";
		CHECK(moat_exposure_add(y, 10001, &e2, &err) == MOAT_OK);
		CHECK(moat_exposure_received(y, "cr-1", "O09999", T0 + 1000 * HOUR, &f, &err) ==
		      MOAT_OK);
		CHECK(f == 1u);
	}
	moat_exposure_free(y);
	FILE *fp = fopen(path, "r+b");
	CHECK(fp != NULL);
	if (fp) {
		fseek(fp, 100, SEEK_SET);
		int c = fgetc(fp);
		fseek(fp, 100, SEEK_SET);
		fputc(c ^ 1, fp);
		fclose(fp);
	}
	y = NULL;
	CHECK(moat_exposure_load(path, &y, &err) == MOAT_ECORRUPT);
	CHECK(y == NULL);
	unlink(path);
	moat_exposure_free(x);
}

static void test_score(void)
{
	moat_exposure_t *x = world();
	moat_error_t err;
	moat_score_result_t r;
	moat_score_params_t prm;
	moat_score_params_default(&prm);
	unsigned np = (1u << MOAT_FIELD_NAME) | (1u << MOAT_FIELD_PHONE);

	/* Eight victims of cr-3 quoting name and phone, contacted a day later, plus
	 * two unrelated reports. */
	moat_victim_t v[10];
	for (int i = 0; i < 8; i++)
		v[i] = (moat_victim_t){oid(3 + 10 * i * 7), T0 + (3 + 70 * i) * 60000 + 30 * HOUR, np, NULL};
	v[8] = (moat_victim_t){oid(1001), T0 + 1001 * 60000 + 30 * HOUR, np, NULL};
	v[9] = (moat_victim_t){oid(1502), T0 + 1502 * 60000 + 30 * HOUR, np, NULL};
	CHECK(moat_exposure_score(x, v, 10, &prm, &r, &err) == MOAT_OK);
	CHECK(r.n == 10);
	CHECK(r.N == 2000);
	CHECK(r.n_suspects > 0);
	if (r.n_suspects) {
		moat_suspect_t *s = &r.suspects[0];
		CHECK_STR(s->principal, "cr-3");
		CHECK_STR(s->party, "l-sf");
		CHECK(s->significant);
		CHECK(s->k == 8);
		CHECK(s->K == 200);
		/* p = P(X >= 8), X ~ Hyp(2000, 200, 10); corrected over (31 + 4) x 2 fields. */
		CHECK(fabs(s->log_p - moat_stats_log_hypergeom_tail(2000, 200, 10, 8)) < 1e-9);
		CHECK(s->log_p_adj <= s->log_p + log(70.0) + 1e-9);
		CHECK(fabs(s->lift - (8.0 / 10) / (200.0 / 2000)) < 1e-9);
		CHECK(s->n_covered == 8);
	}
	/* Nobody else is confirmed: the platform service saw everything, cr-3's party
	 * is explained by cr-3. */
	for (size_t i = 1; i < r.n_suspects; i++)
		CHECK_MSG(!r.suspects[i].significant, "%s/%s significant", r.suspects[i].principal,
			  r.suspects[i].party);
	moat_score_result_clear(&r);

	/* A contact before the exposure does not count. */
	for (int i = 0; i < 8; i++)
		v[i].contact = T0;
	CHECK(moat_exposure_score(x, v, 10, &prm, &r, &err) == MOAT_OK);
	for (size_t i = 0; i < r.n_suspects; i++)
		CHECK(!r.suspects[i].significant);
	moat_score_result_clear(&r);

	/* Virtual phone does not expose the phone: victims of cr-4 quoting the phone. */
	for (int i = 0; i < 8; i++)
		v[i] = (moat_victim_t){oid(4 + 10 * i * 7), T0 + (4 + 70 * i) * 60000 + 30 * HOUR, np, NULL};
	CHECK(moat_exposure_score(x, v, 8, &prm, &r, &err) == MOAT_OK);
	for (size_t i = 0; i < r.n_suspects; i++)
		CHECK_MSG(strcmp(r.suspects[i].principal, "cr-4") != 0 || !r.suspects[i].significant,
			  "virtual phone counted");
	moat_score_result_clear(&r);

	/* Two leakers: cr-3 (name+phone) and cs-7 (name only quoted). */
	moat_victim_t w[14];
	for (int i = 0; i < 7; i++)
		w[i] = (moat_victim_t){oid(3 + 10 * i * 9), T0 + (3 + 90 * i) * 60000 + 30 * HOUR, np, NULL};
	for (int i = 0; i < 7; i++)
		w[7 + i] = (moat_victim_t){oid(7 + 20 * i * 9), T0 + (7 + 180 * i) * 60000 + 30 * HOUR,
					   1u << MOAT_FIELD_NAME, NULL};
	CHECK(moat_exposure_score(x, w, 14, &prm, &r, &err) == MOAT_OK);
	int found = 0;
	for (size_t i = 0; i < r.n_suspects; i++)
		if (r.suspects[i].significant &&
		    (strcmp(r.suspects[i].principal, "cr-3") == 0 ||
		     strcmp(r.suspects[i].principal, "cs-7") == 0))
			found++;
	CHECK(found == 2);
	moat_score_result_clear(&r);

	/* Clean: victims spread over everyone. */
	for (int i = 0; i < 10; i++)
		v[i] = (moat_victim_t){oid(i * 197), T0 + i * 197 * 60000 + 30 * HOUR, np, NULL};
	CHECK(moat_exposure_score(x, v, 10, &prm, &r, &err) == MOAT_OK);
	for (size_t i = 0; i < r.n_suspects; i++)
		CHECK_MSG(!r.suspects[i].significant, "clean case accused %s", r.suspects[i].principal);
	moat_score_result_clear(&r);
	moat_exposure_free(x);
}

/* Detector alerts as priors: a weighted correction that favours alerted
 * principals and costs the others at most a factor 1 / (1 - share). */
static void test_priors(void)
{
	moat_exposure_t *x = world();
	moat_error_t err;
	moat_score_result_t r0, r1, r2;
	moat_score_params_t prm;
	moat_score_params_default(&prm);
	unsigned np = (1u << MOAT_FIELD_NAME) | (1u << MOAT_FIELD_PHONE);
	/* Three victims of cr-3: p ~ 7e-4 raw, not significant after correcting
	 * over about 35 hypotheses at alpha 0.01. */
	moat_victim_t v[3];
	for (int i = 0; i < 3; i++)
		v[i] = (moat_victim_t){oid(3 + 70 * i), T0 + (3 + 70 * i) * 60000 + 30 * HOUR, np,
				       NULL};
	CHECK(moat_exposure_score(x, v, 3, &prm, &r0, &err) == MOAT_OK);
	CHECK(r0.prior_tested == 0);
	CHECK(r0.n_suspects > 0 && strcmp(r0.suspects[0].principal, "cr-3") == 0);
	CHECK(r0.n_suspects > 0 && !r0.suspects[0].significant);

	/* The detector alerted on cr-3 (and on a name the index never saw). */
	const char *alerted[] = {"cr-3", "nobody"};
	prm.prior = alerted;
	prm.n_prior = 2;
	CHECK(moat_exposure_score(x, v, 3, &prm, &r1, &err) == MOAT_OK);
	CHECK(r1.prior_tested == 1);
	CHECK(r1.prior_share == 0.5);
	CHECK(r1.tested == r0.tested);
	CHECK(r1.n_suspects > 0 && strcmp(r1.suspects[0].principal, "cr-3") == 0);
	if (r1.n_suspects && r0.n_suspects) {
		const moat_suspect_t *a = &r0.suspects[0], *b = &r1.suspects[0];
		CHECK(b->significant);
		CHECK(b->prior);
		CHECK(!a->prior);
		CHECK(b->log_p == a->log_p); /* the test is the same, only its weight moved */
		/* weight 0.5 * m / 1: p * 2 */
		CHECK(fabs(b->log_p_adj - (b->log_p + log(2.0))) < 1e-9);
	}
	for (size_t i = 1; i < r1.n_suspects; i++) {
		CHECK(!r1.suspects[i].significant || r1.suspects[i].is_party);
		CHECK(!r1.suspects[i].prior); /* l-sf has five couriers: its own weight */
	}

	/* A prior on an innocent: it gains nothing it did not earn, and the leaker
	 * pays at most 1 / (1 - share) = 2 on its corrected p. */
	const char *wrong[] = {"cs-5"};
	prm.prior = wrong;
	prm.n_prior = 1;
	CHECK(moat_exposure_score(x, v, 3, &prm, &r2, &err) == MOAT_OK);
	CHECK(r2.prior_tested == 1);
	for (size_t i = 0; i < r2.n_suspects; i++) {
		CHECK_MSG(!r2.suspects[i].significant, "%s significant", r2.suspects[i].principal);
		if (strcmp(r2.suspects[i].principal, "cr-3") == 0 && r0.n_suspects) {
			CHECK(r2.suspects[i].log_p_adj >= r0.suspects[0].log_p_adj - 1e-9);
			CHECK(r2.suspects[i].log_p_adj <= r0.suspects[0].log_p_adj + log(2.0) + 1e-9);
		}
	}
	moat_score_result_clear(&r1);
	moat_score_result_clear(&r2);

	/* share 0 is equal weights: the same result as no priors. */
	prm.prior = alerted;
	prm.n_prior = 2;
	prm.prior_share = 0.0;
	CHECK(moat_exposure_score(x, v, 3, &prm, &r1, &err) == MOAT_OK);
	CHECK(r1.prior_tested == 0);
	CHECK(r1.n_suspects == r0.n_suspects);
	for (size_t i = 0; i < r1.n_suspects && i < r0.n_suspects; i++) {
		CHECK(r1.suspects[i].log_p_adj == r0.suspects[i].log_p_adj);
		CHECK(!r1.suspects[i].prior);
	}
	moat_score_result_clear(&r1);
	moat_score_result_clear(&r0);

	/* Clean victims with every courier alerted: still no accusation. */
	const char *couriers[] = {"cr-0", "cr-1", "cr-2", "cr-3", "cr-4",
				  "cr-5", "cr-6", "cr-7", "cr-8", "cr-9"};
	prm.prior = couriers;
	prm.n_prior = 10;
	prm.prior_share = 0.9;
	moat_victim_t c[10];
	for (int i = 0; i < 10; i++)
		c[i] = (moat_victim_t){oid(i * 197), T0 + i * 197 * 60000 + 30 * HOUR, np, NULL};
	CHECK(moat_exposure_score(x, c, 10, &prm, &r0, &err) == MOAT_OK);
	CHECK(r0.prior_tested > 0);
	for (size_t i = 0; i < r0.n_suspects; i++)
		CHECK_MSG(!r0.suspects[i].significant, "clean case accused %s",
			  r0.suspects[i].principal);
	moat_score_result_clear(&r0);
	moat_exposure_free(x);
}

/* Scammer contacts as reports write them: one number however it is written;
 * text as it is; long text never cut into a match (two phishing links of one
 * site that differ only after the first 130 bytes are two contacts); and
 * normalising twice changes nothing. */
static void test_contacts(void)
{
	char a[MOAT_CONTACT_NORM_MAX], b[MOAT_CONTACT_NORM_MAX], c[MOAT_CONTACT_NORM_MAX];
	moat_trace_contact_normalise("+86 170 0000 0000", a, sizeof a);
	CHECK_STR(a, "17000000000");
	moat_trace_contact_normalise("(170) 0000-0000", b, sizeof b);
	CHECK_STR(b, "17000000000");
	moat_trace_contact_normalise("wx:refund_helper", a, sizeof a);
	CHECK_STR(a, "wx:refund_helper");
	char l1[300], l2[300];
	snprintf(l1, sizeof l1, "https://refund-service.example.com/claim?%0200d&t=1", 0);
	snprintf(l2, sizeof l2, "https://refund-service.example.com/claim?%0200d&t=2", 0);
	moat_trace_contact_normalise(l1, a, sizeof a);
	moat_trace_contact_normalise(l2, b, sizeof b);
	CHECK(strncmp(a, "sha256:", 7) == 0 && strlen(a) == 7 + 64);
	CHECK(strcmp(a, b) != 0);
	moat_trace_contact_normalise(l1, c, sizeof c);
	CHECK_STR(c, a);
	const char *const forms[] = {"+86 170 0000 0000", "wx:refund_helper", l1, "1234", ""};
	for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
		moat_trace_contact_normalise(forms[i], a, sizeof a);
		moat_trace_contact_normalise(a, b, sizeof b);
		CHECK_MSG(strcmp(a, b) == 0, "not idempotent on \"%s\": %s then %s", forms[i], a, b);
	}
}

int main(void)
{
	test_contacts();
	test_index();
	test_score();
	test_priors();
	return check_done();
}
