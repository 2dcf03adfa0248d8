/*
 * Reading the tile tree stored under a ledger directory: hash tiles, entry
 * bundles, arbitrary subtree hashes and the RFC 9162 proofs built from them.
 *
 * Everything here reads tiles for a given tree size n, which must be covered by a
 * published checkpoint: the files for such sizes are complete and never change
 * (a partial tile may be deleted once its full tile exists; readers fall back).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/tiles.h"

static moat_err_t read_exact(const char *dir, const char *rel, size_t want, uint8_t *out,
			     bool *missing, moat_error_t *err)
{
	char path[4096];
	char *data = NULL;
	size_t len = 0;
	*missing = false;
	if (snprintf(path, sizeof path, "%s/%s", dir, rel) >= (int)sizeof path)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "path too long");
	moat_error_t e;
	moat_err_t rc = moat_file_read(path, want + 1, &data, &len, &e);
	if (rc == MOAT_ENOTFOUND) {
		*missing = true;
		return MOAT_ENOTFOUND;
	}
	if (rc == MOAT_ELIMIT)
		return moat_error_set(err, MOAT_ECORRUPT, NULL, "%s is too large", rel);
	if (rc != MOAT_OK)
		return moat_error_set(err, rc, NULL, "%s", e.msg);
	if (len != want) {
		free(data);
		return moat_error_set(err, MOAT_ECORRUPT, NULL, "%s has %zu bytes, expected %zu",
				      rel, len, want);
	}
	memcpy(out, data, len);
	free(data);
	return MOAT_OK;
}

unsigned tile_width_at(int level, uint64_t tile, uint64_t size)
{
	uint64_t count = level < 0 ? size : (level >= 8 ? 0 : size >> (8 * level));
	if (count <= tile * TILE_W)
		return 0;
	uint64_t w = count - tile * TILE_W;
	return w > TILE_W ? TILE_W : (unsigned)w;
}

/* Smallest stored partial width >= minw of a tile (level -1: bundle), or 0. */
static unsigned find_partial(const char *dir, int level, uint64_t index, unsigned minw)
{
	char rel[128], path[4096];
	moat_ledger_tile_path(level, index, TILE_W, rel, sizeof rel);
	snprintf(path, sizeof path, "%s/%s.p", dir, rel);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	unsigned best = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char *end;
		unsigned long w = strtoul(de->d_name, &end, 10);
		if (*end || de->d_name[0] < '1' || de->d_name[0] > '9' || w < minw || w >= TILE_W)
			continue;
		if (best == 0 || w < best)
			best = (unsigned)w;
	}
	closedir(d);
	return best;
}

moat_err_t tile_read_hashes(const char *dir, int level, uint64_t index, unsigned width,
			    uint8_t out[TILE_W][MOAT_HASH_LEN], moat_error_t *err)
{
	char rel[128];
	bool missing;
	moat_err_t rc;
	/* The exact partial first (after a crash, tiles beyond the checkpoint may be
	 * stale, and the checkpoint's own partials are always present); then the full
	 * tile; then a wider partial (tiles only grow, so its prefix is the same);
	 * then the full tile again, in case a writer replaced the partials by it. */
	unsigned tries[4] = {width, TILE_W, 0, TILE_W};
	for (int t = 0; t < 4; t++) {
		unsigned w = tries[t];
		if (t == 2)
			w = width == TILE_W ? 0 : find_partial(dir, level, index, width + 1);
		if (w == 0 || (t == 0 && width == TILE_W))
			continue;
		moat_ledger_tile_path(level, index, w, rel, sizeof rel);
		rc = read_exact(dir, rel, (size_t)w * MOAT_HASH_LEN, (uint8_t *)out, &missing, err);
		if (rc == MOAT_OK || !missing)
			return rc;
	}
	moat_ledger_tile_path(level, index, width, rel, sizeof rel);
	return moat_error_set(err, MOAT_ECORRUPT, NULL, "missing tile %s", rel);
}

moat_err_t tile_read_bundle(const char *dir, uint64_t index, unsigned width, moat_buf_t *data,
			    uint32_t offsets[TILE_W + 1], moat_error_t *err)
{
	char rel[128], path[4096];
	moat_err_t rc = MOAT_ENOTFOUND;
	moat_error_t e;
	char *raw = NULL;
	size_t len = 0;
	/* Same order as for hash tiles: exact partial, full, wider partial, full. */
	for (int attempt = 0; attempt < 4 && rc == MOAT_ENOTFOUND; attempt++) {
		unsigned w = TILE_W;
		if (attempt == 0 || attempt == 2) {
			if (width == TILE_W)
				continue;
			w = attempt == 0 ? width : find_partial(dir, -1, index, width + 1);
			if (w == 0)
				continue;
		}
		moat_ledger_tile_path(-1, index, w, rel, sizeof rel);
		if (snprintf(path, sizeof path, "%s/%s", dir, rel) >= (int)sizeof path)
			return moat_error_set(err, MOAT_ELIMIT, NULL, "path too long");
		rc = moat_file_read(path, TILE_BUNDLE_MAX, &raw, &len, &e);
	}
	if (rc == MOAT_ENOTFOUND) {
		moat_ledger_tile_path(-1, index, width, rel, sizeof rel);
		return moat_error_set(err, MOAT_ECORRUPT, NULL, "missing entry bundle %s", rel);
	}
	if (rc != MOAT_OK)
		return moat_error_set(err, rc, NULL, "%s", e.msg);
	/* Parse: 2-byte big-endian length, then the entry; exactly as many as the file
	 * holds, which must be at least width (a full bundle: exactly 256). */
	size_t pos = 0;
	unsigned n = 0;
	while (pos < len && n < TILE_W) {
		if (len - pos < 2)
			break;
		size_t el = ((size_t)(uint8_t)raw[pos] << 8) | (uint8_t)raw[pos + 1];
		if (el == 0 || len - pos - 2 < el)
			break;
		offsets[n++] = (uint32_t)pos;
		pos += 2 + el;
	}
	offsets[n] = (uint32_t)pos;
	if (pos != len || n < width) {
		free(raw);
		return moat_error_set(err, MOAT_ECORRUPT, NULL,
				      "entry bundle %s is malformed (entry %llu)", rel,
				      (unsigned long long)(index * TILE_W + n));
	}
	moat_buf_reset(data);
	rc = moat_buf_append(data, raw, len);
	free(raw);
	if (rc != MOAT_OK)
		return moat_error_set(err, rc, NULL, "out of memory");
	return MOAT_OK;
}

/* ---- subtree hashes over stored tiles ------------------------------------------- */

void treeread_init(treeread_t *t, const char *dir, uint64_t size, lhash_t *h)
{
	memset(t, 0, sizeof *t);
	t->dir = dir;
	t->size = size;
	t->h = h;
	for (int i = 0; i < TREEREAD_SLOTS; i++)
		t->slot[i].level = -2;
}

static moat_err_t cached_tile(treeread_t *t, int level, uint64_t index,
			      uint8_t (**out)[MOAT_HASH_LEN], moat_error_t *err)
{
	unsigned width = tile_width_at(level, index, t->size);
	for (int i = 0; i < TREEREAD_SLOTS; i++)
		if (t->slot[i].level == level && t->slot[i].index == index &&
		    t->slot[i].width == width) {
			*out = t->slot[i].h;
			return MOAT_OK;
		}
	int s = t->next++ % TREEREAD_SLOTS;
	t->slot[s].level = -2;
	moat_err_t rc = tile_read_hashes(t->dir, level, index, width, t->slot[s].h, err);
	if (rc != MOAT_OK)
		return rc;
	t->slot[s].level = level;
	t->slot[s].index = index;
	t->slot[s].width = width;
	*out = t->slot[s].h;
	return MOAT_OK;
}

/* Hash of the complete subtree of height `height` whose leftmost leaf is
 * index << height. */
static moat_err_t node_at(treeread_t *t, int height, uint64_t index, uint8_t out[MOAT_HASH_LEN],
			  moat_error_t *err)
{
	int level = height / 8, r = height % 8;
	uint64_t first = index << r; /* first hash at tree level 8*level */
	uint8_t(*tile)[MOAT_HASH_LEN];
	moat_err_t rc = cached_tile(t, level, first / TILE_W, &tile, err);
	if (rc != MOAT_OK)
		return rc;
	lhash_pow2(t->h, (const uint8_t(*)[MOAT_HASH_LEN])(tile + first % TILE_W), (size_t)1 << r,
		   out);
	return MOAT_OK;
}

static uint64_t largest_pow2_below(uint64_t n)
{
	uint64_t k = 1;
	while (k << 1 < n)
		k <<= 1;
	return k;
}

moat_err_t treeread_range(treeread_t *t, uint64_t a, uint64_t b, uint8_t out[MOAT_HASH_LEN],
			  moat_error_t *err)
{
	uint64_t n = b - a;
	if ((n & (n - 1)) == 0 && a % n == 0) {
		int height = 0;
		while (((uint64_t)1 << height) < n)
			height++;
		return node_at(t, height, a >> height, out, err);
	}
	uint64_t k = largest_pow2_below(n);
	uint8_t l[MOAT_HASH_LEN], r[MOAT_HASH_LEN];
	moat_err_t rc = treeread_range(t, a, a + k, l, err);
	if (rc == MOAT_OK)
		rc = treeread_range(t, a + k, b, r, err);
	if (rc == MOAT_OK)
		lhash_node(t->h, l, r, out);
	return rc;
}

moat_err_t treeread_root(treeread_t *t, uint8_t out[MOAT_HASH_LEN], moat_error_t *err)
{
	if (t->size == 0) {
		unsigned int n = 0;
		if (EVP_Digest("", 0, out, &n, t->h->md, NULL) != 1)
			return moat_error_set(err, MOAT_ECRYPTO, NULL, "SHA-256 failed");
		return MOAT_OK;
	}
	return treeread_range(t, 0, t->size, out, err);
}

static moat_err_t push(uint8_t proof[][MOAT_HASH_LEN], size_t *n, const uint8_t h[MOAT_HASH_LEN],
		       moat_error_t *err)
{
	if (*n >= MOAT_LEDGER_PROOF_MAX)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "proof too long");
	memcpy(proof[(*n)++], h, MOAT_HASH_LEN);
	return MOAT_OK;
}

/* RFC 9162 §2.1.3.1 PATH(m, D[a:b]). */
static moat_err_t path(treeread_t *t, uint64_t m, uint64_t a, uint64_t b,
		       uint8_t proof[][MOAT_HASH_LEN], size_t *n, moat_error_t *err)
{
	if (b - a == 1)
		return MOAT_OK;
	uint64_t k = largest_pow2_below(b - a);
	uint8_t h[MOAT_HASH_LEN];
	moat_err_t rc;
	if (m < a + k) {
		rc = path(t, m, a, a + k, proof, n, err);
		if (rc == MOAT_OK)
			rc = treeread_range(t, a + k, b, h, err);
	} else {
		rc = path(t, m, a + k, b, proof, n, err);
		if (rc == MOAT_OK)
			rc = treeread_range(t, a, a + k, h, err);
	}
	return rc == MOAT_OK ? push(proof, n, h, err) : rc;
}

moat_err_t treeread_inclusion(treeread_t *t, uint64_t index, uint8_t leaf[MOAT_HASH_LEN],
			      uint8_t proof[][MOAT_HASH_LEN], size_t *n, moat_error_t *err)
{
	*n = 0;
	moat_err_t rc = node_at(t, 0, index, leaf, err);
	return rc == MOAT_OK ? path(t, index, 0, t->size, proof, n, err) : rc;
}

/* RFC 9162 §2.1.4.1 SUBPROOF(m, D[a:b], flag). */
static moat_err_t subproof(treeread_t *t, uint64_t m, uint64_t a, uint64_t b, bool flag,
			   uint8_t proof[][MOAT_HASH_LEN], size_t *n, moat_error_t *err)
{
	uint8_t h[MOAT_HASH_LEN];
	moat_err_t rc;
	if (m == b - a) {
		if (flag)
			return MOAT_OK;
		rc = treeread_range(t, a, b, h, err);
		return rc == MOAT_OK ? push(proof, n, h, err) : rc;
	}
	uint64_t k = largest_pow2_below(b - a);
	if (m <= k) {
		rc = subproof(t, m, a, a + k, flag, proof, n, err);
		if (rc == MOAT_OK)
			rc = treeread_range(t, a + k, b, h, err);
	} else {
		rc = subproof(t, m - k, a + k, b, false, proof, n, err);
		if (rc == MOAT_OK)
			rc = treeread_range(t, a, a + k, h, err);
	}
	return rc == MOAT_OK ? push(proof, n, h, err) : rc;
}

moat_err_t treeread_consistency(treeread_t *t, uint64_t old_size, uint8_t proof[][MOAT_HASH_LEN],
				size_t *n, moat_error_t *err)
{
	*n = 0;
	if (old_size == t->size)
		return MOAT_OK;
	return subproof(t, old_size, 0, t->size, true, proof, n, err);
}
