/*
 * Fuzz targets: each fuzz_*.c defines LLVMFuzzerTestOneInput. Built with
 * clang's libFuzzer when MOAT_FUZZ is on (fuzz/README.md); otherwise each is
 * linked with replay.c into a program that runs it over its committed corpus,
 * a ctest test in every build (ASan+UBSan in the sanitized one).
 *
 * A target states an invariant with FUZZ_CHECK: on failure it prints the
 * condition and aborts, which both libFuzzer and the replay test report.
 */
#ifndef MOAT_FUZZ_H
#define MOAT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,       \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
