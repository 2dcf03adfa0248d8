/*
 * The order-id dictionary of the exposure index: sorted, front-coded blocks
 * plus a plain dictionary of the ids added since the last compaction (see
 * trace_internal.h for the layout).
 *
 * Entry codes after a block's head (varint v):
 *   v even: v / 2 bytes are shared with the previous id, then a varint length
 *           and that many bytes follow;
 *   v odd:  same length and same bytes as the previous id except its trailing
 *           digits (at most 19 of them, same width), which are the previous
 *           value plus v / 2 + 1.
 * The head of a block is a varint length and the bytes. Ids are NUL-free,
 * 1..TRACE_OID_LEN_MAX bytes, and strictly increasing in unsigned byte order.
 */
#include <stdlib.h>
#include <string.h>

#include "trace/trace_internal.h"

#define DIGITS_MAX 19 /* the largest width whose values fit a uint64_t */

void trace_odict_init(trace_odict_t *d)
{
	memset(d, 0, sizeof *d);
	d->last_no = -1;
}

void trace_odict_free(trace_odict_t *d)
{
	free(d->fc);
	free(d->blk);
	free(d->head8);
	trace_dict_free(&d->recent);
	trace_odict_init(d);
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* Reads a varint from [*p, end); false if it runs off the end or past 64 bits. */
static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*p == end)
			return false;
		uint8_t b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return true;
		}
	}
	return false;
}

/* Length of the run of ASCII digits ending s[len-1], capped at DIGITS_MAX. */
static size_t digit_tail(const char *s, size_t len)
{
	size_t k = 0;
	while (k < len && k < DIGITS_MAX && s[len - 1 - k] >= '0' && s[len - 1 - k] <= '9')
		k++;
	return k;
}

static uint64_t digits_value(const char *s, size_t k)
{
	uint64_t v = 0;
	for (size_t i = 0; i < k; i++)
		v = v * 10 + (uint64_t)(s[i] - '0');
	return v;
}

static uint64_t pow10_u64(size_t k)
{
	uint64_t p = 1;
	while (k--)
		p *= 10;
	return p;
}

/*
 * Decodes the entry at *p into cur (holding the previous id of the block, length
 * *len; for a head, anything). Every check a damaged file could fail is made
 * here, so load and lookups share one decoder.
 */
static bool decode(const uint8_t **p, const uint8_t *end, bool head, char *cur, size_t *len)
{
	uint64_t v, n;
	if (head) {
		if (!get_varint(p, end, &n) || n == 0 || n > TRACE_OID_LEN_MAX ||
		    n > (uint64_t)(end - *p))
			return false;
		memcpy(cur, *p, n);
		*p += n;
		*len = n;
	} else if (!get_varint(p, end, &v)) {
		return false;
	} else if (v & 1) {
		size_t k = digit_tail(cur, *len);
		if (k == 0)
			return false;
		uint64_t val = digits_value(cur + *len - k, k), delta = (v >> 1) + 1;
		if (delta == 0 || delta >= pow10_u64(k) - val) /* must stay within k digits */
			return false;
		val += delta;
		for (size_t i = 0; i < k; i++) {
			cur[*len - 1 - i] = (char)('0' + val % 10);
			val /= 10;
		}
	} else {
		uint64_t shared = v >> 1;
		if (shared > *len || !get_varint(p, end, &n) || n > (uint64_t)(end - *p) ||
		    shared + n == 0 || shared + n > TRACE_OID_LEN_MAX)
			return false;
		memcpy(cur + shared, *p, n);
		*p += n;
		*len = shared + n;
	}
	cur[*len] = '\0';
	return memchr(cur, '\0', *len) == NULL;
}

/* Compares the head of block b with s (strcmp order). */
static int head_cmp(const trace_odict_t *d, uint32_t b, const char *s, size_t slen)
{
	const uint8_t *p = d->fc + d->blk[b], *end = d->fc + d->fc_len;
	uint64_t n = 0;
	(void)get_varint(&p, end, &n); /* checked when the blocks were built or loaded */
	size_t m = n < slen ? (size_t)n : slen;
	int c = memcmp(p, s, m);
	if (c)
		return c;
	return (n > slen) - (n < slen);
}

/* The first 8 bytes of s, big-endian, zero-padded (see trace_odict_t.head8). */
static uint64_t prefix8(const char *s, size_t slen)
{
	uint64_t k = 0;
	for (size_t i = 0; i < 8; i++)
		k = k << 8 | (i < slen ? (uint8_t)s[i] : 0u);
	return k;
}

/* Fills d->head8 from the blocks, or leaves it NULL without the memory. */
static void build_head8(trace_odict_t *d)
{
	free(d->head8);
	d->head8 = d->nblk ? malloc((size_t)d->nblk * sizeof *d->head8) : NULL;
	for (uint32_t b = 0; d->head8 && b < d->nblk; b++) {
		const uint8_t *p = d->fc + d->blk[b], *end = d->fc + d->fc_len;
		uint64_t n = 0;
		(void)get_varint(&p, end, &n); /* checked when the blocks were built or loaded */
		d->head8[b] = prefix8((const char *)p, (size_t)n);
	}
}

static int64_t find_sorted(const trace_odict_t *d, const char *s, size_t slen)
{
	if (!d->nblk || strcmp(s, d->max) > 0) /* new ids usually sort last */
		return -1;
	/* The last block whose head is <= s: heads whose first 8 bytes are below
	 * s's are, those above are not; only among equal ones do heads compare. */
	uint32_t lo = 0, hi = d->nblk;
	if (d->head8) {
		uint64_t key = prefix8(s, slen);
		uint32_t a = 0, b = d->nblk;
		while (a < b) { /* the first block with head8 >= key */
			uint32_t mid = a + (b - a) / 2;
			if (d->head8[mid] < key)
				a = mid + 1;
			else
				b = mid;
		}
		uint32_t c = a, e = d->nblk;
		while (c < e) { /* the first block with head8 > key */
			uint32_t mid = c + (e - c) / 2;
			if (d->head8[mid] <= key)
				c = mid + 1;
			else
				e = mid;
		}
		lo = a ? a - 1 : 0;
		hi = c > lo ? c : lo + 1;
	}
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (head_cmp(d, mid, s, slen) <= 0)
			lo = mid;
		else
			hi = mid;
	}
	const uint8_t *p = d->fc + d->blk[lo], *end = d->fc + d->blk[lo + 1];
	uint32_t first = lo * TRACE_OID_BLOCK;
	uint32_t count =
	    d->nsorted - first < TRACE_OID_BLOCK ? d->nsorted - first : TRACE_OID_BLOCK;
	char cur[TRACE_OID_LEN_MAX + 1];
	size_t len = 0;
	for (uint32_t i = 0; i < count; i++) {
		if (!decode(&p, end, i == 0, cur, &len))
			return -1;
		int c = strcmp(cur, s);
		if (c == 0)
			return first + i;
		if (c > 0)
			return -1;
	}
	return -1;
}

int64_t trace_odict_find(const trace_odict_t *d, const char *s)
{
	size_t slen = strlen(s);
	if (slen == 0 || slen > TRACE_OID_LEN_MAX)
		return -1;
	if (d->last_no >= 0 && strcmp(d->last, s) == 0)
		return d->last_no;
	int64_t r = trace_dict_find_plain(&d->recent, s);
	if (r >= 0)
		return d->nsorted + r;
	return find_sorted(d, s, slen);
}

moat_err_t trace_odict_intern(trace_odict_t *d, const char *s, uint32_t limit, uint32_t *id,
			      bool *added)
{
	*added = false;
	size_t slen = strlen(s);
	if (slen == 0 || slen > TRACE_OID_LEN_MAX)
		return MOAT_ELIMIT;
	int64_t f = trace_odict_find(d, s);
	if (f < 0) {
		if (d->n >= limit)
			return MOAT_ELIMIT;
		uint32_t j;
		moat_err_t rc = trace_dict_intern(&d->recent, s, UINT32_MAX, &j, added);
		if (rc != MOAT_OK)
			return rc;
		f = (int64_t)d->nsorted + j;
		d->n++;
	}
	memcpy(d->last, s, slen + 1);
	d->last_no = f;
	*id = (uint32_t)f;
	return MOAT_OK;
}

const char *trace_odict_str(const trace_odict_t *d, uint32_t id, char buf[TRACE_OID_LEN_MAX + 1])
{
	buf[0] = '\0';
	if (id >= d->nsorted) {
		if (id - d->nsorted < d->recent.n) {
			const char *s = trace_dict_str(&d->recent, id - d->nsorted);
			memcpy(buf, s, strlen(s) + 1);
		}
		return buf;
	}
	uint32_t b = id / TRACE_OID_BLOCK;
	const uint8_t *p = d->fc + d->blk[b], *end = d->fc + d->blk[b + 1];
	size_t len = 0;
	for (uint32_t i = 0; i <= id % TRACE_OID_BLOCK; i++)
		if (!decode(&p, end, i == 0, buf, &len)) {
			buf[0] = '\0';
			break;
		}
	return buf;
}

size_t trace_odict_bytes(const trace_odict_t *d)
{
	return d->fc_cap + (d->blk ? ((size_t)d->nblk + 1) * sizeof *d->blk : 0) +
	       (d->head8 ? (size_t)d->nblk * sizeof *d->head8 : 0) + trace_dict_bytes(&d->recent);
}

/* ---- building blocks ------------------------------------------------------------- */

/* Appends s (which must sort after the previous id). */
static bool enc_put(trace_odict_plan_t *e, const char *s)
{
	size_t slen = strlen(s);
	if (e->len + slen + 24 > e->cap) {
		size_t nc = e->cap ? e->cap * 2 : 4096;
		while (nc < e->len + slen + 24)
			nc *= 2;
		uint8_t *q = realloc(e->fc, nc);
		if (!q)
			return false;
		e->fc = q;
		e->cap = nc;
	}
	if (e->n % TRACE_OID_BLOCK == 0) {
		e->blk[e->nblk++] = e->len;
		e->len += put_varint(e->fc + e->len, slen);
		memcpy(e->fc + e->len, s, slen);
		e->len += slen;
	} else {
		size_t k = digit_tail(e->prev, e->prev_len);
		bool numeric = k > 0 && slen == e->prev_len && memcmp(s, e->prev, slen - k) == 0 &&
			       digit_tail(s, slen) >= k;
		uint64_t a = numeric ? digits_value(e->prev + slen - k, k) : 0;
		uint64_t b = numeric ? digits_value(s + slen - k, k) : 0;
		if (numeric && b > a && b - a - 1 < ((uint64_t)1 << 62)) {
			e->len += put_varint(e->fc + e->len, ((b - a - 1) << 1) | 1);
		} else {
			size_t shared = 0;
			while (shared < slen && shared < e->prev_len &&
			       s[shared] == e->prev[shared])
				shared++;
			e->len += put_varint(e->fc + e->len, (uint64_t)shared << 1);
			e->len += put_varint(e->fc + e->len, slen - shared);
			memcpy(e->fc + e->len, s + shared, slen - shared);
			e->len += slen - shared;
		}
	}
	memcpy(e->prev, s, slen + 1);
	e->prev_len = slen;
	e->n++;
	return true;
}

typedef struct recent_id {
	const char *s;
	uint32_t no;
} recent_id_t;

static int cmp_recent(const void *a, const void *b)
{
	return strcmp(((const recent_id_t *)a)->s, ((const recent_id_t *)b)->s);
}

void trace_odict_plan_free(trace_odict_plan_t *e)
{
	free(e->fc);
	free(e->blk);
	free(e->map);
	memset(e, 0, sizeof *e);
}

moat_err_t trace_odict_plan(const trace_odict_t *d, trace_odict_plan_t *e)
{
	memset(e, 0, sizeof *e);
	uint32_t nr = d->recent.n, n = d->n;
	moat_err_t rc = MOAT_ENOMEM;
	if (nr == 0)
		return MOAT_OK;
	recent_id_t *r = malloc((size_t)nr * sizeof *r);
	e->map = malloc((size_t)n * sizeof *e->map);
	e->blk = malloc(((size_t)n / TRACE_OID_BLOCK + 2) * sizeof *e->blk);
	if (!r || !e->map || !e->blk)
		goto fail;
	bool sorted = true;
	for (uint32_t j = 0; j < nr; j++) {
		r[j] = (recent_id_t){trace_dict_str(&d->recent, j), d->nsorted + j};
		sorted = sorted && (j == 0 || strcmp(r[j - 1].s, r[j].s) < 0);
	}
	if (!sorted) /* ids usually arrive in order: then no sort is needed */
		qsort(r, nr, sizeof *r, cmp_recent);
	/* Merge the sorted ids (decoded in order) with the sorted recent ones. */
	char cur[TRACE_OID_LEN_MAX + 1];
	size_t len = 0;
	uint32_t i = 0, j = 0, out = 0;
	/* (no sorted ids yet: fc is NULL, and NULL + 0 is undefined) */
	const uint8_t *p = d->fc, *end = d->fc ? d->fc + d->fc_len : NULL;
	bool have = false, identity = true;
	while (i < d->nsorted || j < nr) {
		if (!have && i < d->nsorted) {
			/* checked at build or load; a failure here means memory damage */
			if (!decode(&p, end, i % TRACE_OID_BLOCK == 0, cur, &len)) {
				rc = MOAT_ECORRUPT;
				goto fail;
			}
			have = true;
		}
		bool take_sorted = have && (j == nr || strcmp(cur, r[j].s) < 0);
		uint32_t old = take_sorted ? i : r[j].no;
		if (!enc_put(e, take_sorted ? cur : r[j].s))
			goto fail;
		e->map[old] = out;
		identity = identity && old == out;
		out++;
		if (take_sorted) {
			i++;
			have = false;
		} else {
			j++;
		}
	}
	e->blk[e->nblk] = e->len;
	/* Shrink to what is used: the blocks stay as they are until the next merge. */
	uint8_t *fc = e->len ? realloc(e->fc, e->len) : e->fc;
	if (fc) {
		e->fc = fc;
		e->cap = e->len;
	}
	free(r);
	if (identity) {
		free(e->map);
		e->map = NULL;
	}
	e->ready = true;
	return MOAT_OK;
fail:
	free(r);
	trace_odict_plan_free(e);
	return rc;
}

void trace_odict_commit(trace_odict_t *d, trace_odict_plan_t *e)
{
	if (!e->ready)
		return;
	free(d->fc);
	free(d->blk);
	trace_dict_free(&d->recent);
	d->fc = e->fc;
	d->fc_len = e->len;
	d->fc_cap = e->cap;
	d->blk = e->blk;
	d->nblk = e->nblk;
	d->nsorted = d->n;
	d->last_no = -1;
	memcpy(d->max, e->prev, e->prev_len + 1);
	e->fc = NULL;
	e->blk = NULL;
	trace_odict_plan_free(e);
	build_head8(d);
}

bool trace_odict_adopt(trace_odict_t *d, uint8_t *fc, size_t fc_len, uint64_t *blk, uint32_t n)
{
	uint32_t nblk = (uint32_t)(((uint64_t)n + TRACE_OID_BLOCK - 1) / TRACE_OID_BLOCK);
	if (d->n || blk[0] != 0 || blk[nblk] != fc_len)
		return false;
	char prev[TRACE_OID_LEN_MAX + 1], cur[TRACE_OID_LEN_MAX + 1];
	size_t len = 0;
	for (uint32_t b = 0; b < nblk; b++) {
		if (blk[b + 1] < blk[b] || blk[b + 1] > fc_len)
			return false;
		const uint8_t *p = fc + blk[b], *end = fc + blk[b + 1];
		uint32_t count = n - b * TRACE_OID_BLOCK < TRACE_OID_BLOCK ? n - b * TRACE_OID_BLOCK
									   : TRACE_OID_BLOCK;
		for (uint32_t i = 0; i < count; i++) {
			if (b + i > 0)
				memcpy(prev, cur, len + 1);
			if (!decode(&p, end, i == 0, cur, &len))
				return false;
			if ((b + i > 0) && strcmp(prev, cur) >= 0)
				return false;
		}
		if (p != end)
			return false;
	}
	d->fc = fc;
	d->fc_len = d->fc_cap = fc_len;
	d->blk = blk;
	d->nblk = nblk;
	d->nsorted = d->n = n;
	d->last_no = -1;
	if (n)
		memcpy(d->max, cur, len + 1);
	build_head8(d);
	return true;
}
