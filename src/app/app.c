/* A data directory opened as a whole, and the operations that span store and keys. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "moat/app.h"
#include "app/app_internal.h"

#define MARKER_NAME "MOAT"
#define MARKER_TEXT "moat data directory v1\n"

static const char default_config[] =
    "# moat configuration. Precedence: command-line flags > MOAT_* environment > this file\n"
    "# > built-in defaults. See docs/config.md.\n"
    "\n"
    "[server]\n"
    "listen = 127.0.0.1:8080\n"
    "threads = 32\n"
    "max_body = 8388608\n"
    "timeout = 10\n"
    "\n"
    "[log]\n"
    "level = info\n"
    "\n"
    "[ledger]\n"
    "origin = %s\n"
    "checkpoint_ms = 1000\n"
    "\n"
    "[virtual]\n"
    "pool = 17100000000-17199999999\n"
    "grace_days = 3\n"
    "\n"
    "[trace]\n"
    "case_window_days = 30\n";

moat_err_t moat_app_path(const moat_app_t *a, const char *name, char *out, size_t cap)
{
	return moat_path_join(out, cap, a->data_dir, name);
}

static bool dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return false;
	struct dirent *de;
	bool empty = true;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = false;
			break;
		}
	closedir(d);
	return empty;
}

moat_err_t moat_app_init(const char *data_dir, moat_error_t *err)
{
	struct stat st;
	char path[1200];
	if (stat(data_dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return moat_error_set(err, MOAT_EEXIST, NULL,
					      "%s exists and is not a directory", data_dir);
		if (moat_path_join(path, sizeof path, data_dir, MARKER_NAME) == MOAT_OK &&
		    stat(path, &st) == 0)
			return moat_error_set(
			    err, MOAT_EEXIST, NULL,
			    "%s is already a moat data directory; refusing to overwrite it",
			    data_dir);
		if (!dir_is_empty(data_dir))
			return moat_error_set(
			    err, MOAT_EEXIST, NULL,
			    "%s is not empty and not a moat data directory; refusing to use it",
			    data_dir);
	}
	moat_err_t rc = moat_mkdirs(data_dir, 0700, err);
	if (rc != MOAT_OK)
		return rc;
	chmod(data_dir, 0700);

	/* A random origin names this log uniquely for checkpoint verifiers. */
	uint8_t rnd[8];
	char hex[17], origin[64], conf[2048];
	if (moat_random(rnd, sizeof rnd) != MOAT_OK)
		return moat_error_set(err, MOAT_ECRYPTO, NULL, "no randomness available");
	moat_hex_encode(rnd, sizeof rnd, hex);
	snprintf(origin, sizeof origin, "moat.local/%s", hex);
	snprintf(conf, sizeof conf, default_config, origin);

	if ((rc = moat_path_join(path, sizeof path, data_dir, "moat.conf")) != MOAT_OK ||
	    (rc = moat_file_write_atomic(path, conf, strlen(conf), 0600, err)) != MOAT_OK)
		return rc;
	if ((rc = moat_path_join(path, sizeof path, data_dir, "keys")) != MOAT_OK ||
	    (rc = moat_keyring_create(path, err)) != MOAT_OK)
		return rc;
	moat_store_t *s = NULL;
	if ((rc = moat_path_join(path, sizeof path, data_dir, "moat.db")) != MOAT_OK ||
	    (rc = moat_store_open_sqlite(path, true, &s, err)) != MOAT_OK)
		return rc;
	moat_store_close(s);
	if ((rc = moat_app_init_modules(data_dir, origin, err)) != MOAT_OK)
		return rc;
	/* The marker goes last: a directory without it is an unfinished init. */
	if ((rc = moat_path_join(path, sizeof path, data_dir, MARKER_NAME)) != MOAT_OK ||
	    (rc = moat_file_write_atomic(path, MARKER_TEXT, strlen(MARKER_TEXT), 0600, err)) !=
		MOAT_OK)
		return rc;
	return MOAT_OK;
}

moat_err_t moat_app_open(const char *data_dir, int flags, moat_app_t **out, moat_error_t *err)
{
	*out = NULL;
	struct stat st;
	char path[1200];
	if (stat(data_dir, &st) != 0)
		return moat_error_set(
		    err, MOAT_ENOTFOUND, NULL,
		    "data directory %s does not exist; create it with `moat init --data %s`",
		    data_dir, data_dir);
	char *marker = NULL;
	moat_err_t rc = moat_path_join(path, sizeof path, data_dir, MARKER_NAME);
	if (rc == MOAT_OK)
		rc = moat_file_read(path, 256, &marker, NULL, NULL);
	bool ok = rc == MOAT_OK && strcmp(marker, MARKER_TEXT) == 0;
	free(marker);
	if (!ok)
		return moat_error_set(
		    err, MOAT_ECORRUPT, NULL,
		    "%s is not a moat data directory (no valid %s marker); refusing to use it",
		    data_dir, MARKER_NAME);

	moat_app_t *a = calloc(1, sizeof *a);
	if (!a)
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	snprintf(a->data_dir, sizeof a->data_dir, "%s", data_dir);
	moat_config_defaults(&a->config);
	if ((rc = moat_app_path(a, "moat.conf", path, sizeof path)) != MOAT_OK)
		goto fail;
	rc = moat_config_load(&a->config, path, err);
	if (rc == MOAT_ENOTFOUND)
		rc = MOAT_OK;
	if (rc == MOAT_EINVAL && err) {
		char msg[sizeof err->msg];
		snprintf(msg, sizeof msg, "%.150s: %.160s", path, err->msg);
		snprintf(err->msg, sizeof err->msg, "%s", msg);
	}
	if (rc == MOAT_OK)
		rc = moat_config_env(&a->config, err);
	if (rc != MOAT_OK)
		goto fail;
	if ((rc = moat_app_path(a, "keys", path, sizeof path)) != MOAT_OK ||
	    (rc = moat_keyring_open(path, &a->keys, err)) != MOAT_OK)
		goto fail;
	if ((rc = moat_app_path(a, "moat.db", path, sizeof path)) != MOAT_OK ||
	    (rc = moat_store_open_sqlite(path, false, &a->store, err)) != MOAT_OK)
		goto fail;
	moat_log_set_level(a->config.log_level);
	if (!(flags & MOAT_APP_NO_LEDGER) && (rc = moat_app_open_modules(a, err)) != MOAT_OK)
		goto fail;
	*out = a;
	return MOAT_OK;
fail:
	if (rc == MOAT_ELIMIT && err && !err->msg[0])
		moat_error_set(err, rc, NULL, "data directory path is too long");
	moat_app_close(a);
	return rc;
}

void moat_app_close(moat_app_t *a)
{
	if (!a)
		return;
	moat_app_close_modules(a);
	moat_store_close(a->store);
	moat_keyring_free(a->keys);
	free(a);
}

/* ---- import ---- */

static const char *const import_kinds[] = {"parties", "principals", "relations", "orders", NULL};

int moat_import_kind_parse(const char *s)
{
	for (int i = 0; import_kinds[i]; i++)
		if (strcmp(s, import_kinds[i]) == 0)
			return i;
	return -1;
}

/* Wipes a secret scratch buffer's text between records, keeping its block
 * (moat_buf_free wipes the whole block at the end). */
static void wipe_buf(moat_buf_t *b)
{
	if (b->data)
		OPENSSL_cleanse(b->data, b->len);
	moat_buf_reset(b);
}

/* Copies s into dst[cap], cut at cap - 1 bytes as snprintf would. */
static void copy_str(char *dst, size_t cap, const char *s)
{
	size_t n = s ? strnlen(s, cap - 1) : 0;
	memcpy(dst, s ? s : "", n);
	dst[n] = '\0';
}

/* The clear columns of a row. */
static void row_fields(const moat_order_t *o, const char *key_id, moat_order_row_t *row)
{
	memset(row, 0, sizeof *row);
	copy_str(row->order_id, sizeof row->order_id, o->order_id);
	copy_str(row->merchant, sizeof row->merchant, o->merchant);
	row->placed_at = o->placed_at;
	row->status = o->status;
	copy_str(row->province, sizeof row->province, o->address.province);
	copy_str(row->city, sizeof row->city, o->address.city);
	copy_str(row->district, sizeof row->district, o->address.district);
	copy_str(row->carrier, sizeof row->carrier, o->carrier);
	copy_str(row->waybill, sizeof row->waybill, o->waybill);
	row->shipped_at = o->shipped_at;
	row->delivered_at = o->delivered_at;
	row->honey = o->honey;
	copy_str(row->key_id, sizeof row->key_id, key_id);
}

moat_err_t moat_app_order_row_from(moat_app_t *a, const moat_order_t *o, moat_order_row_t *row,
				   moat_error_t *err)
{
	row_fields(o, moat_keyring_current(a->keys), row);
	moat_lookup_hash(a->keys, o->buyer_phone, row->phone_hash);
	moat_buf_t items, plain;
	moat_buf_init(&items, MOAT_JSON_MAX_LINE);
	moat_buf_init_secret(&plain, 8192);
	moat_err_t rc = moat_order_items_json(o, &items);
	if (rc == MOAT_OK)
		rc = moat_pii_encode(o->buyer_name, o->buyer_phone, o->address.detail,
				     o->buyer_id_number, &plain);
	if (rc == MOAT_OK)
		rc = moat_encrypt(a->keys, plain.data, plain.len, o->order_id, &row->pii,
				  &row->pii_len, err);
	else
		rc = moat_error_set(err, rc, NULL,
				    rc == MOAT_ENOMEM ? "out of memory"
						      : "order too large to store");
	if (rc == MOAT_OK)
		row->items_json = moat_buf_take(&items);
	moat_buf_free(&plain); /* secret: wiped */
	moat_buf_free(&items);
	if (rc != MOAT_OK)
		moat_order_row_clear(row);
	return rc;
}

/* As moat_app_order_row_from, with sl's keyed contexts and the row's items and
 * blob allocated from mem (freed with it; the row is not cleared). plain is
 * scratch for the PII in clear, wiped before return. */
static moat_err_t order_row_sealed(moat_sealer_t *sl, const moat_order_t *o, moat_arena_t *mem,
				   moat_buf_t *scratch, moat_order_row_t *row, moat_error_t *err)
{
	row_fields(o, moat_sealer_key_id(sl), row);
	moat_sealer_lookup_hash(sl, o->buyer_phone, row->phone_hash);
	moat_buf_reset(scratch);
	moat_err_t rc = moat_order_items_json(o, scratch);
	if (rc == MOAT_OK &&
	    !(row->items_json = moat_arena_strndup(mem, scratch->data, scratch->len)))
		rc = MOAT_ENOMEM;
	if (rc == MOAT_OK) {
		moat_buf_reset(scratch);
		rc = moat_pii_encode(o->buyer_name, o->buyer_phone, o->address.detail,
				     o->buyer_id_number, scratch);
	}
	if (rc != MOAT_OK) {
		wipe_buf(scratch);
		return moat_error_set(err, rc, NULL,
				      rc == MOAT_ENOMEM ? "out of memory"
							: "order too large to store");
	}
	size_t cap = moat_sealer_blob_len(sl, scratch->len);
	row->pii = moat_arena_alloc(mem, cap);
	rc = row->pii ? moat_sealer_encrypt(sl, scratch->data, scratch->len, o->order_id, row->pii,
					    cap, &row->pii_len, err)
		      : moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	wipe_buf(scratch);
	return rc;
}

moat_err_t moat_app_import_one(moat_app_t *a, moat_import_kind_t kind, json_t *obj,
			       moat_arena_t *arena, moat_error_t *err)
{
	switch (kind) {
	case MOAT_IMPORT_PARTIES: {
		moat_party_t p;
		moat_err_t rc = moat_party_from_json(obj, &p, err);
		return rc == MOAT_OK ? moat_store_party_put(a->store, &p, err) : rc;
	}
	case MOAT_IMPORT_PRINCIPALS: {
		moat_principal_t p;
		moat_err_t rc = moat_principal_from_json(obj, &p, err);
		return rc == MOAT_OK ? moat_store_principal_put(a->store, &p, err) : rc;
	}
	case MOAT_IMPORT_RELATIONS: {
		moat_relation_t r;
		moat_err_t rc = moat_relation_from_json(obj, &r, err);
		return rc == MOAT_OK ? moat_store_relation_put(a->store, &r, err) : rc;
	}
	case MOAT_IMPORT_ORDERS: {
		moat_order_t o;
		moat_order_row_t row;
		moat_err_t rc = moat_order_from_json(obj, arena, &o, err);
		if (rc == MOAT_OK)
			rc = moat_app_order_row_from(a, &o, &row, err);
		if (rc != MOAT_OK)
			return rc;
		rc = moat_store_order_put(a->store, &row, err);
		moat_order_row_clear(&row);
		return rc;
	}
	case MOAT_IMPORT_KIND_COUNT:
		break;
	}
	return moat_error_set(err, MOAT_EINVAL, NULL, "unknown import kind");
}

/* ---- orders import, pipelined ----
 * Parsing, validation and encryption of an order (jansson, AES-GCM, HMAC) cost
 * more than its upsert, so producer threads (MOAT_IMPORT_PRODUCERS by default,
 * at most PIPE_MAX_PRODUCERS) do the former while the
 * caller's thread writes rows into the one transaction. A producer takes the
 * next batch of raw lines from the reader under a lock (so batches get
 * consecutive sequence numbers), turns them into rows outside it, and puts the
 * batch in the slot of its sequence number in a ring; the writer takes batches
 * in sequence, so rows are written in file order (a later line for the same
 * order id still wins). While the batch it writes next is not ready, the writer
 * converts the next lines itself (pipe_help). The first error in file order stops everything and the
 * caller rolls back, so a file is still imported all-or-nothing and the error
 * still names its line. */

#define PIPE_MAX_PRODUCERS 8
#define PIPE_BATCH 64
#define PIPE_BATCH_TEXT (1u << 20) /* raw bytes a batch reads before it is full */
#define PIPE_DEPTH 8
/* A converting thread's jansson arena (moat_json_arena_t): an order line's tree
 * takes a few KiB; a larger one spills to malloc. */
#define PIPE_JSON_ARENA (64u * 1024)

typedef struct pipe_batch {
	moat_order_row_t rows[PIPE_BATCH]; /* items and blobs in mem, not malloc'd */
	moat_arena_t *mem;
	long lines[PIPE_BATCH]; /* input line of each row, for store errors */
	uint64_t seq;
	size_t n;
	bool last;	  /* no batch follows (end of file, or an error) */
	moat_err_t rc;	  /* error after the n rows, if any */
	moat_error_t err; /* its message, field and line */
} pipe_batch_t;

typedef struct pipe {
	moat_app_t *app;
	moat_jsonl_t *reader;
	/* read_lock guards the reader, next_seq and done_reading */
	pthread_mutex_t read_lock;
	uint64_t next_seq;
	bool done_reading; /* end of input or an error seen: make no more batches */
	/* lock guards the rest */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	pipe_batch_t *ring[PIPE_DEPTH]; /* batch seq waits in ring[seq % PIPE_DEPTH] */
	uint64_t next_pop;		/* seq the writer takes next */
	bool stop;			/* the writer is done: producers end at once */
	bool failed;			/* a producer ran out of memory */
	/* Batches the writer is done with, for producers to refill: freeing them
	 * made glibc hand their pages back and fault them in again. */
	pipe_batch_t *spare[PIPE_DEPTH + PIPE_MAX_PRODUCERS + 2];
	size_t n_spare;
} pipe_t;

static void pipe_batch_free(pipe_batch_t *b)
{
	if (!b)
		return;
	moat_arena_free(b->mem);
	free(b);
}

/* An empty batch: a spare one if any, else a new one (NULL if out of memory). */
static pipe_batch_t *pipe_batch_get(pipe_t *p)
{
	pthread_mutex_lock(&p->lock);
	pipe_batch_t *b = p->n_spare ? p->spare[--p->n_spare] : NULL;
	pthread_mutex_unlock(&p->lock);
	if (b) {
		moat_arena_reset(b->mem);
		b->n = 0; /* rows and lines are rewritten as the batch fills */
		b->last = false;
		b->rc = MOAT_OK;
		memset(&b->err, 0, sizeof b->err);
		return b;
	}
	b = calloc(1, sizeof *b);
	if (b && !(b->mem = moat_arena_new(PIPE_BATCH * 512))) {
		free(b);
		b = NULL;
	}
	return b;
}

/* Gives a batch the writer is done with back to the producers. */
static void pipe_batch_put(pipe_t *p, pipe_batch_t *b)
{
	pthread_mutex_lock(&p->lock);
	if (p->n_spare < sizeof p->spare / sizeof p->spare[0]) {
		p->spare[p->n_spare++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	pipe_batch_free(b);
}

/* Hands batch b to the writer in its sequence slot; false if the writer has
 * stopped (the batch is then freed here). */
static bool pipe_push(pipe_t *p, pipe_batch_t *b)
{
	pthread_mutex_lock(&p->lock);
	while (b->seq >= p->next_pop + PIPE_DEPTH && !p->stop)
		pthread_cond_wait(&p->changed, &p->lock);
	bool ok = !p->stop;
	if (ok) {
		p->ring[b->seq % PIPE_DEPTH] = b;
		pthread_cond_broadcast(&p->changed);
	}
	pthread_mutex_unlock(&p->lock);
	if (!ok)
		pipe_batch_free(b);
	return ok;
}

/* The next batch in sequence. If it is not ready: with wait, waits for it (NULL
 * only if a producer ran out of memory); without, returns NULL at once. */
static pipe_batch_t *pipe_pop(pipe_t *p, bool wait)
{
	pthread_mutex_lock(&p->lock);
	pipe_batch_t *b;
	while (!(b = p->ring[p->next_pop % PIPE_DEPTH]) && !p->failed && wait)
		pthread_cond_wait(&p->changed, &p->lock);
	if (b) {
		p->ring[p->next_pop % PIPE_DEPTH] = NULL;
		p->next_pop++;
		pthread_cond_broadcast(&p->changed);
	}
	pthread_mutex_unlock(&p->lock);
	return b;
}

static void pipe_stop(pipe_t *p, bool failed)
{
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	p->failed = p->failed || failed;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

static bool pipe_stopped(pipe_t *p)
{
	pthread_mutex_lock(&p->lock);
	bool stop = p->stop;
	pthread_mutex_unlock(&p->lock);
	return stop;
}

/* Reads the next batch's raw lines into b->mem (text[i], len[i]). Sets b->seq,
 * and b->last / b->rc at end of input or on a read error (with the line). False
 * if there is nothing more to read, or if the next batch's sequence number would
 * be seq_limit or more (nothing is read then). */
static bool pipe_read(pipe_t *p, pipe_batch_t *b, uint64_t seq_limit, const char **text,
		      size_t *len)
{
	pthread_mutex_lock(&p->read_lock);
	if (p->done_reading || p->next_seq >= seq_limit) {
		pthread_mutex_unlock(&p->read_lock);
		return false;
	}
	b->seq = p->next_seq++;
	size_t bytes = 0, n = 0;
	while (n < PIPE_BATCH && bytes < PIPE_BATCH_TEXT) {
		const char *t = NULL;
		size_t l = 0;
		moat_err_t rc = moat_jsonl_read(p->reader, &t, &l, &b->err);
		if (rc == MOAT_ENOTFOUND) {
			b->last = true;
			break;
		}
		if (rc == MOAT_OK && !(text[n] = moat_arena_strndup(b->mem, t, l)))
			rc = moat_error_set(&b->err, MOAT_ENOMEM, NULL, "out of memory");
		if (rc != MOAT_OK) {
			b->rc = rc;
			b->err.line = moat_jsonl_line(p->reader);
			b->last = true;
			break;
		}
		len[n] = l;
		b->lines[n++] = moat_jsonl_line(p->reader);
		bytes += l;
	}
	if (b->last)
		p->done_reading = true;
	pthread_mutex_unlock(&p->read_lock);
	b->n = n; /* raw lines for now; rows once converted */
	return true;
}

typedef struct producer {
	pipe_t *pipe;
	moat_sealer_t *sealer;
	moat_buf_t scratch;	     /* PII in clear, wiped after each record */
	moat_json_arena_t *json_mem; /* the orders' jansson trees; NULL: malloc */
	const char *text[PIPE_BATCH];
	size_t len[PIPE_BATCH];
} producer_t;

/* Turns b's raw lines into rows; the first bad line ends the batch there. */
static void pipe_convert(producer_t *w, pipe_batch_t *b)
{
	size_t n = b->n;
	b->n = 0;
	/* Each tree is released before the next line is parsed, so the arena starts
	 * over at every line. */
	moat_json_arena_t *prev = moat_json_arena_use(w->json_mem);
	for (size_t i = 0; i < n; i++) {
		json_t *obj = NULL;
		moat_error_t e = {0};
		moat_err_t rc =
		    moat_json_parse(w->text[i], w->len[i], MOAT_JSON_MAX_DEPTH, &obj, &e);
		if (rc == MOAT_OK) {
			moat_order_t o;
			rc = moat_order_from_json(obj, b->mem, &o, &e);
			if (rc == MOAT_OK)
				rc = order_row_sealed(w->sealer, &o, b->mem, &w->scratch,
						      &b->rows[i], &e);
			json_decref(obj);
		}
		if (rc != MOAT_OK) {
			b->rc = rc;
			b->err = e;
			b->err.line = b->lines[i];
			b->last = true;
			break;
		}
		b->n++;
	}
	moat_json_arena_use(prev);
}

/* Fills b with the next batch: raw lines read, then turned into rows. False if
 * there is nothing more to read (or nothing below seq_limit, see pipe_read). */
static bool pipe_fill(producer_t *w, pipe_batch_t *b, uint64_t seq_limit)
{
	pipe_t *p = w->pipe;
	if (!pipe_read(p, b, seq_limit, w->text, w->len))
		return false;
	if (b->rc == MOAT_OK || b->n > 0) {
		moat_err_t read_rc = b->rc;
		moat_error_t read_err = b->err;
		bool read_last = b->last;
		b->rc = MOAT_OK;
		b->last = false;
		pipe_convert(w, b);
		if (b->rc == MOAT_OK) { /* a read error (or the end) after good lines */
			b->rc = read_rc;
			b->err = read_err;
			b->last = read_last;
		}
	}
	if (b->last) {
		pthread_mutex_lock(&p->read_lock);
		p->done_reading = true; /* a bad line: read no further */
		pthread_mutex_unlock(&p->read_lock);
	}
	return true;
}

/* Writes b's rows; then b's own error, if any. *n counts rows written. */
static moat_err_t pipe_write(moat_app_t *a, const pipe_batch_t *b, size_t *n, moat_error_t *err)
{
	moat_err_t rc = MOAT_OK;
	for (size_t i = 0; i < b->n && rc == MOAT_OK; i++) {
		rc = moat_store_order_put(a->store, &b->rows[i], err);
		if (rc != MOAT_OK && err)
			err->line = b->lines[i];
	}
	if (rc == MOAT_OK && b->rc != MOAT_OK) {
		rc = b->rc;
		if (err)
			*err = b->err;
	}
	if (rc == MOAT_OK)
		*n += b->n;
	return rc;
}

static void *pipe_produce(void *arg)
{
	producer_t *w = arg;
	pipe_t *p = w->pipe;
	moat_buf_init_secret(&w->scratch, MOAT_JSON_MAX_LINE);
	w->json_mem = moat_json_arena_new(PIPE_JSON_ARENA);
	while (!pipe_stopped(p)) {
		pipe_batch_t *b = pipe_batch_get(p);
		if (!b) {
			pipe_stop(p, true);
			break;
		}
		if (!pipe_fill(w, b, UINT64_MAX)) {
			pipe_batch_put(p, b);
			break;
		}
		if (!pipe_push(p, b))
			break;
	}
	moat_buf_free(&w->scratch); /* secret: wiped */
	moat_json_arena_free(w->json_mem);
	return NULL;
}

/* The writer's turn at converting while the batch it writes next is not ready
 * (its producer is still at work, or was preempted by another process): it
 * converts the next raw lines and queues them like a producer, so no CPU the
 * import could use sits idle. Only a batch whose slot in the ring is free now is
 * taken, so queuing it never waits on the writer itself. False if it did
 * nothing: input exhausted or taken, the ring too far ahead, or out of memory
 * (the producers carry on). */
static bool pipe_help(producer_t *w)
{
	pipe_t *p = w->pipe;
	pipe_batch_t *b = pipe_batch_get(p);
	if (!b)
		return false;
	/* next_pop changes only on this thread. */
	if (!pipe_fill(w, b, p->next_pop + PIPE_DEPTH)) {
		pipe_batch_put(p, b);
		return false;
	}
	return pipe_push(p, b);
}

/* The writer's loop: writes batches in sequence until the last one or an error,
 * converting lines itself while the next batch is not ready. *n counts rows
 * written. */
static moat_err_t pipe_drain(pipe_t *p, producer_t *me, size_t *n, moat_error_t *err)
{
	for (;;) {
		pipe_batch_t *b = pipe_pop(p, false);
		if (!b && pipe_help(me))
			continue;
		if (!b && !(b = pipe_pop(p, true)))
			return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
		moat_err_t rc = pipe_write(p->app, b, n, err);
		bool last = b->last;
		pipe_batch_put(p, b);
		if (rc != MOAT_OK || last)
			return rc;
	}
}

/* The same batches on the caller's thread alone, one after the other. */
static moat_err_t import_orders_serial(moat_app_t *a, moat_jsonl_t *r, size_t *count,
				       moat_error_t *err)
{
	pipe_t p = {.app = a, .reader = r};
	producer_t w = {.pipe = &p};
	pthread_mutex_init(&p.read_lock, NULL);
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.changed, NULL);
	moat_buf_init_secret(&w.scratch, MOAT_JSON_MAX_LINE);
	w.json_mem = moat_json_arena_new(PIPE_JSON_ARENA);
	pipe_batch_t *b = NULL;
	size_t n = 0;
	moat_err_t rc = moat_sealer_new(a->keys, &w.sealer, err);
	if (rc == MOAT_OK && !(b = pipe_batch_get(&p)))
		rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	while (rc == MOAT_OK && pipe_fill(&w, b, UINT64_MAX)) {
		rc = pipe_write(a, b, &n, err);
		if (b->last)
			break;
		moat_arena_reset(b->mem);
		b->n = 0;
	}
	pipe_batch_free(b);
	moat_sealer_free(w.sealer);
	moat_buf_free(&w.scratch); /* secret: wiped */
	moat_json_arena_free(w.json_mem);
	pthread_mutex_destroy(&p.read_lock);
	pthread_mutex_destroy(&p.lock);
	pthread_cond_destroy(&p.changed);
	if (rc == MOAT_OK)
		*count = n;
	return rc;
}

/* Imports an orders file with producer threads. *started is false (and nothing
 * was read) when no thread could be started. */
static moat_err_t import_orders_pipelined(moat_app_t *a, moat_jsonl_t *r, size_t producers,
					  size_t *count, bool *started, moat_error_t *err)
{
	*started = false;
	pipe_t p = {.app = a, .reader = r};
	producer_t w[PIPE_MAX_PRODUCERS] = {0};
	producer_t me = {0}; /* the writer, converting when it would wait */
	pthread_t th[PIPE_MAX_PRODUCERS];
	if (producers > PIPE_MAX_PRODUCERS)
		producers = PIPE_MAX_PRODUCERS;
	size_t n_threads = 0;
	moat_err_t rc = MOAT_OK;
	pthread_mutex_init(&p.read_lock, NULL);
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.changed, NULL);
	for (size_t i = 0; i < producers; i++) {
		w[i].pipe = &p;
		rc = moat_sealer_new(a->keys, &w[i].sealer, err);
		if (rc != MOAT_OK)
			goto done;
	}
	rc = moat_sealer_new(a->keys, &me.sealer, err);
	if (rc != MOAT_OK)
		goto done;
	for (; n_threads < producers; n_threads++)
		if (pthread_create(&th[n_threads], NULL, pipe_produce, &w[n_threads]) != 0)
			break; /* run with the threads that did start */
	if (n_threads == 0)
		goto done;
	*started = true;
	size_t n = 0;
	me.pipe = &p;
	moat_buf_init_secret(&me.scratch, MOAT_JSON_MAX_LINE);
	me.json_mem = moat_json_arena_new(PIPE_JSON_ARENA);
	rc = pipe_drain(&p, &me, &n, err);
	/* Stop the producers and free whatever they still queued or kept spare. */
	pipe_stop(&p, false);
	for (size_t i = 0; i < n_threads; i++)
		pthread_join(th[i], NULL);
	for (size_t i = 0; i < PIPE_DEPTH; i++)
		pipe_batch_free(p.ring[i]);
	while (p.n_spare)
		pipe_batch_free(p.spare[--p.n_spare]);
	if (rc == MOAT_OK)
		*count = n;
	moat_buf_free(&me.scratch); /* secret: wiped */
	moat_json_arena_free(me.json_mem);
done:
	for (size_t i = 0; i < producers; i++)
		moat_sealer_free(w[i].sealer);
	moat_sealer_free(me.sealer);
	pthread_mutex_destroy(&p.read_lock);
	pthread_mutex_destroy(&p.lock);
	pthread_cond_destroy(&p.changed);
	return rc;
}

moat_err_t moat_app_import_file(moat_app_t *a, moat_import_kind_t kind, const char *path,
				size_t *count, moat_error_t *err)
{
	return moat_app_import_file_with(a, kind, path, MOAT_IMPORT_PRODUCERS, count, err);
}

moat_err_t moat_app_import_file_with(moat_app_t *a, moat_import_kind_t kind, const char *path,
				     int producers, size_t *count, moat_error_t *err)
{
	moat_jsonl_t *r = NULL;
	*count = 0;
	moat_err_t rc = moat_jsonl_open(path, &r, err);
	if (rc != MOAT_OK)
		return rc;
	moat_arena_t *arena = moat_arena_new(16384);
	if (!arena) {
		moat_jsonl_close(r);
		return moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
	}
	uint64_t t0 = moat_mono_ns();
	rc = moat_store_begin_bulk(a->store, err);
	if (rc != MOAT_OK)
		goto done;
	size_t n = 0;
	if (kind == MOAT_IMPORT_ORDERS) {
		bool started = false;
		if (producers > 0)
			rc = import_orders_pipelined(a, r, (size_t)producers, &n, &started, err);
		if (!started)
			rc = import_orders_serial(a, r, &n, err);
		goto finish;
	}
	for (;;) {
		json_t *obj = NULL;
		rc = moat_jsonl_next(r, &obj, err);
		if (rc == MOAT_ENOTFOUND) {
			rc = MOAT_OK;
			break;
		}
		if (rc != MOAT_OK)
			break;
		rc = moat_app_import_one(a, kind, obj, arena, err);
		json_decref(obj);
		if (rc != MOAT_OK) {
			if (err)
				err->line = moat_jsonl_line(r);
			break;
		}
		n++;
		/* The arena only holds the current record's items; recycle it often. */
		if (n % 1024 == 0) {
			moat_arena_free(arena);
			arena = moat_arena_new(16384);
			if (!arena) {
				rc = moat_error_set(err, MOAT_ENOMEM, NULL, "out of memory");
				break;
			}
		}
	}
finish:
	if (rc == MOAT_OK)
		rc = moat_store_commit(a->store, err);
	if (rc != MOAT_OK) {
		moat_store_rollback(a->store);
		moat_log(MOAT_LOG_WARN, "import.rejected",
			 "kind=%s line=%ld field=%s code=%s; nothing imported", import_kinds[kind],
			 err ? err->line : 0L, err ? err->field : "", moat_err_name(rc));
	} else {
		*count = n;
		moat_log(MOAT_LOG_INFO, "import.done", "kind=%s records=%zu ms=%.1f",
			 import_kinds[kind], n, (double)(moat_mono_ns() - t0) / 1e6);
	}
done:
	moat_arena_free(arena);
	moat_jsonl_close(r);
	return rc;
}

/* ---- PII ---- */

moat_err_t moat_app_order_pii(moat_app_t *a, const moat_order_row_t *row, moat_pii_t *out,
			      moat_error_t *err)
{
	return moat_app_order_pii_with(a, NULL, row, out, err);
}

moat_err_t moat_app_order_pii_with(moat_app_t *a, moat_opener_t *opener,
				   const moat_order_row_t *row, moat_pii_t *out,
				   moat_error_t *err)
{
	memset(out, 0, sizeof *out);
	char *plain = NULL;
	size_t len = 0;
	moat_err_t rc =
	    opener ? moat_opener_decrypt(opener, row->pii, row->pii_len, row->order_id, &plain,
					 &len, err)
		   : moat_decrypt(a->keys, row->pii, row->pii_len, row->order_id, &plain, &len,
				  err);
	if (rc != MOAT_OK)
		return rc;
	moat_error_t de = {0};
	rc = moat_pii_decode(plain, len, out, &de);
	OPENSSL_cleanse(plain, len);
	free(plain);
	if (rc != MOAT_OK)
		return moat_error_set(err, rc, NULL, "order %s: %s", row->order_id, de.msg);
	return MOAT_OK;
}

/* ---- key rotation ---- */

typedef struct rekey_ctx {
	moat_app_t *a;
	moat_error_t *err;
	moat_err_t rc;
	size_t n;
} rekey_ctx_t;

static int rekey_one(void *ctx, const moat_order_row_t *row)
{
	rekey_ctx_t *x = ctx;
	char *plain = NULL;
	size_t len = 0;
	uint8_t *blob = NULL;
	size_t blen = 0;
	x->rc =
	    moat_decrypt(x->a->keys, row->pii, row->pii_len, row->order_id, &plain, &len, x->err);
	if (x->rc != MOAT_OK)
		return 1;
	x->rc = moat_encrypt(x->a->keys, plain, len, row->order_id, &blob, &blen, x->err);
	OPENSSL_cleanse(plain, len);
	free(plain);
	if (x->rc != MOAT_OK)
		return 1;
	x->rc = moat_store_order_rekey(x->a->store, row->order_id, row->key_id,
				       moat_keyring_current(x->a->keys), blob, blen, x->err);
	free(blob);
	if (x->rc != MOAT_OK)
		return 1;
	x->n++;
	return 0;
}

moat_err_t moat_app_key_rotate(moat_app_t *a, bool new_key, size_t batch, size_t *rekeyed,
			       moat_error_t *err)
{
	*rekeyed = 0;
	if (batch == 0)
		batch = 1000;
	if (new_key) {
		char id[MOAT_KEY_ID_MAX];
		moat_err_t rc = moat_keyring_rotate(a->keys, id, err);
		if (rc != MOAT_OK)
			return rc;
		moat_log(MOAT_LOG_INFO, "key.rotate", "new data key %s is now current", id);
	}
	for (;;) {
		/* Each batch is one short write transaction: readers and importers proceed
		 * between batches, and a crash loses at most the batch in flight (the old
		 * key still decrypts those rows). */
		rekey_ctx_t x = {a, err, MOAT_OK, 0};
		moat_err_t rc = moat_store_begin(a->store, err);
		if (rc != MOAT_OK)
			return rc;
		rc = moat_store_order_list_stale_key(a->store, moat_keyring_current(a->keys), batch,
						     rekey_one, &x, err);
		if (rc == MOAT_OK)
			rc = x.rc;
		if (rc == MOAT_OK)
			rc = moat_store_commit(a->store, err);
		if (rc != MOAT_OK) {
			moat_store_rollback(a->store);
			return rc;
		}
		*rekeyed += x.n;
		if (x.n < batch)
			break;
	}
	return MOAT_OK;
}
