/* moat init [--data DIR] */
#include <stdio.h>

#include "cli/cli.h"
#include "moat/app.h"

static void help(void)
{
	printf("usage: moat init [--data DIR]\n\n"
	       "Creates a data directory (default ./moat-data): the SQLite database, a\n"
	       "data-encryption key and a look-up key (files 0600), the ledger and its\n"
	       "signing key, the default policy and a default moat.conf. Refuses to touch an\n"
	       "existing non-empty directory.\n");
}

int cmd_init(int argc, char **argv)
{
	cli_common_t c;
	int done = cli_common_parse(&c, "init", help, argc, argv);
	if (done >= 0)
		return done;
	if (optind != argc)
		return cli_usage("init", "unexpected argument \"%s\"", argv[optind]);
	moat_error_t e = {0};
	if (moat_app_init(c.data_dir, &e) != MOAT_OK)
		return cli_fail("init", &e);
	if (c.json)
		printf("{\"data\":\"%s\",\"created\":true}\n", c.data_dir);
	else
		printf("initialised moat data directory %s\n", c.data_dir);
	return CLI_OK;
}
