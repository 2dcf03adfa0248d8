/* The JSON front door of every HTTP body and import line (src/base/json.c):
 * - moat_json_parse_fast (yajl) must only ever return the tree jansson's own
 *   lexer builds (moat_json_parse_slow), same values, same key order: a
 *   difference is a parser differential, where two parts of moat would read
 *   one body two ways;
 * - moat_json_parse agrees with the slow path on accept/reject and on the tree;
 * - an accepted document goes through the interchange parsers (party,
 *   principal, relation, order, scam report), which must fail cleanly or
 *   produce what their own validation promises; a report's scammer contact
 *   normalises the same way twice. */
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "moat/json.h"
#include "moat/model.h"
#include "moat/trace.h"

static char *dump(const json_t *j)
{
	return json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
}

static void same_tree(const json_t *a, const json_t *b)
{
	FUZZ_CHECK(json_equal(a, b));
	char *x = dump(a), *y = dump(b);
	FUZZ_CHECK(x && y);
	FUZZ_CHECK(strcmp(x, y) == 0); /* key order too */
	free(x);
	free(y);
}

static void interchange(json_t *obj)
{
	moat_error_t err;
	moat_party_t party;
	moat_principal_t pr;
	moat_relation_t rel;
	moat_order_t order;
	if (moat_party_from_json(obj, &party, &err) == MOAT_OK)
		FUZZ_CHECK(party.party && party.party[0] &&
			   (unsigned)party.kind < MOAT_PARTY_KIND_COUNT);
	if (moat_principal_from_json(obj, &pr, &err) == MOAT_OK)
		FUZZ_CHECK(pr.principal && pr.principal[0] && (unsigned)pr.role < MOAT_ROLE_COUNT);
	if (moat_relation_from_json(obj, &rel, &err) == MOAT_OK)
		FUZZ_CHECK((unsigned)rel.kind < MOAT_REL_KIND_COUNT);
	moat_report_t rep;
	if (moat_report_from_json(obj, &rep, &err) == MOAT_OK) {
		FUZZ_CHECK(rep.report_id && rep.order_id && rep.quoted != 0 && rep.channel);
		FUZZ_CHECK(strcmp(rep.channel, "call") == 0 || strcmp(rep.channel, "sms") == 0 ||
			   strcmp(rep.channel, "chat") == 0);
	}
	/* Contacts as scam reports give them: normalising is idempotent, so two
	 * reports of one crew match however each was written. */
	json_t *contact = json_object_get(obj, "scammer_contact");
	if (json_is_string(contact)) {
		char once[130], twice[130];
		moat_trace_contact_normalise(json_string_value(contact), once, sizeof once);
		FUZZ_CHECK(strlen(once) < sizeof once);
		moat_trace_contact_normalise(once, twice, sizeof twice);
		FUZZ_CHECK(strcmp(once, twice) == 0);
	}
	moat_arena_t *arena = moat_arena_new(4096);
	FUZZ_CHECK(arena);
	if (moat_order_from_json(obj, arena, &order, &err) == MOAT_OK) {
		FUZZ_CHECK(order.order_id && order.order_id[0] &&
			   (unsigned)order.status < MOAT_STATUS_COUNT);
		/* The items as stored: what jansson writes for the parsed items. */
		moat_buf_t b;
		moat_buf_init(&b, 1u << 20);
		FUZZ_CHECK(moat_order_items_json(&order, &b) == MOAT_OK);
		json_t *items = json_object_get(obj, "items");
		char *want = items ? json_dumps(items, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		if (want) {
			FUZZ_CHECK(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0);
			free(want);
		}
		moat_buf_free(&b);
	}
	moat_arena_free(arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	moat_error_t err;
	json_t *slow = NULL, *full = NULL;
	moat_err_t rs = moat_json_parse_slow(s, size, MOAT_JSON_MAX_DEPTH, &slow, &err);
	json_t *fast = moat_json_parse_fast(s, size, MOAT_JSON_MAX_DEPTH);
	moat_err_t rf = moat_json_parse(s, size, MOAT_JSON_MAX_DEPTH, &full, &err);
	FUZZ_CHECK((rs == MOAT_OK) == (rf == MOAT_OK));
	if (fast) {
		FUZZ_CHECK(rs == MOAT_OK);
		same_tree(fast, slow);
		json_decref(fast);
	}
	if (rs == MOAT_OK) {
		FUZZ_CHECK(json_is_object(slow) && json_is_object(full));
		same_tree(full, slow);
		interchange(slow);
	}
	json_decref(slow);
	json_decref(full);
	return 0;
}
