/* moat principal add|list|suspend|resume */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "moat/app.h"
#include "moat/json.h"
#include "moat/ledger.h"

static void help(void)
{
	printf("usage: moat principal add ID --party P --role ROLE [--name N] [--shift HH:MM-HH:MM]\n"
	       "       moat principal list\n"
	       "       moat principal suspend ID\n"
	       "       moat principal resume ID\n"
	       "       moat principal key ID      (new API key, shown once; revokes the old one)\n"
	       "       moat principal passwd ID   (set a password: prompted, or one line on stdin)\n"
	       "options: --data DIR, --json\n\n"
	       "`add` creates the principal and prints its new API key once; only the key's\n"
	       "SHA-256 is stored, so a lost key cannot be shown again (issue a new one).\n"
	       "Roles: platform_service platform_ops merchant_admin cs_agent warehouse courier\n"
	       "       isv_app auditor\n");
}

typedef struct list_ctx {
	bool json;
	bool first;
} list_ctx_t;

static int print_row(void *ctx, const moat_principal_row_t *r)
{
	list_ctx_t *x = ctx;
	if (x->json) {
		json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:b}", "principal", r->principal,
				      "party", r->party, "role", moat_role_name(r->role), "name", r->name,
				      "shift", r->shift, "status",
				      r->status == MOAT_PRINCIPAL_ACTIVE ? "active" : "suspended",
				      "has_key", r->has_key, "has_password", r->has_password);
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(j);
	} else {
		if (x->first)
			printf("%-20s %-16s %-16s %-10s %s\n", "PRINCIPAL", "PARTY", "ROLE", "STATUS", "SHIFT");
		printf("%-20s %-16s %-16s %-10s %s\n", r->principal, r->party, moat_role_name(r->role),
		       r->status == MOAT_PRINCIPAL_ACTIVE ? "active" : "suspended", r->shift);
	}
	x->first = false;
	return 0;
}

/* Every principal change is a ledger event, durable before the change commits. */
static moat_err_t log_change(moat_app_t *a, const char *id, const char *what, moat_error_t *e)
{
	moat_entry_t en = {.kind = MOAT_ENTRY_PRINCIPAL, .time = moat_now(), .principal = id,
			   .ref = what, .detail = "cli"};
	return moat_ledger_append(a->ledger, &en, 1, NULL, e);
}

int cmd_principal(int argc, char **argv)
{
	enum { OPT_PARTY = 1, OPT_ROLE, OPT_NAME, OPT_SHIFT };
	static const struct option opts[] = {{"party", required_argument, NULL, OPT_PARTY},
					     {"role", required_argument, NULL, OPT_ROLE},
					     {"name", required_argument, NULL, OPT_NAME},
					     {"shift", required_argument, NULL, OPT_SHIFT},
					     CLI_COMMON_LONGOPTS,
					     {0, 0, 0, 0}};
	cli_common_t c;
	cli_common_init(&c);
	const char *party = NULL, *role = NULL, *name = NULL, *shift = NULL;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h': help(); return CLI_OK;
		case OPT_PARTY: party = optarg; break;
		case OPT_ROLE: role = optarg; break;
		case OPT_NAME: name = optarg; break;
		case OPT_SHIFT: shift = optarg; break;
		default:
			if (!cli_common_opt(&c, opt, optarg))
				return cli_bad_option("principal");
		}
	}
	if (optind >= argc)
		return cli_usage("principal", "expected a subcommand: add, list, suspend, resume");
	const char *sub = argv[optind];
	int nargs = argc - optind - 1;
	const char *id = nargs > 0 ? argv[optind + 1] : NULL;
	if (strcmp(sub, "key") == 0 || strcmp(sub, "passwd") == 0)
		return cli_principal_creds(&c, sub, nargs, id);
	bool is_add = strcmp(sub, "add") == 0, is_list = strcmp(sub, "list") == 0;
	bool is_susp = strcmp(sub, "suspend") == 0, is_res = strcmp(sub, "resume") == 0;
	if (!is_add && !is_list && !is_susp && !is_res)
		return cli_usage("principal", "unknown subcommand \"%s\"", sub);
	if (is_list ? nargs != 0 : nargs != 1)
		return cli_usage("principal", is_list ? "list takes no arguments" : "%s expects one ID", sub);
	if (id && !moat_id_valid(id))
		return cli_usage("principal", "invalid principal id \"%s\"", id);
	moat_principal_t p = {0};
	if (is_add) {
		if (!party || !role)
			return cli_usage("principal", "add needs --party and --role");
		int r = moat_role_parse(role);
		if (r < 0)
			return cli_usage("principal", "unknown role \"%s\"", role);
		if (!moat_id_valid(party))
			return cli_usage("principal", "invalid party id \"%s\"", party);
		if (shift && !moat_shift_valid(shift))
			return cli_usage("principal", "--shift must be HH:MM-HH:MM");
		if (name && (!moat_utf8_valid(name, strlen(name)) || moat_utf8_len(name, strlen(name)) > MOAT_NAME_MAX))
			return cli_usage("principal", "--name must be valid UTF-8 of at most %d characters",
					 MOAT_NAME_MAX);
		p = (moat_principal_t){.principal = id, .party = party, .role = (moat_role_t)r,
				       .name = name, .shift = shift};
	}

	moat_error_t e = {0};
	moat_app_t *a = NULL;
	if (moat_app_open(c.data_dir, is_list ? MOAT_APP_NO_LEDGER : 0, &a, &e) != MOAT_OK)
		return cli_fail("principal", &e);
	moat_err_t rc = MOAT_OK;
	if (is_list) {
		list_ctx_t x = {c.json, true};
		rc = moat_store_principal_list(a->store, print_row, &x, &e);
	} else if (is_add) {
		moat_principal_row_t existing;
		char key[72];
		uint8_t hash[32];
		if (moat_store_principal_get(a->store, id, &existing, NULL) == MOAT_OK) {
			rc = moat_error_set(&e, MOAT_EEXIST, "principal",
					    "principal %s already exists (use `moat principal key` for a new key)", id);
		} else if ((rc = moat_api_key_new(key, hash)) != MOAT_OK) {
			moat_error_set(&e, rc, NULL, "no randomness available");
		} else if ((rc = moat_store_begin(a->store, &e)) == MOAT_OK) {
			rc = moat_store_principal_put(a->store, &p, &e);
			if (rc == MOAT_OK)
				rc = moat_store_principal_set_key(a->store, id, hash, &e);
			if (rc == MOAT_OK)
				rc = log_change(a, id, "add", &e);
			if (rc == MOAT_OK)
				rc = moat_store_commit(a->store, &e);
			if (rc != MOAT_OK)
				moat_store_rollback(a->store);
		}
		if (rc == MOAT_OK) {
			if (c.json)
				printf("{\"principal\":\"%s\",\"api_key\":\"%s\"}\n", id, key);
			else
				printf("principal %s added\napi key (shown once, store it now): %s\n", id, key);
		}
		memset(key, 0, sizeof key);
	} else {
		rc = moat_store_begin(a->store, &e);
		if (rc == MOAT_OK)
			rc = moat_store_principal_set_status(a->store, id,
							     is_susp ? MOAT_PRINCIPAL_SUSPENDED : MOAT_PRINCIPAL_ACTIVE, &e);
		if (rc == MOAT_OK)
			rc = log_change(a, id, is_susp ? "suspend" : "resume", &e);
		if (rc == MOAT_OK)
			rc = moat_store_commit(a->store, &e);
		if (rc != MOAT_OK)
			moat_store_rollback(a->store);
		if (rc == MOAT_OK) {
			if (c.json)
				printf("{\"principal\":\"%s\",\"status\":\"%s\"}\n", id, is_susp ? "suspended" : "active");
			else
				printf("principal %s %s\n", id, is_susp ? "suspended" : "resumed");
		}
	}
	moat_app_close(a);
	return rc == MOAT_OK ? CLI_OK : cli_fail("principal", &e);
}
