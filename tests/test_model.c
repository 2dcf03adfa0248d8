/* Unit tests for src/model and src/view: validators, parsers, masks. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "moat/model.h"
#include "moat/view.h"

static json_t *parse(const char *s)
{
	json_t *v = NULL;
	moat_error_t e;
	return moat_json_parse(s, strlen(s), 16, &v, &e) == MOAT_OK ? v : NULL;
}

int main(void)
{
	CHECK(moat_phone_valid("13812345678"));
	CHECK(!moat_phone_valid("12812345678"));
	CHECK(!moat_phone_valid("1381234567"));
	CHECK(!moat_phone_valid("1381234567a"));
	CHECK(moat_id_number_valid("11010519491231002X"));
	CHECK(moat_id_number_valid("11010519491231002x"));
	CHECK(!moat_id_number_valid("110105194912310021")); /* wrong check digit */
	CHECK(!moat_id_number_valid("11010519491331002X")); /* month 13 */
	CHECK(moat_shift_valid("09:00-18:00"));
	CHECK(!moat_shift_valid("9:00-18:00"));
	CHECK(moat_id_valid("cs-017") && moat_id_valid("a.b:c_d"));
	CHECK(!moat_id_valid("") && !moat_id_valid("a b") && !moat_id_valid("刘"));

	CHECK_INT(moat_role_parse("cs_agent"), MOAT_ROLE_CS_AGENT);
	CHECK_INT(moat_role_parse("nope"), -1);
	CHECK_STR(moat_view_name(MOAT_VIEW_VIRTUAL), "virtual");
	CHECK_INT(moat_purpose_parse("customer_care"), MOAT_PURPOSE_CUSTOMER_CARE);

	moat_error_t e = {0};
	moat_arena_t *a = moat_arena_new(0);
	json_t *o = parse("{\"order_id\":\"O1\",\"merchant\":\"m\",\"placed_at\":\"2026-03-01T10:00:00+08:00\","
			  "\"status\":\"paid\",\"buyer\":{\"name\":\"刘丽\",\"phone\":\"13812345678\",\"address\":"
			  "{\"province\":\"广东省\",\"city\":\"广州市\",\"district\":\"天河区\",\"detail\":\"x\"}},"
			  "\"items\":[{\"sku\":\"S1\",\"title\":\"t\",\"qty\":2,\"price_cents\":5}],"
			  "\"shipping\":{\"carrier\":\"l-sf\",\"shipped_at\":\"2026-03-02T10:00:00+08:00\"}}");
	CHECK(o != NULL);
	moat_order_t ord;
	CHECK_INT(moat_order_from_json(o, a, &ord, &e), MOAT_OK);
	CHECK_STR(ord.buyer_name, "刘丽");
	CHECK_INT(ord.n_items, 1);
	CHECK_INT(ord.items[0].qty, 2);
	CHECK(ord.delivered_at == MOAT_TIME_NONE && ord.shipped_at != MOAT_TIME_NONE);
	json_decref(o);

	/* items as stored: byte for byte what json_dumps wrote before */
	o = parse(
	    "{\"order_id\":\"O2\",\"merchant\":\"m\",\"placed_at\":\"2026-03-01T10:00:00+08:00\","
	    "\"status\":\"paid\",\"buyer\":{\"name\":\"a\",\"phone\":\"13812345678\",\"address\":"
	    "{\"province\":\"p\",\"city\":\"c\",\"district\":\"d\",\"detail\":\"x\"}},"
	    "\"items\":[{\"title\":\"羊毛衫 \\\"A\\\" \\\\ "
	    "b/\\u00e9\\u2028\",\"qty\":100000,\"sku\":\"S.1:x-y\","
	    "\"price_cents\":100000000000},{\"price_cents\":0,\"sku\":\"S2\",\"qty\":1,\"title\":"
	    "\"t\"}]}");
	CHECK(o != NULL);
	CHECK_INT(moat_order_from_json(o, a, &ord, &e), MOAT_OK);
	moat_buf_t ib;
	moat_buf_init(&ib, 4096);
	CHECK_INT(moat_order_items_json(&ord, &ib), MOAT_OK);
	char *want = json_dumps(json_object_get(o, "items"), JSON_COMPACT | JSON_SORT_KEYS);
	CHECK(want != NULL && strchr(want, '\\') != NULL);
	CHECK_STR(ib.data, want);
	free(want);
	ord.n_items = 0;
	moat_buf_reset(&ib);
	CHECK_INT(moat_order_items_json(&ord, &ib), MOAT_OK);
	CHECK_STR(ib.data, "[]");
	moat_buf_free(&ib);
	moat_buf_init(&ib, 8); /* a bound too small is an error, not a truncation */
	CHECK_INT(moat_order_from_json(o, a, &ord, &e), MOAT_OK);
	CHECK_INT(moat_order_items_json(&ord, &ib), MOAT_ELIMIT);
	moat_buf_free(&ib);
	json_decref(o);
	o = parse(
	    "{\"order_id\":\"O1\",\"merchant\":\"m\",\"placed_at\":\"2026-03-01T10:00:00+08:00\","
	    "\"status\":\"paid\",\"buyer\":{\"name\":\"刘丽\",\"phone\":\"13812345678\","
	    "\"address\":"
	    "{\"province\":\"广东省\",\"city\":\"广州市\",\"district\":\"天河区\",\"detail\":\"x\"}"
	    "},"
	    "\"items\":[{\"sku\":\"S1\",\"title\":\"t\",\"qty\":2,\"price_cents\":5}],"
	    "\"shipping\":{\"carrier\":\"l-sf\",\"shipped_at\":\"2026-03-02T10:00:00+08:00\"}}");
	CHECK(o != NULL);
	json_object_set_new(json_object_get(o, "shipping"), "delivered_at",
			    json_string("2026-03-01T10:00:00+08:00"));
	CHECK_INT(moat_order_from_json(o, a, &ord, &e), MOAT_EINVAL);
	CHECK_STR(e.field, "shipping.delivered_at");
	json_object_del(json_object_get(o, "shipping"), "delivered_at");
	json_array_append_new(json_object_get(o, "items"), json_integer(3));
	CHECK_INT(moat_order_from_json(o, a, &ord, &e), MOAT_EINVAL);
	CHECK_STR(e.field, "items[1]");
	/* item fields are named by their index, past one digit too */
	json_t *items = json_object_get(o, "items");
	json_array_remove(items, 1);
	for (int i = 0; i < 11; i++)
		json_array_append(items, json_array_get(items, 0));
	json_t *bad = json_deep_copy(json_array_get(items, 0));
	json_object_set_new(bad, "qty", json_integer(0));
	json_array_append_new(items, bad);
	CHECK_INT(moat_order_from_json(o, a, &ord, &e), MOAT_EINVAL);
	CHECK_STR(e.field, "items[12].qty");
	json_object_set_new(bad, "qty", json_integer(1));
	json_object_set_new(bad, "sku", json_string(""));
	CHECK_INT(moat_order_from_json(o, a, &ord, &e), MOAT_EINVAL);
	CHECK_STR(e.field, "items[12].sku");
	json_object_set_new(bad, "sku", json_string("S2"));
	json_object_set_new(bad, "colour", json_string("red"));
	CHECK_INT(moat_order_from_json(o, a, &ord, &e), MOAT_EINVAL);
	CHECK_STR(e.field, "items[12].colour");
	json_object_del(bad, "colour");
	CHECK_INT(moat_order_from_json(o, a, &ord, &e), MOAT_OK);
	CHECK_INT(ord.n_items, 13);
	json_decref(o);

	json_t *r = parse("{\"kind\":\"authorize\",\"merchant\":\"m\",\"principal\":\"p\",\"order_id\":\"O1\"}");
	moat_relation_t rel;
	CHECK_INT(moat_relation_from_json(r, &rel, &e), MOAT_EINVAL); /* order_id is not an authorize key */
	CHECK_STR(e.field, "order_id");
	json_decref(r);
	r = parse("{\"kind\":\"assign\",\"order_id\":\"O1\",\"principal\":\"p\",\"from\":\"2026-03-02T10:00:00+08:00\","
		  "\"until\":\"2026-03-01T10:00:00+08:00\"}");
	CHECK_INT(moat_relation_from_json(r, &rel, &e), MOAT_EINVAL);
	CHECK_STR(e.field, "until");
	json_decref(r);

	moat_buf_t b;
	moat_buf_init(&b, 256);
	CHECK(moat_view_mask_name("刘丽", &b) == MOAT_OK);
	CHECK_STR(b.data, "刘*");
	moat_buf_reset(&b);
	CHECK(moat_view_mask_name("欧阳娜娜", &b) == MOAT_OK);
	CHECK_STR(b.data, "欧*");
	moat_buf_reset(&b);
	CHECK(moat_view_mask_phone("13812345678", &b) == MOAT_OK);
	CHECK_STR(b.data, "138****5678");
	moat_buf_reset(&b);
	CHECK(moat_view_mask_id_number("11010519491231002X", &b) == MOAT_OK);
	CHECK_STR(b.data, "110105********002X");
	moat_buf_free(&b);
	moat_arena_free(a);
	return check_done();
}
