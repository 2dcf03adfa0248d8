/*
 * The stored form of an order's PII (src/app/pii.c): moat_pii_encode's output
 * decodes back to the same strings whatever they hold, and moat_pii_decode
 * accepts exactly the JSON objects of that shape, JSON's escapes included,
 * refusing everything else with nothing left in *out. fuzz/fuzz_pii.c compares
 * the decoder with jansson on arbitrary input.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "moat/app.h"

/* Pieces random strings are made of: every class of byte the encoder treats
 * apart (plain, quote, backslash, control, slash, 2-, 3- and 4-byte UTF-8, the
 * highest code points below the surrogates and of the BMP). */
static const char *const pieces[] = {"a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\x01",
				     "\x1f", "\x7f", "\xc2\x80", "刘", "丽", "\xed\x9f\xbf",
				     "\xef\xbf\xbf", "😀", "\xf4\x8f\xbf\xbf", "{", "}", ":",
				     ","};

static unsigned long long rng = 0x9e3779b97f4a7c15ull;
static unsigned next(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static void random_str(char *out, size_t cap)
{
	size_t len = 0;
	unsigned k = next(12);
	out[0] = '\0';
	for (unsigned i = 0; i < k; i++) {
		const char *p = pieces[next(sizeof pieces / sizeof *pieces)];
		size_t n = strlen(p);
		if (len + n >= cap)
			break;
		memcpy(out + len, p, n + 1);
		len += n;
	}
}

static void round_trips(void)
{
	int bad = 0;
	for (int i = 0; i < 20000; i++) {
		char name[64], phone[64], detail[64], idn[64];
		random_str(name, sizeof name);
		random_str(phone, sizeof phone);
		random_str(detail, sizeof detail);
		random_str(idn, sizeof idn);
		bool has_id = next(2);
		moat_buf_t b;
		moat_buf_init(&b, 1 << 16);
		CHECK(moat_pii_encode(name, phone, detail, has_id ? idn : NULL, &b) == MOAT_OK);
		moat_pii_t p;
		moat_error_t e = {0};
		moat_err_t rc = moat_pii_decode(b.data, b.len, &p, &e);
		if (rc != MOAT_OK || strcmp(p.name, name) != 0 || strcmp(p.phone, phone) != 0 ||
		    strcmp(p.address_detail, detail) != 0 || (p.id_number != NULL) != has_id ||
		    (has_id && strcmp(p.id_number, idn) != 0)) {
			if (bad++ < 5)
				fprintf(stderr, "round trip failed for %s (%s)\n", b.data, e.msg);
		}
		moat_pii_clear(&p);
		moat_buf_free(&b);
	}
	CHECK_INT(bad, 0);
}

/* Decodes text (NUL-terminated; n bytes when n is given) and checks the result:
 * want_name NULL means it must be refused, with *out left empty. */
static void expect(const char *text, size_t n, const char *want_name, const char *want_phone,
		   const char *want_detail, const char *want_id)
{
	moat_pii_t p;
	memset(&p, 0x5a, sizeof p); /* decode must set every field either way */
	moat_error_t e = {0};
	moat_err_t rc = moat_pii_decode(text, n ? n : strlen(text), &p, &e);
	if (!want_name) {
		CHECK_MSG(rc == MOAT_ECORRUPT, "accepted %s", text);
		CHECK_MSG(!p.name && !p.phone && !p.address_detail && !p.id_number,
			  "refusing %s left fields set", text);
		CHECK_MSG(strstr(e.msg, "decrypted PII is") != NULL, "message: %s", e.msg);
		return;
	}
	CHECK_MSG(rc == MOAT_OK, "refused %s: %s", text, e.msg);
	if (rc != MOAT_OK)
		return;
	CHECK_MSG(strcmp(p.name, want_name) == 0, "%s: name %s", text, p.name);
	CHECK_MSG(strcmp(p.phone, want_phone) == 0, "%s: phone %s", text, p.phone);
	CHECK_MSG(strcmp(p.address_detail, want_detail) == 0, "%s: detail %s", text,
		  p.address_detail);
	CHECK_MSG(want_id ? p.id_number && strcmp(p.id_number, want_id) == 0 : !p.id_number,
		  "%s: id_number", text);
	moat_pii_clear(&p);
	CHECK(!p.name && !p.phone);
}

static void cases(void)
{
	expect("{\"detail\":\"d\",\"name\":\"n\",\"phone\":\"p\"}", 0, "n", "p", "d", NULL);
	/* any order, JSON's whitespace anywhere between tokens */
	expect(" {\r\n\t\"phone\" : \"p\" ,\"id_number\":\"i\", \"name\":\"n\",\n\"detail\":\"d\" } \n",
	       0, "n", "p", "d", "i");
	/* escapes: \u (BMP, surrogate pair, upper or lower case hex), the short ones */
	expect("{\"detail\":\"\\/\\b\\f\\n\\r\\t\\\"\\\\\",\"name\":\"\\u5218\\u4E3D\","
	       "\"phone\":\"\\ud83d\\uDE00\\u0041\"}",
	       0, "刘丽", "😀A", "/\b\f\n\r\t\"\\", NULL);
	expect("{\"detail\":\"\",\"name\":\"\",\"phone\":\"\"}", 0, "", "", "", NULL);

	static const char *const refused[] = {
	    "",
	    "   ",
	    "[]",
	    "\"x\"",
	    "{}",
	    "{\"name\":\"n\",\"phone\":\"p\"}",                                /* no detail */
	    "{\"detail\":\"d\",\"name\":\"n\",\"phone\":\"p\",\"name\":\"m\"}", /* duplicated */
	    "{\"detail\":\"d\",\"name\":\"n\",\"phone\":\"p\",\"email\":\"e\"}", /* unknown */
	    "{\"detail\":\"d\",\"name\":\"n\",\"phone\":5}",
	    "{\"detail\":\"d\",\"name\":\"n\",\"phone\":null}",
	    "{\"detail\":\"d\",\"name\":\"n\",\"phone\":\"p\",\"id_number\":null}",
	    "{\"detail\":\"d\",\"name\":\"n\",\"phone\":\"p\"}x",
	    "{\"detail\":\"d\",\"name\":\"n\",\"phone\":\"p\"}}",
	    "{\"detail\":\"d\",\"name\":\"n\",\"phone\":\"p\",}",
	    "{\"detail\":\"d\" \"name\":\"n\",\"phone\":\"p\"}",
	    "{\"detail\" \"d\",\"name\":\"n\",\"phone\":\"p\"}",
	    "{detail:\"d\",\"name\":\"n\",\"phone\":\"p\"}",
	    "{\"detail\":'d',\"name\":\"n\",\"phone\":\"p\"}",
	    "{\"detail\":\"d\",\"name\":\"\\ud83d\",\"phone\":\"p\"}",        /* lone high */
	    "{\"detail\":\"d\",\"name\":\"\\ude00\",\"phone\":\"p\"}",        /* lone low */
	    "{\"detail\":\"d\",\"name\":\"\\ud83d\\u0041\",\"phone\":\"p\"}", /* high + BMP */
	    "{\"detail\":\"d\",\"name\":\"\\ud83d\\n\",\"phone\":\"p\"}",
	    "{\"detail\":\"d\",\"name\":\"\\u0000\",\"phone\":\"p\"}",
	    "{\"detail\":\"d\",\"name\":\"\\u12g4\",\"phone\":\"p\"}",
	    "{\"detail\":\"d\",\"name\":\"\\u12\",\"phone\":\"p\"}",
	    "{\"detail\":\"d\",\"name\":\"\\x41\",\"phone\":\"p\"}",
	    "{\"detail\":\"d\",\"name\":\"\\'\",\"phone\":\"p\"}",
	    "{\"detail\":\"d\",\"name\":\"a\x01\",\"phone\":\"p\"}", /* raw control */
	    "{\"detail\":\"d\",\"name\":\"a\tb\",\"phone\":\"p\"}",
	    "{\"detail\":\"d\",\"name\":\"\xff\",\"phone\":\"p\"}",       /* not UTF-8 */
	    "{\"detail\":\"d\",\"name\":\"\xc0\xaf\",\"phone\":\"p\"}",   /* overlong */
	    "{\"detail\":\"d\",\"name\":\"\xed\xa0\x80\",\"phone\":\"p\"}", /* surrogate */
	    "{\"detail\":\"d\",\"name\":\"\xe5\x88\",\"phone\":\"p\"}",   /* cut sequence */
	    "{\"detail\":\"d\",\"name\":\"n\",\"phone\":\"p\\\"}",
	};
	for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
		expect(refused[i], 0, NULL, NULL, NULL, NULL);
	/* an empty input (n = 0) is refused, not read */
	moat_pii_t p;
	moat_error_t e = {0};
	CHECK(moat_pii_decode("{", 0, &p, &e) == MOAT_ECORRUPT);
	/* a NUL byte inside a string, or between tokens, is refused */
	static const char with_nul[] = "{\"detail\":\"d\0\",\"name\":\"n\",\"phone\":\"p\"}";
	expect(with_nul, sizeof with_nul - 1, NULL, NULL, NULL, NULL);
	static const char nul_ws[] = "{\"detail\":\"d\",\0\"name\":\"n\",\"phone\":\"p\"}";
	expect(nul_ws, sizeof nul_ws - 1, NULL, NULL, NULL, NULL);

	/* every strict prefix of a valid document is refused */
	const char *full = "{\"detail\":\"天河路1号\",\"id_number\":\"44010619900101123X\","
			   "\"name\":\"\\u5218\\u4e3d\",\"phone\":\"13800000001\"}";
	expect(full, 0, "刘丽", "13800000001", "天河路1号", "44010619900101123X");
	size_t n = strlen(full);
	int accepted = 0;
	for (size_t k = 1; k < n; k++) {
		moat_pii_t q;
		if (moat_pii_decode(full, k, &q, &e) == MOAT_OK) {
			accepted++;
			moat_pii_clear(&q);
		}
	}
	CHECK_INT(accepted, 0);
}

int main(void)
{
	round_trips();
	cases();
	return check_done();
}
