/* Time, encodings, constant-time comparison, UTF-8, randomness. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "moat/base.h"

moat_time_t moat_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (moat_time_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t moat_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
int64_t moat_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void moat_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const unsigned doe = (unsigned)(z - era * 146097);
	const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

bool moat_time_parse(const char *s, moat_time_t *out)
{
	int Y, M, D, h, m, sec;
	size_t n = strlen(s);
	if (n < 20 || n > 40)
		return false;
	if (!digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) || s[7] != '-' ||
	    !digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &m) || s[16] != ':' ||
	    !digits(s + 17, 2, &sec))
		return false;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || m > 59 || sec > 60)
		return false;
	bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
	if (M == 2 && D == 29 && !leap)
		return false;
	if (sec == 60)
		sec = 59; /* leap second: clamp */
	const char *p = s + 19;
	int ms = 0;
	if (*p == '.') {
		p++;
		int nd = 0;
		while (isdigit((unsigned char)*p)) {
			if (nd < 3)
				ms = ms * 10 + (*p - '0');
			nd++;
			p++;
		}
		if (nd == 0 || nd > 9)
			return false;
		for (int i = nd; i < 3; i++)
			ms *= 10;
	}
	int off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return false;
		off = (oh * 60 + om) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return false;
	}
	if (*p != '\0')
		return false;
	int64_t days = moat_days_from_civil(Y, (unsigned)M, (unsigned)D);
	int64_t secs = days * 86400 + h * 3600 + m * 60 + sec - (int64_t)off * 60;
	*out = secs * 1000 + ms;
	return true;
}

/* The instants RFC 3339 can write: 0000-01-01T00:00:00.000Z and
 * 9999-12-31T23:59:59.999Z. */
#define TIME_FIRST (-62167219200000LL)
#define TIME_LAST 253402300799999LL

void moat_time_format(moat_time_t t, char out[32])
{
	/* Times outside what the format can write (a corrupt or hostile ledger
	 * entry can carry any 64-bit value) print as the nearest one it can. */
	if (t < TIME_FIRST)
		t = TIME_FIRST;
	if (t > TIME_LAST)
		t = TIME_LAST;
	int64_t secs = t >= 0 ? t / 1000 : -((-t + 999) / 1000);
	unsigned ms = (unsigned)(t - secs * 1000) % 1000;
	int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
	unsigned rem = (unsigned)(secs - days * 86400) % 86400;
	int64_t y;
	unsigned mo, d;
	moat_civil_from_days(days, &y, &mo, &d);
	unsigned yy = (unsigned)y % 10000;
	mo %= 13;
	d %= 32;
	unsigned hh = rem / 3600 % 24, mi = rem % 3600 / 60 % 60, ss = rem % 60;
	/* what "%04u-%02u-%02uT%02u:%02u:%02u[.%03u]Z" prints, without printf: every
	 * order read renders three of these */
	char *p = out;
	*p++ = (char)('0' + yy / 1000);
	*p++ = (char)('0' + yy / 100 % 10);
	*p++ = (char)('0' + yy / 10 % 10);
	*p++ = (char)('0' + yy % 10);
	const unsigned parts[5] = {mo, d, hh, mi, ss};
	const char seps[5] = {'-', '-', 'T', ':', ':'};
	for (int i = 0; i < 5; i++) {
		*p++ = seps[i];
		*p++ = (char)('0' + parts[i] / 10);
		*p++ = (char)('0' + parts[i] % 10);
	}
	if (ms) {
		*p++ = '.';
		*p++ = (char)('0' + ms / 100);
		*p++ = (char)('0' + ms / 10 % 10);
		*p++ = (char)('0' + ms % 10);
	}
	*p++ = 'Z';
	*p = '\0';
}

size_t moat_fmt_u64(char *out, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

size_t moat_fmt_i64(char *out, int64_t v)
{
	if (v >= 0)
		return moat_fmt_u64(out, (uint64_t)v);
	out[0] = '-';
	return 1 + moat_fmt_u64(out + 1, 0 - (uint64_t)v);
}

void moat_hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool moat_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t *outlen, size_t outcap)
{
	if (inlen % 2 || inlen / 2 > outcap)
		return false;
	for (size_t i = 0; i < inlen / 2; i++) {
		int a = hexval(in[2 * i]), b = hexval(in[2 * i + 1]);
		if (a < 0 || b < 0)
			return false;
		out[i] = (uint8_t)(a << 4 | b);
	}
	*outlen = inlen / 2;
	return true;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t moat_b64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64chars[v >> 18 & 63];
		out[o++] = b64chars[v >> 12 & 63];
		out[o++] = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

static int b64val(char c)
{
	const char *p = c ? strchr(b64chars, c) : NULL;
	return p ? (int)(p - b64chars) : -1;
}

bool moat_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t *outlen, size_t outcap)
{
	if (inlen % 4)
		return false;
	size_t o = 0;
	for (size_t i = 0; i < inlen; i += 4) {
		int v[4];
		int pad = 0;
		for (int j = 0; j < 4; j++) {
			if (in[i + j] == '=' && i + 4 == inlen && j >= 2) {
				v[j] = 0;
				pad++;
			} else {
				if (pad)
					return false;
				v[j] = b64val(in[i + j]);
				if (v[j] < 0)
					return false;
			}
		}
		uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		size_t nbytes = 3 - (size_t)pad;
		if (o + nbytes > outcap)
			return false;
		/* Non-canonical encodings (stray low bits before padding) are refused. */
		if ((pad == 1 && (x & 0xff)) || (pad == 2 && (x & 0xffff)))
			return false;
		out[o++] = (uint8_t)(x >> 16);
		if (nbytes > 1)
			out[o++] = (uint8_t)(x >> 8);
		if (nbytes > 2)
			out[o++] = (uint8_t)x;
	}
	*outlen = o;
	return true;
}

bool moat_ct_equal(const void *a, const void *b, size_t n) { return CRYPTO_memcmp(a, b, n) == 0; }

size_t moat_utf8_seq(const char *s, size_t avail)
{
	/* The well-formed sequences of Unicode's table 3-7: the second byte's range
	 * depends on the first (which rules out overlongs, surrogates and code
	 * points past U+10FFFF); every later byte is a continuation byte. */
	const unsigned char *p = (const unsigned char *)s;
	unsigned c = p[0], lo = 0x80, hi = 0xbf;
	size_t len;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		lo = c == 0xe0 ? 0xa0 : lo;
		hi = c == 0xed ? 0x9f : hi;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		lo = c == 0xf0 ? 0x90 : lo;
		hi = c == 0xf4 ? 0x8f : hi;
	} else {
		return 0;
	}
	if (avail < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

bool moat_utf8_valid(const char *s, size_t n)
{
	if (n == 0)
		return true; /* s may be NULL (an empty request body) */
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		/* ASCII, most of any JSON line, eight bytes at a time: every import
		 * line is checked here before jansson parses it. */
		uint64_t w;
		while (end - p >= 8 && (memcpy(&w, p, 8), (w & 0x8080808080808080ull) == 0))
			p += 8;
		if (p == end)
			break;
		unsigned c = *p;
		if (c < 0x80) {
			p++;
			continue;
		}
		size_t len = moat_utf8_seq((const char *)p, (size_t)(end - p));
		if (!len)
			return false;
		p += len;
	}
	return true;
}

size_t moat_utf8_len(const char *s, size_t n)
{
	size_t count = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			count++;
	return count;
}

size_t moat_utf8_cut(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n <= max)
		return n;
	/* s[max] is the first byte left out: back off while it continues a
	 * sequence begun inside the prefix. */
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

moat_err_t moat_random(void *out, size_t n)
{
	return RAND_bytes(out, (int)n) == 1 ? MOAT_OK : MOAT_ECRYPTO;
}
