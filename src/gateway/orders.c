/*
 * Order reads: GET /v1/orders/{id}?purpose=P and GET /v1/orders?purpose=P&….
 *
 * Each order read is decided by the policy, charged to the daily quota when it
 * reveals plaintext, given a virtual-number binding when the phone is shown
 * virtually, and written to the ledger as an ACCESS (or DENY) entry. The response
 * is rendered only after the append returned: nothing derived from PII leaves
 * before its entry is durable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway_internal.h"
#include "moat/detect.h"
#include "moat/view.h"

enum { OUT_ALLOW = 0, OUT_DENY, OUT_QUOTA };

/* Everything decided about one order read. */
typedef struct read_one {
	moat_policy_decision_t d;
	char rule[MOAT_ID_MAX + 1];
	unsigned relations;
	int outcome;
	int64_t quota;
	moat_vnum_row_t vnum;
	bool has_vnum;
	moat_pii_t pii;
	bool has_pii;
	bool forced_mask; /* views capped by a detector action */
} read_one_t;

static void read_one_clear(read_one_t *x)
{
	if (x->has_pii)
		moat_pii_clear(&x->pii);
	x->has_pii = false;
}

/* Decides one read and prepares what it needs (quota, binding, decrypted PII).
 * Fails only on store / key errors (err set). */
static moat_err_t decide_one(moat_gateway_t *g, moat_store_t *s, const gw_auth_t *a,
			     const moat_order_row_t *o, moat_purpose_t purpose, moat_time_t now,
			     read_one_t *x, moat_error_t *err)
{
	memset(x, 0, sizeof *x);
	moat_policy_request_t q;
	moat_assign_window_t assign;
	moat_err_t rc = moat_gateway_policy_request(s, &a->p, o, purpose, now, &q, &assign, err);
	if (rc != MOAT_OK)
		return rc;
	x->relations = q.relations;
	const moat_policy_t *p = gw_policy_get(g);
	moat_policy_decide(p, &q, &x->d);
	snprintf(x->rule, sizeof x->rule, "%s", x->d.rule);
	int64_t day = moat_policy_day(p, now);
	gw_policy_put(g);
	x->d.rule = x->rule;
	if (!x->d.allow) {
		x->outcome = OUT_DENY;
		return MOAT_OK;
	}
	/* A detector FORCE_MASK action caps every personal field below plaintext. */
	if (a->action == MOAT_ACTION_FORCE_MASK) {
		static const uint8_t cap[MOAT_FIELD_COUNT] = {
		    [MOAT_FIELD_NAME] = MOAT_VIEW_MASK,
		    [MOAT_FIELD_PHONE] = MOAT_VIEW_MASK,
		    [MOAT_FIELD_ADDRESS] = MOAT_VIEW_COARSE,
		    [MOAT_FIELD_ID_NUMBER] = MOAT_VIEW_MASK,
		    [MOAT_FIELD_ITEMS] = MOAT_VIEW_CATEGORY,
		    [MOAT_FIELD_AMOUNTS] = MOAT_VIEW_FULL,
		    [MOAT_FIELD_WAYBILL] = MOAT_VIEW_FULL};
		for (int f = 0; f < MOAT_FIELD_COUNT; f++)
			if (x->d.views[f] > MOAT_VIEW_HIDDEN && x->d.views[f] > cap[f])
				x->d.views[f] = cap[f];
		x->forced_mask = true;
	}
	/* The virtual number's window; an existing binding that covers it (the
	 * usual case) is read here, in the snapshot and without the writers' lock. */
	moat_time_t vfrom = now, vuntil = MOAT_TIME_NONE;
	bool bind = false;
	if (x->d.views[MOAT_FIELD_PHONE] == MOAT_VIEW_VIRTUAL) {
		if (assign.found) {
			if (assign.from != MOAT_TIME_NONE && assign.from < vfrom)
				vfrom = assign.from;
			vuntil = assign.until;
		}
		moat_time_t base = o->delivered_at != MOAT_TIME_NONE ? o->delivered_at : vuntil;
		if (base == MOAT_TIME_NONE || base < now)
			base = now;
		vuntil = base + (moat_time_t)g->grace_days * 86400000;
		rc = moat_store_vnum_covering(s, o->order_id, a->p.principal, vfrom, vuntil,
					      &x->vnum, err);
		if (rc == MOAT_OK)
			x->has_vnum = true;
		else if (rc == MOAT_ENOTFOUND)
			bind = true;
		else {
			moat_store_read_end(s);
			return rc;
		}
	}
	/* A write follows (quota, binding): leave the read snapshot first (a write on
	 * a stale snapshot fails with busy). Reads that write nothing keep it for
	 * the next reads of the loop's pass (see on_request). */
	bool take_quota =
	    moat_policy_is_plaintext(x->d.views) && x->d.quota != MOAT_QUOTA_UNLIMITED;
	if (take_quota || bind)
		moat_store_read_end(s);
	if (take_quota) {
		int64_t used;
		moat_error_t qe = {0};
		pthread_mutex_lock(&g->write_mu);
		rc = moat_store_quota_take(s, a->p.principal, day, x->d.quota, &used, &qe);
		pthread_mutex_unlock(&g->write_mu);
		if (rc == MOAT_ELIMIT) {
			x->outcome = OUT_QUOTA;
			x->quota = x->d.quota;
			return MOAT_OK;
		}
		if (rc != MOAT_OK) {
			*err = qe;
			return rc;
		}
	}
	if (bind) {
		/* No binding yet, or one to widen: a write, ordered by the lock. */
		pthread_mutex_lock(&g->write_mu);
		rc = moat_store_vnum_bind(s, o->order_id, a->p.principal, g->pool_lo, g->pool_hi,
					  vfrom, vuntil, now, &x->vnum, err);
		pthread_mutex_unlock(&g->write_mu);
		if (rc != MOAT_OK)
			return rc;
		x->has_vnum = true;
	}
	if (moat_policy_reveals_pii(x->d.views)) {
		moat_app_t view = *g->app; /* decrypting needs the keys only */
		view.store = s;
		gw_loop_t *loop = gw_loop_current();
		rc = moat_app_order_pii_with(&view, loop ? loop->opener : NULL, o, &x->pii, err);
		if (rc != MOAT_OK)
			return rc;
		x->has_pii = true;
	}
	x->outcome = OUT_ALLOW;
	return MOAT_OK;
}

static void entry_for(const gw_auth_t *a, const moat_order_row_t *o, moat_purpose_t purpose,
		      moat_time_t now, const read_one_t *x, moat_entry_t *e)
{
	memset(e, 0, sizeof *e);
	e->kind = x->outcome == OUT_ALLOW ? MOAT_ENTRY_ACCESS : MOAT_ENTRY_DENY;
	e->time = now;
	e->replayed = a->replayed;
	e->principal = a->p.principal;
	e->order_id = o->order_id;
	e->purpose = purpose;
	e->has_purpose = true;
	e->relations = (uint8_t)x->relations;
	e->rule = x->rule;
	e->ip = a->ip[0] ? a->ip : NULL;
	e->device = a->device;
	if (x->outcome == OUT_ALLOW)
		memcpy(e->views, x->d.views, sizeof e->views);
	if (x->outcome == OUT_QUOTA)
		e->detail = "quota";
	else if (x->forced_mask)
		e->detail = "force_mask";
	if (x->has_vnum)
		e->ref = x->vnum.number;
}

/* ---- rendering ------------------------------------------------------------------- */

/* The renderer appends its pieces directly: a formatted print per key cost
 * more than the rest of the rendering together. */
static moat_err_t put_key(moat_buf_t *b, const char *key, bool comma)
{
	moat_err_t rc = comma ? moat_buf_puts(b, ",\"") : moat_buf_putc(b, '"');
	if (rc == MOAT_OK)
		rc = moat_buf_puts(b, key);
	return rc == MOAT_OK ? moat_buf_puts(b, "\":") : rc;
}

/* "key":"s" for a string s that needs no escaping (names, times, views). */
static moat_err_t put_plain(moat_buf_t *b, const char *key, const char *s, bool comma)
{
	moat_err_t rc = put_key(b, key, comma);
	if (rc == MOAT_OK)
		rc = moat_buf_putc(b, '"');
	if (rc == MOAT_OK)
		rc = moat_buf_puts(b, s);
	return rc == MOAT_OK ? moat_buf_putc(b, '"') : rc;
}

static moat_err_t put_int(moat_buf_t *b, const char *key, int64_t v, bool comma)
{
	char s[24];
	size_t n = moat_fmt_i64(s, v);
	moat_err_t rc = put_key(b, key, comma);
	return rc == MOAT_OK ? moat_buf_append(b, s, n) : rc;
}

static moat_err_t put_time(moat_buf_t *b, const char *key, moat_time_t t)
{
	if (t == MOAT_TIME_NONE)
		return MOAT_OK;
	char s[32];
	moat_time_format(t, s);
	return put_plain(b, key, s, true);
}

static moat_err_t put_kv(moat_buf_t *b, const char *key, const char *v, bool comma)
{
	moat_err_t rc = put_key(b, key, comma);
	return rc == MOAT_OK ? moat_buf_json_str(b, v) : rc;
}

/* Appends the order as the reader may see it. */
static moat_err_t render(const moat_order_row_t *o, const read_one_t *x, moat_buf_t *b)
{
	const uint8_t *v = x->d.views;
	moat_err_t rc = moat_buf_putc(b, '{');
	if (rc == MOAT_OK)
		rc = put_kv(b, "order_id", o->order_id, false);
	if (rc == MOAT_OK)
		rc = put_kv(b, "merchant", o->merchant, true);
	if (rc == MOAT_OK)
		rc = put_plain(b, "status", moat_status_name(o->status), true);
	if (rc == MOAT_OK)
		rc = put_time(b, "placed_at", o->placed_at);
	if (rc == MOAT_OK)
		rc = put_time(b, "shipped_at", o->shipped_at);
	if (rc == MOAT_OK)
		rc = put_time(b, "delivered_at", o->delivered_at);
	if (rc == MOAT_OK && o->carrier[0])
		rc = put_kv(b, "carrier", o->carrier, true);
	if (rc == MOAT_OK && v[MOAT_FIELD_WAYBILL] == MOAT_VIEW_FULL && o->waybill[0])
		rc = put_kv(b, "waybill", o->waybill, true);

	/* buyer */
	if (rc == MOAT_OK)
		rc = moat_buf_puts(b, ",\"buyer\":{");
	bool first = true;
	moat_buf_t tmp; /* a masked field: derived from PII, wiped by moat_buf_free */
	moat_buf_init_secret(&tmp, 4096);
	if (rc == MOAT_OK && x->has_pii && x->pii.name && v[MOAT_FIELD_NAME] > MOAT_VIEW_HIDDEN) {
		if (v[MOAT_FIELD_NAME] == MOAT_VIEW_FULL)
			rc = put_kv(b, "name", x->pii.name, false);
		else if ((rc = moat_view_mask_name(x->pii.name, &tmp)) == MOAT_OK)
			rc = put_kv(b, "name", tmp.data, false);
		first = false;
	}
	moat_buf_reset(&tmp);
	if (rc == MOAT_OK && v[MOAT_FIELD_PHONE] == MOAT_VIEW_VIRTUAL && x->has_vnum) {
		rc = put_kv(b, "phone", x->vnum.number, !first);
		if (rc == MOAT_OK)
			rc = put_time(b, "phone_valid_until", x->vnum.valid_until);
		first = false;
	} else if (rc == MOAT_OK && x->has_pii && x->pii.phone &&
		   (v[MOAT_FIELD_PHONE] == MOAT_VIEW_FULL ||
		    v[MOAT_FIELD_PHONE] == MOAT_VIEW_MASK)) {
		if (v[MOAT_FIELD_PHONE] == MOAT_VIEW_FULL)
			rc = put_kv(b, "phone", x->pii.phone, !first);
		else if ((rc = moat_view_mask_phone(x->pii.phone, &tmp)) == MOAT_OK)
			rc = put_kv(b, "phone", tmp.data, !first);
		first = false;
	}
	moat_buf_reset(&tmp);
	if (rc == MOAT_OK && (v[MOAT_FIELD_ADDRESS] == MOAT_VIEW_COARSE ||
			      (v[MOAT_FIELD_ADDRESS] == MOAT_VIEW_FULL && x->has_pii))) {
		rc = put_key(b, "address", !first);
		if (rc == MOAT_OK)
			rc = moat_buf_putc(b, '{');
		if (rc == MOAT_OK)
			rc = put_kv(b, "province", o->province, false);
		if (rc == MOAT_OK)
			rc = put_kv(b, "city", o->city, true);
		if (rc == MOAT_OK)
			rc = put_kv(b, "district", o->district, true);
		if (rc == MOAT_OK && v[MOAT_FIELD_ADDRESS] == MOAT_VIEW_FULL &&
		    x->pii.address_detail)
			rc = put_kv(b, "detail", x->pii.address_detail, true);
		if (rc == MOAT_OK)
			rc = moat_buf_putc(b, '}');
		first = false;
	}
	if (rc == MOAT_OK && x->has_pii && x->pii.id_number &&
	    v[MOAT_FIELD_ID_NUMBER] > MOAT_VIEW_HIDDEN) {
		if (v[MOAT_FIELD_ID_NUMBER] == MOAT_VIEW_FULL)
			rc = put_kv(b, "id_number", x->pii.id_number, !first);
		else if ((rc = moat_view_mask_id_number(x->pii.id_number, &tmp)) == MOAT_OK)
			rc = put_kv(b, "id_number", tmp.data, !first);
		first = false;
	}
	moat_buf_free(&tmp);
	if (rc == MOAT_OK)
		rc = moat_buf_putc(b, '}');

	/* items and amounts */
	bool items =
	    v[MOAT_FIELD_ITEMS] == MOAT_VIEW_FULL || v[MOAT_FIELD_ITEMS] == MOAT_VIEW_CATEGORY;
	bool amounts = v[MOAT_FIELD_AMOUNTS] == MOAT_VIEW_FULL;
	if (rc == MOAT_OK && (items || amounts)) {
		json_t *arr = json_loads(o->items_json ? o->items_json : "[]", 0, NULL);
		if (!json_is_array(arr)) {
			json_decref(arr);
			return MOAT_ECORRUPT;
		}
		int64_t total = 0;
		size_t i;
		json_t *it;
		if (items)
			rc = moat_buf_puts(b, ",\"items\":[");
		json_array_foreach(arr, i, it)
		{
			int64_t qty = json_integer_value(json_object_get(it, "qty"));
			int64_t price = json_integer_value(json_object_get(it, "price_cents"));
			total += qty * price;
			if (!items || rc != MOAT_OK)
				continue;
			const char *sku = json_string_value(json_object_get(it, "sku"));
			rc = i ? moat_buf_puts(b, ",{") : moat_buf_putc(b, '{');
			if (rc == MOAT_OK)
				rc = put_kv(b, "sku", sku ? sku : "", false);
			if (rc == MOAT_OK && v[MOAT_FIELD_ITEMS] == MOAT_VIEW_FULL) {
				const char *title = json_string_value(json_object_get(it, "title"));
				rc = put_kv(b, "title", title ? title : "", true);
				if (rc == MOAT_OK && amounts)
					rc = put_int(b, "price_cents", price, true);
			}
			if (rc == MOAT_OK)
				rc = put_int(b, "qty", qty, true);
			if (rc == MOAT_OK)
				rc = moat_buf_putc(b, '}');
		}
		if (rc == MOAT_OK && items)
			rc = moat_buf_putc(b, ']');
		if (rc == MOAT_OK && amounts) {
			rc = moat_buf_puts(b, ",\"amounts\":{");
			if (rc == MOAT_OK)
				rc = put_int(b, "total_cents", total, false);
			if (rc == MOAT_OK)
				rc = moat_buf_putc(b, '}');
		}
		json_decref(arr);
	}
	if (rc == MOAT_OK)
		rc = moat_buf_puts(b, ",\"views\":{");
	for (int f = 0; f < MOAT_FIELD_COUNT && rc == MOAT_OK; f++)
		rc = put_plain(b, moat_field_name((moat_field_t)f),
			       moat_view_name((moat_view_t)v[f]), f != 0);
	if (rc == MOAT_OK)
		rc = moat_buf_putc(b, '}');
	if (rc == MOAT_OK)
		rc = put_plain(b, "rule", x->rule, true);
	if (rc == MOAT_OK)
		rc = moat_buf_putc(b, '}');
	return rc;
}

static void count_views(moat_gateway_t *g, const read_one_t *x)
{
	if (x->outcome != OUT_ALLOW) {
		atomic_fetch_add(&g->m.decisions_deny, 1);
		return;
	}
	atomic_fetch_add(&g->m.decisions_allow, 1);
	for (int f = 0; f < MOAT_FIELD_COUNT; f++)
		atomic_fetch_add(&g->m.views[f][x->d.views[f] % MOAT_VIEW_COUNT], 1);
}

/* ?purpose= (required, known). */
static bool get_purpose(struct MHD_Connection *c, gw_resp_t *r, moat_purpose_t *out)
{
	const char *ps = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "purpose");
	if (!ps || !*ps) {
		gw_error(r, 422, "invalid", "purpose",
			 "every read names a purpose: ?purpose=ship|deliver|…");
		return false;
	}
	int p = moat_purpose_parse(ps);
	if (p < 0) {
		gw_error(r, 422, "invalid", "purpose",
			 "unknown purpose; one of ship, deliver, after_sales, customer_care, "
			 "address_change, refund, analytics, audit");
		return false;
	}
	*out = (moat_purpose_t)p;
	return true;
}

static void refuse(moat_gateway_t *g, const read_one_t *x, const char *principal, gw_resp_t *r)
{
	if (x->outcome == OUT_QUOTA) {
		atomic_fetch_add(&g->m.quota_refusals, 1);
		gw_error(r, 429, "quota_exceeded", "quota",
			 "daily quota of %lld plaintext reads under rule %s is used up for %s",
			 (long long)x->quota, x->rule, principal);
	} else {
		gw_error(
		    r, 403, "denied", "purpose",
		    "policy denies this read (rule %s); a read needs a workflow reason such as an "
		    "assignment or an open ticket",
		    x->rule);
	}
}

/* The response to one order read once its entry's append has returned: the
 * refusal for a denied read, 503 when the entry is not durable (nothing
 * revealed), else the order in its views with the receipt. */
static void respond_one(moat_gateway_t *g, const moat_order_row_t *o, const read_one_t *x,
			const char *principal, moat_err_t append_rc, uint64_t index, gw_resp_t *r)
{
	if (x->outcome != OUT_ALLOW) {
		refuse(g, x, principal, r);
		return;
	}
	if (append_rc != MOAT_OK) {
		/* The invariant: no durable ACCESS entry, no data. */
		gw_error(
		    r, 503, "ledger_unavailable", NULL,
		    "the access ledger cannot record this read right now; nothing was revealed");
		return;
	}
	snprintf(r->ledger_index, sizeof r->ledger_index, "%llu", (unsigned long long)index);
	moat_buf_reset(&r->body);
	moat_err_t rc = render(o, x, &r->body);
	if (rc == MOAT_OK) {
		r->body.len--; /* reopen the object to add the receipt */
		r->body.data[r->body.len] = '\0';
		rc = moat_buf_printf(&r->body, ",\"receipt\":{\"ledger_index\":%llu}}",
				     (unsigned long long)index);
	}
	if (rc != MOAT_OK) {
		r->ledger_index[0] = '\0';
		gw_error(r, 500, "internal", NULL, "cannot render the order");
		return;
	}
	r->status = 200;
}

/* An order read decided and waiting for its entry to be durable. Two ways to
 * wait: on a loop with a deferring sink the connection stays as it is, without
 * a response, and libmicrohttpd calls the handler again on every pass until the
 * completion has come (the loop's flush at the end of the pass brings it); with
 * an asynchronous sink the connection is suspended and the completion resumes
 * it. state settles who frees it when the client goes away meanwhile: the
 * completion, or the request's end, whichever comes second. */
enum { PENDING_WAITING = 0, PENDING_DONE, PENDING_ORPHANED };
struct gw_pending {
	moat_gateway_t *g;
	struct MHD_Connection *c;
	gw_loop_t *loop; /* the loop c belongs to */
	bool suspended;
	bool deferred; /* counted in loop->handed_off until its completion */
	atomic_int state;
	moat_order_row_t o;
	read_one_t x; /* holds the decrypted PII until the response is rendered */
	char principal[MOAT_ID_MAX + 1];
	moat_err_t status;
	uint64_t index;
};

static void pending_free(struct gw_pending *p)
{
	read_one_clear(&p->x);
	moat_order_row_clear(&p->o);
	atomic_fetch_sub(&p->g->suspended, 1);
	free(p);
}

void gw_pending_abandon(struct gw_pending *p)
{
	if (p && atomic_exchange(&p->state, PENDING_ORPHANED) == PENDING_DONE)
		pending_free(p);
}

bool gw_pending_ready(const struct gw_pending *p)
{
	return atomic_load(&p->state) == PENDING_DONE;
}

static void pending_done(void *ctx, moat_err_t status, uint64_t first)
{
	struct gw_pending *p = ctx;
	p->status = status;
	p->index = first;
	bool suspended = p->suspended;
	gw_loop_t *loop = p->loop;
	struct MHD_Connection *c = p->c;
	/* The exchange publishes status and index to the thread that finishes
	 * the read; after it p may be gone unless the request had already ended. */
	bool deferred = p->deferred;
	if (atomic_exchange(&p->state, PENDING_DONE) == PENDING_ORPHANED)
		pending_free(p);
	else if (suspended)
		gw_loop_resume(loop, c);
	if (deferred) {
		atomic_fetch_sub(&loop->handed_off, 1);
		gw_loop_wake(loop);
	}
}

void gw_order_finish(moat_gateway_t *g, gw_req_t *q, gw_resp_t *r)
{
	struct gw_pending *p = q->pending;
	q->pending = NULL;
	if (p->status != MOAT_OK) {
		atomic_fetch_add(&g->m.ledger_failures, 1);
		moat_log(MOAT_LOG_ERROR, "ledger_append", "event append failed (order read)");
	}
	respond_one(g, &p->o, &p->x, p->principal, p->status, p->index, r);
	pending_free(p);
}

void gw_order_get(moat_gateway_t *g, struct MHD_Connection *c, moat_store_t *s, const gw_auth_t *a,
		  const char *order_id, gw_req_t *q, gw_resp_t *r)
{
	static const char *const allowed[] = {"purpose", NULL};
	if (!gw_query_only(c, allowed, r))
		return;
	if (!moat_id_valid(order_id)) {
		gw_error(r, 404, "not_found", "order_id", "no such order");
		return;
	}
	moat_purpose_t purpose;
	if (!get_purpose(c, r, &purpose))
		return;
	if (a->action == MOAT_ACTION_THROTTLE && gw_throttled(g, a->p.principal, a->now)) {
		gw_error(r, 429, "throttled", NULL,
			 "principal %s is throttled by a detector action: one read per second",
			 a->p.principal);
		return;
	}
	moat_order_row_t o;
	memset(&o, 0, sizeof o);
	moat_error_t e = {0};
	moat_err_t rc = moat_store_order_get(s, order_id, &o, &e);
	if (rc != MOAT_OK) {
		if (rc == MOAT_ENOTFOUND)
			gw_error(r, 404, "not_found", "order_id", "no such order");
		else
			gw_error_from(r, &e);
		return;
	}
	moat_time_t now = a->now;
	read_one_t x;
	rc = decide_one(g, s, a, &o, purpose, now, &x, &e);
	if (rc != MOAT_OK) {
		gw_error_from(r, &e);
		goto done;
	}
	count_views(g, &x);
	moat_entry_t ent;
	entry_for(a, &o, purpose, now, &x, &ent);
	/* On one of the gateway's loops with a sink that defers, the entry waits
	 * for the flush that ends the loop's pass; otherwise a sink thread takes
	 * it. */
	gw_loop_t *here = gw_loop_current();
	gw_loop_t *loop = g->sink.append_deferred && g->sink.flush ? here : NULL;
	struct gw_pending *p =
	    here && (loop || g->sink.append_async) ? calloc(1, sizeof *p) : NULL;
	if (p) {
		/* Hand the entry to the group commit and free this thread for other
		 * connections; the response waits for durability. p is complete
		 * before the append is queued: its completion may come at once. */
		p->g = g;
		p->c = c;
		p->loop = here;
		p->suspended = loop == NULL;
		p->deferred = loop != NULL;
		if (loop)
			atomic_fetch_add(&loop->handed_off, 1);
		atomic_init(&p->state, PENDING_WAITING);
		p->o = o;
		p->x = x;
		snprintf(p->principal, sizeof p->principal, "%s", a->p.principal);
		q->pending = p;
		atomic_fetch_add(&g->suspended, 1);
		if (p->suspended)
			MHD_suspend_connection(c);
		rc = gw_append_async(g, &ent, 1, loop != NULL, pending_done, p, &e);
		if (rc == MOAT_OK) {
			if (loop)
				loop->need_flush = true;
			return; /* o and x now belong to p */
		}
		/* Nothing queued, no completion coming: answer it ourselves. */
		moat_log(MOAT_LOG_ERROR, "ledger_append", "event append failed: %s", e.msg);
		p->status = MOAT_EUNAVAIL;
		if (p->suspended) {
			atomic_store(&p->state, PENDING_DONE);
			gw_loop_resume(here, c);
		} else {
			q->pending = NULL;
			atomic_fetch_sub(&loop->handed_off, 1);
			respond_one(g, &p->o, &p->x, p->principal, MOAT_EUNAVAIL, 0, r);
			pending_free(p);
		}
		return;
	}
	uint64_t index = 0;
	rc = gw_append(g, &ent, 1, &index, &e);
	respond_one(g, &o, &x, a->p.principal, rc, index, r);
done:
	read_one_clear(&x);
	moat_order_row_clear(&o);
}

/* ---- listing --------------------------------------------------------------------- */

typedef struct list_ctx {
	moat_order_row_t *rows;
	size_t n, cap;
	bool oom;
} list_ctx_t;

static int collect(void *ctx, const moat_order_row_t *row)
{
	list_ctx_t *l = ctx;
	if (l->n == l->cap) {
		l->oom = true;
		return 1;
	}
	moat_order_row_t *d = &l->rows[l->n];
	*d = *row;
	d->items_json = row->items_json ? strdup(row->items_json) : NULL;
	d->pii = row->pii_len ? malloc(row->pii_len) : NULL;
	if ((row->items_json && !d->items_json) || (row->pii_len && !d->pii)) {
		free(d->items_json);
		free(d->pii);
		l->oom = true;
		return 1;
	}
	if (row->pii_len)
		memcpy(d->pii, row->pii, row->pii_len);
	l->n++;
	return 0;
}

void gw_order_list(moat_gateway_t *g, struct MHD_Connection *c, moat_store_t *s, const gw_auth_t *a,
		   gw_resp_t *r)
{
	static const char *const allowed[] = {"purpose", "merchant", "status", "since",
					      "cursor",	 "limit",    NULL};
	if (!gw_query_only(c, allowed, r))
		return;
	moat_purpose_t purpose;
	if (!get_purpose(c, r, &purpose))
		return;
	if (a->action == MOAT_ACTION_THROTTLE && gw_throttled(g, a->p.principal, a->now)) {
		gw_error(r, 429, "throttled", NULL,
			 "principal %s is throttled by a detector action: one read per second",
			 a->p.principal);
		return;
	}
	moat_order_filter_t f = {0};
	f.status = -1;
	f.since = MOAT_TIME_NONE;
	f.limit = 20;
	const char *v;
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "merchant"))) {
		if (!moat_id_valid(v)) {
			gw_error(r, 422, "invalid", "merchant", "not a valid party id");
			return;
		}
		f.merchant = v;
	}
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "status"))) {
		if ((f.status = moat_status_parse(v)) < 0) {
			gw_error(
			    r, 422, "invalid", "status",
			    "unknown status; one of paid, shipped, delivered, closed, refunded");
			return;
		}
	}
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since")) &&
	    !moat_time_parse(v, &f.since)) {
		gw_error(r, 422, "invalid", "since", "must be RFC 3339 with an offset");
		return;
	}
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor"))) {
		if (!moat_id_valid(v)) {
			gw_error(r, 422, "invalid", "cursor",
				 "not a cursor returned by this endpoint");
			return;
		}
		f.after_id = v;
	}
	if ((v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit"))) {
		char *end;
		long n = strtol(v, &end, 10);
		if (*end || end == v || n < 1 || n > GW_LIST_MAX) {
			gw_error(r, 422, "invalid", "limit", "limit must be 1..%d", GW_LIST_MAX);
			return;
		}
		f.limit = (size_t)n;
	}
	list_ctx_t l = {0};
	l.cap = f.limit;
	l.rows = calloc(l.cap, sizeof *l.rows);
	read_one_t *xs = calloc(l.cap, sizeof *xs);
	moat_entry_t *ents = calloc(l.cap, sizeof *ents);
	moat_error_t e = {0};
	moat_time_t now = a->now;
	size_t decided = 0;
	if (!l.rows || !xs || !ents) {
		gw_error(r, 500, "internal", NULL, "out of memory");
		goto done;
	}
	if (moat_store_order_list(s, &f, collect, &l, &e) != MOAT_OK) {
		gw_error_from(r, &e);
		goto done;
	}
	if (l.oom) {
		gw_error(r, 500, "internal", NULL, "out of memory");
		goto done;
	}
	/* Decide each order; stop at the first quota refusal (the page ends there). */
	bool quota_hit = false;
	size_t allowed_n = 0;
	for (; decided < l.n; decided++) {
		if (decide_one(g, s, a, &l.rows[decided], purpose, now, &xs[decided], &e) !=
		    MOAT_OK) {
			decided++;
			gw_error_from(r, &e);
			goto done;
		}
		count_views(g, &xs[decided]);
		entry_for(a, &l.rows[decided], purpose, now, &xs[decided], &ents[decided]);
		if (xs[decided].outcome == OUT_QUOTA) {
			quota_hit = true;
			decided++;
			break;
		}
		allowed_n += xs[decided].outcome == OUT_ALLOW;
	}
	uint64_t first = 0;
	moat_err_t rc = decided ? gw_append(g, ents, decided, &first, &e) : MOAT_OK;
	if (quota_hit && allowed_n == 0) {
		refuse(g, &xs[decided - 1], a->p.principal, r);
		goto done;
	}
	if (rc != MOAT_OK) {
		gw_error(
		    r, 503, "ledger_unavailable", NULL,
		    "the access ledger cannot record these reads right now; nothing was revealed");
		goto done;
	}
	size_t shown = quota_hit ? decided - 1 : decided;
	moat_buf_t *b = &r->body;
	moat_buf_reset(b);
	rc = moat_buf_puts(b, "{\"orders\":[");
	bool comma = false;
	for (size_t i = 0; i < shown && rc == MOAT_OK; i++) {
		if (xs[i].outcome != OUT_ALLOW)
			continue;
		if (comma)
			rc = moat_buf_putc(b, ',');
		if (rc == MOAT_OK)
			rc = render(&l.rows[i], &xs[i], b);
		if (rc == MOAT_OK) {
			b->len--;
			b->data[b->len] = '\0';
			rc = moat_buf_printf(b, ",\"receipt\":{\"ledger_index\":%llu}}",
					     (unsigned long long)(first + i));
		}
		comma = true;
	}
	if (rc == MOAT_OK)
		rc = moat_buf_puts(b, "],\"denied\":[");
	comma = false;
	for (size_t i = 0; i < shown && rc == MOAT_OK; i++) {
		if (xs[i].outcome == OUT_ALLOW)
			continue;
		rc = moat_buf_printf(b, "%s{\"order_id\":\"%s\",\"rule\":\"%s\"}", comma ? "," : "",
				     l.rows[i].order_id, xs[i].rule);
		comma = true;
	}
	if (rc == MOAT_OK)
		rc = moat_buf_puts(b, "],\"next_cursor\":");
	bool more = quota_hit || l.n == f.limit;
	if (rc == MOAT_OK)
		rc = more && shown > 0 ? moat_buf_printf(b, "\"%s\"", l.rows[shown - 1].order_id)
				       : moat_buf_puts(b, "null");
	if (rc == MOAT_OK && quota_hit)
		rc = moat_buf_puts(b, ",\"quota_exhausted\":true");
	if (rc == MOAT_OK)
		rc = moat_buf_printf(b,
				     ",\"receipt\":{\"first_ledger_index\":%llu,\"entries\":%zu}}",
				     (unsigned long long)first, decided);
	if (rc != MOAT_OK) {
		gw_error(r, 500, "internal", NULL, "cannot render the page");
		goto done;
	}
	if (decided)
		snprintf(r->ledger_index, sizeof r->ledger_index, "%llu",
			 (unsigned long long)first);
	r->status = 200;
done:
	for (size_t i = 0; i < decided; i++)
		read_one_clear(&xs[i]);
	for (size_t i = 0; i < l.n; i++)
		moat_order_row_clear(&l.rows[i]);
	free(l.rows);
	free(xs);
	free(ents);
}
