/*
 * The buyer PII of an order as it is encrypted in the store: a small JSON
 * object {"detail":…,"id_number":…,"name":…,"phone":…} (id_number optional).
 *
 * Written and read here. The reader is a strict decoder of exactly that shape
 * rather than a general JSON parser: every gateway read that reveals PII decodes
 * one, and a general parser built a tree of copies of the plaintext in memory it
 * then freed without wiping. This one writes each value once, straight into the
 * string the caller gets (and wipes with moat_pii_clear), and wipes what it
 * drops on failure.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "moat/app.h"

static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

void moat_pii_clear(moat_pii_t *p)
{
	if (!p)
		return;
	wipe_free(p->name);
	wipe_free(p->phone);
	wipe_free(p->address_detail);
	wipe_free(p->id_number);
	memset(p, 0, sizeof *p);
}

moat_err_t moat_pii_encode(const char *name, const char *phone, const char *detail,
			   const char *id_number, moat_buf_t *out)
{
	moat_err_t rc = moat_buf_puts(out, "{\"detail\":");
	if (rc == MOAT_OK)
		rc = moat_buf_json_str(out, detail);
	if (rc == MOAT_OK && id_number)
		rc = moat_buf_puts(out, ",\"id_number\":");
	if (rc == MOAT_OK && id_number)
		rc = moat_buf_json_str(out, id_number);
	if (rc == MOAT_OK)
		rc = moat_buf_puts(out, ",\"name\":");
	if (rc == MOAT_OK)
		rc = moat_buf_json_str(out, name);
	if (rc == MOAT_OK)
		rc = moat_buf_puts(out, ",\"phone\":");
	if (rc == MOAT_OK)
		rc = moat_buf_json_str(out, phone);
	if (rc == MOAT_OK)
		rc = moat_buf_putc(out, '}');
	return rc;
}

/* ---- decoding ---- */

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int hex4(const char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* Decodes the body of the JSON string literal [p, end) (between its quotes, which
 * the caller found) into out, which has room for end - p + 1 bytes: a decoded
 * string is never longer than its literal. The rules are JSON's (RFC 8259) with
 * jansson's defaults: valid UTF-8 only, no raw control characters, no lone
 * surrogate escapes, no \u0000. Returns the decoded length, or -1. */
static long decode_str(const char *p, const char *end, char *out)
{
	char *o = out;
	while (p < end) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20)
			return -1;
		if (c >= 0x80) {
			size_t k = moat_utf8_seq(p, (size_t)(end - p));
			if (!k)
				return -1;
			memcpy(o, p, k);
			o += k;
			p += k;
			continue;
		}
		if (c != '\\') {
			*o++ = (char)c;
			p++;
			continue;
		}
		if (end - p < 2)
			return -1;
		char e = p[1];
		p += 2;
		switch (e) {
		case '"': *o++ = '"'; continue;
		case '\\': *o++ = '\\'; continue;
		case '/': *o++ = '/'; continue;
		case 'b': *o++ = '\b'; continue;
		case 'f': *o++ = '\f'; continue;
		case 'n': *o++ = '\n'; continue;
		case 'r': *o++ = '\r'; continue;
		case 't': *o++ = '\t'; continue;
		case 'u': break;
		default: return -1;
		}
		long cp = end - p >= 4 ? hex4(p) : -1;
		if (cp <= 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
			return -1; /* bad hex, \u0000, or a low surrogate first */
		p += 4;
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			int lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
			if (lo < 0xDC00 || lo > 0xDFFF)
				return -1;
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			p += 6;
		}
		if (cp < 0x80) {
			*o++ = (char)cp;
		} else if (cp < 0x800) {
			*o++ = (char)(0xC0 | (cp >> 6));
			*o++ = (char)(0x80 | (cp & 0x3F));
		} else if (cp < 0x10000) {
			*o++ = (char)(0xE0 | (cp >> 12));
			*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
			*o++ = (char)(0x80 | (cp & 0x3F));
		} else {
			*o++ = (char)(0xF0 | (cp >> 18));
			*o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
			*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
			*o++ = (char)(0x80 | (cp & 0x3F));
		}
	}
	*o = '\0';
	return o - out;
}

/* The closing quote of the string literal whose body starts at p, or NULL. */
static const char *str_end(const char *p, const char *end)
{
	for (; p < end; p++) {
		if (*p == '"')
			return p;
		if (*p == '\\')
			p++; /* the escaped byte is never the closing quote */
	}
	return NULL;
}

static moat_err_t malformed(moat_pii_t *out, moat_error_t *err, const char *why)
{
	moat_pii_clear(out);
	return moat_error_set(err, MOAT_ECORRUPT, NULL, "decrypted PII is malformed (%s)", why);
}

moat_err_t moat_pii_decode(const char *s, size_t n, moat_pii_t *out, moat_error_t *err)
{
	memset(out, 0, sizeof *out);
	if (n == 0) /* (s may be NULL then: no arithmetic on it) */
		return malformed(out, err, "empty");
	const char *p = skip_ws(s, s + n), *end = s + n;
	if (p == end || *p != '{')
		return malformed(out, err, "not an object");
	p = skip_ws(p + 1, end);
	bool first = true;
	while (p < end && *p != '}') {
		if (!first) {
			if (*p != ',')
				return malformed(out, err, "expected ',' or '}'");
			p = skip_ws(p + 1, end);
		}
		first = false;
		/* the key: one of four short names, compared once decoded */
		if (p == end || *p != '"')
			return malformed(out, err, "expected a key");
		const char *kq = str_end(p + 1, end);
		if (!kq)
			return malformed(out, err, "unterminated key");
		char key[16];
		long klen = kq - (p + 1) < (long)sizeof key ? decode_str(p + 1, kq, key) : -1;
		char **slot = NULL;
		if (klen == 6 && memcmp(key, "detail", 6) == 0)
			slot = &out->address_detail;
		else if (klen == 9 && memcmp(key, "id_number", 9) == 0)
			slot = &out->id_number;
		else if (klen == 4 && memcmp(key, "name", 4) == 0)
			slot = &out->name;
		else if (klen == 5 && memcmp(key, "phone", 5) == 0)
			slot = &out->phone;
		else
			return malformed(out, err, "unknown key");
		if (*slot)
			return malformed(out, err, "duplicated key");
		p = skip_ws(kq + 1, end);
		if (p == end || *p != ':')
			return malformed(out, err, "expected ':'");
		p = skip_ws(p + 1, end);
		/* the value: a string, decoded straight into the caller's copy */
		if (p == end || *p != '"')
			return malformed(out, err, "a value is not a string");
		const char *vq = str_end(p + 1, end);
		if (!vq)
			return malformed(out, err, "unterminated string");
		*slot = malloc((size_t)(vq - p));
		if (!*slot) {
			moat_pii_clear(out);
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		}
		if (decode_str(p + 1, vq, *slot) < 0) {
			OPENSSL_cleanse(*slot, (size_t)(vq - p));
			free(*slot);
			*slot = NULL;
			return malformed(out, err, "bad string");
		}
		p = skip_ws(vq + 1, end);
	}
	if (p == end || skip_ws(p + 1, end) != end)
		return malformed(out, err, p == end ? "unterminated object" : "text after the object");
	if (!out->name || !out->phone || !out->address_detail) {
		moat_pii_clear(out);
		return moat_error_set(err, MOAT_ECORRUPT, NULL, "decrypted PII is incomplete");
	}
	return MOAT_OK;
}
