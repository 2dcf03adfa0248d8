/*
 * moat crypto: data-encryption keys (AES-256-GCM) for buyer PII at rest, the
 * keyed hash used for phone look-ups, and credential hashing.
 *
 * Key files live in <data>/keys/ (directory 0700, files 0600):
 *   dek-<id>.key   32 random bytes, hex; <id> is "k1", "k2", …
 *   current        the id new records are encrypted with
 *   lookup.key     32 random bytes, hex: HMAC-SHA-256 key for phone look-ups
 */
#ifndef MOAT_CRYPTO_H
#define MOAT_CRYPTO_H

#include "moat/base.h"

#define MOAT_KEY_ID_MAX 16
#define MOAT_HMAC_LEN 32
#define MOAT_API_KEY_BYTES 32

typedef struct moat_keyring moat_keyring_t;

/* Creates <keys_dir> with a first data key "k1" and a look-up key. Refuses to
 * touch an existing key directory (MOAT_EEXIST). */
moat_err_t moat_keyring_create(const char *keys_dir, moat_error_t *err) MOAT_MUST_CHECK;
/* Loads every key; checks permissions (refuses group/other-readable key files). */
moat_err_t moat_keyring_open(const char *keys_dir, moat_keyring_t **out,
			     moat_error_t *err) MOAT_MUST_CHECK;
void moat_keyring_free(moat_keyring_t *k);
/* Id of the key new records use (borrowed). */
const char *moat_keyring_current(const moat_keyring_t *k);
/* Adds a new key, makes it current, returns its id in out (>= MOAT_KEY_ID_MAX). */
moat_err_t moat_keyring_rotate(moat_keyring_t *k, char *out_id, moat_error_t *err) MOAT_MUST_CHECK;

/* AES-256-GCM with the current key. aad binds the ciphertext to its record (the
 * order id), so blobs cannot be swapped between records. The blob format is
 * version(1) | key-id length(1) | key id | nonce(12) | ciphertext | tag(16).
 * *out is malloc'd (caller frees). */
moat_err_t moat_encrypt(const moat_keyring_t *k, const void *plain, size_t n, const char *aad,
			uint8_t **out, size_t *out_len, moat_error_t *err) MOAT_MUST_CHECK;
/* Decrypts a blob from moat_encrypt with whichever key it names. *out is malloc'd
 * and NUL-terminated (caller frees). MOAT_ECORRUPT if tampered. */
moat_err_t moat_decrypt(const moat_keyring_t *k, const uint8_t *blob, size_t n, const char *aad,
			char **out, size_t *out_len, moat_error_t *err) MOAT_MUST_CHECK;
/* Key id a blob was encrypted with, into out (cap >= MOAT_KEY_ID_MAX). */
bool moat_blob_key_id(const uint8_t *blob, size_t n, char *out, size_t cap);

/* A sealer does what moat_encrypt and moat_lookup_hash do, for bulk work on one
 * thread (an import): its AES-256-GCM context is keyed once with the key that is
 * current when it is made, and each record only sets a fresh nonce (from the
 * keyring's shared counter, so sealers on several threads never repeat one). The
 * keyring must outlive it; a key added after it was made is not seen by it, so
 * make one per batch of work. Not shared between threads. */
typedef struct moat_sealer moat_sealer_t;
moat_err_t moat_sealer_new(const moat_keyring_t *k, moat_sealer_t **out,
			   moat_error_t *err) MOAT_MUST_CHECK;
/* moat_sealer_free(NULL) is a no-op; the key material is wiped. */
void moat_sealer_free(moat_sealer_t *s);
/* Id of the key this sealer encrypts with (borrowed). */
const char *moat_sealer_key_id(const moat_sealer_t *s);
/* Size of the blob for n bytes of plaintext. */
size_t moat_sealer_blob_len(const moat_sealer_t *s, size_t n);
/* The same blob format as moat_encrypt, written to out (cap >= moat_sealer_blob_len
 * of n; MOAT_ELIMIT otherwise). */
moat_err_t moat_sealer_encrypt(moat_sealer_t *s, const void *plain, size_t n, const char *aad,
			       uint8_t *out, size_t cap, size_t *out_len,
			       moat_error_t *err) MOAT_MUST_CHECK;
/* HMAC-SHA-256(lookup key, str), as moat_lookup_hash. */
void moat_sealer_lookup_hash(moat_sealer_t *s, const char *str, uint8_t out[MOAT_HMAC_LEN]);

/* An opener does what moat_decrypt does, for many records on one thread (a
 * server loop): its AES-256-GCM context stays keyed with the key it last opened
 * a record with, so the next record under that key (the usual case) only sets
 * its nonce instead of expanding the key again. The keyring must outlive it. Not
 * shared between threads. */
typedef struct moat_opener moat_opener_t;
moat_err_t moat_opener_new(const moat_keyring_t *k, moat_opener_t **out,
			   moat_error_t *err) MOAT_MUST_CHECK;
/* moat_opener_free(NULL) is a no-op; the key material is wiped. */
void moat_opener_free(moat_opener_t *o);
/* As moat_decrypt. */
moat_err_t moat_opener_decrypt(moat_opener_t *o, const uint8_t *blob, size_t n, const char *aad,
			       char **out, size_t *out_len, moat_error_t *err) MOAT_MUST_CHECK;

/* HMAC-SHA-256(lookup key, s). */
void moat_lookup_hash(const moat_keyring_t *k, const char *s, uint8_t out[MOAT_HMAC_LEN]);

/* SHA-256 of n bytes. */
void moat_sha256(const void *data, size_t n, uint8_t out[32]);

/* API keys: 256 random bits shown once as "moat_" + 64 hex chars. Only the
 * SHA-256 of the key is stored; a high-entropy key needs no slow hash. */
moat_err_t moat_api_key_new(char out[72], uint8_t hash[32]) MOAT_MUST_CHECK;
/* Hash of a presented key; false if it is not well-formed. */
bool moat_api_key_hash(const char *key, uint8_t hash[32]);

/* Passwords (src/crypto/password.c): argon2id, PHC string form
 * "$argon2id$v=19$m=…,t=…,p=…$salt$hash" (out >= MOAT_PHC_MAX). Passwords are
 * 8..1024 bytes (MOAT_EINVAL otherwise). */
#define MOAT_PHC_MAX 256
moat_err_t moat_password_hash(const char *password, char out[MOAT_PHC_MAX],
			      moat_error_t *err) MOAT_MUST_CHECK;
/* The same PHC form for a machine-generated random secret of at least
 * MOAT_SECRET_MIN bytes (e.g. 32 hex digits of 128 random bits), at argon2id's
 * minimum cost. The slow hash exists for guessable human passwords; a random
 * secret cannot be guessed (as with API keys), and `moat replay` logs in
 * thousands of times a second with such secrets. Never for human passwords. */
#define MOAT_SECRET_MIN 32
moat_err_t moat_password_hash_secret(const char *secret, char out[MOAT_PHC_MAX],
				     moat_error_t *err) MOAT_MUST_CHECK;
/* True iff password matches phc. Spends the same work for a NULL/invalid phc (so
 * an unknown username takes as long as a wrong password). */
bool moat_password_verify(const char *phc, const char *password);

#endif
