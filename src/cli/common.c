/* Helpers shared by the subcommands. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

void cli_common_init(cli_common_t *c)
{
	const char *env = getenv("MOAT_DATA");
	c->data_dir = (env && *env) ? env : "./moat-data";
	c->json = false;
	optind = 0; /* glibc: 0 fully re-initialises getopt for the subcommand's argv */
	opterr = 1;
}

bool cli_common_opt(cli_common_t *c, int opt, const char *arg)
{
	switch (opt) {
	case CLI_OPT_DATA:
		c->data_dir = arg;
		return true;
	case CLI_OPT_JSON:
		c->json = true;
		return true;
	}
	return false;
}

int cli_common_parse(cli_common_t *c, const char *cmd, void (*help)(void), int argc, char **argv)
{
	static const struct option opts[] = {CLI_COMMON_LONGOPTS, {0, 0, 0, 0}};
	cli_common_init(c);
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			help();
			return CLI_OK;
		}
		if (!cli_common_opt(c, opt, optarg))
			return cli_bad_option(cmd);
	}
	return -1;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "moat %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nRun `moat %s --help` for usage.\n", cmd);
	return CLI_USAGE;
}

int cli_bad_option(const char *cmd)
{
	/* getopt has already printed what was wrong. */
	fprintf(stderr, "Run `moat %s --help` for usage.\n", cmd);
	return CLI_USAGE;
}

int cli_fail(const char *cmd, const moat_error_t *e)
{
	fprintf(stderr, "moat %s: error", cmd);
	if (e->line > 0)
		fprintf(stderr, ": line %ld", e->line);
	if (e->field[0])
		fprintf(stderr, "%s field %s", e->line > 0 ? "," : ":", e->field);
	fprintf(stderr, ": %s\n", e->msg[0] ? e->msg : moat_err_name(e->code));
	return CLI_FAIL;
}

int cli_fraction(const char *cmd, const char *name, const char *arg, double *out)
{
	char *end;
	double v = strtod(arg, &end);
	if (end == arg || *end || !(v > 0 && v < 1))
		return cli_usage(cmd, "--%s must be a number between 0 and 1", name);
	*out = v;
	return CLI_OK;
}
