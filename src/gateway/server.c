/*
 * The gateway's HTTP server on libmicrohttpd: connection handling, body caps,
 * routing, authentication, errors, metrics, reload and shutdown. The handlers
 * for each endpoint live in their own files.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "gateway/gateway_internal.h"
#include "moat/detect.h"
#include "moat/ledger.h"

/* ---- errors ---------------------------------------------------------------------- */

unsigned gw_error(gw_resp_t *r, unsigned status, const char *code, const char *field,
		  const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	moat_buf_reset(&r->body);
	r->status = status;
	r->content_type = "application/json";
	moat_err_t rc = moat_buf_printf(&r->body, "{\"error\":{\"code\":\"%s\",\"message\":", code);
	if (rc == MOAT_OK)
		rc = moat_buf_json_str(&r->body, msg);
	if (rc == MOAT_OK)
		rc = moat_buf_puts(&r->body, ",\"field\":");
	if (rc == MOAT_OK)
		rc = field && field[0] ? moat_buf_json_str(&r->body, field)
				       : moat_buf_puts(&r->body, "null");
	if (rc == MOAT_OK)
		rc = moat_buf_puts(&r->body, "}}");
	return status;
}

unsigned gw_error_from(gw_resp_t *r, const moat_error_t *e)
{
	unsigned st;
	const char *code;
	switch (e->code) {
	case MOAT_EINVAL:
		st = 422, code = "invalid";
		break;
	case MOAT_ENOTFOUND:
		st = 404, code = "not_found";
		break;
	case MOAT_EEXIST:
	case MOAT_ECONFLICT:
		st = 409, code = "conflict";
		break;
	case MOAT_EDENIED:
		st = 403, code = "forbidden";
		break;
	case MOAT_ELIMIT:
		st = 413, code = "too_large";
		break;
	case MOAT_EUNAVAIL:
		st = 503, code = "unavailable";
		break;
	default:
		st = 500, code = "internal";
	}
	char msg[420];
	if (e->line > 0)
		snprintf(msg, sizeof msg, "line %ld: %s", e->line,
			 e->msg[0] ? e->msg : moat_err_name(e->code));
	else
		snprintf(msg, sizeof msg, "%s", e->msg[0] ? e->msg : moat_err_name(e->code));
	return gw_error(r, st, code, e->field, "%s", msg);
}

/* ---- events ---------------------------------------------------------------------- */

moat_err_t gw_append(moat_gateway_t *g, const moat_entry_t *e, size_t n, uint64_t *first,
		     moat_error_t *err)
{
	if (g->fail_flag_path && g->sink.fail_writes) {
		struct stat st;
		g->sink.fail_writes(g->sink.ctx, stat(g->fail_flag_path, &st) == 0);
	}
	moat_err_t rc = g->sink.append(g->sink.ctx, e, n, first, err);
	if (rc != MOAT_OK) {
		atomic_fetch_add(&g->m.ledger_failures, 1);
		moat_log(MOAT_LOG_ERROR, "ledger_append", "event append failed: %s",
			 err ? err->msg : "");
	}
	return rc;
}

moat_err_t gw_append_async(moat_gateway_t *g, const moat_entry_t *e, size_t n, bool deferred,
			   void (*done)(void *ctx, moat_err_t status, uint64_t first), void *ctx,
			   moat_error_t *err)
{
	if (g->fail_flag_path && g->sink.fail_writes) {
		struct stat st;
		g->sink.fail_writes(g->sink.ctx, stat(g->fail_flag_path, &st) == 0);
	}
	return deferred ? g->sink.append_deferred(g->sink.ctx, e, n, done, ctx, err)
			: g->sink.append_async(g->sink.ctx, e, n, done, ctx, err);
}

/* ---- store pool, policy ---------------------------------------------------------- */

static __thread gw_loop_t *tl_loop;

moat_store_t *gw_store_acquire(moat_gateway_t *g)
{
	if (tl_loop && tl_loop->g == g)
		return tl_loop->store;
	gw_store_pool_t *p = &g->pool;
	pthread_mutex_lock(&p->mu);
	while (p->n_free == 0)
		pthread_cond_wait(&p->cv, &p->mu);
	moat_store_t *s = p->free[--p->n_free];
	pthread_mutex_unlock(&p->mu);
	return s;
}

void gw_store_release(moat_gateway_t *g, moat_store_t *s)
{
	if (tl_loop && s == tl_loop->store)
		return;
	gw_store_pool_t *p = &g->pool;
	pthread_mutex_lock(&p->mu);
	p->free[p->n_free++] = s;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

const moat_policy_t *gw_policy_get(moat_gateway_t *g)
{
	pthread_rwlock_rdlock(&g->policy_lock);
	return g->policy;
}

void gw_policy_put(moat_gateway_t *g)
{
	pthread_rwlock_unlock(&g->policy_lock);
}

/* ---- query helpers --------------------------------------------------------------- */

typedef struct query_check {
	const char *const *allowed;
	const char *bad;
	bool utf8_bad, too_long;
} query_check_t;

static enum MHD_Result query_iter(void *cls, enum MHD_ValueKind kind, const char *key,
				  const char *value)
{
	(void)kind;
	query_check_t *q = cls;
	size_t kl = strlen(key), vl = value ? strlen(value) : 0;
	if (kl > 64 || vl > GW_MAX_QUERY_VALUE) {
		q->too_long = true;
		q->bad = key;
		return MHD_NO;
	}
	if (!moat_utf8_valid(key, kl) || (value && !moat_utf8_valid(value, vl))) {
		q->utf8_bad = true;
		q->bad = key;
		return MHD_NO;
	}
	bool ok = false;
	for (size_t i = 0; q->allowed && q->allowed[i]; i++)
		if (strcmp(q->allowed[i], key) == 0)
			ok = true;
	if (!ok) {
		q->bad = key;
		return MHD_NO;
	}
	return MHD_YES;
}

bool gw_query_only(struct MHD_Connection *c, const char *const *allowed, gw_resp_t *r)
{
	query_check_t q = {allowed, NULL, false, false};
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_iter, &q);
	if (!q.bad)
		return true;
	char field[72];
	/* The parameter's name, cut to fit on a character boundary (a cut inside
	 * a character would make the error's JSON invalid UTF-8). */
	if (moat_utf8_valid(q.bad, strlen(q.bad)))
		snprintf(field, sizeof field, "%.*s", (int)moat_utf8_cut(q.bad, 64), q.bad);
	else
		snprintf(field, sizeof field, "?");
	if (q.too_long)
		gw_error(r, 414, "uri_too_long", field, "query parameter is longer than %d bytes",
			 GW_MAX_QUERY_VALUE);
	else if (q.utf8_bad)
		gw_error(r, 422, "invalid", field, "query parameter is not valid UTF-8");
	else
		gw_error(r, 422, "invalid", field, "unknown query parameter");
	return false;
}

/* ---- metrics --------------------------------------------------------------------- */

static const unsigned status_codes[GW_STATUS_SLOTS - 1] = {200, 201, 400, 401, 403, 404, 405, 409,
							   413, 414, 415, 422, 429, 500, 503};
static const char *const route_names[R_COUNT] = {"other",    "healthz", "metrics",   "openapi",
						 "sessions", "ingest",	"order_get", "order_list",
						 "calls",    "ledger",	"reports",   "cases"};
static const double lat_bounds_ms[GW_LAT_BUCKETS] = {0.1, 0.25, 0.5, 1,	  2,   5,
						     10,  25,	50,  100, 500, 2500};

static int status_slot(unsigned st)
{
	for (int i = 0; i < GW_STATUS_SLOTS - 1; i++)
		if (status_codes[i] == st)
			return i;
	return GW_STATUS_SLOTS - 1;
}

static void metrics_observe(moat_gateway_t *g, gw_route_t route, unsigned status, uint64_t ns)
{
	atomic_fetch_add(&g->m.requests[route][status_slot(status)], 1);
	double ms = (double)ns / 1e6;
	int b = 0;
	while (b < GW_LAT_BUCKETS && ms > lat_bounds_ms[b])
		b++;
	atomic_fetch_add(&g->m.lat_bucket[b], 1);
	atomic_fetch_add(&g->m.lat_sum_us, ns / 1000);
	atomic_fetch_add(&g->m.lat_count, 1);
}

static void metrics_render(moat_gateway_t *g, gw_resp_t *r)
{
	moat_buf_t *b = &r->body;
	moat_err_t rc;
	rc = moat_buf_puts(b, "# HELP moat_http_requests_total HTTP requests by route and status.\n"
			      "# TYPE moat_http_requests_total counter\n");
	for (int ro = 0; ro < R_COUNT && rc == MOAT_OK; ro++)
		for (int s = 0; s < GW_STATUS_SLOTS && rc == MOAT_OK; s++) {
			unsigned long long v = atomic_load(&g->m.requests[ro][s]);
			if (!v)
				continue;
			if (s < GW_STATUS_SLOTS - 1)
				rc = moat_buf_printf(
				    b,
				    "moat_http_requests_total{route=\"%s\",status=\"%u\"} %llu\n",
				    route_names[ro], status_codes[s], v);
			else
				rc = moat_buf_printf(b,
						     "moat_http_requests_total{route=\"%s\",status="
						     "\"other\"} %llu\n",
						     route_names[ro], v);
		}
	if (rc == MOAT_OK)
		rc = moat_buf_puts(b, "# HELP moat_http_request_duration_seconds Request latency.\n"
				      "# TYPE moat_http_request_duration_seconds histogram\n");
	unsigned long long cum = 0;
	for (int i = 0; i <= GW_LAT_BUCKETS && rc == MOAT_OK; i++) {
		cum += atomic_load(&g->m.lat_bucket[i]);
		if (i < GW_LAT_BUCKETS)
			rc = moat_buf_printf(
			    b, "moat_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
			    lat_bounds_ms[i] / 1000.0, cum);
		else
			rc = moat_buf_printf(
			    b, "moat_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
			    cum);
	}
	if (rc == MOAT_OK)
		rc = moat_buf_printf(b,
				     "moat_http_request_duration_seconds_sum %.6f\n"
				     "moat_http_request_duration_seconds_count %llu\n",
				     (double)atomic_load(&g->m.lat_sum_us) / 1e6,
				     (unsigned long long)atomic_load(&g->m.lat_count));
	if (rc == MOAT_OK)
		rc =
		    moat_buf_printf(b,
				    "# HELP moat_decisions_total Policy decisions on order reads.\n"
				    "# TYPE moat_decisions_total counter\n"
				    "moat_decisions_total{decision=\"allow\"} %llu\n"
				    "moat_decisions_total{decision=\"deny\"} %llu\n"
				    "# HELP moat_field_views_total Fields served by view.\n"
				    "# TYPE moat_field_views_total counter\n",
				    (unsigned long long)atomic_load(&g->m.decisions_allow),
				    (unsigned long long)atomic_load(&g->m.decisions_deny));
	for (int f = 0; f < MOAT_FIELD_COUNT && rc == MOAT_OK; f++)
		for (int v = 1; v < MOAT_VIEW_COUNT && rc == MOAT_OK; v++) {
			unsigned long long n = atomic_load(&g->m.views[f][v]);
			if (n)
				rc = moat_buf_printf(
				    b, "moat_field_views_total{field=\"%s\",view=\"%s\"} %llu\n",
				    moat_field_name((moat_field_t)f),
				    moat_view_name((moat_view_t)v), n);
		}
	if (rc == MOAT_OK)
		rc = moat_buf_printf(
		    b,
		    "# HELP moat_quota_refusals_total Reads refused for a spent daily quota.\n"
		    "# TYPE moat_quota_refusals_total counter\n"
		    "moat_quota_refusals_total %llu\n"
		    "# HELP moat_ledger_size Entries in the ledger.\n"
		    "# TYPE moat_ledger_size gauge\n"
		    "moat_ledger_size %llu\n"
		    "# HELP moat_ledger_lag_entries Durable entries not yet in a signed "
		    "checkpoint.\n"
		    "# TYPE moat_ledger_lag_entries gauge\n"
		    "moat_ledger_lag_entries %llu\n"
		    "# HELP moat_ledger_append_failures_total Event appends that failed.\n"
		    "# TYPE moat_ledger_append_failures_total counter\n"
		    "moat_ledger_append_failures_total %llu\n"
		    "# HELP moat_logins_total Login attempts by result.\n"
		    "# TYPE moat_logins_total counter\n"
		    "moat_logins_total{result=\"success\"} %llu\n"
		    "moat_logins_total{result=\"failure\"} %llu\n"
		    "# HELP moat_replayed_requests_total Requests judged on a Moat-Replay-Time "
		    "clock (serve --replay-clock).\n"
		    "# TYPE moat_replayed_requests_total counter\n"
		    "moat_replayed_requests_total %llu\n",
		    (unsigned long long)atomic_load(&g->m.quota_refusals),
		    (unsigned long long)g->sink.size(g->sink.ctx),
		    (unsigned long long)(g->ledger ? moat_ledger_size(g->ledger) -
							 moat_ledger_checkpoint_size(g->ledger)
						   : 0),
		    (unsigned long long)atomic_load(&g->m.ledger_failures),
		    (unsigned long long)atomic_load(&g->m.logins_ok),
		    (unsigned long long)atomic_load(&g->m.logins_failed),
		    (unsigned long long)atomic_load(&g->m.replayed));
	if (rc == MOAT_OK && atomic_load(&g->m.detect_on)) {
		uint64_t size = g->sink.size(g->sink.ctx);
		uint64_t judged = atomic_load(&g->m.detect_judged);
		rc = moat_buf_printf(
		    b,
		    "# HELP moat_detect_judged_entries Ledger entries the detector has judged "
		    "(every one below this index).\n"
		    "# TYPE moat_detect_judged_entries gauge\n"
		    "moat_detect_judged_entries %llu\n"
		    "# HELP moat_detect_lag_entries Ledger entries the detector has not judged "
		    "yet.\n"
		    "# TYPE moat_detect_lag_entries gauge\n"
		    "moat_detect_lag_entries %llu\n"
		    "# HELP moat_detect_replay_entries Entries judged before the last start (or "
		    "rules reload) that the detector must still replay before it judges new "
		    "ones.\n"
		    "# TYPE moat_detect_replay_entries gauge\n"
		    "moat_detect_replay_entries %llu\n"
		    "# HELP moat_detect_alerts_total Alerts this server's detector raised.\n"
		    "# TYPE moat_detect_alerts_total counter\n"
		    "moat_detect_alerts_total %llu\n"
		    "# HELP moat_detect_actions_total Actions (throttle, force masking, suspend) "
		    "this server's detector applied.\n"
		    "# TYPE moat_detect_actions_total counter\n"
		    "moat_detect_actions_total %llu\n"
		    "# HELP moat_detect_tick_failures_total Detector ticks that failed (the next "
		    "one rebuilds the engine).\n"
		    "# TYPE moat_detect_tick_failures_total counter\n"
		    "moat_detect_tick_failures_total %llu\n",
		    (unsigned long long)judged,
		    (unsigned long long)(size > judged ? size - judged : 0),
		    (unsigned long long)atomic_load(&g->m.detect_replay),
		    (unsigned long long)atomic_load(&g->m.detect_alerts),
		    (unsigned long long)atomic_load(&g->m.detect_actions),
		    (unsigned long long)atomic_load(&g->m.detect_failures));
	}
	if (rc == MOAT_OK && g->ledger) {
		uint64_t groups, grouped;
		moat_ledger_commit_stats(g->ledger, &groups, &grouped);
		rc = moat_buf_printf(
		    b,
		    "# HELP moat_ledger_commit_groups_total Group commits (one fdatasync each) "
		    "since start.\n"
		    "# TYPE moat_ledger_commit_groups_total counter\n"
		    "moat_ledger_commit_groups_total %llu\n"
		    "# HELP moat_ledger_commit_entries_total Entries made durable by those "
		    "groups.\n"
		    "# TYPE moat_ledger_commit_entries_total counter\n"
		    "moat_ledger_commit_entries_total %llu\n",
		    (unsigned long long)groups, (unsigned long long)grouped);
	}
	r->status = 200;
	r->content_type = "text/plain; version=0.0.4";
}

/* ---- authentication -------------------------------------------------------------- */

void gw_client_ip(struct MHD_Connection *c, const gw_req_t *q, char out[64])
{
	out[0] = '\0';
	if (q && q->replay_ip[0]) {
		snprintf(out, 64, "%s", q->replay_ip);
		return;
	}
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!ci || !ci->client_addr)
		return;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, 64);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, 64);
}

/* Sets the request's clock (q->now, q->replayed, q->replay_ip). Without the
 * replay clock the headers are ignored: in normal operation the server's own
 * clock decides, whatever a client claims. A malformed header under the replay
 * clock is a 422, never a silent fallback to the real time. */
static bool request_clock(moat_gateway_t *g, struct MHD_Connection *c, gw_req_t *q, gw_resp_t *r)
{
	q->now = moat_now();
	q->replayed = false;
	q->replay_ip[0] = '\0';
	if (!g->replay_clock)
		return true;
	const char *t = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Moat-Replay-Time");
	if (t) {
		moat_time_t at;
		if (strlen(t) > 40 || !moat_time_parse(t, &at)) {
			gw_error(r, 422, "invalid", "Moat-Replay-Time",
				 "Moat-Replay-Time must be an RFC 3339 time with an offset");
			return false;
		}
		q->now = at;
		q->replayed = true;
		atomic_fetch_add(&g->m.replayed, 1);
	}
	const char *ip = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Moat-Replay-Client-IP");
	if (ip) {
		unsigned char addr[16];
		if (strlen(ip) >= sizeof q->replay_ip ||
		    (inet_pton(AF_INET, ip, addr) != 1 && inet_pton(AF_INET6, ip, addr) != 1)) {
			gw_error(r, 422, "invalid", "Moat-Replay-Client-IP",
				 "Moat-Replay-Client-IP must be an IPv4 or IPv6 address");
			return false;
		}
		snprintf(q->replay_ip, sizeof q->replay_ip, "%s", ip);
	}
	return true;
}

static const char *device_header(struct MHD_Connection *c)
{
	const char *d = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Moat-Device");
	if (!d || !moat_id_valid(d))
		return NULL;
	return d;
}

/* Authenticates the caller; on failure fills r (401/403) and returns false. */
static bool authenticate(moat_gateway_t *g, struct MHD_Connection *c, moat_store_t *s,
			 const gw_req_t *q, gw_auth_t *a, gw_resp_t *r)
{
	const char *h =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	r->www_auth = true;
	if (!h || strncmp(h, "Bearer ", 7) != 0) {
		gw_error(r, 401, "unauthenticated", "Authorization",
			 "send Authorization: Bearer <api key or session token>");
		return false;
	}
	const char *tok = h + 7;
	moat_error_t e = {0};
	moat_err_t rc;
	uint8_t hash[32];
	char pid[MOAT_ID_MAX + 1];
	/* The detector's actions on this principal take effect on its next request:
	 * an API key's look-up reads the strongest active one with the principal. */
	moat_detect_action_t act = MOAT_ACTION_NONE;
	bool have_act = false;
	if (strncmp(tok, "moat_", 5) == 0) {
		if (!moat_api_key_hash(tok, hash)) {
			gw_error(r, 401, "unauthenticated", "Authorization", "malformed API key");
			return false;
		}
		rc = moat_store_principal_auth(s, hash, &a->p, &act, &e);
		have_act = true;
	} else if (gw_session_check(g, tok, q->now, pid)) {
		rc = moat_store_principal_get(s, pid, &a->p, &e);
	} else {
		gw_error(r, 401, "unauthenticated", "Authorization",
			 "unknown or expired credentials");
		return false;
	}
	if (rc == MOAT_EDENIED || rc == MOAT_ENOTFOUND) {
		gw_error(r, 401, "unauthenticated", "Authorization",
			 "unknown or expired credentials");
		return false;
	}
	if (rc != MOAT_OK) {
		gw_error_from(r, &e);
		return false;
	}
	r->www_auth = false;
	if (a->p.status == MOAT_PRINCIPAL_SUSPENDED) {
		gw_error(r, 403, "suspended", NULL, "principal %s is suspended", a->p.principal);
		return false;
	}
	if (!have_act && moat_store_action_for(s, a->p.principal, &act, &e) != MOAT_OK) {
		gw_error_from(r, &e);
		return false;
	}
	a->action = (int)act;
	if (act == MOAT_ACTION_SUSPEND) {
		gw_error(r, 403, "suspended", NULL,
			 "principal %s is suspended by a detector action; an analyst can lift it",
			 a->p.principal);
		return false;
	}
	gw_client_ip(c, q, a->ip);
	a->device = device_header(c);
	a->now = q->now;
	a->replayed = q->replayed;
	return true;
}

/* ---- routing --------------------------------------------------------------------- */

static bool method_is(const char *m, const char *want)
{
	return strcmp(m, want) == 0;
}

static bool content_type_json(struct MHD_Connection *c, bool allow_ndjson)
{
	const char *ct =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!ct)
		return false;
	if (strncasecmp(ct, "application/json", 16) == 0 && (ct[16] == '\0' || ct[16] == ';'))
		return true;
	if (allow_ndjson && strncasecmp(ct, "application/x-ndjson", 20) == 0 &&
	    (ct[20] == '\0' || ct[20] == ';'))
		return true;
	return false;
}

static gw_route_t dispatch(moat_gateway_t *g, struct MHD_Connection *c, const char *url,
			   const char *method, gw_req_t *q, gw_resp_t *r)
{
	size_t ul = strlen(url);
	if (ul > GW_MAX_URL) {
		gw_error(r, 414, "uri_too_long", NULL, "path is longer than %d bytes", GW_MAX_URL);
		return R_NOT_FOUND;
	}
	if (!moat_utf8_valid(url, ul)) {
		gw_error(r, 400, "bad_request", NULL, "path is not valid UTF-8");
		return R_NOT_FOUND;
	}
	bool get = method_is(method, "GET") || method_is(method, "HEAD");
	bool post = method_is(method, "POST");

	if (strcmp(url, "/healthz") == 0) {
		if (!get)
			return r->allow = "GET, HEAD",
			       gw_error(r, 405, "method_not_allowed", NULL, "use GET"), R_HEALTHZ;
		if (!gw_query_only(c, NULL, r))
			return R_HEALTHZ;
		r->status = 200;
		if (moat_buf_puts(&r->body, "{\"status\":\"ok\"}") != MOAT_OK)
			r->status = 500;
		return R_HEALTHZ;
	}
	if (strcmp(url, "/metrics") == 0) {
		if (!get)
			return r->allow = "GET, HEAD",
			       gw_error(r, 405, "method_not_allowed", NULL, "use GET"), R_METRICS;
		metrics_render(g, r);
		return R_METRICS;
	}
	if (strcmp(url, "/openapi.json") == 0) {
		if (!get)
			return r->allow = "GET, HEAD",
			       gw_error(r, 405, "method_not_allowed", NULL, "use GET"), R_OPENAPI;
		r->status = 200;
		if (moat_buf_append(&r->body, moat_openapi_json, moat_openapi_json_len) != MOAT_OK)
			r->status = 500;
		return R_OPENAPI;
	}

	gw_route_t route = R_NOT_FOUND;
	moat_import_kind_t ingest_kind = MOAT_IMPORT_PARTIES;
	const char *order_id = NULL;
	const char *allow = NULL;
	bool want_post = false;
	if (strcmp(url, "/v1/sessions") == 0) {
		route = R_SESSIONS, want_post = true, allow = "POST";
	} else if (strcmp(url, "/v1/parties") == 0) {
		route = R_INGEST, ingest_kind = MOAT_IMPORT_PARTIES, want_post = true,
		allow = "POST";
	} else if (strcmp(url, "/v1/principals") == 0) {
		route = R_INGEST, ingest_kind = MOAT_IMPORT_PRINCIPALS, want_post = true,
		allow = "POST";
	} else if (strcmp(url, "/v1/relations") == 0) {
		route = R_INGEST, ingest_kind = MOAT_IMPORT_RELATIONS, want_post = true,
		allow = "POST";
	} else if (strcmp(url, "/v1/orders") == 0) {
		/* GET lists, POST ingests */
		route = post ? R_INGEST : R_ORDER_LIST, ingest_kind = MOAT_IMPORT_ORDERS;
		want_post = post, allow = "GET, HEAD, POST";
		if (!get && !post)
			return r->allow = allow,
			       gw_error(r, 405, "method_not_allowed", NULL, "use GET or POST"),
			       route;
	} else if (strncmp(url, "/v1/orders/", 11) == 0 && url[11] && !strchr(url + 11, '/')) {
		route = R_ORDER_GET, order_id = url + 11, allow = "GET, HEAD";
	} else if (strcmp(url, "/v1/calls") == 0) {
		route = R_CALLS, want_post = true, allow = "POST";
	} else if (strcmp(url, "/v1/reports") == 0) {
		route = R_REPORTS, want_post = true, allow = "POST";
	} else if (strcmp(url, "/v1/cases") == 0) {
		route = R_CASES, allow = "GET, HEAD";
	} else if (strncmp(url, "/v1/cases/", 10) == 0 && url[10] && !strchr(url + 10, '/')) {
		route = R_CASES, order_id = url + 10, allow = "GET, HEAD";
	} else if (strcmp(url, "/v1/alerts") == 0) {
		route = R_LEDGER, allow = "GET, HEAD";
	} else if (strcmp(url, "/v1/ledger/checkpoint") == 0) {
		if (!get)
			return r->allow = "GET, HEAD",
			       gw_error(r, 405, "method_not_allowed", NULL, "use GET"), R_LEDGER;
		if (gw_query_only(c, NULL, r))
			gw_ledger_checkpoint(g, r);
		return R_LEDGER;
	} else if (strncmp(url, "/v1/ledger/", 11) == 0) {
		route = R_LEDGER, allow = "GET, HEAD";
	} else {
		gw_error(r, 404, "not_found", NULL, "no such endpoint; see /openapi.json");
		return R_NOT_FOUND;
	}
	if (route != R_INGEST || !post) {
		if ((want_post && !post) || (!want_post && !get)) {
			r->allow = allow;
			gw_error(r, 405, "method_not_allowed", NULL, "use %s", allow);
			return route;
		}
	}
	if (want_post) {
		if (q->too_big) {
			gw_error(r, 413, "too_large", NULL, "request body is larger than %zu bytes",
				 g->max_body);
			return route;
		}
		bool batch = route == R_INGEST || route == R_REPORTS;
		if (!content_type_json(c, batch)) {
			gw_error(r, 415, "unsupported_media_type", "Content-Type",
				 batch ? "send application/json or application/x-ndjson"
				       : "send application/json");
			return route;
		}
		if (!moat_utf8_valid(q->body.data, q->body.len)) {
			gw_error(r, 422, "invalid", NULL, "request body is not valid UTF-8");
			return route;
		}
		if (!gw_query_only(c, NULL, r))
			return route;
	}
	if (!request_clock(g, c, q, r))
		return route;
	moat_store_t *s = gw_store_acquire(g);
	if (route == R_SESSIONS) {
		gw_sessions(g, c, s, q, r);
		gw_store_release(g, s);
		return route;
	}
	gw_auth_t a;
	memset(&a, 0, sizeof a);
	/* An order read's lookups (key, action, order, relations) share one
	 * snapshot, which the next order reads of the loop's pass share too (one
	 * WAL read lock, its fcntl pair, per pass instead of per read); decide_one
	 * ends it before the first write, loop_pass after the pass. Any other
	 * request starts from no snapshot: it may write. */
	bool keep = route == R_ORDER_GET && tl_loop && s == tl_loop->store;
	if (!keep)
		moat_store_read_end(s);
	moat_error_t te = {0};
	if (route == R_ORDER_GET && moat_store_read_keep(s, &te) != MOAT_OK) {
		gw_error_from(r, &te);
		gw_store_release(g, s);
		return route;
	}
	if (authenticate(g, c, s, q, &a, r)) {
		switch (route) {
		case R_INGEST:
			gw_ingest(g, c, s, &a, ingest_kind, q, r);
			break;
		case R_ORDER_GET:
			gw_order_get(g, c, s, &a, order_id, q, r);
			break;
		case R_ORDER_LIST:
			gw_order_list(g, c, s, &a, r);
			break;
		case R_CALLS:
			gw_calls(g, s, &a, q, r);
			break;
		case R_REPORTS:
			gw_reports(g, c, s, &a, q, r);
			break;
		case R_CASES:
			gw_cases(g, c, s, &a, order_id, r); /* order_id holds the case id */
			break;
		case R_LEDGER:
			if (strcmp(url, "/v1/alerts") == 0)
				gw_alerts(c, s, &a, r);
			else
				gw_ledger(g, c, &a, url + 11, r);
			break;
		default:
			gw_error(r, 404, "not_found", NULL, "no such endpoint");
		}
	}
	if (!keep)
		moat_store_read_end(s);
	gw_store_release(g, s);
	return route;
}

/* Frees a response body once libmicrohttpd has sent it, wiped first: an order
 * read's body holds the PII it reveals. */
static void wipe_free_body(void *p)
{
	if (p) {
		OPENSSL_cleanse(p, malloc_usable_size(p));
		free(p);
	}
}

static enum MHD_Result send_response(struct MHD_Connection *c, gw_resp_t *r)
{
	/* The response takes the body's buffer instead of a copy of it, and frees
	 * it as moat_buf_free would have. */
	struct MHD_Response *resp =
	    r->body.secret
		? MHD_create_response_from_buffer_with_free_callback(r->body.len, r->body.data,
								     wipe_free_body)
		: MHD_create_response_from_buffer(r->body.len, r->body.data,
						  MHD_RESPMEM_MUST_FREE);
	if (!resp)
		return MHD_NO;
	moat_buf_init(&r->body, r->body.max);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				r->content_type ? r->content_type : "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (r->ledger_index[0])
		MHD_add_response_header(resp, "Moat-Ledger-Index", r->ledger_index);
	if (r->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	if (r->www_auth && r->status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"moat\"");
	enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	(void)version;
	moat_gateway_t *g = cls;
	gw_req_t *q = *con_cls;
	if (!q) {
		q = calloc(1, sizeof *q);
		if (!q)
			return MHD_NO;
		moat_buf_init(&q->body, g->max_body);
		q->start_ns = moat_mono_ns();
		*con_cls = q;
		/* Refuse an announced over-size body before reading any of it. */
		const char *cl =
		    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > g->max_body) {
			gw_resp_t r = {0};
			moat_buf_init(&r.body, 4096);
			gw_error(&r, 413, "too_large", NULL,
				 "request body is larger than %zu bytes", g->max_body);
			enum MHD_Result ret = send_response(c, &r);
			metrics_observe(g, R_NOT_FOUND, 413, moat_mono_ns() - q->start_ns);
			moat_buf_free(&r.body);
			q->too_big = true;
			return ret;
		}
		return MHD_YES;
	}
	if (q->pending) {
		/* Resumed, or called again while its entry waits: answered once the
		 * entry is durable (or failed); until then no response, and
		 * libmicrohttpd calls again on its next pass. */
		if (!gw_pending_ready(q->pending))
			return MHD_YES;
		gw_resp_t r = {0};
		moat_buf_init_secret(&r.body, 64u << 20);
		r.status = 500;
		gw_order_finish(g, q, &r);
		enum MHD_Result ret = send_response(c, &r);
		metrics_observe(g, R_ORDER_GET, r.status, moat_mono_ns() - q->start_ns);
		moat_buf_free(&r.body);
		return ret;
	}
	if (*upload_size) {
		if (!q->too_big && moat_buf_append(&q->body, upload, *upload_size) != MOAT_OK)
			q->too_big = true;
		*upload_size = 0;
		return MHD_YES;
	}
	gw_resp_t r = {0};
	moat_buf_init_secret(&r.body, 64u << 20); /* an order's PII may go in it */
	r.status = 500;
	gw_route_t route = dispatch(g, c, url, method, q, &r);
	if (q->pending) {
		/* Waiting until the entry is durable: no response yet. */
		moat_buf_free(&r.body);
		return MHD_YES;
	}
	enum MHD_Result ret = send_response(c, &r);
	metrics_observe(g, route, r.status, moat_mono_ns() - q->start_ns);
	moat_buf_free(&r.body);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)c, (void)toe;
	gw_req_t *q = *con_cls;
	if (!q)
		return;
	/* The client went away before its read was answered: the read is freed
	 * here, or by its completion if that is still to come. */
	gw_pending_abandon(q->pending);
	moat_buf_free(&q->body);
	moat_arena_free(q->arena);
	free(q);
	*con_cls = NULL;
}

bool gw_throttled(moat_gateway_t *g, const char *principal, moat_time_t now)
{
	/* FNV-1a picks a slot; a collision with another throttled principal just
	 * shares the one-read-per-second budget, erring on the strict side. */
	uint32_t h = 2166136261u;
	for (const char *p = principal; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	size_t i = h % MOAT_ARRAY_LEN(g->throttle);
	pthread_mutex_lock(&g->throttle_mu);
	bool recent = now - g->throttle[i].last < 1000;
	if (!recent) {
		g->throttle[i].last = now;
		snprintf(g->throttle[i].principal, sizeof g->throttle[i].principal, "%s",
			 principal);
	}
	pthread_mutex_unlock(&g->throttle_mu);
	return recent;
}

/* GET /v1/alerts?status=open|resolved&limit=N: the detector's alerts, for
 * auditors and platform operators. */
void gw_alerts(struct MHD_Connection *c, moat_store_t *s, const gw_auth_t *a, gw_resp_t *r)
{
	static const char *const allowed[] = {"status", "limit", NULL};
	if (!gw_query_only(c, allowed, r))
		return;
	if (a->p.role != MOAT_ROLE_AUDITOR && a->p.role != MOAT_ROLE_PLATFORM_OPS) {
		gw_error(r, 403, "forbidden", NULL,
			 "alerts are for auditors and platform operators");
		return;
	}
	int status = -1;
	const char *st = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "status");
	if (st && strcmp(st, "open") == 0)
		status = 0;
	else if (st && strcmp(st, "resolved") == 0)
		status = 1;
	else if (st) {
		gw_error(r, 422, "invalid", "status", "status is open or resolved");
		return;
	}
	long limit = 100;
	const char *ls = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
	if (ls) {
		char *end;
		limit = strtol(ls, &end, 10);
		if (*end || end == ls || limit < 1 || limit > 1000) {
			gw_error(r, 422, "invalid", "limit", "limit must be 1..1000");
			return;
		}
	}
	moat_error_t e = {0};
	moat_buf_reset(&r->body);
	if (moat_detect_alerts_json(s, status, (size_t)limit, &r->body, &e) != MOAT_OK) {
		gw_error_from(r, &e);
		return;
	}
	r->status = 200;
}

/* ---- life cycle ------------------------------------------------------------------ */

static moat_err_t load_policy(moat_gateway_t *g, moat_error_t *err)
{
	char path[1200];
	if (moat_path_join(path, sizeof path, g->app->data_dir, "policy.conf") != MOAT_OK)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "data directory path is too long");
	moat_policy_t *p = NULL;
	moat_err_t rc = moat_policy_load(path, &p, err);
	if (rc != MOAT_OK) {
		if (err && err->line > 0) {
			char msg[sizeof err->msg];
			snprintf(msg, sizeof msg, "%s", err->msg);
			snprintf(err->msg, sizeof err->msg, "policy.conf line %ld: %.280s",
				 err->line, msg);
		}
		return rc;
	}
	/* A policy the ledger has not seen yet is a policy change. */
	moat_store_t *s = gw_store_acquire(g);
	char prev[80] = "";
	moat_error_t e2 = {0};
	moat_err_t grc = moat_store_meta_get(s, "gateway.policy_hash", prev, sizeof prev, &e2);
	if ((grc == MOAT_OK || grc == MOAT_ENOTFOUND) && strcmp(prev, moat_policy_hash(p)) != 0) {
		moat_entry_t e = {0};
		e.kind = MOAT_ENTRY_POLICY;
		e.time = moat_now();
		e.ref = moat_policy_hash(p);
		e.detail = "policy.conf loaded";
		rc = gw_append(g, &e, 1, NULL, err);
		if (rc == MOAT_OK)
			rc =
			    moat_store_meta_set(s, "gateway.policy_hash", moat_policy_hash(p), err);
	}
	gw_store_release(g, s);
	if (rc != MOAT_OK) {
		moat_policy_free(p);
		return rc;
	}
	pthread_rwlock_wrlock(&g->policy_lock);
	moat_policy_t *old = g->policy;
	g->policy = p;
	pthread_rwlock_unlock(&g->policy_lock);
	moat_policy_free(old);
	moat_log(MOAT_LOG_INFO, "policy_loaded", "policy %s with %zu rules", moat_policy_hash(p),
		 moat_policy_rule_count(p));
	return MOAT_OK;
}

moat_err_t moat_gateway_reload(moat_gateway_t *g, moat_error_t *err)
{
	return load_policy(g, err);
}

static moat_err_t parse_listen(const char *listen, struct sockaddr_in *sa, moat_error_t *err)
{
	char host[64];
	const char *colon = strrchr(listen, ':');
	if (!colon || (size_t)(colon - listen) >= sizeof host)
		return moat_error_set(err, MOAT_EINVAL, "listen",
				      "listen must be HOST:PORT (IPv4)");
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535)
		return moat_error_set(err, MOAT_EINVAL, "listen", "port must be 0..65535");
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa->sin_addr) != 1)
		return moat_error_set(err, MOAT_EINVAL, "listen", "host must be an IPv4 address");
	return MOAT_OK;
}

static bool parse_pool(const char *s, uint64_t *lo, uint64_t *hi)
{
	unsigned long long a, b;
	char tail;
	if (sscanf(s, "%llu-%llu%c", &a, &b, &tail) != 2 || a > b)
		return false;
	*lo = a, *hi = b;
	return true;
}

/* The listening socket every loop accepts on (g->listen_fd, g->port). */
static moat_err_t open_listener(moat_gateway_t *g, const struct sockaddr_in *sa, const char *name,
				moat_error_t *err)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, (const struct sockaddr *)sa, sizeof *sa) != 0 || listen(fd, 1024) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return moat_error_set(err, MOAT_EIO, "listen",
				      "cannot listen on %s (%s: in use, or not a local address?)",
				      name, strerror(e));
	}
	struct sockaddr_in bound;
	socklen_t bl = sizeof bound;
	g->listen_fd = fd;
	g->port = getsockname(fd, (struct sockaddr *)&bound, &bl) == 0 ? ntohs(bound.sin_port)
								      : ntohs(sa->sin_port);
	return MOAT_OK;
}

gw_loop_t *gw_loop_current(void)
{
	return tl_loop;
}

void gw_loop_wake(gw_loop_t *w)
{
	if (w != tl_loop && !atomic_exchange(&w->wake_armed, true) &&
	    eventfd_write(w->wake_fd, 1) != 0)
		moat_log(MOAT_LOG_ERROR, "gateway_loop", "cannot wake a loop: %s", strerror(errno));
}

void gw_loop_resume(gw_loop_t *w, struct MHD_Connection *c)
{
	MHD_resume_connection(c);
	if (w == tl_loop)
		w->resumed = true;
	else
		gw_loop_wake(w);
}

/* One pass: runs the daemon, then, while reads of this pass wait on deferred
 * ledger entries, flushes them (their completions make the reads answerable)
 * and runs the daemon again to answer them, taking in whatever arrived
 * meanwhile; a flush handed to another thread ends the pass (its completions
 * wake the loop). */
static void loop_pass(gw_loop_t *w)
{
	moat_gateway_t *g = w->g;
	atomic_store(&w->wake_armed, false);
	MHD_run(w->d);
	moat_store_read_end(w->store); /* the pass's snapshot (see on_request) */
	while (w->need_flush || w->resumed) {
		if (w->need_flush) {
			w->need_flush = false;
			if (!g->sink.flush(g->sink.ctx))
				return; /* another thread writes them; serve on meanwhile */
		}
		w->resumed = false;
		MHD_run(w->d);
		moat_store_read_end(w->store);
	}
}

static void *loop_main(void *arg)
{
	gw_loop_t *w = arg;
	moat_gateway_t *g = w->g;
	tl_loop = w;
	bool quiesced = false;
	uint64_t deadline = 0;
	for (;;) {
		if (!quiesced && atomic_load(&g->stopping)) {
			MHD_socket ls = MHD_quiesce_daemon(w->d);
			if (ls != MHD_INVALID_SOCKET)
				close(ls);
			epoll_ctl(w->ep, EPOLL_CTL_DEL, g->stop_fd, NULL);
			quiesced = true;
			deadline = moat_mono_ns() + 2000000000ull;
		}
		if (quiesced && atomic_load(&g->suspended) == 0) {
			const union MHD_DaemonInfo *di =
			    MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
			if (!di || di->num_connections == 0 || moat_mono_ns() > deadline)
				break;
		}
		MHD_UNSIGNED_LONG_LONG to = 0;
		int ms = 1000;
		if (MHD_get_timeout(w->d, &to) == MHD_YES)
			ms = to < 1000 ? (int)to : 1000;
		if (quiesced && ms > 10)
			ms = 10;
		/* Reads waiting on a handed-off group keep libmicrohttpd's timeout
		 * at zero (they are called again each pass); their completion wakes
		 * the loop instead, so sleep until then (1 ms at most, for anything
		 * else libmicrohttpd has ready). */
		if (ms == 0 && atomic_load(&w->handed_off) > 0)
			ms = 1;
		struct epoll_event ev[3];
		int n = epoll_wait(w->ep, ev, 3, ms);
		if (n < 0 && errno != EINTR)
			moat_log(MOAT_LOG_ERROR, "gateway_loop", "epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			eventfd_t v;
			if (ev[i].data.u32 == 2 && eventfd_read(w->wake_fd, &v) != 0 &&
			    errno != EAGAIN)
				moat_log(MOAT_LOG_ERROR, "gateway_loop", "wake: %s",
					 strerror(errno));
		}
		loop_pass(w);
	}
	return NULL;
}

moat_err_t moat_gateway_start(moat_app_t *app, const moat_gateway_opts_t *opts,
			      moat_gateway_t **out, moat_error_t *err)
{
	*out = NULL;
	if (!opts || !opts->sink.append || !opts->sink.size)
		return moat_error_set(err, MOAT_EINVAL, NULL, "gateway needs an event sink");
	moat_gateway_t *g = calloc(1, sizeof *g);
	if (!g)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	moat_err_t rc = MOAT_OK;
	g->app = app;
	g->listen_fd = -1;
	g->stop_fd = -1;
	g->sink = opts->sink;
	g->ledger = opts->ledger;
	g->fail_flag_path = opts->fail_flag_path;
	g->replay_clock = opts->replay_clock;
	g->max_body = app->config.max_body ? app->config.max_body : (8u << 20);
	g->grace_days = app->config.virtual_grace_days;
	pthread_rwlock_init(&g->policy_lock, NULL);
	pthread_mutex_init(&g->pool.mu, NULL);
	pthread_mutex_init(&g->throttle_mu, NULL);
	pthread_mutex_init(&g->write_mu, NULL);
	pthread_mutex_init(&g->trace_mu, NULL);
	pthread_cond_init(&g->pool.cv, NULL);
	if (!parse_pool(app->config.virtual_pool, &g->pool_lo, &g->pool_hi)) {
		rc = moat_error_set(err, MOAT_EINVAL, "virtual.pool",
				    "pool must be FIRST-LAST, e.g. "
				    "17100000000-17199999999");
		goto fail;
	}
	if ((rc = moat_random(g->session_key, sizeof g->session_key)) != MOAT_OK) {
		moat_error_set(err, rc, NULL, "no randomness for the session key");
		goto fail;
	}
	int threads = opts->threads > 0 ? opts->threads : app->config.threads;
	if (threads < 1)
		threads = 1;
	if (threads > 64)
		threads = 64;
	/* One store handle per server thread plus slack for reload. */
	g->pool.n = (size_t)threads + 1;
	g->pool.all = calloc(g->pool.n, sizeof *g->pool.all);
	g->pool.free = calloc(g->pool.n, sizeof *g->pool.free);
	if (!g->pool.all || !g->pool.free) {
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		goto fail;
	}
	char dbpath[1200];
	if ((rc = moat_path_join(dbpath, sizeof dbpath, app->data_dir, "moat.db")) != MOAT_OK) {
		moat_error_set(err, rc, NULL, "data directory path is too long");
		goto fail;
	}
	for (size_t i = 0; i < g->pool.n; i++) {
		if ((rc = moat_store_open_sqlite(dbpath, false, &g->pool.all[i], err)) != MOAT_OK)
			goto fail;
		g->pool.free[g->pool.n_free++] = g->pool.all[i];
	}
	if ((rc = load_policy(g, err)) != MOAT_OK)
		goto fail;
	struct sockaddr_in sa;
	if ((rc = parse_listen(opts->listen ? opts->listen : app->config.listen, &sa, err)) !=
	    MOAT_OK)
		goto fail;
	unsigned timeout =
	    app->config.request_timeout_s > 0 ? (unsigned)app->config.request_timeout_s : 10;
	if ((rc = open_listener(g, &sa, opts->listen ? opts->listen : app->config.listen, err)) !=
	    MOAT_OK)
		goto fail;
	g->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	g->loops = calloc((size_t)threads, sizeof *g->loops);
	if (g->stop_fd < 0 || !g->loops) {
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "cannot set up the server's loops");
		goto fail;
	}
	/* The connection limit is the whole server's, split over the loops. */
	unsigned per_loop = (1024u + (unsigned)threads - 1) / (unsigned)threads;
	for (int i = 0; i < threads; i++) {
		gw_loop_t *w = &g->loops[i];
		w->g = g;
		w->ep = -1;
		w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		g->n_loops++; /* from here on moat_gateway_stop releases it */
		if ((rc = moat_opener_new(app->keys, &w->opener, err)) != MOAT_OK)
			goto fail;
		w->store = g->pool.free[--g->pool.n_free]; /* the pool keeps one for reloads */
		/* Each daemon gets its own descriptor of the one listening socket,
		 * which it closes when it stops. */
		int fd = fcntl(g->listen_fd, F_DUPFD_CLOEXEC, 0);
		/* 16 KiB per connection holds a request's headers with room to spare
		 * (paths and queries are capped at 1 KiB, and a 14 KB path still
		 * reaches moat's own 414, as it did with libmicrohttpd's default of
		 * 32 KiB). The library zeroes the whole area between requests, and
		 * half of it again for a read that waits for its group commit, so a
		 * bigger one costs every keep-alive read. */
		if (fd >= 0)
			w->d = MHD_start_daemon(
			    MHD_USE_EPOLL | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
			    on_request, g, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
			    MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_CONNECTION_LIMIT,
			    per_loop, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024),
			    MHD_OPTION_NOTIFY_COMPLETED, on_completed, g, MHD_OPTION_END);
		if (!w->d) {
			if (fd >= 0)
				close(fd);
			rc = moat_error_set(err, MOAT_EIO, NULL, "cannot start the HTTP daemon");
			goto fail;
		}
		const union MHD_DaemonInfo *di = MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_EPOLL_FD);
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
		struct epoll_event sv = {.events = EPOLLIN, .data.u32 = 1};
		struct epoll_event wv = {.events = EPOLLIN, .data.u32 = 2};
		if (!di || w->ep < 0 || w->wake_fd < 0 ||
		    epoll_ctl(w->ep, EPOLL_CTL_ADD, di->epoll_fd, &ev) != 0 ||
		    epoll_ctl(w->ep, EPOLL_CTL_ADD, g->stop_fd, &sv) != 0 ||
		    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake_fd, &wv) != 0) {
			rc = moat_error_set(err, MOAT_EIO, NULL, "cannot set up the server's loops");
			goto fail;
		}
	}
	for (size_t i = 0; i < g->n_loops; i++) {
		if (pthread_create(&g->loops[i].th, NULL, loop_main, &g->loops[i]) != 0) {
			rc = moat_error_set(err, MOAT_ENOMEM, NULL,
					    "cannot start the server's threads");
			goto fail;
		}
		g->loops[i].started = true;
	}
	*out = g;
	return MOAT_OK;
fail:
	moat_gateway_stop(g);
	return rc;
}

void moat_gateway_detect_progress(moat_gateway_t *g, uint64_t judged, uint64_t replay_left,
				  uint64_t alerts, uint64_t actions, bool ok)
{
	if (ok) {
		atomic_store(&g->m.detect_judged, judged);
		atomic_store(&g->m.detect_replay, replay_left);
	} else
		atomic_fetch_add(&g->m.detect_failures, 1);
	atomic_fetch_add(&g->m.detect_alerts, alerts);
	atomic_fetch_add(&g->m.detect_actions, actions);
	atomic_store(&g->m.detect_on, true);
}

int moat_gateway_port(const moat_gateway_t *g)
{
	return g->port;
}

void moat_gateway_stop(moat_gateway_t *g)
{
	if (!g)
		return;
	/* Every loop stops accepting, answers the reads waiting on their ledger
	 * entries (always answered: the ledger completes them on success and
	 * failure alike), gives other in-flight requests up to 2 s, and leaves. */
	atomic_store(&g->stopping, true);
	if (g->stop_fd >= 0 && eventfd_write(g->stop_fd, 1) != 0)
		moat_log(MOAT_LOG_WARN, "gateway_stop", "cannot wake the server's loops");
	for (size_t i = 0; i < g->n_loops; i++) {
		gw_loop_t *w = &g->loops[i];
		if (w->started)
			pthread_join(w->th, NULL);
		if (w->d)
			MHD_stop_daemon(w->d);
		if (w->ep >= 0)
			close(w->ep);
		if (w->wake_fd >= 0)
			close(w->wake_fd);
		moat_opener_free(w->opener);
	}
	free(g->loops);
	if (g->listen_fd >= 0)
		close(g->listen_fd);
	if (g->stop_fd >= 0)
		close(g->stop_fd);
	for (size_t i = 0; i < g->pool.n; i++)
		moat_store_close(g->pool.all ? g->pool.all[i] : NULL);
	free(g->pool.all);
	free(g->pool.free);
	moat_policy_free(g->policy);
	pthread_rwlock_destroy(&g->policy_lock);
	pthread_mutex_destroy(&g->pool.mu);
	pthread_mutex_destroy(&g->throttle_mu);
	pthread_mutex_destroy(&g->write_mu);
	pthread_mutex_destroy(&g->trace_mu);
	pthread_cond_destroy(&g->pool.cv);
	free(g);
}
