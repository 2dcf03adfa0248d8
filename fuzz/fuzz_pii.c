/*
 * moat_pii_decode (src/app/pii.c), the decoder of the PII every gateway read
 * decrypts, against jansson on any input: it accepts exactly the documents that
 * jansson parses (rejecting duplicated keys) into an object whose members are
 * strings under the keys detail, id_number, name and phone, with the first
 * three present; and it decodes each to the string jansson gives. What it
 * accepts re-encodes (moat_pii_encode) to text that decodes to the same.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "moat/app.h"

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	moat_pii_t p;
	moat_error_t err = {0};
	moat_err_t rc = moat_pii_decode(s, size, &p, &err);

	json_error_t je;
	json_t *j = json_loadb(s, size, JSON_REJECT_DUPLICATES, &je);
	bool want = json_is_object(j);
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v)
	{
		if (!json_is_string(v) ||
		    (strcmp(key, "detail") != 0 && strcmp(key, "id_number") != 0 &&
		     strcmp(key, "name") != 0 && strcmp(key, "phone") != 0))
			want = false;
	}
	const char *name = json_string_value(json_object_get(j, "name"));
	const char *phone = json_string_value(json_object_get(j, "phone"));
	const char *detail = json_string_value(json_object_get(j, "detail"));
	const char *idn = json_string_value(json_object_get(j, "id_number"));
	if (!name || !phone || !detail)
		want = false;

	FUZZ_CHECK((rc == MOAT_OK) == want);
	if (rc != MOAT_OK) {
		FUZZ_CHECK(rc == MOAT_ECORRUPT);
		FUZZ_CHECK(!p.name && !p.phone && !p.address_detail && !p.id_number);
	} else {
		FUZZ_CHECK(same(p.name, name) && same(p.phone, phone) &&
			   same(p.address_detail, detail) && same(p.id_number, idn));
		moat_buf_t b;
		moat_buf_init(&b, 1 << 20);
		FUZZ_CHECK(moat_pii_encode(p.name, p.phone, p.address_detail, p.id_number, &b) ==
			   MOAT_OK);
		moat_pii_t q;
		FUZZ_CHECK(moat_pii_decode(b.data, b.len, &q, &err) == MOAT_OK);
		FUZZ_CHECK(same(q.name, p.name) && same(q.phone, p.phone) &&
			   same(q.address_detail, p.address_detail) &&
			   same(q.id_number, p.id_number));
		moat_pii_clear(&q);
		moat_buf_free(&b);
	}
	moat_pii_clear(&p);
	json_decref(j);
	return 0;
}
