/* Ingest: POST /v1/{parties,principals,relations,orders}, all-or-nothing batches. */
#include <stdio.h>
#include <string.h>

#include "gateway/gateway_internal.h"
#include "moat/json.h"

/* May this caller write this record? platform_service may write anything; a
 * merchant admin may add relations on its own merchant's orders (assign a
 * courier, open a ticket) and authorise apps for its own merchant. */
static bool may_write(moat_store_t *s, const gw_auth_t *a, moat_import_kind_t kind, json_t *obj,
		      moat_error_t *err)
{
	if (a->p.role == MOAT_ROLE_PLATFORM_SERVICE)
		return true;
	if (a->p.role != MOAT_ROLE_MERCHANT_ADMIN || kind != MOAT_IMPORT_RELATIONS) {
		moat_error_set(err, MOAT_EDENIED, NULL, "role %s may not write %s",
			       moat_role_name(a->p.role),
			       kind == MOAT_IMPORT_RELATIONS ? "relations" : "this kind of record");
		return false;
	}
	const char *merchant = json_string_value(json_object_get(obj, "merchant"));
	const char *order_id = json_string_value(json_object_get(obj, "order_id"));
	if (merchant)
		return strcmp(merchant, a->p.party) == 0 ||
		       (moat_error_set(
			    err, MOAT_EDENIED, "merchant",
			    "a merchant admin may only authorise apps for its own merchant"),
			false);
	if (order_id) {
		moat_order_row_t o;
		memset(&o, 0, sizeof o);
		moat_error_t e = {0};
		if (moat_store_order_get(s, order_id, &o, &e) == MOAT_OK) {
			bool own = strcmp(o.merchant, a->p.party) == 0;
			moat_order_row_clear(&o);
			if (own)
				return true;
		}
		moat_error_set(
		    err, MOAT_EDENIED, "order_id",
		    "a merchant admin may only add relations on its own merchant's orders");
		return false;
	}
	moat_error_set(err, MOAT_EINVAL, "order_id",
		       "relation names neither order_id nor merchant");
	return false;
}

json_t *gw_parse_batch(struct MHD_Connection *c, const gw_req_t *q, const char *noun, gw_resp_t *r)
{
	const char *ct =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	json_t *records = NULL;
	if (ct && strncasecmp(ct, "application/x-ndjson", 20) == 0) {
		if (!(records = json_array()))
			goto oom;
		size_t pos = 0;
		long line = 0;
		while (pos < q->body.len) {
			line++;
			const char *start = q->body.data + pos;
			const char *nl = memchr(start, '\n', q->body.len - pos);
			size_t len = nl ? (size_t)(nl - start) : q->body.len - pos;
			pos += len + (nl ? 1 : 0);
			if (len == 0 || (len == 1 && start[0] == '\r'))
				continue;
			json_t *obj = NULL;
			moat_error_t e = {0};
			if (moat_json_parse(start, len, MOAT_JSON_MAX_DEPTH, &obj, &e) != MOAT_OK) {
				e.line = line;
				gw_error_from(r, &e);
				goto fail;
			}
			if (json_array_append_new(records, obj) != 0)
				goto oom;
			if (json_array_size(records) > GW_MAX_BATCH)
				break;
		}
	} else {
		json_error_t je;
		json_t *doc = json_loadb(q->body.data, q->body.len, JSON_REJECT_DUPLICATES, &je);
		if (!doc) {
			gw_error(r, 422, "invalid", NULL, "body is not valid JSON: %s (line %d)",
				 je.text, je.line);
			return NULL;
		}
		if (json_is_array(doc)) {
			records = doc;
		} else if (!json_is_object(doc)) {
			json_decref(doc);
			gw_error(r, 422, "invalid", NULL,
				 "body must be an object or an array of objects");
			return NULL;
		} else if (!(records = json_array()) || json_array_append_new(records, doc) != 0) {
			goto oom;
		}
	}
	if (json_array_size(records) > GW_MAX_BATCH) {
		gw_error(r, 413, "too_large", NULL, "more than %d %s in one batch", GW_MAX_BATCH,
			 noun);
		goto fail;
	}
	if (json_array_size(records) == 0) {
		gw_error(r, 422, "invalid", NULL, "no %s in the body", noun);
		goto fail;
	}
	return records;
oom:
	gw_error(r, 500, "internal", NULL, "out of memory");
fail:
	json_decref(records);
	return NULL;
}

void gw_ingest(moat_gateway_t *g, struct MHD_Connection *c, moat_store_t *s, const gw_auth_t *a,
	       moat_import_kind_t kind, gw_req_t *q, gw_resp_t *r)
{
	if (a->p.role != MOAT_ROLE_PLATFORM_SERVICE &&
	    !(a->p.role == MOAT_ROLE_MERCHANT_ADMIN && kind == MOAT_IMPORT_RELATIONS)) {
		gw_error(r, 403, "forbidden", NULL, "role %s may not ingest records",
			 moat_role_name(a->p.role));
		return;
	}
	json_t *records = NULL;
	moat_error_t e = {0};
	moat_arena_t *arena = moat_arena_new(16384);
	bool began = false;
	if (!arena) {
		gw_error(r, 500, "internal", NULL, "out of memory");
		goto done;
	}
	if (!(records = gw_parse_batch(c, q, "records", r)))
		goto done;
	if (moat_store_begin(s, &e) != MOAT_OK) {
		gw_error_from(r, &e);
		goto done;
	}
	began = true;
	moat_app_t view = *g->app; /* import through this thread's store handle */
	view.store = s;
	size_t i;
	json_t *obj;
	json_array_foreach(records, i, obj)
	{
		if (!json_is_object(obj)) {
			gw_error(r, 422, "invalid", NULL, "record %zu: must be a JSON object",
				 i + 1);
			goto done;
		}
		if (!may_write(s, a, kind, obj, &e)) {
			e.line = (long)i + 1;
			gw_error_from(r, &e);
			goto done;
		}
		moat_err_t rc = moat_app_import_one(&view, kind, obj, arena, &e);
		if (rc != MOAT_OK) {
			e.line = (long)i + 1;
			/* A reference to a missing party or order is bad input, not a missing URL.
			 */
			if (rc == MOAT_ENOTFOUND)
				e.code = MOAT_EINVAL;
			gw_error_from(r, &e);
			goto done;
		}
	}
	if (moat_store_commit(s, &e) != MOAT_OK) {
		gw_error_from(r, &e);
		goto done;
	}
	began = false;
	moat_buf_reset(&r->body);
	if (moat_buf_printf(&r->body, "{\"imported\":%zu}", json_array_size(records)) == MOAT_OK)
		r->status = 201;
	else /* committed, but the answer is lost: said as it is */
		gw_error(r, 500, "internal", NULL,
			 "records imported; out of memory for the answer");
done:
	if (began)
		moat_store_rollback(s);
	json_decref(records);
	moat_arena_free(arena);
}
