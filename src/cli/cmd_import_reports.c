/* moat import reports FILE / moat import calls FILE: buyers' scam reports and the
 * telephony side's call logs, for the tracer. */
#include <stdio.h>

#include "cli/cli.h"
#include "moat/app.h"
#include "moat/trace.h"

int cli_import_reports(const cli_common_t *c, const char *path)
{
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	if (moat_app_open(c->data_dir, 0, &a, &e) != MOAT_OK)
		return cli_fail("import", &e);
	size_t n = 0;
	moat_err_t rc = moat_trace_import_reports(a, path, &n, &e);
	moat_app_close(a);
	if (rc != MOAT_OK) {
		cli_fail("import", &e);
		if (n == 0)
			fprintf(stderr, "moat import: nothing was imported from %s\n", path);
		return CLI_FAIL;
	}
	if (c->json)
		printf("{\"kind\":\"reports\",\"imported\":%zu}\n", n);
	else
		printf("imported %zu reports (REPORT ledger entries; cases and exposure index "
		       "updated)\n",
		       n);
	return CLI_OK;
}

int cli_import_calls(const cli_common_t *c, const char *path)
{
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	if (moat_app_open(c->data_dir, 0, &a, &e) != MOAT_OK)
		return cli_fail("import", &e);
	moat_calls_stats_t st;
	moat_err_t rc = moat_trace_import_calls(a, path, &st, &e);
	moat_app_close(a);
	if (rc != MOAT_OK) {
		cli_fail("import", &e);
		if (st.calls == 0)
			fprintf(stderr, "moat import: nothing was imported from %s\n", path);
		return CLI_FAIL;
	}
	if (c->json)
		printf("{\"kind\":\"calls\",\"imported\":%zu,\"bindings\":%zu,\"honey\":%zu,"
		       "\"unknown\":%zu,\"first_index\":%llu}\n",
		       st.calls, st.bindings, st.honey, st.unknown,
		       (unsigned long long)st.first_index);
	else
		printf("imported %zu calls as CALL ledger entries: %zu to virtual numbers moat "
		       "issued, "
		       "%zu to honey numbers, %zu to unknown numbers\n",
		       st.calls, st.bindings, st.honey, st.unknown);
	return CLI_OK;
}
