/*
 * End-to-end tests of the gateway over real HTTP (libcurl) against the real
 * server code, started in this process on a free port over a fresh data
 * directory: the authorisation matrix, a randomized no-leak test, virtual
 * numbers, quotas, the ledger invariant, sessions and every bad-input case.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "moat/app.h"
#include "moat/crypto.h"
#include "moat/detect.h"
#include "moat/gateway.h"
#include "moat/json.h"
#include "moat/ledger.h"
#include "moat/policy.h"
#include "moat/store.h"

static char dir[256], data[300], fail_flag[400];
static moat_app_t *app;
static moat_gateway_t *gw;
static moat_policy_t *policy; /* the same default policy the server runs */
static int port;

/* ---- HTTP ------------------------------------------------------------------------ */

typedef struct resp {
	long status;
	moat_buf_t body;
	char ledger_index[32];
	json_t *json;
} resp_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	resp_t *r = ud;
	return moat_buf_append(&r->body, p, sz * n) == MOAT_OK ? sz * n : 0;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	resp_t *r = ud;
	size_t len = sz * n;
	if (len > 19 && strncasecmp(p, "Moat-Ledger-Index: ", 19) == 0) {
		size_t k = len - 19;
		while (k && (p[19 + k - 1] == '\r' || p[19 + k - 1] == '\n'))
			k--;
		snprintf(r->ledger_index, sizeof r->ledger_index, "%.*s", (int)k, p + 19);
	}
	return len;
}

static CURL *curl;
/* Extra request headers for the next requests (NULL-terminated), or NULL. */
static const char *const *extra_headers;

static void resp_free(resp_t *r)
{
	moat_buf_free(&r->body);
	json_decref(r->json);
	memset(r, 0, sizeof *r);
}

/* One request; body may be NULL. ctype NULL = application/json when a body is sent. */
static void http(resp_t *r, const char *method, const char *path, const char *key,
		 const char *ctype, const char *body, size_t body_len)
{
	memset(r, 0, sizeof *r);
	moat_buf_init(&r->body, 16u << 20);
	char url[16384];
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
	struct curl_slist *h = NULL;
	char auth[200], ct[100];
	if (key) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
		h = curl_slist_append(h, auth);
	}
	if (body) {
		snprintf(ct, sizeof ct, "Content-Type: %s", ctype ? ctype : "application/json");
		h = curl_slist_append(h, ct);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
	}
	h = curl_slist_append(h, "Moat-Device: test-dev");
	for (size_t i = 0; extra_headers && extra_headers[i]; i++)
		h = curl_slist_append(h, extra_headers[i]);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	CURLcode cc = curl_easy_perform(curl);
	CHECK_MSG(cc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(cc));
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	if (r->body.len && r->body.data[0] == '{')
		r->json = json_loadb(r->body.data, r->body.len, 0, NULL);
}

static void get(resp_t *r, const char *path, const char *key)
{
	http(r, "GET", path, key, NULL, NULL, 0);
}

static void post(resp_t *r, const char *path, const char *key, const char *body)
{
	http(r, "POST", path, key, NULL, body, strlen(body));
}

/* Checks status and, for errors, the error shape and code. */
static void expect_error(const resp_t *r, long status, const char *code, const char *what)
{
	CHECK_MSG(r->status == status, "%s: status %ld, expected %ld: %s", what, r->status, status,
		  r->body.data);
	json_t *e = json_object_get(r->json, "error");
	CHECK_MSG(json_is_object(e) && json_is_string(json_object_get(e, "code")) &&
		      json_is_string(json_object_get(e, "message")) && json_object_get(e, "field"),
		  "%s: not an error object: %s", what, r->body.data);
	if (code)
		CHECK_MSG(e && strcmp(json_string_value(json_object_get(e, "code")) ?: "", code) ==
				   0,
			  "%s: code %s, expected %s", what,
			  json_string_value(json_object_get(e, "code")), code);
}

/* ---- fixture --------------------------------------------------------------------- */

static const char *const status_names[] = {"paid", "shipped", "delivered", "closed", "refunded"};
static char keys[MOAT_ROLE_COUNT][72]; /* API key of principal "p-<role>" */
static char svc_key[72];

static void set_key(const char *id, char out[72])
{
	uint8_t hash[32];
	moat_error_t e = {0};
	CHECK(moat_api_key_new(out, hash) == MOAT_OK);
	CHECK(moat_store_principal_set_key(app->store, id, hash, &e) == MOAT_OK);
}

static void import_line(moat_import_kind_t kind, const char *line)
{
	json_t *obj = NULL;
	moat_error_t e = {0};
	moat_arena_t *arena = moat_arena_new(4096);
	CHECK_MSG(moat_json_parse(line, strlen(line), 16, &obj, &e) == MOAT_OK, "%s", e.msg);
	CHECK_MSG(moat_app_import_one(app, kind, obj, arena, &e) == MOAT_OK, "%s: %s", line, e.msg);
	json_decref(obj);
	moat_arena_free(arena);
}

/* Party of the principal with this role: merchant admins and CS agents work for
 * m-a, couriers and warehouses for l-x, apps for isv-1, the rest for the platform. */
static const char *role_party(int role)
{
	switch (role) {
	case MOAT_ROLE_MERCHANT_ADMIN:
	case MOAT_ROLE_CS_AGENT:
		return "m-a";
	case MOAT_ROLE_WAREHOUSE:
	case MOAT_ROLE_COURIER:
		return "l-x";
	case MOAT_ROLE_ISV_APP:
		return "isv-1";
	default:
		return "plat";
	}
}

/* Matrix order for (role, status, related): O-<role>-<status>-<0|1>, of merchant
 * m-a when related and the role is merchant_admin, else m-b. */
static void matrix_order_id(int role, int st, int rel, char out[64])
{
	snprintf(out, 64, "O-%d-%d-%d", role, st, rel);
}

/* Buyer data of matrix orders is derived from the id so the leak test can look
 * for it. */
static void buyer_of(int n, char name[32], char phone[16], char detail[64], char title[64])
{
	static const char *const surnames[] = {"刘", "陈", "王", "李", "张"};
	snprintf(name, 32, "%s%s", surnames[n % 5], "晓梅");
	snprintf(phone, 16, "1380000%04d", n);
	snprintf(detail, 64, "幸福路%d号%d室", n, 100 + n);
	snprintf(title, 64, "羊毛衫款%d", n);
}

static int order_number(int role, int st, int rel)
{
	return role * 100 + st * 10 + rel;
}

static void add_order(const char *id, const char *merchant, int st, int n, moat_time_t now)
{
	char name[32], phone[16], detail[64], title[64], line[2048], ship[400] = "";
	buyer_of(n, name, phone, detail, title);
	char placed[32], shipped[32], delivered[32];
	moat_time_format(now - 5 * 86400000LL, placed);
	moat_time_format(now - 2 * 86400000LL, shipped);
	moat_time_format(now - 1 * 86400000LL, delivered);
	if (st == MOAT_STATUS_SHIPPED)
		snprintf(ship, sizeof ship,
			 ",\"shipping\":{\"carrier\":\"l-x\",\"waybill\":\"SF%06d\",\"shipped_at\":"
			 "\"%s\"}",
			 n, shipped);
	else if (st != MOAT_STATUS_PAID)
		snprintf(ship, sizeof ship,
			 ",\"shipping\":{\"carrier\":\"l-x\",\"waybill\":\"SF%06d\",\"shipped_at\":"
			 "\"%s\",\"delivered_at\":\"%s\"}",
			 n, shipped, delivered);
	snprintf(line, sizeof line,
		 "{\"order_id\":\"%s\",\"merchant\":\"%s\",\"placed_at\":\"%s\",\"status\":\"%s\","
		 "\"buyer\":{\"name\":\"%s\",\"phone\":\"%s\",\"id_number\":\"11010519491231002X\","
		 "\"address\":{\"province\":\"广东省\",\"city\":\"广州市\",\"district\":\"天河区\","
		 "\"detail\":\"%s\"}},"
		 "\"items\":[{\"sku\":\"S%d\",\"title\":\"%s\",\"qty\":2,\"price_cents\":1500}]%s}",
		 id, merchant, placed, status_names[st], name, phone, detail, n, title, ship);
	import_line(MOAT_IMPORT_ORDERS, line);
}

static void add_relation(int role, const char *order_id, moat_time_t now)
{
	char line[512], from[32];
	moat_time_format(now - 3 * 86400000LL, from);
	char pid[16];
	snprintf(pid, sizeof pid, "p-%d", role);
	switch (role) {
	case MOAT_ROLE_CS_AGENT:
		snprintf(line, sizeof line,
			 "{\"kind\":\"ticket\",\"order_id\":\"%s\",\"principal\":\"%s\",\"ticket\":"
			 "\"T-%s\",\"opened\":\"%s\"}",
			 order_id, pid, order_id, from);
		break;
	case MOAT_ROLE_MERCHANT_ADMIN:
		return; /* related through its merchant */
	case MOAT_ROLE_ISV_APP:
		/* authorised by m-a: matrix orders of the isv with rel=1 belong to m-a */
		return;
	default:
		snprintf(line, sizeof line,
			 "{\"kind\":\"assign\",\"order_id\":\"%s\",\"principal\":\"%s\",\"from\":"
			 "\"%s\"}",
			 order_id, pid, from);
	}
	import_line(MOAT_IMPORT_RELATIONS, line);
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/moat-gw-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(data, sizeof data, "%s/data", dir);
	snprintf(fail_flag, sizeof fail_flag, "%s/fail-writes", dir);
	moat_error_t e = {0};
	CHECK_MSG(moat_app_init(data, &e) == MOAT_OK, "%s", e.msg);
	/* small caps so the bad-input tests can reach them */
	char conf[400];
	snprintf(conf, sizeof conf, "%s/moat.conf", data);
	FILE *f = fopen(conf, "a");
	fclose(f);
	CHECK_MSG(moat_app_open(data, 0, &app, &e) == MOAT_OK, "%s", e.msg);
	CHECK(app && app->ledger != NULL);
	app->config.max_body = 64 * 1024;
	app->config.request_timeout_s = 1;
	app->config.threads = 4;
	CHECK(moat_store_begin(app->store, &e) == MOAT_OK);
	import_line(MOAT_IMPORT_PARTIES,
		    "{\"party\":\"plat\",\"kind\":\"platform\",\"name\":\"P\"}");
	import_line(MOAT_IMPORT_PARTIES,
		    "{\"party\":\"m-a\",\"kind\":\"merchant\",\"name\":\"A\"}");
	import_line(MOAT_IMPORT_PARTIES,
		    "{\"party\":\"m-b\",\"kind\":\"merchant\",\"name\":\"B\"}");
	import_line(MOAT_IMPORT_PARTIES,
		    "{\"party\":\"l-x\",\"kind\":\"logistics\",\"name\":\"X\"}");
	import_line(MOAT_IMPORT_PARTIES, "{\"party\":\"isv-1\",\"kind\":\"isv\",\"name\":\"I\"}");
	char line[512];
	for (int r = 0; r < MOAT_ROLE_COUNT; r++) {
		snprintf(line, sizeof line,
			 "{\"principal\":\"p-%d\",\"party\":\"%s\",\"role\":\"%s\"}", r,
			 role_party(r), moat_role_name((moat_role_t)r));
		import_line(MOAT_IMPORT_PRINCIPALS, line);
	}
	import_line(MOAT_IMPORT_PRINCIPALS,
		    "{\"principal\":\"courier-2\",\"party\":\"l-x\",\"role\":\"courier\"}");
	import_line(MOAT_IMPORT_PRINCIPALS,
		    "{\"principal\":\"courier-q\",\"party\":\"l-x\",\"role\":\"courier\"}");
	import_line(MOAT_IMPORT_PRINCIPALS,
		    "{\"principal\":\"staff-s\",\"party\":\"m-a\",\"role\":\"cs_agent\"}");
	import_line(MOAT_IMPORT_PRINCIPALS,
		    "{\"principal\":\"staff-r\",\"party\":\"m-a\",\"role\":\"cs_agent\"}");
	moat_time_t now = moat_now();
	char from[32];
	moat_time_format(now - 10 * 86400000LL, from);
	snprintf(
	    line, sizeof line,
	    "{\"kind\":\"authorize\",\"merchant\":\"m-a\",\"principal\":\"p-%d\",\"from\":\"%s\"}",
	    MOAT_ROLE_ISV_APP, from);
	import_line(MOAT_IMPORT_RELATIONS, line);
	for (int r = 0; r < MOAT_ROLE_COUNT; r++)
		for (int st = 0; st < MOAT_STATUS_COUNT; st++)
			for (int rel = 0; rel < 2; rel++) {
				char id[64];
				matrix_order_id(r, st, rel, id);
				bool own = rel && (r == MOAT_ROLE_MERCHANT_ADMIN ||
						   r == MOAT_ROLE_ISV_APP);
				add_order(id, own ? "m-a" : "m-b", st, order_number(r, st, rel),
					  now);
				if (rel)
					add_relation(r, id, now);
			}
	/* orders for the virtual-number and quota tests */
	add_order("V1", "m-b", MOAT_STATUS_SHIPPED, 901, now);
	for (int i = 0; i < 4; i++) {
		char id[16];
		snprintf(id, sizeof id, "Q%d", i);
		add_order(id, "m-b", MOAT_STATUS_SHIPPED, 910 + i, now);
		snprintf(line, sizeof line,
			 "{\"kind\":\"assign\",\"order_id\":\"%s\",\"principal\":\"courier-q\","
			 "\"from\":\"%s\"}",
			 id, from);
		import_line(MOAT_IMPORT_RELATIONS, line);
	}
	snprintf(line, sizeof line,
		 "{\"kind\":\"assign\",\"order_id\":\"V1\",\"principal\":\"p-%d\",\"from\":\"%s\"}",
		 MOAT_ROLE_COURIER, from);
	import_line(MOAT_IMPORT_RELATIONS, line);
	snprintf(
	    line, sizeof line,
	    "{\"kind\":\"assign\",\"order_id\":\"V1\",\"principal\":\"courier-2\",\"from\":\"%s\"}",
	    from);
	import_line(MOAT_IMPORT_RELATIONS, line);
	CHECK(moat_store_commit(app->store, &e) == MOAT_OK);
	for (int r = 0; r < MOAT_ROLE_COUNT; r++) {
		char id[16];
		snprintf(id, sizeof id, "p-%d", r);
		set_key(id, keys[r]);
	}
	memcpy(svc_key, keys[MOAT_ROLE_PLATFORM_SERVICE], sizeof svc_key);

	CHECK(moat_policy_parse(moat_policy_default_text(), strlen(moat_policy_default_text()),
				&policy, &e) == MOAT_OK);
	moat_gateway_opts_t go = {0};
	go.listen = "127.0.0.1:0";
	moat_gateway_ledger_sink(app->ledger, &go.sink);
	go.ledger = app->ledger;
	go.fail_flag_path = fail_flag;
	CHECK_MSG(moat_gateway_start(app, &go, &gw, &e) == MOAT_OK, "%s", e.msg);
	port = gw ? moat_gateway_port(gw) : 0;
}

/* ---- checks of one response against a decision ---------------------------------- */

static bool has_str(const resp_t *r, const char *s)
{
	return r->body.data && strstr(r->body.data, s) != NULL;
}

/* Every field in the response is in the view the decision grants, and nothing
 * of the buyer's plaintext appears unless granted in full. */
static void check_views(const resp_t *r, const moat_policy_decision_t *d, int n, const char *what)
{
	char name[32], phone[16], detail[64], title[64];
	buyer_of(n, name, phone, detail, title);
	json_t *buyer = json_object_get(r->json, "buyer");
	json_t *views = json_object_get(r->json, "views");
	for (int f = 0; f < MOAT_FIELD_COUNT; f++) {
		const char *v =
		    json_string_value(json_object_get(views, moat_field_name((moat_field_t)f)));
		CHECK_MSG(v && strcmp(v, moat_view_name((moat_view_t)d->views[f])) == 0,
			  "%s: field %s view %s, policy says %s", what,
			  moat_field_name((moat_field_t)f), v ? v : "(none)",
			  moat_view_name((moat_view_t)d->views[f]));
	}
	/* plaintext appears only when granted */
	CHECK_MSG(has_str(r, name) == (d->views[MOAT_FIELD_NAME] == MOAT_VIEW_FULL), "%s: name",
		  what);
	CHECK_MSG(has_str(r, phone) == (d->views[MOAT_FIELD_PHONE] == MOAT_VIEW_FULL), "%s: phone",
		  what);
	CHECK_MSG(has_str(r, detail) == (d->views[MOAT_FIELD_ADDRESS] == MOAT_VIEW_FULL),
		  "%s: address", what);
	CHECK_MSG(has_str(r, title) == (d->views[MOAT_FIELD_ITEMS] == MOAT_VIEW_FULL), "%s: items",
		  what);
	CHECK_MSG(has_str(r, "11010519491231002X") ==
		      (d->views[MOAT_FIELD_ID_NUMBER] == MOAT_VIEW_FULL),
		  "%s: id_number", what);
	/* paid orders have no waybill yet, so only "present implies granted" holds */
	CHECK_MSG(!json_object_get(r->json, "waybill") ||
		      d->views[MOAT_FIELD_WAYBILL] == MOAT_VIEW_FULL,
		  "%s: waybill", what);
	CHECK_MSG(has_str(r, "total_cents") == (d->views[MOAT_FIELD_AMOUNTS] == MOAT_VIEW_FULL),
		  "%s: amounts", what);
	/* shapes of the non-plaintext views */
	const char *bn = json_string_value(json_object_get(buyer, "name"));
	if (d->views[MOAT_FIELD_NAME] == MOAT_VIEW_MASK) {
		char want[32];
		snprintf(want, sizeof want, "%.3s*", name);
		CHECK_MSG(bn && strcmp(bn, want) == 0, "%s: masked name %s", what,
			  bn ? bn : "(none)");
	} else if (d->views[MOAT_FIELD_NAME] == MOAT_VIEW_HIDDEN) {
		CHECK_MSG(!bn, "%s: hidden name present", what);
	}
	const char *bp = json_string_value(json_object_get(buyer, "phone"));
	if (d->views[MOAT_FIELD_PHONE] == MOAT_VIEW_MASK) {
		char want[16];
		snprintf(want, sizeof want, "%.3s****%s", phone, phone + 7);
		CHECK_MSG(bp && strcmp(bp, want) == 0, "%s: masked phone %s", what,
			  bp ? bp : "(none)");
	} else if (d->views[MOAT_FIELD_PHONE] == MOAT_VIEW_VIRTUAL) {
		CHECK_MSG(bp && strncmp(bp, "171", 3) == 0 && strcmp(bp, phone) != 0,
			  "%s: virtual phone %s", what, bp ? bp : "(none)");
	} else if (d->views[MOAT_FIELD_PHONE] == MOAT_VIEW_HIDDEN) {
		CHECK_MSG(!bp, "%s: hidden phone present", what);
	}
	json_t *addr = json_object_get(buyer, "address");
	if (d->views[MOAT_FIELD_ADDRESS] == MOAT_VIEW_HIDDEN)
		CHECK_MSG(!addr, "%s: hidden address present", what);
	else
		CHECK_MSG(json_is_object(addr) && json_object_get(addr, "district"), "%s: address",
			  what);
	if (d->views[MOAT_FIELD_ID_NUMBER] == MOAT_VIEW_MASK)
		CHECK_MSG(has_str(r, "110105********002X"), "%s: masked id", what);
	if (d->views[MOAT_FIELD_ITEMS] == MOAT_VIEW_CATEGORY)
		CHECK_MSG(json_is_array(json_object_get(r->json, "items")) &&
			      !has_str(r, "\"title\""),
			  "%s: category items", what);
	if (d->views[MOAT_FIELD_ITEMS] == MOAT_VIEW_HIDDEN)
		CHECK_MSG(!json_object_get(r->json, "items"), "%s: hidden items present", what);
}

/* Decision the policy makes for this read, computed here from the same inputs. */
static void expected(const char *principal, const char *order_id, moat_purpose_t purpose,
		     moat_policy_decision_t *d)
{
	moat_principal_row_t p;
	moat_order_row_t o;
	memset(&o, 0, sizeof o);
	moat_error_t e = {0};
	moat_policy_request_t q;
	CHECK(moat_store_principal_get(app->store, principal, &p, &e) == MOAT_OK);
	CHECK(moat_store_order_get(app->store, order_id, &o, &e) == MOAT_OK);
	CHECK(moat_gateway_policy_request(app->store, &p, &o, purpose, moat_now(), &q, NULL, &e) ==
	      MOAT_OK);
	moat_policy_decide(policy, &q, d);
	moat_order_row_clear(&o);
}

/* Entry `index` of the ledger as JSON text (for assertions); false if absent. */
static bool ledger_entry_json(uint64_t index, moat_buf_t *out)
{
	moat_buf_t raw;
	moat_buf_init(&raw, MOAT_ENTRY_MAX + 16);
	static char scratch[MOAT_ENTRY_MAX + 128];
	moat_entry_t ent;
	moat_error_t e = {0};
	bool ok = moat_ledger_read(app->ledger, index, &raw, &e) == MOAT_OK &&
		  moat_entry_decode((const uint8_t *)raw.data, raw.len, &ent, scratch,
				    sizeof scratch, &e) == MOAT_OK &&
		  moat_entry_to_json(&ent, out) == MOAT_OK;
	moat_buf_free(&raw);
	return ok;
}

/* ---- the tests ------------------------------------------------------------------- */

static void test_matrix(void)
{
	int cells = 0, allowed = 0;
	for (int r = 0; r < MOAT_ROLE_COUNT; r++)
		for (int pu = 0; pu < MOAT_PURPOSE_COUNT; pu++)
			for (int st = 0; st < MOAT_STATUS_COUNT; st++)
				for (int rel = 0; rel < 2; rel++) {
					char id[64], path[200], pid[16], what[160];
					matrix_order_id(r, st, rel, id);
					snprintf(pid, sizeof pid, "p-%d", r);
					snprintf(path, sizeof path, "/v1/orders/%s?purpose=%s", id,
						 moat_purpose_name((moat_purpose_t)pu));
					snprintf(what, sizeof what, "%s %s %s %s rel=%d",
						 moat_role_name((moat_role_t)r),
						 moat_purpose_name((moat_purpose_t)pu),
						 status_names[st], id, rel);
					moat_policy_decision_t d;
					expected(pid, id, (moat_purpose_t)pu, &d);
					resp_t resp;
					get(&resp, path, keys[r]);
					cells++;
					if (d.allow) {
						allowed++;
						CHECK_MSG(resp.status == 200,
							  "%s: status %ld, policy allows by %s: %s",
							  what, resp.status, d.rule,
							  resp.body.data);
						if (resp.status == 200) {
							check_views(&resp, &d,
								    order_number(r, st, rel), what);
							CHECK_MSG(resp.ledger_index[0] != '\0',
								  "%s: no receipt", what);
							CHECK_STR(json_string_value(json_object_get(
								      resp.json, "rule")),
								  d.rule);
						}
					} else {
						expect_error(&resp, 403, "denied", what);
						CHECK_MSG(!has_str(&resp, "晓梅") &&
							      !has_str(&resp, "幸福路"),
							  "%s: denial leaks", what);
					}
					resp_free(&resp);
				}
	CHECK_INT(cells, MOAT_ROLE_COUNT * MOAT_PURPOSE_COUNT * MOAT_STATUS_COUNT * 2);
	printf("matrix: %d cells, %d allowed\n", cells, allowed);
	CHECK(allowed > 20 && allowed < cells - 100);

	/* Known answers, independent of the code above. */
	char id[64], path[200];
	resp_t resp;
	matrix_order_id(MOAT_ROLE_COURIER, MOAT_STATUS_SHIPPED, 1, id);
	snprintf(path, sizeof path, "/v1/orders/%s?purpose=deliver", id);
	get(&resp, path, keys[MOAT_ROLE_COURIER]);
	CHECK_INT(resp.status, 200);
	CHECK_STR(json_string_value(json_object_get(json_object_get(resp.json, "views"), "phone")),
		  "virtual");
	resp_free(&resp);
	matrix_order_id(MOAT_ROLE_COURIER, MOAT_STATUS_SHIPPED, 0, id);
	snprintf(path, sizeof path, "/v1/orders/%s?purpose=deliver", id);
	get(&resp, path, keys[MOAT_ROLE_COURIER]);
	CHECK_INT(resp.status, 403);
	resp_free(&resp);
	matrix_order_id(MOAT_ROLE_CS_AGENT, MOAT_STATUS_DELIVERED, 1, id);
	snprintf(path, sizeof path, "/v1/orders/%s?purpose=customer_care", id);
	get(&resp, path, keys[MOAT_ROLE_CS_AGENT]);
	CHECK_INT(resp.status, 200);
	CHECK_STR(
	    json_string_value(json_object_get(json_object_get(resp.json, "views"), "address")),
	    "coarse");
	resp_free(&resp);
}

static void test_random_no_leak(void)
{
	srand(12345);
	int n = 0;
	for (int i = 0; i < 400; i++) {
		int r = rand() % MOAT_ROLE_COUNT, ro = rand() % MOAT_ROLE_COUNT;
		int st = rand() % MOAT_STATUS_COUNT, rel = rand() % 2,
		    pu = rand() % MOAT_PURPOSE_COUNT;
		char id[64], path[200], pid[16], what[300];
		matrix_order_id(ro, st, rel, id);
		snprintf(pid, sizeof pid, "p-%d", r);
		bool list = rand() % 4 == 0;
		if (list)
			snprintf(path, sizeof path, "/v1/orders?purpose=%s&limit=%d&cursor=%s",
				 moat_purpose_name((moat_purpose_t)pu), 1 + rand() % 5, id);
		else
			snprintf(path, sizeof path, "/v1/orders/%s?purpose=%s", id,
				 moat_purpose_name((moat_purpose_t)pu));
		snprintf(what, sizeof what, "random %d: %s as %s", i, path, pid);
		resp_t resp;
		get(&resp, path, keys[r]);
		if (!list) {
			moat_policy_decision_t d;
			expected(pid, id, (moat_purpose_t)pu, &d);
			if (resp.status == 200)
				check_views(&resp, &d, order_number(ro, st, rel), what);
			else
				CHECK_MSG(resp.status == 403 && !d.allow, "%s: status %ld", what,
					  resp.status);
			n++;
		} else if (resp.status == 200) {
			size_t k;
			json_t *o;
			json_array_foreach(json_object_get(resp.json, "orders"), k, o)
			{
				const char *oid = json_string_value(json_object_get(o, "order_id"));
				int orole, ost, orel;
				if (!oid || sscanf(oid, "O-%d-%d-%d", &orole, &ost, &orel) != 3)
					continue;
				moat_policy_decision_t d;
				expected(pid, oid, (moat_purpose_t)pu, &d);
				CHECK_MSG(d.allow, "%s: listed %s though denied", what, oid);
				resp_t one = {0};
				one.json = o;
				char *s = json_dumps(o, JSON_COMPACT);
				moat_buf_init(&one.body, 1 << 20);
				if (s && moat_buf_puts(&one.body, s) == MOAT_OK)
					check_views(&one, &d, order_number(orole, ost, orel), what);
				moat_buf_free(&one.body);
				free(s);
				n++;
			}
		}
		resp_free(&resp);
	}
	printf("random: %d order responses checked\n", n);
}

static const char *phone_of(const resp_t *r)
{
	return json_string_value(json_object_get(json_object_get(r->json, "buyer"), "phone"));
}

static void test_virtual_numbers(void)
{
	resp_t a1, a2, b1;
	char k2[72];
	set_key("courier-2", k2);
	get(&a1, "/v1/orders/V1?purpose=deliver", keys[MOAT_ROLE_COURIER]);
	get(&a2, "/v1/orders/V1?purpose=deliver", keys[MOAT_ROLE_COURIER]);
	get(&b1, "/v1/orders/V1?purpose=deliver", k2);
	CHECK_INT(a1.status, 200);
	CHECK_INT(b1.status, 200);
	const char *pa1 = phone_of(&a1), *pa2 = phone_of(&a2), *pb1 = phone_of(&b1);
	CHECK_MSG(pa1 && pa2 && strcmp(pa1, pa2) == 0, "same recipient, same number");
	CHECK_MSG(pa1 && pb1 && strcmp(pa1, pb1) != 0, "different recipients, different numbers");
	char real[16], name[32], detail[64], title[64];
	buyer_of(901, name, real, detail, title);
	CHECK(pa1 && strcmp(pa1, real) != 0);

	/* a call through the binding while valid is relayed to the buyer */
	char body[300], t[32];
	moat_time_format(moat_now(), t);
	snprintf(body, sizeof body,
		 "{\"time\":\"%s\",\"from\":\"+86 170 0000 0000\",\"to\":\"+86 %s\"}", t,
		 pa1 ? pa1 : "");
	resp_t c;
	post(&c, "/v1/calls", svc_key, body);
	CHECK_INT(c.status, 200);
	CHECK_STR(json_string_value(json_object_get(c.json, "action")), "relay");
	CHECK_STR(json_string_value(json_object_get(c.json, "relay_to")), real);
	CHECK_STR(
	    json_string_value(json_object_get(json_object_get(c.json, "binding"), "principal")),
	    "p-5");
	resp_free(&c);
	/* after the window: rejected, and the binding still names its recipient */
	moat_time_format(moat_now() + 40LL * 86400000, t);
	snprintf(body, sizeof body, "{\"time\":\"%s\",\"from\":\"17000000000\",\"to\":\"%s\"}", t,
		 pb1 ? pb1 : "");
	post(&c, "/v1/calls", svc_key, body);
	CHECK_INT(c.status, 200);
	CHECK_STR(json_string_value(json_object_get(c.json, "action")), "reject");
	CHECK_STR(json_string_value(json_object_get(c.json, "reason")), "expired");
	CHECK_STR(
	    json_string_value(json_object_get(json_object_get(c.json, "binding"), "principal")),
	    "courier-2");
	CHECK(!has_str(&c, real));
	resp_free(&c);
	post(&c, "/v1/calls", svc_key,
	     "{\"time\":\"2026-01-01T00:00:00Z\",\"from\":\"17000000000\",\"to\":\"19999999999\"}");
	CHECK_STR(json_string_value(json_object_get(c.json, "reason")), "unknown");
	resp_free(&c);
	/* only the telephony service may ask */
	post(&c, "/v1/calls", keys[MOAT_ROLE_COURIER], body);
	expect_error(&c, 403, "forbidden", "calls by a courier");
	resp_free(&c);
	resp_free(&a1);
	resp_free(&a2);
	resp_free(&b1);
}

static void write_policy(const char *text)
{
	char path[400];
	snprintf(path, sizeof path, "%s/policy.conf", data);
	moat_error_t e = {0};
	CHECK(moat_file_write_atomic(path, text, strlen(text), 0640, &e) == MOAT_OK);
	CHECK_MSG(moat_gateway_reload(gw, &e) == MOAT_OK, "%s", e.msg);
}

static void test_quota(void)
{
	char kq[72];
	set_key("courier-q", kq);
	write_policy("rule q\n  role courier\n  purpose deliver\n  relation assign\n"
		     "  view name=mask phone=virtual address=full\n  quota 2\nend\n");
	resp_t r;
	get(&r, "/v1/orders/Q0?purpose=deliver", kq);
	CHECK_INT(r.status, 200);
	resp_free(&r);
	get(&r, "/v1/orders/Q1?purpose=deliver", kq);
	CHECK_INT(r.status, 200);
	resp_free(&r);
	get(&r, "/v1/orders/Q2?purpose=deliver", kq);
	expect_error(&r, 429, "quota_exceeded", "third plaintext read");
	CHECK(has_str(&r, "rule q"));
	CHECK(!has_str(&r, "幸福路"));
	resp_free(&r);
	get(&r, "/v1/orders?purpose=deliver&cursor=P", kq);
	expect_error(&r, 429, "quota_exceeded", "list over quota");
	resp_free(&r);
	/* back to the default policy */
	write_policy(moat_policy_default_text());
}

static void test_ledger_invariant(void)
{
	char id[64], path[200];
	matrix_order_id(MOAT_ROLE_COURIER, MOAT_STATUS_SHIPPED, 1, id);
	snprintf(path, sizeof path, "/v1/orders/%s?purpose=deliver", id);
	char name[32], phone[16], detail[64], title[64];
	buyer_of(order_number(MOAT_ROLE_COURIER, MOAT_STATUS_SHIPPED, 1), name, phone, detail,
		 title);
	FILE *f = fopen(fail_flag, "w");
	if (f)
		fclose(f);
	resp_t r;
	get(&r, path, keys[MOAT_ROLE_COURIER]);
	expect_error(&r, 503, "ledger_unavailable", "read with the ledger failing");
	CHECK(!has_str(&r, detail) && !has_str(&r, "晓梅") && !has_str(&r, "\"phone\""));
	resp_free(&r);
	get(&r, "/v1/orders?purpose=deliver&limit=100", keys[MOAT_ROLE_COURIER]);
	expect_error(&r, 503, "ledger_unavailable", "list with the ledger failing");
	CHECK(!has_str(&r, "幸福路"));
	resp_free(&r);
	char body[300], t[32];
	moat_time_format(moat_now(), t);
	get(&r, "/v1/orders/V1?purpose=deliver", keys[MOAT_ROLE_COURIER]);
	CHECK_INT(r.status, 503);
	resp_free(&r);
	unlink(fail_flag);
	get(&r, path, keys[MOAT_ROLE_COURIER]);
	CHECK_INT(r.status, 200);
	CHECK(has_str(&r, detail));
	/* the receipt points at an ACCESS entry in the ledger, without PII */
	long idx = atol(r.ledger_index);
	resp_free(&r);
	moat_buf_t ej;
	moat_buf_init(&ej, 1 << 20);
	bool found = ledger_entry_json((uint64_t)idx, &ej) &&
		     strstr(ej.data, "\"kind\":\"access\"") && strstr(ej.data, id) &&
		     !strstr(ej.data, detail) && !strstr(ej.data, phone);
	CHECK_MSG(found, "ledger index %ld is the ACCESS entry of %s, without PII: %s", idx, id,
		  ej.data);
	moat_buf_free(&ej);
	(void)body;
}

static void test_sessions(void)
{
	char phc[MOAT_PHC_MAX];
	moat_error_t e = {0};
	CHECK(moat_password_hash("correct horse battery", phc, &e) == MOAT_OK);
	CHECK(moat_store_principal_set_password(app->store, "staff-s", phc, &e) == MOAT_OK);
	resp_t r;
	post(&r, "/v1/sessions", NULL,
	     "{\"username\":\"staff-s\",\"password\":\"wrong password\"}");
	expect_error(&r, 401, "unauthenticated", "wrong password");
	resp_free(&r);
	post(&r, "/v1/sessions", NULL, "{\"username\":\"nobody\",\"password\":\"whatever123\"}");
	expect_error(&r, 401, "unauthenticated", "unknown user");
	resp_free(&r);
	post(&r, "/v1/sessions", NULL,
	     "{\"username\":\"staff-s\",\"password\":\"correct horse battery\"}");
	CHECK_INT(r.status, 201);
	char token[256] = "";
	snprintf(token, sizeof token, "%s",
		 json_string_value(json_object_get(r.json, "token")) ?: "");
	resp_free(&r);
	get(&r, "/v1/orders/O-3-1-1?purpose=analytics", token);
	CHECK_MSG(r.status == 403 || r.status == 200, "token accepted: %ld", r.status);
	CHECK(r.status != 401);
	resp_free(&r);
	token[strlen(token) - 1] ^= 1; /* tampered principal id */
	get(&r, "/v1/orders/O-3-1-1?purpose=analytics", token);
	expect_error(&r, 401, NULL, "tampered token");
	resp_free(&r);
	CHECK(moat_store_principal_set_status(app->store, "staff-s", MOAT_PRINCIPAL_SUSPENDED,
					      &e) == MOAT_OK);
	post(&r, "/v1/sessions", NULL,
	     "{\"username\":\"staff-s\",\"password\":\"correct horse battery\"}");
	expect_error(&r, 403, "suspended", "suspended login");
	resp_free(&r);
	/* every attempt is a login entry */
	int logins = 0, ok = 0;
	uint64_t size = moat_ledger_size(app->ledger);
	for (uint64_t i = 0; i < size; i++) {
		moat_buf_t ej;
		moat_buf_init(&ej, 1 << 20);
		if (ledger_entry_json(i, &ej) && strstr(ej.data, "\"kind\":\"login\"")) {
			logins++;
			ok += strstr(ej.data, "\"result\":\"success\"") != NULL;
			CHECK(!strstr(ej.data, "correct horse"));
		}
		moat_buf_free(&ej);
	}
	CHECK_INT(logins, 4);
	CHECK_INT(ok, 1);
}

/* The replay clock: ignored by a normal gateway; honoured (time, source address,
 * session expiry, replayed flag) by one started with replay_clock. */
static void test_replay_clock(void)
{
	static const char *const past[] = {"Moat-Replay-Time: 2026-09-01T10:00:00+08:00",
					   "Moat-Replay-Client-IP: 192.0.2.7", NULL};
	moat_time_t t0;
	CHECK(moat_time_parse("2026-09-01T10:00:00+08:00", &t0));
	moat_buf_t ej;
	moat_buf_init(&ej, 1 << 20);
	resp_t r;
	/* normal gateway: the headers change nothing */
	moat_time_t before = moat_now();
	extra_headers = past;
	get(&r, "/v1/orders/O-3-1-1?purpose=audit", keys[MOAT_ROLE_AUDITOR]);
	CHECK_INT(r.status, 200);
	CHECK(r.ledger_index[0] && ledger_entry_json(strtoull(r.ledger_index, NULL, 10), &ej));
	CHECK(ej.data && !strstr(ej.data, "replayed") && !strstr(ej.data, "192.0.2.7") &&
	      !strstr(ej.data, "2026-09-01"));
	CHECK(moat_now() >= before);
	resp_free(&r);

	/* a replay-clock gateway on the same data */
	moat_gateway_opts_t go = {0};
	go.listen = "127.0.0.1:0";
	moat_gateway_ledger_sink(app->ledger, &go.sink);
	go.ledger = app->ledger;
	go.replay_clock = true;
	moat_gateway_t *rg = NULL;
	moat_error_t e = {0};
	CHECK_MSG(moat_gateway_start(app, &go, &rg, &e) == MOAT_OK, "%s", e.msg);
	if (!rg) {
		extra_headers = NULL;
		moat_buf_free(&ej);
		return;
	}
	int saved_port = port;
	port = moat_gateway_port(rg);
	get(&r, "/v1/orders/O-3-1-1?purpose=audit", keys[MOAT_ROLE_AUDITOR]);
	CHECK_INT(r.status, 200);
	moat_buf_reset(&ej);
	CHECK(r.ledger_index[0] && ledger_entry_json(strtoull(r.ledger_index, NULL, 10), &ej));
	CHECK(ej.data && strstr(ej.data, "\"replayed\":true") &&
	      strstr(ej.data, "\"ip\":\"192.0.2.7\"") &&
	      strstr(ej.data, "\"time\":\"2026-09-01T02:00:00"));
	resp_free(&r);
	/* sessions are issued and checked on the request's clock */
	char secret[] = "0123456789abcdef0123456789abcdef", phc[MOAT_PHC_MAX];
	CHECK(moat_password_hash_secret(secret, phc, &e) == MOAT_OK);
	CHECK(moat_password_hash_secret("short-secret", phc + 0, &e) == MOAT_EINVAL);
	CHECK(moat_password_hash_secret(secret, phc, &e) == MOAT_OK);
	CHECK(moat_store_principal_set_password(app->store, "staff-r", phc, &e) == MOAT_OK);
	post(&r, "/v1/sessions", NULL,
	     "{\"username\":\"staff-r\",\"password\":\"0123456789abcdef0123456789abcdef\"}");
	CHECK_INT(r.status, 201);
	char token[256] = "";
	snprintf(token, sizeof token, "%s",
		 json_string_value(json_object_get(r.json, "token")) ?: "");
	moat_time_t until = MOAT_TIME_NONE;
	CHECK(moat_time_parse(json_string_value(json_object_get(r.json, "expires_at")) ?: "",
			      &until) &&
	      until == t0 + 15 * 60 * 1000);
	resp_free(&r);
	static const char *const later[] = {"Moat-Replay-Time: 2026-09-01T10:14:00+08:00", NULL};
	static const char *const too_late[] = {"Moat-Replay-Time: 2026-09-01T10:16:00+08:00", NULL};
	extra_headers = later;
	get(&r, "/v1/orders/O-3-1-1?purpose=analytics", token);
	CHECK_MSG(r.status != 401, "token valid 14 replayed minutes later: %ld", r.status);
	resp_free(&r);
	extra_headers = too_late;
	get(&r, "/v1/orders/O-3-1-1?purpose=analytics", token);
	expect_error(&r, 401, "unauthenticated", "token expired on the replay clock");
	resp_free(&r);
	extra_headers = NULL;
	get(&r, "/v1/orders/O-3-1-1?purpose=analytics", token);
	expect_error(&r, 401, "unauthenticated", "token expired at the real now");
	resp_free(&r);
	static const char *const bad[] = {"Moat-Replay-Time: tomorrow", NULL};
	static const char *const bad_ip[] = {"Moat-Replay-Client-IP: 999.1.1.1", NULL};
	extra_headers = bad;
	get(&r, "/v1/orders/O-3-1-1?purpose=audit", keys[MOAT_ROLE_AUDITOR]);
	expect_error(&r, 422, "invalid", "malformed Moat-Replay-Time");
	resp_free(&r);
	extra_headers = bad_ip;
	get(&r, "/v1/orders/O-3-1-1?purpose=audit", keys[MOAT_ROLE_AUDITOR]);
	expect_error(&r, 422, "invalid", "malformed Moat-Replay-Client-IP");
	resp_free(&r);
	extra_headers = NULL;
	port = saved_port;
	moat_gateway_stop(rg);

	/* the policy judges the order's state as of now */
	moat_principal_row_t p;
	memset(&p, 0, sizeof p);
	snprintf(p.principal, sizeof p.principal, "staff-r");
	snprintf(p.party, sizeof p.party, "m-a");
	p.role = MOAT_ROLE_CS_AGENT;
	moat_order_row_t o;
	memset(&o, 0, sizeof o);
	snprintf(o.order_id, sizeof o.order_id, "O-none");
	snprintf(o.merchant, sizeof o.merchant, "m-a");
	o.status = MOAT_STATUS_CLOSED;
	o.placed_at = t0;
	o.shipped_at = t0 + 86400000;
	o.delivered_at = t0 + 3 * 86400000LL;
	moat_policy_request_t q;
	static const struct {
		moat_time_t at;
		moat_order_status_t want;
	} cases[] = {{0, MOAT_STATUS_PAID},
		     {86400000 + 1, MOAT_STATUS_SHIPPED},
		     {3 * 86400000LL + 1, MOAT_STATUS_CLOSED}};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(cases); i++) {
		CHECK(moat_gateway_policy_request(app->store, &p, &o, MOAT_PURPOSE_CUSTOMER_CARE,
						  t0 + cases[i].at, &q, NULL, &e) == MOAT_OK);
		CHECK_INT(q.status, cases[i].want);
	}
	moat_buf_free(&ej);
}

static void test_ingest(void)
{
	resp_t r;
	int64_t before = 0, after = 0;
	moat_error_t e = {0};
	CHECK(moat_store_order_count(app->store, &before, &e) == MOAT_OK);
	const char *good =
	    "{\"order_id\":\"N1\",\"merchant\":\"m-a\",\"placed_at\":\"2026-03-01T10:00:00+08:00\","
	    "\"status\":\"paid\",\"buyer\":{\"name\":\"张三\",\"phone\":\"13900000001\","
	    "\"address\":{\"province\":\"a\",\"city\":\"b\",\"district\":\"c\",\"detail\":\"d\"}},"
	    "\"items\":[]}";
	char batch[4096];
	snprintf(
	    batch, sizeof batch, "%s\n%s\n{\"order_id\":\"N3\",\"merchant\":\"m-a\"}\n", good,
	    "{\"order_id\":\"N2\",\"merchant\":\"m-a\",\"placed_at\":\"2026-03-01T10:00:00+08:00\","
	    "\"status\":\"paid\",\"buyer\":{\"name\":\"李四\",\"phone\":\"13900000002\","
	    "\"address\":{\"province\":\"a\",\"city\":\"b\",\"district\":\"c\",\"detail\":\"d\"}},"
	    "\"items\":[]}");
	http(&r, "POST", "/v1/orders", svc_key, "application/x-ndjson", batch, strlen(batch));
	expect_error(&r, 422, "invalid", "batch with a bad third record");
	CHECK(has_str(&r, "line 3"));
	resp_free(&r);
	CHECK(moat_store_order_count(app->store, &after, &e) == MOAT_OK);
	CHECK_INT(after, before); /* all-or-nothing */
	post(&r, "/v1/orders", svc_key, good);
	CHECK_INT(r.status, 201);
	resp_free(&r);
	CHECK(moat_store_order_count(app->store, &after, &e) == MOAT_OK);
	CHECK_INT(after, before + 1);
	/* unknown key, wrong type */
	post(&r, "/v1/parties", svc_key,
	     "{\"party\":\"x1\",\"kind\":\"merchant\",\"name\":\"X\",\"colour\":\"red\"}");
	expect_error(&r, 422, "invalid", "unknown key");
	CHECK(has_str(&r, "colour"));
	resp_free(&r);
	post(&r, "/v1/parties", svc_key, "{\"party\":7,\"kind\":\"merchant\",\"name\":\"X\"}");
	expect_error(&r, 422, "invalid", "wrong type");
	resp_free(&r);
	post(&r, "/v1/parties", svc_key,
	     "[{\"party\":\"x2\",\"kind\":\"merchant\",\"name\":\"X\"},{\"party\":\"x3\",\"kind\":"
	     "\"isv\",\"name\":\"Y\"}]");
	CHECK_INT(r.status, 201);
	resp_free(&r);
	/* The batch body (shared with POST /v1/reports): NDJSON skips blank and
	 * CRLF-only lines, names the line of broken JSON, refuses an empty batch,
	 * a scalar body and more than GW_MAX_BATCH records, and writes nothing. */
	const char *nd = "{\"party\":\"x4\",\"kind\":\"merchant\",\"name\":\"X\"}\r\n\n\r\n"
			 "{\"party\":\"x5\",\"kind\":\"isv\",\"name\":\"Y\"}";
	http(&r, "POST", "/v1/parties", svc_key, "application/x-ndjson", nd, strlen(nd));
	CHECK_INT(r.status, 201);
	CHECK(has_str(&r, "\"imported\":2"));
	resp_free(&r);
	static const struct {
		bool ndjson;
		const char *body, *what, *says;
	} bad[] = {
	    {true, "{\"party\":\"x6\",\"kind\":\"merchant\",\"name\":\"X\"}\n\n{\"party\":\"x7\",",
	     "NDJSON with broken JSON on line 3", "line 3"},
	    {true, "\n\r\n", "NDJSON of blank lines", "no records"},
	    {false, "[]", "an empty array", "no records"},
	    {false, "\"x8\"", "a string body", "not valid JSON"},
	    {false, "[{\"party\":\"x9\",\"kind\":\"merchant\",\"name\":\"X\"},7]",
	     "an array with a number in it", "record 2"},
	};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		http(&r, "POST", "/v1/parties", svc_key,
		     bad[k].ndjson ? "application/x-ndjson" : "application/json", bad[k].body,
		     strlen(bad[k].body));
		expect_error(&r, 422, "invalid", bad[k].what);
		CHECK_MSG(has_str(&r, bad[k].says), "%s: no \"%s\" in the error", bad[k].what,
			  bad[k].says);
		resp_free(&r);
	}
	moat_buf_t big;
	moat_buf_init(&big, 1u << 20);
	for (int k = 0; k <= 1000; k++) /* GW_MAX_BATCH + 1 */
		CHECK(moat_buf_printf(&big,
				      "{\"party\":\"y%d\",\"kind\":\"merchant\",\"name\":\"Y\"}\n",
				      k) == MOAT_OK);
	http(&r, "POST", "/v1/parties", svc_key, "application/x-ndjson", big.data, big.len);
	expect_error(&r, 413, "too_large", "one record over the batch cap");
	CHECK(has_str(&r, "more than 1000 records"));
	resp_free(&r);
	moat_buf_free(&big);
	for (const char *const *id = (const char *const[]){"x6", "x9", "y0", "y1000", NULL}; *id;
	     id++) {
		moat_party_row_t pr;
		CHECK(moat_store_party_get(app->store, *id, &pr, &e) == MOAT_ENOTFOUND);
	}
	/* only platform_service ingests orders */
	post(&r, "/v1/orders", keys[MOAT_ROLE_COURIER], good);
	expect_error(&r, 403, "forbidden", "courier ingest");
	resp_free(&r);
	/* relations as workflow: a merchant admin opens a ticket on its own order, not others' */
	post(&r, "/v1/relations", keys[MOAT_ROLE_MERCHANT_ADMIN],
	     "{\"kind\":\"ticket\",\"order_id\":\"N1\",\"principal\":\"p-3\",\"ticket\":\"T9\","
	     "\"opened\":\"2026-01-01T00:00:00Z\"}");
	CHECK_INT(r.status, 201);
	resp_free(&r);
	post(&r, "/v1/relations", keys[MOAT_ROLE_MERCHANT_ADMIN],
	     "{\"kind\":\"ticket\",\"order_id\":\"V1\",\"principal\":\"p-3\",\"ticket\":\"T9\","
	     "\"opened\":\"2026-01-01T00:00:00Z\"}");
	expect_error(&r, 403, "forbidden", "merchant admin on another merchant's order");
	resp_free(&r);
	get(&r, "/v1/orders/N1?purpose=customer_care", keys[MOAT_ROLE_CS_AGENT]);
	CHECK_INT(r.status, 200); /* the ticket made the read related */
	resp_free(&r);
}

static void test_bad_input(void)
{
	resp_t r;
	get(&r, "/v1/orders/V1?purpose=deliver", NULL);
	expect_error(&r, 401, "unauthenticated", "no credentials");
	resp_free(&r);
	get(&r, "/v1/orders/V1?purpose=deliver",
	    "moat_0000000000000000000000000000000000000000000000000000000000000000");
	expect_error(&r, 401, "unauthenticated", "unknown key");
	resp_free(&r);
	get(&r, "/v1/orders/V1?purpose=deliver", "garbage");
	expect_error(&r, 401, "unauthenticated", "garbage key");
	resp_free(&r);
	moat_error_t e = {0};
	CHECK(moat_store_principal_set_status(app->store, "p-4", MOAT_PRINCIPAL_SUSPENDED, &e) ==
	      MOAT_OK);
	get(&r, "/v1/orders/V1?purpose=ship", keys[MOAT_ROLE_WAREHOUSE]);
	expect_error(&r, 403, "suspended", "suspended principal");
	resp_free(&r);
	CHECK(moat_store_principal_set_status(app->store, "p-4", MOAT_PRINCIPAL_ACTIVE, &e) ==
	      MOAT_OK);
	const char *ck = keys[MOAT_ROLE_COURIER];
	get(&r, "/v1/orders/NOPE?purpose=deliver", ck);
	expect_error(&r, 404, "not_found", "unknown order");
	resp_free(&r);
	get(&r, "/v1/nothing", ck);
	expect_error(&r, 404, "not_found", "unknown endpoint");
	resp_free(&r);
	http(&r, "DELETE", "/v1/orders/V1?purpose=deliver", ck, NULL, NULL, 0);
	expect_error(&r, 405, "method_not_allowed", "DELETE");
	resp_free(&r);
	http(&r, "PUT", "/v1/calls", ck, NULL, NULL, 0);
	expect_error(&r, 405, "method_not_allowed", "PUT calls");
	resp_free(&r);
	get(&r, "/v1/orders/V1", ck);
	expect_error(&r, 422, "invalid", "missing purpose");
	resp_free(&r);
	get(&r, "/v1/orders/V1?purpose=gossip", ck);
	expect_error(&r, 422, "invalid", "unknown purpose");
	CHECK(has_str(&r, "\"field\":\"purpose\""));
	resp_free(&r);
	get(&r, "/v1/orders/V1?purpose=deliver&verbose=1", ck);
	expect_error(&r, 422, "invalid", "unknown query key");
	resp_free(&r);
	get(&r, "/v1/orders/V1?purpose=%FF%FE", ck);
	expect_error(&r, 422, "invalid", "invalid UTF-8 in query");
	resp_free(&r);
	get(&r, "/v1/orders?purpose=deliver&limit=1000", ck);
	expect_error(&r, 422, "invalid", "limit over cap");
	resp_free(&r);
	get(&r, "/v1/orders?purpose=deliver&since=yesterday", ck);
	expect_error(&r, 422, "invalid", "bad since");
	resp_free(&r);
	/* far past the cap, and still moat's JSON error, not libmicrohttpd's page */
	char longpath[12000] = "/v1/orders/";
	memset(longpath + 11, 'a', 10000);
	longpath[10011] = '\0';
	get(&r, longpath, ck);
	expect_error(&r, 414, "uri_too_long", "long path");
	resp_free(&r);
	char longq[3000] = "/v1/orders/V1?purpose=";
	memset(longq + 22, 'a', 1000);
	longq[1022] = '\0';
	get(&r, longq, ck);
	expect_error(&r, 414, "uri_too_long", "long query");
	resp_free(&r);
	/* bodies */
	http(&r, "POST", "/v1/parties", svc_key, "text/plain", "{}", 2);
	expect_error(&r, 415, "unsupported_media_type", "text/plain");
	resp_free(&r);
	http(&r, "POST", "/v1/parties", svc_key, NULL,
	     "{\"party\":\"\xff\xfe\",\"kind\":\"isv\",\"name\":\"x\"}", 36);
	expect_error(&r, 422, "invalid", "invalid UTF-8 body");
	resp_free(&r);
	post(&r, "/v1/parties", svc_key, "{\"party\":");
	expect_error(&r, 422, "invalid", "truncated JSON");
	resp_free(&r);
	size_t big = 100 * 1024;
	char *huge = malloc(big);
	memset(huge, ' ', big);
	huge[0] = '{';
	huge[big - 1] = '}';
	http(&r, "POST", "/v1/parties", svc_key, NULL, huge, big);
	expect_error(&r, 413, "too_large", "body over cap");
	resp_free(&r);
	free(huge);
	post(&r, "/v1/sessions", NULL, "{\"username\":\"a\",\"password\":\"b\",\"otp\":\"1\"}");
	expect_error(&r, 422, "invalid", "unknown key in login");
	resp_free(&r);
	post(&r, "/v1/calls", svc_key, "{\"time\":\"now\",\"from\":\"1\",\"to\":\"2\"}");
	expect_error(&r, 422, "invalid", "bad call time");
	resp_free(&r);
	/* duplicate keys are refused too */
	post(&r, "/v1/parties", svc_key,
	     "{\"party\":\"d1\",\"party\":\"d2\",\"kind\":\"isv\",\"name\":\"x\"}");
	expect_error(&r, 422, "invalid", "duplicate key");
	resp_free(&r);
}

static void test_slow_client(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {0};
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	const char *partial = "GET /v1/orders/V1?purpose=deliver HTTP/1.1\r\nHost: x\r\n";
	CHECK(write(fd, partial, strlen(partial)) == (ssize_t)strlen(partial));
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	uint64_t t0 = moat_mono_ns();
	char buf[256];
	ssize_t n = read(fd, buf, sizeof buf);
	double waited = (double)(moat_mono_ns() - t0) / 1e9;
	CHECK_MSG(n <= 0 && waited < 4.5, "slow client cut off after %.1fs (read %zd)", waited, n);
	close(fd);
}

static void test_ledger_routes(void)
{
	resp_t r;
	char id[64], path[200];
	matrix_order_id(MOAT_ROLE_COURIER, MOAT_STATUS_SHIPPED, 1, id);
	snprintf(path, sizeof path, "/v1/orders/%s?purpose=deliver", id);
	get(&r, path, keys[MOAT_ROLE_COURIER]);
	CHECK_INT(r.status, 200);
	char idx[32];
	snprintf(idx, sizeof idx, "%s", r.ledger_index);
	resp_free(&r);
	get(&r, "/v1/ledger/checkpoint", NULL);
	CHECK_INT(r.status, 200);
	CHECK(has_str(&r, "moat.local/"));
	resp_free(&r);
	/* the reader proves its own access entry against a signed checkpoint */
	snprintf(path, sizeof path, "/v1/ledger/proof/inclusion?index=%s", idx);
	get(&r, path, keys[MOAT_ROLE_COURIER]);
	CHECK_INT(r.status, 200);
	if (r.status == 200) {
		const char *note = json_string_value(json_object_get(r.json, "checkpoint"));
		moat_checkpoint_t cp;
		moat_error_t e = {0};
		CHECK(note && moat_ledger_checkpoint_verify(note, strlen(note),
							    moat_ledger_verifier_key(app->ledger),
							    &cp, &e) == MOAT_OK);
		uint8_t leaf[32], proof[64][32];
		size_t leaf_len = 0, n = 0;
		const char *lh = json_string_value(json_object_get(r.json, "leaf_hash"));
		CHECK(lh && moat_b64_decode(lh, strlen(lh), leaf, &leaf_len, sizeof leaf));
		size_t k;
		json_t *h;
		json_array_foreach(json_object_get(r.json, "proof"), k, h)
		{
			size_t hl = 0;
			const char *hs = json_string_value(h);
			if (n < 64 && hs && moat_b64_decode(hs, strlen(hs), proof[n], &hl, 32))
				n++;
		}
		uint64_t size = (uint64_t)json_integer_value(json_object_get(r.json, "size"));
		CHECK(size == cp.size);
		CHECK(moat_ledger_verify_inclusion(leaf, leaf_len, (uint64_t)atoll(idx), size,
						   (const uint8_t *)proof, n * 32, cp.root, 32));
	}
	resp_free(&r);
	get(&r, "/v1/ledger/proof/inclusion?index=0", keys[MOAT_ROLE_COURIER]);
	expect_error(&r, 403, "forbidden", "proof of another principal's entry");
	resp_free(&r);
	get(&r, "/v1/ledger/proof/inclusion?index=0", keys[MOAT_ROLE_AUDITOR]);
	CHECK_INT(r.status, 200);
	resp_free(&r);
	get(&r, "/v1/ledger/proof/inclusion?index=99999999", keys[MOAT_ROLE_AUDITOR]);
	expect_error(&r, 422, "invalid", "index beyond the log");
	resp_free(&r);
	get(&r, "/v1/ledger/proof/consistency?old=1", keys[MOAT_ROLE_COURIER]);
	CHECK_INT(r.status, 200);
	resp_free(&r);
	get(&r, "/v1/ledger/proof/consistency?old=0", keys[MOAT_ROLE_COURIER]);
	expect_error(&r, 422, "invalid", "consistency from 0");
	resp_free(&r);
	get(&r, "/v1/ledger/tile/entries/000", keys[MOAT_ROLE_COURIER]);
	expect_error(&r, 403, "forbidden", "entry bundle for a courier");
	resp_free(&r);
	get(&r, "/v1/ledger/tile/entries/000", keys[MOAT_ROLE_AUDITOR]);
	CHECK_MSG(r.status == 200 && r.body.len > 256, "entry bundle for an auditor: %ld",
		  r.status);
	resp_free(&r);
	get(&r, "/v1/ledger/tile/0/000", keys[MOAT_ROLE_COURIER]);
	CHECK_MSG(r.status == 200 && r.body.len == 256 * 32, "hash tile: %ld %zu", r.status,
		  r.body.len);
	resp_free(&r);
	get(&r, "/v1/ledger/tile/../../keys/dek-k1.key", keys[MOAT_ROLE_AUDITOR]);
	CHECK(r.status == 404 && !has_str(&r, "dek"));
	resp_free(&r);
	get(&r, "/v1/ledger/checkpoint", NULL);
	resp_free(&r);
}

/* Detector actions reach the gateway on the principal's next request. */
static void test_detector_actions(void)
{
	char k2[72];
	set_key("courier-2", k2);
	moat_error_t e = {0};
	int64_t id = 0;
	resp_t r;
	CHECK(moat_store_action_put(app->store, "courier-2", MOAT_ACTION_FORCE_MASK, "A-test",
				    moat_now(), -1, &id, &e) == MOAT_OK);
	get(&r, "/v1/orders/V1?purpose=deliver", k2);
	CHECK_INT(r.status, 200);
	json_t *views = json_object_get(r.json, "views");
	CHECK_STR(json_string_value(json_object_get(views, "phone")), "mask");
	CHECK_STR(json_string_value(json_object_get(views, "address")), "coarse");
	CHECK(!has_str(&r, "幸福路"));
	const char *ph = phone_of(&r);
	CHECK(ph && strstr(ph, "****") != NULL);
	resp_free(&r);
	CHECK(moat_store_action_lift(app->store, id, "test", moat_now(), &e) == MOAT_OK);
	CHECK(moat_store_action_put(app->store, "courier-2", MOAT_ACTION_THROTTLE, "A-test2",
				    moat_now(), -1, &id, &e) == MOAT_OK);
	get(&r, "/v1/orders/V1?purpose=deliver", k2);
	CHECK_INT(r.status, 200);
	resp_free(&r);
	get(&r, "/v1/orders/V1?purpose=deliver", k2);
	expect_error(&r, 429, "throttled", "second read within a second");
	resp_free(&r);
	CHECK(moat_store_action_lift(app->store, id, "test", moat_now(), &e) == MOAT_OK);
	CHECK(moat_store_action_put(app->store, "courier-2", MOAT_ACTION_SUSPEND, "A-test3",
				    moat_now(), -1, &id, &e) == MOAT_OK);
	get(&r, "/v1/orders/V1?purpose=deliver", k2);
	expect_error(&r, 403, "suspended", "suspended by the detector");
	resp_free(&r);
	CHECK(moat_store_action_lift(app->store, id, "test", moat_now(), &e) == MOAT_OK);
	get(&r, "/v1/orders/V1?purpose=deliver", k2);
	CHECK_INT(r.status, 200);
	resp_free(&r);
	/* alerts: auditors yes, couriers no */
	get(&r, "/v1/alerts", keys[MOAT_ROLE_AUDITOR]);
	CHECK_INT(r.status, 200);
	CHECK(json_is_array(json_object_get(r.json, "alerts")));
	resp_free(&r);
	get(&r, "/v1/alerts", k2);
	expect_error(&r, 403, "forbidden", "alerts for a courier");
	resp_free(&r);
}

static void test_ops(void)
{
	resp_t r;
	get(&r, "/healthz", NULL);
	CHECK_INT(r.status, 200);
	resp_free(&r);
	get(&r, "/openapi.json", NULL);
	CHECK_INT(r.status, 200);
	CHECK_STR(json_string_value(json_object_get(r.json, "openapi")), "3.1.0");
	resp_free(&r);
	get(&r, "/metrics", NULL);
	CHECK_INT(r.status, 200);
	CHECK(has_str(&r, "moat_http_requests_total{route=\"order_get\",status=\"200\"}"));
	CHECK(has_str(&r, "moat_http_request_duration_seconds_bucket{le=\"+Inf\"}"));
	CHECK(has_str(&r, "moat_field_views_total{field=\"phone\",view=\"virtual\"}"));
	CHECK(has_str(&r, "moat_quota_refusals_total 2"));
	CHECK(has_str(&r, "moat_ledger_size "));
	CHECK(!has_str(&r, "moat_detect_")); /* no detector reported: no figures */
	resp_free(&r);
	moat_gateway_detect_progress(gw, 3, 5, 2, 1, true);
	moat_gateway_detect_progress(gw, 7, 0, 0, 0, false); /* a failed step keeps the rest */
	get(&r, "/metrics", NULL);
	CHECK_INT(r.status, 200);
	CHECK(has_str(&r, "moat_detect_judged_entries 3\n"));
	CHECK(has_str(&r, "moat_detect_replay_entries 5\n"));
	CHECK(has_str(&r, "moat_detect_alerts_total 2\n"));
	CHECK(has_str(&r, "moat_detect_actions_total 1\n"));
	CHECK(has_str(&r, "moat_detect_tick_failures_total 1\n"));
	{
		const char *lag = strstr(r.body.data, "\nmoat_detect_lag_entries ");
		const char *size = strstr(r.body.data, "\nmoat_ledger_size ");
		CHECK(lag && size);
		if (lag && size)
			CHECK_INT(strtoll(lag + 25, NULL, 10), strtoll(size + 18, NULL, 10) - 3);
	}
	resp_free(&r);
	/* keep-alive: several requests over one connection */
	curl_easy_reset(curl);
	char url[100];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
	long conns = 0, total = 0;
	for (int i = 0; i < 5; i++) {
		resp_t k;
		memset(&k, 0, sizeof k);
		moat_buf_init(&k.body, 4096);
		curl_easy_setopt(curl, CURLOPT_URL, url);
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(curl, CURLOPT_WRITEDATA, &k);
		CHECK(curl_easy_perform(curl) == CURLE_OK);
		curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &conns);
		total += conns;
		moat_buf_free(&k.body);
	}
	CHECK_MSG(total <= 1, "keep-alive: %ld connections for 5 requests", total);
}

/* ---- asynchronous sinks ----------------------------------------------------------- */

/* A sink around the test ledger whose asynchronous append misbehaves on
 * purpose: refuses at once, answers before it returns, or answers late. */
enum { SINK_REFUSE, SINK_ANSWER_INLINE, SINK_ANSWER_LATE };
static int sink_mode;

typedef struct late_call {
	moat_entry_t e;
	char principal[MOAT_ID_MAX + 1], order_id[MOAT_ID_MAX + 1], rule[MOAT_ID_MAX + 1];
	void (*done)(void *, moat_err_t, uint64_t);
	void *ctx;
} late_call_t;

static void *late_thread(void *arg)
{
	late_call_t *c = arg;
	struct timespec ts = {0, 150 * 1000 * 1000};
	nanosleep(&ts, NULL);
	uint64_t first = 0;
	moat_error_t e = {0};
	moat_err_t rc = moat_ledger_append(app->ledger, &c->e, 1, &first, &e);
	c->done(c->ctx, rc, first);
	free(c);
	return NULL;
}

static moat_err_t odd_append_async(void *ctx, const moat_entry_t *e, size_t n,
				   void (*done)(void *, moat_err_t, uint64_t), void *done_ctx,
				   moat_error_t *err)
{
	uint64_t first = 0;
	if (sink_mode == SINK_REFUSE || n != 1)
		return moat_error_set(err, MOAT_EUNAVAIL, NULL, "refused by the test sink");
	if (sink_mode == SINK_ANSWER_INLINE) {
		moat_err_t rc = moat_ledger_append(ctx, e, n, &first, err);
		done(done_ctx, rc, first);
		return MOAT_OK;
	}
	late_call_t *c = calloc(1, sizeof *c);
	if (!c)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	c->e = e[0];
	snprintf(c->principal, sizeof c->principal, "%s", e->principal ? e->principal : "");
	snprintf(c->order_id, sizeof c->order_id, "%s", e->order_id ? e->order_id : "");
	snprintf(c->rule, sizeof c->rule, "%s", e->rule ? e->rule : "");
	c->e.principal = e->principal ? c->principal : NULL;
	c->e.order_id = e->order_id ? c->order_id : NULL;
	c->e.rule = e->rule ? c->rule : NULL;
	c->e.ip = NULL; /* borrowed strings the late thread cannot keep */
	c->e.device = NULL;
	c->e.ref = NULL;
	c->e.detail = NULL;
	c->done = done;
	c->ctx = done_ctx;
	pthread_t t;
	if (pthread_create(&t, NULL, late_thread, c) != 0) {
		free(c);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "no thread");
	}
	pthread_detach(t);
	return MOAT_OK;
}

/* A read whose entry is refused at once is a 503 with nothing revealed; one
 * answered inside the append call, or late, is served, and never before its
 * entry is in the ledger. */
static void test_async_sink(void)
{
	char id[64], path[200];
	matrix_order_id(MOAT_ROLE_COURIER, MOAT_STATUS_SHIPPED, 1, id);
	snprintf(path, sizeof path, "/v1/orders/%s?purpose=deliver", id);
	char name[32], phone[16], detail[64], title[64];
	buyer_of(order_number(MOAT_ROLE_COURIER, MOAT_STATUS_SHIPPED, 1), name, phone, detail,
		 title);
	moat_gateway_opts_t go = {0};
	go.listen = "127.0.0.1:0";
	moat_gateway_ledger_sink(app->ledger, &go.sink);
	go.sink.append_async = odd_append_async;
	go.sink.append_deferred = NULL; /* the asynchronous path is the one under test */
	go.sink.flush = NULL;
	go.ledger = app->ledger;
	go.threads = 2;
	moat_gateway_t *ag = NULL;
	moat_error_t e = {0};
	CHECK_MSG(moat_gateway_start(app, &go, &ag, &e) == MOAT_OK, "%s", e.msg);
	if (!ag)
		return;
	int saved_port = port;
	port = moat_gateway_port(ag);
	resp_t r;
	sink_mode = SINK_REFUSE;
	for (int i = 0; i < 3; i++) { /* the same keep-alive connection each time */
		get(&r, path, keys[MOAT_ROLE_COURIER]);
		expect_error(&r, 503, "ledger_unavailable", "read with the entry refused at once");
		CHECK(!has_str(&r, detail) && !has_str(&r, "\"phone\""));
		resp_free(&r);
	}
	sink_mode = SINK_ANSWER_INLINE;
	uint64_t size0 = moat_ledger_size(app->ledger);
	for (int i = 0; i < 3; i++) {
		get(&r, path, keys[MOAT_ROLE_COURIER]);
		CHECK_INT(r.status, 200);
		CHECK(has_str(&r, detail));
		CHECK(r.ledger_index[0] && strtoull(r.ledger_index, NULL, 10) >= size0);
		resp_free(&r);
	}
	sink_mode = SINK_ANSWER_LATE;
	uint64_t t0 = moat_mono_ns();
	get(&r, path, keys[MOAT_ROLE_COURIER]);
	uint64_t took = moat_mono_ns() - t0;
	CHECK_INT(r.status, 200);
	CHECK_MSG(took >= 150000000ull, "served after %llu ns, before its entry was appended",
		  (unsigned long long)took);
	uint64_t ix = strtoull(r.ledger_index, NULL, 10);
	CHECK(r.ledger_index[0] && ix < moat_ledger_size(app->ledger));
	moat_buf_t ej;
	moat_buf_init(&ej, 1 << 20);
	CHECK(ledger_entry_json(ix, &ej) && strstr(ej.data, "\"kind\":\"access\"") &&
	      strstr(ej.data, id));
	moat_buf_free(&ej);
	resp_free(&r);
	moat_gateway_stop(ag);
	port = saved_port;
}

/* A deferring sink whose flush always finds "another thread writing": each
 * entry is appended at once but its completion is held until the test lets it
 * go, from a thread of its own, as the ledger's committer would. */
enum { HELD_MAX = 8 };
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
typedef struct held_call {
	void (*done)(void *, moat_err_t, uint64_t);
	void *ctx;
	moat_err_t status;
	uint64_t first;
} held_call_t;
static held_call_t held[HELD_MAX];
static int n_held;

static moat_err_t held_append_deferred(void *ctx, const moat_entry_t *e, size_t n,
				       void (*done)(void *, moat_err_t, uint64_t),
				       void *done_ctx, moat_error_t *err)
{
	uint64_t first = 0;
	moat_err_t rc = moat_ledger_append(ctx, e, n, &first, err);
	if (rc != MOAT_OK)
		return rc;
	pthread_mutex_lock(&held_mu);
	bool full = n_held == HELD_MAX;
	if (!full)
		held[n_held++] = (held_call_t){done, done_ctx, MOAT_OK, first};
	pthread_mutex_unlock(&held_mu);
	if (full)
		done(done_ctx, MOAT_OK, first);
	return MOAT_OK;
}

static bool held_flush(void *ctx)
{
	(void)ctx;
	return false; /* "another thread is writing": the loop serves on */
}

static int held_count(void)
{
	pthread_mutex_lock(&held_mu);
	int n = n_held;
	pthread_mutex_unlock(&held_mu);
	return n;
}

/* Lets every held completion go, after delay_ms, on this thread. */
static void *release_held(void *arg)
{
	struct timespec ts = {0, (long)(intptr_t)arg * 1000000L};
	nanosleep(&ts, NULL);
	pthread_mutex_lock(&held_mu);
	int n = n_held;
	n_held = 0;
	held_call_t go[HELD_MAX];
	memcpy(go, held, sizeof go);
	pthread_mutex_unlock(&held_mu);
	for (int i = 0; i < n; i++)
		go[i].done(go[i].ctx, go[i].status, go[i].first);
	return NULL;
}

/* Deferred reads whose completion comes from another thread: the loop is woken
 * and answers (not before the completion); a read whose client gave up first is
 * freed by its late completion (ASan: no use after free) and the server carries
 * on; stopping does not hang on it. */
static void test_handed_off_reads(void)
{
	char id[64], path[200];
	matrix_order_id(MOAT_ROLE_COURIER, MOAT_STATUS_SHIPPED, 1, id);
	snprintf(path, sizeof path, "/v1/orders/%s?purpose=deliver", id);
	moat_gateway_opts_t go = {0};
	go.listen = "127.0.0.1:0";
	moat_gateway_ledger_sink(app->ledger, &go.sink);
	go.sink.append_deferred = held_append_deferred;
	go.sink.flush = held_flush;
	go.ledger = app->ledger;
	go.threads = 2;
	moat_gateway_t *hg = NULL;
	moat_error_t e = {0};
	CHECK_MSG(moat_gateway_start(app, &go, &hg, &e) == MOAT_OK, "%s", e.msg);
	if (!hg)
		return;
	int saved_port = port;
	port = moat_gateway_port(hg);
	resp_t r;
	for (int round = 0; round < 2; round++) {
		pthread_t t;
		CHECK(pthread_create(&t, NULL, release_held, (void *)(intptr_t)300) == 0);
		uint64_t t0 = moat_mono_ns();
		get(&r, path, keys[MOAT_ROLE_COURIER]);
		uint64_t took = moat_mono_ns() - t0;
		pthread_join(t, NULL);
		CHECK_INT(r.status, 200);
		CHECK_MSG(took >= 300000000ull && took < 5000000000ull,
			  "answered after %llu ns (completion released at 300 ms)",
			  (unsigned long long)took);
		CHECK(r.ledger_index[0] != '\0');
		resp_free(&r);
		if (round > 0)
			break;
		/* A client that gives up while its read waits. */
		char url[300];
		snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
		char auth[200];
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", keys[MOAT_ROLE_COURIER]);
		CURL *c2 = curl_easy_init();
		struct curl_slist *h = curl_slist_append(NULL, auth);
		moat_buf_t sink_body;
		moat_buf_init(&sink_body, 1 << 20);
		curl_easy_setopt(c2, CURLOPT_URL, url);
		curl_easy_setopt(c2, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c2, CURLOPT_TIMEOUT_MS, 300L);
		curl_easy_setopt(c2, CURLOPT_WRITEFUNCTION, on_body);
		resp_t dropped;
		memset(&dropped, 0, sizeof dropped);
		moat_buf_init(&dropped.body, 1 << 20);
		curl_easy_setopt(c2, CURLOPT_WRITEDATA, &dropped);
		CHECK_INT(curl_easy_perform(c2), CURLE_OPERATION_TIMEDOUT);
		CHECK_INT(dropped.body.len, 0);
		curl_easy_cleanup(c2);
		curl_slist_free_all(h);
		moat_buf_free(&dropped.body);
		moat_buf_free(&sink_body);
		CHECK_INT(held_count(), 1);
		/* The server closes the connection on its 1 s timeout; then the
		 * completion comes. */
		struct timespec wait = {2, 500000000};
		nanosleep(&wait, NULL);
		release_held((void *)(intptr_t)0);
	}
	moat_gateway_stop(hg);
	port = saved_port;
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	curl = curl_easy_init();
	moat_log_set_level(MOAT_LOG_ERROR);
	setup();
	if (gw) {
		test_matrix();
		test_random_no_leak();
		test_virtual_numbers();
		test_quota();
		test_ledger_invariant();
		test_async_sink();
		test_handed_off_reads();
		test_sessions();
		test_replay_clock();
		test_ingest();
		test_bad_input();
		test_slow_client();
		test_ledger_routes();
		test_detector_actions();
		test_ops();
	}
	moat_gateway_stop(gw);
	moat_policy_free(policy);
	moat_app_close(app);
	curl_easy_cleanup(curl);
	curl_global_cleanup();
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return check_done();
}
