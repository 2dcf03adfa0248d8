/*
 * Saving and loading the exposure index (<data>/trace/exposure.idx).
 *
 * Format, all integers little-endian as the host writes them (the file is a
 * cache rebuilt by `moat trace reindex`, never exchanged between machines):
 *   "MOATEXP2", u64 cursor, entries, exposures, nrec,
 *   u32 orders, principals, parties,
 *   the order ids as front-coded blocks (trace_internal.h): u64 byte length,
 *   the bytes, u64 block offsets[ceil(orders / TRACE_OID_BLOCK) + 1],
 *   two dictionaries as u64 byte length + NUL-separated ids (principals,
 *   parties), u32 order_first[orders], u8 order_flags[orders],
 *   u32 principal_party[principals], u32 off[orders + 1], u32 rpm[nrec],
 *   u16 rdt[nrec], u64 novf, u32 ovf_idx[novf], u32 ovf_t[novf],
 *   and the SHA-256 of everything before it.
 * Order numbers are the ids' ranks in byte order. Version 1 ("MOATEXP1", order
 * ids in arrival order, NUL-separated) is refused with a message asking for
 * `moat trace reindex`, never read as version 2.
 */
#include <stdlib.h>
#include <string.h>

#include "moat/crypto.h"
#include "moat/trace.h"
#include "trace/trace_internal.h"

static const char magic[8] = {'M', 'O', 'A', 'T', 'E', 'X', 'P', '2'};
static const char magic_v1[8] = {'M', 'O', 'A', 'T', 'E', 'X', 'P', '1'};

static moat_err_t put(moat_buf_t *b, const void *p, size_t n)
{
	return n ? moat_buf_append(b, p, n) : MOAT_OK;
}

static moat_err_t put_dict(moat_buf_t *b, const trace_dict_t *d)
{
	uint64_t len = 0;
	for (uint32_t i = 0; i < d->n; i++)
		len += strlen(trace_dict_str(d, i)) + 1;
	moat_err_t rc = put(b, &len, 8);
	for (uint32_t i = 0; rc == MOAT_OK && i < d->n; i++) {
		const char *s = trace_dict_str(d, i);
		rc = put(b, s, strlen(s) + 1);
	}
	return rc;
}

moat_err_t moat_exposure_save(moat_exposure_t *x, const char *path, moat_error_t *err)
{
	moat_err_t rc = trace_compact(x);
	if (rc != MOAT_OK)
		return moat_error_set(err, rc, NULL,
				      "exposure index: out of memory while compacting");
	if (x->orders.recent.n || x->orders.nsorted != x->orders.n)
		return moat_error_set(err, MOAT_ECORRUPT, NULL,
				      "exposure index: order ids not folded in after compaction");
	moat_buf_t b;
	moat_buf_init(&b, (size_t)1 << 36);
	uint64_t h64[4] = {x->cursor, x->entries, x->exposures, x->nrec};
	uint32_t h32[3] = {x->orders.n, x->principals.n, x->parties.n};
	rc = put(&b, magic, 8);
	if (rc == MOAT_OK)
		rc = put(&b, h64, sizeof h64);
	if (rc == MOAT_OK)
		rc = put(&b, h32, sizeof h32);
	uint64_t fc_len = x->orders.fc_len;
	if (rc == MOAT_OK)
		rc = put(&b, &fc_len, 8);
	if (rc == MOAT_OK)
		rc = put(&b, x->orders.fc, x->orders.fc_len);
	if (rc == MOAT_OK && x->orders.blk)
		rc = put(&b, x->orders.blk, ((size_t)x->orders.nblk + 1) * 8);
	else if (rc == MOAT_OK)
		rc = put(&b, &(uint64_t){0}, 8);
	if (rc == MOAT_OK)
		rc = put_dict(&b, &x->principals);
	if (rc == MOAT_OK)
		rc = put_dict(&b, &x->parties);
	if (rc == MOAT_OK)
		rc = put(&b, x->order_first, (size_t)x->orders.n * 4);
	if (rc == MOAT_OK)
		rc = put(&b, x->order_flags, x->orders.n);
	if (rc == MOAT_OK)
		rc = put(&b, x->principal_party, (size_t)x->principals.n * 4);
	if (rc == MOAT_OK)
		rc = put(&b, x->off, ((size_t)x->orders.n + 1) * 4);
	if (rc == MOAT_OK)
		rc = put(&b, x->rpm, x->nrec * 4);
	if (rc == MOAT_OK)
		rc = put(&b, x->rdt, x->nrec * 2);
	uint64_t novf = x->novf;
	if (rc == MOAT_OK)
		rc = put(&b, &novf, 8);
	if (rc == MOAT_OK)
		rc = put(&b, x->ovf_idx, x->novf * 4);
	if (rc == MOAT_OK)
		rc = put(&b, x->ovf_t, x->novf * 4);
	if (rc == MOAT_OK) {
		uint8_t d[32];
		moat_sha256(b.data, b.len, d);
		rc = put(&b, d, 32);
	}
	if (rc != MOAT_OK) {
		moat_buf_free(&b);
		return moat_error_set(err, rc, NULL, "exposure index: cannot serialise (%s)",
				      moat_err_name(rc));
	}
	rc = moat_file_write_atomic(path, b.data, b.len, 0600, err);
	moat_buf_free(&b);
	return rc;
}

typedef struct reader {
	const uint8_t *p, *end;
} reader_t;

static bool take(reader_t *r, void *out, size_t n)
{
	if ((size_t)(r->end - r->p) < n)
		return false;
	if (n)
		memcpy(out, r->p, n);
	r->p += n;
	return true;
}

static bool load_dict(reader_t *r, trace_dict_t *d, uint32_t count)
{
	uint64_t len;
	if (!take(r, &len, 8) || len > (uint64_t)(r->end - r->p))
		return false;
	const char *s = (const char *)r->p, *end = s + len;
	for (uint32_t i = 0; i < count; i++) {
		const char *z = memchr(s, '\0', (size_t)(end - s));
		uint32_t id;
		bool added;
		if (!z || trace_dict_intern(d, s, UINT32_MAX, &id, &added) != MOAT_OK || !added ||
		    id != i)
			return false;
		s = z + 1;
	}
	if (s != end)
		return false;
	r->p += len;
	return true;
}

/* The order ids' blocks, checked by trace_odict_adopt. */
static bool load_orders(reader_t *r, trace_odict_t *d, uint32_t count)
{
	uint64_t len, nblk = ((uint64_t)count + TRACE_OID_BLOCK - 1) / TRACE_OID_BLOCK;
	if (!take(r, &len, 8) || len > (uint64_t)(r->end - r->p) ||
	    (nblk + 1) * 8 > (uint64_t)(r->end - r->p) - len)
		return false;
	uint8_t *fc = malloc(len ? len : 1);
	uint64_t *blk = malloc((nblk + 1) * 8);
	if (!fc || !blk || !take(r, fc, len) || !take(r, blk, (nblk + 1) * 8) ||
	    !trace_odict_adopt(d, fc, len, blk, count)) {
		free(fc);
		free(blk);
		return false;
	}
	return true;
}

moat_err_t moat_exposure_load(const char *path, moat_exposure_t **out, moat_error_t *err)
{
	*out = NULL;
	char *data = NULL;
	size_t len = 0;
	moat_err_t rc = moat_file_read(path, (size_t)1 << 36, &data, &len, err);
	if (rc != MOAT_OK)
		return rc;
	moat_exposure_t *x = moat_exposure_new();
	if (!x) {
		free(data);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "exposure index: out of memory");
	}
	uint8_t d[32];
	reader_t r = {(const uint8_t *)data, (const uint8_t *)data + len};
	char m[8];
	uint64_t h64[4];
	uint32_t h32[3];
	if (len < 8 + 32 + 32 + 12)
		goto corrupt;
	moat_sha256(data, len - 32, d);
	if (memcmp(d, data + len - 32, 32) != 0)
		goto corrupt;
	r.end -= 32;
	if (!take(&r, m, 8))
		goto corrupt;
	if (memcmp(m, magic_v1, 8) == 0) {
		moat_exposure_free(x);
		free(data);
		return moat_error_set(
		    err, MOAT_ECONFLICT, NULL,
		    "exposure index %s is in an older format (version 1) that this "
		    "moat does not read; rebuild it with `moat trace reindex`",
		    path);
	}
	if (memcmp(m, magic, 8) != 0 || !take(&r, h64, sizeof h64) || !take(&r, h32, sizeof h32))
		goto corrupt;
	x->cursor = h64[0];
	x->entries = h64[1];
	x->exposures = h64[2];
	uint64_t nrec = h64[3];
	uint32_t no = h32[0], np = h32[1];
	if (!load_orders(&r, &x->orders, no) || !load_dict(&r, &x->principals, np) ||
	    !load_dict(&r, &x->parties, h32[2]))
		goto corrupt;
	if (nrec > (uint64_t)(r.end - r.p) / 6)
		goto corrupt;
	x->order_first = malloc(((size_t)no + 1) * 4);
	x->order_flags = malloc((size_t)no + 1);
	x->principal_party = malloc(((size_t)np + 1) * 4);
	x->off = malloc(((size_t)no + 1) * 4);
	x->rpm = malloc((nrec ? nrec : 1) * 4);
	x->rdt = malloc((nrec ? nrec : 1) * 2);
	if (!x->order_first || !x->order_flags || !x->principal_party || !x->off || !x->rpm ||
	    !x->rdt) {
		moat_exposure_free(x);
		free(data);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "exposure index: out of memory");
	}
	x->order_cap = no + 1;
	x->order_flags_cap = no + 1;
	x->principal_cap = np + 1;
	x->off_orders = no;
	x->nrec = nrec;
	uint64_t novf;
	if (!take(&r, x->order_first, (size_t)no * 4) || !take(&r, x->order_flags, no) ||
	    !take(&r, x->principal_party, (size_t)np * 4) ||
	    !take(&r, x->off, ((size_t)no + 1) * 4) || !take(&r, x->rpm, nrec * 4) ||
	    !take(&r, x->rdt, nrec * 2) || !take(&r, &novf, 8) || novf > nrec)
		goto corrupt;
	x->ovf_idx = malloc((novf ? novf : 1) * 4);
	x->ovf_t = malloc((novf ? novf : 1) * 4);
	if (!x->ovf_idx || !x->ovf_t) {
		moat_exposure_free(x);
		free(data);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "exposure index: out of memory");
	}
	x->novf = novf;
	if (!take(&r, x->ovf_idx, novf * 4) || !take(&r, x->ovf_t, novf * 4) || r.p != r.end)
		goto corrupt;
	for (uint64_t i = 0; i < novf; i++)
		if (x->ovf_idx[i] >= nrec || (i && x->ovf_idx[i] <= x->ovf_idx[i - 1]))
			goto corrupt;
	/* Every reference must land inside its table. */
	if (x->off[0] != 0 || x->off[no] != nrec)
		goto corrupt;
	for (uint32_t o = 0; o < no; o++)
		if (x->off[o] > x->off[o + 1])
			goto corrupt;
	x->principal_fields = calloc((size_t)np + 1, 1);
	if (!x->principal_fields) {
		moat_exposure_free(x);
		free(data);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "exposure index: out of memory");
	}
	x->principal_fields_n = np;
	for (uint64_t i = 0; i < nrec; i++) {
		if ((x->rpm[i] >> 8) >= np)
			goto corrupt;
		x->principal_fields[x->rpm[i] >> 8] |= (uint8_t)x->rpm[i];
	}
	for (uint32_t p = 0; p < np; p++)
		if (x->principal_party[p] != TRACE_NO_PARTY && x->principal_party[p] >= h32[2])
			goto corrupt;
	free(data);
	*out = x;
	return MOAT_OK;
corrupt:
	moat_exposure_free(x);
	free(data);
	return moat_error_set(err, MOAT_ECORRUPT, NULL,
			      "exposure index %s is damaged; rebuild it with `moat trace reindex`",
			      path);
}
