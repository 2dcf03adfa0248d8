/*
 * moat JSON input: strict, bounded parsing on top of jansson.
 *
 * jansson validates UTF-8 and can reject duplicated keys; on top of that this
 * module enforces moat's caps (line length, nesting depth, string length) and
 * gives typed field accessors whose errors name the field, so every parser in
 * moat reports "line 7, field buyer.phone: …" the same way.
 */
#ifndef MOAT_JSON_H
#define MOAT_JSON_H

#include <jansson.h>

#include "moat/base.h"

#define MOAT_JSON_MAX_DEPTH 16
#define MOAT_JSON_MAX_LINE (1u << 20) /* 1 MiB per JSON-lines record */

/* Parses one JSON document of n bytes. Rejects invalid UTF-8, duplicated keys,
 * NUL bytes, nesting deeper than max_depth, and any top-level value that is not an
 * object. On success *out is a new reference (caller json_decref's it). */
moat_err_t moat_json_parse(const char *s, size_t n, int max_depth, json_t **out,
			   moat_error_t *err) MOAT_MUST_CHECK;
/* moat_json_parse's two halves, exposed so tests can compare them. _fast lexes
 * with yajl and returns the tree (a new reference) only when it is sure it is the
 * one json_loadb would build and moat_json_parse accept, else NULL (see
 * src/base/json.c); _slow is jansson's own lexer and decides every document. */
json_t *moat_json_parse_fast(const char *s, size_t n, int max_depth);
moat_err_t moat_json_parse_slow(const char *s, size_t n, int max_depth, json_t **out,
				moat_error_t *err) MOAT_MUST_CHECK;

/* Fails with MOAT_EINVAL naming the first key of obj not in allowed (NULL-terminated).
 * prefix is prepended to the field name in the error ("buyer." → "buyer.foo"). */
moat_err_t moat_json_only_keys(json_t *obj, const char *const *allowed, const char *prefix,
			       moat_error_t *err) MOAT_MUST_CHECK;

/* Typed getters. `required` false: an absent key (or JSON null) leaves *out
 * untouched and returns MOAT_OK. Strings must be 1..max_chars code points. */
moat_err_t moat_json_get_str(json_t *obj, const char *key, const char *field, bool required,
			     size_t max_chars, const char **out, moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_json_get_int(json_t *obj, const char *key, const char *field, bool required,
			     int64_t min, int64_t max, int64_t *out,
			     moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_json_get_time(json_t *obj, const char *key, const char *field, bool required,
			      moat_time_t *out, moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_json_get_obj(json_t *obj, const char *key, const char *field, bool required,
			     json_t **out, moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_json_get_arr(json_t *obj, const char *key, const char *field, bool required,
			     size_t max_items, json_t **out, moat_error_t *err) MOAT_MUST_CHECK;
/* String that must be one of the NULL-terminated choices; *out gets its index. */
moat_err_t moat_json_get_enum(json_t *obj, const char *key, const char *field, bool required,
			      const char *const *choices, int *out,
			      moat_error_t *err) MOAT_MUST_CHECK;

/* Scratch memory for the jansson trees one thread builds and releases in turn
 * (an import's converting thread parses an order, reads it, drops it, parses
 * the next). While an arena is active on a thread, jansson's allocations on that
 * thread are carved from it, and releasing them costs nothing; once every block
 * carved from it has been released, the next tree starts again at its front.
 * When it is full, or for threads with no active arena (the gateway, the CLI),
 * jansson allocates with malloc and frees with free, as it does by default.
 *
 * jansson's allocator is process-wide: the first moat_json_arena_new installs
 * moat's pair, which hands non-arena memory to malloc/free. Rules: a tree built
 * while an arena is active is released on that thread while that arena is still
 * active; nothing jansson hands to a caller to free() (json_dumps) is made while
 * an arena is active. Not thread-safe: one arena per thread. */
typedef struct moat_json_arena moat_json_arena_t;
/* An arena of cap bytes; NULL if out of memory. */
moat_json_arena_t *moat_json_arena_new(size_t cap);
/* moat_json_arena_free(NULL) is a no-op. The arena must not be active on any
 * thread, and nothing carved from it may be live. */
void moat_json_arena_free(moat_json_arena_t *a);
/* Makes a the calling thread's active arena (NULL: none). Returns the one that
 * was active, so a caller can restore it. */
moat_json_arena_t *moat_json_arena_use(moat_json_arena_t *a);
/* Blocks carved from a and not yet released (0 once every tree is released). */
size_t moat_json_arena_live(const moat_json_arena_t *a);

/* Reads JSON Lines from a stream one record at a time, with a hard cap on line
 * length: an over-long line is consumed and reported, never buffered whole. */
typedef struct moat_jsonl moat_jsonl_t;
/* path "-" is stdin. */
moat_err_t moat_jsonl_open(const char *path, moat_jsonl_t **out, moat_error_t *err) MOAT_MUST_CHECK;
/* Next non-empty record: MOAT_OK with *obj set (caller decrefs), MOAT_ENOTFOUND at
 * end of input, or an error with err->line set. */
moat_err_t moat_jsonl_next(moat_jsonl_t *r, json_t **obj, moat_error_t *err) MOAT_MUST_CHECK;
/* The next non-blank line without parsing it (trailing CR removed): *text is
 * borrowed until the next call, not NUL-terminated. Same results and line
 * numbers as moat_jsonl_next, whose parse is moat_json_parse(text, len,
 * MOAT_JSON_MAX_DEPTH, ...); lets a caller read on one thread and parse on others. */
moat_err_t moat_jsonl_read(moat_jsonl_t *r, const char **text, size_t *len,
			   moat_error_t *err) MOAT_MUST_CHECK;
long moat_jsonl_line(const moat_jsonl_t *r);
void moat_jsonl_close(moat_jsonl_t *r);

#endif
