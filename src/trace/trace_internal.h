/* Internals shared by the tracer's files (index, scoring, persistence). */
#ifndef MOAT_TRACE_INTERNAL_H
#define MOAT_TRACE_INTERNAL_H

#include "moat/trace.h"

/* Interned strings: dense ids 0..n-1, open-addressing table of id+1. */
typedef struct trace_dict {
	char *pool;
	size_t pool_len, pool_cap;
	uint32_t *off;
	uint32_t n, off_cap;
	uint32_t *slots;
	uint32_t nslots; /* power of two, or 0 */
} trace_dict_t;

void trace_dict_free(trace_dict_t *d);
const char *trace_dict_str(const trace_dict_t *d, uint32_t id);
int64_t trace_dict_find(const trace_dict_t *d, const char *s);
/* Interns s (ENOMEM, or ELIMIT past `limit` ids); *added tells whether it is new. */
moat_err_t trace_dict_intern(trace_dict_t *d, const char *s, uint32_t limit, uint32_t *id,
			     bool *added) MOAT_MUST_CHECK;
size_t trace_dict_bytes(const trace_dict_t *d);

/* One record: principal << 8 | field bits; time in seconds (rounded up). */
typedef struct trace_rec {
	uint32_t pm;
	uint32_t t;
} trace_rec_t;

typedef struct trace_tail {
	uint32_t order, pm, t;
} trace_tail_t;

#define TRACE_NO_PARTY UINT32_MAX
#define TRACE_ORDER_HONEY 1u

struct moat_exposure {
	uint64_t cursor, entries, exposures;
	trace_dict_t orders, principals, parties;
	uint32_t *order_first; /* per order: first time seen in any access (s) */
	uint32_t order_cap;
	uint8_t *order_flags;  /* per order: TRACE_ORDER_* */
	uint32_t order_flags_cap;
	uint32_t *principal_party; /* per principal: party id or TRACE_NO_PARTY */
	uint32_t principal_cap;
	uint32_t *off;        /* off_orders + 1 row offsets into the records */
	uint32_t off_orders;
	/* Records, as two parallel arrays (6 bytes each): principal << 8 | fields,
	 * and minutes after the order's first sighting, rounded up; TRACE_DT_OVERFLOW
	 * sends the reader to ovf_t (exact seconds) by record number ovf_idx. */
	uint32_t *rpm;
	uint16_t *rdt;
	size_t nrec;
	uint32_t *ovf_idx, *ovf_t;
	size_t novf;
	trace_tail_t *tail;
	size_t ntail, tail_cap;
	void *cache;          /* recent (order, principal, fields), drops repeats */
};

#define TRACE_DT_OVERFLOW 0xFFFFu

/* Seconds of an overflowed record (binary search). */
uint32_t trace_ovf_time(const moat_exposure_t *x, size_t i);

/* Time (seconds, rounded up) of record i of order o. */
static inline int64_t trace_rec_time(const moat_exposure_t *x, uint32_t o, size_t i)
{
	uint16_t d = x->rdt[i];
	if (d != TRACE_DT_OVERFLOW)
		return (int64_t)x->order_first[o] + (int64_t)d * 60;
	return trace_ovf_time(x, i);
}

/* Folds the tail into the rows (and covers orders added since). */
moat_err_t trace_compact(moat_exposure_t *x) MOAT_MUST_CHECK;

#endif
