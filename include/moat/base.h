/*
 * moat base: errors, logging, bounded buffers, arenas, time, encodings, files.
 *
 * Every other module builds on this header. Conventions used throughout moat:
 *  - fallible functions return moat_err_t (MOAT_OK == 0) and are MOAT_MUST_CHECK;
 *  - a moat_error_t *err out-parameter (may be NULL) receives a message a user can
 *    act on, plus the field and input line it concerns where that is known;
 *  - x_free(NULL) is always a no-op.
 */
#ifndef MOAT_BASE_H
#define MOAT_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MOAT_MUST_CHECK __attribute__((warn_unused_result))
#define MOAT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define MOAT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

typedef enum moat_err {
	MOAT_OK = 0,
	MOAT_ENOMEM,    /* out of memory */
	MOAT_EIO,       /* file or socket I/O failed */
	MOAT_EINVAL,    /* input is malformed or violates a rule */
	MOAT_ENOTFOUND, /* the named thing does not exist */
	MOAT_EEXIST,    /* the thing already exists and may not be replaced */
	MOAT_ECORRUPT,  /* stored data failed an integrity check */
	MOAT_ECRYPTO,   /* a cryptographic operation failed */
	MOAT_EDENIED,   /* authentication or authorisation refused */
	MOAT_ELIMIT,    /* a size, count or quota limit was exceeded */
	MOAT_ECONFLICT, /* state conflict (version, concurrent change) */
	MOAT_EUNAVAIL,  /* a needed resource (disk, ledger) is unavailable */
	MOAT_EDB,       /* the database reported an error */
	MOAT_EUSAGE,    /* the command line is wrong */
} moat_err_t;

/* Error details. `field` names the offending input field ("buyer.phone"),
 * `line` is the 1-based input line (0 if not applicable). */
typedef struct moat_error {
	moat_err_t code;
	long line;
	char field[96];
	char msg[320];
} moat_error_t;

/* Short stable name of a code, e.g. "invalid", "not_found". */
const char *moat_err_name(moat_err_t code);

/* Fills *e (if not NULL) and returns code. `field` may be NULL. */
moat_err_t moat_error_set(moat_error_t *e, moat_err_t code, const char *field, const char *fmt,
			  ...) MOAT_PRINTF(4, 5);
void moat_error_clear(moat_error_t *e);

/* ---- logging: JSON lines on stderr ------------------------------------------------ */

typedef enum moat_log_level {
	MOAT_LOG_DEBUG = 0,
	MOAT_LOG_INFO,
	MOAT_LOG_WARN,
	MOAT_LOG_ERROR,
	MOAT_LOG_OFF,
} moat_log_level_t;

/* The level is process-wide and set once at start-up (by the CLI from flags, the
 * MOAT_LOG_LEVEL environment variable or the config file). Never log PII: callers
 * pass ids and counts only. */
void moat_log_set_level(moat_log_level_t level);
moat_log_level_t moat_log_get_level(void);
/* Parses "debug|info|warn|error|off"; returns false if unknown. */
bool moat_log_parse_level(const char *s, moat_log_level_t *out);
/* Writes {"ts":…,"level":…,"event":…,"msg":…} on one line; msg is JSON-escaped. */
void moat_log(moat_log_level_t level, const char *event, const char *fmt, ...) MOAT_PRINTF(3, 4);

/* ---- bounded growable buffer ------------------------------------------------------ */

/* A byte buffer with a hard cap. data is always NUL-terminated (not counted in len).
 * Appending past `max` fails with MOAT_ELIMIT and leaves the buffer unchanged. */
typedef struct moat_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
	bool secret; /* moat_buf_init_secret */
} moat_buf_t;

void moat_buf_init(moat_buf_t *b, size_t max);
/* A buffer for text that must not outlive it in freed memory (decrypted PII, a
 * response that carries it): growing copies into a new block and wipes the old
 * one instead of realloc'ing, and moat_buf_free wipes the whole block. It
 * starts at 1 KiB, so a typical order response needs one block. */
void moat_buf_init_secret(moat_buf_t *b, size_t max);
void moat_buf_free(moat_buf_t *b);
/* Empties the buffer, keeping its block (not wiped: see moat_buf_free). */
void moat_buf_reset(moat_buf_t *b);
/* Returns the data (caller frees, and wipes it first if the buffer was secret)
 * and leaves the buffer empty. */
char *moat_buf_take(moat_buf_t *b);
moat_err_t moat_buf_append(moat_buf_t *b, const void *p, size_t n) MOAT_MUST_CHECK;
moat_err_t moat_buf_puts(moat_buf_t *b, const char *s) MOAT_MUST_CHECK;
moat_err_t moat_buf_putc(moat_buf_t *b, char c) MOAT_MUST_CHECK;
moat_err_t moat_buf_printf(moat_buf_t *b, const char *fmt, ...) MOAT_PRINTF(2, 3) MOAT_MUST_CHECK;
/* Appends s as a JSON string literal, quotes included. Always valid JSON: a byte
 * that does not start a valid UTF-8 sequence becomes U+FFFD, so no text moat
 * did not validate (a truncated message, a file name) can break a response or
 * a log line. */
moat_err_t moat_buf_json_str(moat_buf_t *b, const char *s) MOAT_MUST_CHECK;

/* Writes v in decimal to out (room for 20 bytes), unterminated; returns the
 * digit count. For hot paths where a printf costs more than the work around it. */
size_t moat_fmt_u64(char *out, uint64_t v);
/* The same with a leading '-' for negatives (room for 21 bytes). */
size_t moat_fmt_i64(char *out, int64_t v);

/* ---- arena ------------------------------------------------------------------------ */

/* Per-request memory: many allocations, one free. Allocation never fails silently:
 * it returns NULL on OOM. */
typedef struct moat_arena moat_arena_t;
moat_arena_t *moat_arena_new(size_t block_size);
void moat_arena_free(moat_arena_t *a);
/* Forgets every allocation but keeps the first block for reuse (a recycled
 * arena neither frees nor faults in fresh memory). */
void moat_arena_reset(moat_arena_t *a);
void *moat_arena_alloc(moat_arena_t *a, size_t n);
char *moat_arena_strdup(moat_arena_t *a, const char *s);
char *moat_arena_strndup(moat_arena_t *a, const char *s, size_t n);

/* ---- time ------------------------------------------------------------------------- */

/* Milliseconds since the Unix epoch, UTC. */
typedef int64_t moat_time_t;
#define MOAT_TIME_NONE INT64_MIN

moat_time_t moat_now(void);
/* Monotonic nanoseconds, for measuring durations. */
uint64_t moat_mono_ns(void);
/* RFC 3339 with a mandatory offset ("2026-03-01T10:00:00+08:00", "…Z", optional
 * fraction). Returns false on anything else, including impossible dates. */
bool moat_time_parse(const char *s, moat_time_t *out);
/* Formats as UTC "YYYY-MM-DDTHH:MM:SS.mmmZ" (fraction omitted when zero). out >= 32. */
void moat_time_format(moat_time_t t, char out[32]);
/* Days since 1970-01-01 of a proleptic Gregorian date (month 1-12, day 1-31, not
 * checked), and back (Howard Hinnant's algorithms; any int64 day count whose year
 * fits). */
int64_t moat_days_from_civil(int64_t y, unsigned m, unsigned d);
void moat_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

/* ---- encodings and comparison ----------------------------------------------------- */

void moat_hex_encode(const uint8_t *in, size_t n, char *out /* 2n+1 */);
/* Decodes exactly 2n hex chars into n bytes; false on bad input. */
bool moat_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t *outlen, size_t outcap);
/* Standard base64 with padding. out needs 4*((n+2)/3)+1. Returns length written. */
size_t moat_b64_encode(const uint8_t *in, size_t n, char *out);
/* Strict standard base64 decode (padding required, no whitespace). */
bool moat_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t *outlen, size_t outcap);
/* Constant-time equality of two equal-length byte strings. */
bool moat_ct_equal(const void *a, const void *b, size_t n);
/* Strictly validates UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool moat_utf8_valid(const char *s, size_t n);
/* Length (2..4) of the valid multi-byte sequence at s, of which at most avail
 * bytes may be read, or 0. Bytes are read in order and the first that does not
 * fit ends it, so a NUL-terminated string may pass avail 4. */
size_t moat_utf8_seq(const char *s, size_t avail);
/* Number of code points in valid UTF-8. */
size_t moat_utf8_len(const char *s, size_t n);
/* Length of the longest prefix of the NUL-terminated s that is at most max bytes
 * and does not end inside a UTF-8 sequence (for cutting text to fit). */
size_t moat_utf8_cut(const char *s, size_t max);

/* ---- files ------------------------------------------------------------------------ */

/* Reads a whole file (at most max bytes, else MOAT_ELIMIT). Caller frees *out. */
moat_err_t moat_file_read(const char *path, size_t max, char **out, size_t *len,
			  moat_error_t *err) MOAT_MUST_CHECK;
/* Writes atomically: temp file in the same directory, fsync, rename, fsync dir.
 * mode applies to the new file (e.g. 0600 for secrets). */
moat_err_t moat_file_write_atomic(const char *path, const void *data, size_t len, int mode,
				  moat_error_t *err) MOAT_MUST_CHECK;
/* fsyncs a directory so a rename or create inside it is durable. */
moat_err_t moat_fsync_dir(const char *dir) MOAT_MUST_CHECK;
/* mkdir -p with the given mode for created directories. */
moat_err_t moat_mkdirs(const char *path, int mode, moat_error_t *err) MOAT_MUST_CHECK;
/* Joins dir and name into out (cap bytes); MOAT_ELIMIT if it does not fit. */
moat_err_t moat_path_join(char *out, size_t cap, const char *dir, const char *name) MOAT_MUST_CHECK;

/* ---- randomness ------------------------------------------------------------------- */

/* Cryptographically secure random bytes (OpenSSL RAND_bytes). */
moat_err_t moat_random(void *out, size_t n) MOAT_MUST_CHECK;

#endif
