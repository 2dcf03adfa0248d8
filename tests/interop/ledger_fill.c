/*
 * ledger_fill DIR ORIGIN N1 N2: creates a ledger in DIR, appends N1 sample
 * entries, saves that checkpoint as DIR/../checkpoint.N1, appends up to N2
 * entries and closes (final checkpoint). Used by the interop and CLI tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_util.h"

static int append_upto(moat_ledger_t *l, uint64_t n)
{
	char bufs[100][64];
	moat_entry_t es[100];
	moat_error_t err;
	while (moat_ledger_size(l) < n) {
		uint64_t base = moat_ledger_size(l), k = n - base > 100 ? 100 : n - base;
		for (uint64_t i = 0; i < k; i++)
			es[i] = sample_entry(base + i, bufs[i]);
		if (moat_ledger_append(l, es, k, NULL, &err) != MOAT_OK) {
			fprintf(stderr, "append: %s\n", err.msg);
			return 1;
		}
	}
	if (moat_ledger_sync(l, &err) != MOAT_OK) {
		fprintf(stderr, "sync: %s\n", err.msg);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: ledger_fill DIR ORIGIN N1 N2\n");
		return 2;
	}
	moat_error_t err;
	moat_ledger_t *l;
	uint64_t n1 = strtoull(argv[3], NULL, 10), n2 = strtoull(argv[4], NULL, 10);
	if (moat_ledger_create(argv[1], argv[2], &err) != MOAT_OK ||
	    moat_ledger_open(argv[1], NULL, &l, &err) != MOAT_OK) {
		fprintf(stderr, "ledger_fill: %s\n", err.msg);
		return 1;
	}
	if (append_upto(l, n1))
		return 1;
	moat_buf_t b;
	moat_buf_init(&b, MOAT_LEDGER_NOTE_MAX);
	char path[4096];
	snprintf(path, sizeof path, "%s/../checkpoint.%llu", argv[1], (unsigned long long)n1);
	if (moat_ledger_checkpoint(l, &b, &err) != MOAT_OK ||
	    moat_file_write_atomic(path, b.data, b.len, 0644, &err) != MOAT_OK) {
		fprintf(stderr, "ledger_fill: %s\n", err.msg);
		return 1;
	}
	moat_buf_free(&b);
	if (append_upto(l, n2))
		return 1;
	moat_ledger_close(l);
	return 0;
}
