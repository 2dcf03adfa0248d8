/* RFC 9162 proof verification (src/ledger/merkle.c) with hostile sizes,
 * indexes, hash lengths and proof lengths: never a crash or a read past the
 * buffers, and a proof that verifies keeps verifying (the check is pure). The
 * input: two u64 (index or size1, size), a byte choosing the hash lengths, then
 * leaf/root1, root and the proof. */
#include <string.h>

#include "fuzz.h"
#include "moat/ledger.h"

static uint64_t u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint8_t *copy(const uint8_t *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);
	FUZZ_CHECK(c);
	if (n)
		memcpy(c, p, n);
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 17)
		return 0;
	uint64_t a = u64(data), n = u64(data + 8);
	uint8_t sel = data[16];
	data += 17;
	size -= 17;
	/* Usually 32-byte hashes; sometimes short or long ones. */
	size_t l1 = sel & 1 ? (size_t)(sel >> 1) % 40 : 32;
	size_t l2 = sel & 2 ? (size_t)(sel >> 2) % 40 : 32;
	if (size < l1 + l2)
		return 0;
	uint8_t *h1 = copy(data, l1), *h2 = copy(data + l1, l2);
	size_t plen = size - l1 - l2;
	uint8_t *proof = copy(data + l1 + l2, plen);
	bool inc = moat_ledger_verify_inclusion(h1, l1, a, n, proof, plen, h2, l2);
	FUZZ_CHECK(inc == moat_ledger_verify_inclusion(h1, l1, a, n, proof, plen, h2, l2));
	if (inc)
		FUZZ_CHECK(l1 == 32 && l2 == 32 && plen % 32 == 0 && a < n);
	bool con = moat_ledger_verify_consistency(a, n, h1, l1, h2, l2, proof, plen);
	if (con)
		FUZZ_CHECK(l1 == 32 && l2 == 32 && plen % 32 == 0 && a > 0 && a <= n &&
			   (a != n || (plen == 0 && memcmp(h1, h2, 32) == 0)));
	free(h1);
	free(h2);
	free(proof);
	return 0;
}
