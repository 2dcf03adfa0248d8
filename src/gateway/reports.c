/*
 * Tracing over HTTP: POST /v1/reports (scam reports in, all-or-nothing), GET
 * /v1/cases (the case list) and GET /v1/cases/{id} (a case traced: suspects,
 * evidence, notification count, regulator report).
 *
 * The tracer keeps its exposure index in one file under the data directory and
 * brings it up to date on every call, so trace calls are serialised by
 * g->trace_mu; each still uses the request's own store handle.
 */
#include <stdio.h>
#include <string.h>

#include "gateway/gateway_internal.h"
#include "moat/json.h"
#include "moat/trace.h"

/* Bad input is a 422 naming the field; the rest maps as everywhere else. */
static void trace_error(gw_resp_t *r, moat_error_t *e)
{
	if (e->code == MOAT_EINVAL || e->code == MOAT_ENOTFOUND) {
		char msg[420];
		if (e->line > 0)
			snprintf(msg, sizeof msg, "report %ld: %s", e->line, e->msg);
		else
			snprintf(msg, sizeof msg, "%s", e->msg);
		gw_error(r, 422, "invalid", e->field[0] ? e->field : NULL, "%s", msg);
		return;
	}
	gw_error_from(r, e);
}

void gw_reports(moat_gateway_t *g, struct MHD_Connection *c, moat_store_t *s, const gw_auth_t *a,
		gw_req_t *q, gw_resp_t *r)
{
	if (a->p.role != MOAT_ROLE_PLATFORM_SERVICE && a->p.role != MOAT_ROLE_PLATFORM_OPS) {
		gw_error(r, 403, "forbidden", NULL,
			 "reports are filed by the platform's services and operators");
		return;
	}
	json_t **objs = NULL;
	json_t *records = gw_parse_batch(c, q, "reports", r);
	if (!records)
		return;
	size_t n = json_array_size(records);
	objs = calloc(n, sizeof *objs);
	if (!objs) {
		gw_error(r, 500, "internal", NULL, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		objs[i] = json_array_get(records, i);
	moat_app_t view = *g->app;
	view.store = s;
	moat_error_t e = {0};
	size_t count = 0;
	uint64_t first = 0;
	pthread_mutex_lock(&g->trace_mu);
	moat_err_t rc = moat_trace_reports_add(&view, objs, n, &count, &first, &e);
	pthread_mutex_unlock(&g->trace_mu);
	if (rc != MOAT_OK) {
		trace_error(r, &e);
		goto done;
	}
	snprintf(r->ledger_index, sizeof r->ledger_index, "%llu", (unsigned long long)first);
	moat_buf_reset(&r->body);
	r->status = moat_buf_printf(&r->body, "{\"imported\":%zu,\"first_ledger_index\":%llu}",
				    count, (unsigned long long)first) == MOAT_OK
			? 201
			: 500;
done:
	free(objs);
	json_decref(records);
}

void gw_cases(moat_gateway_t *g, struct MHD_Connection *c, moat_store_t *s, const gw_auth_t *a,
	      const char *case_id, gw_resp_t *r)
{
	static const char *const allowed[] = {"priors", NULL};
	if (!gw_query_only(c, case_id ? allowed : NULL, r))
		return;
	if (a->p.role != MOAT_ROLE_PLATFORM_OPS && a->p.role != MOAT_ROLE_AUDITOR) {
		gw_error(r, 403, "forbidden", NULL,
			 "cases are for platform operators and auditors");
		return;
	}
	moat_trace_opts_t to = {0};
	const char *pri = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "priors");
	if (pri && strcmp(pri, "off") == 0)
		to.no_priors = true;
	else if (pri && strcmp(pri, "alerts") != 0) {
		gw_error(r, 422, "invalid", "priors",
			 "priors is \"alerts\" (the default: detector alerts weight the "
			 "correction) or \"off\"");
		return;
	}
	if (case_id && !moat_id_valid(case_id)) {
		gw_error(r, 422, "invalid", "case",
			 "a case id is 1..64 characters of A-Z a-z 0-9 . _ : -");
		return;
	}
	moat_app_t view = *g->app;
	view.store = s;
	moat_error_t e = {0};
	moat_buf_reset(&r->body);
	pthread_mutex_lock(&g->trace_mu);
	moat_err_t rc = case_id ? moat_trace_case_run(&view, case_id, &to, &r->body, &e)
				: moat_trace_case_list_json(&view, &r->body, &e);
	pthread_mutex_unlock(&g->trace_mu);
	if (rc != MOAT_OK) {
		moat_buf_reset(&r->body);
		gw_error_from(r, &e);
		return;
	}
	r->status = 200;
}
