/* Keyring, AES-256-GCM for PII at rest, look-up HMAC, API keys. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "moat/crypto.h"

/* Algorithms fetched once: OpenSSL 3 looks an algorithm up again on every
 * one-shot call or init given a legacy EVP_sha256() / EVP_aes_256_gcm(), which
 * cost as much as hashing an API key. NULL (a failed fetch) falls back to those. */
static EVP_MD *fetched_sha256;
static EVP_CIPHER *fetched_gcm;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_algorithms(void)
{
	fetched_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	fetched_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static const EVP_CIPHER *gcm_cipher(void)
{
	pthread_once(&fetch_once, fetch_algorithms);
	return fetched_gcm ? fetched_gcm : EVP_aes_256_gcm();
}

#define KEY_LEN 32
#define NONCE_LEN 12
#define TAG_LEN 16
#define MAX_KEYS 64
#define BLOB_VERSION 1

typedef struct dek {
	char id[MOAT_KEY_ID_MAX];
	uint8_t key[KEY_LEN];
} dek_t;

struct moat_keyring {
	char dir[1024];
	dek_t keys[MAX_KEYS];
	size_t n;
	size_t current;
	uint8_t lookup[KEY_LEN];
	/* HMAC-SHA-256 of the look-up key with the padded key blocks already
	 * absorbed (RFC 2104): a look-up hash copies these two states instead of
	 * fetching the MAC and hashing the key again on every call. */
	EVP_MD_CTX *hmac_inner, *hmac_outer;
	/* GCM nonces use the deterministic construction of NIST SP 800-38D 8.2.1:
	 * a random 4-byte field fixed per keyring instance and a 64-bit invocation
	 * counter, so no nonce repeats under one key without a RAND call per record. */
	uint8_t nonce_fixed[4];
	uint64_t nonce_counter;
	pthread_mutex_t nonce_lock;
};

static moat_err_t write_key_file(const char *dir, const char *name, const uint8_t key[KEY_LEN],
				 moat_error_t *err)
{
	char path[1200], hex[2 * KEY_LEN + 2];
	moat_hex_encode(key, KEY_LEN, hex);
	strcat(hex, "\n");
	if (moat_path_join(path, sizeof path, dir, name) != MOAT_OK)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "key path too long");
	return moat_file_write_atomic(path, hex, strlen(hex), 0600, err);
}

static moat_err_t read_key_file(const char *path, uint8_t key[KEY_LEN], moat_error_t *err)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return moat_error_set(err, MOAT_ENOTFOUND, NULL, "missing key file %s", path);
	if (st.st_mode & 077)
		return moat_error_set(err, MOAT_EDENIED, NULL,
				      "key file %s is readable by others; run chmod 600 on it",
				      path);
	char *text = NULL;
	size_t len = 0;
	moat_err_t rc = moat_file_read(path, 256, &text, &len, err);
	if (rc != MOAT_OK)
		return rc;
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	size_t n = 0;
	bool ok = moat_hex_decode(text, len, key, &n, KEY_LEN) && n == KEY_LEN;
	OPENSSL_cleanse(text, len);
	free(text);
	return ok ? MOAT_OK
		  : moat_error_set(err, MOAT_ECORRUPT, NULL, "key file %s is malformed", path);
}

moat_err_t moat_keyring_create(const char *dir, moat_error_t *err)
{
	struct stat st;
	if (stat(dir, &st) == 0)
		return moat_error_set(err, MOAT_EEXIST, NULL, "key directory %s already exists",
				      dir);
	moat_err_t rc = moat_mkdirs(dir, 0700, err);
	if (rc != MOAT_OK)
		return rc;
	uint8_t k[KEY_LEN];
	if (moat_random(k, KEY_LEN) != MOAT_OK)
		return moat_error_set(err, MOAT_ECRYPTO, NULL, "no randomness available");
	rc = write_key_file(dir, "dek-k1.key", k, err);
	if (rc == MOAT_OK && moat_random(k, KEY_LEN) != MOAT_OK)
		rc = moat_error_set(err, MOAT_ECRYPTO, NULL, "no randomness available");
	if (rc == MOAT_OK)
		rc = write_key_file(dir, "lookup.key", k, err);
	OPENSSL_cleanse(k, sizeof k);
	if (rc == MOAT_OK) {
		char path[1200];
		if (moat_path_join(path, sizeof path, dir, "current") != MOAT_OK)
			return moat_error_set(err, MOAT_ELIMIT, NULL, "key path too long");
		rc = moat_file_write_atomic(path, "k1\n", 3, 0600, err);
	}
	return rc;
}

static bool key_id_valid(const char *id)
{
	size_t n = strlen(id);
	if (n < 2 || n >= MOAT_KEY_ID_MAX || id[0] != 'k')
		return false;
	for (size_t i = 1; i < n; i++)
		if (id[i] < '0' || id[i] > '9')
			return false;
	return true;
}

/* Absorbs the look-up key's inner and outer padded blocks (RFC 2104). */
static bool hmac_prepare(moat_keyring_t *k)
{
	uint8_t ipad[64], opad[64];
	memset(ipad, 0x36, sizeof ipad);
	memset(opad, 0x5c, sizeof opad);
	for (size_t i = 0; i < KEY_LEN; i++) {
		ipad[i] ^= k->lookup[i];
		opad[i] ^= k->lookup[i];
	}
	k->hmac_inner = EVP_MD_CTX_new();
	k->hmac_outer = EVP_MD_CTX_new();
	bool ok = k->hmac_inner && k->hmac_outer &&
		  EVP_DigestInit_ex(k->hmac_inner, EVP_sha256(), NULL) == 1 &&
		  EVP_DigestUpdate(k->hmac_inner, ipad, sizeof ipad) == 1 &&
		  EVP_DigestInit_ex(k->hmac_outer, EVP_sha256(), NULL) == 1 &&
		  EVP_DigestUpdate(k->hmac_outer, opad, sizeof opad) == 1;
	OPENSSL_cleanse(ipad, sizeof ipad);
	OPENSSL_cleanse(opad, sizeof opad);
	return ok;
}

moat_err_t moat_keyring_open(const char *dir, moat_keyring_t **out, moat_error_t *err)
{
	moat_keyring_t *k = calloc(1, sizeof *k);
	if (!k)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	snprintf(k->dir, sizeof k->dir, "%s", dir);
	pthread_mutex_init(&k->nonce_lock, NULL);
	moat_err_t rc = moat_random(k->nonce_fixed, sizeof k->nonce_fixed);
	if (rc != MOAT_OK) {
		moat_error_set(err, rc, NULL, "no randomness available");
		goto fail;
	}
	DIR *d = opendir(dir);
	if (!d) {
		rc = moat_error_set(err, MOAT_ENOTFOUND, NULL, "cannot open key directory %s: %s",
				    dir, strerror(errno));
		goto fail;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char id[MOAT_KEY_ID_MAX + 16];
		size_t len = strlen(de->d_name);
		if (len < 9 || strncmp(de->d_name, "dek-", 4) != 0 ||
		    strcmp(de->d_name + len - 4, ".key") != 0)
			continue;
		snprintf(id, sizeof id, "%.*s", (int)(len - 8), de->d_name + 4);
		if (!key_id_valid(id))
			continue;
		if (k->n == MAX_KEYS) {
			rc = moat_error_set(err, MOAT_ELIMIT, NULL, "more than %d data keys",
					    MAX_KEYS);
			break;
		}
		char path[1400];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		memcpy(k->keys[k->n].id, id, strlen(id) + 1); /* key_id_valid: < MOAT_KEY_ID_MAX */
		rc = read_key_file(path, k->keys[k->n].key, err);
		if (rc != MOAT_OK)
			break;
		k->n++;
	}
	closedir(d);
	if (rc != MOAT_OK)
		goto fail;
	char path[1200], *cur = NULL;
	snprintf(path, sizeof path, "%s/current", dir);
	rc = moat_file_read(path, 64, &cur, NULL, err);
	if (rc != MOAT_OK)
		goto fail;
	cur[strcspn(cur, "\r\n")] = '\0';
	bool found = false;
	for (size_t i = 0; i < k->n; i++)
		if (strcmp(k->keys[i].id, cur) == 0) {
			k->current = i;
			found = true;
		}
	free(cur);
	if (!found) {
		rc = moat_error_set(err, MOAT_ECORRUPT, NULL,
				    "current data key named in %s is missing", path);
		goto fail;
	}
	snprintf(path, sizeof path, "%s/lookup.key", dir);
	rc = read_key_file(path, k->lookup, err);
	if (rc != MOAT_OK)
		goto fail;
	if (!hmac_prepare(k)) {
		rc = moat_error_set(err, MOAT_ECRYPTO, NULL, "cannot prepare the look-up HMAC");
		goto fail;
	}
	*out = k;
	return MOAT_OK;
fail:
	moat_keyring_free(k);
	return rc;
}

void moat_keyring_free(moat_keyring_t *k)
{
	if (!k)
		return;
	pthread_mutex_destroy(&k->nonce_lock);
	EVP_MD_CTX_free(k->hmac_inner);
	EVP_MD_CTX_free(k->hmac_outer);
	OPENSSL_cleanse(k, sizeof *k);
	free(k);
}

const char *moat_keyring_current(const moat_keyring_t *k)
{
	return k->keys[k->current].id;
}

moat_err_t moat_keyring_rotate(moat_keyring_t *k, char *out_id, moat_error_t *err)
{
	if (k->n == MAX_KEYS)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "more than %d data keys", MAX_KEYS);
	long maxn = 0;
	for (size_t i = 0; i < k->n; i++) {
		long v = strtol(k->keys[i].id + 1, NULL, 10) % 1000000;
		if (v > maxn)
			maxn = v;
	}
	dek_t *d = &k->keys[k->n];
	snprintf(d->id, sizeof d->id, "k%d", (int)(maxn + 1) % 10000000);
	if (moat_random(d->key, KEY_LEN) != MOAT_OK)
		return moat_error_set(err, MOAT_ECRYPTO, NULL, "no randomness available");
	char name[64];
	snprintf(name, sizeof name, "dek-%s.key", d->id);
	moat_err_t rc = write_key_file(k->dir, name, d->key, err);
	if (rc != MOAT_OK)
		return rc;
	/* The new key file is durable before "current" names it. */
	char path[1200], line[MOAT_KEY_ID_MAX + 2];
	snprintf(path, sizeof path, "%s/current", k->dir);
	snprintf(line, sizeof line, "%s\n", d->id);
	rc = moat_file_write_atomic(path, line, strlen(line), 0600, err);
	if (rc != MOAT_OK)
		return rc;
	k->current = k->n++;
	snprintf(out_id, MOAT_KEY_ID_MAX, "%s", d->id);
	return MOAT_OK;
}

static const dek_t *find_key(const moat_keyring_t *k, const char *id)
{
	for (size_t i = 0; i < k->n; i++)
		if (strcmp(k->keys[i].id, id) == 0)
			return &k->keys[i];
	return NULL;
}

/* The next GCM nonce: the keyring's fixed field and its invocation counter. */
static void next_nonce(moat_keyring_t *k, uint8_t nonce[NONCE_LEN])
{
	pthread_mutex_lock(&k->nonce_lock);
	uint64_t ctr = ++k->nonce_counter;
	pthread_mutex_unlock(&k->nonce_lock);
	memcpy(nonce, k->nonce_fixed, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(ctr >> (56 - 8 * i));
}

moat_err_t moat_encrypt(const moat_keyring_t *k, const void *plain, size_t n, const char *aad,
			uint8_t **out, size_t *out_len, moat_error_t *err)
{
	const dek_t *d = &k->keys[k->current];
	size_t idlen = strlen(d->id);
	size_t total = 2 + idlen + NONCE_LEN + n + TAG_LEN;
	uint8_t *b = malloc(total);
	if (!b)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	b[0] = BLOB_VERSION;
	b[1] = (uint8_t)idlen;
	memcpy(b + 2, d->id, idlen);
	uint8_t *nonce = b + 2 + idlen, *ct = nonce + NONCE_LEN, *tag = ct + n;
	EVP_CIPHER_CTX *c = NULL;
	int len = 0;
	next_nonce((moat_keyring_t *)k, nonce); /* only the nonce counter changes */
	c = EVP_CIPHER_CTX_new();
	if (!c || EVP_EncryptInit_ex(c, gcm_cipher(), NULL, d->key, nonce) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &len, (const uint8_t *)aad, (int)strlen(aad)) != 1 ||
	    EVP_EncryptUpdate(c, ct, &len, plain, (int)n) != 1 ||
	    EVP_EncryptFinal_ex(c, ct + len, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
		goto fail;
	EVP_CIPHER_CTX_free(c);
	*out = b;
	*out_len = total;
	return MOAT_OK;
fail:
	EVP_CIPHER_CTX_free(c);
	free(b);
	return moat_error_set(err, MOAT_ECRYPTO, NULL, "encryption failed");
}

/* ---- sealer ---- */

struct moat_sealer {
	moat_keyring_t *keys; /* borrowed: the nonce counter and look-up pads */
	const dek_t *key;
	EVP_CIPHER_CTX *gcm; /* keyed once; each record sets only its nonce */
	EVP_MD_CTX *md;	     /* reused for each look-up hash */
};

moat_err_t moat_sealer_new(const moat_keyring_t *k, moat_sealer_t **out, moat_error_t *err)
{
	moat_sealer_t *s = calloc(1, sizeof *s);
	if (!s)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	s->keys = (moat_keyring_t *)k; /* only the nonce counter changes */
	s->key = &k->keys[k->current];
	s->gcm = EVP_CIPHER_CTX_new();
	s->md = EVP_MD_CTX_new();
	if (!s->gcm || !s->md ||
	    EVP_EncryptInit_ex(s->gcm, gcm_cipher(), NULL, s->key->key, NULL) != 1) {
		moat_sealer_free(s);
		return moat_error_set(err, MOAT_ECRYPTO, NULL, "cannot prepare encryption");
	}
	*out = s;
	return MOAT_OK;
}

void moat_sealer_free(moat_sealer_t *s)
{
	if (!s)
		return;
	EVP_CIPHER_CTX_free(s->gcm); /* wipes the key schedule */
	EVP_MD_CTX_free(s->md);
	free(s);
}

const char *moat_sealer_key_id(const moat_sealer_t *s)
{
	return s->key->id;
}

size_t moat_sealer_blob_len(const moat_sealer_t *s, size_t n)
{
	return 2 + strlen(s->key->id) + NONCE_LEN + n + TAG_LEN;
}

moat_err_t moat_sealer_encrypt(moat_sealer_t *s, const void *plain, size_t n, const char *aad,
			       uint8_t *out, size_t cap, size_t *out_len, moat_error_t *err)
{
	size_t idlen = strlen(s->key->id);
	size_t total = 2 + idlen + NONCE_LEN + n + TAG_LEN;
	if (total > cap || n > INT_MAX)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "record too large to encrypt");
	out[0] = BLOB_VERSION;
	out[1] = (uint8_t)idlen;
	memcpy(out + 2, s->key->id, idlen);
	uint8_t *nonce = out + 2 + idlen, *ct = nonce + NONCE_LEN, *tag = ct + n;
	next_nonce(s->keys, nonce);
	int len = 0;
	if (EVP_EncryptInit_ex(s->gcm, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(s->gcm, NULL, &len, (const uint8_t *)aad, (int)strlen(aad)) != 1 ||
	    EVP_EncryptUpdate(s->gcm, ct, &len, plain, (int)n) != 1 ||
	    EVP_EncryptFinal_ex(s->gcm, ct + len, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(s->gcm, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1) {
		OPENSSL_cleanse(out, total);
		return moat_error_set(err, MOAT_ECRYPTO, NULL, "encryption failed");
	}
	*out_len = total;
	return MOAT_OK;
}

static bool hmac_with(const moat_keyring_t *k, EVP_MD_CTX *c, const char *s,
		      uint8_t out[MOAT_HMAC_LEN])
{
	uint8_t inner[SHA256_DIGEST_LENGTH];
	return c && EVP_MD_CTX_copy_ex(c, k->hmac_inner) == 1 &&
	       EVP_DigestUpdate(c, s, strlen(s)) == 1 && EVP_DigestFinal_ex(c, inner, NULL) == 1 &&
	       EVP_MD_CTX_copy_ex(c, k->hmac_outer) == 1 &&
	       EVP_DigestUpdate(c, inner, sizeof inner) == 1 &&
	       EVP_DigestFinal_ex(c, out, NULL) == 1;
}

void moat_sealer_lookup_hash(moat_sealer_t *s, const char *str, uint8_t out[MOAT_HMAC_LEN])
{
	if (!hmac_with(s->keys, s->md, str, out)) {
		unsigned int len = MOAT_HMAC_LEN;
		HMAC(EVP_sha256(), s->keys->lookup, KEY_LEN, (const uint8_t *)str, strlen(str), out,
		     &len);
	}
}

bool moat_blob_key_id(const uint8_t *blob, size_t n, char *out, size_t cap)
{
	if (n < 2 || blob[0] != BLOB_VERSION || blob[1] == 0 || blob[1] >= cap ||
	    n < 2u + blob[1] + NONCE_LEN + TAG_LEN)
		return false;
	memcpy(out, blob + 2, blob[1]);
	out[blob[1]] = '\0';
	return true;
}

/* Decrypts blob (key d, already keyed into c unless keyed is false) into a
 * malloc'd NUL-terminated *out. */
static moat_err_t open_blob(EVP_CIPHER_CTX *c, bool keyed, const dek_t *d, const uint8_t *blob,
			    size_t n, const char *aad, char **out, size_t *out_len,
			    moat_error_t *err)
{
	size_t idlen = blob[1];
	const uint8_t *nonce = blob + 2 + idlen, *ct = nonce + NONCE_LEN;
	size_t ctlen = n - 2 - idlen - NONCE_LEN - TAG_LEN;
	uint8_t tag[TAG_LEN];
	memcpy(tag, ct + ctlen, TAG_LEN);
	char *p = malloc(ctlen + 1);
	if (!p)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	int len = 0, fin = 0;
	bool ok = c &&
		  (keyed ? EVP_DecryptInit_ex(c, NULL, NULL, NULL, nonce)
			 : EVP_DecryptInit_ex(c, gcm_cipher(), NULL, d->key, nonce)) == 1 &&
		  EVP_DecryptUpdate(c, NULL, &len, (const uint8_t *)aad, (int)strlen(aad)) == 1 &&
		  EVP_DecryptUpdate(c, (uint8_t *)p, &len, ct, (int)ctlen) == 1 &&
		  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1 &&
		  EVP_DecryptFinal_ex(c, (uint8_t *)p + len, &fin) == 1;
	if (!ok) {
		OPENSSL_cleanse(p, ctlen);
		free(p);
		return moat_error_set(
		    err, MOAT_ECORRUPT, NULL,
		    "encrypted record failed authentication (tampered or wrong record)");
	}
	p[ctlen] = '\0';
	*out = p;
	if (out_len)
		*out_len = ctlen;
	return MOAT_OK;
}

/* The key a blob names, or NULL with err set. */
static const dek_t *blob_key(const moat_keyring_t *k, const uint8_t *blob, size_t n,
			     moat_error_t *err)
{
	char id[MOAT_KEY_ID_MAX];
	if (!moat_blob_key_id(blob, n, id, sizeof id)) {
		moat_error_set(err, MOAT_ECORRUPT, NULL, "encrypted record is malformed");
		return NULL;
	}
	const dek_t *d = find_key(k, id);
	if (!d)
		moat_error_set(err, MOAT_ECORRUPT, NULL, "record is encrypted with unknown key %s",
			       id);
	return d;
}

moat_err_t moat_decrypt(const moat_keyring_t *k, const uint8_t *blob, size_t n, const char *aad,
			char **out, size_t *out_len, moat_error_t *err)
{
	const dek_t *d = blob_key(k, blob, n, err);
	if (!d)
		return MOAT_ECORRUPT;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	moat_err_t rc = open_blob(c, false, d, blob, n, aad, out, out_len, err);
	EVP_CIPHER_CTX_free(c);
	return rc;
}

struct moat_opener {
	const moat_keyring_t *keys;
	EVP_CIPHER_CTX *c;
	const dek_t *keyed; /* the key c holds; NULL: none */
};

moat_err_t moat_opener_new(const moat_keyring_t *k, moat_opener_t **out, moat_error_t *err)
{
	*out = NULL;
	moat_opener_t *o = calloc(1, sizeof *o);
	if (!o || !(o->c = EVP_CIPHER_CTX_new())) {
		free(o);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	o->keys = k;
	*out = o;
	return MOAT_OK;
}

void moat_opener_free(moat_opener_t *o)
{
	if (!o)
		return;
	EVP_CIPHER_CTX_free(o->c); /* wipes the key schedule */
	free(o);
}

moat_err_t moat_opener_decrypt(moat_opener_t *o, const uint8_t *blob, size_t n, const char *aad,
			       char **out, size_t *out_len, moat_error_t *err)
{
	const dek_t *d = blob_key(o->keys, blob, n, err);
	if (!d)
		return MOAT_ECORRUPT;
	moat_err_t rc = open_blob(o->c, o->keyed == d, d, blob, n, aad, out, out_len, err);
	/* After a failure the context's state is unknown: key it afresh next time. */
	o->keyed = rc == MOAT_OK ? d : NULL;
	return rc;
}

void moat_lookup_hash(const moat_keyring_t *k, const char *s, uint8_t out[MOAT_HMAC_LEN])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	bool ok = hmac_with(k, c, s, out);
	EVP_MD_CTX_free(c);
	if (!ok) { /* allocation failure only: fall back to the one-shot API */
		unsigned int len = MOAT_HMAC_LEN;
		HMAC(EVP_sha256(), k->lookup, KEY_LEN, (const uint8_t *)s, strlen(s), out, &len);
	}
}

void moat_sha256(const void *data, size_t n, uint8_t out[32])
{
	pthread_once(&fetch_once, fetch_algorithms);
	unsigned int len = 32;
	if (!fetched_sha256 || EVP_Digest(data, n, out, &len, fetched_sha256, NULL) != 1)
		SHA256(data, n, out);
}

moat_err_t moat_api_key_new(char out[72], uint8_t hash[32])
{
	uint8_t raw[MOAT_API_KEY_BYTES];
	if (moat_random(raw, sizeof raw) != MOAT_OK)
		return MOAT_ECRYPTO;
	memcpy(out, "moat_", 5);
	moat_hex_encode(raw, sizeof raw, out + 5);
	OPENSSL_cleanse(raw, sizeof raw);
	moat_sha256(out, strlen(out), hash);
	return MOAT_OK;
}

bool moat_api_key_hash(const char *key, uint8_t hash[32])
{
	size_t n = strlen(key);
	if (n != 5 + 2 * MOAT_API_KEY_BYTES || strncmp(key, "moat_", 5) != 0)
		return false;
	for (size_t i = 5; i < n; i++) {
		char c = key[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	moat_sha256(key, n, hash);
	return true;
}
