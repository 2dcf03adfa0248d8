/* Ledger entries as read back from disk, tiles and bundles
 * (src/ledger/entry.c): moat_entry_decode accepts only canonical encodings, so
 * whatever it accepts must encode to exactly the same bytes (the ledger hashes
 * those bytes; two encodings of one entry would be two leaves for one event),
 * and must render as JSON. */
#include <string.h>

#include "fuzz.h"
#include "moat/entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MOAT_ENTRY_MAX + 16)
		return 0;
	size_t scratch_len = size + 64;
	char *scratch = malloc(scratch_len);
	FUZZ_CHECK(scratch);
	moat_entry_t e;
	moat_error_t err;
	if (moat_entry_decode(data, size, &e, scratch, scratch_len, &err) == MOAT_OK) {
		moat_buf_t b;
		moat_buf_init(&b, 1u << 20);
		FUZZ_CHECK(moat_entry_encode(&e, &b, &err) == MOAT_OK);
		FUZZ_CHECK(b.len == size && memcmp(b.data, data, size) == 0);
		moat_buf_reset(&b);
		FUZZ_CHECK(moat_entry_to_json(&e, &b) == MOAT_OK);
		moat_buf_free(&b);
	}
	free(scratch);
	return 0;
}
