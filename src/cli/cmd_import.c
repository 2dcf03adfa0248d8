/* moat import KIND FILE */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "moat/app.h"
#include "moat/detect.h"

static void help(void)
{
	printf("usage: moat import KIND FILE [--data DIR] [--json]\n\n"
	       "Imports JSON Lines (one object per line; FILE \"-\" reads stdin). KIND is one of\n"
	       "  parties, principals, relations, orders, events, reports, calls\n"
	       "The formats are in README.md and examples/. A file is imported all-or-nothing:\n"
	       "on any error nothing is written and the message names the line and field.\n"
	       "Re-importing an order id updates that order instead of duplicating it.\n"
	       "events (access, login, export logs of existing systems) go onto the ledger marked\n"
	       "imported; the whole file is validated before the first entry is appended.\n"
	       "calls (telephony logs: time, from, to, extension) become CALL ledger entries; a\n"
	       "call to a virtual number moat issued or to a honey number is direct evidence in\n"
	       "`moat trace`; calls to other numbers are logged as unknown.\n");
}

static int import_events(const cli_common_t *c, const char *path)
{
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	if (moat_app_open(c->data_dir, 0, &a, &e) != MOAT_OK)
		return cli_fail("import", &e);
	size_t events = 0, entries = 0;
	uint64_t first = 0;
	moat_err_t rc = moat_app_import_events(a, path, &events, &entries, &first, &e);
	if (rc != MOAT_OK) {
		moat_app_close(a);
		cli_fail("import", &e);
		if (entries == 0)
			fprintf(stderr, "moat import: nothing was imported from %s\n", path);
		return CLI_FAIL;
	}
	/* No server runs (we hold the ledger), so judge what was imported now: `moat
	 * alerts` right after an import is complete. */
	moat_detect_stats_t ds;
	rc = moat_detect_catch_up(a, &ds, &e);
	moat_app_close(a);
	if (rc != MOAT_OK) {
		fprintf(stderr, "moat import: the events were imported, but the detector failed "
				"(run `moat alerts scan` to retry)\n");
		return cli_fail("import", &e);
	}
	if (c->json)
		printf("{\"kind\":\"events\",\"imported\":%zu,\"ledger_entries\":%zu,\"first_"
		       "index\":%llu,"
		       "\"alerts\":%llu}\n",
		       events, entries, (unsigned long long)first, (unsigned long long)ds.alerts);
	else
		printf(
		    "imported %zu events as ledger entries %llu..%llu; detector: %llu new alerts, "
		    "%llu actions\n",
		    events, (unsigned long long)first,
		    (unsigned long long)(first + entries - (entries ? 1 : 0)),
		    (unsigned long long)ds.alerts, (unsigned long long)ds.actions);
	return CLI_OK;
}

int cmd_import(int argc, char **argv)
{
	cli_common_t c;
	int done = cli_common_parse(&c, "import", help, argc, argv);
	if (done >= 0)
		return done;
	if (argc - optind != 2)
		return cli_usage("import", "expected KIND and FILE");
	const char *kind_name = argv[optind], *path = argv[optind + 1];
	int kind = moat_import_kind_parse(kind_name);
	if (strcmp(kind_name, "events") == 0)
		return import_events(&c, path);
	if (strcmp(kind_name, "reports") == 0)
		return cli_import_reports(&c, path);
	if (strcmp(kind_name, "calls") == 0)
		return cli_import_calls(&c, path);
	if (kind < 0)
		return cli_usage(
		    "import",
		    "unknown kind \"%s\" (expected parties, principals, relations, orders)",
		    kind_name);
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	if (moat_app_open(c.data_dir, MOAT_APP_NO_LEDGER, &a, &e) != MOAT_OK)
		return cli_fail("import", &e);
	size_t n = 0;
	moat_err_t rc = moat_app_import_file(a, (moat_import_kind_t)kind, path, &n, &e);
	moat_app_close(a);
	if (rc != MOAT_OK) {
		cli_fail("import", &e);
		fprintf(stderr, "moat import: nothing was imported from %s\n", path);
		return CLI_FAIL;
	}
	if (c.json)
		printf("{\"kind\":\"%s\",\"imported\":%zu}\n", kind_name, n);
	else
		printf("imported %zu %s\n", n, kind_name);
	return CLI_OK;
}
