/*
 * Simulator tests: determinism per seed, every line of every file valid against the
 * interchange rules (through the model's own parsers where they exist, by hand for
 * events, reports and calls), and ground truth consistent with the events for every
 * scenario.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "moat/json.h"
#include "moat/model.h"
#include "moat/sim.h"

static const char *const files[] = {"parties.jsonl", "principals.jsonl", "relations.jsonl",
				    "orders.jsonl",  "events.jsonl",	 "reports.jsonl",
				    "calls.jsonl",   "truth.json"};

static char tmp_root[256];

static void run(const char *dir, uint64_t seed, uint32_t scenarios)
{
	moat_sim_config_t cfg = {
	    .seed = seed, .scale = MOAT_SIM_SMALL, .scenarios = scenarios, .out_dir = dir};
	moat_error_t err = {0};
	moat_sim_stats_t st;
	moat_err_t rc = moat_sim_run(&cfg, &st, &err);
	CHECK_MSG(rc == MOAT_OK, "simulate into %s: %s", dir, err.msg);
	CHECK(st.orders == 2000);
}

static char *slurp(const char *dir, const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	char *data = NULL;
	moat_error_t err = {0};
	if (moat_file_read(path, (size_t)1 << 30, &data, len, &err) != MOAT_OK)
		return NULL;
	return data;
}

static bool same_file(const char *a, const char *b, const char *name)
{
	size_t la, lb;
	char *x = slurp(a, name, &la), *y = slurp(b, name, &lb);
	bool same = x && y && la == lb && memcmp(x, y, la) == 0;
	free(x);
	free(y);
	return same;
}

static void test_determinism(void)
{
	char a[300], b[300], c[300];
	snprintf(a, sizeof a, "%s/det-a", tmp_root);
	snprintf(b, sizeof b, "%s/det-b", tmp_root);
	snprintf(c, sizeof c, "%s/det-c", tmp_root);
	uint32_t mixed = 1u << MOAT_SIM_MIXED;
	run(a, 42, mixed);
	run(b, 42, mixed);
	run(c, 43, mixed);
	for (size_t i = 0; i < MOAT_ARRAY_LEN(files); i++) {
		CHECK_MSG(same_file(a, b, files[i]), "%s differs for the same seed", files[i]);
	}
	CHECK(!same_file(a, c, "orders.jsonl"));
	CHECK(!same_file(a, c, "events.jsonl"));
	CHECK(!same_file(a, c, "truth.json"));
}

/* ---- validation ---------------------------------------------------------------- */

typedef struct strset {
	char **v;
	size_t n, cap;
} strset_t;

static void set_add(strset_t *s, const char *x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->v = realloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n++] = strdup(x);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void set_sort(strset_t *s)
{
	if (s->n)
		qsort(s->v, s->n, sizeof *s->v, cmp_str);
}

static bool set_has(const strset_t *s, const char *x)
{
	return x && s->n && bsearch(&x, s->v, s->n, sizeof *s->v, cmp_str) != NULL;
}

static void set_free(strset_t *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof *s);
}

static bool has_exact_keys(json_t *o, const char *const *keys)
{
	size_t n = 0;
	for (; keys[n]; n++)
		if (!json_object_get(o, keys[n]))
			return false;
	return json_object_size(o) == n;
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool time_ok(json_t *o, const char *k, moat_time_t *out)
{
	const char *s = str(o, k);
	moat_time_t t;
	if (!s || !moat_time_parse(s, &t) || strlen(s) < 25 ||
	    strcmp(s + strlen(s) - 6, "+08:00") != 0)
		return false;
	if (out)
		*out = t;
	return true;
}

static bool fields_ok(json_t *f)
{
	if (!json_is_object(f) || json_object_size(f) == 0)
		return false;
	const char *k;
	json_t *v;
	json_object_foreach(f, k, v)
	{
		int view = moat_view_parse(json_string_value(v));
		if (moat_field_parse(k) < 0 || view <= MOAT_VIEW_NONE)
			return false;
	}
	return true;
}

typedef struct world {
	strset_t parties, principals, orders;
} world_t;

/* Reads every line of dir/name with moat's JSONL reader and calls fn on it. */
static void each_line(const char *dir, const char *name, void (*fn)(json_t *, long, void *),
		      void *ctx)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	moat_jsonl_t *r = NULL;
	moat_error_t err = {0};
	CHECK_MSG(moat_jsonl_open(path, &r, &err) == MOAT_OK, "%s: %s", path, err.msg);
	if (!r)
		return;
	json_t *o;
	moat_err_t rc;
	while ((rc = moat_jsonl_next(r, &o, &err)) == MOAT_OK) {
		fn(o, moat_jsonl_line(r), ctx);
		json_decref(o);
	}
	CHECK_MSG(rc == MOAT_ENOTFOUND, "%s line %ld: %s", name, err.line, err.msg);
	moat_jsonl_close(r);
}

static void v_party(json_t *o, long line, void *ctx)
{
	world_t *w = ctx;
	moat_party_t p;
	moat_error_t err = {0};
	CHECK_MSG(moat_party_from_json(o, &p, &err) == MOAT_OK, "parties line %ld: %s %s", line,
		  err.field, err.msg);
	if (str(o, "party"))
		set_add(&w->parties, str(o, "party"));
}

static void v_principal(json_t *o, long line, void *ctx)
{
	world_t *w = ctx;
	moat_principal_t p;
	moat_error_t err = {0};
	CHECK_MSG(moat_principal_from_json(o, &p, &err) == MOAT_OK, "principals line %ld: %s %s",
		  line, err.field, err.msg);
	CHECK_MSG(set_has(&w->parties, str(o, "party")), "principals line %ld: unknown party",
		  line);
	if (str(o, "shift"))
		CHECK(moat_shift_valid(str(o, "shift")));
	if (str(o, "principal"))
		set_add(&w->principals, str(o, "principal"));
}

static void v_order(json_t *o, long line, void *ctx)
{
	world_t *w = ctx;
	moat_order_t ord;
	moat_error_t err = {0};
	moat_arena_t *arena = moat_arena_new(4096);
	CHECK_MSG(moat_order_from_json(o, arena, &ord, &err) == MOAT_OK, "orders line %ld: %s %s",
		  line, err.field, err.msg);
	CHECK(moat_phone_valid(ord.buyer_phone));
	CHECK(strncmp(ord.buyer_phone, "170", 3) != 0 && strncmp(ord.buyer_phone, "171", 3) != 0);
	if (ord.buyer_id_number)
		CHECK_MSG(moat_id_number_valid(ord.buyer_id_number), "orders line %ld: id number",
			  line);
	CHECK(set_has(&w->parties, ord.merchant));
	CHECK(time_ok(o, "placed_at", NULL));
	if (ord.carrier)
		CHECK(set_has(&w->parties, ord.carrier));
	/* status agrees with the shipping data */
	bool shipped = ord.shipped_at != MOAT_TIME_NONE,
	     delivered = ord.delivered_at != MOAT_TIME_NONE;
	switch (ord.status) {
	case MOAT_STATUS_PAID:
		CHECK_MSG(!shipped, "orders line %ld: paid but shipped", line);
		break;
	case MOAT_STATUS_SHIPPED:
		CHECK_MSG(shipped && !delivered, "orders line %ld: shipped", line);
		break;
	case MOAT_STATUS_DELIVERED:
	case MOAT_STATUS_CLOSED:
		CHECK_MSG(shipped && delivered, "orders line %ld: delivered without dates", line);
		break;
	default:
		break;
	}
	if (shipped) {
		CHECK(ord.carrier && ord.waybill && ord.shipped_at > ord.placed_at);
		if (delivered)
			CHECK(ord.delivered_at > ord.shipped_at);
	}
	set_add(&w->orders, ord.order_id);
	moat_arena_free(arena);
}

static void v_relation(json_t *o, long line, void *ctx)
{
	world_t *w = ctx;
	moat_relation_t rel;
	moat_error_t err = {0};
	CHECK_MSG(moat_relation_from_json(o, &rel, &err) == MOAT_OK, "relations line %ld: %s %s",
		  line, err.field, err.msg);
	CHECK_MSG(set_has(&w->principals, rel.principal), "relations line %ld: unknown principal",
		  line);
	if (rel.order_id)
		CHECK_MSG(set_has(&w->orders, rel.order_id), "relations line %ld: unknown order",
			  line);
	if (rel.merchant)
		CHECK(set_has(&w->parties, rel.merchant));
	if (rel.from != MOAT_TIME_NONE && rel.until != MOAT_TIME_NONE)
		CHECK_MSG(rel.from < rel.until, "relations line %ld: ends before it starts", line);
}

typedef struct ev_ctx {
	world_t *w;
	moat_time_t last;
	long n;
} ev_ctx_t;

static void v_event(json_t *o, long line, void *ctx)
{
	ev_ctx_t *c = ctx;
	static const char *const access_keys[] = {"time",    "kind",   "principal", "order_id",
						  "purpose", "fields", "decision",  "ip",
						  "device",  NULL};
	static const char *const login_keys[] = {"time",   "kind",   "username", "ip",
						 "result", "device", NULL};
	static const char *const export_keys[] = {"time",   "kind",    "principal", "rows",
						  "fields", "purpose", "order_ids", NULL};
	moat_time_t t = 0;
	CHECK_MSG(time_ok(o, "time", &t), "events line %ld: time", line);
	CHECK_MSG(t > c->last, "events line %ld: not strictly after the previous event", line);
	c->last = t;
	c->n++;
	const char *kind = str(o, "kind");
	if (kind && strcmp(kind, "access") == 0) {
		CHECK_MSG(has_exact_keys(o, access_keys), "events line %ld: access keys", line);
		CHECK(set_has(&c->w->principals, str(o, "principal")));
		CHECK_MSG(set_has(&c->w->orders, str(o, "order_id")), "events line %ld: order",
			  line);
		CHECK(moat_purpose_parse(str(o, "purpose")) >= 0);
		CHECK(fields_ok(json_object_get(o, "fields")));
		const char *d = str(o, "decision");
		CHECK(d && (strcmp(d, "allow") == 0 || strcmp(d, "deny") == 0));
		CHECK(str(o, "ip") && str(o, "device"));
	} else if (kind && strcmp(kind, "login") == 0) {
		CHECK_MSG(has_exact_keys(o, login_keys), "events line %ld: login keys", line);
		const char *r = str(o, "result");
		CHECK(r && (strcmp(r, "success") == 0 || strcmp(r, "failure") == 0));
		CHECK(str(o, "username") && moat_id_valid(str(o, "username")));
		if (r && strcmp(r, "success") == 0)
			CHECK(set_has(&c->w->principals, str(o, "username")));
	} else if (kind && strcmp(kind, "export") == 0) {
		CHECK_MSG(has_exact_keys(o, export_keys), "events line %ld: export keys", line);
		CHECK(set_has(&c->w->principals, str(o, "principal")));
		CHECK(moat_purpose_parse(str(o, "purpose")) >= 0);
		CHECK(fields_ok(json_object_get(o, "fields")));
		json_t *ids = json_object_get(o, "order_ids");
		CHECK(json_is_array(ids) && json_array_size(ids) >= 1 &&
		      json_array_size(ids) <= 10000);
		CHECK((json_int_t)json_array_size(ids) ==
		      json_integer_value(json_object_get(o, "rows")));
		size_t i;
		json_t *id;
		json_array_foreach(ids, i, id) CHECK(set_has(&c->w->orders, json_string_value(id)));
	} else {
		CHECK_MSG(false, "events line %ld: unknown kind", line);
	}
}

static void v_report(json_t *o, long line, void *ctx)
{
	world_t *w = ctx;
	static const char *const keys[] = {
	    "report_id",     "order_id",	"contact_time", "channel",
	    "quoted_fields", "scammer_contact", "loss_cents",	NULL};
	CHECK_MSG(has_exact_keys(o, keys), "reports line %ld: keys", line);
	CHECK(moat_id_valid(str(o, "report_id")));
	CHECK(set_has(&w->orders, str(o, "order_id")));
	CHECK(time_ok(o, "contact_time", NULL));
	const char *ch = str(o, "channel");
	CHECK(ch && (!strcmp(ch, "call") || !strcmp(ch, "sms") || !strcmp(ch, "chat")));
	json_t *q = json_object_get(o, "quoted_fields");
	CHECK(json_is_array(q) && json_array_size(q) >= 1);
	size_t i;
	json_t *f;
	json_array_foreach(q, i, f) CHECK(moat_field_parse(json_string_value(f)) >= 0);
	CHECK(str(o, "scammer_contact"));
	CHECK(json_is_integer(json_object_get(o, "loss_cents")) &&
	      json_integer_value(json_object_get(o, "loss_cents")) >= 0);
}

static void v_call(json_t *o, long line, void *ctx)
{
	static const char *const keys[] = {"time", "from", "to", "extension", NULL};
	CHECK_MSG(has_exact_keys(o, keys), "calls line %ld: keys", line);
	CHECK(time_ok(o, "time", NULL));
	const char *to = str(o, "to");
	CHECK(to && (strncmp(to, "+86 170 ", 8) == 0 || strncmp(to, "+86 171 ", 8) == 0));
}

static void validate_dir(const char *dir, world_t *w)
{
	memset(w, 0, sizeof *w);
	each_line(dir, "parties.jsonl", v_party, w);
	set_sort(&w->parties);
	each_line(dir, "principals.jsonl", v_principal, w);
	set_sort(&w->principals);
	each_line(dir, "orders.jsonl", v_order, w);
	set_sort(&w->orders);
	CHECK_INT(w->orders.n, 2000);
	each_line(dir, "relations.jsonl", v_relation, w);
	ev_ctx_t ec = {w, INT64_MIN, 0};
	each_line(dir, "events.jsonl", v_event, &ec);
	CHECK(ec.n > 15000);
	each_line(dir, "reports.jsonl", v_report, w);
	each_line(dir, "calls.jsonl", v_call, w);
}

/* ---- truth against events -------------------------------------------------------- */

/* One plaintext receipt of an order by a principal. */
typedef struct seen {
	char order[16];
	moat_time_t time;
	unsigned full, plain;
} seen_t;

typedef struct truth_ctx {
	const char *leaker;
	seen_t *v;
	size_t n, cap;
	long line;
	long first_index;
	const char *first_principal;
	bool first_ok;
	long long *mal_idx; /* the attack's event_indexes */
	size_t mal_idx_len, n_mal_idx;
} truth_ctx_t;

static unsigned mask_of(json_t *fields, bool plain)
{
	unsigned m = 0;
	const char *k;
	json_t *v;
	json_object_foreach(fields, k, v)
	{
		int view = moat_view_parse(json_string_value(v));
		if (view == MOAT_VIEW_FULL || (plain && view == MOAT_VIEW_VIRTUAL))
			m |= 1u << moat_field_parse(k);
	}
	return m;
}

static void add_seen(truth_ctx_t *c, const char *order, moat_time_t t, unsigned full,
		     unsigned plain)
{
	if (!plain)
		return;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 1024;
		c->v = realloc(c->v, c->cap * sizeof *c->v);
	}
	seen_t *s = &c->v[c->n++];
	snprintf(s->order, sizeof s->order, "%s", order);
	s->time = t;
	s->full = full;
	s->plain = plain;
}

static void t_event(json_t *o, long line, void *ctx)
{
	truth_ctx_t *c = ctx;
	long index = c->line++;
	const char *kind = str(o, "kind");
	const char *who = str(o, strcmp(kind, "login") == 0 ? "username" : "principal");
	if (c->n_mal_idx < c->mal_idx_len && (long)c->mal_idx[c->n_mal_idx] == index) {
		c->n_mal_idx++;
		bool mine = who && (strcmp(who, c->leaker) == 0 || strcmp(kind, "login") == 0);
		CHECK_MSG(mine, "event %ld is labelled malicious but is not the attack's", index);
	}
	if (index == c->first_index)
		c->first_ok = who && c->first_principal &&
			      (strcmp(kind, "login") == 0 || strcmp(who, c->first_principal) == 0);
	if (!who || strcmp(who, c->leaker) != 0)
		return;
	moat_time_t t = 0;
	(void)time_ok(o, "time", &t);
	json_t *fields = json_object_get(o, "fields");
	if (strcmp(kind, "access") == 0 && strcmp(str(o, "decision"), "allow") == 0) {
		add_seen(c, str(o, "order_id"), t, mask_of(fields, false), mask_of(fields, true));
	} else if (strcmp(kind, "export") == 0) {
		size_t i;
		json_t *id;
		json_array_foreach(json_object_get(o, "order_ids"), i, id) add_seen(
		    c, json_string_value(id), t, mask_of(fields, false), mask_of(fields, true));
	}
	(void)line;
}

/* What the relations and orders say about one leaker: its assignments, the
 * merchants that authorised it, and each order's merchant. */
typedef struct rel_ctx {
	const char *leaker;
	strset_t assigned;	 /* "order_id|from|until" */
	strset_t ticketed;	 /* "order_id|opened|closed" */
	strset_t authorised;	 /* merchants */
	strset_t order_merchant; /* "order_id|merchant" */
} rel_ctx_t;

static void r_relation(json_t *o, long line, void *ctx)
{
	rel_ctx_t *c = ctx;
	(void)line;
	if (strcmp(str(o, "principal"), c->leaker) != 0)
		return;
	char buf[160];
	if (strcmp(str(o, "kind"), "assign") == 0) {
		moat_time_t from = 0, until = 0;
		(void)time_ok(o, "from", &from);
		(void)time_ok(o, "until", &until);
		snprintf(buf, sizeof buf, "%s|%lld|%lld", str(o, "order_id"), (long long)from,
			 (long long)until);
		set_add(&c->assigned, buf);
	} else if (strcmp(str(o, "kind"), "ticket") == 0) {
		moat_time_t opened = 0, closed = INT64_MAX;
		(void)time_ok(o, "opened", &opened);
		(void)time_ok(o, "closed", &closed);
		snprintf(buf, sizeof buf, "%s|%lld|%lld", str(o, "order_id"), (long long)opened,
			 (long long)closed);
		set_add(&c->ticketed, buf);
	} else if (strcmp(str(o, "kind"), "authorize") == 0) {
		set_add(&c->authorised, str(o, "merchant"));
	}
}

static void r_order(json_t *o, long line, void *ctx)
{
	rel_ctx_t *c = ctx;
	(void)line;
	char buf[160];
	snprintf(buf, sizeof buf, "%s|%s", str(o, "order_id"), str(o, "merchant"));
	set_add(&c->order_merchant, buf);
}

/* The merchant of an order (a prefix search in the sorted "order|merchant" set). */
static const char *merchant_of(const rel_ctx_t *c, const char *order)
{
	size_t lo = 0, hi = c->order_merchant.n, n = strlen(order);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int r = strncmp(c->order_merchant.v[mid], order, n);
		if (r == 0 && c->order_merchant.v[mid][n] == '|')
			return c->order_merchant.v[mid] + n + 1;
		if (r < 0 || (r == 0 && c->order_merchant.v[mid][n] < '|'))
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Kind-specific truths: the courier read only what it was assigned, while assigned;
 * the ISV app's leaked orders belong to merchants that never authorised it; the CS
 * insider's plaintext phone reads all happened off shift, at night. */
static void check_kind(const char *dir, json_t *at, const truth_ctx_t *c)
{
	const char *kind = str(at, "kind");
	rel_ctx_t rc = {0};
	rc.leaker = c->leaker;
	each_line(dir, "relations.jsonl", r_relation, &rc);
	each_line(dir, "orders.jsonl", r_order, &rc);
	set_sort(&rc.order_merchant);
	set_sort(&rc.authorised);
	for (size_t k = 0; k < c->n; k++) {
		const seen_t *sn = &c->v[k];
		bool courier = strcmp(kind, "courier_leak") == 0;
		if (courier || strcmp(kind, "low_slow") == 0) {
			/* the courier reads only while assigned; the low-and-slow insider only
			 * behind a ticket it holds */
			const strset_t *rel = courier ? &rc.assigned : &rc.ticketed;
			bool inside = false;
			size_t n = strlen(sn->order);
			for (size_t j = 0; j < rel->n && !inside; j++) {
				const char *a = rel->v[j];
				long long from, until;
				if (strncmp(a, sn->order, n) == 0 && a[n] == '|' &&
				    sscanf(a + n + 1, "%lld|%lld", &from, &until) == 2)
					inside = sn->time >= from && sn->time <= until;
			}
			CHECK_MSG(inside, "%s read %s outside an assignment or ticket", c->leaker,
				  sn->order);
		} else if (strcmp(kind, "cs_insider") == 0 &&
			   (sn->full & (1u << MOAT_FIELD_PHONE))) {
			long long tod = ((long long)sn->time / 1000 + 8 * 3600) % 86400;
			CHECK_MSG(tod >= 22 * 3600 || tod < 5 * 3600,
				  "insider read %s in the daytime", sn->order);
		}
	}
	if (strcmp(kind, "isv_overpull") == 0) {
		size_t i;
		json_t *x;
		json_array_foreach(json_object_get(at, "leaked_orders"), i, x)
		{
			const char *m = merchant_of(&rc, json_string_value(x));
			CHECK_MSG(m && !set_has(&rc.authorised, m),
				  "ISV leaked %s of authorising merchant %s", json_string_value(x),
				  m ? m : "?");
		}
	}
	set_free(&rc.assigned);
	set_free(&rc.ticketed);
	set_free(&rc.authorised);
	set_free(&rc.order_merchant);
}

static void check_attack(const char *dir, json_t *at, strset_t *report_ids)
{
	truth_ctx_t c = {0};
	c.leaker = str(at, "principal");
	json_t *fi = json_object_get(at, "first_event_index");
	c.first_index = json_is_integer(fi) ? (long)json_integer_value(fi) : -1;
	c.first_principal = c.leaker;
	json_t *ixs = json_object_get(at, "event_indexes");
	c.mal_idx_len = json_array_size(ixs);
	c.mal_idx = calloc(c.mal_idx_len + 1, sizeof *c.mal_idx);
	for (size_t k = 0; k < c.mal_idx_len; k++) {
		c.mal_idx[k] = json_integer_value(json_array_get(ixs, k));
		if (k)
			CHECK(c.mal_idx[k] > c.mal_idx[k - 1]);
	}
	CHECK_INT(c.mal_idx_len, json_integer_value(json_object_get(at, "malicious_events")));
	if (c.mal_idx_len)
		CHECK_INT(c.mal_idx[0],
			  json_integer_value(json_object_get(at, "first_event_index")));
	each_line(dir, "events.jsonl", t_event, &c);
	CHECK_INT(c.n_mal_idx, c.mal_idx_len);
	free(c.mal_idx);
	if (c.first_index >= 0)
		CHECK_MSG(c.first_ok, "%s: first_event_index does not point at the attack",
			  c.leaker);
	json_t *leaked = json_object_get(at, "leaked_orders");
	CHECK(json_array_size(leaked) > 0);
	size_t i;
	json_t *x;
	json_array_foreach(leaked, i, x)
	{
		bool found = false;
		for (size_t k = 0; k < c.n && !found; k++)
			found = strcmp(c.v[k].order, json_string_value(x)) == 0;
		CHECK_MSG(found, "%s: leaked order %s never received in plaintext", c.leaker,
			  json_string_value(x));
	}
	json_t *victims = json_object_get(at, "victims");
	CHECK(json_array_size(victims) > 0);
	size_t reported = 0;
	json_array_foreach(victims, i, x)
	{
		moat_time_t contact = 0;
		CHECK(time_ok(x, "contact_time", &contact));
		const char *order = str(x, "order_id");
		unsigned full = 0, plain = 0;
		bool before = false;
		for (size_t k = 0; k < c.n; k++)
			if (strcmp(c.v[k].order, order) == 0 && c.v[k].time < contact) {
				before = true;
				full |= c.v[k].full;
				plain |= c.v[k].plain;
			}
		CHECK_MSG(before, "%s: victim %s contacted before the leaker read it", c.leaker,
			  order);
		unsigned quoted = 0;
		size_t j;
		json_t *f;
		json_array_foreach(json_object_get(x, "quoted_fields"), j, f) quoted |=
		    1u << moat_field_parse(json_string_value(f));
		CHECK_MSG((quoted & ~full) == 0,
			  "%s: victim %s quotes fields the leaker never saw in full", c.leaker,
			  order);
		CHECK(quoted != 0);
		if (str(x, "virtual_number"))
			CHECK(!(full & (1u << MOAT_FIELD_PHONE)) &&
			      (plain & (1u << MOAT_FIELD_PHONE)));
		if (json_is_true(json_object_get(x, "reported"))) {
			reported++;
			CHECK(set_has(report_ids, str(x, "report_id")));
		}
	}
	CHECK_MSG(reported >= 5, "%s: only %zu reports", c.leaker, reported);
	check_kind(dir, at, &c);
	free(c.v);
}

static void collect_report_id(json_t *o, long line, void *ctx)
{
	(void)line;
	set_add(ctx, str(o, "report_id"));
}

static void collect_call_to(json_t *o, long line, void *ctx)
{
	(void)line;
	set_add(ctx, str(o, "to"));
}

static void test_scenario(int sc, uint64_t seed)
{
	char dir[300];
	snprintf(dir, sizeof dir, "%s/%s", tmp_root, moat_sim_scenario_name(sc));
	run(dir, seed, 1u << sc);
	world_t w;
	validate_dir(dir, &w);

	char path[400];
	snprintf(path, sizeof path, "%s/truth.json", dir);
	json_error_t je;
	json_t *truth = json_load_file(path, 0, &je);
	CHECK_MSG(truth != NULL, "truth.json: %s", je.text);
	if (!truth)
		goto done;
	strset_t report_ids = {0}, call_to = {0};
	each_line(dir, "reports.jsonl", collect_report_id, &report_ids);
	set_sort(&report_ids);
	each_line(dir, "calls.jsonl", collect_call_to, &call_to);
	set_sort(&call_to);
	json_t *attacks = json_object_get(truth, "attacks");
	size_t i;
	json_t *at;
	json_array_foreach(attacks, i, at)
	{
		CHECK(set_has(&w.principals, str(at, "principal")));
		CHECK(set_has(&w.parties, str(at, "party")));
		check_attack(dir, at, &report_ids);
	}
	json_t *vn;
	json_array_foreach(json_object_get(truth, "virtual_numbers"), i, vn)
	    CHECK_MSG(set_has(&call_to, str(vn, "number")), "virtual number %s never called",
		      str(vn, "number"));
	/* every report is labelled, and genuine ones only where there is a leaker */
	json_t *reps = json_object_get(truth, "reports");
	CHECK_INT(json_array_size(reps), report_ids.n);
	size_t genuine = 0;
	json_t *r;
	json_array_foreach(reps, i, r)
	{
		const char *label = str(r, "label");
		CHECK(set_has(&report_ids, str(r, "report_id")));
		if (label && strcmp(label, "genuine") == 0)
			genuine++;
		else
			CHECK(label &&
			      (strcmp(label, "false") == 0 || strcmp(label, "unrelated") == 0));
	}
	if (sc == MOAT_SIM_CLEAN) {
		CHECK_INT(json_array_size(attacks), 0);
		CHECK_INT(genuine, 0);
		CHECK(report_ids.n > 0);
	} else {
		CHECK(json_array_size(attacks) >= 1);
		CHECK(genuine >= 5);
	}
	json_decref(truth);
	set_free(&report_ids);
	set_free(&call_to);
done:
	set_free(&w.parties);
	set_free(&w.principals);
	set_free(&w.orders);
}

static void test_parse(void)
{
	uint32_t m;
	moat_error_t err = {0};
	CHECK(moat_sim_scenarios_parse("cs_insider,courier_leak", &m, &err) == MOAT_OK);
	CHECK_INT(m, (1u << MOAT_SIM_CS_INSIDER) | (1u << MOAT_SIM_COURIER_LEAK));
	CHECK(moat_sim_scenarios_parse("cs_insider,", &m, &err) == MOAT_EUSAGE);
	CHECK(moat_sim_scenarios_parse("nope", &m, &err) == MOAT_EUSAGE);
	CHECK(moat_sim_scenarios_parse("", &m, &err) == MOAT_EUSAGE);
	moat_sim_scale_t s;
	CHECK(moat_sim_scale_parse("medium", &s) && s == MOAT_SIM_MEDIUM);
	CHECK(!moat_sim_scale_parse("huge", &s));
	moat_sim_config_t cfg = {
	    .seed = 1, .scale = MOAT_SIM_SMALL, .out_dir = tmp_root, .days = 5};
	CHECK(moat_sim_run(&cfg, NULL, &err) == MOAT_EUSAGE);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmp_root, sizeof tmp_root, "%s/moat-test-sim-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(tmp_root)) {
		perror("mkdtemp");
		return 1;
	}
	test_parse();
	test_determinism();
	for (int sc = 0; sc < MOAT_SIM_SCENARIO_COUNT; sc++)
		test_scenario(sc, 1000 + (uint64_t)sc);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
	if (check_failed == 0 && system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmp_root);
	return check_done();
}
