/* moat order show ID: the operator's masked view of one order. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "moat/app.h"
#include "moat/json.h"
#include "moat/view.h"

static void help(void)
{
	printf("usage: moat order show ID [--data DIR] [--json]\n\n"
	       "Shows one order as a local operator sees it: buyer name, phone and id number\n"
	       "masked, address coarse (province/city/district), items by SKU and quantity.\n"
	       "Plaintext PII is only ever served through the gateway under the policy.\n");
}

/* Masked rendering into a JSON object (caller decrefs). */
static json_t *masked_order(const moat_order_row_t *r, const moat_pii_t *pii)
{
	moat_buf_t name, phone, addr, idn;
	moat_buf_init(&name, 256);
	moat_buf_init(&phone, 64);
	moat_buf_init(&addr, 1024);
	moat_buf_init(&idn, 64);
	json_t *j = NULL;
	if (moat_view_mask_name(pii->name, &name) != MOAT_OK ||
	    moat_view_mask_phone(pii->phone, &phone) != MOAT_OK ||
	    moat_view_coarse_address(r->province, r->city, r->district, &addr) != MOAT_OK ||
	    (pii->id_number && moat_view_mask_id_number(pii->id_number, &idn) != MOAT_OK))
		goto done;
	char placed[32];
	moat_time_format(r->placed_at, placed);
	json_t *items = json_array();
	json_t *src = json_loads(r->items_json, 0, NULL);
	size_t i;
	json_t *it;
	json_array_foreach(src, i, it)
	{
		json_array_append_new(items, json_pack("{s:O,s:O}", "sku", json_object_get(it, "sku"), "qty",
						       json_object_get(it, "qty")));
	}
	json_decref(src);
	j = json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s},s:o,s:{s:s,s:s}}", "order_id", r->order_id,
		      "merchant", r->merchant, "status", moat_status_name(r->status), "placed_at", placed,
		      "buyer", "name", name.data, "phone", phone.data, "address", addr.data, "items", items,
		      "views", "name", "mask", "phone", "mask");
	if (j && pii->id_number)
		json_object_set_new(json_object_get(j, "buyer"), "id_number", json_string(idn.data));
	if (j) {
		json_t *views = json_object_get(j, "views");
		json_object_set_new(views, "address", json_string("coarse"));
		json_object_set_new(views, "items", json_string("category"));
		json_object_set_new(views, "id_number", json_string(pii->id_number ? "mask" : "none"));
		if (r->carrier[0])
			json_object_set_new(j, "carrier", json_string(r->carrier));
		if (r->waybill[0])
			json_object_set_new(j, "waybill", json_string(r->waybill));
	}
done:
	moat_buf_free(&name);
	moat_buf_free(&phone);
	moat_buf_free(&addr);
	moat_buf_free(&idn);
	return j;
}

int cmd_order(int argc, char **argv)
{
	cli_common_t c;
	int done = cli_common_parse(&c, "order", help, argc, argv);
	if (done >= 0)
		return done;
	if (argc - optind != 2 || strcmp(argv[optind], "show") != 0)
		return cli_usage("order", "expected: show ID");
	const char *id = argv[optind + 1];
	if (!moat_id_valid(id))
		return cli_usage("order", "invalid order id");
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	if (moat_app_open(c.data_dir, MOAT_APP_NO_LEDGER, &a, &e) != MOAT_OK)
		return cli_fail("order", &e);
	moat_order_row_t row;
	moat_pii_t pii = {0};
	moat_err_t rc = moat_store_order_get(a->store, id, &row, &e);
	if (rc == MOAT_OK) {
		rc = moat_app_order_pii(a, &row, &pii, &e);
		json_t *j = rc == MOAT_OK ? masked_order(&row, &pii) : NULL;
		if (rc == MOAT_OK && !j)
			rc = moat_error_set(&e, MOAT_ENOMEM, NULL, "out of memory");
		if (j) {
			if (c.json) {
				char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
				printf("%s\n", s ? s : "");
				free(s);
			} else {
				json_t *b = json_object_get(j, "buyer");
				printf("order     %s (%s)\nmerchant  %s\nplaced    %s\n", row.order_id,
				       moat_status_name(row.status), row.merchant,
				       json_string_value(json_object_get(j, "placed_at")));
				printf("buyer     %s  %s\naddress   %s\n",
				       json_string_value(json_object_get(b, "name")),
				       json_string_value(json_object_get(b, "phone")),
				       json_string_value(json_object_get(b, "address")));
				if (json_object_get(b, "id_number"))
					printf("id        %s\n", json_string_value(json_object_get(b, "id_number")));
				size_t i;
				json_t *it;
				json_array_foreach(json_object_get(j, "items"), i, it)
				{
					printf("item      %s x%lld\n", json_string_value(json_object_get(it, "sku")),
					       (long long)json_integer_value(json_object_get(it, "qty")));
				}
				if (row.waybill[0])
					printf("shipping  %s %s\n", row.carrier, row.waybill);
			}
			json_decref(j);
		}
		moat_pii_clear(&pii);
		moat_order_row_clear(&row);
	}
	moat_app_close(a);
	return rc == MOAT_OK ? CLI_OK : cli_fail("order", &e);
}
