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
int64_t trace_dict_find_plain(const trace_dict_t *d, const char *s);
/* Interns s (ENOMEM, or ELIMIT past `limit` ids); *added tells whether it is new. */
moat_err_t trace_dict_intern(trace_dict_t *d, const char *s, uint32_t limit, uint32_t *id,
			     bool *added) MOAT_MUST_CHECK;
size_t trace_dict_bytes(const trace_dict_t *d);

/*
 * Order ids (src/trace/order_ids.c). Order numbers 0..nsorted-1 are the ids in
 * byte order, front-coded in blocks of TRACE_OID_BLOCK: a block starts with one
 * id in full, each next id is either "the previous one with its trailing digits
 * plus d" (one byte for consecutive numbers, the usual shape of platform order
 * ids) or "the first s bytes of the previous one, then these bytes". Lookup is
 * a binary search over the block heads, then a scan of one block. Ids added
 * since the last compaction sit in a plain dictionary as numbers nsorted + j;
 * trace_odict_merge folds them in and renumbers every order, so order numbers
 * are stable only between two compactions (queries compact first).
 */
#define TRACE_OID_BLOCK 32
#define TRACE_OID_LEN_MAX 255 /* longer order ids are refused (MOAT_ELIMIT) */

typedef struct trace_odict {
	uint8_t *fc; /* the blocks */
	size_t fc_len, fc_cap;
	uint64_t *blk; /* nblk + 1 byte offsets of the blocks in fc */
	/* Per block: its head's first 8 bytes, big-endian, zero-padded, which
	 * order as the heads do (ties aside), so that a lookup's search probes one
	 * small array; NULL (no memory for it) searches the heads themselves. */
	uint64_t *head8;
	uint32_t nsorted, nblk;
	trace_dict_t recent; /* ids added since the last merge */
	uint32_t n;	     /* nsorted + recent.n */
	/* The last id added or interned again, and its number: events of one order
	 * tend to come together, and this skips the search for them. */
	char last[TRACE_OID_LEN_MAX + 1];
	int64_t last_no;
	char max[TRACE_OID_LEN_MAX + 1]; /* the largest sorted id ("" if none) */
} trace_odict_t;

void trace_odict_init(trace_odict_t *d);
void trace_odict_free(trace_odict_t *d);
int64_t trace_odict_find(const trace_odict_t *d, const char *s);
/* Interns s as in trace_dict_intern; MOAT_ELIMIT also for an id longer than
 * TRACE_OID_LEN_MAX or an empty one. */
moat_err_t trace_odict_intern(trace_odict_t *d, const char *s, uint32_t limit, uint32_t *id,
			      bool *added) MOAT_MUST_CHECK;
/* Copies id's string into buf (TRACE_OID_LEN_MAX + 1 bytes); returns buf. */
const char *trace_odict_str(const trace_odict_t *d, uint32_t id, char buf[TRACE_OID_LEN_MAX + 1]);
/* A compaction of the dictionary, prepared apart so that the index can
 * prepare everything else that may fail before anything changes. */
typedef struct trace_odict_plan {
	uint8_t *fc;
	size_t len, cap;
	uint64_t *blk;
	uint32_t n, nblk;
	char prev[TRACE_OID_LEN_MAX + 1];
	size_t prev_len;
	uint32_t *map; /* map[old number] = new number; NULL when none changes */
	bool ready;    /* false: nothing to fold in */
} trace_odict_plan_t;
/* Sorts the recent ids into new blocks without touching d (MOAT_ENOMEM, or
 * MOAT_ECORRUPT if d's blocks are damaged in memory); the plan owns them. */
moat_err_t trace_odict_plan(const trace_odict_t *d, trace_odict_plan_t *plan) MOAT_MUST_CHECK;
/* Installs a plan (cannot fail) and frees what remains of it. */
void trace_odict_commit(trace_odict_t *d, trace_odict_plan_t *plan);
void trace_odict_plan_free(trace_odict_plan_t *plan);
size_t trace_odict_bytes(const trace_odict_t *d);
/* Checks a serialised block array (as saved) and adopts it: n ids, strictly
 * increasing, every block well formed. Takes ownership of fc and blk on success
 * only. */
bool trace_odict_adopt(trace_odict_t *d, uint8_t *fc, size_t fc_len, uint64_t *blk,
		       uint32_t n) MOAT_MUST_CHECK;

/* Finds an id in either kind of dictionary (-1 if absent); callers write
 * trace_dict_find(&x->orders, id) as for the others. */
#define trace_dict_find(d, s)                                                                      \
	_Generic((d), trace_odict_t *: trace_odict_find, const trace_odict_t *: trace_odict_find,    \
		 default: trace_dict_find_plain)(d, s)

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
	trace_odict_t orders;
	trace_dict_t principals, parties;
	uint32_t *order_first; /* per order: first time seen in any access (s) */
	uint32_t order_cap;
	uint8_t *order_flags; /* per order: TRACE_ORDER_* */
	uint32_t order_flags_cap;
	uint32_t *principal_party; /* per principal: party id or TRACE_NO_PARTY */
	uint32_t principal_cap;
	uint32_t *off; /* off_orders + 1 row offsets into the records */
	uint32_t off_orders;
	/* Records, as two parallel arrays (6 bytes each): principal << 8 | fields,
	 * and minutes after the order's first sighting, rounded up; TRACE_DT_OVERFLOW
	 * sends the reader to ovf_t (exact seconds) by record number ovf_idx. */
	uint32_t *rpm;
	uint16_t *rdt;
	size_t nrec;
	uint32_t *ovf_idx, *ovf_t;
	size_t novf;
	/* Per principal: the union of the field bits of its records (the rows, not
	 * the tail), for principals 0..principal_fields_n-1; any later principal
	 * has no record in the rows. Rebuilt with the rows. */
	uint8_t *principal_fields;
	uint32_t principal_fields_n;
	trace_tail_t *tail;
	size_t ntail, tail_cap;
	void *cache; /* recent (order, principal, fields), drops repeats */
};

#define TRACE_DT_OVERFLOW 0xFFFFu

/* Minutes from an order's base to t (both in seconds), rounded up so that a
 * record is never placed before it happened; 0 for t <= base (an entry that
 * arrived after the first sighting with an earlier time is placed at the base,
 * later than it happened). Values >= TRACE_DT_OVERFLOW do not fit a record. */
static inline uint32_t trace_dt_minutes(uint32_t base, uint32_t t)
{
	uint64_t d = t > base ? ((uint64_t)t - base + 59) / 60 : 0;
	return d > TRACE_DT_OVERFLOW ? TRACE_DT_OVERFLOW : (uint32_t)d;
}

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
