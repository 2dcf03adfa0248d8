/*
 * Ledger internals: reading stored tiles and building proofs from them.
 */
#ifndef MOAT_LEDGER_TILES_H
#define MOAT_LEDGER_TILES_H

#include "ledger/ledger_int.h"

#define TILE_W MOAT_LEDGER_TILE_WIDTH
/* Largest entry bundle: 256 entries of at most 65,535 bytes plus length prefixes. */
#define TILE_BUNDLE_MAX ((size_t)TILE_W * (MOAT_ENTRY_MAX + 2))

/* Width of tile `tile` at `level` (-1: entry bundle) in the tree of `size`
 * entries: 0 if it does not exist yet, 256 if full. */
unsigned tile_width_at(int level, uint64_t tile, uint64_t size);

/* Reads hash tile (level, index) of the given width (the full tile serves any
 * width). MOAT_ECORRUPT if missing or of the wrong length. */
moat_err_t tile_read_hashes(const char *dir, int level, uint64_t index, unsigned width,
			    uint8_t out[TILE_W][MOAT_HASH_LEN], moat_error_t *err) MOAT_MUST_CHECK;

/* Reads entry bundle `index` holding at least `width` entries into data;
 * offsets[i] is where entry i's length prefix starts, offsets[count] the end. */
moat_err_t tile_read_bundle(const char *dir, uint64_t index, unsigned width, moat_buf_t *data,
			    uint32_t offsets[TILE_W + 1], moat_error_t *err) MOAT_MUST_CHECK;

/* Subtree hashes and proofs for the tree of `size` entries, read from tiles with
 * a small cache. Borrowed dir and h must outlive it. */
#define TREEREAD_SLOTS 4
typedef struct treeread {
	const char *dir;
	uint64_t size;
	lhash_t *h;
	int next;
	struct {
		int level;
		uint64_t index;
		unsigned width;
		uint8_t h[TILE_W][MOAT_HASH_LEN];
	} slot[TREEREAD_SLOTS];
} treeread_t;

void treeread_init(treeread_t *t, const char *dir, uint64_t size, lhash_t *h);
/* MTH(D[a:b]) for 0 <= a < b <= size. */
moat_err_t treeread_range(treeread_t *t, uint64_t a, uint64_t b, uint8_t out[MOAT_HASH_LEN],
			  moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t treeread_root(treeread_t *t, uint8_t out[MOAT_HASH_LEN],
			 moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t treeread_inclusion(treeread_t *t, uint64_t index, uint8_t leaf[MOAT_HASH_LEN],
			      uint8_t proof[][MOAT_HASH_LEN], size_t *n,
			      moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t treeread_consistency(treeread_t *t, uint64_t old_size, uint8_t proof[][MOAT_HASH_LEN],
				size_t *n, moat_error_t *err) MOAT_MUST_CHECK;

#endif
