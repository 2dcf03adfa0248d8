/* POST /v1/sessions: password login for people, giving a short-lived token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gateway/gateway_internal.h"
#include "moat/crypto.h"
#include "moat/json.h"

/* Token: "s1.<expiry ms>.<hex HMAC-SHA-256(key, "s1.<expiry>.<principal>")>.<principal>".
 * Stateless, so any server thread can check it; the key is random per process,
 * so a restart logs everyone out. */
static void token_mac(const moat_gateway_t *g, const char *msg, char hex[65])
{
	unsigned char mac[32];
	unsigned int len = 0;
	HMAC(EVP_sha256(), g->session_key, sizeof g->session_key, (const unsigned char *)msg,
	     strlen(msg), mac, &len);
	moat_hex_encode(mac, 32, hex);
}

bool gw_session_check(moat_gateway_t *g, const char *token, moat_time_t now,
		      char principal[MOAT_ID_MAX + 1])
{
	if (strncmp(token, "s1.", 3) != 0 || strlen(token) > 200)
		return false;
	char *end;
	long long exp = strtoll(token + 3, &end, 10);
	if (*end != '.' || strlen(end + 1) < 66 || end[65] != '.')
		return false;
	const char *mac = end + 1;
	const char *pid = end + 66;
	if (!moat_id_valid(pid) || exp < now)
		return false;
	char msg[160], want[65];
	snprintf(msg, sizeof msg, "s1.%lld.%s", exp, pid);
	token_mac(g, msg, want);
	if (!moat_ct_equal(want, mac, 64))
		return false;
	snprintf(principal, MOAT_ID_MAX + 1, "%s", pid);
	return true;
}

void gw_sessions(moat_gateway_t *g, struct MHD_Connection *c, moat_store_t *s, gw_req_t *q,
		 gw_resp_t *r)
{
	static const char *const keys[] = {"username", "password", NULL};
	json_t *obj = NULL;
	moat_error_t e = {0};
	const char *user = NULL, *pw = NULL;
	if (moat_json_parse(q->body.data, q->body.len, MOAT_JSON_MAX_DEPTH, &obj, &e) != MOAT_OK ||
	    moat_json_only_keys(obj, keys, "", &e) != MOAT_OK ||
	    moat_json_get_str(obj, "username", "username", true, MOAT_ID_MAX, &user, &e) !=
		MOAT_OK ||
	    moat_json_get_str(obj, "password", "password", true, 1024, &pw, &e) != MOAT_OK) {
		gw_error_from(r, &e);
		json_decref(obj);
		return;
	}
	bool valid_id = moat_id_valid(user);
	char phc[MOAT_PHC_MAX] = "";
	moat_principal_row_t p;
	memset(&p, 0, sizeof p);
	bool found = valid_id && moat_store_principal_get(s, user, &p, &e) == MOAT_OK &&
		     moat_store_principal_get_password(s, user, phc, sizeof phc, &e) == MOAT_OK;
	bool ok = moat_password_verify(found ? phc : NULL, pw);
	bool suspended = ok && p.status == MOAT_PRINCIPAL_SUSPENDED;

	char ip[64];
	gw_client_ip(c, q, ip);
	const char *dev = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Moat-Device");
	moat_entry_t ent = {0};
	ent.kind = MOAT_ENTRY_LOGIN;
	ent.time = q->now;
	ent.replayed = q->replayed;
	ent.principal = valid_id ? user : "invalid-username";
	ent.ip = ip[0] ? ip : NULL;
	ent.device = dev && moat_id_valid(dev) ? dev : NULL;
	ent.result = ok && !suspended ? MOAT_RESULT_SUCCESS : MOAT_RESULT_FAILURE;
	ent.detail = suspended ? "suspended" : (!ok ? "bad credentials" : NULL);
	uint64_t index = 0;
	if (gw_append(g, &ent, 1, &index, &e) != MOAT_OK) {
		gw_error(r, 503, "ledger_unavailable", NULL,
			 "the ledger cannot record logins right now");
		goto done;
	}
	atomic_fetch_add(ent.result == MOAT_RESULT_SUCCESS ? &g->m.logins_ok : &g->m.logins_failed,
			 1);
	if (!ok) {
		r->www_auth = true;
		gw_error(r, 401, "unauthenticated", NULL, "wrong username or password");
		goto done;
	}
	if (suspended) {
		gw_error(r, 403, "suspended", NULL, "principal %s is suspended", user);
		goto done;
	}
	long long exp = (long long)(q->now + GW_SESSION_TTL_MS);
	char msg[160], mac[65], until[32];
	snprintf(msg, sizeof msg, "s1.%lld.%s", exp, user);
	token_mac(g, msg, mac);
	moat_time_format(exp, until);
	moat_buf_reset(&r->body);
	moat_err_t brc = moat_buf_printf(
	    &r->body,
	    "{\"token\":\"s1.%lld.%s.%s\",\"token_type\":\"Bearer\",\"expires_at\":\"%s\","
	    "\"principal\":\"%s\",\"role\":\"%s\"}",
	    exp, mac, user, until, user, moat_role_name(p.role));
	snprintf(r->ledger_index, sizeof r->ledger_index, "%llu", (unsigned long long)index);
	r->status = brc == MOAT_OK ? 201 : 500;
done:
	json_decref(obj);
}
