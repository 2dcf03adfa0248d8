/* moat key rotate */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "moat/app.h"

static void help(void)
{
	printf("usage: moat key rotate [--batch N] [--resume] [--data DIR] [--json]\n\n"
	       "Adds a new data-encryption key, makes it current, and re-encrypts every order's\n"
	       "PII under it in batches of N (default 1000), one short transaction per batch, so\n"
	       "a running server keeps serving. --resume finishes an interrupted rotation\n"
	       "without adding another key. Old key files stay (needed for backups); delete\n"
	       "them by hand once no record names them.\n");
}

int cmd_key(int argc, char **argv)
{
	enum { OPT_BATCH = 1, OPT_RESUME };
	static const struct option opts[] = {{"batch", required_argument, NULL, OPT_BATCH},
					     {"resume", no_argument, NULL, OPT_RESUME},
					     CLI_COMMON_LONGOPTS,
					     {0, 0, 0, 0}};
	cli_common_t c;
	cli_common_init(&c);
	long batch = 1000;
	bool resume = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			help();
			return CLI_OK;
		} else if (opt == OPT_BATCH) {
			char *end;
			batch = strtol(optarg, &end, 10);
			if (*end || batch < 1 || batch > 1000000)
				return cli_usage("key", "--batch must be an integer in 1..1000000");
		} else if (opt == OPT_RESUME) {
			resume = true;
		} else if (!cli_common_opt(&c, opt, optarg)) {
			return cli_bad_option("key");
		}
	}
	if (argc - optind != 1 || strcmp(argv[optind], "rotate") != 0)
		return cli_usage("key", "expected the subcommand \"rotate\"");
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	if (moat_app_open(c.data_dir, MOAT_APP_NO_LEDGER, &a, &e) != MOAT_OK)
		return cli_fail("key", &e);
	size_t n = 0;
	moat_err_t rc = moat_app_key_rotate(a, !resume, (size_t)batch, &n, &e);
	char cur[MOAT_KEY_ID_MAX];
	snprintf(cur, sizeof cur, "%s", moat_keyring_current(a->keys));
	moat_app_close(a);
	if (rc != MOAT_OK)
		return cli_fail("key", &e);
	if (c.json)
		printf("{\"current_key\":\"%s\",\"reencrypted\":%zu}\n", cur, n);
	else
		printf("current key %s; re-encrypted %zu orders\n", cur, n);
	return CLI_OK;
}
