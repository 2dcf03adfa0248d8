/* moat: entry point and subcommand dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

typedef struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} command_t;

static int cmd_help(int argc, char **argv);

/* Keep alphabetical; one line per subcommand. */
static const command_t commands[] = {
    {"alerts", cmd_alerts, "list and resolve detector alerts; list and lift actions"},
    {"case", cmd_case, "list, show, create and narrow cases of scam reports"},
    {"demo", cmd_demo, "run moat's whole loop on a simulated world (what `make demo` runs)"},
    {"eval", cmd_eval, "score detection and tracing against a simulated world's truth"},
    {"help", cmd_help, "show this help, or `moat help CMD` for one command"},
    {"honey", cmd_honey, "plant honey orders visible to exactly one recipient"},
    {"import", cmd_import, "import parties, principals, relations, orders (JSON Lines)"},
    {"init", cmd_init, "create a data directory: database, keys, ledger, default config"},
    {"key", cmd_key, "rotate the data-encryption key and re-encrypt stored PII"},
    {"ledger", cmd_ledger, "inspect and verify the access ledger: key, checkpoint, proofs"},
    {"order", cmd_order, "show an order as an operator sees it (masked)"},
    {"policy", cmd_policy, "check a policy file, explain a decision, print the default"},
    {"principal", cmd_principal, "add, list, suspend and resume principals"},
    {"replay", cmd_replay, "replay a simulated world through a running `moat serve` over HTTP"},
    {"rules", cmd_rules, "check a detection rule file; print the default rules"},
    {"serve", cmd_serve, "run the HTTP gateway (policy, views, ledger, quotas)"},
    {"simulate", cmd_simulate, "write a synthetic, labelled world (interchange files + truth)"},
    {"trace", cmd_trace, "rank who leaked a case's data, with proofs and whom to notify"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: moat COMMAND [OPTIONS] [ARGS]\n\n"
		     "moat guards e-commerce order data: field-level access control, an\n"
		     "append-only access ledger, leak detection and leaker tracing.\n\n"
		     "commands:\n");
	for (size_t i = 0; i < MOAT_ARRAY_LEN(commands); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nRun `moat COMMAND --help` for a command's options.\n"
		     "Common options: --data DIR (default ./moat-data, or $MOAT_DATA), --json.\n");
}

static const command_t *find(const char *name)
{
	for (size_t i = 0; i < MOAT_ARRAY_LEN(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int cmd_help(int argc, char **argv)
{
	if (argc > 1) {
		const command_t *c = find(argv[1]);
		if (!c)
			return cli_usage("help", "unknown command \"%s\"", argv[1]);
		char *args[] = {(char *)c->name, "--help", NULL};
		return c->run(2, args);
	}
	usage(stdout);
	return CLI_OK;
}

int main(int argc, char **argv)
{
	const char *lvl = getenv("MOAT_LOG_LEVEL");
	moat_log_level_t level;
	if (lvl && moat_log_parse_level(lvl, &level))
		moat_log_set_level(level);
	if (argc < 2) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("moat 0.1.0\n");
		return CLI_OK;
	}
	const command_t *c = find(argv[1]);
	if (!c) {
		fprintf(stderr,
			"moat: unknown command \"%s\"\nRun `moat help` for the list of commands.\n",
			argv[1]);
		return CLI_USAGE;
	}
	return c->run(argc - 1, argv + 1);
}
