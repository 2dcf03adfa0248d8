/*
 * RFC 6962 / RFC 9162 Merkle hashing and proof verification, and C2SP tile paths.
 *
 * Everything here is pure computation: no files, no ledger state, so the offline
 * verifier (`moat ledger verify-proof`) and tests use it directly.
 */
#include <stdio.h>
#include <string.h>

#include "ledger/ledger_int.h"

moat_err_t lhash_init(lhash_t *h)
{
	h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	h->ctx = EVP_MD_CTX_new();
	if (!h->md || !h->ctx) {
		lhash_free(h);
		return MOAT_ECRYPTO;
	}
	return MOAT_OK;
}

void lhash_free(lhash_t *h)
{
	EVP_MD_CTX_free(h->ctx);
	EVP_MD_free(h->md);
	h->ctx = NULL;
	h->md = NULL;
}

/* SHA-256 cannot fail on valid inputs with a fetched digest; a failure here means
 * OpenSSL itself is broken, and a zero hash makes every later check fail loudly. */
static void digest2(lhash_t *h, uint8_t prefix, const void *a, size_t alen, const void *b,
		    size_t blen, uint8_t out[MOAT_HASH_LEN])
{
	unsigned int n = 0;
	if (EVP_DigestInit_ex2(h->ctx, h->md, NULL) != 1 ||
	    EVP_DigestUpdate(h->ctx, &prefix, 1) != 1 || EVP_DigestUpdate(h->ctx, a, alen) != 1 ||
	    (blen && EVP_DigestUpdate(h->ctx, b, blen) != 1) ||
	    EVP_DigestFinal_ex(h->ctx, out, &n) != 1 || n != MOAT_HASH_LEN)
		memset(out, 0, MOAT_HASH_LEN);
}

void lhash_leaf(lhash_t *h, const void *data, size_t len, uint8_t out[MOAT_HASH_LEN])
{
	digest2(h, 0x00, data, len, NULL, 0, out);
}

void lhash_node(lhash_t *h, const uint8_t left[MOAT_HASH_LEN], const uint8_t right[MOAT_HASH_LEN],
		uint8_t out[MOAT_HASH_LEN])
{
	digest2(h, 0x01, left, MOAT_HASH_LEN, right, MOAT_HASH_LEN, out);
}

void lhash_pow2(lhash_t *h, const uint8_t (*hashes)[MOAT_HASH_LEN], size_t n,
		uint8_t out[MOAT_HASH_LEN])
{
	/* n <= 256 in every caller: one level at a time in a local copy. */
	uint8_t work[MOAT_LEDGER_TILE_WIDTH][MOAT_HASH_LEN];
	if (n == 1) {
		memcpy(out, hashes[0], MOAT_HASH_LEN);
		return;
	}
	for (size_t i = 0; i < n / 2; i++)
		lhash_node(h, hashes[2 * i], hashes[2 * i + 1], work[i]);
	for (size_t w = n / 2; w > 1; w /= 2)
		for (size_t i = 0; i < w / 2; i++)
			lhash_node(h, work[2 * i], work[2 * i + 1], work[i]);
	memcpy(out, work[0], MOAT_HASH_LEN);
}

void moat_ledger_leaf_hash(const void *data, size_t len, uint8_t out[MOAT_HASH_LEN])
{
	lhash_t h;
	if (lhash_init(&h) != MOAT_OK) {
		memset(out, 0, MOAT_HASH_LEN);
		return;
	}
	lhash_leaf(&h, data, len, out);
	lhash_free(&h);
}

void moat_ledger_node_hash(const uint8_t left[MOAT_HASH_LEN], const uint8_t right[MOAT_HASH_LEN],
			   uint8_t out[MOAT_HASH_LEN])
{
	lhash_t h;
	if (lhash_init(&h) != MOAT_OK) {
		memset(out, 0, MOAT_HASH_LEN);
		return;
	}
	lhash_node(&h, left, right, out);
	lhash_free(&h);
}

bool moat_ledger_verify_inclusion(const uint8_t *leaf_hash, size_t leaf_hash_len, uint64_t index,
				  uint64_t size, const uint8_t *proof, size_t proof_len,
				  const uint8_t *root, size_t root_len)
{
	if (!leaf_hash || !root || leaf_hash_len != MOAT_HASH_LEN || root_len != MOAT_HASH_LEN)
		return false;
	if (proof_len % MOAT_HASH_LEN || proof_len / MOAT_HASH_LEN > MOAT_LEDGER_PROOF_MAX)
		return false;
	if (index >= size)
		return false;
	lhash_t h;
	if (lhash_init(&h) != MOAT_OK)
		return false;
	/* RFC 9162 §2.1.3.2 */
	uint64_t fn = index, sn = size - 1;
	uint8_t r[MOAT_HASH_LEN];
	memcpy(r, leaf_hash, MOAT_HASH_LEN);
	size_t n = proof_len / MOAT_HASH_LEN;
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = proof + i * MOAT_HASH_LEN;
		if (sn == 0) {
			ok = false;
			break;
		}
		if ((fn & 1) || fn == sn) {
			lhash_node(&h, p, r, r);
			if (!(fn & 1))
				while (fn != 0 && !(fn & 1)) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			lhash_node(&h, r, p, r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	lhash_free(&h);
	return ok && sn == 0 && moat_ct_equal(r, root, MOAT_HASH_LEN);
}

bool moat_ledger_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t *root1,
				    size_t root1_len, const uint8_t *root2, size_t root2_len,
				    const uint8_t *proof, size_t proof_len)
{
	if (!root1 || !root2 || size1 == 0 || size1 > size2)
		return false;
	if (proof_len % MOAT_HASH_LEN || proof_len / MOAT_HASH_LEN > MOAT_LEDGER_PROOF_MAX)
		return false;
	if (size1 == size2)
		/* Trivial: nothing to prove; the roots must be the same value. */
		return proof_len == 0 && root1_len == root2_len &&
		       moat_ct_equal(root1, root2, root1_len);
	if (root1_len != MOAT_HASH_LEN || root2_len != MOAT_HASH_LEN || proof_len == 0)
		return false;
	/* RFC 9162 §2.1.4.2 */
	size_t n = proof_len / MOAT_HASH_LEN, i = 0;
	uint8_t first[MOAT_HASH_LEN];
	if ((size1 & (size1 - 1)) == 0) {
		/* size1 is a power of two: prepend first_hash to the proof. */
		memcpy(first, root1, MOAT_HASH_LEN);
	} else {
		memcpy(first, proof, MOAT_HASH_LEN);
		i = 1;
	}
	lhash_t h;
	if (lhash_init(&h) != MOAT_OK)
		return false;
	uint64_t fn = size1 - 1, sn = size2 - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	uint8_t fr[MOAT_HASH_LEN], sr[MOAT_HASH_LEN];
	memcpy(fr, first, MOAT_HASH_LEN);
	memcpy(sr, first, MOAT_HASH_LEN);
	bool ok = true;
	for (; i < n; i++) {
		const uint8_t *c = proof + i * MOAT_HASH_LEN;
		if (sn == 0) {
			ok = false;
			break;
		}
		if ((fn & 1) || fn == sn) {
			lhash_node(&h, c, fr, fr);
			lhash_node(&h, c, sr, sr);
			if (!(fn & 1))
				while (fn != 0 && !(fn & 1)) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			lhash_node(&h, sr, c, sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	lhash_free(&h);
	return ok && sn == 0 && moat_ct_equal(fr, root1, MOAT_HASH_LEN) &&
	       moat_ct_equal(sr, root2, MOAT_HASH_LEN);
}

void moat_ledger_tile_path(int level, uint64_t index, unsigned width, char *out, size_t cap)
{
	/* <N>: 3-digit groups, all but the last prefixed with "x". */
	char groups[8][8];
	int ng = 0;
	do {
		snprintf(groups[ng++], sizeof groups[0], "%03u", (unsigned)(index % 1000));
		index /= 1000;
	} while (index > 0 && ng < 8);
	size_t pos = 0;
	int n =
	    level < 0 ? snprintf(out, cap, "tile/entries/") : snprintf(out, cap, "tile/%d/", level);
	pos = n > 0 ? (size_t)n : 0;
	for (int g = ng - 1; g >= 0 && pos < cap; g--) {
		n = snprintf(out + pos, cap - pos, "%s%s%s", g == ng - 1 ? "" : "/",
			     g > 0 ? "x" : "", groups[g]);
		pos += n > 0 ? (size_t)n : 0;
	}
	if (width > 0 && width < MOAT_LEDGER_TILE_WIDTH && pos < cap)
		snprintf(out + pos, cap - pos, ".p/%u", width);
}
