/*
 * The exposure index: who received which order's fields in plaintext, and when.
 *
 * Layout. Orders, principals and parties are interned to dense 32-bit numbers.
 * The index proper is a compressed-sparse-row array over orders: for order o,
 * rec[off[o] .. off[o+1]) are its records, sorted by principal then time, each one
 * 8 bytes — principal number (24 bits) and field bits (8 bits) in one word, the
 * time in seconds in the other. A record is kept only if it adds a field the
 * principal had not received for that order before, so a courier who opens the
 * same order five times costs one record, and the index grows with distinct
 * (principal, order, new fields) rather than with events.
 *
 * New entries go to an append-only tail (12 bytes each) which is folded into the
 * rows by compact() before any query, and when it grows past a fraction of the
 * rows. A small direct-mapped cache of recent (order, principal, fields) drops
 * repeats before they reach the tail.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "moat/trace.h"
#include "trace/trace_internal.h"

/* ---- string dictionary ------------------------------------------------------------ */

static uint64_t hash_str(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

void trace_dict_free(trace_dict_t *d)
{
	free(d->pool);
	free(d->off);
	free(d->slots);
	memset(d, 0, sizeof *d);
}

const char *trace_dict_str(const trace_dict_t *d, uint32_t id)
{
	return d->pool + d->off[id];
}

int64_t trace_dict_find_plain(const trace_dict_t *d, const char *s)
{
	if (!d->nslots)
		return -1;
	size_t n = strlen(s);
	uint32_t mask = d->nslots - 1;
	for (uint32_t i = (uint32_t)hash_str(s, n) & mask;; i = (i + 1) & mask) {
		uint32_t v = d->slots[i];
		if (!v)
			return -1;
		const char *t = d->pool + d->off[v - 1];
		if (strncmp(t, s, n) == 0 && t[n] == '\0')
			return v - 1;
	}
}

static moat_err_t dict_grow_slots(trace_dict_t *d)
{
	uint32_t ns = d->nslots ? d->nslots * 2 : 1024;
	uint32_t *slots = calloc(ns, sizeof *slots);
	if (!slots)
		return MOAT_ENOMEM;
	for (uint32_t id = 0; id < d->n; id++) {
		const char *s = d->pool + d->off[id];
		uint32_t i = (uint32_t)hash_str(s, strlen(s)) & (ns - 1);
		while (slots[i])
			i = (i + 1) & (ns - 1);
		slots[i] = id + 1;
	}
	free(d->slots);
	d->slots = slots;
	d->nslots = ns;
	return MOAT_OK;
}

moat_err_t trace_dict_intern(trace_dict_t *d, const char *s, uint32_t limit, uint32_t *id,
			     bool *added)
{
	*added = false;
	int64_t f = trace_dict_find_plain(d, s);
	if (f >= 0) {
		*id = (uint32_t)f;
		return MOAT_OK;
	}
	if (d->n >= limit)
		return MOAT_ELIMIT;
	size_t n = strlen(s);
	/* Keep the table at most half full so probes stay short. */
	if ((uint64_t)(d->n + 1) * 2 > d->nslots && dict_grow_slots(d) != MOAT_OK)
		return MOAT_ENOMEM;
	if (d->pool_len + n + 1 > d->pool_cap) {
		size_t nc = d->pool_cap ? d->pool_cap * 2 : 4096;
		while (nc < d->pool_len + n + 1)
			nc *= 2;
		if (nc > UINT32_MAX)
			return MOAT_ELIMIT;
		char *p = realloc(d->pool, nc);
		if (!p)
			return MOAT_ENOMEM;
		d->pool = p;
		d->pool_cap = nc;
	}
	if (d->n == d->off_cap) {
		uint32_t nc = d->off_cap ? d->off_cap * 2 : 256;
		uint32_t *o = realloc(d->off, (size_t)nc * sizeof *o);
		if (!o)
			return MOAT_ENOMEM;
		d->off = o;
		d->off_cap = nc;
	}
	memcpy(d->pool + d->pool_len, s, n + 1);
	d->off[d->n] = (uint32_t)d->pool_len;
	d->pool_len += n + 1;
	uint32_t mask = d->nslots - 1;
	uint32_t i = (uint32_t)hash_str(s, n) & mask;
	while (d->slots[i])
		i = (i + 1) & mask;
	d->slots[i] = d->n + 1;
	*id = d->n++;
	*added = true;
	return MOAT_OK;
}

size_t trace_dict_bytes(const trace_dict_t *d)
{
	return d->pool_cap + (size_t)d->off_cap * 4 + (size_t)d->nslots * 4;
}

/* ---- index ------------------------------------------------------------------------ */

static moat_err_t compact_rows(moat_exposure_t *x, bool keep_cache) MOAT_MUST_CHECK;

moat_exposure_t *moat_exposure_new(void)
{
	moat_exposure_t *x = calloc(1, sizeof(moat_exposure_t));
	if (x)
		trace_odict_init(&x->orders);
	return x;
}

void moat_exposure_free(moat_exposure_t *x)
{
	if (!x)
		return;
	trace_odict_free(&x->orders);
	trace_dict_free(&x->principals);
	trace_dict_free(&x->parties);
	free(x->order_first);
	free(x->order_flags);
	free(x->principal_party);
	free(x->off);
	free(x->rpm);
	free(x->rdt);
	free(x->ovf_idx);
	free(x->ovf_t);
	free(x->principal_fields);
	free(x->tail);
	free(x->cache);
	free(x);
}

uint64_t moat_exposure_cursor(const moat_exposure_t *x)
{
	return x->cursor;
}

/* Milliseconds to whole seconds, rounded up, clamped to the u32 range. */
static uint32_t secs_up(moat_time_t ms)
{
	if (ms <= 0)
		return 0;
	int64_t s = (ms + 999) / 1000;
	return s > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* True when a record stamped `t` (seconds, rounded up) happened by `at` (ms). */
static inline bool by_time(int64_t t, moat_time_t at)
{
	return t * 1000 <= at;
}

static moat_err_t grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
	if (need <= *cap)
		return MOAT_OK;
	uint64_t nc = *cap ? *cap : 1024;
	while (nc < need)
		nc *= 2;
	if (nc > UINT32_MAX)
		nc = UINT32_MAX;
	void *q = realloc(*p, nc * elem);
	if (!q)
		return MOAT_ENOMEM;
	memset((char *)q + (size_t)*cap * elem, 0, (nc - *cap) * elem);
	*p = q;
	*cap = (uint32_t)nc;
	return MOAT_OK;
}

static moat_err_t intern_order(moat_exposure_t *x, const char *id, uint32_t first, uint32_t *o,
			       moat_error_t *err)
{
	bool added;
	moat_err_t rc = trace_odict_intern(&x->orders, id, MOAT_EXPOSURE_MAX_ORDERS, o, &added);
	if (rc != MOAT_OK)
		return moat_error_set(err, rc, "order_id", "exposure index: cannot add order %s",
				      rc == MOAT_ENOMEM ? "(out of memory)"
				      : x->orders.n >= MOAT_EXPOSURE_MAX_ORDERS
					  ? "(too many orders)"
					  : "(empty or longer than 255 bytes)");
	if (grow((void **)&x->order_first, &x->order_cap, x->orders.n, sizeof *x->order_first) !=
		MOAT_OK ||
	    grow((void **)&x->order_flags, &x->order_flags_cap, x->orders.n, 1) != MOAT_OK)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "exposure index: out of memory");
	/* The first sighting is the base of the order's record times; an entry that
	 * arrives later with an earlier time is placed at the base (later than it
	 * happened, never earlier). */
	if (added)
		x->order_first[*o] = first;
	/* An order known only as a honey order (first = UINT32_MAX) takes its base
	 * from its first access; it has no records yet, so none moves. */
	else if (x->order_first[*o] == UINT32_MAX)
		x->order_first[*o] = first;
	return MOAT_OK;
}

static moat_err_t intern_principal(moat_exposure_t *x, const char *id, uint32_t *p,
				   moat_error_t *err)
{
	bool added;
	moat_err_t rc =
	    trace_dict_intern(&x->principals, id, MOAT_EXPOSURE_MAX_PRINCIPALS, p, &added);
	if (rc != MOAT_OK)
		return moat_error_set(
		    err, rc, "principal", "exposure index: cannot add principal %s",
		    rc == MOAT_ENOMEM ? "(out of memory)" : "(too many principals)");
	uint32_t old = x->principal_cap;
	if (grow((void **)&x->principal_party, &x->principal_cap, x->principals.n,
		 sizeof *x->principal_party) != MOAT_OK)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "exposure index: out of memory");
	for (uint32_t i = old; i < x->principal_cap; i++)
		x->principal_party[i] = TRACE_NO_PARTY;
	return MOAT_OK;
}

moat_err_t moat_exposure_set_party(moat_exposure_t *x, const char *principal, const char *party,
				   moat_error_t *err)
{
	uint32_t p, q;
	bool added;
	moat_err_t rc = intern_principal(x, principal, &p, err);
	if (rc != MOAT_OK)
		return rc;
	rc = trace_dict_intern(&x->parties, party, MOAT_EXPOSURE_MAX_PRINCIPALS, &q, &added);
	if (rc != MOAT_OK)
		return moat_error_set(err, rc, "party", "exposure index: cannot add party");
	x->principal_party[p] = q;
	return MOAT_OK;
}

moat_err_t moat_exposure_set_honey(moat_exposure_t *x, const char *order_id, moat_error_t *err)
{
	uint32_t o;
	moat_err_t rc = intern_order(x, order_id, UINT32_MAX, &o, err);
	if (rc != MOAT_OK)
		return rc;
	x->order_flags[o] |= TRACE_ORDER_HONEY;
	return MOAT_OK;
}

bool moat_exposure_is_honey(const moat_exposure_t *x, const char *order_id)
{
	int64_t o = trace_dict_find(&x->orders, order_id);
	return o >= 0 && (x->order_flags[o] & TRACE_ORDER_HONEY);
}

#define CACHE_SLOTS (1u << 16)

typedef struct cache_slot {
	uint32_t order, pm, t;
} cache_slot_t;

/* Field bits an access or export entry revealed. */
static unsigned entry_fields(const moat_entry_t *e)
{
	unsigned m = 0;
	for (int f = 0; f < MOAT_FIELD_COUNT; f++)
		if (e->views[f] == MOAT_VIEW_FULL)
			m |= 1u << f;
	if (e->views[MOAT_FIELD_PHONE] == MOAT_VIEW_VIRTUAL)
		m |= MOAT_EXPOSURE_VIRTUAL_PHONE;
	return m;
}

moat_err_t moat_exposure_add(moat_exposure_t *x, uint64_t ledger_index, const moat_entry_t *e,
			     moat_error_t *err)
{
	if (ledger_index < x->cursor)
		return MOAT_OK; /* already applied: replay after a restart */
	if ((e->kind == MOAT_ENTRY_ACCESS || e->kind == MOAT_ENTRY_EXPORT) && e->order_id &&
	    e->principal) {
		uint32_t t = secs_up(e->time), o, p;
		moat_err_t rc = intern_order(x, e->order_id, t, &o, err);
		if (rc == MOAT_OK)
			rc = intern_principal(x, e->principal, &p, err);
		if (rc != MOAT_OK)
			return rc;
		unsigned fields = entry_fields(e);
		if (fields) {
			x->exposures++;
			uint32_t pm = p << 8 | fields;
			if (!x->cache && !(x->cache = calloc(CACHE_SLOTS, sizeof(cache_slot_t))))
				return moat_error_set(err, MOAT_ENOMEM, NULL,
						      "exposure index: out of memory");
			cache_slot_t *c = &(
			    (cache_slot_t *)x
				->cache)[(uint32_t)(((uint64_t)o * 0x9E3779B1u) ^ p * 0x85EBCA77u) &
					 (CACHE_SLOTS - 1)];
			/* A repeat of what this pair already had, at a later time, adds nothing. */
			bool repeat = c->order == o + 1 && (c->pm >> 8) == p &&
				      (fields & ~(c->pm & 0xffu)) == 0 && c->t <= t;
			if (!repeat) {
				if (x->ntail == x->tail_cap) {
					size_t nc = x->tail_cap ? x->tail_cap * 2 : 4096;
					trace_tail_t *nt = realloc(x->tail, nc * sizeof *nt);
					if (!nt)
						return moat_error_set(
						    err, MOAT_ENOMEM, NULL,
						    "exposure index: out of memory");
					x->tail = nt;
					x->tail_cap = nc;
				}
				x->tail[x->ntail++] = (trace_tail_t){o, pm, t};
				if (c->order == o + 1 && (c->pm >> 8) == p && c->t <= t)
					c->pm |= fields;
				else
					*c = (cache_slot_t){o + 1, pm, t};
				/* Fold the tail in once it is a sizeable share of the rows, so
				 * the build's peak memory stays near the compact size. */
				if (x->ntail >= (1u << 20) && x->ntail * 4 >= x->nrec) {
					moat_err_t crc = compact_rows(x, true);
					if (crc != MOAT_OK)
						return moat_error_set(
						    err, crc, NULL,
						    "exposure index: out of memory");
				}
			}
		}
	}
	x->entries++;
	x->cursor = ledger_index + 1;
	return MOAT_OK;
}

static int cmp_rec(const void *a, const void *b)
{
	const trace_rec_t *x = a, *y = b;
	uint32_t px = x->pm >> 8, py = y->pm >> 8;
	if (px != py)
		return px < py ? -1 : 1;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return 0;
}

static void sort_recs(trace_rec_t *r, size_t n)
{
	if (n > 24) {
		qsort(r, n, sizeof *r, cmp_rec);
		return;
	}
	for (size_t i = 1; i < n; i++) {
		trace_rec_t v = r[i];
		size_t j = i;
		while (j > 0 && cmp_rec(&r[j - 1], &v) > 0) {
			r[j] = r[j - 1];
			j--;
		}
		r[j] = v;
	}
}

/* Folds the tail and the recent order ids in; renumbers orders when the order
 * dictionary's merge moves any. Everything that may fail is allocated before
 * anything changes, so a failure leaves the index as it was. keep_cache: the
 * repeat cache is kept (building) or freed (a query, which is when the memory
 * is counted). */
static moat_err_t compact_rows(moat_exposure_t *x, bool keep_cache)
{
	uint32_t no = x->orders.n;
	if (x->ntail == 0 && x->off_orders == no && x->off && x->orders.recent.n == 0) {
		if (!keep_cache) {
			free(x->cache);
			x->cache = NULL;
		}
		return MOAT_OK;
	}
	trace_odict_plan_t plan;
	moat_err_t rc = trace_odict_plan(&x->orders, &plan);
	if (rc != MOAT_OK)
		return rc;
	const uint32_t *map = plan.map;
	size_t total = x->nrec + x->ntail, w = 0, novf = 0;
	uint32_t *noff = calloc((size_t)no + 1, sizeof *noff);
	uint32_t *fill = malloc(((size_t)no + 1) * sizeof *fill);
	trace_rec_t *nrec = malloc((total ? total : 1) * sizeof *nrec);
	uint32_t *nfirst = malloc((no ? no : 1) * sizeof *nfirst);
	uint8_t *nflags = malloc(no ? no : 1);
	uint32_t *rpm = NULL, *ovf_idx = NULL, *ovf_t = NULL;
	uint16_t *rdt = NULL;
	uint32_t np = x->principals.n;
	uint8_t *pfields = calloc((size_t)np + 1, 1);
	rc = MOAT_ENOMEM;
	if (!noff || !fill || !nrec || !nfirst || !nflags || !pfields)
		goto fail;
	/* Per-order data under the new numbers, trimmed to the order count. */
	for (uint32_t o = 0; o < no; o++) {
		nfirst[map ? map[o] : o] = x->order_first[o];
		nflags[map ? map[o] : o] = x->order_flags[o];
	}
	/* Counting sort of old rows and tail by (new) order; old rows come first. */
	for (uint32_t o = 0; o < x->off_orders; o++)
		noff[(map ? map[o] : o) + 1] = x->off[o + 1] - x->off[o];
	for (size_t i = 0; i < x->ntail; i++)
		noff[(map ? map[x->tail[i].order] : x->tail[i].order) + 1]++;
	for (uint32_t o = 0; o < no; o++)
		noff[o + 1] += noff[o];
	memcpy(fill, noff, ((size_t)no + 1) * sizeof *fill);
	for (uint32_t o = 0; o < x->off_orders; o++) {
		uint32_t n = map ? map[o] : o;
		for (uint32_t i = x->off[o]; i < x->off[o + 1]; i++)
			nrec[fill[n]++] =
			    (trace_rec_t){x->rpm[i], (uint32_t)trace_rec_time(x, o, i)};
	}
	for (size_t i = 0; i < x->ntail; i++) {
		uint32_t n = map ? map[x->tail[i].order] : x->tail[i].order;
		nrec[fill[n]++] = (trace_rec_t){x->tail[i].pm, x->tail[i].t};
	}
	/* Per order: sort by (principal, time), then keep only records that add a
	 * field; the write position never passes the read position. */
	uint32_t start = 0;
	for (uint32_t o = 0; o < no; o++) {
		uint32_t end = noff[o + 1];
		sort_recs(nrec + start, end - start);
		noff[o] = (uint32_t)w;
		uint32_t cur = UINT32_MAX, acc = 0;
		for (uint32_t i = start; i < end; i++) {
			uint32_t p = nrec[i].pm >> 8, f = nrec[i].pm & 0xffu;
			if (p != cur) {
				cur = p;
				acc = 0;
			}
			if (f & ~acc) {
				acc |= f;
				nrec[w++] = nrec[i];
			}
		}
		start = end;
	}
	noff[no] = (uint32_t)w;
	/* Encode: minutes after the order's base, rounded up; far ones overflow. */
	for (uint32_t o = 0; o < no; o++)
		for (uint32_t i = noff[o]; i < noff[o + 1]; i++)
			if (trace_dt_minutes(nfirst[o], nrec[i].t) >= TRACE_DT_OVERFLOW)
				novf++;
	rpm = malloc((w ? w : 1) * sizeof *rpm);
	rdt = malloc((w ? w : 1) * sizeof *rdt);
	ovf_idx = malloc((novf ? novf : 1) * sizeof *ovf_idx);
	ovf_t = malloc((novf ? novf : 1) * sizeof *ovf_t);
	if (!rpm || !rdt || !ovf_idx || !ovf_t)
		goto fail;
	novf = 0;
	for (uint32_t o = 0; o < no; o++) {
		for (uint32_t i = noff[o]; i < noff[o + 1]; i++) {
			uint32_t t = nrec[i].t, d = trace_dt_minutes(nfirst[o], t);
			rpm[i] = nrec[i].pm;
			pfields[rpm[i] >> 8] |= (uint8_t)rpm[i];
			if (d >= TRACE_DT_OVERFLOW) {
				rdt[i] = TRACE_DT_OVERFLOW;
				ovf_idx[novf] = i;
				ovf_t[novf++] = t;
			} else {
				rdt[i] = (uint16_t)d;
			}
		}
	}
	/* Nothing fails from here on. */
	trace_odict_commit(&x->orders, &plan);
	if (map || !keep_cache) {
		free(x->cache); /* keyed by order numbers */
		x->cache = NULL;
	}
	free(nrec);
	free(fill);
	free(x->rpm);
	free(x->rdt);
	free(x->ovf_idx);
	free(x->ovf_t);
	free(x->principal_fields);
	free(x->off);
	free(x->order_first);
	free(x->order_flags);
	x->order_first = nfirst;
	x->order_flags = nflags;
	x->order_cap = x->order_flags_cap = no ? no : 1;
	x->rpm = rpm;
	x->rdt = rdt;
	x->ovf_idx = ovf_idx;
	x->ovf_t = ovf_t;
	x->novf = novf;
	x->principal_fields = pfields;
	x->principal_fields_n = np;
	x->nrec = w;
	x->off = noff;
	x->off_orders = no;
	free(x->tail);
	x->tail = NULL;
	x->ntail = x->tail_cap = 0;
	return MOAT_OK;
fail:
	trace_odict_plan_free(&plan);
	free(noff);
	free(fill);
	free(nrec);
	free(nfirst);
	free(nflags);
	free(pfields);
	free(rpm);
	free(rdt);
	free(ovf_idx);
	free(ovf_t);
	return rc;
}

moat_err_t trace_compact(moat_exposure_t *x)
{
	return compact_rows(x, false);
}

uint32_t trace_ovf_time(const moat_exposure_t *x, size_t i)
{
	size_t lo = 0, hi = x->novf;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x->ovf_idx[mid] < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < x->novf && x->ovf_idx[lo] == i ? x->ovf_t[lo] : UINT32_MAX;
}

moat_err_t moat_exposure_compact(moat_exposure_t *x, moat_error_t *err)
{
	moat_err_t rc = trace_compact(x);
	if (rc != MOAT_OK)
		return moat_error_set(err, rc, NULL,
				      "exposure index: out of memory while compacting");
	return MOAT_OK;
}

moat_err_t moat_exposure_received(moat_exposure_t *x, const char *principal, const char *order_id,
				  moat_time_t at, unsigned *fields, moat_error_t *err)
{
	*fields = 0;
	moat_err_t rc = moat_exposure_compact(x, err);
	if (rc != MOAT_OK)
		return rc;
	int64_t o = trace_dict_find(&x->orders, order_id);
	int64_t p = trace_dict_find(&x->principals, principal);
	if (o < 0 || p < 0)
		return MOAT_OK;
	for (uint32_t i = x->off[o]; i < x->off[o + 1]; i++)
		if ((x->rpm[i] >> 8) == (uint32_t)p &&
		    by_time(trace_rec_time(x, (uint32_t)o, i), at))
			*fields |= x->rpm[i] & 0xffu;
	return MOAT_OK;
}

moat_err_t moat_exposure_recipients(moat_exposure_t *x, const char *order_id, moat_time_t at,
				    int (*fn)(void *ctx, const char *principal, const char *party,
					      unsigned fields),
				    void *ctx, moat_error_t *err)
{
	moat_err_t rc = moat_exposure_compact(x, err);
	if (rc != MOAT_OK)
		return rc;
	int64_t o = trace_dict_find(&x->orders, order_id);
	if (o < 0)
		return MOAT_OK;
	uint32_t i = x->off[o], end = x->off[o + 1];
	while (i < end) {
		uint32_t p = x->rpm[i] >> 8;
		unsigned acc = 0;
		for (; i < end && (x->rpm[i] >> 8) == p; i++)
			if (by_time(trace_rec_time(x, (uint32_t)o, i), at))
				acc |= x->rpm[i] & 0xffu;
		if (!acc)
			continue;
		uint32_t q = x->principal_party[p];
		if (fn(ctx, trace_dict_str(&x->principals, p),
		       q == TRACE_NO_PARTY ? "" : trace_dict_str(&x->parties, q), acc))
			break;
	}
	return MOAT_OK;
}

moat_err_t moat_exposure_orders_of(moat_exposure_t *x, const char *who, bool is_party,
				   unsigned fields, moat_time_t at,
				   int (*fn)(void *ctx, const char *order_id), void *ctx,
				   moat_error_t *err)
{
	moat_err_t rc = moat_exposure_compact(x, err);
	if (rc != MOAT_OK)
		return rc;
	int64_t id = trace_dict_find(is_party ? &x->parties : &x->principals, who);
	if (id < 0)
		return MOAT_OK;
	char buf[TRACE_OID_LEN_MAX + 1];
	for (uint32_t o = 0; o < x->off_orders; o++) {
		for (uint32_t i = x->off[o]; i < x->off[o + 1]; i++) {
			uint32_t p = x->rpm[i] >> 8;
			bool mine =
			    is_party ? x->principal_party[p] == (uint32_t)id : p == (uint32_t)id;
			if (mine && (x->rpm[i] & fields) && by_time(trace_rec_time(x, o, i), at)) {
				if (fn(ctx, trace_odict_str(&x->orders, o, buf)))
					return MOAT_OK;
				break;
			}
		}
	}
	return MOAT_OK;
}

void moat_exposure_stats(const moat_exposure_t *x, moat_exposure_stats_t *out)
{
	memset(out, 0, sizeof *out);
	out->entries = x->entries;
	out->exposures = x->exposures;
	out->records = x->nrec + x->ntail;
	out->orders = x->orders.n;
	out->principals = x->principals.n;
	out->parties = x->parties.n;
	out->bytes_records = x->nrec * 6 + x->novf * 8 + x->tail_cap * sizeof(trace_tail_t) +
			     (x->off ? ((size_t)x->off_orders + 1) * 4 : 0) +
			     (x->cache ? CACHE_SLOTS * sizeof(cache_slot_t) : 0);
	out->bytes_dictionary = trace_odict_bytes(&x->orders) + trace_dict_bytes(&x->principals) +
				trace_dict_bytes(&x->parties) + (size_t)x->order_cap * 4 +
				x->order_flags_cap + (size_t)x->principal_cap * 4 +
				x->principal_fields_n;
}
