/* moat honey plant --principal P [--count N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "moat/app.h"
#include "moat/trace.h"

static void help(void)
{
	printf("usage: moat honey plant --principal P [--count N] [--json] [--data DIR]\n\n"
	       "Plants N (default 1, at most 1000) honey orders: synthetic buyers with monitored\n"
	       "phone numbers, assigned to exactly principal P so they reach it through the\n"
	       "normal read path and nobody else. A report or a call touching one opens a case\n"
	       "naming P (`moat case list`, `moat trace honey-<order>`).\n");
}

enum { OPT_PRINCIPAL = 2000, OPT_COUNT };

int cmd_honey(int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_LONGOPTS,
					     {"principal", required_argument, NULL, OPT_PRINCIPAL},
					     {"count", required_argument, NULL, OPT_COUNT},
					     {0, 0, 0, 0}};
	cli_common_t c;
	cli_common_init(&c);
	const char *principal = NULL;
	long count = 1;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			help();
			return CLI_OK;
		}
		if (opt == OPT_PRINCIPAL) {
			principal = optarg;
		} else if (opt == OPT_COUNT) {
			char *end;
			count = strtol(optarg, &end, 10);
			if (*end || count < 1 || count > 1000)
				return cli_usage("honey", "--count must be 1..1000");
		} else if (!cli_common_opt(&c, opt, optarg)) {
			return cli_bad_option("honey");
		}
	}
	if (argc - optind != 1 || strcmp(argv[optind], "plant") != 0)
		return cli_usage("honey", "expected plant");
	if (!principal)
		return cli_usage("honey", "--principal is required");
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	if (moat_app_open(c.data_dir, MOAT_APP_NO_LEDGER, &a, &e) != MOAT_OK)
		return cli_fail("honey", &e);
	moat_buf_t b;
	moat_buf_init(&b, 1 << 20);
	int ret = CLI_OK;
	if (moat_trace_honey_plant(a, principal, (size_t)count, &b, &e) != MOAT_OK)
		ret = cli_fail("honey", &e);
	else if (c.json)
		printf("{\"principal\":\"%s\",\"orders\":%s}\n", principal, b.data);
	else
		printf("planted %ld honey orders for %s: %s\n", count, principal, b.data);
	moat_buf_free(&b);
	moat_app_close(a);
	return ret;
}
