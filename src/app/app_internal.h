/* Internals of src/app shared between its files. Not a public header. */
#ifndef MOAT_APP_INTERNAL_H
#define MOAT_APP_INTERNAL_H

#include "moat/app.h"

/* <data_dir>/<name> into out. */
moat_err_t moat_app_path(const moat_app_t *a, const char *name, char *out, size_t cap) MOAT_MUST_CHECK;

/* Builds a store row from a parsed order: PII encrypted under the current key,
 * phone look-up hash, items JSON. Caller clears the row. */
moat_err_t moat_app_order_row_from(moat_app_t *a, const moat_order_t *o, moat_order_row_t *row,
				   moat_error_t *err) MOAT_MUST_CHECK;

/* Hooks for the modules that live in the data directory beside the store
 * (ledger, policy, rules): created by init, opened/closed with the app.
 * Implemented in modules.c. */
moat_err_t moat_app_init_modules(const char *data_dir, const char *origin,
				 moat_error_t *err) MOAT_MUST_CHECK;
moat_err_t moat_app_open_modules(moat_app_t *a, moat_error_t *err) MOAT_MUST_CHECK;
void moat_app_close_modules(moat_app_t *a);

#endif
