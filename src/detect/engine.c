/*
 * The detector engine: features and rules over a stream of ledger entries.
 *
 * Everything runs on event time. A sliding window of length W is a ring of
 * WIN_BUCKETS buckets of W / WIN_BUCKETS each; "in the window at time t" means in
 * one of the last WIN_BUCKETS buckets up to t's, so a window covers between 15/16
 * W and W of history. Counts per bucket are kept with a running total, so adding
 * and reading are O(1) amortised.
 *
 * Distinct counts are exact: a per-group hash set maps each value's 64-bit hash to
 * the bucket it was last seen in, and the window counts values by that bucket.
 * Entries that fell out of the window are purged when the set fills; a set is
 * capped at VSET_MAX values, past which new values are counted without being
 * remembered (an overestimate that can only happen far above any threshold).
 * Two different values colliding on 64 bits is ignored (probability ~ n^2 / 2^65).
 *
 * Rules are evaluated in file order on every entry; a rule "signals" on an entry
 * when its filter passed and its condition held after the entry was counted.
 * Temporal rules look at the signals of the rules they name, which are defined
 * above them, so one pass in order is enough. Alerts of one rule and group are
 * suppressed for `suppress` after each alert; signals are not.
 *
 * Peer and self rules count matching entries per principal per calendar period
 * (period-aligned on event time). The peer score compares the count so far with
 * the same-period counts of the other members of the principal's peer group
 * (same role and party): robust z = (x - median) / max(1.4826 MAD, 1). The self
 * score compares it with the principal's own last `history` completed periods
 * (robust z, or the Poisson tail P(X >= x) with lambda = their mean). Both are
 * checked when the count reaches `min` and then every max(1, min/8) entries, so
 * their cost stays proportional to the entries rather than entries x peers.
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "detect/detect_internal.h"
#include "moat/policy.h"

#define WIN_BUCKETS 16
#define VSET_MAX (1u << 16)
#define EVID MOAT_DETECT_EVIDENCE_MAX
/* A principal's first this-many entries never count as coming from a "new" ip or
 * device: everything is new at first. */
#define NEW_WARMUP 20
#define KNOWN_MAX 8
#define FEATURE_WINDOW_MS (24 * 3600000LL)
#define DAY_MS (24 * 3600000LL)
#define QUOTA_RULES_MAX 4096 /* policy rule names whose quota is cached */
#define LOCAL_OFFSET_MIN 480 /* default local time: +08:00 (moat_detect_set_local_offset) */

/* ---- hashing ------------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	h = mix64(h);
	return h ? h : 1; /* 0 marks an empty slot */
}

/* Open-addressing map from a non-zero 64-bit key to a uint32 value. Key and
 * value share a slot, so a look-up touches one cache line, not two: with tens
 * of thousands of principals the map does not stay in cache. */
typedef struct keymap_slot {
	uint64_t key;
	uint64_t val;
} keymap_slot_t;

typedef struct keymap {
	keymap_slot_t *s;
	size_t cap, n;
} keymap_t;

static bool keymap_get(const keymap_t *m, uint64_t key, uint64_t *val)
{
	if (!m->cap)
		return false;
	size_t mask = m->cap - 1;
	for (size_t i = (size_t)key & mask;; i = (i + 1) & mask) {
		if (m->s[i].key == key) {
			*val = m->s[i].val;
			return true;
		}
		if (m->s[i].key == 0)
			return false;
	}
}

static bool keymap_put(keymap_t *m, uint64_t key, uint64_t val, size_t *mem)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 16;
		keymap_slot_t *ns = calloc(ncap, sizeof *ns);
		if (!ns)
			return false;
		for (size_t i = 0; i < m->cap; i++) {
			if (!m->s[i].key)
				continue;
			size_t j = (size_t)m->s[i].key & (ncap - 1);
			while (ns[j].key)
				j = (j + 1) & (ncap - 1);
			ns[j] = m->s[i];
		}
		*mem += (ncap - m->cap) * sizeof *ns;
		free(m->s);
		m->s = ns;
		m->cap = ncap;
	}
	size_t mask = m->cap - 1, i = (size_t)key & mask;
	while (m->s[i].key)
		i = (i + 1) & mask;
	m->s[i].key = key;
	m->s[i].val = val;
	m->n++;
	return true;
}

/* Replaces the value of a key that is in the map. */
static void keymap_set(keymap_t *m, uint64_t key, uint64_t val)
{
	size_t mask = m->cap - 1;
	for (size_t i = (size_t)key & mask;; i = (i + 1) & mask) {
		if (m->s[i].key == key) {
			m->s[i].val = val;
			return;
		}
	}
}

static void keymap_free(keymap_t *m)
{
	free(m->s);
}

/* ---- windows ------------------------------------------------------------------------ */

typedef struct win {
	int64_t head; /* absolute bucket index of the newest bucket */
	uint64_t total;
	uint32_t b[WIN_BUCKETS];
} win_t;

static int64_t floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* The last quotient floordiv(a, b) computed for a fixed b > 0, with the range
 * of a it holds for: event time mostly moves forward within a bucket, so most
 * entries are divided without a division. Empty when lo > hi. */
typedef struct divcache {
	int64_t lo, hi, q; /* floordiv(a, b) == q for lo <= a < hi */
} divcache_t;

static int64_t floordiv_cached(divcache_t *c, int64_t a, int64_t b)
{
	if (a >= c->lo && a < c->hi)
		return c->q;
	int64_t q = floordiv(a, b);
	if (b > 0) {
		c->q = q;
		c->lo = q * b; /* <= a: no overflow */
		if (__builtin_add_overflow(c->lo, b, &c->hi))
			c->hi = INT64_MAX; /* a == INT64_MAX then misses: only slower */
	}
	return q;
}

static size_t slot(int64_t idx)
{
	return (size_t)(((idx % WIN_BUCKETS) + WIN_BUCKETS) % WIN_BUCKETS);
}

static void win_advance(win_t *w, int64_t idx)
{
	if (idx <= w->head)
		return;
	if (idx - w->head >= WIN_BUCKETS) {
		memset(w->b, 0, sizeof w->b);
		w->total = 0;
	} else {
		for (int64_t i = w->head + 1; i <= idx; i++) {
			w->total -= w->b[slot(i)];
			w->b[slot(i)] = 0;
		}
	}
	w->head = idx;
}

static bool win_in(const win_t *w, int64_t idx)
{
	return idx > w->head - WIN_BUCKETS && idx <= w->head;
}

/* Adds n at bucket idx (after advancing to it); an entry older than the window is
 * dropped. */
static void win_add(win_t *w, int64_t idx, uint32_t n)
{
	win_advance(w, idx);
	if (!win_in(w, idx))
		return;
	w->b[slot(idx)] += n;
	w->total += n;
}

/* Sum over the window ending at bucket idx, without changing w. */
static uint64_t win_sum_at(const win_t *w, int64_t idx)
{
	uint64_t s = 0;
	for (int64_t i = idx - WIN_BUCKETS + 1; i <= idx; i++)
		if (win_in(w, i))
			s += w->b[slot(i)];
	return s;
}

static void win_init(win_t *w)
{
	memset(w, 0, sizeof *w);
	w->head = INT64_MIN / 2;
}

/* Distinct values by bucket last seen; counted in a window. */
/* A set entry packs 40 bits of the value's hash over the low 24 bits of the
 * bucket it was last seen in (0 = empty slot): 8 bytes per value. The full bucket
 * index is the latest one at or before the window's head with those low bits, so
 * an entry is read correctly for 2^24 buckets (years even for one-minute
 * windows); expired entries are dropped whenever the set is rebuilt. */
#define VS_IDX_MASK ((UINT64_C(1) << 24) - 1)

typedef struct vset {
	uint64_t *e;
	uint32_t cap, n;
	int64_t rebuilt_at;
} vset_t;

static uint64_t vs_tag(uint64_t h)
{
	uint64_t t = h >> 24;
	return t ? t : 1;
}

static int64_t vs_idx(uint64_t e, int64_t head)
{
	return head - (int64_t)(((uint64_t)head - (e & VS_IDX_MASK)) & VS_IDX_MASK);
}

static uint64_t *vset_find(vset_t *s, uint64_t tag, bool *found)
{
	uint32_t mask = s->cap - 1;
	for (uint32_t i = (uint32_t)mix64(tag) & mask;; i = (i + 1) & mask) {
		if (s->e[i] == 0) {
			*found = false;
			return &s->e[i];
		}
		if ((s->e[i] >> 24) == tag) {
			*found = true;
			return &s->e[i];
		}
	}
}

static bool vset_full(const vset_t *s)
{
	return (uint64_t)(s->n + 1) * 4 > (uint64_t)s->cap * 3;
}

/* Rebuilds s keeping only values still in w's window, at most half full; false
 * on OOM (s unchanged). */
static bool vset_rebuild(vset_t *s, const win_t *w, size_t *mem)
{
	uint32_t live = 0;
	for (uint32_t i = 0; i < s->cap; i++)
		if (s->e[i] && win_in(w, vs_idx(s->e[i], w->head)))
			live++;
	uint32_t ncap = 8;
	while (ncap < VSET_MAX * 2 && (live + 1) * 2 > ncap)
		ncap *= 2;
	uint64_t *ne = calloc(ncap, sizeof *ne);
	if (!ne)
		return false;
	vset_t n = {.e = ne, .cap = ncap, .n = 0, .rebuilt_at = s->rebuilt_at};
	for (uint32_t i = 0; i < s->cap; i++) {
		if (!s->e[i] || !win_in(w, vs_idx(s->e[i], w->head)))
			continue;
		bool f;
		*vset_find(&n, s->e[i] >> 24, &f) = s->e[i];
		n.n++;
	}
	*mem += (size_t)ncap * sizeof *ne;
	*mem -= (size_t)s->cap * sizeof *ne;
	free(s->e);
	*s = n;
	return true;
}

/* Counts value h seen at bucket idx in w (distinct by last-seen bucket). */
static bool vset_add(vset_t *s, win_t *w, uint64_t h, int64_t idx, size_t *mem)
{
	win_advance(w, idx);
	if (!win_in(w, idx))
		return true;
	if (vset_full(s) && (s->cap < VSET_MAX * 2 || s->rebuilt_at != w->head)) {
		/* Grow, or at the cap drop expired values (once per bucket). */
		if (!vset_rebuild(s, w, mem))
			return false;
		s->rebuilt_at = w->head;
	}
	if (vset_full(s)) {
		/* Saturated: count without remembering. */
		w->b[slot(idx)]++;
		w->total++;
		return true;
	}
	bool found;
	uint64_t tag = vs_tag(h);
	uint64_t *e = vset_find(s, tag, &found);
	if (found) {
		int64_t old = vs_idx(*e, w->head);
		if (old >= idx)
			return true; /* already counted at this bucket or later */
		if (win_in(w, old)) {
			w->b[slot(old)]--;
			w->total--;
		}
	} else {
		s->n++;
	}
	*e = tag << 24 | ((uint64_t)idx & VS_IDX_MASK);
	w->b[slot(idx)]++;
	w->total++;
	return true;
}

/* The features' distinct orders: the same set in 4 bytes a value. An entry packs
 * 24 bits of the value's hash over the low 8 bits of its bucket, so it reads
 * correctly only within 256 buckets of the head: the set drops expired values
 * at least every OSET_SPAN buckets, and a kept value is never older than the
 * window then. The features feed no rule, so the price, distinct values
 * colliding on 24 bits (about n^2 / 2^25 for n values in a day), falls on
 * moat_detect_features alone. */
#define OS_IDX_BITS 8
#define OS_IDX_MASK ((1u << OS_IDX_BITS) - 1)
#define OSET_SPAN ((1 << OS_IDX_BITS) - WIN_BUCKETS)

typedef struct oset {
	uint32_t *e;
	uint32_t cap, n;
	int64_t rebuilt_at;
} oset_t;

static uint32_t os_tag(uint64_t h)
{
	uint32_t t = (uint32_t)(h >> 40);
	return t ? t : 1;
}

static uint32_t os_home(uint32_t tag, uint32_t cap)
{
	return (uint32_t)mix64(tag) & (cap - 1);
}

static int64_t os_idx(uint32_t e, int64_t head)
{
	return head - (int64_t)(((uint64_t)head - (e & OS_IDX_MASK)) & OS_IDX_MASK);
}

static uint32_t *oset_find(oset_t *s, uint32_t tag, bool *found)
{
	uint32_t mask = s->cap - 1;
	for (uint32_t i = os_home(tag, s->cap);; i = (i + 1) & mask) {
		if (s->e[i] == 0) {
			*found = false;
			return &s->e[i];
		}
		if ((s->e[i] >> OS_IDX_BITS) == tag) {
			*found = true;
			return &s->e[i];
		}
	}
}

static bool oset_full(const oset_t *s)
{
	return (uint64_t)(s->n + 1) * 4 > (uint64_t)s->cap * 3;
}

/* Rebuilds s keeping only values still in w's window, at most half full; false
 * on OOM (s unchanged). */
static bool oset_rebuild(oset_t *s, const win_t *w, size_t *mem)
{
	uint32_t live = 0;
	for (uint32_t i = 0; i < s->cap; i++)
		if (s->e[i] && win_in(w, os_idx(s->e[i], w->head)))
			live++;
	uint32_t ncap = 8;
	while (ncap < VSET_MAX * 2 && (live + 1) * 2 > ncap)
		ncap *= 2;
	uint32_t *ne = calloc(ncap, sizeof *ne);
	if (!ne)
		return false;
	oset_t n = {.e = ne, .cap = ncap, .n = 0, .rebuilt_at = w->head};
	for (uint32_t i = 0; i < s->cap; i++) {
		if (!s->e[i] || !win_in(w, os_idx(s->e[i], w->head)))
			continue;
		bool f;
		*oset_find(&n, s->e[i] >> OS_IDX_BITS, &f) = s->e[i];
		n.n++;
	}
	*mem += (size_t)ncap * sizeof *ne;
	*mem -= (size_t)s->cap * sizeof *ne;
	free(s->e);
	*s = n;
	return true;
}

/* Counts value h seen at bucket idx in w, as vset_add. */
static bool oset_add(oset_t *s, win_t *w, uint64_t h, int64_t idx, size_t *mem)
{
	win_advance(w, idx);
	if (!win_in(w, idx))
		return true;
	if ((oset_full(s) && (s->cap < VSET_MAX * 2 || s->rebuilt_at != w->head)) ||
	    (s->cap && w->head - s->rebuilt_at >= OSET_SPAN)) {
		/* Grow, at the cap drop expired values (once per bucket), or drop
		 * them before a kept one could be misread. */
		if (!oset_rebuild(s, w, mem))
			return false;
	}
	if (oset_full(s)) {
		w->b[slot(idx)]++;
		w->total++;
		return true;
	}
	bool found;
	uint32_t tag = os_tag(h);
	uint32_t *e = oset_find(s, tag, &found);
	if (found) {
		int64_t old = os_idx(*e, w->head);
		if (old >= idx)
			return true;
		if (win_in(w, old)) {
			w->b[slot(old)]--;
			w->total--;
		}
	} else {
		s->n++;
	}
	*e = tag << OS_IDX_BITS | ((uint32_t)idx & OS_IDX_MASK);
	w->b[slot(idx)]++;
	w->total++;
	return true;
}

/* ---- statistics --------------------------------------------------------------------- */

/* Quickselect: reorders v so that v[k] is the k-th smallest, everything before
 * it no larger and everything after no smaller; returns v[k]. O(n) on average. */
static double select_kth(double *v, size_t n, size_t k)
{
	size_t lo = 0, hi = n - 1;
	while (lo < hi) {
		double pivot = v[lo + (hi - lo) / 2];
		size_t i = lo, j = hi;
		while (i <= j) {
			while (v[i] < pivot)
				i++;
			while (v[j] > pivot)
				j--;
			if (i <= j) {
				double t = v[i];
				v[i] = v[j];
				v[j] = t;
				i++;
				if (j == 0)
					break;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			break;
	}
	return v[k];
}

/* Median of v (reordered). */
static double median_of(double *v, size_t n)
{
	double hi = select_kth(v, n, n / 2);
	if (n % 2)
		return hi;
	double lo = v[0];
	for (size_t i = 1; i < n / 2; i++)
		if (v[i] > lo)
			lo = v[i];
	return (lo + hi) / 2;
}

void moat_detect_median_mad(double *v, size_t n, double *median, double *mad)
{
	if (n == 0) {
		*median = *mad = 0;
		return;
	}
	double m = median_of(v, n);
	for (size_t i = 0; i < n; i++)
		v[i] = fabs(v[i] - m);
	*median = m;
	*mad = median_of(v, n);
}

double moat_detect_poisson_tail(uint64_t k, double lambda)
{
	if (k == 0)
		return 1.0;
	if (lambda <= 0)
		return 0.0;
	if ((double)k <= lambda) {
		/* Upper tail is large: 1 - P(X <= k-1), summed from 0. */
		double term = exp(-lambda), cdf = term;
		for (uint64_t i = 1; i < k; i++) {
			term *= lambda / (double)i;
			cdf += term;
		}
		double p = 1.0 - cdf;
		return p < 0 ? 0 : p;
	}
	/* Sum P(X = i) for i >= k in log space, starting at the largest term. */
	double lt = -lambda + (double)k * log(lambda) - lgamma((double)k + 1.0);
	double term = 1.0, sum = 0.0;
	for (uint64_t i = k; i < k + 100000; i++) {
		sum += term;
		term *= lambda / (double)(i + 1);
		if (term < sum * 1e-17)
			break;
	}
	double p = exp(lt + log(sum));
	return p > 1 ? 1 : p;
}

/* ---- engine state ------------------------------------------------------------------- */

enum {
	F_READS,
	F_DISTINCT,
	F_PLAINTEXT,
	F_NO_RELATION,
	F_OFF_SHIFT,
	F_NEW_IP,
	F_NEW_DEVICE,
	F_DENIALS,
	F_EXPORT_ROWS,
	F_LOGIN_FAILURES,
	F_QUOTA_REFUSALS,
	F_COUNT
};

/* One ring of buckets for all feature counters (one head to advance per entry);
 * distinct orders use their own window, counted by the order set. Everything
 * an entry reads but its bucket comes first, in two cache lines (the features
 * start on a line). */
typedef struct features {
	int64_t head;
	win_t distinct;
	oset_t orders;
	/* Quota use on local day qday: reads charged, and the quota of the rule
	 * that charged the last one (0 if unknown). */
	int64_t qday;
	uint32_t qused, qlimit;
	uint32_t b[WIN_BUCKETS][F_COUNT];
} features_t;

static void feat_advance(features_t *f, int64_t idx)
{
	if (idx <= f->head)
		return;
	if (idx - f->head >= WIN_BUCKETS)
		memset(f->b, 0, sizeof f->b);
	else
		for (int64_t i = f->head + 1; i <= idx; i++)
			memset(f->b[slot(i)], 0, sizeof f->b[0]);
	f->head = idx;
}

static void feat_add(features_t *f, int64_t idx, int k, uint64_t n)
{
	if (idx > f->head - WIN_BUCKETS && idx <= f->head) {
		uint64_t v = f->b[slot(idx)][k] + n;
		f->b[slot(idx)][k] = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
	}
}

/* A principal and everything kept about it live in one block (its "body"): this
 * struct, then the states of the rules grouped by principal, then its features,
 * at offsets fixed when the engine is created (see layout_body). An entry then
 * costs one map look-up and a set of independent cache misses into one block
 * that can all be requested at once, instead of a chain of pointers to chase.
 * A principal seen only in logins (a stuffer's guesses) gets a short body
 * holding only the states of rules that can match a login; its first other
 * entry moves it into a full body. */
typedef struct principal {
	uint64_t hash;
	const char *name;   /* arena */
	uint32_t idx;	    /* in d->prins */
	int group;	    /* peer group, -1 if unknown */
	uint32_t group_pos; /* position among the group's members */
	moat_role_t role;   /* if known */
	int shift_start, shift_end;
	bool known;
	bool full; /* the body holds the features and every rule's state */
	uint8_t n_ips, n_devices, ip_pos, device_pos;
	/* Bit rt->seq_bit: that temporal rule's sequence is under way in the
	 * body (its state's step > 0), so an entry that cannot start one need
	 * not read the state while the bit is clear. */
	uint16_t seqs;
	uint64_t entries; /* entries seen */
	uint64_t ips[KNOWN_MAX], devices[KNOWN_MAX];
} principal_t;

typedef struct group {
	const char *name; /* "role/party" (arena) */
	uint32_t *members;
	size_t n, cap;
} group_t;

/* The state of one rule for one group value. A state is allocated as large as
 * its rule type needs (the union member it uses is a prefix of the rest); a
 * self rule's history follows its union member. Its evidence ring comes from the
 * engine's ring pool at the first entry it counts: most principals never pass
 * most rules' filters, and their states then cost no ring. */
typedef struct state {
	moat_time_t last_alert;
	uint32_t ring; /* 1 + index in the ring pool; 0 until the first evidence */
	uint8_t ev_n, ev_pos;
	union {
		struct state_w {
			win_t a; /* counts; ratio: base */
			union {
				vset_t vs; /* value_count */
				win_t b;   /* ratio: numerator */
			} x;
		} w;
		struct state_p {
			int64_t period;
			uint64_t count;
			uint8_t nhist, hpos; /* self: `history` uint32 counts follow */
		} p;
		struct {
			int step;
			moat_time_t t0;
		} t;
	} u;
} state_t;

static uint32_t *self_hist(state_t *st)
{
	return (uint32_t *)(void *)((char *)st + offsetof(state_t, u) + sizeof(struct state_p));
}

/* A peer rule's counts for one peer group. `sorted` holds the
 * counts of all the group's members in `period`, the latest period any of them
 * counted in (0 for a member that has not counted in it), in ascending order:
 * a member's count going from c to c + 1 is the last c becoming c + 1, which
 * keeps the order, so the array stays sorted at O(log n) a count, and scoring
 * a member of that period reads its peers' median and MAD straight off it
 * instead of selecting them from every peer's count. A member scored in an
 * older period (imported entries running late) falls back to reading its
 * peers' states in their bodies. */
typedef struct peer_group {
	uint32_t *sorted;
	uint32_t n_sorted, cap_sorted;
	int64_t period;
	bool broken; /* a count outgrew uint32 or lost track: always fall back */
} peer_group_t;

typedef struct rule_rt {
	/* States not grouped by principal (ip, device, peer, ...): by key hash. */
	keymap_t map;
	state_t **states;  /* stable pointers: states are allocated one by one */
	const char **keys; /* each state's group value (arena) */
	size_t n, cap;
	moat_time_t width; /* window bucket width */
	divcache_t wdiv;   /* event time / width */
	divcache_t pdiv;   /* peer/self: event time / period */
	uint64_t min_count, every; /* peer/self: scored at min_count, then every `every` */
	size_t body_off;   /* grouped by principal: offset of the state in a body, else 0 */
	size_t body_touch; /* bytes of that state an entry reads (a self rule's history
			    * only when scored) */
	int seq_bit;       /* temporal rule in the body: its bit of principal_t.seqs, or -1 */
	/* Peer rules: per group, the members' counts, kept contiguous so that
	 * scoring a principal against its peers reads one small array instead of
	 * every peer's state. */
	peer_group_t *pg;
	size_t n_pg;
} rule_rt_t;

/* Bodies are carved from chunks that grow to 2 MiB and are then backed by huge
 * pages where the kernel allows it: tens of thousands of bodies read at random
 * otherwise cost a TLB miss on top of each cache miss. */
#define CHUNK_MAX ((size_t)2 << 20)
typedef struct chunk {
	struct chunk *next;
	size_t used, cap;
} chunk_t;

#define PREFETCH_MAX 40
#define FEED_BATCH 16  /* entries whose principals are looked up together */
#define RING_PAGE 1024 /* rings per page of the pool */

struct moat_detect {
	const moat_detect_rules_t *rules;
	moat_detect_lookup_fn lookup;
	void *lookup_ctx;
	moat_detect_alert_fn on_alert;
	void *alert_ctx;
	moat_arena_t *arena;
	keymap_t pmap; /* principal hash -> principal_t * */
	principal_t **prins;
	size_t n_prins, cap_prins;
	keymap_t gmap;
	group_t *groups;
	size_t n_groups, cap_groups;
	rule_rt_t rt[MOAT_DETECT_RULES_MAX];
	/* Body layout: login-class states [sizeof principal, login_size), then the
	 * features at feat_off and the other states up to full_size. */
	size_t login_size, feat_off, full_size;
	chunk_t *chunks;
	void *spare_login; /* list of short bodies left behind by moves */
	/* Evidence rings (EVID ledger indexes each), in pages that never move. */
	uint64_t (**ring_pages)[EVID];
	size_t n_ring_pages;
	uint32_t n_rings;
	/* Per entry kind: the rules that can pass it, in file order, and the body
	 * lines they touch. */
	uint8_t run[MOAT_ENTRY_KIND_MAX + 1][MOAT_DETECT_RULES_MAX];
	uint8_t n_run[MOAT_ENTRY_KIND_MAX + 1];
	uint16_t lines[MOAT_ENTRY_KIND_MAX + 1][PREFETCH_MAX];
	uint8_t n_lines[MOAT_ENTRY_KIND_MAX + 1];
	moat_detect_quota_fn quota_fn;
	void *quota_ctx;
	int local_off_min; /* local time (shifts, quota day) minus UTC, minutes */
	keymap_t qmap; /* policy rule name hash -> its quota (0: not charged) */
	uint64_t quiet;
	uint64_t last_index;
	bool any_index;
	size_t mem;
	double *scratch; /* peer/self statistics */
	size_t scratch_cap;
	/* Per-entry: which rules signalled and on which state. */
	bool sig[MOAT_DETECT_RULES_MAX];
	state_t *sig_state[MOAT_DETECT_RULES_MAX];
};

/* Filter verdicts on one entry known before it is judged: bit ri of `fail`,
 * rule ri's filter fails; of `pass`, it passes. */
typedef struct verdicts {
	uint64_t pass[(MOAT_DETECT_RULES_MAX + 63) / 64];
	uint64_t fail[(MOAT_DETECT_RULES_MAX + 63) / 64];
} verdicts_t;

static bool verdict_has(const uint64_t *bits, size_t ri)
{
	return (bits[ri / 64] >> (ri % 64)) & 1;
}

static void verdict_set(uint64_t *bits, size_t ri)
{
	bits[ri / 64] |= UINT64_C(1) << (ri % 64);
}

/* The current entry with what the engine derived about it. */
typedef struct ev {
	const verdicts_t *v; /* verdicts found while prefetching, or NULL */
	const moat_entry_t *e;
	uint64_t index;
	principal_t *p;
	uint64_t phash;
	uint32_t role_bit;
	unsigned new_bits;
	int plaintext, full, off_shift;
	unsigned refusal;   /* DENY: REFUSAL_QUOTA or REFUSAL_POLICY */
	double quota_share; /* quota use today after this entry / quota; 1 for a quota
			     * refusal; 0 if not charged or unknown */
	uint64_t order_h; /* hash of order_id, 0 until computed */
} ev_t;

static uint64_t ev_order_hash(ev_t *x)
{
	if (!x->order_h)
		x->order_h = hash_str(x->e->order_id);
	return x->order_h;
}

static void *xcalloc(moat_detect_t *d, size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (p)
		d->mem += n * size;
	return p;
}

static uint64_t *ev_ring(const moat_detect_t *d, const state_t *st)
{
	uint32_t i = st->ring - 1;
	return d->ring_pages[i / RING_PAGE][i % RING_PAGE];
}

/* Gives st a ring; false on OOM. */
static bool ring_new(moat_detect_t *d, state_t *st)
{
	if (d->n_rings == UINT32_MAX - 1)
		return false;
	if (d->n_rings / RING_PAGE == d->n_ring_pages) {
		uint64_t(**np)[EVID] =
		    realloc(d->ring_pages, (d->n_ring_pages + 1) * sizeof *d->ring_pages);
		if (!np)
			return false;
		d->ring_pages = np;
		np[d->n_ring_pages] = xcalloc(d, RING_PAGE, sizeof **np);
		if (!np[d->n_ring_pages])
			return false;
		d->n_ring_pages++;
		d->mem += sizeof *np;
	}
	st->ring = ++d->n_rings;
	return true;
}

static features_t *feat_of(const moat_detect_t *d, const principal_t *p)
{
	return (features_t *)(void *)((char *)p + d->feat_off);
}

/* Entry kinds a rule can pass: its filter's, or for a temporal rule those of
 * its steps (which come before it). */
static uint32_t rule_kinds(const moat_detect_rules_t *rules, size_t ri)
{
	const rule_t *r = &rules->rules[ri];
	if (r->type != RULE_TEMPORAL)
		return r->filter.kinds;
	uint32_t k = 0;
	for (int i = 0; i < r->n_steps; i++)
		k |= rule_kinds(rules, (size_t)r->steps[i]);
	return k;
}

/* Does the rule keep a state per principal in the principal's body? */
static bool in_body(const rule_t *r)
{
	return r->group_by == FIELD_PRINCIPAL && !(r->type == RULE_MATCH && !r->alert);
}

static size_t state_size(const rule_t *r)
{
	size_t size = offsetof(state_t, u);
	switch (r->type) {
	case RULE_EVENT_COUNT:
		size += sizeof(win_t);
		break;
	case RULE_VALUE_COUNT:
		size += offsetof(struct state_w, x) + sizeof(vset_t);
		break;
	case RULE_RATIO:
		size += sizeof(struct state_w);
		break;
	case RULE_PEER:
		size += sizeof(struct state_p);
		break;
	case RULE_SELF:
		size += sizeof(struct state_p) + (size_t)r->history * sizeof(uint32_t);
		break;
	default:
		size += sizeof(int64_t) * 2;
		break;
	}
	return (size + 7) & ~(size_t)7;
}

static void state_init(const rule_t *r, state_t *st)
{
	st->last_alert = MOAT_TIME_NONE;
	if (r->type == RULE_EVENT_COUNT || r->type == RULE_VALUE_COUNT || r->type == RULE_RATIO)
		win_init(&st->u.w.a);
	if (r->type == RULE_RATIO)
		win_init(&st->u.w.x.b);
	if (r->type == RULE_PEER || r->type == RULE_SELF)
		st->u.p.period = INT64_MIN;
}

static size_t round64(size_t n)
{
	return (n + 63) & ~(size_t)63;
}

static void add_lines(moat_detect_t *d, int kind, size_t from, size_t to)
{
	for (size_t l = from / 64; l * 64 < to; l++) {
		bool have = false;
		for (size_t i = 0; i < d->n_lines[kind]; i++)
			have |= d->lines[kind][i] == l;
		if (!have && d->n_lines[kind] < PREFETCH_MAX)
			d->lines[kind][d->n_lines[kind]++] = (uint16_t)l;
	}
}

/* Places the states of rules grouped by principal in a body: rules that can
 * pass a login first (a short body is that prefix), then the features and the
 * other rules. Also lists, per
 * entry kind, the rules to run and the body lines they read. */
static void layout_body(moat_detect_t *d)
{
	const moat_detect_rules_t *rules = d->rules;
	const uint32_t login = 1u << MOAT_ENTRY_LOGIN;
	size_t off = round64(sizeof(principal_t));
	for (int part = 0; part < 2; part++) {
		if (part == 1) {
			d->login_size = round64(off);
			d->feat_off = d->login_size;
			off = d->feat_off + sizeof(features_t);
		}
		for (size_t i = 0; i < rules->n; i++) {
			const rule_t *r = &rules->rules[i];
			if (!in_body(r) || ((rule_kinds(rules, i) & login) != 0) != (part == 0))
				continue;
			d->rt[i].body_off = off;
			off += state_size(r);
		}
	}
	d->full_size = round64(off);
	int n_seq = 0;
	for (size_t i = 0; i < rules->n; i++) {
		d->rt[i].seq_bit = -1;
		if (d->rt[i].body_off && rules->rules[i].type == RULE_TEMPORAL && n_seq < 16)
			d->rt[i].seq_bit = n_seq++;
	}
	for (int k = 0; k <= MOAT_ENTRY_KIND_MAX; k++) {
		add_lines(d, k, 0, sizeof(principal_t));
		if (k != MOAT_ENTRY_LOGIN)
			add_lines(d, k, d->feat_off, d->feat_off + offsetof(features_t, b));
		for (size_t i = 0; i < rules->n; i++) {
			if (!(rule_kinds(rules, i) & (1u << k)))
				continue;
			d->run[k][d->n_run[k]++] = (uint8_t)i;
			const rule_t *r = &rules->rules[i];
			if (d->rt[i].body_off) {
				size_t end = r->type == RULE_SELF
						 ? offsetof(state_t, u) + sizeof(struct state_p)
						 : state_size(r);
				d->rt[i].body_touch = end;
				add_lines(d, k, d->rt[i].body_off, d->rt[i].body_off + end);
			}
		}
	}
}

/* A zeroed block of size bytes (a multiple of 64) from the chunks; NULL on OOM. */
static void *body_alloc(moat_detect_t *d, size_t size)
{
	if (size == d->login_size && d->spare_login) {
		void *b = d->spare_login;
		memcpy(&d->spare_login, b, sizeof(void *));
		memset(b, 0, size);
		return b;
	}
	chunk_t *c = d->chunks;
	if (!c || c->cap - c->used < size) {
		size_t cap = c ? c->cap * 2 : (size_t)64 << 10;
		if (cap > CHUNK_MAX)
			cap = CHUNK_MAX;
		while (cap < size + 64)
			cap *= 2;
		chunk_t *nc = aligned_alloc(cap >= CHUNK_MAX ? CHUNK_MAX : 64, cap);
		if (!nc)
			return NULL;
#ifdef MADV_HUGEPAGE
		if (cap >= CHUNK_MAX)
			(void)madvise(nc, cap, MADV_HUGEPAGE);
#endif
		nc->next = c;
		nc->used = 64;
		nc->cap = cap;
		d->chunks = c = nc;
		d->mem += cap;
	}
	void *b = (char *)c + c->used;
	c->used += size;
	memset(b, 0, size);
	return b;
}

/* Initialises the states of part (0: login-class, 1: features and the rest) of a
 * fresh body. */
static void body_init(moat_detect_t *d, principal_t *p, int part)
{
	const uint32_t login = 1u << MOAT_ENTRY_LOGIN;
	for (size_t i = 0; i < d->rules->n; i++) {
		const rule_t *r = &d->rules->rules[i];
		if (!d->rt[i].body_off || ((rule_kinds(d->rules, i) & login) != 0) != (part == 0))
			continue;
		state_t *st = (state_t *)(void *)((char *)p + d->rt[i].body_off);
		state_init(r, st);
	}
	if (part == 1) {
		features_t *f = feat_of(d, p);
		f->head = INT64_MIN / 2;
		win_init(&f->distinct);
		f->qday = INT64_MIN;
	}
}

moat_err_t moat_detect_new(const moat_detect_rules_t *rules, moat_detect_lookup_fn lookup,
			   void *lookup_ctx, moat_detect_alert_fn on_alert, void *alert_ctx,
			   moat_detect_t **out, moat_error_t *err)
{
	*out = NULL;
	moat_detect_t *d = calloc(1, sizeof *d);
	if (!d)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	d->mem = sizeof *d;
	d->rules = rules;
	d->lookup = lookup;
	d->lookup_ctx = lookup_ctx;
	d->on_alert = on_alert;
	d->alert_ctx = alert_ctx;
	d->local_off_min = LOCAL_OFFSET_MIN;
	d->arena = moat_arena_new(64 * 1024);
	if (!d->arena) {
		free(d);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	for (size_t i = 0; i < rules->n; i++) {
		const rule_t *r = &rules->rules[i];
		moat_time_t span = r->timespan ? r->timespan : 60000;
		d->rt[i].width = span / WIN_BUCKETS > 0 ? span / WIN_BUCKETS : 1;
		d->rt[i].wdiv = d->rt[i].pdiv = (divcache_t){.lo = 1, .hi = 0};
		uint64_t min = r->min > 1 ? (uint64_t)ceil(r->min) : 1;
		d->rt[i].min_count = min;
		d->rt[i].every = min / 8 ? min / 8 : 1;
	}
	layout_body(d);
	*out = d;
	return MOAT_OK;
}

void moat_detect_free(moat_detect_t *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->rules->n; i++) {
		rule_rt_t *rt = &d->rt[i];
		bool vc = d->rules->rules[i].type == RULE_VALUE_COUNT;
		for (size_t j = 0; j < rt->n; j++) {
			if (vc)
				free(rt->states[j]->u.w.x.vs.e);
			free(rt->states[j]);
		}
		free(rt->states);
		free(rt->keys);
		keymap_free(&rt->map);
		for (size_t g = 0; g < rt->n_pg; g++)
			free(rt->pg[g].sorted);
		free(rt->pg);
		if (!vc || !rt->body_off)
			continue;
		for (size_t j = 0; j < d->n_prins; j++) {
			principal_t *p = d->prins[j];
			if (p->full || rt->body_off < d->login_size)
				free(((state_t *)(void *)((char *)p + rt->body_off))->u.w.x.vs.e);
		}
	}
	for (size_t i = 0; i < d->n_prins; i++)
		if (d->prins[i]->full)
			free(feat_of(d, d->prins[i])->orders.e);
	free(d->prins);
	while (d->chunks) {
		chunk_t *next = d->chunks->next;
		free(d->chunks);
		d->chunks = next;
	}
	for (size_t i = 0; i < d->n_ring_pages; i++)
		free(d->ring_pages[i]);
	free(d->ring_pages);
	keymap_free(&d->pmap);
	keymap_free(&d->qmap);
	for (size_t i = 0; i < d->n_groups; i++)
		free(d->groups[i].members);
	free(d->groups);
	keymap_free(&d->gmap);
	free(d->scratch);
	moat_arena_free(d->arena);
	free(d);
}

void moat_detect_set_local_offset(moat_detect_t *d, int minutes)
{
	if (minutes >= -24 * 60 && minutes <= 24 * 60)
		d->local_off_min = minutes;
}

void moat_detect_set_quota(moat_detect_t *d, moat_detect_quota_fn fn, void *ctx)
{
	d->quota_fn = fn;
	d->quota_ctx = ctx;
}

void moat_detect_set_quiet(moat_detect_t *d, uint64_t quiet)
{
	d->quiet = quiet;
}
size_t moat_detect_principals(const moat_detect_t *d)
{
	return d->n_prins;
}
size_t moat_detect_memory(const moat_detect_t *d)
{
	return d->mem;
}

/* ---- principals and groups ---------------------------------------------------------- */

static int group_of(moat_detect_t *d, const moat_detect_principal_t *info, principal_t *p)
{
	char name[MOAT_ID_MAX + 32];
	snprintf(name, sizeof name, "%s/%s", moat_role_name(info->role), info->party);
	uint64_t h = hash_str(name);
	uint64_t g;
	if (!keymap_get(&d->gmap, h, &g)) {
		if (d->n_groups == d->cap_groups) {
			size_t ncap = d->cap_groups ? d->cap_groups * 2 : 16;
			group_t *ng = realloc(d->groups, ncap * sizeof *ng);
			if (!ng)
				return -2;
			d->mem += (ncap - d->cap_groups) * sizeof *ng;
			d->groups = ng;
			d->cap_groups = ncap;
		}
		g = d->n_groups;
		group_t *gr = &d->groups[g];
		memset(gr, 0, sizeof *gr);
		gr->name = moat_arena_strdup(d->arena, name);
		if (!gr->name || !keymap_put(&d->gmap, h, g, &d->mem))
			return -2;
		d->n_groups++;
	}
	group_t *gr = &d->groups[g];
	if (gr->n == gr->cap) {
		size_t ncap = gr->cap ? gr->cap * 2 : 8;
		uint32_t *nm = realloc(gr->members, ncap * sizeof *nm);
		if (!nm)
			return -2;
		d->mem += (ncap - gr->cap) * sizeof *nm;
		gr->members = nm;
		gr->cap = ncap;
	}
	p->group_pos = (uint32_t)gr->n;
	gr->members[gr->n++] = p->idx;
	return (int)g;
}

/* Moves a principal with a short body into a full one; NULL on OOM (p intact). */
static principal_t *principal_grow(moat_detect_t *d, principal_t *p)
{
	principal_t *np = body_alloc(d, d->full_size);
	if (!np)
		return NULL;
	memcpy(np, p, d->login_size);
	np->full = true;
	body_init(d, np, 1);
	keymap_set(&d->pmap, p->hash, (uint64_t)(uintptr_t)np);
	d->prins[p->idx] = np;
	memcpy(p, &d->spare_login, sizeof(void *));
	d->spare_login = p;
	return np;
}

/* Finds or creates the principal, with a full body if `full`; NULL with *rc set
 * on failure. */
static principal_t *principal_get(moat_detect_t *d, const char *name, uint64_t h, bool full,
				  moat_err_t *rc, moat_error_t *err)
{
	uint64_t v;
	principal_t *p;
	if (keymap_get(&d->pmap, h, &v)) {
		p = (principal_t *)(uintptr_t)v;
		if (full && !p->full && !(p = principal_grow(d, p)))
			goto oom;
		return p;
	}
	if (d->n_prins == d->cap_prins) {
		size_t ncap = d->cap_prins ? d->cap_prins * 2 : 64;
		principal_t **np = realloc(d->prins, ncap * sizeof *np);
		if (!np)
			goto oom;
		d->mem += (ncap - d->cap_prins) * sizeof *np;
		d->prins = np;
		d->cap_prins = ncap;
	}
	p = body_alloc(d, full ? d->full_size : d->login_size);
	if (!p)
		goto oom;
	p->hash = h;
	p->idx = (uint32_t)d->n_prins;
	p->group = -1;
	p->shift_start = p->shift_end = -1;
	p->full = full;
	body_init(d, p, 0);
	if (full)
		body_init(d, p, 1);
	p->name = moat_arena_strdup(d->arena, name);
	if (!p->name)
		goto oom;
	moat_detect_principal_t info;
	memset(&info, 0, sizeof info);
	info.shift_start = info.shift_end = -1;
	if (d->lookup) {
		int r = d->lookup(d->lookup_ctx, name, &info);
		if (r < 0) {
			*rc = moat_error_set(err, MOAT_EUNAVAIL, "principal",
					     "could not look up principal %s", name);
			return NULL;
		}
		p->known = r > 0;
	}
	if (p->known) {
		p->role = info.role;
		p->shift_start = info.shift_start;
		p->shift_end = info.shift_end;
	}
	if (!keymap_put(&d->pmap, h, (uint64_t)(uintptr_t)p, &d->mem))
		goto oom;
	d->prins[d->n_prins++] = p;
	if (p->known) {
		int g = group_of(d, &info, p);
		if (g == -2)
			goto oom;
		p->group = g;
	}
	return p;
oom:
	*rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	return NULL;
}

static bool is_off_shift(const moat_detect_t *d, const principal_t *p, moat_time_t t)
{
	int s = p->shift_start, e = p->shift_end;
	if (s < 0 || e < 0 || s == e)
		return false;
	int64_t m = floordiv(t, 60000) + d->local_off_min;
	int minute = (int)(((m % 1440) + 1440) % 1440);
	bool in = s < e ? (minute >= s && minute < e) : (minute >= s || minute < e);
	return !in;
}

/* Returns true if h is new for the set (and remembers it, replacing the oldest). */
static bool remember(uint64_t *set, uint8_t *n, uint8_t *pos, uint64_t h)
{
	for (uint8_t i = 0; i < *n; i++)
		if (set[i] == h)
			return false;
	if (*n < KNOWN_MAX) {
		set[(*n)++] = h;
	} else {
		set[*pos] = h;
		*pos = (uint8_t)((*pos + 1) % KNOWN_MAX);
	}
	return true;
}

/* The quota of the policy rule that decided a read: -1 without a quota
 * function (charged, quota unknown), 0 if the rule charges nothing. */
static int64_t quota_of(moat_detect_t *d, const char *rule)
{
	if (!d->quota_fn)
		return -1;
	if (!rule || !*rule)
		return 0;
	uint64_t h = hash_str(rule), v;
	if (keymap_get(&d->qmap, h, &v))
		return (int64_t)v;
	int64_t q = d->quota_fn(d->quota_ctx, rule);
	if (q < 0)
		q = 0;
	/* Rule names come from the log: cache a bounded number (a miss only costs
	 * a call), and a failed insert only loses the cache. */
	if (d->qmap.n < QUOTA_RULES_MAX)
		(void)keymap_put(&d->qmap, h, (uint64_t)q, &d->mem);
	return q;
}

/* Charges a plaintext read to the principal's quota of the day, as the gateway
 * did when it served it, and sets x->quota_share. */
static void quota_charge(moat_detect_t *d, features_t *f, ev_t *x)
{
	const moat_entry_t *e = x->e;
	if (!moat_policy_is_plaintext(e->views))
		return;
	int64_t limit = quota_of(d, e->rule);
	if (limit == 0)
		return;
	int64_t day = floordiv(e->time + d->local_off_min * 60000LL, DAY_MS);
	if (day < f->qday)
		return; /* a late entry of a day already over */
	if (day > f->qday) {
		f->qday = day;
		f->qused = 0;
	}
	if (f->qused < UINT32_MAX)
		f->qused++;
	f->qlimit = limit < 0 ? 0 : limit > UINT32_MAX ? UINT32_MAX : (uint32_t)limit;
	x->quota_share = limit > 0 ? (double)f->qused / (double)limit : 0;
}

static bool update_features(moat_detect_t *d, ev_t *x)
{
	principal_t *p = x->p;
	const moat_entry_t *e = x->e;
	if (!p->full)
		return true; /* login-only names (stuffing guesses) get no features */
	features_t *f = feat_of(d, p);
	int64_t idx = floordiv(e->time, FEATURE_WINDOW_MS / WIN_BUCKETS);
	feat_advance(f, idx);
	switch (e->kind) {
	case MOAT_ENTRY_ACCESS:
		feat_add(f, idx, F_READS, 1);
		if (e->order_id &&
		    !oset_add(&f->orders, &f->distinct, ev_order_hash(x), idx, &d->mem))
			return false;
		if (x->plaintext)
			feat_add(f, idx, F_PLAINTEXT, 1);
		if (!e->relations)
			feat_add(f, idx, F_NO_RELATION, 1);
		if (x->off_shift)
			feat_add(f, idx, F_OFF_SHIFT, 1);
		quota_charge(d, f, x);
		break;
	case MOAT_ENTRY_DENY:
		feat_add(f, idx, F_DENIALS, 1);
		if (x->refusal == REFUSAL_QUOTA)
			feat_add(f, idx, F_QUOTA_REFUSALS, 1);
		break;
	case MOAT_ENTRY_EXPORT:
		feat_add(f, idx, F_EXPORT_ROWS, e->order_id ? 1 : e->rows);
		break;
	case MOAT_ENTRY_LOGIN:
		if (e->result == MOAT_RESULT_FAILURE)
			feat_add(f, idx, F_LOGIN_FAILURES, 1);
		break;
	default:
		break;
	}
	if (x->new_bits & NEW_IP)
		feat_add(f, idx, F_NEW_IP, 1);
	if (x->new_bits & NEW_DEVICE)
		feat_add(f, idx, F_NEW_DEVICE, 1);
	return true;
}

moat_err_t moat_detect_features(moat_detect_t *d, const char *principal, moat_time_t at,
				moat_detect_features_t *out)
{
	memset(out, 0, sizeof *out);
	uint64_t v;
	if (!keymap_get(&d->pmap, hash_str(principal), &v))
		return MOAT_ENOTFOUND;
	const principal_t *p = (const principal_t *)(uintptr_t)v;
	if (!p->full)
		return MOAT_OK;
	const features_t *f = feat_of(d, p);
	int64_t idx = floordiv(at, FEATURE_WINDOW_MS / WIN_BUCKETS);
	uint64_t c[F_COUNT] = {0};
	for (int64_t b = idx - WIN_BUCKETS + 1; b <= idx; b++)
		if (b > f->head - WIN_BUCKETS && b <= f->head)
			for (int k = 0; k < F_COUNT; k++)
				c[k] += f->b[slot(b)][k];
	c[F_DISTINCT] = win_sum_at(&f->distinct, idx);
	out->reads = c[F_READS];
	out->distinct_orders = c[F_DISTINCT];
	out->plaintext = c[F_PLAINTEXT];
	out->no_relation = c[F_NO_RELATION];
	out->off_shift = c[F_OFF_SHIFT];
	out->new_ip = c[F_NEW_IP];
	out->new_device = c[F_NEW_DEVICE];
	out->denials = c[F_DENIALS];
	out->export_rows = c[F_EXPORT_ROWS];
	out->login_failures = c[F_LOGIN_FAILURES];
	out->quota_refusals = c[F_QUOTA_REFUSALS];
	if (f->qday == floordiv(at + d->local_off_min * 60000LL, DAY_MS)) {
		out->quota_used = f->qused;
		if (f->qlimit)
			out->quota_share = (double)f->qused / (double)f->qlimit;
	}
	if (out->reads) {
		out->no_relation_share = (double)out->no_relation / (double)out->reads;
		out->off_shift_share = (double)out->off_shift / (double)out->reads;
	}
	return MOAT_OK;
}
/* ---- rules -------------------------------------------------------------------------- */

static bool filter_pass(const rule_filter_t *f, const ev_t *x)
{
	const moat_entry_t *e = x->e;
	if (!(f->kinds & (1u << e->kind)) || !(f->roles & x->role_bit))
		return false;
	if (e->has_purpose && e->kind != MOAT_ENTRY_LOGIN && !(f->purposes & (1u << e->purpose)))
		return false;
	if (f->relations) {
		if (e->kind == MOAT_ENTRY_LOGIN)
			return false;
		unsigned bits = e->relations ? e->relations : REL_NONE;
		if (!(bits & f->relations))
			return false;
	}
	if (f->result != TRI_ANY && (int)e->result != f->result)
		return false;
	if (f->plaintext != TRI_ANY && x->plaintext != f->plaintext)
		return false;
	if (f->full != TRI_ANY && x->full != f->full)
		return false;
	if (f->off_shift != TRI_ANY && x->off_shift != f->off_shift)
		return false;
	if (f->imported != TRI_ANY && (int)e->imported != f->imported)
		return false;
	if (f->new_mask && !(x->new_bits & f->new_mask))
		return false;
	if (f->refusals && !(x->refusal & f->refusals))
		return false;
	if (f->quota_share > 0 && !(x->quota_share >= f->quota_share))
		return false;
	return true;
}

/* The value of field f on the entry as a hash and a string; false if absent. */
static bool field_of(moat_detect_t *d, ev_t *x, rule_field_t f, uint64_t *h, const char **s)
{
	const moat_entry_t *e = x->e;
	const char *v = NULL;
	switch (f) {
	case FIELD_PRINCIPAL:
		if (!x->p)
			return false;
		*h = x->phash;
		*s = x->p->name;
		return true;
	case FIELD_PEER:
		if (!x->p || x->p->group < 0)
			return false;
		*h = mix64((uint64_t)x->p->group + 1) | 1;
		*s = d->groups[x->p->group].name;
		return true;
	case FIELD_IP:
		v = e->ip;
		break;
	case FIELD_DEVICE:
		v = e->device;
		break;
	case FIELD_ORDER:
		if (!e->order_id || !*e->order_id)
			return false;
		*h = ev_order_hash(x);
		*s = e->order_id;
		return true;
	case FIELD_REF:
		v = e->ref;
		break;
	default:
		break;
	}
	if (!v || !*v)
		return false;
	*h = hash_str(v);
	*s = v;
	return true;
}

/* The state of rule ri for the entry's group value (created if need be), and in
 * *keystr the group value as alerts name it; NULL on OOM. */
static state_t *state_get(moat_detect_t *d, size_t ri, uint64_t key, const char *keystr,
			  const ev_t *x, const char **keystr_out)
{
	rule_rt_t *rt = &d->rt[ri];
	const rule_t *r = &d->rules->rules[ri];
	if (rt->body_off && x->p) {
		/* Present in every body whose part holds it: a principal gets a full
		 * body before any entry but a login reaches it. */
		if (!x->p->full && rt->body_off >= d->login_size)
			return NULL;
		*keystr_out = x->p->name;
		return (state_t *)(void *)((char *)x->p + rt->body_off);
	}
	uint64_t i;
	if (keymap_get(&rt->map, key, &i)) {
		*keystr_out = rt->keys[i];
		return rt->states[i];
	}
	if (rt->n == rt->cap) {
		size_t ncap = rt->cap ? rt->cap * 2 : 16;
		state_t **ns = realloc(rt->states, ncap * sizeof *ns);
		if (!ns)
			return NULL;
		rt->states = ns;
		const char **nk = realloc(rt->keys, ncap * sizeof *nk);
		if (!nk)
			return NULL;
		rt->keys = nk;
		d->mem += (ncap - rt->cap) * (sizeof *ns + sizeof *nk);
		rt->cap = ncap;
	}
	size_t size = state_size(r);
	state_t *st = xcalloc(d, 1, size);
	if (!st)
		return NULL;
	/* Principal names and group names already live in the arena. */
	const char *ks;
	if (x->p && keystr == x->p->name)
		ks = keystr;
	else if (x->p && x->p->group >= 0 && keystr == d->groups[x->p->group].name)
		ks = keystr;
	else
		ks = moat_arena_strdup(d->arena, keystr);
	if (!ks) {
		free(st);
		return NULL;
	}
	state_init(r, st);
	if (!keymap_put(&rt->map, key, rt->n, &d->mem)) {
		free(st);
		return NULL;
	}
	rt->keys[rt->n] = ks;
	rt->states[rt->n++] = st;
	*keystr_out = ks;
	return st;
}

/* Does rule ri have a state for the entry's group value? */
static bool state_exists(moat_detect_t *d, size_t ri, uint64_t key, const ev_t *x)
{
	if (d->rt[ri].body_off && x->p)
		return true;
	uint64_t i;
	return keymap_get(&d->rt[ri].map, key, &i);
}

/* Adds an entry to a state's evidence. Entries come in increasing index, so
 * only a temporal rule (which also copies its steps' evidence) can see one
 * twice: evidence_push_once skips a repeat of the last one. */
static bool evidence_push(moat_detect_t *d, state_t *st, uint64_t index)
{
	if (!st->ring && !ring_new(d, st))
		return false;
	ev_ring(d, st)[st->ev_pos] = index;
	st->ev_pos = (uint8_t)((st->ev_pos + 1) % EVID);
	if (st->ev_n < EVID)
		st->ev_n++;
	return true;
}

static bool evidence_push_once(moat_detect_t *d, state_t *st, uint64_t index)
{
	if (st->ev_n && ev_ring(d, st)[(st->ev_pos + EVID - 1) % EVID] == index)
		return true;
	return evidence_push(d, st, index);
}

static bool evidence_copy(moat_detect_t *d, state_t *st, const state_t *from)
{
	if (!from || !from->ev_n)
		return true;
	size_t start = from->ev_n < EVID ? 0 : from->ev_pos;
	for (size_t i = 0; i < from->ev_n; i++)
		if (!evidence_push_once(d, st, ev_ring(d, from)[(start + i) % EVID]))
			return false;
	return true;
}

static bool cond_holds(cond_op_t op, double v, double t)
{
	switch (op) {
	case COND_GTE:
		return v >= t;
	case COND_GT:
		return v > t;
	case COND_LTE:
		return v <= t;
	case COND_LT:
		return v < t;
	}
	return false;
}

static bool scratch_reserve(moat_detect_t *d, size_t n)
{
	if (n <= d->scratch_cap)
		return true;
	size_t ncap = d->scratch_cap ? d->scratch_cap : 64;
	while (ncap < n)
		ncap *= 2;
	double *s = realloc(d->scratch, ncap * sizeof *s);
	if (!s)
		return false;
	d->mem += (ncap - d->scratch_cap) * sizeof *s;
	d->scratch = s;
	d->scratch_cap = ncap;
	return true;
}

/* Rolls a peer/self state into period pidx. */
static void period_roll(const rule_t *r, state_t *st, int64_t pidx)
{
	if (st->u.p.period == INT64_MIN) {
		st->u.p.period = pidx;
		return;
	}
	if (pidx <= st->u.p.period)
		return;
	if (r->type == RULE_SELF) {
		uint32_t *hist = self_hist(st);
		int64_t gap = pidx - st->u.p.period;
		int64_t pushes = gap > r->history ? r->history : gap;
		for (int64_t i = 0; i < pushes; i++) {
			uint32_t v = i == 0 ? (uint32_t)(st->u.p.count > UINT32_MAX ? UINT32_MAX
										    : st->u.p.count)
					    : 0;
			hist[st->u.p.hpos] = v;
			st->u.p.hpos = (uint8_t)((st->u.p.hpos + 1) % r->history);
			if (st->u.p.nhist < r->history)
				st->u.p.nhist++;
		}
	}
	st->u.p.period = pidx;
	st->u.p.count = 0;
}
/* Last index in a[0..n) holding v, or -1. */
static long sorted_last(const uint32_t *a, size_t n, uint64_t v)
{
	size_t lo = 0, hi = n; /* first index holding more than v */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a[mid] <= v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && a[lo - 1] == v ? (long)lo - 1 : -1;
}

/* Brings pg->sorted to the group's n members (members joined since count 0)
 * and to period `period` if that is later (everyone starts at 0); false on
 * OOM. */
static bool sorted_sync(moat_detect_t *d, peer_group_t *pg, size_t n, int64_t period)
{
	if (pg->cap_sorted < n) {
		size_t ncap = pg->cap_sorted ? pg->cap_sorted : 8;
		while (ncap < n)
			ncap *= 2;
		uint32_t *ns = realloc(pg->sorted, ncap * sizeof *ns);
		if (!ns)
			return false;
		d->mem += (ncap - pg->cap_sorted) * sizeof *ns;
		pg->sorted = ns;
		pg->cap_sorted = (uint32_t)ncap;
	}
	if (period > pg->period) {
		memset(pg->sorted, 0, n * sizeof *pg->sorted);
		pg->n_sorted = (uint32_t)n;
		pg->period = period;
	} else if (pg->n_sorted < n) {
		size_t add = n - pg->n_sorted;
		memmove(pg->sorted + add, pg->sorted, pg->n_sorted * sizeof *pg->sorted);
		memset(pg->sorted, 0, add * sizeof *pg->sorted);
		pg->n_sorted = (uint32_t)n;
	}
	return true;
}

/* Records the principal's count of this period (just incremented) in its
 * group's arrays. */
static bool peer_count_set(moat_detect_t *d, size_t ri, const principal_t *p, const state_t *st)
{
	if (!p || p->group < 0)
		return true;
	rule_rt_t *rt = &d->rt[ri];
	size_t g = (size_t)p->group;
	if (g >= rt->n_pg) {
		size_t ncap = d->cap_groups > g ? d->cap_groups : g + 1;
		peer_group_t *na = realloc(rt->pg, ncap * sizeof *na);
		if (!na)
			return false;
		rt->pg = na;
		for (size_t i = rt->n_pg; i < ncap; i++)
			na[i] = (peer_group_t){.period = INT64_MIN};
		d->mem += (ncap - rt->n_pg) * sizeof *na;
		rt->n_pg = ncap;
	}
	const group_t *gr = &d->groups[g];
	peer_group_t *pg = &rt->pg[g];
	if (pg->broken || st->u.p.period < pg->period)
		return true;
	if (!sorted_sync(d, pg, gr->n, st->u.p.period))
		return false;
	uint64_t c = st->u.p.count;
	long at = c - 1 <= UINT32_MAX ? sorted_last(pg->sorted, pg->n_sorted, c - 1) : -1;
	if (c > UINT32_MAX || at < 0)
		pg->broken = true;
	else
		pg->sorted[at] = (uint32_t)c;
	return true;
}

/* Order statistic k of the n peers of a member with count x: the sorted counts
 * of the whole group a[0..n] with one x left out at index skip. */
static double peer_at(const uint32_t *a, size_t skip, size_t k)
{
	return (double)a[k < skip ? k : k + 1];
}

/* The robust z of count x against its n peers, from the group's sorted counts
 * a[0..n] (x included at index skip): the same median, MAD and arithmetic as
 * moat_detect_median_mad over the peers' counts, read in order instead of
 * selected. With `upper` (an upper condition against threshold t >= 0) an x
 * below median + t cannot reach t (the scale is at least 1): returns false
 * without the MAD. */
static bool peer_score_sorted(const uint32_t *a, size_t n, size_t skip, double x, bool upper,
			      double t, double *value)
{
	double med = peer_at(a, skip, n / 2);
	if (n % 2 == 0)
		med = (peer_at(a, skip, n / 2 - 1) + med) / 2;
	if (upper && x - med < t)
		return false;
	/* Deviations grow walking away from the median on both sides: merge the
	 * two walks up to the middle deviation(s). */
	size_t r = 0;
	while (r < n && peer_at(a, skip, r) < med)
		r++;
	size_t l = r; /* peers [0, l) lie below the median, walked down from l - 1 */
	double dev_lo = 0, dev_hi = 0;
	for (size_t k = 0; k <= n / 2; k++) {
		double dl = l > 0 ? fabs(peer_at(a, skip, l - 1) - med) : INFINITY;
		double dr = r < n ? fabs(peer_at(a, skip, r) - med) : INFINITY;
		double dv;
		if (dl <= dr) {
			dv = dl;
			l--;
		} else {
			dv = dr;
			r++;
		}
		dev_lo = dev_hi;
		dev_hi = dv;
	}
	double mad = n % 2 ? dev_hi : (dev_lo + dev_hi) / 2;
	double scale = 1.4826 * mad;
	*value = (x - med) / (scale < 1 ? 1 : scale);
	return true;
}

/* Scores principal p's state of a peer or self rule; false if it cannot be
 * scored (too few peers or too little history), else *value is the score. */
static bool score_state(moat_detect_t *d, size_t ri, const principal_t *p, state_t *st,
			double *value, bool *oom)
{
	const rule_t *r = &d->rules->rules[ri];
	double x = (double)st->u.p.count;
	if (r->type == RULE_SELF) {
		size_t n = st->u.p.nhist;
		if ((int)n < r->min_history)
			return false;
		if (r->poisson) {
			double mean = 0;
			for (size_t i = 0; i < n; i++)
				mean += self_hist(st)[i];
			mean /= (double)n;
			*value = moat_detect_poisson_tail(st->u.p.count, mean < 0.1 ? 0.1 : mean);
			return true;
		}
		if (!scratch_reserve(d, n)) {
			*oom = true;
			return false;
		}
		for (size_t i = 0; i < n; i++)
			d->scratch[i] = self_hist(st)[i];
		double med, mad;
		moat_detect_median_mad(d->scratch, n, &med, &mad);
		double scale = 1.4826 * mad;
		*value = (x - med) / (scale < 1 ? 1 : scale);
		return true;
	}
	/* Peer: the same-period counts of the other members of the group. */
	if (p->group < 0)
		return false;
	const group_t *g = &d->groups[p->group];
	if ((int)g->n - 1 < r->min_peers)
		return false;
	if (!scratch_reserve(d, g->n)) {
		*oom = true;
		return false;
	}
	size_t n = 0;
	const rule_rt_t *rt = &d->rt[ri];
	const peer_group_t *pg = (size_t)p->group < rt->n_pg ? &rt->pg[p->group] : NULL;
	bool upper = (r->op == COND_GTE || r->op == COND_GT) && r->threshold >= 0;
	if (pg && !pg->broken && pg->period == st->u.p.period && pg->n_sorted == g->n) {
		long at = sorted_last(pg->sorted, pg->n_sorted, st->u.p.count);
		if (at >= 0)
			return peer_score_sorted(pg->sorted, g->n - 1, (size_t)at, x, upper,
						 r->threshold, value);
	}
	/* Each peer's count is in its own state; a peer with a short body (only
	 * logins so far) has no state for a rule that cannot pass a login. */
	size_t below = 0;
	double lim = x - r->threshold;
	for (size_t i = 0; i < g->n; i++) {
		if (i == p->group_pos)
			continue;
		const principal_t *q = d->prins[g->members[i]];
		double c = 0;
		if (q->full || rt->body_off < d->login_size) {
			const state_t *qs =
			    (const state_t *)(const void *)((const char *)q + rt->body_off);
			if (qs->u.p.period == st->u.p.period)
				c = (double)qs->u.p.count;
		}
		d->scratch[n++] = c;
		below += c <= lim;
	}
	if (upper && below < n / 2)
		return false;
	/* Most checks fail, and for an upper condition (gte/gt t, t >= 0) each of
	 * the three tests above and below only rejects an entry whose score cannot
	 * reach t, so they skip the cost of the full median and MAD without
	 * changing a single result:
	 *  - "x - median >= t * scale" with scale >= 1 needs median <= x - t, so
	 *    at least half the peers at or below x - t (the count above);
	 *  - it needs x - median >= t once the median is known;
	 *  - with t > 0 it needs 1.4826 MAD <= (x - median) / t or scale = 1 (which
	 *    the test before already settled), and MAD <= D needs at least half
	 *    the deviations |c - median| at or below D. D is widened a little so
	 *    that rounding can only let an entry through to the exact score. */
	double med = median_of(d->scratch, n);
	if (upper && x - med < r->threshold)
		return false;
	if (upper && r->threshold > 0) {
		double lim_dev = (x - med) / (1.4826 * r->threshold) * (1 + 1e-9) + 1e-9;
		size_t close = 0;
		for (size_t i = 0; i < n; i++)
			close += fabs(d->scratch[i] - med) <= lim_dev;
		if (close < n / 2 && 1.4826 * lim_dev > 1)
			return false;
	}
	/* The same steps as moat_detect_median_mad, the median reused. */
	for (size_t i = 0; i < n; i++)
		d->scratch[i] = fabs(d->scratch[i] - med);
	double mad = median_of(d->scratch, n);
	double scale = 1.4826 * mad;
	*value = (x - med) / (scale < 1 ? 1 : scale);
	return true;
}

static uint64_t entry_weight(const rule_t *r, const moat_entry_t *e)
{
	if (!r->sum_rows || e->kind != MOAT_ENTRY_EXPORT || e->order_id)
		return 1;
	return e->rows > UINT32_MAX ? UINT32_MAX : (e->rows ? e->rows : 1);
}

static moat_err_t emit(moat_detect_t *d, size_t ri, state_t *st, const char *keystr, const ev_t *x,
		       double value, uint64_t count, moat_error_t *err)
{
	const rule_t *r = &d->rules->rules[ri];
	const moat_entry_t *e = x->e;
	if (st->last_alert != MOAT_TIME_NONE && e->time - st->last_alert < r->suppress &&
	    e->time >= st->last_alert)
		return MOAT_OK;
	st->last_alert = e->time;
	moat_detect_alert_t a;
	memset(&a, 0, sizeof a);
	snprintf(a.id, sizeof a.id, "%s@%llu", r->name, (unsigned long long)x->index);
	a.rule = r->name;
	a.title = r->title ? r->title : r->name;
	a.severity = r->severity;
	a.action = r->action;
	/* The principal acted on: the actor for rules grouped by principal or peer
	 * and for sequences; a rule grouped by source or device concerns the source
	 * (its last entry's username is just the last guess of a stuffer). */
	a.principal = x->p && (r->group_by == FIELD_PRINCIPAL || r->group_by == FIELD_PEER ||
			       r->type == RULE_TEMPORAL)
			  ? x->p->name
			  : NULL;
	a.group_by = rule_field_names[r->group_by];
	a.key = keystr;
	a.time = e->time;
	a.trigger = x->index;
	a.value = value;
	a.threshold = r->threshold;
	a.count = count;
	size_t start = st->ev_n < EVID ? 0 : st->ev_pos;
	for (size_t i = 0; i < st->ev_n; i++)
		a.evidence[i] = ev_ring(d, st)[(start + i) % EVID];
	a.n_evidence = st->ev_n;
	a.replay = x->index < d->quiet;
	if (d->on_alert && d->on_alert(d->alert_ctx, &a) != 0)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL, "could not record alert %s", a.id);
	return MOAT_OK;
}

static moat_err_t run_rule(moat_detect_t *d, size_t ri, ev_t *x, moat_error_t *err)
{
	const rule_t *r = &d->rules->rules[ri];
	const moat_entry_t *e = x->e;
	if (r->type != RULE_TEMPORAL) {
		if (x->v && verdict_has(x->v->fail, ri))
			return MOAT_OK;
		if (!(x->v && verdict_has(x->v->pass, ri)) && !filter_pass(&r->filter, x))
			return MOAT_OK;
	}
	if (r->type == RULE_TEMPORAL) {
		/* Does any step signal on this entry? */
		bool any = false;
		for (int i = 0; i < r->n_steps; i++)
			any |= d->sig[r->steps[i]];
		if (!any)
			return MOAT_OK;
	}
	if (r->type == RULE_MATCH && !r->alert) {
		/* A building block: it signals, it keeps nothing. */
		d->sig[ri] = true;
		d->sig_state[ri] = NULL;
		return MOAT_OK;
	}
	uint64_t key;
	const char *keystr;
	if (!field_of(d, x, r->group_by, &key, &keystr))
		return MOAT_OK;
	rule_rt_t *rt = &d->rt[ri];
	if (r->type == RULE_TEMPORAL && !d->sig[r->steps[0]] &&
	    (!state_exists(d, ri, key, x) ||
	     (rt->seq_bit >= 0 && x->p && !(x->p->seqs & (1u << rt->seq_bit)))))
		return MOAT_OK; /* no sequence under way for this group */
	state_t *st = state_get(d, ri, key, keystr, x, &keystr);
	if (!st)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	int64_t idx = floordiv_cached(&rt->wdiv, e->time, rt->width);
	double value = 0;
	uint64_t count = 0;
	bool holds = false;

	switch (r->type) {
	case RULE_MATCH:
		if (!evidence_push(d, st, x->index))
			goto oom;
		holds = true;
		value = count = 1;
		break;
	case RULE_EVENT_COUNT:
		if (!evidence_push(d, st, x->index))
			goto oom;
		win_add(&st->u.w.a, idx, (uint32_t)entry_weight(r, e));
		count = st->u.w.a.total;
		value = (double)count;
		holds = cond_holds(r->op, value, r->threshold);
		break;
	case RULE_VALUE_COUNT: {
		uint64_t vh;
		const char *vs;
		if (!field_of(d, x, r->field, &vh, &vs))
			return MOAT_OK;
		if (!evidence_push(d, st, x->index))
			goto oom;
		if (!vset_add(&st->u.w.x.vs, &st->u.w.a, vh, idx, &d->mem))
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		count = st->u.w.a.total;
		value = (double)count;
		holds = cond_holds(r->op, value, r->threshold);
		break;
	}
	case RULE_RATIO: {
		win_add(&st->u.w.a, idx, 1);
		bool num = filter_pass(&r->numerator, x);
		if (num) {
			if (!evidence_push(d, st, x->index))
				goto oom;
			win_add(&st->u.w.x.b, idx, 1);
		} else {
			win_advance(&st->u.w.x.b, idx);
		}
		count = st->u.w.a.total;
		value = count ? (double)st->u.w.x.b.total / (double)count : 0;
		holds = (double)count >= r->min && cond_holds(r->op, value, r->threshold);
		break;
	}
	case RULE_PEER:
	case RULE_SELF: {
		int64_t pidx = floordiv_cached(&rt->pdiv, e->time, r->period);
		period_roll(r, st, pidx);
		if (pidx < st->u.p.period)
			return MOAT_OK; /* late entry for a closed period */
		st->u.p.count++;
		if (r->type == RULE_PEER && !peer_count_set(d, ri, x->p, st))
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		if (!evidence_push(d, st, x->index))
			goto oom;
		count = st->u.p.count;
		uint64_t min = rt->min_count, every = rt->every;
		if (count < min || (count - min) % every != 0)
			break;
		if (st->last_alert != MOAT_TIME_NONE && e->time - st->last_alert < r->suppress &&
		    e->time >= st->last_alert)
			break; /* would be suppressed anyway; skip the scoring cost */
		bool oom = false;
		if (score_state(d, ri, x->p, st, &value, &oom))
			holds = cond_holds(r->op, value, r->threshold);
		if (oom)
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		break;
	}
	case RULE_TEMPORAL: {
		if (st->u.t.step > 0 && e->time - st->u.t.t0 > r->timespan)
			st->u.t.step = 0;
		int step = st->u.t.step;
		if (step > 0 && d->sig[r->steps[step]]) {
			if (!evidence_copy(d, st, d->sig_state[r->steps[step]]) ||
			    !evidence_push_once(d, st, x->index))
				goto oom;
			st->u.t.step = ++step;
			if (step == r->n_steps) {
				holds = true;
				st->u.t.step = 0;
			}
		} else if (d->sig[r->steps[0]]) {
			if (step <= 1) {
				/* (Re)start at the most recent first step. */
				st->ev_n = st->ev_pos = 0;
				if (!evidence_copy(d, st, d->sig_state[r->steps[0]]) ||
				    !evidence_push_once(d, st, x->index))
					goto oom;
				st->u.t.step = 1;
				st->u.t.t0 = e->time;
			}
		}
		value = count = (uint64_t)st->u.t.step;
		if (holds)
			value = count = (uint64_t)r->n_steps;
		if (rt->seq_bit >= 0 && x->p) {
			uint16_t bit = (uint16_t)(1u << rt->seq_bit);
			x->p->seqs = st->u.t.step > 0 ? (uint16_t)(x->p->seqs | bit)
						      : (uint16_t)(x->p->seqs & ~bit);
		}
		break;
	}
	default:
		break;
	}
	if (!holds)
		return MOAT_OK;
	d->sig[ri] = true;
	d->sig_state[ri] = st;
	if (!r->alert)
		return MOAT_OK;
	return emit(d, ri, st, keystr, x, value, count, err);
oom:
	return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
}

/* The engine's state does not fit in cache (a few KiB per principal), so an
 * entry costs cache misses in the principal's body. Asking for every line this
 * kind of entry reads at once lets the misses overlap instead of being paid one
 * after another as the rules run. Hints only: nothing is read. */
static void prefetch_body(const moat_detect_t *d, const principal_t *p, const moat_entry_t *e)
{
	const char *b = (const char *)p;
	for (size_t i = 0; i < d->n_lines[e->kind]; i++)
		__builtin_prefetch(b + (size_t)d->lines[e->kind][i] * 64);
	if (e->kind != MOAT_ENTRY_LOGIN) {
		const features_t *f = feat_of(d, p);
		const uint32_t *row = f->b[slot(floordiv(e->time, FEATURE_WINDOW_MS / WIN_BUCKETS))];
		__builtin_prefetch(row);
		__builtin_prefetch(row + F_COUNT - 1);
	}
}

/* Whether a read or export showed a personal field in plaintext (FULL or
 * VIRTUAL) and in full. */
static void views_of(const moat_entry_t *e, int *plaintext, int *full)
{
	static const moat_field_t personal[] = {MOAT_FIELD_NAME, MOAT_FIELD_PHONE,
						MOAT_FIELD_ADDRESS, MOAT_FIELD_ID_NUMBER};
	if (e->kind != MOAT_ENTRY_ACCESS && e->kind != MOAT_ENTRY_EXPORT)
		return;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(personal); i++) {
		moat_view_t v = e->views[personal[i]];
		if (v == MOAT_VIEW_FULL || v == MOAT_VIEW_VIRTUAL)
			*plaintext = 1;
		if (v == MOAT_VIEW_FULL)
			*full = 1;
	}
}

/* Does the engine judge this kind of entry? */
static bool judged(moat_entry_kind_t kind)
{
	return kind == MOAT_ENTRY_ACCESS || kind == MOAT_ENTRY_DENY || kind == MOAT_ENTRY_LOGIN ||
	       kind == MOAT_ENTRY_EXPORT;
}

/* Judges one entry. phash is the hash of its principal's name and order_h that
 * of its order id when the caller has them, else 0; `prefetched`: the caller
 * already asked for the lines of the principal's body the entry reads. */
static moat_err_t feed_one(moat_detect_t *d, uint64_t index, const moat_entry_t *e, uint64_t phash,
			   uint64_t order_h, bool prefetched, const verdicts_t *v,
			   moat_error_t *err)
{
	if (!judged(e->kind))
		return MOAT_OK;
	if (d->any_index && index <= d->last_index)
		return moat_error_set(err, MOAT_EINVAL, "index",
				      "entry index %llu is not after %llu (entries must come in "
				      "ledger order)",
				      (unsigned long long)index, (unsigned long long)d->last_index);
	d->any_index = true;
	d->last_index = index;

	ev_t x = {.e = e,
		  .v = v,
		  .index = index,
		  .role_bit = 1u << MOAT_ROLE_COUNT,
		  .order_h = order_h};
	if (e->principal && *e->principal) {
		moat_err_t rc = MOAT_OK;
		x.phash = phash ? phash : hash_str(e->principal);
		x.p =
		    principal_get(d, e->principal, x.phash, e->kind != MOAT_ENTRY_LOGIN, &rc, err);
		if (!x.p)
			return rc;
		if (!prefetched)
			prefetch_body(d, x.p, e);
		if (x.p->known)
			x.role_bit = 1u << x.p->role;
		x.off_shift = e->kind != MOAT_ENTRY_LOGIN && is_off_shift(d, x.p, e->time);
		/* New source or device: only once the principal has a history, and only
		 * remembered on entries that are not failed logins (a stuffer's guesses
		 * must not teach the account new "known" sources). */
		bool learn = !(e->kind == MOAT_ENTRY_LOGIN && e->result != MOAT_RESULT_SUCCESS);
		if (learn) {
			bool warm = x.p->entries >= NEW_WARMUP;
			if (e->ip && *e->ip &&
			    remember(x.p->ips, &x.p->n_ips, &x.p->ip_pos, hash_str(e->ip)) && warm)
				x.new_bits |= NEW_IP;
			if (e->device && *e->device &&
			    remember(x.p->devices, &x.p->n_devices, &x.p->device_pos,
				     hash_str(e->device)) &&
			    warm)
				x.new_bits |= NEW_DEVICE;
			x.p->entries++;
		}
	}
	views_of(e, &x.plaintext, &x.full);
	if (e->kind == MOAT_ENTRY_DENY) {
		x.refusal = e->detail && strcmp(e->detail, "quota") == 0 ? REFUSAL_QUOTA
									 : REFUSAL_POLICY;
		/* A quota refusal means the quota of the day is spent. */
		if (x.refusal == REFUSAL_QUOTA)
			x.quota_share = 1;
	}
	if (x.p && !update_features(d, &x))
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	/* Only the rules that can pass this kind of entry run; the others neither
	 * count nor signal. */
	memset(d->sig, 0, d->rules->n * sizeof d->sig[0]);
	for (size_t i = 0; i < d->n_run[e->kind]; i++) {
		moat_err_t rc = run_rule(d, d->run[e->kind][i], &x, err);
		if (rc != MOAT_OK)
			return rc;
	}
	return MOAT_OK;
}

moat_err_t moat_detect_feed(moat_detect_t *d, uint64_t index, const moat_entry_t *e,
			    moat_error_t *err)
{
	return feed_one(d, index, e, 0, 0, false, NULL, err);
}

/* The lines of p's body any entry of this kind reads before its rules run: the
 * principal, and for other entries than logins the features' head, the bucket
 * the entry counts in and the distinct-order window and set. Hints only. */
static void prefetch_head(const moat_detect_t *d, const principal_t *p, const moat_entry_t *e)
{
	const char *b = (const char *)p;
	if (e->kind == MOAT_ENTRY_LOGIN) {
		prefetch_body(d, p, e); /* a few lines: the login-class states */
		return;
	}
	for (size_t off = 0; off < sizeof(principal_t); off += 64)
		__builtin_prefetch(b + off);
	const features_t *f = feat_of(d, p);
	const uint32_t *row = f->b[slot(floordiv(e->time, FEATURE_WINDOW_MS / WIN_BUCKETS))];
	for (size_t off = 0; off < offsetof(features_t, b); off += 64)
		__builtin_prefetch((const char *)f + off);
	__builtin_prefetch(row);
	__builtin_prefetch(row + F_COUNT - 1);
}

/* Asks for the states of the rules whose filter the entry of principal p may
 * pass (all but the new ip/device terms are decided from the entry and p's
 * record, which must be in cache or on its way), their peer counts, and the slot
 * of the entry's order in p's distinct-order set. Most entries pass few of the
 * filters, so this asks for a few lines where prefetch_body asks for all. */
static size_t prefetch_states(const moat_detect_t *d, const principal_t *p, const moat_entry_t *e,
			      uint64_t order_h, uint8_t *rings, verdicts_t *v)
{
	size_t n_rings = 0;
	if (order_h) {
		const oset_t *s = &feat_of(d, p)->orders;
		if (s->cap)
			__builtin_prefetch(&s->e[os_home(os_tag(order_h), s->cap)]);
	}
	/* Terms not known yet (new ip/device, quota share) are taken to pass. */
	ev_t x = {.e = e,
		  .new_bits = NEW_IP | NEW_DEVICE,
		  .role_bit = 1u << MOAT_ROLE_COUNT,
		  .refusal = REFUSAL_QUOTA | REFUSAL_POLICY,
		  .quota_share = INFINITY};
	if (p->known)
		x.role_bit = 1u << p->role;
	x.off_shift = is_off_shift(d, p, e->time);
	views_of(e, &x.plaintext, &x.full);
	for (size_t i = 0; i < d->n_run[e->kind]; i++) {
		size_t ri = d->run[e->kind][i];
		const rule_rt_t *rt = &d->rt[ri];
		const rule_t *r = &d->rules->rules[ri];
		if (!rt->body_off || r->type == RULE_TEMPORAL)
			continue;
		/* The terms taken to pass can only let more entries through, so a
		 * filter failing here fails on the entry; one passing is decided if
		 * it has none of them. The principal's record they read stays as it
		 * is until the entry is judged (a full body does not move). */
		if (!filter_pass(&r->filter, &x)) {
			verdict_set(v->fail, ri);
			continue;
		}
		if (!r->filter.new_mask && !r->filter.refusals && !(r->filter.quota_share > 0))
			verdict_set(v->pass, ri);
		const char *st = (const char *)p + rt->body_off;
		for (size_t off = 0; off < rt->body_touch; off += 64)
			__builtin_prefetch(st + off);
		__builtin_prefetch(st + rt->body_touch - 1);
		/* Rules that push the entry to their evidence whenever the filter
		 * passes (a ratio only when the numerator passes too). */
		if (r->type != RULE_TEMPORAL && r->type != RULE_MATCH &&
		    (r->type != RULE_RATIO || filter_pass(&r->numerator, &x)))
			rings[n_rings++] = (uint8_t)ri;
		if (r->type == RULE_PEER && p->group >= 0 && (size_t)p->group < rt->n_pg) {
			const peer_group_t *pg = &rt->pg[p->group];
			for (size_t k = 0; k < pg->n_sorted; k += 16)
				__builtin_prefetch(&pg->sorted[k], 1);
		}
	}
	return n_rings;
}

/* Asks for the evidence slots the entry's states will write next: where they
 * are is only known once the states' first lines (asked for by
 * prefetch_states) have come in. Hints only. */
static void prefetch_rings(const moat_detect_t *d, const principal_t *p, const uint8_t *rings,
			   size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const state_t *st = (const state_t *)(const void *)((const char *)p +
								    d->rt[rings[i]].body_off);
		if (st->ring)
			__builtin_prefetch(&ev_ring(d, st)[st->ev_pos], 1);
	}
}

/* Where the loads of moat_detect_feed_batch go so they are not optimised out. */
static volatile bool touch_sink;

moat_err_t moat_detect_feed_batch(moat_detect_t *d, const uint64_t *index, const moat_entry_t *es,
				  size_t n, moat_error_t *err)
{
	uint64_t ph[FEED_BATCH], oh[FEED_BATCH];
	principal_t *pp[FEED_BATCH];
	uint8_t rings[FEED_BATCH][MOAT_DETECT_RULES_MAX];
	verdicts_t vs[FEED_BATCH];
	size_t n_rings[FEED_BATCH];
	bool touched = false;
	for (size_t at = 0; at < n; at += FEED_BATCH) {
		const moat_entry_t *b = es + at;
		size_t m = n - at < FEED_BATCH ? n - at : FEED_BATCH;
		/* Three passes of independent misses, each waiting only on the one
		 * before: the map slots, then the principals' records and features,
		 * then the states their entries will touch and the order sets. The
		 * principals are only looked up here; the entries are judged one by
		 * one, in order, after. */
		for (size_t j = 0; j < m; j++) {
			ph[j] = oh[j] = 0;
			pp[j] = NULL;
			if (!judged(b[j].kind) || !b[j].principal || !*b[j].principal)
				continue;
			ph[j] = hash_str(b[j].principal);
			if (d->pmap.cap)
				__builtin_prefetch(&d->pmap.s[ph[j] & (d->pmap.cap - 1)]);
		}
		for (size_t j = 0; j < m; j++) {
			uint64_t v;
			if (!ph[j] || !keymap_get(&d->pmap, ph[j], &v))
				continue;
			pp[j] = (principal_t *)(uintptr_t)v;
			prefetch_head(d, pp[j], &b[j]);
			/* A load, not only a hint: pass 3 reads this line first,
			 * and on the (virtualised, 4 KiB-page) machine measured the
			 * hinted lines were often not there yet when it did (a hint
			 * that misses the TLB may be dropped); a load per entry,
			 * whose value nothing waits for, overlaps the 16 misses and
			 * measured 5-8% fewer CPU seconds in bench_detect. */
			touched |= *(volatile const bool *)&pp[j]->full;
		}
		for (size_t j = 0; j < m; j++) {
			n_rings[j] = 0;
			memset(&vs[j], 0, sizeof vs[j]);
			if (!pp[j] || !pp[j]->full || b[j].kind == MOAT_ENTRY_LOGIN)
				continue;
			if (b[j].kind == MOAT_ENTRY_ACCESS && b[j].order_id)
				oh[j] = hash_str(b[j].order_id);
			n_rings[j] = prefetch_states(d, pp[j], &b[j], oh[j], rings[j], &vs[j]);
		}
		for (size_t j = 0; j < m; j++)
			if (n_rings[j])
				prefetch_rings(d, pp[j], rings[j], n_rings[j]);
		for (size_t j = 0; j < m; j++) {
			moat_err_t rc =
			    feed_one(d, index[at + j], &b[j], ph[j], oh[j], pp[j] != NULL, &vs[j], err);
			if (rc != MOAT_OK)
				return rc;
		}
	}
	touch_sink = touched;
	return MOAT_OK;
}
