/* Unit tests for src/base: buffers, time, encodings, UTF-8, JSON limits. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "moat/base.h"
#include "moat/json.h"

static void test_buf(void)
{
	moat_buf_t b;
	moat_buf_init(&b, 8);
	CHECK_INT(moat_buf_puts(&b, "1234"), MOAT_OK);
	CHECK_INT(moat_buf_puts(&b, "56789"), MOAT_ELIMIT);
	CHECK_STR(b.data, "1234"); /* a failed append leaves the buffer unchanged */
	CHECK_INT(moat_buf_puts(&b, "5678"), MOAT_OK);
	CHECK_INT(b.len, 8);
	moat_buf_free(&b);

	/* A secret buffer keeps its text across growth (new blocks, not realloc),
	 * starts with room for a typical response, and honours its cap. */
	moat_buf_init_secret(&b, 5000);
	CHECK(b.secret);
	CHECK_INT(moat_buf_putc(&b, 'x'), MOAT_OK);
	CHECK_INT(b.cap, 1024);
	char want[5001];
	want[0] = 'x';
	for (int i = 1; i < 5000; i++) {
		char ch = (char)('a' + i % 26);
		want[i] = ch;
		if (moat_buf_putc(&b, ch) != MOAT_OK)
			break;
	}
	want[5000] = '\0';
	CHECK_INT(b.len, 5000);
	CHECK(b.cap == 5001 && strcmp(b.data, want) == 0);
	CHECK_INT(moat_buf_putc(&b, 'y'), MOAT_ELIMIT);
	CHECK(strcmp(b.data, want) == 0);
	moat_buf_reset(&b);
	CHECK(b.len == 0 && b.data[0] == '\0' && b.secret);
	moat_buf_free(&b);
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0);

	moat_buf_init(&b, 1024);
	CHECK_INT(moat_buf_json_str(&b, "a\"b\\c\n\x01"), MOAT_OK);
	CHECK_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
	moat_buf_reset(&b);
	CHECK_INT(moat_buf_json_str(&b, "\"天河路 12\t号\\"), MOAT_OK); /* escapes at both ends */
	CHECK_STR(b.data, "\"\\\"天河路 12\\t号\\\\\"");
	moat_buf_reset(&b);
	CHECK_INT(moat_buf_json_str(&b, ""), MOAT_OK);
	CHECK_STR(b.data, "\"\"");
	/* Bytes that are not valid UTF-8 become U+FFFD, so what moat writes is
	 * always JSON: a cut character, a lone continuation byte, an overlong, a
	 * surrogate, a code point past U+10FFFF, a sequence cut by the end. Valid
	 * 2-, 3- and 4-byte characters pass unchanged. */
	static const struct {
		const char *in, *out;
	} utf8[] = {
	    {"ab\xe5\x88", "\"ab\xef\xbf\xbd\xef\xbf\xbd\""},
	    {"\x80x", "\"\xef\xbf\xbdx\""},
	    {"\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\""},
	    {"\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
	    {"\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
	    {"\xf0\x9f\x98", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
	    {"\xc3\xa9\xe5\x88\x98\xf0\x9f\x98\x80\x7f",
	     "\"\xc3\xa9\xe5\x88\x98\xf0\x9f\x98\x80\x7f\""},
	};
	for (size_t i = 0; i < sizeof utf8 / sizeof *utf8; i++) {
		moat_buf_reset(&b);
		CHECK_INT(moat_buf_json_str(&b, utf8[i].in), MOAT_OK);
		CHECK_MSG(strcmp(b.data, utf8[i].out) == 0, "case %zu: %s", i, b.data);
		CHECK(moat_utf8_valid(b.data, b.len));
	}
	moat_buf_free(&b);
	/* Cutting text to fit never ends inside a character. */
	CHECK_INT(moat_utf8_cut("刘丽", 6), 6);
	CHECK_INT(moat_utf8_cut("刘丽", 5), 3);
	CHECK_INT(moat_utf8_cut("刘丽", 3), 3);
	CHECK_INT(moat_utf8_cut("刘丽", 2), 0);
	CHECK_INT(moat_utf8_cut("ab刘", 3), 2);
	CHECK_INT(moat_utf8_cut("abc", 64), 3);
	CHECK_INT(moat_utf8_cut("abc", 0), 0);
	/* over the cap: nothing of the literal stays */
	moat_buf_init(&b, 12);
	CHECK_INT(moat_buf_puts(&b, "ab"), MOAT_OK);
	CHECK_INT(moat_buf_json_str(&b, "0123456789"), MOAT_ELIMIT);
	CHECK_STR(b.data, "ab");
	CHECK_INT(moat_buf_json_str(&b, "x\ny"), MOAT_OK);
	CHECK_STR(b.data, "ab\"x\\ny\"");
	moat_buf_free(&b);
}

/* The decimal formatters against snprintf, at the edges. */
static void test_fmt(void)
{
	const uint64_t us[] = {0, 9, 10, 99, 100, 1234567890, UINT64_MAX};
	for (size_t i = 0; i < sizeof us / sizeof us[0]; i++) {
		char got[32], want[32];
		size_t n = moat_fmt_u64(got, us[i]);
		got[n] = '\0';
		snprintf(want, sizeof want, "%llu", (unsigned long long)us[i]);
		CHECK_STR(got, want);
	}
	const int64_t is[] = {0, -1, 7, -10, INT64_MAX, INT64_MIN};
	for (size_t i = 0; i < sizeof is / sizeof is[0]; i++) {
		char got[32], want[32];
		size_t n = moat_fmt_i64(got, is[i]);
		got[n] = '\0';
		snprintf(want, sizeof want, "%lld", (long long)is[i]);
		CHECK_STR(got, want);
	}
}

static void test_time(void)
{
	moat_time_t t;
	CHECK(moat_time_parse("1970-01-01T00:00:00Z", &t) && t == 0);
	CHECK(moat_time_parse("2026-03-01T10:00:00+08:00", &t));
	char s[32];
	moat_time_format(t, s);
	CHECK_STR(s, "2026-03-01T02:00:00Z");
	CHECK(moat_time_parse("2024-02-29T23:59:59.5-01:30", &t));
	moat_time_format(t, s);
	CHECK_STR(s, "2024-03-01T01:29:59.500Z");
	CHECK(!moat_time_parse("2023-02-29T00:00:00Z", &t)); /* not a leap year */
	CHECK(!moat_time_parse("2026-03-01T10:00:00", &t));  /* offset is mandatory */
	CHECK(!moat_time_parse("2026-13-01T10:00:00Z", &t));
	CHECK(!moat_time_parse("2026-03-01T10:00:00Zjunk", &t));
	CHECK(moat_time_parse("1969-12-31T23:59:59.999Z", &t) && t == -1);
	moat_time_format(-1, s);
	CHECK_STR(s, "1969-12-31T23:59:59.999Z");
	/* Any 64-bit value (a ledger entry read from disk can carry one) prints as
	 * the nearest instant the format can write, without overflow (UBSan). */
	moat_time_format(INT64_MIN, s);
	CHECK_STR(s, "0000-01-01T00:00:00Z");
	moat_time_format(INT64_MIN + 30, s);
	CHECK_STR(s, "0000-01-01T00:00:00Z");
	moat_time_format(INT64_MAX, s);
	CHECK_STR(s, "9999-12-31T23:59:59.999Z");
	moat_time_format(INT64_C(-62167219200001), s);
	CHECK_STR(s, "0000-01-01T00:00:00Z");
	/* against gmtime_r and snprintf over years 1..9999, with and without ms */
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		const int64_t lo = INT64_C(-62135596800000), hi = INT64_C(253402300799999);
		t = lo + (int64_t)(x % (uint64_t)(hi - lo + 1));
		if (i % 2)
			t -= t % 1000; /* whole seconds: no fraction printed */
		time_t secs = (time_t)(t >= 0 ? t / 1000 : -((-t + 999) / 1000));
		int ms = (int)(t - (int64_t)secs * 1000);
		struct tm tm;
		char want[48];
		CHECK(gmtime_r(&secs, &tm) != NULL);
		int k = snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
				 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		snprintf(want + k, sizeof want - (size_t)k, ms ? ".%03dZ" : "Z", ms);
		moat_time_format(t, s);
		CHECK_MSG(strcmp(s, want) == 0, "%lld: %s, want %s", (long long)t, s, want);
	}
	/* the calendar under both: known days, and every day of years 1..9999 round trip
	 * in order */
	CHECK_INT(moat_days_from_civil(1970, 1, 1), 0);
	CHECK_INT(moat_days_from_civil(1969, 12, 31), -1);
	CHECK_INT(moat_days_from_civil(2000, 3, 1), 11017);
	CHECK_INT(moat_days_from_civil(2026, 10, 1), 20727);
	int64_t prev = moat_days_from_civil(1, 1, 1) - 1;
	for (int64_t y = 1; y <= 9999; y++)
		for (unsigned m = 1; m <= 12; m++) {
			static const unsigned len[] = {31, 28, 31, 30, 31, 30,
						       31, 31, 30, 31, 30, 31};
			bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
			unsigned n = len[m - 1] + (m == 2 && leap);
			for (unsigned d = 1; d <= n; d++) {
				int64_t z = moat_days_from_civil(y, m, d), yy;
				unsigned mm, dd;
				moat_civil_from_days(z, &yy, &mm, &dd);
				if (z != prev + 1 || yy != y || mm != m || dd != d) {
					CHECK_MSG(
					    false,
					    "%lld-%u-%u: day %lld after %lld, back %lld-%u-%u",
					    (long long)y, m, d, (long long)z, (long long)prev,
					    (long long)yy, mm, dd);
					return;
				}
				prev = z;
			}
		}
	CHECK_INT(prev, moat_days_from_civil(9999, 12, 31));
}

static void test_encodings(void)
{
	uint8_t raw[] = {0x00, 0xff, 0x10, 0x20};
	char hex[9];
	moat_hex_encode(raw, 4, hex);
	CHECK_STR(hex, "00ff1020");
	uint8_t back[4];
	size_t n;
	CHECK(moat_hex_decode(hex, 8, back, &n, 4) && n == 4 && memcmp(back, raw, 4) == 0);
	CHECK(!moat_hex_decode("0g", 2, back, &n, 4));

	char b64[16];
	moat_b64_encode((const uint8_t *)"hello", 5, b64);
	CHECK_STR(b64, "aGVsbG8=");
	uint8_t out[16];
	CHECK(moat_b64_decode("aGVsbG8=", 8, out, &n, sizeof out) && n == 5 &&
	      memcmp(out, "hello", 5) == 0);
	CHECK(!moat_b64_decode("aGVsbG9=", 8, out, &n, sizeof out)); /* non-canonical */
	CHECK(!moat_b64_decode("aGVsbG8", 7, out, &n, sizeof out));
	CHECK(!moat_b64_decode("aG=sbG8=", 8, out, &n, sizeof out));

	CHECK(moat_ct_equal("abc", "abc", 3));
	CHECK(!moat_ct_equal("abc", "abd", 3));
}

/* UTF-8 validity from the definition, independently of moat_utf8_seq. */
static bool ref_utf8_valid(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = p[i], len = c < 0x80 ? 1 : c >> 5 == 6 ? 2 : c >> 4 == 14 ? 3 : c >> 3 == 30 ? 4 : 0;
		if (!len || i + len > n)
			return false;
		uint32_t cp = len == 1 ? c : c & (0x7fu >> len);
		for (unsigned k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
		if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

static void test_utf8(void)
{
	CHECK(moat_utf8_valid(NULL, 0)); /* an empty body: no pointer arithmetic on NULL */
	CHECK(moat_utf8_valid("刘丽", strlen("刘丽")));
	CHECK_INT(moat_utf8_len("刘丽", strlen("刘丽")), 2);
	CHECK(!moat_utf8_valid("\xc0\xaf", 2));		/* overlong */
	CHECK(!moat_utf8_valid("\xed\xa0\x80", 3));	/* surrogate */
	CHECK(!moat_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	CHECK(!moat_utf8_valid("\xe5\x88", 2));		/* truncated */
	/* bad bytes after and between whole 8-byte ASCII runs, and the length bound */
	CHECK(moat_utf8_valid("abcdefgh12345678刘丽abcdefghi",
			      strlen("abcdefgh12345678刘丽abcdefghi")));
	CHECK(!moat_utf8_valid("abcdefgh\xff", 9));
	CHECK(!moat_utf8_valid("abcdefg\xff"
			       "12345678",
			       16));
	CHECK(!moat_utf8_valid("abcdefgh1234567\x80", 16));
	CHECK(!moat_utf8_valid("abcdefgh12345678\xe5\x88", 18));
	CHECK(moat_utf8_valid("abcdefgh\xff", 8));
	/* Against a decoder written from the definition (decode the code point, then
	 * reject overlongs, surrogates and values past U+10FFFF): every string of
	 * one, two and three bytes, and four-byte strings over the whole lead range. */
	uint8_t s[4];
	size_t agree = 0, checked = 0;
	for (uint32_t x = 0; x < (1u << 24); x++) {
		s[0] = (uint8_t)(x >> 16), s[1] = (uint8_t)(x >> 8), s[2] = (uint8_t)x;
		for (size_t n = 1; n <= 3; n++) {
			if (n < 3 && (x & ((1u << (8 * (3 - n))) - 1)) != 0)
				continue; /* shorter strings once each */
			checked++;
			agree += moat_utf8_valid((const char *)s, n) == ref_utf8_valid(s, n);
		}
	}
	uint64_t r = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 1 << 20; i++) {
		r ^= r << 13, r ^= r >> 7, r ^= r << 17;
		s[0] = (uint8_t)(0xe8 + r % 16), s[1] = (uint8_t)(r >> 8), s[2] = (uint8_t)(r >> 16),
		s[3] = (uint8_t)(r >> 24);
		if (i % 4 == 0)
			s[1] = (uint8_t)(0x80 | (s[1] & 0x3f)), s[2] = (uint8_t)(0x80 | (s[2] & 0x3f)),
			s[3] = (uint8_t)(0x80 | (s[3] & 0x3f));
		checked++;
		agree += moat_utf8_valid((const char *)s, 4) == ref_utf8_valid(s, 4);
	}
	CHECK_MSG(agree == checked, "%zu of %zu strings judged as the reference does", agree,
		  checked);
}

static void test_json(void)
{
	json_t *v = NULL;
	moat_error_t e = {0};
	const char *ok = "{\"a\":{\"b\":1}}";
	CHECK_INT(moat_json_parse(ok, strlen(ok), 4, &v, &e), MOAT_OK);
	json_decref(v);
	const char *dup = "{\"a\":1,\"a\":2}";
	CHECK_INT(moat_json_parse(dup, strlen(dup), 4, &v, &e), MOAT_EINVAL);
	CHECK(strstr(e.msg, "duplicate") != NULL);
	const char *deep = "{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}";
	CHECK_INT(moat_json_parse(deep, strlen(deep), 3, &v, &e), MOAT_ELIMIT);
	/* the depth cap, at and past the limit, whether or not braces in strings
	 * make the text look deeper than it is */
	const char *at = "{\"a\":{\"b\":[{\"c\":1}]}}";
	CHECK_INT(moat_json_parse(at, strlen(at), 4, &v, &e), MOAT_OK);
	json_decref(v);
	CHECK_INT(moat_json_parse(at, strlen(at), 3, &v, &e), MOAT_ELIMIT);
	const char *braces = "{\"a\":\"{{{{[[[[\",\"b\":{\"c\":\"]]}}\"}}";
	CHECK_INT(moat_json_parse(braces, strlen(braces), 2, &v, &e), MOAT_OK);
	json_decref(v);
	CHECK_INT(moat_json_parse(braces, strlen(braces), 1, &v, &e), MOAT_ELIMIT);
	const char *wide = "{\"a\":[{},{},{},{},{},{}],\"b\":[[],[],[]]}";
	CHECK_INT(moat_json_parse(wide, strlen(wide), 3, &v, &e), MOAT_OK);
	json_decref(v);
	CHECK_INT(moat_json_parse(wide, strlen(wide), 2, &v, &e), MOAT_ELIMIT);
	const char *bad = "{\"a\":\"\xff\"}";
	CHECK_INT(moat_json_parse(bad, strlen(bad), 4, &v, &e), MOAT_EINVAL);
	const char *arr = "[1]";
	CHECK_INT(moat_json_parse(arr, strlen(arr), 4, &v, &e), MOAT_EINVAL);
	/* jansson parses first and moat_utf8_valid only names the fault: every bad
	 * sequence, wherever it is (key, value, after the document), is still refused
	 * as invalid UTF-8, and the edges of the valid range still pass */
	static const char *const bad_utf8[] = {
	    "{\"a\":\"\xc0\x80\"}",	      /* overlong NUL */
	    "{\"a\":\"\xe0\x80\xaf\"}",      /* overlong '/' */
	    "{\"a\":\"\xed\xa0\x80\"}",      /* surrogate U+D800 */
	    "{\"a\":\"\xf4\x90\x80\x80\"}", /* past U+10FFFF */
	    "{\"a\":\"\xe4\xb8\"}",	      /* truncated */
	    "{\"a\":\"\x80\"}",		      /* stray continuation byte */
	    "{\"\xff\":1}",			      /* in a key */
	    "{\"a\":1}\xe4\xb8",		      /* after the document */
	    "{\"a\":1} \xf5\x80\x80\x80",	      /* after whitespace */
	    "{\"a\":\"x\xe4",		      /* input ends inside a sequence */
	};
	for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
		v = NULL;
		CHECK_INT(moat_json_parse(bad_utf8[i], strlen(bad_utf8[i]), 4, &v, &e), MOAT_EINVAL);
		CHECK_MSG(strstr(e.msg, "not valid UTF-8") != NULL, "case %zu: %s", i, e.msg);
		CHECK(v == NULL);
	}
	const char *edges = "{\"a\":\"\xf4\x8f\xbf\xbf\xee\x80\x80\xc2\x80\xf0\x9f\x98\x80\"}";
	CHECK_INT(moat_json_parse(edges, strlen(edges), 4, &v, &e), MOAT_OK);
	json_decref(v);
	/* a NUL byte is refused, escaped or raw */
	CHECK_INT(moat_json_parse("{\"a\":\"\\u0000\"}", 13, 4, &v, &e), MOAT_EINVAL);
	CHECK_INT(moat_json_parse("{\"a\":\"\0\"}", 9, 4, &v, &e), MOAT_EINVAL);

	const char *obj = "{\"s\":\"x\",\"n\":5,\"t\":\"2026-01-01T00:00:00Z\",\"z\":1}";
	CHECK_INT(moat_json_parse(obj, strlen(obj), 4, &v, &e), MOAT_OK);
	const char *allowed[] = {"s", "n", "t", NULL};
	CHECK_INT(moat_json_only_keys(v, allowed, "p.", &e), MOAT_EINVAL);
	CHECK_STR(e.field, "p.z");
	const char *s = NULL;
	CHECK_INT(moat_json_get_str(v, "s", "s", true, 10, &s, &e), MOAT_OK);
	CHECK_STR(s, "x");
	int64_t n = 0;
	CHECK_INT(moat_json_get_int(v, "n", "n", true, 0, 4, &n, &e), MOAT_EINVAL);
	CHECK_INT(moat_json_get_str(v, "n", "n", true, 10, &s, &e), MOAT_EINVAL);
	CHECK_STR(e.msg, "must be a string");
	CHECK_INT(moat_json_get_str(v, "missing", "missing", true, 10, &s, &e), MOAT_EINVAL);
	moat_time_t t;
	CHECK_INT(moat_json_get_time(v, "t", "t", true, &t, &e), MOAT_OK);
	json_decref(v);

	/* string checks: length in code points, and which fault is named first */
	v = json_object();
	json_object_set_new(v, "cjk", json_string("\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97")); /* 3 */
	json_object_set_new(v, "nul_long", json_stringn("abc\0defgh", 9));
	json_object_set_new(v, "ctl_long", json_string("abc\tdefgh"));
	json_object_set_new(v, "ctl", json_string("a\nb"));
	CHECK_INT(moat_json_get_str(v, "cjk", "cjk", true, 3, &s, &e), MOAT_OK);
	CHECK_INT(moat_json_get_str(v, "cjk", "cjk", true, 2, &s, &e), MOAT_ELIMIT);
	CHECK_STR(e.msg, "longer than 2 characters");
	CHECK_INT(moat_json_get_str(v, "nul_long", "f", true, 4, &s, &e), MOAT_EINVAL);
	CHECK_STR(e.msg, "must not contain NUL characters");
	CHECK_INT(moat_json_get_str(v, "ctl_long", "f", true, 4, &s, &e), MOAT_ELIMIT);
	CHECK_INT(moat_json_get_str(v, "ctl_long", "f", true, 40, &s, &e), MOAT_EINVAL);
	CHECK_STR(e.msg, "must not contain control characters");
	CHECK_INT(moat_json_get_str(v, "ctl", "f", true, 40, &s, &e), MOAT_EINVAL);
	CHECK_STR(e.msg, "must not contain control characters");
	json_decref(v);
}

/* One document through both halves of moat_json_parse: the fast path (yajl)
 * may only return a tree jansson's own lexer would also have accepted, the same
 * tree with its keys in the same order; moat_json_parse must say what the slow
 * path says. Returns whether the fast path took it. */
static bool json_paths_agree(const char *d, size_t n, int depth, const char *what)
{
	json_t *fast = moat_json_parse_fast(d, n, depth), *slow = NULL, *both = NULL;
	moat_error_t es = {0}, eb = {0};
	moat_err_t rs = moat_json_parse_slow(d, n, depth, &slow, &es);
	moat_err_t rb = moat_json_parse(d, n, depth, &both, &eb);
	CHECK_MSG(rb == rs && strcmp(eb.msg, es.msg) == 0, "%s: parse %d \"%s\", slow %d \"%s\"",
		  what, rb, eb.msg, rs, es.msg);
	if (fast) {
		CHECK_MSG(rs == MOAT_OK, "%s: fast path took a document jansson refuses: %s", what,
			  es.msg);
		char *a = json_dumps(fast, JSON_COMPACT | JSON_ENCODE_ANY);
		char *b = slow ? json_dumps(slow, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		char *c = both ? json_dumps(both, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		CHECK_MSG(a && b && c && strcmp(a, b) == 0 && strcmp(a, c) == 0,
			  "%s: trees differ: fast %s, slow %s", what, a ? a : "-", b ? b : "-");
		free(a);
		free(b);
		free(c);
	}
	json_decref(fast);
	json_decref(slow);
	json_decref(both);
	return fast != NULL;
}

/* The fast path against jansson's lexer on hand-picked documents and on 30,000
 * random mutations of them (bytes replaced, inserted, deleted, spans repeated). */
static void test_json_fast_path(void)
{
	static const char *const taken[] = {
	    "{\"order_id\":\"O123456\",\"merchant\":\"m-zara\",\"placed_at\":\"2026-03-01T10:00:00+08:00\","
	    "\"status\":\"paid\",\"buyer\":{\"name\":\"\xe5\x88\x98\xe4\xb8\xbd\",\"phone\":\"13812345678\","
	    "\"address\":{\"province\":\"\xe5\xb9\xbf\xe4\xb8\x9c\",\"city\":\"x\",\"district\":\"y\","
	    "\"detail\":\"\xf0\x9f\x98\x80 1\"}},\"items\":[{\"sku\":\"S1\",\"title\":\"t\",\"qty\":1,"
	    "\"price_cents\":29900}],\"shipping\":{\"carrier\":\"l-sf\",\"waybill\":\"SF1\"}}",
	    "{\"e\":\"q\\\"b\\\\s\\/n\\n\\t\\r\\b\\f\",\"k\\\"\":1}",
	    "{\"n\":[-0,0,1e5,1.5E-3,-12,9223372036854775807,-9223372036854775807,2.0,1e-400]}",
	    " {\t\"a\" :\r\n[ true , false , null , { } , [ ] , [{\"b\":1}] ] } \n",
	    "{}",
	    "{\"a\":{\"b\":{\"c\":1}},\"b\":{\"a\":2},\"c\":\"\x7f\"}",
	};
	static const char *const declined[] = {
	    "{\"a\":\"\\u00e9\"}",		      /* any \\u escape goes to jansson */
	    "{\"a\":\"\\ud800\"}",		      /* (yajl would take a lone surrogate) */
	    "{\"a\":1,\v\"b\":2}",		      /* yajl's extra whitespace */
	    "{\"a\":1,\f\"b\":2}",
	    "{\"a\":\"\xc0\xaf\"}",		      /* overlong: yajl would take it */
	    "{\"a\":\"\xed\xa0\x80\"}",		      /* a surrogate in UTF-8 */
	    "{\"a\":1,\"a\":2}",			      /* duplicated key */
	    "{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}",       /* deeper than 4 */
	    "[1]",					      /* not an object */
	    "{\"a\":9223372036854775808}",	      /* too big an integer */
	    "{\"a\":1e999}",				      /* real overflow */
	    "{\"a\":1}{}", "{\"a\":1} \"", "{\"a\":1}\"}", "{\"a\":01}", "{\"a\":1,}", "", "{\"a\":\"\x01\"}",
	};
	for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++) {
		char what[32];
		snprintf(what, sizeof what, "taken[%zu]", i);
		CHECK_MSG(json_paths_agree(taken[i], strlen(taken[i]), 4, what), "%s not taken", what);
	}
	for (size_t i = 0; i < sizeof declined / sizeof declined[0]; i++) {
		char what[32];
		snprintf(what, sizeof what, "declined[%zu]", i);
		CHECK_MSG(!json_paths_agree(declined[i], strlen(declined[i]), 4, what), "%s taken", what);
	}

	static const char bytes[] = "\v\f\\u\"\0\x80\xc0\xed\xf4\xff{}[],: \t0129-+.eEtfn/a\x7f";
	uint64_t x = 0x9e3779b97f4a7c15ull;
	size_t fast = 0, accepted = 0;
	char d[1024];
	for (int round = 0; round < 30000; round++) {
		const char *seed = round % 3 ? taken[0] : taken[(size_t)round / 3 % (sizeof taken / sizeof taken[0])];
		size_t n = strlen(seed);
		memcpy(d, seed, n);
		for (int m = 0, count = 1 + round % 3; m < count; m++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			size_t at = n ? (size_t)(x >> 8) % n : 0;
			char b = bytes[(x >> 40) % (sizeof bytes - 1)];
			switch ((x >> 56) % 4) {
			case 0: /* replace */
				if (n)
					d[at] = b;
				break;
			case 1: /* insert */
				if (n + 1 < sizeof d) {
					memmove(d + at + 1, d + at, n - at);
					d[at] = b;
					n++;
				}
				break;
			case 2: /* delete */
				if (n) {
					memmove(d + at, d + at + 1, n - at - 1);
					n--;
				}
				break;
			default: { /* repeat a span: duplicated keys, deeper nesting */
				size_t len = 1 + (size_t)(x >> 20) % 24;
				if (at + len <= n && n + len < sizeof d) {
					memmove(d + at + len, d + at, n - at);
					n += len;
				}
			}
			}
		}
		char what[32];
		snprintf(what, sizeof what, "mutation %d", round);
		int depth = round % 2 ? 4 : 16;
		json_t *v = NULL;
		moat_error_t e = {0};
		if (moat_json_parse_slow(d, n, depth, &v, &e) == MOAT_OK)
			accepted++;
		json_decref(v);
		fast += json_paths_agree(d, n, depth, what);
	}
	printf("json fast path: took %zu of the %zu mutations jansson accepted\n", fast, accepted);
	/* most documents jansson took were the fast path's too, or it is not doing its job */
	CHECK_MSG(accepted > 1000 && fast * 10 > accepted * 6, "fast %zu of %zu accepted", fast,
		  accepted);
}

static json_t *parse_ok(const char *s)
{
	json_t *v = NULL;
	moat_error_t e = {0};
	CHECK_INT(moat_json_parse(s, strlen(s), 8, &v, &e), MOAT_OK);
	return v;
}

/* Parses and releases trees with no arena active, as the gateway's threads do
 * while an importing thread has one. */
static void *json_other_thread(void *arg)
{
	int *ok = arg;
	for (int i = 0; i < 2000; i++) {
		json_t *v = NULL;
		moat_error_t e = {0};
		const char *s = "{\"k\":[1,2,{\"x\":\"yz\"}],\"s\":\"abc\"}";
		if (moat_json_parse(s, strlen(s), 8, &v, &e) != MOAT_OK ||
		    json_integer_value(json_array_get(json_object_get(v, "k"), 1)) != 2)
			*ok = 0;
		json_decref(v);
	}
	return NULL;
}

/* The per-thread jansson arena: trees carved from it, started over once the last
 * block is released (never while one is live), malloc when it is full or not
 * active, and trees of other threads or from before it was active freed as
 * usual. ASan checks the frees; poisoning catches use after a start-over. */
static void test_json_arena(void)
{
	const char *doc = "{\"a\":{\"b\":[1,2,3]},\"s\":\"ä¸­æ\",\"n\":-7}";
	/* built before any arena exists: freed with free() once one is active */
	json_t *before = parse_ok(doc);
	moat_json_arena_t *a = moat_json_arena_new(64 * 1024);
	CHECK(a != NULL);
	CHECK(moat_json_arena_use(a) == NULL);
	CHECK_INT(moat_json_arena_live(a), 0);
	json_t *v1 = parse_ok(doc);
	CHECK(moat_json_arena_live(a) > 0);
	CHECK_INT(json_integer_value(json_object_get(v1, "n")), -7);
	CHECK_STR(json_string_value(json_object_get(v1, "s")), "ä¸­æ");
	json_decref(before);
	size_t live1 = moat_json_arena_live(a);
	CHECK(live1 > 0); /* `before` was not the arena's */
	json_decref(v1);
	CHECK_INT(moat_json_arena_live(a), 0);
	/* started over: the same tree lands in the same place */
	json_t *v2 = parse_ok(doc);
	CHECK(v2 == v1);
	CHECK_INT(moat_json_arena_live(a), live1);
	/* a failed parse releases what it carved */
	json_t *bad = NULL;
	moat_error_t e = {0};
	CHECK_INT(moat_json_parse("{\"a\":1,\"a\":2}", 13, 8, &bad, &e), MOAT_EINVAL);
	CHECK_INT(moat_json_arena_live(a), live1);
	/* no start-over while a tree is live: a third tree goes after the second */
	json_t *v3 = parse_ok(doc);
	CHECK(v3 != v2);
	json_decref(v2);
	CHECK_INT(moat_json_arena_live(a), live1);
	json_t *v4 = parse_ok(doc);
	CHECK(v4 != v2 && v4 != v3);
	CHECK_INT(json_array_size(json_object_get(json_object_get(v3, "a"), "b")), 3);
	json_decref(v4);
	json_decref(v3);
	CHECK_INT(moat_json_arena_live(a), 0);

	/* other threads (no arena active there) neither use nor disturb it */
	json_t *mine = parse_ok(doc);
	size_t live = moat_json_arena_live(a);
	int ok = 1;
	pthread_t th;
	CHECK_INT(pthread_create(&th, NULL, json_other_thread, &ok), 0);
	pthread_join(th, NULL);
	CHECK_INT(ok, 1);
	CHECK_INT(moat_json_arena_live(a), live);
	CHECK_INT(json_integer_value(json_object_get(mine, "n")), -7);
	json_decref(mine);
	CHECK_INT(moat_json_arena_live(a), 0);

	/* deactivated: malloc again, and json_dumps' text is free()'d as usual */
	CHECK(moat_json_arena_use(NULL) == a);
	json_t *plain = parse_ok(doc);
	CHECK_INT(moat_json_arena_live(a), 0);
	char *text = json_dumps(plain, JSON_COMPACT | JSON_SORT_KEYS);
	CHECK(text != NULL && strstr(text, "\"n\":-7") != NULL);
	free(text);
	json_decref(plain);
	moat_json_arena_free(a);

	/* full: a tree larger than the arena is part arena, part malloc */
	a = moat_json_arena_new(2048);
	CHECK(a != NULL);
	char big[8192];
	size_t len = 0;
	big[len++] = '{';
	for (int i = 0; i < 300; i++)
		len += (size_t)snprintf(big + len, sizeof big - len, "%s\"k%d\":\"v%d\"",
					i ? "," : "", i, i);
	big[len++] = '}';
	big[len] = '\0';
	moat_json_arena_use(a);
	json_t *vb = parse_ok(big);
	CHECK(moat_json_arena_live(a) > 0);
	CHECK_INT(json_object_size(vb), 300);
	CHECK_STR(json_string_value(json_object_get(vb, "k299")), "v299");
	json_decref(vb);
	CHECK_INT(moat_json_arena_live(a), 0);
	/* too small for even one block: everything is malloc'd */
	moat_json_arena_t *tiny = moat_json_arena_new(8);
	CHECK(tiny != NULL);
	CHECK(moat_json_arena_use(tiny) == a);
	json_t *vt = parse_ok(doc);
	CHECK_INT(moat_json_arena_live(tiny), 0);
	json_decref(vt);
	moat_json_arena_use(NULL);
	moat_json_arena_free(tiny);
	moat_json_arena_free(a);
	moat_json_arena_free(NULL);
}

/* The JSON Lines reader: lines that straddle its read-ahead blocks, CRLF, blank
 * lines, a last line without a newline, and over-long lines (an error naming the
 * line, after which reading goes on at the next line). */
static void test_jsonl(void)
{
	char path[] = "/tmp/moat-test-jsonl-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	FILE *f = fdopen(fd, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	/* 3000 records padded so that lines of 20..~300 bytes straddle many
	 * read-ahead block boundaries */
	char pad[300];
	memset(pad, 'x', sizeof pad - 1);
	pad[sizeof pad - 1] = '\0';
	for (int i = 0; i < 3000; i++) {
		if (i % 100 == 7)
			fputs("  \t\r\n", f); /* blank, not a record */
		fprintf(f, "{\"i\":%d,\"pad\":\"%.*s\"}%s", i, i % 257, pad,
			i % 3 == 0 ? "\r\n" : "\n");
	}
	fputc('{', f); /* an over-long line, then one more record without a newline */
	for (size_t n = 0; n < MOAT_JSON_MAX_LINE; n++)
		fputc(' ', f);
	fputs("}\n{\"i\":3000,\"pad\":\"\"}", f);
	CHECK_INT(fclose(f), 0);
	moat_jsonl_t *r = NULL;
	moat_error_t e = {0};
	CHECK_INT(moat_jsonl_open(path, &r, &e), MOAT_OK);
	if (!r)
		return;
	json_t *v = NULL;
	int want = 0, lines_blank = 0;
	moat_err_t rc;
	while ((rc = moat_jsonl_next(r, &v, &e)) == MOAT_OK) {
		CHECK_INT(json_integer_value(json_object_get(v, "i")), want);
		json_decref(v);
		want++;
		if (want == 3000)
			break;
	}
	CHECK_INT(want, 3000);
	lines_blank = 3000 / 100;
	CHECK_INT(moat_jsonl_line(r), 3000 + lines_blank);
	CHECK_INT(moat_jsonl_next(r, &v, &e), MOAT_ELIMIT);
	CHECK_INT(e.line, 3000 + lines_blank + 1);
	CHECK_INT(moat_jsonl_next(r, &v, &e), MOAT_OK);
	CHECK_INT(json_integer_value(json_object_get(v, "i")), 3000);
	json_decref(v);
	CHECK_INT(moat_jsonl_next(r, &v, &e), MOAT_ENOTFOUND);
	CHECK_INT(moat_jsonl_next(r, &v, &e), MOAT_ENOTFOUND);
	moat_jsonl_close(r);
	moat_jsonl_close(NULL);
	unlink(path);
}

static void test_arena(void)
{
	moat_arena_t *a = moat_arena_new(64);
	CHECK(a != NULL);
	char *big = moat_arena_alloc(a, 1000);
	CHECK(big != NULL);
	memset(big, 1, 1000);
	CHECK_STR(moat_arena_strdup(a, "abc"), "abc");
	moat_arena_free(a);
	/* reset keeps the first block and reuses it; later blocks are freed */
	a = moat_arena_new(256);
	char *first = moat_arena_alloc(a, 16);
	CHECK(first != NULL);
	for (int i = 0; i < 100; i++)
		CHECK(moat_arena_alloc(a, 100) != NULL);
	CHECK(moat_arena_alloc(a, 5000) != NULL);
	moat_arena_reset(a);
	CHECK(moat_arena_alloc(a, 16) == first);
	CHECK_STR(moat_arena_strdup(a, "after reset"), "after reset");
	moat_arena_free(a);
	a = moat_arena_new(64); /* an oversized first block is not kept */
	CHECK(moat_arena_alloc(a, 1000) != NULL);
	moat_arena_reset(a);
	CHECK_STR(moat_arena_strdup(a, "x"), "x");
	moat_arena_reset(a);
	moat_arena_reset(a);
	moat_arena_free(a);
	moat_arena_free(NULL);
}

int main(void)
{
	test_fmt();
	test_buf();
	test_time();
	test_encodings();
	test_utf8();
	test_json();
	test_json_fast_path();
	test_json_arena();
	test_jsonl();
	test_arena();
	return check_done();
}
