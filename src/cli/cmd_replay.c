/*
 * moat replay DIR --url URL --data D: plays a simulated world (`moat simulate`)
 * through a running `moat serve --replay-clock`, so that every read goes through
 * authentication, policy, views, quotas, virtual numbers and the ledger, and the
 * detector judges first-hand events while the replay runs.
 *
 * Setup (the operator's side, allowed to use the data directory): the platform
 * party and one platform_service principal of the world are written to the store
 * directly and given an API key; every other record is ingested over HTTP
 * (POST /v1/parties|principals|relations|orders). Then every principal gets an API
 * key and every person who logs in a random password (held in memory only).
 *
 * Replay: events.jsonl (and calls.jsonl) merged by time become requests, each
 * carrying Moat-Replay-Time (the event's time), Moat-Replay-Client-IP and
 * Moat-Device. Several connections run in parallel; a principal's requests go
 * out one at a time in event order, and no request starts more than `window`
 * events ahead of the oldest unfinished one, so the detector's event-time
 * windows stay meaningful.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli/cli.h"
#include "moat/app.h"
#include "moat/crypto.h"
#include "moat/json.h"

#define MAX_EVENTS 4000000  /* timeline cap: ~100 bytes of memory each */
#define MAX_LINE (1u << 20) /* bytes per input line */
#define MAX_RESPONSE (32u << 20)
#define BATCH_RECORDS 1000     /* the gateway's ingest cap */
#define BATCH_BYTES (4u << 20) /* well under the default max_body of 8 MiB */
#define PAGE_LIMIT 100	       /* the list endpoint's page cap */

/* ---- the world ------------------------------------------------------------------- */

enum { EV_ACCESS, EV_LOGIN, EV_EXPORT, EV_CALL, EV_REPORT, EV_KINDS };
static const char *const ev_names[EV_KINDS] = {"access", "login", "export", "call", "report"};

typedef struct ev {
	moat_time_t time;
	uint32_t seq;	/* position in the merged input, for a stable sort */
	uint32_t actor; /* principal or username; calls: the binding's principal */
	uint8_t kind;
	uint8_t purpose;
	bool success;	/* login */
	uint32_t rows;	/* export: rows */
	char *order_id; /* access; export: the first order; call: the binding's order */
	char *ip;	/* access, login; call: the caller's number */
	char *device;	/* access, login */
	char *to;	/* call: the number the simulator dialled; report: the JSON line */
	char *merchant; /* export: the merchant listed */
} ev_t;

/* A principal or a username seen in the world. Its credentials live here, in
 * memory only. A principal's requests are never concurrent (the scheduler's
 * busy flag), so its fields need no lock of their own. */
typedef struct actor {
	char id[MOAT_ID_MAX + 1];
	char party[MOAT_ID_MAX + 1];
	int role;     /* moat_role_t, or -1: not a principal of the world */
	bool logs_in; /* a person with login events: gets a password */
	char key[72]; /* API key ("" until minted) */
	char password[40];
	char token[256]; /* latest session token */
	moat_time_t token_until;
	/* what the gateway did to it */
	uint64_t suspended_403;
	moat_time_t first_suspended; /* event time of the first 403 suspended */
	uint64_t wall_first_suspended_ms;
} actor_t;

typedef struct world {
	ev_t *ev;
	size_t n, cap;
	actor_t *actors;
	size_t n_actors, cap_actors;
	size_t *actor_slots; /* open addressing over actors, SIZE_MAX = empty */
	size_t n_slots;
	size_t op_actor; /* the platform_service principal used for setup and calls */
	char *platform_party_line, *op_actor_line;
	/* truth.json virtual_numbers: "digits#extension" -> "order\tprincipal" */
	json_t *truth_vnums;
	/* orders.jsonl: order id -> merchant */
	json_t *order_merchant;
} world_t;

static void world_free(world_t *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->ev[i].order_id);
		free(w->ev[i].ip);
		free(w->ev[i].device);
		free(w->ev[i].to);
		free(w->ev[i].merchant);
	}
	free(w->ev);
	if (w->actors)
		for (size_t i = 0; i < w->n_actors; i++) {
			memset(w->actors[i].key, 0, sizeof w->actors[i].key);
			memset(w->actors[i].password, 0, sizeof w->actors[i].password);
			memset(w->actors[i].token, 0, sizeof w->actors[i].token);
		}
	free(w->actors);
	free(w->actor_slots);
	free(w->platform_party_line);
	free(w->op_actor_line);
	json_decref(w->truth_vnums);
	json_decref(w->order_merchant);
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

/* The actor named id (created on first sight); SIZE_MAX when out of memory. */
static size_t actor_of(world_t *w, const char *id)
{
	if (w->n_actors * 2 >= w->n_slots) {
		size_t ns = w->n_slots ? w->n_slots * 2 : 1024;
		size_t *slots = malloc(ns * sizeof *slots);
		if (!slots)
			return SIZE_MAX;
		for (size_t i = 0; i < ns; i++)
			slots[i] = SIZE_MAX;
		for (size_t a = 0; a < w->n_actors; a++) {
			size_t i = hash_str(w->actors[a].id) & (ns - 1);
			while (slots[i] != SIZE_MAX)
				i = (i + 1) & (ns - 1);
			slots[i] = a;
		}
		free(w->actor_slots);
		w->actor_slots = slots;
		w->n_slots = ns;
	}
	size_t i = hash_str(id) & (w->n_slots - 1);
	while (w->actor_slots[i] != SIZE_MAX) {
		if (strcmp(w->actors[w->actor_slots[i]].id, id) == 0)
			return w->actor_slots[i];
		i = (i + 1) & (w->n_slots - 1);
	}
	if (w->n_actors == w->cap_actors) {
		size_t nc = w->cap_actors ? w->cap_actors * 2 : 256;
		actor_t *na = realloc(w->actors, nc * sizeof *na);
		if (!na)
			return SIZE_MAX;
		w->actors = na;
		w->cap_actors = nc;
	}
	actor_t *a = &w->actors[w->n_actors];
	memset(a, 0, sizeof *a);
	snprintf(a->id, sizeof a->id, "%s", id);
	a->role = -1;
	a->token_until = MOAT_TIME_NONE;
	a->first_suspended = MOAT_TIME_NONE;
	w->actor_slots[i] = w->n_actors;
	return w->n_actors++;
}

static ev_t *ev_push(world_t *w, moat_error_t *e)
{
	if (w->n == MAX_EVENTS) {
		moat_error_set(e, MOAT_ELIMIT, NULL,
			       "more than %d events; replay a smaller world (--scale small)",
			       MAX_EVENTS);
		return NULL;
	}
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 65536;
		ev_t *ne = realloc(w->ev, nc * sizeof *ne);
		if (!ne) {
			moat_error_set(e, MOAT_ENOMEM, NULL, "out of memory");
			return NULL;
		}
		w->ev = ne;
		w->cap = nc;
	}
	ev_t *x = &w->ev[w->n];
	memset(x, 0, sizeof *x);
	x->seq = (uint32_t)w->n++;
	return x;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Reads FILE line by line, calling fn(ctx, line, len, lineno) for each
 * non-empty line; stops at the first error. Missing optional files are fine. */
typedef moat_err_t (*line_fn)(void *ctx, char *line, size_t len, long lineno, moat_error_t *e);

static moat_err_t each_line(const char *dir, const char *name, bool required, line_fn fn, void *ctx,
			    moat_error_t *e)
{
	char path[1200];
	if (moat_path_join(path, sizeof path, dir, name) != MOAT_OK)
		return moat_error_set(e, MOAT_ELIMIT, NULL, "path too long");
	FILE *f = fopen(path, "r");
	if (!f) {
		if (!required)
			return MOAT_OK;
		return moat_error_set(e, MOAT_ENOTFOUND, NULL,
				      "%s: cannot open (%s); DIR must be the output of `moat "
				      "simulate --out DIR`",
				      path, strerror(errno));
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	moat_err_t rc = MOAT_OK;
	while ((n = getline(&line, &cap, f)) > 0) {
		lineno++;
		if ((size_t)n > MAX_LINE) {
			rc = moat_error_set(e, MOAT_ELIMIT, NULL,
					    "%s line %ld: longer than %u bytes", name, lineno,
					    MAX_LINE);
			break;
		}
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (!n)
			continue;
		if ((rc = fn(ctx, line, (size_t)n, lineno, e)) != MOAT_OK) {
			if (e && e->line == 0) {
				char msg[sizeof e->msg];
				snprintf(msg, sizeof msg, "%s", e->msg);
				snprintf(e->msg, sizeof e->msg, "%.40s line %ld: %.200s", name,
					 lineno, msg);
			}
			break;
		}
	}
	free(line);
	fclose(f);
	return rc;
}

static moat_err_t parse_obj(const char *line, size_t len, json_t **out, moat_error_t *e)
{
	return moat_json_parse(line, len, MOAT_JSON_MAX_DEPTH, out, e);
}

static const char *str_of(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static moat_err_t time_of(json_t *o, const char *k, moat_time_t *t, moat_error_t *e)
{
	const char *s = str_of(o, k);
	if (!s || !moat_time_parse(s, t))
		return moat_error_set(e, MOAT_EINVAL, k, "\"%s\" must be an RFC 3339 time", k);
	return MOAT_OK;
}

/* principals.jsonl: roles and parties; the first platform_service principal is
 * the operator. */
static moat_err_t load_principal(void *ctx, char *line, size_t len, long lineno, moat_error_t *e)
{
	world_t *w = ctx;
	json_t *o;
	moat_err_t rc = parse_obj(line, len, &o, e);
	if (rc != MOAT_OK)
		return rc;
	const char *id = str_of(o, "principal"), *party = str_of(o, "party"),
		   *role = str_of(o, "role");
	int r = role ? moat_role_parse(role) : -1;
	if (!id || !moat_id_valid(id) || !party || r < 0) {
		json_decref(o);
		return moat_error_set(e, MOAT_EINVAL, "principal",
				      "needs a valid principal, party and role");
	}
	size_t a = actor_of(w, id);
	if (a == SIZE_MAX) {
		json_decref(o);
		return moat_error_set(e, MOAT_ENOMEM, NULL, "out of memory");
	}
	w->actors[a].role = r;
	snprintf(w->actors[a].party, sizeof w->actors[a].party, "%s", party);
	if (r == MOAT_ROLE_PLATFORM_SERVICE && w->op_actor == SIZE_MAX) {
		w->op_actor = a;
		w->op_actor_line = strdup(line);
	}
	json_decref(o);
	(void)lineno;
	return MOAT_OK;
}

static moat_err_t load_party(void *ctx, char *line, size_t len, long lineno, moat_error_t *e)
{
	world_t *w = ctx;
	json_t *o;
	moat_err_t rc = parse_obj(line, len, &o, e);
	if (rc != MOAT_OK)
		return rc;
	const char *kind = str_of(o, "kind");
	if (kind && strcmp(kind, "platform") == 0 && !w->platform_party_line)
		w->platform_party_line = strdup(line);
	json_decref(o);
	(void)lineno;
	return MOAT_OK;
}

static moat_err_t load_event(void *ctx, char *line, size_t len, long lineno, moat_error_t *e)
{
	world_t *w = ctx;
	json_t *o;
	moat_err_t rc = parse_obj(line, len, &o, e);
	if (rc != MOAT_OK)
		return rc;
	ev_t *x = NULL;
	const char *kind = str_of(o, "kind");
	const char *who = NULL;
	if (!kind) {
		rc = moat_error_set(e, MOAT_EINVAL, "kind", "missing kind");
		goto done;
	}
	if (!(x = ev_push(w, e))) {
		rc = e->code;
		goto done;
	}
	if ((rc = time_of(o, "time", &x->time, e)) != MOAT_OK)
		goto done;
	x->ip = dup_or_null(str_of(o, "ip"));
	x->device = dup_or_null(str_of(o, "device"));
	if (strcmp(kind, "access") == 0 || strcmp(kind, "export") == 0) {
		x->kind = strcmp(kind, "access") == 0 ? EV_ACCESS : EV_EXPORT;
		who = str_of(o, "principal");
		const char *ps = str_of(o, "purpose");
		int p = ps ? moat_purpose_parse(ps) : -1;
		if (p < 0) {
			rc = moat_error_set(e, MOAT_EINVAL, "purpose", "unknown purpose");
			goto done;
		}
		x->purpose = (uint8_t)p;
		const char *oid = str_of(o, "order_id");
		json_t *ids = json_object_get(o, "order_ids");
		if (x->kind == EV_EXPORT) {
			json_int_t rows = json_integer_value(json_object_get(o, "rows"));
			x->rows = rows > 0 && rows < UINT32_MAX ? (uint32_t)rows : 0;
			if (json_array_size(ids))
				oid = json_string_value(json_array_get(ids, 0));
			const char *m =
			    oid ? json_string_value(json_object_get(w->order_merchant, oid)) : NULL;
			x->merchant = dup_or_null(m);
		}
		if (x->kind == EV_ACCESS && (!oid || !moat_id_valid(oid))) {
			rc = moat_error_set(e, MOAT_EINVAL, "order_id",
					    "missing or invalid order_id");
			goto done;
		}
		x->order_id = dup_or_null(oid);
	} else if (strcmp(kind, "login") == 0) {
		x->kind = EV_LOGIN;
		who = str_of(o, "username");
		const char *res = str_of(o, "result");
		x->success = res && strcmp(res, "success") == 0;
	} else {
		rc = moat_error_set(e, MOAT_EINVAL, "kind", "unknown event kind \"%.40s\"", kind);
		goto done;
	}
	if (!who || !moat_id_valid(who)) {
		rc = moat_error_set(e, MOAT_EINVAL, x->kind == EV_LOGIN ? "username" : "principal",
				    "missing or invalid");
		goto done;
	}
	size_t a = actor_of(w, who);
	if (a == SIZE_MAX) {
		rc = moat_error_set(e, MOAT_ENOMEM, NULL, "out of memory");
		goto done;
	}
	x->actor = (uint32_t)a;
	if (x->kind == EV_LOGIN && w->actors[a].role >= 0)
		w->actors[a].logs_in = true;
done:
	json_decref(o);
	(void)lineno;
	return rc;
}

/* Digits of a phone number, without a leading 86 country code. */
static void digits_of(const char *in, char out[24])
{
	size_t n = 0;
	for (const char *p = in; *p && n < 20; p++)
		if (*p >= '0' && *p <= '9')
			out[n++] = *p;
	out[n] = '\0';
	if (n == 13 && out[0] == '8' && out[1] == '6')
		memmove(out, out + 2, 12);
}

static moat_err_t load_call(void *ctx, char *line, size_t len, long lineno, moat_error_t *e)
{
	world_t *w = ctx;
	json_t *o;
	moat_err_t rc = parse_obj(line, len, &o, e);
	if (rc != MOAT_OK)
		return rc;
	ev_t *x = ev_push(w, e);
	const char *from = str_of(o, "from"), *to = str_of(o, "to"), *ext = str_of(o, "extension");
	if (!x) {
		rc = e->code;
		goto done;
	}
	x->kind = EV_CALL;
	if ((rc = time_of(o, "time", &x->time, e)) != MOAT_OK)
		goto done;
	if (!from || !to) {
		rc = moat_error_set(e, MOAT_EINVAL, "to", "a call needs from and to");
		goto done;
	}
	x->ip = strdup(from);
	x->to = strdup(to);
	/* Which (order, principal) the simulator meant: the gateway's own number for
	 * that pair is looked up when the call is made. */
	char d[24], k[48];
	digits_of(to, d);
	snprintf(k, sizeof k, "%s#%s", d, ext ? ext : "");
	const char *bind = json_string_value(json_object_get(w->truth_vnums, k));
	const char *tab = bind ? strchr(bind, '\t') : NULL;
	size_t a = actor_of(w, tab ? tab + 1 : "telephony");
	if (a == SIZE_MAX) {
		rc = moat_error_set(e, MOAT_ENOMEM, NULL, "out of memory");
		goto done;
	}
	x->actor = (uint32_t)a;
	if (tab)
		x->order_id = strndup(bind, (size_t)(tab - bind));
done:
	json_decref(o);
	(void)lineno;
	return rc;
}

static moat_err_t load_report(void *ctx, char *line, size_t len, long lineno, moat_error_t *e)
{
	world_t *w = ctx;
	json_t *o;
	moat_err_t rc = parse_obj(line, len, &o, e);
	if (rc != MOAT_OK)
		return rc;
	ev_t *x = ev_push(w, e);
	if (!x) {
		rc = e->code;
		goto done;
	}
	x->kind = EV_REPORT;
	if ((rc = time_of(o, "contact_time", &x->time, e)) != MOAT_OK)
		goto done;
	x->to = strdup(line);
	size_t a = actor_of(w, "reports");
	if (a == SIZE_MAX) {
		rc = moat_error_set(e, MOAT_ENOMEM, NULL, "out of memory");
		goto done;
	}
	x->actor = (uint32_t)a;
done:
	json_decref(o);
	(void)lineno;
	return rc;
}

static moat_err_t load_order_merchant(void *ctx, char *line, size_t len, long lineno,
				      moat_error_t *e)
{
	world_t *w = ctx;
	json_t *o;
	moat_err_t rc = parse_obj(line, len, &o, e);
	if (rc != MOAT_OK)
		return rc;
	const char *id = str_of(o, "order_id"), *m = str_of(o, "merchant");
	if (id && m)
		json_object_set_new(w->order_merchant, id, json_string(m));
	json_decref(o);
	(void)lineno;
	return MOAT_OK;
}

static moat_err_t load_truth(world_t *w, const char *dir, moat_error_t *e)
{
	char path[1200];
	if (moat_path_join(path, sizeof path, dir, "truth.json") != MOAT_OK)
		return moat_error_set(e, MOAT_ELIMIT, NULL, "path too long");
	struct stat st;
	if (stat(path, &st) != 0)
		return MOAT_OK; /* calls then go out with the simulator's numbers */
	json_error_t je;
	json_t *t = json_load_file(path, 0, &je);
	if (!t)
		return moat_error_set(e, MOAT_EINVAL, NULL, "truth.json line %d: %s", je.line,
				      je.text);
	json_t *vn = json_object_get(t, "virtual_numbers"), *v;
	size_t i;
	json_array_foreach(vn, i, v)
	{
		const char *num = str_of(v, "number"), *ext = str_of(v, "extension"),
			   *oid = str_of(v, "order_id"), *p = str_of(v, "principal");
		if (!num || !oid || !p)
			continue;
		char d[24], k[48], val[2 * MOAT_ID_MAX + 2];
		digits_of(num, d);
		snprintf(k, sizeof k, "%s#%s", d, ext ? ext : "");
		snprintf(val, sizeof val, "%s\t%s", oid, p);
		json_object_set_new(w->truth_vnums, k, json_string(val));
	}
	json_decref(t);
	return MOAT_OK;
}

static int ev_cmp(const void *a, const void *b)
{
	const ev_t *x = a, *y = b;
	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

/* ---- HTTP ------------------------------------------------------------------------ */

typedef struct http {
	CURL *curl;
	moat_buf_t body;
	char base[512];
	char errbuf[CURL_ERROR_SIZE];
} http_t;

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
	http_t *h = ctx;
	return moat_buf_append(&h->body, p, size * n) == MOAT_OK ? size * n : 0;
}

static bool http_init(http_t *h, const char *base)
{
	memset(h, 0, sizeof *h);
	snprintf(h->base, sizeof h->base, "%s", base);
	moat_buf_init(&h->body, MAX_RESPONSE);
	h->curl = curl_easy_init();
	return h->curl != NULL;
}

static void http_free(http_t *h)
{
	if (h->curl)
		curl_easy_cleanup(h->curl);
	moat_buf_free(&h->body);
}

/* One request; returns the HTTP status, or 0 on a transport error (h->errbuf).
 * The body is in h->body. Headers: "Name: value" strings, NULL-terminated. */
static long http_do(http_t *h, const char *method, const char *path, const char *const *headers,
		    const char *body, const char *content_type)
{
	char url[2048];
	snprintf(url, sizeof url, "%s%s", h->base, path);
	struct curl_slist *hl = NULL;
	char ct[80];
	for (size_t i = 0; headers && headers[i]; i++)
		hl = curl_slist_append(hl, headers[i]);
	if (body) {
		snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
		hl = curl_slist_append(hl, ct);
		hl = curl_slist_append(hl, "Expect:");
	}
	moat_buf_reset(&h->body);
	h->errbuf[0] = '\0';
	CURL *c = h->curl;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	} else {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	}
	(void)method;
	CURLcode rc = curl_easy_perform(c);
	curl_slist_free_all(hl);
	if (rc != CURLE_OK) {
		if (!h->errbuf[0])
			snprintf(h->errbuf, sizeof h->errbuf, "%s", curl_easy_strerror(rc));
		return 0;
	}
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

/* The error code of a moat error body, or "". */
static void error_code(const moat_buf_t *b, char out[40])
{
	out[0] = '\0';
	json_t *o = json_loadb(b->data ? b->data : "", b->len, 0, NULL);
	const char *c = json_string_value(json_object_get(json_object_get(o, "error"), "code"));
	if (c)
		snprintf(out, 40, "%s", c);
	json_decref(o);
}

/* ---- statistics ------------------------------------------------------------------ */

typedef struct stats {
	uint64_t events[EV_KINDS];
	uint64_t requests[EV_KINDS]; /* export: pages */
	uint64_t status[600];	     /* [0]: transport errors */
	uint64_t views[MOAT_FIELD_COUNT][MOAT_VIEW_COUNT];
	uint64_t orders_served, export_rows, denied, quota, throttled, suspended;
	uint64_t denied_role[MOAT_ROLE_COUNT + 1]; /* [MOAT_ROLE_COUNT]: not a principal */
	uint64_t logins_ok, logins_refused;
	uint64_t reads_session, reads_key;
	uint64_t calls_relay, calls_expired, calls_unknown, calls_unbound;
	uint64_t other_errors;
	char first_error[300];
} stats_t;

static void stats_add(stats_t *to, const stats_t *s)
{
	for (int k = 0; k < EV_KINDS; k++) {
		to->events[k] += s->events[k];
		to->requests[k] += s->requests[k];
	}
	for (int i = 0; i < 600; i++)
		to->status[i] += s->status[i];
	for (int f = 0; f < MOAT_FIELD_COUNT; f++)
		for (int v = 0; v < MOAT_VIEW_COUNT; v++)
			to->views[f][v] += s->views[f][v];
	to->orders_served += s->orders_served;
	to->export_rows += s->export_rows;
	to->denied += s->denied;
	for (int i = 0; i <= MOAT_ROLE_COUNT; i++)
		to->denied_role[i] += s->denied_role[i];
	to->quota += s->quota;
	to->throttled += s->throttled;
	to->suspended += s->suspended;
	to->logins_ok += s->logins_ok;
	to->logins_refused += s->logins_refused;
	to->reads_session += s->reads_session;
	to->reads_key += s->reads_key;
	to->calls_relay += s->calls_relay;
	to->calls_expired += s->calls_expired;
	to->calls_unknown += s->calls_unknown;
	to->calls_unbound += s->calls_unbound;
	to->other_errors += s->other_errors;
	if (!to->first_error[0] && s->first_error[0])
		snprintf(to->first_error, sizeof to->first_error, "%s", s->first_error);
}

static void count_denied(stats_t *s, const actor_t *a, uint64_t n)
{
	s->denied += n;
	s->denied_role[a->role >= 0 && a->role < MOAT_ROLE_COUNT ? a->role : MOAT_ROLE_COUNT] += n;
}

static void count_status(stats_t *s, long st)
{
	s->status[st >= 0 && st < 600 ? st : 0]++;
}

/* ---- the replay ------------------------------------------------------------------ */

enum { PENDING = 0, RUNNING, DONE };

typedef struct replay {
	world_t *w;
	const char *url;
	int concurrency;
	size_t window;
	double speed; /* world seconds per wall second; 0 = as fast as possible */
	uint32_t export_cap;
	bool post_reports;
	/* scheduler, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *state;
	bool *busy;	/* per actor: a request in flight */
	uint32_t *seen; /* per actor: scan generation */
	uint32_t gen;
	size_t lo, scan; /* oldest unfinished, oldest not started */
	bool fatal;
	char fatal_msg[400];
	uint64_t wall0_ns;
	/* gateway numbers issued: "order\tprincipal" -> number, under vmu */
	pthread_mutex_t vmu;
	json_t *vnums;
	stats_t total; /* merged under mu */
} replay_t;

/* The next event this worker may send, or SIZE_MAX when nothing is left. */
static size_t next_event(replay_t *r)
{
	world_t *w = r->w;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		if (r->fatal)
			break;
		while (r->scan < w->n && r->state[r->scan] != PENDING)
			r->scan++;
		if (r->scan >= w->n)
			break;
		size_t limit = r->lo + r->window < w->n ? r->lo + r->window : w->n;
		size_t found = SIZE_MAX;
		r->gen++;
		for (size_t i = r->scan; i < limit; i++) {
			if (r->state[i] != PENDING)
				continue;
			uint32_t a = w->ev[i].actor;
			/* an actor's earlier event still waits or runs: keep its order */
			if (r->busy[a] || r->seen[a] == r->gen) {
				r->seen[a] = r->gen;
				continue;
			}
			found = i;
			break;
		}
		if (found != SIZE_MAX && r->speed > 0) {
			double due_ns =
			    (double)(w->ev[found].time - w->ev[0].time) / r->speed * 1e6;
			double now_ns = (double)(moat_mono_ns() - r->wall0_ns);
			if (now_ns < due_ns) {
				double wait = due_ns - now_ns;
				if (wait > 20e6)
					wait = 20e6;
				pthread_mutex_unlock(&r->mu);
				struct timespec ts = {0, (long)wait};
				nanosleep(&ts, NULL);
				pthread_mutex_lock(&r->mu);
				continue;
			}
		}
		if (found != SIZE_MAX) {
			r->state[found] = RUNNING;
			r->busy[w->ev[found].actor] = true;
			pthread_mutex_unlock(&r->mu);
			return found;
		}
		pthread_cond_wait(&r->cv, &r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return SIZE_MAX;
}

static void event_done(replay_t *r, size_t i)
{
	pthread_mutex_lock(&r->mu);
	r->state[i] = DONE;
	r->busy[r->w->ev[i].actor] = false;
	while (r->lo < r->w->n && r->state[r->lo] == DONE)
		r->lo++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void set_fatal(replay_t *r, const char *msg)
{
	pthread_mutex_lock(&r->mu);
	if (!r->fatal)
		snprintf(r->fatal_msg, sizeof r->fatal_msg, "%s", msg);
	r->fatal = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Counts the views of one served order and remembers a virtual number. */
static void served(replay_t *r, stats_t *s, json_t *order, const char *principal)
{
	json_t *views = json_object_get(order, "views");
	s->orders_served++;
	for (int f = 0; f < MOAT_FIELD_COUNT; f++) {
		const char *v = str_of(views, moat_field_name((moat_field_t)f));
		int vi = v ? moat_view_parse(v) : -1;
		if (vi > 0 && vi < MOAT_VIEW_COUNT)
			s->views[f][vi]++;
	}
	const char *pv = str_of(views, "phone");
	const char *num = str_of(json_object_get(order, "buyer"), "phone");
	const char *oid = str_of(order, "order_id");
	if (pv && strcmp(pv, "virtual") == 0 && num && oid) {
		char k[2 * MOAT_ID_MAX + 2];
		snprintf(k, sizeof k, "%s\t%s", oid, principal);
		pthread_mutex_lock(&r->vmu);
		json_object_set_new(r->vnums, k, json_string(num));
		pthread_mutex_unlock(&r->vmu);
	}
}

/* Books a refusal by its error code. */
static void refused(replay_t *r, stats_t *s, http_t *h, long st, actor_t *a, moat_time_t t)
{
	char code[40];
	error_code(&h->body, code);
	if (st == 403 && strcmp(code, "suspended") == 0) {
		s->suspended++;
		pthread_mutex_lock(&r->mu);
		if (a->suspended_403++ == 0) {
			a->first_suspended = t;
			a->wall_first_suspended_ms = (moat_mono_ns() - r->wall0_ns) / 1000000;
		}
		pthread_mutex_unlock(&r->mu);
	} else if (st == 403 && strcmp(code, "denied") == 0) {
		count_denied(s, a, 1);
	} else if (st == 429 && strcmp(code, "quota_exceeded") == 0) {
		s->quota++;
	} else if (st == 429) {
		s->throttled++;
	} else if (st != 401) {
		s->other_errors++;
		if (!s->first_error[0])
			snprintf(s->first_error, sizeof s->first_error, "HTTP %ld %s: %.200s", st,
				 code, h->body.data ? h->body.data : "");
	}
}

static void play(replay_t *r, http_t *h, stats_t *s, const ev_t *x)
{
	world_t *w = r->w;
	actor_t *a = &w->actors[x->actor];
	actor_t *op = &w->actors[w->op_actor];
	char when[32], hdr_time[64], hdr_ip[128], hdr_dev[128], hdr_auth[300];
	moat_time_format(x->time, when);
	snprintf(hdr_time, sizeof hdr_time, "Moat-Replay-Time: %s", when);
	const char *hs[6];
	size_t nh = 0;
	hs[nh++] = hdr_time;
	if (x->ip && x->kind != EV_CALL) {
		snprintf(hdr_ip, sizeof hdr_ip, "Moat-Replay-Client-IP: %.64s", x->ip);
		hs[nh++] = hdr_ip;
	}
	if (x->device && moat_id_valid(x->device)) {
		snprintf(hdr_dev, sizeof hdr_dev, "Moat-Device: %s", x->device);
		hs[nh++] = hdr_dev;
	}
	s->events[x->kind]++;
	long st;
	if (x->kind == EV_LOGIN) {
		char body[256], pw[40];
		if (x->success && a->password[0]) {
			snprintf(pw, sizeof pw, "%s", a->password);
		} else {
			/* a wrong password: the world's attacker does not know it */
			uint8_t rnd[8];
			if (moat_random(rnd, sizeof rnd) != MOAT_OK)
				memset(rnd, 7, sizeof rnd);
			moat_hex_encode(rnd, sizeof rnd, pw);
			memcpy(pw, "wrong-", 6);
		}
		snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"%s\"}", a->id, pw);
		hs[nh] = NULL;
		s->requests[EV_LOGIN]++;
		st = http_do(h, "POST", "/v1/sessions", hs, body, "application/json");
		memset(body, 0, sizeof body);
		memset(pw, 0, sizeof pw);
		count_status(s, st);
		if (st == 201) {
			s->logins_ok++;
			json_t *o = json_loadb(h->body.data, h->body.len, 0, NULL);
			const char *tok = str_of(o, "token"), *until = str_of(o, "expires_at");
			moat_time_t u;
			if (tok && until && moat_time_parse(until, &u) &&
			    strlen(tok) < sizeof a->token) {
				snprintf(a->token, sizeof a->token, "%s", tok);
				a->token_until = u;
			}
			json_decref(o);
		} else if (st == 401) {
			s->logins_refused++;
		} else if (st) {
			refused(r, s, h, st, a, x->time);
		}
	} else if (x->kind == EV_ACCESS || x->kind == EV_EXPORT) {
		/* A person reads with the session of its latest login while that is
		 * valid at the event's time, else (and an app always) with its key. */
		bool session = a->token[0] && a->token_until != MOAT_TIME_NONE &&
			       x->time + 1000 < a->token_until;
		snprintf(hdr_auth, sizeof hdr_auth, "Authorization: Bearer %s",
			 session ? a->token : a->key);
		hs[nh++] = hdr_auth;
		hs[nh] = NULL;
		const char *purpose = moat_purpose_name((moat_purpose_t)x->purpose);
		if (x->kind == EV_ACCESS) {
			char path[256];
			snprintf(path, sizeof path, "/v1/orders/%s?purpose=%s", x->order_id,
				 purpose);
			s->requests[EV_ACCESS]++;
			*(session ? &s->reads_session : &s->reads_key) += 1;
			st = http_do(h, "GET", path, hs, NULL, NULL);
			count_status(s, st);
			if (st == 200) {
				json_t *o = json_loadb(h->body.data, h->body.len, 0, NULL);
				served(r, s, o, a->id);
				json_decref(o);
			} else if (st) {
				refused(r, s, h, st, a, x->time);
			}
		} else {
			uint32_t want = x->rows < r->export_cap ? x->rows : r->export_cap;
			char cursor[MOAT_ID_MAX + 1] = "";
			uint32_t got = 0;
			while (got < want && x->merchant) {
				char path[400];
				uint32_t lim = want - got < PAGE_LIMIT ? want - got : PAGE_LIMIT;
				int n = snprintf(path, sizeof path,
						 "/v1/orders?merchant=%s&purpose=%s&limit=%u",
						 x->merchant, purpose, lim);
				if (cursor[0])
					snprintf(path + n, sizeof path - (size_t)n, "&cursor=%s",
						 cursor);
				s->requests[EV_EXPORT]++;
				*(session ? &s->reads_session : &s->reads_key) += 1;
				st = http_do(h, "GET", path, hs, NULL, NULL);
				count_status(s, st);
				if (st != 200) {
					if (st)
						refused(r, s, h, st, a, x->time);
					break;
				}
				json_t *o = json_loadb(h->body.data, h->body.len, 0, NULL);
				json_t *orders = json_object_get(o, "orders"), *it;
				size_t i;
				json_array_foreach(orders, i, it)
				{
					served(r, s, it, a->id);
					s->export_rows++;
				}
				count_denied(s, a, json_array_size(json_object_get(o, "denied")));
				const char *next = str_of(o, "next_cursor");
				uint32_t page =
				    (uint32_t)json_array_size(orders) +
				    (uint32_t)json_array_size(json_object_get(o, "denied"));
				got += page ? page : lim;
				bool more = next && moat_id_valid(next) && page > 0;
				if (more)
					snprintf(cursor, sizeof cursor, "%s", next);
				json_decref(o);
				if (!more)
					break;
			}
		}
	} else if (x->kind == EV_CALL) {
		/* The telephony side dials the number the gateway issued to the
		 * simulator's (order, principal); without one, the simulator's own. */
		char num[64] = "";
		if (x->order_id) {
			char k[2 * MOAT_ID_MAX + 2];
			snprintf(k, sizeof k, "%s\t%s", x->order_id, a->id);
			pthread_mutex_lock(&r->vmu);
			const char *g = json_string_value(json_object_get(r->vnums, k));
			if (g)
				snprintf(num, sizeof num, "%s", g);
			pthread_mutex_unlock(&r->vmu);
		}
		if (!num[0]) {
			s->calls_unbound++;
			snprintf(num, sizeof num, "%s", x->to);
		}
		json_t *body = json_pack("{s:s,s:s,s:s}", "time", when, "from", x->ip, "to", num);
		char *bs = body ? json_dumps(body, JSON_COMPACT) : NULL;
		snprintf(hdr_auth, sizeof hdr_auth, "Authorization: Bearer %s", op->key);
		hs[nh++] = hdr_auth;
		hs[nh] = NULL;
		s->requests[EV_CALL]++;
		st = bs ? http_do(h, "POST", "/v1/calls", hs, bs, "application/json") : 0;
		count_status(s, st);
		if (st == 200) {
			json_t *o = json_loadb(h->body.data, h->body.len, 0, NULL);
			const char *act = str_of(o, "action"), *why = str_of(o, "reason");
			if (act && strcmp(act, "relay") == 0)
				s->calls_relay++;
			else if (why && strcmp(why, "expired") == 0)
				s->calls_expired++;
			else
				s->calls_unknown++;
			json_decref(o);
		} else if (st) {
			refused(r, s, h, st, a, x->time);
		}
		free(bs);
		json_decref(body);
	} else if (x->kind == EV_REPORT) {
		snprintf(hdr_auth, sizeof hdr_auth, "Authorization: Bearer %s", op->key);
		hs[nh++] = hdr_auth;
		hs[nh] = NULL;
		s->requests[EV_REPORT]++;
		st = http_do(h, "POST", "/v1/reports", hs, x->to, "application/json");
		count_status(s, st);
		if (st && st >= 300)
			refused(r, s, h, st, a, x->time);
	} else {
		st = 0;
	}
	if (st == 0) {
		/* The server went away: stop rather than count thousands of failures. */
		char msg[400];
		snprintf(msg, sizeof msg, "lost the server at %.200s: %.150s", r->url, h->errbuf);
		set_fatal(r, msg);
	}
}

typedef struct worker {
	replay_t *r;
	pthread_t th;
	http_t h;
	stats_t s;
} worker_t;

static void *worker_main(void *arg)
{
	worker_t *k = arg;
	size_t i;
	while ((i = next_event(k->r)) != SIZE_MAX) {
		play(k->r, &k->h, &k->s, &k->r->w->ev[i]);
		event_done(k->r, i);
	}
	return NULL;
}

/* ---- setup ----------------------------------------------------------------------- */

typedef struct batch {
	http_t *h;
	const char *path;
	const char *auth;
	moat_buf_t buf;
	size_t n;
	size_t records, requests;
	char err[400];
} batch_t;

static moat_err_t batch_flush(batch_t *b, moat_error_t *e)
{
	if (!b->n)
		return MOAT_OK;
	const char *hs[] = {b->auth, NULL};
	long st = http_do(b->h, "POST", b->path, hs, b->buf.data, "application/x-ndjson");
	b->requests++;
	if (st == 0)
		return moat_error_set(e, MOAT_EUNAVAIL, NULL, "POST %s: %s", b->path, b->h->errbuf);
	if (st == 401)
		return moat_error_set(e, MOAT_EDENIED, NULL,
				      "POST %s: 401: the server does not know the key just minted "
				      "in --data; does it serve that data directory?",
				      b->path);
	if (st != 200 && st != 201)
		return moat_error_set(e, MOAT_EINVAL, NULL, "POST %s: HTTP %ld: %.300s", b->path,
				      st, b->h->body.data ? b->h->body.data : "");
	b->records += b->n;
	b->n = 0;
	moat_buf_reset(&b->buf);
	return MOAT_OK;
}

static moat_err_t batch_line(void *ctx, char *line, size_t len, long lineno, moat_error_t *e)
{
	batch_t *b = ctx;
	(void)lineno;
	if (b->n && (b->n == BATCH_RECORDS || b->buf.len + len + 1 > BATCH_BYTES)) {
		moat_err_t rc = batch_flush(b, e);
		if (rc != MOAT_OK)
			return rc;
	}
	if (moat_buf_append(&b->buf, line, len) != MOAT_OK ||
	    moat_buf_putc(&b->buf, '\n') != MOAT_OK)
		return moat_error_set(e, MOAT_ELIMIT, NULL, "record too large");
	b->n++;
	return MOAT_OK;
}

/* POSTs DIR/name to path in batches; *records = records sent. */
static moat_err_t ingest(http_t *h, const char *dir, const char *name, const char *path,
			 const char *auth, size_t *records, size_t *requests, moat_error_t *e)
{
	batch_t b = {.h = h, .path = path, .auth = auth};
	moat_buf_init(&b.buf, BATCH_BYTES + MAX_LINE + 2);
	moat_err_t rc = each_line(dir, name, true, batch_line, &b, e);
	if (rc == MOAT_OK)
		rc = batch_flush(&b, e);
	moat_buf_free(&b.buf);
	*records = b.records;
	*requests += b.requests;
	return rc;
}

/* The platform party and the operator principal, written to the store directly
 * (nobody can POST before a platform_service principal exists), and its key. */
static moat_err_t bootstrap(moat_app_t *app, world_t *w, moat_error_t *e)
{
	moat_arena_t *arena = moat_arena_new(16384);
	if (!arena)
		return moat_error_set(e, MOAT_ENOMEM, NULL, "out of memory");
	moat_err_t rc = moat_store_begin(app->store, e);
	const char *lines[2] = {w->platform_party_line, w->op_actor_line};
	const moat_import_kind_t kinds[2] = {MOAT_IMPORT_PARTIES, MOAT_IMPORT_PRINCIPALS};
	for (int i = 0; i < 2 && rc == MOAT_OK; i++) {
		json_t *o = NULL;
		rc = parse_obj(lines[i], strlen(lines[i]), &o, e);
		if (rc == MOAT_OK)
			rc = moat_app_import_one(app, kinds[i], o, arena, e);
		json_decref(o);
	}
	if (rc == MOAT_OK)
		rc = cli_principal_new_key(app->store, w->actors[w->op_actor].id,
					   w->actors[w->op_actor].key, e);
	if (rc == MOAT_OK)
		rc = moat_store_commit(app->store, e);
	else
		moat_store_rollback(app->store);
	moat_arena_free(arena);
	return rc;
}

/* API keys for every principal, random passwords for every person who logs in. */
static moat_err_t credentials(moat_app_t *app, world_t *w, size_t *keys, size_t *passwords,
			      moat_error_t *e)
{
	moat_err_t rc = moat_store_begin(app->store, e);
	for (size_t i = 0; i < w->n_actors && rc == MOAT_OK; i++) {
		actor_t *a = &w->actors[i];
		if (a->role < 0 || i == w->op_actor)
			continue;
		rc = cli_principal_new_key(app->store, a->id, a->key, e);
		(*keys)++;
		if (rc != MOAT_OK || !a->logs_in)
			continue;
		uint8_t rnd[16];
		char phc[MOAT_PHC_MAX];
		if ((rc = moat_random(rnd, sizeof rnd)) != MOAT_OK) {
			moat_error_set(e, rc, NULL, "no randomness available");
			break;
		}
		moat_hex_encode(rnd, sizeof rnd, a->password);
		memset(rnd, 0, sizeof rnd);
		rc = moat_password_hash_secret(a->password, phc, e);
		if (rc == MOAT_OK)
			rc = moat_store_principal_set_password(app->store, a->id, phc, e);
		(*passwords)++;
	}
	if (rc == MOAT_OK)
		rc = moat_store_commit(app->store, e);
	else
		moat_store_rollback(app->store);
	return rc;
}

/* Under --replay-clock the server counts requests that carried Moat-Replay-Time
 * (moat_replayed_requests_total); without it the header is ignored, and a replay
 * would be judged at today's date. */
static bool replay_clock_on(http_t *h)
{
	const char *hs[] = {"Moat-Replay-Time: 2026-09-01T00:00:00+08:00", NULL};
	if (http_do(h, "GET", "/v1/alerts", hs, NULL, NULL) == 0)
		return false;
	if (http_do(h, "GET", "/metrics", NULL, NULL, NULL) != 200 || !h->body.data)
		return false;
	const char *m = strstr(h->body.data, "\nmoat_replayed_requests_total ");
	return m && strtoull(m + 30, NULL, 10) > 0;
}

/* ---- output ---------------------------------------------------------------------- */

static void print_summary(const replay_t *r, const stats_t *s, double secs, size_t setup_req,
			  size_t keys, size_t passwords, bool reports_posted, const char *dir,
			  const char *data, bool json)
{
	world_t *w = r->w;
	uint64_t total = 0;
	for (int k = 0; k < EV_KINDS; k++)
		total += s->requests[k];
	double rps = secs > 0 ? (double)total / secs : 0;
	if (json) {
		json_t *us = json_string(r->url);
		char *url_json = us ? json_dumps(us, JSON_ENCODE_ANY) : NULL;
		json_decref(us);
		if (!url_json)
			url_json = strdup("null");
		printf("{\"url\":%s,\"seconds\":%.3f,\"requests\":%" PRIu64
		       ",\"requests_per_second\":%.1f,\"concurrency\":%d,\"setup_requests\":%zu,"
		       "\"api_keys\":%zu,\"passwords\":%zu,\"events\":{",
		       url_json, secs, total, rps, r->concurrency, setup_req, keys, passwords);
		for (int k = 0; k < EV_KINDS; k++)
			printf("%s\"%s\":%" PRIu64, k ? "," : "", ev_names[k], s->events[k]);
		printf("},\"requests_by_kind\":{");
		for (int k = 0; k < EV_KINDS; k++)
			printf("%s\"%s\":%" PRIu64, k ? "," : "", ev_names[k], s->requests[k]);
		printf("},\"status\":{");
		bool first = true;
		for (int i = 0; i < 600; i++)
			if (s->status[i]) {
				if (i)
					printf("%s\"%d\":%" PRIu64, first ? "" : ",", i,
					       s->status[i]);
				else
					printf("%s\"error\":%" PRIu64, first ? "" : ",",
					       s->status[i]);
				first = false;
			}
		printf("},\"orders_served\":%" PRIu64 ",\"export_rows\":%" PRIu64 ",\"views\":{",
		       s->orders_served, s->export_rows);
		for (int f = 0; f < MOAT_FIELD_COUNT; f++) {
			printf("%s\"%s\":{", f ? "," : "", moat_field_name((moat_field_t)f));
			bool fv = true;
			for (int v = 1; v < MOAT_VIEW_COUNT; v++)
				if (s->views[f][v]) {
					printf("%s\"%s\":%" PRIu64, fv ? "" : ",",
					       moat_view_name((moat_view_t)v), s->views[f][v]);
					fv = false;
				}
			printf("}");
		}
		printf("},\"denied_by_role\":{");
		first = true;
		for (int i = 0; i <= MOAT_ROLE_COUNT; i++)
			if (s->denied_role[i]) {
				printf("%s\"%s\":%" PRIu64, first ? "" : ",",
				       i < MOAT_ROLE_COUNT ? moat_role_name((moat_role_t)i)
							   : "unknown",
				       s->denied_role[i]);
				first = false;
			}
		printf("},\"denied\":%" PRIu64 ",\"quota_exceeded\":%" PRIu64
		       ",\"throttled\":%" PRIu64 ",\"suspended_403\":%" PRIu64
		       ",\"logins\":{\"ok\":%" PRIu64 ",\"refused\":%" PRIu64
		       "},\"reads\":{\"session\":%" PRIu64 ",\"api_key\":%" PRIu64
		       "},\"calls\":{\"relay\":%" PRIu64 ",\"expired\":%" PRIu64
		       ",\"unknown\":%" PRIu64 ",\"no_gateway_number\":%" PRIu64
		       "},\"reports_posted\":%s,\"other_errors\":%" PRIu64 ",\"suspended\":[",
		       s->denied, s->quota, s->throttled, s->suspended, s->logins_ok,
		       s->logins_refused, s->reads_session, s->reads_key, s->calls_relay,
		       s->calls_expired, s->calls_unknown, s->calls_unbound,
		       reports_posted ? "true" : "false", s->other_errors);
		first = true;
		for (size_t i = 0; i < w->n_actors; i++) {
			const actor_t *a = &w->actors[i];
			if (!a->suspended_403)
				continue;
			char t[32];
			moat_time_format(a->first_suspended, t);
			printf("%s{\"principal\":\"%s\",\"first_403\":\"%s\",\"wall_ms\":%" PRIu64
			       ",\"refused\":%" PRIu64 "}",
			       first ? "" : ",", a->id, t, a->wall_first_suspended_ms,
			       a->suspended_403);
			first = false;
		}
		printf("]}\n");
		free(url_json);
		return;
	}
	printf("replayed %s through %s in %.1f s: %" PRIu64 " requests, %.0f req/s "
	       "(concurrency %d)\n",
	       dir, r->url, secs, total, rps, r->concurrency);
	if (w->n) {
		char t0[32], t1[32];
		moat_time_format(w->ev[0].time, t0);
		moat_time_format(w->ev[w->n - 1].time, t1);
		printf("world time %s .. %s\n", t0, t1);
	}
	printf("setup: %zu ingest requests, %zu API keys, %zu passwords (in memory only)\n",
	       setup_req, keys, passwords);
	printf("events:   ");
	for (int k = 0; k < EV_KINDS; k++)
		printf("%s %" PRIu64 "%s", ev_names[k], s->events[k],
		       k + 1 < EV_KINDS ? ", " : "\n");
	printf("requests: ");
	for (int k = 0; k < EV_KINDS; k++)
		printf("%s%s %" PRIu64 "%s", ev_names[k], k == EV_EXPORT ? " pages" : "",
		       s->requests[k], k + 1 < EV_KINDS ? ", " : "\n");
	printf("status:  ");
	for (int i = 1; i < 600; i++)
		if (s->status[i])
			printf(" %d: %" PRIu64, i, s->status[i]);
	if (s->status[0])
		printf(" transport errors: %" PRIu64, s->status[0]);
	printf("\norders served: %" PRIu64 " (export rows %" PRIu64
	       "); reads with a session %" PRIu64 ", with an API key %" PRIu64 "\n",
	       s->orders_served, s->export_rows, s->reads_session, s->reads_key);
	printf("views granted:\n");
	for (int f = 0; f < MOAT_FIELD_COUNT; f++) {
		printf("  %-10s", moat_field_name((moat_field_t)f));
		for (int v = 1; v < MOAT_VIEW_COUNT; v++)
			if (s->views[f][v])
				printf(" %s %" PRIu64, moat_view_name((moat_view_t)v),
				       s->views[f][v]);
		printf("\n");
	}
	printf("refused: policy %" PRIu64 ", quota %" PRIu64 ", throttled %" PRIu64
	       ", suspended %" PRIu64 "; logins ok %" PRIu64 ", refused %" PRIu64 "\n",
	       s->denied, s->quota, s->throttled, s->suspended, s->logins_ok, s->logins_refused);
	if (s->denied) {
		printf("policy refusals by role:");
		for (int i = 0; i <= MOAT_ROLE_COUNT; i++)
			if (s->denied_role[i])
				printf(" %s %" PRIu64,
				       i < MOAT_ROLE_COUNT ? moat_role_name((moat_role_t)i)
							   : "unknown",
				       s->denied_role[i]);
		printf("\n");
	}
	printf("calls: relayed %" PRIu64 ", expired %" PRIu64 ", unknown number %" PRIu64
	       " (%" PRIu64 " with no number from the gateway)\n",
	       s->calls_relay, s->calls_expired, s->calls_unknown, s->calls_unbound);
	bool any = false;
	for (size_t i = 0; i < w->n_actors; i++) {
		const actor_t *a = &w->actors[i];
		if (!a->suspended_403)
			continue;
		char t[32];
		moat_time_format(a->first_suspended, t);
		printf("%s  %s: first 403 at %s (%.1f s into the replay), %" PRIu64
		       " requests refused\n",
		       any ? "" : "suspended (403):\n", a->id, t,
		       (double)a->wall_first_suspended_ms / 1000.0, a->suspended_403);
		any = true;
	}
	if (!any)
		printf("suspended (403): none\n");
	if (!reports_posted)
		printf("reports: this server has no POST /v1/reports; file them with\n"
		       "  moat import reports %s/reports.jsonl --data %s   (after stopping the "
		       "server)\n",
		       dir, data);
	if (s->other_errors)
		printf("other errors: %" PRIu64 " (first: %s)\n", s->other_errors, s->first_error);
}

static void help(void)
{
	printf("usage: moat replay DIR --url http://HOST:PORT --data D [--concurrency N]\n"
	       "                  [--speed X] [--window N] [--export-rows N] [--json]\n\n"
	       "Replays a world written by `moat simulate --out DIR` through a running\n"
	       "`moat serve --replay-clock --data D`: ingests its parties, principals,\n"
	       "relations and orders over HTTP, gives every principal an API key and every\n"
	       "person who logs in a random password (in memory only), then sends its\n"
	       "events in time order, each with Moat-Replay-Time set to the event's time:\n"
	       "access -> GET /v1/orders/{id}?purpose=P, login -> POST /v1/sessions (the\n"
	       "right or a wrong password), export -> GET /v1/orders?merchant=M pages, and\n"
	       "calls.jsonl -> POST /v1/calls to the number the gateway issued.\n\n"
	       "  --url URL          the server (required)\n"
	       "  --data D           the server's data directory (credentials are set there)\n"
	       "  --concurrency N    parallel connections, 1..64 (default 8)\n"
	       "  --speed X          world seconds per wall second (default 0: as fast as\n"
	       "                     the server answers)\n"
	       "  --window N         how far (in events) requests may run ahead of the oldest\n"
	       "                     unfinished one (default 4 x concurrency)\n"
	       "  --export-rows N    rows fetched per export event at most (default 1000)\n"
	       "  --json             print the summary as JSON\n\n"
	       "A principal's requests go out one at a time in event order. Exit 1 if the\n"
	       "server is unreachable, lacks --replay-clock, or DIR is not a world.\n");
}

int cmd_replay(int argc, char **argv)
{
	enum { OPT_URL = 1, OPT_CONC, OPT_SPEED, OPT_WINDOW, OPT_EXPORT };
	static const struct option opts[] = {{"url", required_argument, NULL, OPT_URL},
					     {"concurrency", required_argument, NULL, OPT_CONC},
					     {"speed", required_argument, NULL, OPT_SPEED},
					     {"window", required_argument, NULL, OPT_WINDOW},
					     {"export-rows", required_argument, NULL, OPT_EXPORT},
					     CLI_COMMON_LONGOPTS,
					     {0, 0, 0, 0}};
	cli_common_t c;
	cli_common_init(&c);
	const char *url = NULL;
	long conc = 8, window = 0, export_rows = 1000;
	double speed = 0;
	int opt;
	char *end;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			help();
			return CLI_OK;
		case OPT_URL:
			url = optarg;
			break;
		case OPT_CONC:
			conc = strtol(optarg, &end, 10);
			if (*end || end == optarg || conc < 1 || conc > 64)
				return cli_usage("replay", "--concurrency must be 1..64");
			break;
		case OPT_WINDOW:
			window = strtol(optarg, &end, 10);
			if (*end || end == optarg || window < 1 || window > 1000000)
				return cli_usage("replay", "--window must be 1..1000000");
			break;
		case OPT_EXPORT:
			export_rows = strtol(optarg, &end, 10);
			if (*end || end == optarg || export_rows < 0 || export_rows > 1000000)
				return cli_usage("replay", "--export-rows must be 0..1000000");
			break;
		case OPT_SPEED:
			speed = strtod(optarg, &end);
			if (*end || end == optarg || !(speed >= 0) || !isfinite(speed))
				return cli_usage("replay", "--speed must be a number >= 0");
			break;
		default:
			if (!cli_common_opt(&c, opt, optarg))
				return cli_bad_option("replay");
		}
	}
	if (optind + 1 != argc)
		return cli_usage("replay", "expects one DIR (the output of `moat simulate`)");
	if (!url)
		return cli_usage("replay", "--url http://HOST:PORT is required");
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return cli_usage("replay", "--url must start with http:// or https://");
	const char *dir = argv[optind];
	char base[512];
	snprintf(base, sizeof base, "%s", url);
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		base[--bl] = '\0';

	signal(SIGPIPE, SIG_IGN);
	moat_error_t e = {0};
	world_t w = {0};
	w.op_actor = SIZE_MAX;
	w.truth_vnums = json_object();
	w.order_merchant = json_object();
	moat_app_t *app = NULL;
	http_t h0;
	bool curl_up = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
	bool h0_up = false;
	replay_t r;
	memset(&r, 0, sizeof r);
	worker_t *ws = NULL;
	int ret = CLI_FAIL;
	size_t setup_req = 0, keys = 0, passwords = 0;
	bool reports = false;
	if (!curl_up || !w.truth_vnums || !w.order_merchant || !(h0_up = http_init(&h0, base))) {
		moat_error_set(&e, MOAT_ENOMEM, NULL, "cannot start libcurl");
		goto done;
	}

	/* The world must be whole before anything is sent. */
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		moat_error_set(&e, MOAT_ENOTFOUND, NULL,
			       "%s is not a directory; give the --out DIR of `moat simulate`", dir);
		goto done;
	}
	if (each_line(dir, "parties.jsonl", true, load_party, &w, &e) != MOAT_OK ||
	    each_line(dir, "principals.jsonl", true, load_principal, &w, &e) != MOAT_OK ||
	    each_line(dir, "orders.jsonl", true, load_order_merchant, &w, &e) != MOAT_OK ||
	    load_truth(&w, dir, &e) != MOAT_OK ||
	    each_line(dir, "events.jsonl", true, load_event, &w, &e) != MOAT_OK ||
	    each_line(dir, "calls.jsonl", false, load_call, &w, &e) != MOAT_OK)
		goto done;
	char probe[1200];
	if (moat_path_join(probe, sizeof probe, dir, "relations.jsonl") != MOAT_OK ||
	    stat(probe, &st) != 0) {
		moat_error_set(&e, MOAT_ENOTFOUND, NULL, "%s has no relations.jsonl", dir);
		goto done;
	}
	if (!w.platform_party_line || w.op_actor == SIZE_MAX || !w.op_actor_line) {
		moat_error_set(&e, MOAT_EINVAL, NULL,
			       "%s has no platform party or no platform_service principal to "
			       "ingest with",
			       dir);
		goto done;
	}

	/* The server: up, and judging by the replay clock. */
	if (http_do(&h0, "GET", "/healthz", NULL, NULL, NULL) != 200) {
		moat_error_set(&e, MOAT_EUNAVAIL, NULL, "cannot reach a moat server at %s: %s",
			       base, h0.errbuf[0] ? h0.errbuf : "no healthy answer from /healthz");
		goto done;
	}
	if (!replay_clock_on(&h0)) {
		moat_error_set(
		    &e, MOAT_EINVAL, NULL,
		    "the server at %s ignores Moat-Replay-Time; start it with `moat "
		    "serve --replay-clock`, or the world would be judged at today's date",
		    base);
		goto done;
	}
	long rst = http_do(&h0, "POST", "/v1/reports", NULL, "{}", "application/json");
	reports = rst != 0 && rst != 404;
	if (reports && each_line(dir, "reports.jsonl", false, load_report, &w, &e) != MOAT_OK)
		goto done;

	if (moat_app_open(c.data_dir, MOAT_APP_NO_LEDGER, &app, &e) != MOAT_OK)
		goto done;
	if (bootstrap(app, &w, &e) != MOAT_OK)
		goto done;
	char auth[128];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", w.actors[w.op_actor].key);
	static const char *const files[4] = {"parties.jsonl", "principals.jsonl", "relations.jsonl",
					     "orders.jsonl"};
	static const char *const paths[4] = {"/v1/parties", "/v1/principals", "/v1/relations",
					     "/v1/orders"};
	for (int i = 0; i < 4; i++) {
		size_t n = 0;
		if (ingest(&h0, dir, files[i], paths[i], auth, &n, &setup_req, &e) != MOAT_OK)
			goto done;
	}
	memset(auth, 0, sizeof auth);
	if (credentials(app, &w, &keys, &passwords, &e) != MOAT_OK)
		goto done;
	moat_app_close(app);
	app = NULL;

	/* The timeline. */
	qsort(w.ev, w.n, sizeof *w.ev, ev_cmp);
	r.w = &w;
	r.url = base;
	r.concurrency = (int)conc;
	r.window = window > 0 ? (size_t)window : (size_t)conc * 4;
	r.speed = speed;
	r.export_cap = (uint32_t)export_rows;
	r.post_reports = reports;
	r.vnums = json_object();
	r.state = calloc(w.n ? w.n : 1, 1);
	r.busy = calloc(w.n_actors ? w.n_actors : 1, sizeof *r.busy);
	r.seen = calloc(w.n_actors ? w.n_actors : 1, sizeof *r.seen);
	ws = calloc((size_t)conc, sizeof *ws);
	if (!r.vnums || !r.state || !r.busy || !r.seen || !ws) {
		moat_error_set(&e, MOAT_ENOMEM, NULL, "out of memory");
		goto done;
	}
	pthread_mutex_init(&r.mu, NULL);
	pthread_mutex_init(&r.vmu, NULL);
	pthread_cond_init(&r.cv, NULL);
	r.wall0_ns = moat_mono_ns();
	int started = 0;
	for (; started < conc; started++) {
		ws[started].r = &r;
		if (!http_init(&ws[started].h, base) ||
		    pthread_create(&ws[started].th, NULL, worker_main, &ws[started]) != 0) {
			http_free(&ws[started].h);
			set_fatal(&r, "cannot start a worker thread");
			break;
		}
	}
	/* Progress on a terminal, every two seconds, in world time. */
	if (isatty(STDERR_FILENO) && started == conc) {
		uint64_t last = moat_mono_ns();
		for (;;) {
			struct timespec ts = {0, 200 * 1000 * 1000};
			nanosleep(&ts, NULL);
			pthread_mutex_lock(&r.mu);
			size_t lo = r.lo;
			bool finished = r.fatal || lo >= w.n;
			pthread_mutex_unlock(&r.mu);
			if (finished)
				break;
			if (moat_mono_ns() - last < 2000000000ull)
				continue;
			last = moat_mono_ns();
			char at[32];
			moat_time_format(w.ev[lo].time, at);
			fprintf(stderr, "moat replay: %zu of %zu events, world time %s\n", lo, w.n,
				at);
		}
	}
	for (int i = 0; i < started; i++) {
		pthread_join(ws[i].th, NULL);
		stats_add(&r.total, &ws[i].s);
		http_free(&ws[i].h);
	}
	double secs = (double)(moat_mono_ns() - r.wall0_ns) / 1e9;
	pthread_mutex_destroy(&r.mu);
	pthread_mutex_destroy(&r.vmu);
	pthread_cond_destroy(&r.cv);
	if (r.fatal) {
		moat_error_set(&e, MOAT_EUNAVAIL, NULL, "%s", r.fatal_msg);
		goto done;
	}
	print_summary(&r, &r.total, secs, setup_req, keys, passwords, reports, dir, c.data_dir,
		      c.json);
	ret = CLI_OK;
done:
	free(ws);
	free(r.state);
	free(r.busy);
	free(r.seen);
	json_decref(r.vnums);
	moat_app_close(app);
	if (h0_up)
		http_free(&h0);
	world_free(&w);
	if (curl_up)
		curl_global_cleanup();
	return ret == CLI_OK ? CLI_OK : cli_fail("replay", &e);
}
