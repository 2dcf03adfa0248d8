/*
 * Minimal test harness: checks stay on in release builds (no assert()).
 * Each test executable calls CHECK* freely and ends main with `return check_done();`,
 * which prints "N passed, N failed" and returns non-zero if anything failed.
 */
#ifndef MOAT_TEST_CHECK_H
#define MOAT_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (cond) {                                                               \
			check_passed++;                                                   \
		} else {                                                                  \
			check_failed++;                                                   \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                         \
	} while (0)

#define CHECK_MSG(cond, ...)                                                              \
	do {                                                                              \
		if (cond) {                                                               \
			check_passed++;                                                   \
		} else {                                                                  \
			check_failed++;                                                   \
			fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                     \
			fputc('\n', stderr);                                              \
		}                                                                         \
	} while (0)

#define CHECK_INT(a, b)                                                                   \
	do {                                                                              \
		long long va_ = (long long)(a), vb_ = (long long)(b);                     \
		CHECK_MSG(va_ == vb_, "%s = %lld, expected %lld", #a, va_, vb_);          \
	} while (0)

#define CHECK_STR(a, b)                                                                   \
	do {                                                                              \
		const char *sa_ = (a), *sb_ = (b);                                        \
		CHECK_MSG(sa_ && sb_ && strcmp(sa_, sb_) == 0, "%s = \"%s\", expected \"%s\"", #a, \
			  sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                    \
	} while (0)

static inline int check_done(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed ? 1 : 0;
}

#endif
