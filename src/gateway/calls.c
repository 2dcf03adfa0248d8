/* POST /v1/calls: the telephony side asks whether to relay a call to a virtual number. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "gateway/gateway_internal.h"
#include "moat/json.h"

/* Keeps the digits of a dialled number, dropping a leading country code 86 from
 * a 13-digit result. false if nothing usable remains. */
static bool normalise(const char *in, char out[24])
{
	size_t n = 0;
	for (const char *p = in; *p; p++) {
		if (isdigit((unsigned char)*p)) {
			if (n == 20)
				return false;
			out[n++] = *p;
		} else if (*p != ' ' && *p != '+' && *p != '-') {
			return false;
		}
	}
	out[n] = '\0';
	if (n == 13 && out[0] == '8' && out[1] == '6')
		memmove(out, out + 2, 12);
	return out[0] != '\0';
}

void gw_calls(moat_gateway_t *g, moat_store_t *s, const gw_auth_t *a, gw_req_t *q, gw_resp_t *r)
{
	if (a->p.role != MOAT_ROLE_PLATFORM_SERVICE) {
		gw_error(r, 403, "forbidden", NULL,
			 "only the platform's telephony service reports calls");
		return;
	}
	static const char *const keys[] = {"time", "from", "to", "extension", NULL};
	json_t *obj = NULL;
	moat_error_t e = {0};
	moat_vnum_row_t b;
	moat_order_row_t o;
	moat_pii_t pii = {0};
	memset(&o, 0, sizeof o);
	const char *from = NULL, *to = NULL, *ext = NULL;
	moat_time_t t = MOAT_TIME_NONE;
	if (moat_json_parse(q->body.data, q->body.len, MOAT_JSON_MAX_DEPTH, &obj, &e) != MOAT_OK ||
	    moat_json_only_keys(obj, keys, "", &e) != MOAT_OK ||
	    moat_json_get_time(obj, "time", "time", true, &t, &e) != MOAT_OK ||
	    moat_json_get_str(obj, "from", "from", true, 32, &from, &e) != MOAT_OK ||
	    moat_json_get_str(obj, "to", "to", true, 32, &to, &e) != MOAT_OK ||
	    moat_json_get_str(obj, "extension", "extension", false, 8, &ext, &e) != MOAT_OK) {
		gw_error_from(r, &e);
		goto done;
	}
	char number[24];
	if (!normalise(to, number)) {
		gw_error(r, 422, "invalid", "to", "not a phone number");
		goto done;
	}
	char fromn[24];
	if (!normalise(from, fromn)) {
		gw_error(r, 422, "invalid", "from", "not a phone number");
		goto done;
	}
	moat_err_t rc = moat_store_vnum_find(s, number, &b, &e);
	if (rc != MOAT_OK && rc != MOAT_ENOTFOUND) {
		gw_error_from(r, &e);
		goto done;
	}
	bool known = rc == MOAT_OK;
	bool valid = known && t >= b.valid_from && t <= b.valid_until;
	if (valid) {
		moat_app_t view = *g->app;
		view.store = s;
		if (moat_store_order_get(s, b.order_id, &o, &e) != MOAT_OK ||
		    moat_app_order_pii(&view, &o, &pii, &e) != MOAT_OK) {
			gw_error_from(r, &e);
			goto done;
		}
	}
	char detail[64];
	snprintf(detail, sizeof detail, "from %s", fromn);
	moat_entry_t ent = {0};
	ent.kind = MOAT_ENTRY_CALL;
	ent.time = t;
	ent.replayed = a->replayed;
	ent.principal = known ? b.principal : NULL;
	ent.order_id = known ? b.order_id : NULL;
	ent.result = valid ? MOAT_RESULT_SUCCESS : MOAT_RESULT_FAILURE;
	ent.ref = number;
	ent.detail = detail;
	uint64_t index = 0;
	if (gw_append(g, &ent, 1, &index, &e) != MOAT_OK) {
		gw_error(r, 503, "ledger_unavailable", NULL,
			 "the ledger cannot record this call right now; nothing was revealed");
		goto done;
	}
	snprintf(r->ledger_index, sizeof r->ledger_index, "%llu", (unsigned long long)index);
	moat_buf_t *out = &r->body;
	moat_buf_reset(out);
	char until[32];
	if (known)
		moat_time_format(b.valid_until, until);
	if (valid)
		rc = moat_buf_printf(
		    out,
		    "{\"action\":\"relay\",\"relay_to\":\"%s\",\"binding\":{"
		    "\"order_id\":\"%s\",\"principal\":\"%s\",\"valid_until\":\"%s\"}",
		    pii.phone, b.order_id, b.principal, until);
	else if (known)
		rc = moat_buf_printf(
		    out,
		    "{\"action\":\"reject\",\"reason\":\"expired\",\"binding\":{"
		    "\"order_id\":\"%s\",\"principal\":\"%s\",\"valid_until\":\"%s\"}",
		    b.order_id, b.principal, until);
	else
		rc = moat_buf_puts(out, "{\"action\":\"reject\",\"reason\":\"unknown\"");
	if (rc == MOAT_OK)
		rc = moat_buf_printf(out, ",\"receipt\":{\"ledger_index\":%llu}}",
				     (unsigned long long)index);
	r->status = rc == MOAT_OK ? 200 : gw_error(r, 500, "internal", NULL, "cannot render");
done:
	moat_pii_clear(&pii);
	moat_order_row_clear(&o);
	json_decref(obj);
}
