/*
 * C2SP signed notes with Ed25519 keys, and C2SP tlog-checkpoint bodies.
 *
 * Key strings follow golang.org/x/mod/sumdb/note (the reference implementation of
 * c2sp.org/signed-note):
 *   verifier key  "<name>+<8 hex key id>+<base64(0x01 || 32-byte public key)>"
 *   signer key    "PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 || 32-byte seed)>"
 *   key id        SHA-256(name || 0x0A || 0x01 || public key)[:4]
 * A note is UTF-8 text ending in '\n', a blank line, then signature lines
 * "— <name> <base64(key id || signature)>\n" (U+2014 EM DASH).
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/ledger_int.h"

#define SIG_ED25519 0x01
#define NOTE_MAX_SIGS 100
static const char EMDASH_SP[] = "\xe2\x80\x94 ";

bool lkey_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > MOAT_LEDGER_ORIGIN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= 0x20 || c >= 0x7f || c == '+')
			return false;
	}
	return true;
}

void moat_ledger_key_id(const char *name, const uint8_t pubkey[32], uint8_t id[4])
{
	uint8_t md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t mid[2] = {'\n', SIG_ED25519};
	if (!ctx || EVP_DigestInit_ex2(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, name, strlen(name)) != 1 || EVP_DigestUpdate(ctx, mid, 2) != 1 ||
	    EVP_DigestUpdate(ctx, pubkey, 32) != 1 || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		memset(md, 0, sizeof md);
	EVP_MD_CTX_free(ctx);
	memcpy(id, md, 4);
}

static void make_vkey(lkey_t *k)
{
	uint8_t raw[33];
	char b64[48], idhex[9];
	raw[0] = SIG_ED25519;
	memcpy(raw + 1, k->pub, 32);
	moat_b64_encode(raw, sizeof raw, b64);
	moat_hex_encode(k->id, 4, idhex);
	snprintf(k->vkey, sizeof k->vkey, "%s+%s+%s", k->name, idhex, b64);
}

static moat_err_t key_from_seed(const char *name, const uint8_t seed[32], lkey_t *k,
				moat_error_t *err)
{
	memset(k, 0, sizeof *k);
	snprintf(k->name, sizeof k->name, "%s", name);
	k->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	size_t publen = 32;
	if (!k->pkey || EVP_PKEY_get_raw_public_key(k->pkey, k->pub, &publen) != 1 ||
	    publen != 32) {
		lkey_free(k);
		return moat_error_set(err, MOAT_ECRYPTO, NULL,
				      "cannot load the ledger signing key");
	}
	moat_ledger_key_id(k->name, k->pub, k->id);
	make_vkey(k);
	return MOAT_OK;
}

void lkey_free(lkey_t *k)
{
	EVP_PKEY_free(k->pkey);
	k->pkey = NULL;
}

moat_err_t lkey_generate(const char *name, lkey_t *k, char **keyfile, moat_error_t *err)
{
	uint8_t seed[33];
	if (!lkey_name_valid(name))
		return moat_error_set(err, MOAT_EINVAL, "origin",
				      "origin must be 1..%d printable ASCII characters without "
				      "spaces or '+'",
				      MOAT_LEDGER_ORIGIN_MAX);
	if (moat_random(seed + 1, 32) != MOAT_OK)
		return moat_error_set(err, MOAT_ECRYPTO, NULL, "no randomness for the ledger key");
	moat_err_t rc = key_from_seed(name, seed + 1, k, err);
	if (rc != MOAT_OK)
		goto done;
	seed[0] = SIG_ED25519;
	char b64[64], idhex[9];
	moat_b64_encode(seed, sizeof seed, b64);
	moat_hex_encode(k->id, 4, idhex);
	moat_buf_t b;
	moat_buf_init(&b, 1024);
	if (moat_buf_printf(&b, "PRIVATE+KEY+%s+%s+%s\n", k->name, idhex, b64) != MOAT_OK) {
		moat_buf_free(&b);
		lkey_free(k);
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		goto done;
	}
	*keyfile = moat_buf_take(&b);
done:
	OPENSSL_cleanse(seed, sizeof seed);
	OPENSSL_cleanse(b64, sizeof b64);
	return rc;
}

/* Splits "name+hexid+base64" (the last two '+' separate the fields, since base64
 * itself may contain '+'... it cannot in the name, which is checked). */
static bool split_key(const char *s, size_t n, char *name, size_t namecap, uint8_t id[4],
		      uint8_t raw[33])
{
	const char *p1 = memchr(s, '+', n);
	if (!p1 || (size_t)(p1 - s) >= namecap || p1 == s)
		return false;
	const char *p2 = memchr(p1 + 1, '+', n - (size_t)(p1 + 1 - s));
	if (!p2 || p2 - p1 - 1 != 8)
		return false;
	memcpy(name, s, (size_t)(p1 - s));
	name[p1 - s] = '\0';
	if (!lkey_name_valid(name))
		return false;
	size_t idlen = 0, rawlen = 0;
	for (const char *c = p1 + 1; c < p2; c++)
		if (*c >= 'A' && *c <= 'F')
			return false; /* key ids are lower-case hex */
	if (!moat_hex_decode(p1 + 1, 8, id, &idlen, 4) || idlen != 4)
		return false;
	const char *b = p2 + 1;
	size_t blen = n - (size_t)(b - s);
	if (!moat_b64_decode(b, blen, raw, &rawlen, 33) || rawlen != 33 || raw[0] != SIG_ED25519)
		return false;
	return true;
}

moat_err_t lkey_parse_private(const char *text, size_t len, lkey_t *k, moat_error_t *err)
{
	static const char pfx[] = "PRIVATE+KEY+";
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	uint8_t raw[33], id[4];
	char name[MOAT_LEDGER_ORIGIN_MAX + 1];
	if (len < sizeof pfx || memcmp(text, pfx, sizeof pfx - 1) != 0 ||
	    !split_key(text + sizeof pfx - 1, len - (sizeof pfx - 1), name, sizeof name, id, raw))
		return moat_error_set(err, MOAT_ECORRUPT, NULL,
				      "the ledger key file is not a PRIVATE+KEY+… signer key");
	moat_err_t rc = key_from_seed(name, raw + 1, k, err);
	OPENSSL_cleanse(raw, sizeof raw);
	if (rc != MOAT_OK)
		return rc;
	if (memcmp(id, k->id, 4) != 0) {
		lkey_free(k);
		return moat_error_set(err, MOAT_ECORRUPT, NULL,
				      "the ledger key file's key id does not match its key");
	}
	return MOAT_OK;
}

moat_err_t lkey_parse_vkey(const char *vkey, lkey_t *k, moat_error_t *err)
{
	uint8_t raw[33], id[4];
	memset(k, 0, sizeof *k);
	size_t n = strlen(vkey);
	while (n > 0 && (vkey[n - 1] == '\n' || vkey[n - 1] == '\r'))
		n--;
	if (n > MOAT_LEDGER_VKEY_MAX || !split_key(vkey, n, k->name, sizeof k->name, id, raw))
		return moat_error_set(
		    err, MOAT_EINVAL, "vkey",
		    "not a verifier key (expected name+keyid+base64 Ed25519 key)");
	memcpy(k->pub, raw + 1, 32);
	moat_ledger_key_id(k->name, k->pub, k->id);
	if (memcmp(id, k->id, 4) != 0)
		return moat_error_set(err, MOAT_EINVAL, "vkey",
				      "verifier key id does not match its name and key");
	make_vkey(k);
	return MOAT_OK;
}

static bool ed25519_verify(const uint8_t pub[32], const uint8_t *msg, size_t msglen,
			   const uint8_t sig[64])
{
	EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = pk && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
		  EVP_DigestVerify(ctx, sig, 64, msg, msglen) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return ok;
}

/* Note text rules (c2sp.org/signed-note): valid UTF-8, no ASCII control characters
 * other than newline, no Unicode space or line breaks handled beyond that. */
static bool note_text_ok(const char *s, size_t n)
{
	if (!moat_utf8_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\n') || c == 0x7f)
			return false;
	}
	return true;
}

moat_err_t moat_ledger_note_verify(const char *note, size_t len, const char *vkey, size_t *text_len,
				   moat_error_t *err)
{
	lkey_t k;
	moat_err_t rc = lkey_parse_vkey(vkey, &k, err);
	if (rc != MOAT_OK)
		return rc;
	if (len == 0 || len > MOAT_LEDGER_NOTE_MAX || !note_text_ok(note, len) ||
	    note[len - 1] != '\n')
		return moat_error_set(
		    err, MOAT_EINVAL, "note",
		    "not a signed note (bad characters, too long or no final newline)");
	/* The signature block starts after the last blank line. */
	size_t split = 0;
	bool found = false;
	for (size_t i = len - 1; i > 0; i--)
		if (note[i] == '\n' && note[i - 1] == '\n') {
			split = i; /* text = note[0..split) ends with "\n" */
			found = true;
			break;
		}
	if (!found || split < 1)
		return moat_error_set(err, MOAT_EINVAL, "note",
				      "signed note has no signature block");
	size_t textlen = split;
	const char *p = note + split + 1, *end = note + len;
	if (p >= end)
		return moat_error_set(err, MOAT_EINVAL, "note", "signed note has no signatures");
	bool verified = false;
	int nsigs = 0;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol || ++nsigs > NOTE_MAX_SIGS)
			return moat_error_set(err, MOAT_EINVAL, "note",
					      "malformed signature block");
		size_t ll = (size_t)(eol - p);
		if (ll < sizeof EMDASH_SP || memcmp(p, EMDASH_SP, sizeof EMDASH_SP - 1) != 0)
			return moat_error_set(err, MOAT_EINVAL, "note",
					      "signature line does not start with \"— \"");
		const char *name = p + sizeof EMDASH_SP - 1;
		const char *sp = memchr(name, ' ', (size_t)(eol - name));
		if (!sp || sp == name)
			return moat_error_set(err, MOAT_EINVAL, "note", "malformed signature line");
		size_t namelen = (size_t)(sp - name);
		uint8_t sig[128];
		size_t siglen = 0;
		if (!moat_b64_decode(sp + 1, (size_t)(eol - sp - 1), sig, &siglen, sizeof sig) ||
		    siglen < 5)
			return moat_error_set(err, MOAT_EINVAL, "note",
					      "signature is not base64 of key id and signature");
		if (namelen == strlen(k.name) && memcmp(name, k.name, namelen) == 0 &&
		    memcmp(sig, k.id, 4) == 0) {
			if (siglen != 4 + 64 ||
			    !ed25519_verify(k.pub, (const uint8_t *)note, textlen, sig + 4))
				return moat_error_set(err, MOAT_EDENIED, "note",
						      "signature by %s does not verify", k.name);
			verified = true;
		}
		p = eol + 1;
	}
	if (!verified)
		return moat_error_set(err, MOAT_EDENIED, "note", "note carries no signature by %s",
				      k.name);
	if (text_len)
		*text_len = textlen;
	return MOAT_OK;
}

/* Parses a checkpoint body (text of textlen bytes, ending in '\n'). */
static moat_err_t checkpoint_parse(const char *text, size_t textlen, moat_checkpoint_t *out,
				   moat_error_t *err)
{
	const char *lines[3];
	size_t lens[3];
	const char *p = text, *end = text + textlen;
	for (int i = 0; i < 3; i++) {
		const char *eol = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
		if (!eol)
			return moat_error_set(err, MOAT_EINVAL, "checkpoint",
					      "checkpoint needs origin, size and root lines");
		lines[i] = p;
		lens[i] = (size_t)(eol - p);
		p = eol + 1;
	}
	/* Extension lines, if any, must be non-empty. */
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol || eol == p)
			return moat_error_set(err, MOAT_EINVAL, "checkpoint",
					      "empty extension line");
		p = eol + 1;
	}
	if (lens[0] == 0 || lens[0] > MOAT_LEDGER_ORIGIN_MAX)
		return moat_error_set(err, MOAT_EINVAL, "checkpoint", "bad origin line");
	memcpy(out->origin, lines[0], lens[0]);
	out->origin[lens[0]] = '\0';
	if (lens[1] == 0 || lens[1] > 19 || (lens[1] > 1 && lines[1][0] == '0'))
		return moat_error_set(err, MOAT_EINVAL, "checkpoint", "bad tree size line");
	uint64_t size = 0;
	for (size_t i = 0; i < lens[1]; i++) {
		if (lines[1][i] < '0' || lines[1][i] > '9')
			return moat_error_set(err, MOAT_EINVAL, "checkpoint", "bad tree size line");
		size = size * 10 + (uint64_t)(lines[1][i] - '0');
	}
	if (size > (UINT64_C(1) << 63))
		return moat_error_set(err, MOAT_EINVAL, "checkpoint", "tree size out of range");
	out->size = size;
	size_t rl = 0;
	if (!moat_b64_decode(lines[2], lens[2], out->root, &rl, MOAT_HASH_LEN) ||
	    rl != MOAT_HASH_LEN)
		return moat_error_set(err, MOAT_EINVAL, "checkpoint",
				      "root line is not base64 of a 32-byte hash");
	return MOAT_OK;
}

moat_err_t moat_ledger_checkpoint_verify(const char *note, size_t len, const char *vkey,
					 moat_checkpoint_t *out, moat_error_t *err)
{
	size_t textlen = 0;
	moat_err_t rc = moat_ledger_note_verify(note, len, vkey, &textlen, err);
	if (rc != MOAT_OK)
		return rc;
	rc = checkpoint_parse(note, textlen, out, err);
	if (rc != MOAT_OK)
		return rc;
	lkey_t k;
	if (lkey_parse_vkey(vkey, &k, NULL) != MOAT_OK || strcmp(k.name, out->origin) != 0)
		return moat_error_set(err, MOAT_EDENIED, "checkpoint",
				      "checkpoint origin \"%s\" is not the key's name",
				      out->origin);
	return MOAT_OK;
}

moat_err_t lkey_sign_checkpoint(lkey_t *k, uint64_t size, const uint8_t root[MOAT_HASH_LEN],
				moat_buf_t *out, moat_error_t *err)
{
	char rootb64[64];
	moat_b64_encode(root, MOAT_HASH_LEN, rootb64);
	size_t start = out->len;
	if (moat_buf_printf(out, "%s\n%llu\n%s\n", k->name, (unsigned long long)size, rootb64) !=
	    MOAT_OK)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "checkpoint too long");
	size_t textlen = out->len - start;
	uint8_t sig[4 + 64];
	size_t siglen = 64;
	memcpy(sig, k->id, 4);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && k->pkey && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
		  EVP_DigestSign(ctx, sig + 4, &siglen, (const uint8_t *)out->data + start,
				 textlen) == 1 &&
		  siglen == 64;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return moat_error_set(err, MOAT_ECRYPTO, NULL, "cannot sign the checkpoint");
	char sigb64[128];
	moat_b64_encode(sig, sizeof sig, sigb64);
	if (moat_buf_printf(out, "\n%s%s %s\n", EMDASH_SP, k->name, sigb64) != MOAT_OK)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "checkpoint too long");
	return MOAT_OK;
}
