/* Creating, opening and closing the modules that live beside the store in the
 * data directory. Each module adds its lines here as it lands. */
#include <string.h>

#include "app/app_internal.h"
#include "moat/detect.h"
#include "moat/ledger.h"
#include "moat/policy.h"

moat_err_t moat_app_init_modules(const char *data_dir, const char *origin, moat_error_t *err)
{
	char path[1200];
	moat_err_t rc = moat_path_join(path, sizeof path, data_dir, "ledger");
	if (rc != MOAT_OK)
		return moat_error_set(err, rc, NULL, "data directory path is too long");
	rc = moat_ledger_create(path, origin, err);
	if (rc != MOAT_OK)
		return rc;
	rc = moat_path_join(path, sizeof path, data_dir, "policy.conf");
	if (rc != MOAT_OK)
		return moat_error_set(err, rc, NULL, "data directory path is too long");
	const char *policy = moat_policy_default_text();
	rc = moat_file_write_atomic(path, policy, strlen(policy), 0640, err);
	if (rc != MOAT_OK)
		return rc;
	if (moat_path_join(path, sizeof path, data_dir, "rules.conf") != MOAT_OK)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "data directory path is too long");
	const char *rules = moat_detect_rules_default_text();
	return moat_file_write_atomic(path, rules, strlen(rules), 0640, err);
}

moat_err_t moat_app_open_modules(moat_app_t *a, moat_error_t *err)
{
	char path[1200];
	if (moat_app_path(a, "ledger", path, sizeof path) != MOAT_OK)
		return moat_error_set(err, MOAT_ELIMIT, NULL, "data directory path is too long");
	moat_ledger_opts_t opts = {.checkpoint_interval_ms = a->config.checkpoint_interval_ms};
	moat_err_t rc = moat_ledger_open(path, &opts, &a->ledger, err);
	if (rc == MOAT_ECONFLICT && err)
		moat_error_set(err, rc, NULL,
			       "the ledger is held by another moat process (is `moat serve` running?); "
			       "stop it for this change (only one process appends to the ledger), or make it "
			       "over HTTP where an endpoint exists (POST /v1/principals, /v1/relations, "
			       "/v1/orders, /v1/reports, /v1/calls)");
	return rc;
}

void moat_app_close_modules(moat_app_t *a)
{
	moat_ledger_close(a->ledger);
	a->ledger = NULL;
}
