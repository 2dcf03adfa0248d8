/* Strict, bounded JSON parsing over jansson (see include/moat/json.h). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "moat/json.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define ARENA_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define ARENA_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define ARENA_POISON(p, n) ((void)(p), (void)(n))
#define ARENA_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* ---- per-thread arena for jansson trees ----
 * An order line becomes some 70 jansson allocations (each object, its hash
 * table, each key, string and number) freed again a few microseconds later;
 * carving them from a block the thread keeps warm and dropping them for nothing
 * is cheaper than malloc/free. Blocks are never reused one by one: the whole
 * arena starts over once its last live block is released, so a thread can never
 * be handed memory a live tree still uses, whatever the order of its frees. */

#define ARENA_ALIGN 16 /* what malloc guarantees on the platforms moat targets */

struct moat_json_arena {
	char *base;
	size_t cap;
	size_t used; /* base[0..used) carved since the arena last started over */
	size_t top;  /* the most ever used: what moat_json_arena_free wipes */
	size_t live; /* blocks carved and not yet released */
};

static _Thread_local moat_json_arena_t *active_arena;

static bool arena_owns(const moat_json_arena_t *a, const void *p)
{
	uintptr_t x = (uintptr_t)p, b = (uintptr_t)a->base;
	return x >= b && x - b < a->cap;
}

static void *arena_malloc(size_t n)
{
	moat_json_arena_t *a = active_arena;
	if (a && n <= a->cap) {
		size_t need = (n + !n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
		if (need <= a->cap - a->used) {
			void *p = a->base + a->used;
			a->used += need;
			a->live++;
			ARENA_UNPOISON(p, n);
			return p;
		}
	}
	return malloc(n);
}

static void arena_free(void *p)
{
	moat_json_arena_t *a = active_arena;
	if (!p || !a || !arena_owns(a, p)) {
		free(p);
		return;
	}
	if (--a->live == 0) {
		if (a->used > a->top)
			a->top = a->used;
		ARENA_POISON(a->base, a->used);
		a->used = 0;
	}
}

/* jansson keeps one allocator pair for the process, read without a lock by every
 * thread that builds or frees a tree. Installing moat's pair while another thread
 * is inside jansson is harmless: on a thread with no active arena both pairs are
 * malloc and free, and memory malloc'd under the default pair is free'd by
 * arena_free, since no arena owns it. */
static void install_alloc_funcs(void)
{
	json_set_alloc_funcs(arena_malloc, arena_free);
}

moat_json_arena_t *moat_json_arena_new(size_t cap)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, install_alloc_funcs);
	moat_json_arena_t *a = calloc(1, sizeof *a);
	if (!a)
		return NULL;
	a->cap = cap;
	a->base = malloc(cap ? cap : 1);
	if (!a->base) {
		free(a);
		return NULL;
	}
	ARENA_POISON(a->base, a->cap);
	return a;
}

void moat_json_arena_free(moat_json_arena_t *a)
{
	if (!a)
		return;
	/* The trees held buyers' names and phones in clear. */
	ARENA_UNPOISON(a->base, a->cap);
	explicit_bzero(a->base, a->used > a->top ? a->used : a->top);
	free(a->base);
	free(a);
}

moat_json_arena_t *moat_json_arena_use(moat_json_arena_t *a)
{
	moat_json_arena_t *prev = active_arena;
	active_arena = a;
	return prev;
}

size_t moat_json_arena_live(const moat_json_arena_t *a)
{
	return a->live;
}

static int json_depth(json_t *v, int limit)
{
	if (limit < 0)
		return 1;
	int max = 0;
	if (json_is_object(v)) {
		const char *k;
		json_t *c;
		json_object_foreach(v, k, c)
		{
			int d = json_depth(c, limit - 1);
			if (d > max)
				max = d;
		}
		return max + 1;
	}
	if (json_is_array(v)) {
		size_t i;
		json_t *c;
		json_array_foreach(v, i, c)
		{
			int d = json_depth(c, limit - 1);
			if (d > max)
				max = d;
		}
		return max + 1;
	}
	return 0;
}

/* Whether s has more than limit '{' and '[' bytes, in strings or not. Every
 * object and array opens with one, so a document with no more than limit of
 * them is nested no deeper than limit, and its tree need not be walked: an
 * order line has five. */
static bool more_openers(const char *s, size_t n, int limit)
{
	size_t count = 0;
	for (size_t i = 0; i < n; i++)
		count += s[i] == '{' || s[i] == '[';
	return count > (size_t)(limit < 0 ? 0 : limit);
}

/* ---- the fast path: yajl's lexer builds the jansson tree ----
 * jansson's own lexer reads its input a byte at a time through a UTF-8 decoding
 * stream and was half of an imported order's CPU. yajl (also Debian's) lexes
 * the same grammar some eight times faster; its events build the same jansson
 * tree jansson would have built. The fast path only ever says "this is the tree"
 * or "not sure": every document it is not sure of goes to json_loadb, which
 * decides and names the fault exactly as before. It takes only documents whose
 * tree is certainly jansson's:
 *   - strict UTF-8 (moat_utf8_valid: no overlong forms, surrogates or code points
 *     past U+10FFFF; yajl checks less), so strings need no further check;
 *   - no "\u" escape anywhere (yajl turns a lone surrogate into '?' and lets
 *     \u0000 through, jansson refuses both), which also means no NUL in a string;
 *   - no vertical tab or form feed byte (yajl takes them as whitespace);
 *   - nothing but whitespace after the top-level value (yajl forgives an
 *     unfinished token there);
 *   - no duplicated key, no nesting deeper than max_depth, a top-level object,
 *     numbers jansson would store the same (yajl's integers overflow exactly
 *     where json_int_t does; a real is strtod's value in both, and json_real
 *     refuses the infinities);
 * Anything else yajl or the checks refuse falls through. tests/test_base.c
 * compares the two paths on mutated documents. */

#define FAST_MAX_DEPTH 32
#define FAST_KEY_MAX 256

typedef struct fast_ctx {
	json_t *root;
	json_t *open[FAST_MAX_DEPTH]; /* borrowed: each is held by its parent or root */
	int depth, max_depth;
	yajl_handle h;
	size_t end;	/* where the top-level value closed: 0 until it has */
	size_t key_len; /* the key awaiting its value (objects only) */
	char key[FAST_KEY_MAX];
} fast_ctx_t;

/* Puts v (a new reference, stolen) under the open container, or makes it root. */
static int fast_add(fast_ctx_t *c, json_t *v)
{
	if (!v)
		return 0;
	if (c->depth == 0) {
		c->root = v;
		return 1;
	}
	json_t *parent = c->open[c->depth - 1];
	if (json_is_array(parent))
		return json_array_append_new(parent, v) == 0;
	/* One hash look-up: a duplicated key replaces its first value instead of
	 * adding one, and the document then goes to jansson, which refuses it. */
	size_t before = json_object_size(parent);
	return json_object_setn_new_nocheck(parent, c->key, c->key_len, v) == 0 &&
	       json_object_size(parent) > before;
}

static int fast_null(void *c) { return fast_add(c, json_null()); }
static int fast_bool(void *c, int b) { return fast_add(c, json_boolean(b)); }
static int fast_int(void *c, long long v) { return fast_add(c, json_integer(v)); }
static int fast_real(void *c, double v) { return fast_add(c, json_real(v)); }

static int fast_str(void *c, const unsigned char *s, size_t n)
{
	return fast_add(c, json_stringn_nocheck((const char *)s, n));
}

static int fast_key(void *v, const unsigned char *s, size_t n)
{
	fast_ctx_t *c = v;
	if (n > sizeof c->key)
		return 0;
	memcpy(c->key, s, n);
	c->key_len = n;
	return 1;
}

static int fast_open(fast_ctx_t *c, json_t *container)
{
	if (!container || c->depth >= c->max_depth) {
		json_decref(container);
		return 0;
	}
	if (!fast_add(c, container)) /* container now belongs to its parent (or root) */
		return 0;
	c->open[c->depth++] = container;
	return 1;
}

static int fast_open_obj(void *c) { return fast_open(c, json_object()); }
static int fast_open_arr(void *c) { return fast_open(c, json_array()); }

static int fast_close(void *v)
{
	fast_ctx_t *c = v;
	if (--c->depth == 0) /* just past the top-level value's closing byte */
		c->end = yajl_get_bytes_consumed(c->h);
	return 1;
}

/* yajl's end of input forgives an unfinished token after the top-level value
 * ("{} \"" passes), so what follows it is checked here: whitespace only. */
static bool fast_rest_blank(const char *s, size_t n, size_t from)
{
	if (from == 0 || from > n)
		return false;
	for (size_t i = from; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

static const yajl_callbacks fast_callbacks = {
    .yajl_null = fast_null,
    .yajl_boolean = fast_bool,
    .yajl_integer = fast_int,
    .yajl_double = fast_real,
    .yajl_string = fast_str,
    .yajl_start_map = fast_open_obj,
    .yajl_map_key = fast_key,
    .yajl_end_map = fast_close,
    .yajl_start_array = fast_open_arr,
    .yajl_end_array = fast_close,
};

static bool fast_candidate(const char *s, size_t n)
{
	if (n == 0 || memchr(s, '\v', n) || memchr(s, '\f', n))
		return false;
	for (const char *p = memchr(s, '\\', n); p; p = memchr(p, '\\', n - (size_t)(p - s)))
		if (++p < s + n && *p == 'u')
			return false;
	return moat_utf8_valid(s, n);
}

json_t *moat_json_parse_fast(const char *s, size_t n, int max_depth)
{
	if (max_depth < 1 || max_depth > FAST_MAX_DEPTH || !fast_candidate(s, n))
		return NULL;
	fast_ctx_t c;
	c.root = NULL;
	c.depth = 0;
	c.max_depth = max_depth;
	c.key_len = 0;
	c.end = 0;
	yajl_handle h = c.h = yajl_alloc(&fast_callbacks, NULL, &c);
	if (!h)
		return NULL;
	yajl_config(h, yajl_dont_validate_strings, 1); /* moat_utf8_valid did, strictly */
	yajl_status st = yajl_parse(h, (const unsigned char *)s, n);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	yajl_free(h);
	if (st != yajl_status_ok || !json_is_object(c.root) || !fast_rest_blank(s, n, c.end)) {
		json_decref(c.root);
		return NULL;
	}
	return c.root;
}

moat_err_t moat_json_parse_slow(const char *s, size_t n, int max_depth, json_t **out,
				moat_error_t *err)
{
	*out = NULL;
	json_error_t je;
	json_t *v = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
	if (!v) {
		/* jansson decodes every byte of a document it accepts as strict UTF-8
		 * (no overlong forms, surrogates or code points past U+10FFFF), so only
		 * a refused one can be invalid UTF-8: say so rather than quote a byte. */
		if (!moat_utf8_valid(s, n))
			return moat_error_set(err, MOAT_EINVAL, NULL, "input is not valid UTF-8");
		/* jansson's own text names duplicated keys and syntax errors precisely. */
		return moat_error_set(err, MOAT_EINVAL, NULL, "malformed JSON at column %d: %s",
				      je.column, je.text);
	}
	if (!json_is_object(v)) {
		json_decref(v);
		return moat_error_set(err, MOAT_EINVAL, NULL, "expected a JSON object");
	}
	if (more_openers(s, n, max_depth) && json_depth(v, max_depth) > max_depth) {
		json_decref(v);
		return moat_error_set(err, MOAT_ELIMIT, NULL, "JSON nested deeper than %d levels",
				      max_depth);
	}
	*out = v;
	return MOAT_OK;
}

moat_err_t moat_json_parse(const char *s, size_t n, int max_depth, json_t **out, moat_error_t *err)
{
	json_t *v = moat_json_parse_fast(s, n, max_depth);
	if (!v)
		return moat_json_parse_slow(s, n, max_depth, out, err);
	*out = v;
	return MOAT_OK;
}

static void field_name(char *out, size_t cap, const char *prefix, const char *key)
{
	snprintf(out, cap, "%s%s", prefix ? prefix : "", key);
}

moat_err_t moat_json_only_keys(json_t *obj, const char *const *allowed, const char *prefix,
			       moat_error_t *err)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v)
	{
		bool ok = false;
		/* first bytes compared inline: most allowed keys differ there */
		for (const char *const *a = allowed; *a; a++)
			if (**a == *k && strcmp(*a, k) == 0) {
				ok = true;
				break;
			}
		if (!ok) {
			char f[96];
			char shown[48];
			/* Keys come from untrusted input: show a bounded, printable prefix. */
			snprintf(shown, sizeof shown, "%s", k);
			field_name(f, sizeof f, prefix, shown);
			return moat_error_set(err, MOAT_EINVAL, f, "unknown key \"%s\"", shown);
		}
	}
	return MOAT_OK;
}

static json_t *get_present(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return (v && !json_is_null(v)) ? v : NULL;
}

moat_err_t moat_json_get_str(json_t *obj, const char *key, const char *field, bool required,
			     size_t max_chars, const char **out, moat_error_t *err)
{
	json_t *v = get_present(obj, key);
	if (!v)
		return required
			   ? moat_error_set(err, MOAT_EINVAL, field, "required field is missing")
			   : MOAT_OK;
	if (!json_is_string(v))
		return moat_error_set(err, MOAT_EINVAL, field, "must be a string");
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (n == 0)
		return moat_error_set(err, MOAT_EINVAL, field, "must not be empty");
	/* One pass for what three checks need (an imported order has a dozen
	 * strings); the errors keep their order: NUL, length, control characters. */
	size_t chars = 0;
	bool nul = false, control = false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		chars += (c & 0xc0) != 0x80; /* as moat_utf8_len */
		if (c < 0x20) {
			nul = nul || c == 0;
			control = true;
		}
	}
	if (nul)
		return moat_error_set(err, MOAT_EINVAL, field, "must not contain NUL characters");
	if (chars > max_chars)
		return moat_error_set(err, MOAT_ELIMIT, field, "longer than %zu characters",
				      max_chars);
	if (control)
		return moat_error_set(err, MOAT_EINVAL, field,
				      "must not contain control characters");
	*out = s;
	return MOAT_OK;
}

moat_err_t moat_json_get_int(json_t *obj, const char *key, const char *field, bool required,
			     int64_t min, int64_t max, int64_t *out, moat_error_t *err)
{
	json_t *v = get_present(obj, key);
	if (!v)
		return required
			   ? moat_error_set(err, MOAT_EINVAL, field, "required field is missing")
			   : MOAT_OK;
	if (!json_is_integer(v))
		return moat_error_set(err, MOAT_EINVAL, field, "must be an integer");
	json_int_t x = json_integer_value(v);
	if (x < min || x > max)
		return moat_error_set(err, MOAT_EINVAL, field, "must be between %lld and %lld",
				      (long long)min, (long long)max);
	*out = x;
	return MOAT_OK;
}

moat_err_t moat_json_get_time(json_t *obj, const char *key, const char *field, bool required,
			      moat_time_t *out, moat_error_t *err)
{
	const char *s = NULL;
	moat_err_t rc = moat_json_get_str(obj, key, field, required, 40, &s, err);
	if (rc != MOAT_OK || !s)
		return rc;
	if (!moat_time_parse(s, out))
		return moat_error_set(
		    err, MOAT_EINVAL, field,
		    "must be an RFC 3339 time with offset, e.g. 2026-03-01T10:00:00+08:00");
	return MOAT_OK;
}

moat_err_t moat_json_get_obj(json_t *obj, const char *key, const char *field, bool required,
			     json_t **out, moat_error_t *err)
{
	json_t *v = get_present(obj, key);
	if (!v)
		return required
			   ? moat_error_set(err, MOAT_EINVAL, field, "required field is missing")
			   : MOAT_OK;
	if (!json_is_object(v))
		return moat_error_set(err, MOAT_EINVAL, field, "must be an object");
	*out = v;
	return MOAT_OK;
}

moat_err_t moat_json_get_arr(json_t *obj, const char *key, const char *field, bool required,
			     size_t max_items, json_t **out, moat_error_t *err)
{
	json_t *v = get_present(obj, key);
	if (!v)
		return required
			   ? moat_error_set(err, MOAT_EINVAL, field, "required field is missing")
			   : MOAT_OK;
	if (!json_is_array(v))
		return moat_error_set(err, MOAT_EINVAL, field, "must be an array");
	if (json_array_size(v) > max_items)
		return moat_error_set(err, MOAT_ELIMIT, field, "more than %zu items", max_items);
	*out = v;
	return MOAT_OK;
}

moat_err_t moat_json_get_enum(json_t *obj, const char *key, const char *field, bool required,
			      const char *const *choices, int *out, moat_error_t *err)
{
	const char *s = NULL;
	moat_err_t rc = moat_json_get_str(obj, key, field, required, 64, &s, err);
	if (rc != MOAT_OK || !s)
		return rc;
	for (int i = 0; choices[i]; i++)
		if (strcmp(choices[i], s) == 0) {
			*out = i;
			return MOAT_OK;
		}
	char list[256] = "";
	for (int i = 0; choices[i]; i++) {
		if (i)
			strncat(list, ", ", sizeof list - strlen(list) - 1);
		strncat(list, choices[i], sizeof list - strlen(list) - 1);
	}
	return moat_error_set(err, MOAT_EINVAL, field, "must be one of: %s", list);
}

/* ---- JSON Lines reader ---- */

/* Input is read in blocks of JSONL_IN bytes and lines are cut with memchr: a
 * getc per byte cost more than jansson's own scan on 400-byte order lines. */
#define JSONL_IN 65536

struct moat_jsonl {
	FILE *f;
	bool own;
	bool eof;
	long line;
	char *buf; /* the current line */
	size_t cap;
	char *in; /* JSONL_IN bytes read ahead; in[pos..have) not yet consumed */
	size_t pos, have;
};

moat_err_t moat_jsonl_open(const char *path, moat_jsonl_t **out, moat_error_t *err)
{
	moat_jsonl_t *r = calloc(1, sizeof *r);
	if (!r)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	if (strcmp(path, "-") == 0) {
		r->f = stdin;
	} else {
		r->f = fopen(path, "rb");
		r->own = true;
		if (!r->f) {
			moat_err_t rc =
			    moat_error_set(err, errno == ENOENT ? MOAT_ENOTFOUND : MOAT_EIO, NULL,
					   "cannot open %s: %s", path, strerror(errno));
			free(r);
			return rc;
		}
	}
	r->cap = 4096;
	r->buf = malloc(r->cap);
	r->in = malloc(JSONL_IN);
	if (!r->buf || !r->in) {
		moat_jsonl_close(r);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	*out = r;
	return MOAT_OK;
}

long moat_jsonl_line(const moat_jsonl_t *r)
{
	return r->line;
}

/* Reads the next line (without its newline) into r->buf[0..*len). MOAT_ENOTFOUND
 * at end of input; *too_long if it had MOAT_JSON_MAX_LINE bytes or more (the rest
 * is drained, not stored). */
static moat_err_t read_line(moat_jsonl_t *r, size_t *len, bool *too_long, moat_error_t *err)
{
	bool any = false;
	*len = 0;
	*too_long = false;
	for (;;) {
		if (r->pos == r->have) {
			if (r->eof)
				break;
			r->pos = 0;
			r->have = fread(r->in, 1, JSONL_IN, r->f);
			if (r->have < JSONL_IN) {
				if (ferror(r->f))
					return moat_error_set(err, MOAT_EIO, NULL, "read error: %s",
							      strerror(errno));
				r->eof = true;
			}
			if (r->have == 0)
				break;
		}
		any = true;
		const char *start = r->in + r->pos;
		const char *nl = memchr(start, '\n', r->have - r->pos);
		size_t n = nl ? (size_t)(nl - start) : r->have - r->pos;
		r->pos += n + (nl ? 1 : 0);
		if (!*too_long && n >= MOAT_JSON_MAX_LINE - *len)
			*too_long = true;
		if (!*too_long) {
			if (*len + n + 1 > r->cap) {
				size_t ncap = r->cap;
				while (ncap < *len + n + 1)
					ncap *= 2;
				char *nb = realloc(r->buf, ncap);
				if (!nb)
					return moat_error_set(err, MOAT_ENOMEM, NULL,
							      "out of memory");
				r->buf = nb;
				r->cap = ncap;
			}
			memcpy(r->buf + *len, start, n);
			*len += n;
		}
		if (nl)
			break;
	}
	return any ? MOAT_OK : MOAT_ENOTFOUND;
}

moat_err_t moat_jsonl_read(moat_jsonl_t *r, const char **text, size_t *len, moat_error_t *err)
{
	for (;;) {
		size_t n = 0;
		bool too_long = false;
		moat_err_t rc = read_line(r, &n, &too_long, err);
		if (rc != MOAT_OK)
			return rc;
		r->line++;
		if (err)
			err->line = r->line;
		if (too_long)
			return moat_error_set(err, MOAT_ELIMIT, NULL,
					      "line is longer than %u bytes",
					      MOAT_JSON_MAX_LINE - 1);
		if (n && r->buf[n - 1] == '\r')
			n--;
		size_t i = 0;
		while (i < n && (r->buf[i] == ' ' || r->buf[i] == '\t'))
			i++;
		if (i == n)
			continue; /* blank line */
		*text = r->buf;
		*len = n;
		return MOAT_OK;
	}
}

moat_err_t moat_jsonl_next(moat_jsonl_t *r, json_t **obj, moat_error_t *err)
{
	*obj = NULL;
	const char *text = NULL;
	size_t len = 0;
	moat_err_t rc = moat_jsonl_read(r, &text, &len, err);
	if (rc != MOAT_OK)
		return rc;
	rc = moat_json_parse(text, len, MOAT_JSON_MAX_DEPTH, obj, err);
	if (rc != MOAT_OK && err)
		err->line = r->line;
	return rc;
}

void moat_jsonl_close(moat_jsonl_t *r)
{
	if (!r)
		return;
	if (r->own && r->f)
		fclose(r->f);
	free(r->buf);
	free(r->in);
	free(r);
}
