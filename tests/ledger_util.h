/*
 * Helpers shared by the ledger tests: temporary directories, sample entries,
 * a reference Merkle tree hash, file tampering.
 */
#ifndef MOAT_TEST_LEDGER_UTIL_H
#define MOAT_TEST_LEDGER_UTIL_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moat/ledger.h"

static inline char *tmpdir_new(const char *tag)
{
	char tmpl[256];
	const char *base = getenv("TMPDIR");
	snprintf(tmpl, sizeof tmpl, "%s/moat-%s-XXXXXX", base && *base ? base : "/tmp", tag);
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

static inline void rm_rf(const char *dir)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

/* A realistic entry; strings are static or in buf (>= 64 bytes). */
static inline moat_entry_t sample_entry(uint64_t i, char *buf)
{
	moat_entry_t e;
	memset(&e, 0, sizeof e);
	e.kind = (moat_entry_kind_t)(1 + i % MOAT_ENTRY_KIND_MAX);
	e.time = 1767225600000 + (int64_t)i;
	e.principal = "cs-agent-007";
	snprintf(buf, 64, "order-%llu", (unsigned long long)i);
	e.order_id = buf;
	e.has_purpose = i % 3 == 0;
	e.purpose = MOAT_PURPOSE_CUSTOMER_CARE;
	e.views[MOAT_FIELD_PHONE] = MOAT_VIEW_MASK;
	e.views[MOAT_FIELD_ADDRESS] = MOAT_VIEW_COARSE;
	e.relations = i % 4 == 0 ? 1u << MOAT_REL_ASSIGN : 0;
	e.rule = i % 2 ? "cs-mask" : NULL;
	e.ip = "10.0.0.7";
	e.rows = i % 5;
	return e;
}

/* Reference MTH over n leaf hashes (RFC 6962 §2.1), recursive. */
static inline void ref_mth(uint8_t (*leaves)[32], uint64_t n, uint8_t out[32])
{
	if (n == 1) {
		memcpy(out, leaves[0], 32);
		return;
	}
	uint64_t k = 1;
	while (k << 1 < n)
		k <<= 1;
	uint8_t l[32], r[32];
	ref_mth(leaves, k, l);
	ref_mth(leaves + k, n - k, r);
	moat_ledger_node_hash(l, r, out);
}

/* XORs one byte of a file at offset (negative: from the end). */
static inline int flip_byte(const char *path, long off)
{
	int fd = open(path, O_RDWR);
	if (fd < 0)
		return -1;
	off_t end = lseek(fd, 0, SEEK_END);
	off_t at = off >= 0 ? off : end + off;
	unsigned char c;
	int rc = -1;
	if (pread(fd, &c, 1, at) == 1) {
		c ^= 0x01;
		if (pwrite(fd, &c, 1, at) == 1)
			rc = 0;
	}
	close(fd);
	return rc;
}

#endif
