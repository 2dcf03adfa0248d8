/* moat policy check|explain|default */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "moat/app.h"
#include "moat/gateway.h"
#include "moat/policy.h"

static void help(void)
{
	printf("usage: moat policy check FILE\n"
	       "       moat policy explain --principal P --order O --purpose X [--at TIME]\n"
	       "                           [--policy FILE] [--data DIR]\n"
	       "       moat policy default\n\n"
	       "check     parses FILE (docs/policy.md), prints errors with their line and lint\n"
	       "          warnings (rules that never apply, plaintext without a relation);\n"
	       "          exit 0 if the policy is valid, 1 if not.\n"
	       "explain   says which rule decides that read now (or at TIME, RFC 3339) under\n"
	       "          <data>/policy.conf (or FILE), and why each earlier rule did not apply.\n"
	       "default   prints the default policy that `moat init` installs.\n");
}

static int check(const char *file)
{
	moat_policy_t *p = NULL;
	moat_error_t e = {0};
	if (moat_policy_load(file, &p, &e) != MOAT_OK) {
		if (e.line > 0)
			fprintf(stderr, "%s:%ld: %s\n", file, e.line, e.msg);
		else
			fprintf(stderr, "%s: %s\n", file, e.msg);
		return CLI_FAIL;
	}
	moat_buf_t b;
	moat_buf_init(&b, 1 << 20);
	size_t warnings = moat_policy_lint(p, &b);
	if (b.len)
		fprintf(stderr, "%s", b.data);
	printf("%s: ok: %zu rules, %zu warnings, sha256 %s\n", file, moat_policy_rule_count(p),
	       warnings, moat_policy_hash(p));
	moat_buf_free(&b);
	moat_policy_free(p);
	return CLI_OK;
}

static int explain(const cli_common_t *c, const char *principal, const char *order,
		   const char *purpose_s, const char *at_s, const char *policy_file)
{
	int purpose = moat_purpose_parse(purpose_s);
	if (purpose < 0)
		return cli_usage("policy", "unknown purpose \"%s\"", purpose_s);
	moat_time_t at = moat_now();
	if (at_s && !moat_time_parse(at_s, &at))
		return cli_usage("policy", "--at must be RFC 3339 with an offset");
	moat_error_t e = {0};
	moat_app_t *a = NULL;
	moat_policy_t *p = NULL;
	moat_order_row_t row = {0};
	moat_principal_row_t pr;
	moat_buf_t b;
	moat_buf_init(&b, 1 << 20);
	int ret = CLI_FAIL;
	char path[1200];
	if (moat_app_open(c->data_dir, MOAT_APP_NO_LEDGER, &a, &e) != MOAT_OK)
		goto done;
	if (!policy_file) {
		if (moat_path_join(path, sizeof path, a->data_dir, "policy.conf") != MOAT_OK) {
			moat_error_set(&e, MOAT_ELIMIT, NULL, "data directory path too long");
			goto done;
		}
		policy_file = path;
	}
	if (moat_policy_load(policy_file, &p, &e) != MOAT_OK ||
	    moat_store_principal_get(a->store, principal, &pr, &e) != MOAT_OK ||
	    moat_store_order_get(a->store, order, &row, &e) != MOAT_OK)
		goto done;
	moat_policy_request_t q;
	if (moat_gateway_policy_request(a->store, &pr, &row, (moat_purpose_t)purpose, at, &q, NULL, &e) !=
	    MOAT_OK)
		goto done;
	if (moat_policy_explain(p, &q, &b) != MOAT_OK) {
		moat_error_set(&e, MOAT_ENOMEM, NULL, "explanation too long");
		goto done;
	}
	printf("principal %s reading order %s for %s under %s\n%s", principal, order, purpose_s,
	       policy_file, b.data);
	if (pr.status == MOAT_PRINCIPAL_SUSPENDED)
		printf(
		    "note: the principal is suspended, so the gateway refuses it before policy\n");
	ret = CLI_OK;
done:
	if (ret != CLI_OK)
		cli_fail("policy", &e);
	moat_buf_free(&b);
	moat_order_row_clear(&row);
	moat_policy_free(p);
	moat_app_close(a);
	return ret;
}

int cmd_policy(int argc, char **argv)
{
	enum { OPT_PRINCIPAL = 1, OPT_ORDER, OPT_PURPOSE, OPT_AT, OPT_POLICY };
	static const struct option opts[] = {{"principal", required_argument, NULL, OPT_PRINCIPAL},
					     {"order", required_argument, NULL, OPT_ORDER},
					     {"purpose", required_argument, NULL, OPT_PURPOSE},
					     {"at", required_argument, NULL, OPT_AT},
					     {"policy", required_argument, NULL, OPT_POLICY},
					     CLI_COMMON_LONGOPTS,
					     {0, 0, 0, 0}};
	cli_common_t c;
	cli_common_init(&c);
	const char *principal = NULL, *order = NULL, *purpose = NULL, *at = NULL, *policy = NULL;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			help();
			return CLI_OK;
		case OPT_PRINCIPAL:
			principal = optarg;
			break;
		case OPT_ORDER:
			order = optarg;
			break;
		case OPT_PURPOSE:
			purpose = optarg;
			break;
		case OPT_AT:
			at = optarg;
			break;
		case OPT_POLICY:
			policy = optarg;
			break;
		default:
			if (!cli_common_opt(&c, opt, optarg))
				return cli_bad_option("policy");
		}
	}
	int nargs = argc - optind;
	if (nargs < 1)
		return cli_usage("policy", "expected check, explain or default");
	const char *sub = argv[optind];
	if (strcmp(sub, "check") == 0) {
		if (nargs != 2)
			return cli_usage("policy", "expected: check FILE");
		return check(argv[optind + 1]);
	}
	if (strcmp(sub, "default") == 0) {
		if (nargs != 1)
			return cli_usage("policy", "default takes no arguments");
		fputs(moat_policy_default_text(), stdout);
		return CLI_OK;
	}
	if (strcmp(sub, "explain") == 0) {
		if (nargs != 1)
			return cli_usage("policy", "explain takes options only");
		if (!principal || !order || !purpose)
			return cli_usage("policy",
					 "explain needs --principal, --order and --purpose");
		if (!moat_id_valid(principal) || !moat_id_valid(order))
			return cli_usage("policy", "invalid principal or order id");
		return explain(&c, principal, order, purpose, at, policy);
	}
	return cli_usage("policy", "unknown subcommand \"%s\"", sub);
}
