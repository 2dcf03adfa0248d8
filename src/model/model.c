/* Vocabulary names and parsing of the interchange objects (DESIGN.md). */
#include <stdio.h>
#include <string.h>

#include "moat/model.h"

const char *const moat_party_kind_names[] = {"merchant", "platform", "logistics", "isv", NULL};
const char *const moat_role_names[] = {"platform_service", "platform_ops", "merchant_admin",
				       "cs_agent", "warehouse", "courier", "isv_app", "auditor", NULL};
const char *const moat_purpose_names[] = {"ship", "deliver", "after_sales", "customer_care",
					  "address_change", "refund", "analytics", "audit", NULL};
const char *const moat_status_names[] = {"paid", "shipped", "delivered", "closed", "refunded", NULL};
const char *const moat_field_names[] = {"name", "phone", "address", "id_number",
					"items", "amounts", "waybill", NULL};
const char *const moat_view_names[] = {"none", "hidden", "mask", "coarse",
				       "category", "virtual", "full", NULL};
const char *const moat_relation_kind_names[] = {"assign", "ticket", "authorize", NULL};

static const char *name_of(const char *const *names, int count, int v)
{
	return (v >= 0 && v < count) ? names[v] : "unknown";
}

static int parse_name(const char *const *names, const char *s)
{
	if (!s)
		return -1;
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

const char *moat_party_kind_name(moat_party_kind_t k) { return name_of(moat_party_kind_names, MOAT_PARTY_KIND_COUNT, (int)k); }
const char *moat_role_name(moat_role_t r) { return name_of(moat_role_names, MOAT_ROLE_COUNT, (int)r); }
const char *moat_purpose_name(moat_purpose_t p) { return name_of(moat_purpose_names, MOAT_PURPOSE_COUNT, (int)p); }
const char *moat_status_name(moat_order_status_t s) { return name_of(moat_status_names, MOAT_STATUS_COUNT, (int)s); }
const char *moat_field_name(moat_field_t f) { return name_of(moat_field_names, MOAT_FIELD_COUNT, (int)f); }
const char *moat_view_name(moat_view_t v) { return name_of(moat_view_names, MOAT_VIEW_COUNT, (int)v); }
const char *moat_relation_kind_name(moat_relation_kind_t k) { return name_of(moat_relation_kind_names, MOAT_REL_KIND_COUNT, (int)k); }
int moat_party_kind_parse(const char *s) { return parse_name(moat_party_kind_names, s); }
int moat_role_parse(const char *s) { return parse_name(moat_role_names, s); }
int moat_purpose_parse(const char *s) { return parse_name(moat_purpose_names, s); }
int moat_status_parse(const char *s) { return parse_name(moat_status_names, s); }
int moat_field_parse(const char *s) { return parse_name(moat_field_names, s); }
int moat_view_parse(const char *s) { return parse_name(moat_view_names, s); }
int moat_relation_kind_parse(const char *s) { return parse_name(moat_relation_kind_names, s); }

/* ---- validators ---- */

bool moat_id_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > MOAT_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

bool moat_phone_valid(const char *s)
{
	if (!s || strlen(s) != 11 || s[0] != '1' || s[1] < '3' || s[1] > '9')
		return false;
	for (int i = 0; i < 11; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

bool moat_id_number_valid(const char *s)
{
	/* GB 11643-1999: 17 digits, then a check character over ISO 7064 MOD 11-2. */
	static const int w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	static const char check[] = "10X98765432";
	if (!s || strlen(s) != 18)
		return false;
	int sum = 0;
	for (int i = 0; i < 17; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		sum += (s[i] - '0') * w[i];
	}
	char c = s[17] == 'x' ? 'X' : s[17];
	if (c != check[sum % 11])
		return false;
	/* Birth date YYYYMMDD at offset 6 must be plausible. */
	int mo = (s[10] - '0') * 10 + (s[11] - '0'), d = (s[12] - '0') * 10 + (s[13] - '0');
	return mo >= 1 && mo <= 12 && d >= 1 && d <= 31;
}

bool moat_shift_valid(const char *s)
{
	int h1, m1, h2, m2;
	char tail;
	if (!s || strlen(s) != 11)
		return false;
	if (sscanf(s, "%2d:%2d-%2d:%2d%c", &h1, &m1, &h2, &m2, &tail) != 4)
		return false;
	return s[2] == ':' && s[5] == '-' && s[8] == ':' && h1 >= 0 && h1 <= 24 && h2 >= 0 &&
	       h2 <= 24 && m1 >= 0 && m1 < 60 && m2 >= 0 && m2 < 60;
}

/* ---- parsers ---- */

static moat_err_t get_id(json_t *obj, const char *key, const char *field, bool required,
			 const char **out, moat_error_t *err)
{
	moat_err_t rc = moat_json_get_str(obj, key, field, required, MOAT_ID_MAX, out, err);
	if (rc != MOAT_OK)
		return rc;
	if (*out && !moat_id_valid(*out))
		return moat_error_set(err, MOAT_EINVAL, field,
				      "must be 1-64 characters of letters, digits and . _ : -");
	return MOAT_OK;
}

moat_err_t moat_party_from_json(json_t *obj, moat_party_t *out, moat_error_t *err)
{
	static const char *const keys[] = {"party", "kind", "name", NULL};
	memset(out, 0, sizeof *out);
	moat_err_t rc = moat_json_only_keys(obj, keys, "", err);
	int kind = 0;
	if (rc == MOAT_OK)
		rc = get_id(obj, "party", "party", true, &out->party, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_enum(obj, "kind", "kind", true, moat_party_kind_names, &kind, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_str(obj, "name", "name", true, MOAT_NAME_MAX, &out->name, err);
	out->kind = (moat_party_kind_t)kind;
	return rc;
}

moat_err_t moat_principal_from_json(json_t *obj, moat_principal_t *out, moat_error_t *err)
{
	static const char *const keys[] = {"principal", "party", "role", "name", "shift", NULL};
	memset(out, 0, sizeof *out);
	moat_err_t rc = moat_json_only_keys(obj, keys, "", err);
	int role = 0;
	if (rc == MOAT_OK)
		rc = get_id(obj, "principal", "principal", true, &out->principal, err);
	if (rc == MOAT_OK)
		rc = get_id(obj, "party", "party", true, &out->party, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_enum(obj, "role", "role", true, moat_role_names, &role, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_str(obj, "name", "name", false, MOAT_NAME_MAX, &out->name, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_str(obj, "shift", "shift", false, 11, &out->shift, err);
	if (rc == MOAT_OK && out->shift && !moat_shift_valid(out->shift))
		rc = moat_error_set(err, MOAT_EINVAL, "shift", "must be HH:MM-HH:MM, e.g. 09:00-18:00");
	out->role = (moat_role_t)role;
	return rc;
}

moat_err_t moat_relation_from_json(json_t *obj, moat_relation_t *out, moat_error_t *err)
{
	static const char *const assign_keys[] = {"kind", "order_id", "principal", "from", "until", NULL};
	static const char *const ticket_keys[] = {"kind", "order_id", "principal", "ticket",
						  "opened", "closed", NULL};
	static const char *const auth_keys[] = {"kind", "merchant", "principal", "from", "until", NULL};
	memset(out, 0, sizeof *out);
	out->from = out->until = MOAT_TIME_NONE;
	int kind = 0;
	moat_err_t rc = moat_json_get_enum(obj, "kind", "kind", true, moat_relation_kind_names, &kind, err);
	if (rc != MOAT_OK)
		return rc;
	out->kind = (moat_relation_kind_t)kind;
	const char *const *keys = kind == MOAT_REL_ASSIGN ? assign_keys
				  : kind == MOAT_REL_TICKET ? ticket_keys
							    : auth_keys;
	const char *from_key = kind == MOAT_REL_TICKET ? "opened" : "from";
	const char *until_key = kind == MOAT_REL_TICKET ? "closed" : "until";
	rc = moat_json_only_keys(obj, keys, "", err);
	if (rc == MOAT_OK)
		rc = get_id(obj, "principal", "principal", true, &out->principal, err);
	if (rc == MOAT_OK && kind == MOAT_REL_AUTHORIZE)
		rc = get_id(obj, "merchant", "merchant", true, &out->merchant, err);
	if (rc == MOAT_OK && kind != MOAT_REL_AUTHORIZE)
		rc = get_id(obj, "order_id", "order_id", true, &out->order_id, err);
	if (rc == MOAT_OK && kind == MOAT_REL_TICKET)
		rc = get_id(obj, "ticket", "ticket", true, &out->ticket, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_time(obj, from_key, from_key, kind == MOAT_REL_TICKET, &out->from, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_time(obj, until_key, until_key, false, &out->until, err);
	if (rc == MOAT_OK && out->from != MOAT_TIME_NONE && out->until != MOAT_TIME_NONE &&
	    out->until < out->from)
		rc = moat_error_set(err, MOAT_EINVAL, until_key, "is before %s", from_key);
	return rc;
}

static moat_err_t parse_address(json_t *addr, moat_address_t *a, moat_error_t *err)
{
	static const char *const keys[] = {"province", "city", "district", "detail", NULL};
	moat_err_t rc = moat_json_only_keys(addr, keys, "buyer.address.", err);
	if (rc == MOAT_OK)
		rc = moat_json_get_str(addr, "province", "buyer.address.province", true, 32, &a->province, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_str(addr, "city", "buyer.address.city", true, 32, &a->city, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_str(addr, "district", "buyer.address.district", true, 32, &a->district, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_str(addr, "detail", "buyer.address.detail", true, MOAT_TEXT_MAX, &a->detail, err);
	return rc;
}

static moat_err_t parse_items(json_t *arr, moat_arena_t *arena, moat_order_t *o, moat_error_t *err)
{
	static const char *const keys[] = {"sku", "title", "qty", "price_cents", NULL};
	size_t n = json_array_size(arr);
	o->n_items = n;
	o->items = n ? moat_arena_alloc(arena, n * sizeof *o->items) : NULL;
	if (n && !o->items)
		return moat_error_set(err, MOAT_ENOMEM, "items", "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *it = json_array_get(arr, i);
		char prefix[32], f[48];
		/* "items[i]." without snprintf, which cost more than the item's checks */
		size_t pl = sizeof "items[" - 1;
		memcpy(prefix, "items[", pl);
		pl += moat_fmt_u64(prefix + pl, i);
		memcpy(prefix + pl, "].", 3);
		if (!json_is_object(it)) {
			snprintf(f, sizeof f, "items[%zu]", i);
			return moat_error_set(err, MOAT_EINVAL, f, "must be an object");
		}
		moat_item_t *m = &o->items[i];
		memset(m, 0, sizeof *m);
		moat_err_t rc = moat_json_only_keys(it, keys, prefix, err);
		if (rc != MOAT_OK)
			return rc;
		pl += 2; /* < 32: "items[" + at most 20 digits + "]." */
		memcpy(f, prefix, pl);
		strcpy(f + pl, "sku");
		if ((rc = get_id(it, "sku", f, true, &m->sku, err)) != MOAT_OK)
			return rc;
		strcpy(f + pl, "title");
		if ((rc = moat_json_get_str(it, "title", f, true, MOAT_TEXT_MAX, &m->title, err)) != MOAT_OK)
			return rc;
		strcpy(f + pl, "qty");
		if ((rc = moat_json_get_int(it, "qty", f, true, 1, 100000, &m->qty, err)) != MOAT_OK)
			return rc;
		strcpy(f + pl, "price_cents");
		if ((rc = moat_json_get_int(it, "price_cents", f, true, 0, INT64_C(100000000000),
					    &m->price_cents, err)) != MOAT_OK)
			return rc;
	}
	return MOAT_OK;
}

moat_err_t moat_order_items_json(const moat_order_t *o, moat_buf_t *b)
{
	moat_err_t rc = moat_buf_putc(b, '[');
	for (size_t i = 0; rc == MOAT_OK && i < o->n_items; i++) {
		const moat_item_t *m = &o->items[i];
		/* what "%s{\"price_cents\":%lld,\"qty\":%lld,\"sku\":" would print,
		 * without snprintf's cost on every imported order */
		char num[96];
		size_t k = 0;
		if (i)
			num[k++] = ',';
		memcpy(num + k, "{\"price_cents\":", 15);
		k += 15;
		k += moat_fmt_i64(num + k, m->price_cents);
		memcpy(num + k, ",\"qty\":", 7);
		k += 7;
		k += moat_fmt_i64(num + k, m->qty);
		memcpy(num + k, ",\"sku\":", 7);
		k += 7;
		rc = moat_buf_append(b, num, k);
		if (rc == MOAT_OK)
			rc = moat_buf_json_str(b, m->sku);
		if (rc == MOAT_OK)
			rc = moat_buf_puts(b, ",\"title\":");
		if (rc == MOAT_OK)
			rc = moat_buf_json_str(b, m->title);
		if (rc == MOAT_OK)
			rc = moat_buf_putc(b, '}');
	}
	if (rc == MOAT_OK)
		rc = moat_buf_putc(b, ']');
	return rc;
}

moat_err_t moat_order_from_json(json_t *obj, moat_arena_t *arena, moat_order_t *out, moat_error_t *err)
{
	static const char *const keys[] = {"order_id", "merchant", "placed_at", "status", "buyer",
					   "items", "shipping", NULL};
	static const char *const buyer_keys[] = {"name", "phone", "address", "id_number", NULL};
	static const char *const ship_keys[] = {"carrier", "waybill", "shipped_at", "delivered_at", NULL};
	memset(out, 0, sizeof *out);
	out->shipped_at = out->delivered_at = MOAT_TIME_NONE;
	int status = 0;
	json_t *buyer = NULL, *addr = NULL, *items = NULL, *ship = NULL;
	moat_err_t rc = moat_json_only_keys(obj, keys, "", err);
	if (rc == MOAT_OK)
		rc = get_id(obj, "order_id", "order_id", true, &out->order_id, err);
	if (rc == MOAT_OK)
		rc = get_id(obj, "merchant", "merchant", true, &out->merchant, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_time(obj, "placed_at", "placed_at", true, &out->placed_at, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_enum(obj, "status", "status", true, moat_status_names, &status, err);
	out->status = (moat_order_status_t)status;
	if (rc == MOAT_OK)
		rc = moat_json_get_obj(obj, "buyer", "buyer", true, &buyer, err);
	if (rc == MOAT_OK)
		rc = moat_json_only_keys(buyer, buyer_keys, "buyer.", err);
	if (rc == MOAT_OK)
		rc = moat_json_get_str(buyer, "name", "buyer.name", true, 64, &out->buyer_name, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_str(buyer, "phone", "buyer.phone", true, 11, &out->buyer_phone, err);
	if (rc == MOAT_OK && !moat_phone_valid(out->buyer_phone))
		rc = moat_error_set(err, MOAT_EINVAL, "buyer.phone",
				    "must be an 11-digit mainland China mobile number (1[3-9]XXXXXXXXX)");
	if (rc == MOAT_OK)
		rc = moat_json_get_str(buyer, "id_number", "buyer.id_number", false, 18,
				       &out->buyer_id_number, err);
	if (rc == MOAT_OK && out->buyer_id_number && !moat_id_number_valid(out->buyer_id_number))
		rc = moat_error_set(err, MOAT_EINVAL, "buyer.id_number",
				    "must be an 18-character resident id number with a valid check digit");
	if (rc == MOAT_OK)
		rc = moat_json_get_obj(buyer, "address", "buyer.address", true, &addr, err);
	if (rc == MOAT_OK)
		rc = parse_address(addr, &out->address, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_arr(obj, "items", "items", true, MOAT_ITEMS_MAX, &items, err);
	if (rc == MOAT_OK)
		rc = parse_items(items, arena, out, err);
	if (rc == MOAT_OK)
		rc = moat_json_get_obj(obj, "shipping", "shipping", false, &ship, err);
	if (rc == MOAT_OK && ship) {
		rc = moat_json_only_keys(ship, ship_keys, "shipping.", err);
		if (rc == MOAT_OK)
			rc = get_id(ship, "carrier", "shipping.carrier", false, &out->carrier, err);
		if (rc == MOAT_OK)
			rc = get_id(ship, "waybill", "shipping.waybill", false, &out->waybill, err);
		if (rc == MOAT_OK)
			rc = moat_json_get_time(ship, "shipped_at", "shipping.shipped_at", false,
						&out->shipped_at, err);
		if (rc == MOAT_OK)
			rc = moat_json_get_time(ship, "delivered_at", "shipping.delivered_at", false,
						&out->delivered_at, err);
		if (rc == MOAT_OK && out->shipped_at != MOAT_TIME_NONE &&
		    out->delivered_at != MOAT_TIME_NONE && out->delivered_at < out->shipped_at)
			rc = moat_error_set(err, MOAT_EINVAL, "shipping.delivered_at", "is before shipped_at");
	}
	return rc;
}
