/*
 * moat app: one data directory opened as a whole — config, store, keyring and
 * ledger — and the operations that combine them (import with encryption at rest,
 * decrypting an order for the view layer, key rotation).
 *
 * Data directory layout:
 *   <data>/MOAT           marker: "moat data directory v1" (a directory without it
 *                         is refused, never overwritten)
 *   <data>/moat.conf      INI config (see docs/config.md)
 *   <data>/moat.db        SQLite store
 *   <data>/keys/          data-encryption and look-up keys (0700 / 0600)
 *   <data>/ledger/        the access ledger (tiles, checkpoints, signing key)
 *   <data>/policy.conf    the access policy
 */
#ifndef MOAT_APP_H
#define MOAT_APP_H

#include "moat/base.h"
#include "moat/crypto.h"
#include "moat/model.h"
#include "moat/store.h"

typedef struct moat_ledger moat_ledger_t;

/* Settings, in precedence flags > environment (MOAT_*) > moat.conf > defaults. */
typedef struct moat_config {
	char listen[128];           /* [server] listen = 127.0.0.1:8080   MOAT_LISTEN */
	int threads;                /* [server] threads = 32              MOAT_THREADS */
	size_t max_body;            /* [server] max_body = 8388608        MOAT_MAX_BODY */
	int request_timeout_s;      /* [server] timeout = 10              */
	moat_log_level_t log_level; /* [log] level = info                 MOAT_LOG_LEVEL */
	char ledger_origin[128];    /* [ledger] origin (set by init)      */
	int checkpoint_interval_ms; /* [ledger] checkpoint_ms = 1000      */
	char virtual_pool[64];      /* [virtual] pool = 17100000000-17199999999 */
	int virtual_grace_days;     /* [virtual] grace_days = 3           */
	int case_window_days;       /* [trace] case_window_days = 30      */
	char webhook[513];          /* [detect] webhook = (empty: off)    MOAT_WEBHOOK */
} moat_config_t;

void moat_config_defaults(moat_config_t *c);
/* Loads <path> (INI, libinih) over c; unknown sections/keys are an error naming the
 * line. Missing file: MOAT_ENOTFOUND, c unchanged. */
moat_err_t moat_config_load(moat_config_t *c, const char *path, moat_error_t *err) MOAT_MUST_CHECK;
/* Applies MOAT_* environment variables over c. */
moat_err_t moat_config_env(moat_config_t *c, moat_error_t *err) MOAT_MUST_CHECK;

typedef struct moat_app {
	char data_dir[1024];
	moat_config_t config;
	moat_store_t *store;     /* owned */
	moat_keyring_t *keys;    /* owned */
	moat_ledger_t *ledger;   /* owned; NULL if opened without the ledger */
} moat_app_t;

/* Creates a new data directory (refuses a non-empty existing directory). */
moat_err_t moat_app_init(const char *data_dir, moat_error_t *err) MOAT_MUST_CHECK;

enum { MOAT_APP_NO_LEDGER = 1 };
/* Opens an existing data directory: MOAT_ENOTFOUND if absent, MOAT_ECORRUPT if
 * it is not a moat data directory. flags: MOAT_APP_NO_LEDGER. */
moat_err_t moat_app_open(const char *data_dir, int flags, moat_app_t **out,
			 moat_error_t *err) MOAT_MUST_CHECK;
void moat_app_close(moat_app_t *a);

/* Import kinds accepted by moat_app_import. */
typedef enum moat_import_kind {
	MOAT_IMPORT_PARTIES = 0,
	MOAT_IMPORT_PRINCIPALS,
	MOAT_IMPORT_RELATIONS,
	MOAT_IMPORT_ORDERS,
	MOAT_IMPORT_KIND_COUNT
} moat_import_kind_t;
int moat_import_kind_parse(const char *s);

/* Imports one already-parsed object of the given kind inside the caller's
 * transaction (encrypting PII for orders). Errors name the field. */
moat_err_t moat_app_import_one(moat_app_t *a, moat_import_kind_t kind, json_t *obj,
			       moat_arena_t *arena, moat_error_t *err) MOAT_MUST_CHECK;
/* Imports a JSON Lines file ("-" = stdin) all-or-nothing: one transaction, any
 * error rolls back everything and names the line and field. *count = records. */
moat_err_t moat_app_import_file(moat_app_t *a, moat_import_kind_t kind, const char *path,
				size_t *count, moat_error_t *err) MOAT_MUST_CHECK;
/* Orders are parsed, validated and encrypted on this many threads by default
 * while the caller's thread writes them (see src/app/app.c). */
#define MOAT_IMPORT_PRODUCERS 2
/* As moat_app_import_file with `producers` converting threads for orders (at
 * most 8; 0: everything on the caller's thread, as for the other kinds). Same
 * result and errors either way; for benchmarks and tests. */
moat_err_t moat_app_import_file_with(moat_app_t *a, moat_import_kind_t kind, const char *path,
				     int producers, size_t *count,
				     moat_error_t *err) MOAT_MUST_CHECK;

/* Imports access, login and export events (DESIGN.md format; an export may list
 * "order_ids") as ledger entries marked imported, with the relations that held
 * at each event's time. The whole file is validated before anything is appended;
 * errors name the line and field. *events = objects read, *entries = ledger
 * entries written (an export of k orders is k entries), *first_index the first. */
moat_err_t moat_app_import_events(moat_app_t *a, const char *path, size_t *events, size_t *entries,
				  uint64_t *first_index, moat_error_t *err) MOAT_MUST_CHECK;

/* Decrypted buyer PII of an order. Strings malloc'd; free with moat_pii_clear
 * (which also wipes them). */
typedef struct moat_pii {
	char *name;
	char *phone;
	char *address_detail;
	char *id_number; /* NULL if none */
} moat_pii_t;
/* Wipes and frees p's strings; moat_pii_clear(NULL) is a no-op. */
void moat_pii_clear(moat_pii_t *p);
/* The PII as it is encrypted in the store, appended to out (which the caller
 * wipes): {"detail":…,"id_number":…,"name":…,"phone":…}, id_number left out when
 * NULL. Implemented in src/app/pii.c. */
moat_err_t moat_pii_encode(const char *name, const char *phone, const char *detail,
			   const char *id_number, moat_buf_t *out) MOAT_MUST_CHECK;
/* Decodes what moat_pii_encode wrote (the n bytes at s, not NUL-terminated) into
 * *out (clear it with moat_pii_clear). Strict: a JSON object whose members are
 * those four keys, each at most once, with string values (JSON's escapes, valid
 * UTF-8, no NUL); name, phone and detail required. Anything else is
 * MOAT_ECORRUPT with *out empty, and nothing decoded is left unwiped. */
moat_err_t moat_pii_decode(const char *s, size_t n, moat_pii_t *out,
			   moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_app_order_pii(moat_app_t *a, const moat_order_row_t *row, moat_pii_t *out,
			      moat_error_t *err) MOAT_MUST_CHECK;
/* The same, decrypting with opener (moat_opener_new over a->keys) when not NULL. */
moat_err_t moat_app_order_pii_with(moat_app_t *a, moat_opener_t *opener,
				   const moat_order_row_t *row, moat_pii_t *out,
				   moat_error_t *err) MOAT_MUST_CHECK;

/* Re-encrypts every order under the current key in batches of `batch` orders,
 * one short transaction per batch, so readers and writers carry on meanwhile.
 * If new_key is true, first adds a new key and makes it current. */
moat_err_t moat_app_key_rotate(moat_app_t *a, bool new_key, size_t batch, size_t *rekeyed,
			       moat_error_t *err) MOAT_MUST_CHECK;

#endif
