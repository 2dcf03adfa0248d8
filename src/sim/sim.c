/*
 * The simulator: builds a world (parties, principals, merchants, carriers), then
 * walks the period one local day at a time. Each day it generates that day's
 * orders with their whole lifecycle (reads by services, ISV apps, warehouses,
 * couriers, customer service; tickets, refunds), the staff logins, the merchants'
 * daily exports, and the attacks scheduled for that day. Lifecycle events land in
 * a ring of per-day buckets; a bucket is complete once its day has been generated
 * (no later order can touch an earlier day), so it is sorted and written out and
 * the memory reused. Nothing but a 32-day window of orders is kept.
 *
 * Every order draws from its own random stream derived from (seed, order index),
 * every day and every attack from theirs, so output is byte-identical per seed.
 *
 * Ground truth comes from the same pass: events a leaker receives in plaintext
 * during its attack are recorded as they are generated; victims, reports and
 * calls are drawn from those records after the last day, which guarantees each
 * victim's data was read before the scam contact.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/model.h"
#include "moat/sim.h"
#include "sim/sim_data.h"

/* ---- names ------------------------------------------------------------------------ */

static const char *const scenario_names[] = {
    "cs_insider",	   "isv_overpull", "courier_leak",
    "credential_stuffing", "low_slow",	   "platform_insider",
    "two_leakers",	   "clean",	   "mixed",
};
static const char *const scenario_summaries[] = {
    "a customer-service agent bulk-reads orders without tickets, off shift",
    "an ISV app reads orders of merchants that never authorised it",
    "a courier leaks exactly the orders assigned to him (no abnormal reads)",
    "stuffing of merchant logins from few sources, a takeover, then a bulk export",
    "an insider reading a few extra orders a day, under every threshold",
    "a platform operator bulk-reads orders across merchants without tickets",
    "a customer-service insider and a leaking courier at the same time",
    "no leaker: only false or unrelated reports",
    "demo blend: CS insider, over-pulling ISV app, courier leak, credential stuffing",
};
static const char *const scale_names[] = {"small", "medium", "large"};

const char *moat_sim_scenario_name(int id)
{
	return (id >= 0 && id < MOAT_SIM_SCENARIO_COUNT) ? scenario_names[id] : NULL;
}

const char *moat_sim_scenario_summary(int id)
{
	return (id >= 0 && id < MOAT_SIM_SCENARIO_COUNT) ? scenario_summaries[id] : NULL;
}

const char *moat_sim_scale_name(moat_sim_scale_t s)
{
	return (s >= 0 && s < MOAT_SIM_SCALE_COUNT) ? scale_names[s] : "unknown";
}

bool moat_sim_scale_parse(const char *s, moat_sim_scale_t *out)
{
	for (int i = 0; i < MOAT_SIM_SCALE_COUNT; i++)
		if (s && strcmp(s, scale_names[i]) == 0) {
			*out = (moat_sim_scale_t)i;
			return true;
		}
	return false;
}

moat_err_t moat_sim_scenarios_parse(const char *list, uint32_t *mask, moat_error_t *err)
{
	*mask = 0;
	if (!list || !*list)
		return moat_error_set(err, MOAT_EUSAGE, "scenario", "no scenario named");
	const char *p = list;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		int found = -1;
		for (int i = 0; i < MOAT_SIM_SCENARIO_COUNT; i++)
			if (strlen(scenario_names[i]) == n && memcmp(scenario_names[i], p, n) == 0)
				found = i;
		if (found < 0)
			return moat_error_set(
			    err, MOAT_EUSAGE, "scenario",
			    "unknown scenario \"%.*s\" (see `moat simulate --list`)",
			    (int)(n > 64 ? 64 : n), p);
		*mask |= 1u << found;
		if (!comma)
			break;
		p = comma + 1;
	}
	return MOAT_OK;
}

/* ---- randomness: splitmix64 seeds xoshiro256** ------------------------------------ */

typedef struct rng {
	uint64_t s[4];
} rng_t;

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t x = a;
	uint64_t h = splitmix(&x);
	x = h ^ (b * 0xd1342543de82ef95ull);
	h = splitmix(&x);
	x = h ^ (c * 0x9e3779b97f4a7c15ull);
	return splitmix(&x);
}

/* Independent streams: (seed, stream kind, index). */
enum { ST_WORLD = 1, ST_DAY, ST_ORDER, ST_LOGIN, ST_ATTACK, ST_VICTIM, ST_NOISE, ST_NET };

static void rng_seed(rng_t *r, uint64_t seed, uint64_t stream, uint64_t index)
{
	uint64_t x = mix3(seed, stream, index);
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(rng_t *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, n) (Lemire's multiply; the tiny bias is irrelevant here). */
static inline uint32_t rng_below(rng_t *r, uint32_t n)
{
	return n ? (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32) : 0;
}

static inline uint64_t rng_below64(rng_t *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

static inline double rng_unit(rng_t *r)
{
	return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline bool rng_chance(rng_t *r, double p)
{
	return rng_unit(r) < p;
}

/* Integer in [lo, hi]. */
static inline int64_t rng_range(rng_t *r, int64_t lo, int64_t hi)
{
	return lo + (int64_t)rng_below64(r, (uint64_t)(hi - lo + 1));
}

/* Index into a cumulative weight table of n entries. */
static uint32_t pick_cum(rng_t *r, const uint64_t *cum, uint32_t n)
{
	uint64_t x = rng_below64(r, cum[n - 1]);
	uint32_t lo = 0, hi = n - 1;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (cum[mid] > x)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* ---- time ------------------------------------------------------------------------- */

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
#define TZ_OFFSET (8 * HOUR) /* all local times are China Standard Time, +08:00 */

/* A day count as a local calendar date, in ints for put_digits. */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
	int64_t yy;
	unsigned mm, dd;
	moat_civil_from_days(z, &yy, &mm, &dd);
	*y = (int)yy;
	*m = (int)mm;
	*d = (int)dd;
}

/* The period always ends at 2026-10-01T00:00:00+08:00, so output never depends on
 * when the simulator runs. */
static int64_t period_end_ms(void)
{
	return moat_days_from_civil(2026, 10, 1) * DAY - TZ_OFFSET;
}

/* ---- output: large buffered writes, numbers and times formatted by hand ------------ */

#define OUT_BUF (1u << 20)

typedef struct out {
	FILE *f;
	char *buf;
	size_t len;
	uint64_t total;
	bool failed;
	char path[512];
	/* cache of the "YYYY-MM-DDT" prefix of the last local day formatted */
	int64_t day;
	char date[12];
} out_t;

static void out_flush(out_t *o)
{
	if (o->len && !o->failed && fwrite(o->buf, 1, o->len, o->f) != o->len)
		o->failed = true;
	o->total += o->len;
	o->len = 0;
}

static inline void out_need(out_t *o, size_t n)
{
	if (o->len + n > OUT_BUF)
		out_flush(o);
}

static inline void out_mem(out_t *o, const char *s, size_t n)
{
	if (n > OUT_BUF) {
		out_flush(o);
		if (!o->failed && fwrite(s, 1, n, o->f) != n)
			o->failed = true;
		o->total += n;
		return;
	}
	out_need(o, n);
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static inline void out_str(out_t *o, const char *s)
{
	out_mem(o, s, strlen(s));
}

/* A string literal, its length known at compile time. */
#define out_lit(o, lit) out_mem((o), (lit), sizeof(lit) - 1)

static inline void out_ch(out_t *o, char c)
{
	out_need(o, 1);
	o->buf[o->len++] = c;
}

static inline void out_u64(out_t *o, uint64_t v)
{
	out_need(o, 20);
	o->len += moat_fmt_u64(o->buf + o->len, v);
}

/* Zero-padded decimal of exactly `width` digits. */
static inline void put_digits(char *p, uint64_t v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* Formats t as "YYYY-MM-DDTHH:MM:SS[.mmm]+08:00" into p (at least 30 bytes);
 * returns the length. */
static size_t fmt_time(char *p, int64_t t, int64_t *cache_day, char cache_date[12])
{
	int64_t local = t + TZ_OFFSET;
	int64_t day = local >= 0 ? local / DAY : -((-local + DAY - 1) / DAY);
	int64_t ms = local - day * DAY;
	if (day != *cache_day) {
		int y, m, d;
		civil_from_days(day, &y, &m, &d);
		put_digits(cache_date, (uint64_t)y, 4);
		cache_date[4] = '-';
		put_digits(cache_date + 5, (uint64_t)m, 2);
		cache_date[7] = '-';
		put_digits(cache_date + 8, (uint64_t)d, 2);
		cache_date[10] = 'T';
		*cache_day = day;
	}
	memcpy(p, cache_date, 11);
	size_t n = 11;
	int64_t s = ms / 1000;
	put_digits(p + n, (uint64_t)(s / 3600), 2);
	p[n + 2] = ':';
	put_digits(p + n + 3, (uint64_t)(s / 60 % 60), 2);
	p[n + 5] = ':';
	put_digits(p + n + 6, (uint64_t)(s % 60), 2);
	n += 8;
	if (ms % 1000) {
		p[n] = '.';
		put_digits(p + n + 1, (uint64_t)(ms % 1000), 3);
		n += 4;
	}
	memcpy(p + n, "+08:00", 6);
	return n + 6;
}

static inline void out_time(out_t *o, int64_t t)
{
	out_need(o, 32);
	o->len += fmt_time(o->buf + o->len, t, &o->day, o->date);
}

/* "key":"time" */
static inline void out_kv_time(out_t *o, const char *key, int64_t t)
{
	out_ch(o, '"');
	out_str(o, key);
	out_lit(o, "\":\"");
	out_time(o, t);
	out_ch(o, '"');
}

static moat_err_t out_open(out_t *o, const char *dir, const char *name, moat_error_t *err)
{
	memset(o, 0, sizeof *o);
	o->day = INT64_MIN;
	if (moat_path_join(o->path, sizeof o->path, dir, name) != MOAT_OK)
		return moat_error_set(err, MOAT_ELIMIT, "out", "output path too long");
	o->buf = malloc(OUT_BUF);
	if (!o->buf)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	o->f = fopen(o->path, "wb");
	if (!o->f)
		return moat_error_set(err, MOAT_EIO, "out", "cannot create %s: %s", o->path,
				      strerror(errno));
	return MOAT_OK;
}

/* Flushes and closes; reports the first write error. Safe on a never-opened out. */
static moat_err_t out_close(out_t *o, moat_error_t *err)
{
	moat_err_t rc = MOAT_OK;
	if (o->f) {
		out_flush(o);
		if (fclose(o->f) != 0)
			o->failed = true;
		o->f = NULL;
		if (o->failed)
			rc = moat_error_set(err, MOAT_EIO, "out", "writing %s failed (disk full?)",
					    o->path);
	}
	free(o->buf);
	o->buf = NULL;
	return rc;
}

/* ---- the world ---------------------------------------------------------------------- */

/* What a principal sees of an order: the views it gets for each field, with the
 * JSON of the "fields" map pre-rendered. */
typedef enum profile_id {
	PR_RISK,      /* platform risk service, analytics: everything full */
	PR_TRACK,     /* platform tracking service: waybill only, address coarse */
	PR_REFUND,    /* platform refund service */
	PR_ISV,	      /* ISV app / ship / authorised */
	PR_WAREHOUSE, /* warehouse / ship / assigned */
	PR_COURIER,   /* courier / deliver / assigned */
	PR_CS,	      /* CS agent or platform ops / ticket */
	PR_CS_REFUND, /* CS agent / refund / ticket */
	PR_ADMIN,     /* merchant admin reading one order */
	PR_AUDIT,     /* auditor */
	PR_EXPORT,    /* merchant admin export: bulk plaintext */
	PR_FULL,      /* over-broad legacy access used by insiders */
	PR_DENY,      /* a denied read */
	PR_COUNT
} profile_id_t;

typedef struct profile {
	uint8_t views[MOAT_FIELD_COUNT];
	char json[200];
	size_t json_len;
} profile_t;

enum { F_NAME = 1u << MOAT_FIELD_NAME, F_PHONE = 1u << MOAT_FIELD_PHONE };

static const struct {
	profile_id_t id;
	uint8_t v[MOAT_FIELD_COUNT]; /* name phone address id_number items amounts waybill */
} profile_defs[] = {
#define H MOAT_VIEW_HIDDEN
#define M MOAT_VIEW_MASK
#define C MOAT_VIEW_COARSE
#define G MOAT_VIEW_CATEGORY
#define V MOAT_VIEW_VIRTUAL
#define FU MOAT_VIEW_FULL
#define NO MOAT_VIEW_NONE
    {PR_RISK, {FU, FU, FU, NO, FU, FU, NO}},	{PR_TRACK, {H, H, C, NO, NO, NO, FU}},
    {PR_REFUND, {FU, FU, NO, NO, FU, FU, NO}},	{PR_ISV, {FU, V, FU, NO, FU, FU, FU}},
    {PR_WAREHOUSE, {M, V, FU, NO, FU, NO, FU}}, {PR_COURIER, {M, V, FU, NO, H, NO, FU}},
    {PR_CS, {M, V, C, NO, FU, FU, NO}},		{PR_CS_REFUND, {M, V, C, NO, FU, FU, FU}},
    {PR_ADMIN, {FU, M, FU, NO, FU, FU, FU}},	{PR_AUDIT, {M, M, C, M, G, FU, NO}},
    {PR_EXPORT, {FU, FU, FU, NO, FU, FU, NO}},	{PR_FULL, {FU, FU, FU, NO, FU, FU, NO}},
    {PR_DENY, {H, H, H, NO, H, NO, NO}},
#undef H
#undef M
#undef C
#undef G
#undef V
#undef FU
#undef NO
};

typedef struct principal {
	char id[48];
	char name[64];
	uint32_t party;
	uint8_t role;
	uint8_t human;
	int16_t shift_start, shift_end; /* local minutes of day; -1 = no shift */
	uint32_t ip;
	int8_t attack; /* index of the attack this principal carries out, -1 none */
} principal_t;

typedef struct party {
	char id[24];
	char name[64];
	uint8_t kind;
} party_t;

typedef struct merchant {
	uint32_t party;
	uint32_t num;
	uint8_t category;
	uint8_t carrier;
	int8_t isv; /* authorised ISV, -1 none */
	bool flagship, exports;
	uint32_t admin0, n_admin, cs0, n_cs;
} merchant_t;

/* A compact event; a day's bucket holds these until the day is written. */
enum { EV_ACCESS, EV_LOGIN, EV_EXPORT };
enum { EF_MAL = 1, EF_LEAK = 2, EF_DENY = 4, EF_FAIL = 8 };
enum { NET_HOME, NET_NEWDEV, NET_ATTACKER, NET_PRIVATE };

typedef struct ev {
	int64_t time;
	uint32_t seq;	    /* insertion order within the bucket: a stable tie-break */
	uint32_t ref;	    /* order index, export payload index or fake-username index */
	uint32_t principal; /* UINT32_MAX: a username that is no principal (ref names it) */
	uint8_t kind, purpose, profile, flags;
	uint8_t net;   /* NET_* */
	int8_t attack; /* attack index for EF_MAL / EF_LEAK, else -1 */
	uint16_t aux;  /* attacker source index */
} ev_t;

typedef struct bucket {
	ev_t *ev;
	size_t n, cap;
} bucket_t;

#define RING_DAYS 40   /* lifecycle events land at most 32 days after placement */
#define RECENT_DAYS 32 /* attacks pick from orders of the last 31 days */
#define EXPORT_MAX_IDS 10000

typedef struct export_payload {
	uint32_t *orders;
	uint32_t n;
} export_payload_t;

/* One plaintext receipt by a leaker during its attack. */
typedef struct receipt {
	uint32_t order;
	int64_t time;
	uint8_t profile;
} receipt_t;

typedef enum attack_kind {
	AK_CS_INSIDER,
	AK_ISV_OVERPULL,
	AK_COURIER_LEAK,
	AK_CRED_STUFFING,
	AK_LOW_SLOW,
	AK_PLATFORM_INSIDER,
} attack_kind_t;

static const char *const attack_kind_names[] = {"cs_insider",	"isv_overpull",
						"courier_leak", "credential_stuffing",
						"low_slow",	"platform_insider"};

#define MAX_ATTACKS 16
#define N_ATTACKER_IPS 3

typedef struct attack {
	attack_kind_t kind;
	int scenario;
	uint32_t principal;
	uint32_t merchant; /* target merchant (insiders, stuffing) */
	int isv;	   /* over-pulling ISV */
	int day0, days;	   /* scheduled local days */
	int64_t from, until;
	uint32_t attempted;
	uint32_t attacker_ip[N_ATTACKER_IPS];
	uint32_t failures;
	int64_t takeover_time;
	/* filled while writing */
	bool started;
	uint64_t first_index;
	int64_t first_time, last_time;
	uint64_t mal_events;
	/* receipts */
	receipt_t *rc;
	size_t n_rc, cap_rc;
	/* per-target bookkeeping: orders already read (bitmap over recent ring slots not
	 * needed: a sorted list suffices for the few thousand orders of an attack) */
	uint32_t *read;
	size_t n_read, cap_read;
	/* lines of events.jsonl that are this attack's events */
	uint64_t *mal_index;
	size_t n_mal, cap_mal;
} attack_t;

typedef struct report {
	uint32_t order;
	int64_t contact;
	uint8_t channel; /* 0 call, 1 sms, 2 chat */
	uint8_t quoted;	 /* bit set over moat_field_t */
	int8_t attack;	 /* -1: not genuine */
	uint8_t label;	 /* 0 genuine, 1 false, 2 unrelated */
	bool reported;
	bool via_virtual;
	uint64_t loss;
	uint32_t scammer; /* index into the scammer contact pool */
	char report_id[16];
} report_t;

typedef struct sim {
	const moat_sim_config_t *cfg;
	uint64_t seed;
	int days;
	uint64_t n_orders;
	int64_t start, end; /* ms, [start, end) */

	party_t *parties;
	uint32_t n_parties;
	size_t cap_parties;
	principal_t *pr;
	uint32_t n_pr;
	size_t cap_pr;
	merchant_t *merchants;
	uint32_t n_merchants, n_flagships;
	uint64_t *merchant_cum;
	uint64_t region_cum[128];
	uint64_t surname_cum[256];
	uint32_t region_city[128]; /* region → city index */
	uint32_t n_cities;
	uint64_t city_weight[64];
	/* per carrier: warehouses (day shift then night shift), couriers per city */
	uint32_t wh0[16], n_wh[16];
	uint32_t *courier0, *n_courier; /* [carrier * n_cities + city] */
	uint32_t svc_risk, svc_track, svc_refund;
	uint32_t ops0, n_ops, aud0, n_aud;
	uint32_t isv_app[16];
	uint32_t n_isv;

	profile_t profiles[PR_COUNT];

	/* days */
	uint64_t *day_start;   /* [days + 1] first order index of each day */
	char (*day_prefix)[8]; /* [days] "O" + yymmdd of each day */
	bucket_t ring[RING_DAYS];
	uint32_t *recent_merchant[RECENT_DAYS];
	int64_t *recent_placed[RECENT_DAYS];
	size_t recent_cap[RECENT_DAYS];
	export_payload_t *payloads;
	size_t n_payloads, cap_payloads;

	attack_t attacks[MAX_ATTACKS];
	int n_attacks;

	out_t out_orders, out_rel, out_events;
	uint64_t event_index;
	int64_t last_event_time;
	moat_sim_stats_t st;
	uint64_t principal_days;
	uint64_t *order_buf, *order_tmp; /* radix sort keys of the day being written */
	size_t order_cap, tmp_cap;
	uint32_t radix_hist[1u << 16];
	bool oom;
} sim_t;

/* ---- small helpers ------------------------------------------------------------------ */

static void *grow(void *p, size_t *cap, size_t need, size_t elem, bool *oom)
{
	if (need <= *cap)
		return p;
	size_t nc = *cap ? *cap : 64;
	while (nc < need)
		nc *= 2;
	void *q = realloc(p, nc * elem);
	if (!q) {
		*oom = true;
		return NULL;
	}
	*cap = nc;
	return q;
}

static uint32_t hash32(uint64_t a, uint64_t b)
{
	return (uint32_t)(mix3(a, b, 0x5eed) >> 32);
}

static void fmt_ip(char *out, uint32_t ip)
{
	char *p = out;
	for (int i = 3; i >= 0; i--) {
		unsigned b = (ip >> (8 * i)) & 255;
		if (b >= 100)
			*p++ = (char)('0' + b / 100);
		if (b >= 10)
			*p++ = (char)('0' + b / 10 % 10);
		*p++ = (char)('0' + b % 10);
		if (i)
			*p++ = '.';
	}
	*p = '\0';
}

/* The order id encodes the local placement day: O + yymmdd + 6-digit sequence. */
static size_t fmt_order_id(const sim_t *s, uint32_t idx, char *p)
{
	uint32_t lo = 0, hi = (uint32_t)s->days - 1;
	while (lo < hi) {
		uint32_t mid = (lo + hi + 1) / 2;
		if (s->day_start[mid] <= idx)
			lo = mid;
		else
			hi = mid - 1;
	}
	memcpy(p, s->day_prefix[lo], 7);
	put_digits(p + 7, idx - s->day_start[lo], 6);
	p[13] = '\0';
	return 13;
}

static inline void out_order_id(out_t *o, const sim_t *s, uint32_t idx)
{
	out_need(o, 16);
	o->len += fmt_order_id(s, idx, o->buf + o->len);
}

static int local_day(const sim_t *s, int64_t t)
{
	return (int)((t - s->start) / DAY);
}

/* ms of the local midnight that starts day d of the period. */
static int64_t day_base(const sim_t *s, int d)
{
	return s->start + (int64_t)d * DAY;
}

/* A time on day d inside principal p's shift (or anywhere if it has none). */
static int64_t in_shift(const sim_t *s, rng_t *r, uint32_t p, int d)
{
	const principal_t *pp = &s->pr[p];
	int64_t a = 0, len = DAY - 1;
	if (pp->shift_start >= 0) {
		a = (int64_t)pp->shift_start * MIN;
		int64_t b = (int64_t)pp->shift_end * MIN;
		len = b > a ? b - a : b + DAY - a;
	}
	return day_base(s, d) + a + rng_range(r, 0, len - 1);
}

static void random_name(rng_t *r, const sim_t *s, char *out, size_t cap)
{
	uint32_t si = pick_cum(r, s->surname_cum, sim_n_surnames);
	const char *g1 = sim_given_chars[rng_below(r, sim_n_given_chars)];
	const char *g2 = rng_chance(r, 0.7) ? sim_given_chars[rng_below(r, sim_n_given_chars)] : "";
	snprintf(out, cap, "%s%s%s", sim_surnames[si].text, g1, g2);
}

/* ---- building the world ------------------------------------------------------------- */

typedef struct scale_params {
	uint64_t orders;
	int days;
	uint32_t flagships, shops, cs_per_flagship, admins_per_flagship, wh_per_carrier, ops,
	    auditors;
	uint32_t bulk_cap, isv_cap, platform_cap, victims_max, noise_clean;
} scale_params_t;

static const scale_params_t scale_table[MOAT_SIM_SCALE_COUNT] = {
    {2000, 30, 3, 25, 6, 2, 2, 4, 2, 300, 400, 200, 60, 15},
    {1000000, 90, 20, 2000, 30, 4, 20, 40, 4, 3000, 20000, 2500, 1000, 150},
    {10000000, 365, 40, 8000, 60, 6, 60, 100, 8, 6000, 40000, 5000, 3000, 300},
};

static uint32_t add_party(sim_t *s, const char *id, moat_party_kind_t kind, const char *name)
{
	party_t *p = grow(s->parties, &s->cap_parties, s->n_parties + 1, sizeof *p, &s->oom);
	if (!p)
		return 0;
	s->parties = p;
	party_t *q = &p[s->n_parties];
	snprintf(q->id, sizeof q->id, "%s", id);
	snprintf(q->name, sizeof q->name, "%s", name);
	q->kind = (uint8_t)kind;
	return s->n_parties++;
}

static uint32_t add_principal(sim_t *s, rng_t *r, const char *id, uint32_t party, moat_role_t role,
			      const char *shift, const char *app_name)
{
	principal_t *p = grow(s->pr, &s->cap_pr, s->n_pr + 1, sizeof *p, &s->oom);
	if (!p)
		return 0;
	s->pr = p;
	principal_t *q = &p[s->n_pr];
	memset(q, 0, sizeof *q);
	snprintf(q->id, sizeof q->id, "%s", id);
	q->party = party;
	q->role = (uint8_t)role;
	q->attack = -1;
	q->human = role != MOAT_ROLE_PLATFORM_SERVICE && role != MOAT_ROLE_ISV_APP;
	if (app_name)
		snprintf(q->name, sizeof q->name, "%s", app_name);
	else
		random_name(r, s, q->name, sizeof q->name);
	q->shift_start = q->shift_end = -1;
	if (shift) {
		q->shift_start = (int16_t)(((shift[0] - '0') * 10 + (shift[1] - '0')) * 60 +
					   (shift[3] - '0') * 10 + (shift[4] - '0'));
		q->shift_end = (int16_t)(((shift[6] - '0') * 10 + (shift[7] - '0')) * 60 +
					 (shift[9] - '0') * 10 + (shift[10] - '0'));
	}
	uint32_t h = hash32(s->seed, s->n_pr);
	uint32_t ph = hash32(s->seed ^ 0xabcdef, party);
	switch (role) {
	case MOAT_ROLE_COURIER:
		q->ip = (223u << 24) | (104u << 16) | (h & 0xffff); /* mobile network */
		break;
	case MOAT_ROLE_PLATFORM_SERVICE:
	case MOAT_ROLE_PLATFORM_OPS:
	case MOAT_ROLE_AUDITOR:
		q->ip = (10u << 24) | (ph & 0xff00) | (h & 0xff);
		break;
	case MOAT_ROLE_ISV_APP:
		q->ip = (47u << 24) | (ph & 0xffff00) | (h & 0x3f);
		break;
	default: /* office staff: one /24 per party */
		q->ip = ((ph % 2 ? 183u : 115u) << 24) | (ph & 0xffff00) | (1 + h % 250);
	}
	return s->n_pr++;
}

static const char *shift_of(const principal_t *p, char out[16])
{
	if (p->shift_start < 0)
		return NULL;
	unsigned a = (unsigned)p->shift_start % 1440, b = (unsigned)p->shift_end % 1440;
	put_digits(out, a / 60, 2);
	out[2] = ':';
	put_digits(out + 3, a % 60, 2);
	out[5] = '-';
	put_digits(out + 6, b / 60, 2);
	out[8] = ':';
	put_digits(out + 9, b % 60, 2);
	out[11] = '\0';
	return out;
}

static void build_profiles(sim_t *s)
{
	for (size_t i = 0; i < MOAT_ARRAY_LEN(profile_defs); i++) {
		profile_t *p = &s->profiles[profile_defs[i].id];
		memcpy(p->views, profile_defs[i].v, sizeof p->views);
		size_t n = (size_t)snprintf(p->json, sizeof p->json, "{");
		bool first = true;
		for (int f = 0; f < MOAT_FIELD_COUNT; f++) {
			if (p->views[f] == MOAT_VIEW_NONE)
				continue;
			n += (size_t)snprintf(p->json + n, sizeof p->json - n, "%s\"%s\":\"%s\"",
					      first ? "" : ",", moat_field_name((moat_field_t)f),
					      moat_view_name((moat_view_t)p->views[f]));
			first = false;
		}
		n += (size_t)snprintf(p->json + n, sizeof p->json - n, "}");
		p->json_len = n;
	}
}

static void build_world(sim_t *s, const scale_params_t *sp)
{
	rng_t r;
	rng_seed(&r, s->seed, ST_WORLD, 0);
	char id[48], name[96];

	uint64_t acc = 0;
	for (uint32_t i = 0; i < sim_n_surnames; i++)
		s->surname_cum[i] = acc += sim_surnames[i].weight;
	acc = 0;
	for (uint32_t i = 0; i < sim_n_regions; i++) {
		s->region_cum[i] = acc += sim_regions[i].weight;
		uint32_t c = 0;
		for (; c < i; c++)
			if (strcmp(sim_regions[c].city, sim_regions[i].city) == 0)
				break;
		s->region_city[i] = c == i ? s->n_cities++ : s->region_city[c];
		s->city_weight[s->region_city[i]] += sim_regions[i].weight;
	}

	uint32_t plat = add_party(s, "p-platform", MOAT_PARTY_PLATFORM, "平台");
	s->svc_risk =
	    add_principal(s, &r, "svc-risk", plat, MOAT_ROLE_PLATFORM_SERVICE, NULL, "风控服务");
	s->svc_track = add_principal(s, &r, "svc-track", plat, MOAT_ROLE_PLATFORM_SERVICE, NULL,
				     "物流跟踪服务");
	s->svc_refund =
	    add_principal(s, &r, "svc-refund", plat, MOAT_ROLE_PLATFORM_SERVICE, NULL, "退款服务");
	s->ops0 = s->n_pr;
	s->n_ops = sp->ops;
	for (uint32_t i = 0; i < sp->ops; i++) {
		snprintf(id, sizeof id, "ops-%03u", i + 1);
		add_principal(s, &r, id, plat, MOAT_ROLE_PLATFORM_OPS,
			      i % 3 == 2 ? "14:00-23:00" : "09:00-18:00", NULL);
	}
	s->aud0 = s->n_pr;
	s->n_aud = sp->auditors;
	for (uint32_t i = 0; i < sp->auditors; i++) {
		snprintf(id, sizeof id, "aud-%02u", i + 1);
		add_principal(s, &r, id, plat, MOAT_ROLE_AUDITOR, "09:00-17:00", NULL);
	}

	s->n_isv = sim_n_isvs;
	uint32_t isv_party[16];
	for (uint32_t i = 0; i < sim_n_isvs; i++) {
		isv_party[i] = add_party(s, sim_isvs[i].party, MOAT_PARTY_ISV, sim_isvs[i].name);
		snprintf(name, sizeof name, "%s订单同步", sim_isvs[i].name);
		s->isv_app[i] = add_principal(s, &r, sim_isvs[i].app, isv_party[i],
					      MOAT_ROLE_ISV_APP, NULL, name);
	}

	uint64_t carrier_total = 0;
	for (uint32_t c = 0; c < sim_n_carriers; c++)
		carrier_total += sim_carriers[c].weight;

	static const char *const cs_shifts[] = {"09:00-18:00", "13:00-22:00", "08:00-17:00"};
	s->n_flagships = sp->flagships;
	s->n_merchants = sp->flagships + sp->shops;
	s->merchants = calloc(s->n_merchants, sizeof *s->merchants);
	s->merchant_cum = calloc(s->n_merchants, sizeof *s->merchant_cum);
	if (!s->merchants || !s->merchant_cum) {
		s->oom = true;
		return;
	}
	/* Flagships share about 45% of the orders, the shops a long tail. */
	double flag_w = 0, shop_w = 0;
	for (uint32_t i = 0; i < sp->flagships; i++)
		flag_w += 1.0 / (i + 2);
	for (uint32_t i = 0; i < sp->shops; i++)
		shop_w += 1.0 / (i + 10);
	acc = 0;
	for (uint32_t i = 0; i < s->n_merchants; i++) {
		merchant_t *m = &s->merchants[i];
		bool flag = i < sp->flagships;
		m->flagship = flag;
		m->num = flag ? i + 1 : i - sp->flagships + 1;
		m->category = (uint8_t)rng_below(&r, sim_n_categories);
		{
			uint64_t cw = rng_below64(&r, carrier_total), c = 0;
			while (cw >= sim_carriers[c].weight)
				cw -= sim_carriers[c++].weight;
			m->carrier = (uint8_t)c;
		}
		m->isv = -1;
		if (flag || rng_chance(&r, 0.5))
			m->isv = (int8_t)rng_below(&r, sim_n_isvs);
		m->exports = flag || rng_chance(&r, 0.25);
		const char *w1 = sim_shop_words[rng_below(&r, sim_n_shop_words)];
		const char *w2 = sim_shop_words[rng_below(&r, sim_n_shop_words)];
		const char *cat = sim_categories[m->category].name;
		if (flag) {
			snprintf(id, sizeof id, "m-fs%02u", m->num);
			snprintf(name, sizeof name, "%s%s旗舰店", w1, cat);
		} else {
			snprintf(id, sizeof id, "m-s%05u", m->num);
			snprintf(name, sizeof name, "%s%s%s小店", w1, w2, cat);
		}
		m->party = add_party(s, id, MOAT_PARTY_MERCHANT, name);
		double w =
		    flag ? 0.45 / flag_w / (i + 2) : 0.55 / shop_w / (i - sp->flagships + 10);
		acc += (uint64_t)(w * 1e9) + 1;
		s->merchant_cum[i] = acc;
		m->admin0 = s->n_pr;
		m->n_admin = flag ? sp->admins_per_flagship : 1;
		for (uint32_t k = 0; k < m->n_admin; k++) {
			if (flag)
				snprintf(id, sizeof id, "adm-fs%02u-%u", m->num, k + 1);
			else
				snprintf(id, sizeof id, "adm-s%05u", m->num);
			add_principal(s, &r, id, m->party, MOAT_ROLE_MERCHANT_ADMIN, "09:00-19:00",
				      NULL);
		}
		m->cs0 = s->n_pr;
		m->n_cs = flag ? sp->cs_per_flagship : 1u + (uint32_t)rng_chance(&r, 0.3);
		for (uint32_t k = 0; k < m->n_cs; k++) {
			if (flag)
				snprintf(id, sizeof id, "cs-fs%02u-%03u", m->num, k + 1);
			else
				snprintf(id, sizeof id, "cs-s%05u-%u", m->num, k + 1);
			add_principal(s, &r, id, m->party, MOAT_ROLE_CS_AGENT,
				      flag ? cs_shifts[k % 3] : "09:00-21:00", NULL);
		}
	}
	/* Couriers per (carrier, city): about 8 of our orders per courier per day. */
	s->courier0 = calloc((size_t)sim_n_carriers * s->n_cities, sizeof *s->courier0);
	s->n_courier = calloc((size_t)sim_n_carriers * s->n_cities, sizeof *s->n_courier);
	if (!s->courier0 || !s->n_courier) {
		s->oom = true;
		return;
	}
	/* Each carrier's share of the orders: the merchants' own carrier 85% of the time,
	 * any carrier otherwise (see gen_order). */
	double share[16] = {0};
	for (uint32_t mi = 0; mi < s->n_merchants; mi++)
		share[s->merchants[mi].carrier] +=
		    0.85 * (double)(s->merchant_cum[mi] - (mi ? s->merchant_cum[mi - 1] : 0)) /
		    (double)s->merchant_cum[s->n_merchants - 1];
	for (uint32_t c = 0; c < sim_n_carriers; c++)
		share[c] += 0.15 / sim_n_carriers;
	uint64_t city_total = 0;
	for (uint32_t c = 0; c < s->n_cities; c++)
		city_total += s->city_weight[c];
	double per_day = (double)s->n_orders / s->days;
	for (uint32_t c = 0; c < sim_n_carriers; c++) {
		uint32_t party =
		    add_party(s, sim_carriers[c].id, MOAT_PARTY_LOGISTICS, sim_carriers[c].name);
		const char *tag = sim_carriers[c].id + 2;
		s->wh0[c] = s->n_pr;
		s->n_wh[c] = sp->wh_per_carrier;
		for (uint32_t w = 0; w < sp->wh_per_carrier; w++) {
			snprintf(id, sizeof id, "wh-%s-%02u", tag, w + 1);
			add_principal(
			    s, &r, id, party, MOAT_ROLE_WAREHOUSE,
			    w < (sp->wh_per_carrier + 1) / 2 ? "08:00-20:00" : "20:00-08:00", NULL);
		}
		uint32_t seq = 0;
		for (uint32_t city = 0; city < s->n_cities; city++) {
			double daily = per_day * share[c] * s->city_weight[city] / city_total;
			uint32_t n = (uint32_t)(daily / 8.0) + 1;
			s->courier0[c * s->n_cities + city] = s->n_pr;
			s->n_courier[c * s->n_cities + city] = n;
			for (uint32_t k = 0; k < n; k++) {
				snprintf(id, sizeof id, "cr-%s-%05u", tag, ++seq);
				add_principal(s, &r, id, party, MOAT_ROLE_COURIER, "07:00-21:00",
					      NULL);
			}
		}
	}

	build_profiles(s);
}

/* ---- events --------------------------------------------------------------------------- */

static bucket_t *bucket_for(sim_t *s, int64_t t)
{
	int d = local_day(s, t);
	return &s->ring[d % RING_DAYS];
}

static void record_receipt(sim_t *s, int a, uint32_t order, int64_t t, uint8_t profile)
{
	attack_t *at = &s->attacks[a];
	receipt_t *rc = grow(at->rc, &at->cap_rc, at->n_rc + 1, sizeof *rc, &s->oom);
	if (!rc)
		return;
	at->rc = rc;
	rc[at->n_rc++] = (receipt_t){order, t, profile};
}

/* Adds an event unless it falls after the period. `cur_day` is the day being
 * generated: nothing may land on an already-written day. */
static void add_event(sim_t *s, int64_t t, uint8_t kind, uint32_t principal, uint32_t ref,
		      uint8_t purpose, uint8_t profile, uint8_t flags, int8_t attack, uint8_t net,
		      uint16_t aux)
{
	if (t >= s->end || t < s->start)
		return;
	/* A courier who leaks passes on everything it receives in its window. */
	if (kind == EV_ACCESS && principal != UINT32_MAX && s->pr[principal].attack >= 0 &&
	    !(flags & EF_DENY)) {
		attack_t *at = &s->attacks[s->pr[principal].attack];
		if (at->kind == AK_COURIER_LEAK && t >= at->from && t < at->until) {
			flags |= EF_LEAK;
			attack = s->pr[principal].attack;
		}
	}
	bucket_t *b = bucket_for(s, t);
	ev_t *e = grow(b->ev, &b->cap, b->n + 1, sizeof *e, &s->oom);
	if (!e)
		return;
	b->ev = e;
	e[b->n] = (ev_t){t,	  (uint32_t)b->n, ref, principal, kind, purpose,
			 profile, flags,	  net, attack,	  aux};
	b->n++;
	if ((flags & EF_LEAK) && kind == EV_ACCESS)
		record_receipt(s, attack, ref, t, profile);
}

static void add_access(sim_t *s, int64_t t, uint32_t p, uint32_t order, moat_purpose_t purpose,
		       profile_id_t profile)
{
	add_event(s, t, EV_ACCESS, p, order, (uint8_t)purpose, (uint8_t)profile, 0, -1, NET_HOME,
		  0);
}

/* Whether principal p uses a new device on local day d (about once in 100 days). */
static bool new_device_day(const sim_t *s, uint32_t p, int d)
{
	return s->pr[p].human && hash32(s->seed ^ ((uint64_t)p << 20), (uint64_t)d + 7) % 100 == 0;
}

static void out_ip(out_t *o, uint32_t ip)
{
	char buf[16];
	fmt_ip(buf, ip);
	out_str(o, buf);
}

static void out_hex32(out_t *o, uint32_t v)
{
	static const char hx[] = "0123456789abcdef";
	out_need(o, 8);
	for (int i = 7; i >= 0; i--)
		o->buf[o->len++] = hx[(v >> (4 * i)) & 15];
}

/* Source address and device of an event. */
static void out_net(sim_t *s, out_t *o, const ev_t *e)
{
	uint32_t p = e->principal;
	const principal_t *pp = &s->pr[p];
	int d = local_day(s, e->time);
	int net = e->net;
	if (net == NET_HOME && new_device_day(s, p, d))
		net = NET_NEWDEV;
	out_lit(o, "\"ip\":\"");
	switch (net) {
	case NET_ATTACKER:
		out_ip(o, s->attacks[e->attack].attacker_ip[e->aux % N_ATTACKER_IPS]);
		out_lit(o, "\",\"device\":\"d-");
		out_hex32(
		    o, hash32(s->seed ^ 0xbad, (uint64_t)e->attack * 8 + e->aux % N_ATTACKER_IPS));
		break;
	case NET_NEWDEV:
	case NET_PRIVATE: {
		uint32_t salt = net == NET_NEWDEV ? (uint32_t)d : 0x7fff0000u;
		uint32_t h = hash32(s->seed ^ ((uint64_t)p << 24), salt);
		out_ip(o,
		       (pp->role == MOAT_ROLE_COURIER ? 223u << 24 : 112u << 24) | (h & 0xffffff));
		out_lit(o, "\",\"device\":\"d-");
		out_hex32(o, hash32(h, p));
		break;
	}
	default:
		out_ip(o, pp->ip);
		out_str(o, pp->human ? "\",\"device\":\"d-" : "\",\"device\":\"srv-");
		out_hex32(o, hash32(s->seed ^ 0xde71ce, p));
	}
	out_ch(o, '"');
}

static const char *const fake_usernames[] = {"admin",	"test", "shop",	 "kefu", "manager",
					     "service", "root", "store", "boss", "caiwu"};

static void write_event(sim_t *s, const ev_t *e, int64_t t)
{
	out_t *o = &s->out_events;
	out_lit(o, "{\"time\":\"");
	out_time(o, t);
	if (e->kind == EV_ACCESS) {
		out_lit(o, "\",\"kind\":\"access\",\"principal\":\"");
		out_str(o, s->pr[e->principal].id);
		out_lit(o, "\",\"order_id\":\"");
		out_order_id(o, s, e->ref);
		out_lit(o, "\",\"purpose\":\"");
		out_str(o, moat_purpose_name((moat_purpose_t)e->purpose));
		out_lit(o, "\",\"fields\":");
		out_mem(o, s->profiles[e->profile].json, s->profiles[e->profile].json_len);
		out_str(o, (e->flags & EF_DENY) ? ",\"decision\":\"deny\","
						: ",\"decision\":\"allow\",");
		out_net(s, o, e);
		out_lit(o, "}\n");
		s->st.access_events++;
	} else if (e->kind == EV_LOGIN) {
		out_lit(o, "\",\"kind\":\"login\",\"username\":\"");
		if (e->principal == UINT32_MAX) {
			out_str(o, fake_usernames[e->ref % MOAT_ARRAY_LEN(fake_usernames)]);
			if (e->ref >= MOAT_ARRAY_LEN(fake_usernames))
				out_u64(o, e->ref / MOAT_ARRAY_LEN(fake_usernames));
			ev_t tmp = *e;
			out_lit(o, "\",");
			out_lit(o, "\"ip\":\"");
			out_ip(o, s->attacks[tmp.attack].attacker_ip[tmp.aux % N_ATTACKER_IPS]);
			out_lit(o, "\",\"result\":\"failure\",\"device\":\"d-");
			out_hex32(o, hash32(s->seed ^ 0xbad,
					    (uint64_t)tmp.attack * 8 + tmp.aux % N_ATTACKER_IPS));
			out_lit(o, "\"}\n");
		} else {
			out_str(o, s->pr[e->principal].id);
			out_lit(o, "\",");
			/* ip and device first, then result: keep the documented key set */
			out_net(s, o, e);
			out_str(o, (e->flags & EF_FAIL) ? ",\"result\":\"failure\"}\n"
							: ",\"result\":\"success\"}\n");
		}
		s->st.login_events++;
	} else {
		export_payload_t *pl = &s->payloads[e->ref];
		out_lit(o, "\",\"kind\":\"export\",\"principal\":\"");
		out_str(o, s->pr[e->principal].id);
		out_lit(o, "\",\"rows\":");
		out_u64(o, pl->n);
		out_lit(o, ",\"fields\":");
		out_mem(o, s->profiles[e->profile].json, s->profiles[e->profile].json_len);
		out_lit(o, ",\"purpose\":\"");
		out_str(o, moat_purpose_name((moat_purpose_t)e->purpose));
		out_lit(o, "\",\"order_ids\":[");
		for (uint32_t i = 0; i < pl->n; i++) {
			if (i)
				out_ch(o, ',');
			out_ch(o, '"');
			out_order_id(o, s, pl->orders[i]);
			out_ch(o, '"');
		}
		out_lit(o, "]}\n");
		if (e->flags & EF_LEAK)
			for (uint32_t i = 0; i < pl->n; i++)
				record_receipt(s, e->attack, pl->orders[i], t, e->profile);
		free(pl->orders);
		pl->orders = NULL;
		s->st.export_events++;
	}
}

/* Orders a day's events by (time, insertion order) with an LSD radix sort on the
 * key (ms within the day << 32 | index): four passes of 16 bits, no comparisons.
 * Leaves the sorted keys in s->order_buf. */
static bool sort_bucket(sim_t *s, bucket_t *b, int64_t base)
{
	size_t n = b->n;
	uint64_t *k = grow(s->order_buf, &s->order_cap, n + 1, sizeof *k, &s->oom);
	if (!k)
		return false;
	s->order_buf = k;
	uint64_t *tmp = grow(s->order_tmp, &s->tmp_cap, n + 1, sizeof *tmp, &s->oom);
	if (!tmp)
		return false;
	s->order_tmp = tmp;
	for (size_t i = 0; i < n; i++)
		k[i] = ((uint64_t)(b->ev[i].time - base) << 32) | i;
	uint32_t *hist = s->radix_hist;
	uint64_t *src = k, *dst = tmp;
	for (int pass = 0; pass < 4; pass++) {
		int shift = pass * 16;
		memset(hist, 0, sizeof s->radix_hist);
		for (size_t i = 0; i < n; i++)
			hist[(src[i] >> shift) & 0xffff]++;
		uint32_t sum = 0;
		for (uint32_t j = 0; j < (1u << 16); j++) {
			uint32_t c = hist[j];
			hist[j] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			dst[hist[(src[i] >> shift) & 0xffff]++] = src[i];
		uint64_t *t = src;
		src = dst;
		dst = t;
	}
	/* after an even number of passes the result is back in k */
	return true;
}

/* Sorts and writes the bucket of day d, then empties it. Times are made strictly
 * increasing (equal milliseconds are nudged by 1 ms) so every consumer sees one
 * unambiguous order. */
static void flush_day(sim_t *s, int d)
{
	bucket_t *b = &s->ring[d % RING_DAYS];
	if (!sort_bucket(s, b, day_base(s, d)))
		return;
	for (size_t i = 0; i < b->n; i++) {
		ev_t *e = &b->ev[s->order_buf[i] & 0xffffffffu];
		int64_t t = e->time > s->last_event_time ? e->time : s->last_event_time + 1;
		s->last_event_time = t;
		if (e->attack >= 0 && (e->flags & EF_MAL)) {
			attack_t *at = &s->attacks[e->attack];
			if (!at->started) {
				at->started = true;
				at->first_index = s->event_index;
				at->first_time = t;
			}
			at->last_time = t;
			at->mal_events++;
			uint64_t *ix =
			    grow(at->mal_index, &at->cap_mal, at->n_mal + 1, sizeof *ix, &s->oom);
			if (ix) {
				at->mal_index = ix;
				ix[at->n_mal++] = s->event_index;
			}
		}
		write_event(s, e, t);
		s->event_index++;
	}
	/* Give the memory back: a written day's slot is next used 40 days later, and
	 * keeping every slot at a full day's size would hold 40 days of events. */
	free(b->ev);
	b->ev = NULL;
	b->n = b->cap = 0;
}

/* ---- orders --------------------------------------------------------------------------- */

static void out_phone(out_t *o, rng_t *r)
{
	char p[12];
	memcpy(p, sim_mobile_prefixes[rng_below(r, sim_n_mobile_prefixes)], 3);
	put_digits(p + 3, rng_below(r, 100000000), 8);
	out_mem(o, p, 11);
}

/* GB 11643 resident id: region code, birth date, sequence, check digit. */
static void out_id_number(out_t *o, rng_t *r, const char *region_code, int64_t placed)
{
	static const int w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	static const char check[] = "10X98765432";
	char id[19];
	memcpy(id, region_code, 6);
	int64_t birth_day = (placed + TZ_OFFSET) / DAY - rng_range(r, 18 * 365, 65 * 365);
	int y, m, d;
	civil_from_days(birth_day, &y, &m, &d);
	put_digits(id + 6, (uint64_t)y, 4);
	put_digits(id + 10, (uint64_t)m, 2);
	put_digits(id + 12, (uint64_t)d, 2);
	put_digits(id + 14, rng_below(r, 1000), 3);
	int sum = 0;
	for (int i = 0; i < 17; i++)
		sum += (id[i] - '0') * w[i];
	id[17] = check[sum % 11];
	out_mem(o, id, 18);
}

static void out_relation_assign(sim_t *s, uint32_t order, uint32_t p, int64_t from, int64_t until)
{
	if (from >= s->end)
		return;
	out_t *o = &s->out_rel;
	out_lit(o, "{\"kind\":\"assign\",\"order_id\":\"");
	out_order_id(o, s, order);
	out_lit(o, "\",\"principal\":\"");
	out_str(o, s->pr[p].id);
	out_lit(o, "\",");
	out_kv_time(o, "from", from);
	out_ch(o, ',');
	out_kv_time(o, "until", until);
	out_lit(o, "}\n");
	s->st.relations++;
}

/* Writes a ticket relation; its id is T<order id>-<seq>. */
static void out_ticket(sim_t *s, uint32_t order, uint32_t agent, int seq, int64_t opened,
		       int64_t closed)
{
	if (opened >= s->end)
		return;
	out_t *o = &s->out_rel;
	out_lit(o, "{\"kind\":\"ticket\",\"order_id\":\"");
	out_order_id(o, s, order);
	out_lit(o, "\",\"principal\":\"");
	out_str(o, s->pr[agent].id);
	out_lit(o, "\",\"ticket\":\"T");
	out_order_id(o, s, order);
	out_ch(o, '-');
	out_u64(o, (uint64_t)seq);
	out_lit(o, "\",");
	out_kv_time(o, "opened", opened);
	if (closed < s->end) {
		out_ch(o, ',');
		out_kv_time(o, "closed", closed);
	}
	out_lit(o, "}\n");
	s->st.relations++;
}

/* A ticket: one agent, a few reads, then closed. Returns the close time. */
static int64_t gen_ticket(sim_t *s, rng_t *r, uint32_t order, uint32_t agent, int64_t opened,
			  moat_purpose_t purpose, int seq)
{
	int reads = (int)rng_range(r, 1, 4);
	int64_t t = opened;
	profile_id_t prof = purpose == MOAT_PURPOSE_REFUND ? PR_CS_REFUND : PR_CS;
	for (int i = 0; i < reads; i++) {
		t += rng_range(r, 10 * SEC, 40 * MIN);
		add_access(s, t, agent, order, purpose, prof);
	}
	int64_t closed = t + rng_range(r, 2 * MIN, 3 * HOUR);
	out_ticket(s, order, agent, seq, opened, closed);
	return closed;
}

static moat_purpose_t ticket_purpose(rng_t *r)
{
	uint32_t x = rng_below(r, 10);
	return x < 5   ? MOAT_PURPOSE_CUSTOMER_CARE
	       : x < 8 ? MOAT_PURPOSE_AFTER_SALES
	       : x < 9 ? MOAT_PURPOSE_ADDRESS_CHANGE
		       : MOAT_PURPOSE_REFUND;
}

/* The first time at or after t that falls inside p's shift. */
static int64_t next_in_shift(const sim_t *s, rng_t *r, uint32_t p, int64_t t)
{
	int d = local_day(s, t);
	int64_t x = in_shift(s, r, p, d);
	if (x <= t)
		x = in_shift(s, r, p, d + 1);
	if (x <= t)
		x = t + rng_range(r, MIN, HOUR);
	return x;
}

/* Generates order idx, placed at `placed` on day d with merchant m: writes its
 * line and relations and queues its events. */
static void gen_order(sim_t *s, uint32_t idx, int64_t placed, uint32_t mi)
{
	rng_t r;
	rng_seed(&r, s->seed, ST_ORDER, idx);
	const merchant_t *m = &s->merchants[mi];
	const sim_category_t *cat = &sim_categories[m->category];
	uint32_t region = pick_cum(&r, s->region_cum, sim_n_regions);
	uint32_t city = s->region_city[region];
	const sim_region_t *rg = &sim_regions[region];
	int64_t limit = placed + 30 * DAY;

	/* lifecycle times */
	bool cancelled = rng_chance(&r, 0.02);
	int64_t shipped = INT64_MAX, delivered = INT64_MAX, closed = INT64_MAX,
		refunded = INT64_MAX;
	uint32_t wh = 0, courier = 0;
	uint8_t carrier = m->carrier;
	if (rng_chance(&r, 0.15))
		carrier = (uint8_t)rng_below(&r, sim_n_carriers);
	int64_t wh_read = placed + rng_range(&r, 2 * HOUR, 30 * HOUR);
	{
		int64_t tod = (wh_read + TZ_OFFSET) % DAY;
		bool day_shift = tod >= 8 * HOUR && tod < 20 * HOUR;
		uint32_t half = (s->n_wh[carrier] + 1) / 2;
		uint32_t n = day_shift ? half : s->n_wh[carrier] - half;
		if (n == 0) {
			n = half;
			day_shift = true;
		}
		wh = s->wh0[carrier] + (day_shift ? 0 : half) + hash32(mi, idx / 64) % n;
	}
	if (cancelled) {
		refunded = placed + rng_range(&r, 10 * MIN, 20 * HOUR);
	} else {
		shipped = wh_read + rng_range(&r, 10 * MIN, 90 * MIN);
		uint32_t slot = carrier * s->n_cities + city;
		courier = s->courier0[slot] + rng_below(&r, s->n_courier[slot]);
		int64_t dd = shipped + rng_range(&r, 1, 4) * DAY;
		delivered = in_shift(s, &r, courier, local_day(s, dd));
		if (delivered < shipped + 12 * HOUR)
			delivered = shipped + 12 * HOUR + rng_range(&r, 0, 4 * HOUR);
		closed = delivered + 7 * DAY;
		if (rng_chance(&r, 0.03)) {
			refunded = delivered + rng_range(&r, 1 * DAY, 6 * DAY);
			closed = INT64_MAX;
		}
	}

	/* the order line */
	out_t *o = &s->out_orders;
	out_lit(o, "{\"order_id\":\"");
	out_order_id(o, s, idx);
	out_lit(o, "\",\"merchant\":\"");
	out_str(o, s->parties[m->party].id);
	out_lit(o, "\",");
	out_kv_time(o, "placed_at", placed);
	const char *status = refunded < s->end	  ? "refunded"
			     : closed < s->end	  ? "closed"
			     : delivered < s->end ? "delivered"
			     : shipped < s->end	  ? "shipped"
						  : "paid";
	out_lit(o, ",\"status\":\"");
	out_str(o, status);
	out_lit(o, "\",\"buyer\":{\"name\":\"");
	char name[32];
	random_name(&r, s, name, sizeof name);
	out_str(o, name);
	out_lit(o, "\",\"phone\":\"");
	out_phone(o, &r);
	if (rng_chance(&r, 0.08)) {
		out_lit(o, "\",\"id_number\":\"");
		out_id_number(o, &r, rg->code, placed);
	}
	out_lit(o, "\",\"address\":{\"province\":\"");
	out_str(o, rg->province);
	out_lit(o, "\",\"city\":\"");
	out_str(o, rg->city);
	out_lit(o, "\",\"district\":\"");
	out_str(o, rg->district);
	out_lit(o, "\",\"detail\":\"");
	out_str(o, sim_roads[rng_below(&r, sim_n_roads)]);
	out_u64(o, (uint64_t)rng_range(&r, 1, 999));
	out_lit(o, "号");
	const char *estate = sim_estates[rng_below(&r, sim_n_estates)];
	out_str(o, estate);
	if (*estate || rng_chance(&r, 0.5)) {
		out_u64(o, (uint64_t)rng_range(&r, 1, 30));
		out_lit(o, "栋");
		if (rng_chance(&r, 0.7)) {
			out_u64(o, (uint64_t)rng_range(&r, 1, 4));
			out_lit(o, "单元");
		}
	}
	out_u64(o, (uint64_t)(rng_range(&r, 1, 33) * 100 + rng_range(&r, 1, 6)));
	out_lit(o, "室\"}},\"items\":[");
	int n_items = rng_chance(&r, 0.7) ? 1 : rng_chance(&r, 0.67) ? 2 : 3;
	for (int i = 0; i < n_items; i++) {
		uint32_t pi = rng_below(&r, cat->n_products);
		const sim_product_t *pd = &cat->products[pi];
		uint64_t price =
		    (uint64_t)rng_range(&r, pd->min_cents / 100, pd->max_cents / 100) * 100;
		if (price > 1000)
			price = price / 1000 * 1000 - 100; /* 299.00 style */
		out_str(o, i ? ",{\"sku\":\"S" : "{\"sku\":\"S");
		out_u64(o, mi + 1);
		out_ch(o, '-');
		out_u64(o, pi + 1);
		out_ch(o, '-');
		out_u64(o, rng_below(&r, 6) + 1);
		out_lit(o, "\",\"title\":\"");
		out_str(o, pd->title);
		out_lit(o, "\",\"qty\":");
		out_u64(o, rng_chance(&r, 0.85) ? 1 : (uint64_t)rng_range(&r, 2, 3));
		out_lit(o, ",\"price_cents\":");
		out_u64(o, price);
		out_ch(o, '}');
	}
	out_ch(o, ']');
	if (shipped < s->end) {
		out_lit(o, ",\"shipping\":{\"carrier\":\"");
		out_str(o, sim_carriers[carrier].id);
		out_lit(o, "\",\"waybill\":\"");
		out_str(o, sim_carriers[carrier].waybill_prefix);
		char wb[13];
		put_digits(wb, mix3(s->seed, idx, 0x3a7b111) % 1000000000000ull, 12);
		out_mem(o, wb, 12);
		out_lit(o, "\",");
		out_kv_time(o, "shipped_at", shipped);
		if (delivered < s->end) {
			out_ch(o, ',');
			out_kv_time(o, "delivered_at", delivered);
		}
		out_ch(o, '}');
	}
	out_lit(o, "}\n");
	s->st.orders++;

	/* the reads of normal work */
	add_access(s, placed + rng_range(&r, SEC, 30 * SEC), s->svc_risk, idx,
		   MOAT_PURPOSE_ANALYTICS, PR_RISK);
	if (m->isv >= 0)
		add_access(s, placed + rng_range(&r, 5 * SEC, 10 * MIN), s->isv_app[m->isv], idx,
			   MOAT_PURPOSE_SHIP, PR_ISV);
	if (cancelled) {
		add_access(s, refunded, s->svc_refund, idx, MOAT_PURPOSE_REFUND, PR_REFUND);
		return;
	}
	out_relation_assign(s, idx, wh, placed, shipped + HOUR);
	add_access(s, wh_read, wh, idx, MOAT_PURPOSE_SHIP, PR_WAREHOUSE);
	if (rng_chance(&r, 0.3))
		add_access(s, wh_read + rng_range(&r, MIN, 50 * MIN), wh, idx, MOAT_PURPOSE_SHIP,
			   PR_WAREHOUSE);
	add_access(s, shipped, s->svc_track, idx, MOAT_PURPOSE_DELIVER, PR_TRACK);
	if (m->isv >= 0)
		add_access(s, shipped + rng_range(&r, MIN, 20 * MIN), s->isv_app[m->isv], idx,
			   MOAT_PURPOSE_SHIP, PR_ISV);
	out_relation_assign(s, idx, courier, shipped, delivered + 3 * DAY);
	/* The courier checks the order when it reaches the station, then on the day of
	 * delivery, and sometimes calls the buyer. */
	add_access(s, next_in_shift(s, &r, courier, shipped + 6 * HOUR), courier, idx,
		   MOAT_PURPOSE_DELIVER, PR_COURIER);
	int creads = (int)rng_range(&r, 1, 3);
	int64_t dstart = day_base(s, local_day(s, delivered)) + 7 * HOUR;
	for (int i = 0; i < creads; i++) {
		int64_t t =
		    dstart + rng_range(&r, 0, delivered - dstart > 0 ? delivered - dstart : 0);
		if (t < shipped + 7 * HOUR)
			t = delivered - rng_range(&r, 0, 10 * MIN);
		add_access(s, t, courier, idx, MOAT_PURPOSE_DELIVER, PR_COURIER);
	}
	add_access(s, delivered, s->svc_track, idx, MOAT_PURPOSE_DELIVER, PR_TRACK);
	add_access(s, delivered + rng_range(&r, SEC, HOUR), s->svc_risk, idx,
		   MOAT_PURPOSE_ANALYTICS, PR_RISK);

	/* customer service */
	int seq = 1;
	if (rng_chance(&r, 0.12) || refunded != INT64_MAX) {
		uint32_t agent = m->cs0 + rng_below(&r, m->n_cs);
		int64_t when = placed + rng_range(&r, HOUR, (delivered - placed) + 5 * DAY);
		if (refunded != INT64_MAX)
			when = refunded - rng_range(&r, HOUR, DAY);
		int64_t opened = next_in_shift(s, &r, agent, when);
		if (opened < limit) {
			moat_purpose_t pu =
			    refunded != INT64_MAX ? MOAT_PURPOSE_REFUND : ticket_purpose(&r);
			int64_t closed_t = gen_ticket(s, &r, idx, agent, opened, pu, seq++);
			if (refunded != INT64_MAX) {
				refunded = closed_t + rng_range(&r, MIN, HOUR);
				add_access(s, refunded, s->svc_refund, idx, MOAT_PURPOSE_REFUND,
					   PR_REFUND);
			}
		}
	}
	if (rng_chance(&r, 0.01)) { /* escalated to the platform */
		uint32_t op = s->ops0 + rng_below(&r, s->n_ops);
		int64_t opened = next_in_shift(s, &r, op, delivered + rng_range(&r, 0, 4 * DAY));
		if (opened < limit)
			gen_ticket(s, &r, idx, op, opened, MOAT_PURPOSE_CUSTOMER_CARE, seq++);
	}
	if (rng_chance(&r, 0.05)) { /* the merchant's admin looks at it */
		uint32_t adm = m->admin0 + rng_below(&r, m->n_admin);
		add_access(s, next_in_shift(s, &r, adm, shipped + rng_range(&r, 0, 5 * DAY)), adm,
			   idx, MOAT_PURPOSE_AFTER_SALES, PR_ADMIN);
	}
	if (rng_chance(&r, 0.005)) { /* an agent without a ticket is refused */
		uint32_t agent = m->cs0 + rng_below(&r, m->n_cs);
		add_event(s, next_in_shift(s, &r, agent, placed + rng_range(&r, 0, 3 * DAY)),
			  EV_ACCESS, agent, idx, MOAT_PURPOSE_CUSTOMER_CARE, PR_DENY, EF_DENY, -1,
			  NET_HOME, 0);
	}
	if (rng_chance(&r, 0.002)) { /* a courier past its window is refused */
		add_event(s, delivered + rng_range(&r, 4 * DAY, 8 * DAY), EV_ACCESS, courier, idx,
			  MOAT_PURPOSE_DELIVER, PR_DENY, EF_DENY, -1, NET_HOME, 0);
	}
}

/* ---- daily work: logins and exports ------------------------------------------------------ */

static void gen_logins(sim_t *s, int d)
{
	rng_t r;
	rng_seed(&r, s->seed, ST_LOGIN, (uint64_t)d);
	for (uint32_t p = 0; p < s->n_pr; p++) {
		const principal_t *pp = &s->pr[p];
		if (!pp->human)
			continue;
		s->principal_days++;
		int64_t t = day_base(s, d) + (int64_t)pp->shift_start * MIN -
			    rng_range(&r, 0, 20 * MIN) - rng_range(&r, 0, 59 * SEC);
		if (t < day_base(s, d))
			t = day_base(s, d) + rng_range(&r, 0, 5 * MIN);
		if (rng_chance(&r, 0.03)) { /* a typo first */
			int fails = rng_chance(&r, 0.8) ? 1 : 2;
			for (int i = fails; i > 0; i--)
				add_event(s, t - i * rng_range(&r, 5 * SEC, 40 * SEC), EV_LOGIN, p,
					  0, 0, 0, EF_FAIL, -1, NET_HOME, 0);
		}
		add_event(s, t, EV_LOGIN, p, 0, 0, 0, 0, -1, NET_HOME, 0);
	}
}

static uint32_t add_payload(sim_t *s, uint32_t *orders, uint32_t n)
{
	export_payload_t *pl =
	    grow(s->payloads, &s->cap_payloads, s->n_payloads + 1, sizeof *pl, &s->oom);
	if (!pl) {
		free(orders);
		return 0;
	}
	s->payloads = pl;
	pl[s->n_payloads] = (export_payload_t){orders, n};
	return (uint32_t)s->n_payloads++;
}

/* Queues an export of orders[0..n) (copied) in events of at most EXPORT_MAX_IDS. */
static void add_export(sim_t *s, int64_t t, uint32_t admin, const uint32_t *orders, uint32_t n,
		       moat_purpose_t purpose, uint8_t flags, int8_t attack)
{
	for (uint32_t off = 0; off < n; off += EXPORT_MAX_IDS) {
		uint32_t k = n - off < EXPORT_MAX_IDS ? n - off : EXPORT_MAX_IDS;
		uint32_t *copy = malloc((size_t)k * sizeof *copy);
		if (!copy) {
			s->oom = true;
			return;
		}
		memcpy(copy, orders + off, (size_t)k * sizeof *copy);
		uint32_t ref = add_payload(s, copy, k);
		if (s->oom)
			return;
		add_event(s, t + off / EXPORT_MAX_IDS * 3 * SEC, EV_EXPORT, admin, ref,
			  (uint8_t)purpose, PR_EXPORT, flags, attack, NET_HOME, 0);
	}
}

/* Auditors sample about 20 orders of the last week each working day, masked. */
static void gen_audits(sim_t *s, int d)
{
	rng_t r;
	rng_seed(&r, s->seed, ST_DAY, (uint64_t)d * 2 + 0x10000000ull);
	uint64_t lo = s->day_start[d >= 7 ? d - 7 : 0], hi = s->day_start[d];
	if (hi <= lo)
		return;
	for (uint32_t i = 0; i < s->n_aud; i++) {
		uint32_t p = s->aud0 + i;
		uint32_t k = (uint32_t)rng_range(&r, 10, 30);
		for (uint32_t j = 0; j < k; j++)
			add_access(s, in_shift(s, &r, p, d), p,
				   (uint32_t)(lo + rng_below64(&r, hi - lo)), MOAT_PURPOSE_AUDIT,
				   PR_AUDIT);
	}
}

/* Each exporting merchant's first admin exports yesterday's orders the next morning. */
static void gen_exports(sim_t *s, int d)
{
	int slot = d % RECENT_DAYS;
	uint32_t n = (uint32_t)(s->day_start[d + 1] - s->day_start[d]);
	uint32_t *count = calloc(s->n_merchants + 1, sizeof *count);
	uint32_t *sorted = malloc(((size_t)n + 1) * sizeof *sorted);
	if (!count || !sorted) {
		s->oom = true;
		goto done;
	}
	for (uint32_t i = 0; i < n; i++)
		count[s->recent_merchant[slot][i] + 1]++;
	for (uint32_t m = 0; m < s->n_merchants; m++)
		count[m + 1] += count[m];
	for (uint32_t i = 0; i < n; i++)
		sorted[count[s->recent_merchant[slot][i]]++] = (uint32_t)s->day_start[d] + i;
	rng_t r;
	rng_seed(&r, s->seed, ST_DAY, (uint64_t)d * 2 + 1);
	uint32_t begin = 0;
	for (uint32_t m = 0; m < s->n_merchants; m++) {
		uint32_t end = count[m];
		if (s->merchants[m].exports && end > begin) {
			int64_t t = day_base(s, d + 1) + 9 * HOUR + rng_range(&r, 0, 59 * MIN);
			add_export(s, t, s->merchants[m].admin0, sorted + begin, end - begin,
				   MOAT_PURPOSE_SHIP, 0, -1);
		}
		begin = end;
	}
done:
	free(count);
	free(sorted);
}

/* ---- attacks ------------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static bool already_read(const attack_t *at, uint32_t order)
{
	return at->n_read &&
	       bsearch(&order, at->read, at->n_read, sizeof *at->read, cmp_u32) != NULL;
}

typedef enum cand_filter { CF_MERCHANT, CF_NOT_ISV, CF_ANY } cand_filter_t;

/* Orders placed in the last 30 days before `before` that the attack has not read
 * yet and that pass the filter. Caller frees *out. */
static uint32_t candidates(sim_t *s, const attack_t *at, int d, int64_t before, cand_filter_t f,
			   uint32_t **out)
{
	size_t cap = 0, n = 0;
	uint32_t *v = NULL;
	for (int k = d - 30; k <= d; k++) {
		if (k < 0)
			continue;
		int slot = k % RECENT_DAYS;
		uint32_t cnt = (uint32_t)(s->day_start[k + 1] - s->day_start[k]);
		for (uint32_t i = 0; i < cnt; i++) {
			if (s->recent_placed[slot][i] >= before)
				break;
			uint32_t m = s->recent_merchant[slot][i];
			uint32_t idx = (uint32_t)s->day_start[k] + i;
			bool ok = f == CF_ANY || (f == CF_MERCHANT && m == at->merchant) ||
				  (f == CF_NOT_ISV && s->merchants[m].isv != at->isv);
			if (!ok || already_read(at, idx))
				continue;
			uint32_t *nv = grow(v, &cap, n + 1, sizeof *v, &s->oom);
			if (!nv) {
				free(v);
				*out = NULL;
				return 0;
			}
			v = nv;
			v[n++] = idx;
		}
	}
	*out = v;
	return (uint32_t)n;
}

static void mark_read(sim_t *s, attack_t *at, const uint32_t *orders, uint32_t n)
{
	if (n == 0)
		return;
	uint32_t *v = grow(at->read, &at->cap_read, at->n_read + n, sizeof *v, &s->oom);
	if (!v)
		return;
	at->read = v;
	memcpy(v + at->n_read, orders, (size_t)n * sizeof *v);
	at->n_read += n;
	qsort(at->read, at->n_read, sizeof *at->read, cmp_u32);
}

/* Partial Fisher-Yates: the first k of v become a uniform random sample. */
static void sample(rng_t *r, uint32_t *v, uint32_t n, uint32_t k)
{
	for (uint32_t i = 0; i < k && i < n; i++) {
		uint32_t j = i + rng_below(r, n - i);
		uint32_t t = v[i];
		v[i] = v[j];
		v[j] = t;
	}
}

/* Reads `want` candidate orders at times t0, t0+gap, … (gap drawn in [g0, g1]). */
static void bulk_reads(sim_t *s, rng_t *r, int a, int d, int64_t t0, int64_t g0, int64_t g1,
		       uint32_t want, cand_filter_t f, moat_purpose_t purpose, profile_id_t prof,
		       uint8_t net)
{
	attack_t *at = &s->attacks[a];
	uint32_t *v;
	uint32_t n = candidates(s, at, d, t0, f, &v);
	if (want > n)
		want = n;
	sample(r, v, n, want);
	int64_t t = t0;
	for (uint32_t i = 0; i < want; i++) {
		t += rng_range(r, g0, g1);
		add_event(s, t, EV_ACCESS, at->principal, v[i], (uint8_t)purpose, (uint8_t)prof,
			  EF_MAL | EF_LEAK, (int8_t)a, net, 0);
	}
	mark_read(s, at, v, want);
	free(v);
}

static void run_attack_day(sim_t *s, int a, int d)
{
	attack_t *at = &s->attacks[a];
	if (at->kind == AK_COURIER_LEAK || d < at->day0 || d >= at->day0 + at->days)
		return;
	rng_t r;
	rng_seed(&r, s->seed, ST_ATTACK, (uint64_t)a * 100000 + (uint64_t)d);
	int64_t base = day_base(s, d);
	uint32_t per_day = (at->attempted + (uint32_t)at->days - 1) / (uint32_t)at->days;
	switch (at->kind) {
	case AK_CS_INSIDER: {
		/* From home, late at night: 23:00 to about 03:00. */
		int64_t t0 = base + 23 * HOUR + rng_range(&r, 0, 20 * MIN);
		add_event(s, t0 - rng_range(&r, MIN, 5 * MIN), EV_LOGIN, at->principal, 0, 0, 0,
			  EF_MAL, (int8_t)a, NET_PRIVATE, 0);
		int64_t gap = 4 * HOUR / (per_day ? per_day : 1);
		bulk_reads(s, &r, a, d, t0, gap / 2, gap * 3 / 2, per_day, CF_MERCHANT,
			   MOAT_PURPOSE_CUSTOMER_CARE, PR_FULL, NET_PRIVATE);
		break;
	}
	case AK_LOW_SLOW: {
		/* A few orders a day, in shift, each behind a pretext ticket the insider
		 * opens itself: every read has a workflow reason and the volume is that
		 * of an ordinary working day. Only the plaintext view gives it away. */
		uint32_t k = (uint32_t)rng_range(&r, 2, 6);
		for (uint32_t i = 0; i < k; i++) {
			int64_t t = in_shift(s, &r, at->principal, d);
			uint32_t *v;
			uint32_t n = candidates(s, at, d, t, CF_MERCHANT, &v);
			if (n) {
				uint32_t order = v[rng_below(&r, n)];
				out_ticket(s, order, at->principal, 9,
					   t - rng_range(&r, 30 * SEC, 10 * MIN),
					   t + rng_range(&r, 3 * MIN, 40 * MIN));
				add_event(s, t, EV_ACCESS, at->principal, order,
					  MOAT_PURPOSE_CUSTOMER_CARE, PR_FULL, EF_MAL | EF_LEAK,
					  (int8_t)a, NET_HOME, 0);
				mark_read(s, at, &order, 1);
			}
			free(v);
		}
		break;
	}
	case AK_PLATFORM_INSIDER: {
		const principal_t *pp = &s->pr[at->principal];
		int64_t t0 = base + (int64_t)pp->shift_start * MIN + rng_range(&r, 0, HOUR);
		int64_t gap = 10 * HOUR / (per_day ? per_day : 1);
		bulk_reads(s, &r, a, d, t0, gap / 2, gap * 3 / 2, per_day, CF_ANY,
			   MOAT_PURPOSE_CUSTOMER_CARE, PR_FULL, NET_HOME);
		break;
	}
	case AK_ISV_OVERPULL: {
		int64_t gap = 23 * HOUR / (per_day ? per_day : 1);
		bulk_reads(s, &r, a, d, base + rng_range(&r, 0, 30 * MIN), gap / 3, gap * 5 / 3,
			   per_day, CF_NOT_ISV, MOAT_PURPOSE_SHIP, PR_ISV, NET_HOME);
		break;
	}
	case AK_CRED_STUFFING: {
		/* 01:00-03:00: failures across many merchant logins from a few sources. */
		int64_t t = base + 1 * HOUR;
		int64_t gap = 2 * HOUR / (at->failures ? at->failures : 1);
		uint32_t n_admin_pr = 0;
		for (uint32_t i = 0; i < at->failures; i++) {
			t += rng_range(&r, gap / 2, gap * 3 / 2);
			uint16_t src = (uint16_t)rng_below(&r, N_ATTACKER_IPS);
			if (rng_chance(&r, 0.6)) {
				uint32_t m = rng_below(&r, s->n_merchants);
				uint32_t p = s->merchants[m].admin0;
				if (p == at->principal)
					p = s->merchants[(m + 1) % s->n_merchants].admin0;
				add_event(s, t, EV_LOGIN, p, 0, 0, 0, EF_MAL | EF_FAIL, (int8_t)a,
					  NET_ATTACKER, src);
				n_admin_pr++;
			} else {
				add_event(s, t, EV_LOGIN, UINT32_MAX, rng_below(&r, 400), 0, 0,
					  EF_MAL | EF_FAIL, (int8_t)a, NET_ATTACKER, src);
			}
		}
		/* the takeover: two wrong passwords, then the right one */
		t += rng_range(&r, MIN, 5 * MIN);
		for (int i = 0; i < 2; i++) {
			add_event(s, t, EV_LOGIN, at->principal, 0, 0, 0, EF_MAL | EF_FAIL,
				  (int8_t)a, NET_ATTACKER, 0);
			t += rng_range(&r, 3 * SEC, 20 * SEC);
		}
		add_event(s, t, EV_LOGIN, at->principal, 0, 0, 0, EF_MAL, (int8_t)a, NET_ATTACKER,
			  0);
		at->takeover_time = t;
		/* a look around, then everything of the last 30 days */
		bulk_reads(s, &r, a, d, t + MIN, 20 * SEC, 2 * MIN, (uint32_t)rng_range(&r, 5, 15),
			   CF_MERCHANT, MOAT_PURPOSE_AFTER_SALES, PR_ADMIN, NET_ATTACKER);
		uint32_t *v;
		uint32_t n = candidates(s, at, d, t, CF_MERCHANT, &v);
		if (n)
			add_export(s, t + rng_range(&r, 15 * MIN, 25 * MIN), at->principal, v, n,
				   MOAT_PURPOSE_ANALYTICS, EF_MAL | EF_LEAK, (int8_t)a);
		mark_read(s, at, v, n);
		free(v);
		break;
	}
	case AK_COURIER_LEAK:
		break;
	}
}

static uint32_t pick_unused_flagship(sim_t *s, rng_t *r, const bool *used_m)
{
	uint32_t start = rng_below(r, s->n_flagships);
	for (uint32_t k = 0; k < s->n_flagships; k++) {
		uint32_t m = (start + k) % s->n_flagships;
		if (!used_m[m])
			return m;
	}
	return start;
}

static void plan_attacks(sim_t *s, const scale_params_t *sp)
{
	static const attack_kind_t expand[MOAT_SIM_SCENARIO_COUNT][4] = {
	    [MOAT_SIM_CS_INSIDER] = {AK_CS_INSIDER},
	    [MOAT_SIM_ISV_OVERPULL] = {AK_ISV_OVERPULL},
	    [MOAT_SIM_COURIER_LEAK] = {AK_COURIER_LEAK},
	    [MOAT_SIM_CRED_STUFFING] = {AK_CRED_STUFFING},
	    [MOAT_SIM_LOW_SLOW] = {AK_LOW_SLOW},
	    [MOAT_SIM_PLATFORM_INSIDER] = {AK_PLATFORM_INSIDER},
	    [MOAT_SIM_TWO_LEAKERS] = {AK_CS_INSIDER, AK_COURIER_LEAK},
	    [MOAT_SIM_MIXED] = {AK_CS_INSIDER, AK_ISV_OVERPULL, AK_COURIER_LEAK, AK_CRED_STUFFING},
	};
	static const int expand_n[MOAT_SIM_SCENARIO_COUNT] = {1, 1, 1, 1, 1, 1, 2, 0, 4};
	bool *used_m = calloc(s->n_merchants, 1);
	bool *used_p = calloc(s->n_pr, 1);
	if (!used_m || !used_p) {
		s->oom = true;
		goto done;
	}
	int D = s->days;
	bool used_isv[16] = {false};
	for (int sc = 0; sc < MOAT_SIM_SCENARIO_COUNT; sc++) {
		if (!(s->cfg->scenarios & (1u << sc)))
			continue;
		for (int k = 0; k < expand_n[sc] && s->n_attacks < MAX_ATTACKS; k++) {
			int a = s->n_attacks++;
			attack_t *at = &s->attacks[a];
			memset(at, 0, sizeof *at);
			at->kind = expand[sc][k];
			at->scenario = sc;
			at->isv = -1;
			rng_t r;
			rng_seed(&r, s->seed, ST_ATTACK,
				 0xa77ac0000ull + (uint64_t)a * 64 + at->kind);
			at->day0 = (int)(D * 0.4) + (int)rng_below(&r, (uint32_t)(D / 5 + 1));
			switch (at->kind) {
			case AK_CS_INSIDER:
			case AK_LOW_SLOW: {
				at->merchant = pick_unused_flagship(s, &r, used_m);
				const merchant_t *m = &s->merchants[at->merchant];
				uint32_t p = m->cs0 + rng_below(&r, m->n_cs);
				for (uint32_t j = 0; j < m->n_cs && used_p[p]; j++)
					p = m->cs0 + (p - m->cs0 + 1) % m->n_cs;
				at->principal = p;
				if (at->kind == AK_CS_INSIDER) {
					at->days = 3;
					at->attempted = sp->bulk_cap;
				} else {
					at->day0 = (int)(D * 0.15);
					at->days = (int)(D * 0.7);
				}
				break;
			}
			case AK_PLATFORM_INSIDER: {
				uint32_t p = s->ops0 + rng_below(&r, s->n_ops);
				for (uint32_t j = 0; j < s->n_ops && used_p[p]; j++)
					p = s->ops0 + (p - s->ops0 + 1) % s->n_ops;
				at->principal = p;
				at->days = 4;
				at->attempted = sp->platform_cap;
				break;
			}
			case AK_ISV_OVERPULL: {
				int isv = (int)rng_below(&r, s->n_isv);
				for (uint32_t j = 0; j < s->n_isv && used_isv[isv]; j++)
					isv = (isv + 1) % (int)s->n_isv;
				used_isv[isv] = true;
				at->isv = isv;
				at->principal = s->isv_app[isv];
				at->days = 5;
				at->attempted = sp->isv_cap;
				break;
			}
			case AK_COURIER_LEAK: {
				/* a courier of the busiest (carrier, city) round */
				double share[16] = {0}, best = 0;
				uint32_t slot = 0;
				for (uint32_t mi = 0; mi < s->n_merchants; mi++)
					share[s->merchants[mi].carrier] +=
					    (double)(s->merchant_cum[mi] -
						     (mi ? s->merchant_cum[mi - 1] : 0));
				for (uint32_t c = 0; c < sim_n_carriers; c++)
					for (uint32_t ci = 0; ci < s->n_cities; ci++) {
						double w = share[c] * (double)s->city_weight[ci] /
							   s->n_courier[c * s->n_cities + ci];
						if (w > best) {
							best = w;
							slot = c * s->n_cities + ci;
						}
					}
				uint32_t p = s->courier0[slot] + rng_below(&r, s->n_courier[slot]);
				for (uint32_t j = 0; j < s->n_courier[slot] && used_p[p]; j++)
					p = s->courier0[slot] +
					    (p - s->courier0[slot] + 1) % s->n_courier[slot];
				at->principal = p;
				at->day0 = (int)(D * 0.2);
				at->days = (int)(D * 0.6);
				break;
			}
			case AK_CRED_STUFFING: {
				at->merchant = pick_unused_flagship(s, &r, used_m);
				const merchant_t *m = &s->merchants[at->merchant];
				at->principal = m->admin0 + rng_below(&r, m->n_admin);
				at->days = 1;
				at->failures = s->cfg->scale == MOAT_SIM_SMALL ? 120 : 3000;
				static const uint8_t nets[N_ATTACKER_IPS] = {45, 103, 185};
				for (int i = 0; i < N_ATTACKER_IPS; i++)
					at->attacker_ip[i] =
					    ((uint32_t)nets[i] << 24) | (rng_below(&r, 1u << 24));
				break;
			}
			}
			at->from = day_base(s, at->day0);
			at->until = day_base(s, at->day0 + at->days);
			if (at->kind == AK_CS_INSIDER || at->kind == AK_LOW_SLOW ||
			    at->kind == AK_CRED_STUFFING)
				used_m[at->merchant] = true;
			used_p[at->principal] = true;
			s->pr[at->principal].attack = (int8_t)a;
		}
	}
done:
	free(used_m);
	free(used_p);
}

/* ---- victims, reports, calls ------------------------------------------------------------- */

static int cmp_receipt(const void *a, const void *b)
{
	const receipt_t *x = a, *y = b;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return x->time < y->time ? -1 : x->time > y->time;
}

/* Distinct orders of an attack's receipts, keeping each order's first receipt.
 * Sorts and compacts at->rc in place. */
static void dedupe_receipts(attack_t *at)
{
	if (at->n_rc == 0)
		return;
	qsort(at->rc, at->n_rc, sizeof *at->rc, cmp_receipt);
	size_t n = 0;
	for (size_t i = 0; i < at->n_rc; i++)
		if (n == 0 || at->rc[n - 1].order != at->rc[i].order)
			at->rc[n++] = at->rc[i];
	at->n_rc = n;
}

static void fmt_number(char *out, size_t cap, const char *prefix, uint64_t h)
{
	uint32_t x = (uint32_t)(h % 100000000u);
	snprintf(out, cap, "+86 %s %04u %04u", prefix, x / 10000, x % 10000);
}

/* The per-(order, recipient) virtual number and extension. */
static void virtual_number(const sim_t *s, uint32_t order, uint32_t p, char num[24], char ext[8])
{
	uint64_t h = mix3(s->seed ^ 0x71a7, order, p);
	fmt_number(num, 24, (h >> 40) & 1 ? "171" : "170", h);
	snprintf(ext, 8, "%04u", (uint32_t)((h >> 44) % 10000));
}

/* Scammer contact k of an attack (or of the background, attack = -1). */
static void scammer_contact(const sim_t *s, int attack, uint32_t k, uint8_t channel, char *out,
			    size_t cap)
{
	uint64_t h = mix3(s->seed ^ 0x5ca3, (uint64_t)(attack + 1), k);
	if (channel == 1 && (h >> 60) % 2 == 0)
		snprintf(out, cap, "https://%s/r/%06x",
			 sim_scam_domains[(h >> 50) % sim_n_scam_domains],
			 (unsigned)(h & 0xffffff));
	else if (channel == 2)
		snprintf(out, cap, "wechat:kf_%06x", (unsigned)(h & 0xffffff));
	else
		fmt_number(out, cap, sim_mobile_prefixes[(h >> 48) % sim_n_mobile_prefixes], h);
}

/* Scammers call in the daytime: moves t forward into 09:00-21:00 local. */
static int64_t daytime(const sim_t *s, rng_t *r, int64_t t)
{
	int64_t tod = (t - s->start) % DAY;
	if (tod >= 9 * HOUR && tod < 21 * HOUR)
		return t;
	int64_t next9 = t - tod + 9 * HOUR + (tod >= 21 * HOUR ? DAY : 0);
	return next9 + rng_range(r, 0, 3 * HOUR);
}

static uint64_t draw_loss(rng_t *r)
{
	if (!rng_chance(r, 0.3))
		return 0;
	/* log-uniform between 200 yuan and 80,000 yuan */
	double x = 20000.0 * exp(rng_unit(r) * log(400.0));
	return (uint64_t)x / 100 * 100;
}

static void add_report(sim_t *s, report_t **v, size_t *n, size_t *cap, report_t rep)
{
	report_t *nv = grow(*v, cap, *n + 1, sizeof **v, &s->oom);
	if (!nv)
		return;
	*v = nv;
	nv[(*n)++] = rep;
}

static void gen_victims(sim_t *s, const scale_params_t *sp, int a, report_t **v, size_t *n,
			size_t *cap)
{
	attack_t *at = &s->attacks[a];
	dedupe_receipts(at);
	if (at->n_rc == 0)
		return;
	rng_t r;
	rng_seed(&r, s->seed, ST_VICTIM, (uint64_t)a);
	double share = (at->kind == AK_COURIER_LEAK || at->kind == AK_LOW_SLOW) ? 0.25 : 0.1;
	uint32_t want = (uint32_t)(at->n_rc * share + 0.5);
	uint32_t floor = at->n_rc < 10 ? (uint32_t)at->n_rc : 10;
	if (want < floor)
		want = floor;
	if (want > sp->victims_max)
		want = sp->victims_max;
	uint32_t *pick = malloc(at->n_rc * sizeof *pick);
	if (!pick) {
		s->oom = true;
		return;
	}
	for (uint32_t i = 0; i < at->n_rc; i++)
		pick[i] = i;
	sample(&r, pick, (uint32_t)at->n_rc, want);
	qsort(pick, want, sizeof *pick, cmp_u32);
	for (uint32_t i = 0; i < want; i++) {
		const receipt_t *rc = &at->rc[pick[i]];
		const uint8_t *views = s->profiles[rc->profile].views;
		report_t rep = {0};
		rep.order = rc->order;
		rep.attack = (int8_t)a;
		rep.label = 0;
		double delay = -log(1.0 - rng_unit(&r)) * 1.5 * DAY;
		if (delay > 12.0 * DAY)
			delay = 12.0 * DAY;
		rep.contact = daytime(s, &r, rc->time + 2 * HOUR + (int64_t)delay);
		bool phone_full = views[MOAT_FIELD_PHONE] == MOAT_VIEW_FULL;
		if (phone_full) {
			uint32_t c = rng_below(&r, 20);
			rep.channel = c < 10 ? 0 : c < 17 ? 1 : 2;
		} else {
			rep.channel = 0;
			rep.via_virtual = views[MOAT_FIELD_PHONE] == MOAT_VIEW_VIRTUAL;
		}
		static const struct {
			moat_field_t f;
			double p;
		} quote_p[] = {{MOAT_FIELD_NAME, 0.85},
			       {MOAT_FIELD_ITEMS, 0.75},
			       {MOAT_FIELD_ADDRESS, 0.5},
			       {MOAT_FIELD_WAYBILL, 0.6},
			       {MOAT_FIELD_AMOUNTS, 0.2}};
		for (size_t q = 0; q < MOAT_ARRAY_LEN(quote_p); q++)
			if (views[quote_p[q].f] == MOAT_VIEW_FULL && rng_chance(&r, quote_p[q].p))
				rep.quoted |= (uint8_t)(1u << quote_p[q].f);
		if (phone_full && rep.channel != 2)
			rep.quoted |= F_PHONE;
		if (!rep.quoted)
			for (int f = 0; f < MOAT_FIELD_COUNT && !rep.quoted; f++)
				if (views[f] == MOAT_VIEW_FULL && f != MOAT_FIELD_PHONE)
					rep.quoted = (uint8_t)(1u << f);
		rep.reported = i < 5 || rng_chance(&r, 0.55);
		rep.loss = draw_loss(&r);
		/* The crew that bought the data works it with a handful of numbers (and
		 * links, chat accounts), switching every few days as numbers get
		 * reported and blocked; the old one stays in use for a while. */
		(void)rng_below(&r, 4); /* the draw that once picked the number: keeps
					 * every later victim as it was */
		int64_t since = rep.contact > at->from ? rep.contact - at->from : 0;
		rep.scammer = (uint32_t)(since / (3 * DAY));
		/* (drawn from its own hash, so the rest of the victim stream, and every
		 * report time, stays as it was before crews rotated numbers) */
		if (rep.scammer > 0 && mix3(s->seed ^ 0xc4e3, (uint64_t)a, i) % 5 == 0)
			rep.scammer--;
		add_report(s, v, n, cap, rep);
	}
	free(pick);
}

static bool in_leaked(const sim_t *s, uint32_t order)
{
	for (int a = 0; a < s->n_attacks; a++) {
		const attack_t *at = &s->attacks[a];
		size_t lo = 0, hi = at->n_rc;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (at->rc[mid].order == order)
				return true;
			if (at->rc[mid].order < order)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	return false;
}

static int day_of_order(const sim_t *s, uint32_t idx)
{
	int lo = 0, hi = s->days - 1;
	while (lo < hi) {
		int mid = (lo + hi + 1) / 2;
		if (s->day_start[mid] <= idx)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* False reports (a mistaken buyer, an ordinary cold call) and reports of scams fed
 * from somewhere else (data bought elsewhere: only name and phone). */
static void gen_noise(sim_t *s, const scale_params_t *sp, uint32_t genuine, report_t **v, size_t *n,
		      size_t *cap)
{
	rng_t r;
	rng_seed(&r, s->seed, ST_NOISE, 0);
	uint32_t want = s->n_attacks == 0 ? sp->noise_clean : genuine / 4 > 3 ? genuine / 4 : 3;
	for (uint32_t i = 0; i < want; i++) {
		uint32_t order;
		int guard = 0;
		do
			order = (uint32_t)rng_below64(&r, s->n_orders);
		while (in_leaked(s, order) && ++guard < 100);
		report_t rep = {0};
		rep.order = order;
		rep.attack = -1;
		rep.reported = true;
		rep.contact = daytime(
		    s, &r, day_base(s, day_of_order(s, order) + 1) + rng_range(&r, 0, 20 * DAY));
		if (rng_chance(&r, 0.6)) {
			rep.label = 1;
			rep.channel = (uint8_t)rng_below(&r, 3);
			static const uint8_t sets[] = {F_NAME, 1u << MOAT_FIELD_ITEMS,
						       F_NAME | (1u << MOAT_FIELD_ITEMS),
						       1u << MOAT_FIELD_ADDRESS, F_NAME | F_PHONE};
			rep.quoted = sets[rng_below(&r, MOAT_ARRAY_LEN(sets))];
			rep.scammer = 1000 + i; /* a cold call: its own number */
		} else {
			/* Data bought elsewhere, worked by one of two background crews that
			 * reuse their numbers like any crew (a shared number here must not
			 * accuse anyone). */
			rep.label = 2;
			rep.channel = (uint8_t)rng_below(&r, 2);
			rep.quoted = F_NAME | F_PHONE;
			rep.scammer = 100 + 100 * (uint32_t)(mix3(s->seed ^ 0xb9c7, i, 0) & 1) +
				      (uint32_t)((rep.contact - s->start) / (3 * DAY));
		}
		rep.loss = draw_loss(&r);
		add_report(s, v, n, cap, rep);
	}
}

static int cmp_report(const void *a, const void *b)
{
	const report_t *x = a, *y = b;
	if (x->contact != y->contact)
		return x->contact < y->contact ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static const char *const channel_names[] = {"call", "sms", "chat"};

static moat_err_t write_reports_calls(sim_t *s, report_t *v, size_t n, moat_error_t *err)
{
	out_t orp, oc;
	moat_err_t rc = out_open(&orp, s->cfg->out_dir, "reports.jsonl", err);
	if (rc != MOAT_OK) {
		(void)out_close(&orp, NULL);
		return rc;
	}
	rc = out_open(&oc, s->cfg->out_dir, "calls.jsonl", err);
	if (rc != MOAT_OK)
		goto fail;
	if (n)
		qsort(v, n, sizeof *v, cmp_report);
	uint32_t seq = 0;
	char buf[96], ext[8];
	for (size_t i = 0; i < n; i++) {
		report_t *rep = &v[i];
		uint8_t channel = rep->channel;
		scammer_contact(s, rep->attack, rep->scammer, channel, buf, sizeof buf);
		if (rep->via_virtual) {
			char num[24];
			const attack_t *at = &s->attacks[rep->attack];
			virtual_number(s, rep->order, at->principal, num, ext);
			out_lit(&oc, "{");
			out_kv_time(&oc, "time", rep->contact);
			out_lit(&oc, ",\"from\":\"");
			out_str(&oc, buf);
			out_lit(&oc, "\",\"to\":\"");
			out_str(&oc, num);
			out_lit(&oc, "\",\"extension\":\"");
			out_str(&oc, ext);
			out_lit(&oc, "\"}\n");
			s->st.calls++;
		}
		if (!rep->reported)
			continue;
		snprintf(rep->report_id, sizeof rep->report_id, "R%06u", ++seq);
		out_lit(&orp, "{\"report_id\":\"");
		out_str(&orp, rep->report_id);
		out_lit(&orp, "\",\"order_id\":\"");
		out_order_id(&orp, s, rep->order);
		out_lit(&orp, "\",");
		out_kv_time(&orp, "contact_time", rep->contact);
		out_lit(&orp, ",\"channel\":\"");
		out_str(&orp, channel_names[channel]);
		out_lit(&orp, "\",\"quoted_fields\":[");
		bool first = true;
		for (int f = 0; f < MOAT_FIELD_COUNT; f++)
			if (rep->quoted & (1u << f)) {
				out_str(&orp, first ? "\"" : ",\"");
				out_str(&orp, moat_field_name((moat_field_t)f));
				out_ch(&orp, '"');
				first = false;
			}
		out_lit(&orp, "],\"scammer_contact\":\"");
		out_str(&orp, buf);
		out_lit(&orp, "\",\"loss_cents\":");
		out_u64(&orp, rep->loss);
		out_lit(&orp, "}\n");
		s->st.reports++;
	}
	s->st.bytes += orp.total + orp.len + oc.total + oc.len;
	rc = out_close(&oc, err);
	moat_err_t rc2 = out_close(&orp, err);
	return rc != MOAT_OK ? rc : rc2;
fail:
	(void)out_close(&oc, NULL);
	(void)out_close(&orp, NULL);
	return rc;
}

/* ---- ground truth ---------------------------------------------------------------------- */

static json_t *jtime(int64_t t)
{
	char buf[40];
	int64_t cd = INT64_MIN;
	char date[12];
	size_t n = fmt_time(buf, t, &cd, date);
	buf[n] = '\0';
	return json_string(buf);
}

static json_t *jorder(const sim_t *s, uint32_t idx)
{
	char buf[16];
	fmt_order_id(s, idx, buf);
	return json_string(buf);
}

static json_t *jfields(uint8_t mask)
{
	json_t *a = json_array();
	for (int f = 0; f < MOAT_FIELD_COUNT; f++)
		if (mask & (1u << f))
			json_array_append_new(a, json_string(moat_field_name((moat_field_t)f)));
	return a;
}

static moat_err_t write_truth(sim_t *s, const report_t *v, size_t n, moat_error_t *err)
{
	char buf[96], ext[8];
	json_t *root = json_object();
	json_object_set_new(root, "version", json_integer(1));
	json_object_set_new(root, "seed", json_integer((json_int_t)s->seed));
	json_object_set_new(root, "scale", json_string(moat_sim_scale_name(s->cfg->scale)));
	json_t *scs = json_array();
	for (int i = 0; i < MOAT_SIM_SCENARIO_COUNT; i++)
		if (s->cfg->scenarios & (1u << i))
			json_array_append_new(scs, json_string(scenario_names[i]));
	if (json_array_size(scs) == 0)
		json_array_append_new(scs, json_string("clean"));
	json_object_set_new(root, "scenarios", scs);
	json_t *period = json_object();
	json_object_set_new(period, "from", jtime(s->start));
	json_object_set_new(period, "until", jtime(s->end));
	json_object_set_new(root, "period", period);
	json_t *st = json_object();
	json_object_set_new(st, "parties", json_integer((json_int_t)s->st.parties));
	json_object_set_new(st, "principals", json_integer((json_int_t)s->st.principals));
	json_object_set_new(st, "relations", json_integer((json_int_t)s->st.relations));
	json_object_set_new(st, "orders", json_integer((json_int_t)s->st.orders));
	json_object_set_new(st, "events", json_integer((json_int_t)s->event_index));
	json_object_set_new(st, "access_events", json_integer((json_int_t)s->st.access_events));
	json_object_set_new(st, "login_events", json_integer((json_int_t)s->st.login_events));
	json_object_set_new(st, "export_events", json_integer((json_int_t)s->st.export_events));
	json_object_set_new(st, "reports", json_integer((json_int_t)s->st.reports));
	json_object_set_new(st, "calls", json_integer((json_int_t)s->st.calls));
	json_object_set_new(st, "principal_days", json_integer((json_int_t)s->principal_days));
	json_object_set_new(root, "stats", st);

	json_t *attacks = json_array(), *malicious = json_array(), *vnums = json_array();
	for (int a = 0; a < s->n_attacks; a++) {
		const attack_t *at = &s->attacks[a];
		const principal_t *pp = &s->pr[at->principal];
		json_t *o = json_object();
		snprintf(buf, sizeof buf, "A%d", a + 1);
		json_object_set_new(o, "id", json_string(buf));
		json_object_set_new(o, "scenario", json_string(scenario_names[at->scenario]));
		json_object_set_new(o, "kind", json_string(attack_kind_names[at->kind]));
		json_object_set_new(o, "principal", json_string(pp->id));
		json_object_set_new(o, "party", json_string(s->parties[pp->party].id));
		json_object_set_new(o, "role", json_string(moat_role_name((moat_role_t)pp->role)));
		json_object_set_new(o, "compromised", json_boolean(at->kind == AK_CRED_STUFFING));
		json_object_set_new(o, "abnormal_activity",
				    json_boolean(at->kind != AK_COURIER_LEAK));
		if (at->kind == AK_CS_INSIDER || at->kind == AK_LOW_SLOW ||
		    at->kind == AK_CRED_STUFFING)
			json_object_set_new(
			    o, "target_merchant",
			    json_string(s->parties[s->merchants[at->merchant].party].id));
		json_t *win = json_object();
		bool actual = at->started && at->kind != AK_COURIER_LEAK;
		json_object_set_new(win, "from", jtime(actual ? at->first_time : at->from));
		json_object_set_new(win, "until", jtime(actual ? at->last_time + 1 : at->until));
		json_object_set_new(o, "window", win);
		json_object_set_new(o, "first_event_index",
				    at->started ? json_integer((json_int_t)at->first_index)
						: json_null());
		json_object_set_new(o, "first_event_time",
				    at->started ? jtime(at->first_time) : json_null());
		json_object_set_new(o, "malicious_events",
				    json_integer((json_int_t)at->mal_events));
		json_t *ixs = json_array();
		for (size_t i = 0; i < at->n_mal; i++)
			json_array_append_new(ixs, json_integer((json_int_t)at->mal_index[i]));
		json_object_set_new(o, "event_indexes", ixs);
		json_object_set_new(
		    o, "attempted_orders",
		    json_integer(
			(json_int_t)(at->kind == AK_COURIER_LEAK ? at->n_rc : at->n_read)));
		uint8_t full = 0, plain = 0;
		for (size_t i = 0; i < at->n_rc; i++)
			for (int f = 0; f < MOAT_FIELD_COUNT; f++) {
				uint8_t vw = s->profiles[at->rc[i].profile].views[f];
				if (vw == MOAT_VIEW_FULL)
					full |= (uint8_t)(1u << f);
				if (vw == MOAT_VIEW_FULL || vw == MOAT_VIEW_VIRTUAL)
					plain |= (uint8_t)(1u << f);
			}
		json_object_set_new(o, "full_fields", jfields(full));
		json_object_set_new(o, "plaintext_fields", jfields(plain));
		if (at->kind == AK_CRED_STUFFING) {
			json_t *src = json_object(), *ips = json_array();
			for (int i = 0; i < N_ATTACKER_IPS; i++) {
				fmt_ip(buf, at->attacker_ip[i]);
				json_array_append_new(ips, json_string(buf));
			}
			json_object_set_new(src, "ips", ips);
			json_object_set_new(src, "failed_logins", json_integer(at->failures + 2));
			json_object_set_new(src, "takeover_time", jtime(at->takeover_time));
			json_object_set_new(o, "attacker", src);
		}
		json_t *leaked = json_array();
		for (size_t i = 0; i < at->n_rc; i++)
			json_array_append_new(leaked, jorder(s, at->rc[i].order));
		json_object_set_new(o, "leaked_orders", leaked);
		json_t *victims = json_array();
		for (size_t i = 0; i < n; i++) {
			const report_t *rep = &v[i];
			if (rep->attack != a)
				continue;
			json_t *vo = json_object();
			json_object_set_new(vo, "order_id", jorder(s, rep->order));
			json_object_set_new(vo, "contact_time", jtime(rep->contact));
			json_object_set_new(vo, "channel",
					    json_string(channel_names[rep->channel]));
			json_object_set_new(vo, "quoted_fields", jfields(rep->quoted));
			json_object_set_new(vo, "reported", json_boolean(rep->reported));
			json_object_set_new(vo, "report_id",
					    rep->reported ? json_string(rep->report_id)
							  : json_null());
			if (rep->via_virtual) {
				char num[24];
				virtual_number(s, rep->order, at->principal, num, ext);
				json_object_set_new(vo, "virtual_number", json_string(num));
				json_t *vn = json_object();
				json_object_set_new(vn, "number", json_string(num));
				json_object_set_new(vn, "extension", json_string(ext));
				json_object_set_new(vn, "order_id", jorder(s, rep->order));
				json_object_set_new(vn, "principal", json_string(pp->id));
				json_array_append_new(vnums, vn);
			}
			json_array_append_new(victims, vo);
		}
		json_object_set_new(o, "victims", victims);
		json_array_append_new(attacks, o);
		if (at->kind != AK_COURIER_LEAK && at->started) {
			json_t *m = json_object();
			json_object_set_new(m, "principal", json_string(pp->id));
			snprintf(buf, sizeof buf, "A%d", a + 1);
			json_object_set_new(m, "attack", json_string(buf));
			json_object_set_new(m, "from",
					    jtime(at->kind == AK_CRED_STUFFING ? at->takeover_time
									       : at->first_time));
			json_object_set_new(m, "until", jtime(at->last_time + 1));
			json_object_set_new(m, "events", json_integer((json_int_t)at->mal_events));
			json_array_append_new(malicious, m);
		}
	}
	json_object_set_new(root, "attacks", attacks);
	json_object_set_new(root, "malicious_principals", malicious);
	json_object_set_new(root, "virtual_numbers", vnums);
	json_t *reps = json_array();
	static const char *const labels[] = {"genuine", "false", "unrelated"};
	for (size_t i = 0; i < n; i++) {
		const report_t *rep = &v[i];
		if (!rep->reported)
			continue;
		json_t *o = json_object();
		json_object_set_new(o, "report_id", json_string(rep->report_id));
		json_object_set_new(o, "order_id", jorder(s, rep->order));
		json_object_set_new(o, "label", json_string(labels[rep->label]));
		if (rep->attack >= 0) {
			snprintf(buf, sizeof buf, "A%d", rep->attack + 1);
			json_object_set_new(o, "attack", json_string(buf));
			json_object_set_new(
			    o, "leaker", json_string(s->pr[s->attacks[rep->attack].principal].id));
		} else {
			json_object_set_new(o, "attack", json_null());
			json_object_set_new(o, "leaker", json_null());
		}
		json_array_append_new(reps, o);
	}
	json_object_set_new(root, "reports", reps);

	char path[512];
	moat_err_t rc = MOAT_OK;
	if (moat_path_join(path, sizeof path, s->cfg->out_dir, "truth.json") != MOAT_OK) {
		rc = moat_error_set(err, MOAT_ELIMIT, "out", "output path too long");
	} else {
		char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
		if (!text) {
			rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		} else {
			FILE *f = fopen(path, "wb");
			size_t len = strlen(text);
			if (!f || fwrite(text, 1, len, f) != len || fputc('\n', f) == EOF)
				rc =
				    moat_error_set(err, MOAT_EIO, "out", "writing %s failed", path);
			if (f && fclose(f) != 0 && rc == MOAT_OK)
				rc =
				    moat_error_set(err, MOAT_EIO, "out", "writing %s failed", path);
			s->st.bytes += len + 1;
			free(text);
		}
	}
	json_decref(root);
	return rc;
}

/* ---- the run ---------------------------------------------------------------------------- */

static moat_err_t write_world(sim_t *s, moat_error_t *err)
{
	out_t o;
	moat_err_t rc = out_open(&o, s->cfg->out_dir, "parties.jsonl", err);
	for (uint32_t i = 0; rc == MOAT_OK && i < s->n_parties; i++) {
		out_lit(&o, "{\"party\":\"");
		out_str(&o, s->parties[i].id);
		out_lit(&o, "\",\"kind\":\"");
		out_str(&o, moat_party_kind_name((moat_party_kind_t)s->parties[i].kind));
		out_lit(&o, "\",\"name\":\"");
		out_str(&o, s->parties[i].name);
		out_lit(&o, "\"}\n");
		s->st.parties++;
	}
	s->st.bytes += o.total + o.len;
	moat_err_t rc2 = out_close(&o, err);
	if (rc != MOAT_OK || rc2 != MOAT_OK)
		return rc != MOAT_OK ? rc : rc2;
	rc = out_open(&o, s->cfg->out_dir, "principals.jsonl", err);
	char shift[16];
	for (uint32_t i = 0; rc == MOAT_OK && i < s->n_pr; i++) {
		const principal_t *p = &s->pr[i];
		out_lit(&o, "{\"principal\":\"");
		out_str(&o, p->id);
		out_lit(&o, "\",\"party\":\"");
		out_str(&o, s->parties[p->party].id);
		out_lit(&o, "\",\"role\":\"");
		out_str(&o, moat_role_name((moat_role_t)p->role));
		out_lit(&o, "\",\"name\":\"");
		out_str(&o, p->name);
		out_ch(&o, '"');
		if (shift_of(p, shift)) {
			out_lit(&o, ",\"shift\":\"");
			out_str(&o, shift);
			out_ch(&o, '"');
		}
		out_lit(&o, "}\n");
		s->st.principals++;
	}
	s->st.bytes += o.total + o.len;
	rc2 = out_close(&o, err);
	return rc != MOAT_OK ? rc : rc2;
}

/* Orders per day: weekends busier, one sale day at 70% of the period. The counts
 * add up to exactly n_orders. */
static bool plan_days(sim_t *s)
{
	s->day_start = calloc((size_t)s->days + 1, sizeof *s->day_start);
	double *w = calloc((size_t)s->days, sizeof *w);
	if (!s->day_start || !w) {
		free(w);
		return false;
	}
	double total = 0;
	int64_t first = (s->start + TZ_OFFSET) / DAY;
	for (int d = 0; d < s->days; d++) {
		int dow = (int)((first + d + 4) % 7); /* 0 = Sunday */
		w[d] = (dow == 0 || dow == 6) ? 1.15 : 1.0;
		if (d == (int)(s->days * 0.7))
			w[d] = 2.5;
		total += w[d];
	}
	s->day_prefix = calloc((size_t)s->days, sizeof *s->day_prefix);
	if (!s->day_prefix) {
		free(w);
		return false;
	}
	uint64_t acc = 0;
	for (int d = 0; d < s->days; d++) {
		int y, m, dd;
		civil_from_days(first + d, &y, &m, &dd);
		s->day_prefix[d][0] = 'O';
		put_digits(s->day_prefix[d] + 1, (uint64_t)(y % 100), 2);
		put_digits(s->day_prefix[d] + 3, (uint64_t)m, 2);
		put_digits(s->day_prefix[d] + 5, (uint64_t)dd, 2);
		s->day_start[d] = acc;
		acc += (uint64_t)((double)s->n_orders * w[d] / total);
	}
	/* rounding remainder goes to the last day */
	s->day_start[s->days] = s->n_orders;
	free(w);
	return true;
}

/* Placement time-of-day profile (relative weight per local hour). */
static const uint8_t hour_weight[24] = {4,  2,	1,  1,	1,  1, 2, 4,  6,  8,  10, 10,
					10, 10, 10, 10, 10, 8, 8, 10, 14, 16, 14, 8};

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static bool prepare_day(sim_t *s, int d)
{
	int slot = d % RECENT_DAYS;
	size_t n = (size_t)(s->day_start[d + 1] - s->day_start[d]);
	if (n + 1 > s->recent_cap[slot]) {
		uint32_t *m = realloc(s->recent_merchant[slot], (n + 1) * sizeof *m);
		if (m)
			s->recent_merchant[slot] = m;
		int64_t *p = realloc(s->recent_placed[slot], (n + 1) * sizeof *p);
		if (p)
			s->recent_placed[slot] = p;
		if (!m || !p)
			return false;
		s->recent_cap[slot] = n + 1;
	}
	rng_t r;
	rng_seed(&r, s->seed, ST_DAY, (uint64_t)d * 2);
	uint64_t hcum[24], acc = 0;
	for (int h = 0; h < 24; h++)
		hcum[h] = acc += hour_weight[h];
	int64_t base = day_base(s, d);
	for (size_t i = 0; i < n; i++) {
		uint32_t h = pick_cum(&r, hcum, 24);
		s->recent_placed[slot][i] =
		    base + h * HOUR + rng_range(&r, 0, HOUR / SEC - 1) * SEC;
	}
	qsort(s->recent_placed[slot], n, sizeof(int64_t), cmp_i64);
	for (size_t i = 0; i < n; i++)
		s->recent_merchant[slot][i] = pick_cum(&r, s->merchant_cum, s->n_merchants);
	return true;
}

static void sim_free(sim_t *s)
{
	if (!s)
		return;
	free(s->parties);
	free(s->pr);
	free(s->merchants);
	free(s->merchant_cum);
	free(s->courier0);
	free(s->n_courier);
	free(s->day_start);
	free(s->day_prefix);
	free(s->order_buf);
	free(s->order_tmp);
	for (int i = 0; i < RING_DAYS; i++)
		free(s->ring[i].ev);
	for (int i = 0; i < RECENT_DAYS; i++) {
		free(s->recent_merchant[i]);
		free(s->recent_placed[i]);
	}
	for (size_t i = 0; i < s->n_payloads; i++)
		free(s->payloads[i].orders);
	free(s->payloads);
	for (int a = 0; a < s->n_attacks; a++) {
		free(s->attacks[a].rc);
		free(s->attacks[a].read);
		free(s->attacks[a].mal_index);
	}
	free(s);
}

moat_err_t moat_sim_run(const moat_sim_config_t *cfg, moat_sim_stats_t *stats, moat_error_t *err)
{
	if (!cfg || !cfg->out_dir || !*cfg->out_dir)
		return moat_error_set(err, MOAT_EUSAGE, "out", "an output directory is required");
	if (cfg->scale < 0 || cfg->scale >= MOAT_SIM_SCALE_COUNT)
		return moat_error_set(err, MOAT_EUSAGE, "scale", "unknown scale");
	if (cfg->scenarios >> MOAT_SIM_SCENARIO_COUNT)
		return moat_error_set(err, MOAT_EUSAGE, "scenario", "unknown scenario bit");
	if (cfg->days && (cfg->days < 14 || cfg->days > 730))
		return moat_error_set(err, MOAT_EUSAGE, "days",
				      "the period must be 14 to 730 days");
	if (cfg->orders > 100000000ull)
		return moat_error_set(err, MOAT_EUSAGE, "orders", "at most 100,000,000 orders");
	scale_params_t sp = scale_table[cfg->scale];
	if (cfg->orders)
		sp.orders = cfg->orders;
	if (cfg->days)
		sp.days = cfg->days;
	if (sp.orders < (uint64_t)sp.days * 10)
		return moat_error_set(err, MOAT_EUSAGE, "orders",
				      "at least 10 orders per day are needed");

	moat_err_t rc = moat_mkdirs(cfg->out_dir, 0755, err);
	if (rc != MOAT_OK)
		return rc;
	sim_t *s = calloc(1, sizeof *s);
	report_t *reps = NULL;
	size_t n_reps = 0, cap_reps = 0;
	if (!s)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	s->cfg = cfg;
	s->seed = cfg->seed;
	s->days = sp.days;
	s->n_orders = sp.orders;
	s->end = period_end_ms();
	s->start = s->end - (int64_t)s->days * DAY;
	s->last_event_time = INT64_MIN;
	build_world(s, &sp);
	if (s->oom || !plan_days(s))
		goto oom;
	plan_attacks(s, &sp);
	if (s->oom)
		goto oom;
	if ((rc = write_world(s, err)) != MOAT_OK)
		goto fail;
	if ((rc = out_open(&s->out_orders, cfg->out_dir, "orders.jsonl", err)) != MOAT_OK ||
	    (rc = out_open(&s->out_rel, cfg->out_dir, "relations.jsonl", err)) != MOAT_OK ||
	    (rc = out_open(&s->out_events, cfg->out_dir, "events.jsonl", err)) != MOAT_OK)
		goto fail;
	for (uint32_t i = 0; i < s->n_merchants; i++) {
		const merchant_t *m = &s->merchants[i];
		if (m->isv < 0)
			continue;
		out_t *o = &s->out_rel;
		out_lit(o, "{\"kind\":\"authorize\",\"merchant\":\"");
		out_str(o, s->parties[m->party].id);
		out_lit(o, "\",\"principal\":\"");
		out_str(o, s->pr[s->isv_app[m->isv]].id);
		out_lit(o, "\",");
		out_kv_time(o, "from", s->start - 90 * DAY);
		out_ch(o, ',');
		out_kv_time(o, "until", s->end + 365 * DAY);
		out_lit(o, "}\n");
		s->st.relations++;
	}
	for (int d = 0; d < s->days; d++) {
		if (!prepare_day(s, d))
			goto oom;
		int slot = d % RECENT_DAYS;
		uint32_t n = (uint32_t)(s->day_start[d + 1] - s->day_start[d]);
		for (uint32_t i = 0; i < n; i++)
			gen_order(s, (uint32_t)s->day_start[d] + i, s->recent_placed[slot][i],
				  s->recent_merchant[slot][i]);
		gen_logins(s, d);
		gen_exports(s, d);
		gen_audits(s, d);
		for (int a = 0; a < s->n_attacks; a++)
			run_attack_day(s, a, d);
		flush_day(s, d);
		if (s->oom)
			goto oom;
		if (s->out_events.failed || s->out_orders.failed || s->out_rel.failed)
			break; /* reported by out_close below */
	}
	s->st.bytes += s->out_orders.total + s->out_orders.len + s->out_rel.total + s->out_rel.len +
		       s->out_events.total + s->out_events.len;
	if ((rc = out_close(&s->out_orders, err)) != MOAT_OK ||
	    (rc = out_close(&s->out_rel, err)) != MOAT_OK ||
	    (rc = out_close(&s->out_events, err)) != MOAT_OK)
		goto fail;

	uint32_t genuine = 0;
	for (int a = 0; a < s->n_attacks; a++)
		gen_victims(s, &sp, a, &reps, &n_reps, &cap_reps);
	for (size_t i = 0; i < n_reps; i++)
		genuine += reps[i].reported;
	gen_noise(s, &sp, genuine, &reps, &n_reps, &cap_reps);
	if (s->oom)
		goto oom;
	if ((rc = write_reports_calls(s, reps, n_reps, err)) != MOAT_OK)
		goto fail;
	if ((rc = write_truth(s, reps, n_reps, err)) != MOAT_OK)
		goto fail;
	if (stats)
		*stats = s->st;
	free(reps);
	sim_free(s);
	return MOAT_OK;
oom:
	rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
fail:
	(void)out_close(&s->out_orders, NULL);
	(void)out_close(&s->out_rel, NULL);
	(void)out_close(&s->out_events, NULL);
	free(reps);
	sim_free(s);
	return rc;
}
