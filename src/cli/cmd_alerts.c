/* moat alerts [list] | resolve ID --reason R | actions [--all] | lift ID --reason R */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "moat/app.h"
#include "moat/detect.h"

static void help(void)
{
	printf("usage: moat alerts [list] [--status open|resolved|all] [--limit N] [--json]\n"
	       "       moat alerts resolve ID --reason TEXT\n"
	       "       moat alerts actions [--all] [--json]\n"
	       "       moat alerts lift ACTION_ID --reason TEXT\n"
	       "       moat alerts scan\n"
	       "options: --data DIR\n\n"
	       "list      alerts raised by the detector, newest first (default: open ones).\n"
	       "resolve   closes an alert with the reason it needs no further work.\n"
	       "actions   actions in force (throttle, force_mask, suspend); --all includes\n"
	       "          lifted ones.\n"
	       "lift      ends an action (an ACTION ledger entry); the gateway stops applying it.\n"
	       "scan      runs the detector over ledger entries it has not judged yet (what\n"
	       "          `moat import events` does when no server runs).\n");
}

static int print_alert(void *ctx, const moat_alert_row_t *r)
{
	bool *first = ctx;
	char t[32];
	moat_time_format(r->time, t);
	if (*first)
		printf("%-28s %-9s %-10s %-18s %-24s %s\n", "ID", "SEVERITY", "ACTION", "PRINCIPAL",
		       "TIME", "TITLE");
	*first = false;
	printf("%-28s %-9s %-10s %-18s %-24s %s%s\n", r->id, moat_detect_severity_name(r->severity),
	       moat_detect_action_name(r->action), r->principal[0] ? r->principal : r->key, t, r->title,
	       r->status == MOAT_ALERT_RESOLVED ? " [resolved]" : "");
	return 0;
}

typedef struct act_ctx {
	bool json, first;
} act_ctx_t;

static int print_action(void *ctx, const moat_action_row_t *r)
{
	act_ctx_t *x = ctx;
	char t[32], l[32] = "-";
	moat_time_format(r->applied_at, t);
	if (r->lifted_at != MOAT_TIME_NONE)
		moat_time_format(r->lifted_at, l);
	if (x->json) {
		moat_buf_t b;
		moat_buf_init(&b, 1 << 16);
		int ok = moat_buf_printf(&b, "{\"id\":%" PRId64 ",\"principal\":", r->id) == MOAT_OK &&
			 moat_buf_json_str(&b, r->principal) == MOAT_OK &&
			 moat_buf_printf(&b, ",\"action\":\"%s\",\"alert\":",
					 moat_detect_action_name(r->action)) == MOAT_OK &&
			 moat_buf_json_str(&b, r->alert_id) == MOAT_OK &&
			 moat_buf_printf(&b, ",\"applied_at\":\"%s\",\"active\":%s}", t,
					 r->lifted_at == MOAT_TIME_NONE ? "true" : "false") == MOAT_OK;
		if (ok)
			printf("%s\n", b.data);
		moat_buf_free(&b);
		return 0;
	}
	if (x->first)
		printf("%-6s %-18s %-10s %-28s %-24s %s\n", "ID", "PRINCIPAL", "ACTION", "ALERT", "APPLIED",
		       "LIFTED");
	x->first = false;
	printf("%-6" PRId64 " %-18s %-10s %-28s %-24s %s\n", r->id, r->principal,
	       moat_detect_action_name(r->action), r->alert_id[0] ? r->alert_id : "(by hand)", t, l);
	return 0;
}

int cmd_alerts(int argc, char **argv)
{
	enum { OPT_STATUS = 1, OPT_LIMIT, OPT_REASON, OPT_ALL };
	static const struct option opts[] = {{"status", required_argument, NULL, OPT_STATUS},
					     {"limit", required_argument, NULL, OPT_LIMIT},
					     {"reason", required_argument, NULL, OPT_REASON},
					     {"all", no_argument, NULL, OPT_ALL},
					     CLI_COMMON_LONGOPTS,
					     {0, 0, 0, 0}};
	cli_common_t c;
	cli_common_init(&c);
	const char *status_s = "open", *reason = NULL;
	long limit = 0;
	bool all = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h': help(); return CLI_OK;
		case OPT_STATUS: status_s = optarg; break;
		case OPT_REASON: reason = optarg; break;
		case OPT_ALL: all = true; break;
		case OPT_LIMIT: {
			char *end;
			limit = strtol(optarg, &end, 10);
			if (*end || limit < 0 || limit > 1000000)
				return cli_usage("alerts", "--limit must be a number 0..1000000");
			break;
		}
		default:
			if (!cli_common_opt(&c, opt, optarg))
				return cli_bad_option("alerts");
		}
	}
	const char *sub = optind < argc ? argv[optind] : "list";
	int nargs = optind < argc ? argc - optind - 1 : 0;
	int status;
	if (strcmp(status_s, "open") == 0)
		status = MOAT_ALERT_OPEN;
	else if (strcmp(status_s, "resolved") == 0)
		status = MOAT_ALERT_RESOLVED;
	else if (strcmp(status_s, "all") == 0)
		status = -1;
	else
		return cli_usage("alerts", "--status must be open, resolved or all");
	bool is_list = strcmp(sub, "list") == 0, is_resolve = strcmp(sub, "resolve") == 0;
	bool is_actions = strcmp(sub, "actions") == 0, is_lift = strcmp(sub, "lift") == 0;
	bool is_scan = strcmp(sub, "scan") == 0;
	if (!is_list && !is_resolve && !is_actions && !is_lift && !is_scan)
		return cli_usage("alerts", "unknown subcommand \"%s\"", sub);
	if ((is_list || is_actions || is_scan) && nargs != 0)
		return cli_usage("alerts", "%s takes no arguments", sub);
	if ((is_resolve || is_lift) && (nargs != 1 || !reason))
		return cli_usage("alerts", "%s expects one ID and --reason TEXT", sub);
	int64_t action_id = 0;
	if (is_lift) {
		char *end;
		action_id = strtoll(argv[optind + 1], &end, 10);
		if (*end || action_id <= 0)
			return cli_usage("alerts", "lift expects a numeric action id (see `moat alerts actions`)");
	}

	moat_error_t e = {0};
	moat_app_t *a = NULL;
	if (moat_app_open(c.data_dir, (is_lift || is_scan) ? 0 : MOAT_APP_NO_LEDGER, &a, &e) != MOAT_OK)
		return cli_fail("alerts", &e);
	moat_err_t rc = MOAT_OK;
	if (is_list && c.json) {
		moat_buf_t b;
		moat_buf_init(&b, 256u << 20);
		rc = moat_detect_alerts_json(a->store, status, (size_t)limit, &b, &e);
		if (rc == MOAT_OK)
			printf("%s\n", b.data);
		moat_buf_free(&b);
	} else if (is_list) {
		bool first = true;
		rc = moat_store_alert_list(a->store, status, (size_t)limit, print_alert, &first, &e);
		if (rc == MOAT_OK && first)
			printf("no %s alerts\n", status < 0 ? "" : status_s);
	} else if (is_resolve) {
		rc = moat_store_alert_resolve(a->store, argv[optind + 1], reason, moat_now(), &e);
		if (rc == MOAT_OK)
			printf("alert %s resolved\n", argv[optind + 1]);
	} else if (is_actions) {
		act_ctx_t x = {c.json, true};
		rc = moat_store_action_list(a->store, !all, print_action, &x, &e);
		if (rc == MOAT_OK && x.first && !c.json)
			printf("no %sactions\n", all ? "" : "active ");
	} else if (is_scan) {
		moat_detect_stats_t st;
		rc = moat_detect_catch_up(a, &st, &e);
		if (rc == MOAT_OK && c.json)
			printf("{\"judged\":%" PRIu64 ",\"alerts\":%" PRIu64 ",\"actions\":%" PRIu64
			       ",\"cursor\":%" PRIu64 "}\n",
			       st.processed, st.alerts, st.actions, st.cursor);
		else if (rc == MOAT_OK)
			printf("judged %" PRIu64 " entries: %" PRIu64 " new alerts, %" PRIu64
			       " actions (cursor %" PRIu64 ")\n",
			       st.processed, st.alerts, st.actions, st.cursor);
	} else {
		rc = moat_detect_lift(a, action_id, reason, &e);
		if (rc == MOAT_OK)
			printf("action %" PRId64 " lifted\n", action_id);
	}
	moat_app_close(a);
	return rc == MOAT_OK ? CLI_OK : cli_fail("alerts", &e);
}
