/* Bounded growable buffer and block arena. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "moat/base.h"

void moat_buf_init(moat_buf_t *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->secret = false;
}

void moat_buf_init_secret(moat_buf_t *b, size_t max)
{
	moat_buf_init(b, max);
	b->secret = true;
}

void moat_buf_free(moat_buf_t *b)
{
	if (b->secret && b->data)
		OPENSSL_cleanse(b->data, b->cap);
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void moat_buf_reset(moat_buf_t *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *moat_buf_take(moat_buf_t *b)
{
	char *p = b->data;
	if (!p)
		p = calloc(1, 1);
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

/* Ensures room for n more bytes plus the terminator. */
static moat_err_t buf_reserve(moat_buf_t *b, size_t n)
{
	if (n > b->max || b->len > b->max - n)
		return MOAT_ELIMIT;
	size_t need = b->len + n + 1;
	if (need <= b->cap)
		return MOAT_OK;
	size_t cap = b->cap ? b->cap : b->secret ? 1024 : 64;
	while (cap < need)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	char *p;
	if (b->secret) {
		/* no realloc: it may leave the old block's bytes in freed memory */
		if (!(p = malloc(cap)))
			return MOAT_ENOMEM;
		if (b->data) {
			memcpy(p, b->data, b->len + 1);
			OPENSSL_cleanse(b->data, b->cap);
			free(b->data);
		}
	} else if (!(p = realloc(b->data, cap))) {
		return MOAT_ENOMEM;
	}
	b->data = p;
	b->cap = cap;
	return MOAT_OK;
}

moat_err_t moat_buf_append(moat_buf_t *b, const void *p, size_t n)
{
	moat_err_t rc = buf_reserve(b, n);
	if (rc != MOAT_OK)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return MOAT_OK;
}

moat_err_t moat_buf_puts(moat_buf_t *b, const char *s) { return moat_buf_append(b, s, strlen(s)); }

moat_err_t moat_buf_putc(moat_buf_t *b, char c) { return moat_buf_append(b, &c, 1); }

moat_err_t moat_buf_printf(moat_buf_t *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MOAT_EINVAL;
	moat_err_t rc = buf_reserve(b, (size_t)n);
	if (rc != MOAT_OK)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return MOAT_OK;
}

moat_err_t moat_buf_json_str(moat_buf_t *b, const char *s)
{
	size_t start = b->len;
	moat_err_t rc = moat_buf_putc(b, '"');
	/* Characters that need no escape go in as whole runs, one append per run
	 * rather than per byte: this escapes the PII of every imported order. */
	const unsigned char *p = (const unsigned char *)s, *run = p;
	for (; rc == MOAT_OK && *p; p++) {
		if (*p >= 0x80) {
			/* (a NUL-terminated string may pass 4: the NUL ends a sequence) */
			size_t k = moat_utf8_seq((const char *)p, 4);
			if (k) {
				p += k - 1;
				continue;
			}
		} else if (*p >= 0x20 && *p != '"' && *p != '\\') {
			continue;
		}
		rc = moat_buf_append(b, run, (size_t)(p - run));
		run = p + 1;
		if (rc != MOAT_OK)
			break;
		switch (*p) {
		case '"': rc = moat_buf_puts(b, "\\\""); break;
		case '\\': rc = moat_buf_puts(b, "\\\\"); break;
		case '\n': rc = moat_buf_puts(b, "\\n"); break;
		case '\r': rc = moat_buf_puts(b, "\\r"); break;
		case '\t': rc = moat_buf_puts(b, "\\t"); break;
		default:
			rc = *p >= 0x80 ? moat_buf_puts(b, "\xef\xbf\xbd") /* U+FFFD */
					: moat_buf_printf(b, "\\u%04x", *p);
		}
	}
	if (rc == MOAT_OK)
		rc = moat_buf_append(b, run, (size_t)(p - run));
	if (rc == MOAT_OK)
		rc = moat_buf_putc(b, '"');
	if (rc != MOAT_OK) {
		b->len = start; /* leave no half-written literal */
		if (b->data)
			b->data[start] = '\0';
	}
	return rc;
}

/* ---- arena ---- */

struct arena_block {
	struct arena_block *next;
	size_t used, size;
	max_align_t data[];
};

struct moat_arena {
	struct arena_block *head;
	size_t block_size;
};

moat_arena_t *moat_arena_new(size_t block_size)
{
	moat_arena_t *a = calloc(1, sizeof *a);
	if (a)
		a->block_size = block_size ? block_size : 8192;
	return a;
}

void moat_arena_free(moat_arena_t *a)
{
	if (!a)
		return;
	struct arena_block *b = a->head;
	while (b) {
		struct arena_block *n = b->next;
		free(b);
		b = n;
	}
	free(a);
}

void moat_arena_reset(moat_arena_t *a)
{
	struct arena_block *b = a->head, *keep = NULL;
	while (b) {
		struct arena_block *n = b->next;
		if (!n && b->size == a->block_size)
			keep = b; /* the first block: not an oversized one */
		else
			free(b);
		b = n;
	}
	if (keep) {
		keep->used = 0;
		keep->next = NULL;
	}
	a->head = keep;
}

void *moat_arena_alloc(moat_arena_t *a, size_t n)
{
	const size_t align = _Alignof(max_align_t);
	n = (n + align - 1) & ~(align - 1);
	if (n == 0)
		n = align;
	struct arena_block *b = a->head;
	if (!b || b->size - b->used < n) {
		size_t size = n > a->block_size ? n : a->block_size;
		b = malloc(sizeof *b + size);
		if (!b)
			return NULL;
		b->used = 0;
		b->size = size;
		b->next = a->head;
		a->head = b;
	}
	void *p = (char *)b->data + b->used;
	b->used += n;
	return p;
}

char *moat_arena_strndup(moat_arena_t *a, const char *s, size_t n)
{
	char *p = moat_arena_alloc(a, n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

char *moat_arena_strdup(moat_arena_t *a, const char *s) { return moat_arena_strndup(a, s, strlen(s)); }
