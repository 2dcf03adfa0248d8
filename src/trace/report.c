/* Parsing scam reports (DESIGN.md "Interchange formats", reports). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "moat/crypto.h"
#include "moat/trace.h"

static const char *const report_keys[] = {"report_id",       "order_id",   "contact_time",
					  "channel",         "quoted_fields", "scammer_contact",
					  "loss_cents",      NULL};
static const char *const channels[] = {"call", "sms", "chat", NULL};

moat_err_t moat_report_from_json(json_t *obj, moat_report_t *out, moat_error_t *err)
{
	memset(out, 0, sizeof *out);
	int ch = 0;
	json_t *q = NULL;
	moat_err_t rc;
	if ((rc = moat_json_only_keys(obj, report_keys, "", err)) != MOAT_OK ||
	    (rc = moat_json_get_str(obj, "report_id", "report_id", true, MOAT_ID_MAX, &out->report_id,
				    err)) != MOAT_OK ||
	    (rc = moat_json_get_str(obj, "order_id", "order_id", true, MOAT_ID_MAX, &out->order_id,
				    err)) != MOAT_OK ||
	    (rc = moat_json_get_time(obj, "contact_time", "contact_time", true, &out->contact_time,
				     err)) != MOAT_OK ||
	    (rc = moat_json_get_enum(obj, "channel", "channel", true, channels, &ch, err)) != MOAT_OK ||
	    (rc = moat_json_get_arr(obj, "quoted_fields", "quoted_fields", true, MOAT_FIELD_COUNT, &q,
				    err)) != MOAT_OK ||
	    (rc = moat_json_get_str(obj, "scammer_contact", "scammer_contact", false, MOAT_TEXT_MAX,
				    &out->scammer_contact, err)) != MOAT_OK)
		return rc;
	out->loss_cents = 0;
	if ((rc = moat_json_get_int(obj, "loss_cents", "loss_cents", false, 0, INT64_MAX / 2,
				    &out->loss_cents, err)) != MOAT_OK)
		return rc;
	if (!moat_id_valid(out->report_id))
		return moat_error_set(err, MOAT_EINVAL, "report_id",
				      "must be 1..64 characters of A-Z a-z 0-9 . _ : -");
	if (!moat_id_valid(out->order_id))
		return moat_error_set(err, MOAT_EINVAL, "order_id",
				      "must be 1..64 characters of A-Z a-z 0-9 . _ : -");
	out->channel = channels[ch];
	size_t i;
	json_t *f;
	json_array_foreach(q, i, f)
	{
		int k = json_is_string(f) ? moat_field_parse(json_string_value(f)) : -1;
		if (k < 0)
			return moat_error_set(err, MOAT_EINVAL, "quoted_fields",
					      "element %zu is not a field name (name, phone, address, "
					      "id_number, items, amounts, waybill)",
					      i + 1);
		out->quoted |= 1u << k;
	}
	if (!out->quoted)
		return moat_error_set(err, MOAT_EINVAL, "quoted_fields",
				      "name at least one field the scammer quoted");
	if (!out->scammer_contact)
		out->scammer_contact = "";
	return MOAT_OK;
}

void moat_trace_contact_normalise(const char *in, char *out, size_t cap)
{
	char d[64];
	size_t n = 0;
	bool phone = true;
	const char *p = in;
	for (; *p; p++) {
		if (isdigit((unsigned char)*p)) {
			if (n + 1 < sizeof d)
				d[n++] = *p;
		} else if (!strchr("+ -()", *p)) {
			phone = false;
		}
	}
	d[n] = 0;
	size_t len = (size_t)(p - in);
	if (phone && n == 13 && strncmp(d, "86", 2) == 0)
		memmove(d, d + 2, 12);
	if (phone && n >= 5) {
		snprintf(out, cap, "%s", d);
	} else if (len < cap) {
		snprintf(out, cap, "%s", in);
	} else {
		/* Cut, two long links of one site would look alike (and a cut can
		 * split a character): a digest keeps them apart. */
		uint8_t h[32];
		char hex[65];
		moat_sha256(in, len, h);
		moat_hex_encode(h, sizeof h, hex);
		snprintf(out, cap, "sha256:%s", hex);
	}
}
