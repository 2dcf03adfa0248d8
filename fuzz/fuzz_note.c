/* Signed notes and checkpoints from outside (src/ledger/note.c): an auditor's
 * `moat ledger verify-proof`, a witness, a client checking a receipt. The input
 * is a verifier key line, then the note. Whatever the bytes: no crash, no read
 * past them; a checkpoint that verifies is a note that verifies, with its
 * origin equal to the key's name and a signed text inside the input. */
#include <string.h>

#include "fuzz.h"
#include "moat/ledger.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size < 512 ? size : 512);
	if (!nl)
		return 0;
	size_t klen = (size_t)(nl - data);
	char *vkey = malloc(klen + 1);
	FUZZ_CHECK(vkey);
	memcpy(vkey, data, klen);
	vkey[klen] = '\0';
	const char *note = (const char *)nl + 1;
	size_t len = size - klen - 1;
	moat_error_t err;
	size_t text_len = SIZE_MAX;
	moat_err_t rn = moat_ledger_note_verify(note, len, vkey, &text_len, &err);
	if (rn == MOAT_OK)
		FUZZ_CHECK(text_len <= len);
	moat_checkpoint_t cp;
	if (moat_ledger_checkpoint_verify(note, len, vkey, &cp, &err) == MOAT_OK) {
		FUZZ_CHECK(rn == MOAT_OK);
		size_t on = strlen(cp.origin);
		FUZZ_CHECK(on > 0 && on <= klen && strncmp(vkey, cp.origin, on) == 0 &&
			   vkey[on] == '+');
	}
	free(vkey);
	return 0;
}
