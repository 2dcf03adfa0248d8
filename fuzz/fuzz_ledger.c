/* The ledger as a whole (src/ledger/), driven by a program the input spells:
 * appends of raw records of any bytes and lengths, integration, reads, inclusion
 * and consistency proofs, close-and-reopen (recovery from the write-ahead
 * files) and a full verify, in a fresh ledger on /dev/shm (or TMPDIR) per
 * input. A model kept beside it (the records appended, in order) is the
 * oracle: every read returns the bytes appended at that index; every root equals
 * RFC 6962's MTH computed here from the model's records with the leaf and node
 * hashes alone; every proof the ledger gives verifies against that root with the
 * offline verifier, and fails for a neighbouring index; a reopen loses nothing;
 * verify passes exactly when every record decodes as an entry, and otherwise
 * names the first that does not. */
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "moat/entry.h"
#include "moat/ledger.h"
#include "world.h"

#define MAX_RECORDS 1024
#define MAX_OPS 64

typedef struct {
	const uint8_t *p;
	size_t n;
} input_t;

static unsigned take(input_t *in, unsigned bytes)
{
	unsigned v = 0;
	for (unsigned i = 0; i < bytes; i++) {
		v = v << 8 | (in->n ? *in->p : 0);
		if (in->n) {
			in->p++;
			in->n--;
		}
	}
	return v;
}

static struct {
	uint8_t *data[MAX_RECORDS];
	size_t len[MAX_RECORDS];
	size_t n;
} model;

/* RFC 6962 §2.1: MTH of records [lo, hi). */
static void mth(size_t lo, size_t hi, uint8_t out[MOAT_HASH_LEN])
{
	if (hi - lo == 1) {
		moat_ledger_leaf_hash(model.data[lo], model.len[lo], out);
		return;
	}
	size_t k = 1;
	while (k * 2 < hi - lo)
		k *= 2;
	uint8_t l[MOAT_HASH_LEN], r[MOAT_HASH_LEN];
	mth(lo, lo + k, l);
	mth(lo + k, hi, r);
	moat_ledger_node_hash(l, r, out);
}

static bool decodes(size_t i)
{
	char *scratch = malloc(model.len[i] + 64);
	FUZZ_CHECK(scratch);
	moat_entry_t e;
	moat_error_t err;
	bool ok = moat_entry_decode(model.data[i], model.len[i], &e, scratch, model.len[i] + 64,
				    &err) == MOAT_OK;
	free(scratch);
	return ok;
}

static moat_ledger_t *reopen(moat_ledger_t *l, const char *dir)
{
	moat_ledger_close(l);
	moat_ledger_opts_t o = {.checkpoint_interval_ms = 3600000};
	moat_error_t err;
	FUZZ_CHECK(moat_ledger_open(dir, &o, &l, &err) == MOAT_OK);
	FUZZ_CHECK(moat_ledger_size(l) == model.n); /* nothing durable is lost */
	return l;
}

static void check_root(moat_ledger_t *l, uint64_t size, uint8_t root[MOAT_HASH_LEN])
{
	moat_error_t err;
	FUZZ_CHECK(moat_ledger_root(l, size, root, &err) == MOAT_OK);
	uint8_t want[MOAT_HASH_LEN];
	mth(0, size, want);
	FUZZ_CHECK(memcmp(root, want, MOAT_HASH_LEN) == 0);
}

static void run(moat_ledger_t **lp, const char *dir, input_t *in)
{
	moat_ledger_t *l = *lp;
	moat_error_t err;
	for (int op = 0; op < MAX_OPS && in->n; op++) {
		unsigned code = take(in, 1);
		uint64_t cp = moat_ledger_checkpoint_size(l);
		switch (code % 8) {
		case 0:
		case 1: { /* append 1..8 records */
			unsigned k = 1 + code / 8 % 8;
			const uint8_t *data[8];
			size_t len[8];
			size_t n = 0;
			for (unsigned i = 0; i < k && model.n + n < MAX_RECORDS; i++) {
				size_t want = 1 + take(in, 1) % 200;
				uint8_t *d = malloc(want);
				FUZZ_CHECK(d);
				for (size_t j = 0; j < want; j++)
					d[j] = (uint8_t)(in->n ? take(in, 1) : j * 31 + i);
				model.data[model.n + n] = d;
				model.len[model.n + n] = want;
				data[n] = d;
				len[n] = want;
				n++;
			}
			if (!n)
				break;
			uint64_t first = UINT64_MAX;
			FUZZ_CHECK(moat_ledger_append_raw(l, data, len, n, &first, &err) ==
				   MOAT_OK);
			FUZZ_CHECK(first == model.n);
			model.n += n;
			FUZZ_CHECK(moat_ledger_size(l) == model.n);
			break;
		}
		case 2: /* integrate and sign */
			FUZZ_CHECK(moat_ledger_sync(l, &err) == MOAT_OK);
			FUZZ_CHECK(moat_ledger_checkpoint_size(l) == model.n);
			break;
		case 3: { /* read one entry (integrating it if needed) */
			if (!model.n)
				break;
			size_t i = take(in, 2) % model.n;
			moat_buf_t b;
			moat_buf_init(&b, MOAT_ENTRY_MAX + 1);
			FUZZ_CHECK(moat_ledger_read(l, i, &b, &err) == MOAT_OK);
			FUZZ_CHECK(b.len == model.len[i] &&
				   memcmp(b.data, model.data[i], b.len) == 0);
			moat_buf_reset(&b);
			FUZZ_CHECK(moat_ledger_read(l, model.n, &b, &err) == MOAT_ENOTFOUND);
			moat_buf_free(&b);
			break;
		}
		case 4: { /* inclusion proof in a tree up to the checkpoint */
			if (!cp)
				break;
			uint64_t size = 1 + take(in, 2) % cp, i = take(in, 2) % size;
			uint8_t root[MOAT_HASH_LEN], leaf[MOAT_HASH_LEN];
			uint8_t proof[MOAT_LEDGER_PROOF_MAX][MOAT_HASH_LEN];
			size_t n = 0;
			check_root(l, size, root);
			FUZZ_CHECK(moat_ledger_prove_inclusion(l, i, size, leaf, proof, &n, &err) ==
				   MOAT_OK);
			uint8_t want[MOAT_HASH_LEN];
			moat_ledger_leaf_hash(model.data[i], model.len[i], want);
			FUZZ_CHECK(memcmp(leaf, want, MOAT_HASH_LEN) == 0);
			FUZZ_CHECK(moat_ledger_verify_inclusion(leaf, 32, i, size, &proof[0][0],
								n * 32, root, 32));
			if (size > 1)
				FUZZ_CHECK(!moat_ledger_verify_inclusion(leaf, 32, (i + 1) % size,
									 size, &proof[0][0], n * 32,
									 root, 32) ||
					   memcmp(model.data[i], model.data[(i + 1) % size],
						  model.len[i]) == 0);
			FUZZ_CHECK(moat_ledger_prove_inclusion(l, size, size, leaf, proof, &n,
							       &err) != MOAT_OK);
			break;
		}
		case 5: { /* consistency proof between two checkpointed sizes */
			if (!cp)
				break;
			uint64_t s2 = 1 + take(in, 2) % cp, s1 = 1 + take(in, 2) % s2;
			uint8_t r1[MOAT_HASH_LEN], r2[MOAT_HASH_LEN];
			uint8_t proof[MOAT_LEDGER_PROOF_MAX][MOAT_HASH_LEN];
			size_t n = 0;
			check_root(l, s1, r1);
			check_root(l, s2, r2);
			FUZZ_CHECK(moat_ledger_prove_consistency(l, s1, s2, proof, &n, &err) ==
				   MOAT_OK);
			FUZZ_CHECK(moat_ledger_verify_consistency(s1, s2, r1, 32, r2, 32,
								  &proof[0][0], n * 32));
			if (s1 < s2)
				FUZZ_CHECK(!moat_ledger_verify_consistency(s1, s2, r2, 32, r2, 32,
									   &proof[0][0], n * 32) ||
					   memcmp(r1, r2, 32) == 0);
			break;
		}
		case 6: /* close (integrates and signs) and recover */
			l = *lp = reopen(l, dir);
			FUZZ_CHECK(moat_ledger_checkpoint_size(l) == model.n);
			break;
		case 7: { /* verify the whole ledger */
			uint64_t bad = 0;
			moat_err_t rc = moat_ledger_verify(l, NULL, &bad, &err);
			uint64_t first_bad = UINT64_MAX;
			for (size_t i = 0; i < cp && first_bad == UINT64_MAX; i++)
				if (!decodes(i))
					first_bad = i;
			if (first_bad == UINT64_MAX)
				FUZZ_CHECK(rc == MOAT_OK);
			else
				FUZZ_CHECK(rc == MOAT_ECORRUPT && bad == first_bad);
			break;
		}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char dir[256];
	if (!dir[0]) {
		const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%s/moat-fuzz-ledger-%d", base ? base : "/tmp",
			 (int)getpid());
		moat_log_set_level(MOAT_LOG_OFF);
	}
	fuzz_rm_tree(dir);
	moat_error_t err;
	FUZZ_CHECK(moat_ledger_create(dir, "fuzz.example/ledger", &err) == MOAT_OK);
	moat_ledger_t *l = NULL;
	moat_ledger_opts_t o = {.checkpoint_interval_ms = 3600000};
	FUZZ_CHECK(moat_ledger_open(dir, &o, &l, &err) == MOAT_OK);
	input_t in = {data, size};
	model.n = 0;
	run(&l, dir, &in);
	l = reopen(l, dir); /* whatever happened, a reopen finds it all */
	moat_ledger_close(l);
	for (size_t i = 0; i < model.n; i++)
		free(model.data[i]);
	model.n = 0;
	fuzz_rm_tree(dir);
	return 0;
}
