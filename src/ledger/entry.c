/*
 * Ledger entry encoding, version 1 (docs/ledger.md, "Entry encoding"):
 *
 *   off len
 *     0   1  version = 1
 *     1   1  kind (1..10)
 *     2   1  flags: bit 0 imported, bit 1 has_purpose, bit 2 replayed, others 0
 *     3   1  purpose (0 unless has_purpose)
 *     4   1  result (0 none, 1 success, 2 failure)
 *     5   1  relations: bit k = relation kind k held (k < MOAT_REL_KIND_COUNT)
 *     6   7  views, one byte per field in moat_field_t order
 *    13   8  time, ms since epoch, signed 64-bit big-endian
 *    21   8  rows, unsigned 64-bit big-endian
 *    29   1  presence bits for the strings: bit i = string i present, bit 7 = 0
 *    30   …  each present string in order (principal, order_id, rule, ip, device,
 *            ref, detail): u16 big-endian byte length, then the UTF-8 bytes
 *
 * Exactly one byte string encodes a given entry, and decode rejects every other
 * byte string, so the leaf hash identifies the entry.
 */
#include <inttypes.h>
#include <string.h>

#include "moat/entry.h"

#define HDR_LEN 30
#define REL_MASK ((1u << MOAT_REL_KIND_COUNT) - 1)
#define N_STRINGS 7

_Static_assert(MOAT_FIELD_COUNT == 7, "the v1 entry encoding has 7 view bytes");

static const char *const kind_names[] = {NULL,	   "access", "deny",	  "login",
					 "export", "policy", "principal", "alert",
					 "action", "report", "call"};

const char *moat_entry_kind_name(moat_entry_kind_t k)
{
	return (k >= 1 && k <= MOAT_ENTRY_KIND_MAX) ? kind_names[k] : "unknown";
}

int moat_entry_kind_parse(const char *s)
{
	for (int k = 1; k <= MOAT_ENTRY_KIND_MAX; k++)
		if (strcmp(s, kind_names[k]) == 0)
			return k;
	return -1;
}

static const char *const string_names[N_STRINGS] = {"principal", "order_id", "rule",  "ip",
						    "device",	 "ref",	     "detail"};

/* UTF-8 without C0, DEL or C1 control characters. */
static bool text_ok(const uint8_t *s, size_t n)
{
	bool ascii = true;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] == 0x7f)
			return false;
		if (s[i] >= 0x80)
			ascii = false;
	}
	if (ascii)
		return true;
	if (!moat_utf8_valid((const char *)s, n))
		return false;
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == 0xc2 && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
			return false;
	return true;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

moat_err_t moat_entry_encode(const moat_entry_t *e, moat_buf_t *b, moat_error_t *err)
{
	if (e->kind < 1 || e->kind > MOAT_ENTRY_KIND_MAX)
		return moat_error_set(err, MOAT_EINVAL, "kind", "unknown entry kind %d",
				      (int)e->kind);
	if (e->has_purpose && ((int)e->purpose < 0 || e->purpose >= MOAT_PURPOSE_COUNT))
		return moat_error_set(err, MOAT_EINVAL, "purpose", "unknown purpose %d",
				      (int)e->purpose);
	if ((int)e->result < MOAT_RESULT_NONE || e->result > MOAT_RESULT_FAILURE)
		return moat_error_set(err, MOAT_EINVAL, "result", "unknown result %d",
				      (int)e->result);
	uint8_t hdr[HDR_LEN];
	hdr[0] = MOAT_ENTRY_VERSION;
	hdr[1] = (uint8_t)e->kind;
	hdr[2] =
	    (uint8_t)((e->imported ? 1 : 0) | (e->has_purpose ? 2 : 0) | (e->replayed ? 4 : 0));
	hdr[3] = e->has_purpose ? (uint8_t)e->purpose : 0;
	hdr[4] = (uint8_t)e->result;
	if (e->relations & ~REL_MASK)
		return moat_error_set(err, MOAT_EINVAL, "relations", "unknown relation bits");
	hdr[5] = e->relations;
	for (int f = 0; f < MOAT_FIELD_COUNT; f++) {
		if (e->views[f] >= MOAT_VIEW_COUNT)
			return moat_error_set(err, MOAT_EINVAL, "views",
					      "unknown view %u for field %d", e->views[f], f);
		hdr[6 + f] = e->views[f];
	}
	put_u64(hdr + 13, (uint64_t)e->time);
	put_u64(hdr + 21, e->rows);
	const char *strs[N_STRINGS] = {e->principal, e->order_id, e->rule,  e->ip,
				       e->device,    e->ref,	  e->detail};
	size_t total = HDR_LEN;
	hdr[29] = 0;
	for (int i = 0; i < N_STRINGS; i++) {
		if (!strs[i])
			continue;
		size_t n = strlen(strs[i]);
		if (n > MOAT_TEXT_MAX)
			return moat_error_set(err, MOAT_ELIMIT, string_names[i],
					      "%s is longer than %d bytes", string_names[i],
					      MOAT_TEXT_MAX);
		if (!text_ok((const uint8_t *)strs[i], n))
			return moat_error_set(err, MOAT_EINVAL, string_names[i],
					      "%s is not UTF-8 text without control characters",
					      string_names[i]);
		hdr[29] |= (uint8_t)(1u << i);
		total += 2 + n;
	}
	if (total > MOAT_ENTRY_MAX)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "entry longer than %d bytes",
				      MOAT_ENTRY_MAX);
	size_t start = b->len;
	moat_err_t rc = moat_buf_append(b, hdr, HDR_LEN);
	for (int i = 0; i < N_STRINGS && rc == MOAT_OK; i++) {
		if (!strs[i])
			continue;
		size_t n = strlen(strs[i]);
		uint8_t l2[2] = {(uint8_t)(n >> 8), (uint8_t)n};
		rc = moat_buf_append(b, l2, 2);
		if (rc == MOAT_OK)
			rc = moat_buf_append(b, strs[i], n);
	}
	if (rc != MOAT_OK) {
		b->len = start;
		if (b->data)
			b->data[start] = '\0';
		return moat_error_set(err, MOAT_ELIMIT, NULL, "entry does not fit the buffer");
	}
	return MOAT_OK;
}

moat_err_t moat_entry_decode(const uint8_t *d, size_t len, moat_entry_t *out, char *scratch,
			     size_t scratch_len, moat_error_t *err)
{
	if (len < HDR_LEN || len > MOAT_ENTRY_MAX)
		return moat_error_set(err, MOAT_ECORRUPT, NULL, "entry has %zu bytes", len);
	if (scratch_len < len + 64)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "decode scratch too small");
	if (d[0] != MOAT_ENTRY_VERSION)
		return moat_error_set(err, MOAT_ECORRUPT, "version", "unknown entry version %u",
				      d[0]);
	if (d[1] < 1 || d[1] > MOAT_ENTRY_KIND_MAX)
		return moat_error_set(err, MOAT_ECORRUPT, "kind", "unknown entry kind %u", d[1]);
	if (d[2] & ~7u)
		return moat_error_set(err, MOAT_ECORRUPT, "flags", "unknown flag bits");
	bool has_purpose = d[2] & 2;
	if ((has_purpose && d[3] >= MOAT_PURPOSE_COUNT) || (!has_purpose && d[3] != 0))
		return moat_error_set(err, MOAT_ECORRUPT, "purpose", "bad purpose byte");
	if (d[4] > MOAT_RESULT_FAILURE)
		return moat_error_set(err, MOAT_ECORRUPT, "result", "bad result byte");
	if (d[5] & ~REL_MASK)
		return moat_error_set(err, MOAT_ECORRUPT, "relations", "bad relations byte");
	memset(out, 0, sizeof *out);
	out->relations = d[5];
	for (int f = 0; f < MOAT_FIELD_COUNT; f++) {
		if (d[6 + f] >= MOAT_VIEW_COUNT)
			return moat_error_set(err, MOAT_ECORRUPT, "views", "bad view byte");
		out->views[f] = d[6 + f];
	}
	if (d[29] & 0x80)
		return moat_error_set(err, MOAT_ECORRUPT, NULL, "bad presence byte");
	out->kind = (moat_entry_kind_t)d[1];
	out->imported = d[2] & 1;
	out->replayed = d[2] & 4;
	out->has_purpose = has_purpose;
	out->purpose = (moat_purpose_t)d[3];
	out->result = (moat_entry_result_t)d[4];
	out->time = (moat_time_t)get_u64(d + 13);
	out->rows = get_u64(d + 21);
	const char **strs[N_STRINGS] = {&out->principal, &out->order_id, &out->rule,  &out->ip,
					&out->device,	 &out->ref,	 &out->detail};
	size_t pos = HDR_LEN, sp = 0;
	for (int i = 0; i < N_STRINGS; i++) {
		if (!(d[29] & (1u << i)))
			continue;
		if (len - pos < 2)
			return moat_error_set(err, MOAT_ECORRUPT, string_names[i],
					      "entry truncated");
		size_t n = ((size_t)d[pos] << 8) | d[pos + 1];
		pos += 2;
		if (n > MOAT_TEXT_MAX || len - pos < n)
			return moat_error_set(err, MOAT_ECORRUPT, string_names[i],
					      "bad string length");
		if (!text_ok(d + pos, n))
			return moat_error_set(err, MOAT_ECORRUPT, string_names[i], "bad text");
		memcpy(scratch + sp, d + pos, n);
		scratch[sp + n] = '\0';
		*strs[i] = scratch + sp;
		sp += n + 1;
		pos += n;
	}
	if (pos != len)
		return moat_error_set(err, MOAT_ECORRUPT, NULL, "trailing bytes after the entry");
	return MOAT_OK;
}

static moat_err_t kv_str(moat_buf_t *b, const char *k, const char *v)
{
	if (!v)
		return MOAT_OK;
	moat_err_t rc = moat_buf_printf(b, ",\"%s\":", k);
	return rc == MOAT_OK ? moat_buf_json_str(b, v) : rc;
}

moat_err_t moat_entry_to_json(const moat_entry_t *e, moat_buf_t *b)
{
	char ts[32];
	moat_err_t rc =
	    moat_buf_printf(b, "{\"kind\":\"%s\",\"imported\":%s", moat_entry_kind_name(e->kind),
			    e->imported ? "true" : "false");
	/* Only when set, so the JSON of ordinary entries keeps its shape. */
	if (rc == MOAT_OK && e->replayed)
		rc = moat_buf_puts(b, ",\"replayed\":true");
	if (rc == MOAT_OK && e->time != MOAT_TIME_NONE) {
		moat_time_format(e->time, ts);
		rc = moat_buf_printf(b, ",\"time\":\"%s\"", ts);
	}
	if (rc == MOAT_OK)
		rc = kv_str(b, "principal", e->principal);
	if (rc == MOAT_OK)
		rc = kv_str(b, "order_id", e->order_id);
	if (rc == MOAT_OK && e->has_purpose)
		rc = kv_str(b, "purpose", moat_purpose_name(e->purpose));
	bool any = false;
	for (int f = 0; f < MOAT_FIELD_COUNT && rc == MOAT_OK; f++) {
		if (e->views[f] == MOAT_VIEW_NONE)
			continue;
		rc = moat_buf_printf(b, "%s\"%s\":\"%s\"", any ? "," : ",\"views\":{",
				     moat_field_name((moat_field_t)f),
				     moat_view_name((moat_view_t)e->views[f]));
		any = true;
	}
	if (rc == MOAT_OK && any)
		rc = moat_buf_putc(b, '}');
	if (rc == MOAT_OK && e->relations) {
		rc = moat_buf_puts(b, ",\"relations\":[");
		bool first = true;
		for (int k = 0; k < MOAT_REL_KIND_COUNT && rc == MOAT_OK; k++)
			if (e->relations & (1u << k)) {
				rc = moat_buf_printf(
				    b, "%s\"%s\"", first ? "" : ",",
				    moat_relation_kind_name((moat_relation_kind_t)k));
				first = false;
			}
		if (rc == MOAT_OK)
			rc = moat_buf_putc(b, ']');
	}
	if (rc == MOAT_OK)
		rc = kv_str(b, "rule", e->rule);
	if (rc == MOAT_OK)
		rc = kv_str(b, "ip", e->ip);
	if (rc == MOAT_OK)
		rc = kv_str(b, "device", e->device);
	if (rc == MOAT_OK && e->result != MOAT_RESULT_NONE)
		rc = moat_buf_printf(b, ",\"result\":\"%s\"",
				     e->result == MOAT_RESULT_SUCCESS ? "success" : "failure");
	if (rc == MOAT_OK && e->rows)
		rc = moat_buf_printf(b, ",\"rows\":%" PRIu64, e->rows);
	if (rc == MOAT_OK)
		rc = kv_str(b, "ref", e->ref);
	if (rc == MOAT_OK)
		rc = kv_str(b, "detail", e->detail);
	if (rc == MOAT_OK)
		rc = moat_buf_putc(b, '}');
	return rc;
}
