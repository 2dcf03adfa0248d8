/*
 * The moat command: shared helpers for subcommands. Each subcommand lives in its
 * own src/cli/cmd_<name>.c and is listed in main.c's command table.
 *
 * Exit codes: 0 ok, 1 runtime error, 2 usage error.
 */
#ifndef MOAT_CLI_H
#define MOAT_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include "moat/base.h"
#include "moat/store.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Options every record-printing command accepts; fill with cli_common_opt(). */
typedef struct cli_common {
	const char *data_dir; /* --data, else $MOAT_DATA, else ./moat-data */
	bool json;	      /* --json */
} cli_common_t;

/* Long options ids shared by subcommands (values above any short option). */
enum { CLI_OPT_DATA = 1000, CLI_OPT_JSON, CLI_OPT_HELP };

#define CLI_COMMON_LONGOPTS                                                                        \
	{"data", required_argument, NULL, CLI_OPT_DATA},                                           \
	    {"json", no_argument, NULL, CLI_OPT_JSON},                                             \
	{                                                                                          \
		"help", no_argument, NULL, 'h'                                                     \
	}

/* Initialises defaults (data dir from $MOAT_DATA or ./moat-data). */
void cli_common_init(cli_common_t *c);
/* Handles a common option; returns true if opt was one of them. */
bool cli_common_opt(cli_common_t *c, int opt, const char *arg);
/* Parses the options of a command that takes only the common ones (--data,
 * --json, --help), leaving optind at its first argument. Returns -1 to go on,
 * else the exit code: CLI_OK after --help printed help(), CLI_USAGE on a bad
 * option. */
int cli_common_parse(cli_common_t *c, const char *cmd, void (*help)(void), int argc, char **argv);

/* Prints "moat CMD: message" and a hint to stderr; returns CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) MOAT_PRINTF(2, 3);
/* Prints the error (with line and field when set) to stderr; returns CLI_FAIL. */
int cli_fail(const char *cmd, const moat_error_t *e);
/* Prints an "unknown option" style message for getopt's '?' and returns CLI_USAGE. */
int cli_bad_option(const char *cmd);
/* Parses the argument of option --name as a number strictly between 0 and 1 into
 * *out; CLI_OK, or CLI_USAGE after saying "--name must be a number between 0 and 1". */
int cli_fraction(const char *cmd, const char *name, const char *arg, double *out);

/* Subcommands. argv[0] is the subcommand name. */
int cmd_init(int argc, char **argv);
int cmd_alerts(int argc, char **argv);
int cmd_rules(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_principal(int argc, char **argv);
int cmd_order(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_ledger(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_policy(int argc, char **argv);
/* `moat principal key|passwd ID` (cmd_principal_creds.c), dispatched from
 * cmd_principal after option parsing; nargs counts arguments after the verb. */
int cli_principal_creds(const cli_common_t *c, const char *verb, int nargs, const char *id);
/* A new API key for principal id (revoking the previous one): writes the key
 * (shown once, "moat_" + 64 hex) to key; only its hash is stored in s. The
 * code behind `moat principal key`, shared with `moat replay`. */
moat_err_t cli_principal_new_key(moat_store_t *s, const char *id, char key[72],
				 moat_error_t *e) MOAT_MUST_CHECK;
int cmd_simulate(int argc, char **argv);
/* `moat replay DIR --url URL --data D` (src/cli/cmd_replay.c). */
int cmd_replay(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_case(int argc, char **argv);
int cmd_honey(int argc, char **argv);
int cmd_eval(int argc, char **argv);
/* `moat demo` (src/cli/cmd_demo.c): runs the compiled-in scripts/demo.sh. */
int cmd_demo(int argc, char **argv);
/* `moat import reports FILE` (src/cli/cmd_import_reports.c). */
int cli_import_reports(const cli_common_t *c, const char *path);
int cli_import_calls(const cli_common_t *c, const char *path);

#endif
