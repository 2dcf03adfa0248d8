/* moat rules check FILE | moat rules default */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "moat/detect.h"

static void help(void)
{
	printf("usage: moat rules check FILE\n"
	       "       moat rules default\n\n"
	       "check     parses a detection rule file (docs/rules.md), prints the first error\n"
	       "          with its line, or one line per rule; exit 0 if valid, 1 if not.\n"
	       "default   prints the default rule set that `moat init` installs as\n"
	       "          <data>/rules.conf.\n");
}

static int check(const char *file, bool json)
{
	moat_detect_rules_t *rs = NULL;
	moat_error_t e = {0};
	if (moat_detect_rules_load(file, &rs, &e) != MOAT_OK) {
		if (e.line > 0)
			fprintf(stderr, "%s:%ld: %s%s%s\n", file, e.line, e.field[0] ? e.field : "",
				e.field[0] ? ": " : "", e.msg);
		else
			fprintf(stderr, "%s: %s\n", file, e.msg);
		return CLI_FAIL;
	}
	size_t n = moat_detect_rules_count(rs);
	for (size_t i = 0; i < n; i++) {
		if (json)
			printf("{\"rule\":\"%s\",\"type\":\"%s\",\"severity\":\"%s\",\"action\":\"%s\"}\n",
			       moat_detect_rules_name(rs, i), moat_detect_rules_type(rs, i),
			       moat_detect_severity_name(moat_detect_rules_severity(rs, i)),
			       moat_detect_action_name(moat_detect_rules_action(rs, i)));
		else
			printf("  %-22s %-12s %-9s %s\n", moat_detect_rules_name(rs, i),
			       moat_detect_rules_type(rs, i),
			       moat_detect_severity_name(moat_detect_rules_severity(rs, i)),
			       moat_detect_action_name(moat_detect_rules_action(rs, i)));
	}
	if (!json)
		printf("%s: ok: %zu rules\n", file, n);
	moat_detect_rules_free(rs);
	return CLI_OK;
}

int cmd_rules(int argc, char **argv)
{
	cli_common_t c;
	int done = cli_common_parse(&c, "rules", help, argc, argv);
	if (done >= 0)
		return done;
	if (optind >= argc)
		return cli_usage("rules", "expected a subcommand: check, default");
	const char *sub = argv[optind];
	int nargs = argc - optind - 1;
	if (strcmp(sub, "check") == 0) {
		if (nargs != 1)
			return cli_usage("rules", "check expects one FILE");
		return check(argv[optind + 1], c.json);
	}
	if (strcmp(sub, "default") == 0) {
		if (nargs != 0)
			return cli_usage("rules", "default takes no arguments");
		fputs(moat_detect_rules_default_text(), stdout);
		return CLI_OK;
	}
	return cli_usage("rules", "unknown subcommand \"%s\"", sub);
}
