/*
 * Internals shared by the ledger's source files (not a public header).
 */
#ifndef MOAT_LEDGER_INT_H
#define MOAT_LEDGER_INT_H

#include <openssl/evp.h>

#include "moat/ledger.h"

/* A reusable SHA-256 context for RFC 6962 hashing. One per thread. */
typedef struct lhash {
	EVP_MD *md;
	EVP_MD_CTX *ctx;
} lhash_t;

moat_err_t lhash_init(lhash_t *h) MOAT_MUST_CHECK;
void lhash_free(lhash_t *h);
void lhash_leaf(lhash_t *h, const void *data, size_t len, uint8_t out[MOAT_HASH_LEN]);
void lhash_node(lhash_t *h, const uint8_t left[MOAT_HASH_LEN], const uint8_t right[MOAT_HASH_LEN],
		uint8_t out[MOAT_HASH_LEN]);
/* Merkle tree hash of n (a power of two) consecutive hashes, in place-safe scratch. */
void lhash_pow2(lhash_t *h, const uint8_t (*hashes)[MOAT_HASH_LEN], size_t n,
		uint8_t out[MOAT_HASH_LEN]);

/* Signing key loaded from <dir>/key. */
typedef struct lkey {
	char name[MOAT_LEDGER_ORIGIN_MAX + 1];
	uint8_t id[4];
	uint8_t pub[32];
	EVP_PKEY *pkey; /* NULL for a verifier-only key */
	char vkey[MOAT_LEDGER_VKEY_MAX + 1];
} lkey_t;

bool lkey_name_valid(const char *name);
/* Generates a new key; fills the private key file text (caller frees). */
moat_err_t lkey_generate(const char *name, lkey_t *k, char **keyfile,
			 moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t lkey_parse_private(const char *text, size_t len, lkey_t *k,
			      moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t lkey_parse_vkey(const char *vkey, lkey_t *k, moat_error_t *err) MOAT_MUST_CHECK;
void lkey_free(lkey_t *k);
/* Signs a checkpoint body and appends the whole note to out. */
moat_err_t lkey_sign_checkpoint(lkey_t *k, uint64_t size, const uint8_t root[MOAT_HASH_LEN],
				moat_buf_t *out, moat_error_t *err) MOAT_MUST_CHECK;

#endif
